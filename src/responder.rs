//! The OCSP endpoint over HTTP (RFC 6960 appendix A, RFC 5019's caching headers):
//! which requests are OCSP, how the DER request is read from a POST body or a GET path,
//! and the headers of the answer. The answer itself comes from `ca::ocsp`; the status
//! of each serial from `ca::status`, read without the database lock.
//!
//! A request is OCSP when its path has an `/ocsp` segment: POST `…/ocsp` (what Apache
//! sends, `application/ocsp-request`) or GET `…/ocsp/BASE64` (what nginx sends; the
//! base64 may be percent-encoded). Only the path decides: a POST to the enrollment URL
//! is an enrollment whatever its content type. No rate limit and no lock: it is a read
//! of public status that every TLS handshake of a client makes, and costs one
//! signature, as the handshake itself does.

use openssl::hash::{MessageDigest, hash};

use crate::ca::ocsp::{Answer, Outcome, Responder};
use crate::ca::ocsp_cache::{Cache, Looked};
use crate::ca::sign::Ca;
use crate::ca::status::StatusView;
use crate::config::Config;
use crate::web::{Request, Response};

pub const REQUEST_TYPE: &str = "application/ocsp-request";
pub const RESPONSE_TYPE: &str = "application/ocsp-response";

/// The responder with the status view it reads and the answers it may give again.
pub struct Endpoint {
    responder: Responder,
    view: StatusView,
    validity: u32,
    cache: Cache,
}

/// The request's path: `REQUEST_URI` without the query, else SCRIPT_NAME + PATH_INFO.
fn path(req: &Request) -> String {
    match req.param_str("REQUEST_URI").filter(|u| !u.is_empty()) {
        Some(u) => u.split('?').next().unwrap_or("").to_string(),
        None => format!(
            "{}{}",
            req.param_str("SCRIPT_NAME").unwrap_or(""),
            req.param_str("PATH_INFO").unwrap_or("")
        ),
    }
}

/// `Some` when `req` is an OCSP request (see the module docs).
pub fn route(req: &Request, method: &str) -> Option<Route> {
    let p = path(req);
    let data = match p.find("/ocsp/") {
        Some(i) => Some(p[i + "/ocsp/".len()..].to_string()),
        None if p.ends_with("/ocsp") => Some(String::new()),
        None => None,
    };
    match (method, data) {
        ("POST", Some(_)) => Some(Route::Post),
        ("GET" | "HEAD", Some(d)) => Some(Route::Get(d)),
        _ => None,
    }
}

/// How an OCSP request arrived: POST (the DER request is the body) or GET
/// `…/ocsp/<data>` (base64 of the DER request, possibly percent-encoded).
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Post,
    Get(String),
}

/// Decodes the GET form: percent-decoding, then base64 (a `+` turned into a space by a
/// form-minded proxy is restored; URL-safe base64 is accepted too). `None` if it is
/// not base64.
pub fn decode_get(data: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let bytes: Vec<u8> = percent_decode(data.as_bytes())?;
    let text: String = String::from_utf8(bytes)
        .ok()?
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    let text = text.trim_end_matches('/');
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().find_map(|e| e.decode(text).ok())
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// An HTTP date (IMF-fixdate) for seconds since the epoch.
pub fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // index::asn1_time gives YYYYMMDDHHMMSSZ from 2050 and YYMMDDHHMMSSZ before; take
    // the civil date from it rather than computing it twice.
    let t = crate::ca::index::asn1_time(unix);
    let (y, rest) = if t.len() == 13 {
        let yy: i64 = t[0..2].parse().unwrap_or(0);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t[2..])
    } else {
        (t[0..4].parse().unwrap_or(0), &t[4..])
    };
    let num = |r: std::ops::Range<usize>| rest.get(r).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let wd = DAYS[unix.div_euclid(86400).rem_euclid(7) as usize];
    let month = MONTHS[num(0..2).clamp(1, 12) - 1];
    format!(
        "{wd}, {:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        num(2..4),
        num(4..6),
        num(6..8),
        num(8..10)
    )
}

impl Endpoint {
    pub fn new(config: &Config, ca: &Ca) -> Result<Endpoint, String> {
        let responder =
            Responder::new(ca, ca.digest(config)).map_err(|e| format!("the OCSP responder: {e}"))?;
        Ok(Endpoint {
            responder,
            view: StatusView::new(&config.paths.database),
            validity: config.ocsp_next_update,
            cache: Cache::default(),
        })
    }

    /// The DER answer to a DER request at `now`: a kept one while it is at most a
    /// quarter of its validity old and the database says the same (`ca::ocsp_cache`),
    /// else a fresh signature. `sighted` is told each serial of this CA asked for that
    /// is valid (the device's "last seen"; it must be cheap: it runs on every lookup).
    pub fn answer(&self, der: &[u8], now: i64, sighted: &dyn Fn(&str)) -> Answer {
        let reuse = i64::from(self.validity / 4);
        let lookup = |serials: &[String]| {
            let status = self.view.lookup(serials);
            if let Ok(entries) = &status {
                for (s, e) in serials.iter().zip(entries) {
                    if *e == Some(crate::ca::status::Entry::Valid) {
                        sighted(s);
                    }
                }
            }
            status
        };
        if let Some(kept) = self.cache.hit(der, now, reuse, lookup) {
            return kept;
        }
        let mut looked: Looked = None;
        let answer = self.responder.answer(der, now, self.validity, |serials| {
            let status = lookup(serials);
            if let Ok(s) = &status {
                looked = Some((serials.to_vec(), s.clone()));
            }
            status
        });
        self.cache.keep(der, &answer, looked);
        answer
    }

    /// The HTTP answer: always 200 with an OCSP response (errors are OCSP statuses,
    /// which is what OCSP clients read); caching headers on a signed answer.
    pub fn handle(&self, req: &Request, route: &Route, now: i64, sighted: &dyn Fn(&str)) -> Response {
        let remote = req.param_str("REMOTE_ADDR").unwrap_or("-");
        let der = match route {
            Route::Post if req.body_too_large => None,
            Route::Post => Some(req.body.clone()),
            Route::Get(data) => decode_get(data),
        };
        let answer = match der {
            Some(d) => self.answer(&d, now, sighted),
            None => self.answer(&[], now, sighted),
        };
        let mut resp = Response::new(200, RESPONSE_TYPE, answer.der);
        match &answer.outcome {
            Outcome::Successful {
                this_update,
                next_update,
                ..
            } => {
                let max_age = (next_update - now).max(0);
                let etag = hash(MessageDigest::sha1(), &resp.body)
                    .map(|d| d.iter().map(|b| format!("{b:02x}")).collect::<String>())
                    .unwrap_or_default();
                resp = resp
                    .with_header(
                        "Cache-Control",
                        &format!("max-age={max_age}, public, no-transform, must-revalidate"),
                    )
                    .with_header("Last-Modified", &http_date(*this_update))
                    .with_header("Expires", &http_date(*next_update));
                if !etag.is_empty() {
                    resp = resp.with_header("ETag", &format!("\"{etag}\""));
                }
            }
            Outcome::Malformed(why) => {
                log::info!(target: "audit", "OCSP malformedRequest from {remote}: {why}");
                resp = resp.with_header("Cache-Control", "no-store");
            }
            Outcome::Internal(why) => {
                log::error!("OCSP internalError for {remote}: {why}");
                resp = resp.with_header("Cache-Control", "no-store");
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(params: &[(&str, &str)]) -> Request {
        Request::with_params(params)
    }

    #[test]
    fn routes_by_path_segment_only() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<Route>);
        let cases: &[Case] = &[
            ("POST", &[("REQUEST_URI", "/ocsp")], Some(Route::Post)),
            (
                "POST",
                &[("REQUEST_URI", "/getacert.php"), ("CONTENT_TYPE", REQUEST_TYPE)],
                None,
            ),
            (
                "POST",
                &[
                    ("REQUEST_URI", "/getacert.php"),
                    ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
                ],
                None,
            ),
            (
                "GET",
                &[("REQUEST_URI", "/ocsp/MEIw%2Bx")],
                Some(Route::Get("MEIw%2Bx".into())),
            ),
            (
                "GET",
                &[("SCRIPT_NAME", "/getacert.php"), ("PATH_INFO", "/ocsp/MA==")],
                Some(Route::Get("MA==".into())),
            ),
            ("GET", &[("REQUEST_URI", "/getacert.php?x=/ocsp/")], None),
            ("GET", &[("REQUEST_URI", "/getacert.php")], None),
            ("PUT", &[("REQUEST_URI", "/ocsp/MA==")], None),
        ];
        for (method, params, want) in cases {
            assert_eq!(&route(&req(params), method), want, "{method} {params:?}");
        }
    }

    #[test]
    fn get_data_is_percent_decoded_and_base64_in_any_spelling() {
        assert_eq!(decode_get("MEIw%2B%2F8%3D"), decode_get("MEIw+/8="));
        assert!(decode_get("MEIw+/8=").is_some());
        assert_eq!(decode_get("MEIw /8="), decode_get("MEIw+/8="));
        assert_eq!(decode_get("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_get("AQ%3D%3D"), Some(vec![1]));
        assert_eq!(decode_get("AQ"), Some(vec![1]));
        assert_eq!(decode_get("-_8"), Some(vec![0xfb, 0xff]));
        assert_eq!(decode_get("%zz"), None);
        assert_eq!(decode_get("!!!"), None);
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(2_556_143_999), "Sat, 31 Dec 2050 23:59:59 GMT");
    }
}
