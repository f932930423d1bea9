//! The enrollment application: one request in, one response out. Reads the form, checks
//! everything, then takes the database lock only to check the username, reserve a
//! serial, sign and record. Every failure is one [`Refusal`], mapped to a status in one
//! exhaustive `match` ([`Refusal::status`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::nid::Nid;
use openssl::x509::X509;

use crate::ca::codes::{self, CodeKind, Redeemed};
use crate::ca::crl;
use crate::ca::index::{self, Record};
use crate::ca::sign::{self, Ca, SubjectError};
use crate::ca::store::{Store, StoreError};
use crate::config::{ChallengeRule, Config};
use crate::enroll::form::{Form, FormError};
use crate::enroll::policy::{self, KeyRefused};
use crate::enroll::request::{Kind, PublicKeyRequest, RequestError};
use crate::enroll::username::{Email, Username, UsernameError, comparison_key};
use crate::origin::{browser_cookie, cookie_name, is_https, same_origin_host};
use crate::ratelimit::Limiter;
use crate::token::{self, Purpose};
use crate::web::page;
use crate::web::{Handler, Request, Response};

/// Every way a request can fail.
#[derive(Debug)]
pub enum Refusal {
    MethodNotAllowed,
    BodyTooLarge,
    UnsupportedMediaType(String),
    BadForm(FormError),
    MissingUsername,
    BadUsername(UsernameError),
    BadEmail,
    EmailRequired,
    MissingKeyRequest,
    TwoKeyRequests,
    BadKeyRequest(Kind, RequestError),
    KeyRefused(KeyRefused),
    BadChallenge,
    BadToken,
    CrossSite,
    UsernameTaken(String),
    SubjectTaken,
    /// A wrong, used or expired add-device / recovery code.
    BadCode,
    /// Too many requests from this address or for this username; retry after seconds.
    RateLimited(u64),
    /// An account action without a valid client certificate of this CA.
    NotSignedIn,
    /// A device (serial) that is not the signed-in user's.
    NotYourDevice,
    UnknownAction(String),
    /// The lock is held elsewhere or the disk is full: try again later.
    Busy(String),
    /// A fault on our side; the detail goes to the log only.
    Internal(String),
    /// The web server gave up on the request before anything was recorded: nobody reads
    /// this answer, and nothing was issued.
    Abandoned,
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::MethodNotAllowed => 405,
            Refusal::BodyTooLarge => 413,
            Refusal::UnsupportedMediaType(_) => 415,
            Refusal::BadForm(_)
            | Refusal::MissingUsername
            | Refusal::BadUsername(_)
            | Refusal::BadEmail
            | Refusal::EmailRequired
            | Refusal::MissingKeyRequest
            | Refusal::TwoKeyRequests
            | Refusal::BadKeyRequest(..)
            | Refusal::KeyRefused(_)
            | Refusal::BadChallenge
            | Refusal::BadToken
            | Refusal::UnknownAction(_) => 400,
            Refusal::CrossSite | Refusal::BadCode | Refusal::NotSignedIn | Refusal::NotYourDevice => 403,
            Refusal::RateLimited(_) => 429,
            Refusal::UsernameTaken(_) | Refusal::SubjectTaken => 409,
            Refusal::Busy(_) | Refusal::Abandoned => 503,
            Refusal::Internal(_) => 500,
        }
    }

    /// The enrollment form's field a refusal is about, sent as `X-Getacert-Field` so the
    /// page can mark that field and move the focus there.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Refusal::MissingUsername
            | Refusal::BadUsername(_)
            | Refusal::UsernameTaken(_)
            | Refusal::SubjectTaken => Some("username"),
            Refusal::BadEmail | Refusal::EmailRequired => Some("email"),
            Refusal::BadCode => Some("code"),
            Refusal::MethodNotAllowed
            | Refusal::BodyTooLarge
            | Refusal::UnsupportedMediaType(_)
            | Refusal::BadForm(_)
            | Refusal::MissingKeyRequest
            | Refusal::TwoKeyRequests
            | Refusal::BadKeyRequest(..)
            | Refusal::KeyRefused(_)
            | Refusal::BadChallenge
            | Refusal::BadToken
            | Refusal::CrossSite
            | Refusal::RateLimited(_)
            | Refusal::NotSignedIn
            | Refusal::NotYourDevice
            | Refusal::UnknownAction(_)
            | Refusal::Busy(_)
            | Refusal::Abandoned
            | Refusal::Internal(_) => None,
        }
    }
}

impl fmt::Display for Refusal {
    /// The words the user sees: what was wrong and what to do.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MethodNotAllowed => write!(
                f,
                "Only GET (the enrollment page) and POST (an enrollment) are accepted here."
            ),
            Refusal::BodyTooLarge => write!(
                f,
                "The request is too large. A key request is a few kilobytes at most."
            ),
            Refusal::UnsupportedMediaType(t) => write!(
                f,
                "Send the form as application/x-www-form-urlencoded or multipart/form-data, not {t:?}."
            ),
            Refusal::BadForm(FormError::Repeated(name)) => {
                write!(f, "The field {name:?} was sent twice with different values.")
            }
            Refusal::BadForm(FormError::BadMultipart(why)) => {
                write!(f, "The multipart form could not be read: {why}.")
            }
            Refusal::BadForm(FormError::UnsupportedType(t)) => write!(f, "Unsupported form type {t:?}."),
            Refusal::MissingUsername => write!(f, "Please choose a username."),
            Refusal::BadUsername(e) => match e {
                UsernameError::Empty => write!(f, "Please choose a username."),
                UsernameError::TooLong => write!(f, "That username is too long: 64 characters at most."),
                UsernameError::ForbiddenChar(c) => {
                    write!(
                        f,
                        "A username cannot contain {c:?}. Use letters, digits, '.', '_' and '-'."
                    )
                }
                UsernameError::MixedScript => write!(
                    f,
                    "A username must be written in one script: it mixes letters of different alphabets."
                ),
                UsernameError::NonAscii => write!(
                    f,
                    "A username may only use the letters A-Z and a-z, digits, '.', '_' and '-'."
                ),
                UsernameError::RuleMismatch => write!(
                    f,
                    "That username is not allowed here: start with a letter or digit, then letters, digits, '.', '_' or '-'."
                ),
            },
            Refusal::BadEmail => write!(f, "That email address does not look right."),
            Refusal::EmailRequired => write!(f, "This site needs an email address for the certificate."),
            Refusal::MissingKeyRequest => write!(
                f,
                "No key request was sent: post an SPKAC in 'pubkey' or a PKCS#10 CSR in 'csr'."
            ),
            Refusal::TwoKeyRequests => write!(f, "Send either an SPKAC or a CSR, not both."),
            Refusal::BadKeyRequest(kind, e) => {
                let what = match kind {
                    Kind::Spkac => "SPKAC",
                    Kind::Csr => "certificate request (CSR)",
                };
                match e {
                    RequestError::NotBase64 => write!(f, "The {what} is not valid base64."),
                    RequestError::TooLarge => write!(f, "The {what} is too large."),
                    RequestError::NotSpkac | RequestError::NotCsr => {
                        write!(f, "The {what} could not be parsed.")
                    }
                    RequestError::BadSignature => {
                        write!(
                            f,
                            "The {what}'s signature does not match its key; it was altered or damaged."
                        )
                    }
                }
            }
            Refusal::KeyRefused(k) => write!(
                f,
                "A {} key is not accepted here. Accepted: {}.",
                k.key, k.accepted
            ),
            Refusal::BadChallenge => write!(
                f,
                "The key request was not made for this server's page (its challenge is missing or expired). Reload the page and try again."
            ),
            Refusal::BadToken => write!(
                f,
                "This form has expired or did not come from this site. Reload the page and try again."
            ),
            Refusal::CrossSite => write!(f, "Enrollment requests from other web sites are refused."),
            Refusal::UsernameTaken(u) => write!(
                f,
                "The username {u:?} is already taken. Choose another, or add this device from a device that is already signed in."
            ),
            Refusal::SubjectTaken => write!(
                f,
                "A valid certificate with this exact subject exists and this CA allows only one."
            ),
            Refusal::BadCode => write!(
                f,
                "That code is wrong, used or expired. Ask for a new code on a device that is signed in (or ask the administrator for a recovery code)."
            ),
            Refusal::RateLimited(secs) => {
                write!(f, "Too many attempts. Please wait {secs} seconds and try again.")
            }
            Refusal::NotSignedIn => write!(
                f,
                "This needs a valid certificate of this site: open the page from a device that is signed in."
            ),
            Refusal::NotYourDevice => write!(f, "That certificate is not one of your devices."),
            Refusal::UnknownAction(a) => write!(f, "Unknown action {a:?}."),
            Refusal::Busy(_) | Refusal::Abandoned => {
                write!(f, "The server is busy. Please try again in a few seconds.")
            }
            Refusal::Internal(_) => write!(
                f,
                "Something went wrong on the server. The administrator can find the details in the log."
            ),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        if e.is_temporary() {
            Refusal::Busy(e.to_string())
        } else {
            Refusal::Internal(e.to_string())
        }
    }
}

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
}

/// Why a username may be given this certificate (the audit log says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// The name was never issued (or was released) and has no live code.
    NewUsername,
    /// The request presents a valid certificate of this username.
    ClientCertificate,
    AddDeviceCode,
    RecoveryCode,
}

impl Grant {
    fn words(self) -> &'static str {
        match self {
            Grant::NewUsername => "new username",
            Grant::ClientCertificate => "client certificate",
            Grant::AddDeviceCode => "add-device code",
            Grant::RecoveryCode => "recovery code",
        }
    }
}

/// A signed-in user: the username and the serial of the certificate they presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub serial: String,
    /// The certificate's notAfter (Unix time).
    pub not_after: i64,
}

/// The serial and certificate the web server passed, if both are readable.
fn presented(req: &Request) -> Option<(String, X509)> {
    let serial = index::normalize_serial(req.param_str("SSL_CLIENT_M_SERIAL")?)?;
    let cert = X509::from_pem(&client_cert_pem(req.param_str("SSL_CLIENT_CERT")?)).ok()?;
    Some((serial, cert))
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

#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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
        let secret = crate::ca::store::load_or_create_secret(&config.paths.secret_file)
            .map_err(|e| StartError(format!("{}: {e}", config.paths.secret_file.display())))?;
        if let Some(note) = &config.digest_note {
            log::warn!("{}: {note}", config.file.display());
        }
        let store = Store::new(&config);
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
        })
    }

    /// For the long-running daemon: reserve serials 32 at a time, so one serial-file
    /// rewrite serves 32 enrollments (a restart leaves a gap, never a reuse), and read
    /// the front secret when `front_secret_file` is set.
    pub fn daemon(mut self) -> Result<App, StartError> {
        self.store.set_serial_block(32);
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

    /// The SPKAC challenge of a page: signed, expiring, bound to nobody (scripts fetch
    /// it anonymously and may post it signed in).
    pub fn make_challenge(&self) -> Result<String, Refusal> {
        token::make(&self.secret, Purpose::Challenge, "", now())
            .map_err(|e| Refusal::Internal(format!("SPKAC challenge: {e}")))
    }

    /// The form token of a signed-in user's page: bound to the certificate presented,
    /// so only a request presenting that certificate can use it.
    pub fn account_token(&self, who: &Identity) -> Result<String, Refusal> {
        token::make(
            &self.secret,
            Purpose::Form,
            &format!("cert:{}", who.serial),
            now(),
        )
        .map_err(|e| Refusal::Internal(format!("form token: {e}")))
    }

    /// The form token of the anonymous page, bound to a random browser cookie, and
    /// the `Set-Cookie` value when the browser had none yet. Another site can neither
    /// read nor set the cookie (`__Host-`, `SameSite=Strict`, `HttpOnly`), so a token
    /// it fetched for itself is worthless in a victim's browser.
    pub fn anonymous_token(&self, req: &Request) -> Result<(String, Option<String>), Refusal> {
        let (cookie, set) = match browser_cookie(req) {
            Some(c) => (c.to_string(), None),
            None => {
                let mut raw = [0u8; 16];
                openssl::rand::rand_bytes(&mut raw)
                    .map_err(|e| Refusal::Internal(format!("random cookie: {e}")))?;
                let value: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                let header = format!(
                    "{}={value}; Path=/; {}HttpOnly; SameSite=Strict",
                    cookie_name(req),
                    if is_https(req) { "Secure; " } else { "" }
                );
                (value, Some(header))
            }
        };
        let t = token::make(&self.secret, Purpose::Form, &format!("anon:{cookie}"), now())
            .map_err(|e| Refusal::Internal(format!("form token: {e}")))?;
        Ok((t, set))
    }

    fn token_ok(&self, purpose: Purpose, binding: &str, t: &str) -> bool {
        token::verify(
            &self.secret,
            purpose,
            binding,
            t,
            now(),
            self.config.token_lifetime.as_secs() as i64,
        )
    }

    /// A form token is good only for the requester it was made for: the certificate
    /// presented now, or (anonymous) the browser cookie sent now.
    fn form_token_ok(&self, req: &Request, who: Option<&Identity>, t: &str) -> bool {
        let binding = match who {
            Some(id) => format!("cert:{}", id.serial),
            None => match browser_cookie(req) {
                Some(c) => format!("anon:{c}"),
                None => return false,
            },
        };
        self.token_ok(Purpose::Form, &binding, t)
    }

    /// Every POST: refuse what Fetch Metadata or Origin mark as coming from another
    /// site, whatever else the request carries (a form token does not excuse it).
    /// Scripts (curl, openssl) send neither header and pass.
    fn check_origin(&self, req: &Request) -> Result<(), Refusal> {
        if matches!(
            req.param_str("HTTP_SEC_FETCH_SITE"),
            Some("cross-site" | "same-site")
        ) {
            log::info!(target: "audit", "cross-site post: Sec-Fetch-Site {:?} remote={}", req.param_str("HTTP_SEC_FETCH_SITE"), remote(req));
            return Err(Refusal::CrossSite);
        }
        if let Some(origin) = req.param("HTTP_ORIGIN") {
            let origin = String::from_utf8_lossy(origin);
            let host = req.param_str("HTTP_HOST").unwrap_or("");
            if !same_origin_host(&origin, host) {
                log::info!(target: "audit", "cross-site post: Origin {origin:?}, Host {host:?} remote={}", remote(req));
                return Err(Refusal::CrossSite);
            }
        }
        Ok(())
    }

    /// The key rate limits and code guesses are counted under: the client address, an
    /// IPv6 address cut to its `/ipv6_prefix` network (one host usually has a /64).
    fn client_key(&self, req: &Request) -> String {
        crate::ratelimit::client_key(
            req.param_str("REMOTE_ADDR").unwrap_or("-"),
            self.config.ipv6_prefix,
        )
    }

    /// Who is asking: the web server verified a client certificate
    /// (`SSL_CLIENT_VERIFY=SUCCESS`), and the certificate it passed (`SSL_CLIENT_CERT`)
    /// is byte for byte the one this CA filed under `SSL_CLIENT_M_SERIAL` in newcerts/,
    /// not revoked in index.txt (whether or not the web server loaded a CRL) and not
    /// expired. Anything else is anonymous.
    ///
    /// The database lock held elsewhere is `Err(Busy)`, never "anonymous": a signed-in
    /// user must not be told their name is taken because the lock was slow.
    pub fn client_identity(&self, req: &Request) -> Result<Option<Identity>, Refusal> {
        if req.param_str("SSL_CLIENT_VERIFY") != Some("SUCCESS") {
            return Ok(None);
        }
        let Some(presented) = presented(req) else {
            return Ok(None);
        };
        let locked = self.store.lock()?;
        Ok(self.identify(req, &locked, presented))
    }

    fn identify(
        &self,
        req: &Request,
        locked: &crate::ca::store::Locked<'_>,
        (serial, presented): (String, X509),
    ) -> Option<Identity> {
        if locked.is_revoked(&serial) {
            log::info!(target: "audit", "revoked certificate serial={serial} presented by {}", remote(req));
            return None;
        }
        let on_file = locked.cert_on_file(&serial)?;
        let on_file = X509::from_pem(&on_file).ok()?;
        if on_file.to_der().ok()? != presented.to_der().ok()? {
            log::info!(target: "audit", "client certificate serial={serial} does not match the one on file ({})", remote(req));
            return None;
        }
        let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
        let not_after = epoch.diff(on_file.not_after()).ok()?;
        let not_after = i64::from(not_after.days) * 86400 + i64::from(not_after.secs);
        if not_after <= now() {
            return None;
        }
        let cn = on_file.subject_name().entries_by_nid(Nid::COMMONNAME).last()?;
        Some(Identity {
            username: cn.data().to_string().ok()?,
            serial,
            not_after,
        })
    }

    fn rate_limit(&self, key: &str, by_user: bool) -> Result<(), Refusal> {
        let limiter = if by_user {
            &self.user_limiter
        } else {
            &self.address_limiter
        };
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        limiter.take(key, t).map_err(Refusal::RateLimited)
    }

    /// The per-address rate limit, taken by every POST and by the signed-in account
    /// page's GET (it reads the user's devices).
    pub fn limit_address(&self, req: &Request) -> Result<(), Refusal> {
        self.rate_limit(&format!("addr {}", self.client_key(req)), false)
    }

    fn post(&self, req: &Request) -> Result<Response, Refusal> {
        if req.body_too_large {
            return Err(Refusal::BodyTooLarge);
        }
        self.check_origin(req)?;
        self.limit_address(req)?;
        let form =
            Form::parse(req.param_str("CONTENT_TYPE").unwrap_or(""), &req.body).map_err(|e| match e {
                FormError::UnsupportedType(t) => Refusal::UnsupportedMediaType(t),
                e => Refusal::BadForm(e),
            })?;
        let who = self.client_identity(req)?;
        let token = form.one_of(&["token"]).map_err(Refusal::BadForm)?;
        match form.one_of(&["action"]).map_err(Refusal::BadForm)? {
            None | Some("enroll") => {
                // Optional for scripts; when present, it must be this requester's.
                if let Some(t) = token
                    && !self.form_token_ok(req, who.as_ref(), t)
                {
                    return Err(Refusal::BadToken);
                }
                self.enroll(req, &form, who.as_ref())
            }
            Some(action @ ("revoke" | "add-device-code")) => {
                // Account actions change what a signed-in user has: a form token bound
                // to the certificate presented is required.
                let who = who.ok_or(Refusal::NotSignedIn)?;
                if !self.form_token_ok(req, Some(&who), token.unwrap_or("")) {
                    return Err(Refusal::BadToken);
                }
                if action == "revoke" {
                    self.revoke_device(req, &form, &who)
                } else {
                    self.add_device_code(req, &who)
                }
            }
            Some(other) => Err(Refusal::UnknownAction(other.chars().take(40).collect())),
        }
    }

    fn revoke_device(&self, req: &Request, form: &Form, who: &Identity) -> Result<Response, Refusal> {
        let serial = form
            .one_of(&["serial"])
            .map_err(Refusal::BadForm)?
            .and_then(index::normalize_serial)
            .ok_or(Refusal::NotYourDevice)?;
        let t = now();
        let mut locked = self.store.lock()?;
        let owner = |r: &Record| {
            r.common_name()
                .is_some_and(|cn| locked.same_name(cn, &who.username))
        };
        let mine: Vec<String> = locked
            .records()?
            .into_iter()
            .filter(|r| r.serial == serial && owner(r))
            .map(|r| r.serial)
            .collect();
        let revoked = crl::revoke(&mut locked, Some("cessationOfOperation"), t, |r| {
            mine.contains(&r.serial)
        })?;
        if revoked.is_empty() {
            return Err(Refusal::NotYourDevice);
        }
        self.refresh_crl(&mut locked, t);
        let devices = self.devices(&locked, &who.username)?;
        drop(locked);
        log::info!(
            target: "audit",
            "revoked serial={serial} user={} by=device serial={} remote={}",
            who.username,
            who.serial,
            remote(req)
        );
        let notice = revoked_notice(&serial, self.config.ocsp_next_update);
        Ok(page::account_page(self, req, who, &devices, Some(&notice), None))
    }

    fn add_device_code(&self, req: &Request, who: &Identity) -> Result<Response, Refusal> {
        let t = now();
        let locked = self.store.lock()?;
        let code = self.issue_code(&locked, &who.username, CodeKind::AddDevice, t)?;
        let devices = self.devices(&locked, &who.username)?;
        drop(locked);
        log::info!(target: "audit", "add-device code issued user={} by serial={} remote={}", who.username, who.serial, remote(req));
        Ok(page::account_page(self, req, who, &devices, None, Some(&code)))
    }

    /// A new one-time code for `user` (the secret stays inside the app).
    pub fn issue_code(
        &self,
        locked: &crate::ca::store::Locked<'_>,
        user: &str,
        kind: CodeKind,
        t: i64,
    ) -> Result<String, crate::ca::store::StoreError> {
        codes::issue(
            locked,
            &self.secret,
            &comparison_key(user, self.config.allow_non_ascii),
            kind,
            t,
            self.config.code_lifetime,
        )
    }

    /// Regenerates the CRL file after a revocation, when `crl` / `crl_file` is set.
    /// A failure is logged: the revocation itself stands, and getacert refuses the
    /// certificate at once either way.
    pub fn refresh_crl(&self, locked: &mut crate::ca::store::Locked<'_>, t: i64) {
        if self.config.paths.crl_file.is_none() {
            return;
        }
        if let Err(e) = crl::generate(locked, &self.config, &self.ca, t, true) {
            log::error!("the CRL was not regenerated after a revocation: {e}");
        }
    }

    /// Every certificate of `username`, newest first.
    pub fn devices(
        &self,
        locked: &crate::ca::store::Locked<'_>,
        username: &str,
    ) -> Result<Vec<Record>, Refusal> {
        Ok(locked.user_records(username)?)
    }

    fn enroll(&self, req: &Request, form: &Form, identity: Option<&Identity>) -> Result<Response, Refusal> {
        let cfg = &self.config;
        let raw_user = form
            .one_of(&["username"])
            .map_err(Refusal::BadForm)?
            .ok_or(Refusal::MissingUsername)?;
        let username = Username::parse(raw_user, &cfg.username_rule, cfg.allow_non_ascii)
            .map_err(Refusal::BadUsername)?;
        let email = match form
            .one_of(&["email", "emailAddress"])
            .map_err(Refusal::BadForm)?
        {
            Some(e) if !e.trim().is_empty() => Some(Email::parse(e.trim()).ok_or(Refusal::BadEmail)?),
            _ if cfg.require_email => return Err(Refusal::EmailRequired),
            _ => None,
        };
        let code = form
            .one_of(&["code"])
            .map_err(Refusal::BadForm)?
            .filter(|c| !c.trim().is_empty());
        let renew = form.one_of(&["renew"]).map_err(Refusal::BadForm)? == Some("yes");
        let spkac = form
            .one_of(&["pubkey", "key", "spkac", "SPKAC"])
            .map_err(Refusal::BadForm)?;
        let csr = form.one_of(&["csr", "pkcs10"]).map_err(Refusal::BadForm)?;
        let request = match (
            spkac.filter(|s| !s.trim().is_empty()),
            csr.filter(|s| !s.trim().is_empty()),
        ) {
            (Some(_), Some(_)) => return Err(Refusal::TwoKeyRequests),
            (None, None) => return Err(Refusal::MissingKeyRequest),
            (Some(s), None) => {
                PublicKeyRequest::from_spkac(s).map_err(|e| Refusal::BadKeyRequest(Kind::Spkac, e))?
            }
            (None, Some(c)) => {
                PublicKeyRequest::from_csr(c).map_err(|e| Refusal::BadKeyRequest(Kind::Csr, e))?
            }
        };
        if request.kind == Kind::Spkac && cfg.challenge == ChallengeRule::Signed {
            let challenge = request.challenge.as_deref().unwrap_or("");
            if !self.token_ok(Purpose::Challenge, "", challenge) {
                return Err(Refusal::BadChallenge);
            }
        }
        let accepted = policy::check(&request.public_key, &cfg.keys).map_err(Refusal::KeyRefused)?;
        let subject =
            sign::build_subject(cfg, &self.ca.cert, &username, email.as_ref()).map_err(|e| match e {
                SubjectError::EmailRequired => Refusal::EmailRequired,
                SubjectError::Config(m) => Refusal::Internal(m),
            })?;
        let name_key = comparison_key(username.as_str(), cfg.allow_non_ascii);
        let proven = identity.filter(|id| comparison_key(&id.username, cfg.allow_non_ascii) == name_key);
        let client = self.client_key(req);

        if req.abandoned.is_set() {
            return Err(Refusal::Abandoned);
        }
        let t = now();
        let mut locked = self.store.lock()?;
        let how = match proven {
            // The owner's own devices are limited apart from anonymous traffic for the name.
            Some(_) => {
                self.rate_limit(&format!("owner {name_key}"), true)?;
                Grant::ClientCertificate
            }
            None if locked.username_known(username.as_str()) || codes::has_live(&locked, &name_key, t)? => {
                // A name that was ever issued belongs to its account: only a code opens
                // it to an anonymous request. Refusing costs nobody's limit.
                let Some(code) = code else {
                    return Err(Refusal::UsernameTaken(username.as_str().to_string()));
                };
                if let Some(wait) = codes::backoff(&locked, &name_key, &client, t)? {
                    return Err(Refusal::RateLimited(wait));
                }
                self.rate_limit(&format!("user {name_key}"), true)?;
                let result = codes::redeem(&locked, &self.secret, &name_key, code, t)?;
                let right = matches!(result, Redeemed::Accepted(_));
                codes::record_guess(&locked, &name_key, &client, right, t)?;
                match result {
                    Redeemed::Accepted(CodeKind::AddDevice) => Grant::AddDeviceCode,
                    Redeemed::Accepted(CodeKind::Recovery) => Grant::RecoveryCode,
                    Redeemed::Wrong | Redeemed::NoCode => {
                        log::warn!(
                            target: "audit",
                            "wrong or expired code for user={} remote={}",
                            username.as_str(),
                            remote(req)
                        );
                        return Err(Refusal::BadCode);
                    }
                }
            }
            None => {
                self.rate_limit(&format!("user {name_key}"), true)?;
                Grant::NewUsername
            }
        };
        let subject_line = crate::ffi::openssl::name_oneline(&subject);
        if locked.subject_taken(&subject_line, t) {
            return Err(Refusal::SubjectTaken);
        }
        let reservation = locked.reserve()?;
        let serial = reservation.serial().to_string();
        // Sign without holding the lock, so enrollments sign in parallel; what the
        // first check decided is checked again once the lock is held to record.
        drop(locked);
        let issued = sign::issue(
            cfg,
            &self.ca,
            &subject,
            &request.public_key,
            &accepted,
            &serial,
            t,
        )
        .map_err(|e| Refusal::Internal(format!("signing serial {serial}: {e}")))?;
        let pem = issued
            .cert
            .to_pem()
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let written = self.store.write_cert(reservation, &pem)?;
        // The grant must still hold (another request may have won the name, the
        // presented certificate may have been revoked meanwhile); if not, the store
        // removes the file and the serial stays used.
        let (mut locked, pending) = self.store.commit(written, &issued.record, |locked| {
            // The last moment a request the web server gave up on can leave no trace:
            // after this the certificate is recorded and answered, whoever still listens.
            if req.abandoned.is_set() {
                return Err(Refusal::Abandoned);
            }
            match self.grant_lost(locked, how, &username, &name_key, proven, &subject_line, now())? {
                Some(refusal) => Err(refusal),
                None => Ok(()),
            }
        })?;
        if let (Some(old), true) = (proven, renew) {
            let replaced = crl::revoke(&mut locked, Some("superseded"), t, |r| r.serial == old.serial)?;
            if !replaced.is_empty() {
                self.refresh_crl(&mut locked, t);
            }
        }
        drop(locked);
        // Flushed outside the lock, so waiting enrollments share the disk's flush; only
        // after it is the certificate answered.
        pending.sync()?;

        log::info!(
            target: "audit",
            "issued serial={} user={} key={} via={} by={} remote={}{}",
            serial,
            username.as_str(),
            accepted.description,
            match request.kind {
                Kind::Spkac => "spkac",
                Kind::Csr => "csr",
            },
            how.words(),
            remote(req),
            if renew && proven.is_some() { " (renewal: the old certificate is revoked)" } else { "" }
        );
        let wants_pem = req.param_str("HTTP_ACCEPT").is_some_and(|a| {
            a.contains("application/x-pem-file") && !a.contains("application/x-x509-user-cert")
        });
        let resp = if wants_pem {
            Response::new(200, "application/x-pem-file", pem)
        } else {
            let der = issued
                .cert
                .to_der()
                .map_err(|e| Refusal::Internal(e.to_string()))?;
            Response::new(200, "application/x-x509-user-cert", der)
        };
        Ok(resp.with_header("Cache-Control", "no-store").with_header(
            "Content-Disposition",
            &format!("attachment; filename=\"{}.crt\"", username.as_str()),
        ))
    }

    /// At commit, under the lock: does the grant decided before signing still hold?
    /// A new name must still be unknown and without a live code; a signed-in owner's
    /// certificate must still be valid (not revoked, not expired while this one signed).
    #[allow(clippy::too_many_arguments)]
    fn grant_lost(
        &self,
        locked: &crate::ca::store::Locked<'_>,
        how: Grant,
        username: &Username,
        name_key: &str,
        proven: Option<&Identity>,
        subject_line: &str,
        t: i64,
    ) -> Result<Option<Refusal>, Refusal> {
        let lost = match how {
            Grant::NewUsername => (locked.username_known(username.as_str())
                || codes::has_live(locked, name_key, t)?)
            .then(|| Refusal::UsernameTaken(username.as_str().to_string())),
            Grant::ClientCertificate => proven
                .filter(|id| locked.is_revoked(&id.serial) || id.not_after <= t)
                .map(|id| {
                    log::warn!(target: "audit", "certificate serial={} was revoked or expired while a renewal signed", id.serial);
                    Refusal::NotSignedIn
                }),
            Grant::AddDeviceCode | Grant::RecoveryCode => None,
        };
        Ok(lost.or_else(|| {
            locked
                .subject_taken(subject_line, t)
                .then_some(Refusal::SubjectTaken)
        }))
    }

    /// The answer to a refusal: status and headers from [`Refusal::status`], logged.
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
        let message = r.to_string();
        let wants_html = req
            .param_str("HTTP_ACCEPT")
            .is_some_and(|a| a.contains("text/html"));
        let mut resp = if wants_html {
            Response::new(
                status,
                "text/html; charset=utf-8",
                page::error_page(status, &message).into_bytes(),
            )
        } else {
            Response::new(
                status,
                "text/plain; charset=utf-8",
                format!("{message}\n").into_bytes(),
            )
        }
        .with_header("Cache-Control", "no-store")
        .with_header("X-Content-Type-Options", "nosniff");
        if status == 503 {
            resp = resp.with_header("Retry-After", "5");
        }
        if let Refusal::RateLimited(secs) = r {
            resp = resp.with_header("Retry-After", &secs.to_string());
        }
        if status == 405 {
            resp = resp.with_header("Allow", "GET, HEAD, POST");
        }
        if let Some(field) = r.field() {
            resp = resp.with_header("X-Getacert-Field", field);
        }
        resp
    }
}

/// What the account page says after a revocation: getacert refuses the certificate at
/// once; the web server (the shipped OCSP settings) refuses new connections with it
/// once its cached OCSP answer is older than `ocsp_next_update`.
pub fn revoked_notice(serial: &str, next_update: u32) -> String {
    format!(
        "The device with certificate {serial} can no longer sign in: this page no longer accepts \
         it, and the web server refuses its new connections within {next_update} seconds. A page \
         it already has open may keep working until its connection closes."
    )
}

/// The client certificate as nginx (`$ssl_client_escaped_cert`, URL-encoded;
/// `$ssl_client_cert`, tab-indented) or Apache (`SSL_CLIENT_CERT`, plain PEM) passes it.
fn client_cert_pem(value: &str) -> Vec<u8> {
    let decoded: String = if value.contains('%') {
        form_urlencoded::parse(format!("x={}", value.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    } else {
        value.to_string()
    };
    decoded
        .lines()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// The front secret file's content without its final newline: at least 32 characters,
/// printable ASCII (it is written into the web server's configuration).
fn read_front_secret(path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    crate::ca::store::read_front_secret(path)
        .map_err(|m| StartError(format!("front_secret_file {}: {m}", path.display())))
}

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        // Absent means GET (a bare FastCGI test client); present but not text is refused.
        let method = match req.param("REQUEST_METHOD") {
            None => "GET",
            Some(m) => std::str::from_utf8(m).unwrap_or("?"),
        };
        // OCSP first, without the front secret: it is a read of public status (each
        // answer signed, nothing changed, no identity believed), asked by the web
        // server's own OCSP client through a loopback server that passes no secret.
        if let Some(route) = crate::responder::route(req, method) {
            let mut resp = self.ocsp.handle(req, &route, now());
            if method == "HEAD" {
                resp.body.clear();
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
            "GET" | "HEAD" => Ok(page::serve_get(self, req)),
            "POST" => self.post(req),
            _ => Err(Refusal::MethodNotAllowed),
        };
        let mut resp = result.unwrap_or_else(|r| self.refuse(req, &r));
        if method == "HEAD" {
            resp.body.clear();
        }
        resp
    }
}
