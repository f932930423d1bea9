//! `Username` and `Email`: the only ways to get a name into a certificate subject.
//! Whatever the configured rule says, characters that change the meaning of a
//! distinguished name or of index.txt can never pass.

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

/// A username that passed the rule. Only [`Username::parse`] makes one.
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
}

/// The form two usernames are compared in: ASCII case folded when only ASCII names are
/// allowed; with `allow_non_ascii`, NFC, full Unicode case folding, then the UTS #39
/// confusable skeleton, so "Zoë" (either spelling), "ZOË" and a Cyrillic look-alike
/// of "alice" all meet the name they imitate.
pub fn comparison_key(name: &str, unicode: bool) -> String {
    if !unicode {
        return name.to_ascii_lowercase();
    }
    let folded = caseless::default_case_fold_str(&name.nfc().collect::<String>());
    unicode_security::skeleton(&folded).collect()
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
}
