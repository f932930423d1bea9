//! libc `openlog`/`syslog`. The C library reconnects to /dev/log by itself after syslogd
//! restarts, which is why this is not the `syslog` crate.

use std::ffi::{CString, c_int};
use std::sync::OnceLock;

static IDENT: OnceLock<CString> = OnceLock::new();

/// Opens the connection to syslog with the given facility (`libc::LOG_AUTHPRIV` …).
/// `also_stderr` adds LOG_PERROR, so a CGI's lines reach the web server's error log too.
pub fn open(facility: c_int, also_stderr: bool) {
    let ident = IDENT.get_or_init(|| c"getacert".to_owned());
    let mut opts = libc::LOG_PID | libc::LOG_NDELAY;
    if also_stderr {
        opts |= libc::LOG_PERROR;
    }
    // SAFETY: `ident` lives in a static for the rest of the process, as openlog requires
    // (it keeps the pointer).
    unsafe { libc::openlog(ident.as_ptr(), opts, facility) };
}

/// Sends one message at the given priority (`libc::LOG_INFO` …). NUL bytes are dropped.
pub fn send(priority: c_int, message: &str) {
    let clean: Vec<u8> = message.bytes().filter(|&b| b != 0).collect();
    let Ok(msg) = CString::new(clean) else { return };
    // SAFETY: the format is a constant "%s" and msg is a valid NUL-terminated string, so
    // syslog reads exactly one string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) };
}
