//! Every way a request can fail, and how each is answered: the status, the header that
//! depends on the failure, the words the user reads (what was wrong, what to do) and the
//! rendering (plain text, or a short HTML page for a browser). GET's failures are here
//! too. One exhaustive `match` decides status and headers; nothing else compares status
//! numbers. This file does not log (the caller knows the context) and decides nothing
//! about a request.

use std::fmt;

use crate::ca::store::StoreError;
use crate::enroll::form::FormError;
use crate::enroll::policy::KeyRefused;
use crate::enroll::request::{Kind, RequestError};
use crate::enroll::username::UsernameError;
use crate::web::Response;

use super::page;

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
    /// A device name that is empty, too long or has a control or invisible character.
    BadDeviceName(crate::ca::store::devices::NameError),
    UnknownAction(String),
    /// The lock is held elsewhere or the disk is full: try again later.
    Busy(String),
    /// A fault on our side; the detail goes to the log only.
    Internal(String),
    /// The web server gave up on the request before anything was recorded: nobody reads
    /// this answer, and nothing was issued.
    Abandoned,
    /// A GET page could not be gathered (the lock is held elsewhere, the user's devices
    /// could not be read): a bare 503 "try again", as the page has always answered.
    PageUnavailable,
    /// A page's form token or challenge could not be made (the HMAC failed): no page,
    /// since a page without a working token is a form that cannot be sent.
    PageTokens,
}

/// How a refusal is answered, decided in one place: the status, the header that
/// depends on the failure (`Retry-After`, `Allow`), and whether the answer is dressed
/// (HTML for a browser, `no-store`, `nosniff`) or the bare plain text of a GET page.
struct Answer {
    status: u16,
    header: Option<(&'static str, String)>,
    dressed: bool,
}

impl Refusal {
    /// The one exhaustive match (no `_` arm: a new failure must be given its answer).
    fn answer(&self) -> Answer {
        let dressed = |status: u16| Answer {
            status,
            header: None,
            dressed: true,
        };
        let with = |status: u16, name: &'static str, value: String| Answer {
            status,
            header: Some((name, value)),
            dressed: true,
        };
        match self {
            Refusal::MethodNotAllowed => with(405, "Allow", "GET, HEAD, POST".into()),
            Refusal::BodyTooLarge => dressed(413),
            Refusal::UnsupportedMediaType(_) => dressed(415),
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
            | Refusal::BadDeviceName(_)
            | Refusal::UnknownAction(_) => dressed(400),
            Refusal::CrossSite | Refusal::BadCode | Refusal::NotSignedIn | Refusal::NotYourDevice => {
                dressed(403)
            }
            Refusal::RateLimited(secs) => with(429, "Retry-After", secs.to_string()),
            Refusal::UsernameTaken(_) | Refusal::SubjectTaken => dressed(409),
            Refusal::Busy(_) | Refusal::Abandoned => with(503, "Retry-After", "5".into()),
            Refusal::Internal(_) => dressed(500),
            Refusal::PageUnavailable => Answer {
                status: 503,
                header: Some(("Retry-After", "5".into())),
                dressed: false,
            },
            Refusal::PageTokens => Answer {
                status: 500,
                header: None,
                dressed: false,
            },
        }
    }

    pub fn status(&self) -> u16 {
        self.answer().status
    }

    /// The answer to this refusal (what is logged about it is the caller's:
    /// [`App::refuse`](super::App::refuse) for a POST, the GET page for its own).
    pub(crate) fn response(&self, wants_html: bool) -> Response {
        let Answer {
            status,
            header,
            dressed,
        } = self.answer();
        let message = self.to_string();
        if !dressed {
            let resp = Response::new(
                status,
                "text/plain; charset=utf-8",
                format!("{message}\n").into_bytes(),
            );
            return match header {
                Some((name, value)) => resp.with_header(name, &value),
                None => resp,
            };
        }
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
        if let Some((name, value)) = header {
            resp = resp.with_header(name, &value);
        }
        if let Some(field) = self.field() {
            resp = resp.with_header("X-Getacert-Field", field);
        }
        resp
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
            Refusal::BadDeviceName(_) => Some("name"),
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
            | Refusal::Internal(_)
            | Refusal::PageUnavailable
            | Refusal::PageTokens => None,
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
            Refusal::BadDeviceName(e) => write!(f, "{e}"),
            Refusal::UnknownAction(a) => write!(f, "Unknown action {a:?}."),
            Refusal::Busy(_) | Refusal::Abandoned => {
                write!(f, "The server is busy. Please try again in a few seconds.")
            }
            Refusal::Internal(_) | Refusal::PageTokens => write!(
                f,
                "Something went wrong on the server. The administrator can find the details in the log."
            ),
            Refusal::PageUnavailable => write!(f, "Please try again in a few seconds."),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn every_refusal_has_its_status() {
        let cases: Vec<(Refusal, u16)> = vec![
            (Refusal::MethodNotAllowed, 405),
            (Refusal::BodyTooLarge, 413),
            (Refusal::UnsupportedMediaType("text/plain".into()), 415),
            (Refusal::BadForm(FormError::Repeated("csr".into())), 400),
            (Refusal::MissingUsername, 400),
            (Refusal::BadUsername(UsernameError::TooLong), 400),
            (Refusal::BadEmail, 400),
            (Refusal::EmailRequired, 400),
            (Refusal::MissingKeyRequest, 400),
            (Refusal::TwoKeyRequests, 400),
            (Refusal::BadKeyRequest(Kind::Csr, RequestError::BadSignature), 400),
            (
                Refusal::KeyRefused(KeyRefused {
                    key: "RSA 1024".into(),
                    accepted: "RSA 2048+".into(),
                }),
                400,
            ),
            (Refusal::BadChallenge, 400),
            (Refusal::BadToken, 400),
            (Refusal::UnknownAction("x".into()), 400),
            (Refusal::CrossSite, 403),
            (Refusal::BadCode, 403),
            (Refusal::NotSignedIn, 403),
            (Refusal::NotYourDevice, 403),
            (
                Refusal::BadDeviceName(crate::ca::store::devices::NameError::TooLong),
                400,
            ),
            (Refusal::RateLimited(7), 429),
            (Refusal::UsernameTaken("alice".into()), 409),
            (Refusal::SubjectTaken, 409),
            (Refusal::Busy("lock".into()), 503),
            (Refusal::Abandoned, 503),
            (Refusal::Internal("disk".into()), 500),
            (Refusal::PageUnavailable, 503),
            (Refusal::PageTokens, 500),
        ];
        for (r, status) in cases {
            assert_eq!(r.status(), status, "{r:?}");
            let resp = r.response(false);
            assert_eq!(resp.status, status, "{r:?}");
            // The user's words never carry the log's detail.
            let body = String::from_utf8(resp.body).unwrap();
            assert!(!body.contains("disk") && !body.contains("lock"), "{r:?}: {body}");
        }
    }

    #[test]
    fn headers_come_from_the_failure() {
        let r = Refusal::MethodNotAllowed.response(false);
        assert_eq!(header(&r, "Allow"), Some("GET, HEAD, POST"));
        assert_eq!(header(&r, "Retry-After"), None);
        let r = Refusal::RateLimited(42).response(false);
        assert_eq!(header(&r, "Retry-After"), Some("42"));
        for busy in [Refusal::Busy("x".into()), Refusal::Abandoned] {
            assert_eq!(header(&busy.response(false), "Retry-After"), Some("5"));
        }
        let r = Refusal::Internal("x".into()).response(false);
        assert_eq!((header(&r, "Retry-After"), header(&r, "Allow")), (None, None));
        for r in [Refusal::BadCode.response(false), Refusal::BadToken.response(true)] {
            assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
            assert_eq!(header(&r, "X-Content-Type-Options"), Some("nosniff"));
        }
    }

    #[test]
    fn field_header_names_the_form_field() {
        let field = |r: Refusal| header(&r.response(false), "X-Getacert-Field").map(str::to_string);
        assert_eq!(
            field(Refusal::UsernameTaken("a".into())).as_deref(),
            Some("username")
        );
        assert_eq!(field(Refusal::SubjectTaken).as_deref(), Some("username"));
        assert_eq!(field(Refusal::EmailRequired).as_deref(), Some("email"));
        assert_eq!(field(Refusal::BadCode).as_deref(), Some("code"));
        assert_eq!(field(Refusal::BadToken), None);
    }

    #[test]
    fn html_for_a_browser_plain_text_otherwise() {
        let r = Refusal::UsernameTaken("<b>alice</b>".into());
        let plain = r.response(false);
        assert_eq!(header(&plain, "Content-Type"), Some("text/plain; charset=utf-8"));
        assert!(
            plain
                .body
                .starts_with(b"The username \"<b>alice</b>\" is already taken.")
        );
        assert!(plain.body.ends_with(b"\n"));
        let html = r.response(true);
        assert_eq!(header(&html, "Content-Type"), Some("text/html; charset=utf-8"));
        let body = String::from_utf8(html.body).unwrap();
        assert!(body.contains("<h1>Enrollment failed (409)</h1>"), "{body}");
        assert!(
            body.contains("&lt;b&gt;alice&lt;/b&gt;") && !body.contains("<b>alice"),
            "{body}"
        );
    }

    #[test]
    fn page_failures_are_bare_text_as_the_page_always_answered() {
        let r = Refusal::PageUnavailable.response(true);
        assert_eq!(r.body, b"Please try again in a few seconds.\n");
        assert_eq!(
            r.headers,
            [
                (
                    "Content-Type".to_string(),
                    "text/plain; charset=utf-8".to_string()
                ),
                ("Retry-After".to_string(), "5".to_string())
            ]
        );
        let r = Refusal::PageTokens.response(true);
        assert_eq!(
            r.body,
            b"Something went wrong on the server. The administrator can find the details in the log.\n"
        );
        assert_eq!(r.headers.len(), 1, "{:?}", r.headers);
    }
}
