//! OpenSSL functions that rust-openssl does not wrap: NCONF (the `openssl ca` config
//! parser), SPKAC decoding and verification, `X509V3_EXT_add_nconf` (an extension
//! section of ca.conf applied as `openssl ca` applies it), `X509_sign` on a finished
//! certificate, and `X509_NAME_oneline` (the subject form index.txt uses).

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uchar, c_void};
use std::ptr;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::conf::{Conf, ConfMethod, ConfRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, PKeyRef, Private, Public};
use openssl::x509::{X509NameRef, X509Ref};
use openssl_sys as sys;

#[repr(C)]
struct ConfValue {
    section: *mut c_char,
    name: *mut c_char,
    value: *mut c_char,
}

#[repr(C)]
struct NetscapeSpkac {
    pubkey: *mut c_void,
    challenge: *mut sys::ASN1_STRING,
}

/// Only the first member of `NETSCAPE_SPKI` is read; the rest of the C struct follows it.
#[repr(C)]
struct NetscapeSpki {
    spkac: *mut NetscapeSpkac,
}

unsafe extern "C" {
    fn NCONF_load(conf: *mut sys::CONF, file: *const c_char, eline: *mut c_long) -> c_int;
    fn NCONF_load_bio(conf: *mut sys::CONF, bp: *mut sys::BIO, eline: *mut c_long) -> c_int;
    fn NCONF_get_string(conf: *const sys::CONF, group: *const c_char, name: *const c_char) -> *mut c_char;
    fn NCONF_get_section(conf: *const sys::CONF, section: *const c_char) -> *mut c_void;
    fn X509V3_EXT_add_nconf(
        conf: *mut sys::CONF,
        ctx: *mut sys::X509V3_CTX,
        section: *const c_char,
        cert: *mut sys::X509,
    ) -> c_int;
    fn X509_NAME_oneline(name: *const sys::X509_NAME, buf: *mut c_char, size: c_int) -> *mut c_char;
    fn d2i_NETSCAPE_SPKI(
        a: *mut *mut NetscapeSpki,
        pp: *mut *const c_uchar,
        length: c_long,
    ) -> *mut NetscapeSpki;
    fn NETSCAPE_SPKI_free(a: *mut NetscapeSpki);
    fn NETSCAPE_SPKI_get_pubkey(x: *mut NetscapeSpki) -> *mut sys::EVP_PKEY;
    fn NETSCAPE_SPKI_verify(a: *mut NetscapeSpki, r: *mut sys::EVP_PKEY) -> c_int;
}

/// Loads a config file with OpenSSL's own parser, so `$dir`, `$ENV::X`, `.include` and
/// sections behave exactly as in `openssl ca`. The error names the line.
pub fn nconf_load(path: &std::path::Path) -> Result<Conf, String> {
    use std::os::unix::ffi::OsStrExt;
    let conf = Conf::new(ConfMethod::default()).map_err(|e| e.to_string())?;
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| "path has a NUL byte")?;
    let mut eline: c_long = 0;
    // SAFETY: conf is a valid CONF owned by `conf`; cpath is NUL-terminated; eline is a
    // valid out-pointer for the duration of the call.
    let ok = unsafe { NCONF_load(conf.as_ptr(), cpath.as_ptr(), &mut eline) };
    nconf_result(conf, ok, eline)
}

/// [`nconf_load`] of a config held in memory (`Config::from_bytes`), parsed the same way.
pub fn nconf_load_bytes(bytes: &[u8]) -> Result<Conf, String> {
    let conf = Conf::new(ConfMethod::default()).map_err(|e| e.to_string())?;
    let len = c_int::try_from(bytes.len()).map_err(|_| "config larger than 2 GiB")?;
    // SAFETY: BIO_new_mem_buf makes a read-only BIO over `bytes`, which outlives it (freed
    // below, before this function returns); a null result is checked.
    let bio = unsafe { sys::BIO_new_mem_buf(bytes.as_ptr().cast(), len) };
    if bio.is_null() {
        return Err(format!("cannot read it: {}", error_queue_lossy()));
    }
    let mut eline: c_long = 0;
    // SAFETY: conf is a valid CONF owned by `conf`, bio a valid BIO; eline is a valid
    // out-pointer for the duration of the call. The BIO is freed once, after the call.
    let ok = unsafe {
        let ok = NCONF_load_bio(conf.as_ptr(), bio, &mut eline);
        sys::BIO_free_all(bio);
        ok
    };
    nconf_result(conf, ok, eline)
}

fn nconf_result(conf: Conf, ok: c_int, eline: c_long) -> Result<Conf, String> {
    if ok == 1 {
        return Ok(conf);
    }
    // Not ErrorStack::get(): it panics when the error's data (the offending text of the
    // file) is not UTF-8 (found by fuzz/ ca_conf).
    let err = error_queue_lossy();
    if eline > 0 {
        Err(format!("syntax error on line {eline}: {err}"))
    } else {
        Err(format!("cannot read it: {err}"))
    }
}

/// Drains this thread's OpenSSL error queue into one line, whatever bytes it holds.
fn error_queue_lossy() -> String {
    let mut out = Vec::new();
    loop {
        let mut data: *const std::os::raw::c_char = std::ptr::null();
        let mut flags: std::os::raw::c_int = 0;
        // SAFETY: ERR_get_error_all writes only through the out-pointers it is given (the
        // others are null); `data` then points into the queue entry, valid until the next
        // ERR call on this thread, and is copied before that.
        let code = unsafe {
            sys::ERR_get_error_all(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut data,
                &mut flags,
            )
        };
        if code == 0 {
            break;
        }
        let name = |p: *const std::os::raw::c_char| {
            // SAFETY: OpenSSL returns null or a static NUL-terminated string.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        // SAFETY: both look a code up in OpenSSL's static tables; no pointers passed.
        let (lib, reason) = unsafe {
            (
                sys::ERR_lib_error_string(code),
                sys::ERR_reason_error_string(code),
            )
        };
        let text = format!(
            "{}: {}",
            name(lib).unwrap_or_else(|| "OpenSSL".into()),
            name(reason).unwrap_or_else(|| format!("error {code:#x}"))
        );
        let detail = if !data.is_null() && flags & sys::ERR_TXT_STRING != 0 {
            // SAFETY: with ERR_TXT_STRING, `data` is a NUL-terminated string (see above).
            let d = unsafe { CStr::from_ptr(data) }.to_string_lossy().into_owned();
            format!(" ({d})")
        } else {
            String::new()
        };
        out.push(format!("{text}{detail}"));
    }
    if out.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        out.join("; ")
    }
}

fn cstring(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

/// `NCONF_get_string`: the value of `name` in `section`, falling back to the unnamed
/// default section as OpenSSL does. `None` when absent (the error it queues is dropped).
pub fn nconf_get(conf: &ConfRef, section: &str, name: &str) -> Option<String> {
    let (sec, key) = (cstring(section)?, cstring(name)?);
    // SAFETY: conf is valid for the borrow; sec and key are NUL-terminated. The returned
    // pointer belongs to conf and is copied before conf can be dropped.
    let value = unsafe {
        let p = NCONF_get_string(conf.as_ptr(), sec.as_ptr(), key.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(CStr::from_ptr(p).to_string_lossy().into_owned())
        }
    };
    if value.is_none() {
        // SAFETY: clears this thread's OpenSSL error queue; no pointers involved.
        unsafe { sys::ERR_clear_error() };
    }
    value
}

/// `NCONF_get_section`: the `(name, value)` pairs of a section in file order, or `None`
/// when the section does not exist.
pub fn nconf_section(conf: &ConfRef, section: &str) -> Option<Vec<(String, String)>> {
    let sec = cstring(section)?;
    // SAFETY: conf is valid; the stack and its CONF_VALUE items belong to conf and are
    // only read (and copied) while the borrow lasts.
    unsafe {
        let stack = NCONF_get_section(conf.as_ptr(), sec.as_ptr());
        if stack.is_null() {
            sys::ERR_clear_error();
            return None;
        }
        let stack = stack as *const sys::OPENSSL_STACK;
        let n = sys::OPENSSL_sk_num(stack);
        let mut out = Vec::with_capacity(n.max(0) as usize);
        for i in 0..n {
            let v = sys::OPENSSL_sk_value(stack, i) as *const ConfValue;
            if v.is_null() || (*v).name.is_null() || (*v).value.is_null() {
                continue;
            }
            out.push((
                CStr::from_ptr((*v).name).to_string_lossy().into_owned(),
                CStr::from_ptr((*v).value).to_string_lossy().into_owned(),
            ));
        }
        Some(out)
    }
}

/// Adds the extensions of `section` to `cert`, with `issuer` as the issuing CA, exactly
/// as `openssl ca` does for `x509_extensions`.
pub fn add_extensions_from_conf(
    conf: &ConfRef,
    section: &str,
    issuer: &X509Ref,
    cert: &X509Ref,
) -> Result<(), ErrorStack> {
    let sec = CString::new(section).map_err(|_| ErrorStack::get())?;
    // SAFETY: the context is zero-initialised then set by X509V3_set_ctx to point at
    // issuer and cert, which outlive the call; conf outlives the call; cert is modified
    // in place through its pointer, which is how OpenSSL adds extensions.
    let ok = unsafe {
        let mut ctx: sys::X509V3_CTX = std::mem::zeroed();
        sys::X509V3_set_ctx(
            &mut ctx,
            issuer.as_ptr(),
            cert.as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        );
        sys::X509V3_set_nconf(&mut ctx, conf.as_ptr());
        X509V3_EXT_add_nconf(conf.as_ptr(), &mut ctx, sec.as_ptr(), cert.as_ptr())
    };
    if ok == 1 { Ok(()) } else { Err(ErrorStack::get()) }
}

/// Signs a finished certificate. `md` is `None` for keys that sign without a separate
/// digest (Ed25519).
pub fn sign_certificate(
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    md: Option<MessageDigest>,
) -> Result<(), ErrorStack> {
    let md_ptr = md.map_or(ptr::null(), |m| m.as_ptr());
    // SAFETY: cert and key are valid for the call; a null md is allowed for keys with a
    // built-in digest. X509_sign returns the signature size, or 0 on error.
    let n = unsafe { sys::X509_sign(cert.as_ptr(), key.as_ptr(), md_ptr) };
    if n > 0 { Ok(()) } else { Err(ErrorStack::get()) }
}

/// `X509_NAME_oneline`: `/C=US/O=MyApp/CN=alice`, the subject form of index.txt.
pub fn name_oneline(name: &X509NameRef) -> String {
    // SAFETY: with a null buffer OpenSSL allocates the string, which is copied and then
    // freed with OPENSSL_free (CRYPTO_free).
    unsafe {
        let p = X509_NAME_oneline(name.as_ptr(), ptr::null_mut(), 0);
        if p.is_null() {
            return String::new();
        }
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        sys::CRYPTO_free(p as *mut c_void, c"getacert".as_ptr(), 0);
        s
    }
}

/// A decoded SPKAC (Netscape signed public key and challenge).
pub struct Spkac {
    pub public_key: PKey<Public>,
    pub challenge: Vec<u8>,
    pub signature_valid: bool,
}

/// Decodes a DER SPKAC and checks its self-signature with its own public key (any digest
/// OpenSSL accepts, MD5 included: browsers and `openssl spkac` sign SPKACs with MD5).
pub fn spkac_from_der(der: &[u8]) -> Result<Spkac, ErrorStack> {
    let len = c_long::try_from(der.len()).map_err(|_| ErrorStack::get())?;
    // SAFETY: d2i reads at most `len` bytes from `der`; on success the returned SPKI is
    // owned here and freed below on every path. The public key returned by
    // NETSCAPE_SPKI_get_pubkey carries its own reference and is owned by PKey. The
    // challenge string belongs to the SPKI and is copied before it is freed.
    unsafe {
        let mut p = der.as_ptr();
        let spki = d2i_NETSCAPE_SPKI(ptr::null_mut(), &mut p, len);
        if spki.is_null() {
            return Err(ErrorStack::get());
        }
        let key = NETSCAPE_SPKI_get_pubkey(spki);
        if key.is_null() {
            NETSCAPE_SPKI_free(spki);
            return Err(ErrorStack::get());
        }
        let public_key = PKey::<Public>::from_ptr(key);
        let signature_valid = NETSCAPE_SPKI_verify(spki, key) == 1;
        let mut challenge = Vec::new();
        let spkac = (*spki).spkac;
        if !spkac.is_null() && !(*spkac).challenge.is_null() {
            let s = (*spkac).challenge;
            let n = sys::ASN1_STRING_length(s).max(0) as usize;
            let d = sys::ASN1_STRING_get0_data(s);
            if !d.is_null() {
                challenge = std::slice::from_raw_parts(d, n).to_vec();
            }
        }
        NETSCAPE_SPKI_free(spki);
        sys::ERR_clear_error();
        Ok(Spkac {
            public_key,
            challenge,
            signature_valid,
        })
    }
}

unsafe extern "C" {
    fn ASN1_ENUMERATED_new() -> *mut sys::ASN1_ENUMERATED;
    fn ASN1_ENUMERATED_set(a: *mut sys::ASN1_ENUMERATED, v: c_long) -> c_int;
}

/// One revoked certificate for [`make_crl`].
pub struct CrlEntry {
    pub serial: openssl::bn::BigNum,
    pub revoked_at: openssl::asn1::Asn1Time,
    /// RFC 5280 CRLReason code, when one was recorded.
    pub reason: Option<i32>,
}

/// A v2 CRL as `openssl ca -gencrl` makes it: issuer, lastUpdate, nextUpdate, the
/// revoked entries (with reason codes), authorityKeyIdentifier and cRLNumber, signed
/// by the CA key (`md` is `None` for Ed25519/Ed448 keys).
pub fn make_crl(
    ca: &X509Ref,
    key: &PKeyRef<Private>,
    md: Option<MessageDigest>,
    last_update: &openssl::asn1::Asn1TimeRef,
    next_update: &openssl::asn1::Asn1TimeRef,
    number: &openssl::bn::BigNumRef,
    entries: &[CrlEntry],
) -> Result<openssl::x509::X509Crl, ErrorStack> {
    use openssl::asn1::Asn1Integer;
    let number = Asn1Integer::from_bn(number)?;
    let serials = entries
        .iter()
        .map(|e| Asn1Integer::from_bn(&e.serial))
        .collect::<Result<Vec<_>, _>>()?;
    // SAFETY: every object created here is either handed to the CRL with an add0/set1
    // call that copies or takes it as documented, or freed on every path. The CRL is
    // owned by X509Crl from the moment it exists, so an early return frees it. Pointers
    // borrowed from ca, key, the times and `serials` outlive the calls that use them.
    unsafe {
        let crl = openssl::x509::X509Crl::from_ptr(cvt_p(sys::X509_CRL_new())?);
        let p = crl.as_ptr();
        cvt(sys::X509_CRL_set_version(p, 1))?;
        cvt(sys::X509_CRL_set_issuer_name(p, ca.subject_name().as_ptr()))?;
        cvt(sys::X509_CRL_set1_lastUpdate(p, last_update.as_ptr()))?;
        cvt(sys::X509_CRL_set1_nextUpdate(p, next_update.as_ptr()))?;
        for (e, serial) in entries.iter().zip(&serials) {
            let r = cvt_p(sys::X509_REVOKED_new())?;
            let filled = sys::X509_REVOKED_set_serialNumber(r, serial.as_ptr()) == 1
                && sys::X509_REVOKED_set_revocationDate(r, e.revoked_at.as_ptr()) == 1
                && match e.reason {
                    None => true,
                    Some(code) => {
                        let en = ASN1_ENUMERATED_new();
                        let ok = !en.is_null()
                            && ASN1_ENUMERATED_set(en, c_long::from(code)) == 1
                            && sys::X509_REVOKED_add1_ext_i2d(
                                r,
                                sys::NID_crl_reason,
                                en as *mut c_void,
                                0,
                                0,
                            ) == 1;
                        sys::ASN1_ENUMERATED_free(en);
                        ok
                    }
                };
            if !filled || sys::X509_CRL_add0_revoked(p, r) != 1 {
                sys::X509_REVOKED_free(r);
                return Err(ErrorStack::get());
            }
        }
        cvt(sys::X509_CRL_sort(p))?;
        let mut ctx: sys::X509V3_CTX = std::mem::zeroed();
        sys::X509V3_set_ctx(&mut ctx, ca.as_ptr(), ptr::null_mut(), ptr::null_mut(), p, 0);
        let aki = sys::X509V3_EXT_nconf_nid(
            ptr::null_mut(),
            &mut ctx,
            sys::NID_authority_key_identifier,
            c"keyid:always".as_ptr(),
        );
        if aki.is_null() {
            return Err(ErrorStack::get());
        }
        let added = sys::X509_CRL_add_ext(p, aki, -1);
        sys::X509_EXTENSION_free(aki);
        cvt(added)?;
        cvt(sys::X509_CRL_add1_ext_i2d(
            p,
            sys::NID_crl_number,
            number.as_ptr() as *mut c_void,
            0,
            0,
        ))?;
        let md_ptr = md.map_or(ptr::null(), |m| m.as_ptr());
        if sys::X509_CRL_sign(p, key.as_ptr(), md_ptr) <= 0 {
            return Err(ErrorStack::get());
        }
        Ok(crl)
    }
}

fn cvt(r: c_int) -> Result<c_int, ErrorStack> {
    if r <= 0 { Err(ErrorStack::get()) } else { Ok(r) }
}

fn cvt_p<T>(p: *mut T) -> Result<*mut T, ErrorStack> {
    if p.is_null() {
        Err(ErrorStack::get())
    } else {
        Ok(p)
    }
}

/// OpenSSL's own check of a public key (`EVP_PKEY_public_check`): for RSA, that the
/// modulus and exponent are sane (odd, in range, the modulus not small-factored); for
/// EC, that the point is on the curve. `false` on any failure.
pub fn public_key_check(key: &PKeyRef<Public>) -> bool {
    // SAFETY: key is a valid EVP_PKEY for the borrow; the context takes its own
    // reference (a null engine is allowed), is checked for null before use, and is
    // freed here. The error queue is cleared so a refusal leaves nothing behind.
    unsafe {
        let ctx = sys::EVP_PKEY_CTX_new(key.as_ptr(), ptr::null_mut());
        if ctx.is_null() {
            sys::ERR_clear_error();
            return false;
        }
        let ok = sys::EVP_PKEY_public_check(ctx) == 1;
        sys::EVP_PKEY_CTX_free(ctx);
        sys::ERR_clear_error();
        ok
    }
}
