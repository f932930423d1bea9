//! The configuration: the admin's own `ca.conf` (read with OpenSSL's NCONF, so `$dir`,
//! `$ENV::`, `.include` and `default_ca` behave exactly as in `openssl ca`) plus a
//! `[ getacert ]` section for what the article's PHP hard-coded. Loading is
//! read → defaults → validate, once; every error names the file and the key.
//!
//! This module does not open the CA key or touch the database: see `ca::store`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::conf::Conf;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use regex::Regex;

use crate::ffi::openssl::{nconf_get, nconf_section};

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
    /// The lock every change takes: `<database>.lock`. Admins wrap `openssl ca` in
    /// `flock` on it.
    pub lock_file: PathBuf,
    /// Secret for form tokens and SPKAC challenges: `<database dir>/getacert.secret`.
    pub secret_file: PathBuf,
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
    ("workers", "4", "FastCGI worker threads"),
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
fn known_key(key: &str) -> bool {
    GETACERT_KEYS.iter().any(|(k, _, _)| *k == key)
}

/// The known key nearest to a misspelt one, when one is near enough to be meant.
fn nearest_key(key: &str) -> Option<&'static str> {
    GETACERT_KEYS
        .iter()
        .map(|(k, _, _)| (strsim::levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

/// The line of `file` (1-based) that sets `key` in `[section]`, for messages. `None` when
/// it comes from an `.include`d file or cannot be found.
fn line_of(file: &Path, section: &str, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
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
fn eaten_backslash(raw_line: &str) -> Option<String> {
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

struct Reader<'a> {
    conf: &'a Conf,
    file: &'a Path,
    section: String,
    /// Fall back to the unnamed default section, as `openssl ca` does for its own
    /// sections; getacert's section is read exactly.
    fallback: bool,
}

impl Reader<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            key: format!("[{}] {key}", self.section),
            problem: problem.into(),
        }
    }

    /// A key of this section only (no fallback to the default section for getacert's own).
    /// In `[ getacert ]` an empty value means the default, so that uncommenting any line
    /// of the ca.conf `init` writes keeps a configuration that loads.
    fn get(&self, key: &str) -> Option<String> {
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
    fn refuse_unknown_keys(&self) -> Result<(), ConfigError> {
        for (key, _) in nconf_section(self.conf, &self.section).unwrap_or_default() {
            if known_key(&key) {
                continue;
            }
            let at = line_of(self.file, &self.section, &key)
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

    fn path(&self, key: &str) -> Result<PathBuf, ConfigError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| self.err(key, "missing (openssl ca needs it too)"))
    }

    fn yes_no(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("yes" | "y" | "true" | "1" | "on") => Ok(true),
            Some("no" | "n" | "false" | "0" | "off") => Ok(false),
            Some(v) => Err(self.err(key, format!("{v:?} is not yes or no"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| self.err(key, format!("{v:?} is not a whole number"))),
        }
    }
}

fn facility(name: &str) -> Option<libc::c_int> {
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

fn curve(name: &str) -> Option<Nid> {
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

fn digest(name: &str) -> Option<MessageDigest> {
    match name {
        "sha256" => Some(MessageDigest::sha256()),
        "sha384" => Some(MessageDigest::sha384()),
        "sha512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

impl Config {
    /// Reads, defaults and validates `file`. The CA certificate's subject supplies
    /// subject defaults, so it is read here (the key is not).
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let top_err = |problem: String| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            problem,
        };
        let conf = crate::ffi::openssl::nconf_load(file).map_err(top_err)?;
        let top = Reader {
            conf: &conf,
            file,
            section: "ca".into(),
            fallback: true,
        };
        let ca_section = top
            .get("default_ca")
            .ok_or_else(|| top.err("default_ca", "missing: name the CA section, as openssl ca needs"))?;
        let ca = Reader {
            conf: &conf,
            file,
            section: ca_section.clone(),
            fallback: true,
        };
        let ga = Reader {
            conf: &conf,
            file,
            section: "getacert".into(),
            fallback: false,
        };
        ga.refuse_unknown_keys()?;
        let get_ga = |key: &str| ga.get(key);

        let database = ca.path("database")?;
        let db_dir = database.parent().map(Path::to_path_buf).unwrap_or_default();
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
            lock_file: PathBuf::from(format!("{}.lock", database.display())),
            secret_file: db_dir.join("getacert.secret"),
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

        let policy_name = ca.get("policy").ok_or_else(|| ca.err("policy", "missing"))?;
        let policy_items = nconf_section(&conf, &policy_name).ok_or_else(|| {
            ca.err(
                "policy",
                format!("names section [{policy_name}], which does not exist"),
            )
        })?;
        let pol = Reader {
            conf: &conf,
            file,
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

        if let Some(n) = line_of(file, "getacert", "username_rule")
            && let Some(line) = std::fs::read_to_string(file)
                .ok()
                .and_then(|t| t.lines().nth(n - 1).map(str::to_string))
            && let Some(eaten) = eaten_backslash(&line)
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

        let key_types = get_ga("key_types").unwrap_or_else(|| "rsa ec ed25519".into());
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
            let curves = get_ga("ec_curves").unwrap_or_else(|| "P-256 P-384 P-521".into());
            for c in curves.split([' ', ',']).filter(|t| !t.is_empty()) {
                keys.ec_curves.push(
                    curve(c)
                        .ok_or_else(|| ga.err("ec_curves", format!("{c:?} is not P-256, P-384 or P-521")))?,
                );
            }
        }

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
            lock_timeout: Duration::from_secs(ga.number("lock_timeout", 10u64)?),
            auth_url: get_ga("auth_url").unwrap_or_else(|| "/auth/".into()),
            site_name,
            address_rate,
            username_rate,
            code_lifetime,
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

/// `unique_subject` as `openssl ca` resolves it: index.txt.attr first, then the CA
/// section, default yes.
fn unique_subject(database: &Path, ca: &Reader<'_>) -> Result<bool, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_key_gets_the_nearest_known_one_as_a_hint() {
        assert_eq!(nearest_key("rsa_min_bit"), Some("rsa_min_bits"));
        assert_eq!(nearest_key("usernamerule"), Some("username_rule"));
        assert_eq!(nearest_key("colour_scheme"), None);
    }

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
