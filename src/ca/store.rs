//! The CA directory: the only code that changes index.txt, serial and newcerts/.
//!
//! Every change happens under an exclusive lock on a dedicated lock file
//! (`<database>.lock`, never index.txt itself: `openssl ca` replaces that by rename),
//! after an in-process mutex. Enrolling appends one line to index.txt (O(1) in its size)
//! and fsyncs it; the serial file is replaced by write-new + rename + directory fsync
//! *before* the serial is used, so a crash can waste a serial but never reuse one.
//!
//! An in-memory view of index.txt answers "is this username known" without reading the
//! file. A name is known from its first certificate on, whatever became of it (revoked,
//! expired), until an admin releases it (`getacert release`): the released serials are
//! listed in `getacert.released` beside index.txt, one `SERIAL<TAB>NAME<TAB>UNIX-TIME`
//! line each, appended under the same lock. `openssl ca` never reads that file, and an
//! admin may add lines by hand (under `flock index.txt.lock`); a released name whose
//! serials are all listed is free again.
//!
//! The view is refreshed each time the lock is taken: the tail appended by another
//! process is read, and the whole file is reloaded when it was replaced (an admin ran
//! `openssl ca -revoke`) or getacert.released changed. The view keeps 64-bit keyed
//! hashes of names, not the names, so a million records fit in a few tens of MiB.
//!
//! This module does not build or sign certificates: see `ca::sign`.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::index::{self, Line, Record, Status};
use crate::config::{CaPaths, Config};

#[derive(Debug)]
pub enum StoreError {
    /// Another process held the lock for longer than `lock_timeout`.
    LockTimeout(PathBuf),
    Io {
        path: PathBuf,
        action: &'static str,
        err: io::Error,
    },
    BadIndexLine {
        path: PathBuf,
        line: usize,
        err: index::LineError,
    },
    BadSerialFile {
        path: PathBuf,
        content: String,
    },
    /// No free serial found (every candidate already has a newcerts file).
    SerialsExhausted(PathBuf),
    /// The random-number generator or an HMAC failed: nothing was written.
    Crypto(String),
}

impl StoreError {
    fn io(path: &Path, action: &'static str, err: io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            action,
            err,
        }
    }

    /// Out of disk space or quota: worth retrying later (503), not a bug (500).
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreError::LockTimeout(_) => true,
            StoreError::Io { err, .. } => matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)),
            StoreError::BadIndexLine { .. }
            | StoreError::BadSerialFile { .. }
            | StoreError::SerialsExhausted(_)
            | StoreError::Crypto(_) => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::LockTimeout(p) => write!(f, "{}: still locked by another process", p.display()),
            StoreError::Io { path, action, err } => write!(f, "{}: cannot {action}: {err}", path.display()),
            StoreError::BadIndexLine { path, line, err } => write!(f, "{}:{line}: {err}", path.display()),
            StoreError::BadSerialFile { path, content } => {
                write!(f, "{}: {content:?} is not a hexadecimal serial", path.display())
            }
            StoreError::SerialsExhausted(p) => write!(f, "{}: no unused serial found", p.display()),
            StoreError::Crypto(what) => write!(f, "{what}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What the view remembers of index.txt.
#[derive(Default)]
struct View {
    dev: u64,
    ino: u64,
    /// Bytes of index.txt already read into the view.
    len: u64,
    records: usize,
    /// Hash of the CN's comparison key → latest notAfter of its `V` records, or
    /// `i64::MIN` when it has only revoked or expired ones. Every name with a record
    /// not released is here: it belongs to its account.
    users: HashMap<u64, i64>,
    /// Hashes of released serials, and (len, mtime, inode) of the file they came from.
    released: HashSet<u64>,
    released_stamp: (u64, i64, u64),
    /// Hash of the whole subject → latest notAfter of its `V` records (unique_subject).
    subjects: HashMap<u64, i64>,
    /// Hashes of revoked serials.
    revoked: HashSet<u64>,
    max_serial: Option<String>,
    /// Where each record's line starts in index.txt, in file order.
    offsets: Vec<u64>,
    /// For each record, the previous record (index into `offsets`) with the same
    /// lower-cased CN, or `NO_RECORD`: with `last_of_user`, a per-user list that lets the
    /// account page read only that user's lines.
    prev_of_user: Vec<u32>,
    /// Hash of the lower-cased escaped CN → its newest record, whatever its status.
    last_of_user: HashMap<u64, u32>,
}

/// The end of a per-user list in the view.
const NO_RECORD: u32 = u32::MAX;

pub struct Store {
    paths: CaPaths,
    rand_serial: bool,
    unique_subject: bool,
    /// `allow_non_ascii`: names are compared by their Unicode comparison key.
    unicode_names: bool,
    lock_timeout: Duration,
    hasher: RandomState,
    view: Mutex<Option<View>>,
    /// How many serials one reservation takes from the serial file (1 for a CGI
    /// process; more for the daemon, which hands them out from `reserved`).
    serial_block: usize,
    /// Serials already reserved in the serial file and not yet used. Only touched
    /// while the view mutex is held.
    reserved: Mutex<std::collections::VecDeque<String>>,
    /// The lock file, opened once. flock() belongs to the open file, so one descriptor
    /// serves every thread: the view mutex, always taken first, orders them.
    lock_file: Mutex<Option<File>>,
    /// index.txt open for appending, with the (device, inode) it was opened at; opened
    /// again when `openssl ca` replaced the file.
    append_file: Mutex<Option<(u64, u64, Arc<File>)>>,
    /// Shares one fsync of newcerts/ among enrollments that created their files at the
    /// same time.
    newcerts_sync: GroupSync,
}

/// Group commit for a directory fsync: a caller whose file already exists needs a sync
/// that *starts* after its call; callers that arrive while one runs share the next.
#[derive(Default)]
struct GroupSync {
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
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
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

/// Opens the lock file read-only (flock needs no more), creating it (0640) when missing:
/// a lock file made by root or by another user never has to be writable to be taken.
fn open_lock_file(path: &Path) -> io::Result<File> {
    match File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            File::open(path)
        }
        other => other,
    }
}

/// A held lock: the only way to read the view or change the database.
pub struct Locked<'a> {
    store: &'a Store,
    view: MutexGuard<'a, Option<View>>,
    lock: MutexGuard<'a, Option<File>>,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.lock.as_ref() {
            let _ = crate::ffi::flock::unlock(f);
        }
    }
}

impl Store {
    pub fn new(config: &Config) -> Store {
        Store {
            paths: config.paths.clone(),
            rand_serial: config.rand_serial,
            unique_subject: config.unique_subject,
            unicode_names: config.allow_non_ascii,
            lock_timeout: config.lock_timeout,
            hasher: RandomState::new(),
            view: Mutex::new(None),
            serial_block: 1,
            reserved: Mutex::new(std::collections::VecDeque::new()),
            lock_file: Mutex::new(None),
            append_file: Mutex::new(None),
            newcerts_sync: GroupSync::default(),
        }
    }

    /// Reserve `n` serials at a time (the daemon: one serial-file rewrite serves `n`
    /// enrollments). Unused ones are skipped after a restart: gaps, never reuse.
    pub fn set_serial_block(&mut self, n: usize) {
        self.serial_block = n.clamp(1, 1024);
    }

    pub fn paths(&self) -> &CaPaths {
        &self.paths
    }

    /// Where released serials are listed: `getacert.released` beside index.txt.
    pub fn released_path(&self) -> PathBuf {
        parent(&self.paths.database).join("getacert.released")
    }

    /// The view's key for a username: a keyed hash of its comparison key
    /// ([`crate::enroll::username::comparison_key`]); for ASCII-only sites, of the
    /// escaped, ASCII-lower-cased form, computed without allocating.
    fn user_key(&self, escaped_cn: &str) -> u64 {
        if self.unicode_names {
            let name = index::oneline_unescape(escaped_cn);
            return self
                .hasher
                .hash_one(crate::enroll::username::comparison_key(&name, true));
        }
        let mut h = self.hasher.build_hasher();
        for b in escaped_cn.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.finish()
    }

    /// Takes the in-process mutex and the file lock (waiting up to `lock_timeout`), then
    /// brings the view up to date with index.txt, repairing a torn last line.
    pub fn lock(&self) -> Result<Locked<'_>, StoreError> {
        let view = self.view.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut lock = self
            .lock_file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock_path = &self.paths.lock_file;
        if lock.is_none() {
            let file =
                open_lock_file(lock_path).map_err(|e| StoreError::io(lock_path, "open the lock file", e))?;
            *lock = Some(file);
        }
        let Some(file) = lock.as_ref() else {
            return Err(StoreError::io(
                lock_path,
                "open the lock file",
                io::ErrorKind::NotFound.into(),
            ));
        };
        let deadline = Instant::now() + self.lock_timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            match crate::ffi::flock::try_lock_exclusive(file) {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(false) => return Err(StoreError::LockTimeout(lock_path.clone())),
                Err(e) => return Err(StoreError::io(lock_path, "lock", e)),
            }
        }
        let mut locked = Locked {
            store: self,
            view,
            lock,
        };
        locked.refresh()?;
        Ok(locked)
    }

    /// Writes newcerts/SERIAL.pem (never over an existing file) and fsyncs it and its
    /// directory. Needs no lock: the serial was reserved for this certificate alone, so
    /// enrollments write their files in parallel and only the index append is
    /// serialized. A file whose index line never follows (a crash, or the username
    /// taken meanwhile) is an orphan whose serial is never reused.
    pub fn write_cert(&self, serial: &str, pem: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.paths.new_certs_dir.join(format!("{serial}.pem"));
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
        Ok(path)
    }

    /// Every record of index.txt, in file order (for `list`, `check`, revocation).
    pub fn read_records(path: &Path) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        for_each_line(path, 0, |n, _, line| {
            out.push(Record::parse(line).map_err(|err| StoreError::BadIndexLine {
                path: path.to_path_buf(),
                line: n,
                err,
            })?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Calls `f` with each complete line of `path` from byte `offset`, numbered from 1 at
/// `offset`. Returns the offset after the last complete line and whether bytes without
/// a final newline follow it.
pub(super) fn for_each_line(
    path: &Path,
    offset: u64,
    mut f: impl FnMut(usize, u64, &str) -> Result<(), StoreError>,
) -> Result<(u64, Option<Vec<u8>>), StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, "open", e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| StoreError::io(path, "seek", e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::with_capacity(256);
    let mut pos = offset;
    let mut n = 0;
    loop {
        buf.clear();
        let got = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| StoreError::io(path, "read", e))?;
        if got == 0 {
            return Ok((pos, None));
        }
        if buf.last() != Some(&b'\n') {
            return Ok((pos, Some(buf)));
        }
        n += 1;
        let start = pos;
        pos += got as u64;
        let bytes = &buf[..buf.len() - 1];
        let line = match std::str::from_utf8(bytes) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if line.is_empty() {
            continue;
        }
        f(n, start, line)?;
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    let d = File::open(dir).map_err(|e| StoreError::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| StoreError::io(dir, "fsync directory", e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

impl View {
    /// Adds the record whose line starts at byte `offset` of index.txt.
    fn add(&mut self, store: &Store, offset: u64, r: &Line<'_>) {
        self.records += 1;
        if let (Some(cn), Ok(idx)) = (r.common_name(), u32::try_from(self.offsets.len())) {
            let prev = self.last_of_user.insert(store.user_key(cn), idx);
            self.prev_of_user.push(prev.unwrap_or(NO_RECORD));
        } else {
            self.prev_of_user.push(NO_RECORD);
        }
        self.offsets.push(offset);
        let released = !self.released.is_empty()
            && index::normalize_serial(r.serial)
                .is_some_and(|s| self.released.contains(&store.hasher.hash_one(&s)));
        if !released && let Some(cn) = r.common_name() {
            let exp = if r.status == Status::Valid {
                r.expires_unix
            } else {
                i64::MIN
            };
            let e = self.users.entry(store.user_key(cn)).or_insert(exp);
            *e = (*e).max(exp);
        }
        match r.status {
            Status::Valid => {
                let exp = r.expires_unix;
                if store.unique_subject {
                    let e = self
                        .subjects
                        .entry(store.hasher.hash_one(r.subject))
                        .or_insert(exp);
                    *e = (*e).max(exp);
                }
            }
            Status::Revoked => {
                if let Some(s) = index::normalize_serial(r.serial) {
                    self.revoked.insert(store.hasher.hash_one(&s));
                }
            }
            Status::Expired => {}
        }
        if self
            .max_serial
            .as_deref()
            .is_none_or(|m| index::serial_cmp(r.serial, m).is_gt())
        {
            self.max_serial = index::normalize_serial(r.serial);
        }
    }
}

impl Locked<'_> {
    fn refresh(&mut self) -> Result<(), StoreError> {
        let store = self.store;
        let path = &store.paths.database;
        let meta = fs::metadata(path).map_err(|e| StoreError::io(path, "stat", e))?;
        let released_path = store.released_path();
        let released_stamp = match fs::metadata(&released_path) {
            Ok(m) => (m.len(), m.mtime_nsec() ^ (m.mtime() << 30), m.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (0, 0, 0),
            Err(e) => return Err(StoreError::io(&released_path, "stat", e)),
        };
        let fresh = match self.view.as_ref() {
            Some(v) => {
                v.ino != meta.ino()
                    || v.dev != meta.dev()
                    || meta.len() < v.len
                    || v.released_stamp != released_stamp
            }
            None => true,
        };
        if fresh {
            // Room for every record up front (openssl ca lines are 60 bytes or more), so
            // the table is not doubled, and held twice, while a large file loads.
            let expected = usize::try_from(meta.len() / 64).unwrap_or(0);
            let mut view = View {
                dev: meta.dev(),
                ino: meta.ino(),
                released_stamp,
                ..View::default()
            };
            if released_stamp != (0, 0, 0) {
                for_each_line(&released_path, 0, |_, _, line| {
                    if let Some(s) = line.split('\t').next().and_then(index::normalize_serial) {
                        view.released.insert(store.hasher.hash_one(&s));
                    }
                    Ok(())
                })?;
            }
            view.users.reserve(expected);
            view.offsets.reserve(expected);
            view.prev_of_user.reserve(expected);
            if store.unique_subject {
                view.subjects.reserve(expected);
            }
            *self.view = Some(view);
        }
        let Some(view) = self.view.as_mut() else {
            return Ok(());
        };
        if !fresh && meta.len() == view.len {
            return Ok(());
        }
        let (end, torn) = for_each_line(path, view.len, |n, start, line| {
            let r = Line::parse(line).map_err(|err| StoreError::BadIndexLine {
                path: path.clone(),
                line: n,
                err,
            })?;
            view.add(store, start, &r);
            Ok(())
        })?;
        view.len = end;
        if let Some(tail) = torn {
            // A last line without its newline: a crash mid-append (never answered 200),
            // or a hand edit. Keep it if it is a whole record, else cut it off.
            let text = String::from_utf8_lossy(&tail).into_owned();
            let mut f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| StoreError::io(path, "open", e))?;
            match Line::parse(text.trim_end_matches('\r')) {
                Ok(r) => {
                    f.seek(SeekFrom::End(0))
                        .map_err(|e| StoreError::io(path, "seek", e))?;
                    f.write_all(b"\n")
                        .map_err(|e| StoreError::io(path, "repair", e))?;
                    view.add(store, end, &r);
                    view.len = end + tail.len() as u64 + 1;
                    log::warn!(
                        "{}: added the missing newline after the last record",
                        path.display()
                    );
                }
                Err(_) => {
                    f.set_len(end)
                        .map_err(|e| StoreError::io(path, "truncate a torn line", e))?;
                    log::warn!(
                        "{}: removed a torn last line {text:?} (an interrupted write)",
                        path.display()
                    );
                }
            }
            f.sync_data().map_err(|e| StoreError::io(path, "fsync", e))?;
        }
        Ok(())
    }

    fn view(&self) -> &View {
        // The view is always set by refresh() in Store::lock before a Locked exists.
        static EMPTY: std::sync::OnceLock<View> = std::sync::OnceLock::new();
        self.view
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(View::default))
    }

    /// True when `username` was ever issued and not released since: it belongs to its
    /// account, whether its certificates are valid, revoked or expired. Compared by the
    /// comparison key, so `Alice` cannot be issued next to `alice`.
    pub fn username_known(&self, username: &str) -> bool {
        let key = self.store.user_key(&index::oneline_escape(username));
        self.view().users.contains_key(&key)
    }

    /// True when the CN `cn` (as index.txt writes it) and `username` name one account.
    pub fn same_name(&self, cn: &str, username: &str) -> bool {
        self.store.user_key(cn) == self.store.user_key(&index::oneline_escape(username))
    }

    /// Lists `serials` as released (appended to `getacert.released`, fsynced) and
    /// reloads the view: a name whose every serial is listed is free again.
    pub fn release(&mut self, name: &str, serials: &[String], now: i64) -> Result<(), StoreError> {
        let path = self.store.released_path();
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open", e))?;
        let text: String = serials
            .iter()
            .map(|s| format!("{s}\t{}\t{now}\n", index::oneline_escape(name)))
            .collect();
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| StoreError::io(&path, "append to", e))?;
        fsync_dir(parent(&path))?;
        *self.view = None;
        self.refresh()
    }

    /// With `unique_subject = yes`: true when this exact subject has a valid certificate.
    pub fn subject_taken(&self, subject: &str, now: i64) -> bool {
        self.store.unique_subject
            && self
                .view()
                .subjects
                .get(&self.store.hasher.hash_one(subject))
                .is_some_and(|&exp| exp > now)
    }

    pub fn is_revoked(&self, serial: &str) -> bool {
        index::normalize_serial(serial)
            .is_some_and(|s| self.view().revoked.contains(&self.store.hasher.hash_one(&s)))
    }

    /// Reserves the next serial and makes the reservation durable before returning it:
    /// the serial file is rewritten (write-new, fsync, rename, fsync directory), the
    /// number is never behind the highest serial in index.txt, and a serial that already
    /// has a newcerts file (an orphan from an interrupted enrollment) is skipped.
    pub fn allocate_serial(&mut self) -> Result<String, StoreError> {
        let paths = &self.store.paths;
        if self.store.rand_serial {
            for _ in 0..16 {
                let s = random_serial()
                    .map_err(|e| StoreError::io(&paths.new_certs_dir, "draw a random serial", e))?;
                if !self.cert_path(&s).exists() {
                    return Ok(s);
                }
            }
            return Err(StoreError::SerialsExhausted(paths.new_certs_dir.clone()));
        }
        {
            let mut reserved = self.store.reserved.lock().unwrap_or_else(|p| p.into_inner());
            while let Some(s) = reserved.pop_front() {
                if !self.cert_path(&s).exists() {
                    return Ok(s);
                }
            }
        }
        let text = fs::read_to_string(&paths.serial).map_err(|e| StoreError::io(&paths.serial, "read", e))?;
        let mut serial = index::normalize_serial(&text).ok_or_else(|| StoreError::BadSerialFile {
            path: paths.serial.clone(),
            content: text.trim().chars().take(64).collect(),
        })?;
        if let Some(max) = &self.view().max_serial
            && index::serial_cmp(&serial, max).is_le()
        {
            log::warn!(
                "{}: {serial} is not above the highest serial in index.txt ({max}); moving on",
                paths.serial.display()
            );
            serial = index::serial_next(max);
        }
        let mut tries = 0;
        while self.cert_path(&serial).exists() {
            log::warn!(
                "{}: skipping serial {serial}, which already has a certificate file",
                paths.serial.display()
            );
            serial = index::serial_next(&serial);
            tries += 1;
            if tries > 10_000 {
                return Err(StoreError::SerialsExhausted(paths.new_certs_dir.clone()));
            }
        }
        let mut block = Vec::with_capacity(self.store.serial_block);
        let mut next = serial.clone();
        for _ in 0..self.store.serial_block {
            block.push(next.clone());
            next = index::serial_next(&next);
        }
        write_durably(&paths.serial, format!("{next}\n").as_bytes())?;
        let mut reserved = self.store.reserved.lock().unwrap_or_else(|p| p.into_inner());
        reserved.extend(block.into_iter().skip(1));
        Ok(serial)
    }

    pub fn cert_path(&self, serial: &str) -> PathBuf {
        self.store.paths.new_certs_dir.join(format!("{serial}.pem"))
    }

    /// Records an issued certificate whose newcerts file [`Store::write_cert`] already
    /// wrote: the index line is appended and fsynced. Only after this returns may the
    /// certificate be answered.
    pub fn record(&mut self, record: &Record) -> Result<Pending, StoreError> {
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

/// 127 random bits (positive, never zero, as RFC 5280 wants). A random-number failure is
/// an error: never a predictable serial.
fn random_serial() -> io::Result<String> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).map_err(io::Error::other)?;
    b[0] &= 0x7f;
    b[0] |= 0x01;
    Ok(b.iter().map(|x| format!("{x:02X}")).collect())
}

impl Locked<'_> {
    /// Every record, read from index.txt now (the view keeps only hashes).
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        Store::read_records(&self.store.paths.database)
    }

    /// Every record whose CN is `username` (compared without regard to ASCII case), newest
    /// first. Reads only those lines, found through the view's per-user list: the cost is
    /// the user's devices, not the size of index.txt.
    pub fn user_records(&self, username: &str) -> Result<Vec<Record>, StoreError> {
        use std::os::unix::fs::FileExt;
        let want = index::oneline_escape(username);
        let view = self.view();
        let path = &self.store.paths.database;
        let mut idx = view
            .last_of_user
            .get(&self.store.user_key(&want))
            .copied()
            .unwrap_or(NO_RECORD);
        let mut mine = Vec::new();
        if idx == NO_RECORD {
            return Ok(mine);
        }
        let file = File::open(path).map_err(|e| StoreError::io(path, "open", e))?;
        let mut buf = vec![0u8; 4096];
        while let (Some(&offset), Some(&prev)) = (
            view.offsets.get(idx as usize),
            view.prev_of_user.get(idx as usize),
        ) {
            let line = loop {
                let n = file
                    .read_at(&mut buf, offset)
                    .map_err(|e| StoreError::io(path, "read", e))?;
                let bytes = buf.get(..n).unwrap_or_default();
                match bytes.iter().position(|&b| b == b'\n') {
                    Some(end) => break bytes.get(..end).unwrap_or_default(),
                    // A line longer than the buffer (records are far shorter): read more.
                    None if n == buf.len() && buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
                    None => break bytes,
                }
            };
            let line = String::from_utf8_lossy(line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            // Another name with the same hash shares the list; it is skipped here.
            if let Ok(r) = Record::parse(line)
                && r.common_name().is_some_and(|cn| self.same_name(cn, username))
            {
                mine.push(r);
            }
            idx = prev;
        }
        Ok(mine)
    }

    /// Rewrites index.txt with `change` applied to every record, as `openssl ca -revoke`
    /// and `-updatedb` do (write-new, fsync, rename, fsync directory), then reloads the
    /// view. Returns the records `change` reported as changed. Nothing is written when
    /// none changed.
    pub fn rewrite(
        &mut self,
        mut change: impl FnMut(&mut Record) -> bool,
    ) -> Result<Vec<Record>, StoreError> {
        let mut records = self.records()?;
        let mut changed = Vec::new();
        for r in &mut records {
            if change(r) {
                changed.push(r.clone());
            }
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        let text: String = records.iter().map(Record::to_line).collect();
        write_durably(&self.store.paths.database, text.as_bytes())?;
        *self.view = None;
        self.refresh()?;
        Ok(changed)
    }

    /// Replaces a small file in the CA directory durably (crlnumber, the CRL, codes).
    pub fn replace_file(&self, path: &Path, content: &[u8]) -> Result<(), StoreError> {
        write_durably(path, content)
    }
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
}
