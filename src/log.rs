//! A `log` backend: syslog through libc (facility from the config), or stderr (the web
//! server's error log under CGI and mod_fcgid, the terminal for admin commands).
//! Audit lines use the target `audit`.

use std::io::Write;

use crate::ffi::syslog;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    Syslog { also_stderr: bool },
}

struct Logger {
    sink: Sink,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = format!("{}", record.args());
        match self.sink {
            Sink::Stderr => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "getacert: {}: {msg}",
                    record.level().as_str().to_lowercase()
                );
            }
            Sink::Syslog { .. } => {
                let prio = match record.level() {
                    log::Level::Error => libc::LOG_ERR,
                    log::Level::Warn => libc::LOG_WARNING,
                    log::Level::Info if record.target() == "audit" => libc::LOG_NOTICE,
                    log::Level::Info => libc::LOG_INFO,
                    log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
                };
                syslog::send(prio, &msg);
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls are ignored. Syslog falls back to stderr when
/// there is no /dev/log (a container, a CI box).
pub fn init(sink: Sink, facility: libc::c_int) {
    let sink = match sink {
        Sink::Syslog { .. } if !std::path::Path::new("/dev/log").exists() => Sink::Stderr,
        s => s,
    };
    if let Sink::Syslog { also_stderr } = sink {
        syslog::open(facility, also_stderr);
    }
    if log::set_boxed_logger(Box::new(Logger { sink })).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
