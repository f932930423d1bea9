//! A public key request, SPKAC or PKCS#10 CSR, as posted. A [`PublicKeyRequest`] exists
//! only after its signature verified with its own key, so an unverified key never
//! reaches the signer. The subject of a CSR is ignored: getacert builds its own.

use base64::Engine;
use openssl::pkey::{PKey, Public};
use openssl::x509::X509Req;

use super::der;
use crate::ffi::openssl::spkac_from_der;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Spkac,
    Csr,
}

/// A verified request: the key, and for an SPKAC the challenge it signed.
pub struct PublicKeyRequest {
    pub kind: Kind,
    pub public_key: PKey<Public>,
    pub challenge: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    NotBase64,
    TooLarge,
    NotSpkac,
    NotCsr,
    BadSignature,
}

const MAX_DER: usize = 32 * 1024;

/// Base64 as form posts bring it: an optional `SPKAC=` prefix, line breaks anywhere,
/// and `+` turned into a space by form encoding (restored here).
fn base64_body(text: &str) -> Result<Vec<u8>, RequestError> {
    let text = text.trim();
    let text = text.strip_prefix("SPKAC=").unwrap_or(text);
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\t'))
        .map(|c| if c == ' ' { '+' } else { c })
        .collect();
    if cleaned.len() > MAX_DER * 4 / 3 + 4 {
        return Err(RequestError::TooLarge);
    }
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    engine
        .decode(cleaned.as_bytes())
        .map_err(|_| RequestError::NotBase64)
}

/// The fast path for the common requests (RSA or named-curve EC keys, PKCS#1 v1.5 or
/// ECDSA signatures): the key built and the signature checked without OpenSSL 3.0's
/// generic decoder. `None` sends the request down OpenSSL's own path.
fn fast_verify(signed: &der::Signed<'_>) -> Option<(PKey<Public>, bool)> {
    let key = der::public_key(signed.spki)?;
    let md = der::signature_digest(signed.algorithm)?;
    let valid = {
        let mut verifier = openssl::sign::Verifier::new(md, &key).ok()?;
        verifier.update(signed.tbs).ok()?;
        verifier.verify(signed.signature).unwrap_or(false)
    };
    Some((key, valid))
}

impl PublicKeyRequest {
    /// An SPKAC from `<keygen>`, keygen.js or `openssl spkac`.
    pub fn from_spkac(text: &str) -> Result<PublicKeyRequest, RequestError> {
        let der = base64_body(text)?;
        if let Some(signed) = der::spkac(&der)
            && let Some((public_key, valid)) = fast_verify(&signed)
        {
            if !valid {
                return Err(RequestError::BadSignature);
            }
            return Ok(PublicKeyRequest {
                kind: Kind::Spkac,
                public_key,
                challenge: signed.challenge.map(|c| String::from_utf8_lossy(c).into_owned()),
            });
        }
        let spkac = spkac_from_der(&der).map_err(|_| RequestError::NotSpkac)?;
        if !spkac.signature_valid {
            return Err(RequestError::BadSignature);
        }
        Ok(PublicKeyRequest {
            kind: Kind::Spkac,
            public_key: spkac.public_key,
            challenge: Some(String::from_utf8_lossy(&spkac.challenge).into_owned()),
        })
    }

    /// A CSR, PEM (`-----BEGIN CERTIFICATE REQUEST-----`, also `NEW CERTIFICATE
    /// REQUEST`) or bare base64 DER.
    pub fn from_csr(text: &str) -> Result<PublicKeyRequest, RequestError> {
        let text = text.trim();
        let der = if let Some(start) = text.find("-----BEGIN") {
            let body = &text[start..];
            let inner: String = body
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("-----"))
                .collect();
            base64_body(&inner)?
        } else {
            base64_body(text)?
        };
        if der.len() > MAX_DER {
            return Err(RequestError::TooLarge);
        }
        if let Some(signed) = der::csr(&der)
            && let Some((public_key, valid)) = fast_verify(&signed)
        {
            if !valid {
                return Err(RequestError::BadSignature);
            }
            return Ok(PublicKeyRequest {
                kind: Kind::Csr,
                public_key,
                challenge: None,
            });
        }
        let req = X509Req::from_der(&der).map_err(|_| RequestError::NotCsr)?;
        let public_key = req.public_key().map_err(|_| RequestError::NotCsr)?;
        if !req.verify(&public_key).unwrap_or(false) {
            return Err(RequestError::BadSignature);
        }
        Ok(PublicKeyRequest {
            kind: Kind::Csr,
            public_key,
            challenge: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_forms() {
        assert_eq!(base64_body("SPKAC=QUJD").unwrap(), b"ABC");
        assert_eq!(base64_body("QU\r\nJD\n").unwrap(), b"ABC");
        // "+/8=" is [0xfb, 0xff]; a form post without %2B turns + into a space.
        assert_eq!(base64_body("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_body("A /8").unwrap(), base64_body("A+/8").unwrap());
        assert_eq!(base64_body("***").unwrap_err(), RequestError::NotBase64);
    }
}
