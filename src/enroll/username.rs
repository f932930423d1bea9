//! `Username` and `Email`: the only ways to get a name into a certificate subject.
//! Whatever the configured rule says, characters that change the meaning of a
//! distinguished name or of index.txt can never pass.

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// A username that passed the rule. Only [`Username::parse`] makes one from input;
/// [`Username::issued`] takes the CN of a certificate this CA keeps on file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameError {
    Empty,
    TooLong,
    /// A character that is never allowed (control, whitespace, DN or index separators).
    ForbiddenChar(char),
    NonAscii,
    /// Letters of more than one script ("аlice" with a Cyrillic а): UTS #39 mixed script.
    MixedScript,
    RuleMismatch,
}

/// Characters that are special in DNs (`/` in index.txt's oneline form, `= , + ; < > " \`
/// in RFC 2253 as nginx and Apache print them) or in HTML.
const FORBIDDEN: &[char] = &['/', '=', ',', '+', ';', '<', '>', '"', '\\', '#', '\'', '&'];

impl Username {
    pub fn parse(raw: &str, rule: &Regex, allow_non_ascii: bool) -> Result<Username, UsernameError> {
        if raw.is_empty() {
            return Err(UsernameError::Empty);
        }
        if raw.chars().count() > 64 {
            return Err(UsernameError::TooLong);
        }
        if let Some(c) = raw
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || FORBIDDEN.contains(c) || *c == '\u{FFFD}')
        {
            return Err(UsernameError::ForbiddenChar(c));
        }
        if !allow_non_ascii && !raw.is_ascii() {
            return Err(UsernameError::NonAscii);
        }
        // One spelling per name: NFC, so "zoë" typed as e + U+0308 is the same name.
        let name: String = if raw.is_ascii() {
            raw.to_string()
        } else {
            raw.nfc().collect()
        };
        // Beyond ASCII, only what UTS #39's General Security Profile allows in
        // identifiers: no invisible joiners, bidi overrides or obsolete forms.
        if let Some(c) = name.chars().find(|c| !c.is_ascii() && !c.identifier_allowed()) {
            return Err(UsernameError::ForbiddenChar(c));
        }
        if !name.is_single_script() {
            return Err(UsernameError::MixedScript);
        }
        if !rule.is_match(&name) {
            return Err(UsernameError::RuleMismatch);
        }
        Ok(Username(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fixed name for proving at start-up that the configuration can build a subject;
    /// never used for a certificate.
    pub(crate) fn config_probe() -> Username {
        Username("probe".to_string())
    }

    /// The CN of a certificate this CA issued and keeps on file: it passed the rule of
    /// its day, which may since have changed, so it is taken as issued. Only the
    /// identity check, after comparing the presented certificate with the one on file,
    /// makes one this way.
    pub(crate) fn issued(cn: String) -> Username {
        Username(cn)
    }

    /// The account this name belongs to ([`AccountKey::of`]).
    pub fn account_key(&self, unicode: bool) -> AccountKey {
        AccountKey::of(&self.0, unicode)
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Read-only: the proof is in how the name was made, not in hiding its text.
impl std::ops::Deref for Username {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UsernameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsernameError::Empty => write!(f, "the username is empty"),
            UsernameError::TooLong => write!(f, "the username is longer than 64 characters"),
            UsernameError::ForbiddenChar(c) => {
                write!(f, "the username contains {c:?}, which is never allowed")
            }
            UsernameError::NonAscii => write!(f, "the username is not ASCII (allow_non_ascii is off)"),
            UsernameError::MixedScript => write!(f, "the username mixes letters of several scripts"),
            UsernameError::RuleMismatch => write!(f, "the username does not match username_rule"),
        }
    }
}

impl std::error::Error for UsernameError {}

/// The account a username names: two names are one account when their keys are equal.
/// ASCII case folded when only ASCII names are allowed; with `allow_non_ascii`, NFC,
/// full Unicode case folding, then the UTS #39 confusable skeleton, so "Zoë" (either
/// spelling), "ZOË" and a Cyrillic look-alike of "alice" all meet the name they
/// imitate. Every case-insensitive comparison of names goes through this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountKey(String);

impl AccountKey {
    pub fn of(name: &str, unicode: bool) -> AccountKey {
        if !unicode {
            return AccountKey(name.to_ascii_lowercase());
        }
        let folded = caseless::default_case_fold_str(&name.nfc().collect::<String>());
        AccountKey(unicode_security::skeleton(&folded).collect())
    }

    /// The key's text, as `getacert.codes` and `getacert.code-tries` store it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address that passed a conservative check (ASCII, one `@`, a dotted domain,
/// nothing that is special in a DN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Option<Email> {
        let (local, domain) = raw.split_once('@')?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
            && !local.starts_with('.')
            && !local.ends_with('.');
        let domain_ok = domain.len() <= 253
            && domain.contains('.')
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        (local_ok && domain_ok).then(|| Email(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_USERNAME_RULE;

    #[test]
    fn username_table() {
        let rule = Regex::new(DEFAULT_USERNAME_RULE).unwrap();
        let cases: &[(&str, Result<(), UsernameError>)] = &[
            ("alice", Ok(())),
            ("Alice.Smith-2_x", Ok(())),
            ("a", Ok(())),
            ("", Err(UsernameError::Empty)),
            ("al ice", Err(UsernameError::ForbiddenChar(' '))),
            ("alice\n", Err(UsernameError::ForbiddenChar('\n'))),
            ("al\0ice", Err(UsernameError::ForbiddenChar('\0'))),
            ("a/CN=admin", Err(UsernameError::ForbiddenChar('/'))),
            ("a=b", Err(UsernameError::ForbiddenChar('='))),
            ("a,b", Err(UsernameError::ForbiddenChar(','))),
            ("a+b", Err(UsernameError::ForbiddenChar('+'))),
            ("a;b", Err(UsernameError::ForbiddenChar(';'))),
            ("<script>", Err(UsernameError::ForbiddenChar('<'))),
            ("a\"b", Err(UsernameError::ForbiddenChar('"'))),
            ("a\\b", Err(UsernameError::ForbiddenChar('\\'))),
            ("al\u{FFFD}ce", Err(UsernameError::ForbiddenChar('\u{FFFD}'))),
            ("alicé", Err(UsernameError::NonAscii)),
            ("аlice", Err(UsernameError::NonAscii)),
            (".alice", Err(UsernameError::RuleMismatch)),
            ("-alice", Err(UsernameError::RuleMismatch)),
            ("al!ce", Err(UsernameError::RuleMismatch)),
            (&"x".repeat(65), Err(UsernameError::TooLong)),
        ];
        for (raw, want) in cases {
            let got = Username::parse(raw, &rule, false).map(|_| ());
            assert_eq!(&got, want, "{raw:?}");
        }
    }

    #[test]
    fn non_ascii_beyond_the_general_security_profile_is_refused() {
        let any = Regex::new("^.+$").unwrap();
        for (name, c) in [("ali\u{200D}ce", '\u{200D}'), ("\u{202E}ecila", '\u{202E}')] {
            assert_eq!(
                Username::parse(name, &any, true),
                Err(UsernameError::ForbiddenChar(c))
            );
        }
        assert_eq!(
            Username::parse("\u{430}lice", &any, true),
            Err(UsernameError::MixedScript)
        );
        assert!(Username::parse("zoe\u{308}", &any, true).is_ok_and(|u| u.as_str() == "zoë"));
    }

    #[test]
    fn non_ascii_when_configured() {
        let rule = Regex::new(r"^\p{L}+$").unwrap();
        assert!(Username::parse("zoë", &rule, true).is_ok());
        assert_eq!(Username::parse("zoë", &rule, false), Err(UsernameError::NonAscii));
    }

    #[test]
    fn email_table() {
        for ok in [
            "a@example.org",
            "first.last+tag@mail.example.co.uk",
            "x_y%z@a-b.io",
        ] {
            assert!(Email::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "@example.org",
            "a@",
            "a@b",
            "a b@c.d",
            "a@b..c",
            "a/b@c.d",
            "a=b@c.d",
            "a@-b.c",
            ".a@b.c",
            "é@b.c",
        ] {
            assert!(Email::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn account_key_is_one_account_per_name_in_each_mode() {
        let key = |n: &str, unicode| AccountKey::of(n, unicode);
        // ASCII sites: ASCII case only.
        assert_eq!(key("Alice", false), key("aLICE", false));
        assert_eq!(key("Alice", false).as_str(), "alice");
        assert_ne!(key("alice", false), key("alice2", false));
        assert_ne!(
            key("zoë", false),
            key("ZOË", false),
            "no Unicode folding when off"
        );
        // allow_non_ascii: NFC, full case folding, confusable skeleton.
        assert_eq!(key("Zo\u{eb}", true), key("zoe\u{308}", true));
        assert_eq!(key("ZOË", true), key("zoë", true));
        assert_eq!(key("Stra\u{df}e", true), key("STRASSE", true));
        assert_eq!(key("\u{430}lice", true), key("alice", true), "Cyrillic а");
        assert_ne!(key("alice", true), key("alicia", true));
        // A parsed name and its key agree with the free function.
        let rule = Regex::new(DEFAULT_USERNAME_RULE).unwrap();
        let u = Username::parse("Alice", &rule, false).unwrap();
        assert_eq!(u.account_key(false), key("ALICE", false));
        assert_eq!(u.to_string(), "Alice");
        assert_eq!(&*u, "Alice");
    }

    #[test]
    fn username_errors_say_what_is_wrong() {
        let rule = Regex::new(DEFAULT_USERNAME_RULE).unwrap();
        let err = Username::parse("al ice", &rule, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the username contains ' ', which is never allowed"
        );
        let err = Username::parse("zoë", &rule, false).unwrap_err();
        assert!(err.to_string().contains("allow_non_ascii"), "{err}");
    }
}
