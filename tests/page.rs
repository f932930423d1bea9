//! What the enrollment page tells a person, through the real binary (CGI): which field a
//! refusal is about (`X-Getacert-Field`, read by assets/enroll.js to mark the field and
//! move the focus), `site_name` in the header and title, and the page a signed-in visitor
//! gets at `?enroll=1` / `?enroll=renew`.

mod common;

use common::{Ca, Front, HttpRequest, Reply, fixture_text};
use openssl::x509::X509;

fn front(ca: &Ca) -> Front {
    Front::Cgi(ca.conf.clone())
}

/// Enrolls `username` with the fixture CSR; returns the certificate.
fn enroll(ca: &Ca, username: &str) -> X509 {
    let reply = front(ca).enroll_csr(username, &fixture_text("ec-p256.csr"));
    assert_eq!(reply.status, 200, "enrolling {username}: {reply:?}");
    ca.check_cert(&reply.cert_der())
}

/// `req` as Apache (mod_ssl) passes it after verifying `cert`.
fn signed_in(req: HttpRequest, cert: &X509) -> HttpRequest {
    let pem = String::from_utf8(cert.to_pem().unwrap()).unwrap();
    req.with_param("SSL_CLIENT_VERIFY", "SUCCESS")
        .with_param("SSL_CLIENT_M_SERIAL", &common::serial_of(cert))
        .with_param("SSL_CLIENT_CERT", &pem)
}

fn title(reply: &Reply) -> String {
    let text = reply.text();
    let start = text.find("<title>").expect("a title") + "<title>".len();
    text[start..].split("</title>").next().unwrap().to_string()
}

#[test]
fn refusals_name_their_field_in_x_getacert_field() {
    let ca = Ca::init();
    enroll(&ca, "alice");
    let csr = fixture_text("ec-p256.csr");
    let before = ca.snapshot();
    struct Case<'a> {
        what: &'a str,
        form: Vec<(&'a str, &'a str)>,
        status: u16,
        field: Option<&'a str>,
    }
    let case = |what, form, status, field| Case {
        what,
        form,
        status,
        field,
    };
    let damaged = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    let cases = [
        case(
            "a username with '/'",
            vec![("username", "bad/name"), ("csr", &csr)],
            400,
            Some("username"),
        ),
        case("no username", vec![("csr", &csr)], 400, Some("username")),
        case(
            "a taken username",
            vec![("username", "alice"), ("csr", &csr)],
            409,
            Some("username"),
        ),
        case(
            "a bad email",
            vec![("username", "bob"), ("email", "not an email"), ("csr", &csr)],
            400,
            Some("email"),
        ),
        case(
            "a wrong add-device code",
            vec![("username", "alice"), ("code", "WRONG-CODE-1"), ("csr", &csr)],
            403,
            Some("code"),
        ),
        case(
            "no key request: about no field",
            vec![("username", "carol")],
            400,
            None,
        ),
        case(
            "a damaged CSR: about no field",
            vec![("username", "carol"), ("csr", damaged)],
            400,
            None,
        ),
    ];
    for Case {
        what,
        form,
        status,
        field,
    } in &cases
    {
        let reply = front(&ca).send(&HttpRequest::form(form));
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        assert_eq!(reply.header("X-Getacert-Field"), *field, "{what}: {reply:?}");
        assert!(!reply.is_cert(), "{what}");
        // the message says what to do, as text
        assert!(
            reply.header("Content-Type").unwrap().starts_with("text/plain"),
            "{what}"
        );
        assert!(reply.text().trim().ends_with('.'), "{what}: {}", reply.text());
    }
    assert_eq!(ca.snapshot(), before, "refusals change nothing");
}

#[test]
fn site_name_sets_the_page_header_and_title() {
    let ca = Ca::init();
    // without it: the CA's common name (init --cn X)
    let page = front(&ca).send(&HttpRequest::get());
    assert_eq!(title(&page), "Get your login certificate · X");
    ca.append_getacert_settings("site_name = Example <Login> & Co\n");
    let page = front(&ca).send(&HttpRequest::get());
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(
        title(&page),
        "Get your login certificate · Example &lt;Login&gt; &amp; Co"
    );
    assert!(
        page.text()
            .contains("<span class=\"ca-name\">Example &lt;Login&gt; &amp; Co</span>")
    );
    // and on the account page
    let alice = enroll(&ca, "alice");
    let acct = front(&ca).send(&signed_in(HttpRequest::get(), &alice));
    assert_eq!(title(&acct), "Your devices · Example &lt;Login&gt; &amp; Co");
}

#[test]
fn site_name_that_is_too_long_is_a_config_error_naming_the_key() {
    let ca = Ca::init();
    ca.append_getacert_settings(&format!("site_name = {}\n", "x".repeat(101)));
    let out = std::process::Command::new(common::bin())
        .args(["check", "--config"])
        .arg(&ca.conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        err.contains("site_name") && err.contains("100 characters"),
        "{err}"
    );
}

#[test]
fn signed_in_enroll_page_says_whose_device_it_adds_or_renews() {
    let ca = Ca::init();
    let alice = enroll(&ca, "alice");
    // anonymous: no notice, empty username
    let anon = front(&ca).send(&HttpRequest::get());
    assert!(!anon.text().contains("id=\"signed-in\""));
    assert!(anon.text().contains("value=\"\""), "the username field is empty");
    for (query, words) in [
        (
            "enroll=1",
            "<strong>Adding a device</strong> for <strong>alice</strong>.",
        ),
        (
            "enroll=renew",
            "<strong>Renewing</strong> the certificate of <strong>alice</strong>.",
        ),
    ] {
        let req = signed_in(HttpRequest::get(), &alice).with_param("QUERY_STRING", query);
        let page = front(&ca).send(&req);
        assert_eq!(page.status, 200, "{page:?}");
        let text = page.text();
        assert!(
            text.contains("Get your login certificate"),
            "{query}: the enrollment page"
        );
        assert!(text.contains(words), "{query}: {text}");
        // Only the renewal page makes enroll.js post renew=yes.
        assert_eq!(
            text.contains("data-renew=\"yes\""),
            query == "enroll=renew",
            "{query}"
        );
        assert!(
            text.contains(
                "id=\"username\" name=\"username\" type=\"text\" required maxlength=\"64\" value=\"alice\""
            ),
            "{query}: prefilled"
        );
        assert!(
            text.contains("<a href=\"/getacert\">Back to your devices</a>"),
            "{query}"
        );
    }
    // the account page links renewal to ?enroll=renew
    let acct = front(&ca).send(&signed_in(HttpRequest::get(), &alice));
    assert!(acct.text().contains("?enroll=renew\">make a new one</a>"));
}

/// Signs in as `cert`, asks for an add-device code with the account page's token, with
/// these Host / port parameters; returns the page that shows the code.
fn code_page(ca: &Ca, cert: &X509, host: Option<&str>, port: &str) -> Reply {
    let acct = front(ca).send(&signed_in(HttpRequest::get(), cert));
    let mut req = signed_in(
        HttpRequest::form(&[("action", "add-device-code"), ("token", &acct.token())]),
        cert,
    )
    .with_param("SERVER_PORT", port);
    if let Some(h) = host {
        req = req.with_param("HTTP_HOST", h);
    }
    let reply = front(ca).send(&req);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply
}

fn add_device_link(reply: &Reply) -> Option<String> {
    let text = reply.text();
    let marker = "id=\"add-device-link\" href=\"";
    let start = text.find(marker)? + marker.len();
    Some(text[start..].split('"').next().unwrap().replace("&amp;", "&"))
}

fn shown_code(reply: &Reply) -> String {
    let text = reply.text();
    let marker = "id=\"add-device-code\">";
    let start = text.find(marker).expect("a code") + marker.len();
    text[start..].split('<').next().unwrap().to_string()
}

#[test]
fn add_device_code_comes_with_a_qr_code_of_a_link_carrying_the_code_in_the_fragment() {
    let ca = Ca::init();
    let alice = enroll(&ca, "alice");
    for (host, port, origin) in [
        ("example.org", "443", "https://example.org"),
        ("example.org", "8443", "https://example.org:8443"),
        ("example.org:8443", "8443", "https://example.org:8443"),
        ("[2001:db8::1]", "8443", "https://[2001:db8::1]:8443"),
    ] {
        let reply = code_page(&ca, &alice, Some(host), port);
        let code = shown_code(&reply);
        let link = add_device_link(&reply).unwrap_or_else(|| panic!("{host}: no link: {reply:?}"));
        assert_eq!(
            link,
            format!("{origin}/getacert?enroll=1#username=alice&code={code}"),
            "{host}"
        );
        assert!(
            reply
                .text()
                .contains("id=\"add-device-qr\" src=\"data:image/svg+xml;base64,"),
            "{host}: the QR image"
        );
    }
    // a Host that is not a host name: no link and no QR code (the code itself is still shown)
    for host in [
        Some("evil.example\"><script>alert(1)</script>"),
        Some("a b"),
        Some(""),
        None,
    ] {
        let reply = code_page(&ca, &alice, host, "443");
        assert!(!shown_code(&reply).is_empty());
        assert_eq!(add_device_link(&reply), None, "{host:?}");
        assert!(!reply.text().contains("add-device-qr"), "{host:?}");
        assert!(!reply.text().contains("<script>"), "{host:?}");
    }
}

#[test]
fn one_device_gets_a_nudge_and_revoking_asks_first_naming_the_device() {
    let ca = Ca::init();
    let alice = enroll(&ca, "alice");
    let page = front(&ca).send(&signed_in(HttpRequest::get(), &alice));
    assert!(
        page.text()
            .contains("Add a second device so that losing this one does not lock you out."),
        "{page:?}"
    );
    // a second device (enrolled while signed in as alice, from Chrome on Android)
    let reply = front(&ca).send(&signed_in(
        HttpRequest::form(&[("username", "alice"), ("csr", &fixture_text("ec-p256.csr"))]).with_param(
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) \
             Chrome/126.0.0.0 Mobile Safari/537.36",
        ),
        &alice,
    ));
    assert_eq!(reply.status, 200, "{reply:?}");
    let second = common::serial_of(&ca.check_cert(&reply.cert_der()));
    let page = front(&ca).send(&signed_in(HttpRequest::get(), &alice));
    let text = page.text();
    assert!(!text.contains("id=\"one-device\""), "two devices: no nudge");
    // the revoke button sits behind a <details> and names the device it revokes
    assert!(
        text.contains("<details class=\"revoke\"><summary class=\"button\">Revoke…</summary>"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "The device <strong>Chrome on Android</strong> with certificate {second} (expires "
    )));
    assert!(text.contains(">Revoke Chrome on Android</button>"));
    // this device cannot be revoked from here
    assert_eq!(text.matches("<details class=\"revoke\">").count(), 1);
}

#[test]
fn reloading_the_code_page_leaves_one_live_add_device_code() {
    let ca = Ca::init();
    let alice = enroll(&ca, "alice");
    let first = shown_code(&code_page(&ca, &alice, Some("example.org"), "443"));
    // the browser re-posts the form on reload: a second code
    let second = shown_code(&code_page(&ca, &alice, Some("example.org"), "443"));
    assert_ne!(first, second);
    let codes = std::fs::read_to_string(ca.path("getacert.codes")).unwrap();
    assert_eq!(
        codes.lines().filter(|l| l.starts_with("alice\t")).count(),
        1,
        "{codes}"
    );
    let csr = fixture_text("ec-p256.csr");
    let with_code = |code: &str| {
        front(&ca).send(&HttpRequest::form(&[
            ("username", "alice"),
            ("code", code),
            ("csr", &csr),
        ]))
    };
    let old = with_code(&first);
    assert_eq!(old.status, 403, "the first code is void: {old:?}");
    assert_eq!(old.header("X-Getacert-Field"), Some("code"));
    assert_eq!(with_code(&second).status, 200, "the last code works");
}
