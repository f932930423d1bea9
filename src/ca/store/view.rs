//! The in-memory view of index.txt: keyed hashes of names, subjects and revoked
//! serials, refreshed from the file's new tail (or reloaded when it was replaced or
//! getacert.released changed) each time the lock is taken, repairing a torn last line.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::durable::{fsync_dir, parent};
use super::{CaFile, Locked, Store, StoreError};
use crate::ca::index::{self, Line, Status};
use crate::enroll::username::AccountKey;

/// What the view remembers of index.txt.
#[derive(Default)]
pub(super) struct View {
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// Bytes of index.txt already read into the view.
    pub(super) len: u64,
    pub(super) records: usize,
    /// Hash of the CN's comparison key → latest notAfter of its `V` records, or
    /// `i64::MIN` when it has only revoked or expired ones. Every name with a record
    /// not released is here: it belongs to its account.
    pub(super) users: HashMap<u64, i64>,
    /// Hashes of released serials, and (len, mtime, inode) of the file they came from.
    pub(super) released: HashSet<u64>,
    pub(super) released_stamp: (u64, i64, u64),
    /// Hash of the whole subject → latest notAfter of its `V` records (unique_subject).
    pub(super) subjects: HashMap<u64, i64>,
    /// Hashes of revoked serials.
    pub(super) revoked: HashSet<u64>,
    pub(super) max_serial: Option<String>,
    /// Where each record's line starts in index.txt, in file order.
    pub(super) offsets: Vec<u64>,
    /// For each record, the previous record (index into `offsets`) with the same
    /// lower-cased CN, or `NO_RECORD`: with `last_of_user`, a per-user list that lets the
    /// account page read only that user's lines.
    pub(super) prev_of_user: Vec<u32>,
    /// Hash of the lower-cased escaped CN → its newest record, whatever its status.
    pub(super) last_of_user: HashMap<u64, u32>,
}

/// The end of a per-user list in the view.
pub(super) const NO_RECORD: u32 = u32::MAX;

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

impl View {
    /// Adds the record whose line starts at byte `offset` of index.txt.
    pub(super) fn add(&mut self, store: &Store, offset: u64, r: &Line<'_>) {
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
    pub(super) fn refresh(&mut self) -> Result<(), StoreError> {
        let store = self.store;
        let path = &store.paths.database;
        let meta = fs::metadata(path).map_err(|e| StoreError::io(path, "stat", e))?;
        let released_path = store.path_of(CaFile::Released);
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

    pub(super) fn view(&self) -> &View {
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

    /// True when the CN `cn` (as index.txt writes it) and `username` name one account:
    /// their [`AccountKey`]s are equal.
    pub fn same_name(&self, cn: &str, username: &str) -> bool {
        let unicode = self.store.unicode_names;
        AccountKey::of(&index::oneline_unescape(cn), unicode) == AccountKey::of(username, unicode)
    }

    /// Lists `serials` as released (appended to `getacert.released`, fsynced) and
    /// reloads the view: a name whose every serial is listed is free again.
    pub fn release(&mut self, name: &str, serials: &[String], now: i64) -> Result<(), StoreError> {
        let path = self.store.path_of(CaFile::Released);
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
}
