//! `getacert check`: is this deployment sound, and how to fix it if not.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use openssl::asn1::Asn1Time;

use crate::app::App;
use crate::ca::index;
use crate::ca::sign::Ca;
use crate::ca::store::{CaFile, Store};
use crate::config::Config;

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
    let store = Store::new(&config);
    match store.stat(CaFile::PrivateKey) {
        Ok(m) if m.mode & 0o077 != 0 => problems.push(format!(
            "{} is readable by group or others (mode {:04o}): run `chmod 600 {}` and make it owned by the user getacert runs as",
            p.private_key.display(),
            m.mode & 0o7777,
            p.private_key.display()
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("{}: {e}", p.private_key.display())),
    }
    web_server_ownership(&store, problems, warnings);
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
        Some(f) => match store.stat(CaFile::FrontSecret) {
            Ok(m) if m.mode & 0o077 != 0 => problems.push(format!(
                "{} is readable by group or others (mode {:04o}): run `chmod 600 {}`",
                f.display(),
                m.mode & 0o7777,
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
            warnings.extend(restore_gaps(&config, &store, &indexed));
        }
        Err(e) => problems.push(format!(
            "{e} (fix or remove that line; `openssl ca` cannot read it either)"
        )),
    }
    if !config.rand_serial {
        match store.peek(CaFile::Serial) {
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
    match store.stat(CaFile::NewCerts) {
        Ok(m) if m.is_dir => {}
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
fn web_server_ownership(store: &Store, problems: &mut Vec<String>, warnings: &mut Vec<String>) {
    let web = web_server_users();
    if web.is_empty() {
        return;
    }
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let cgi_mode = web.iter().any(|w| Some(w.1) == me);
    let db_dir = store.path(CaFile::Directory).unwrap_or_default();
    for file in [
        CaFile::PrivateKey,
        CaFile::Database,
        CaFile::Serial,
        CaFile::NewCerts,
        CaFile::Directory,
    ] {
        let path = store.path(file).unwrap_or_default();
        let Ok(m) = store.stat(file) else { continue };
        let mode = m.mode;
        let Some((name, uid, _)) = web
            .iter()
            .find(|w| m.uid == w.1 || (m.gid == w.2 && mode & 0o020 != 0))
        else {
            continue;
        };
        let how = if m.uid == *uid {
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
fn restore_gaps(config: &Config, store: &Store, indexed: &std::collections::HashSet<String>) -> Vec<String> {
    let p = &config.paths;
    let mut out = Vec::new();
    let Ok(entries) = store.newcerts() else {
        return out;
    };
    let mut missing: Vec<String> = Vec::new();
    let mut highest: Option<String> = None;
    for entry in entries {
        let name = entry.name;
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
            store.path(CaFile::Lock).unwrap_or_default().display(),
            config.file.display(),
            p.new_certs_dir.display()
        ));
    }
    if !config.rand_serial
        && let Some(h) = &highest
        && let Some(next) = store
            .peek(CaFile::Serial)
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
