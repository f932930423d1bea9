//! The CA's key and certificate, the subject of an issued certificate (built from the
//! config and the username, never from the request, with the `policy` section applied as
//! `openssl ca` applies it), and the certificate profile.
//!
//! This module does not touch the database: `ca::store` records what is signed here.

use std::fmt;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Name, X509NameBuilder, X509Ref};

use super::index::{self, Record, Status};
use crate::config::{Config, PolicyRule};
use crate::enroll::policy::AcceptedKey;
use crate::enroll::username::{Email, Username};
use crate::ffi::openssl as ffi;

/// The signing CA.
pub struct Ca {
    pub cert: X509,
    key: PKey<Private>,
}

#[derive(Debug)]
pub enum CaError {
    Read { path: String, err: std::io::Error },
    NotPem { path: String, what: &'static str },
    Mismatch,
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Read { path, err } => write!(f, "{path}: cannot read: {err}"),
            CaError::NotPem { path, what } => write!(
                f,
                "{path}: not an unencrypted PEM {what} (getacert cannot prompt for a passphrase; \
                 decrypt it with `openssl pkey -in KEY -out KEY.new` and keep it 0600)"
            ),
            CaError::Mismatch => write!(f, "the CA private key does not belong to the CA certificate"),
        }
    }
}

impl Ca {
    /// The CA of a loaded config: its certificate (already read by `Config::load`)
    /// and the private key, which must belong to it.
    pub fn load(config: &Config) -> Result<Ca, CaError> {
        let private_key = &config.paths.private_key;
        let pem = super::store::read_private_key(private_key).map_err(|err| CaError::Read {
            path: private_key.display().to_string(),
            err,
        })?;
        let key = match crate::enroll::der::private_key_pem(&pem) {
            Some(key) => key,
            None => PKey::private_key_from_pem(&pem).map_err(|_| CaError::NotPem {
                path: private_key.display().to_string(),
                what: "private key",
            })?,
        };
        let cert = config.ca_cert.clone();
        let matches = cert.public_key().map(|p| p.public_eq(&key)).unwrap_or(false);
        if !matches {
            return Err(CaError::Mismatch);
        }
        Ok(Ca { cert, key })
    }

    pub fn key(&self) -> &PKeyRef<Private> {
        &self.key
    }

    /// The digest to sign with: none for Ed25519/Ed448 keys, else the configured one.
    pub fn digest(&self, config: &Config) -> Option<openssl::hash::MessageDigest> {
        match self.key.id() {
            Id::ED25519 | Id::ED448 => None,
            _ => Some(config.digest),
        }
    }
}

/// Why a subject could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectError {
    /// The policy says `emailAddress = supplied` and the form had none.
    EmailRequired,
    /// The configuration cannot satisfy its own policy (found by `check` and at start).
    Config(String),
}

fn field_name(nid: Nid) -> String {
    nid.short_name().unwrap_or("?").to_string()
}

/// The subject for `username`: C, ST, L, O, OU from the config (defaults from the CA
/// certificate), CN = username, emailAddress = email; then the policy section decides,
/// as in `openssl ca`: `match` must equal the CA's value, `supplied` must be present,
/// `optional` may be; fields the policy does not name are dropped unless
/// `preserve = yes`; `email_in_dn = no` drops the email.
pub fn build_subject(
    config: &Config,
    ca: &X509Ref,
    username: &Username,
    email: Option<&Email>,
) -> Result<X509Name, SubjectError> {
    let s = &config.subject;
    let ours: Vec<(Nid, Option<&str>)> = vec![
        (Nid::COUNTRYNAME, s.country.as_deref()),
        (Nid::STATEORPROVINCENAME, s.state.as_deref()),
        (Nid::LOCALITYNAME, s.locality.as_deref()),
        (Nid::ORGANIZATIONNAME, s.organization.as_deref()),
        (Nid::ORGANIZATIONALUNITNAME, s.organizational_unit.as_deref()),
        (Nid::COMMONNAME, Some(username.as_str())),
        (Nid::PKCS9_EMAILADDRESS, email.map(Email::as_str)),
    ];
    let value = |nid: Nid| ours.iter().find(|(n, _)| *n == nid).and_then(|(_, v)| *v);
    let ca_value = |nid: Nid| {
        ca.subject_name()
            .entries_by_nid(nid)
            .next()
            .and_then(|e| e.data().to_string().ok())
    };
    if !config.policy.iter().any(|(n, _)| *n == Nid::COMMONNAME) {
        return Err(SubjectError::Config(format!(
            "policy section has no commonName: the username would not be in the certificate (file {})",
            config.file.display()
        )));
    }
    let mut fields: Vec<(Nid, String)> = Vec::new();
    for &(nid, rule) in &config.policy {
        let v = value(nid).map(str::to_string);
        let v = match rule {
            PolicyRule::Match => {
                let Some(want) = ca_value(nid) else {
                    return Err(SubjectError::Config(format!(
                        "policy says {} = match, but the CA certificate has no {}",
                        field_name(nid),
                        field_name(nid)
                    )));
                };
                if v.as_ref().is_some_and(|v| *v != want) {
                    return Err(SubjectError::Config(format!(
                        "policy says {} = match, but [getacert] sets {:?} and the CA has {want:?}",
                        field_name(nid),
                        v.unwrap_or_default()
                    )));
                }
                Some(want)
            }
            PolicyRule::Supplied => match v {
                Some(v) => Some(v),
                None if nid == Nid::PKCS9_EMAILADDRESS => return Err(SubjectError::EmailRequired),
                None => {
                    return Err(SubjectError::Config(format!(
                        "policy says {} = supplied; set it in [getacert] or in the CA certificate",
                        field_name(nid)
                    )));
                }
            },
            PolicyRule::Optional => v,
        };
        if let Some(v) = v {
            fields.push((nid, v));
        }
    }
    if config.preserve {
        // Keep the request's order (ours) and fields the policy does not name.
        let mut all: Vec<(Nid, String)> = Vec::new();
        for (nid, v) in &ours {
            if let Some(f) = fields.iter().find(|(n, _)| n == nid) {
                all.push(f.clone());
            } else if let Some(v) = v {
                all.push((*nid, v.to_string()));
            }
        }
        fields = all;
    }
    if !config.email_in_dn {
        fields.retain(|(n, _)| *n != Nid::PKCS9_EMAILADDRESS);
    }
    let build = || -> Result<X509Name, ErrorStack> {
        let mut b = X509NameBuilder::new()?;
        for (nid, v) in &fields {
            b.append_entry_by_nid(*nid, v)?;
        }
        Ok(b.build())
    };
    build().map_err(|e| SubjectError::Config(format!("cannot encode the subject: {e}")))
}

/// The same public key as a "legacy" RSA or EC key. OpenSSL 3.0 encodes a key that a
/// decoder made (every key parsed from a request) through its provider encoder, which
/// costs about as much as the RSA signature itself; a legacy key is encoded directly
/// (measured: 263 µs against 3 µs). Other key types are used as they are.
fn legacy_key(key: &PKeyRef<Public>) -> Result<PKey<Public>, ErrorStack> {
    match key.id() {
        Id::RSA => PKey::from_rsa(key.rsa()?),
        Id::EC => PKey::from_ec_key(key.ec_key()?),
        _ => Ok(key.to_owned()),
    }
}

/// notBefore is set this many seconds in the past, so a verifier whose clock is a little
/// behind the CA's (or a VM clock stepped back) does not see a new certificate as "not
/// yet valid". notAfter still counts from now.
pub const NOT_BEFORE_SLACK: i64 = 300;

/// What an issued certificate looks like on the wire and in index.txt.
pub struct Issued {
    pub cert: X509,
    pub record: Record,
}

/// Builds and signs a client certificate: v3, the given serial, valid from `now` (less
/// [`NOT_BEFORE_SLACK`]) for
/// `config.days`, with either the ca.conf `x509_extensions` section (applied by OpenSSL
/// as `openssl ca` applies it) or getacert's profile: basicConstraints CA:FALSE
/// (critical), keyUsage digitalSignature (+ keyEncipherment for RSA), extendedKeyUsage
/// clientAuth, subject and authority key identifiers. An emailAddress in the subject is
/// also a subjectAltName rfc822Name (RFC 5280 4.1.2.6), under either profile unless the
/// `x509_extensions` section sets subjectAltName itself. Nothing comes from the request
/// but the public key.
pub fn issue(
    config: &Config,
    ca: &Ca,
    subject: &X509Name,
    public_key: &PKeyRef<Public>,
    key: &AcceptedKey,
    serial: &str,
    now: i64,
) -> Result<Issued, ErrorStack> {
    let not_after_unix = now + i64::from(config.days) * 86_400;
    let not_after = index::asn1_time(not_after_unix);
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let bn = BigNum::from_hex_str(serial)?;
    let serial_int = Asn1Integer::from_bn(&bn)?;
    b.set_serial_number(&serial_int)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(ca.cert.subject_name())?;
    let (from, until) = (
        Asn1Time::from_unix((now - NOT_BEFORE_SLACK) as libc::time_t)?,
        Asn1Time::from_str(&not_after)?,
    );
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    let public_key = legacy_key(public_key)?;
    b.set_pubkey(&public_key)?;
    let email = subject
        .entries_by_nid(Nid::PKCS9_EMAILADDRESS)
        .next()
        .map(|e| e.data().as_slice().to_vec());
    if let Some(email) = email.filter(|_| !config.x509_extensions_san)
        && let Ok(email) = String::from_utf8(email)
    {
        let san = SubjectAlternativeName::new()
            .email(&email)
            .build(&b.x509v3_context(Some(&ca.cert), None))?;
        b.append_extension(san)?;
    }
    if config.x509_extensions.is_none() {
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut ku = KeyUsage::new();
        ku.critical().digital_signature();
        if key.is_rsa {
            ku.key_encipherment();
        }
        b.append_extension(ku.build()?)?;
        b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(&ca.cert), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(&ca.cert), None))?;
        b.append_extension(aki)?;
    }
    let cert = b.build();
    if let Some(section) = &config.x509_extensions {
        ffi::add_extensions_from_conf(&config.conf, section, &ca.cert, &cert)?;
    }
    ffi::sign_certificate(&cert, ca.key(), ca.digest(config))?;
    let record = Record {
        status: Status::Valid,
        expires: not_after,
        revoked: String::new(),
        serial: serial.to_string(),
        file: "unknown".to_string(),
        subject: ffi::name_oneline(cert.subject_name()),
    };
    Ok(Issued { cert, record })
}
