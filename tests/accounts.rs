//! Accounts, devices and revocation, through the real binary as plain CGI and as the
//! FastCGI daemon:
//!
//! - who is signed in: every way of passing someone else's (or a revoked, expired,
//!   foreign) certificate is anonymous, so a taken name stays taken (409);
//! - add-device codes: wrong, used, expired and brute-forced codes are refused (403),
//!   and the try counters hold across CGI processes;
//! - the per-address and per-username rate limits (429 + Retry-After in the daemon;
//!   none across CGI processes, as documented);
//! - the add-device flow at the handler level, account actions and their refusals;
//! - the CRL getacert writes, checked by `openssl crl` and against `openssl ca -gencrl`;
//! - the admin commands `updatedb`, `recovery-code --revoke-all`, `revoke` and `list`;
//! - issue 10, one test named for each finding: names stay their account's until
//!   `release`, tokens bound to the requester, cross-site posts refused with a token,
//!   the front secret, code guesses per client, limits that anonymous traffic cannot
//!   spend for the owner, IPv6 by network, one lock take for `--revoke-all`, the grant
//!   checked again at commit, RSA exponents, Unicode names, escaped log values.
//!
//! Every refusal is checked the same way: its status, no certificate, the database
//! (index.txt, index.txt.attr, serial, crlnumber, getacert.codes, newcerts/) byte for
//! byte unchanged, and an audit line in the log (stderr under CGI, `--log-stderr` for
//! the daemon).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Ca, Daemon, HttpRequest, Listen, Reply, Snapshot, fixture, fixture_text};
use openssl::x509::X509;

// ---------------------------------------------------------------------------------------
// Front ends, with the log of each request

#[derive(Debug, Clone, Copy)]
enum Mode {
    Cgi,
    Fcgi,
}

/// Where requests go: a CGI process per request, or one FastCGI daemon.
struct Target<'a> {
    ca: &'a Ca,
    daemon: Option<Daemon>,
}

impl<'a> Target<'a> {
    fn new(ca: &'a Ca, mode: Mode) -> Target<'a> {
        let daemon = match mode {
            Mode::Cgi => None,
            Mode::Fcgi => Some(Daemon::start(ca, Listen::Unix, 2)),
        };
        Target { ca, daemon }
    }

    fn send(&self, req: &HttpRequest) -> Reply {
        self.send_logged(req).0
    }

    /// The reply and what the program logged while answering it.
    fn send_logged(&self, req: &HttpRequest) -> (Reply, String) {
        match &self.daemon {
            None => cgi_logged(&self.ca.conf, req),
            Some(d) => {
                let before = fs::metadata(&d.log).map(|m| m.len() as usize).unwrap_or(0);
                let reply = d.front.send(req);
                let log = fs::read(&d.log).unwrap_or_default();
                (
                    reply,
                    String::from_utf8_lossy(&log[before.min(log.len())..]).into_owned(),
                )
            }
        }
    }
}

/// [`common::cgi`], also returning the program's stderr (its log under CGI).
fn cgi_logged(conf: &Path, req: &HttpRequest) -> (Reply, String) {
    let mut child = Command::new(common::bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GETACERT_CONFIG", conf)
        .envs(req.cgi_params())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn getacert as CGI");
    let mut input = child.stdin.take().unwrap();
    let body = req.body.clone();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "getacert (CGI) exited with {}: {log}",
        out.status
    );
    (Reply::parse(&out.stdout), log)
}

// ---------------------------------------------------------------------------------------
// Devices and identities

/// An issued certificate, as the web server would pass it once the TLS client presents it.
#[derive(Debug, Clone)]
struct Device {
    serial: String,
    pem: String,
}

impl Device {
    fn from_cert(cert: &X509) -> Device {
        Device {
            serial: common::serial_of(cert),
            pem: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
        }
    }

    /// The certificate of a 200 answer (verified against the CA).
    fn issued(ca: &Ca, reply: &Reply) -> Device {
        Device::from_cert(&ca.check_cert(&reply.cert_der()))
    }

    fn from_pem_file(path: &Path) -> Device {
        Device::from_cert(&X509::from_pem(&fs::read(path).unwrap()).unwrap())
    }

    /// `req` as Apache (mod_ssl) passes it after verifying this certificate.
    fn sign_in(&self, req: HttpRequest) -> HttpRequest {
        client_cert(req, Some("SUCCESS"), Some(&self.serial), Some(&self.pem))
    }
}

/// Sets the `SSL_CLIENT_*` parameters that are given. `SSL_CLIENT_S_DN_CN` always says
/// alice: getacert must not believe it.
fn client_cert(
    mut req: HttpRequest,
    verify: Option<&str>,
    serial: Option<&str>,
    cert: Option<&str>,
) -> HttpRequest {
    if let Some(v) = verify {
        req = req.with_param("SSL_CLIENT_VERIFY", v);
    }
    if let Some(s) = serial {
        req = req.with_param("SSL_CLIENT_M_SERIAL", s);
    }
    if let Some(c) = cert {
        req = req.with_param("SSL_CLIENT_CERT", c);
    }
    req.with_param("SSL_CLIENT_S_DN_CN", "alice")
}

fn csr() -> String {
    fixture_text("ec-p256.csr")
}

/// A CSR enrollment of `username` with more fields (`code`, `token` …).
fn enroll(username: &str, extra: &[(&str, &str)]) -> HttpRequest {
    let csr = csr();
    let mut fields = vec![("username", username), ("csr", csr.as_str())];
    fields.extend_from_slice(extra);
    HttpRequest::form(&fields)
}

/// Enrolls `username` anonymously (or as `by`) and returns the new device.
fn enroll_ok(t: &Target, username: &str, by: Option<&Device>, extra: &[(&str, &str)]) -> Device {
    let mut req = enroll(username, extra);
    if let Some(d) = by {
        req = d.sign_in(req);
    }
    let reply = t.send(&req);
    assert_eq!(reply.status, 200, "enrolling {username}: {reply:?}");
    let dev = Device::issued(t.ca, &reply);
    let cert = X509::from_pem(dev.pem.as_bytes()).unwrap();
    assert_eq!(common::common_name(&cert), username);
    dev
}

fn account(token: &str, action: &str, extra: &[(&str, &str)]) -> HttpRequest {
    let mut fields = vec![("action", action), ("token", token)];
    fields.extend_from_slice(extra);
    HttpRequest::form(&fields)
}

/// A form token from the enrollment page.
fn page_token(t: &Target) -> String {
    let page = t.send(&HttpRequest::get());
    assert_eq!(page.status, 200, "{page:?}");
    page.token()
}

/// Opens the account page as `dev` and asks for an add-device code.
fn add_device_code(t: &Target, dev: &Device) -> String {
    let page = t.send(&dev.sign_in(HttpRequest::get()));
    assert!(signed_in_as(&page).is_some(), "not the account page: {page:?}");
    let reply = t.send(&dev.sign_in(account(&page.token(), "add-device-code", &[])));
    assert_eq!(reply.status, 200, "{reply:?}");
    shown_code(&reply).unwrap_or_else(|| panic!("no code on the page: {reply:?}"))
}

// ---------------------------------------------------------------------------------------
// Reading the pages

/// The username of "You are signed in as …", when this is the account page.
fn signed_in_as(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let marker = "You are signed in as <span id=\"username\">";
    let start = text.find(marker)? + marker.len();
    Some(text[start..].split('<').next().unwrap().to_string())
}

fn is_enrollment_page(reply: &Reply) -> bool {
    let text = reply.text();
    reply.status == 200
        && text.contains("Get your login certificate")
        && text.contains("challenge=\"")
        && signed_in_as(reply).is_none()
}

/// The add-device code shown on the page.
fn shown_code(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let marker = "id=\"add-device-code\">";
    let start = text.find(marker)? + marker.len();
    Some(text[start..].split('<').next().unwrap().to_string())
}

/// One entry of the account page's device list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    serial: String,
    this_device: bool,
    status: String,
    revoke_button: bool,
}

fn listed_devices(reply: &Reply) -> Vec<Listed> {
    let text = reply.text();
    let Some(start) = text.find("<ul class=\"devices\">") else {
        return Vec::new();
    };
    let list = &text[start..text[start..].find("</ul>").map_or(text.len(), |e| start + e)];
    list.split("<li data-serial=\"")
        .skip(1)
        .map(|item| {
            let item = item.split("</li>").next().unwrap();
            let serial = item
                .split('"')
                .next()
                .unwrap_or_else(|| panic!("no serial in {item:?}"))
                .to_string();
            let status = item
                .split("<span class=\"meta\">")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .unwrap_or_else(|| panic!("no status in {item:?}"))
                .to_string();
            Listed {
                serial,
                this_device: item.contains("this device"),
                status,
                revoke_button: item.contains("name=\"action\" value=\"revoke\""),
            }
        })
        .collect()
}

/// Each listed device's serial, its name as shown (HTML as sent), and its meta line.
fn device_names(reply: &Reply) -> Vec<(String, String, String)> {
    let text = reply.text();
    text.split("<li data-serial=\"")
        .skip(1)
        .map(|item| {
            let serial = item.split('"').next().unwrap().to_string();
            let after = |marker: &str| {
                item.split(marker)
                    .nth(1)
                    .and_then(|s| s.split('<').next())
                    .unwrap_or_else(|| panic!("no {marker} in {item:?}"))
                    .to_string()
            };
            (
                serial,
                after("<strong class=\"device-name\">"),
                after("<span class=\"meta\">"),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Refusals

/// Sends `req` and checks the refusal: `status`, no certificate, the database byte for
/// byte unchanged, and the log names the refusal (`refused status=N`) and each of
/// `log_has`. Returns the reply.
fn refused(t: &Target, what: &str, req: &HttpRequest, status: u16, log_has: &[&str]) -> Reply {
    refused_with(t, what, req, status, log_has, |s| s)
}

/// [`refused`] for a wrong code, which is counted against the client that guessed: the
/// database is unchanged apart from getacert.code-tries.
fn refused_code(t: &Target, what: &str, req: &HttpRequest, log_has: &[&str]) -> Reply {
    refused_with(t, what, req, 403, log_has, |mut s| {
        s.files.remove("getacert.code-tries");
        s
    })
}

fn refused_with(
    t: &Target,
    what: &str,
    req: &HttpRequest,
    status: u16,
    log_has: &[&str],
    view: impl Fn(Snapshot) -> Snapshot,
) -> Reply {
    let before = t.ca.snapshot();
    let (reply, log) = t.send_logged(req);
    assert_eq!(reply.status, status, "{what}: {reply:?}\nlog: {log}");
    assert!(!reply.is_cert(), "{what}: a certificate was answered");
    assert_eq!(
        view(t.ca.snapshot()),
        view(before),
        "{what}: the database changed"
    );
    let refusal = format!("refused status={status}");
    for want in std::iter::once(refusal.as_str()).chain(log_has.iter().copied()) {
        assert!(
            log.contains(want),
            "{what}: the log does not say {want:?}:\n{log}"
        );
    }
    reply
}

// ---------------------------------------------------------------------------------------
// The CA directory by hand, as an admin would touch it

/// Runs `f` holding getacert's database lock (`index.txt.lock`, flock(2), as
/// `flock index.txt.lock …` takes it).
fn with_lock<R>(ca: &Ca, f: impl FnOnce() -> R) -> R {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(ca.path("index.txt.lock"))
        .unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let r = f();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::Unlock).unwrap();
    r
}

/// `flock index.txt.lock openssl ca -config ca.conf ARGS`; fails the test unless it succeeds.
fn openssl_ca_locked(ca: &Ca, args: &[&str]) -> String {
    let out = Command::new("flock")
        .arg(ca.path("index.txt.lock"))
        .args(["openssl", "ca", "-config"])
        .arg(&ca.conf)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("flock and openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl ca {args:?} failed:\n{text}");
    text
}

/// `getacert --config ca.conf ARGS`.
fn admin(ca: &Ca, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(args)
        .env_remove("GATEWAY_INTERFACE")
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .output()
        .expect("run getacert")
}

/// `getacert --config ca.conf ARGS`; fails the test unless it succeeds. Returns stdout.
fn admin_ok(ca: &Ca, args: &[&str]) -> String {
    let out = admin(ca, args);
    assert!(
        out.status.success(),
        "getacert {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Sets the expiry of every code in getacert.codes to the past, under the lock (the
/// file: `user<TAB>hmac<TAB>expires<TAB>tries<TAB>kind`).
fn expire_codes(ca: &Ca) {
    with_lock(ca, || {
        let path = ca.path("getacert.codes");
        let text = fs::read_to_string(&path).unwrap();
        let past = (unix_now() - 10).to_string();
        let changed: String = text
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 5, "getacert.codes line {l:?}");
                f[2] = &past;
                format!("{}\n", f.join("\t"))
            })
            .collect();
        fs::write(&path, changed).unwrap();
    });
}

/// (user, tries left) of each line of getacert.codes.
fn codes_on_disk(ca: &Ca) -> Vec<(String, u32)> {
    fs::read_to_string(ca.path("getacert.codes"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "getacert.codes line {l:?}");
            (f[0].to_string(), f[3].parse().unwrap())
        })
        .collect()
}

/// A certificate for alice that expired in 2020, signed by this CA with `openssl ca`
/// (under the lock) and recorded `V` in index.txt as `openssl ca` leaves it.
fn expired_cert_by_openssl_ca(ca: &Ca, username: &str) -> Device {
    let out = ca.scratch(&format!("expired-{username}.pem"));
    openssl_ca_locked(
        ca,
        &[
            "-batch",
            "-notext",
            "-extensions",
            "getacert_client",
            "-in",
            common::fixture("ec-p256.csr").to_str().unwrap(),
            "-subj",
            &format!("/C=US/O=MyApp/CN={username}"),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-out",
            out.to_str().unwrap(),
        ],
    );
    Device::from_pem_file(&out)
}

/// A second CA (made with openssl, with the same name as getacert's CA) and a
/// certificate it issued for alice with the serial number `serial`.
fn cert_of_another_ca(ca: &Ca, serial: &str) -> Device {
    let other_ca = ca.scratch("other-ca.pem");
    let subject = ca.ca_x509().subject_name().to_owned().unwrap();
    let subject_line = subject
        .entries()
        .map(|e| {
            format!(
                "/{}={}",
                e.object().nid().short_name().unwrap(),
                e.data().to_string().unwrap()
            )
        })
        .collect::<String>();
    let key = fixture("rsa2048.key");
    common::openssl([
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &subject_line,
        "-days",
        "30",
        "-out",
        other_ca.to_str().unwrap(),
    ]);
    let req = ca.scratch("other-alice.csr");
    common::openssl([
        "req",
        "-new",
        "-key",
        fixture("ec-p256.key").to_str().unwrap(),
        "-subj",
        "/C=US/O=MyApp/CN=alice",
        "-out",
        req.to_str().unwrap(),
    ]);
    let cert = ca.scratch("other-alice.pem");
    common::openssl([
        "x509",
        "-req",
        "-in",
        req.to_str().unwrap(),
        "-CA",
        other_ca.to_str().unwrap(),
        "-CAkey",
        key.to_str().unwrap(),
        "-set_serial",
        &format!("0x{serial}"),
        "-days",
        "30",
        "-out",
        cert.to_str().unwrap(),
    ]);
    let dev = Device::from_pem_file(&cert);
    assert_eq!(dev.serial, serial);
    let x = X509::from_pem(dev.pem.as_bytes()).unwrap();
    assert_eq!(
        format!("{:?}", x.issuer_name()),
        format!("{:?}", ca.ca_x509().subject_name()),
        "same issuer name as getacert's CA"
    );
    dev
}

// ---------------------------------------------------------------------------------------
// Impersonation: every case is anonymous, so alice's name stays taken

/// alice's current device, her certificates that no longer count, bob, and forgeries.
struct Cast {
    alice: Device,
    bob: Device,
    revoked_by_getacert: Device,
    revoked_by_openssl: Device,
    expired: Device,
    other_ca: Device,
}

fn cast(t: &Target) -> Cast {
    let ca = t.ca;
    let alice = enroll_ok(t, "alice", None, &[]);
    let bob = enroll_ok(t, "bob", None, &[]);
    // Two more devices of alice, enrolled while signed in; then both revoked by an admin.
    let revoked_by_getacert = enroll_ok(t, "alice", Some(&alice), &[]);
    let revoked_by_openssl = enroll_ok(t, "alice", Some(&alice), &[]);
    let out = admin_ok(ca, &["revoke", "--serial", &revoked_by_getacert.serial]);
    assert!(
        out.contains(&format!("revoked: {}", revoked_by_getacert.serial)),
        "{out}"
    );
    let pem = ca.path(&format!("newcerts/{}.pem", revoked_by_openssl.serial));
    openssl_ca_locked(ca, &["-revoke", pem.to_str().unwrap()]);
    assert_eq!(ca.status(&revoked_by_getacert.serial), "Revoked (R)");
    assert_eq!(ca.status(&revoked_by_openssl.serial), "Revoked (R)");
    let expired = expired_cert_by_openssl_ca(ca, "alice");
    let other_ca = cert_of_another_ca(ca, &alice.serial);
    Cast {
        alice,
        bob,
        revoked_by_getacert,
        revoked_by_openssl,
        expired,
        other_ca,
    }
}

type Present = fn(&Cast, HttpRequest) -> HttpRequest;

/// (case, what the web server passes, what the log must also say).
fn impersonations() -> Vec<(&'static str, Present, &'static [&'static str])> {
    fn as_is(c: &Device, verify: &str, req: HttpRequest) -> HttpRequest {
        client_cert(req, Some(verify), Some(&c.serial), Some(&c.pem))
    }
    const MISMATCH: &[&str] = &["does not match the one on file"];
    const REVOKED: &[&str] = &["revoked certificate serial="];
    vec![
        ("no client certificate", |_, r| r, &[]),
        (
            "only SSL_CLIENT_S_DN_CN=alice",
            |_, r| client_cert(r, None, None, None),
            &[],
        ),
        (
            "VERIFY=NONE with alice's real certificate",
            |c, r| as_is(&c.alice, "NONE", r),
            &[],
        ),
        (
            "VERIFY=FAILED with alice's real certificate",
            |c, r| as_is(&c.alice, "FAILED:unable to verify the first certificate", r),
            &[],
        ),
        (
            "VERIFY=GENEROUS with alice's real certificate",
            |c, r| as_is(&c.alice, "GENEROUS", r),
            &[],
        ),
        (
            "VERIFY=success (lower case)",
            |c, r| as_is(&c.alice, "success", r),
            &[],
        ),
        (
            "no SSL_CLIENT_VERIFY, alice's serial and certificate",
            |c, r| client_cert(r, None, Some(&c.alice.serial), Some(&c.alice.pem)),
            &[],
        ),
        (
            "SUCCESS, bob's serial with alice's certificate",
            |c, r| client_cert(r, Some("SUCCESS"), Some(&c.bob.serial), Some(&c.alice.pem)),
            MISMATCH,
        ),
        (
            "SUCCESS, alice's serial with bob's certificate",
            |c, r| client_cert(r, Some("SUCCESS"), Some(&c.alice.serial), Some(&c.bob.pem)),
            MISMATCH,
        ),
        (
            "SUCCESS, alice's certificate revoked by `getacert revoke`",
            |c, r| c.revoked_by_getacert.sign_in(r),
            REVOKED,
        ),
        (
            "SUCCESS, alice's certificate revoked by `openssl ca -revoke`",
            |c, r| c.revoked_by_openssl.sign_in(r),
            REVOKED,
        ),
        (
            "SUCCESS, alice's expired certificate",
            |c, r| c.expired.sign_in(r),
            &[],
        ),
        (
            "SUCCESS, another CA's certificate for CN=alice with alice's serial",
            |c, r| c.other_ca.sign_in(r),
            MISMATCH,
        ),
        (
            "SUCCESS, alice's serial, no certificate",
            |c, r| client_cert(r, Some("SUCCESS"), Some(&c.alice.serial), None),
            &[],
        ),
        (
            "SUCCESS, alice's certificate, no serial",
            |c, r| client_cert(r, Some("SUCCESS"), None, Some(&c.alice.pem)),
            &[],
        ),
        (
            "SUCCESS, alice's serial, a certificate that is not PEM",
            |c, r| {
                client_cert(
                    r,
                    Some("SUCCESS"),
                    Some(&c.alice.serial),
                    Some("not a certificate"),
                )
            },
            &[],
        ),
        (
            "SUCCESS, a serial this CA never issued, alice's certificate",
            |c, r| client_cert(r, Some("SUCCESS"), Some("7FFFFFFF"), Some(&c.alice.pem)),
            &[],
        ),
        (
            "SUCCESS, a serial that is not hex",
            |c, r| client_cert(r, Some("SUCCESS"), Some("../1000"), Some(&c.alice.pem)),
            &[],
        ),
    ]
}

fn impersonation_is_anonymous(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let c = cast(&t);
    let token = page_token(&t);
    for (case, present, log_has) in impersonations() {
        // Enrolling "alice": anonymous, so the name is taken.
        let reply = refused(
            &t,
            &format!("{mode:?} {case}: enroll alice"),
            &present(&c, enroll("alice", &[])),
            409,
            log_has,
        );
        assert!(reply.text().contains("already taken"), "{case}: {reply:?}");
        // The page: the enrollment page, not alice's devices.
        let page = t.send(&present(&c, HttpRequest::get()));
        assert!(is_enrollment_page(&page), "{mode:?} {case}: GET shows {page:?}");
        // An account action with a valid form token: not signed in.
        refused(
            &t,
            &format!("{mode:?} {case}: add-device-code"),
            &present(&c, account(&token, "add-device-code", &[])),
            403,
            &[],
        );
    }
    // bob, properly signed in, is still not alice: his own page, and 409 for her name.
    let page = t.send(&c.bob.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("bob"), "{page:?}");
    refused(
        &t,
        "bob asks for alice",
        &c.bob.sign_in(enroll("alice", &[])),
        409,
        &[],
    );
    // The control: alice's real, valid certificate does sign her in.
    let page = t.send(&c.alice.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
    let (reply, log) = t.send_logged(&c.alice.sign_in(enroll("alice", &[])));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(log.contains("by=client certificate"), "{log}");
}

#[test]
fn impersonation_is_anonymous_cgi() {
    impersonation_is_anonymous(Mode::Cgi);
}

#[test]
fn impersonation_is_anonymous_fastcgi() {
    impersonation_is_anonymous(Mode::Fcgi);
}

// ---------------------------------------------------------------------------------------
// How the web server passes the certificate

/// `$ssl_client_escaped_cert`: nginx's URI-component escaping (space as %20, newline as
/// %0A, and `+ / =` escaped).
fn nginx_escaped(pem: &str) -> String {
    pem.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Escaped as little as possible: only space, newline and `%` (base64 `+ / =` as is).
fn lightly_escaped(pem: &str) -> String {
    pem.replace('%', "%25").replace(' ', "%20").replace('\n', "%0A")
}

/// `$ssl_client_cert` (deprecated in nginx): every line but the first starts with a tab.
fn tab_indented(pem: &str) -> String {
    pem.trim_end().replace('\n', "\n\t")
}

fn certificate_forms_sign_in(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    type Form = fn(&str) -> String;
    let forms: &[(&str, Form)] = &[
        ("Apache SSL_CLIENT_CERT (PEM)", |p| p.to_string()),
        ("nginx $ssl_client_escaped_cert", nginx_escaped),
        ("URL-encoded, + / = left as they are", lightly_escaped),
        ("nginx $ssl_client_cert (tab-indented)", tab_indented),
        ("PEM with CRLF line ends", |p| p.replace('\n', "\r\n")),
    ];
    for (what, form) in forms {
        let signed_in = |dev: &Device, cert: &str| {
            t.send(&client_cert(
                HttpRequest::get(),
                Some("SUCCESS"),
                Some(&dev.serial),
                Some(cert),
            ))
        };
        let page = signed_in(&alice, &form(&alice.pem));
        assert_eq!(
            signed_in_as(&page).as_deref(),
            Some("alice"),
            "{mode:?} {what}: {page:?}"
        );
        // The same form of the wrong certificate is still refused.
        let page = signed_in(&alice, &form(&bob.pem));
        assert!(
            is_enrollment_page(&page),
            "{mode:?} {what} (bob's cert): {page:?}"
        );
    }
}

#[test]
fn certificate_forms_sign_in_cgi() {
    certificate_forms_sign_in(Mode::Cgi);
}

#[test]
fn certificate_forms_sign_in_fastcgi() {
    certificate_forms_sign_in(Mode::Fcgi);
}

// ---------------------------------------------------------------------------------------
// Add-device codes: wrong, used, expired, brute-forced

fn bad_codes(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let d1 = enroll_ok(&t, "alice", None, &[]);
    let _bob = enroll_ok(&t, "bob", None, &[]);
    let wrong_log: &[&str] = &["wrong or expired code for user=alice"];

    // A wrong code: 403; alice's code is untouched (the guess counts against the guesser).
    let code = add_device_code(&t, &d1);
    assert_eq!(codes_on_disk(&ca), [("alice".to_string(), 5)]);
    let what = format!("{mode:?} wrong code");
    refused_code(&t, &what, &enroll("alice", &[("code", "ZZZZZ-ZZZZZ")]), wrong_log);
    assert_eq!(codes_on_disk(&ca), [("alice".to_string(), 5)]);

    // alice's code is no good for bob (he has no code: nothing changes at all).
    let what = format!("{mode:?} alice's code for bob");
    refused(
        &t,
        &what,
        &enroll("bob", &[("code", &code)]),
        403,
        &["wrong or expired code for user=bob"],
    );

    // The right code, typed sloppily (lower case, no dash), works once.
    let sloppy = code.replace('-', " ").to_lowercase();
    let d2 = enroll_ok(&t, "alice", None, &[("code", &sloppy)]);
    assert_ne!(d1.serial, d2.serial);
    assert_eq!(codes_on_disk(&ca), [], "a used code is gone");
    let what = format!("{mode:?} used code");
    refused(&t, &what, &enroll("alice", &[("code", &code)]), 403, wrong_log);

    // An expired code.
    let code = add_device_code(&t, &d1);
    expire_codes(&ca);
    let what = format!("{mode:?} expired code");
    refused(
        &t,
        &what,
        &enroll("ALICE", &[("code", &code)]),
        403,
        &["wrong or expired code"],
    );

    // No code at all: the name is taken.
    let what = format!("{mode:?} empty code");
    refused(&t, &what, &enroll("alice", &[("code", "  ")]), 409, &[]);
}

#[test]
fn bad_codes_cgi() {
    bad_codes(Mode::Cgi);
}

#[test]
fn bad_codes_fastcgi() {
    bad_codes(Mode::Fcgi);
}

/// Issue 10 item 5: wrong guesses never void a code (anyone could then lock alice out).
/// They are counted per (name, client address): past three, each one doubles that
/// client's wait (429 + Retry-After, no try spent); alice, from her own address, still
/// uses the code. The counters are on disk, so they hold across CGI processes too.
fn code_guesses_count_per_client_and_never_void_the_code(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let d1 = enroll_ok(&t, "alice", None, &[]);
    let code = add_device_code(&t, &d1);
    let from = |req: HttpRequest, addr: &str| req.with_param("REMOTE_ADDR", addr);
    for (i, guess) in ["00000-00000", "11111-11111", "22222-22222"].iter().enumerate() {
        let what = format!("{mode:?} wrong guess {}", i + 1);
        refused_code(
            &t,
            &what,
            &from(enroll("alice", &[("code", guess)]), "203.0.113.66"),
            &["wrong or expired code"],
        );
        assert_eq!(
            codes_on_disk(&ca),
            [("alice".to_string(), 5)],
            "{what}: the code is untouched"
        );
    }
    // The fourth guess from that address must wait (even with the right code).
    for guess in ["33333-33333", code.as_str()] {
        let reply = refused(
            &t,
            &format!("{mode:?} a guess too soon"),
            &from(enroll("alice", &[("code", guess)]), "203.0.113.66"),
            429,
            &[],
        );
        assert!((1..=3600).contains(&retry_after(&reply)), "{reply:?}");
    }
    // An IPv6 guesser is counted by its /64: another address of the same network waits too.
    for i in 0..3 {
        refused_code(
            &t,
            &format!("{mode:?} IPv6 guess {i}"),
            &from(
                enroll("alice", &[("code", "00000-00000")]),
                &format!("2001:db8:5:6::{i}"),
            ),
            &[],
        );
    }
    refused(
        &t,
        &format!("{mode:?} same /64, other address"),
        &from(
            enroll("alice", &[("code", "00000-00000")]),
            "2001:db8:5:6:ffff::1",
        ),
        429,
        &[],
    );
    // alice, elsewhere, is not locked out: the code works.
    let reply = t.send(&from(enroll("alice", &[("code", &code)]), "198.51.100.20"));
    assert_eq!(
        reply.status, 200,
        "the owner's code after someone's guesses: {reply:?}"
    );
    assert_eq!(codes_on_disk(&ca), []);
}

#[test]
fn code_guesses_count_per_client_and_never_void_the_code_cgi() {
    code_guesses_count_per_client_and_never_void_the_code(Mode::Cgi);
}

#[test]
fn code_guesses_count_per_client_and_never_void_the_code_fastcgi() {
    code_guesses_count_per_client_and_never_void_the_code(Mode::Fcgi);
}

// ---------------------------------------------------------------------------------------
// Rate limits

fn retry_after(reply: &Reply) -> u64 {
    let v = reply
        .header("Retry-After")
        .unwrap_or_else(|| panic!("no Retry-After: {reply:?}"));
    v.parse().unwrap_or_else(|_| panic!("Retry-After {v:?}"))
}

/// `username_rate = 3/3600`: issuance and code attempts for one username, whatever its
/// case; the fourth is 429, even with the right code, and costs the code nothing. A
/// request refused as taken (no code) spends nothing, and the owner's signed-in
/// renewals are counted apart from anonymous traffic (issue 10 item 5).
#[test]
fn username_rate_limit_fastcgi() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = off\nusername_rate = 3/3600\n");
    let t = Target::new(&ca, Mode::Fcgi);
    let d1 = enroll_ok(&t, "alice", None, &[]); // 1
    let code = add_device_code(&t, &d1);
    for i in 0..5 {
        refused(&t, &format!("taken {i}"), &enroll("Alice", &[]), 409, &[]);
    }
    refused_code(&t, "2nd", &enroll("alice", &[("code", "00000-00000")]), &[]);
    refused_code(
        &t,
        "3rd",
        &enroll("alice", &[("code", "11111-11111")]).with_param("REMOTE_ADDR", "192.0.2.8"),
        &[],
    );
    let reply = refused(
        &t,
        "4th",
        &enroll("alice", &[("code", &code)]).with_param("REMOTE_ADDR", "192.0.2.9"),
        429,
        &[],
    );
    let secs = retry_after(&reply);
    assert!((1..=3600).contains(&secs), "Retry-After {secs}");
    assert!(reply.text().contains("Too many attempts"), "{reply:?}");
    refused(
        &t,
        "5th, other case",
        &enroll("ALICE", &[("code", &code)]),
        429,
        &[],
    );
    assert_eq!(
        codes_on_disk(&ca),
        [("alice".to_string(), 5)],
        "429 costs the code nothing"
    );
    // Other usernames are served.
    enroll_ok(&t, "bob", None, &[]);
    // The owner, signed in, is not limited by the anonymous traffic for her name.
    let reply = t.send(&d1.sign_in(enroll("alice", &[])));
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// Under plain CGI each request is a new process: the in-memory limits cannot hold
/// (README: "do not apply across plain CGI processes"). The code try counters do.
#[test]
fn username_rate_limit_does_not_hold_across_cgi_processes() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = off\nusername_rate = 3/3600\n");
    let t = Target::new(&ca, Mode::Cgi);
    let d1 = enroll_ok(&t, "alice", None, &[]);
    let code = add_device_code(&t, &d1);
    for i in 0..4 {
        refused(&t, &format!("attempt {i}"), &enroll("alice", &[]), 409, &[]);
    }
    enroll_ok(&t, "alice", None, &[("code", &code)]);
}

/// `address_rate = 3/3600`: the fourth POST from one address is 429 with Retry-After,
/// another address is still served.
#[test]
fn address_rate_limit_fastcgi() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = 3/3600\nusername_rate = off\n");
    let t = Target::new(&ca, Mode::Fcgi);
    let from = |req: HttpRequest, addr: &str| req.with_param("REMOTE_ADDR", addr);
    for name in ["u1", "u2", "u3"] {
        let reply = t.send(&from(enroll(name, &[]), "192.0.2.7"));
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
    }
    let reply = refused(
        &t,
        "4th from 192.0.2.7",
        &from(enroll("u4", &[]), "192.0.2.7"),
        429,
        &["remote=192.0.2.7"],
    );
    let secs = retry_after(&reply);
    assert!((1..=3600).contains(&secs), "Retry-After {secs}");
    // Account actions are posts too.
    refused(
        &t,
        "an account action from 192.0.2.7",
        &from(account("x", "add-device-code", &[]), "192.0.2.7"),
        429,
        &[],
    );
    let reply = t.send(&from(enroll("u4", &[]), "198.51.100.9"));
    assert_eq!(reply.status, 200, "another address: {reply:?}");
}

/// Issue 12: "The account page scans the whole database under the lock ... at 1,000,000
/// records one signed-in page view costs 0.56 s". The daemon now reads only the user's
/// own lines, found through a per-user list in its view of index.txt: another user's
/// line damaged in place (a full scan trips over it) does not matter to alice's page,
/// and her devices are all listed, newest first, including one added by renewal.
#[test]
fn account_page_reads_only_the_users_own_lines_fastcgi() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Fcgi);
    let first = enroll_ok(&t, "alice", None, &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    let second = enroll_ok(&t, "alice", Some(&first), &[]);
    let page = t.send(&second.sign_in(HttpRequest::get()));
    let serials =
        |page: &Reply| -> Vec<String> { listed_devices(page).into_iter().map(|d| d.serial).collect() };
    assert_eq!(
        serials(&page),
        [second.serial.clone(), first.serial.clone()],
        "{page:?}"
    );
    // Bob's serial made into something no reader accepts, the file's length unchanged.
    let text = ca.index_text();
    let damaged = text.replace(
        &format!("\t{}\t", bob.serial),
        &format!("\t{}\t", "Z".repeat(bob.serial.len())),
    );
    assert_ne!(damaged, text);
    std::fs::OpenOptions::new()
        .write(true)
        .open(ca.path("index.txt"))
        .unwrap()
        .write_all(damaged.as_bytes())
        .unwrap();
    let page = t.send(&second.sign_in(HttpRequest::get()));
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        serials(&page),
        [second.serial.clone(), first.serial.clone()],
        "{page:?}"
    );
}

/// Issue 12: "GETs are not rate-limited: ... enrollments behind three looping viewers
/// take 1.3-3 s". The signed-in account page reads the user's devices: its GETs count
/// against the address rate like posts. The anonymous enrollment page does not.
#[test]
fn account_page_gets_are_rate_limited_like_posts_fastcgi() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = 3/3600\nusername_rate = off\n");
    let t = Target::new(&ca, Mode::Fcgi);
    let dev = enroll_ok(&t, "alice", None, &[]);
    for view in ["2nd", "3rd"] {
        let reply = t.send(&dev.sign_in(HttpRequest::get()));
        assert_eq!(
            signed_in_as(&reply).as_deref(),
            Some("alice"),
            "{view}: {reply:?}"
        );
    }
    let reply = refused(&t, "4th account page", &dev.sign_in(HttpRequest::get()), 429, &[]);
    assert!(retry_after(&reply) >= 1, "{reply:?}");
    let page = t.send(&HttpRequest::get());
    assert!(
        is_enrollment_page(&page),
        "the enrollment page is not limited: {page:?}"
    );
}

#[test]
fn address_rate_limit_does_not_hold_across_cgi_processes() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = 3/3600\nusername_rate = off\n");
    let t = Target::new(&ca, Mode::Cgi);
    for name in ["u1", "u2", "u3", "u4", "u5"] {
        let reply = t.send(&enroll(name, &[]).with_param("REMOTE_ADDR", "192.0.2.7"));
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
    }
}

/// The defaults are on: `getacert init`'s ca.conf as written limits one address to 20
/// posts a minute (in the daemon), refused ones included.
#[test]
fn rate_limits_are_on_by_default_fastcgi() {
    let ca = Ca::init_with(&[]);
    let t = Target::new(&ca, Mode::Fcgi);
    enroll_ok(&t, "alice", None, &[]);
    for i in 2..=20 {
        refused(&t, &format!("attempt {i}"), &enroll("alice", &[]), 409, &[]);
    }
    refused(&t, "attempt 21", &enroll("alice", &[]), 429, &[]);
}

// ---------------------------------------------------------------------------------------
// The add-device flow and account actions

fn add_device_flow(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let d1 = enroll_ok(&t, "alice", None, &[]);

    // Device 1 sees its account.
    let page = t.send(&d1.sign_in(HttpRequest::get()));
    assert_eq!(page.status, 200);
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
    assert_eq!(
        listed_devices(&page),
        [Listed {
            serial: d1.serial.clone(),
            this_device: true,
            status: "valid".into(),
            revoke_button: false
        }]
    );
    assert_eq!(shown_code(&page), None);
    // `?enroll=1` shows the enrollment page to a signed-in user (renewal).
    let renew = t.send(&d1.sign_in(HttpRequest::get().with_param("QUERY_STRING", "enroll=1")));
    assert!(is_enrollment_page(&renew), "{renew:?}");

    // It asks for a code with the page's token.
    let (reply, log) = t.send_logged(&d1.sign_in(account(&page.token(), "add-device-code", &[])));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(signed_in_as(&reply).as_deref(), Some("alice"));
    let code = shown_code(&reply).expect("the code is shown");
    assert_eq!(code.len(), 11, "{code:?}");
    assert!(log.contains("add-device code issued user=alice"), "{log}");
    assert!(!log.contains(&code), "the code must not be logged: {log}");
    assert!(
        !fs::read_to_string(ca.path("getacert.codes"))
            .unwrap()
            .contains(&code),
        "only an HMAC of the code is stored"
    );

    // Device 2 enrolls with the username and the code.
    let (reply, log) = t.send_logged(&enroll("alice", &[("code", &code)]));
    let d2 = Device::issued(&ca, &reply);
    assert!(log.contains("by=add-device code"), "{log}");
    // The code is single use.
    refused(
        &t,
        "the code again",
        &enroll("alice", &[("code", &code)]),
        403,
        &[],
    );

    // Both are signed in, each marked as "this device", each can revoke the other.
    for (me, other) in [(&d1, &d2), (&d2, &d1)] {
        let page = t.send(&me.sign_in(HttpRequest::get()));
        assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
        let mut listed = listed_devices(&page);
        listed.sort_by(|a, b| a.serial.cmp(&b.serial));
        let mut want = vec![
            Listed {
                serial: me.serial.clone(),
                this_device: true,
                status: "valid".into(),
                revoke_button: false,
            },
            Listed {
                serial: other.serial.clone(),
                this_device: false,
                status: "valid".into(),
                revoke_button: true,
            },
        ];
        want.sort_by(|a, b| a.serial.cmp(&b.serial));
        assert_eq!(listed, want);
    }

    // Device 1 revokes device 2.
    let page = t.send(&d1.sign_in(HttpRequest::get()));
    let crlnumber_before = fs::read_to_string(ca.path("crlnumber")).unwrap();
    let (reply, log) =
        t.send_logged(&d1.sign_in(account(&page.token(), "revoke", &[("serial", &d2.serial)])));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.text().contains(&format!(
            "certificate {} can no longer sign in: this page no longer accepts it, and the web \
             server refuses its new connections within 60 seconds",
            d2.serial
        )),
        "{reply:?}"
    );
    assert!(
        log.contains(&format!("revoked serial={} user=alice by=device", d2.serial)),
        "{log}"
    );
    let listed = listed_devices(&reply);
    let d2_listed = listed.iter().find(|l| l.serial == d2.serial).expect("d2 listed");
    assert_eq!(d2_listed.status, "revoked");
    assert!(!d2_listed.revoke_button);
    assert_eq!(ca.status(&d2.serial), "Revoked (R)");
    assert_eq!(ca.status(&d1.serial), "Valid (V)");
    let line = ca.index().into_iter().find(|l| l.serial == d2.serial).unwrap();
    assert!(line.revoked.ends_with(",cessationOfOperation"), "{line:?}");
    // The CRL was regenerated and lists device 2.
    assert_ne!(
        fs::read_to_string(ca.path("crlnumber")).unwrap(),
        crlnumber_before
    );
    assert_eq!(
        crl_entries(&ca.path("crl.pem")).keys().collect::<Vec<_>>(),
        [&d2.serial]
    );

    // Device 2 is anonymous now; device 1 still signed in.
    let page = t.send(&d2.sign_in(HttpRequest::get()));
    assert!(is_enrollment_page(&page), "revoked device 2 sees {page:?}");
    let token = page.token();
    refused(
        &t,
        "revoked device 2 asks for a code",
        &d2.sign_in(account(&token, "add-device-code", &[])),
        403,
        &["revoked certificate serial="],
    );
    refused(
        &t,
        "revoked device 2 revokes device 1",
        &d2.sign_in(account(&token, "revoke", &[("serial", &d1.serial)])),
        403,
        &[],
    );
    refused(
        &t,
        "revoked device 2 enrolls alice",
        &d2.sign_in(enroll("alice", &[])),
        409,
        &[],
    );
    let page = t.send(&d1.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
    ca.assert_consistent(true);
}

#[test]
fn add_device_flow_cgi() {
    add_device_flow(Mode::Cgi);
}

#[test]
fn add_device_flow_fastcgi() {
    add_device_flow(Mode::Fcgi);
}

type Action = fn(&Device, &Device, &str) -> HttpRequest;

/// (case, request built from alice's device, bob's device and a valid token, status).
fn account_refusals() -> Vec<(&'static str, Action, u16)> {
    vec![
        (
            "revoke without a token",
            |a, b, _| a.sign_in(HttpRequest::form(&[("action", "revoke"), ("serial", &b.serial)])),
            400,
        ),
        (
            "add-device-code without a token",
            |a, _, _| a.sign_in(HttpRequest::form(&[("action", "add-device-code")])),
            400,
        ),
        (
            "add-device-code with an empty token",
            |a, _, _| a.sign_in(account("", "add-device-code", &[])),
            400,
        ),
        (
            "add-device-code with a forged token",
            |a, _, _| a.sign_in(account("1.2.3", "add-device-code", &[])),
            400,
        ),
        (
            "add-device-code with a token, not signed in",
            |_, _, t| account(t, "add-device-code", &[]),
            403,
        ),
        (
            "revoke with a token, not signed in",
            |a, _, t| account(t, "revoke", &[("serial", &a.serial)]),
            403,
        ),
        (
            "revoke with a token, alice's certificate without VERIFY=SUCCESS",
            |a, _, t| {
                client_cert(
                    account(t, "revoke", &[("serial", &a.serial)]),
                    Some("NONE"),
                    Some(&a.serial),
                    Some(&a.pem),
                )
            },
            403,
        ),
        (
            "alice revokes bob's certificate",
            |a, b, t| a.sign_in(account(t, "revoke", &[("serial", &b.serial)])),
            403,
        ),
        (
            "alice revokes bob's certificate, serial in lower case with zeros",
            |a, b, t| {
                a.sign_in(account(
                    t,
                    "revoke",
                    &[("serial", &format!("00{}", b.serial.to_lowercase()))],
                ))
            },
            403,
        ),
        (
            "alice revokes a serial never issued",
            |a, _, t| a.sign_in(account(t, "revoke", &[("serial", "7FFF")])),
            403,
        ),
        (
            "alice revokes a serial that is not hex",
            |a, _, t| a.sign_in(account(t, "revoke", &[("serial", "../index.txt")])),
            403,
        ),
        (
            "alice revokes without a serial",
            |a, _, t| a.sign_in(account(t, "revoke", &[])),
            403,
        ),
        (
            "rename without a token",
            |a, _, _| {
                a.sign_in(HttpRequest::form(&[
                    ("action", "rename"),
                    ("serial", &a.serial),
                    ("name", "x"),
                ]))
            },
            400,
        ),
        (
            "rename with a token, not signed in",
            |a, _, t| account(t, "rename", &[("serial", &a.serial), ("name", "x")]),
            403,
        ),
        (
            "alice renames bob's certificate",
            |a, b, t| {
                a.sign_in(account(
                    t,
                    "rename",
                    &[("serial", &b.serial), ("name", "mine now")],
                ))
            },
            403,
        ),
        (
            "an unknown action",
            |a, _, t| a.sign_in(account(t, "delete-account", &[])),
            400,
        ),
    ]
}

fn account_actions_refused(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    // A valid token, bound to alice's certificate.
    let token = t.send(&alice.sign_in(HttpRequest::get())).token();
    for (case, make, status) in account_refusals() {
        refused(
            &t,
            &format!("{mode:?} {case}"),
            &make(&alice, &bob, &token),
            status,
            &[],
        );
    }
    // Both still signed in; nothing was revoked.
    for (dev, name) in [(&alice, "alice"), (&bob, "bob")] {
        let page = t.send(&dev.sign_in(HttpRequest::get()));
        assert_eq!(signed_in_as(&page).as_deref(), Some(name), "{page:?}");
        assert_eq!(ca.status(&dev.serial), "Valid (V)");
    }
    // `getacert init` wrote an empty CRL; nothing was revoked, so it is still empty.
    let crl = std::process::Command::new("openssl")
        .args(["crl", "-noout", "-text", "-in"])
        .arg(ca.path("crl.pem"))
        .output()
        .expect("openssl crl runs");
    assert!(
        String::from_utf8_lossy(&crl.stdout).contains("No Revoked Certificates"),
        "the CRL lists nothing: nothing was revoked"
    );
}

#[test]
fn account_actions_refused_cgi() {
    account_actions_refused(Mode::Cgi);
}

#[test]
fn account_actions_refused_fastcgi() {
    account_actions_refused(Mode::Fcgi);
}

// ---------------------------------------------------------------------------------------
// The CRL

/// serial → reason (`None` without a reason code), by `openssl crl -text`.
fn crl_entries(crl: &Path) -> BTreeMap<String, Option<String>> {
    let text = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"]);
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("Serial Number: ") {
            current = Some(s.to_string());
            out.insert(s.to_string(), None);
        } else if line.starts_with("X509v3 CRL Reason Code") {
            let reason = lines.next().unwrap().trim().to_string();
            let serial = current.clone().expect("a reason after a serial");
            out.insert(serial, Some(reason));
        }
    }
    out
}

/// The CRL number `openssl crl -crlnumber` reads (hex, without 0x).
fn crl_number(crl: &Path) -> String {
    let out = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-crlnumber"]);
    out.trim()
        .strip_prefix("crlNumber=0x")
        .unwrap_or_else(|| panic!("no CRL number: {out}"))
        .to_string()
}

/// `openssl crl -CAfile rootCA.pem` verifies the CRL's signature.
fn assert_crl_verifies(ca: &Ca, crl: &Path) {
    let text = common::openssl([
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        ca.cert.to_str().unwrap(),
        "-noout",
    ]);
    assert!(text.contains("verify OK"), "{}: {text}", crl.display());
}

fn crlnumber_file(ca: &Ca) -> u64 {
    u64::from_str_radix(fs::read_to_string(ca.path("crlnumber")).unwrap().trim(), 16).unwrap()
}

#[test]
fn crl_after_revocations_by_web_and_admin_matches_openssl_ca() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let crl = ca.path("crl.pem");
    assert!(
        fs::read_to_string(&ca.conf)
            .unwrap()
            .contains("crl             = $dir/crl.pem")
    );
    let alice1 = enroll_ok(&t, "alice", None, &[]);
    let code = add_device_code(&t, &alice1);
    let alice2 = enroll_ok(&t, "alice", None, &[("code", &code)]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    let carol1 = enroll_ok(&t, "carol", None, &[]);
    let carol2 = enroll_ok(&t, "carol", Some(&carol1), &[]);
    let dave = enroll_ok(&t, "dave", None, &[]);
    let erin = enroll_ok(&t, "erin", None, &[]);
    let mut number = crlnumber_file(&ca);

    // Each revocation writes a new CRL, numbered from crlnumber, which advances.
    let mut revoked_by_step = |step: &str, f: &mut dyn FnMut()| {
        f();
        let now = crlnumber_file(&ca);
        assert_eq!(now, number + 1, "{step}: crlnumber advances by one");
        assert_eq!(
            crl_number(&crl),
            format!("{number:X}"),
            "{step}: the CRL carries the number"
        );
        assert_crl_verifies(&ca, &crl);
        number = now;
    };
    revoked_by_step("web", &mut || {
        let page = t.send(&alice1.sign_in(HttpRequest::get()));
        let reply = t.send(&alice1.sign_in(account(&page.token(), "revoke", &[("serial", &alice2.serial)])));
        assert_eq!(reply.status, 200, "{reply:?}");
    });
    revoked_by_step("revoke --serial", &mut || {
        admin_ok(
            &ca,
            &["revoke", "--serial", &bob.serial, "--reason", "keyCompromise"],
        );
    });
    revoked_by_step("revoke --user", &mut || {
        let out = admin_ok(&ca, &["revoke", "--user", "Carol", "--reason", "keyCompromise"]);
        assert!(
            out.contains(&format!("revoked: {} {}", carol1.serial, carol2.serial)),
            "{out}"
        );
    });
    revoked_by_step("revoke without a reason", &mut || {
        admin_ok(&ca, &["revoke", "--serial", &dave.serial]);
    });
    // Nothing left to revoke: an error, no new CRL.
    let out = admin(&ca, &["revoke", "--user", "carol"]);
    assert!(!out.status.success());
    assert_eq!(crlnumber_file(&ca), number);

    let want: BTreeMap<String, Option<String>> = [
        (&alice2, Some("Cessation Of Operation")),
        (&bob, Some("Key Compromise")),
        (&carol1, Some("Key Compromise")),
        (&carol2, Some("Key Compromise")),
        (&dave, None),
    ]
    .into_iter()
    .map(|(d, r)| (d.serial.clone(), r.map(str::to_string)))
    .collect();
    assert_eq!(crl_entries(&crl), want, "getacert's crl.pem");
    let text = common::openssl(["crl", "-in", crl.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains("Next Update"), "{text}");

    // `getacert crl --out F`.
    let out = ca.scratch("getacert-crl.pem");
    admin_ok(&ca, &["crl", "--out", out.to_str().unwrap()]);
    assert_crl_verifies(&ca, &out);
    assert_eq!(crl_entries(&out), want, "getacert crl --out");
    assert_eq!(crl_number(&out), format!("{number:X}"));
    assert_eq!(crlnumber_file(&ca), number + 1);

    // `openssl ca -gencrl` on the same database lists the same certificates.
    let other = ca.scratch("openssl-crl.pem");
    openssl_ca_locked(&ca, &["-gencrl", "-out", other.to_str().unwrap()]);
    assert_crl_verifies(&ca, &other);
    assert_eq!(crl_entries(&other), want, "openssl ca -gencrl");
    assert_eq!(crl_number(&other), format!("{:X}", number + 1));
    assert_eq!(crlnumber_file(&ca), number + 2);

    // And `openssl verify -crl_check` with getacert's CRL.
    for (dev, ok) in [(&erin, true), (&alice1, true), (&bob, false), (&alice2, false)] {
        let cert = ca.scratch(&format!("verify-{}.pem", dev.serial));
        fs::write(&cert, &dev.pem).unwrap();
        let v = common::openssl_output([
            "verify",
            "-crl_check",
            "-CAfile",
            ca.cert.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            cert.to_str().unwrap(),
        ]);
        assert_eq!(v.status.success(), ok, "verify {}: {v:?}", dev.serial);
    }
    // index.txt records the reasons as `openssl ca -revoke -crl_reason` does.
    let reasons: BTreeMap<String, String> = ca
        .index()
        .into_iter()
        .filter(|l| l.status == "R")
        .map(|l| {
            (
                l.serial,
                l.revoked.split_once(',').map_or("", |(_, r)| r).to_string(),
            )
        })
        .collect();
    let want_index: BTreeMap<String, String> = [
        (&alice2, "cessationOfOperation"),
        (&bob, "keyCompromise"),
        (&carol1, "keyCompromise"),
        (&carol2, "keyCompromise"),
        (&dave, ""),
    ]
    .into_iter()
    .map(|(d, r)| (d.serial.clone(), r.to_string()))
    .collect();
    assert_eq!(reasons, want_index);
    ca.assert_consistent(true);
}

// ---------------------------------------------------------------------------------------
// Admin commands

/// serial → (status, username), from `getacert list`.
fn list(ca: &Ca) -> BTreeMap<String, (String, String)> {
    let out = admin_ok(ca, &["list"]);
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with("SERIAL") && head.contains("STATUS"), "{out}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "{l:?}");
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect()
}

fn listed(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
    pairs
        .iter()
        .map(|(s, st, u)| (s.to_string(), (st.to_string(), u.to_string())))
        .collect()
}

#[test]
fn updatedb_recovery_code_and_list() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    // A record that expired in 2020 and is still V, as an old database may have it.
    with_lock(&ca, || {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(ca.path("index.txt"))
            .unwrap();
        f.write_all(b"V\t200101000000Z\t\t0FFE\tunknown\t/C=US/O=MyApp/CN=olduser\n")
            .unwrap();
    });
    let before = listed(&[
        (&alice.serial, "valid", "alice"),
        (&bob.serial, "valid", "bob"),
        ("0FFE", "expired", "olduser"),
    ]);
    assert_eq!(list(&ca), before, "list shows an expired V record as expired");

    // updatedb marks it E, and only it.
    let out = admin_ok(&ca, &["updatedb"]);
    assert!(out.contains("1 certificate(s) marked expired"), "{out}");
    let index = ca.index();
    let statuses: Vec<(&str, &str)> = index
        .iter()
        .map(|l| (l.serial.as_str(), l.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (alice.serial.as_str(), "V"),
            (bob.serial.as_str(), "V"),
            ("0FFE", "E")
        ]
    );
    assert_eq!(ca.status("0FFE"), "Expired (E)");
    let out = admin_ok(&ca, &["updatedb"]);
    assert!(out.contains("0 certificate(s) marked expired"), "{out}");
    // olduser's certificate expired, but the name is still olduser's (issue 10 item 2)
    // until the admin releases it.
    refused(&t, "olduser's expired name", &enroll("olduser", &[]), 409, &[]);
    let out = admin_ok(&ca, &["release", "olduser"]);
    assert!(out.contains("released olduser"), "{out}");
    enroll_ok(&t, "olduser", None, &[]);

    // alice lost every device: the admin revokes them all and gives her a code.
    let out = admin_ok(&ca, &["recovery-code", "alice", "--revoke-all"]);
    assert!(out.contains(&format!("revoked: {}", alice.serial)), "{out}");
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("Recovery code for alice: "))
        .unwrap_or_else(|| panic!("no code in {out}"))
        .trim()
        .to_string();
    assert_eq!(code.len(), 11, "{code:?}");
    assert_eq!(ca.status(&alice.serial), "Revoked (R)");
    assert_eq!(
        crl_entries(&ca.path("crl.pem")),
        BTreeMap::from([(alice.serial.clone(), Some("Key Compromise".to_string()))])
    );
    // Her old certificate no longer signs in.
    assert!(is_enrollment_page(&t.send(&alice.sign_in(HttpRequest::get()))));

    // alice has no valid certificate, yet the name is reserved for the code's holder.
    refused(&t, "alice without the code", &enroll("alice", &[]), 409, &[]);
    refused(&t, "Alice without the code", &enroll("Alice", &[]), 409, &[]);
    refused(
        &t,
        "her revoked certificate, no code",
        &alice.sign_in(enroll("alice", &[])),
        409,
        &[],
    );
    refused_code(
        &t,
        "alice with a wrong code",
        &enroll("alice", &[("code", "ZZZZZ-ZZZZZ")]),
        &[],
    );
    let (reply, log) = t.send_logged(&enroll("alice", &[("code", &code)]));
    let new_alice = Device::issued(&ca, &reply);
    assert!(log.contains("by=recovery code"), "{log}");
    assert_eq!(codes_on_disk(&ca), []);
    refused(
        &t,
        "the recovery code again",
        &enroll("alice", &[("code", &code)]),
        403,
        &[],
    );
    let page = t.send(&new_alice.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"));

    let olduser = ca
        .index()
        .into_iter()
        .find(|l| l.subject.ends_with("CN=olduser") && l.status == "V");
    let olduser = olduser.expect("olduser's new certificate");
    assert_eq!(
        list(&ca),
        listed(&[
            (&alice.serial, "revoked", "alice"),
            (&bob.serial, "valid", "bob"),
            ("0FFE", "expired", "olduser"),
            (&olduser.serial, "valid", "olduser"),
            (&new_alice.serial, "valid", "alice"),
        ])
    );
}

/// A recovery code for a user who still has a device works like an add-device code.
#[test]
fn recovery_code_without_revoke_all_keeps_the_devices() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let out = admin_ok(&ca, &["recovery-code", "alice"]);
    assert!(!out.contains("revoked:"), "{out}");
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("Recovery code for alice: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(ca.status(&alice.serial), "Valid (V)");
    enroll_ok(&t, "alice", None, &[("code", &code)]);
    assert_eq!(ca.status(&alice.serial), "Valid (V)");
}

/// README: after `recovery-code --revoke-all`, "the name stays reserved for the code's
/// holder until the code is used or expires". Five wrong guesses void the code (neither
/// used nor expired); the name must stay reserved, or whoever made the guesses takes it.
#[test]
fn recovery_reservation_survives_five_wrong_codes() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let out = admin_ok(&ca, &["recovery-code", "alice", "--revoke-all"]);
    assert!(out.contains(&format!("revoked: {}", alice.serial)), "{out}");
    for i in 0..5 {
        refused_code(
            &t,
            &format!("wrong guess {}", i + 1),
            &enroll("alice", &[("code", "ZZZZZ-ZZZZZ")]).with_param("REMOTE_ADDR", &format!("192.0.2.{i}")),
            &[],
        );
    }
    let reply = t.send(&enroll("alice", &[]));
    assert!(
        !reply.is_cert(),
        "after five wrong recovery codes, an anonymous client got a certificate for alice: {reply:?}"
    );
    assert_eq!(reply.status, 409, "{reply:?}");
}

/// Issue 13 (replacing issue 10's "renew revokes the presented certificate"): a renewal
/// is still bound to the presented certificate, but that one is superseded only once the
/// new one signs in, never at issuance, so an import that fails leaves the user signed
/// in. Until then the page says which certificate is which; an OCSP lookup for the new
/// serial (anybody can send one) does not count. A second renewal from the old
/// certificate (the first import failed) is fine: the unused first one goes too.
fn renew_supersedes_the_presented_certificate_once_the_new_one_signs_in(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let old = enroll_ok(&t, "alice", None, &[]);
    let other = enroll_ok(&t, "alice", Some(&old), &[]);
    let (reply, log) = t.send_logged(&old.sign_in(enroll("alice", &[("renew", "yes")])));
    let failed_import = Device::issued(&ca, &reply);
    assert!(
        log.contains("renewal: the old certificate is superseded once this one is used"),
        "{log}"
    );
    for d in [&old, &other, &failed_import] {
        assert_eq!(
            ca.status(&d.serial),
            "Valid (V)",
            "nothing is revoked at issuance"
        );
    }
    assert!(crl_entries(&ca.path("crl.pem")).is_empty());
    // The import failed: the old certificate still signs in, and says it is replaced
    // once the new one signs in; it can renew again.
    let page = t.send(&old.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
    let text = page.text();
    assert!(
        text.contains(&format!(
            "data-renewal=\"new\">New, not used yet: it replaces certificate {} once it signs in.",
            old.serial
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "data-renewal=\"replaced\">Replaced once the new one (certificate {}) signs in",
            failed_import.serial
        )),
        "{text}"
    );
    assert!(text.contains("id=\"renew-waiting\""), "{text}");
    let new = Device::issued(&ca, &t.send(&old.sign_in(enroll("alice", &[("renew", "yes")]))));

    // An OCSP lookup for the new serial marks nothing used (in the daemon it is
    // recorded as seen by the web server; under CGI not at all).
    let ocsp_req = ocsp_request_for(&ca, &new);
    let answer = t.send(&ocsp_req);
    assert_eq!(
        answer.header("Content-Type"),
        Some("application/ocsp-response"),
        "{answer:?}"
    );
    assert_eq!(
        ca.status(&old.serial),
        "Valid (V)",
        "an OCSP lookup does not supersede"
    );
    assert!(signed_in_as(&t.send(&old.sign_in(HttpRequest::get()))).is_some());

    // The new certificate signs in: the old one is superseded, with the unused first
    // renewal; the other device is untouched.
    let (page, log) = t.send_logged(&new.sign_in(HttpRequest::get()));
    assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{page:?}");
    assert!(
        log.contains(&format!(
            "renewal complete user=alice serial={} replaces={}",
            new.serial, old.serial
        )),
        "{log}"
    );
    assert_eq!(ca.status(&old.serial), "Revoked (R)");
    assert_eq!(ca.status(&failed_import.serial), "Revoked (R)");
    assert_eq!(ca.status(&other.serial), "Valid (V)", "only the presented one");
    assert_eq!(ca.status(&new.serial), "Valid (V)");
    let line = ca.index().into_iter().find(|l| l.serial == old.serial).unwrap();
    assert!(line.revoked.ends_with(",superseded"), "{line:?}");
    assert_eq!(
        crl_entries(&ca.path("crl.pem")),
        BTreeMap::from([
            (old.serial.clone(), Some("Superseded".to_string())),
            (failed_import.serial.clone(), Some("Superseded".to_string())),
        ])
    );
    assert!(
        !page.text().contains("data-renewal="),
        "the renewal is done: {}",
        page.text()
    );
    assert!(is_enrollment_page(&t.send(&old.sign_in(HttpRequest::get()))));
    let page = t.send(&new.sign_in(HttpRequest::get()));
    assert_eq!(listed_devices(&page).len(), 4, "{page:?}");
    assert!(!log.contains("error"), "{log}");

    // Anonymous, for a new name: issued, nothing revoked.
    let before: Vec<_> = ca.index().into_iter().map(|l| (l.serial, l.status)).collect();
    enroll_ok(&t, "zed", None, &[("renew", "yes")]);
    let after: Vec<_> = ca.index().into_iter().map(|l| (l.serial, l.status)).collect();
    assert_eq!(&after[..before.len()], &before[..]);
}

#[test]
fn renew_supersedes_the_presented_certificate_once_the_new_one_signs_in_cgi() {
    renew_supersedes_the_presented_certificate_once_the_new_one_signs_in(Mode::Cgi);
}

#[test]
fn renew_supersedes_the_presented_certificate_once_the_new_one_signs_in_fastcgi() {
    renew_supersedes_the_presented_certificate_once_the_new_one_signs_in(Mode::Fcgi);
}

/// An OCSP request (POST /ocsp, as Apache sends it) for `dev`, made by `openssl ocsp`.
fn ocsp_request_for(ca: &Ca, dev: &Device) -> HttpRequest {
    let pem = ca.scratch(&format!("{}.pem", dev.serial));
    fs::write(&pem, &dev.pem).unwrap();
    let out = ca.scratch(&format!("{}.ocsp-req", dev.serial));
    common::openssl([
        "ocsp",
        "-issuer",
        ca.cert.to_str().unwrap(),
        "-cert",
        pem.to_str().unwrap(),
        "-no_nonce",
        "-reqout",
        out.to_str().unwrap(),
    ]);
    HttpRequest {
        method: "POST".into(),
        content_type: Some("application/ocsp-request".into()),
        body: fs::read(&out).unwrap(),
        params: Vec::new(),
    }
    .with_param("REQUEST_URI", "/ocsp")
    .with_param("SCRIPT_NAME", "/ocsp")
}

/// README, Answers: 503 (with Retry-After) when "the database lock is held elsewhere".
/// An account action from a signed-in device while `openssl ca` (or anything else)
/// holds the lock must be 503 — try again — not 403 "not signed in".
#[test]
fn account_action_while_the_database_is_locked_is_503_not_403() {
    let ca = Ca::init();
    ca.append_getacert_settings("lock_timeout = 1\n");
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let token = page_token(&t);
    // The control: an enrollment while the lock is held is 503.
    let reply = with_lock(&ca, || t.send(&enroll("zed", &[])));
    assert_eq!(reply.status, 503, "enrollment while locked: {reply:?}");
    let reply = with_lock(&ca, || {
        t.send(&alice.sign_in(account(&token, "add-device-code", &[])))
    });
    assert_eq!(
        (reply.status, reply.header("Retry-After").is_some()),
        (503, true),
        "add-device-code from alice's valid device while the lock is held: {reply:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Issue 10: nobody but the account's owner can ever get its name

/// `getacert --config ca.conf ARGS` under `strace` with `strace_args` (e.g. a delay
/// injected into one syscall), as CGI with `req`; returns the reply and stderr.
fn cgi_under_strace(ca: &Ca, strace_args: &[&str], req: &HttpRequest) -> (Reply, String) {
    let mut child = Command::new("strace")
        .args(["-f", "-o", "/dev/null"])
        .args(strace_args)
        .arg(common::bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GETACERT_CONFIG", &ca.conf)
        .envs(req.cgi_params())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace (Debian: strace) must be installed");
    child.stdin.take().unwrap().write_all(&req.body).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        Reply::parse(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Item 2: revoking alice's only certificate (a stolen laptop) does not free her name:
/// anonymous enrollment stays 409, in CGI and in the daemon, until `getacert release`,
/// which is logged and recorded in getacert.released; then anyone may have it, and the
/// new holder owns it the same way.
fn revoked_name_stays_its_owners_until_released(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    admin_ok(
        &ca,
        &["revoke", "--serial", &alice.serial, "--reason", "keyCompromise"],
    );
    assert_eq!(ca.status(&alice.serial), "Revoked (R)");
    for name in ["alice", "ALICE"] {
        let reply = refused(
            &t,
            &format!("{mode:?} anonymous {name} after revocation"),
            &enroll(name, &[]),
            409,
            &[],
        );
        assert!(reply.text().contains("already taken"), "{reply:?}");
    }
    refused(
        &t,
        &format!("{mode:?} the revoked certificate itself"),
        &alice.sign_in(enroll("alice", &[])),
        409,
        &["revoked certificate serial="],
    );
    // Expired the same way: an old record `openssl ca` left V past its notAfter.
    expired_cert_by_openssl_ca(&ca, "olivia");
    refused(
        &t,
        &format!("{mode:?} an expired name"),
        &enroll("olivia", &[]),
        409,
        &[],
    );

    let out = admin(&ca, &["release", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("released user=alice by=admin"),
        "release is logged: {log}"
    );
    let released = fs::read_to_string(ca.path("getacert.released")).unwrap();
    assert!(
        released.starts_with(&format!("{}\talice\t", alice.serial)),
        "{released:?}"
    );
    // openssl ca still reads the database, and has it as it was.
    assert_eq!(ca.status(&alice.serial), "Revoked (R)");

    let new_alice = enroll_ok(&t, "Alice", None, &[]);
    refused(
        &t,
        &format!("{mode:?} after the new Alice"),
        &enroll("alice", &[]),
        409,
        &[],
    );
    // A release of a name never issued is an error, and changes nothing.
    let out = admin(&ca, &["release", "nobody-here"]);
    assert!(!out.status.success(), "{out:?}");
    // Releasing a valid name revokes what is still valid.
    let out = admin_ok(&ca, &["release", "alice"]);
    assert!(out.contains(&format!("revoked: {}", new_alice.serial)), "{out}");
    let line = ca
        .index()
        .into_iter()
        .find(|l| l.serial == new_alice.serial)
        .unwrap();
    assert!(line.revoked.ends_with(",cessationOfOperation"), "{line:?}");
    enroll_ok(&t, "alice", None, &[]);
}

#[test]
fn revoked_name_stays_its_owners_until_released_cgi() {
    revoked_name_stays_its_owners_until_released(Mode::Cgi);
}

#[test]
fn revoked_name_stays_its_owners_until_released_fastcgi() {
    revoked_name_stays_its_owners_until_released(Mode::Fcgi);
}

/// Item 2: the released list survives `openssl ca` rewriting index.txt and a daemon
/// restart, and an admin's line added by hand (under the lock) counts.
#[test]
fn release_survives_openssl_ca_rewrites_and_restarts() {
    let ca = Ca::init();
    let mut d = Daemon::start(&ca, Listen::Unix, 2);
    let enroll_via = |d: &Daemon, name: &str| d.front.send(&enroll(name, &[]));
    let bob = Device::issued(&ca, &enroll_via(&d, "bob"));
    let carol = Device::issued(&ca, &enroll_via(&d, "carol"));
    admin_ok(&ca, &["release", "bob"]);
    // openssl ca -revoke rewrites index.txt by rename.
    openssl_ca_locked(
        &ca,
        &[
            "-revoke",
            ca.path(&format!("newcerts/{}.pem", carol.serial))
                .to_str()
                .unwrap(),
        ],
    );
    assert_eq!(
        enroll_via(&d, "carol").status,
        409,
        "carol revoked by openssl ca: still hers"
    );
    d.restart();
    let reply = enroll_via(&d, "bob");
    assert_eq!(reply.status, 200, "bob released before the restart: {reply:?}");
    assert_eq!(enroll_via(&d, "bob").status, 409, "the new bob owns it");
    // By hand, as docs/deployment.md says: one line per serial, under the lock.
    with_lock(&ca, || {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(ca.path("getacert.released"))
            .unwrap();
        writeln!(f, "{}\tcarol\t0", carol.serial).unwrap();
    });
    let reply = enroll_via(&d, "carol");
    assert_eq!(reply.status, 200, "carol released by hand: {reply:?}");
    let _ = bob;
}

/// Item 2: `--help` lists `release`.
#[test]
fn help_lists_release() {
    let out = Command::new(common::bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("release"), "{text}");
    let out = Command::new(common::bin())
        .args(["release", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Free a username"));
}

/// Item 3: a form token is good only for whom it was made: alice's account page token
/// is useless to bob's certificate and to an anonymous request; an anonymous page's
/// token needs the cookie that page set, and is useless to a signed-in request.
fn form_tokens_are_bound_to_the_requester(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let alice2 = enroll_ok(&t, "alice", Some(&alice), &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    let alice_token = t.send(&alice.sign_in(HttpRequest::get())).token();
    let anon_page = t.send(&HttpRequest::get());
    let (anon_token, cookie) = (anon_page.token(), anon_page.cookie());
    assert!(
        anon_page
            .header("Set-Cookie")
            .unwrap()
            .contains("SameSite=Strict")
    );
    let revoke_alice2 = |token: &str| account(token, "revoke", &[("serial", &alice2.serial)]);
    for (case, req) in [
        (
            "bob with alice's token",
            bob.sign_in(account(&alice_token, "add-device-code", &[])),
        ),
        (
            "alice with an anonymous page's token",
            alice
                .sign_in(revoke_alice2(&anon_token))
                .with_param("HTTP_COOKIE", &cookie),
        ),
        (
            "alice's other device with her token",
            alice2.sign_in(account(&alice_token, "add-device-code", &[])),
        ),
        (
            "anonymous with alice's token",
            enroll("zed", &[("token", &alice_token)]),
        ),
        (
            "anonymous token without its cookie",
            enroll("zed", &[("token", &anon_token)]),
        ),
        (
            "anonymous token with another cookie",
            enroll("zed", &[("token", &anon_token)])
                .with_param("HTTP_COOKIE", "getacert=00112233445566778899aabbccddeeff"),
        ),
        (
            "signed-in enrollment with an anonymous token",
            alice
                .sign_in(enroll("alice", &[("token", &anon_token)]))
                .with_param("HTTP_COOKIE", &cookie),
        ),
    ] {
        refused(&t, &format!("{mode:?} {case}"), &req, 400, &[]);
    }
    assert_eq!(ca.status(&alice2.serial), "Valid (V)");
    // The controls: each token with its own requester.
    let reply = t.send(&alice.sign_in(revoke_alice2(&alice_token)));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(ca.status(&alice2.serial), "Revoked (R)");
    let reply = t.send(&enroll("zed", &[("token", &anon_token)]).with_param("HTTP_COOKIE", &cookie));
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[test]
fn form_tokens_are_bound_to_the_requester_cgi() {
    form_tokens_are_bound_to_the_requester(Mode::Cgi);
}

#[test]
fn form_tokens_are_bound_to_the_requester_fastcgi() {
    form_tokens_are_bound_to_the_requester(Mode::Fcgi);
}

/// Item 3: every POST from another site is refused, with a valid token or without:
/// `Sec-Fetch-Site: cross-site` or `same-site`, `Origin: null`, another host or port.
/// A request with neither header (curl) and a same-origin browser post go through.
fn cross_site_posts_are_refused_even_with_a_token(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let alice2 = enroll_ok(&t, "alice", Some(&alice), &[]);
    let token = t.send(&alice.sign_in(HttpRequest::get())).token();
    let host = |r: HttpRequest| r.with_param("HTTP_HOST", "example.org:8443");
    let marks: &[(&str, &str, &str)] = &[
        ("Sec-Fetch-Site cross-site", "HTTP_SEC_FETCH_SITE", "cross-site"),
        ("Sec-Fetch-Site same-site", "HTTP_SEC_FETCH_SITE", "same-site"),
        ("Origin null", "HTTP_ORIGIN", "null"),
        ("Origin of another host", "HTTP_ORIGIN", "https://evil.example"),
        (
            "Origin of another port",
            "HTTP_ORIGIN",
            "https://example.org:9443",
        ),
        (
            "Origin http on the https port",
            "HTTP_ORIGIN",
            "http://example.org",
        ),
    ];
    for (case, header, value) in marks {
        for (what, req) in [
            ("revoke", account(&token, "revoke", &[("serial", &alice2.serial)])),
            ("add-device-code", account(&token, "add-device-code", &[])),
            (
                "rename",
                account(&token, "rename", &[("serial", &alice2.serial), ("name", "x")]),
            ),
            ("renew", enroll("alice", &[("renew", "yes"), ("token", &token)])),
        ] {
            let req = host(alice.sign_in(req)).with_param(header, value);
            refused(
                &t,
                &format!("{mode:?} {case}: {what}"),
                &req,
                403,
                &["cross-site post"],
            );
        }
    }
    assert_eq!(ca.status(&alice.serial), "Valid (V)");
    assert_eq!(ca.status(&alice2.serial), "Valid (V)");
    // The controls.
    let same_origin = host(alice.sign_in(account(&token, "add-device-code", &[])))
        .with_param("HTTP_ORIGIN", "https://example.org:8443")
        .with_param("HTTP_SEC_FETCH_SITE", "same-origin");
    assert_eq!(t.send(&same_origin).status, 200);
    let curl = alice.sign_in(enroll("alice", &[("renew", "yes")]));
    assert_eq!(
        t.send(&curl).status,
        200,
        "no Origin, no Sec-Fetch-Site: a script"
    );
}

#[test]
fn cross_site_posts_are_refused_even_with_a_token_cgi() {
    cross_site_posts_are_refused_even_with_a_token(Mode::Cgi);
}

#[test]
fn cross_site_posts_are_refused_even_with_a_token_fastcgi() {
    cross_site_posts_are_refused_even_with_a_token(Mode::Fcgi);
}

/// Item 4: with `front_secret_file`, a FastCGI request without the secret (a PHP script
/// on the socket, forging alice's SSL_CLIENT_* with her public certificate) is 403 with
/// an audit line that does not show the secret; with it, served. Under CGI it does not
/// apply.
#[test]
fn front_secret_is_required_from_whoever_reaches_the_socket() {
    let ca = Ca::init();
    let alice = enroll_ok(&Target::new(&ca, Mode::Cgi), "alice", None, &[]);
    let secret = ca.enable_front_secret();
    let t = Target::new(&ca, Mode::Fcgi);
    let forged = alice.sign_in(enroll("alice", &[]));
    for (case, req) in [
        ("no secret", forged.clone()),
        (
            "a wrong secret",
            forged.clone().with_param(
                "GETACERT_FRONT_SECRET",
                // the last hex digit changed (to 0, or to 1 where it was 0)
                &format!(
                    "{}{}",
                    &secret[..secret.len() - 1],
                    if secret.ends_with('0') { '1' } else { '0' }
                ),
            ),
        ),
        (
            "the secret with a newline",
            forged
                .clone()
                .with_param("GETACERT_FRONT_SECRET", &format!("{secret}\n")),
        ),
        ("a GET without the secret", HttpRequest::get()),
    ] {
        let reply = refused(&t, case, &req, 403, &["front secret"]);
        assert!(!reply.text().contains("<form"), "{case}: {reply:?}");
    }
    let log = fs::read_to_string(&t.daemon.as_ref().unwrap().log).unwrap();
    assert!(!log.contains(&secret), "the secret is never logged:\n{log}");
    let reply = t.send(&forged.with_param("GETACERT_FRONT_SECRET", &secret));
    assert_eq!(reply.status, 200, "{reply:?}");
    // CGI: no socket, no secret.
    enroll_ok(&Target::new(&ca, Mode::Cgi), "bob", None, &[]);
}

/// Item 4: TCP mode refuses to start without a front secret.
#[test]
fn tcp_without_front_secret_refuses_to_start() {
    let ca = Ca::init();
    let port = common::free_port();
    let mut child = Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args([
            "serve",
            "--log-stderr",
            "--listen",
            &format!("tcp:127.0.0.1:{port}"),
        ])
        .env_remove("LISTEN_FDS")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("serve on TCP without a front secret is running: {out:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("front_secret_file"),
        "{out:?}"
    );
}

/// Item 5: refusals of a taken name spend nobody's limit, and the owner's signed-in
/// requests are counted apart from anonymous traffic for her name.
#[test]
fn anonymous_traffic_does_not_lock_the_owner_out() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = off\nusername_rate = 2/3600\n");
    let t = Target::new(&ca, Mode::Fcgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    for i in 0..10 {
        refused(&t, &format!("taken {i}"), &enroll("alice", &[]), 409, &[]);
    }
    refused_code(&t, "a guess", &enroll("alice", &[("code", "00000-00000")]), &[]);
    refused(
        &t,
        "the next guess",
        &enroll("alice", &[("code", "00000-00000")]).with_param("REMOTE_ADDR", "192.0.2.99"),
        429,
        &[],
    );
    let renewed = enroll_ok(&t, "alice", Some(&alice), &[]);
    enroll_ok(&t, "alice", Some(&renewed), &[]);
}

/// Item 5: IPv6 clients are rate-limited by their /64 (`ipv6_prefix`), not by address.
#[test]
fn ipv6_clients_are_rate_limited_by_their_network() {
    let ca = Ca::init_with(&[]);
    ca.append_getacert_settings("address_rate = 3/3600\nusername_rate = off\n");
    let t = Target::new(&ca, Mode::Fcgi);
    let from = |addr: &str, name: &str| t.send(&enroll(name, &[]).with_param("REMOTE_ADDR", addr));
    for i in 1..=3 {
        assert_eq!(
            from(&format!("2001:db8:0:1::{i}"), &format!("v6u{i}")).status,
            200
        );
    }
    assert_eq!(from("2001:db8:0:1:ffff:1:2:3", "v6u4").status, 429, "same /64");
    assert_eq!(from("2001:db8:0:2::1", "v6u5").status, 200, "another /64");
    drop(t);
    ca.append_getacert_settings("ipv6_prefix = 128\n");
    let t = Target::new(&ca, Mode::Fcgi);
    for i in 1..=5 {
        let reply =
            t.send(&enroll(&format!("v6w{i}"), &[]).with_param("REMOTE_ADDR", &format!("2001:db8:0:3::{i}")));
        assert_eq!(reply.status, 200, "ipv6_prefix = 128: one address each");
    }
}

/// Item 6: `recovery-code --revoke-all` revokes and makes the code under one take of
/// the lock (strace counts the flock calls), so no enrollment runs in between.
#[test]
fn recovery_code_revoke_all_takes_the_lock_once() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let trace = ca.scratch("recovery.strace");
    let out = Command::new("strace")
        .args(["-f", "-e", "trace=flock", "-o"])
        .arg(&trace)
        .arg(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .args(["recovery-code", "alice", "--revoke-all"])
        .env_remove("GATEWAY_INTERFACE")
        .output()
        .expect("strace (Debian: strace) must be installed");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ca.status(&alice.serial), "Revoked (R)");
    let calls = fs::read_to_string(&trace).unwrap();
    let takes = calls.lines().filter(|l| l.contains("LOCK_EX")).count();
    assert_eq!(takes, 1, "flock calls:\n{calls}");
}

/// Item 6: a renewal whose presented certificate is revoked while the new one signs
/// must not commit (the grant is checked again under the commit lock). strace holds the
/// enrollment for 5 s at its newcerts fsync (after the first lock, before the commit)
/// while the admin revokes the certificate it presented.
#[test]
fn renewal_whose_certificate_is_revoked_while_signing_does_not_commit() {
    // Sequential serials: the fsync counted below is the third only when the serial
    // file is written too (with rand_serial, init's default, there is one fsync fewer).
    let ca = Ca::init_sequential();
    let t = Target::new(&ca, Mode::Cgi);
    let old = enroll_ok(&t, "alice", None, &[]);
    let before = ca.index().len();
    let req = old.sign_in(enroll("alice", &[("renew", "yes")]));
    let (ca_conf, serial, newcerts) = (ca.conf.clone(), old.serial.clone(), ca.path("newcerts"));
    let files_before = fs::read_dir(&newcerts).unwrap().count();
    let admin_thread = std::thread::spawn(move || {
        // Once the new certificate's file exists, the enrollment is held at its fsync,
        // between its two lock takes: revoke the certificate it presented now.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while fs::read_dir(&newcerts).unwrap().count() == files_before {
            assert!(
                std::time::Instant::now() < deadline,
                "the enrollment never wrote its file"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Command::new(common::bin())
            .arg("--config")
            .arg(&ca_conf)
            .args(["revoke", "--serial", &serial, "--reason", "keyCompromise"])
            .env_remove("GATEWAY_INTERFACE")
            .output()
            .unwrap()
    });
    // fsync #3: the new certificate's file, written outside the lock; held 5 s.
    let (reply, log) = cgi_under_strace(&ca, &["-e", "inject=fsync:delay_enter=5000000:when=3"], &req);
    let revoked = admin_thread.join().unwrap();
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(reply.status, 403, "{reply:?}\n{log}");
    assert!(!reply.is_cert());
    assert!(log.contains("revoked or expired while a renewal signed"), "{log}");
    assert_eq!(ca.index().len(), before, "nothing committed");
    let line = ca.index().into_iter().find(|l| l.serial == old.serial).unwrap();
    assert!(
        line.revoked.ends_with(",keyCompromise"),
        "the admin's revocation stands: {line:?}"
    );
    ca.assert_consistent(false);
}

/// Item 6: RSA keys with e = 3, e = 1 or e ≥ 2^256 are refused, by the fast DER reader
/// (sha256) and by OpenSSL's decoder (sha224, which the fast path leaves to it).
#[test]
fn rsa_exponents_below_65537_or_huge_are_refused() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let key = |name: &str, e: &str| {
        let path = ca.scratch(&format!("{name}.key"));
        common::openssl([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            &format!("rsa_keygen_pubexp:{e}"),
            "-out",
            path.to_str().unwrap(),
        ]);
        openssl::pkey::PKey::private_key_from_pem(&fs::read(path).unwrap()).unwrap()
    };
    // e = 1: no generator makes it; the "private" exponent 1 signs (s = m).
    let e1 = {
        let base =
            openssl::rsa::Rsa::private_key_from_pem(&fs::read(fixture("rsa2048.key")).unwrap()).unwrap();
        let one = || openssl::bn::BigNum::from_u32(1).unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let mut qinv = openssl::bn::BigNum::new().unwrap();
        qinv.mod_inverse(base.q().unwrap(), base.p().unwrap(), &mut ctx)
            .unwrap();
        let rsa = openssl::rsa::Rsa::from_private_components(
            base.n().to_owned().unwrap(),
            one(),
            one(),
            base.p().unwrap().to_owned().unwrap(),
            base.q().unwrap().to_owned().unwrap(),
            one(),
            one(),
            qinv,
        )
        .unwrap();
        openssl::pkey::PKey::from_rsa(rsa).unwrap()
    };
    let huge = "115792089237316195423570985008687907853269984665640564039457584007913129639937";
    let csr = |k: &openssl::pkey::PKey<openssl::pkey::Private>, md: openssl::hash::MessageDigest| {
        let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
        b.set_pubkey(k).unwrap();
        b.sign(k, md).unwrap();
        String::from_utf8(b.build().to_pem().unwrap()).unwrap()
    };
    let md = openssl::hash::MessageDigest::sha256;
    for (case, k) in [
        ("e = 3", key("e3", "3")),
        ("e = 1", e1),
        ("e = 2^256 + 1", key("ehuge", huge)),
    ] {
        for (path, digest) in [
            ("fast path", md()),
            ("OpenSSL decoder", openssl::hash::MessageDigest::sha224()),
        ] {
            let req = HttpRequest::form(&[("username", "rsauser"), ("csr", &csr(&k, digest))]);
            let reply = refused(&t, &format!("{case}, {path}"), &req, 400, &[]);
            assert!(reply.text().contains("is not accepted"), "{case}: {reply:?}");
        }
    }
    // The control: e = 65537 through both.
    let good = key("e65537", "65537");
    for digest in [md(), openssl::hash::MessageDigest::sha224()] {
        let reply = t.send(&HttpRequest::form(&[
            ("username", &common::unique_name("rsa")),
            ("csr", &csr(&good, digest)),
        ]));
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

/// Item 6: with `allow_non_ascii = yes`, one name has one owner whatever its spelling:
/// NFC and NFD, Unicode case (full folding: ß and SS), and UTS #39 look-alikes in
/// another script are the same name; mixed-script names are refused; the default rule
/// admits letters of any script and `\p{L}` works in a custom rule.
#[test]
fn unicode_spellings_and_look_alikes_are_one_name() {
    let ca = Ca::init();
    ca.append_getacert_settings("allow_non_ascii = yes\n");
    let t = Target::new(&ca, Mode::Cgi);
    enroll_ok(&t, "zoë", None, &[]);
    enroll_ok(&t, "straße", None, &[]);
    enroll_ok(&t, "cope", None, &[]);
    enroll_ok(&t, "σοφία", None, &[]);
    for (case, name) in [
        ("NFD of zoë", "zoe\u{308}"),
        ("upper-case ZOË", "ZOË"),
        ("STRASSE for straße", "STRASSE"),
        ("all-Cyrillic look-alike of cope", "\u{441}\u{43E}\u{440}\u{435}"),
        ("Greek upper case", "ΣΟΦΊΑ"),
    ] {
        refused(&t, case, &enroll(name, &[]), 409, &[]);
    }
    let reply = refused(
        &t,
        "a Cyrillic а in a Latin name",
        &enroll("\u{430}lice", &[]),
        400,
        &[],
    );
    assert!(reply.text().contains("one script"), "{reply:?}");
    // NFD input is stored as NFC.
    let reply = t.send(&enroll("jose\u{301}", &[]));
    let cert = ca.check_cert(&reply.cert_der());
    assert_eq!(common::common_name(&cert), "josé");
    // A custom rule with \p{L} (ca.conf is read by NCONF: `\\` for `\`, `\$` for `$`).
    let ca2 = Ca::init();
    ca2.append_getacert_settings("allow_non_ascii = yes\nusername_rule = ^\\\\p{L}+\\$\n");
    let t2 = Target::new(&ca2, Mode::Cgi);
    enroll_ok(&t2, "Ørjan", None, &[]);
    refused(&t2, "a digit under ^\\p{L}+$", &enroll("user1", &[]), 400, &[]);
}

/// Item 6: a newline in REMOTE_ADDR cannot start a log line of its own.
fn remote_addr_cannot_forge_a_log_line(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let forged = "192.0.2.1\ngetacert: info: issued serial=DEAD user=admin";
    let (reply, log) = t.send_logged(&enroll("logtest", &[]).with_param("REMOTE_ADDR", forged));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(log.contains("remote=\"192.0.2.1\\ngetacert"), "escaped: {log}");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("getacert: info: issued serial=DEAD")),
        "{log}"
    );
}

#[test]
fn remote_addr_cannot_forge_a_log_line_cgi() {
    remote_addr_cannot_forge_a_log_line(Mode::Cgi);
}

#[test]
fn remote_addr_cannot_forge_a_log_line_fastcgi() {
    remote_addr_cannot_forge_a_log_line(Mode::Fcgi);
}

/// Issue 9: the admin commands take a name as enrollment does (`Username::parse` with
/// the site's rule). A recovery code for a name enrollment refuses could never be used,
/// and a name that is not one is said to be so, not "never issued" or "nothing matched";
/// nothing in the CA directory changes.
#[test]
fn admin_commands_refuse_a_name_that_is_not_a_username() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    enroll_ok(&t, "alice", None, &[]);
    let index = ca.index_text();
    let codes = std::fs::read(ca.path("getacert.codes")).ok();
    for args in [
        &["recovery-code", "al ice"][..],
        &["recovery-code", "a/CN=admin", "--revoke-all"],
        &["release", "alice,bob"],
        &["revoke", "--user", "a=b"],
    ] {
        let out = admin(&ca, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {out:?}");
        assert!(stderr.contains("is not a username here"), "{args:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("Recovery code"),
            "{args:?}: {out:?}"
        );
        assert_eq!(ca.index_text(), index, "{args:?}");
        assert_eq!(std::fs::read(ca.path("getacert.codes")).ok(), codes, "{args:?}");
    }
    // A good name still works, in any case.
    admin_ok(&ca, &["recovery-code", "ALICE"]);
}

// ---------------------------------------------------------------------------------------
// Issue 13: devices with names, times, renaming, and renewals that lock nobody out

const FIREFOX_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 \
                             (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

fn devices_file(ca: &Ca) -> String {
    fs::read_to_string(ca.path("getacert.devices")).unwrap_or_default()
}

/// Today's date as the page prints it (YYYY-MM-DD, UTC), by `date -u`.
fn today() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%d"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A device gets its name from the User-Agent it enrolled with, the day it was added,
/// and "last signed in" once a signed-in page sees it; another device stays "not signed
/// in yet". The file is getacert's own: `openssl ca` still reads the database.
fn devices_are_named_from_the_user_agent_with_times(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let laptop = enroll_ok(&t, "alice", None, &[]);
    // The laptop's enrollment went out without a User-Agent: "Unknown device".
    let code = add_device_code(&t, &laptop);
    let phone_req = enroll("alice", &[("code", &code)]).with_param("HTTP_USER_AGENT", SAFARI_IPHONE);
    let reply = t.send(&phone_req);
    assert_eq!(reply.status, 200, "{reply:?}");
    let phone = Device::issued(&ca, &reply);
    let code = add_device_code(&t, &laptop);
    let reply = t.send(&enroll("alice", &[("code", &code)]).with_param("HTTP_USER_AGENT", FIREFOX_WINDOWS));
    let firefox = Device::issued(&ca, &reply);

    let page = t.send(&phone.sign_in(HttpRequest::get()));
    let names = device_names(&page);
    let by_serial = |s: &str| names.iter().find(|(serial, _, _)| serial == s).unwrap().clone();
    let today = today();
    let (_, name, meta) = by_serial(&phone.serial);
    assert_eq!(name, "Safari on iPhone");
    assert!(
        meta.contains(&format!("added {today} · last signed in {today} ")),
        "{meta}"
    );
    let (_, name, meta) = by_serial(&firefox.serial);
    assert_eq!(name, "Firefox on Windows");
    assert!(
        meta.contains(&format!("added {today} · not signed in yet")),
        "{meta}"
    );
    let (_, name, meta) = by_serial(&laptop.serial);
    assert_eq!(name, "Unknown device");
    assert!(meta.contains("last signed in"), "{meta}");
    assert!(page.text().contains(&format!("<li data-serial=\"{}\"><div><strong class=\"device-name\">Safari on iPhone</strong> <span class=\"tag\">this device</span>", phone.serial)));
    // The revoke step names the device it revokes.
    assert!(page.text().contains(&format!(
        "<p>The device <strong>Firefox on Windows</strong> with certificate {} (expires ",
        firefox.serial
    )));
    assert!(page.text().contains(">Revoke Firefox on Windows</button>"));
    let file = devices_file(&ca);
    assert!(
        file.contains(&format!("{}\tadded\t", phone.serial)) && file.contains("\tSafari on iPhone\n"),
        "{file}"
    );
    // openssl ca does not mind the file beside index.txt.
    assert!(ca.openssl_ca(&["-updatedb"]).is_empty() || ca.status(&phone.serial) == "Valid (V)");
    assert_eq!(ca.status(&phone.serial), "Valid (V)");
}

#[test]
fn devices_are_named_from_the_user_agent_with_times_cgi() {
    devices_are_named_from_the_user_agent_with_times(Mode::Cgi);
}

#[test]
fn devices_are_named_from_the_user_agent_with_times_fastcgi() {
    devices_are_named_from_the_user_agent_with_times(Mode::Fcgi);
}

/// "Last seen" costs no fsync and at most one line per device every few minutes: ten
/// signed-in page views append one `seen` line, and a page view under strace makes no
/// fsync/fdatasync at all.
#[test]
fn sightings_are_coalesced_and_never_fsynced() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    for _ in 0..10 {
        assert!(signed_in_as(&t.send(&alice.sign_in(HttpRequest::get()))).is_some());
    }
    let seen = devices_file(&ca)
        .matches(&format!("{}\tseen\t", alice.serial))
        .count();
    assert_eq!(seen, 1, "{}", devices_file(&ca));
    // A fresh device's first page view writes its sighting: still no fsync.
    let bob = enroll_ok(&t, "bob", None, &[]);
    let trace = ca.scratch("strace.out");
    let (reply, _) = cgi_under_strace(
        &ca,
        &[
            "-e",
            "trace=fsync,fdatasync,sync_file_range",
            "-o",
            trace.to_str().unwrap(),
        ],
        &bob.sign_in(HttpRequest::get()),
    );
    assert_eq!(signed_in_as(&reply).as_deref(), Some("bob"));
    assert!(devices_file(&ca).contains(&format!("{}\tseen\t", bob.serial)));
    let calls = fs::read_to_string(&trace).unwrap();
    assert!(
        !calls
            .lines()
            .any(|l| l.contains("fsync(") || l.contains("fdatasync(")),
        "a page view fsynced:\n{calls}"
    );
}

/// Losing getacert.devices (deleted, garbage, or a directory where it should be) breaks
/// neither sign-in nor enrollment: the page shows the serial instead of a name.
#[test]
fn losing_the_devices_file_breaks_neither_sign_in_nor_enrollment() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", Some(&enroll_ok(&t, "alice", None, &[])), &[]);
    let path = ca.path("getacert.devices");
    for (case, damage) in [
        ("deleted", (|p: &Path| fs::remove_file(p).unwrap()) as fn(&Path)),
        ("garbage", |p: &Path| {
            fs::write(p, b"\x00\xff garbage\tadded\tnot-a-time\n\tname\n").unwrap()
        }),
        ("a directory", |p: &Path| {
            let _ = fs::remove_file(p);
            fs::create_dir(p).unwrap()
        }),
    ] {
        damage(&path);
        let page = t.send(&alice.sign_in(HttpRequest::get()));
        assert_eq!(signed_in_as(&page).as_deref(), Some("alice"), "{case}: {page:?}");
        let names = device_names(&page);
        assert!(names.len() >= 2, "{case}: {names:?}");
        assert!(
            names
                .iter()
                .any(|(s, n, _)| *s == alice.serial && *n == format!("Certificate {}", alice.serial)),
            "{case}: {names:?}"
        );
        let user = format!("new{}", case.replace(' ', ""));
        enroll_ok(&t, &user, None, &[]);
        enroll_ok(&t, "alice", Some(&alice), &[]);
        if path.is_dir() {
            fs::remove_dir(&path).unwrap();
        }
    }
}

/// Renaming: the owner renames a live device of theirs; the name is escaped on the page
/// and kept across processes. Everything else is refused and writes nothing (neither
/// the database nor getacert.devices): another account's device, a revoked one of
/// their own, a bad name (empty, a control or invisible character, 10 kB), a cross-site
/// Origin.
fn rename_a_device(mode: Mode) {
    let ca = Ca::init();
    let t = Target::new(&ca, mode);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let phone = enroll_ok(&t, "alice", Some(&alice), &[]);
    let gone = enroll_ok(&t, "alice", Some(&alice), &[]);
    let bob = enroll_ok(&t, "bob", None, &[]);
    let page = t.send(&alice.sign_in(HttpRequest::get()));
    let token = page.token();
    let revoke = t.send(&alice.sign_in(account(&token, "revoke", &[("serial", &gone.serial)])));
    assert_eq!(revoke.status, 200, "{revoke:?}");
    let host = |r: HttpRequest| r.with_param("HTTP_HOST", "example.org");
    let rename = |serial: &str, name: &str| {
        host(alice.sign_in(account(&token, "rename", &[("serial", serial), ("name", name)])))
    };
    let long = "x".repeat(10_000);
    let cases: Vec<(&str, HttpRequest, u16)> = vec![
        ("bob's device", rename(&bob.serial, "mine"), 403),
        ("a revoked device of alice", rename(&gone.serial, "back"), 403),
        ("a serial never issued", rename("7FFF", "x"), 403),
        (
            "no serial",
            host(alice.sign_in(account(&token, "rename", &[("name", "x")]))),
            403,
        ),
        ("an empty name", rename(&phone.serial, "  "), 400),
        (
            "no name",
            host(alice.sign_in(account(&token, "rename", &[("serial", &phone.serial)]))),
            400,
        ),
        ("a 10 kB name", rename(&phone.serial, &long), 400),
        ("a newline", rename(&phone.serial, "a\nb\tseen\t1"), 400),
        ("a NUL", rename(&phone.serial, "a\u{0}b"), 400),
        (
            "a right-to-left override",
            rename(&phone.serial, "txt\u{202E}exe.pdf"),
            400,
        ),
        (
            "a cross-site Origin",
            rename(&phone.serial, "x").with_param("HTTP_ORIGIN", "https://evil.example"),
            403,
        ),
        (
            "bob's certificate renames alice's device",
            host(bob.sign_in(account(
                &token,
                "rename",
                &[("serial", &phone.serial), ("name", "x")],
            ))),
            400,
        ),
    ];
    // Bob's first page view is his sighting; the refusals below then write nothing.
    t.send(&bob.sign_in(HttpRequest::get()));
    for (case, req, status) in cases {
        let before = devices_file(&ca);
        let reply = refused(&t, &format!("{mode:?} rename: {case}"), &req, status, &[]);
        assert_eq!(devices_file(&ca), before, "{case}: getacert.devices changed");
        if status == 400 && !case.starts_with("bob") {
            assert_eq!(reply.header("X-Getacert-Field"), Some("name"), "{case}");
        }
    }
    let long_reply = t.send(&rename(&phone.serial, &long));
    assert!(
        long_reply.text().contains("at most 60 characters"),
        "{long_reply:?}"
    );

    // The control: alice renames her phone; HTML in the name stays text.
    let reply = t.send(&rename(
        &phone.serial,
        " <img src=x onerror=alert(1)> Zoë's \"phone\" ",
    ));
    assert_eq!(reply.status, 200, "{reply:?}");
    let shown = "&lt;img src=x onerror=alert(1)&gt; Zoë&#39;s &quot;phone&quot;";
    assert!(!reply.text().contains("<img src=x"), "{}", reply.text());
    let page = t.send(&phone.sign_in(HttpRequest::get()));
    let names = device_names(&page);
    assert!(
        names.iter().any(|(s, n, _)| *s == phone.serial && n == shown),
        "{names:?}"
    );
    assert!(!page.text().contains("<img src=x"));
    // Renaming this very device works too.
    let reply = t.send(&rename(&alice.serial, "Laptop"));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        device_names(&reply)
            .iter()
            .any(|(s, n, _)| *s == alice.serial && n == "Laptop")
    );
    assert_eq!(ca.status(&phone.serial), "Valid (V)");
}

#[test]
fn rename_a_device_cgi() {
    rename_a_device(Mode::Cgi);
}

#[test]
fn rename_a_device_fastcgi() {
    rename_a_device(Mode::Fcgi);
}

/// The banner asks to renew when the presented certificate has fewer than `renew_days`
/// days left (init issues for 365 days): none at the default 30, one at 400.
#[test]
fn renew_banner_when_fewer_than_renew_days_are_left() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Cgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let page = t.send(&alice.sign_in(HttpRequest::get()));
    assert!(!page.text().contains("id=\"renew-banner\""), "{}", page.text());
    ca.append_getacert_settings("renew_days = 400\n");
    let page = t.send(&alice.sign_in(HttpRequest::get()));
    let text = page.text();
    assert!(
        text.contains("id=\"renew-banner\">This device&#39;s certificate expires in 36")
            || text.contains("id=\"renew-banner\">This device's certificate expires in 36"),
        "{text}"
    );
    assert!(
        text.contains("href=\"/getacert?enroll=renew\">Renew it now</a>"),
        "{text}"
    );
}

/// OCSP lookups (what nginx makes for each handshake) mark a device "checked by the web
/// server" in the daemon: kept in memory, written at most once a minute from the OCSP
/// path or at the next page view, one line per device however many lookups. A lookup
/// for a serial never issued records nothing.
#[test]
fn ocsp_lookups_mark_a_device_seen_by_the_web_server_fastcgi() {
    let ca = Ca::init();
    let t = Target::new(&ca, Mode::Fcgi);
    let alice = enroll_ok(&t, "alice", None, &[]);
    let phone = enroll_ok(&t, "alice", Some(&alice), &[]);
    let ask = ocsp_request_for(&ca, &phone);
    for _ in 0..20 {
        let reply = t.send(&ask);
        assert_eq!(reply.header("Content-Type"), Some("application/ocsp-response"));
    }
    let unknown = ca.scratch("unknown.ocsp-req");
    common::openssl([
        "ocsp",
        "-issuer",
        ca.cert.to_str().unwrap(),
        "-serial",
        "0x7FFF0001",
        "-no_nonce",
        "-reqout",
        unknown.to_str().unwrap(),
    ]);
    let mut req = ask.clone();
    req.body = fs::read(&unknown).unwrap();
    t.send(&req);
    // The first lookup wrote its sighting from the OCSP path (nothing had been written
    // for a minute); the other 19 only touched memory.
    let file = devices_file(&ca);
    assert_eq!(
        file.matches(&format!("{}\tocsp\t", phone.serial)).count(),
        1,
        "{file}"
    );
    assert!(!file.contains("7FFF0001"), "{file}");
    let page = t.send(&alice.sign_in(HttpRequest::get()));
    let names = device_names(&page);
    let (_, _, meta) = names.iter().find(|(s, _, _)| *s == phone.serial).unwrap();
    assert!(
        meta.contains("not signed in yet · web server checked it "),
        "{meta}"
    );
    let file = devices_file(&ca);
    assert_eq!(
        file.matches(&format!("{}\tocsp\t", phone.serial)).count(),
        1,
        "{file}"
    );
}
