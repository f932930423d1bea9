//! The findings of the linting pass (tests/lint/run runs pkilint over every signed
//! object), each pinned by a test against the real `openssl` CLI: an email is also a
//! subjectAltName; the `[ getacert_client ]` section `init` writes puts no
//! keyEncipherment on EC keys; `getacert crl --out FILE` writes only FILE; `check` does
//! not call the article's CA (no keyUsage, rejected by `openssl verify -x509_strict`)
//! sound, and says how to fix it; `check` warns about a web server that uses a CRL
//! without OCSP, and says whether the OCSP responder it names answers.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::{Ca, Front};

fn run(ca_conf: &Path, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(ca_conf)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ec_key(ca: &Ca, name: &str) -> std::path::PathBuf {
    let key = ca.scratch(name);
    common::ec_p256_key(&key);
    key
}

/// Enrolls `user` with a new EC key by CSR; the certificate as a PEM file.
fn issue_pem(ca: &Ca, user: &str) -> std::path::PathBuf {
    let key = ec_key(ca, &format!("{user}.key"));
    let reply = Front::Cgi(ca.conf.clone()).enroll_csr(user, &common::make_csr(&key));
    assert_eq!(reply.status, 200, "{reply:?}");
    let pem = ca.scratch(&format!("{user}.pem"));
    let cert = openssl::x509::X509::from_der(&reply.cert_der()).unwrap();
    fs::write(&pem, cert.to_pem().unwrap()).unwrap();
    pem
}

/// `openssl x509 -ext subjectAltName` of a DER certificate.
fn san_of(ca: &Ca, der: &[u8], name: &str) -> String {
    let path = ca.scratch(name);
    fs::write(&path, der).unwrap();
    common::openssl([
        "x509",
        "-inform",
        "DER",
        "-in",
        path.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ])
}

fn enroll_with_email(ca: &Ca, user: &str, email: &str) -> Vec<u8> {
    let key = ec_key(ca, &format!("{user}.key"));
    let csr = common::make_csr(&key);
    let reply = Front::Cgi(ca.conf.clone()).send(&common::HttpRequest::form(&[
        ("username", user),
        ("csr", &csr),
        ("email", email),
    ]));
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.cert_der()
}

#[test]
fn email_is_also_a_subject_alt_name_rfc822_name() {
    let ca = Ca::init();
    let der = enroll_with_email(&ca, "alice", "alice@example.org");
    let san = san_of(&ca, &der, "alice.der");
    assert!(san.contains("email:alice@example.org"), "{san}");
    // Without an email: no SAN at all (never an empty one).
    let key = ec_key(&ca, "bob.key");
    let reply = Front::Cgi(ca.conf.clone()).enroll_csr("bob", &common::make_csr(&key));
    assert_eq!(reply.status, 200, "{reply:?}");
    let san = san_of(&ca, &reply.cert_der(), "bob.der");
    assert!(!san.contains("Alternative"), "{san}");
}

#[test]
fn email_san_also_under_x509_extensions_without_a_san_of_its_own() {
    let ca = Ca::init();
    let conf = fs::read_to_string(&ca.conf).unwrap().replace(
        "copy_extensions = none\n",
        "copy_extensions = none\nx509_extensions = getacert_client\n",
    );
    fs::write(&ca.conf, conf).unwrap();
    let der = enroll_with_email(&ca, "alice", "alice@example.org");
    let san = san_of(&ca, &der, "alice.der");
    assert!(san.contains("email:alice@example.org"), "{san}");
}

#[test]
fn init_client_section_has_no_key_encipherment_for_ec_keys() {
    let ca = Ca::init();
    // `openssl ca -extensions getacert_client`, as init's ca.conf tells admins to run it.
    let key = ec_key(&ca, "ec.key");
    let csr = ca.scratch("ec.csr");
    common::openssl([
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=carol",
        "-out",
        csr.to_str().unwrap(),
    ]);
    let out = ca.scratch("ec.pem");
    ca.openssl_ca(&[
        "-batch",
        "-extensions",
        "getacert_client",
        "-in",
        csr.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ]);
    let ku = common::openssl(["x509", "-in", out.to_str().unwrap(), "-noout", "-ext", "keyUsage"]);
    assert!(ku.contains("Digital Signature"), "{ku}");
    assert!(!ku.contains("Key Encipherment"), "{ku}");
}

#[test]
fn crl_out_file_leaves_the_configured_crl_alone() {
    let ca = Ca::init();
    let configured = ca.path("crl.pem");
    let before = fs::read(&configured).unwrap();
    let out_file = ca.scratch("elsewhere.pem");
    let out = run(&ca.conf, &["crl", "--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read(&configured).unwrap(),
        before,
        "crl --out FILE overwrote crl.pem"
    );
    let crl = common::openssl([
        "crl",
        "-in",
        out_file.to_str().unwrap(),
        "-CAfile",
        ca.cert.to_str().unwrap(),
        "-noout",
    ]);
    assert!(crl.contains("verify OK"), "{crl}");
    // Without --out: the configured file.
    let out = run(&ca.conf, &["crl"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(fs::read(&configured).unwrap(), before);
}

/// The article's CA (`openssl req -x509`, no keyUsage) with init's ca.conf around it.
fn article_style_ca() -> Ca {
    let ca = Ca::init();
    let key = ca.path("rootCA.key");
    let cert = ca.path("rootCA.pem");
    common::openssl([
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-days",
        "7300",
        "-subj",
        "/C=US/O=MyApp/CN=X",
        "-out",
        cert.to_str().unwrap(),
    ]);
    ca
}

#[test]
fn check_does_not_call_the_articles_ca_sound() {
    let ca = article_style_ca();
    // The peer's verdict: what this CA issues fails openssl verify -x509_strict.
    let pem = issue_pem(&ca, "alice");
    let strict = common::openssl_output([
        "verify",
        "-x509_strict",
        "-CAfile",
        ca.cert.to_str().unwrap(),
        pem.to_str().unwrap(),
    ]);
    assert!(
        !strict.status.success(),
        "openssl verify -x509_strict accepted it"
    );

    let out = run(&ca.conf, &["check", "--web-config", "/dev/null"]);
    let said = text(&out);
    assert!(!said.contains(": sound"), "{said}");
    assert!(said.contains("has no keyUsage"), "{said}");
    assert!(
        said.contains("-addext keyUsage=critical,keyCertSign,cRLSign"),
        "{said}"
    );

    // init's own CA certificate draws no such warning.
    let good = Ca::init();
    let out = run(&good.conf, &["check", "--web-config", "/dev/null"]);
    assert!(!text(&out).contains("has no keyUsage"), "{}", text(&out));
}

#[test]
fn check_fix_for_the_articles_ca_is_accepted_by_x509_strict() {
    let ca = article_style_ca();
    let said = text(&run(&ca.conf, &["check", "--web-config", "/dev/null"]));
    // The fix check prints, run as printed (only the paths are this test's).
    let start = said
        .find("`openssl req -x509 -new")
        .unwrap_or_else(|| panic!("no fix in {said}"));
    let cmd = said[start + 1..].split('`').next().unwrap().to_string();
    let status = Command::new("sh").arg("-c").arg(&cmd).status().unwrap();
    assert!(status.success(), "{cmd}");
    let pem = issue_pem(&ca, "bob");
    common::openssl([
        "verify",
        "-x509_strict",
        "-CAfile",
        ca.cert.to_str().unwrap(),
        pem.to_str().unwrap(),
    ]);
    let said = text(&run(&ca.conf, &["check", "--web-config", "/dev/null"]));
    assert!(!said.contains("has no keyUsage"), "{said}");
}

fn check_with_web_config(ca: &Ca, web: &Path) -> String {
    text(&run(&ca.conf, &["check", "--web-config", web.to_str().unwrap()]))
}

#[test]
fn check_warns_when_the_web_server_uses_a_crl_without_ocsp() {
    let ca = Ca::init();
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/getacert.conf")).unwrap();
    // The shipped nginx file with its CRL line on and its OCSP lines commented out.
    let crl_only = shipped
        .replace("#ssl_crl ", "ssl_crl ")
        .replace("ssl_ocsp leaf;", "#ssl_ocsp leaf;")
        .replace("ssl_ocsp_responder ", "#ssl_ocsp_responder ");
    let web = ca.scratch("crl-only.conf");
    fs::write(&web, crl_only).unwrap();
    let said = check_with_web_config(&ca, &web);
    assert!(said.contains("checks a CRL but does not use OCSP"), "{said}");
    assert!(!said.contains(": sound"), "{said}");
    // The shipped Apache site (OCSP on, CRL lines commented): no such warning.
    let apache = Path::new(env!("CARGO_MANIFEST_DIR")).join("apache/ssl-clientauth.conf");
    let said = check_with_web_config(&ca, &apache);
    assert!(!said.contains("checks a CRL but does not use OCSP"), "{said}");
}

#[test]
fn check_says_when_the_ocsp_responder_does_not_answer() {
    let ca = Ca::init();
    let port = common::free_port();
    let web = ca.scratch("site.conf");
    fs::write(
        &web,
        format!("ssl_ocsp leaf;\nssl_ocsp_responder http://127.0.0.1:{port}/ocsp;\n"),
    )
    .unwrap();
    let said = check_with_web_config(&ca, &web);
    assert!(
        said.contains(&format!(
            "the OCSP responder http://127.0.0.1:{port}/ocsp does not answer"
        )),
        "{said}"
    );
    assert!(!said.contains(": sound"), "{said}");
}
