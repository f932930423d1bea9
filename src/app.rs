//! The enrollment application: one request in, one response out. Reads the form, checks
//! everything, then takes the database lock only to check the username, reserve a
//! serial, sign and record. Every failure is one [`Refusal`], mapped to a status in one
//! exhaustive `match` ([`Refusal::status`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ca::index;
use crate::ca::sign::{self, Ca, SubjectError};
use crate::ca::store::{Store, StoreError};
use crate::config::{ChallengeRule, Config};
use crate::enroll::form::{Form, FormError};
use crate::enroll::policy::{self, KeyRefused};
use crate::enroll::request::{Kind, PublicKeyRequest, RequestError};
use crate::enroll::username::{Email, Username, UsernameError};
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
    /// The lock is held elsewhere or the disk is full: try again later.
    Busy(String),
    /// A fault on our side; the detail goes to the log only.
    Internal(String),
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
            | Refusal::BadToken => 400,
            Refusal::CrossSite => 403,
            Refusal::UsernameTaken(_) | Refusal::SubjectTaken => 409,
            Refusal::Busy(_) => 503,
            Refusal::Internal(_) => 500,
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
            Refusal::Busy(_) => write!(f, "The server is busy. Please try again in a few seconds."),
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
    pub fn new(config: Config) -> Result<App, StartError> {
        let ca = Ca::load(&config.paths.certificate, &config.paths.private_key)
            .map_err(|e| StartError(e.to_string()))?;
        let probe = Username::parse(
            "probe",
            &regex::Regex::new(".*").map_err(|e| StartError(e.to_string()))?,
            false,
        )
        .map_err(|e| StartError(format!("{e:?}")))?;
        let email = Email::parse("probe@example.org");
        match sign::build_subject(&config, &ca.cert, &probe, email.as_ref()) {
            Ok(_) | Err(SubjectError::EmailRequired) => {}
            Err(SubjectError::Config(e)) => {
                return Err(StartError(format!("{}: {e}", config.file.display())));
            }
        }
        let secret = token::load_or_create_secret(&config.paths.secret_file)
            .map_err(|e| StartError(format!("{}: {e}", config.paths.secret_file.display())))?;
        if let Some(note) = &config.digest_note {
            log::warn!("{}: {note}", config.file.display());
        }
        let store = Store::new(&config);
        Ok(App {
            config,
            ca,
            store,
            secret,
        })
    }

    pub fn make_token(&self, purpose: Purpose) -> String {
        token::make(&self.secret, purpose, now())
    }

    fn token_ok(&self, purpose: Purpose, t: &str) -> bool {
        token::verify(
            &self.secret,
            purpose,
            t,
            now(),
            self.config.token_lifetime.as_secs() as i64,
        )
    }

    /// A browser on another site must not make this one enroll: with no form token,
    /// refuse what Fetch Metadata or Origin mark as cross-site. Scripts (curl, openssl)
    /// send neither and pass.
    fn check_origin(&self, req: &Request, form: &Form) -> Result<(), Refusal> {
        if let Some(t) = form.one_of(&["token"]).map_err(Refusal::BadForm)? {
            return if self.token_ok(Purpose::Form, t) {
                Ok(())
            } else {
                Err(Refusal::BadToken)
            };
        }
        if matches!(
            req.param_str("HTTP_SEC_FETCH_SITE"),
            Some("cross-site" | "same-site")
        ) {
            return Err(Refusal::CrossSite);
        }
        if let (Some(origin), Some(host)) = (req.param_str("HTTP_ORIGIN"), req.param_str("HTTP_HOST")) {
            let origin_host = origin.split("://").nth(1).unwrap_or(origin);
            if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
                return Err(Refusal::CrossSite);
            }
        }
        Ok(())
    }

    /// The username the client certificate proves, if the web server verified one that
    /// this CA issued, that is on file, unrevoked and unexpired.
    fn client_identity(&self, req: &Request) -> Option<String> {
        if req.param_str("SSL_CLIENT_VERIFY") != Some("SUCCESS") {
            return None;
        }
        let serial = index::normalize_serial(req.param_str("SSL_CLIENT_M_SERIAL")?)?;
        let presented =
            openssl::x509::X509::from_pem(&client_cert_pem(req.param_str("SSL_CLIENT_CERT")?)).ok()?;
        let locked = self.store.lock().ok()?;
        if locked.is_revoked(&serial) {
            return None;
        }
        let on_file = std::fs::read(locked.cert_path(&serial)).ok()?;
        drop(locked);
        let on_file = openssl::x509::X509::from_pem(&on_file).ok()?;
        if on_file.to_der().ok()? != presented.to_der().ok()? {
            return None;
        }
        let now = openssl::asn1::Asn1Time::from_unix(now() as libc::time_t).ok()?;
        if on_file.not_after() <= now {
            return None;
        }
        let cn = on_file
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .last()?;
        cn.data().to_string().ok()
    }

    fn enroll(&self, req: &Request) -> Result<Response, Refusal> {
        if req.body_too_large {
            return Err(Refusal::BodyTooLarge);
        }
        let form =
            Form::parse(req.param_str("CONTENT_TYPE").unwrap_or(""), &req.body).map_err(|e| match e {
                FormError::UnsupportedType(t) => Refusal::UnsupportedMediaType(t),
                e => Refusal::BadForm(e),
            })?;
        self.check_origin(req, &form)?;
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
            if !self.token_ok(Purpose::Challenge, challenge) {
                return Err(Refusal::BadChallenge);
            }
        }
        let accepted = policy::check(&request.public_key, &cfg.keys).map_err(Refusal::KeyRefused)?;
        let subject =
            sign::build_subject(cfg, &self.ca.cert, &username, email.as_ref()).map_err(|e| match e {
                SubjectError::EmailRequired => Refusal::EmailRequired,
                SubjectError::Config(m) => Refusal::Internal(m),
            })?;
        let identity = self.client_identity(req);
        let proven = identity
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(username.as_str()));

        let t = now();
        let mut locked = self.store.lock()?;
        if !proven && locked.username_taken(username.as_str(), t) {
            return Err(Refusal::UsernameTaken(username.as_str().to_string()));
        }
        let subject_line = crate::ffi::openssl::name_oneline(&subject);
        if locked.subject_taken(&subject_line, t) {
            return Err(Refusal::SubjectTaken);
        }
        let serial = locked.allocate_serial()?;
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
        locked.record(&issued.record, &pem)?;
        drop(locked);

        log::info!(
            target: "audit",
            "issued serial={} user={} key={} via={} remote={}{}",
            serial,
            username.as_str(),
            accepted.description,
            match request.kind {
                Kind::Spkac => "spkac",
                Kind::Csr => "csr",
            },
            req.param_str("REMOTE_ADDR").unwrap_or("-"),
            if proven { " (proven by client certificate)" } else { "" }
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

    fn refuse(&self, req: &Request, r: &Refusal) -> Response {
        let status = r.status();
        let remote = req.param_str("REMOTE_ADDR").unwrap_or("-");
        match r {
            Refusal::Internal(detail) => log::error!("request from {remote} failed: {detail}"),
            Refusal::Busy(detail) => log::warn!("request from {remote} answered 503: {detail}"),
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
        if status == 405 {
            resp = resp.with_header("Allow", "GET, HEAD, POST");
        }
        resp
    }
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

impl Handler for App {
    fn handle(&self, req: &Request) -> Response {
        let method = req.param_str("REQUEST_METHOD").unwrap_or("GET");
        let result = match method {
            "GET" | "HEAD" => Ok(page::serve_get(self, req)),
            "POST" => self.enroll(req),
            _ => Err(Refusal::MethodNotAllowed),
        };
        let mut resp = result.unwrap_or_else(|r| self.refuse(req, &r));
        if method == "HEAD" {
            resp.body.clear();
        }
        resp
    }
}
