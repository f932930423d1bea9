//! The HTML: the enrollment page, the account page, the short error page, and the
//! assets, all embedded in the binary so a deployment needs no document root, no CDN and
//! no inline script (the pages are served with a strict Content-Security-Policy).
//!
//! Pure: every page is rendered from a view struct defined here, filled in by
//! [`super::get`] and [`super::account`]. This file sees no `App`, no lock, no clock and
//! no request; what it prints is escaped here.

use crate::ca::index::Status;
use crate::web::Response;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../../assets/page.html");

/// `(name, content type, body)` of every asset served at `?asset=NAME`.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "enroll.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/enroll.js"),
    ),
    (
        "pkix.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/pkix.js"),
    ),
    (
        "platform.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/platform.js"),
    ),
    (
        "enroll.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/enroll.css"),
    ),
];

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn secure_headers(resp: Response) -> Response {
    resp.with_header("Content-Security-Policy", CSP)
        .with_header("X-Content-Type-Options", "nosniff")
        // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null`
        // with the page's own form posts (Firefox does), and every POST with a null
        // Origin is refused as cross-site. Other sites still get no referrer.
        .with_header("Referrer-Policy", "same-origin")
        .with_header("X-Frame-Options", "DENY")
}

/// What the enrollment page says to a visitor who is signed in (`?enroll=1` from the
/// account page, `?enroll=renew` to renew): whose account the new certificate is for.
/// Renewing (the page then posts `renew=yes`, marked by `data-renew`) never revokes the
/// current certificate at once: it keeps working until the new one signs in, so an
/// import that fails locks nobody out.
fn signed_in_notice(action: &str, username: &str, renew: bool) -> String {
    let user = escape(username);
    let what = if renew {
        format!(
            "<strong>Renewing</strong> the certificate of <strong>{user}</strong>. \
             Your current certificate keeps working until the new one signs in; then it is replaced."
        )
    } else {
        format!("<strong>Adding a device</strong> for <strong>{user}</strong>.")
    };
    format!(
        "<p id=\"signed-in\" class=\"notice\" role=\"status\"{}>{what} \
         <a href=\"{}\">Back to your devices</a></p>",
        if renew { " data-renew=\"yes\"" } else { "" },
        escape(action)
    )
}

/// A short HTML page for a refused form post from a browser without JavaScript.
pub(crate) fn error_page(status: u16, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Enrollment failed</title></head><body><h1>Enrollment failed ({status})</h1>\
         <p role=\"alert\">{}</p><p><a href=\"\">Back to the enrollment page</a></p></body></html>\n",
        escape(message)
    )
}

fn date(unix: i64) -> String {
    let t = crate::ca::index::asn1_time(unix);
    let d = t.trim_end_matches('Z');
    let (y, rest) = if d.len() == 12 {
        (format!("20{}", &d[0..2]), &d[2..])
    } else {
        (d[0..4].to_string(), &d[4..])
    };
    format!("{y}-{}-{}", &rest[0..2], &rest[2..4])
}

/// An embedded asset (`?asset=NAME`), or 404 for a name that is not one.
pub(crate) fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, body)) => Response::new(200, ctype, body.as_bytes().to_vec())
            .with_header("Cache-Control", "public, max-age=3600")
            .with_header("X-Content-Type-Options", "nosniff"),
        None => Response::new(404, "text/plain; charset=utf-8", b"No such asset.\n".to_vec()),
    }
}

/// What every page shows of the site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site<'a> {
    /// `site_name`, else the CA certificate's common name.
    pub(crate) name: &'a str,
    /// Where "Go to the site" leads (`auth_url`).
    pub(crate) auth_url: &'a str,
    /// The path forms post back to (a path only, already stripped of quotes and `<>`).
    pub(crate) action: &'a str,
}

/// The enrollment page.
#[derive(Debug, Clone)]
pub(crate) struct EnrollView<'a> {
    pub(crate) site: Site<'a>,
    /// The form token, bound to this requester.
    pub(crate) token: &'a str,
    /// The SPKAC challenge.
    pub(crate) challenge: &'a str,
    /// The `Set-Cookie` value when the browser had no cookie yet.
    pub(crate) set_cookie: Option<&'a str>,
    /// Set when a signed-in visitor enrolls another device or renews.
    pub(crate) signed_in: Option<SignedIn<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedIn<'a> {
    pub(crate) username: &'a str,
    /// `?enroll=renew`.
    pub(crate) renew: bool,
}

pub(crate) fn enroll_page(v: &EnrollView<'_>) -> Response {
    let signed_in = v
        .signed_in
        .map(|s| signed_in_notice(v.site.action, s.username, s.renew))
        .unwrap_or_default();
    let username = v.signed_in.map(|s| s.username).unwrap_or("");
    let html = PAGE
        .replace("{{ACTION}}", &escape(v.site.action))
        .replace("{{TOKEN}}", &escape(v.token))
        .replace("{{CHALLENGE}}", &escape(v.challenge))
        .replace("{{AUTH_URL}}", &escape(v.site.auth_url))
        .replace("{{CA_NAME}}", &escape(v.site.name))
        // last: what the visitor's username brings in is never read as a placeholder
        .replace("{{USERNAME}}", &escape(username))
        .replace("{{SIGNED_IN}}", &signed_in);
    let mut resp = Response::new(200, "text/html; charset=utf-8", html.into_bytes())
        .with_header("Cache-Control", "no-store");
    if let Some(c) = v.set_cookie {
        resp = resp.with_header("Set-Cookie", c);
    }
    secure_headers(resp)
}

/// One certificate on the account page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) serial: String,
    /// As of the request's time (a valid certificate past its notAfter is expired).
    pub(crate) status: Status,
    /// notAfter, Unix seconds.
    pub(crate) expires: i64,
    /// The certificate this request presented.
    pub(crate) this: bool,
    /// Its device's name; `None` when getacert.devices does not know it.
    pub(crate) name: Option<String>,
    /// When it was issued, when a signed-in page last saw it, when the web server last
    /// asked for its OCSP status (Unix seconds), when known.
    pub(crate) added: Option<i64>,
    pub(crate) seen: Option<i64>,
    pub(crate) ocsp: Option<i64>,
    /// Its part in a renewal not yet complete.
    pub(crate) renewal: Option<Renewal>,
}

/// A renewal whose new certificate has not signed in yet: which certificate is which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The new certificate, not used yet; it replaces this serial once it signs in.
    New { replaces: String },
    /// The old certificate: it keeps working until the new one (this serial) signs in.
    Replaced { by: String },
}

/// An add-device code, shown this once.
#[derive(Debug, Clone)]
pub(crate) struct CodeView<'a> {
    pub(crate) code: &'a str,
    /// The link that opens the page on the new device with everything filled in, when
    /// the request's host looks like one.
    pub(crate) link: Option<String>,
    /// How long the code works.
    pub(crate) minutes: i64,
}

/// The page a signed-in user sees: who they are, their devices (revoke any other one),
/// and an add-device code when they asked for one.
#[derive(Debug, Clone)]
pub(crate) struct AccountView<'a> {
    pub(crate) site: Site<'a>,
    pub(crate) username: &'a str,
    /// The form token, bound to the certificate presented.
    pub(crate) token: &'a str,
    /// Newest first.
    pub(crate) devices: Vec<Device>,
    pub(crate) notice: Option<&'a str>,
    pub(crate) code: Option<CodeView<'a>>,
    /// Days left on the presented certificate, when fewer than `renew_days`.
    pub(crate) renew_soon: Option<i64>,
}

/// A date and time in UTC to the minute: `2026-12-05 13:40 UTC`.
fn when(unix: i64) -> String {
    let t = crate::ca::index::asn1_time(unix);
    let d = t.trim_end_matches('Z');
    let hm = d.get(d.len() - 6..d.len() - 2).unwrap_or("0000");
    format!("{} {}:{} UTC", date(unix), &hm[0..2], &hm[2..4])
}

/// One device of the account page: its name (else its serial), this device, its status
/// and times, its part in a renewal; for a live device a rename form, and for a live
/// device other than this one a revoke form behind a second step that names it (a
/// `<details>`, no script).
fn device_item(d: &Device, action: &str, token: &str) -> String {
    let live = d.status == Status::Valid;
    let status = match d.status {
        Status::Valid => "valid",
        Status::Revoked => "revoked",
        Status::Expired => "expired",
    };
    let serial = escape(&d.serial);
    let title = match &d.name {
        Some(n) => escape(n),
        None => format!("Certificate {serial}"),
    };
    let mut meta = format!("{status}, expires {} · certificate {serial}", date(d.expires));
    if let Some(t) = d.added {
        meta.push_str(&format!(" · added {}", date(t)));
    }
    meta.push_str(&match d.seen {
        Some(t) => format!(" · last signed in {}", when(t)),
        None => " · not signed in yet".to_string(),
    });
    if let Some(t) = d.ocsp {
        meta.push_str(&format!(" · web server checked it {}", when(t)));
    }
    let renewal = match (&d.renewal, live) {
        (Some(Renewal::New { replaces }), true) => format!(
            "<br><span class=\"renewal\" data-renewal=\"new\">New, not used yet: it replaces certificate {} once it signs in.</span>",
            escape(replaces)
        ),
        (Some(Renewal::Replaced { by }), true) => format!(
            "<br><span class=\"renewal\" data-renewal=\"replaced\">Replaced once the new one (certificate {}) signs in; until then it keeps working.</span>",
            escape(by)
        ),
        _ => String::new(),
    };
    let mut out = format!(
        "<li data-serial=\"{serial}\"><div><strong class=\"device-name\">{title}</strong> {}<br><span class=\"meta\">{meta}</span>{renewal}</div>",
        if d.this {
            "<span class=\"tag\">this device</span>"
        } else {
            ""
        },
    );
    if live {
        let current = d.name.as_deref().map(escape).unwrap_or_default();
        out.push_str(&format!(
            "<details class=\"rename\"><summary class=\"button\">Rename…</summary>\
             <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <input type=\"hidden\" name=\"action\" value=\"rename\"><input type=\"hidden\" name=\"serial\" value=\"{serial}\">\
             <p><label>New name for certificate {serial} <input name=\"name\" value=\"{current}\" required maxlength=\"{max}\"></label></p>\
             <button class=\"button\" type=\"submit\">Save the name</button></form></details>",
            max = crate::ca::store::devices::NAME_MAX,
        ));
    }
    if live && !d.this {
        let (what, button) = match &d.name {
            Some(n) => (
                format!(
                    "The device <strong>{}</strong> with certificate {serial}",
                    escape(n)
                ),
                format!("Revoke {}", escape(n)),
            ),
            None => (
                format!("The device with certificate <strong>{serial}</strong>"),
                format!("Revoke certificate {serial}"),
            ),
        };
        out.push_str(&format!(
            "<details class=\"revoke\"><summary class=\"button\">Revoke…</summary>\
             <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <input type=\"hidden\" name=\"action\" value=\"revoke\"><input type=\"hidden\" name=\"serial\" value=\"{serial}\">\
             <p>{what} (expires {expires}) will no longer sign in. This cannot be undone.</p>\
             <button class=\"button danger\" type=\"submit\">{button}</button></form></details>",
            expires = date(d.expires)
        ));
    }
    out.push_str("</li>\n");
    out
}

pub(crate) fn account_page(v: &AccountView<'_>) -> Response {
    let action = escape(v.site.action);
    let token = escape(v.token);
    let mut list = String::new();
    for d in &v.devices {
        list.push_str(&device_item(d, &action, &token));
    }
    let notice = v
        .notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let this = v.devices.iter().find(|d| d.this);
    let waiting = this.is_some_and(|d| matches!(d.renewal, Some(Renewal::Replaced { .. })));
    let renew = match (v.renew_soon, this) {
        (_, Some(_)) if waiting => "<p class=\"warn\" id=\"renew-waiting\">A new certificate for this device is \
             waiting: import the file you saved when you renewed, and sign in with it. This one keeps working \
             until then.</p>"
            .to_string(),
        (Some(days), Some(d)) => format!(
            "<p class=\"warn\" id=\"renew-banner\">This device's certificate expires in {days} day{s} ({date}). \
             <a class=\"button primary\" href=\"{action}?enroll=renew\">Renew it now</a> This one keeps working \
             until the new one signs in, so a failed import locks nobody out.</p>",
            s = if days == 1 { "" } else { "s" },
            date = date(d.expires),
        ),
        _ => String::new(),
    };
    let live = v.devices.iter().filter(|d| d.status == Status::Valid).count();
    let nudge = if live <= 1 {
        "<p class=\"warn\" id=\"one-device\">This is your only device. Add a second device so that \
         losing this one does not lock you out.</p>"
    } else {
        ""
    };
    let code = v
        .code
        .as_ref()
        .map(|c| {
            // The link opens the enrollment page on the new device with the username and
            // the code filled in; both ride in the fragment, which no server log sees.
            let qr = c
                .link
                .as_deref()
                .and_then(|link| crate::web::qr::svg_data_uri(link).map(|img| (link, img)))
                .map(|(link, img)| {
                    format!(
                        "<p class=\"qr\"><img id=\"add-device-qr\" src=\"{}\" width=\"240\" height=\"240\" \
                         alt=\"QR code of a link that opens this page on the new device with your username and the code\"></p>\
                         <p class=\"hint\">Or scan this with the new device's camera: it opens this page there with \
                         everything filled in. <a id=\"add-device-link\" href=\"{}\">The link</a> works once, like the code.</p>",
                        escape(&img),
                        escape(link)
                    )
                })
                .unwrap_or_default();
            format!(
                "<section class=\"card\" aria-labelledby=\"code-heading\"><h2 id=\"code-heading\">Your add-device code</h2>\
                 <p class=\"code\" id=\"add-device-code\">{}</p><p>On the new device, open this page, type your username \
                 <strong>{}</strong> and this code. It works once and expires in {} minutes. It is not shown again.</p>{qr}</section>",
                escape(c.code),
                escape(v.username),
                c.minutes
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"same-origin\"><title>Your devices · {ca}</title>\
         <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"{action}?asset=enroll.css\"></head><body>\
         <header class=\"banner\"><div class=\"wrap\"><span class=\"seal\" aria-hidden=\"true\"></span>\
         <span class=\"ca-name\">{ca}</span></div></header><main id=\"main\" class=\"wrap\">\
         <h1>You are signed in as <span id=\"username\">{user}</span></h1>{renew}{notice}{code}\
         <section class=\"card\" aria-labelledby=\"devices-heading\"><h2 id=\"devices-heading\">Your devices</h2>\
         <ul class=\"devices\">{list}</ul></section>\
         <section class=\"card\" aria-labelledby=\"add-heading\"><h2 id=\"add-heading\">Add a device</h2>{nudge}\
         <p>Get a one-time code here, then enroll on the new device with your username and the code. \
         No key is copied between devices.</p><form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\"><input type=\"hidden\" name=\"action\" value=\"add-device-code\">\
         <button class=\"button primary\" type=\"submit\">Get an add-device code</button></form></section>\
         <section class=\"card\" aria-labelledby=\"renew-heading\"><h2 id=\"renew-heading\">Renew this device</h2>\
         <p>Before this certificate expires, <a href=\"{action}?enroll=renew\">make a new one</a> while \
         signed in. This certificate keeps working until the new one signs in; then it is replaced \
         (revoked as superseded) by itself.</p></section>\
         <p><a class=\"button\" href=\"{auth}\">Go to the site</a></p></main></body></html>\n",
        ca = escape(v.site.name),
        user = escape(v.username),
        auth = escape(v.site.auth_url),
    );
    secure_headers(
        Response::new(200, "text/html; charset=utf-8", html.into_bytes())
            .with_header("Cache-Control", "no-store"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2030-01-02 00:00:00 UTC.
    const EXPIRES: i64 = 1_893_542_400;

    fn site() -> Site<'static> {
        Site {
            name: "Example <CA>",
            auth_url: "https://example.org/login?a=1&b=2",
            action: "/getacert.php",
        }
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn body(r: &Response) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    fn device(serial: &str, status: Status, this: bool) -> Device {
        Device {
            serial: serial.into(),
            status,
            expires: EXPIRES,
            this,
            name: None,
            added: None,
            seen: None,
            ocsp: None,
            renewal: None,
        }
    }

    fn account(devices: Vec<Device>, code: Option<CodeView<'static>>) -> AccountView<'static> {
        AccountView {
            site: site(),
            username: "alice",
            token: "TOKEN\"x",
            devices,
            notice: None,
            code,
            renew_soon: None,
        }
    }

    #[test]
    fn escape_covers_html_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn enroll_page_fills_every_placeholder_escaped() {
        let r = enroll_page(&EnrollView {
            site: site(),
            token: "tok<1>",
            challenge: "chal&2",
            set_cookie: Some("getacert=00; Path=/"),
            signed_in: None,
        });
        let html = body(&r);
        assert!(!html.contains("{{"), "a placeholder is left");
        assert!(html.contains("tok&lt;1&gt;") && html.contains("chal&amp;2"));
        assert!(html.contains("Example &lt;CA&gt;") && !html.contains("Example <CA>"));
        assert!(html.contains("https://example.org/login?a=1&amp;b=2"));
        assert!(!html.contains("id=\"signed-in\""));
        assert_eq!(header(&r, "Set-Cookie"), Some("getacert=00; Path=/"));
        assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
        assert!(header(&r, "Content-Security-Policy").is_some_and(|c| c.starts_with("default-src 'none'")));
        assert_eq!(header(&r, "Referrer-Policy"), Some("same-origin"));
        assert_eq!(header(&r, "X-Frame-Options"), Some("DENY"));
    }

    #[test]
    fn enroll_page_signed_in_names_the_account_and_never_reads_it_as_a_placeholder() {
        let page = |renew| {
            body(&enroll_page(&EnrollView {
                site: site(),
                token: "t",
                challenge: "c",
                set_cookie: None,
                signed_in: Some(SignedIn {
                    username: "{{TOKEN}}",
                    renew,
                }),
            }))
        };
        let adding = page(false);
        assert!(adding.contains("<strong>Adding a device</strong> for <strong>{{TOKEN}}</strong>"));
        assert!(
            page(true).contains("<strong>Renewing</strong> the certificate of <strong>{{TOKEN}}</strong>")
        );
    }

    #[test]
    fn account_page_offers_to_revoke_only_the_other_live_devices() {
        let v = account(
            vec![
                device("0B", Status::Valid, false),
                device("0A", Status::Valid, true),
                device("09", Status::Revoked, false),
                device("08", Status::Expired, false),
            ],
            None,
        );
        let html = body(&account_page(&v));
        assert_eq!(
            html.matches("name=\"action\" value=\"revoke\"").count(),
            1,
            "{html}"
        );
        assert!(html.contains("name=\"serial\" value=\"0B\""));
        assert!(html.contains(
            "<strong class=\"device-name\">Certificate 0A</strong> <span class=\"tag\">this device</span>"
        ));
        assert!(html.contains("revoked, expires 2030-01-02") && html.contains("expired, expires 2030-01-02"));
        assert!(html.contains("value=\"TOKEN&quot;x\"") && !html.contains("TOKEN\"x"));
        assert!(!html.contains("id=\"one-device\""), "two live devices: no nudge");
        assert!(!html.contains("id=\"add-device-code\""), "no code was asked for");
    }

    #[test]
    fn account_page_names_devices_escaped_with_times_and_a_revoke_step_naming_them() {
        let mut other = device("0B", Status::Valid, false);
        other.name = Some("<b>Bob's</b> \"phone\"".into());
        other.added = Some(EXPIRES - 86400);
        other.seen = Some(EXPIRES - 3600 + 59);
        other.ocsp = Some(EXPIRES - 60);
        let this = device("0A", Status::Valid, true);
        let html = body(&account_page(&account(vec![other, this], None)));
        let named = "&lt;b&gt;Bob&#39;s&lt;/b&gt; &quot;phone&quot;";
        assert!(!html.contains("<b>Bob"), "{html}");
        assert!(html.contains(&format!("<strong class=\"device-name\">{named}</strong>")));
        assert!(html.contains("added 2030-01-01 · last signed in 2030-01-01 23:00 UTC · web server checked it 2030-01-01 23:59 UTC"));
        assert!(html.contains("Certificate 0A</strong> <span class=\"tag\">this device</span><br><span class=\"meta\">valid, expires 2030-01-02 · certificate 0A · not signed in yet"));
        assert!(html.contains(&format!("<p>The device <strong>{named}</strong> with certificate 0B (expires 2030-01-02) will no longer sign in.")));
        assert!(html.contains(&format!(">Revoke {named}</button>")));
        assert_eq!(
            html.matches("name=\"action\" value=\"rename\"").count(),
            2,
            "both live devices can be renamed"
        );
        assert!(html.contains(&format!(
            "name=\"name\" value=\"{named}\" required maxlength=\"60\""
        )));
    }

    #[test]
    fn account_page_says_which_certificate_is_which_in_a_renewal_and_asks_to_renew() {
        let mut new = device("0B", Status::Valid, false);
        new.renewal = Some(Renewal::New {
            replaces: "0A".into(),
        });
        let mut old = device("0A", Status::Valid, true);
        old.renewal = Some(Renewal::Replaced { by: "0B".into() });
        let mut v = account(vec![new, old], None);
        v.renew_soon = Some(3);
        let html = body(&account_page(&v));
        assert!(html.contains(
            "data-renewal=\"new\">New, not used yet: it replaces certificate 0A once it signs in."
        ));
        assert!(
            html.contains("data-renewal=\"replaced\">Replaced once the new one (certificate 0B) signs in")
        );
        assert!(
            html.contains("id=\"renew-waiting\"") && !html.contains("id=\"renew-banner\""),
            "{html}"
        );

        let mut v = account(vec![device("0A", Status::Valid, true)], None);
        v.renew_soon = Some(1);
        let html = body(&account_page(&v));
        assert!(
            html.contains("id=\"renew-banner\">This device&#39;s certificate expires in 1 day (2030-01-02)")
                || html
                    .contains("id=\"renew-banner\">This device's certificate expires in 1 day (2030-01-02)"),
            "{html}"
        );
        assert!(html.contains("href=\"/getacert.php?enroll=renew\">Renew it now</a>"));
        v.renew_soon = None;
        assert!(!body(&account_page(&v)).contains("renew-banner"));
    }

    #[test]
    fn account_page_with_one_device_nudges_and_shows_a_code_once() {
        let code = CodeView {
            code: "ABCD-EFGH",
            link: Some("https://example.org/getacert.php?enroll=1#username=alice&code=ABCD-EFGH".into()),
            minutes: 15,
        };
        let mut v = account(vec![device("0A", Status::Valid, true)], Some(code));
        v.notice = Some("Revoked <0B>.");
        let r = account_page(&v);
        let html = body(&r);
        assert!(html.contains("id=\"one-device\""));
        assert!(html.contains("<p class=\"code\" id=\"add-device-code\">ABCD-EFGH</p>"));
        assert!(html.contains("expires in 15 minutes"));
        assert!(html.contains("id=\"add-device-qr\" src=\"data:image/svg+xml"));
        assert!(html.contains("enroll=1#username=alice&amp;code=ABCD-EFGH"));
        assert!(html.contains("<p class=\"notice\" role=\"status\">Revoked &lt;0B&gt;.</p>"));
        assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
        assert_eq!(header(&r, "X-Frame-Options"), Some("DENY"));

        let no_link = CodeView {
            code: "ABCD-EFGH",
            link: None,
            minutes: 15,
        };
        let html = body(&account_page(&account(vec![], Some(no_link))));
        assert!(html.contains("id=\"add-device-code\"") && !html.contains("add-device-qr"));
    }

    #[test]
    fn assets_and_unknown_assets() {
        let r = asset("enroll.js");
        assert_eq!(
            (r.status, header(&r, "Content-Type")),
            (200, Some("text/javascript; charset=utf-8"))
        );
        assert_eq!(header(&r, "Cache-Control"), Some("public, max-age=3600"));
        assert_eq!(asset("../page.html").status, 404);
    }

    #[test]
    fn error_page_escapes_the_message() {
        let html = error_page(409, "name \"<x>\" taken");
        assert!(html.contains("<h1>Enrollment failed (409)</h1>"));
        assert!(html.contains("name &quot;&lt;x&gt;&quot; taken"));
    }
}
