//! One-time codes that let a username get another certificate: add-device codes (asked
//! for by a signed-in user) and recovery codes (issued by the admin). A code is 50
//! random bits shown once as `XXXXX-XXXXX`; only an HMAC of it is stored, in
//! `getacert.codes` beside index.txt, changed only under the database lock. A code is
//! single use, expires, and allows a few wrong tries before it is void.
//!
//! File format, one code a line: `user<TAB>hmac-hex<TAB>expires-unix<TAB>tries-left<TAB>kind`.

use std::path::{Path, PathBuf};

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::store::{Locked, StoreError};

/// Wrong tries a code survives.
pub const MAX_TRIES: u32 = 5;

/// Crockford's base32: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    AddDevice,
    Recovery,
}

impl CodeKind {
    fn word(self) -> &'static str {
        match self {
            CodeKind::AddDevice => "add-device",
            CodeKind::Recovery => "recovery",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    Accepted(CodeKind),
    /// The code did not match; each live code of the user lost a try.
    Wrong,
    /// The user has no live code.
    NoCode,
}

struct Entry {
    user: String,
    mac: String,
    expires: i64,
    tries: u32,
    kind: CodeKind,
}

pub fn path_beside(database: &Path) -> PathBuf {
    database.parent().unwrap_or(Path::new(".")).join("getacert.codes")
}

/// A new code, formatted for people.
pub fn new_code() -> String {
    let mut raw = [0u8; 10];
    let _ = openssl::rand::rand_bytes(&mut raw);
    let chars: String = raw.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// What a person typed, made comparable: case, dashes and spaces ignored, and the
/// letters Crockford's alphabet leaves out read as the digits they look like.
pub fn normalize(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

fn mac(secret: &[u8], user: &str, code: &str) -> String {
    let compute = || -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let key = PKey::hmac(secret)?;
        let mut s = Signer::new(MessageDigest::sha256(), &key)?;
        s.update(b"getacert code\0")?;
        s.update(user.as_bytes())?;
        s.update(b"\0")?;
        s.update(normalize(code).as_bytes())?;
        s.sign_to_vec()
    };
    compute()
        .map(|m| m.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<Vec<Entry>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                action: "read",
                err,
            });
        }
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [user, mac, expires, tries, kind] = f[..] else {
                return None;
            };
            Some(Entry {
                user: user.to_string(),
                mac: mac.to_string(),
                expires: expires.parse().ok()?,
                tries: tries.parse().ok()?,
                kind: match kind {
                    "recovery" => CodeKind::Recovery,
                    _ => CodeKind::AddDevice,
                },
            })
        })
        .collect())
}

fn write(locked: &Locked<'_>, path: &Path, entries: &[Entry], now: i64) -> Result<(), StoreError> {
    let text: String = entries
        .iter()
        // A code voided by wrong tries is kept until it expires: it still reserves the
        // username (see `has_live`), it just can no longer be used.
        .filter(|e| e.expires > now)
        .map(|e| {
            format!(
                "{}\t{}\t{}\t{}\t{}\n",
                e.user,
                e.mac,
                e.expires,
                e.tries,
                e.kind.word()
            )
        })
        .collect();
    locked.replace_file(path, text.as_bytes())
}

/// Makes and stores a new code for `user`, valid for `lifetime` seconds. A new
/// add-device code replaces the user's earlier ones (reloading the page that shows it
/// must not leave several live codes); recovery codes stay, they are the admin's.
pub fn issue(
    locked: &Locked<'_>,
    path: &Path,
    secret: &[u8],
    user: &str,
    kind: CodeKind,
    now: i64,
    lifetime: i64,
) -> Result<String, StoreError> {
    let user = user.to_ascii_lowercase();
    let code = new_code();
    let mut entries = read(path)?;
    if kind == CodeKind::AddDevice {
        entries.retain(|e| !(e.user == user && e.kind == CodeKind::AddDevice));
    }
    entries.push(Entry {
        mac: mac(secret, &user, &code),
        user,
        expires: now + lifetime,
        tries: MAX_TRIES,
        kind,
    });
    write(locked, path, &entries, now)?;
    Ok(code)
}

/// True when `user` has an unexpired code, usable or voided by wrong tries: the
/// username is then reserved for whoever holds the code (a recovery after
/// `--revoke-all` must not free it for anyone, and neither may guessing the code).
pub fn has_live(path: &Path, user: &str, now: i64) -> Result<bool, StoreError> {
    let user = user.to_ascii_lowercase();
    Ok(read(path)?.iter().any(|e| e.user == user && e.expires > now))
}

/// Checks `typed` against `user`'s live codes. A match is used up; a miss costs each
/// of the user's codes a try.
pub fn redeem(
    locked: &Locked<'_>,
    path: &Path,
    secret: &[u8],
    user: &str,
    typed: &str,
    now: i64,
) -> Result<Redeemed, StoreError> {
    let user = user.to_ascii_lowercase();
    let mut entries = read(path)?;
    let live = |e: &Entry| e.user == user && e.expires > now && e.tries > 0;
    if !entries.iter().any(live) {
        return Ok(Redeemed::NoCode);
    }
    let want = mac(secret, &user, typed);
    let hit = entries.iter().position(|e| {
        live(e) && want.len() == e.mac.len() && openssl::memcmp::eq(want.as_bytes(), e.mac.as_bytes())
    });
    let result = match hit {
        Some(i) => Redeemed::Accepted(entries.remove(i).kind),
        None => {
            for e in entries.iter_mut().filter(|e| live(e)) {
                e.tries -= 1;
            }
            Redeemed::Wrong
        }
    };
    write(locked, path, &entries, now)?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_50_bits_and_forgiving_to_type() {
        let c = new_code();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert!(c.bytes().filter(|b| *b != b'-').all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalize(" abcd-eoil "), "ABCDE011");
        assert_eq!(
            mac(b"k", "alice", "ABCDE-FGHJK"),
            mac(b"k", "alice", "abcde fghjk")
        );
        assert_ne!(mac(b"k", "alice", "ABCDE-FGHJK"), mac(b"k", "bob", "ABCDE-FGHJK"));
    }
}
