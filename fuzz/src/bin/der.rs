//! The fast DER reader on its own: TLV reading, the SPKAC and CSR shapes, the public
//! key and signature algorithm it accepts.
use getacert::enroll::der;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = der::read(data);
        for signed in [der::spkac(data), der::csr(data)].into_iter().flatten() {
            let _ = der::public_key(signed.spki);
            let _ = der::signature_digest(signed.algorithm);
        }
        let _ = der::public_key(data);
        let _ = der::signature_digest(data);
    });
}
