//! Bad input, table-driven. Every case is sent to the FastCGI daemon and (for the HTTP
//! level) to CGI; each must get its status (or, at the FastCGI record level, the
//! behaviour `src/web/fastcgi.rs` specifies), no certificate, an unchanged database
//! (index.txt, index.txt.attr, serial, crlnumber, newcerts/ byte for byte), and the
//! server must enroll correctly right afterwards.

mod common;

use std::fs;
use std::io::{self, Write};
use std::time::Duration;

use common::raw::{self, Rec};
use common::{Ca, Conn, Daemon, Front, HttpRequest, Listen, fixture, fixture_text, unique_name};
use getacert::token::{self, Purpose};

const WORKERS: usize = 4;

/// What a case may use: the server's current challenge and form token, its secret (to
/// sign tokens that are expired or from the future), and a forged client certificate:
/// self-signed, with the subject and serial of the certificate of "taken".
struct Ctx {
    challenge: String,
    token: String,
    secret: Vec<u8>,
    taken_serial: String,
    forged_cert: String,
}

impl Ctx {
    /// Enrolls "taken" too.
    fn new(ca: &Ca, front: &Front) -> Ctx {
        let (challenge, token) = front.challenge_and_token();
        let taken = ca.check_cert(&front.enroll_csr("taken", &csr()).cert_der());
        let taken_serial = common::serial_of(&taken);
        let forged = ca.scratch(&format!("forged-{}.pem", unique_name("f")));
        common::openssl([
            "req",
            "-x509",
            "-new",
            "-key",
            fixture("ec-p256.key").to_str().unwrap(),
            "-subj",
            "/C=US/O=MyApp/CN=taken",
            "-days",
            "30",
            "-set_serial",
            &format!("0x{taken_serial}"),
            "-out",
            forged.to_str().unwrap(),
        ]);
        Ctx {
            challenge,
            token,
            secret: std::fs::read(ca.path("getacert.secret")).expect("the secret exists after a GET"),
            taken_serial,
            forged_cert: std::fs::read_to_string(forged).unwrap(),
        }
    }

    /// The parameters Apache sets for a verified client certificate, with the forged one.
    fn forged_identity(&self, req: HttpRequest) -> HttpRequest {
        req.with_param("SSL_CLIENT_VERIFY", "SUCCESS")
            .with_param("SSL_CLIENT_M_SERIAL", &self.taken_serial)
            .with_param("SSL_CLIENT_CERT", &self.forged_cert)
            .with_param("SSL_CLIENT_S_DN_CN", "taken")
    }

    fn spkac(&self) -> String {
        common::make_spkac(&fixture("ec-p256.key"), &self.challenge)
    }

    fn spkac_over(&self, challenge: &str) -> String {
        common::make_spkac(&fixture("ec-p256.key"), challenge)
    }

    fn signed(&self, purpose: Purpose, age_seconds: i64) -> String {
        token::make(&self.secret, purpose, "", getacert::app::now() - age_seconds).expect("HMAC")
    }
}

fn csr() -> String {
    fixture_text("ec-p256.csr")
}

fn post(fields: &[(&str, &str)]) -> HttpRequest {
    HttpRequest::form(fields)
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A valid CSR enrollment for a username given as already-encoded form text.
fn raw_username(encoded: &str) -> HttpRequest {
    HttpRequest::raw_form(format!("username={encoded}&csr={}", urlencode(&csr())).into_bytes())
}

/// Flips the last byte of an SPKAC's DER (inside its signature).
fn tamper_spkac(spkac: &str) -> String {
    let mut der = openssl::base64::decode_block(spkac.strip_prefix("SPKAC=").unwrap()).unwrap();
    *der.last_mut().unwrap() ^= 0x01;
    format!("SPKAC={}", openssl::base64::encode_block(&der))
}

fn with_method(method: &str) -> HttpRequest {
    let mut r = post(&[("username", "m-user"), ("csr", &csr())]);
    r.method = method.into();
    r
}

type Make = fn(&Ctx) -> HttpRequest;

/// (name, status, request). The username "taken" has a valid certificate.
fn cases() -> Vec<(&'static str, u16, Make)> {
    vec![
        // --- username
        ("missing username", 400, |_| post(&[("csr", &csr())])),
        ("empty username", 400, |_| {
            post(&[("username", ""), ("csr", &csr())])
        }),
        ("username with a space", 400, |_| {
            post(&[("username", "al ice"), ("csr", &csr())])
        }),
        ("username with a leading space", 400, |_| {
            post(&[("username", " alice"), ("csr", &csr())])
        }),
        ("username /CN=admin", 400, |_| {
            post(&[("username", "/CN=admin"), ("csr", &csr())])
        }),
        ("username alice/CN=admin", 400, |_| {
            post(&[("username", "alice/CN=admin"), ("csr", &csr())])
        }),
        ("username with =", 400, |_| {
            post(&[("username", "a=b"), ("csr", &csr())])
        }),
        ("username with ,", 400, |_| {
            post(&[("username", "a,O=evil"), ("csr", &csr())])
        }),
        ("username NUL via %00", 400, |_| raw_username("al%00ice")),
        ("username newline via %0A", 400, |_| raw_username("alice%0A")),
        ("username tab via %09", 400, |_| raw_username("al%09ice")),
        ("username non-UTF-8 via %FF", 400, |_| raw_username("al%FFice")),
        ("username non-ASCII", 400, |_| {
            post(&[("username", "alicé"), ("csr", &csr())])
        }),
        ("username 65 characters", 400, |_| {
            post(&[("username", &"a".repeat(65)), ("csr", &csr())])
        }),
        ("username <script>", 400, |_| {
            post(&[("username", "<script>"), ("csr", &csr())])
        }),
        ("username starting with a dot", 400, |_| {
            post(&[("username", ".alice"), ("csr", &csr())])
        }),
        ("username repeated with different values", 400, |_| {
            post(&[("username", "alice"), ("username", "mallory"), ("csr", &csr())])
        }),
        ("username taken", 409, |_| {
            post(&[("username", "taken"), ("csr", &csr())])
        }),
        ("username taken, other case", 409, |_| {
            post(&[("username", "TaKeN"), ("csr", &csr())])
        }),
        // --- email
        ("bad email", 400, |_| {
            post(&[("username", "e1"), ("email", "not-an-email"), ("csr", &csr())])
        }),
        ("email with a DN separator", 400, |_| {
            post(&[("username", "e2"), ("email", "a@b.example/CN=x"), ("csr", &csr())])
        }),
        ("email repeated with different values", 400, |_| {
            post(&[
                ("username", "e3"),
                ("email", "a@b.example"),
                ("email", "c@d.example"),
                ("csr", &csr()),
            ])
        }),
        // --- key request
        ("missing key request", 400, |_| post(&[("username", "k1")])),
        ("empty key request fields", 400, |_| {
            post(&[("username", "k2"), ("pubkey", ""), ("csr", " ")])
        }),
        ("both SPKAC and CSR", 400, |c| {
            post(&[("username", "k3"), ("pubkey", &c.spkac()), ("csr", &csr())])
        }),
        ("CSR repeated with different values", 400, |_| {
            post(&[
                ("username", "k4"),
                ("csr", &csr()),
                ("csr", &fixture_text("rsa2048.csr")),
            ])
        }),
        ("SPKAC garbage", 400, |_| {
            post(&[("username", "k5"), ("pubkey", &fixture_text("garbage.spkac"))])
        }),
        ("SPKAC bad base64", 400, |_| {
            post(&[("username", "k6"), ("pubkey", "SPKAC=***not base64***")])
        }),
        ("SPKAC tampered signature", 400, |c| {
            post(&[("username", "k7"), ("pubkey", &tamper_spkac(&c.spkac()))])
        }),
        ("SPKAC with the article's constant challenge", 400, |_| {
            post(&[("username", "k8"), ("pubkey", &fixture_text("ec-p256.spkac"))])
        }),
        ("SPKAC with an empty challenge", 400, |c| {
            post(&[("username", "k9"), ("pubkey", &c.spkac_over(""))])
        }),
        ("SPKAC with a challenge of another server", 400, |c| {
            let other = token::make(&[7u8; 32], Purpose::Challenge, "", getacert::app::now()).expect("HMAC");
            post(&[("username", "k10"), ("pubkey", &c.spkac_over(&other))])
        }),
        ("SPKAC with the form token as challenge", 400, |c| {
            post(&[("username", "k11"), ("pubkey", &c.spkac_over(&c.token))])
        }),
        ("SPKAC with an expired challenge", 400, |c| {
            let old = c.signed(Purpose::Challenge, 2 * 3600);
            post(&[("username", "k12"), ("pubkey", &c.spkac_over(&old))])
        }),
        ("SPKAC with a challenge from the future", 400, |c| {
            let future = c.signed(Purpose::Challenge, -3600);
            post(&[("username", "k13"), ("pubkey", &c.spkac_over(&future))])
        }),
        ("SPKAC from an RSA-1024 key", 400, |c| {
            post(&[
                ("username", "k14"),
                (
                    "pubkey",
                    &common::make_spkac(&fixture("rsa1024.key"), &c.challenge),
                ),
            ])
        }),
        ("SPKAC posted as a CSR", 400, |c| {
            post(&[("username", "k15"), ("csr", &c.spkac())])
        }),
        ("CSR garbage", 400, |_| {
            post(&[("username", "k16"), ("csr", &fixture_text("garbage.csr"))])
        }),
        ("CSR not base64", 400, |_| {
            post(&[("username", "k17"), ("csr", "%%% not a CSR %%%")])
        }),
        ("CSR tampered signature", 400, |_| {
            post(&[
                ("username", "k18"),
                ("csr", &fixture_text("ec-p256-tampered.csr")),
            ])
        }),
        ("CSR RSA-1024", 400, |_| {
            post(&[("username", "k19"), ("csr", &fixture_text("rsa1024.csr"))])
        }),
        ("CSR DSA", 400, |_| {
            post(&[("username", "k20"), ("csr", &fixture_text("dsa.csr"))])
        }),
        ("CSR secp256k1", 400, |_| {
            post(&[("username", "k21"), ("csr", &fixture_text("secp256k1.csr"))])
        }),
        // --- the HTTP envelope
        ("content type application/json", 415, |_| {
            let mut r = post(&[("username", "h1"), ("csr", &csr())]);
            r.content_type = Some("application/json".into());
            r
        }),
        ("content type text/plain", 415, |_| {
            let mut r = post(&[("username", "h2"), ("csr", &csr())]);
            r.content_type = Some("text/plain".into());
            r
        }),
        ("multipart without a boundary", 400, |_| {
            let mut r = post(&[("username", "h3"), ("csr", &csr())]);
            r.content_type = Some("multipart/form-data".into());
            r
        }),
        ("body over 64 KiB", 413, |_| {
            let padding = "x".repeat(70 * 1024);
            post(&[("username", "h4"), ("csr", &csr()), ("padding", &padding)])
        }),
        ("PUT", 405, |_| with_method("PUT")),
        ("DELETE", 405, |_| with_method("DELETE")),
        ("PATCH", 405, |_| with_method("PATCH")),
        // --- tokens and cross-site requests
        ("bad form token", 400, |_| {
            post(&[("username", "x1"), ("csr", &csr()), ("token", "garbage")])
        }),
        ("expired form token", 400, |c| {
            post(&[
                ("username", "x2"),
                ("csr", &csr()),
                ("token", &c.signed(Purpose::Form, 2 * 3600)),
            ])
        }),
        ("challenge used as form token", 400, |c| {
            post(&[("username", "x3"), ("csr", &csr()), ("token", &c.challenge)])
        }),
        ("Sec-Fetch-Site cross-site without token", 403, |_| {
            post(&[("username", "x4"), ("csr", &csr())]).with_param("HTTP_SEC_FETCH_SITE", "cross-site")
        }),
        ("Sec-Fetch-Site same-site without token", 403, |_| {
            post(&[("username", "x5"), ("csr", &csr())]).with_param("HTTP_SEC_FETCH_SITE", "same-site")
        }),
        ("Origin of another site without token", 403, |_| {
            post(&[("username", "x6"), ("csr", &csr())])
                .with_param("HTTP_HOST", "ca.example.org")
                .with_param("HTTP_ORIGIN", "https://evil.example")
        }),
        // --- account actions and identity
        ("unknown action", 400, |_| {
            post(&[("action", "frobnicate"), ("username", "a1"), ("csr", &csr())])
        }),
        ("action repeated with different values", 400, |_| {
            post(&[
                ("action", "enroll"),
                ("action", "revoke"),
                ("username", "a2"),
                ("csr", &csr()),
            ])
        }),
        ("revoke without a form token or a certificate", 403, |c| {
            post(&[("action", "revoke"), ("serial", &c.taken_serial)])
        }),
        ("revoke without a client certificate", 403, |c| {
            post(&[
                ("action", "revoke"),
                ("serial", &c.taken_serial),
                ("token", &c.token),
            ])
        }),
        ("revoke with a forged client certificate", 403, |c| {
            c.forged_identity(post(&[
                ("action", "revoke"),
                ("serial", &c.taken_serial),
                ("token", &c.token),
            ]))
        }),
        ("add-device code without a client certificate", 403, |c| {
            post(&[("action", "add-device-code"), ("token", &c.token)])
        }),
        ("add-device code with a forged client certificate", 403, |c| {
            c.forged_identity(post(&[("action", "add-device-code"), ("token", &c.token)]))
        }),
        ("a code for a taken name that has none", 403, |_| {
            post(&[("username", "taken"), ("code", "ABCDE-12345"), ("csr", &csr())])
        }),
        ("forged client certificate claiming a taken name", 409, |c| {
            c.forged_identity(post(&[("username", "taken"), ("csr", &csr())]))
        }),
        ("Origin null without token", 403, |_| {
            post(&[("username", "x7"), ("csr", &csr())])
                .with_param("HTTP_HOST", "ca.example.org")
                .with_param("HTTP_ORIGIN", "null")
        }),
    ]
}

/// A correct enrollment works: the server is not wedged and the database is sound.
fn still_enrolls(ca: &Ca, front: &Front, after: &str) {
    let user = unique_name("ok");
    let reply = front.enroll_csr(&user, &csr());
    assert_eq!(reply.status, 200, "after {after:?}: {reply:?}");
    let cert = ca.check_cert(&reply.cert_der());
    assert_eq!(common::common_name(&cert), user);
}

fn run_table(ca: &Ca, front: &Front) {
    let ctx = Ctx::new(ca, front);
    let table = cases();
    assert!(table.len() >= 30);
    let mut names: Vec<&str> = table.iter().map(|c| c.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), table.len(), "case names are unique");
    for (name, status, make) in table {
        let req = make(&ctx);
        let before = ca.snapshot();
        let reply = front.send(&req);
        assert_eq!(reply.status, status, "{name}: {reply:?}");
        assert!(!reply.is_cert(), "{name}: a certificate was answered");
        assert!(!reply.body.is_empty(), "{name}: the refusal says why");
        if status == 405 {
            assert_eq!(reply.header("Allow"), Some("GET, HEAD, POST"), "{name}");
        }
        assert_eq!(ca.snapshot(), before, "{name}: the database changed");
        still_enrolls(ca, front, name);
    }
    ca.assert_consistent(true);
}

#[test]
fn http_level_table_through_fastcgi() {
    let ca = Ca::init();
    let daemon = Daemon::start(&ca, Listen::Unix, WORKERS);
    run_table(&ca, &daemon.front);
}

#[test]
fn http_level_table_through_cgi() {
    let ca = Ca::init();
    run_table(&ca, &Front::Cgi(ca.conf.clone()));
}

/// With the default limits (20 posts a minute per address, 5 per username) the daemon
/// answers 429 with Retry-After and changes nothing; other addresses and names go on.
#[test]
fn rate_limits_answer_429_and_change_nothing() {
    let ca = Ca::init_with(&[]);
    let daemon = Daemon::start(&ca, Listen::Unix, 2);
    let front = &daemon.front;
    let from = |addr: &str, req: HttpRequest| front.send(&req.with_param("REMOTE_ADDR", addr));
    let enroll = |user: &str| post(&[("username", user), ("csr", &csr())]);

    // Per username: one enrollment, four code attempts, then 429, from different
    // addresses (a refusal as taken, without a code, spends nothing).
    assert_eq!(from("198.51.100.1", enroll("busy")).status, 200);
    for _ in 0..3 {
        assert_eq!(from("198.51.100.1", enroll("Busy")).status, 409);
    }
    for i in 2..=5 {
        let guess = post(&[("username", "Busy"), ("csr", &csr()), ("code", "00000-00000")]);
        assert_eq!(from(&format!("198.51.100.{i}"), guess).status, 403);
    }
    let before = ca.snapshot();
    let limited = from(
        "198.51.100.6",
        post(&[("username", "BUSY"), ("csr", &csr()), ("code", "00000-00000")]),
    );
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(ca.snapshot(), before);

    // Per address: 20 posts, then 429 even for a good enrollment.
    for _ in 0..20 {
        assert_eq!(from("203.0.113.9", post(&[("csr", &csr())])).status, 400);
    }
    let limited = from("203.0.113.9", enroll("fresh-name"));
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(ca.snapshot(), before);
    assert!(!limited.is_cert());

    // Everyone else is served.
    ca.check_cert(&from("203.0.113.10", enroll("fresh-name")).cert_der());
    ca.assert_consistent(true);
}

/// An EC key with explicit curve parameters gets no certificate; see
/// `ec_key_with_explicit_parameters_is_refused` in tests/fixtures_api.rs.
#[test]
fn explicit_parameters_ec_csr_is_refused_by_the_binary() {
    let ca = Ca::init();
    let front = Front::Cgi(ca.conf.clone());
    let before = ca.snapshot();
    let reply = front.enroll_csr("explicit", &fixture_text("ec-explicit.csr"));
    assert_eq!(
        reply.status, 400,
        "a certificate was issued for an EC key with explicit curve parameters"
    );
    assert_eq!(ca.snapshot(), before);
}

// ---------------------------------------------------------------------------------------
// The FastCGI record level, with a hand-written encoder

/// Writes, ignoring the errors of a peer that already closed (that is what some cases
/// expect it to do).
fn send(conn: &mut Conn, bytes: &[u8]) {
    match conn.write_all(bytes) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => panic!("write: {e}"),
    }
}

/// The parameters of a complete, valid enrollment.
/// The front secret the TCP daemon of these record-level cases is given (TCP needs one);
/// a daemon on a unix socket without `front_secret_file` ignores the parameter.
const RAW_FRONT_SECRET: &str = "record-level-cases-front-secret-0123456789";

fn enrollment_params(username: &str) -> (common::ByteParams, Vec<u8>) {
    let req = post(&[("username", username), ("csr", &csr())])
        .with_param("GETACERT_FRONT_SECRET", RAW_FRONT_SECRET);
    (common::byte_params(&req), req.body.clone())
}

fn get_params() -> common::ByteParams {
    common::byte_params(&HttpRequest::get().with_param("GETACERT_FRONT_SECRET", RAW_FRONT_SECRET))
}

const QUIET: Duration = Duration::from_secs(5);

fn expect_closed_without_answer(name: &str, conn: &mut Conn) {
    let answer = common::read_records(conn, QUIET, |_| false);
    assert!(answer.closed, "{name}: the connection stays open: {answer:?}");
    assert!(
        answer.records.is_empty(),
        "{name}: unexpected records {:?}",
        answer.records
    );
}

fn end_request_of(name: &str, recs: &[Rec], id: u16) -> (u32, u8) {
    recs.iter()
        .find(|r| r.kind == raw::END_REQUEST && r.id == id)
        .unwrap_or_else(|| panic!("{name}: no END_REQUEST for {id}: {recs:?}"))
        .end_request()
}

type Wire = fn(&str, &mut Conn);

fn protocol_cases() -> Vec<(&'static str, Wire)> {
    vec![
        ("truncated record header", |name, c| {
            let (p, _) = enrollment_params("p1");
            let mut bytes = raw::begin(1, raw::RESPONDER, 0);
            bytes.extend(&raw::params(1, &common::as_refs(&p))[..5]);
            send(c, &bytes);
            c.shutdown_write().unwrap();
            expect_closed_without_answer(name, c);
        }),
        ("truncated record content", |name, c| {
            let (p, body) = enrollment_params("p2");
            let mut bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::params(1, &common::as_refs(&p)),
            ]
            .concat();
            let stdin = raw::record(raw::STDIN, 1, &body);
            bytes.extend(&stdin[..stdin.len() / 2]);
            send(c, &bytes);
            c.shutdown_write().unwrap();
            expect_closed_without_answer(name, c);
        }),
        ("request without the end of STDIN", |name, c| {
            let (p, body) = enrollment_params("p3");
            let bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::params(1, &common::as_refs(&p)),
                raw::record(raw::STDIN, 1, &body),
            ]
            .concat();
            send(c, &bytes);
            c.shutdown_write().unwrap();
            expect_closed_without_answer(name, c);
        }),
        ("record version 2", |name, c| {
            let (p, body) = enrollment_params("p4");
            let mut bytes = raw::request(1, 0, &common::as_refs(&p), &body);
            bytes[0] = 2;
            send(c, &bytes);
            expect_closed_without_answer(name, c);
        }),
        ("record version 2 in the middle of a request", |name, c| {
            let (p, body) = enrollment_params("p5");
            let bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::params(1, &common::as_refs(&p)),
                raw::record_v(2, raw::STDIN, 1, &body),
                raw::record(raw::STDIN, 1, &[]),
            ]
            .concat();
            send(c, &bytes);
            expect_closed_without_answer(name, c);
        }),
        ("short BEGIN_REQUEST", |name, c| {
            send(c, &raw::record(raw::BEGIN_REQUEST, 1, &[0, 1, 0]));
            expect_closed_without_answer(name, c);
        }),
        ("name-value length past the end", |name, c| {
            let bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::record(raw::PARAMS, 1, &[5, 1, b'A']),
                raw::record(raw::PARAMS, 1, &[]),
                raw::stream(raw::STDIN, 1, b""),
            ]
            .concat();
            send(c, &bytes);
            expect_closed_without_answer(name, c);
        }),
        ("params over 64 KiB", |name, c| {
            let (mut p, body) = enrollment_params("p6");
            p.push((b"HTTP_X_PADDING".to_vec(), vec![b'x'; 70 * 1024]));
            send(c, &raw::request(1, 0, &common::as_refs(&p), &body));
            expect_closed_without_answer(name, c);
        }),
        ("params just under 64 KiB are served", |name, c| {
            let mut p = get_params();
            p.push((b"HTTP_X_PADDING".to_vec(), vec![b'x'; 60 * 1024]));
            send(c, &raw::request(1, 0, &common::as_refs(&p), b""));
            let answer = common::read_records(c, QUIET, common::until_end(1));
            assert_eq!(answer.reply(1).map(|r| r.status), Some(200), "{name}");
        }),
        ("non-UTF-8 parameter names and values", |name, c| {
            // A refused enrollment (no username) with odd parameters around it: the
            // request is answered and the readable parameters still count (415 shows
            // CONTENT_TYPE was read).
            let mut p: common::ByteParams = vec![(b"HTTP_X_\xff\xfe".to_vec(), b"v".to_vec())];
            let req = HttpRequest::form(&[("csr", &csr())]);
            p.extend(common::byte_params(&req));
            p.push((b"HTTP_USER_AGENT".to_vec(), b"\xc3\x28\xa0\xa1".to_vec()));
            p.retain(|(k, _)| k != b"CONTENT_TYPE");
            p.push((b"CONTENT_TYPE".to_vec(), b"application/json".to_vec()));
            send(c, &raw::request(1, 0, &common::as_refs(&p), &req.body));
            let answer = common::read_records(c, QUIET, common::until_end(1));
            let reply = answer
                .reply(1)
                .unwrap_or_else(|| panic!("{name}: no answer {answer:?}"));
            assert_eq!(reply.status, 415, "{name}: {reply:?}");
            assert_eq!(
                end_request_of(name, &answer.records, 1),
                (0, raw::REQUEST_COMPLETE)
            );
        }),
        ("non-UTF-8 REQUEST_METHOD", |name, c| {
            let (mut p, body) = enrollment_params("p7");
            for (k, v) in &mut p {
                if k == b"REQUEST_METHOD" {
                    *v = b"P\xffST".to_vec();
                }
            }
            send(c, &raw::request(1, 0, &common::as_refs(&p), &body));
            let answer = common::read_records(c, QUIET, common::until_end(1));
            let reply = answer
                .reply(1)
                .unwrap_or_else(|| panic!("{name}: no answer {answer:?}"));
            assert!(!reply.is_cert(), "{name}: {reply:?}");
        }),
        (
            "keep-alive connection closed in the middle of the second request",
            |name, c| {
                send(
                    c,
                    &raw::request(1, raw::KEEP_CONN, &common::as_refs(&get_params()), b""),
                );
                let first = common::read_records(c, QUIET, common::until_end(1));
                assert_eq!(
                    first.reply(1).map(|r| r.status),
                    Some(200),
                    "{name}: first request"
                );
                let (p, body) = enrollment_params("p8");
                let mut bytes = [
                    raw::begin(2, raw::RESPONDER, raw::KEEP_CONN),
                    raw::params(2, &common::as_refs(&p)),
                ]
                .concat();
                bytes.extend(raw::record(raw::STDIN, 2, &body));
                send(c, &bytes);
                c.shutdown_write().unwrap();
                expect_closed_without_answer(name, c);
            },
        ),
        ("ABORT_REQUEST before the end of STDIN", |name, c| {
            let (p, body) = enrollment_params("p9");
            let bytes = [
                raw::begin(1, raw::RESPONDER, raw::KEEP_CONN),
                raw::params(1, &common::as_refs(&p)),
                raw::record(raw::STDIN, 1, &body[..body.len() / 2]),
                raw::record(raw::ABORT_REQUEST, 1, &[]),
            ]
            .concat();
            send(c, &bytes);
            let answer = common::read_records(c, QUIET, common::until_end(1));
            assert!(!answer.has_stdout(), "{name}: the handler answered {answer:?}");
            assert_eq!(
                end_request_of(name, &answer.records, 1),
                (0, raw::REQUEST_COMPLETE),
                "{name}"
            );
            // The rest of the aborted request is ignored; the connection serves the next.
            send(c, &raw::record(raw::STDIN, 1, &body[body.len() / 2..]));
            send(c, &raw::record(raw::STDIN, 1, &[]));
            send(c, &raw::request(2, 0, &common::as_refs(&get_params()), b""));
            let next = common::read_records(c, QUIET, common::until_end(2));
            assert_eq!(next.reply(2).map(|r| r.status), Some(200), "{name}: {next:?}");
            assert!(next.records.iter().all(|r| r.id == 2), "{name}: {next:?}");
        }),
        ("ABORT_REQUEST without keep-alive", |name, c| {
            let (p, _) = enrollment_params("p10");
            let bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::params(1, &common::as_refs(&p)),
                raw::record(raw::ABORT_REQUEST, 1, &[]),
            ]
            .concat();
            send(c, &bytes);
            let answer = common::read_records(c, QUIET, |_| false);
            assert!(!answer.has_stdout(), "{name}: {answer:?}");
            assert_eq!(
                end_request_of(name, &answer.records, 1),
                (0, raw::REQUEST_COMPLETE)
            );
            assert!(answer.closed, "{name}: closed after the aborted request");
        }),
        ("AUTHORIZER role", |name, c| {
            let (p, body) = enrollment_params("p11");
            let bytes = [
                raw::begin(1, raw::AUTHORIZER, 0),
                raw::params(1, &common::as_refs(&p)),
                raw::stream(raw::STDIN, 1, &body),
            ]
            .concat();
            send(c, &bytes);
            let answer = common::read_records(c, QUIET, |_| false);
            assert!(!answer.has_stdout(), "{name}: {answer:?}");
            assert_eq!(end_request_of(name, &answer.records, 1), (0, raw::UNKNOWN_ROLE));
            assert!(answer.closed, "{name}: no keep-alive, closed");
        }),
        ("FILTER role with keep-alive", |name, c| {
            let (p, body) = enrollment_params("p12");
            let bytes = [
                raw::begin(1, 3, raw::KEEP_CONN),
                raw::params(1, &common::as_refs(&p)),
                raw::stream(raw::STDIN, 1, &body),
            ]
            .concat();
            send(c, &bytes);
            let answer = common::read_records(c, QUIET, common::until_end(1));
            assert!(!answer.has_stdout(), "{name}: {answer:?}");
            assert_eq!(end_request_of(name, &answer.records, 1), (0, raw::UNKNOWN_ROLE));
            send(c, &raw::request(2, 0, &common::as_refs(&get_params()), b""));
            let next = common::read_records(c, QUIET, common::until_end(2));
            assert_eq!(next.reply(2).map(|r| r.status), Some(200), "{name}: {next:?}");
        }),
        ("GET_VALUES", |name, c| {
            let asked = raw::pairs(&[
                (b"FCGI_MAX_CONNS", b""),
                (b"FCGI_MAX_REQS", b""),
                (b"FCGI_MPXS_CONNS", b""),
                (b"SOMETHING_ELSE", b""),
            ]);
            send(c, &raw::record(raw::GET_VALUES, 0, &asked));
            let answer = common::read_records(c, QUIET, |recs| !recs.is_empty());
            let want = raw::pairs(&[
                (b"FCGI_MAX_CONNS", b"4"),
                (b"FCGI_MAX_REQS", b"4"),
                (b"FCGI_MPXS_CONNS", b"0"),
            ]);
            assert_eq!(
                answer.records,
                vec![Rec {
                    version: 1,
                    kind: raw::GET_VALUES_RESULT,
                    id: 0,
                    content: want
                }],
                "{name}"
            );
            // The connection stays usable.
            send(c, &raw::request(1, 0, &common::as_refs(&get_params()), b""));
            let next = common::read_records(c, QUIET, common::until_end(1));
            assert_eq!(next.reply(1).map(|r| r.status), Some(200), "{name}: {next:?}");
        }),
        ("unknown record type", |name, c| {
            send(c, &raw::record(42, 0, b"xyz"));
            let answer = common::read_records(c, QUIET, |recs| !recs.is_empty());
            assert_eq!(answer.records.len(), 1, "{name}: {answer:?}");
            let r = &answer.records[0];
            assert_eq!((r.kind, r.id, r.content[0]), (raw::UNKNOWN_TYPE, 0, 42), "{name}");
        }),
        ("a second request on the connection (multiplexing)", |name, c| {
            let (p2, body2) = enrollment_params("p13");
            let bytes = [
                raw::begin(1, raw::RESPONDER, 0),
                raw::begin(2, raw::RESPONDER, 0),
                raw::params(2, &common::as_refs(&p2)),
                raw::stream(raw::STDIN, 2, &body2),
                raw::params(1, &common::as_refs(&get_params())),
                raw::stream(raw::STDIN, 1, b""),
            ]
            .concat();
            send(c, &bytes);
            let answer = common::read_records(c, QUIET, common::until_end(1));
            assert_eq!(
                end_request_of(name, &answer.records, 2),
                (0, raw::CANT_MPX_CONN),
                "{name}"
            );
            assert!(
                answer
                    .records
                    .iter()
                    .all(|r| r.id == 1 || r.kind == raw::END_REQUEST),
                "{name}"
            );
            assert_eq!(answer.reply(1).map(|r| r.status), Some(200), "{name}");
        }),
    ]
}

#[test]
fn fastcgi_record_level_table() {
    let ca = Ca::init();
    let mut daemon = Daemon::start(&ca, Listen::Unix, WORKERS);
    let front = daemon.front.clone();
    ca.check_cert(&front.enroll_csr("warm-up", &csr()).cert_der());
    let table = protocol_cases();
    for (name, case) in table {
        let before = ca.snapshot();
        let mut conn = front.connect().unwrap();
        case(name, &mut conn);
        drop(conn);
        assert_eq!(ca.snapshot(), before, "{name}: the database changed");
        assert!(daemon.alive(), "{name}: the daemon died: {}", daemon.log_text());
        still_enrolls(&ca, &front, name);
    }
    ca.assert_consistent(true);
}

/// The same over TCP, for the cases where the transport matters (a closed or reset
/// connection).
#[test]
fn fastcgi_record_level_over_tcp() {
    let ca = Ca::init();
    fs::write(ca.path("front-secret"), format!("{RAW_FRONT_SECRET}\n")).unwrap();
    let mut daemon = Daemon::start(&ca, Listen::Tcp, WORKERS);
    let front = daemon.front.clone();
    let wanted = [
        "truncated record header",
        "record version 2",
        "params over 64 KiB",
        "keep-alive connection closed in the middle of the second request",
        "ABORT_REQUEST before the end of STDIN",
        "GET_VALUES",
    ];
    for (name, case) in protocol_cases().into_iter().filter(|(n, _)| wanted.contains(n)) {
        let before = ca.snapshot();
        let mut conn = front.connect().unwrap();
        case(name, &mut conn);
        drop(conn);
        assert_eq!(ca.snapshot(), before, "{name}: the database changed");
        assert!(daemon.alive(), "{name}: the daemon died");
        still_enrolls(&ca, &front, name);
    }
}
