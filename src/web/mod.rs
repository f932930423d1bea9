//! The web side of getacert: how a request arrives (FastCGI daemon, FastCGI on fd 0,
//! plain CGI) and how the answer leaves. Every front end turns its wire format into one
//! [`Request`] and writes one [`Response`]; the enrollment logic never sees the wire.
//!
//! This module does not decide what an answer says: that is the [`Handler`]'s job.

pub mod cgi;
mod event_loop;
pub mod fastcgi;
mod pool;
pub mod qr;
pub mod server;
mod socket;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One request as the web server handed it over: CGI/FastCGI parameters kept as raw
/// bytes (a non-UTF-8 value must not poison the others) and the body.
#[derive(Debug, Default, Clone)]
pub struct Request {
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The body was longer than the configured limit; `body` holds nothing useful and
    /// the handler must answer 413.
    pub body_too_large: bool,
    /// Set by the front end once the web server has given up on this request.
    pub abandoned: Abandoned,
}

/// Whether the web server has given up on a request (closed the connection, sent
/// ABORT_REQUEST): the FastCGI daemon sets it from its event loop while a worker runs
/// the handler, which checks it before it records anything. CGI never sets it.
#[derive(Debug, Default, Clone)]
pub struct Abandoned(Option<Arc<AtomicBool>>);

impl Abandoned {
    /// A flag that [`Abandoned::set`] on any clone raises for all.
    pub fn new() -> Abandoned {
        Abandoned(Some(Arc::new(AtomicBool::new(false))))
    }

    pub fn set(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Release);
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }
}

impl Request {
    /// The first parameter with this exact name.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.as_slice() == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// A request with these parameters and no body (unit tests).
    #[cfg(test)]
    pub(crate) fn with_params(params: &[(&str, &str)]) -> Request {
        Request {
            params: params
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            ..Request::default()
        }
    }

    /// The parameter as UTF-8 text, or `None` when absent or not UTF-8.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        self.param(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// One answer. Front ends add nothing but the framing (`Status:` line for CGI and
/// FastCGI responders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of the given content type; `Content-Length` is added.
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The CGI/FastCGI responder form: `Status:` line, headers, `Content-Length`,
    /// blank line, body.
    pub fn to_cgi_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(
            format!("Status: {} {}\r\n", self.status, reason_phrase(self.status)).as_bytes(),
        );
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", self.body.len()).as_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// The standard reason phrase for the statuses getacert uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// What answers a request. Implemented by the enrollment application; the front ends
/// only call it.
pub trait Handler: Send + Sync {
    fn handle(&self, req: &Request) -> Response;
}
