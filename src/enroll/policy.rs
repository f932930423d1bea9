//! Which public keys may be certified, and the words used for them in messages and logs.

use openssl::ec::Asn1Flag;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKeyRef, Public};

use crate::config::{KeyPolicy, curve_name};

/// A key that the policy accepted, described for the audit log ("RSA-2048", "EC P-256").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedKey {
    pub description: String,
    /// RSA keys also get keyEncipherment.
    pub is_rsa: bool,
}

/// The key and what is accepted, for a refusal message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRefused {
    pub key: String,
    pub accepted: String,
}

/// The named curve of an EC key, or `None` when the key carries explicit curve
/// parameters (OpenSSL 3 still reports the curve name when the parameters equal a named
/// curve; RFC 5480 forbids explicit parameters in certificates either way).
fn named_curve(key: &PKeyRef<Public>) -> Option<Nid> {
    let ec = key.ec_key().ok()?;
    if ec.group().asn1_flag() != Asn1Flag::NAMED_CURVE {
        return None;
    }
    ec.group().curve_name()
}

pub fn describe(key: &PKeyRef<Public>) -> String {
    match key.id() {
        Id::RSA => match key
            .rsa()
            .ok()
            .and_then(|r| r.e().to_dec_str().ok().map(|e| e.to_string()))
        {
            Some(e) if e != "65537" && e.len() <= 20 => format!("RSA-{} with e = {e}", key.bits()),
            _ => format!("RSA-{}", key.bits()),
        },
        Id::EC => match named_curve(key) {
            Some(nid) => match curve_name(nid) {
                "an unsupported curve" => format!("EC {}", nid.short_name().unwrap_or("unknown")),
                name => format!("EC {name}"),
            },
            None => "EC with explicit curve parameters".to_string(),
        },
        Id::ED25519 => "Ed25519".to_string(),
        Id::ED448 => "Ed448".to_string(),
        Id::DSA => format!("DSA-{}", key.bits()),
        other => format!("key type {}", other.as_raw()),
    }
}

pub fn accepted(policy: &KeyPolicy) -> String {
    let mut parts = Vec::new();
    if policy.rsa {
        parts.push(format!(
            "RSA {} to {} bits",
            policy.rsa_min_bits, policy.rsa_max_bits
        ));
    }
    if !policy.ec_curves.is_empty() {
        let names: Vec<&str> = policy.ec_curves.iter().map(|n| curve_name(*n)).collect();
        parts.push(format!("EC {}", names.join("/")));
    }
    if policy.ed25519 {
        parts.push("Ed25519".to_string());
    }
    parts.join(", ")
}

/// An RSA public exponent worth certifying: odd, at least 65537 and below 2^256 (as
/// NIST SP 800-56B asks; e = 1 signs nothing, e = 3 invites broadcast attacks).
fn rsa_exponent_ok(key: &PKeyRef<Public>) -> bool {
    let Ok(rsa) = key.rsa() else { return false };
    let e = rsa.e();
    let Ok(min) = openssl::bn::BigNum::from_u32(65537) else {
        return false;
    };
    e.is_bit_set(0) && e >= &*min && e.num_bits() <= 256
}

/// Checks the key against the policy. Both ways a request's key arrives (the fast DER
/// reader and OpenSSL's decoder) end here, so every key passes the same checks,
/// OpenSSL's own public-key check among them.
pub fn check(key: &PKeyRef<Public>, policy: &KeyPolicy) -> Result<AcceptedKey, KeyRefused> {
    let description = describe(key);
    let ok = match key.id() {
        Id::RSA => {
            policy.rsa
                && (policy.rsa_min_bits..=policy.rsa_max_bits).contains(&key.bits())
                && rsa_exponent_ok(key)
                && crate::ffi::openssl::public_key_check(key)
        }
        Id::EC => named_curve(key).is_some_and(|nid| policy.ec_curves.contains(&nid)),
        Id::ED25519 => policy.ed25519,
        _ => false,
    };
    if ok {
        Ok(AcceptedKey {
            description,
            is_rsa: key.id() == Id::RSA,
        })
    } else {
        Err(KeyRefused {
            key: description,
            accepted: accepted(policy),
        })
    }
}
