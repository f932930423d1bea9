//! getacert and `openssl ca` share one database: what an admin does with
//! `openssl ca -revoke` / `-gencrl` / `-updatedb` is seen by the running daemon and by
//! CGI, and what getacert writes is read by `openssl ca`. A username with a valid
//! certificate is taken (409, case-insensitively, database untouched); a revoked or
//! expired one is free again.

mod common;

use std::fs;

use common::{Ca, Daemon, Front, HttpRequest, Listen, Reply, fixture, fixture_text};

fn serial_of_reply(ca: &Ca, reply: &Reply) -> String {
    common::serial_of(&ca.check_cert(&reply.cert_der()))
}

#[test]
fn revoke_and_crl_by_openssl_ca_between_enrollments() {
    let ca = Ca::init_sequential();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let front = &daemon.front;
    let cgi = Front::Cgi(ca.conf.clone());
    let csr = fixture_text("ec-p256.csr");

    let alice = serial_of_reply(&ca, &front.enroll_spkac("alice", &fixture("ec-p256.key")));
    let bob = serial_of_reply(&ca, &front.enroll_csr("bob", &csr));
    assert_eq!((alice.as_str(), bob.as_str()), ("1000", "1001"));

    // The admin revokes alice and publishes a CRL (openssl ca rewrites index.txt by
    // rename and creates index.txt.old, index.txt.attr.old).
    let alice_pem = ca.path("newcerts/1000.pem");
    ca.openssl_ca(&[
        "-revoke",
        alice_pem.to_str().unwrap(),
        "-crl_reason",
        "keyCompromise",
    ]);
    let crl = ca.path("crl.pem");
    ca.openssl_ca(&["-gencrl", "-out", crl.to_str().unwrap()]);
    assert_eq!(ca.status("1000"), "Revoked (R)");

    // A new user, through the running daemon and through CGI.
    let carol = serial_of_reply(&ca, &front.enroll_csr("carol", &csr));
    let dave = serial_of_reply(&ca, &cgi.enroll_csr("dave", &csr));
    // alice has no valid certificate any more, but the name is hers until released.
    assert_eq!(front.enroll_csr("alice", &csr).status, 409);
    assert_eq!(cgi.enroll_csr("Alice", &csr).status, 409);
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(["release", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success(), "release alice: {out:?}");
    let alice_again = serial_of_reply(&ca, &front.enroll_spkac("alice", &fixture("rsa2048.key")));
    // bob's is still valid: taken, in both.
    assert_eq!(front.enroll_csr("bob", &csr).status, 409);
    assert_eq!(cgi.enroll_csr("Bob", &csr).status, 409);
    // The daemon reserves serials in blocks; CGI takes the next from the serial file.
    let all = [&alice, &bob, &carol, &dave, &alice_again];
    let distinct: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "serials {all:?}");

    // Everything agrees.
    assert_eq!(ca.status(&alice), "Revoked (R)");
    for serial in [&bob, &carol, &dave, &alice_again] {
        assert_eq!(ca.status(serial), "Valid (V)", "serial {serial}");
    }
    let index = ca.index();
    assert_eq!(index.len(), 5);
    assert_eq!(index[0].status, "R");
    assert!(index[0].revoked.ends_with(",keyCompromise"), "{:?}", index[0]);
    assert_eq!(
        ca.newcerts().len(),
        index.len(),
        "index.txt lines == newcerts files"
    );
    ca.assert_consistent(true);

    // The CRL lists alice's first certificate, and a fresh CRL still does.
    let text = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("Serial Number: 1000"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    ca.openssl_ca(&["-gencrl", "-out", crl.to_str().unwrap()]);
    let text = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("Serial Number: 1000"), "{text}");
    assert_eq!(text.matches("Serial Number:").count(), 1, "{text}");

    // And `openssl verify -crl_check` believes it.
    let verify = |serial: &str| {
        common::openssl_output([
            "verify",
            "-crl_check",
            "-CAfile",
            ca.cert.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            ca.path(&format!("newcerts/{serial}.pem")).to_str().unwrap(),
        ])
    };
    let revoked = verify("1000");
    assert!(!revoked.status.success());
    assert!(
        String::from_utf8_lossy(&revoked.stdout).contains("revoked")
            || String::from_utf8_lossy(&revoked.stderr).contains("revoked")
    );
    assert!(verify(&alice_again).status.success());
}

/// Enrolls `first`, then tries each of `again` (same name, other case) with each key
/// request kind; every try must be 409 with the database byte-for-byte unchanged.
fn username_taken_on(ca: &Ca, front: &Front) {
    let csr = fixture_text("rsa2048.csr");
    let reply = front.enroll_csr("alice", &csr);
    ca.check_cert(&reply.cert_der());
    let before = ca.snapshot();
    for name in ["alice", "Alice", "ALICE", "aLiCe"] {
        let by_csr = front.enroll_csr(name, &fixture_text("ec-p256.csr"));
        assert_eq!(by_csr.status, 409, "{name} by CSR: {by_csr:?}");
        assert!(!by_csr.is_cert());
        assert!(by_csr.text().contains("already taken"), "{by_csr:?}");
        let by_spkac = front.enroll_spkac(name, &fixture("ec-p256.key"));
        assert_eq!(by_spkac.status, 409, "{name} by SPKAC: {by_spkac:?}");
        assert_eq!(ca.snapshot(), before, "{name}: the database changed");
    }
    // Another name is fine.
    ca.check_cert(&front.enroll_csr("alice2", &csr).cert_der());
    ca.assert_consistent(true);
}

#[test]
fn username_taken_fastcgi() {
    let ca = Ca::init_sequential();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    username_taken_on(&ca, &daemon.front);
}

#[test]
fn username_taken_cgi() {
    let ca = Ca::init_sequential();
    username_taken_on(&ca, &Front::Cgi(ca.conf.clone()));
}

/// A user whose certificate has expired (a record written as `openssl ca` would have
/// left it, `V` or `E`) still owns the name (issue 10 item 2) until `getacert release`;
/// then it is free, compared without regard to case.
#[test]
fn an_expired_certificate_keeps_the_name_until_released() {
    let ca = Ca::init_sequential();
    fs::write(
        ca.path("index.txt"),
        "V\t200101000000Z\t\t0FFE\tunknown\t/C=US/O=MyApp/CN=olduser\n\
         E\t210101000000Z\t\t0FFF\tunknown\t/C=US/O=MyApp/CN=older\n",
    )
    .unwrap();
    let front = Front::Cgi(ca.conf.clone());
    let csr = fixture_text("ec-p256.csr");
    for name in ["olduser", "OLDER"] {
        let reply = front.enroll_csr(name, &csr);
        assert_eq!(reply.status, 409, "{name}, expired, not released: {reply:?}");
        let out = std::process::Command::new(common::bin())
            .arg("--config")
            .arg(&ca.conf)
            .args(["release", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "release {name}: {out:?}");
        let reply = front.enroll_csr(name, &csr);
        assert_eq!(reply.status, 200, "{name}, released: {reply:?}");
    }
    assert_eq!(front.enroll_csr("OldUser", &csr).status, 409);
    let index = ca.index();
    assert_eq!(index.len(), 4);
    assert_eq!(index[2].serial, "1000");
    ca.openssl_ca(&["-updatedb"]);
    assert_eq!(
        ca.index()[0].status,
        "E",
        "openssl ca -updatedb marks the old one expired"
    );
    assert_eq!(ca.status("1000"), "Valid (V)");
}

#[test]
fn the_409_body_names_the_username_and_the_page_says_how_to_retry() {
    let ca = Ca::init_sequential();
    let front = Front::Cgi(ca.conf.clone());
    let csr = fixture_text("ec-p256.csr");
    front.enroll_csr("zoe", &csr).cert_der();
    let html = front.send(
        &HttpRequest::form(&[("username", "zoe"), ("csr", &csr)]).with_param("HTTP_ACCEPT", "text/html"),
    );
    assert_eq!(html.status, 409);
    assert!(html.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(html.text().contains("zoe"), "{html:?}");
}
