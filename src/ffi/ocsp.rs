//! The OCSP functions rust-openssl does not wrap: reading the certificate IDs and the
//! nonce of a request, adding single responses to a basic response and signing it
//! (`OCSP_request_onereq_*`, `OCSP_id_get0_info`, `OCSP_basic_add1_status`,
//! `OCSP_copy_nonce`, `OCSP_basic_sign`). Nothing here decides a status: see `ca::ocsp`.

use std::ffi::{c_int, c_ulong};
use std::ptr;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::asn1::{Asn1IntegerRef, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ocsp::{OcspBasicResponse, OcspRequestRef};
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509Ref;
use openssl_sys as sys;

#[allow(non_camel_case_types)]
enum OCSP_SINGLERESP {}

unsafe extern "C" {
    fn OCSP_request_onereq_count(req: *mut sys::OCSP_REQUEST) -> c_int;
    fn OCSP_request_onereq_get0(req: *mut sys::OCSP_REQUEST, i: c_int) -> *mut sys::OCSP_ONEREQ;
    fn OCSP_onereq_get0_id(one: *mut sys::OCSP_ONEREQ) -> *mut sys::OCSP_CERTID;
    fn OCSP_id_get0_info(
        name_hash: *mut *mut sys::ASN1_OCTET_STRING,
        md: *mut *mut sys::ASN1_OBJECT,
        key_hash: *mut *mut sys::ASN1_OCTET_STRING,
        serial: *mut *mut sys::ASN1_INTEGER,
        cid: *mut sys::OCSP_CERTID,
    ) -> c_int;
    fn OCSP_basic_add1_status(
        rsp: *mut sys::OCSP_BASICRESP,
        cid: *mut sys::OCSP_CERTID,
        status: c_int,
        reason: c_int,
        revtime: *mut sys::ASN1_TIME,
        thisupd: *mut sys::ASN1_TIME,
        nextupd: *mut sys::ASN1_TIME,
    ) -> *mut OCSP_SINGLERESP;
    fn OCSP_copy_nonce(resp: *mut sys::OCSP_BASICRESP, req: *mut sys::OCSP_REQUEST) -> c_int;
    fn OCSP_REQUEST_get_ext_by_NID(req: *mut sys::OCSP_REQUEST, nid: c_int, lastpos: c_int) -> c_int;
    fn OCSP_REQUEST_get_ext(req: *mut sys::OCSP_REQUEST, loc: c_int) -> *mut sys::X509_EXTENSION;
    fn X509_EXTENSION_get_data(ext: *mut sys::X509_EXTENSION) -> *mut sys::ASN1_OCTET_STRING;
    fn ASN1_STRING_length(s: *const sys::ASN1_STRING) -> c_int;
    fn OCSP_basic_sign(
        brsp: *mut sys::OCSP_BASICRESP,
        signer: *mut sys::X509,
        key: *mut sys::EVP_PKEY,
        dgst: *const sys::EVP_MD,
        certs: *mut sys::stack_st_X509,
        flags: c_ulong,
    ) -> c_int;
}

/// What a CertID says: the hash algorithm, the issuer's name and key hashes, and the
/// serial as big-endian magnitude bytes (`None` for a negative serial, which no CA
/// issues).
pub struct CertIdInfo {
    pub hash: Nid,
    pub name_hash: Vec<u8>,
    pub key_hash: Vec<u8>,
    pub serial: Option<Vec<u8>>,
}

fn octets(s: *mut sys::ASN1_OCTET_STRING) -> Vec<u8> {
    if s.is_null() {
        return Vec::new();
    }
    // SAFETY: s is a live ASN1_OCTET_STRING owned by the CertID being read; the data
    // pointer is valid for `length` bytes while it lives, and we copy them at once.
    unsafe {
        let len = sys::ASN1_STRING_length(s as *const sys::ASN1_STRING);
        let data = sys::ASN1_STRING_get0_data(s as *const sys::ASN1_STRING);
        if data.is_null() || len <= 0 {
            return Vec::new();
        }
        std::slice::from_raw_parts(data, len as usize).to_vec()
    }
}

fn cert_id_info(cid: *mut sys::OCSP_CERTID) -> Option<CertIdInfo> {
    if cid.is_null() {
        return None;
    }
    let (mut name, mut md, mut key, mut serial) =
        (ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
    // SAFETY: cid is a live CERTID; the out-pointers receive borrowed pointers into it,
    // which are read below before it can be freed.
    let ok = unsafe { OCSP_id_get0_info(&mut name, &mut md, &mut key, &mut serial, cid) };
    if ok != 1 {
        return None;
    }
    let hash = if md.is_null() {
        Nid::UNDEF
    } else {
        // SAFETY: md is the CERTID's own, live ASN1_OBJECT.
        Nid::from_raw(unsafe { sys::OBJ_obj2nid(md) })
    };
    let serial = if serial.is_null() {
        None
    } else {
        // SAFETY: serial is the CERTID's own, live ASN1_INTEGER, borrowed for this call.
        let int = unsafe { Asn1IntegerRef::from_ptr(serial) };
        int.to_bn()
            .ok()
            .filter(|bn| !bn.is_negative())
            .map(|bn| bn.to_vec())
    };
    Some(CertIdInfo {
        hash,
        name_hash: octets(name),
        key_hash: octets(key),
        serial,
    })
}

/// The CertID of `issuer` itself (no serial) for `digest`: its name and key hashes.
pub fn issuer_id(digest: MessageDigest, issuer: &X509Ref) -> Result<CertIdInfo, ErrorStack> {
    // SAFETY: a NULL subject asks OCSP_cert_to_id for the issuer's own name and key
    // hashes; issuer is a live X509. The returned CERTID is owned here and freed below.
    let cid = unsafe { sys::OCSP_cert_to_id(digest.as_ptr(), ptr::null(), issuer.as_ptr()) };
    if cid.is_null() {
        return Err(ErrorStack::get());
    }
    let info = cert_id_info(cid);
    // SAFETY: cid was allocated above and nothing borrows it any more.
    unsafe { sys::OCSP_CERTID_free(cid) };
    info.ok_or_else(ErrorStack::get)
}

/// The number of certificates a request asks about.
pub fn request_count(req: &OcspRequestRef) -> usize {
    // SAFETY: req is a live OCSP_REQUEST; the count only reads it.
    let n = unsafe { OCSP_request_onereq_count(req.as_ptr()) };
    usize::try_from(n).unwrap_or(0)
}

/// The length in bytes of the request's nonce extension value (the DER of the nonce,
/// which is itself an OCTET STRING), `None` when there is none.
pub fn request_nonce_len(req: &OcspRequestRef) -> Option<usize> {
    // SAFETY: req is a live OCSP_REQUEST; the extension and its data are borrowed from
    // it and only their length is read, before req can be dropped.
    let len = unsafe {
        let loc = OCSP_REQUEST_get_ext_by_NID(req.as_ptr(), sys::NID_id_pkix_OCSP_Nonce, -1);
        if loc < 0 {
            return None;
        }
        let ext = OCSP_REQUEST_get_ext(req.as_ptr(), loc);
        if ext.is_null() {
            return None;
        }
        let data = X509_EXTENSION_get_data(ext);
        if data.is_null() {
            return None;
        }
        ASN1_STRING_length(data.cast())
    };
    usize::try_from(len).ok()
}

/// The `i`th CertID of a request, `None` past the end.
pub fn request_id(req: &OcspRequestRef, i: usize) -> Option<CertIdInfo> {
    let i = c_int::try_from(i).ok()?;
    // SAFETY: req is live and i is checked by OpenSSL against the count (NULL past it);
    // both returned pointers are borrowed from req, which outlives this call.
    let cid = unsafe {
        let one = OCSP_request_onereq_get0(req.as_ptr(), i);
        if one.is_null() {
            return None;
        }
        OCSP_onereq_get0_id(one)
    };
    cert_id_info(cid)
}

/// One certificate's answer for [`BasicBuilder::add`].
pub enum SingleStatus<'a> {
    Good,
    /// Revoked at the time, with an RFC 5280 reason code (`None`: no reason given).
    Revoked(&'a Asn1TimeRef, Option<i32>),
    Unknown,
}

/// A basic OCSP response being built.
pub struct BasicBuilder {
    resp: OcspBasicResponse,
}

impl BasicBuilder {
    pub fn new() -> Result<BasicBuilder, ErrorStack> {
        // SAFETY: a fresh, owned OCSP_BASICRESP (NULL on allocation failure, checked).
        let p = unsafe { sys::OCSP_BASICRESP_new() };
        if p.is_null() {
            return Err(ErrorStack::get());
        }
        // SAFETY: p is a valid, uniquely owned OCSP_BASICRESP; the wrapper frees it.
        Ok(BasicBuilder {
            resp: unsafe { OcspBasicResponse::from_ptr(p) },
        })
    }

    /// Answers the `i`th CertID of `req` (copied into the response, as the request sent
    /// it) with `status`.
    pub fn add(
        &mut self,
        req: &OcspRequestRef,
        i: usize,
        status: SingleStatus<'_>,
        this_update: &Asn1TimeRef,
        next_update: &Asn1TimeRef,
    ) -> Result<(), ErrorStack> {
        let i = c_int::try_from(i).map_err(|_| ErrorStack::get())?;
        let (code, reason, revtime) = match status {
            SingleStatus::Good => (sys::V_OCSP_CERTSTATUS_GOOD, -1, ptr::null_mut()),
            SingleStatus::Revoked(at, reason) => {
                (sys::V_OCSP_CERTSTATUS_REVOKED, reason.unwrap_or(-1), at.as_ptr())
            }
            SingleStatus::Unknown => (sys::V_OCSP_CERTSTATUS_UNKNOWN, -1, ptr::null_mut()),
        };
        // SAFETY: req and self.resp are live; the CERTID is borrowed from req and
        // OCSP_basic_add1_status duplicates it and the times (add1), so nothing passed
        // is kept. The returned SINGLERESP belongs to the response.
        let single = unsafe {
            let one = OCSP_request_onereq_get0(req.as_ptr(), i);
            if one.is_null() {
                return Err(ErrorStack::get());
            }
            OCSP_basic_add1_status(
                self.resp.as_ptr(),
                OCSP_onereq_get0_id(one),
                code,
                reason,
                revtime,
                this_update.as_ptr(),
                next_update.as_ptr(),
            )
        };
        if single.is_null() {
            return Err(ErrorStack::get());
        }
        Ok(())
    }

    /// Copies the request's nonce extension, if it has one.
    pub fn copy_nonce(&mut self, req: &OcspRequestRef) -> Result<(), ErrorStack> {
        // SAFETY: both live; OCSP_copy_nonce duplicates the extension (1 copied, 2 none).
        let r = unsafe { OCSP_copy_nonce(self.resp.as_ptr(), req.as_ptr()) };
        if r <= 0 {
            return Err(ErrorStack::get());
        }
        Ok(())
    }

    /// Signs with `key` as `signer`, the responder identified by key hash, the signer's
    /// certificate included (nginx and mod_ssl look for it there). `digest` is `None`
    /// for Ed25519/Ed448 keys.
    pub fn sign(
        self,
        signer: &X509Ref,
        key: &PKeyRef<Private>,
        digest: Option<MessageDigest>,
    ) -> Result<OcspBasicResponse, ErrorStack> {
        let md = digest.map_or(ptr::null(), |d| d.as_ptr());
        // SAFETY: all pointers are live for the call; OCSP_basic_sign takes its own
        // references to the signer certificate and copies nothing else it keeps.
        let ok = unsafe {
            OCSP_basic_sign(
                self.resp.as_ptr(),
                signer.as_ptr(),
                key.as_ptr(),
                md,
                ptr::null_mut(),
                sys::OCSP_RESPID_KEY as c_ulong,
            )
        };
        if ok != 1 {
            return Err(ErrorStack::get());
        }
        Ok(self.resp)
    }
}
