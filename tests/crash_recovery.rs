//! Crashes and damage: the daemon killed with SIGKILL again and again under load, a torn
//! last line in index.txt, a serial file behind index.txt. After each, every certificate
//! that was answered is on file, no serial is used twice, `openssl ca` still reads the
//! database and a fresh enrollment works.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{Ca, Daemon, Front, HttpRequest, Listen, fixture, fixture_text};
use openssl::x509::X509;

const KILLS: usize = 5;

/// (username, DER) of every enrollment answered with 200.
type Answers = Vec<(String, Vec<u8>)>;
const CLIENT_THREADS: usize = 4;

#[test]
fn kill_9_under_load_loses_nothing_that_was_answered() {
    let ca = Ca::init_sequential();
    let mut daemon = Daemon::start(&ca, Listen::Unix, 4);
    let front = daemon.front.clone();
    let (challenge, _) = front.challenge_and_token();
    let requests = Arc::new(vec![
        ("csr", fixture_text("ec-p256.csr")),
        ("pubkey", common::make_spkac(&fixture("ec-p256.key"), &challenge)),
        ("csr", fixture_text("rsa2048.csr")),
    ]);

    let stop = Arc::new(AtomicBool::new(false));
    let answered: Arc<Mutex<Answers>> = Arc::default();
    let other: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed_tries = Arc::new(Mutex::new(0usize));
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let (front, requests, stop) = (front.clone(), requests.clone(), stop.clone());
            let (answered, other, failed_tries) = (answered.clone(), other.clone(), failed_tries.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let username = format!("k{t}-{n}");
                    let (field, value) = &requests[n % requests.len()];
                    let req = HttpRequest::form(&[("username", &username), (field, value)]);
                    match common::fcgi_request(&front, &req) {
                        Ok(reply) if reply.status == 200 => {
                            answered.lock().unwrap().push((username, reply.cert_der()));
                        }
                        Ok(reply) => other.lock().unwrap().push(format!("{username}: {reply:?}")),
                        // The daemon died under us or is not back yet: no answer, no claim.
                        Err(_) => {
                            *failed_tries.lock().unwrap() += 1;
                            thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect();

    let mut answered_per_life = Vec::new();
    for round in 0..KILLS {
        thread::sleep(Duration::from_millis(250 + 70 * round as u64));
        answered_per_life.push(answered.lock().unwrap().len());
        daemon.kill9();
        thread::sleep(Duration::from_millis(30));
        daemon.restart();
    }
    thread::sleep(Duration::from_millis(250));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread failed");
    }
    let answered = answered.lock().unwrap().clone();
    eprintln!(
        "{} answered in {KILLS} kills (running totals {answered_per_life:?}), {} tries failed",
        answered.len(),
        failed_tries.lock().unwrap()
    );
    let other = other.lock().unwrap();
    assert!(other.is_empty(), "answers other than 200: {other:#?}");
    assert!(
        answered_per_life.windows(2).all(|w| w[1] > w[0]) && answered_per_life[0] > 0,
        "every life of the daemon enrolled someone: {answered_per_life:?}"
    );

    // Every answered certificate is recorded, with its own serial, and on file.
    let index = ca.index();
    let by_serial: BTreeMap<&str, &common::IndexLine> =
        index.iter().map(|l| (l.serial.as_str(), l)).collect();
    assert_eq!(
        by_serial.len(),
        index.len(),
        "a serial appears twice in index.txt"
    );
    let ders: Vec<Vec<u8>> = answered.iter().map(|(_, d)| d.clone()).collect();
    let certs = ca.check_certs(&ders);
    let mut seen = BTreeSet::new();
    for ((user, der), cert) in answered.iter().zip(&certs) {
        let serial = common::serial_of(cert);
        assert!(seen.insert(serial.clone()), "serial {serial} answered twice");
        let line = by_serial
            .get(serial.as_str())
            .unwrap_or_else(|| panic!("{user}: answered serial {serial} is not in index.txt"));
        assert!(line.subject.ends_with(&format!("/CN={user}")), "{line:?}");
        let pem = fs::read(ca.path(&format!("newcerts/{serial}.pem")))
            .unwrap_or_else(|e| panic!("{user}: newcerts/{serial}.pem: {e}"));
        assert_eq!(&X509::from_pem(&pem).unwrap().to_der().unwrap(), der);
    }
    // Interrupted enrollments may leave a newcerts file without an index line (never
    // answered), never the reverse.
    ca.assert_consistent(false);
    eprintln!(
        "index.txt: {} records; newcerts/: {} files",
        index.len(),
        ca.newcerts().len()
    );
    let crl = ca.scratch("crl.pem");
    ca.openssl_ca(&["-gencrl", "-out", crl.to_str().unwrap()]);

    // A fresh enrollment works and takes a serial above all others.
    let reply = daemon
        .front
        .enroll_csr("after-the-crashes", &fixture_text("ec-p256.csr"));
    let cert = ca.check_cert(&reply.cert_der());
    let serial = common::serial_of(&cert);
    let max_before = by_serial
        .keys()
        .map(|s| u128::from_str_radix(s, 16).unwrap())
        .max()
        .unwrap();
    assert!(u128::from_str_radix(&serial, 16).unwrap() > max_before);
    assert_eq!(ca.status(&serial), "Valid (V)");
    ca.assert_consistent(false);
}

/// Appends `tail` (no newline) to index.txt, as a crash in the middle of an append, or a
/// careless editor, would leave it.
fn append_to_index(ca: &Ca, tail: &str) {
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(ca.path("index.txt"))
        .unwrap();
    f.write_all(tail.as_bytes()).unwrap();
}

fn torn_line_is_repaired(ca: &Ca, front: &Front) {
    let csr = fixture_text("ec-p256.csr");
    for u in ["t1", "t2"] {
        ca.check_cert(&front.enroll_csr(u, &csr).cert_der());
    }
    let whole = ca.index_text();
    // Half of a line like the last one.
    let last = whole.lines().last().unwrap();
    append_to_index(ca, &last[..last.len() / 2]);

    let reply = front.enroll_csr("t3", &csr);
    let serial = common::serial_of(&ca.check_cert(&reply.cert_der()));
    let index = ca.index(); // fails on a malformed line or a missing final newline
    assert_eq!(index.len(), 3, "the torn line is gone, the new one is there");
    assert!(ca.index_text().starts_with(&whole), "the whole lines are kept");
    assert_eq!(index[2].serial, serial);
    assert_eq!(ca.status(&serial), "Valid (V)");
    assert_eq!(ca.status("1000"), "Valid (V)");
    ca.assert_consistent(true);
}

#[test]
fn torn_last_line_is_repaired_by_cgi() {
    let ca = Ca::init_sequential();
    torn_line_is_repaired(&ca, &Front::Cgi(ca.conf.clone()));
}

/// The daemon reads index.txt incrementally: the torn tail appears behind its back.
#[test]
fn torn_last_line_is_repaired_by_the_running_daemon() {
    let ca = Ca::init_sequential();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    torn_line_is_repaired(&ca, &daemon.front);
}

/// A last line that is a whole record but lacks its newline (a hand edit) is kept and
/// counts: its user is taken.
#[test]
fn a_whole_last_line_without_newline_is_kept() {
    let ca = Ca::init_sequential();
    let front = Front::Cgi(ca.conf.clone());
    let csr = fixture_text("ec-p256.csr");
    ca.check_cert(&front.enroll_csr("w1", &csr).cert_der());
    append_to_index(
        &ca,
        "V\t391231235959Z\t\t0FFF\tunknown\t/C=US/O=MyApp/CN=handmade",
    );
    assert_eq!(front.enroll_csr("handmade", &csr).status, 409);
    let reply = front.enroll_csr("w2", &csr);
    ca.check_cert(&reply.cert_der());
    let index = ca.index();
    assert_eq!(index.len(), 3);
    assert_eq!(index[1].subject, "/C=US/O=MyApp/CN=handmade");
    assert_eq!(ca.status("1001"), "Valid (V)");
}

/// CGI takes serials one at a time from the serial file, so the sequence is exact.
#[test]
fn a_serial_file_behind_index_txt_is_overtaken() {
    let ca = Ca::init_sequential();
    let front = Front::Cgi(ca.conf.clone());
    let csr = fixture_text("ec-p256.csr");
    for u in ["s1", "s2", "s3"] {
        ca.check_cert(&front.enroll_csr(u, &csr).cert_der());
    }
    assert_eq!(ca.index().last().unwrap().serial, "1002");

    // Restored from an old backup, say.
    fs::write(ca.path("serial"), "1000\n").unwrap();
    let serial = common::serial_of(&ca.check_cert(&front.enroll_csr("s4", &csr).cert_der()));
    assert_eq!(serial, "1003", "above the highest serial in index.txt");
    assert_eq!(ca.status("1003"), "Valid (V)");
    assert_eq!(fs::read_to_string(ca.path("serial")).unwrap(), "1004\n");

    // Far behind, with fewer digits.
    fs::write(ca.path("serial"), "01\n").unwrap();
    let serial = common::serial_of(&ca.check_cert(&front.enroll_csr("s5", &csr).cert_der()));
    assert_eq!(serial, "1004");

    // An orphan certificate file (an enrollment interrupted before its index line) is
    // never overwritten: its serial is skipped.
    fs::copy(ca.path("newcerts/1000.pem"), ca.path("newcerts/1005.pem")).unwrap();
    let orphan = fs::read(ca.path("newcerts/1005.pem")).unwrap();
    let serial = common::serial_of(&ca.check_cert(&front.enroll_csr("s6", &csr).cert_der()));
    assert_eq!(serial, "1006");
    assert_eq!(fs::read(ca.path("newcerts/1005.pem")).unwrap(), orphan);
    assert_eq!(fs::read_to_string(ca.path("serial")).unwrap(), "1007\n");
    ca.assert_consistent(false);
    assert_eq!(ca.index().len(), 6);
}

/// The daemon reads the serial file when it starts a new block of serials: a file
/// put back behind index.txt while it was stopped is overtaken too.
#[test]
fn a_serial_file_behind_index_txt_is_overtaken_by_the_daemon() {
    let ca = Ca::init_sequential();
    let mut daemon = Daemon::start(&ca, Listen::Unix, 2);
    let csr = fixture_text("ec-p256.csr");
    for u in ["d1", "d2", "d3"] {
        ca.check_cert(&daemon.front.enroll_csr(u, &csr).cert_der());
    }
    daemon.kill9();
    fs::write(ca.path("serial"), "1000\n").unwrap();
    daemon.restart();
    let hex = |s: &str| u64::from_str_radix(s.trim(), 16).unwrap();
    let max_before = ca.index().iter().map(|l| hex(&l.serial)).max().unwrap();
    let serial = common::serial_of(&ca.check_cert(&daemon.front.enroll_csr("d4", &csr).cert_der()));
    assert!(hex(&serial) > max_before, "{serial} is not above {max_before:X}");
    assert!(hex(&fs::read_to_string(ca.path("serial")).unwrap()) > hex(&serial));
    assert_eq!(ca.status(&serial), "Valid (V)");
    ca.assert_consistent(true);
}
