//! One-time codes that let a username get another certificate: add-device codes (asked
//! for by a signed-in user) and recovery codes (issued by the admin). A code is 50
//! random bits shown once as `XXXXX-XXXXX`; only an HMAC of it is stored, in
//! `getacert.codes` beside index.txt, changed only under the database lock. A code is
//! single use and expires. A wrong guess never voids a code (that would let anyone lock a
//! user out): wrong guesses are counted per (username, client address) in
//! `getacert.code-tries`, and past [`FREE_TRIES`] each one doubles the wait before that
//! client may guess again for that name ([`backoff`]).
//!
//! File formats, one entry a line:
//! `getacert.codes`: `user<TAB>hmac-hex<TAB>expires-unix<TAB>tries<TAB>kind` (the tries
//! column is kept for older files and always written as [`MAX_TRIES`]);
//! `getacert.code-tries`: `user<TAB>client<TAB>wrong-guesses<TAB>last-unix`.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use super::store::{CaFile, Locked, StoreError};
use crate::enroll::username::AccountKey;

/// The tries column of `getacert.codes` (no longer counted down).
pub const MAX_TRIES: u32 = 5;

/// Wrong guesses a client may make for one name before it has to wait.
pub const FREE_TRIES: u32 = 3;

/// Longest wait between guesses (seconds).
const MAX_WAIT: i64 = 3600;

/// Most (name, client) counters kept: past it the oldest are forgotten, so guesses from
/// many addresses cannot grow the file (rewritten under the lock) without bound.
const MAX_COUNTERS: usize = 10_000;

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
    /// The code did not match.
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

/// A new code, formatted for people. A random-number failure is an error, never a
/// guessable code.
pub fn new_code() -> Result<String, StoreError> {
    code_from(openssl::rand::rand_bytes)
}

/// A code from 50 bits that `fill` provides; its failure is the code's failure (a code
/// of zeros, which the old `let _ = rand_bytes(..)` made, is never handed out).
fn code_from(fill: impl FnOnce(&mut [u8]) -> Result<(), ErrorStack>) -> Result<String, StoreError> {
    let mut raw = [0u8; 10];
    fill(&mut raw).map_err(|e| StoreError::Crypto(format!("random code: {e}")))?;
    let chars: String = raw.iter().map(|b| ALPHABET[(b & 31) as usize] as char).collect();
    Ok(format!("{}-{}", &chars[..5], &chars[5..]))
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

fn mac(secret: &[u8], user: &str, code: &str) -> Result<String, StoreError> {
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
        .map_err(|e| StoreError::Crypto(format!("code HMAC: {e}")))
}

fn read(locked: &Locked<'_>) -> Result<Vec<Entry>, StoreError> {
    let text = locked.read(CaFile::Codes)?.unwrap_or_default();
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

fn write(locked: &Locked<'_>, entries: &[Entry], now: i64) -> Result<(), StoreError> {
    let text: String = entries
        .iter()
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
    locked.replace(CaFile::Codes, text.as_bytes())
}

/// Makes and stores a new code for `user`, valid for `lifetime` seconds. A new
/// add-device code replaces the user's earlier ones (reloading the page that shows it
/// must not leave several live codes); recovery codes stay, they are the admin's.
pub fn issue(
    locked: &Locked<'_>,
    secret: &[u8],
    user: &AccountKey,
    kind: CodeKind,
    now: i64,
    lifetime: i64,
) -> Result<String, StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    let code = new_code()?;
    let mut entries = read(locked)?;
    if kind == CodeKind::AddDevice {
        entries.retain(|e| !(e.user == user && e.kind == CodeKind::AddDevice));
    }
    entries.push(Entry {
        mac: mac(secret, &user, &code)?,
        user,
        expires: now + lifetime,
        tries: MAX_TRIES,
        kind,
    });
    write(locked, &entries, now)?;
    Ok(code)
}

/// True when `user` has an unexpired code: the username is then reserved for whoever
/// holds the code (a recovery code for a name never issued reserves it too).
pub fn has_live(locked: &Locked<'_>, user: &AccountKey, now: i64) -> Result<bool, StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    Ok(read(locked)?.iter().any(|e| e.user == user && e.expires > now))
}

/// Removes every code of `user` (the name was released).
pub fn void(locked: &Locked<'_>, user: &AccountKey, now: i64) -> Result<(), StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    let mut entries = read(locked)?;
    let before = entries.len();
    entries.retain(|e| e.user != user);
    if entries.len() == before {
        return Ok(());
    }
    write(locked, &entries, now)
}

/// Checks `typed` against `user`'s live codes. A match is used up; a miss changes
/// nothing here (the caller counts it per client: [`record_guess`]).
pub fn redeem(
    locked: &Locked<'_>,
    secret: &[u8],
    user: &AccountKey,
    typed: &str,
    now: i64,
) -> Result<Redeemed, StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    let mut entries = read(locked)?;
    let live = |e: &Entry| e.user == user && e.expires > now;
    if !entries.iter().any(live) {
        return Ok(Redeemed::NoCode);
    }
    let want = mac(secret, &user, typed)?;
    let hit = entries.iter().position(|e| {
        live(e) && want.len() == e.mac.len() && openssl::memcmp::eq(want.as_bytes(), e.mac.as_bytes())
    });
    match hit {
        Some(i) => {
            let kind = entries.remove(i).kind;
            write(locked, &entries, now)?;
            Ok(Redeemed::Accepted(kind))
        }
        None => Ok(Redeemed::Wrong),
    }
}

struct Tries {
    user: String,
    client: String,
    wrong: u32,
    last: i64,
}

/// Seconds a client must wait after `wrong` wrong guesses: none for the first
/// [`FREE_TRIES`], then 2, 4, 8 … up to an hour.
fn wait_after(wrong: u32) -> i64 {
    if wrong < FREE_TRIES {
        0
    } else {
        (1i64 << (wrong - FREE_TRIES + 1).min(12)).min(MAX_WAIT)
    }
}

fn read_tries(locked: &Locked<'_>) -> Result<Vec<Tries>, StoreError> {
    let text = locked.read(CaFile::CodeTries)?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| {
            let [user, client, wrong, last] = l.split('\t').collect::<Vec<_>>()[..] else {
                return None;
            };
            Some(Tries {
                user: user.to_string(),
                client: client.to_string(),
                wrong: wrong.parse().ok()?,
                last: last.parse().ok()?,
            })
        })
        .collect())
}

fn write_tries(locked: &Locked<'_>, all: &mut Vec<Tries>, now: i64) -> Result<(), StoreError> {
    if all.len() > MAX_COUNTERS {
        all.sort_by_key(|t| std::cmp::Reverse(t.last));
        all.truncate(MAX_COUNTERS);
    }
    let text: String = all
        .iter()
        // Forgotten once the wait is over and a day has passed.
        .filter(|t| t.last + wait_after(t.wrong).max(86400) > now)
        .map(|t| format!("{}\t{}\t{}\t{}\n", t.user, t.client, t.wrong, t.last))
        .collect();
    locked.replace(CaFile::CodeTries, text.as_bytes())
}

/// `Some(seconds)` when `client` guessed wrong too often for `user` and must wait.
pub fn backoff(
    locked: &Locked<'_>,
    user: &AccountKey,
    client: &str,
    now: i64,
) -> Result<Option<u64>, StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    Ok(read_tries(locked)?
        .iter()
        .find(|t| t.user == user && t.client == client)
        .map(|t| t.last + wait_after(t.wrong) - now)
        .filter(|&w| w > 0)
        .map(|w| w as u64))
}

/// Counts one wrong guess by `client` for `user`, or forgets `user`'s counters after
/// a right one (`right`).
pub fn record_guess(
    locked: &Locked<'_>,
    user: &AccountKey,
    client: &str,
    right: bool,
    now: i64,
) -> Result<(), StoreError> {
    let user = user.as_str().to_ascii_lowercase();
    let mut all = read_tries(locked)?;
    if right {
        if !all.iter().any(|t| t.user == user) {
            return Ok(());
        }
        all.retain(|t| t.user != user);
    } else {
        match all.iter_mut().find(|t| t.user == user && t.client == client) {
            Some(t) => {
                t.wrong = t.wrong.saturating_add(1);
                t.last = now;
            }
            None => all.push(Tries {
                user,
                client: client.to_string(),
                wrong: 1,
                last: now,
            }),
        }
    }
    write_tries(locked, &mut all, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_random_or_hmac_failure_is_an_error() {
        // Issue 9, item 6: the failure injected for real, the random source and the key.
        assert!(code_from(|_| Err(ErrorStack::get())).is_err());
        assert!(PKey::hmac(&[]).is_err(), "OpenSSL refuses an empty HMAC key");
        assert!(mac(&[], "alice", "ABCDE-FGHJK").is_err());
    }

    #[test]
    fn codes_are_50_bits_and_forgiving_to_type() {
        let c = new_code().unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert!(c.bytes().filter(|b| *b != b'-').all(|b| ALPHABET.contains(&b)));
        assert_eq!(normalize(" abcd-eoil "), "ABCDE011");
        assert_eq!(
            mac(b"k", "alice", "ABCDE-FGHJK").unwrap(),
            mac(b"k", "alice", "abcde fghjk").unwrap()
        );
        assert_ne!(
            mac(b"k", "alice", "ABCDE-FGHJK").unwrap(),
            mac(b"k", "bob", "ABCDE-FGHJK").unwrap()
        );
    }

    #[test]
    fn guesses_wait_longer_and_longer() {
        let waits: Vec<i64> = (0..16).map(wait_after).collect();
        assert_eq!(&waits[..6], &[0, 0, 0, 2, 4, 8]);
        assert_eq!(waits[15], MAX_WAIT);
    }
}
