//! The one table of `[ getacert ]` keys: name, default, one-line doc. The loader refuses
//! a key not in it ([`known_key`], [`nearest_key`] for the hint), `init`'s ca.conf lists
//! every key from it (`config::template`), and README's configuration table is checked
//! against it (a test below).

use super::DEFAULT_USERNAME_RULE;

/// Every `[ getacert ]` key with its default, as `getacert init` writes them (commented)
/// into a new ca.conf. `(key, default, comment)`.
pub const GETACERT_KEYS: &[(&str, &str, &str)] = &[
    (
        "organization",
        "(from the CA certificate)",
        "O of issued certificates",
    ),
    ("organizational_unit", "(none)", "OU of issued certificates"),
    ("country", "(from the CA certificate)", "C of issued certificates"),
    ("state", "(from the CA certificate)", "ST of issued certificates"),
    (
        "locality",
        "(from the CA certificate)",
        "L of issued certificates",
    ),
    (
        "days",
        "(default_days of the CA section, else 365)",
        "validity of issued certificates",
    ),
    (
        "username_rule",
        DEFAULT_USERNAME_RULE,
        "regular expression a username must match (in ca.conf write \\$ for $ and \\\\ for a backslash; with allow_non_ascii = yes the default admits letters of any script)",
    ),
    (
        "allow_non_ascii",
        "no",
        "yes admits non-ASCII names: NFC, compared case-folded, one script, no look-alike of a known name",
    ),
    ("require_email", "no", "yes makes the email field mandatory"),
    ("key_types", "rsa ec ed25519", "public key algorithms accepted"),
    ("rsa_min_bits", "2048", "smallest RSA key accepted"),
    ("rsa_max_bits", "16384", "largest RSA key accepted"),
    ("ec_curves", "P-256 P-384 P-521", "EC curves accepted"),
    (
        "spkac_challenge",
        "signed",
        "signed: the SPKAC challenge must come from this server's page; any: accept any",
    ),
    (
        "token_lifetime",
        "3600",
        "seconds a page's form token and SPKAC challenge stay valid",
    ),
    ("max_body", "65536", "largest request body in bytes (larger: 413)"),
    (
        "log_facility",
        "authpriv",
        "syslog facility (auth, authpriv, daemon, user, local0 … local7)",
    ),
    (
        "listen",
        "(none)",
        "FastCGI socket for `serve`: unix:/run/getacert/getacert.sock or tcp:127.0.0.1:9000",
    ),
    ("socket_mode", "0660", "permissions of the unix socket"),
    (
        "socket_group",
        "(none)",
        "group of the unix socket, e.g. www-data",
    ),
    (
        "workers",
        "4",
        "FastCGI worker threads (they sign; connections need none)",
    ),
    (
        "queue",
        "64",
        "complete requests that may wait for a worker; one more is answered 503 at once",
    ),
    (
        "request_timeout",
        "15",
        "seconds a request's params and body may take to arrive (and to wait for a worker)",
    ),
    (
        "lock_timeout",
        "10",
        "seconds to wait for the database lock before answering 503",
    ),
    (
        "crl_file",
        "(none)",
        "where `getacert crl` and revocations write the CRL (PEM)",
    ),
    (
        "ocsp_next_update",
        "60",
        "seconds an OCSP answer is valid (thisUpdate to nextUpdate): how long a revoked certificate may still sign in through a cached answer",
    ),
    (
        "auth_url",
        "/auth/",
        "the \"test my certificate\" link on the enrollment page",
    ),
    (
        "site_name",
        "(the CA certificate's common name)",
        "the name in the enrollment page's header and title",
    ),
    (
        "address_rate",
        "20/60",
        "enrollments and account actions per client address: N/SECONDS, or off",
    ),
    (
        "username_rate",
        "5/60",
        "enrollments and code attempts per username: N/SECONDS, or off",
    ),
    (
        "code_lifetime",
        "900",
        "seconds an add-device or recovery code stays valid",
    ),
    (
        "renew_days",
        "30",
        "the account page asks to renew when the presented certificate has fewer days left",
    ),
    (
        "ipv6_prefix",
        "64",
        "IPv6 clients are rate-limited by their network of this many bits",
    ),
    (
        "front_secret_file",
        "(none; `getacert init` sets DIR/front-secret)",
        "the daemon answers only FastCGI requests carrying this file's content as GETACERT_FRONT_SECRET",
    ),
];

/// Whether `key` is a `[ getacert ]` setting.
pub(super) fn known_key(key: &str) -> bool {
    GETACERT_KEYS.iter().any(|(k, _, _)| *k == key)
}

/// The known key nearest to a misspelt one, when one is near enough to be meant.
pub(super) fn nearest_key(key: &str) -> Option<&'static str> {
    GETACERT_KEYS
        .iter()
        .map(|(k, _, _)| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_gets_the_nearest_known_one_as_a_hint() {
        assert_eq!(nearest_key("rsa_min_bit"), Some("rsa_min_bits"));
        assert_eq!(nearest_key("usernamerule"), Some("username_rule"));
        assert_eq!(nearest_key("colour_scheme"), None);
    }

    /// README's configuration table is the documentation of the key table: every key in it.
    #[test]
    fn readme_configuration_table_lists_every_key() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
        for (key, _, _) in GETACERT_KEYS {
            assert!(
                rows.iter().any(|r| r
                    .split('|')
                    .nth(1)
                    .is_some_and(|c| c.contains(&format!("`{key}`")))),
                "README's configuration table has no row for {key}"
            );
        }
    }
}
