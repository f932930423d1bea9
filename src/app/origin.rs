//! Where a request comes from and whom its form was made for: the `Origin` a request
//! names against the `Host` it was sent to, `Sec-Fetch-Site`, the anonymous page's
//! cookie, and the signed tokens (form tokens bound to the requester, SPKAC challenges)
//! that `crate::token` makes and checks. Time comes in as an argument. Who the
//! requester *is* (the client certificate) is [`super::identity`]'s.

use crate::token::{self, Purpose};
use crate::web::Request;

use super::{App, Identity, Now, Refusal, remote};

impl App {
    /// The SPKAC challenge of a page: signed, expiring, bound to nobody (scripts fetch
    /// it anonymously and may post it signed in).
    pub(crate) fn make_challenge(&self, now: Now) -> Result<String, Refusal> {
        token::make(&self.secret, Purpose::Challenge, "", now.secs)
            .map_err(|e| Refusal::Internal(format!("SPKAC challenge: {e}")))
    }

    /// The form token of a signed-in user's page: bound to the certificate presented,
    /// so only a request presenting that certificate can use it.
    pub(crate) fn account_token(&self, who: &Identity, now: Now) -> Result<String, Refusal> {
        token::make(
            &self.secret,
            Purpose::Form,
            &format!("cert:{}", who.serial),
            now.secs,
        )
        .map_err(|e| Refusal::Internal(format!("form token: {e}")))
    }

    /// The form token of the anonymous page, bound to a random browser cookie, and
    /// the `Set-Cookie` value when the browser had none yet. Another site can neither
    /// read nor set the cookie (`__Host-`, `SameSite=Strict`, `HttpOnly`), so a token
    /// it fetched for itself is worthless in a victim's browser.
    pub(crate) fn anonymous_token(
        &self,
        req: &Request,
        now: Now,
    ) -> Result<(String, Option<String>), Refusal> {
        let (cookie, set) = match browser_cookie(req) {
            Some(c) => (c.to_string(), None),
            None => {
                let mut raw = [0u8; 16];
                openssl::rand::rand_bytes(&mut raw)
                    .map_err(|e| Refusal::Internal(format!("random cookie: {e}")))?;
                let value: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                let header = format!(
                    "{}={value}; Path=/; {}HttpOnly; SameSite=Strict",
                    cookie_name(req),
                    if is_https(req) { "Secure; " } else { "" }
                );
                (value, Some(header))
            }
        };
        let t = token::make(&self.secret, Purpose::Form, &format!("anon:{cookie}"), now.secs)
            .map_err(|e| Refusal::Internal(format!("form token: {e}")))?;
        Ok((t, set))
    }

    pub(crate) fn token_ok(&self, purpose: Purpose, binding: &str, t: &str, now: Now) -> bool {
        token_ok(
            &self.secret,
            self.config.token_lifetime.as_secs() as i64,
            purpose,
            binding,
            t,
            now,
        )
    }

    /// A form token is good only for the requester it was made for: the certificate
    /// presented now, or (anonymous) the browser cookie sent now.
    pub(crate) fn form_token_ok(&self, req: &Request, who: Option<&Identity>, t: &str, now: Now) -> bool {
        form_binding(req, who).is_some_and(|binding| self.token_ok(Purpose::Form, &binding, t, now))
    }
}

/// A token made with `secret` for `purpose` and `binding`, younger than `lifetime`
/// seconds at `now`.
fn token_ok(secret: &[u8], lifetime: i64, purpose: Purpose, binding: &str, t: &str, now: Now) -> bool {
    token::verify(secret, purpose, binding, t, now.secs, lifetime)
}

/// Whom a form token is bound to: the certificate presented (`cert:SERIAL`), else the
/// anonymous browser cookie (`anon:COOKIE`); `None` (no token can be good) without
/// either.
fn form_binding(req: &Request, who: Option<&Identity>) -> Option<String> {
    match who {
        Some(id) => Some(format!("cert:{}", id.serial)),
        None => browser_cookie(req).map(|c| format!("anon:{c}")),
    }
}

/// Every POST: refuse what Fetch Metadata or Origin mark as coming from another
/// site, whatever else the request carries (a form token does not excuse it).
/// Scripts (curl, openssl) send neither header and pass.
pub(crate) fn check_origin(req: &Request) -> Result<(), Refusal> {
    if matches!(
        req.param_str("HTTP_SEC_FETCH_SITE"),
        Some("cross-site" | "same-site")
    ) {
        log::info!(target: "audit", "cross-site post: Sec-Fetch-Site {:?} remote={}", req.param_str("HTTP_SEC_FETCH_SITE"), remote(req));
        return Err(Refusal::CrossSite);
    }
    if let Some(origin) = req.param("HTTP_ORIGIN") {
        let origin = String::from_utf8_lossy(origin);
        let host = req.param_str("HTTP_HOST").unwrap_or("");
        if !same_origin_host(&origin, host) {
            log::info!(target: "audit", "cross-site post: Origin {origin:?}, Host {host:?} remote={}", remote(req));
            return Err(Refusal::CrossSite);
        }
    }
    Ok(())
}

/// `__Host-getacert` over HTTPS (the browser then refuses it from anywhere else),
/// `getacert` on plain HTTP (a test set-up).
pub(crate) fn cookie_name(req: &Request) -> &'static str {
    if is_https(req) {
        "__Host-getacert"
    } else {
        "getacert"
    }
}

pub(crate) fn is_https(req: &Request) -> bool {
    req.param_str("HTTPS")
        .is_some_and(|v| v.eq_ignore_ascii_case("on"))
}

/// The anonymous browser cookie, when the request carries a well-formed one.
pub(crate) fn browser_cookie(req: &Request) -> Option<&str> {
    let name = cookie_name(req);
    req.param_str("HTTP_COOKIE")?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True when `origin` (`scheme://host[:port]`) names the host of `host` (the Host
/// header) and, when Host carries a port, the same port. `null` never matches.
pub(crate) fn same_origin_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return false,
    };
    let (o_host, o_port) = split_authority(authority);
    let (h_host, h_port) = split_authority(host);
    !h_host.is_empty()
        && o_host.eq_ignore_ascii_case(h_host)
        && h_port.is_none_or(|p| p == o_port.unwrap_or(default_port))
}

/// `host[:port]` or `[v6]:port` → (host, port).
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, after.strip_prefix(':'));
    }
    match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_against_hosts() {
        let cases: &[(&str, &str, bool)] = &[
            ("https://example.org", "example.org", true),
            ("https://EXAMPLE.org", "example.org", true),
            ("https://example.org:8443", "example.org:8443", true),
            ("https://example.org", "example.org:443", true),
            ("https://example.org:8443", "example.org", true),
            ("https://example.org:9443", "example.org:8443", false),
            ("http://example.org", "example.org:443", false),
            ("https://evil.example", "example.org", false),
            ("https://example.org.evil.example", "example.org", false),
            ("null", "example.org", false),
            ("example.org", "example.org", false),
            ("ftp://example.org", "example.org", false),
            ("https://[::1]:8443", "[::1]:8443", true),
            ("https://[::1]:8443", "[::2]:8443", false),
            ("https://example.org", "", false),
        ];
        for (origin, host, want) in cases {
            assert_eq!(same_origin_host(origin, host), *want, "{origin} vs {host}");
        }
    }

    #[test]
    fn cookie_by_scheme() {
        let req = |https: bool, cookie: &str| Request {
            params: vec![
                (
                    b"HTTPS".to_vec(),
                    if https { b"on".to_vec() } else { b"off".to_vec() },
                ),
                (b"HTTP_COOKIE".to_vec(), cookie.as_bytes().to_vec()),
            ],
            ..Request::default()
        };
        let v = "00112233445566778899aabbccddeeff";
        assert_eq!(
            browser_cookie(&req(true, &format!("a=b; __Host-getacert={v}"))),
            Some(v)
        );
        assert_eq!(
            browser_cookie(&req(true, &format!("getacert={v}"))),
            None,
            "no prefix over HTTPS"
        );
        assert_eq!(browser_cookie(&req(false, &format!("getacert={v}"))), Some(v));
        assert_eq!(browser_cookie(&req(true, "__Host-getacert=short")), None);
    }

    fn headers(params: &[(&str, &str)]) -> Request {
        Request::with_params(params)
    }

    #[test]
    fn check_origin_refuses_other_sites_and_passes_scripts() {
        let host = ("HTTP_HOST", "example.org");
        let passes: &[&[(&str, &str)]] = &[
            &[],
            &[host],
            &[host, ("HTTP_SEC_FETCH_SITE", "same-origin")],
            &[host, ("HTTP_SEC_FETCH_SITE", "none")],
            &[host, ("HTTP_ORIGIN", "https://example.org")],
        ];
        for p in passes {
            assert!(check_origin(&headers(p)).is_ok(), "{p:?}");
        }
        let refused: &[&[(&str, &str)]] = &[
            &[host, ("HTTP_SEC_FETCH_SITE", "cross-site")],
            // A sibling subdomain is another site to getacert.
            &[host, ("HTTP_SEC_FETCH_SITE", "same-site")],
            // A right Origin does not excuse a cross-site fetch.
            &[
                host,
                ("HTTP_SEC_FETCH_SITE", "cross-site"),
                ("HTTP_ORIGIN", "https://example.org"),
            ],
            &[host, ("HTTP_ORIGIN", "https://evil.example")],
            &[host, ("HTTP_ORIGIN", "null")],
            &[("HTTP_ORIGIN", "https://example.org")],
        ];
        for p in refused {
            assert!(
                matches!(check_origin(&headers(p)), Err(Refusal::CrossSite)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn form_tokens_are_bound_to_the_requester_and_expire() {
        let secret = [7u8; 32];
        let (made, lifetime) = (1_700_000_000, 3600);
        let cookie = "00112233445566778899aabbccddeeff";
        let anon = headers(&[("HTTP_COOKIE", &format!("getacert={cookie}"))]);
        let who = Identity {
            username: crate::enroll::username::Username::issued("alice".into()),
            serial: crate::ca::index::Serial::parse("0A1B").unwrap(),
            not_after: made + 86400,
        };
        assert_eq!(
            form_binding(&anon, None).as_deref(),
            Some("anon:00112233445566778899aabbccddeeff")
        );
        assert_eq!(form_binding(&anon, Some(&who)).as_deref(), Some("cert:0A1B"));
        assert_eq!(
            form_binding(&headers(&[]), None),
            None,
            "no cookie, no token can be good"
        );

        let ok = |binding: &str, t: &str, at: i64| {
            token_ok(&secret, lifetime, Purpose::Form, binding, t, Now::at(at))
        };
        let for_cert = token::make(&secret, Purpose::Form, "cert:0A1B", made).expect("HMAC");
        assert!(ok("cert:0A1B", &for_cert, made + 10));
        assert!(!ok("cert:0A1C", &for_cert, made + 10), "another certificate");
        assert!(
            !ok(&format!("anon:{cookie}"), &for_cert, made + 10),
            "the same browser, signed out"
        );
        assert!(!ok("cert:0A1B", &for_cert, made + lifetime + 1), "expired");
        let challenge = token::make(&secret, Purpose::Challenge, "", made).expect("HMAC");
        assert!(!ok("", &challenge, made), "a challenge is not a form token");
        assert!(token_ok(
            &secret,
            lifetime,
            Purpose::Challenge,
            "",
            &challenge,
            Now::at(made)
        ));
        assert!(
            !token_ok(
                &[8u8; 32],
                lifetime,
                Purpose::Challenge,
                "",
                &challenge,
                Now::at(made)
            ),
            "another secret"
        );
    }
}
