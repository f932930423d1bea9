//! The only module with `unsafe` code: thin, audited wrappers over C functions that
//! rust-openssl and std do not wrap. Every `unsafe` block carries a `// SAFETY:` line.
//! Nothing here makes policy decisions.

pub mod flock;
pub mod ocsp;
pub mod openssl;
pub mod privs;
pub mod sock;
pub mod syslog;
