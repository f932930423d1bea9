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

use crate::app::{App, now};
use crate::ca::index::{self, Status};
use crate::ca::store::{Locked, Store};
use crate::config::Config;
use crate::enroll::username::comparison_key;

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
