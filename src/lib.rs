//! getacert: passwordless login for any web app by TLS client certificates.
//!
//! It replaces the `getacert.php` page of "Adding Easy SSL Client Authentication To Any
//! Webapp": it runs under Apache 2.4 or nginx as a FastCGI responder or plain CGI,
//! takes an SPKAC or a PKCS#10 CSR, checks it, signs a client certificate with the
//! site's CA, records it in an `openssl ca`-compatible database under a lock, and
//! answers DER `application/x-x509-user-cert`. The web server keeps doing TLS and client
//! verification; getacert never terminates TLS and never runs a shell.
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod ca;
pub mod config;
pub mod docgen;
pub mod enroll;
#[allow(unsafe_code)]
mod ffi;
pub mod front;
pub mod log;
pub mod owner;
pub mod ratelimit;
pub mod responder;
pub mod token;
pub mod web;
pub mod webcheck;
