//! Many enrollments at once: 16 clients × 50 enrollments against the FastCGI daemon
//! (4 workers) and 16 CGI processes at a time × 50. Every answer must be a valid
//! certificate, all serials distinct, and index.txt, newcerts/ and the answers must
//! agree exactly (what the article's PHP got wrong: 19 empty answers and 108 serials
//! for 181 certificates at 8 in parallel).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use common::{Ca, Daemon, Front, HttpRequest, Listen, fixture, fixture_text};
use openssl::x509::X509;

const CLIENTS: usize = 16;
const PER_CLIENT: usize = 50;

/// The requests to post, made before the clock starts: CSRs for three key types and
/// one SPKAC over a challenge of this server (a key may be reused; names are unique).
fn key_requests(front: &Front) -> Vec<(&'static str, String)> {
    let (challenge, _) = front.challenge_and_token();
    vec![
        ("csr", fixture_text("ec-p256.csr")),
        ("csr", fixture_text("ed25519.csr")),
        ("csr", fixture_text("rsa2048.csr")),
        ("pubkey", common::make_spkac(&fixture("ec-p256.key"), &challenge)),
    ]
}

/// Runs CLIENTS threads × PER_CLIENT enrollments; returns username → DER.
fn hammer(front: &Front, label: &str) -> BTreeMap<String, Vec<u8>> {
    let requests = Arc::new(key_requests(front));
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (front, requests) = (front.clone(), requests.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..PER_CLIENT {
                    let username = format!("c{t}-u{i}");
                    let (field, value) = &requests[(t + i) % requests.len()];
                    let reply = front.send(&HttpRequest::form(&[("username", &username), (field, value)]));
                    assert_eq!(reply.status, 200, "{username}: {reply:?}");
                    got.push((username, reply.cert_der()));
                }
                got
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    for t in threads {
        for (u, der) in t.join().expect("a client failed") {
            assert!(all.insert(u, der).is_none());
        }
    }
    eprintln!(
        "{label}: {} enrollments in {:.1} s",
        all.len(),
        started.elapsed().as_secs_f64()
    );
    all
}

/// Every answer verifies, serials are distinct, and the database holds exactly them.
fn judge(ca: &Ca, answers: &BTreeMap<String, Vec<u8>>, gapless: bool) {
    assert_eq!(answers.len(), CLIENTS * PER_CLIENT);
    let ders: Vec<Vec<u8>> = answers.values().cloned().collect();
    let certs = ca.check_certs(&ders);
    let mut by_serial: BTreeMap<String, (&String, &X509)> = BTreeMap::new();
    for ((user, _), cert) in answers.iter().zip(&certs) {
        assert_eq!(&common::common_name(cert), user);
        let serial = common::serial_of(cert);
        if let Some((other, _)) = by_serial.insert(serial.clone(), (user, cert)) {
            panic!("serial {serial} was given to {other} and to {user}");
        }
    }
    let index = ca.index();
    assert_eq!(index.len(), answers.len(), "index.txt lines == certificates");
    let index_serials: BTreeSet<&str> = index.iter().map(|l| l.serial.as_str()).collect();
    let answered: BTreeSet<&str> = by_serial.keys().map(String::as_str).collect();
    assert_eq!(
        index_serials, answered,
        "index.txt holds exactly the answered serials"
    );
    for line in &index {
        let (user, cert) = by_serial[&line.serial];
        assert!(line.subject.ends_with(&format!("/CN={user}")), "{line:?}");
        let pem = fs::read(ca.path(&format!("newcerts/{}.pem", line.serial))).unwrap();
        assert_eq!(
            X509::from_pem(&pem).unwrap().to_der().unwrap(),
            cert.to_der().unwrap(),
            "newcerts/{}.pem is the answered certificate",
            line.serial
        );
    }
    // The serial file is ahead of every serial used. CGI takes serials one by one, so
    // there 1000.. are used without a gap; the daemon reserves blocks (gaps allowed).
    let hex = |s: &str| u64::from_str_radix(s.trim(), 16).unwrap();
    let next = hex(&fs::read_to_string(ca.path("serial")).unwrap());
    let used: Vec<u64> = index.iter().map(|l| hex(&l.serial)).collect();
    assert!(used.iter().all(|&s| s < next), "the serial file is behind");
    if gapless {
        let want: BTreeSet<u64> = (0x1000..0x1000 + answers.len() as u64).collect();
        assert_eq!(used.iter().copied().collect::<BTreeSet<u64>>(), want);
        assert_eq!(next, 0x1000 + answers.len() as u64);
    }
    ca.assert_consistent(true);
    ca.openssl_verify(&ders);
}

#[test]
fn fastcgi_daemon_16_clients_x_50() {
    let ca = Ca::init_sequential();
    let daemon = Daemon::start(&ca, Listen::Unix, 4);
    let answers = hammer(&daemon.front, "FastCGI, 4 workers");
    judge(&ca, &answers, false);
    // Still serving.
    ca.check_cert(
        &daemon
            .front
            .enroll_csr("after", &fixture_text("ec-p256.csr"))
            .cert_der(),
    );
}

#[test]
fn cgi_16_processes_at_a_time_x_50() {
    let ca = Ca::init_sequential();
    let answers = hammer(&Front::Cgi(ca.conf.clone()), "CGI, 16 processes at a time");
    judge(&ca, &answers, true);
}
