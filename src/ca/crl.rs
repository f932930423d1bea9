//! Revocation and the CRL: index.txt records marked `R` as `openssl ca -revoke` marks
//! them, `-updatedb`'s expiry marking, and a CRL as `openssl ca -gencrl` makes it
//! (cRLNumber from the crlnumber file, authorityKeyIdentifier, reason codes). Every
//! function here runs under the database lock it is given.

use std::path::PathBuf;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;

use super::index::{self, Record, Status};
use super::sign::Ca;
use super::store::{CaFile, Locked, StoreError};
use crate::config::Config;
use crate::ffi::openssl::{CrlEntry, make_crl};

/// The reasons `openssl ca -crl_reason` accepts, with their RFC 5280 codes.
pub const REASONS: &[(&str, i32)] = &[
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("CACompromise", 2),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("certificateHold", 6),
    ("removeFromCRL", 8),
];

/// The reason as index.txt spells it, from any case.
pub fn reason_name(given: &str) -> Option<&'static str> {
    REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(given))
        .map(|(n, _)| *n)
}

pub fn reason_code(name: &str) -> Option<i32> {
    REASONS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

/// Marks the `V` records `select` picks as revoked now with `reason`. Returns them.
pub fn revoke(
    locked: &mut Locked<'_>,
    reason: Option<&'static str>,
    now: i64,
    mut select: impl FnMut(&Record) -> bool,
) -> Result<Vec<Record>, StoreError> {
    let stamp = match reason {
        Some(r) => format!("{},{r}", index::asn1_time(now)),
        None => index::asn1_time(now),
    };
    locked.rewrite(|r| {
        if r.status == Status::Valid && select(r) {
            r.status = Status::Revoked;
            r.revoked = stamp.clone();
            true
        } else {
            false
        }
    })
}

/// Marks `V` records past their notAfter as `E`, as `openssl ca -updatedb`.
pub fn update_db(locked: &mut Locked<'_>, now: i64) -> Result<Vec<Record>, StoreError> {
    locked.rewrite(|r| {
        if r.status == Status::Valid && r.expires_unix() <= now {
            r.status = Status::Expired;
            true
        } else {
            false
        }
    })
}

#[derive(Debug)]
pub enum CrlError {
    Store(StoreError),
    CrlNumber(PathBuf, String),
    Sign(String),
}

impl std::fmt::Display for CrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlError::Store(e) => write!(f, "{e}"),
            CrlError::CrlNumber(p, why) => write!(f, "{}: {why}", p.display()),
            CrlError::Sign(e) => write!(f, "making the CRL: {e}"),
        }
    }
}

impl std::error::Error for CrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CrlError::Store(e) => Some(e),
            CrlError::CrlNumber(..) | CrlError::Sign(_) => None,
        }
    }
}

impl From<StoreError> for CrlError {
    fn from(e: StoreError) -> CrlError {
        CrlError::Store(e)
    }
}

/// Makes a CRL of every revoked record, signed by the CA, valid for `default_crl_days`,
/// numbered from the crlnumber file (which is advanced durably). Returns the PEM, and
/// writes it to the configured CRL file too when `to_crl_file` is set (`getacert crl
/// --out FILE` writes only FILE).
pub fn generate(
    locked: &mut Locked<'_>,
    config: &Config,
    ca: &Ca,
    now: i64,
    to_crl_file: bool,
) -> Result<Vec<u8>, CrlError> {
    let sign_err = |e: openssl::error::ErrorStack| CrlError::Sign(e.to_string());
    let mut entries = Vec::new();
    for r in locked.records()? {
        if r.status != Status::Revoked {
            continue;
        }
        let (time, reason) = match r.revoked.split_once(',') {
            Some((t, reason)) => (t, reason_code(reason)),
            None => (r.revoked.as_str(), None),
        };
        let at = index::parse_asn1_time(time).unwrap_or(now);
        entries.push(CrlEntry {
            serial: BigNum::from_hex_str(&r.serial).map_err(sign_err)?,
            revoked_at: Asn1Time::from_str(&index::asn1_time(at)).map_err(sign_err)?,
            reason,
        });
    }
    let number = match locked.read(CaFile::CrlNumber) {
        Ok(Some(t)) => index::normalize_serial(&t).ok_or_else(|| {
            CrlError::CrlNumber(
                locked.path(CaFile::CrlNumber).unwrap_or_default(),
                format!("{:?} is not hexadecimal", t.trim()),
            )
        })?,
        Ok(None) => "1000".to_string(),
        Err(StoreError::Io { path, err, .. }) => return Err(CrlError::CrlNumber(path, err.to_string())),
        Err(e) => return Err(e.into()),
    };
    let last = Asn1Time::from_str(&index::asn1_time(now)).map_err(sign_err)?;
    let next =
        Asn1Time::from_str(&index::asn1_time(now + i64::from(config.crl_days) * 86_400)).map_err(sign_err)?;
    let bn = BigNum::from_hex_str(&number).map_err(sign_err)?;
    let crl =
        make_crl(&ca.cert, ca.key(), ca.digest(config), &last, &next, &bn, &entries).map_err(sign_err)?;
    let pem = crl.to_pem().map_err(sign_err)?;
    locked.replace(
        CaFile::CrlNumber,
        format!("{}\n", index::serial_next(&number)).as_bytes(),
    )?;
    if to_crl_file {
        locked.replace(CaFile::Crl, &pem)?;
    }
    Ok(pem)
}
