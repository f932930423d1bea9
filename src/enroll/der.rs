//! A strict DER reader for the few structures a key request is made of
//! (SignedPublicKeyAndChallenge, CertificationRequest, SubjectPublicKeyInfo,
//! AlgorithmIdentifier), and the RSA and named-curve EC keys they carry turned into
//! OpenSSL keys without OpenSSL 3.0's generic decoder, which costs about half an RSA
//! signature per key; likewise the CA's own private key (PKCS#8, or the traditional
//! RSA/EC PEM forms), which every CGI process reads. Pure: bytes in, slices out; anything unexpected is `None`, and
//! the caller then lets OpenSSL parse the request the slow way, so what is accepted
//! never depends on this module.

use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, EcPoint};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;

/// One TLV: its tag, its content, and the whole encoding (tag and length included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub whole: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest. Definite lengths
/// only, minimal long form, at most 4 length bytes, single-byte tags.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n || rest[0] == 0 {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        if len < 0x80 {
            return None;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((
        Tlv {
            tag,
            content: &rest[..len],
            whole: &input[..header + len],
        },
        &rest[len..],
    ))
}

/// Reads one TLV with the given tag.
pub fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    read(input).filter(|(t, _)| t.tag == tag)
}

pub const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const IA5STRING: u8 = 0x16;

/// The parts of a signed request: the signed bytes, the key, the signature algorithm,
/// the signature, and (SPKAC) the challenge.
pub struct Signed<'a> {
    pub tbs: &'a [u8],
    pub spki: &'a [u8],
    pub algorithm: &'a [u8],
    pub signature: &'a [u8],
    pub challenge: Option<&'a [u8]>,
}

/// `SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }` with nothing after it.
fn signed(der: &[u8]) -> Option<(Tlv<'_>, &[u8], &[u8])> {
    let (outer, after) = expect(der, SEQUENCE)?;
    if !after.is_empty() {
        return None;
    }
    let (tbs, rest) = expect(outer.content, SEQUENCE)?;
    let (alg, rest) = expect(rest, SEQUENCE)?;
    let (oid, _) = expect(alg.content, OID)?;
    let (sig, rest) = expect(rest, BIT_STRING)?;
    let (&unused, sig) = sig.content.split_first()?;
    (rest.is_empty() && unused == 0).then_some((tbs, oid.content, sig))
}

/// SignedPublicKeyAndChallenge ::= SEQUENCE { SEQUENCE { spki, IA5String }, alg, sig }.
pub fn spkac(der: &[u8]) -> Option<Signed<'_>> {
    let (tbs, algorithm, signature) = signed(der)?;
    let (spki, rest) = expect(tbs.content, SEQUENCE)?;
    let (challenge, rest) = expect(rest, IA5STRING)?;
    rest.is_empty().then_some(Signed {
        tbs: tbs.whole,
        spki: spki.whole,
        algorithm,
        signature,
        challenge: Some(challenge.content),
    })
}

/// CertificationRequest ::= SEQUENCE { SEQUENCE { version, subject, spki, [0] attrs },
/// alg, sig }.
pub fn csr(der: &[u8]) -> Option<Signed<'_>> {
    let (tbs, algorithm, signature) = signed(der)?;
    let (version, rest) = expect(tbs.content, 0x02)?;
    if version.content != [0] {
        return None;
    }
    let (_subject, rest) = expect(rest, SEQUENCE)?;
    let (spki, rest) = expect(rest, SEQUENCE)?;
    let (_attributes, rest) = expect(rest, 0xa0)?;
    rest.is_empty().then_some(Signed {
        tbs: tbs.whole,
        spki: spki.whole,
        algorithm,
        signature,
        challenge: None,
    })
}

// OIDs as their DER content bytes.
const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];

/// An RSA key or a named-curve (P-256/384/521) EC key from a SubjectPublicKeyInfo, as
/// a key OpenSSL handles without its decoder. `None` for anything else.
pub fn public_key(spki: &[u8]) -> Option<PKey<Public>> {
    let (seq, _) = expect(spki, SEQUENCE)?;
    let (alg, rest) = expect(seq.content, SEQUENCE)?;
    let (bits, rest) = expect(rest, BIT_STRING)?;
    let (&unused, key) = bits.content.split_first()?;
    if !rest.is_empty() || unused != 0 {
        return None;
    }
    let (oid, params) = expect(alg.content, OID)?;
    match oid.content {
        RSA_ENCRYPTION => {
            // Parameters must be NULL (or absent).
            if !(params.is_empty() || params == [0x05, 0x00]) {
                return None;
            }
            PKey::from_rsa(Rsa::public_key_from_der_pkcs1(key).ok()?).ok()
        }
        EC_PUBLIC_KEY => {
            let (curve, after) = expect(params, OID)?;
            if !after.is_empty() {
                return None;
            }
            let nid = curve_nid(curve.content)?;
            let mut group = EcGroup::from_curve_name(nid).ok()?;
            group.set_asn1_flag(openssl::ec::Asn1Flag::NAMED_CURVE);
            let mut ctx = BigNumContext::new().ok()?;
            let point = EcPoint::from_bytes(&group, key, &mut ctx).ok()?;
            let ec = EcKey::from_public_key(&group, &point).ok()?;
            ec.check_key().ok()?;
            PKey::from_ec_key(ec).ok()
        }
        _ => None,
    }
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

/// An unencrypted RSA or EC private key from PEM text (`PRIVATE KEY`, `RSA PRIVATE KEY`
/// or `EC PRIVATE KEY`) without OpenSSL 3.0's generic decoder, which costs a CGI
/// process about 4 million instructions for the CA key, an eighth of an enrollment
/// (callgrind). `None` for anything else (encrypted, other algorithms, odd PEM): the
/// caller then lets OpenSSL read the file, so what is accepted never depends on this.
pub fn private_key_pem(pem: &[u8]) -> Option<PKey<Private>> {
    let text = std::str::from_utf8(pem).ok()?;
    let begin = text.find("-----BEGIN ")?;
    let after = &text[begin + 11..];
    let (label, body) = after.split_once("-----")?;
    let end = body.find(&format!("-----END {label}-----"))?;
    let b64: String = body[..end].split_ascii_whitespace().collect();
    if b64.contains(':') {
        return None; // headers: an encrypted traditional key
    }
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    match label {
        "PRIVATE KEY" => pkcs8_private_key(&der),
        "RSA PRIVATE KEY" => PKey::from_rsa(Rsa::private_key_from_der(&der).ok()?).ok(),
        "EC PRIVATE KEY" => named_curve_ec(EcKey::private_key_from_der(&der).ok()?),
        _ => None,
    }
}

/// PrivateKeyInfo (RFC 5208): version 0, an RSA or EC algorithm, the key.
fn pkcs8_private_key(der: &[u8]) -> Option<PKey<Private>> {
    let (seq, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (version, rest) = expect(seq.content, INTEGER)?;
    let (alg, rest) = expect(rest, SEQUENCE)?;
    let (key, _attributes) = expect(rest, OCTET_STRING)?;
    if version.content != [0] {
        return None;
    }
    let (oid, params) = expect(alg.content, OID)?;
    match oid.content {
        RSA_ENCRYPTION if params.is_empty() || params == [0x05, 0x00] => {
            PKey::from_rsa(Rsa::private_key_from_der(key.content).ok()?).ok()
        }
        EC_PUBLIC_KEY => {
            let (curve, after) = expect(params, OID)?;
            if !after.is_empty() || curve_nid(curve.content).is_none() {
                return None;
            }
            let nid = curve_nid(curve.content)?;
            match EcKey::private_key_from_der(key.content) {
                Ok(ec) => named_curve_ec(ec),
                // OpenSSL leaves the curve out of the inner ECPrivateKey of a PKCS#8
                // file (the algorithm names it): build the key on that curve.
                Err(_) => ec_private_key_on(nid, key.content),
            }
        }
        _ => None,
    }
}

/// ECPrivateKey (RFC 5915) without parameters, on the curve `nid`: version 1, the
/// private scalar, the public point if present (else computed), checked to match.
fn ec_private_key_on(nid: Nid, der: &[u8]) -> Option<PKey<Private>> {
    let (seq, rest) = expect(der, SEQUENCE)?;
    if !rest.is_empty() {
        return None;
    }
    let (version, rest) = expect(seq.content, INTEGER)?;
    let (scalar, mut rest) = expect(rest, OCTET_STRING)?;
    if version.content != [1] {
        return None;
    }
    let mut group = EcGroup::from_curve_name(nid).ok()?;
    group.set_asn1_flag(openssl::ec::Asn1Flag::NAMED_CURVE);
    let mut ctx = BigNumContext::new().ok()?;
    let private = openssl::bn::BigNum::from_slice(scalar.content).ok()?;
    let mut public = None;
    while !rest.is_empty() {
        let (field, after) = read(rest)?;
        match field.tag {
            0xa0 => return None, // parameters here too: let OpenSSL judge them
            0xa1 => {
                let (bits, inner_rest) = expect(field.content, BIT_STRING)?;
                let (&0, point) = bits.content.split_first()? else {
                    return None;
                };
                if !inner_rest.is_empty() {
                    return None;
                }
                public = Some(EcPoint::from_bytes(&group, point, &mut ctx).ok()?);
            }
            _ => return None,
        }
        rest = after;
    }
    let public = match public {
        Some(p) => p,
        None => {
            let mut p = EcPoint::new(&group).ok()?;
            p.mul_generator2(&group, &private, &mut ctx).ok()?;
            p
        }
    };
    let ec = EcKey::from_private_components(&group, &private, &public).ok()?;
    ec.check_key().ok()?;
    named_curve_ec(ec)
}

fn curve_nid(oid: &[u8]) -> Option<Nid> {
    match oid {
        P256 => Some(Nid::X9_62_PRIME256V1),
        P384 => Some(Nid::SECP384R1),
        P521 => Some(Nid::SECP521R1),
        _ => None,
    }
}

fn named_curve_ec(ec: EcKey<Private>) -> Option<PKey<Private>> {
    if ec.group().asn1_flag() != openssl::ec::Asn1Flag::NAMED_CURVE {
        return None;
    }
    let nid = ec.group().curve_name()?;
    [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1]
        .contains(&nid)
        .then(|| PKey::from_ec_key(ec).ok())?
}

/// The digest of a signature algorithm this reader knows (RSA PKCS#1 v1.5 and ECDSA
/// with MD5, SHA-1 or SHA-2). RSA-PSS, Ed25519 and the rest: `None`.
pub fn signature_digest(algorithm: &[u8]) -> Option<MessageDigest> {
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    if let Some(last) = algorithm.strip_prefix(RSA) {
        return match last {
            [0x04] => Some(MessageDigest::md5()),
            [0x05] => Some(MessageDigest::sha1()),
            [0x0b] => Some(MessageDigest::sha256()),
            [0x0c] => Some(MessageDigest::sha384()),
            [0x0d] => Some(MessageDigest::sha512()),
            _ => None,
        };
    }
    match algorithm.strip_prefix(ECDSA)? {
        [0x01] => Some(MessageDigest::sha1()),
        [0x03, 0x02] => Some(MessageDigest::sha256()),
        [0x03, 0x03] => Some(MessageDigest::sha384()),
        [0x03, 0x04] => Some(MessageDigest::sha512()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// The fast reader gives exactly the key OpenSSL's own decoder gives.
    fn same_as_openssl(pem: &[u8]) {
        let fast = private_key_pem(pem)
            .unwrap_or_else(|| panic!("not read by the fast path: {}", String::from_utf8_lossy(pem)));
        let slow = PKey::private_key_from_pem(pem).unwrap();
        assert_eq!(
            fast.private_key_to_der().unwrap(),
            slow.private_key_to_der().unwrap()
        );
        assert!(fast.public_eq(&slow));
    }

    #[test]
    fn ca_key_fast_path_reads_rsa_and_named_curve_keys_as_openssl_does() {
        same_as_openssl(&fixture("rsa2048.key"));
        same_as_openssl(&fixture("ec-p256.key"));
        let rsa = Rsa::generate(2048).unwrap();
        same_as_openssl(&rsa.private_key_to_pem().unwrap()); // BEGIN RSA PRIVATE KEY
        for nid in [Nid::X9_62_PRIME256V1, Nid::SECP384R1, Nid::SECP521R1] {
            let ec = EcKey::generate(&EcGroup::from_curve_name(nid).unwrap()).unwrap();
            same_as_openssl(&ec.private_key_to_pem().unwrap()); // BEGIN EC PRIVATE KEY
            same_as_openssl(&PKey::from_ec_key(ec).unwrap().private_key_to_pem_pkcs8().unwrap());
        }
    }

    #[test]
    fn ca_key_fast_path_leaves_everything_else_to_openssl() {
        for name in ["ed25519.key", "dsa.key", "secp256k1.key", "ec-explicit.key"] {
            assert!(private_key_pem(&fixture(name)).is_none(), "{name}");
        }
        let rsa = Rsa::generate(2048).unwrap();
        let cipher = openssl::symm::Cipher::aes_128_cbc();
        let encrypted = rsa.private_key_to_pem_passphrase(cipher, b"pw").unwrap();
        assert!(private_key_pem(&encrypted).is_none(), "encrypted traditional key");
        let pkcs8 = PKey::from_rsa(rsa).unwrap();
        let encrypted = pkcs8.private_key_to_pem_pkcs8_passphrase(cipher, b"pw").unwrap();
        assert!(private_key_pem(&encrypted).is_none(), "encrypted PKCS#8 key");
        let good = fixture("rsa2048.key");
        for bad in [
            &b""[..],
            b"-----BEGIN PRIVATE KEY-----\n",
            &good[..good.len() / 2],
            b"\xff\xfe",
        ] {
            assert!(private_key_pem(bad).is_none());
        }
    }

    #[test]
    fn tlv_lengths() {
        assert_eq!(
            read(&[0x30, 0x00]).map(|(t, r)| (t.tag, t.content.len(), r.len())),
            Some((0x30, 0, 0))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(read(&long).map(|(t, _)| t.content.len()), Some(0x80));
        for bad in [
            &[0x30][..],               // no length
            &[0x30, 0x02, 0x00],       // short content
            &[0x30, 0x80],             // indefinite length
            &[0x30, 0x81, 0x05, 0, 0], // long form for a short length
            &[0x30, 0x82, 0x00, 0x80], // leading zero length byte
            &[0x1f, 0x01, 0x00],       // multi-byte tag
            &[0x30, 0x85, 1, 1, 1, 1, 1],
        ] {
            assert_eq!(read(bad), None, "{bad:02x?}");
        }
    }

    proptest::proptest! {
        /// No input makes the reader panic or read out of bounds.
        #[test]
        fn any_bytes_are_safe(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = read(&bytes);
            let _ = spkac(&bytes);
            let _ = csr(&bytes);
            let _ = public_key(&bytes);
            let _ = signature_digest(&bytes);
            let _ = pkcs8_private_key(&bytes);
            let _ = ec_private_key_on(Nid::X9_62_PRIME256V1, &bytes);
            let _ = private_key_pem(&bytes);
        }
    }

    fn fixture_der(name: &str) -> Vec<u8> {
        use base64::Engine;
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let body: String = text
            .trim()
            .trim_start_matches("SPKAC=")
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }

    /// The fast path takes the common requests (fixtures made by `openssl spkac` and
    /// `openssl req`; see tests/fixtures/README.md) and leaves the rest to OpenSSL.
    #[test]
    fn fast_path_takes_rsa_and_named_curves_only() {
        for (name, fast) in [
            ("rsa2048.spkac", true),
            ("rsa2048-md5.spkac", true),
            ("ec-p256.spkac", true),
            ("secp256k1.spkac", false),
            ("dsa.spkac", false),
        ] {
            let der = fixture_der(name);
            let signed = spkac(&der).expect(name);
            assert_eq!(public_key(signed.spki).is_some(), fast, "{name}");
            assert!(signed.challenge.is_some());
        }
        for (name, fast) in [
            ("rsa2048.csr", true),
            ("ec-p256.csr", true),
            ("ec-explicit.csr", false),
            ("ed25519.csr", false),
            ("secp256k1.csr", false),
        ] {
            let der = fixture_der(name);
            let signed = csr(&der).expect(name);
            assert_eq!(public_key(signed.spki).is_some(), fast, "{name}");
        }
    }

    #[test]
    fn digests_by_oid() {
        let md5 = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];
        assert_eq!(
            signature_digest(&md5).map(|m| m.type_()),
            Some(MessageDigest::md5().type_())
        );
        let ecdsa256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        assert_eq!(
            signature_digest(&ecdsa256).map(|m| m.type_()),
            Some(MessageDigest::sha256().type_())
        );
        let pss = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
        assert!(signature_digest(&pss).is_none());
    }
}
