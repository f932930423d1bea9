//! SPKAC and PKCS#10 as they arrive in a form field (base64 or PEM text, or raw DER
//! bytes base64-encoded here), through the fast DER reader and the OpenSSL fallback.
use getacert::enroll::request::PublicKeyRequest;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let text = String::from_utf8_lossy(data);
        let _ = PublicKeyRequest::from_spkac(&text);
        let _ = PublicKeyRequest::from_csr(&text);
        // The same bytes as DER, the way a client that base64-encodes them sends it.
        let b64 = base64_encode(data);
        let _ = PublicKeyRequest::from_spkac(&b64);
        let _ = PublicKeyRequest::from_csr(&b64);
    });
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
