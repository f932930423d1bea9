//! Inputs the fuzz targets in fuzz/ found to crash getacert, each kept as a test named
//! for what it broke. The input is the one AFL++ saved, through the real binary.

mod common;

use std::process::Command;

use common::Ca;

/// fuzz/ ca_conf, crash 1: a name with a byte that is not UTF-8 made OpenSSL's NCONF
/// parser fail with that text in its error data, and rust-openssl's `ErrorStack::get`
/// panics on non-UTF-8 data: `check` died with a panic (exit 101), `serve` and CGI too.
#[test]
fn a_ca_conf_line_with_a_non_utf8_name_is_a_syntax_error_not_a_panic() {
    let ca = Ca::init();
    let mut conf = std::fs::read(&ca.conf).unwrap();
    conf.extend_from_slice(b"\n[ CA_default ]\n\x84efault_days = 10\n");
    std::fs::write(&ca.conf, conf).unwrap();
    let out = Command::new(common::bin())
        .arg("--config")
        .arg(&ca.conf)
        .arg("check")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("syntax error on line"), "{stdout}");
}
