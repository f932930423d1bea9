//! The configuration: the admin's own `ca.conf` (read with OpenSSL's NCONF, so `$dir`,
//! `$ENV::`, `.include` and `default_ca` behave exactly as in `openssl ca`) plus a
//! `[ getacert ]` section for what the article's PHP hard-coded. Loading is
//! read → defaults → validate, once; every error names the file and the key.
//!
//! This module does not open the CA key or touch the database: see `ca::store`.
//!
//! Layout: `keys` (the one table of `[ getacert ]` keys), `read` (typed readers over the
//! parsed file, the name tables), `template` (the ca.conf `init` writes, from the key
//! table); here the types and the loader, [`Config::load`] for a file and
//! [`Config::from_bytes`] for a ca.conf held in memory (tests of every key).

mod keys;
mod read;
mod template;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::conf::Conf;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use regex::Regex;

use crate::ffi::openssl::nconf_section;
pub use keys::GETACERT_KEYS;
pub use read::curve_name;
use read::{Reader, digest, eaten_backslash, facility, line_of, unique_subject};
pub use template::ca_conf;

/// The default location, for CGI without `--config` or `GETACERT_CONFIG`.
pub const DEFAULT_PATH: &str = "/etc/getacert/ca.conf";

pub const DEFAULT_USERNAME_RULE: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";

/// The default rule with `allow_non_ascii = yes`: letters and digits of any script.
pub const DEFAULT_UNICODE_USERNAME_RULE: &str = r"^[\p{L}\p{N}][\p{L}\p{M}\p{N}._-]{0,63}$";

/// A configuration error: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// How `openssl ca` treats one subject field in the `policy` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRule {
    Match,
    Supplied,
    Optional,
}

/// `copy_extensions` as ca.conf says it. getacert reads it (so a misspelling is an
/// error) but never copies an extension from a request: what a certificate may do comes
/// from the configuration only. `check` warns when it is not `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyExtensions {
    None,
    /// `copy` or `copyall`: ignored, with a warning from `check`.
    Requested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeRule {
    /// The SPKAC challenge must be one this server issued (in the page) and not expired.
    Signed,
    /// Any challenge is accepted (for old scripts); the signature is still checked.
    Any,
}

/// Which public keys may be certified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub rsa: bool,
    pub rsa_min_bits: u32,
    pub rsa_max_bits: u32,
    pub ec_curves: Vec<Nid>,
    pub ed25519: bool,
}

/// The subject parts getacert adds to every certificate (the username is the CN).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectParts {
    pub country: Option<String>,
    pub state: Option<String>,
    pub locality: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
}

/// Where the CA lives: the keys of the `[ CA_default ]`-style section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    pub database: PathBuf,
    pub new_certs_dir: PathBuf,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub serial: PathBuf,
    pub crlnumber: Option<PathBuf>,
    pub crl_file: Option<PathBuf>,
}

/// The validated configuration.
pub struct Config {
    pub file: PathBuf,
    pub ca_section: String,
    pub paths: CaPaths,
    pub days: u32,
    pub crl_days: u32,
    pub digest: MessageDigest,
    pub digest_name: String,
    /// Set when ca.conf names a digest too weak to sign with (the article's sha1).
    pub digest_note: Option<String>,
    pub policy: Vec<(Nid, PolicyRule)>,
    pub preserve: bool,
    pub email_in_dn: bool,
    pub unique_subject: bool,
    pub rand_serial: bool,
    pub x509_extensions: Option<String>,
    /// The `x509_extensions` section sets subjectAltName itself (getacert then adds no
    /// email SAN of its own).
    pub x509_extensions_san: bool,
    pub copy_extensions: CopyExtensions,
    pub subject: SubjectParts,
    pub username_rule: Regex,
    pub allow_non_ascii: bool,
    pub require_email: bool,
    pub keys: KeyPolicy,
    pub challenge: ChallengeRule,
    pub token_lifetime: Duration,
    pub max_body: usize,
    pub log_facility: libc::c_int,
    pub listen: Option<String>,
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    pub workers: usize,
    /// Complete requests that may wait for a worker (more: 503 at once).
    pub queue: usize,
    /// How long a request's params and body may take to arrive, and to wait for a worker.
    pub request_timeout: Duration,
    pub lock_timeout: Duration,
    pub auth_url: String,
    /// The name in the page's header and title; `None`: the CA certificate's common name.
    pub site_name: Option<String>,
    /// Enrollments and account actions per client address.
    pub address_rate: Option<crate::ratelimit::Rate>,
    /// Enrollments and code attempts per username.
    pub username_rate: Option<crate::ratelimit::Rate>,
    /// Seconds an add-device or recovery code stays valid.
    pub code_lifetime: i64,
    /// The account page's renewal banner shows when fewer days are left.
    pub renew_days: i64,
    /// Seconds from an OCSP answer's thisUpdate to its nextUpdate.
    pub ocsp_next_update: u32,
    /// IPv6 clients are counted by their network of this many bits (64).
    pub ipv6_prefix: u8,
    /// The file holding the secret every FastCGI request must carry as
    /// `GETACERT_FRONT_SECRET` (the daemon only; not read under CGI).
    pub front_secret_file: Option<PathBuf>,
    /// The CA certificate, read once here (subject defaults) and used to sign.
    pub ca_cert: openssl::x509::X509,
    /// The parsed file, kept for `x509_extensions` (applied by OpenSSL itself).
    pub conf: Conf,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("file", &self.file)
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads, defaults and validates `file`. The CA certificate's subject supplies
    /// subject defaults, so it is read here (the key is not).
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let conf = crate::ffi::openssl::nconf_load(file).map_err(|problem| top_err(file, problem))?;
        // For line numbers in messages only: NCONF has read the file itself.
        let text = std::fs::read_to_string(file).unwrap_or_default();
        Config::from_parsed(file, conf, &text)
    }

    /// [`Config::load`] of a ca.conf held in memory, named `file` in messages; relative
    /// paths and `.include` are resolved from the current directory, as for a file.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let conf = crate::ffi::openssl::nconf_load_bytes(bytes).map_err(|problem| top_err(file, problem))?;
        Config::from_parsed(file, conf, &String::from_utf8_lossy(bytes))
    }

    /// Defaults and validation over a parsed ca.conf (`text`: the file as written).
    fn from_parsed(file: &Path, conf: Conf, text: &str) -> Result<Config, ConfigError> {
        let top = Reader {
            conf: &conf,
            file,
            text,
            section: "ca".into(),
            fallback: true,
        };
        let ca_section = top
            .get("default_ca")
            .ok_or_else(|| top.err("default_ca", "missing: name the CA section, as openssl ca needs"))?;
        let ca = Reader {
            conf: &conf,
            file,
            text,
            section: ca_section.clone(),
            fallback: true,
        };
        let ga = Reader {
            conf: &conf,
            file,
            text,
            section: "getacert".into(),
            fallback: false,
        };
        ga.refuse_unknown_keys()?;
        let get_ga = |key: &str| ga.get(key);

        let database = ca.path("database")?;
        let paths = CaPaths {
            new_certs_dir: ca.path("new_certs_dir")?,
            certificate: ca.path("certificate")?,
            private_key: ca.path("private_key")?,
            serial: ca.path("serial")?,
            crlnumber: ca.get("crlnumber").filter(|v| !v.is_empty()).map(PathBuf::from),
            crl_file: get_ga("crl_file")
                .or_else(|| ca.get("crl"))
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            database,
        };

        // The CA certificate supplies subject defaults and `match` values.
        let ca_cert = std::fs::read(&paths.certificate).map_err(|e| {
            ca.err(
                "certificate",
                format!("cannot read {}: {e}", paths.certificate.display()),
            )
        })?;
        let ca_cert = openssl::x509::X509::from_pem(&ca_cert)
            .map_err(|e| ca.err("certificate", format!("not a PEM certificate: {e}")))?;
        let ca_field = |nid: Nid| {
            ca_cert
                .subject_name()
                .entries_by_nid(nid)
                .next()
                .and_then(|e| e.data().to_string().ok())
        };
        let pick = |key: &str, nid: Nid| get_ga(key).filter(|v| !v.is_empty()).or_else(|| ca_field(nid));
        let subject = SubjectParts {
            country: pick("country", Nid::COUNTRYNAME),
            state: pick("state", Nid::STATEORPROVINCENAME),
            locality: pick("locality", Nid::LOCALITYNAME),
            organization: pick("organization", Nid::ORGANIZATIONNAME),
            organizational_unit: get_ga("organizational_unit").filter(|v| !v.is_empty()),
        };
        if let Some(c) = &subject.country
            && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(ga.err("country", format!("{c:?} is not a two-letter country code")));
        }

        let days = match get_ga("days") {
            Some(_) => ga.number("days", 365u32)?,
            None => ca.number("default_days", 365u32)?,
        };
        if days == 0 || days > 36500 {
            return Err(ga.err("days", format!("{days} is not between 1 and 36500")));
        }
        let crl_days = ca.number("default_crl_days", 30u32)?;

        let md = ca
            .get("default_md")
            .unwrap_or_else(|| "default".into())
            .to_ascii_lowercase();
        let (digest, digest_name, digest_note) = match digest(&md) {
            Some(d) => (d, md.clone(), None),
            None => (
                MessageDigest::sha256(),
                "sha256".to_string(),
                (md != "default").then(|| {
                    format!(
                        "default_md = {md} is not used to sign: OpenSSL 3 clients refuse such \
                         certificates (\"ca md too weak\"); getacert signs with sha256"
                    )
                }),
            ),
        };

        let policy = read::policy(&conf, &ca)?;

        let unique_subject = unique_subject(&paths.database, &ca)?;
        let copy_extensions = match ca.get("copy_extensions").as_deref() {
            None | Some("none") => CopyExtensions::None,
            Some("copy" | "copyall") => CopyExtensions::Requested,
            Some(v) => return Err(ca.err("copy_extensions", format!("{v:?} is not none, copy or copyall"))),
        };
        let x509_extensions = ca.get("x509_extensions").filter(|v| !v.is_empty());
        if let Some(sec) = &x509_extensions
            && nconf_section(&conf, sec).is_none()
        {
            return Err(ca.err(
                "x509_extensions",
                format!("names section [{sec}], which does not exist"),
            ));
        }

        let x509_extensions_san = x509_extensions.as_ref().is_some_and(|sec| {
            nconf_section(&conf, sec).is_some_and(|items| {
                items
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("subjectAltName"))
            })
        });

        if let Some(n) = line_of(text, "getacert", "username_rule")
            && let Some(line) = text.lines().nth(n - 1)
            && let Some(eaten) = eaten_backslash(line)
        {
            return Err(ga.err(
                "username_rule",
                format!(
                    "line {n}: OpenSSL reads {eaten:?} in ca.conf as an escape and drops the \
                     backslash; write each backslash of the rule as \\\\ and each $ as \\$"
                ),
            ));
        }
        let allow_non_ascii = ga.yes_no("allow_non_ascii", false)?;
        let rule_text = get_ga("username_rule").unwrap_or_else(|| {
            if allow_non_ascii {
                DEFAULT_UNICODE_USERNAME_RULE
            } else {
                DEFAULT_USERNAME_RULE
            }
            .into()
        });
        let username_rule = Regex::new(&rule_text)
            .map_err(|e| ga.err("username_rule", format!("not a regular expression: {e}")))?;

        let keys = read::key_policy(&ga)?;

        let challenge = match get_ga("spkac_challenge").as_deref() {
            None | Some("signed") => ChallengeRule::Signed,
            Some("any") => ChallengeRule::Any,
            Some(v) => return Err(ga.err("spkac_challenge", format!("{v:?} is not signed or any"))),
        };
        let facility_name = get_ga("log_facility").unwrap_or_else(|| "authpriv".into());
        let log_facility = facility(&facility_name).ok_or_else(|| {
            ga.err(
                "log_facility",
                format!("{facility_name:?} is not a syslog facility"),
            )
        })?;
        let socket_mode = match get_ga("socket_mode") {
            None => 0o660,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| ga.err("socket_mode", format!("{m:?} is not an octal mode like 0660")))?,
        };
        let workers = ga.number("workers", 4usize)?;
        if !(1..=256).contains(&workers) {
            return Err(ga.err("workers", "must be between 1 and 256"));
        }
        let queue = ga.number("queue", 64usize)?;
        if !(1..=65536).contains(&queue) {
            return Err(ga.err("queue", "must be between 1 and 65536"));
        }
        let request_timeout = ga.number("request_timeout", 15u64)?;
        if !(1..=3600).contains(&request_timeout) {
            return Err(ga.err("request_timeout", "must be between 1 and 3600 seconds"));
        }
        let max_body = ga.number("max_body", 65536usize)?;
        if !(1024..=16 << 20).contains(&max_body) {
            return Err(ga.err("max_body", "must be between 1024 and 16777216"));
        }

        let rate = |key: &str, default: &str| {
            let v = get_ga(key).unwrap_or_else(|| default.to_string());
            crate::ratelimit::Rate::parse(&v)
                .ok_or_else(|| ga.err(key, format!("{v:?} is not N/SECONDS (e.g. 20/60) or off")))
        };
        let address_rate = rate("address_rate", "20/60")?;
        let username_rate = rate("username_rate", "5/60")?;
        let site_name = match get_ga("site_name").map(|v| v.trim().to_string()) {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) if v.chars().count() > 100 || v.chars().any(char::is_control) => {
                return Err(ga.err(
                    "site_name",
                    "must be at most 100 characters, without control characters",
                ));
            }
            Some(v) => Some(v),
        };
        let code_lifetime = ga.number("code_lifetime", 900i64)?;
        if !(60..=7 * 86400).contains(&code_lifetime) {
            return Err(ga.err("code_lifetime", "must be between 60 and 604800 seconds"));
        }
        let renew_days = ga.number("renew_days", 30i64)?;
        if !(0..=3650).contains(&renew_days) {
            return Err(ga.err("renew_days", "must be between 0 and 3650 days"));
        }

        let ocsp_next_update = ga.number("ocsp_next_update", 60u32)?;
        if !(1..=7 * 86400).contains(&ocsp_next_update) {
            return Err(ga.err("ocsp_next_update", "must be between 1 and 604800 seconds"));
        }
        let ipv6_prefix = ga.number("ipv6_prefix", 64u8)?;
        if !(16..=128).contains(&ipv6_prefix) {
            return Err(ga.err("ipv6_prefix", "must be between 16 and 128"));
        }
        let front_secret_file = get_ga("front_secret_file")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);

        Ok(Config {
            ipv6_prefix,
            front_secret_file,
            file: file.to_path_buf(),
            ca_section,
            paths,
            days,
            crl_days,
            digest,
            digest_name,
            digest_note,
            policy,
            preserve: ca.yes_no("preserve", false)?,
            email_in_dn: ca.yes_no("email_in_dn", true)?,
            unique_subject,
            rand_serial: ca.yes_no("rand_serial", false)?,
            x509_extensions,
            x509_extensions_san,
            copy_extensions,
            subject,
            username_rule,
            allow_non_ascii,
            require_email: ga.yes_no("require_email", false)?,
            keys,
            challenge,
            token_lifetime: Duration::from_secs(ga.number("token_lifetime", 3600u64)?),
            max_body,
            log_facility,
            listen: get_ga("listen").filter(|v| !v.is_empty()),
            socket_mode,
            socket_group: get_ga("socket_group").filter(|v| !v.is_empty()),
            workers,
            queue,
            request_timeout: Duration::from_secs(request_timeout),
            lock_timeout: Duration::from_secs(ga.number("lock_timeout", 10u64)?),
            auth_url: get_ga("auth_url").unwrap_or_else(|| "/auth/".into()),
            site_name,
            address_rate,
            username_rate,
            code_lifetime,
            renew_days,
            ocsp_next_update,
            ca_cert,
            conf,
        })
    }

    /// `--config`, else `GETACERT_CONFIG`, else the default path.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("GETACERT_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }
}

fn top_err(file: &Path, problem: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        key: String::new(),
        problem,
    }
}

/// A CA made by `getacert init` in `dir` (EC P-256, 30 days), for tests: its ca.conf.
#[cfg(test)]
pub(crate) fn test_ca(dir: &Path) -> PathBuf {
    let opts = crate::admin::InitOptions {
        cn: "Test CA".into(),
        org: None,
        country: None,
        key: "ec:P-256".into(),
        days: 30,
    };
    crate::admin::init(dir, &opts).unwrap();
    dir.join("ca.conf")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_bytes` reads a ca.conf from memory exactly as `load` reads the file: the same
    /// values, the same errors naming the file and the key.
    #[test]
    fn from_bytes_matches_load_and_names_the_key_of_a_bad_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = test_ca(dir.path());
        let text = std::fs::read_to_string(&file).unwrap();
        let loaded = Config::load(&file).unwrap();
        let parsed = Config::from_bytes(&file, text.as_bytes()).unwrap();
        assert_eq!(loaded.paths, parsed.paths);
        assert_eq!(loaded.workers, parsed.workers);
        let table: &[(&str, &str)] = &[
            ("workers = 0", "[getacert] workers: must be between 1 and 256"),
            (
                "rsa_min_bits = 1024",
                "[getacert] rsa_min_bits: below 2048 is not safe",
            ),
            ("rsa_min_bit = 4096", "did you mean rsa_min_bits?"),
            ("spkac_challenge = maybe", "\"maybe\" is not signed or any"),
            ("code_lifetime = 10", "must be between 60 and 604800 seconds"),
        ];
        for (line, want) in table {
            let bad = format!("{text}{line}\n");
            let err = Config::from_bytes(&file, bad.as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with(&file.display().to_string()), "{line}: {err}");
            assert!(err.contains(want), "{line}: {err}");
        }
        let syntax = Config::from_bytes(&file, b"[ ca\n").unwrap_err().to_string();
        assert!(syntax.contains("syntax error on line 1"), "{syntax}");
    }

    /// Every key of the table, through `from_bytes`: a good value loads, a bad one (for
    /// the keys that have one) is refused naming the file and `[getacert] KEY`.
    #[test]
    fn from_bytes_table_of_every_getacert_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = test_ca(dir.path());
        let text = std::fs::read_to_string(&file).unwrap();
        // Every [getacert] line init wrote is commented out except front_secret_file,
        // so appending a line sets the key once.
        let table: &[(&str, &str, Option<&str>)] = &[
            ("organization", "Example Org", None),
            ("organizational_unit", "People", None),
            ("country", "DE", Some("Germany")),
            ("state", "Berlin", None),
            ("locality", "Berlin", None),
            ("days", "90", Some("0")),
            ("username_rule", r"^[a-z]{1,8}\$", Some("([a-z")),
            ("allow_non_ascii", "yes", Some("perhaps")),
            ("require_email", "yes", Some("perhaps")),
            ("key_types", "rsa ec", Some("dsa")),
            ("rsa_min_bits", "3072", Some("1024")),
            ("rsa_max_bits", "8192", Some("lots")),
            ("ec_curves", "P-256", Some("P-999")),
            ("spkac_challenge", "any", Some("maybe")),
            ("token_lifetime", "600", Some("soon")),
            ("max_body", "131072", Some("10")),
            ("log_facility", "local3", Some("local9")),
            ("listen", "unix:/run/getacert/test.sock", None),
            ("socket_mode", "0600", Some("rw")),
            ("socket_group", "www-data", None),
            ("workers", "8", Some("0")),
            ("queue", "128", Some("0")),
            ("request_timeout", "30", Some("0")),
            ("lock_timeout", "5", Some("never")),
            ("crl_file", "/tmp/getacert-test.crl", None),
            ("ocsp_next_update", "120", Some("0")),
            ("auth_url", "/login/", None),
            ("site_name", "Example sign-in", None),
            ("address_rate", "off", Some("fast")),
            ("username_rate", "10/60", Some("10")),
            ("code_lifetime", "3600", Some("10")),
            ("renew_days", "14", Some("-1")),
            ("ipv6_prefix", "56", Some("8")),
            ("front_secret_file", "/etc/getacert/front-secret", None),
        ];
        for (key, _, _) in keys::GETACERT_KEYS {
            assert!(table.iter().any(|(k, _, _)| k == key), "no row for {key}");
        }
        for (key, good, bad) in table {
            let conf = format!("{text}{key} = {good}\n");
            if let Err(e) = Config::from_bytes(&file, conf.as_bytes()) {
                panic!("{key} = {good}: {e}");
            }
            if let Some(bad) = bad {
                let conf = format!("{text}{key} = {bad}\n");
                let err =
                    Config::from_bytes(&file, conf.as_bytes()).expect_err(&format!("{key} = {bad} loads"));
                let err = err.to_string();
                assert!(
                    err.starts_with(&file.display().to_string()),
                    "{key} = {bad}: {err}"
                );
                assert!(err.contains(&format!("[getacert] {key}")), "{key} = {bad}: {err}");
            }
        }
    }
}
