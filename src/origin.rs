//! Who a POST comes from, as far as the browser tells: the `Origin` a request names
//! against the `Host` it was sent to, and the anonymous page's cookie that form tokens
//! are bound to. Pure functions of the request; the checks themselves (and the tokens)
//! are made by the app.

use crate::web::Request;

/// `__Host-getacert` over HTTPS (the browser then refuses it from anywhere else),
/// `getacert` on plain HTTP (a test set-up).
pub fn cookie_name(req: &Request) -> &'static str {
    if is_https(req) {
        "__Host-getacert"
    } else {
        "getacert"
    }
}

pub fn is_https(req: &Request) -> bool {
    req.param_str("HTTPS")
        .is_some_and(|v| v.eq_ignore_ascii_case("on"))
}

/// The anonymous browser cookie, when the request carries a well-formed one.
pub fn browser_cookie(req: &Request) -> Option<&str> {
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
pub fn same_origin_host(origin: &str, host: &str) -> bool {
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
}
