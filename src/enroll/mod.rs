//! The enrollment pipeline's pure parts: form decoding, username and email rules,
//! SPKAC/CSR parsing with signature check, and the key policy. Nothing here does I/O.

pub mod der;
pub mod form;
pub mod policy;
pub mod request;
pub mod user_agent;
pub mod username;
