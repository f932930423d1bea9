//! The certificate authority: index.txt format (`index`), the locked, durable database
//! (`store`) and signing (`sign`).

pub mod codes;
pub mod crl;
pub mod index;
pub mod ocsp;
pub mod ocsp_cache;
pub mod sign;
pub mod store;

/// The OCSP view of index.txt, read by the store (it owns the CA directory).
pub use store::status;
