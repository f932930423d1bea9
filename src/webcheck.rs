//! What `getacert check` can tell about revocation in the web server in front: reads
//! the nginx and Apache configuration files (Debian's enabled sites and confs, or the
//! files named with `--web-config`) for CRL and OCSP directives, and asks each OCSP
//! responder they name about this CA over HTTP, as the web server would.
//!
//! It only reads those files and connects to the responder URLs they name; it changes
//! nothing. A file it cannot read is skipped (check runs as any user).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::ocsp::{OcspCertId, OcspFlag, OcspRequest, OcspResponse, OcspResponseStatus};
use openssl::stack::Stack;
use openssl::x509::X509Ref;
use openssl::x509::store::X509StoreBuilder;

/// The files read when `--web-config` names none.
pub fn default_files() -> Vec<PathBuf> {
    let mut files = vec![
        PathBuf::from("/etc/nginx/nginx.conf"),
        PathBuf::from("/etc/apache2/apache2.conf"),
    ];
    for dir in [
        "/etc/nginx/sites-enabled",
        "/etc/nginx/conf.d",
        "/etc/apache2/sites-enabled",
        "/etc/apache2/conf-enabled",
    ] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            more.sort();
            files.extend(more);
        }
    }
    files
}

/// Revocation directives found, with where.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// `ssl_crl` / `SSLCARevocationFile` / `SSLCARevocationPath`: "file:line".
    pub crl: Vec<String>,
    /// `ssl_ocsp on|leaf` / `SSLOCSPEnable on|leaf`: "file:line".
    pub ocsp: Vec<String>,
    /// Responder URLs (`ssl_ocsp_responder`, `SSLOCSPDefaultResponder`) with "file:line".
    pub responders: Vec<(String, String)>,
}

/// Scans the text of one configuration file (comments ignored).
pub fn scan_text(name: &str, text: &str, found: &mut Found) {
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let (Some(key), value) = (words.next(), words.next()) else {
            continue;
        };
        let value = value.unwrap_or("").trim_end_matches(';').trim_matches('"');
        let at = format!("{name}:{}", n + 1);
        match key.to_ascii_lowercase().as_str() {
            "ssl_crl" | "sslcarevocationfile" | "sslcarevocationpath" => found.crl.push(at),
            "ssl_ocsp" | "sslocspenable" if matches!(value.to_ascii_lowercase().as_str(), "on" | "leaf") => {
                found.ocsp.push(at)
            }
            "ssl_ocsp_responder" | "sslocspdefaultresponder" if !value.is_empty() => {
                found.responders.push((value.to_string(), at))
            }
            _ => {}
        }
    }
}

pub fn scan(files: &[PathBuf]) -> Found {
    let mut found = Found::default();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(f) {
            scan_text(&f.display().to_string(), &text, &mut found);
        }
    }
    found
}

/// Asks the responder at `url` (http://HOST[:PORT]/PATH) about `ca` itself, as the
/// web server would (POST), and checks the answer is a successful OCSP response signed
/// for this CA.
pub fn probe(url: &str, ca: &X509Ref) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// responders can be checked")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr_text = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = addr_text
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let err = |e: openssl::error::ErrorStack| e.to_string();
    let mut req = OcspRequest::new().map_err(err)?;
    req.add_id(OcspCertId::from_cert(MessageDigest::sha1(), ca, ca).map_err(err)?)
        .map_err(err)?;
    let der = req.to_der().map_err(err)?;
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        der.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|_| s.write_all(&der))
        .map_err(|e| format!("cannot send: {e}"))?;
    let mut raw = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| format!("no answer: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP answer")?;
    let status_line = String::from_utf8_lossy(&raw[..split]);
    let status_line = status_line.lines().next().unwrap_or("");
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered {status_line:?}"));
    }
    let resp = OcspResponse::from_der(&raw[split + 4..]).map_err(|_| "the answer is not an OCSP response")?;
    if resp.status() != OcspResponseStatus::SUCCESSFUL {
        return Err(format!("OCSP status {}", resp.status().as_raw()));
    }
    let basic = resp.basic().map_err(err)?;
    let mut store = X509StoreBuilder::new().map_err(err)?;
    store.add_cert(ca.to_owned()).map_err(err)?;
    let store = store.build();
    let mut certs = Stack::new().map_err(err)?;
    certs.push(ca.to_owned()).map_err(err)?;
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(|e| format!("the answer is not signed for this CA: {e}"))
}

/// `check`'s findings: warnings, and notes on what works.
pub fn report(files: &[PathBuf], ca: &X509Ref) -> (Vec<String>, Vec<String>) {
    let found = scan(files);
    let (mut warnings, mut notes) = (Vec::new(), Vec::new());
    if !found.crl.is_empty() && found.ocsp.is_empty() {
        warnings.push(format!(
            "{}: the web server checks a CRL but does not use OCSP: it reads the CRL only at \
             start and reload, so a revoked certificate keeps signing in until then. Use the \
             shipped ssl_ocsp / SSLOCSPEnable lines (docs/deployment.md, section 4)",
            found.crl.join(", ")
        ));
    }
    for (url, at) in &found.responders {
        match probe(url, ca) {
            Ok(()) => notes.push(format!(
                "{at}: the OCSP responder {url} answers, signed by this CA"
            )),
            Err(e) => warnings.push(format!(
                "{at}: the OCSP responder {url} does not answer for this CA ({e}): every \
                 certificate login fails while it does not. Is getacert running, and the \
                 loopback server/virtual host of the shipped configuration enabled?"
            )),
        }
    }
    (warnings, notes)
}

/// Paths as given, for the CLI.
pub fn files_or_default(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() {
        default_files()
    } else {
        given.iter().map(|p| Path::new(p).to_path_buf()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_crl_and_ocsp_directives_of_both_servers_and_ignores_comments() {
        let mut f = Found::default();
        scan_text(
            "n.conf",
            "\tssl_crl /etc/getacert/crl.pem;\n\t#ssl_ocsp on;\n\tssl_ocsp leaf;\n\
             \tssl_ocsp_responder http://127.0.0.1:8961/ocsp;\n",
            &mut f,
        );
        scan_text(
            "a.conf",
            "SSLCARevocationFile /x/crl.pem\nSSLOCSPEnable off\nSSLOCSPDefaultResponder \"http://h/ocsp\"\n",
            &mut f,
        );
        assert_eq!(f.crl, vec!["n.conf:1", "a.conf:1"]);
        assert_eq!(f.ocsp, vec!["n.conf:3"]);
        assert_eq!(
            f.responders,
            vec![
                ("http://127.0.0.1:8961/ocsp".to_string(), "n.conf:4".to_string()),
                ("http://h/ocsp".to_string(), "a.conf:3".to_string())
            ]
        );
    }
}
