//! `getacert.devices` beside index.txt: what getacert knows of each certificate as a
//! device, which `openssl ca` never reads. One tab-separated line per fact, appended
//! under the database lock:
//!
//! ```text
//! SERIAL  added     UNIX-TIME  NAME       the certificate was issued to a device so named
//! SERIAL  name      UNIX-TIME  NAME       its owner renamed it
//! SERIAL  seen      UNIX-TIME             a signed-in request presented it
//! SERIAL  ocsp      UNIX-TIME             the web server asked for its OCSP status
//! SERIAL  replaces  UNIX-TIME  OLD        a renewal: OLD is superseded once SERIAL is seen
//! SERIAL  replaced  UNIX-TIME             that replacement is done (OLD revoked or gone)
//! ```
//!
//! Names and renewals are made durable before the request is answered; sightings are
//! coalesced (at most one line per certificate and kind every [`SEEN_EVERY`] seconds)
//! and never fsynced: losing one loses a "last seen" time, nothing else. A line that
//! does not parse (a torn append, a hand edit) is skipped. A missing or unreadable file
//! is an empty one: sign-in and enrollment never depend on it; the account page then
//! shows serials. The file is compacted (one line per fact still true) when it holds
//! many more lines than certificates.
//!
//! The contents are cached per [`super::Store`] and re-read from the tail appended
//! since (the whole file when it was replaced) when the lock is taken and they are
//! needed. OCSP sightings arrive without the lock ([`super::Store::ocsp_sighted`]): kept
//! in a bounded map in memory and written when the lock is next held.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use super::durable::write_durably;
use super::view::for_each_line;
use super::{CaFile, Locked, Store, StoreError};
use crate::ca::index;

/// A sighting is written at most once per certificate and kind in this many seconds.
pub const SEEN_EVERY: i64 = 300;

/// OCSP sightings kept in memory between two takes of the lock, at most.
const PENDING_MAX: usize = 10_000;

/// What the devices file says about one certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's name: from the User-Agent at enrollment, or its owner's.
    pub name: Option<String>,
    /// When it was issued (Unix seconds).
    pub added: Option<i64>,
    /// The last signed-in request that presented it (to within [`SEEN_EVERY`]).
    pub seen: Option<i64>,
    /// The last OCSP lookup for it (to within [`SEEN_EVERY`]).
    pub ocsp: Option<i64>,
    /// A renewal not yet completed: this serial supersedes `replaces` once it is seen.
    pub replaces: Option<String>,
}

/// The cached contents of the file and where they were read up to.
#[derive(Default)]
pub(super) struct Devices {
    loaded: bool,
    dev: u64,
    ino: u64,
    /// Bytes read (up to the last complete line).
    len: u64,
    /// The file does not end with a newline: the next append starts a new line first.
    torn: bool,
    lines: usize,
    map: HashMap<String, DeviceInfo>,
}

/// One fact, as a line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact<'a> {
    Added(&'a str),
    Name(&'a str),
    Seen,
    Ocsp,
    Replaces(&'a str),
    Replaced,
}

/// The fact a line states, or `None` for a line that does not parse (skipped).
fn parse_line(line: &str) -> Option<(String, i64, Fact<'_>)> {
    let mut f = line.splitn(4, '\t');
    let serial = index::normalize_serial(f.next()?)?;
    let kind = f.next()?;
    let t: i64 = f.next()?.parse().ok()?;
    let rest = f.next();
    let fact = match (kind, rest) {
        ("added", Some(n)) => Fact::Added(n),
        ("name", Some(n)) => Fact::Name(n),
        ("seen", None) => Fact::Seen,
        ("ocsp", None) => Fact::Ocsp,
        ("replaces", Some(old)) => Fact::Replaces(old),
        ("replaced", None) => Fact::Replaced,
        _ => return None,
    };
    if let Fact::Added(n) | Fact::Name(n) = fact
        && check_name(n).is_err()
    {
        return None;
    }
    Some((serial, t, fact))
}

fn line_of(serial: &str, t: i64, fact: &Fact<'_>) -> String {
    match fact {
        Fact::Added(n) => format!("{serial}\tadded\t{t}\t{n}\n"),
        Fact::Name(n) => format!("{serial}\tname\t{t}\t{n}\n"),
        Fact::Seen => format!("{serial}\tseen\t{t}\n"),
        Fact::Ocsp => format!("{serial}\tocsp\t{t}\n"),
        Fact::Replaces(old) => format!("{serial}\treplaces\t{t}\t{old}\n"),
        Fact::Replaced => format!("{serial}\treplaced\t{t}\n"),
    }
}

impl Devices {
    fn apply(&mut self, serial: String, t: i64, fact: &Fact<'_>) {
        let d = self.map.entry(serial).or_default();
        let later = |v: &mut Option<i64>| *v = Some(v.map_or(t, |v| v.max(t)));
        match fact {
            Fact::Added(n) => {
                d.added = Some(t);
                d.name = Some((*n).to_string());
            }
            Fact::Name(n) => d.name = Some((*n).to_string()),
            Fact::Seen => later(&mut d.seen),
            Fact::Ocsp => later(&mut d.ocsp),
            Fact::Replaces(old) => d.replaces = index::normalize_serial(old),
            Fact::Replaced => d.replaces = None,
        }
    }

    /// The file, one line per fact still true (what compaction writes).
    fn compacted(&self) -> String {
        let mut serials: Vec<&String> = self.map.keys().collect();
        serials.sort();
        let mut out = String::new();
        for s in serials {
            let d = &self.map[s];
            match (&d.name, d.added) {
                (Some(n), Some(t)) => out.push_str(&line_of(s, t, &Fact::Added(n))),
                (Some(n), None) => out.push_str(&line_of(s, 0, &Fact::Name(n))),
                _ => {}
            }
            if let Some(t) = d.seen {
                out.push_str(&line_of(s, t, &Fact::Seen));
            }
            if let Some(t) = d.ocsp {
                out.push_str(&line_of(s, t, &Fact::Ocsp));
            }
            if let Some(old) = &d.replaces {
                out.push_str(&line_of(s, d.added.unwrap_or(0), &Fact::Replaces(old)));
            }
        }
        out
    }
}

/// Why a device name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// A control character, or an invisible one that reorders or hides text.
    Character,
}

/// The most characters a device name may have.
pub const NAME_MAX: usize = 60;

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "The device name is empty: type a name for the device."),
            NameError::TooLong => write!(
                f,
                "The device name is too long: use at most {NAME_MAX} characters."
            ),
            NameError::Character => write!(
                f,
                "The device name contains a control or invisible character: use letters, digits, spaces and punctuation."
            ),
        }
    }
}

/// A device name as typed, or why it is refused: 1 to [`NAME_MAX`] characters, no
/// control characters, no invisible ones that reorder or hide text (bidirectional
/// overrides, zero-width characters). Spaces at either end are dropped.
pub fn check_name(name: &str) -> Result<&str, NameError> {
    let name = name.trim();
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{061C}' | '\u{00AD}');
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.chars().count() > NAME_MAX {
        Err(NameError::TooLong)
    } else if name.chars().any(|c| c.is_control() || invisible(c)) {
        Err(NameError::Character)
    } else {
        Ok(name)
    }
}

impl Store {
    /// An OCSP lookup asked for the valid certificate `serial` at `t`: kept in memory,
    /// written by [`Locked::flush_sightings`] when the lock is next held. No lock, no
    /// I/O; at most [`PENDING_MAX`] serials are kept (more are dropped until a flush).
    pub fn ocsp_sighted(&self, serial: &str, t: i64) {
        let mut pending = self.sightings.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = pending.get_mut(serial) {
            *v = (*v).max(t);
        } else if pending.len() < PENDING_MAX {
            pending.insert(serial.to_string(), t);
        }
    }

    /// True when OCSP sightings wait to be written.
    pub fn sightings_pending(&self) -> bool {
        !self
            .sightings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

impl Locked<'_> {
    /// Brings the cached devices file up to date. A missing file is an empty one.
    fn load_devices(&self) -> Result<std::sync::MutexGuard<'_, Devices>, StoreError> {
        let store = self.store;
        let mut d = store.devices.lock().unwrap_or_else(|p| p.into_inner());
        let path = store.path_of(CaFile::Devices);
        let meta = match fs::metadata(&path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io(&path, "stat", e)),
        };
        let Some(meta) = meta else {
            *d = Devices {
                loaded: true,
                ..Devices::default()
            };
            return Ok(d);
        };
        if !d.loaded || d.dev != meta.dev() || d.ino != meta.ino() || meta.len() < d.len {
            *d = Devices {
                loaded: true,
                dev: meta.dev(),
                ino: meta.ino(),
                ..Devices::default()
            };
        }
        if meta.len() == d.len && !d.torn {
            return Ok(d);
        }
        let from = d.len;
        let mut facts = Vec::new();
        let (end, torn) = for_each_line(&path, from, |_, _, line| {
            if let Some((s, t, fact)) = parse_line(line) {
                facts.push(line_of(&s, t, &fact));
            }
            Ok(())
        })?;
        for l in &facts {
            if let Some((s, t, fact)) = parse_line(l.trim_end_matches('\n')) {
                d.apply(s, t, &fact);
            }
        }
        d.lines += facts.len();
        d.len = end;
        d.torn = torn.is_some();
        Ok(d)
    }

    /// What the devices file says of each of `serials` (normalized), missing ones
    /// left out. A file that cannot be read is logged and counts as empty.
    pub fn device_info(&self, serials: &[String]) -> HashMap<String, DeviceInfo> {
        match self.load_devices() {
            Ok(d) => serials
                .iter()
                .filter_map(|s| {
                    let key = index::normalize_serial(s)?;
                    d.map.get(&key).map(|i| (s.clone(), i.clone()))
                })
                .collect(),
            Err(e) => {
                log::error!("{e} (device names and times are not shown)");
                HashMap::new()
            }
        }
    }

    /// Appends `facts` for `serial`; fsynced when `durable`.
    fn append(&self, serial: &str, t: i64, facts: &[Fact<'_>], durable: bool) -> Result<(), StoreError> {
        let lines: Vec<(&str, i64, &Fact<'_>)> = facts.iter().map(|f| (serial, t, f)).collect();
        self.append_all(&lines, durable)
    }

    /// Appends `facts` in one write; fsynced when `durable`. Compacts the file first
    /// when it holds more than eight lines per certificate (and 1024 or more).
    fn append_all(&self, facts: &[(&str, i64, &Fact<'_>)], durable: bool) -> Result<(), StoreError> {
        let path = self.store.path_of(CaFile::Devices);
        let mut d = self.load_devices()?;
        if d.lines >= 1024 && d.lines > 8 * d.map.len().max(1) {
            let text = d.compacted();
            write_durably(&path, text.as_bytes())?;
            let lines = text.lines().count();
            let meta = fs::metadata(&path).map_err(|e| StoreError::io(&path, "stat", e))?;
            (d.dev, d.ino, d.len, d.torn, d.lines) = (meta.dev(), meta.ino(), meta.len(), false, lines);
        }
        let mut text: String = if d.torn { "\n".into() } else { String::new() };
        for (serial, t, fact) in facts {
            if let Some(serial) = index::normalize_serial(serial) {
                text.push_str(&line_of(&serial, *t, fact));
            }
        }
        if text.trim().is_empty() {
            return Ok(());
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
            .map_err(|e| StoreError::io(&path, "open", e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| StoreError::io(&path, "append to", e))?;
        if durable {
            f.sync_data().map_err(|e| StoreError::io(&path, "fsync", e))?;
        }
        // Read back at the next load: the cache stays in file order.
        drop(d);
        self.load_devices().map(drop)
    }

    /// A new certificate's device: its name and the time it was issued, and for a
    /// renewal the certificate it replaces once it is seen. Appended, not yet flushed:
    /// the caller calls [`Store::sync_devices`] after releasing the lock and before
    /// answering (so enrollments share the flush, as they share index.txt's).
    pub fn device_added(
        &self,
        serial: &str,
        name: &str,
        replaces: Option<&str>,
        t: i64,
    ) -> Result<(), StoreError> {
        let name = check_name(name).unwrap_or("Unknown device");
        let mut facts = vec![Fact::Added(name)];
        if let Some(old) = replaces {
            facts.push(Fact::Replaces(old));
        }
        self.append(serial, t, &facts, false)
    }

    /// Renames the device of `serial` (a name [`check_name`] accepted), durably.
    pub fn rename_device(&self, serial: &str, name: &str, t: i64) -> Result<(), StoreError> {
        self.append(serial, t, &[Fact::Name(name)], true)
    }

    /// A signed-in request presented `serial` at `t`: written (not fsynced) when the
    /// last written sighting is [`SEEN_EVERY`] seconds old or more. Returns the old
    /// certificate this one still has to replace, if any. Errors are logged: a sighting
    /// never fails a request.
    pub fn device_seen(&self, serial: &str, t: i64) -> Option<String> {
        let (due, replaces) = match self.load_devices() {
            Ok(d) => {
                let info = index::normalize_serial(serial).and_then(|s| d.map.get(&s));
                (
                    info.and_then(|i| i.seen).is_none_or(|s| t - s >= SEEN_EVERY),
                    info.and_then(|i| i.replaces.clone()),
                )
            }
            Err(e) => {
                log::warn!("{e} (a sighting was not recorded)");
                return None;
            }
        };
        if due && let Err(e) = self.append(serial, t, &[Fact::Seen], false) {
            log::warn!("{e} (a sighting was not recorded)");
        }
        replaces
    }

    /// The renewal by `serial` is complete (what it replaced is revoked or no longer
    /// valid), durably.
    pub fn replacement_done(&self, serial: &str, t: i64) -> Result<(), StoreError> {
        self.append(serial, t, &[Fact::Replaced], true)
    }

    /// Writes the OCSP sightings kept in memory that are due (the last written one is
    /// [`SEEN_EVERY`] seconds old or more), in one append, not fsynced. Errors are logged.
    pub fn flush_sightings(&self) {
        let pending = std::mem::take(&mut *self.store.sightings.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return;
        }
        let due: Vec<(String, i64)> = match self.load_devices() {
            Ok(d) => pending
                .into_iter()
                .filter(|(s, t)| {
                    d.map
                        .get(s)
                        .and_then(|i| i.ocsp)
                        .is_none_or(|o| t - o >= SEEN_EVERY)
                })
                .collect(),
            Err(e) => {
                log::warn!("{e} (OCSP sightings were not recorded)");
                return;
            }
        };
        let facts: Vec<(&str, i64, &Fact<'_>)> =
            due.iter().map(|(s, t)| (s.as_str(), *t, &Fact::Ocsp)).collect();
        if let Err(e) = self.append_all(&facts, false) {
            log::warn!("{e} (OCSP sightings were not recorded)");
        }
    }
}

impl Store {
    /// Flushes what [`Locked::device_added`] appended (no lock needed: an fsync of the
    /// file flushes every append made before it). A missing file has nothing to flush.
    pub fn sync_devices(&self) -> Result<(), StoreError> {
        let path = self.path_of(CaFile::Devices);
        match fs::File::open(&path) {
            Ok(f) => f.sync_data().map_err(|e| StoreError::io(&path, "fsync", e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, "open", e)),
        }
    }

    /// Writes the pending OCSP sightings if the lock can be had at once (the daemon, from
    /// the OCSP path, at most once a minute): never waits, never refreshes the view.
    pub fn try_flush_sightings(&self) {
        let Ok(view) = self.view.try_lock() else { return };
        let Ok(lock) = self.lock_file.try_lock() else {
            return;
        };
        let Some(file) = lock.as_ref() else { return };
        if !matches!(crate::ffi::flock::try_lock_exclusive(file), Ok(true)) {
            return;
        }
        let locked = Locked {
            store: self,
            view,
            lock,
        };
        locked.flush_sightings();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_are_checked() {
        let cases: &[(&str, Result<&str, NameError>)] = &[
            ("Firefox on Windows", Ok("Firefox on Windows")),
            ("  Alice's phone ", Ok("Alice's phone")),
            ("Téléphone de Zoë", Ok("Téléphone de Zoë")),
            ("<script>", Ok("<script>")),
            ("", Err(NameError::Empty)),
            ("   ", Err(NameError::Empty)),
            ("a\tb", Err(NameError::Character)),
            ("a\nb", Err(NameError::Character)),
            ("evil\u{202E}gpj", Err(NameError::Character)),
            ("zero\u{200B}width", Err(NameError::Character)),
        ];
        for (name, want) in cases {
            assert_eq!(check_name(name), *want, "{name:?}");
        }
        assert_eq!(check_name(&"x".repeat(NAME_MAX)).map(str::len), Ok(NAME_MAX));
        assert_eq!(check_name(&"x".repeat(NAME_MAX + 1)), Err(NameError::TooLong));
    }

    #[test]
    fn lines_round_trip_and_bad_ones_are_skipped() {
        let facts = [
            Fact::Added("Safari on iPhone"),
            Fact::Name("x"),
            Fact::Seen,
            Fact::Ocsp,
            Fact::Replaces("0A"),
            Fact::Replaced,
        ];
        for f in &facts {
            let line = line_of("0B", 7, f);
            assert_eq!(
                parse_line(line.trim_end()),
                Some(("0B".to_string(), 7, f.clone()))
            );
        }
        for bad in [
            "",
            "0B",
            "0B\tseen",
            "0B\tseen\tx",
            "zz\tseen\t1",
            "0B\tadded\t1\ta\u{1}b",
            "0B\tseen\t1\textra",
            "0B\tfly\t1",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn later_facts_win_and_compaction_keeps_what_is_true() {
        let mut d = Devices::default();
        for (s, t, f) in [
            ("01", 10, Fact::Added("Chrome on Android")),
            ("01", 20, Fact::Name("Work phone")),
            ("01", 40, Fact::Seen),
            ("01", 30, Fact::Seen),
            ("02", 50, Fact::Added("Firefox on Linux")),
            ("02", 50, Fact::Replaces("01")),
            ("02", 60, Fact::Ocsp),
        ] {
            d.apply(s.to_string(), t, &f);
        }
        let one = DeviceInfo {
            name: Some("Work phone".into()),
            added: Some(10),
            seen: Some(40),
            ..DeviceInfo::default()
        };
        assert_eq!(d.map["01"], one);
        assert_eq!(d.map["02"].replaces.as_deref(), Some("01"));
        let mut again = Devices::default();
        for l in d.compacted().lines() {
            let (s, t, f) = parse_line(l).unwrap();
            again.apply(s, t, &f);
        }
        assert_eq!(again.map, d.map);
        d.apply("02".into(), 70, &Fact::Replaced);
        assert_eq!(d.map["02"].replaces, None);
    }
}
