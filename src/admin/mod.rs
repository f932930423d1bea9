//! The admin commands: `init` (a new CA directory, the article's steps 1 and 4 done
//! right), `check` (is this deployment sound, and how to fix it if not) and `list`.
//! Each command longer than a few lines has its own file: `init`, `check`. What each
//! command prints, from its command-line arguments, is in `commands` (main dispatches
//! there).

mod check;
pub mod commands;
mod init;

pub use check::{Report, check};
pub use init::{InitOptions, init};

use std::fmt;

use crate::app::{App, now};
use crate::ca::crl::CrlError;
use crate::ca::index::{self, Serial, Status};
use crate::ca::store::{Locked, Store, StoreError};
use crate::config::Config;
use crate::enroll::username::{Username, UsernameError};

/// Why an admin command did nothing (or, for a store error, stopped), with its cause.
#[derive(Debug)]
pub enum AdminError {
    /// The lock, a file of the CA directory or a line of index.txt.
    Store(StoreError),
    /// Making the CRL (its number file, or signing).
    Crl(CrlError),
    /// A name on the command line that is not a username here ([`Username::parse`]
    /// with the site's rule).
    BadUsername { name: String, err: UsernameError },
    /// `--serial` is not hexadecimal.
    BadSerial(String),
    /// `--reason` is not a CRL reason.
    BadReason(String),
    /// `release` of a name with no certificate and no code here.
    NeverIssued(Username),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::Store(e) => write!(f, "{e}"),
            AdminError::Crl(e) => write!(f, "{e}"),
            AdminError::BadUsername { name, err } => write!(
                f,
                "{name:?} is not a username here: {err} (a certificate of any name can be revoked by \
                 serial: getacert list shows them)"
            ),
            AdminError::BadSerial(s) => write!(f, "--serial {s:?} is not hexadecimal"),
            AdminError::BadReason(r) => {
                let names: Vec<&str> = crate::ca::crl::REASONS.iter().map(|(n, _)| *n).collect();
                write!(f, "--reason {r:?}: use one of {}", names.join(", "))
            }
            AdminError::NeverIssued(user) => {
                write!(f, "{:?} was never issued here: nothing to release", user.as_str())
            }
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Store(e) => Some(e),
            AdminError::Crl(e) => Some(e),
            AdminError::BadUsername { err, .. } => Some(err),
            AdminError::BadSerial(_) | AdminError::BadReason(_) | AdminError::NeverIssued(_) => None,
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> AdminError {
        AdminError::Store(e)
    }
}

impl From<CrlError> for AdminError {
    fn from(e: CrlError) -> AdminError {
        AdminError::Crl(e)
    }
}

/// A name typed by the admin, as enrollment would take it: the site's rule, its
/// `allow_non_ascii`, NFC.
fn username(app: &App, name: &str) -> Result<Username, AdminError> {
    Username::parse(name, &app.config.username_rule, app.config.allow_non_ascii).map_err(|err| {
        AdminError::BadUsername {
            name: name.to_string(),
            err,
        }
    })
}

pub fn list(config: &Config) -> Result<(), AdminError> {
    let records = Store::read_records(&config.paths.database)?;
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
pub fn revoke(app: &App, target: &RevokeTarget, reason: Option<&str>) -> Result<Vec<String>, AdminError> {
    let reason = match reason {
        None => None,
        Some(r) => Some(crate::ca::crl::reason_name(r).ok_or_else(|| AdminError::BadReason(r.to_string()))?),
    };
    enum Parsed {
        Serial(Serial),
        User(Username),
    }
    let target = match target {
        RevokeTarget::Serial(s) => {
            Parsed::Serial(Serial::parse(s).ok_or_else(|| AdminError::BadSerial(s.clone()))?)
        }
        RevokeTarget::User(u) => Parsed::User(username(app, u)?),
    };
    let t = now();
    let mut locked = app.store.lock()?;
    match target {
        Parsed::Serial(s) => revoke_locked(app, &mut locked, reason, t, |r| r.serial.as_str() == s.as_str()),
        Parsed::User(u) => revoke_user_locked(app, &mut locked, &u, reason, t),
    }
}

/// Revokes the valid certificates `select` picks, regenerates the CRL and logs each,
/// under a lock the caller holds (so it can do more under the same take).
fn revoke_locked(
    app: &App,
    locked: &mut Locked<'_>,
    reason: Option<&'static str>,
    t: i64,
    select: impl FnMut(&index::Record) -> bool,
) -> Result<Vec<String>, AdminError> {
    let revoked = crate::ca::crl::revoke(locked, reason, t, select)?;
    if !revoked.is_empty() {
        app.refresh_crl(locked, t);
    }
    for r in &revoked {
        ::log::info!(target: "audit", "revoked serial={} subject={} by=admin reason={}", r.serial, r.subject, reason.unwrap_or("-"));
    }
    Ok(revoked.into_iter().map(|r| r.serial).collect())
}

/// Every serial of `user` (any status), compared as enrollment compares names.
fn serials_of(locked: &Locked<'_>, user: &Username) -> Result<Vec<String>, AdminError> {
    Ok(locked
        .records()?
        .into_iter()
        .filter(|r| r.common_name().is_some_and(|cn| locked.same_name(cn, user)))
        .map(|r| r.serial)
        .collect())
}

fn revoke_user_locked(
    app: &App,
    locked: &mut Locked<'_>,
    user: &Username,
    reason: Option<&'static str>,
    t: i64,
) -> Result<Vec<String>, AdminError> {
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
pub fn release(app: &App, user: &str) -> Result<Released, AdminError> {
    let user = username(app, user)?;
    let key = user.account_key(app.config.allow_non_ascii);
    let t = now();
    let mut locked = app.store.lock()?;
    let released = serials_of(&locked, &user)?;
    let had_code = crate::ca::codes::has_live(&locked, &key, t)?;
    if released.is_empty() && !had_code {
        return Err(AdminError::NeverIssued(user));
    }
    // Still valid: V and not past notAfter (an expired V record stays for updatedb).
    let revoked = revoke_locked(app, &mut locked, Some("cessationOfOperation"), t, |r| {
        r.expires_unix() > t && released.contains(&r.serial)
    })?;
    crate::ca::codes::void(&locked, &key, t)?;
    locked.release(&user, &released, t)?;
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
pub fn crl(app: &App, to_crl_file: bool) -> Result<Vec<u8>, AdminError> {
    let mut locked = app.store.lock()?;
    Ok(crate::ca::crl::generate(
        &mut locked,
        &app.config,
        &app.ca,
        now(),
        to_crl_file,
    )?)
}

/// `getacert updatedb`: expired `V` records become `E`.
pub fn updatedb(app: &App) -> Result<Vec<String>, AdminError> {
    let mut locked = app.store.lock()?;
    let changed = crate::ca::crl::update_db(&mut locked, now())?;
    Ok(changed.into_iter().map(|r| r.serial).collect())
}

/// `getacert recovery-code NAME`: a one-time code for a user who lost every device,
/// optionally after revoking all their certificates.
/// The revocation and the code happen under one lock take: no enrollment can slip in
/// between them.
pub fn recovery_code(app: &App, user: &str, revoke_all: bool) -> Result<(String, Vec<String>), AdminError> {
    let user = username(app, user)?;
    let t = now();
    let mut locked = app.store.lock()?;
    let revoked = if revoke_all {
        revoke_user_locked(app, &mut locked, &user, Some("keyCompromise"), t)?
    } else {
        Vec::new()
    };
    let code = app.issue_code(&locked, &user, crate::ca::codes::CodeKind::Recovery, t)?;
    ::log::info!(target: "audit", "recovery code issued user={user} by=admin revoked={}", revoked.len());
    Ok((code, revoked))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn admin_errors_keep_their_cause() {
        let io = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = AdminError::from(StoreError::Io {
            path: "/ca/index.txt".into(),
            action: "append to",
            err: io,
        });
        assert!(
            e.to_string().starts_with("/ca/index.txt: cannot append to: "),
            "{e}"
        );
        let store = e.source().expect("the store error");
        assert!(store.downcast_ref::<StoreError>().is_some());
        let os = store.source().and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(os.and_then(std::io::Error::raw_os_error), Some(libc::ENOSPC));

        let e = AdminError::from(CrlError::Store(StoreError::LockTimeout(
            "/ca/index.txt.lock".into(),
        )));
        assert!(
            e.source()
                .and_then(|c| c.source())
                .is_some_and(|c| c.is::<StoreError>())
        );

        let e = AdminError::BadUsername {
            name: "al ice".into(),
            err: UsernameError::ForbiddenChar(' '),
        };
        assert!(
            e.to_string().starts_with("\"al ice\" is not a username here: "),
            "{e}"
        );
        assert_eq!(
            e.source().and_then(|c| c.downcast_ref::<UsernameError>()),
            Some(&UsernameError::ForbiddenChar(' '))
        );
        assert_eq!(
            AdminError::BadSerial("xyz".into()).to_string(),
            "--serial \"xyz\" is not hexadecimal"
        );
        assert!(AdminError::BadSerial("xyz".into()).source().is_none());
    }
}
