//! The enrollment page (GET) and its assets, all embedded in the binary so a deployment
//! needs no document root, no CDN and no inline script (the page is served with a strict
//! Content-Security-Policy).

use crate::app::App;
use crate::token::Purpose;
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
        .with_header("Referrer-Policy", "no-referrer")
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
    let ca_name = app
        .ca
        .cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
        .unwrap_or_else(|| "this site".to_string());
    let html = PAGE
        .replace("{{ACTION}}", &escape(&action(req)))
        .replace("{{TOKEN}}", &escape(&app.make_token(Purpose::Form)))
        .replace("{{CHALLENGE}}", &escape(&app.make_token(Purpose::Challenge)))
        .replace("{{AUTH_URL}}", &escape(&app.config.auth_url))
        .replace("{{CA_NAME}}", &escape(&ca_name));
    secure_headers(
        Response::new(200, "text/html; charset=utf-8", html.into_bytes())
            .with_header("Cache-Control", "no-store"),
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
