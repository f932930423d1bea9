//! The article's own CA, made by its steps 1 and 4 (openssl genrsa, openssl req -x509,
//! touch index.txt, echo 1000 > serial, no index.txt.attr) with its ca.conf from section
//! 4.2 unchanged but for the two directory paths, works with getacert as it is: the
//! certificate is signed with SHA-256 although ca.conf says `default_md = sha1`, the
//! subject follows `policy_any`, and `openssl ca` agrees with the database.

mod common;

use std::fs;

use common::{Ca, Daemon, Front, Listen, fixture, fixture_text};
use openssl::nid::Nid;
use openssl::x509::X509;

/// The article's CA in a temporary directory: `<tmp>/ssl.crt` stands for
/// /etc/apache2/ssl.crt/ and `<tmp>/ca` for /var/www/auth/ca/.
fn article_ca() -> Ca {
    let tmp = tempfile::Builder::new()
        .prefix("getacert-article-")
        .tempdir()
        .unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let ssl = root.join("ssl.crt");
    let ca = root.join("ca");
    fs::create_dir_all(&ssl).unwrap();
    fs::create_dir_all(ca.join("newcerts")).unwrap();

    // Step 1.
    let key = ssl.join("rootCA.key");
    let cert = ssl.join("rootCA.pem");
    common::openssl(["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    common::openssl([
        "req",
        "-x509",
        "-new",
        "-nodes",
        "-key",
        key.to_str().unwrap(),
        "-days",
        "7300",
        "-out",
        cert.to_str().unwrap(),
        "-subj",
        "/C=US/ST=CA/O=MyApp/CN=MyApp CA",
    ]);
    fs::copy(&cert, ssl.join("ca-bundle.crt")).unwrap();

    // Step 4.1 (touch index.txt; mkdir newcerts; echo 1000 > serial) and 4.2.
    fs::write(ca.join("index.txt"), "").unwrap();
    fs::write(ca.join("serial"), "1000\n").unwrap();
    let conf = fixture_text("article-ca.conf")
        .replace("/var/www/auth/ca/", &format!("{}/", ca.display()))
        .replace("/etc/apache2/ssl.crt/", &format!("{}/", ssl.display()));
    assert_eq!(
        conf.lines().count(),
        fixture_text("article-ca.conf").lines().count(),
        "only paths change"
    );
    assert!(conf.contains("default_md     = sha1") && conf.contains("policy         = policy_any"));
    fs::write(ca.join("ca.conf"), conf).unwrap();
    assert!(!ca.join("index.txt.attr").exists());

    Ca {
        tmp,
        conf: ca.join("ca.conf"),
        dir: ca,
        cert,
    }
}

fn check_issued(ca: &Ca, der: &[u8], username: &str, subject: &str) -> String {
    let cert = ca.check_cert(der);
    ca.openssl_verify(&[der.to_vec()]);
    assert_eq!(
        cert.signature_algorithm().object().nid(),
        Nid::SHA256WITHRSAENCRYPTION,
        "signed with sha256, not the article's sha1"
    );
    assert_eq!(common::common_name(&cert), username);
    let serial = common::serial_of(&cert);
    let line = ca
        .index()
        .into_iter()
        .find(|l| l.serial == serial)
        .expect("recorded in index.txt");
    assert_eq!(line.status, "V");
    assert_eq!(
        line.subject, subject,
        "policy_any: C supplied, ST and O optional, CN supplied"
    );
    // What `openssl x509` prints for the subject agrees with index.txt.
    let pem = ca.path(&format!("newcerts/{serial}.pem"));
    let printed = common::openssl([
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    assert_eq!(printed.trim(), format!("subject={subject}"));
    // default_days = 3650.
    let days = cert.not_before().diff(cert.not_after()).unwrap().days;
    assert_eq!(days, 3650);
    assert_eq!(ca.status(&serial), "Valid (V)");
    let on_file = X509::from_pem(&fs::read(&pem).unwrap()).unwrap();
    assert_eq!(on_file.to_der().unwrap(), der);
    serial
}

#[test]
fn the_articles_ca_works_unchanged_through_fastcgi_and_cgi() {
    let ca = article_ca();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);

    // The article's flow: <keygen> posts an RSA SPKAC in `pubkey`.
    let reply = daemon.front.enroll_spkac("alice", &fixture("rsa2048.key"));
    let first = check_issued(&ca, &reply.cert_der(), "alice", "/C=US/ST=CA/O=MyApp/CN=alice");
    assert_eq!(first, "1000", "the serial file the article made (1000) is used");

    // A CSR with an email address: emailAddress is optional and email_in_dn = yes.
    let csr = fixture_text("ec-p256.csr");
    let reply = daemon.front.send(&common::HttpRequest::form(&[
        ("username", "bob"),
        ("email", "bob@example.org"),
        ("csr", &csr),
    ]));
    check_issued(
        &ca,
        &reply.cert_der(),
        "bob",
        "/C=US/ST=CA/O=MyApp/CN=bob/emailAddress=bob@example.org",
    );

    // Plain CGI on the same database. (The daemon reserves serials in blocks, so CGI
    // continues after the daemon's block: a gap, never a reuse.)
    let reply = Front::Cgi(ca.conf.clone()).enroll_csr("carol", &fixture_text("rsa2048.csr"));
    let third = check_issued(&ca, &reply.cert_der(), "carol", "/C=US/ST=CA/O=MyApp/CN=carol");
    let next = fs::read_to_string(ca.path("serial")).unwrap();
    let hex = |s: &str| u64::from_str_radix(s.trim(), 16).unwrap();
    assert_eq!(hex(&next), hex(&third) + 1, "serial file {next:?} after {third}");

    ca.assert_consistent(true);
    // openssl ca can still revoke and make a CRL from this database.
    ca.openssl_ca(&["-revoke", ca.path("newcerts/1001.pem").to_str().unwrap()]);
    let crl = ca.scratch("crl.pem");
    ca.openssl_ca(&["-gencrl", "-md", "sha256", "-out", crl.to_str().unwrap()]);
    let text = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("Serial Number: 1001"), "{text}");
    assert_eq!(ca.status("1001"), "Revoked (R)");
    assert_eq!(ca.status("1000"), "Valid (V)");

    // Revoked, bob's name is still his (issue 10 item 2) until the admin releases it;
    // then anyone may enroll it. alice's is valid: taken.
    assert_eq!(daemon.front.enroll_csr("bob", &csr).status, 409);
    let out = std::process::Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(["release", "bob"])
        .output()
        .unwrap();
    assert!(out.status.success(), "release bob: {out:?}");
    let reply = daemon.front.enroll_csr("bob", &csr);
    check_issued(&ca, &reply.cert_der(), "bob", "/C=US/ST=CA/O=MyApp/CN=bob");
    assert_eq!(daemon.front.enroll_csr("alice", &csr).status, 409);
    ca.assert_consistent(true);
}
