//! The certificate authority: index.txt format (`index`), the locked, durable database
//! (`store`) and signing (`sign`).

pub mod codes;
pub mod crl;
pub mod index;
pub mod ocsp;
pub mod ocsp_cache;
pub mod sign;
pub mod status;
pub mod store;
