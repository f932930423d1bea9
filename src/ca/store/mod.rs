//! The CA directory: the only code that reads or changes its files.
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
//! Every path of the CA directory is derived here ([`Store::path`], [`CaFile`]), and
//! this module is the only one that opens, reads, writes, lists or stats a file of it.
//! "The CA directory" is every file ca.conf names for the CA and every file derived
//! from those: index.txt and its `.attr` and `.lock`, serial, newcerts/, the CA key and
//! certificate, crlnumber, the CRL, `getacert.{secret,codes,code-tries,released}`,
//! `front_secret_file` and its `.nginx`/`.apache` snippets, and ca.conf when copied.
//! The exceptions, each for a reason: `config` reads ca.conf and index.txt.attr to
//! learn those paths, and `admin::init` creates a new CA directory before any store
//! exists. Files that are not the CA's may be touched where they are used: the web
//! server's configuration (`webcheck`), /etc/passwd and /proc (`admin::check`), the
//! man pages (`docgen`), the FastCGI socket (`web::server`), the file `crl --out`
//! writes, test fixtures. A reviewer's check:
//! `grep -rn 'std::fs\|\bFile::\|OpenOptions' src | grep -v '^src/ca/store/'` lists only
//! those.
//!
//! The mechanisms live in `view` (the in-memory index), `serial` (durable reservation),
//! `durable` (the write-new/rename, newcerts and append writes), `files` (lock-free
//! facts for the admin commands: owner and mode, a file as it is now, newcerts/'s
//! entries) and `backup` (the consistent copy, under the lock).
//!
//! Signing takes no lock: [`Locked::reserve`] hands out a [`Reservation`] (a serial
//! made durable in the serial file), the caller signs with the lock released,
//! [`Store::write_cert`] writes newcerts/SERIAL.pem, and [`Store::commit`] takes the lock
//! again, rechecks what the first take decided and appends the index line, or removes
//! the certificate file (the serial stays used) when the recheck refuses.
//!
//! This module does not build or sign certificates: see `ca::sign`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod backup;
pub mod devices;
mod durable;
mod files;
mod serial;
pub mod status;
mod view;

use durable::GroupSync;
pub use durable::{Pending, create_new, load_or_create_secret, read_front_secret, read_private_key};
pub use files::{FileFacts, NewCert};

use super::index::{self, Record};
use crate::config::{CaPaths, Config};
use crate::enroll::username::AccountKey;
use durable::write_durably;
use view::{NO_RECORD, View, for_each_line};

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

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { err, .. } => Some(err),
            StoreError::BadIndexLine { err, .. } => Some(err),
            StoreError::LockTimeout(_)
            | StoreError::BadSerialFile { .. }
            | StoreError::SerialsExhausted(_)
            | StoreError::Crypto(_) => None,
        }
    }
}

pub struct Store {
    paths: CaPaths,
    /// ca.conf and `front_secret_file`: named by [`Store::path`] like the rest.
    conf: PathBuf,
    front_secret: Option<PathBuf>,
    /// `<database>.lock` ([`CaFile::Lock`]), derived once: every lock take opens it.
    lock_path: PathBuf,
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
    /// The cached `getacert.devices` (see `devices`); only touched under the lock.
    devices: Mutex<devices::Devices>,
    /// OCSP sightings not yet written: serial → last time asked.
    sightings: Mutex<std::collections::HashMap<String, i64>>,
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
            conf: config.file.clone(),
            front_secret: config.front_secret_file.clone(),
            lock_path: PathBuf::from(format!("{}.lock", config.paths.database.display())),
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
            devices: Mutex::new(devices::Devices::default()),
            sightings: Mutex::new(std::collections::HashMap::new()),
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

    /// Where `file` is: the one place the CA directory's paths are derived. `None` only
    /// for the files ca.conf may leave unset (the CRL, the front secret and its snippets).
    pub fn path(&self, file: CaFile) -> Option<PathBuf> {
        let p = &self.paths;
        let beside = |name: &str| durable::parent(&p.database).join(name);
        let front = |ext: &str| {
            self.front_secret
                .as_ref()
                .map(|f| PathBuf::from(format!("{}{ext}", f.display())))
        };
        Some(match file {
            CaFile::Conf => self.conf.clone(),
            CaFile::Database => p.database.clone(),
            CaFile::DatabaseAttr => PathBuf::from(format!("{}.attr", p.database.display())),
            CaFile::Directory => durable::parent(&p.database).to_path_buf(),
            CaFile::Serial => p.serial.clone(),
            CaFile::NewCerts => p.new_certs_dir.clone(),
            CaFile::Certificate => p.certificate.clone(),
            CaFile::PrivateKey => p.private_key.clone(),
            CaFile::Lock => self.lock_path.clone(),
            CaFile::Codes => beside("getacert.codes"),
            CaFile::CodeTries => beside("getacert.code-tries"),
            CaFile::Released => beside("getacert.released"),
            CaFile::Devices => beside("getacert.devices"),
            CaFile::TokenSecret => p
                .database
                .parent()
                .unwrap_or(Path::new(""))
                .join("getacert.secret"),
            CaFile::FrontSecret => return front(""),
            CaFile::FrontSecretNginx => return front(".nginx"),
            CaFile::FrontSecretApache => return front(".apache"),
            CaFile::CrlNumber => p.crlnumber.clone().unwrap_or_else(|| beside("crlnumber")),
            CaFile::Crl => return p.crl_file.clone(),
        })
    }

    /// [`Store::path`] of a file that is always somewhere (every one but the CRL).
    fn path_of(&self, file: CaFile) -> PathBuf {
        self.path(file)
            .unwrap_or_else(|| durable::parent(&self.paths.database).join("crl.pem"))
    }

    /// newcerts/SERIAL.pem.
    fn cert_file(&self, serial: &str) -> PathBuf {
        self.paths.new_certs_dir.join(format!("{serial}.pem"))
    }

    /// The view's key for a username: a keyed hash of its comparison key
    /// ([`crate::enroll::username::AccountKey`]); for ASCII-only sites, of the
    /// escaped, ASCII-lower-cased form, computed without allocating.
    fn user_key(&self, escaped_cn: &str) -> u64 {
        if self.unicode_names {
            let name = index::oneline_unescape(escaped_cn);
            return self.hasher.hash_one(AccountKey::of(&name, true));
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
        let lock_path = &self.lock_path;
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
        if self.sightings_pending() {
            locked.flush_sightings();
        }
        Ok(locked)
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

    /// Where `file` is ([`Store::path`]), for messages.
    pub fn path(&self, file: CaFile) -> Option<PathBuf> {
        self.store.path(file)
    }

    /// The content of `file`, or `None` when it does not exist (or, for the CRL, is not
    /// configured).
    pub fn read(&self, file: CaFile) -> Result<Option<String>, StoreError> {
        let Some(path) = self.store.path(file) else {
            return Ok(None);
        };
        match fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&path, "read", e)),
        }
    }

    /// Replaces `file` durably (write-new, fsync, rename, fsync directory). The CRL is
    /// written only where one is configured: without `crl_file` / `crl` this does nothing.
    pub fn replace(&self, file: CaFile, content: &[u8]) -> Result<(), StoreError> {
        match self.store.path(file) {
            Some(path) => write_durably(&path, content),
            None => Ok(()),
        }
    }

    /// The certificate on file for `serial` (newcerts/SERIAL.pem, PEM), `None` when
    /// there is none or it cannot be read: sign-in compares the presented one with it.
    pub fn cert_on_file(&self, serial: &str) -> Option<Vec<u8>> {
        fs::read(self.store.cert_file(serial)).ok()
    }
}

/// Every file of the CA directory, and the files ca.conf names beside it: the one list of
/// them ([`Store::path`] says where each is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaFile {
    /// ca.conf itself (read by `config`, copied by `backup`).
    Conf,
    /// The CA section's `database`: index.txt.
    Database,
    /// `<database>.attr`, where `openssl ca` keeps `unique_subject`.
    DatabaseAttr,
    /// The directory that holds the database (its owner is the CA's owner).
    Directory,
    /// The CA section's `serial`: the next serial, in hexadecimal.
    Serial,
    /// The CA section's `new_certs_dir`: one SERIAL.pem per issued certificate.
    NewCerts,
    /// The CA section's `certificate`.
    Certificate,
    /// The CA section's `private_key`.
    PrivateKey,
    /// `<database>.lock`: the lock every change takes.
    Lock,
    /// `getacert.codes` beside index.txt: live add-device and recovery codes (HMACs).
    Codes,
    /// `getacert.code-tries` beside index.txt: wrong code guesses per user and client.
    CodeTries,
    /// `getacert.released` beside index.txt: serials an admin released.
    Released,
    /// `getacert.devices` beside index.txt: device names, when added and last seen,
    /// renewals waiting for their new certificate to be used.
    Devices,
    /// `getacert.secret` beside index.txt: the HMAC key of tokens and codes.
    TokenSecret,
    /// `front_secret_file`, when set: the secret the web server sends with each request.
    FrontSecret,
    /// `<front_secret_file>.nginx`: the nginx snippet `init` wrote beside it.
    FrontSecretNginx,
    /// `<front_secret_file>.apache`: the Apache snippet `init` wrote beside it.
    FrontSecretApache,
    /// The CA section's `crlnumber`, else `crlnumber` beside index.txt.
    CrlNumber,
    /// The CRL file: `crl_file`, else the CA section's `crl`; may be unset.
    Crl,
}

/// A serial reserved for one certificate by [`Locked::reserve`], already durable in the
/// serial file: whatever happens next, it is never handed out again.
#[must_use = "a reserved serial is used up whether or not its certificate is committed"]
pub struct Reservation {
    serial: String,
}

impl Reservation {
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

/// A reserved serial whose certificate [`Store::write_cert`] wrote to newcerts/, not yet
/// in index.txt: [`Store::commit`] records it or removes the file.
#[must_use = "an uncommitted certificate file is an orphan"]
pub struct Written {
    serial: String,
    path: PathBuf,
}

impl Written {
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

impl Store {
    /// Takes the lock again after signing, runs `recheck` (did what the first lock take
    /// decided still hold?), and appends `record` to index.txt. When the lock cannot be
    /// taken, `recheck` refuses or the append fails, the certificate file is removed:
    /// the serial stays used, nothing else remains. Returns the held lock (for work that
    /// belongs to the same take, e.g. revoking the certificate a renewal replaces) and
    /// the [`Pending`] flush to wait for, after releasing the lock, before answering.
    pub fn commit<E: From<StoreError>>(
        &self,
        written: Written,
        record: &Record,
        recheck: impl FnOnce(&Locked<'_>) -> Result<(), E>,
    ) -> Result<(Locked<'_>, Pending), E> {
        let orphan = |e: E| {
            let _ = fs::remove_file(&written.path);
            e
        };
        let mut locked = self.lock().map_err(|e| orphan(e.into()))?;
        recheck(&locked).map_err(orphan)?;
        let pending = locked.record(record).map_err(|e| orphan(e.into()))?;
        Ok((locked, pending))
    }
}
