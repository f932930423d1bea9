//! Enrollment through every front end of the real binary: the FastCGI daemon on a unix
//! socket and on TCP (asked by the independent `fastcgi-client`), the listening socket
//! on fd 0 as spawn-fcgi hands it over (unix and TCP), libfcgi's own `cgi-fcgi`, and
//! plain CGI. Each answer is judged by `openssl verify` and `openssl ca -status`.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::{Ca, Daemon, Front, HttpRequest, Listen, Reply, fixture, fixture_text, unique_name};
use openssl::nid::Nid;
use openssl::x509::X509;

/// Enrolls one username, one way.
type Enroll<'a> = Box<dyn Fn(&str) -> Reply + 'a>;

/// Enrolls with a fresh SPKAC (EC and RSA keys) and with CSRs (RSA, EC, Ed25519), then
/// checks every answer and the database.
fn enroll_everything(ca: &Ca, front: &Front) {
    let mut ders = Vec::new();
    let cases: Vec<(&str, Enroll)> = vec![
        (
            "spkac-ec",
            Box::new(|u| front.enroll_spkac(u, &fixture("ec-p256.key"))),
        ),
        (
            "spkac-rsa",
            Box::new(|u| front.enroll_spkac(u, &fixture("rsa2048.key"))),
        ),
        (
            "csr-rsa",
            Box::new(|u| front.enroll_csr(u, &fixture_text("rsa2048.csr"))),
        ),
        (
            "csr-ec",
            Box::new(|u| front.enroll_csr(u, &fixture_text("ec-p256.csr"))),
        ),
        (
            "csr-ed25519",
            Box::new(|u| front.enroll_csr(u, &fixture_text("ed25519.csr"))),
        ),
    ];
    for (what, enroll) in &cases {
        let user = unique_name(what);
        let reply = enroll(&user);
        assert_eq!(reply.status, 200, "{what}: {reply:?}");
        assert_eq!(reply.header("Cache-Control"), Some("no-store"), "{what}");
        let der = reply.cert_der();
        let cert = ca.check_cert(&der);
        assert_eq!(common::common_name(&cert), user, "{what}");
        assert_profile(&cert, what);
        let serial = common::serial_of(&cert);
        assert_eq!(
            ca.status(&serial),
            "Valid (V)",
            "{what}: openssl ca -status {serial}"
        );
        let on_file = X509::from_pem(&fs::read(ca.path(&format!("newcerts/{serial}.pem"))).unwrap()).unwrap();
        assert_eq!(
            on_file.to_der().unwrap(),
            der,
            "{what}: newcerts/{serial}.pem is what was answered"
        );
        ders.push(der);
    }
    ca.openssl_verify(&ders);
    assert_eq!(ca.index().len(), cases.len());
    ca.assert_consistent(true);
}

/// A v3 client certificate signed with SHA-256, for TLS client authentication only.
fn assert_profile(cert: &X509, what: &str) {
    assert_eq!(cert.version(), 2, "{what}: v3");
    let alg = cert.signature_algorithm().object().nid();
    assert_eq!(alg, Nid::SHA256WITHRSAENCRYPTION, "{what}: signature algorithm");
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(
        text.contains("TLS Web Client Authentication"),
        "{what}: EKU clientAuth\n{text}"
    );
    assert!(text.contains("CA:FALSE"), "{what}: not a CA\n{text}");
}

#[test]
fn fastcgi_daemon_on_a_unix_socket() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    enroll_everything(&ca, &daemon.front);
}

#[test]
fn fastcgi_daemon_on_tcp() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Tcp, 2);
    enroll_everything(&ca, &daemon.front);
}

#[test]
fn fastcgi_on_fd0_from_spawn_fcgi_unix() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::SpawnFcgiUnix, 0);
    enroll_everything(&ca, &daemon.front);
}

#[test]
fn fastcgi_on_fd0_from_spawn_fcgi_tcp() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::SpawnFcgiTcp, 0);
    enroll_everything(&ca, &daemon.front);
}

#[test]
fn plain_cgi() {
    let ca = Ca::init();
    enroll_everything(&ca, &Front::Cgi(ca.conf.clone()));
}

/// CGI finds its configuration through `GETACERT_CONFIG` only: under mod_cgi the command
/// line can be the visitor's (a query string without `=`), so `--config` there is
/// refused like every other argument (tests/cgi_argv.rs) and nothing is issued.
#[test]
fn plain_cgi_refuses_a_config_flag() {
    let ca = Ca::init();
    let before = ca.snapshot();
    let csr = fixture_text("ec-p256.csr");
    let req = HttpRequest::form(&[("username", "flag-user"), ("csr", &csr)]);
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .env_clear()
        .envs(req.cgi_params())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    // getacert may exit before reading the body: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(&req.body);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(Reply::parse(&out.stdout).status, 500);
    assert_eq!(ca.snapshot(), before);
}

/// libfcgi's `cgi-fcgi` (the reference FastCGI implementation) as the web server.
#[test]
fn libfcgi_cgi_fcgi_as_the_web_server() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let Front::Unix(sock) = &daemon.front else {
        unreachable!()
    };
    let run = |req: &HttpRequest| -> Reply {
        let mut child = Command::new("cgi-fcgi")
            .args(["-bind", "-connect"])
            .arg(sock)
            .env_clear()
            .envs(req.cgi_params())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cgi-fcgi (Debian: libfcgi-bin)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&req.body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        Reply::parse(&out.stdout)
    };
    let page = run(&HttpRequest::get());
    let spkac = common::make_spkac(&fixture("ec-p256.key"), &page.challenge());
    let reply = run(&HttpRequest::form(&[
        ("username", "libfcgi-user"),
        ("pubkey", &spkac),
        ("token", &page.token()),
    ])
    .with_param("HTTP_COOKIE", &page.cookie()));
    let cert = ca.check_cert(&reply.cert_der());
    assert_eq!(ca.status(&common::serial_of(&cert)), "Valid (V)");
    ca.assert_consistent(true);
}

/// The page, the answer formats and HEAD.
#[test]
fn page_and_answer_formats() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let front = &daemon.front;

    let page = front.send(&HttpRequest::get());
    assert_eq!(page.status, 200);
    assert!(page.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(page.header("Content-Security-Policy").is_some());
    assert!(!page.challenge().is_empty() && !page.token().is_empty());
    let mut head = HttpRequest::get();
    head.method = "HEAD".into();
    let head = front.send(&head);
    assert_eq!((head.status, head.body.len()), (200, 0));

    let csr = fixture_text("ec-p256.csr");
    let pem = front.send(
        &HttpRequest::form(&[("username", "pem-user"), ("csr", &csr)])
            .with_param("HTTP_ACCEPT", "application/x-pem-file"),
    );
    assert_eq!(pem.status, 200, "{pem:?}");
    assert_eq!(pem.header("Content-Type"), Some("application/x-pem-file"));
    let cert = X509::from_pem(&pem.body).unwrap();
    ca.check_cert(&cert.to_der().unwrap());

    // An email goes into the subject; multipart/form-data works as well as urlencoded.
    let boundary = "XyZzY";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmulti-user\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nmulti@example.org\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"csr\"\r\n\r\n{csr}\r\n--{boundary}--\r\n"
    );
    let mut req = HttpRequest::raw_form(body.into_bytes());
    req.content_type = Some(format!("multipart/form-data; boundary={boundary}"));
    let reply = front.send(&req);
    let cert = ca.check_cert(&reply.cert_der());
    let line = ca.index().pop().unwrap();
    assert_eq!(line.serial, common::serial_of(&cert));
    assert_eq!(
        line.subject,
        "/C=US/O=MyApp/CN=multi-user/emailAddress=multi@example.org"
    );
    ca.assert_consistent(true);
}
