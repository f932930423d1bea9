//! The status of every serial in index.txt, kept in memory for the OCSP responder and
//! read without the database lock.
//!
//! Each lookup costs one `stat` of index.txt: while its device, inode, length and
//! modification time are unchanged the map answers; bytes appended since are read
//! (complete lines only: a line being appended right now is read next time); a file
//! replaced by rename (`openssl ca -revoke`, `getacert revoke`, the account page) or
//! shortened is read again whole. Every writer of index.txt either appends whole lines
//! or renames a complete new file into place, so a reader without the lock never sees
//! a half-written record as one.
//!
//! This module only reads index.txt; it never repairs it (that is `ca::store`'s job,
//! under the lock) and decides nothing about OCSP (see `ca::ocsp`).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::StoreError;
use crate::ca::crl;
use crate::ca::index::{self, Record, Status};
use crate::ca::store;

/// What index.txt says about one serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Valid,
    /// Revoked at this time (seconds since the epoch), with an RFC 5280 reason code if
    /// one was recorded (`unspecified` counts as none).
    Revoked {
        at: i64,
        reason: Option<i32>,
    },
    Expired,
}

impl Entry {
    fn of(r: &Record) -> Entry {
        match r.status {
            Status::Valid => Entry::Valid,
            Status::Expired => Entry::Expired,
            Status::Revoked => {
                let (time, reason) = match r.revoked.split_once(',') {
                    Some((t, reason)) => (t, crl::reason_code(reason)),
                    None => (r.revoked.as_str(), None),
                };
                Entry::Revoked {
                    // A revocation whose time cannot be read still revokes: at the epoch.
                    at: index::parse_asn1_time(time).unwrap_or(0),
                    reason: reason.filter(|&c| c != 0),
                }
            }
        }
    }
}

#[derive(Default)]
struct State {
    loaded: bool,
    dev: u64,
    ino: u64,
    /// Bytes read into `entries` (up to the last complete line).
    len: u64,
    mtime: (i64, i64),
    entries: HashMap<Box<str>, Entry>,
}

/// The in-memory status of every serial in one index.txt.
pub struct StatusView {
    path: PathBuf,
    state: RwLock<State>,
}

fn io_err(path: &Path, action: &'static str, err: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        action,
        err,
    }
}

impl StatusView {
    pub fn new(database: &Path) -> StatusView {
        StatusView {
            path: database.to_path_buf(),
            state: RwLock::new(State::default()),
        }
    }

    /// The status of each serial (normalized upper-case hex, as
    /// [`index::normalize_serial`] writes it); `None` for a serial not in index.txt.
    pub fn lookup(&self, serials: &[String]) -> Result<Vec<Option<Entry>>, StoreError> {
        let meta = fs::metadata(&self.path).map_err(|e| io_err(&self.path, "stat", e))?;
        let stamp = (
            meta.dev(),
            meta.ino(),
            meta.len(),
            (meta.mtime(), meta.mtime_nsec()),
        );
        let answer = |st: &State| {
            serials
                .iter()
                .map(|s| st.entries.get(s.as_str()).copied())
                .collect()
        };
        {
            let st = self.state.read().unwrap_or_else(|p| p.into_inner());
            if st.loaded && (st.dev, st.ino, st.len, st.mtime) == stamp {
                return Ok(answer(&st));
            }
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut st, &meta)?;
        Ok(answer(&st))
    }

    fn refresh(&self, st: &mut State, meta: &fs::Metadata) -> Result<(), StoreError> {
        let mtime = (meta.mtime(), meta.mtime_nsec());
        let same_file = st.loaded && st.dev == meta.dev() && st.ino == meta.ino();
        let appended = same_file && meta.len() > st.len;
        if same_file && meta.len() == st.len && st.mtime == mtime {
            return Ok(()); // another thread refreshed it first
        }
        if !appended {
            *st = State::default();
        }
        let path = &self.path;
        let entries = &mut st.entries;
        let (end, _torn) = store::for_each_line(path, st.len, |n, _, line| {
            let r = Record::parse(line).map_err(|err| StoreError::BadIndexLine {
                path: path.clone(),
                line: n,
                err,
            })?;
            let Some(serial) = index::normalize_serial(&r.serial) else {
                return Ok(());
            };
            let new = Entry::of(&r);
            entries
                .entry(serial.into_boxed_str())
                .and_modify(|old| {
                    // A serial listed twice (a hand edit): a revocation wins.
                    if !matches!(old, Entry::Revoked { .. }) {
                        *old = new;
                    }
                })
                .or_insert(new);
            Ok(())
        })?;
        st.loaded = true;
        st.dev = meta.dev();
        st.ino = meta.ino();
        st.len = end;
        // A torn tail leaves `len` short of the file's length, so it is read again.
        st.mtime = mtime;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "V\t300101000000Z\t\t1000\tunknown\t/CN=alice\n";
    const R: &str = "R\t300101000000Z\t240102030405Z,keyCompromise\t1001\tunknown\t/CN=bob\n";
    const U: &str = "R\t300101000000Z\t240102030405Z,unspecified\t1002\tunknown\t/CN=carol\n";

    fn serials(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn appended_and_replaced_files_are_seen_without_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("index.txt");
        fs::write(&db, V).unwrap();
        let view = StatusView::new(&db);
        assert_eq!(
            view.lookup(&serials(&["1000", "1001"])).unwrap(),
            vec![Some(Entry::Valid), None]
        );
        // Appended, with a torn line after it: the torn line is not read yet.
        fs::write(&db, format!("{V}{R}V\t3001")).unwrap();
        let got = view.lookup(&serials(&["1001"])).unwrap();
        let at = index::parse_asn1_time("240102030405Z").unwrap();
        assert_eq!(got, vec![Some(Entry::Revoked { at, reason: Some(1) })]);
        // Replaced by rename, as openssl ca -revoke does.
        let new = dir.path().join("index.txt.new");
        fs::write(
            &new,
            format!(
                "{}{U}",
                V.replacen("V\t300101000000Z\t", "R\t300101000000Z\t240102030405Z", 1)
            ),
        )
        .unwrap();
        fs::rename(&new, &db).unwrap();
        assert_eq!(
            view.lookup(&serials(&["1000", "1001", "1002"])).unwrap(),
            vec![
                Some(Entry::Revoked { at, reason: None }),
                None,
                Some(Entry::Revoked { at, reason: None })
            ]
        );
    }

    #[test]
    fn a_missing_database_is_an_error_not_an_empty_answer() {
        let dir = tempfile::tempdir().unwrap();
        let view = StatusView::new(&dir.path().join("index.txt"));
        assert!(view.lookup(&serials(&["1000"])).is_err());
    }
}
