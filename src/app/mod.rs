//! The enrollment application: one request in, one response out. This module owns
//! [`App`] (validated config, CA, database, secrets, rate limits), the [`Handler`] the
//! front ends call, and the dispatch: OCSP, the front secret, then GET or POST. The
//! clock is read here, once per request ([`Now`]), and carried down: nothing below
//! reads it.
//!
//! What each part owns:
//! - [`refusal`]: every failure and how it is answered (status, headers, words, page).
//! - [`enroll`]: the enrollment transaction as named steps.
//! - [`account`]: a signed-in user's devices, revoking one, the add-device code.
//! - [`identity`]: who presented which certificate, checked against the database.
//! - [`origin`]: form tokens, SPKAC challenges, `Sec-Fetch-Site` / `Origin`.
//! - [`get`]: what a GET page shows, gathered under the lock.
//! - [`page`]: the HTML, pure, from view structs (no `App`, no lock, no clock).
//!
//! The wire (`crate::web`) knows none of this: it hands over a [`Request`] and writes
//! the [`Response`].

mod account;
mod enroll;
mod get;
mod identity;
mod origin;
mod page;
mod refusal;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ca::codes::{self, CodeKind};
use crate::ca::crl;
use crate::ca::sign::{self, Ca, SubjectError};
use crate::ca::store::{CaFile, Locked, Store, StoreError};
use crate::config::Config;
use crate::enroll::form::{Form, FormError};
use crate::enroll::username::{AccountKey, Email, Username};
use crate::ratelimit::Limiter;
use crate::web::{Handler, Request, Response};

pub use identity::Identity;
pub use refusal::Refusal;

/// The running application: validated config, the CA, the database and the secret.
pub struct App {
    pub config: Config,
    pub ca: Ca,
    pub store: Store,
    secret: Vec<u8>,
    address_limiter: Limiter,
    user_limiter: Limiter,
    /// The OCSP endpoint (`crate::responder`): no lock, no rate limit.
    ocsp: crate::responder::Endpoint,
    /// What every FastCGI request must carry as `GETACERT_FRONT_SECRET` (the daemon
    /// with `front_secret_file`; `None` under CGI, where there is no socket to reach).
    front_secret: Option<Vec<u8>>,
    /// The daemon: OCSP sightings are kept in memory and written now and then (a CGI
    /// process lives for one request, so it records none).
    long_running: bool,
    /// When the OCSP path last wrote the sightings kept in memory (Unix seconds).
    sightings_flushed: std::sync::atomic::AtomicI64,
}

/// The moment a request is handled, read once by [`Handler::handle`] and passed to
/// everything below it, so that every step sees the same time and a test can give one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Now {
    /// Unix seconds: tokens, codes, the database, certificates.
    pub(crate) secs: i64,
    /// Unix seconds with their fraction: the rate limiters' buckets.
    pub(crate) exact: f64,
}

impl Now {
    /// The clock, read.
    pub(crate) fn read() -> Now {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).ok();
        Now {
            secs: d.map(|d| d.as_secs() as i64).unwrap_or(0),
            exact: d.map(|d| d.as_secs_f64()).unwrap_or(0.0),
        }
    }

    /// A fixed moment (tests).
    #[cfg(test)]
    pub(crate) fn at(secs: i64) -> Now {
        Now {
            secs,
            exact: secs as f64,
        }
    }
}

#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The clock in Unix seconds, for the admin commands (a request uses its [`Now`]).
pub fn now() -> i64 {
    Now::read().secs
}

/// The client address for the log, escaped like every other logged value: whatever
/// the web server passed, it cannot start a line of its own.
fn remote(req: &Request) -> std::borrow::Cow<'_, str> {
    match req.param("REMOTE_ADDR") {
        None => "-".into(),
        Some(v) if !v.is_empty() && v.iter().all(|b| b.is_ascii_graphic()) => String::from_utf8_lossy(v),
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)).into(),
    }
}

impl App {
    /// Loads the CA and the secret and proves the config can build a subject.
    /// Loads the CA and proves the config can build a subject; writes nothing (so
    /// `check`, run as any user, leaves the directory as it found it).
    pub fn validate(config: &Config) -> Result<Ca, StartError> {
        let ca = Ca::load(config).map_err(|e| StartError(e.to_string()))?;
        let email = Email::parse("probe@example.org");
        match sign::build_subject(config, &ca.cert, &Username::config_probe(), email.as_ref()) {
            Ok(_) | Err(SubjectError::EmailRequired) => Ok(ca),
            Err(SubjectError::Config(e)) => Err(StartError(format!("{}: {e}", config.file.display()))),
        }
    }

    /// [`App::validate`], then the token secret (created on first use).
    pub fn new(config: Config) -> Result<App, StartError> {
        let ca = Self::validate(&config)?;
        let store = Store::new(&config);
        let secret_file = store.path(CaFile::TokenSecret).unwrap_or_default();
        let secret = crate::ca::store::load_or_create_secret(&secret_file)
            .map_err(|e| StartError(format!("{}: {e}", secret_file.display())))?;
        if let Some(note) = &config.digest_note {
            log::warn!("{}: {note}", config.file.display());
        }
        let ocsp = crate::responder::Endpoint::new(&config, &ca).map_err(StartError)?;
        Ok(App {
            ocsp,
            address_limiter: Limiter::new(config.address_rate),
            user_limiter: Limiter::new(config.username_rate),
            config,
            ca,
            store,
            secret,
            front_secret: None,
            long_running: false,
            sightings_flushed: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// For the long-running daemon: reserve serials 32 at a time, so one serial-file
    /// rewrite serves 32 enrollments (a restart leaves a gap, never a reuse), and read
    /// the front secret when `front_secret_file` is set.
    pub fn daemon(mut self) -> Result<App, StartError> {
        self.store.set_serial_block(32);
        self.long_running = true;
        if let Some(path) = &self.config.front_secret_file {
            self.front_secret = Some(read_front_secret(path)?);
        }
        Ok(self)
    }

    /// True when the daemon checks a front secret.
    pub fn has_front_secret(&self) -> bool {
        self.front_secret.is_some()
    }

    /// The request came from the web server: it carries the front secret (when one is
    /// configured). Compared in constant time; the value is never logged.
    fn carries_front_secret(&self, req: &Request) -> bool {
        let Some(want) = &self.front_secret else {
            return true;
        };
        let given = req.param("GETACERT_FRONT_SECRET").unwrap_or(b"");
        given.len() == want.len() && openssl::memcmp::eq(given, want)
    }

    /// The key rate limits and code guesses are counted under: the client address, an
    /// IPv6 address cut to its `/ipv6_prefix` network (one host usually has a /64).
    fn client_key(&self, req: &Request) -> String {
        crate::ratelimit::client_key(
            req.param_str("REMOTE_ADDR").unwrap_or("-"),
            self.config.ipv6_prefix,
        )
    }

    fn rate_limit(&self, key: &str, by_user: bool, now: Now) -> Result<(), Refusal> {
        let limiter = if by_user {
            &self.user_limiter
        } else {
            &self.address_limiter
        };
        limiter.take(key, now.exact).map_err(Refusal::RateLimited)
    }

    /// The per-address rate limit, taken by every POST and by the signed-in account
    /// page's GET (it reads the user's devices).
    fn limit_address(&self, req: &Request, now: Now) -> Result<(), Refusal> {
        self.rate_limit(&format!("addr {}", self.client_key(req)), false, now)
    }

    fn post(&self, req: &Request, now: Now) -> Result<Response, Refusal> {
        if req.body_too_large {
            return Err(Refusal::BodyTooLarge);
        }
        origin::check_origin(req)?;
        self.limit_address(req, now)?;
        let form =
            Form::parse(req.param_str("CONTENT_TYPE").unwrap_or(""), &req.body).map_err(|e| match e {
                FormError::UnsupportedType(t) => Refusal::UnsupportedMediaType(t),
                e => Refusal::BadForm(e),
            })?;
        let who = self.client_identity(req, now)?;
        let token = form.one_of(&["token"]).map_err(Refusal::BadForm)?;
        match form.one_of(&["action"]).map_err(Refusal::BadForm)? {
            None | Some("enroll") => {
                // Optional for scripts; when present, it must be this requester's.
                if let Some(t) = token
                    && !self.form_token_ok(req, who.as_ref(), t, now)
                {
                    return Err(Refusal::BadToken);
                }
                self.enroll(req, &form, who.as_ref(), now)
            }
            Some(action @ ("revoke" | "rename" | "add-device-code")) => {
                // Account actions change what a signed-in user has: a form token bound
                // to the certificate presented is required.
                let who = who.ok_or(Refusal::NotSignedIn)?;
                if !self.form_token_ok(req, Some(&who), token.unwrap_or(""), now) {
                    return Err(Refusal::BadToken);
                }
                match action {
                    "revoke" => self.revoke_device(req, &form, &who, now),
                    "rename" => self.rename_device(req, &form, &who, now),
                    _ => self.add_device_code(req, &who, now),
                }
            }
            Some(other) => Err(Refusal::UnknownAction(other.chars().take(40).collect())),
        }
    }

    /// A new one-time code for `user` (the secret stays inside the app).
    pub fn issue_code(
        &self,
        locked: &Locked<'_>,
        user: &str,
        kind: CodeKind,
        t: i64,
    ) -> Result<String, StoreError> {
        codes::issue(
            locked,
            &self.secret,
            &AccountKey::of(user, self.config.allow_non_ascii),
            kind,
            t,
            self.config.code_lifetime,
        )
    }

    /// Regenerates the CRL file after a revocation, when `crl` / `crl_file` is set.
    /// A failure is logged: the revocation itself stands, and getacert refuses the
    /// certificate at once either way.
    pub fn refresh_crl(&self, locked: &mut Locked<'_>, t: i64) {
        if self.config.paths.crl_file.is_none() {
            return;
        }
        if let Err(e) = crl::generate(locked, &self.config, &self.ca, t, true) {
            log::error!("the CRL was not regenerated after a revocation: {e}");
        }
    }

    /// Every certificate of `username`, newest first, with what getacert.devices says
    /// of each (nothing, when it cannot be read).
    pub(crate) fn devices(&self, locked: &Locked<'_>, username: &str) -> Result<account::Listing, Refusal> {
        let records = locked.user_records(username)?;
        let serials: Vec<String> = records.iter().map(|r| r.serial.clone()).collect();
        let info = locked.device_info(&serials);
        Ok(account::Listing { records, info })
    }

    /// The answer to a refusal of a POST: [`Refusal::response`], logged.
    pub fn refuse(&self, req: &Request, r: &Refusal) -> Response {
        let status = r.status();
        let remote = remote(req);
        match r {
            Refusal::Internal(detail) => log::error!("request from {remote} failed: {detail}"),
            Refusal::Busy(detail) => log::warn!("request from {remote} answered 503: {detail}"),
            Refusal::Abandoned => log::warn!(
                "request from {remote} dropped before it was recorded: the web server gave up on it"
            ),
            _ => log::info!(target: "audit", "refused status={status} remote={remote} reason={r}"),
        }
        let wants_html = req
            .param_str("HTTP_ACCEPT")
            .is_some_and(|a| a.contains("text/html"));
        r.response(wants_html)
    }
}

/// The front secret file's content without its final newline: at least 32 characters,
/// printable ASCII (it is written into the web server's configuration).
fn read_front_secret(path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    crate::ca::store::read_front_secret(path)
        .map_err(|m| StartError(format!("front_secret_file {}: {m}", path.display())))
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        // The one reading of the clock for this request.
        let now = Now::read();
        // Absent means GET (a bare FastCGI test client); present but not text is refused.
        let method = match req.param("REQUEST_METHOD") {
            None => "GET",
            Some(m) => std::str::from_utf8(m).unwrap_or("?"),
        };
        // OCSP first, without the front secret: it is a read of public status (each
        // answer signed, nothing changed, no identity believed), asked by the web
        // server's own OCSP client through a loopback server that passes no secret.
        if let Some(route) = crate::responder::route(req, method) {
            // Each valid serial asked for is "seen by OCSP": kept in memory, written
            // when the lock is next held (or, in the daemon, taken without waiting at
            // most once a minute). Shown on the account page; it never completes a
            // renewal, since anybody can ask for any serial.
            let sighted = |serial: &str| {
                if self.long_running {
                    self.store.ocsp_sighted(serial, now.secs);
                }
            };
            let mut resp = self.ocsp.handle(req, &route, now.secs, &sighted);
            if method == "HEAD" {
                resp.body.clear();
            }
            if self.long_running && self.store.sightings_pending() {
                let last = self.sightings_flushed.load(std::sync::atomic::Ordering::Relaxed);
                if now.secs - last >= 60
                    && self
                        .sightings_flushed
                        .compare_exchange(
                            last,
                            now.secs,
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    self.store.try_flush_sightings();
                }
            }
            return resp;
        }
        if !self.carries_front_secret(req) {
            log::warn!(
                target: "audit",
                "refused status=403 remote={} reason=the FastCGI request does not carry the front secret ({})",
                remote(req),
                if req.param("GETACERT_FRONT_SECRET").is_some() { "wrong value" } else { "absent" }
            );
            return Response::new(
                403,
                "text/plain; charset=utf-8",
                b"This service answers only its web server.\n".to_vec(),
            )
            .with_header("Cache-Control", "no-store");
        }
        let result = match method {
            "GET" | "HEAD" => Ok(self.serve_get(req, now)),
            "POST" => self.post(req, now),
            _ => Err(Refusal::MethodNotAllowed),
        };
        let mut resp = result.unwrap_or_else(|r| self.refuse(req, &r));
        if method == "HEAD" {
            resp.body.clear();
        }
        resp
    }
}
