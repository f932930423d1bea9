//! Who is asking: the `SSL_CLIENT_*` parameters the web server passed, turned into an
//! [`Identity`] only when the certificate is the one this CA filed under that serial, not
//! revoked and not expired, checked under the database lock. Anything else is
//! anonymous. A signed-in request marks its certificate seen (and completes the renewal
//! that certificate was made by, see `account`). This file decides nothing about what a
//! signed-in user may do.

use openssl::nid::Nid;
use openssl::x509::X509;

use crate::ca::index::Serial;
use crate::ca::store::Locked;
use crate::enroll::username::Username;
use crate::web::Request;

use super::{App, Now, Refusal, remote};

/// A signed-in user: the username and the serial of the certificate they presented,
/// made only by [`App::client_identity`] once that certificate proved to be the one on
/// file, valid and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: Username,
    pub serial: Serial,
    /// The certificate's notAfter (Unix time).
    pub not_after: i64,
}

impl App {
    /// Who is asking: the web server verified a client certificate
    /// (`SSL_CLIENT_VERIFY=SUCCESS`), and the certificate it passed (`SSL_CLIENT_CERT`)
    /// is byte for byte the one this CA filed under `SSL_CLIENT_M_SERIAL` in newcerts/,
    /// not revoked in index.txt (whether or not the web server loaded a CRL) and not
    /// expired at `now`. Anything else is anonymous.
    ///
    /// The database lock held elsewhere is `Err(Busy)`, never "anonymous": a signed-in
    /// user must not be told their name is taken because the lock was slow.
    pub(crate) fn client_identity(&self, req: &Request, now: Now) -> Result<Option<Identity>, Refusal> {
        if req.param_str("SSL_CLIENT_VERIFY") != Some("SUCCESS") {
            return Ok(None);
        }
        let Some(presented) = presented(req) else {
            return Ok(None);
        };
        let mut locked = self.store.lock()?;
        let who = identify(req, &locked, presented, now.secs);
        // Seen in use (written at most every few minutes); a renewal by this certificate
        // completes now, since the handshake proved its key.
        if let Some(who) = &who
            && let Some(old) = locked.device_seen(&who.serial, now.secs)
        {
            self.complete_renewal(&mut locked, who, &old, now.secs);
        }
        Ok(who)
    }
}

/// The serial and certificate the web server passed, if both are readable.
fn presented(req: &Request) -> Option<(Serial, X509)> {
    let serial = Serial::parse(req.param_str("SSL_CLIENT_M_SERIAL")?)?;
    let cert = X509::from_pem(&client_cert_pem(req.param_str("SSL_CLIENT_CERT")?)).ok()?;
    Some((serial, cert))
}

fn identify(
    req: &Request,
    locked: &Locked<'_>,
    (serial, presented): (Serial, X509),
    now: i64,
) -> Option<Identity> {
    if locked.is_revoked(&serial) {
        log::info!(target: "audit", "revoked certificate serial={serial} presented by {}", remote(req));
        return None;
    }
    let on_file = locked.cert_on_file(&serial)?;
    let on_file = X509::from_pem(&on_file).ok()?;
    if on_file.to_der().ok()? != presented.to_der().ok()? {
        log::info!(target: "audit", "client certificate serial={serial} does not match the one on file ({})", remote(req));
        return None;
    }
    let not_after = not_after_unix(&on_file)?;
    if not_after <= now {
        return None;
    }
    let cn = on_file.subject_name().entries_by_nid(Nid::COMMONNAME).last()?;
    Some(Identity {
        username: Username::issued(cn.data().to_string().ok()?),
        serial,
        not_after,
    })
}

/// A certificate's notAfter in Unix seconds.
fn not_after_unix(cert: &X509) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let not_after = epoch.diff(cert.not_after()).ok()?;
    Some(i64::from(not_after.days) * 86400 + i64::from(not_after.secs))
}

/// The client certificate as nginx (`$ssl_client_escaped_cert`, URL-encoded;
/// `$ssl_client_cert`, tab-indented) or Apache (`SSL_CLIENT_CERT`, plain PEM) passes it.
fn client_cert_pem(value: &str) -> Vec<u8> {
    let decoded: String = if value.contains('%') {
        form_urlencoded::parse(format!("x={}", value.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    } else {
        value.to_string()
    };
    decoded
        .lines()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----";

    #[test]
    fn client_cert_as_each_web_server_passes_it() {
        // Apache: plain PEM.
        assert_eq!(client_cert_pem(PEM), PEM.as_bytes());
        // nginx $ssl_client_cert: every line after the first indented by a tab.
        assert_eq!(client_cert_pem(&PEM.replace('\n', "\n\t")), PEM.as_bytes());
        // nginx $ssl_client_escaped_cert: URL-encoded; a '+' of base64 stays a '+'.
        let escaped = "-----BEGIN%20CERTIFICATE-----%0AMI+B%0AAAAA%0A-----END%20CERTIFICATE-----%0A";
        assert_eq!(client_cert_pem(escaped), PEM.replace("MIIB", "MI+B").as_bytes());
    }
}
