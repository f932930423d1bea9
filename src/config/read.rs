//! Typed readers over a parsed ca.conf (NCONF): a section's keys as paths, yes/no and
//! numbers, with errors naming the file, the `[section] key` and the problem; and the
//! small name tables the loader maps values through (syslog facilities, curves, digests).

use std::path::{Path, PathBuf};

use openssl::conf::Conf;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;

use super::keys::{known_key, nearest_key};
use super::{ConfigError, KeyPolicy, PolicyRule};
use crate::ffi::openssl::{nconf_get, nconf_section};

/// The line of ca.conf (1-based; `text` as written) that sets `key` in `[section]`, for
/// messages. `None` when it comes from an `.include`d file or cannot be found.
pub(super) fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.trim_end_matches(']').trim().to_string();
        } else if current == section
            && let Some((k, _)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(n + 1);
        }
    }
    None
}

/// ca.conf is read by OpenSSL, which takes a backslash as an escape (`\d` reaches the
/// program as `d`, `\n` as a newline) and `$` as a variable: a regular expression must
/// be written with `\\` for each backslash and `\$` for each `$`. This finds a
/// backslash that OpenSSL ate, from the line as written, so the rule is not silently
/// different from what the admin typed.
pub(super) fn eaten_backslash(raw_line: &str) -> Option<String> {
    let value = raw_line.split_once('=')?.1;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\' | '$' | '"' | '\'') => {}
                Some(other) => return Some(format!("\\{other}")),
                None => return Some("\\".to_string()),
            }
        }
    }
    None
}

pub(super) struct Reader<'a> {
    pub(super) conf: &'a Conf,
    pub(super) file: &'a Path,
    /// ca.conf as written (for line numbers in messages; empty when unreadable).
    pub(super) text: &'a str,
    pub(super) section: String,
    /// Fall back to the unnamed default section, as `openssl ca` does for its own
    /// sections; getacert's section is read exactly.
    pub(super) fallback: bool,
}

impl Reader<'_> {
    pub(super) fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: format!("[{}] {key}", self.section),
            problem: problem.into(),
        }
    }

    /// A key of this section only (no fallback to the default section for getacert's own).
    /// In `[ getacert ]` an empty value means the default, so that uncommenting any line
    /// of the ca.conf `init` writes keeps a configuration that loads.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        let value = if self.fallback {
            nconf_get(self.conf, &self.section, key)
        } else {
            debug_assert!(
                known_key(key),
                "[getacert] {key} is read but not in GETACERT_KEYS"
            );
            nconf_section(self.conf, &self.section)
                .and_then(|kv| kv.into_iter().find(|(k, _)| k == key).map(|(_, v)| v))
        };
        value
            .map(|v| v.trim().to_string())
            .filter(|v| self.fallback || !v.is_empty())
    }

    /// Every key of `[ getacert ]` must be one getacert knows: a misspelt
    /// `rsa_min_bit = 4096` would otherwise leave the default in force unnoticed.
    pub(super) fn refuse_unknown_keys(&self) -> Result<(), ConfigError> {
        for (key, _) in nconf_section(self.conf, &self.section).unwrap_or_default() {
            if known_key(&key) {
                continue;
            }
            let at = line_of(self.text, &self.section, &key)
                .map(|n| format!(" (line {n})"))
                .unwrap_or_default();
            let hint = match nearest_key(&key) {
                Some(k) => format!("; did you mean {k}?"),
                None => "; `getacert init` writes a ca.conf listing every key".to_string(),
            };
            return Err(self.err(&key, format!("unknown setting{at}{hint}")));
        }
        Ok(())
    }

    pub(super) fn path(&self, key: &str) -> Result<PathBuf, ConfigError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| self.err(key, "missing (openssl ca needs it too)"))
    }

    pub(super) fn yes_no(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("yes" | "y" | "true" | "1" | "on") => Ok(true),
            Some("no" | "n" | "false" | "0" | "off") => Ok(false),
            Some(v) => Err(self.err(key, format!("{v:?} is not yes or no"))),
        }
    }

    pub(super) fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.err(key, format!("{v:?} is not a whole number"))),
        }
    }
}

pub(super) fn facility(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "auth" => libc::LOG_AUTH,
        "authpriv" => libc::LOG_AUTHPRIV,
        "daemon" => libc::LOG_DAEMON,
        "user" => libc::LOG_USER,
        "local0" => libc::LOG_LOCAL0,
        "local1" => libc::LOG_LOCAL1,
        "local2" => libc::LOG_LOCAL2,
        "local3" => libc::LOG_LOCAL3,
        "local4" => libc::LOG_LOCAL4,
        "local5" => libc::LOG_LOCAL5,
        "local6" => libc::LOG_LOCAL6,
        "local7" => libc::LOG_LOCAL7,
        _ => return None,
    })
}

pub(super) fn curve(name: &str) -> Option<Nid> {
    match name {
        "P-256" | "prime256v1" | "secp256r1" => Some(Nid::X9_62_PRIME256V1),
        "P-384" | "secp384r1" => Some(Nid::SECP384R1),
        "P-521" | "secp521r1" => Some(Nid::SECP521R1),
        _ => None,
    }
}

/// The short curve name for messages.
pub fn curve_name(nid: Nid) -> &'static str {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256",
        Nid::SECP384R1 => "P-384",
        Nid::SECP521R1 => "P-521",
        _ => "an unsupported curve",
    }
}

pub(super) fn digest(name: &str) -> Option<MessageDigest> {
    match name {
        "sha256" => Some(MessageDigest::sha256()),
        "sha384" => Some(MessageDigest::sha384()),
        "sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// `unique_subject` as `openssl ca` resolves it: index.txt.attr first, then the CA
/// section, default yes.
pub(super) fn unique_subject(database: &Path, ca: &Reader<'_>) -> Result<bool, ConfigError> {
    let attr = PathBuf::from(format!("{}.attr", database.display()));
    if let Ok(text) = std::fs::read_to_string(&attr) {
        for line in text.lines() {
            if let Some((k, v)) = line.split_once('=')
                && k.trim() == "unique_subject"
            {
                return match v.trim().to_ascii_lowercase().as_str() {
                    "no" | "n" | "false" => Ok(false),
                    _ => Ok(true),
                };
            }
        }
    }
    ca.yes_no("unique_subject", true)
}

/// The `policy` section `ca` names, as `openssl ca` applies it: field → match, supplied
/// or optional.
pub(super) fn policy(conf: &Conf, ca: &Reader<'_>) -> Result<Vec<(Nid, PolicyRule)>, ConfigError> {
    let policy_name = ca.get("policy").ok_or_else(|| ca.err("policy", "missing"))?;
    let policy_items = nconf_section(conf, &policy_name).ok_or_else(|| {
        ca.err(
            "policy",
            format!("names section [{policy_name}], which does not exist"),
        )
    })?;
    let pol = Reader {
        conf,
        file: ca.file,
        text: ca.text,
        section: policy_name.clone(),
        fallback: false,
    };
    let mut policy = Vec::new();
    for (field, rule) in policy_items {
        let nid = openssl::asn1::Asn1Object::from_str(&field)
            .map(|o| o.nid())
            .map_err(|_| pol.err(&field, "is not a known subject field"))?;
        let rule = match rule.trim() {
            "match" => PolicyRule::Match,
            "supplied" => PolicyRule::Supplied,
            "optional" => PolicyRule::Optional,
            other => return Err(pol.err(&field, format!("{other:?} is not match, supplied or optional"))),
        };
        policy.push((nid, rule));
    }
    Ok(policy)
}

/// `key_types`, `rsa_min_bits`, `rsa_max_bits`, `ec_curves` of `[ getacert ]`.
pub(super) fn key_policy(ga: &Reader<'_>) -> Result<KeyPolicy, ConfigError> {
    let key_types = ga.get("key_types").unwrap_or_else(|| "rsa ec ed25519".into());
    let mut keys = KeyPolicy {
        rsa: false,
        rsa_min_bits: ga.number("rsa_min_bits", 2048)?,
        rsa_max_bits: ga.number("rsa_max_bits", 16384)?,
        ec_curves: Vec::new(),
        ed25519: false,
    };
    let mut ec = false;
    for t in key_types.split([' ', ',']).filter(|t| !t.is_empty()) {
        match t.to_ascii_lowercase().as_str() {
            "rsa" => keys.rsa = true,
            "ec" => ec = true,
            "ed25519" => keys.ed25519 = true,
            other => return Err(ga.err("key_types", format!("{other:?} is not rsa, ec or ed25519"))),
        }
    }
    if keys.rsa_min_bits < 2048 {
        return Err(ga.err("rsa_min_bits", "below 2048 is not safe"));
    }
    if ec {
        let curves = ga.get("ec_curves").unwrap_or_else(|| "P-256 P-384 P-521".into());
        for c in curves.split([' ', ',']).filter(|t| !t.is_empty()) {
            keys.ec_curves.push(
                curve(c).ok_or_else(|| ga.err("ec_curves", format!("{c:?} is not P-256, P-384 or P-521")))?,
            );
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backslash_openssl_would_eat_is_found_in_the_line_as_written() {
        assert_eq!(
            eaten_backslash(r"username_rule = ^[a-z]\d+\$"),
            Some(r"\d".into())
        );
        assert_eq!(eaten_backslash(r"username_rule = ^a\.b\$"), Some(r"\.".into()));
        assert_eq!(eaten_backslash(r"username_rule = ^[a-z]\\d+\$"), None);
        assert_eq!(eaten_backslash(r"username_rule = ^[a-z]+\$"), None);
    }
}
