//! Plain CGI (RFC 3875): one request per process. The environment becomes the parameters
//! (as bytes, nothing dropped), standard input the body, and the response goes to
//! standard output.
//!
//! It does not read the real environment or the real stdin itself: `main` passes them,
//! so tests pass literals. Deciding that this is a CGI run (`GATEWAY_INTERFACE`) is
//! `main`'s job too.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;

use super::server::call_handler;
use super::{Handler, Request};

/// Answers the one request this CGI process was started for.
///
/// The body is read only as far as `CONTENT_LENGTH` says. A missing or malformed
/// `CONTENT_LENGTH` means no body; one above `max_body` means `body_too_large` and
/// nothing is read. A body shorter than announced is handed over as it arrived.
pub fn run_cgi(
    handler: &dyn Handler,
    max_body: usize,
    env: impl Iterator<Item = (OsString, OsString)>,
    stdin: impl Read,
    mut stdout: impl Write,
) -> io::Result<()> {
    let params = env.map(|(k, v)| (k.into_vec(), v.into_vec())).collect();
    let mut request = Request {
        params,
        ..Request::default()
    };
    let length = request
        .param("CONTENT_LENGTH")
        .and_then(parse_content_length)
        .unwrap_or(0);
    if length > u64::try_from(max_body).unwrap_or(u64::MAX) {
        request.body_too_large = true;
    } else {
        stdin.take(length).read_to_end(&mut request.body)?;
        if (request.body.len() as u64) < length {
            log::warn!("CGI body ended after {} of {length} bytes", request.body.len());
        }
    }
    let response = call_handler(handler, &request);
    stdout.write_all(&response.to_cgi_bytes())?;
    stdout.flush()
}

/// `CONTENT_LENGTH = "" | 1*digit` (RFC 3875, 4.1.2).
fn parse_content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::Response;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    /// Answers with the body, the flag and every parameter, one per line.
    struct Show;

    impl Handler for Show {
        fn handle(&self, req: &Request) -> Response {
            let mut body = format!("body={:?} too_large={}\n", req.body, req.body_too_large).into_bytes();
            for (k, v) in &req.params {
                body.extend_from_slice(&[&k[..], b"=", v, b"\n"].concat());
            }
            Response::new(200, "text/plain", body)
        }
    }

    fn env(pairs: &[(&[u8], &[u8])]) -> impl Iterator<Item = (OsString, OsString)> {
        let pairs: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (OsStr::from_bytes(k).to_owned(), OsStr::from_bytes(v).to_owned()))
            .collect();
        pairs.into_iter()
    }

    /// Runs one CGI request; returns the output and what stdin had left.
    fn run(pairs: &[(&[u8], &[u8])], stdin: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (mut input, mut out) = (stdin, Vec::new());
        run_cgi(&Show, 10, env(pairs), &mut input, &mut out).unwrap();
        (out, input.to_vec())
    }

    #[test]
    fn the_body_is_read_as_far_as_content_length_says() {
        let (out, rest) = run(
            &[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5")],
            b"helloEXTRA",
        );
        let expected = Show.handle(&Request {
            params: vec![
                (b"REQUEST_METHOD".to_vec(), b"POST".to_vec()),
                (b"CONTENT_LENGTH".to_vec(), b"5".to_vec()),
            ],
            body: b"hello".to_vec(),
            body_too_large: false,
            abandoned: Default::default(),
        });
        assert_eq!(out, expected.to_cgi_bytes());
        assert_eq!(rest, b"EXTRA");
    }

    /// Name, CONTENT_LENGTH, first line of the answer, what stdin (`abc`) has left.
    type Case = (&'static str, Option<&'static [u8]>, &'static str, &'static [u8]);

    #[test]
    fn content_length_cases() {
        let cases: [Case; 7] = [
            ("missing", None, "body=[] too_large=false", b"abc"),
            ("empty", Some(b""), "body=[] too_large=false", b"abc"),
            ("garbage", Some(b"12abc"), "body=[] too_large=false", b"abc"),
            ("signed", Some(b"+3"), "body=[] too_large=false", b"abc"),
            (
                "at the limit",
                Some(b"10"),
                "body=[97, 98, 99] too_large=false",
                b"",
            ),
            ("over the limit", Some(b"11"), "body=[] too_large=true", b"abc"),
            (
                "absurd",
                Some(b"99999999999999999999999"),
                "body=[] too_large=false",
                b"abc",
            ),
        ];
        for (name, length, first_line, left) in cases {
            let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST")];
            pairs.extend(length.map(|l| (&b"CONTENT_LENGTH"[..], l)));
            let (out, rest) = run(&pairs, b"abc");
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.contains(&format!("\r\n\r\n{first_line}\n")),
                "{name}: {text}"
            );
            assert_eq!(rest, left, "{name}: what stdin has left");
        }
    }

    #[test]
    fn non_utf8_environment_is_kept_as_bytes() {
        let (out, _) = run(&[(b"HTTP_X", b"\xff\xfe"), (b"\xe9", b"v")], b"");
        assert!(out.windows(9).any(|w| w == b"HTTP_X=\xff\xfe"));
        assert!(out.windows(4).any(|w| w == b"\n\xe9=v"));
    }
}
