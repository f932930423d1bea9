//! Form bodies: the first line is the Content-Type, the rest the body (urlencoded or
//! multipart). Never a panic; every field read back is what the parser kept.
use getacert::enroll::form::Form;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let (head, body) = data.split_at(split);
        let content_type = String::from_utf8_lossy(head);
        if let Ok(form) = Form::parse(&content_type, body.get(1..).unwrap_or_default()) {
            for name in ["username", "csr", "pubkey", "email", "token", "code", "action"] {
                let _ = form.one_of(&[name]);
            }
        }
    });
}
