//! The admin commands: `init` (a new CA directory, the article's steps 1 and 4 done
//! right), `check` (is this deployment sound, and how to fix it if not) and `list`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};

use crate::app::{App, now};
use crate::ca::index::{self, Status};
use crate::ca::sign::Ca;
use crate::ca::store::{Locked, Store};
use crate::config::{Config, ca_conf};
use crate::enroll::username::comparison_key;

/// What `init` makes.
pub struct InitOptions {
    pub cn: String,
    pub org: Option<String>,
    pub country: Option<String>,
    pub key: String,
    pub days: u32,
}

fn make_key(spec: &str) -> Result<PKey<Private>, String> {
    let bad = || format!("--key {spec:?}: use rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384");
    let (kind, param) = spec.split_once(':').ok_or_else(bad)?;
    let key = match kind {
        "rsa" => {
            let bits: u32 = param.parse().map_err(|_| bad())?;
            if !(2048..=8192).contains(&bits) {
                return Err(bad());
            }
            PKey::from_rsa(Rsa::generate(bits).map_err(|e| e.to_string())?)
        }
        "ec" => {
            let nid = match param {
                "P-256" | "prime256v1" => Nid::X9_62_PRIME256V1,
                "P-384" | "secp384r1" => Nid::SECP384R1,
                _ => return Err(bad()),
            };
            let group = EcGroup::from_curve_name(nid).map_err(|e| e.to_string())?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(|e| e.to_string())?)
        }
        _ => return Err(bad()),
    };
    key.map_err(|e| e.to_string())
}

fn ca_cert(key: &PKey<Private>, opts: &InitOptions) -> Result<X509, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    if let Some(c) = &opts.country {
        name.append_entry_by_nid(Nid::COUNTRYNAME, c)?;
    }
    if let Some(o) = &opts.org {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, o)?;
    }
    name.append_entry_by_nid(Nid::COMMONNAME, &opts.cn)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    // notBefore a few minutes back, like issued certificates (see NOT_BEFORE_SLACK).
    let back = crate::app::now() - crate::ca::sign::NOT_BEFORE_SLACK;
    let (from, until) = (
        Asn1Time::from_unix(back as libc::time_t)?,
        Asn1Time::days_from_now(opts.days)?,
    );
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.set_pubkey(key)?;
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

/// Creates `path` (never over an existing file) with `content` and `mode`, fsynced.
pub(crate) fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), String> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(content)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn init(dir: &Path, opts: &InitOptions) -> Result<(), String> {
    for existing in ["rootCA.key", "rootCA.pem", "ca.conf", "index.txt", "serial"] {
        if dir.join(existing).exists() {
            return Err(format!(
                "{} already exists: refusing to overwrite a CA. Choose another directory.",
                dir.join(existing).display()
            ));
        }
    }
    fs::create_dir_all(dir.join("newcerts")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Only the CA's owner enters the directory; the web server reads what it needs (the
    // CA certificate, the CRL) as root at start-up, or through getacert.
    for d in [dir.clone(), dir.join("newcerts")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let key = make_key(&opts.key)?;
    let cert = ca_cert(&key, opts).map_err(|e| format!("making the CA certificate: {e}"))?;
    let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    let cert_pem = cert.to_pem().map_err(|e| e.to_string())?;
    // A failure part way (a full disk) removes every file this init made.
    let files = [
        ("rootCA.key", key_pem.as_slice(), 0o600),
        ("rootCA.pem", cert_pem.as_slice(), 0o644),
        ("ca-bundle.crt", cert_pem.as_slice(), 0o644),
        ("index.txt", b"".as_slice(), 0o640),
        ("index.txt.attr", b"unique_subject = no\n".as_slice(), 0o640),
        ("serial", b"1000\n".as_slice(), 0o640),
        ("crlnumber", b"1000\n".as_slice(), 0o640),
    ];
    let conf = ca_conf(&dir);
    let mut created: Vec<PathBuf> = Vec::new();
    let mut made = || -> Result<(), String> {
        let conf_file = ("ca.conf", conf.as_bytes(), 0o640);
        for (name, content, mode) in files.into_iter().chain([conf_file]) {
            let path = dir.join(name);
            let existed = path.exists();
            let written = write_new(&path, content, mode);
            if !existed && path.exists() {
                created.push(path);
            }
            written?;
        }
        for name in [
            "front-secret",
            "front-secret.nginx",
            "front-secret.apache",
            "crl.pem",
            "index.txt.lock",
        ] {
            if !dir.join(name).exists() {
                created.push(dir.join(name));
            }
        }
        write_front_secret(&dir)?;
        // An empty CRL from the start, so ssl_crl / SSLCARevocationFile can point at it
        // before the first revocation.
        let app = Config::load(&dir.join("ca.conf"))
            .map_err(|e| e.to_string())
            .and_then(|c| App::new(c).map_err(|e| e.to_string()))?;
        crl(&app, true).map(|_| ())
    };
    if let Err(e) = made() {
        for path in created {
            let _ = fs::remove_file(path);
        }
        return Err(e);
    }
    println!("Made a CA in {}:", dir.display());
    println!("  rootCA.key (0600: only this user may read it), rootCA.pem, ca-bundle.crt,");
    println!("  index.txt, index.txt.attr, serial, crlnumber, crl.pem (empty), newcerts/, ca.conf,");
    println!("  front-secret, front-secret.nginx, front-secret.apache (0600: the web server's proof;");
    println!("  nginx/getacert.conf and apache/getacert.conf include them)");
    println!("Next: getacert --config {} check", dir.join("ca.conf").display());
    Ok(())
}

/// The front secret (64 hex digits from 32 random bytes) and the two web-server
/// snippets that send it, all 0600: read by getacert and by the web server's master
/// process (root), never by its workers or by PHP.
fn write_front_secret(dir: &Path) -> Result<(), String> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| format!("random front secret: {e}"))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_new(&dir.join("front-secret"), format!("{hex}\n").as_bytes(), 0o600)?;
    write_new(
        &dir.join("front-secret.nginx"),
        format!(
            "# Included by nginx/getacert.conf in the getacert location only: never in a PHP one.\n\
             fastcgi_param GETACERT_FRONT_SECRET \"{hex}\";\n"
        )
        .as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join("front-secret.apache"),
        format!(
            "# Included by apache/getacert.conf inside <Location \"/getacert.php\"> only.\n\
             SetEnv GETACERT_FRONT_SECRET \"{hex}\"\n"
        )
        .as_bytes(),
        0o600,
    )
}

/// What `check` found: problems (the deployment is not sound: exit 1) and warnings
/// (getacert works around them, but the admin should know), each with its fix.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn check(config_path: &Path) -> Report {
    let mut report = Report::default();
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            report.problems.push(e.to_string());
            return report;
        }
    };
    let problems = &mut report.problems;
    let warnings = &mut report.warnings;
    let p = &config.paths;
    match fs::metadata(&p.private_key) {
        Ok(m) if m.mode() & 0o077 != 0 => problems.push(format!(
            "{} is readable by group or others (mode {:04o}): run `chmod 600 {}` and make it owned by the user getacert runs as",
            p.private_key.display(),
            m.mode() & 0o7777,
            p.private_key.display()
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("{}: {e}", p.private_key.display())),
    }
    web_server_ownership(&config, problems, warnings);
    match Ca::load(&config) {
        Ok(ca) => {
            let now_t = Asn1Time::days_from_now(0).ok();
            if now_t.as_ref().is_some_and(|n| ca.cert.not_after() < n) {
                problems.push(format!(
                    "{}: the CA certificate has expired",
                    p.certificate.display()
                ));
            }
            if let Some(w) = ca_profile_warning(&ca.cert, &p.private_key, &p.certificate) {
                warnings.push(w);
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    if let Some(note) = &config.digest_note {
        warnings.push(format!(
            "{}: {note}; set default_md = sha256 to silence this",
            config.file.display()
        ));
    }
    if config.copy_extensions == crate::config::CopyExtensions::Requested {
        warnings.push(format!(
            "{}: copy_extensions is not none: getacert never copies extensions from a request \
             (set copy_extensions = none to silence this)",
            config.file.display()
        ));
    }
    match &config.front_secret_file {
        None => warnings.push(format!(
            "{}: front_secret_file is not set: the daemon takes whatever reaches its socket for the \
             web server (a PHP script can claim any client certificate); see docs/deployment.md",
            config.file.display()
        )),
        Some(f) => match fs::metadata(f) {
            Ok(m) if m.mode() & 0o077 != 0 => problems.push(format!(
                "{} is readable by group or others (mode {:04o}): run `chmod 600 {}`",
                f.display(),
                m.mode() & 0o7777,
                f.display()
            )),
            Ok(_) => {}
            Err(e) => problems.push(format!(
                "front_secret_file {}: {e} (write one: openssl rand -hex 32 > {})",
                f.display(),
                f.display()
            )),
        },
    }
    if config.unique_subject {
        warnings.push(format!(
            "unique_subject is yes (index.txt.attr or ca.conf): a user cannot have a second device; \
             write `unique_subject = no` into {}.attr",
            p.database.display()
        ));
    }
    match Store::read_records(&p.database) {
        Ok(records) => {
            let mut seen = std::collections::HashSet::new();
            for r in &records {
                if !seen.insert(r.serial.clone()) {
                    problems.push(format!(
                        "{}: serial {} appears twice",
                        p.database.display(),
                        r.serial
                    ));
                }
            }
            let indexed: std::collections::HashSet<String> = records
                .iter()
                .filter_map(|r| index::normalize_serial(&r.serial))
                .collect();
            warnings.extend(restore_gaps(&config, &indexed));
        }
        Err(e) => problems.push(format!(
            "{e} (fix or remove that line; `openssl ca` cannot read it either)"
        )),
    }
    if !config.rand_serial {
        match fs::read_to_string(&p.serial) {
            Ok(t) if index::normalize_serial(&t).is_some() => {}
            Ok(t) => problems.push(format!(
                "{}: {:?} is not a hex serial; write e.g. 1000",
                p.serial.display(),
                t.trim()
            )),
            Err(e) => problems.push(format!(
                "{}: {e} (create it: echo 1000 > {})",
                p.serial.display(),
                p.serial.display()
            )),
        }
    }
    match fs::metadata(&p.new_certs_dir) {
        Ok(m) if m.is_dir() => {}
        _ => problems.push(format!(
            "{}: missing; run `mkdir {}`",
            p.new_certs_dir.display(),
            p.new_certs_dir.display()
        )),
    }
    if problems.is_empty()
        && let Err(e) = App::validate(&config)
    {
        problems.push(e.to_string());
    }
    report
}

/// The web server's users on this system (Debian's www-data, RHEL's apache, nginx,
/// Arch's http): name, uid, gid, from /etc/passwd.
fn web_server_users() -> Vec<(String, u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let (name, uid, gid) = (f.first()?, f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
            ["www-data", "apache", "nginx", "http"]
                .contains(name)
                .then(|| (name.to_string(), uid, gid))
        })
        .collect()
}

/// The CA key or database owned by, or writable by, the web server's user. Run as that
/// user (check under mod_fcgid or mod_cgi), that is how those modes work: a warning
/// naming it. Run as anyone else (the daemon's user, root), it is a problem: in the
/// socket modes whoever runs a script in the web server must not reach the CA.
fn web_server_ownership(config: &Config, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let web = web_server_users();
    if web.is_empty() {
        return;
    }
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let cgi_mode = web.iter().any(|w| Some(w.1) == me);
    let p = &config.paths;
    let db_dir = p.database.parent().unwrap_or(Path::new("."));
    for path in [
        &p.private_key,
        &p.database,
        &p.serial,
        &p.new_certs_dir,
        &db_dir.to_path_buf(),
    ] {
        let Ok(m) = fs::metadata(path) else { continue };
        let mode = m.mode();
        let Some((name, uid, _)) = web
            .iter()
            .find(|w| m.uid() == w.1 || (m.gid() == w.2 && mode & 0o020 != 0))
        else {
            continue;
        };
        let how = if m.uid() == *uid {
            "belongs to"
        } else {
            "is writable by the group of"
        };
        if cgi_mode {
            warnings.push(format!(
                "{} {how} {name}, the web server's user: so it is under mod_fcgid or mod_cgi, \
                 where getacert runs as {name}, but then every script the web server runs can \
                 read or change the CA; the socket mode keeps them out (docs/deployment.md)",
                path.display()
            ));
        } else {
            problems.push(format!(
                "{} {how} {name}, the web server's user, so any script the web server runs can \
                 read or change the CA: give the CA to the daemon's user \
                 (chown -R getacert:getacert {}; chmod 0700 {})",
                path.display(),
                db_dir.display(),
                db_dir.display()
            ));
        }
    }
}

/// What a CA restored from an older copy shows: certificates in newcerts/ that
/// index.txt does not list, and a serial file at or below the highest of them.
fn restore_gaps(config: &Config, indexed: &std::collections::HashSet<String>) -> Vec<String> {
    let p = &config.paths;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&p.new_certs_dir) else {
        return out;
    };
    let mut missing: Vec<String> = Vec::new();
    let mut highest: Option<String> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(serial) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".pem"))
            .and_then(index::normalize_serial)
        else {
            continue;
        };
        if highest
            .as_ref()
            .is_none_or(|h| index::serial_cmp(&serial, h).is_gt())
        {
            highest = Some(serial.clone());
        }
        if !indexed.contains(&serial) {
            missing.push(serial);
        }
    }
    missing.sort_by(|a, b| index::serial_cmp(a, b));
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        out.push(format!(
            "{} certificate(s) in {} are not in {} ({}{}): enrollments interrupted before their \
             index line (never delivered), or index.txt restored from a backup older than \
             newcerts/ (then they were issued and may be in use). Revoke each, which is harmless \
             if it was never delivered: flock {} openssl ca -config {} -revoke {}/SERIAL.pem",
            missing.len(),
            p.new_certs_dir.display(),
            p.database.display(),
            shown.join(", "),
            if missing.len() > shown.len() { ", …" } else { "" },
            p.lock_file.display(),
            config.file.display(),
            p.new_certs_dir.display()
        ));
    }
    if !config.rand_serial
        && let Some(h) = &highest
        && let Some(next) = fs::read_to_string(&p.serial)
            .ok()
            .and_then(|t| index::normalize_serial(&t))
        && index::serial_cmp(&next, h).is_le()
    {
        out.push(format!(
            "{}: the next serial {next} is not above the highest certificate in {} ({h}): the \
             serial file was restored from an older copy. getacert skips used serials but \
             `openssl ca` does not, and serials issued after that copy may be handed out again: \
             write `{}` into {}, or better set `rand_serial = yes` in [ {} ]",
            p.serial.display(),
            p.new_certs_dir.display(),
            index::serial_next(h),
            p.serial.display(),
            config.ca_section
        ));
    }
    out
}

/// A CA certificate without keyUsage (keyCertSign) or without basicConstraints CA:TRUE —
/// what the article's `openssl req -x509` makes with a config that adds no keyUsage —
/// works with default verifiers, but `openssl verify -x509_strict` (and other strict
/// verifiers) reject every certificate it issues. The fix is a new certificate for the
/// same key and subject, which keeps every issued certificate valid.
fn ca_profile_warning(cert: &openssl::x509::X509Ref, key: &Path, path: &Path) -> Option<String> {
    let text = String::from_utf8_lossy(&cert.to_text().ok()?).into_owned();
    let has_ku = text.contains("X509v3 Key Usage") && text.contains("Certificate Sign");
    let has_bc = text.contains("CA:TRUE");
    if has_ku && has_bc {
        return None;
    }
    let missing = match (has_ku, has_bc) {
        (false, false) => "has no keyUsage (keyCertSign) and no basicConstraints CA:TRUE",
        (false, true) => "has no keyUsage (keyCertSign)",
        _ => "has no basicConstraints CA:TRUE",
    };
    let subject = crate::ffi::openssl::name_oneline(cert.subject_name());
    Some(format!(
        "{}: the CA certificate {missing} (as the article's `openssl req -x509` makes it): \
         `openssl verify -x509_strict` and other strict verifiers reject every certificate it \
         issues. Make a new CA certificate for the same key and subject (certificates already \
         issued stay valid), then copy it to the web server's CA file and reload it: \
         `openssl req -x509 -new -key {} -subj '{subject}' -days 7300 \
         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
         -out {}`",
        path.display(),
        key.display(),
        path.display()
    ))
}

pub fn list(config: &Config) -> Result<(), String> {
    let records = Store::read_records(&config.paths.database).map_err(|e| e.to_string())?;
    let t = now();
    println!("{:<34} {:<8} {:<24} EXPIRES", "SERIAL", "STATUS", "USERNAME");
    for r in &records {
        let status = match r.effective_status(t) {
            Status::Valid => "valid",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        };
        let (y, m, d) = ymd(r.expires_unix());
        println!(
            "{:<34} {:<8} {:<24} {y:04}-{m:02}-{d:02}",
            r.serial,
            status,
            r.common_name().unwrap_or("-")
        );
    }
    Ok(())
}

fn ymd(unix: i64) -> (i64, i64, i64) {
    let s = index::asn1_time(unix);
    let digits = s.trim_end_matches('Z');
    let (y, rest) = if digits.len() == 12 {
        let yy: i64 = digits[0..2].parse().unwrap_or(0);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
    } else {
        (digits[0..4].parse().unwrap_or(0), &digits[4..])
    };
    (
        y,
        rest[0..2].parse().unwrap_or(0),
        rest[2..4].parse().unwrap_or(0),
    )
}

/// Which certificates `revoke` takes.
pub enum RevokeTarget {
    Serial(String),
    User(String),
}

/// `getacert revoke`: marks the chosen valid certificates revoked under the lock, then
/// regenerates the CRL when one is configured. Returns the serials revoked.
pub fn revoke(app: &App, target: &RevokeTarget, reason: Option<&str>) -> Result<Vec<String>, String> {
    let reason = match reason {
        None => None,
        Some(r) => Some(crate::ca::crl::reason_name(r).ok_or_else(|| {
            let names: Vec<&str> = crate::ca::crl::REASONS.iter().map(|(n, _)| *n).collect();
            format!("--reason {r:?}: use one of {}", names.join(", "))
        })?),
    };
    let serial = match target {
        RevokeTarget::Serial(s) => {
            Some(index::normalize_serial(s).ok_or_else(|| format!("--serial {s:?} is not hexadecimal"))?)
        }
        RevokeTarget::User(_) => None,
    };
    let t = now();
    let mut locked = app.store.lock().map_err(|e| e.to_string())?;
    let revoked = match (target, &serial) {
        (RevokeTarget::Serial(_), Some(s)) => revoke_locked(app, &mut locked, reason, t, |r| &r.serial == s),
        (RevokeTarget::User(u), _) => revoke_user_locked(app, &mut locked, u, reason, t),
        _ => Ok(Vec::new()),
    }?;
    Ok(revoked)
}

/// Revokes the valid certificates `select` picks, regenerates the CRL and logs each,
/// under a lock the caller holds (so it can do more under the same take).
fn revoke_locked(
    app: &App,
    locked: &mut Locked<'_>,
    reason: Option<&'static str>,
    t: i64,
    select: impl FnMut(&index::Record) -> bool,
) -> Result<Vec<String>, String> {
    let revoked = crate::ca::crl::revoke(locked, reason, t, select).map_err(|e| e.to_string())?;
    if !revoked.is_empty() {
        app.refresh_crl(locked, t);
    }
    for r in &revoked {
        ::log::info!(target: "audit", "revoked serial={} subject={} by=admin reason={}", r.serial, r.subject, reason.unwrap_or("-"));
    }
    Ok(revoked.into_iter().map(|r| r.serial).collect())
}

/// Every serial of `user` (any status), compared as enrollment compares names.
fn serials_of(locked: &Locked<'_>, user: &str) -> Result<Vec<String>, String> {
    Ok(locked
        .records()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.common_name().is_some_and(|cn| locked.same_name(cn, user)))
        .map(|r| r.serial)
        .collect())
}

fn revoke_user_locked(
    app: &App,
    locked: &mut Locked<'_>,
    user: &str,
    reason: Option<&'static str>,
    t: i64,
) -> Result<Vec<String>, String> {
    let serials = serials_of(locked, user)?;
    revoke_locked(app, locked, reason, t, |r| serials.contains(&r.serial))
}

/// What `release` did.
pub struct Released {
    /// Certificates that were still valid and are now revoked.
    pub revoked: Vec<String>,
    /// Every serial of the name, now listed in `getacert.released`.
    pub released: Vec<String>,
}

/// `getacert release NAME`: under one lock take, revokes what of NAME is still valid
/// (cessationOfOperation), voids its codes and lists all its serials as released, so
/// the name is free for anyone again. The only way a name issued once becomes free.
pub fn release(app: &App, user: &str) -> Result<Released, String> {
    let t = now();
    let mut locked = app.store.lock().map_err(|e| e.to_string())?;
    let released = serials_of(&locked, user)?;
    let had_code = crate::ca::codes::has_live(&locked, &comparison_key(user, app.config.allow_non_ascii), t)
        .map_err(|e| e.to_string())?;
    if released.is_empty() && !had_code {
        return Err(format!("{user:?} was never issued here: nothing to release"));
    }
    // Still valid: V and not past notAfter (an expired V record stays for updatedb).
    let revoked = revoke_locked(app, &mut locked, Some("cessationOfOperation"), t, |r| {
        r.expires_unix() > t && released.contains(&r.serial)
    })?;
    crate::ca::codes::void(&locked, &comparison_key(user, app.config.allow_non_ascii), t)
        .map_err(|e| e.to_string())?;
    locked.release(user, &released, t).map_err(|e| e.to_string())?;
    drop(locked);
    ::log::info!(
        target: "audit",
        "released user={user} by=admin serials={} revoked={}",
        released.join(","),
        revoked.len()
    );
    Ok(Released { revoked, released })
}

/// `getacert crl`: a fresh CRL (PEM) under the lock.
pub fn crl(app: &App, to_crl_file: bool) -> Result<Vec<u8>, String> {
    let mut locked = app.store.lock().map_err(|e| e.to_string())?;
    crate::ca::crl::generate(&mut locked, &app.config, &app.ca, now(), to_crl_file).map_err(|e| e.to_string())
}

/// `getacert updatedb`: expired `V` records become `E`.
pub fn updatedb(app: &App) -> Result<Vec<String>, String> {
    let mut locked = app.store.lock().map_err(|e| e.to_string())?;
    let changed = crate::ca::crl::update_db(&mut locked, now()).map_err(|e| e.to_string())?;
    Ok(changed.into_iter().map(|r| r.serial).collect())
}

/// `getacert recovery-code NAME`: a one-time code for a user who lost every device,
/// optionally after revoking all their certificates.
/// The revocation and the code happen under one lock take: no enrollment can slip in
/// between them.
pub fn recovery_code(app: &App, user: &str, revoke_all: bool) -> Result<(String, Vec<String>), String> {
    let t = now();
    let mut locked = app.store.lock().map_err(|e| e.to_string())?;
    let revoked = if revoke_all {
        revoke_user_locked(app, &mut locked, user, Some("keyCompromise"), t)?
    } else {
        Vec::new()
    };
    let code = app
        .issue_code(&locked, user, crate::ca::codes::CodeKind::Recovery, t)
        .map_err(|e| e.to_string())?;
    ::log::info!(target: "audit", "recovery code issued user={user} by=admin revoked={}", revoked.len());
    Ok((code, revoked))
}
