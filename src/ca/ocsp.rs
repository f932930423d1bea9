//! RFC 6960 OCSP answers: a DER `OCSPRequest` in, a DER `OCSPResponse` out, for the
//! certificates this CA issued. Pure apart from the signature: the time, the validity
//! and the status of each serial are arguments, so tests fix them.
//!
//! - Each certificate of the request is answered (up to [`MAX_CERTS`]): a CertID whose
//!   issuer name and key hashes are this CA's (SHA-1, SHA-256, SHA-384 or SHA-512) gets
//!   its serial's status — `V` or `E` in index.txt is `good` (OCSP says "not revoked";
//!   expiry is the TLS stack's check), `R` is `revoked` with its time and reason, a
//!   serial not in index.txt is `unknown`; any other issuer or hash is `unknown`.
//! - `thisUpdate` is now and `nextUpdate` now + validity: how long nginx's cache and
//!   any HTTP cache may keep the answer. (The daemon may give a young answer again to
//!   the same request: `ca::ocsp_cache`.)
//! - A nonce in the request is echoed (mod_ssl sends one and checks it).
//! - Signed by the CA key itself, the responder named by key hash, the CA certificate
//!   included (mod_ssl and nginx look for the signer there). See docs/deployment.md for
//!   why not a delegated responder certificate.
//! - Anything that is not a well-formed request is `malformedRequest` (unsigned, as
//!   RFC 6960 says); a failure to read the database or sign is `internalError`. Never
//!   a panic, never an unsigned "good".
//!
//! `producedAt` is set by OpenSSL's `OCSP_basic_sign` from the system clock.

use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ocsp::{OcspRequest, OcspResponse, OcspResponseStatus};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::index;
use super::sign::Ca;
use super::status::Entry;
use crate::ffi::ocsp::{self as ffi, BasicBuilder, CertIdInfo, SingleStatus};

/// Certificates answered in one request; more is `malformedRequest` (a TLS server asks
/// about one).
pub const MAX_CERTS: usize = 64;

/// The longest nonce echoed, in bytes of its DER (RFC 8954: a nonce is 1 to 32 octets,
/// plus 2 bytes of OCTET STRING header). A longer one is `malformedRequest`: nobody may
/// have the CA key sign kilobytes of bytes of their choosing.
pub const MAX_NONCE_DER: usize = 34;

/// What an answer is, for the HTTP layer and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A signed answer for `certs` certificates, valid from `this_update` to
    /// `next_update` (seconds since the epoch).
    Successful {
        certs: usize,
        this_update: i64,
        next_update: i64,
        /// The request carried a nonce (echoed): such an answer is for one request only.
        nonce: bool,
    },
    Malformed(&'static str),
    Internal(String),
}

pub struct Answer {
    pub der: Vec<u8>,
    pub outcome: Outcome,
}

/// The CA as an OCSP responder: its key, certificate and its own CertID hashes.
pub struct Responder {
    cert: X509,
    key: PKey<Private>,
    digest: Option<MessageDigest>,
    issuer_ids: Vec<CertIdInfo>,
}

/// The error responses are fixed bytes (RFC 6960 4.2.1: `OCSPResponse` with only a
/// status): built by hand so that producing one can never fail.
fn unsigned(status: OcspResponseStatus) -> Vec<u8> {
    OcspResponse::create(status, None)
        .and_then(|r| r.to_der())
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status.as_raw() as u8])
}

impl Responder {
    pub fn new(ca: &Ca, digest: Option<MessageDigest>) -> Result<Responder, ErrorStack> {
        let mut issuer_ids = Vec::new();
        for md in [
            MessageDigest::sha1(),
            MessageDigest::sha256(),
            MessageDigest::sha384(),
            MessageDigest::sha512(),
        ] {
            issuer_ids.push(ffi::issuer_id(md, &ca.cert)?);
        }
        Ok(Responder {
            cert: ca.cert.clone(),
            key: ca.key().to_owned(),
            digest,
            issuer_ids,
        })
    }

    /// True when `id` names this CA as the issuer.
    fn ours(&self, id: &CertIdInfo) -> bool {
        id.hash != Nid::UNDEF
            && self
                .issuer_ids
                .iter()
                .any(|o| o.hash == id.hash && o.name_hash == id.name_hash && o.key_hash == id.key_hash)
    }

    /// Answers `request` (DER) at `now`, valid for `validity` seconds. `status` gets the
    /// serials (normalized hex) of the certificates that are this CA's and returns the
    /// index.txt entry of each (`None`: not in the database).
    pub fn answer<E: std::fmt::Display>(
        &self,
        request: &[u8],
        now: i64,
        validity: u32,
        status: impl FnOnce(&[String]) -> Result<Vec<Option<Entry>>, E>,
    ) -> Answer {
        let malformed = |why: &'static str| Answer {
            der: unsigned(OcspResponseStatus::MALFORMED_REQUEST),
            outcome: Outcome::Malformed(why),
        };
        let internal = |why: String| Answer {
            der: unsigned(OcspResponseStatus::INTERNAL_ERROR),
            outcome: Outcome::Internal(why),
        };
        if request.is_empty() {
            return malformed("empty request");
        }
        let Ok(req) = OcspRequest::from_der(request) else {
            return malformed("not a DER OCSPRequest");
        };
        // OpenSSL's decoder accepts trailing bytes; a request must be exactly one value.
        if req.to_der().ok().map(|d| d.len()) != Some(request.len()) {
            return malformed("bytes after the OCSPRequest");
        }
        let n = ffi::request_count(&req);
        if n == 0 {
            return malformed("no certificate asked about");
        }
        if n > MAX_CERTS {
            return malformed("too many certificates in one request");
        }
        if ffi::request_nonce_len(&req).is_some_and(|len| len > MAX_NONCE_DER) {
            return malformed("nonce longer than 32 bytes");
        }
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let Some(id) = ffi::request_id(&req, i) else {
                return malformed("unreadable CertID");
            };
            ids.push(id);
        }
        // Which of them are ours, and their serials.
        let ours: Vec<Option<String>> = ids
            .iter()
            .map(|id| {
                let serial = id.serial.as_ref().filter(|_| self.ours(id))?;
                let hex: String = serial.iter().map(|b| format!("{b:02X}")).collect();
                index::normalize_serial(&hex)
            })
            .collect();
        let wanted: Vec<String> = ours.iter().flatten().cloned().collect();
        let entries = if wanted.is_empty() {
            Vec::new()
        } else {
            match status(&wanted) {
                Ok(e) if e.len() == wanted.len() => e,
                Ok(_) => return internal("the status lookup answered the wrong count".into()),
                Err(e) => return internal(format!("reading the database: {e}")),
            }
        };
        match self.sign(&req, &ours, &entries, now, validity) {
            Ok(der) => Answer {
                der,
                outcome: Outcome::Successful {
                    certs: n,
                    this_update: now,
                    next_update: now + i64::from(validity),
                    nonce: ffi::request_nonce_len(&req).is_some(),
                },
            },
            Err(e) => internal(format!("signing the OCSP response: {e}")),
        }
    }

    fn sign(
        &self,
        req: &OcspRequest,
        ours: &[Option<String>],
        entries: &[Option<Entry>],
        now: i64,
        validity: u32,
    ) -> Result<Vec<u8>, ErrorStack> {
        let this_update = Asn1Time::from_unix(now as libc::time_t)?;
        let next_update = Asn1Time::from_unix((now + i64::from(validity)) as libc::time_t)?;
        let mut basic = BasicBuilder::new()?;
        let mut next_entry = entries.iter();
        for (i, serial) in ours.iter().enumerate() {
            let entry = match serial {
                Some(_) => next_entry.next().copied().flatten(),
                None => None,
            };
            let revoked_at;
            let single = match entry {
                Some(Entry::Valid | Entry::Expired) => SingleStatus::Good,
                Some(Entry::Revoked { at, reason }) => {
                    revoked_at = Asn1Time::from_unix(at as libc::time_t)?;
                    SingleStatus::Revoked(&revoked_at, reason)
                }
                None => SingleStatus::Unknown,
            };
            basic.add(req, i, single, &this_update, &next_update)?;
        }
        basic.copy_nonce(req)?;
        let signed = basic.sign(&self.cert, &self.key, self.digest)?;
        OcspResponse::create(OcspResponseStatus::SUCCESSFUL, Some(&signed))?.to_der()
    }
}
