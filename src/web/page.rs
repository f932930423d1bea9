//! The enrollment page (GET) and its assets, all embedded in the binary so a deployment
//! needs no document root, no CDN and no inline script (the page is served with a strict
//! Content-Security-Policy).

use crate::app::{App, Identity};
use crate::ca::index::{Record, Status};
use crate::web::{Request, Response};

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
pub fn escape(s: &str) -> String {
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

/// The path the page was requested at, so forms post back to the same URL whatever it
/// is mapped to (`/getacert.php` for the article's links).
fn action(req: &Request) -> String {
    let uri = req
        .param_str("DOCUMENT_URI")
        .or_else(|| req.param_str("SCRIPT_NAME").filter(|s| !s.is_empty()))
        .or_else(|| {
            req.param_str("REQUEST_URI")
                .map(|u| u.split('?').next().unwrap_or(u))
        })
        .unwrap_or("");
    let uri = if uri.is_empty() { "/getacert.php" } else { uri };
    // A path only: no scheme, host or query can be injected into the form target.
    uri.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\'' && *c != '<' && *c != '>')
        .collect()
}

fn query_param<'a>(req: &'a Request, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    let q = req.param("QUERY_STRING")?;
    form_urlencoded::parse(q).find(|(k, _)| k == name).map(|(_, v)| v)
}

pub fn serve_get(app: &App, req: &Request) -> Response {
    if let Some(name) = query_param(req, "asset") {
        return match ASSETS.iter().find(|(n, _, _)| *n == name) {
            Some((_, ctype, body)) => Response::new(200, ctype, body.as_bytes().to_vec())
                .with_header("Cache-Control", "public, max-age=3600")
                .with_header("X-Content-Type-Options", "nosniff"),
            None => Response::new(404, "text/plain; charset=utf-8", b"No such asset.\n".to_vec()),
        };
    }
    let who = match app.client_identity(req) {
        Ok(who) => who,
        Err(e) => {
            log::warn!("{e:?} while checking a client certificate");
            return Response::new(
                503,
                "text/plain; charset=utf-8",
                b"Please try again in a few seconds.\n".to_vec(),
            )
            .with_header("Retry-After", "5");
        }
    };
    let enroll = query_param(req, "enroll");
    if enroll.is_none()
        && let Some(who) = &who
    {
        let devices = app
            .store
            .lock()
            .map_err(|e| e.to_string())
            .and_then(|l| app.devices(&l, &who.username).map_err(|e| e.to_string()));
        return match devices {
            Ok(devices) => account_page(app, req, who, &devices, None, None),
            Err(e) => {
                log::error!("listing the devices of {}: {e}", who.username);
                Response::new(
                    503,
                    "text/plain; charset=utf-8",
                    b"Please try again in a few seconds.\n".to_vec(),
                )
                .with_header("Retry-After", "5")
            }
        };
    }
    // The form token is this requester's: the certificate presented (`?enroll=...` while
    // signed in), else a cookie set now.
    let tokens = match &who {
        Some(who) => app.account_token(who).map(|t| (t, None)),
        None => app.anonymous_token(req),
    }
    .and_then(|(token, cookie)| Ok((token, cookie, app.make_challenge()?)));
    let (token, cookie, challenge) = match tokens {
        Ok(t) => t,
        Err(e) => return token_failure(&e),
    };
    let signed_in = who
        .as_ref()
        .map(|who| signed_in_notice(&action(req), &who.username, enroll.as_deref() == Some("renew")))
        .unwrap_or_default();
    let username = who.as_ref().map(|w| w.username.as_str()).unwrap_or("");
    let html = PAGE
        .replace("{{ACTION}}", &escape(&action(req)))
        .replace("{{TOKEN}}", &escape(&token))
        .replace("{{CHALLENGE}}", &escape(&challenge))
        .replace("{{AUTH_URL}}", &escape(&app.config.auth_url))
        .replace("{{CA_NAME}}", &escape(&site_name(app)))
        // last: what the visitor's username brings in is never read as a placeholder
        .replace("{{USERNAME}}", &escape(username))
        .replace("{{SIGNED_IN}}", &signed_in);
    let mut resp = Response::new(200, "text/html; charset=utf-8", html.into_bytes())
        .with_header("Cache-Control", "no-store");
    if let Some(c) = cookie {
        resp = resp.with_header("Set-Cookie", &c);
    }
    secure_headers(resp)
}

/// The absolute link that opens the enrollment page on a new device with `username` and
/// `code` filled in (by enroll.js, from the fragment). The host comes from the request
/// (`HTTP_HOST`, plus `SERVER_PORT` when the host has none and it is not 443); `None`
/// when the host does not look like one. Only the signed-in visitor sees the link.
fn add_device_link(req: &Request, username: &str, code: &str) -> Option<String> {
    let host = req.param_str("HTTP_HOST")?;
    let name_ok = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    };
    if !name_ok(host) {
        return None;
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        && !host.ends_with(']');
    let port = req
        .param_str("SERVER_PORT")
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && *p != "443");
    let authority = match (has_port, port) {
        (false, Some(p)) => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    let fragment = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("code", code)
        .finish();
    Some(format!("https://{authority}{}?enroll=1#{fragment}", action(req)))
}

/// What the enrollment page says to a visitor who is signed in (`?enroll=1` from the
/// account page, `?enroll=renew` to renew): whose account the new certificate is for.
/// Renewing never revokes the current certificate: it keeps working until the visitor
/// revokes it on the account page, so an import that fails locks nobody out.
fn signed_in_notice(action: &str, username: &str, renew: bool) -> String {
    let user = escape(username);
    let what = if renew {
        format!(
            "<strong>Renewing</strong> the certificate of <strong>{user}</strong>. \
             Your current certificate keeps working until you revoke it on your devices page."
        )
    } else {
        format!("<strong>Adding a device</strong> for <strong>{user}</strong>.")
    };
    format!(
        "<p id=\"signed-in\" class=\"notice\" role=\"status\">{what} \
         <a href=\"{}\">Back to your devices</a></p>",
        escape(action)
    )
}

/// A short HTML page for a refused form post from a browser without JavaScript.
pub fn error_page(status: u16, message: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Enrollment failed</title></head><body><h1>Enrollment failed ({status})</h1>\
         <p role=\"alert\">{}</p><p><a href=\"\">Back to the enrollment page</a></p></body></html>\n",
        escape(message)
    )
}

/// `site_name` from `[getacert]`, else the CA certificate's common name.
fn site_name(app: &App) -> String {
    if let Some(name) = &app.config.site_name {
        return name.clone();
    }
    app.ca
        .cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_else(|| "this site".to_string())
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

/// A form token or challenge could not be made (the HMAC failed): no page, since a page
/// without a working token is a form that cannot be sent.
fn token_failure(e: &crate::app::Refusal) -> Response {
    log::error!("{e:?} while making the page's tokens");
    Response::new(
        500,
        "text/plain; charset=utf-8",
        b"Something went wrong on the server. The administrator can find the details in the log.\n".to_vec(),
    )
}

/// The page a signed-in user sees: who they are, their devices (revoke any other one),
/// and an add-device code when they asked for one (shown this once).
pub fn account_page(
    app: &App,
    req: &Request,
    who: &Identity,
    devices: &[Record],
    notice: Option<&str>,
    code: Option<&str>,
) -> Response {
    let action = escape(&action(req));
    let token = match app.account_token(who) {
        Ok(t) => escape(&t),
        Err(e) => return token_failure(&e),
    };
    let now = crate::app::now();
    let mut list = String::new();
    for r in devices {
        let this = r.serial == who.serial;
        let (status, live) = match r.effective_status(now) {
            Status::Valid => ("valid", true),
            Status::Revoked => ("revoked", false),
            Status::Expired => ("expired", false),
        };
        list.push_str(&format!(
            "<li><div><strong>Certificate {}</strong> {}<br><span class=\"meta\">{status}, expires {}</span></div>",
            escape(&r.serial),
            if this { "<span class=\"tag\">this device</span>" } else { "" },
            date(r.expires_unix())
        ));
        if live && !this {
            // A second step, without script: the button that revokes names the device.
            list.push_str(&format!(
                "<details class=\"revoke\"><summary class=\"button\">Revoke…</summary>\
                 <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
                 <input type=\"hidden\" name=\"action\" value=\"revoke\"><input type=\"hidden\" name=\"serial\" value=\"{serial}\">\
                 <p>The device with certificate <strong>{serial}</strong> (expires {expires}) will no longer sign in. \
                 This cannot be undone.</p>\
                 <button class=\"button danger\" type=\"submit\">Revoke certificate {serial}</button></form></details>",
                serial = escape(&r.serial),
                expires = date(r.expires_unix())
            ));
        }
        list.push_str("</li>\n");
    }
    let notice = notice
        .map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n)))
        .unwrap_or_default();
    let live = devices
        .iter()
        .filter(|r| r.effective_status(now) == Status::Valid)
        .count();
    let nudge = if live <= 1 {
        "<p class=\"warn\" id=\"one-device\">This is your only device. Add a second device so that \
         losing this one does not lock you out.</p>"
    } else {
        ""
    };
    let code = code
        .map(|c| {
            // The link opens the enrollment page on the new device with the username and
            // the code filled in; both ride in the fragment, which no server log sees.
            let qr = add_device_link(req, &who.username, c)
                .and_then(|link| crate::web::qr::svg_data_uri(&link).map(|img| (link, img)))
                .map(|(link, img)| {
                    format!(
                        "<p class=\"qr\"><img id=\"add-device-qr\" src=\"{}\" width=\"240\" height=\"240\" \
                         alt=\"QR code of a link that opens this page on the new device with your username and the code\"></p>\
                         <p class=\"hint\">Or scan this with the new device's camera: it opens this page there with \
                         everything filled in. <a id=\"add-device-link\" href=\"{}\">The link</a> works once, like the code.</p>",
                        escape(&img),
                        escape(&link)
                    )
                })
                .unwrap_or_default();
            format!(
                "<section class=\"card\" aria-labelledby=\"code-heading\"><h2 id=\"code-heading\">Your add-device code</h2>\
                 <p class=\"code\" id=\"add-device-code\">{}</p><p>On the new device, open this page, type your username \
                 <strong>{}</strong> and this code. It works once and expires in {} minutes. It is not shown again.</p>{qr}</section>",
                escape(c),
                escape(&who.username),
                app.config.code_lifetime / 60
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
         <h1>You are signed in as <span id=\"username\">{user}</span></h1>{notice}{code}\
         <section class=\"card\" aria-labelledby=\"devices-heading\"><h2 id=\"devices-heading\">Your devices</h2>\
         <ul class=\"devices\">{list}</ul></section>\
         <section class=\"card\" aria-labelledby=\"add-heading\"><h2 id=\"add-heading\">Add a device</h2>{nudge}\
         <p>Get a one-time code here, then enroll on the new device with your username and the code. \
         No key is copied between devices.</p><form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\"><input type=\"hidden\" name=\"action\" value=\"add-device-code\">\
         <button class=\"button primary\" type=\"submit\">Get an add-device code</button></form></section>\
         <section class=\"card\" aria-labelledby=\"renew-heading\"><h2 id=\"renew-heading\">Renew this device</h2>\
         <p>Before this certificate expires, <a href=\"{action}?enroll=renew\">make a new one</a> while \
         signed in; once it works, revoke the old one above.</p></section>\
         <p><a class=\"button\" href=\"{auth}\">Go to the site</a></p></main></body></html>\n",
        ca = escape(&site_name(app)),
        user = escape(&who.username),
        auth = escape(&app.config.auth_url),
    );
    secure_headers(
        Response::new(200, "text/html; charset=utf-8", html.into_bytes())
            .with_header("Cache-Control", "no-store"),
    )
}
