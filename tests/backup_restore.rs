//! Backups that can be restored (`getacert backup`, `rand_serial` from `init`, and what
//! `check` says about a restored directory), through the real binary as CGI.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{Ca, Front, bin, fixture, make_csr, serial_of};
use openssl::x509::X509;

fn run(ca: &Ca, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(args)
        .output()
        .unwrap()
}

fn enroll(ca: &Ca, name: &str) -> String {
    let csr = make_csr(&fixture("rsa2048.key"));
    let reply = Front::Cgi(ca.conf.clone()).enroll_csr(name, &csr);
    assert!(reply.is_cert(), "{name}: {reply:?}");
    serial_of(&X509::from_der(&reply.cert_der()).unwrap())
}

fn backup(ca: &Ca, dir: &Path) {
    let out = run(ca, &["backup", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Puts the backup's database files (and, with `newcerts`, its newcerts/) back.
fn restore(ca: &Ca, dir: &Path, newcerts: bool) {
    for f in ["index.txt", "index.txt.attr", "serial", "crlnumber", "crl.pem"] {
        if dir.join(f).exists() {
            fs::copy(dir.join(f), ca.path(f)).unwrap();
        }
    }
    if newcerts {
        fs::remove_dir_all(ca.path("newcerts")).unwrap();
        fs::create_dir(ca.path("newcerts")).unwrap();
        for e in fs::read_dir(dir.join("newcerts")).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), ca.path("newcerts").join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn init_uses_rand_serial_so_a_restored_copy_cannot_reissue_a_serial() {
    let ca = Ca::init();
    let conf = fs::read_to_string(&ca.conf).unwrap();
    assert!(
        conf.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rand_serial", "=", "yes"])
    );
    enroll(&ca, "alice");
    let b = ca.scratch("backup");
    backup(&ca, &b);
    let bob = enroll(&ca, "bob");
    restore(&ca, &b, true);
    let carol = enroll(&ca, "carol");
    assert_ne!(carol, bob, "the restored CA issued bob's serial again");
    // `openssl ca` reads the same setting: it signs with a random serial too.
    ca.assert_consistent(false);
}

#[test]
fn backup_copies_everything_under_the_lock_and_keeps_the_key_private() {
    let ca = Ca::init();
    enroll(&ca, "alice");
    enroll(&ca, "bob");
    let b = ca.scratch("backup");
    // While someone holds the database lock (an admin's `flock … openssl ca`), backup waits.
    ca.append_getacert_settings("lock_timeout = 1\n");
    let lock = fs::OpenOptions::new()
        .read(true)
        .open(ca.path("index.txt.lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let out = run(&ca, &["backup", b.to_str().unwrap()]);
    assert!(!out.status.success(), "backup did not wait for the lock");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lock"), "{out:?}");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::Unlock).unwrap();
    let _ = fs::remove_dir_all(&b);
    backup(&ca, &b);
    assert_eq!(fs::metadata(&b).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(b.join("rootCA.key")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for f in [
        "ca.conf",
        "rootCA.key",
        "rootCA.pem",
        "index.txt",
        "index.txt.attr",
        "crlnumber",
        "crl.pem",
    ] {
        assert_eq!(fs::read(b.join(f)).unwrap(), fs::read(ca.path(f)).unwrap(), "{f}");
    }
    assert_eq!(
        fs::read_dir(b.join("newcerts")).unwrap().count(),
        ca.newcerts().len()
    );
    assert_eq!(ca.newcerts().len(), 2);
    let manifest = fs::read_to_string(b.join("RESTORE.txt")).unwrap();
    assert!(
        manifest.contains(&format!("rootCA.key\t{}", ca.path("rootCA.key").display())),
        "{manifest}"
    );
    // A second backup into the same directory is refused, the first left as it was.
    let out = run(&ca, &["backup", b.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}

#[test]
fn check_on_a_restored_directory_finds_newcerts_missing_from_index_and_a_serial_behind() {
    // The article's CAs, and CAs made before rand_serial: sequential serials.
    let ca = Ca::init_sequential();
    enroll(&ca, "alice");
    let b = ca.scratch("backup");
    backup(&ca, &b);
    let sound = run(&ca, &["check"]);
    assert!(sound.status.success());
    let before = String::from_utf8_lossy(&sound.stdout);
    assert!(
        !before.contains("newcerts") && !before.contains("rand_serial"),
        "{before}"
    );
    let bob = enroll(&ca, "bob");
    // index.txt and serial from the backup, newcerts/ as it is now (kept elsewhere).
    restore(&ca, &b, false);
    let out = run(&ca, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("1 certificate(s) in {}", ca.path("newcerts").display()))
            && text.contains(&bob),
        "{text}"
    );
    assert!(text.contains("-revoke"), "{text}");
    assert!(text.contains("is not above the highest certificate"), "{text}");
    assert!(text.contains("rand_serial = yes"), "{text}");
}

#[test]
fn init_leaves_the_directory_0700_and_the_database_files_0600_or_0640() {
    let ca = Ca::init_with(&[]);
    let mode = |f: &str| fs::metadata(ca.path(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("."), 0o700, "the CA directory");
    assert_eq!(mode("newcerts"), 0o700);
    assert_eq!(mode("rootCA.key"), 0o600);
    for f in ["index.txt", "index.txt.attr", "serial", "crlnumber", "ca.conf"] {
        assert_eq!(mode(f), 0o640, "{f}");
    }
}

/// A released name stays released in a backup (else a restore would hand it back to its
/// old account), and the front secret the web server presents is in it too.
#[test]
fn backup_keeps_released_names_and_the_front_secret() {
    let ca = Ca::init_with(&[]);
    ca.enable_front_secret();
    enroll(&ca, "alice");
    let out = run(&ca, &["release", "alice"]);
    assert!(
        out.status.success(),
        "release: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = ca.scratch("backup-released");
    backup(&ca, &b);
    assert_eq!(
        fs::read(b.join("getacert.released")).unwrap(),
        fs::read(ca.path("getacert.released")).unwrap()
    );
    for f in ["front-secret", "front-secret.nginx", "front-secret.apache"] {
        assert!(ca.path(f).exists(), "init made {f}");
        assert_eq!(fs::read(b.join(f)).unwrap(), fs::read(ca.path(f)).unwrap(), "{f}");
        assert_eq!(
            fs::metadata(b.join(f)).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
    }
}
