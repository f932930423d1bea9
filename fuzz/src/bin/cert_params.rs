//! The client-certificate parameters nginx and Apache pass (SSL_CLIENT_VERIFY,
//! SSL_CLIENT_M_SERIAL, SSL_CLIENT_CERT as PEM, URL-encoded or tab-indented), read by
//! the real handler on a GET of the page and on an account action. The input is split
//! at its first newline: serial, then the certificate text.
use getacert::web::{Handler, Request};

fn main() {
    let app = getacert_fuzz::app();
    afl::fuzz!(|data: &[u8]| {
        let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let (serial, cert) = data.split_at(split);
        let cert = cert.get(1..).unwrap_or_default();
        for method in [&b"GET"[..], b"POST"] {
            let request = Request {
                params: vec![
                    (b"REQUEST_METHOD".to_vec(), method.to_vec()),
                    (
                        b"CONTENT_TYPE".to_vec(),
                        b"application/x-www-form-urlencoded".to_vec(),
                    ),
                    (b"SSL_CLIENT_VERIFY".to_vec(), b"SUCCESS".to_vec()),
                    (b"SSL_CLIENT_M_SERIAL".to_vec(), serial.to_vec()),
                    (b"SSL_CLIENT_CERT".to_vec(), cert.to_vec()),
                ],
                body: b"action=add-device-code&token=x".to_vec(),
                ..Request::default()
            };
            let response = app.handle(&request);
            assert!(response.status != 500, "a client certificate made a 500");
        }
    });
}
