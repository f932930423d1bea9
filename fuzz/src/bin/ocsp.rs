//! OCSP requests as the real handler reads them: the input is the DER request of a
//! POST `/ocsp` (what Apache sends) and, base64-encoded, the path of a GET
//! `/ocsp/BASE64` (what nginx sends), then the raw input as a GET path too (the
//! percent-decoding and base64 readers). Every answer is a 200 with an OCSP response
//! (errors are OCSP statuses), never a panic or a 500.
use base64::Engine;
use getacert::web::{Handler, Request};

fn request(method: &[u8], uri: &[u8], body: &[u8]) -> Request {
    Request {
        params: vec![
            (b"REQUEST_METHOD".to_vec(), method.to_vec()),
            (b"REQUEST_URI".to_vec(), uri.to_vec()),
            (b"CONTENT_TYPE".to_vec(), b"application/ocsp-request".to_vec()),
        ],
        body: body.to_vec(),
        ..Request::default()
    }
}

fn main() {
    let app = getacert_fuzz::app();
    afl::fuzz!(|data: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let mut raw = b"/ocsp/".to_vec();
        raw.extend_from_slice(data);
        for req in [
            request(b"POST", b"/ocsp", data),
            request(b"GET", format!("/ocsp/{b64}").as_bytes(), b""),
            request(b"GET", &raw, b""),
        ] {
            let response = app.handle(&req);
            assert_eq!(response.status, 200, "an OCSP request was not answered 200");
        }
    });
}
