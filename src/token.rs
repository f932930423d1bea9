//! Signed, expiring tokens: the anti-CSRF form token and the SPKAC challenge the page
//! hands out. `ISSUED.MAC` where MAC is HMAC-SHA256(secret, purpose ‖ binding ‖ 0 ‖
//! issued), truncated to 128 bits. The binding names whom the token was made for (the
//! presented certificate's serial, a browser cookie; empty for the challenge), so a
//! token is worthless to anyone else. Pure: the secret and the time are arguments.
//!
//! The secret itself lives next to index.txt (`getacert.secret`, 0600), read and made
//! by the store: see [`crate::ca::store::load_or_create_secret`].

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Form,
    Challenge,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Form => b"getacert form\0",
            Purpose::Challenge => b"getacert spkac challenge\0",
        }
    }
}

fn mac(secret: &[u8], purpose: Purpose, binding: &str, issued: i64) -> Result<String, ErrorStack> {
    let key = PKey::hmac(secret)?;
    let mut s = Signer::new(MessageDigest::sha256(), &key)?;
    s.update(purpose.label())?;
    s.update(binding.as_bytes())?;
    s.update(b"\0")?;
    s.update(issued.to_string().as_bytes())?;
    let full = s.sign_to_vec()?;
    Ok(full.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// A token for `binding`. A failed HMAC is an error, never a token: the page that
/// would carry it is not served (fail closed).
pub fn make(secret: &[u8], purpose: Purpose, binding: &str, now: i64) -> Result<String, ErrorStack> {
    Ok(format!("{now}.{}", mac(secret, purpose, binding, now)?))
}

/// True when `token` was made by [`make`] with this secret, purpose and binding, at
/// most `lifetime` seconds ago (and not more than a minute in the future).
pub fn verify(secret: &[u8], purpose: Purpose, binding: &str, token: &str, now: i64, lifetime: i64) -> bool {
    let Some((issued, given)) = token.trim().split_once('.') else {
        return false;
    };
    let Ok(issued) = issued.parse::<i64>() else {
        return false;
    };
    if issued > now + 60 || now - issued > lifetime {
        return false;
    }
    let Ok(want) = mac(secret, purpose, binding, issued) else {
        return false;
    };
    want.len() == given.len() && openssl::memcmp::eq(want.as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let s = b"0123456789abcdef0123456789abcdef";
        let b = "cert:1000";
        let t = make(s, Purpose::Form, b, 1000).unwrap();
        assert!(verify(s, Purpose::Form, b, &t, 1000, 3600));
        assert!(verify(s, Purpose::Form, b, &t, 4600, 3600));
        assert!(!verify(s, Purpose::Form, b, &t, 4601, 3600), "expired");
        assert!(!verify(s, Purpose::Challenge, b, &t, 1000, 3600), "other purpose");
        assert!(
            !verify(s, Purpose::Form, "cert:1001", &t, 1000, 3600),
            "other requester"
        );
        assert!(!verify(s, Purpose::Form, "", &t, 1000, 3600), "bound to nobody");
        assert!(!verify(
            b"another secret, also 32 bytes!!!",
            Purpose::Form,
            b,
            &t,
            1000,
            3600
        ));
        assert!(!verify(
            s,
            Purpose::Form,
            b,
            &t.replace("1000.", "1001."),
            1001,
            3600
        ));
        assert!(
            !verify(
                s,
                Purpose::Form,
                b,
                &make(s, Purpose::Form, b, 2000).unwrap(),
                1000,
                3600
            ),
            "future"
        );
        for junk in ["", ".", "x.y", "1000.", "1000.00", "randomchars"] {
            assert!(!verify(s, Purpose::Form, b, junk, 1000, 3600), "{junk:?}");
        }
    }

    /// Issue 9, item 6: a token whose HMAC cannot be computed is an error, not an empty
    /// string that a page would carry. OpenSSL refuses an empty HMAC key, which makes the
    /// failure happen for real.
    #[test]
    fn token_hmac_failure_is_an_error_not_an_empty_token() {
        assert!(PKey::hmac(&[]).is_err(), "the injected failure is real");
        assert!(make(&[], Purpose::Form, "cert:1", 1000).is_err());
        assert!(make(&[], Purpose::Challenge, "", 1000).is_err());
        assert!(!verify(&[], Purpose::Form, "cert:1", "1000.00", 1000, 3600));
    }
}
