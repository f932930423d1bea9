//! Pre-produced OCSP answers (RFC 5019 2.1.1, RFC 6960 2.5): a signed answer to a
//! request without a nonce is kept and given again to the same request bytes while it
//! is young and the database still says the same about every serial in it. nginx's
//! `ssl_ocsp` asks the same question (GET, no nonce) for every handshake of a device
//! whose answer has left its cache, so under load most answers cost a status lookup
//! instead of a signature.
//!
//! What it never does:
//! - give an answer after the status of one of its serials changed: every hit looks the
//!   serials up again (the same lookup a fresh answer makes) and compares. A revocation
//!   is seen by the next query, exactly as without the cache;
//! - stretch how long a client may cache: a kept answer carries its own `nextUpdate`,
//!   which is earlier than a fresh one's, so the bound "stale at most `ocsp_next_update`
//!   seconds" holds;
//! - keep answers to requests with a nonce (mod_ssl sends a fresh one every time: they
//!   would only fill the table) or error answers.
//!
//! An answer is reused for at most a quarter of its validity (15 s of the default 60),
//! so clients that cache it still hold it for most of its life. The table holds at most
//! [`CAPACITY`] answers and is emptied when full: requests built to miss cost what they
//! cost without it, one signature each. Pure apart from the lock: the time and the
//! lookup are arguments.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ocsp::{Answer, Outcome};
use super::status::Entry;

/// Answers kept at most (a few hundred bytes each).
pub const CAPACITY: usize = 4096;

struct Kept {
    serials: Vec<String>,
    status: Vec<Option<Entry>>,
    der: Vec<u8>,
    certs: usize,
    this_update: i64,
    next_update: i64,
}

/// The table of kept answers, keyed by the request's DER.
#[derive(Default)]
pub struct Cache {
    kept: Mutex<HashMap<Vec<u8>, Kept>>,
}

/// What a fresh answer looked up: the serials it asked the database about and what the
/// database said. `None` when the lookup was not made (no serial of this CA's).
pub type Looked = Option<(Vec<String>, Vec<Option<Entry>>)>;

impl Cache {
    /// The kept answer to `request` if it is younger than `reuse` seconds at `now` and
    /// `lookup` still gives the status it was signed with.
    pub fn hit<E>(
        &self,
        request: &[u8],
        now: i64,
        reuse: i64,
        lookup: impl FnOnce(&[String]) -> Result<Vec<Option<Entry>>, E>,
    ) -> Option<Answer> {
        let (serials, status, der, certs, this_update, next_update) = {
            let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            let k = kept.get(request)?;
            let age = now - k.this_update;
            if !(0..reuse).contains(&age) {
                return None;
            }
            (
                k.serials.clone(),
                k.status.clone(),
                k.der.clone(),
                k.certs,
                k.this_update,
                k.next_update,
            )
        };
        if !serials.is_empty() && lookup(&serials).ok()? != status {
            return None;
        }
        Some(Answer {
            der,
            outcome: Outcome::Successful {
                certs,
                this_update,
                next_update,
                nonce: false,
            },
        })
    }

    /// Keeps `answer` to `request` when it may be given again: signed, no nonce.
    pub fn keep(&self, request: &[u8], answer: &Answer, looked: Looked) {
        let Outcome::Successful {
            certs,
            this_update,
            next_update,
            nonce: false,
        } = answer.outcome
        else {
            return;
        };
        let (serials, status) = looked.unwrap_or_default();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= CAPACITY && !kept.contains_key(request) {
            kept.clear();
        }
        kept.insert(
            request.to_vec(),
            Kept {
                serials,
                status,
                der: answer.der.clone(),
                certs,
                this_update,
                next_update,
            },
        );
    }

    /// Answers kept now.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn signed(der: &[u8], this_update: i64, nonce: bool) -> Answer {
        Answer {
            der: der.to_vec(),
            outcome: Outcome::Successful {
                certs: 1,
                this_update,
                next_update: this_update + 60,
                nonce,
            },
        }
    }

    fn looked(status: Option<Entry>) -> Looked {
        Some((vec!["0A".into()], vec![status]))
    }

    fn still(status: Option<Entry>) -> impl FnOnce(&[String]) -> Result<Vec<Option<Entry>>, Infallible> {
        move |serials| {
            assert_eq!(serials, ["0A".to_string()]);
            Ok(vec![status])
        }
    }

    #[test]
    fn ocsp_cache_gives_the_same_answer_while_status_and_age_allow() {
        let c = Cache::default();
        c.keep(
            b"req",
            &signed(b"answer", 1000, false),
            looked(Some(Entry::Valid)),
        );
        let a = c.hit(b"req", 1014, 15, still(Some(Entry::Valid))).expect("a hit");
        assert_eq!(a.der, b"answer");
        assert_eq!(
            a.outcome,
            Outcome::Successful {
                certs: 1,
                this_update: 1000,
                next_update: 1060,
                nonce: false
            }
        );
        assert!(c.hit(b"other", 1001, 15, still(Some(Entry::Valid))).is_none());
    }

    #[test]
    fn ocsp_cache_never_answers_after_a_revocation() {
        let c = Cache::default();
        c.keep(b"req", &signed(b"good", 1000, false), looked(Some(Entry::Valid)));
        let revoked = Some(Entry::Revoked {
            at: 1001,
            reason: None,
        });
        assert!(c.hit(b"req", 1002, 15, still(revoked)).is_none());
        assert!(c.hit(b"req", 1002, 15, still(None)).is_none());
    }

    #[test]
    fn ocsp_cache_answers_expire_after_the_reuse_window_and_before_their_time() {
        let c = Cache::default();
        c.keep(b"req", &signed(b"a", 1000, false), looked(Some(Entry::Valid)));
        assert!(c.hit(b"req", 1015, 15, still(Some(Entry::Valid))).is_none());
        assert!(
            c.hit(b"req", 999, 15, still(Some(Entry::Valid))).is_none(),
            "clock went back"
        );
        assert!(
            c.hit(b"req", 1000, 0, still(Some(Entry::Valid))).is_none(),
            "no reuse"
        );
    }

    #[test]
    fn ocsp_cache_keeps_no_nonce_answers_and_no_errors() {
        let c = Cache::default();
        c.keep(b"n", &signed(b"a", 1000, true), looked(Some(Entry::Valid)));
        let err = Answer {
            der: vec![0x30, 3, 10, 1, 1],
            outcome: Outcome::Malformed("x"),
        };
        c.keep(b"m", &err, None);
        assert!(c.is_empty());
    }

    #[test]
    fn ocsp_cache_failed_lookup_is_a_miss() {
        let c = Cache::default();
        c.keep(b"req", &signed(b"a", 1000, false), looked(Some(Entry::Valid)));
        assert!(
            c.hit(b"req", 1001, 15, |_: &[String]| Err::<Vec<_>, _>("disk"))
                .is_none()
        );
    }

    #[test]
    fn ocsp_cache_is_bounded() {
        let c = Cache::default();
        for i in 0..CAPACITY + 10 {
            c.keep(format!("r{i}").as_bytes(), &signed(b"a", 1000, false), None);
        }
        assert!(c.len() <= CAPACITY);
        // Answers about no serial of ours (another issuer) need no lookup.
        let last = format!("r{}", CAPACITY + 9);
        assert!(
            c.hit(
                last.as_bytes(),
                1001,
                15,
                |_: &[String]| -> Result<_, Infallible> {
                    panic!("no lookup for an answer without our serials")
                }
            )
            .is_some()
        );
    }
}
