//! Durable writes: a small file replaced by write-new + fsync + rename + directory
//! fsync; a newcerts file created once and fsynced (its directory's fsync shared by
//! concurrent enrollments); an index line appended, flushed by [`Pending::sync`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Locked, Reservation, Store, StoreError, Written};
use crate::ca::index::{Line, Record};

/// Group commit for a directory fsync: a caller whose file already exists needs a sync
/// that *starts* after its call; callers that arrive while one runs share the next.
#[derive(Default)]
pub(super) struct GroupSync {
    state: Mutex<SyncState>,
    done_cv: std::sync::Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Generation the next sync to start will have.
    next: u64,
    /// One past the newest generation that completed.
    done: u64,
    running: bool,
}

impl GroupSync {
    pub(super) fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let needed = s.next;
        loop {
            if s.done > needed {
                return Ok(());
            }
            if s.running {
                s = self.done_cv.wait(s).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            s.running = true;
            let generation = s.next;
            s.next += 1;
            drop(s);
            let result = fsync_dir(dir);
            s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.running = false;
            if result.is_ok() {
                s.done = s.done.max(generation + 1);
            }
            self.done_cv.notify_all();
            if generation >= needed {
                return result;
            }
        }
    }
}

impl Store {
    /// Writes newcerts/SERIAL.pem (never over an existing file) and fsyncs it and its
    /// directory. Needs no lock: the serial was reserved for this certificate alone, so
    /// enrollments write their files in parallel and only the index append is
    /// serialized. A file whose index line never follows (a crash, or the username
    /// taken meanwhile) is an orphan whose serial is never reused.
    pub fn write_cert(&self, reserved: Reservation, pem: &[u8]) -> Result<Written, StoreError> {
        let path = self.cert_file(&reserved.serial);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "create", e))?;
        // A failed write (a full disk) leaves no empty or partial newcerts file behind.
        if let Err(e) = f
            .write_all(pem)
            .map_err(|e| StoreError::io(&path, "write", e))
            .and_then(|()| f.sync_all().map_err(|e| StoreError::io(&path, "fsync", e)))
        {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.newcerts_sync.sync(&self.paths.new_certs_dir)?;
        Ok(Written {
            serial: reserved.serial,
            path,
        })
    }
}

pub(super) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = File::open(dir).map_err(|e| StoreError::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| StoreError::io(dir, "fsync directory", e))
}

pub(super) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl Locked<'_> {
    /// Records an issued certificate whose newcerts file [`Store::write_cert`] already
    /// wrote: the index line is appended and fsynced. Only after this returns may the
    /// certificate be answered.
    pub(super) fn record(&mut self, record: &Record) -> Result<Pending, StoreError> {
        let store = self.store;
        let db = &store.paths.database;
        let (dev, ino, start) = self.view.as_ref().map_or((0, 0, 0), |v| (v.dev, v.ino, v.len));
        let file = {
            let mut cached = store.append_file.lock().unwrap_or_else(|p| p.into_inner());
            match cached.as_ref() {
                Some((d, i, f)) if (*d, *i) == (dev, ino) => f.clone(),
                _ => {
                    let f = Arc::new(
                        OpenOptions::new()
                            .append(true)
                            .open(db)
                            .map_err(|e| StoreError::io(db, "open for append", e))?,
                    );
                    *cached = Some((dev, ino, f.clone()));
                    f
                }
            }
        };
        let line = record.to_line();
        if let Err(e) = (&*file).write_all(line.as_bytes()) {
            // Leave no partial line behind: cut back to where this append started.
            let _ = file.set_len(start);
            return Err(StoreError::io(db, "append to", e));
        }
        if let Some(view) = self.view.as_mut() {
            if let Ok(parsed) = Line::parse(line.trim_end_matches('\n')) {
                view.add(store, start, &parsed);
            }
            view.len += line.len() as u64;
        }
        Ok(Pending {
            file,
            path: db.clone(),
        })
    }
}

/// A line appended to index.txt (every reader sees it) but not yet flushed. Call
/// [`Pending::sync`] after releasing the lock and before answering: enrollments that
/// wait on the disk together then share one flush, and the lock is held for a write(),
/// not for the disk.
#[must_use = "the line is not durable until sync() returns"]
pub struct Pending {
    file: Arc<File>,
    path: PathBuf,
}

impl Pending {
    pub fn sync(self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, "fsync", e))
    }
}

/// Replaces `path` with `content`: write `path.getacert-new` (with `path`'s mode, 0644
/// for a new file), fsync, rename over `path`, fsync the directory. A failed write (a
/// full disk) removes the new file and leaves `path` as it was.
pub fn write_durably(path: &Path, content: &[u8]) -> Result<(), StoreError> {
    let tmp = PathBuf::from(format!("{}.getacert-new", path.display()));
    let mode = fs::metadata(path).map(|m| m.mode() & 0o777).unwrap_or(0o644);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, "create", e))?;
    if let Err(e) = f.write_all(content).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::io(&tmp, "write", e));
    }
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, "replace", e))?;
    fsync_dir(parent(path))
}

/// Reads the token secret (`getacert.secret`), or creates it (32 random bytes, 0600) if
/// there is none yet. Two processes racing to create it agree: the loser reads the
/// winner's file. Read at start-up, before a [`Store`] exists.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    let read = |path: &Path| -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        File::open(path)?.read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read(path) {
        Ok(s) if s.len() >= 32 => return Ok(s),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut secret = [0u8; 32];
    openssl::rand::rand_bytes(&mut secret).map_err(std::io::Error::other)?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(&secret)?;
            f.sync_all()?;
            Ok(secret.to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another process won; its file may still be being written.
            for _ in 0..50 {
                let s = read(path)?;
                if s.len() >= 32 {
                    return Ok(s);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::io::Error::other(format!(
                "{} is shorter than 32 bytes",
                path.display()
            )))
        }
        Err(e) => Err(e),
    }
}

/// The front secret file's content without its final newline: at least 32 characters,
/// printable ASCII (it is written into the web server's configuration). The message
/// says what is wrong with the file; the caller names the setting.
pub fn read_front_secret(path: &Path) -> Result<Vec<u8>, String> {
    let text = fs::read(path).map_err(|e| e.to_string())?;
    let secret = text.trim_ascii_end().to_vec();
    if secret.len() < 32 || !secret.iter().all(|b| b.is_ascii_graphic()) {
        return Err("must hold at least 32 printable characters (getacert init writes 64 hex digits)".into());
    }
    Ok(secret)
}

/// The CA private key file's bytes (PEM), read when the CA is loaded.
/// Creates `path` (never over an existing file) with `content` and `mode`, fsynced.
pub fn create_new(path: &Path, content: &[u8], mode: u32) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read_private_key(path: &Path) -> std::io::Result<Vec<u8>> {
    fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many threads syncing one directory at once all return, each after a sync that
    /// began after its call, and they share syncs rather than queue one each.
    #[test]
    fn group_sync_shares_and_never_deadlocks() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(GroupSync::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (sync, path) = (sync.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        sync.sync(&path).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = sync.state.lock().unwrap();
        assert!(!s.running);
        assert_eq!(s.done, s.next, "every started sync completed");
        assert!(s.next <= 320, "{} syncs for 320 calls", s.next);
    }

    /// The recheck inside `commit` decides: refused, the certificate file goes, index.txt
    /// is unchanged and the serial stays used (the next reservation is another one);
    /// accepted, the line is appended and the file stays.
    #[test]
    fn commit_refused_by_its_recheck_removes_the_orphan_and_keeps_the_serial_used() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::load(&crate::config::test_ca(dir.path())).unwrap();
        let store = Store::new(&config);
        let index_before = fs::read(&config.paths.database).unwrap();
        let line = |serial: &str| {
            Record::parse(&format!("V\t301231235959Z\t\t{serial}\tunknown\t/CN=alice")).unwrap()
        };

        let first = store.lock().unwrap().reserve().unwrap();
        let serial = first.serial().to_string();
        let written = store.write_cert(first, b"not checked here").unwrap();
        let file = config.paths.new_certs_dir.join(format!("{serial}.pem"));
        assert!(file.exists());
        let refused = store.commit(written, &line(&serial), |_| {
            Err::<(), StoreError>(StoreError::Crypto("taken".into()))
        });
        assert!(matches!(refused, Err(StoreError::Crypto(_))));
        assert!(!file.exists(), "the refused certificate's file is removed");
        assert_eq!(
            fs::read(&config.paths.database).unwrap(),
            index_before,
            "index.txt unchanged"
        );

        let second = store.lock().unwrap().reserve().unwrap();
        assert_ne!(
            second.serial(),
            serial,
            "a refused commit's serial is never handed out again"
        );
        let serial2 = second.serial().to_string();
        let written = store.write_cert(second, b"kept").unwrap();
        let (locked, pending) = store
            .commit(written, &line(&serial2), |_| Ok::<(), StoreError>(()))
            .unwrap();
        drop(locked);
        pending.sync().unwrap();
        assert!(config.paths.new_certs_dir.join(format!("{serial2}.pem")).exists());
        let index = fs::read_to_string(&config.paths.database).unwrap();
        assert!(index.contains(&format!("\t{serial2}\t")), "{index}");
    }
}
