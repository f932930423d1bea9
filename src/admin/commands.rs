//! What each admin command does and prints, from its command-line arguments: the
//! bodies `main` dispatches to. The work itself is in the functions of [`super`] and
//! the store; this file says what the admin reads afterwards.

use std::path::{Path, PathBuf};

use crate::app::App;
use crate::config::Config;
use crate::log::{self as glog, Sink};

/// The app for an admin command, logging to stderr.
fn admin_app(config: Option<&Path>) -> Result<App, String> {
    let app = crate::front::load_app(config)?;
    glog::init(Sink::Stderr, app.config.log_facility);
    Ok(app)
}

/// `getacert backup DIR`.
pub fn backup(config: Option<&Path>, dir: &Path) -> Result<(), String> {
    let app = admin_app(config)?;
    let n = app.store.back_up(dir)?;
    println!("Backed up the CA and {n} certificate(s) to {}", dir.display());
    Ok(())
}

/// `getacert check [--web-config FILE]…`: every problem and warning, then the verdict.
pub fn check(config: Option<&Path>, web_config: &[PathBuf]) -> Result<(), String> {
    let mut report = super::check(&Config::locate(config));
    if let Ok(c) = Config::load(&Config::locate(config)) {
        let files = crate::webcheck::files_or_default(web_config);
        let (warnings, notes) = crate::webcheck::report(&files, &c.ca_cert);
        report.warnings.extend(warnings);
        for n in notes {
            println!("ok: {n}");
        }
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    if report.problems.is_empty() && report.warnings.is_empty() {
        println!("{}: sound", Config::locate(config).display());
        Ok(())
    } else if report.problems.is_empty() {
        // Not "sound": what a warning names works, but not everywhere.
        println!(
            "{}: no problems, {} warning(s) to fix",
            Config::locate(config).display(),
            report.warnings.len()
        );
        Ok(())
    } else {
        Err(format!("{} problem(s) found", report.problems.len()))
    }
}

/// `getacert list`.
pub fn list(config: Option<&Path>) -> Result<(), String> {
    Config::load(&Config::locate(config))
        .map_err(|e| e.to_string())
        .and_then(|c| super::list(&c).map_err(|e| e.to_string()))
}

/// `getacert revoke --serial HEX | --user NAME [--reason R]`.
pub fn revoke(
    config: Option<&Path>,
    serial: Option<String>,
    user: Option<String>,
    reason: Option<&str>,
) -> Result<(), String> {
    let app = admin_app(config)?;
    let target = match (serial, user) {
        (Some(s), _) => super::RevokeTarget::Serial(s),
        (None, Some(u)) => super::RevokeTarget::User(u),
        (None, None) => return Err("give --serial HEX or --user NAME".into()),
    };
    let revoked = super::revoke(&app, &target, reason).map_err(|e| e.to_string())?;
    if revoked.is_empty() {
        return Err("no valid certificate matched: nothing revoked".into());
    }
    println!("revoked: {}", revoked.join(" "));
    println!(
        "OCSP answers \"revoked\" now: a web server using getacert's responder (the shipped \
         configuration) refuses new connections with it within {} seconds, without a reload.",
        app.config.ocsp_next_update
    );
    if app.config.paths.crl_file.is_some() {
        println!(
            "The CRL file is updated too; a web server that reads it (ssl_crl, SSLCARevocationFile) \
             needs a reload to see it."
        );
    }
    Ok(())
}

/// `getacert crl [--out FILE]`: `--out` is the admin's file, not the CA directory's.
pub fn crl(config: Option<&Path>, out: Option<&Path>) -> Result<(), String> {
    let app = admin_app(config)?;
    let pem = super::crl(&app, out.is_none()).map_err(|e| e.to_string())?;
    match out {
        Some(path) => std::fs::write(path, &pem).map_err(|e| format!("{}: {e}", path.display())),
        None if app.config.paths.crl_file.is_some() => Ok(()),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&pem).map_err(|e| e.to_string())
        }
    }
}

/// `getacert updatedb`.
pub fn updatedb(config: Option<&Path>) -> Result<(), String> {
    let app = admin_app(config)?;
    let changed = super::updatedb(&app).map_err(|e| e.to_string())?;
    println!("{} certificate(s) marked expired", changed.len());
    Ok(())
}

/// `getacert recovery-code NAME [--revoke-all]`.
pub fn recovery_code(config: Option<&Path>, name: &str, revoke_all: bool) -> Result<(), String> {
    let app = admin_app(config)?;
    let (code, revoked) = super::recovery_code(&app, name, revoke_all).map_err(|e| e.to_string())?;
    if !revoked.is_empty() {
        println!("revoked: {}", revoked.join(" "));
    }
    println!("Recovery code for {name}: {code}");
    println!(
        "It works once and expires in {} minutes. On the new device: open the enrollment page, \
         type the username {name} and this code.",
        app.config.code_lifetime / 60
    );
    Ok(())
}

/// `getacert release NAME`.
pub fn release(config: Option<&Path>, name: &str) -> Result<(), String> {
    let app = admin_app(config)?;
    let done = super::release(&app, name).map_err(|e| e.to_string())?;
    if !done.revoked.is_empty() {
        println!("revoked: {}", done.revoked.join(" "));
    }
    println!(
        "released {name}: {} certificate(s) no longer hold the name; anyone may enroll it now.",
        done.released.len()
    );
    Ok(())
}
