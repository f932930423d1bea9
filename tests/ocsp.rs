//! The OCSP responder, judged by `openssl ocsp`: it builds every request (with
//! `-reqout`), and verifies and reads every answer (`-respin` against the CA, `-reqin`
//! for the nonce). getacert runs as CGI and as the FastCGI daemon; revocations are made
//! by `getacert revoke` and by `openssl ca -revoke`, and must show at the next query,
//! with no restart.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Ca, Daemon, Front, HttpRequest, Listen, Reply};

const OCSP_REQUEST: &str = "application/ocsp-request";

/// One enrolled certificate on disk.
struct Issued {
    pem: PathBuf,
    serial: String,
}

fn enroll(ca: &Ca, front: &Front, username: &str) -> Issued {
    let key = ca.scratch(&format!("{username}.key"));
    common::ec_p256_key(&key);
    let csr = common::make_csr(&key);
    let reply = front.enroll_csr(username, &csr);
    assert_eq!(reply.status, 200, "enrolling {username}: {reply:?}");
    let cert = openssl::x509::X509::from_der(&reply.cert_der()).unwrap();
    let pem = ca.scratch(&format!("{username}.pem"));
    fs::write(&pem, cert.to_pem().unwrap()).unwrap();
    Issued {
        pem,
        serial: common::serial_of(&cert),
    }
}

/// `openssl ocsp -issuer CA -cert C… -reqout FILE` (with a nonce unless `nonce` is off).
fn make_request(ca: &Ca, issuer: &Path, certs: &[&Path], extra: &[&str], name: &str) -> PathBuf {
    let out = ca.scratch(name);
    let mut args: Vec<String> = vec!["ocsp".into(), "-issuer".into(), issuer.display().to_string()];
    // Options such as -sha256 must come before the -cert they apply to.
    args.extend(extra.iter().map(|s| s.to_string()));
    for c in certs {
        args.push("-cert".into());
        args.push(c.display().to_string());
    }
    args.push("-reqout".into());
    args.push(out.display().to_string());
    common::openssl(args);
    out
}

fn post(front: &Front, der: &[u8]) -> Reply {
    let req = HttpRequest {
        method: "POST".into(),
        content_type: Some(OCSP_REQUEST.into()),
        body: der.to_vec(),
        params: Vec::new(),
    }
    .with_param("REQUEST_URI", "/ocsp")
    .with_param("SCRIPT_NAME", "/ocsp");
    front.send(&req)
}

fn get(front: &Front, path_tail: &str) -> Reply {
    front.send(
        &HttpRequest::get()
            .with_param("REQUEST_URI", &format!("/ocsp/{path_tail}"))
            .with_param("SCRIPT_NAME", "/ocsp"),
    )
}

/// Writes the answer and returns what `openssl ocsp -respin` says about `certs`
/// (verified against the CA certificate; `Err` with the output when it fails).
fn judge(ca: &Ca, reply: &Reply, certs: &[&Path], name: &str) -> Result<String, String> {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("Content-Type"), Some("application/ocsp-response"));
    let resp = ca.scratch(name);
    fs::write(&resp, &reply.body).unwrap();
    let mut args: Vec<String> = vec![
        "ocsp".into(),
        "-respin".into(),
        resp.display().to_string(),
        "-CAfile".into(),
        ca.cert.display().to_string(),
        "-issuer".into(),
        ca.cert.display().to_string(),
        "-no_nonce".into(),
    ];
    for c in certs {
        args.push("-cert".into());
        args.push(c.display().to_string());
    }
    let out = common::openssl_output(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Response verify OK") {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The status `openssl ocsp` printed for `cert`: "good", "revoked", "unknown".
fn status_of(text: &str, cert: &Path) -> String {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{}: ", cert.display())))
        .unwrap_or_else(|| panic!("no status for {} in {text}", cert.display()));
    line.rsplit(": ").next().unwrap().trim().to_string()
}

/// `openssl ocsp -respin -resp_text` (an error response makes it exit 1: the text is
/// what is judged).
fn response_text(ca: &Ca, der: &[u8], name: &str) -> String {
    let resp = ca.scratch(name);
    fs::write(&resp, der).unwrap();
    let out = common::openssl_output([
        "ocsp",
        "-respin",
        &resp.display().to_string(),
        "-resp_text",
        "-noverify",
    ]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn admin(ca: &Ca, args: &[&str]) {
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "getacert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// DER: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// `request` (an OCSPRequest without extensions) with a nonce extension of `nonce`.
fn with_nonce(request: &[u8], nonce: &[u8]) -> Vec<u8> {
    // OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { requestList, [2] Extensions } }
    let inner = |der: &[u8]| -> Vec<u8> {
        let len_bytes = if der[1] < 0x80 {
            0
        } else {
            (der[1] & 0x7f) as usize
        };
        der[2 + len_bytes..].to_vec()
    };
    let tbs_content = inner(&inner(request));
    const NONCE_OID: &[u8] = &[0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
    let ext = tlv(0x30, &[NONCE_OID, &tlv(0x04, &tlv(0x04, nonce))].concat());
    let exts = tlv(0xa2, &tlv(0x30, &ext));
    tlv(0x30, &tlv(0x30, &[tbs_content, exts].concat()))
}

#[test]
fn ocsp_good_revoked_and_unknown_agree_with_openssl_ocsp() {
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let alice = enroll(&ca, &front, "alice");
    let bob = enroll(&ca, &front, "bob");
    admin(
        &ca,
        &["revoke", "--serial", &bob.serial, "--reason", "keyCompromise"],
    );

    let req = make_request(&ca, &ca.cert, &[&alice.pem, &bob.pem], &[], "two.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let text = judge(&ca, &reply, &[&alice.pem, &bob.pem], "two.resp").unwrap();
    assert_eq!(status_of(&text, &alice.pem), "good", "{text}");
    assert_eq!(status_of(&text, &bob.pem), "revoked", "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    let revoked_line = ca.index().into_iter().find(|l| l.serial == bob.serial).unwrap();
    assert_eq!(revoked_line.status, "R");

    // A serial this CA never issued: unknown, still signed.
    let req = make_request(&ca, &ca.cert, &[], &["-serial", "0xDEADBEEF"], "never.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let text = judge(&ca, &reply, &[], "never.resp").unwrap();
    let shown = response_text(&ca, &reply.body, "never.text");
    assert!(shown.contains("Cert Status: unknown"), "{shown}\n{text}");
}

#[test]
fn ocsp_nonce_is_echoed_and_checked_by_openssl() {
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let alice = enroll(&ca, &front, "alice");
    let req = make_request(&ca, &ca.cert, &[&alice.pem], &["-nonce"], "nonce.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let resp = ca.scratch("nonce.resp");
    fs::write(&resp, &reply.body).unwrap();
    // -reqin: openssl checks the response's nonce against this request's.
    let out = common::openssl_output([
        "ocsp",
        "-reqin",
        &req.display().to_string(),
        "-respin",
        &resp.display().to_string(),
        "-CAfile",
        &ca.cert.display().to_string(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(
        !text.contains("Nonce Verify error") && !text.contains("no nonce"),
        "{text}"
    );
    // And a different request's nonce is refused by openssl: the echo is real.
    let other = make_request(&ca, &ca.cert, &[&alice.pem], &["-nonce"], "other.req");
    let out = common::openssl_output([
        "ocsp",
        "-reqin",
        &other.display().to_string(),
        "-respin",
        &resp.display().to_string(),
        "-CAfile",
        &ca.cert.display().to_string(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Nonce Verify error")
            || String::from_utf8_lossy(&out.stdout).contains("Nonce Verify error"),
        "{out:?}"
    );
}

#[test]
fn ocsp_get_form_with_percent_encoded_base64() {
    use base64::Engine;
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let alice = enroll(&ca, &front, "alice");
    let der = fs::read(make_request(
        &ca,
        &ca.cert,
        &[&alice.pem],
        &["-no_nonce"],
        "get.req",
    ))
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    // As nginx sends it: every '+', '/' and '=' percent-encoded.
    let escaped: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_string(),
            '/' => "%2F".to_string(),
            '=' => "%3D".to_string(),
            c => c.to_string(),
        })
        .collect();
    for (name, tail) in [("plain", b64.clone()), ("escaped", escaped)] {
        let reply = get(&front, &tail);
        let text = judge(&ca, &reply, &[&alice.pem], &format!("get-{name}.resp")).unwrap();
        assert_eq!(status_of(&text, &alice.pem), "good", "{name}: {text}");
    }
}

#[test]
fn ocsp_caching_headers_match_next_update() {
    let ca = Ca::init();
    ca.append_getacert_settings("ocsp_next_update = 7\n");
    let front = Front::Cgi(ca.conf.clone());
    let alice = enroll(&ca, &front, "alice");
    let req = make_request(&ca, &ca.cert, &[&alice.pem], &[], "cache.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let text = judge(&ca, &reply, &[&alice.pem], "cache.resp").unwrap();
    let cc = reply.header("Cache-Control").unwrap_or_default().to_string();
    assert!(
        cc.starts_with("max-age=7,") || cc.starts_with("max-age=6,"),
        "{cc}"
    );
    assert!(cc.contains("public") && cc.contains("must-revalidate"), "{cc}");
    let etag = reply.header("ETag").unwrap_or_default();
    assert!(etag.len() == 42 && etag.starts_with('"'), "{etag}");
    let date = |h: &str| {
        let v = reply.header(h).unwrap_or_else(|| panic!("no {h}"));
        // `Tue, 14 Nov 2023 22:13:20 GMT`: the seconds of the day are enough here.
        let hms: Vec<i64> = v
            .split(' ')
            .nth(4)
            .unwrap()
            .split(':')
            .map(|n| n.parse().unwrap())
            .collect();
        hms[0] * 3600 + hms[1] * 60 + hms[2]
    };
    assert_eq!((date("Expires") - date("Last-Modified")).rem_euclid(86400), 7);
    // openssl reads the same validity from the signed answer.
    let this = text.lines().find(|l| l.contains("This Update:")).unwrap();
    let next = text.lines().find(|l| l.contains("Next Update:")).unwrap();
    let secs = |l: &str| {
        let t = l.split_once(": ").unwrap().1.trim();
        let hms: Vec<i64> = t
            .split(' ')
            .find(|s| s.contains(':'))
            .unwrap()
            .split(':')
            .map(|n| n.parse().unwrap())
            .collect();
        hms[0] * 3600 + hms[1] * 60 + hms[2]
    };
    assert_eq!((secs(next) - secs(this)).rem_euclid(86400), 7, "{text}");
}

#[test]
fn ocsp_another_issuers_certificate_is_unknown() {
    let ca = Ca::init();
    let other = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let _alice = enroll(&ca, &front, "alice");
    let mallory = enroll(&other, &Front::Cgi(other.conf.clone()), "mallory");
    // Same serial (both CAs start at 1000), other issuer: unknown, not good.
    let req = make_request(&ca, &other.cert, &[&mallory.pem], &[], "other.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let shown = response_text(&ca, &reply.body, "other.text");
    assert!(shown.contains("Cert Status: unknown"), "{shown}");
    assert!(!shown.contains("Cert Status: good"), "{shown}");
    // SHA-256 CertIDs for our own CA are recognised.
    let alice_pem = ca.scratch("alice.pem");
    let req = make_request(&ca, &ca.cert, &[&alice_pem], &["-sha256"], "sha256.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let text = judge(&ca, &reply, &[], "sha256.resp").unwrap();
    let shown = response_text(&ca, &reply.body, "sha256.text");
    assert!(shown.contains("Cert Status: good"), "{shown}\n{text}");
}

#[test]
fn ocsp_malformed_requests_get_malformed_request_and_change_nothing() {
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let alice = enroll(&ca, &front, "alice");
    let good = fs::read(make_request(&ca, &ca.cert, &[&alice.pem], &[], "m.req")).unwrap();
    let before = ca.snapshot();
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"\x00\x00");
    let mut bad_tag = good.clone();
    bad_tag[0] = 0x31;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"hello, world".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("trailing bytes", trailing),
        ("wrong tag", bad_tag),
        ("empty sequence", vec![0x30, 0x00]),
        ("huge length", vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30]),
    ];
    for (name, body) in cases {
        let reply = post(&front, &body);
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
        let shown = response_text(&ca, &reply.body, &format!("m-{name}.text"));
        assert!(shown.contains("malformedrequest"), "{name}: {shown}");
        assert_eq!(reply.header("Cache-Control"), Some("no-store"), "{name}");
    }
    for tail in ["!!!notbase64", "%zz", "", "AAAA"] {
        let reply = get(&front, tail);
        let shown = response_text(&ca, &reply.body, "m-get.text");
        assert!(shown.contains("malformedrequest"), "GET {tail:?}: {shown}");
    }
    // More certificates than one request may ask about (64): refused, not signed 65
    // times over; 64 are answered.
    for (n, want) in [(65, "malformedrequest"), (64, "Response Status: successful")] {
        let serials: Vec<String> = (0..n).map(|i| format!("0x{:X}", 0x5000 + i)).collect();
        let mut args: Vec<&str> = Vec::new();
        for s in &serials {
            args.extend(["-serial", s.as_str()]);
        }
        let req = make_request(&ca, &ca.cert, &[], &args, &format!("n{n}.req"));
        let reply = post(&front, &fs::read(&req).unwrap());
        let shown = response_text(&ca, &reply.body, &format!("n{n}.text"));
        assert!(shown.contains(want), "{n} certificates: {shown}");
    }
    // A nonce is 1 to 32 bytes (RFC 8954): a longer one is not echoed under the CA's
    // signature (nobody may have the CA key sign kilobytes of their choosing).
    let plain = fs::read(make_request(
        &ca,
        &ca.cert,
        &[&alice.pem],
        &["-no_nonce"],
        "plain.req",
    ))
    .unwrap();
    for (len, want) in [
        (32, "Response Status: successful"),
        (33, "malformedrequest"),
        (4000, "malformedrequest"),
    ] {
        let req = with_nonce(&plain, &vec![0x5a; len]);
        let reply = post(&front, &req);
        let shown = response_text(&ca, &reply.body, &format!("nonce{len}.text"));
        assert!(shown.contains(want), "a {len}-byte nonce: {shown}");
    }
    // Any path without an /ocsp segment is the enrollment page, whatever the type.
    let reply = front.send(&HttpRequest {
        method: "POST".into(),
        content_type: Some(OCSP_REQUEST.into()),
        body: good.clone(),
        params: Vec::new(),
    });
    assert_eq!(reply.status, 415, "{reply:?}");
    assert_eq!(ca.snapshot(), before, "an OCSP request changed the CA directory");
}

#[test]
fn ocsp_many_certificates_in_one_request_are_all_answered() {
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let certs: Vec<Issued> = (0..5).map(|i| enroll(&ca, &front, &format!("user{i}"))).collect();
    admin(&ca, &["revoke", "--serial", &certs[2].serial]);
    let paths: Vec<&Path> = certs.iter().map(|c| c.pem.as_path()).collect();
    let req = make_request(&ca, &ca.cert, &paths, &[], "many.req");
    let reply = post(&front, &fs::read(&req).unwrap());
    let text = judge(&ca, &reply, &paths, "many.resp").unwrap();
    for (i, p) in paths.iter().enumerate() {
        let want = if i == 2 { "revoked" } else { "good" };
        assert_eq!(status_of(&text, p), want, "{text}");
    }
}

#[test]
fn ocsp_daemon_sees_revocations_at_the_next_query_without_restart() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let front = daemon.front.clone();
    let alice = enroll(&ca, &front, "alice");
    let bob = enroll(&ca, &front, "bob");
    let carol = enroll(&ca, &front, "carol");
    let ask = |who: &Issued, name: &str| {
        let req = make_request(&ca, &ca.cert, &[&who.pem], &[], &format!("{name}.req"));
        let reply = post(&front, &fs::read(&req).unwrap());
        let text = judge(&ca, &reply, &[&who.pem], &format!("{name}.resp")).unwrap();
        status_of(&text, &who.pem)
    };
    assert_eq!(ask(&alice, "a1"), "good");
    assert_eq!(ask(&bob, "b1"), "good");
    // getacert revoke (rewrite + rename under the lock).
    admin(&ca, &["revoke", "--serial", &alice.serial]);
    assert_eq!(ask(&alice, "a2"), "revoked");
    assert_eq!(ask(&bob, "b2"), "good");
    // openssl ca -revoke, as an admin who follows the article would.
    ca.openssl_ca(&["-revoke", &bob.pem.display().to_string()]);
    assert_eq!(ask(&bob, "b3"), "revoked");
    // Enrolled after the view was loaded: appended, and good at once.
    let dave = enroll(&ca, &front, "dave");
    assert_eq!(ask(&dave, "d1"), "good");
    assert_eq!(ask(&carol, "c1"), "good");
}

#[test]
fn ocsp_daemon_gives_kept_answers_without_nonce_until_the_status_changes() {
    // nginx's ssl_ocsp asks without a nonce: the daemon keeps that answer (a quarter of
    // ocsp_next_update) instead of signing again, and drops it at the first revocation.
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let front = daemon.front.clone();
    let alice = enroll(&ca, &front, "alice");
    let req = make_request(&ca, &ca.cert, &[&alice.pem], &["-no_nonce"], "kept.req");
    let der = fs::read(&req).unwrap();
    let first = post(&front, &der);
    assert_eq!(
        status_of(&judge(&ca, &first, &[&alice.pem], "k1.resp").unwrap(), &alice.pem),
        "good"
    );
    // A fresh answer a second later would carry a later thisUpdate: the same bytes mean
    // the kept one, which openssl ocsp still verifies.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = post(&front, &der);
    assert_eq!(second.body, first.body, "the kept answer");
    assert_eq!(
        status_of(
            &judge(&ca, &second, &[&alice.pem], "k2.resp").unwrap(),
            &alice.pem
        ),
        "good"
    );
    admin(&ca, &["revoke", "--serial", &alice.serial]);
    let third = post(&front, &der);
    assert_ne!(third.body, first.body);
    assert_eq!(
        status_of(&judge(&ca, &third, &[&alice.pem], "k3.resp").unwrap(), &alice.pem),
        "revoked"
    );
}
