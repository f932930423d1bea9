//! The enrollment transaction, as the steps [`App::enroll`] runs in order:
//!
//! 1. [`read_form`]: the form's fields, each checked (username, email, code, renew, one
//!    key request whose signature verifies). Pure.
//! 2. [`App::check_challenge`] and `policy::check`: the SPKAC was made for this server's
//!    page, and the key is one this CA accepts.
//! 3. [`App::reserve`], under the lock: the [`Grant`] that lets this username have a
//!    certificate (new name, the owner's certificate, a code), the subject is free, a
//!    serial is taken.
//! 4. Sign without the lock; the certificate file is written.
//! 5. [`App::commit`], under the lock again: the grant still holds ([`App::grant_lost`]),
//!    the line is recorded with the device's name (and, for a renewal, the certificate
//!    it replaces once it is used); then the flush, outside the lock.
//! 6. [`certificate_response`]: DER (or PEM when asked), never cached.
//!
//! Every step returns a [`Refusal`] for what it refuses; the first failing step answers.

use openssl::x509::X509Name;
use regex::Regex;

use crate::ca::codes::{self, CodeKind, Redeemed};
use crate::ca::sign::{self, Issued, SubjectError};
use crate::ca::store::{Locked, Pending, Reservation, Written};
use crate::config::ChallengeRule;
use crate::enroll::form::Form;
use crate::enroll::policy;
use crate::enroll::request::{Kind, PublicKeyRequest};
use crate::enroll::username::{AccountKey, Email, Username};
use crate::token::Purpose;
use crate::web::{Request, Response};

use super::{App, Identity, Now, Refusal, remote};

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

/// What an enrollment form asks for, every field checked ([`read_form`]).
struct Application<'f> {
    username: Username,
    email: Option<Email>,
    /// An add-device or recovery code, when one was typed.
    code: Option<&'f str>,
    /// `renew=yes`: a signed-in owner's old certificate is superseded once the new one
    /// is seen in use (a signed-in request presenting it), or expires on its own.
    renew: bool,
    /// The SPKAC or CSR, its signature verified.
    request: PublicKeyRequest,
}

/// Who asks for which name, fixed before the lock is taken.
struct Claim<'a> {
    username: &'a Username,
    /// The name as compared (case-folded): the key of codes and rate limits.
    name_key: AccountKey,
    /// The signed-in identity, when it is this username's.
    proven: Option<&'a Identity>,
    /// The client address as rate limits and code guesses count it.
    client: String,
    subject_line: String,
}

/// Step 1: the form's fields, in the order their refusals have always come. The field
/// names keep the aliases the article's page and scripts use.
fn read_form<'f>(
    form: &'f Form,
    rule: &Regex,
    allow_non_ascii: bool,
    require_email: bool,
) -> Result<Application<'f>, Refusal> {
    let raw_user = form
        .one_of(&["username"])
        .map_err(Refusal::BadForm)?
        .ok_or(Refusal::MissingUsername)?;
    let username = Username::parse(raw_user, rule, allow_non_ascii).map_err(Refusal::BadUsername)?;
    let email = match form
        .one_of(&["email", "emailAddress"])
        .map_err(Refusal::BadForm)?
    {
        Some(e) if !e.trim().is_empty() => Some(Email::parse(e.trim()).ok_or(Refusal::BadEmail)?),
        _ if require_email => return Err(Refusal::EmailRequired),
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
        (None, Some(c)) => PublicKeyRequest::from_csr(c).map_err(|e| Refusal::BadKeyRequest(Kind::Csr, e))?,
    };
    Ok(Application {
        username,
        email,
        code,
        renew,
        request,
    })
}

impl App {
    pub(super) fn enroll(
        &self,
        req: &Request,
        form: &Form,
        identity: Option<&Identity>,
        now: Now,
    ) -> Result<Response, Refusal> {
        let cfg = &self.config;
        let asked = read_form(form, &cfg.username_rule, cfg.allow_non_ascii, cfg.require_email)?;
        self.check_challenge(&asked.request, now)?;
        let accepted = policy::check(&asked.request.public_key, &cfg.keys).map_err(Refusal::KeyRefused)?;
        let subject = self.subject(&asked)?;
        let name_key = asked.username.account_key(cfg.allow_non_ascii);
        let claim = Claim {
            username: &asked.username,
            proven: identity.filter(|id| id.username.account_key(cfg.allow_non_ascii) == name_key),
            name_key,
            client: self.client_key(req),
            subject_line: crate::ffi::openssl::name_oneline(&subject),
        };

        if req.abandoned.is_set() {
            return Err(Refusal::Abandoned);
        }
        let (how, reservation) = self.reserve(req, &claim, asked.code, now)?;
        let serial = reservation.serial().to_string();
        // Sign without holding the lock, so enrollments sign in parallel; what the
        // reservation decided is checked again once the lock is held to record.
        let issued = sign::issue(
            cfg,
            &self.ca,
            &subject,
            &asked.request.public_key,
            &accepted,
            &serial,
            now.secs,
        )
        .map_err(|e| Refusal::Internal(format!("signing serial {serial}: {e}")))?;
        let pem = issued
            .cert
            .to_pem()
            .map_err(|e| Refusal::Internal(e.to_string()))?;
        let written = self.store.write_cert(reservation, &pem)?;
        let pending = self.commit(req, how, &claim, asked.renew, &issued, written, now)?;
        // Flushed outside the lock, so waiting enrollments share the disk's flush; only
        // after it is the certificate answered.
        pending.sync()?;
        if let Err(e) = self.store.sync_devices() {
            log::error!("{e} (the new device's name may be lost)");
        }

        log::info!(
            target: "audit",
            "issued serial={} user={} key={} via={} by={} remote={}{}",
            serial,
            asked.username.as_str(),
            accepted.description,
            match asked.request.kind {
                Kind::Spkac => "spkac",
                Kind::Csr => "csr",
            },
            how.words(),
            remote(req),
            if asked.renew && claim.proven.is_some() { " (renewal: the old certificate is superseded once this one is used)" } else { "" }
        );
        let der = issued.cert.to_der().map_err(|e| Refusal::Internal(e.to_string()));
        certificate_response(req.param_str("HTTP_ACCEPT"), asked.username.as_str(), pem, der)
    }

    /// Step 2: an SPKAC carries a challenge this server signed and that has not expired,
    /// when `challenge = signed` (a CSR has none to check).
    fn check_challenge(&self, request: &PublicKeyRequest, now: Now) -> Result<(), Refusal> {
        if request.kind == Kind::Spkac && self.config.challenge == ChallengeRule::Signed {
            let challenge = request.challenge.as_deref().unwrap_or("");
            if !self.token_ok(Purpose::Challenge, "", challenge, now) {
                return Err(Refusal::BadChallenge);
            }
        }
        Ok(())
    }

    /// The certificate's subject from the config's profile and the form.
    fn subject(&self, asked: &Application<'_>) -> Result<X509Name, Refusal> {
        sign::build_subject(&self.config, &self.ca.cert, &asked.username, asked.email.as_ref()).map_err(|e| {
            match e {
                SubjectError::EmailRequired => Refusal::EmailRequired,
                SubjectError::Config(m) => Refusal::Internal(m),
            }
        })
    }

    /// Step 3, under the lock: why this username may be given a certificate, the
    /// subject is free, and the serial it will carry.
    fn reserve(
        &self,
        req: &Request,
        claim: &Claim<'_>,
        code: Option<&str>,
        now: Now,
    ) -> Result<(Grant, Reservation), Refusal> {
        let mut locked = self.store.lock()?;
        let how = self.grant(req, &locked, claim, code, now)?;
        if locked.subject_taken(&claim.subject_line, now.secs) {
            return Err(Refusal::SubjectTaken);
        }
        let reservation = locked.reserve()?;
        Ok((how, reservation))
    }

    /// The [`Grant`]: the owner's own certificate; else a name that was ever issued (or
    /// has a live code) opens only to a right code; else the name is new. Each way
    /// takes its own rate limit; refusing a taken name costs nobody's limit.
    fn grant(
        &self,
        req: &Request,
        locked: &Locked<'_>,
        claim: &Claim<'_>,
        code: Option<&str>,
        now: Now,
    ) -> Result<Grant, Refusal> {
        let (t, name_key) = (now.secs, &claim.name_key);
        if claim.proven.is_some() {
            // The owner's own devices are limited apart from anonymous traffic for the name.
            self.rate_limit(&format!("owner {name_key}"), true, now)?;
            return Ok(Grant::ClientCertificate);
        }
        if !(locked.username_known(claim.username.as_str()) || codes::has_live(locked, name_key, t)?) {
            self.rate_limit(&format!("user {name_key}"), true, now)?;
            return Ok(Grant::NewUsername);
        }
        // A name that was ever issued belongs to its account: only a code opens it to
        // an anonymous request.
        let Some(code) = code else {
            return Err(Refusal::UsernameTaken(claim.username.as_str().to_string()));
        };
        if let Some(wait) = codes::backoff(locked, name_key, &claim.client, t)? {
            return Err(Refusal::RateLimited(wait));
        }
        self.rate_limit(&format!("user {name_key}"), true, now)?;
        let result = codes::redeem(locked, &self.secret, name_key, code, t)?;
        let right = matches!(result, Redeemed::Accepted(_));
        codes::record_guess(locked, name_key, &claim.client, right, t)?;
        match result {
            Redeemed::Accepted(CodeKind::AddDevice) => Ok(Grant::AddDeviceCode),
            Redeemed::Accepted(CodeKind::Recovery) => Ok(Grant::RecoveryCode),
            Redeemed::Wrong | Redeemed::NoCode => {
                log::warn!(
                    target: "audit",
                    "wrong or expired code for user={} remote={}",
                    claim.username.as_str(),
                    remote(req)
                );
                Err(Refusal::BadCode)
            }
        }
    }

    /// Step 5, under the lock: the grant still holds, the line is recorded (not yet
    /// flushed: the caller syncs the [`Pending`] after the lock is released) with its
    /// device's name; a renewal notes the presented certificate as the one it replaces.
    /// A grant that did not hold, or a
    /// failed record, removes the certificate file; the serial stays used.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        req: &Request,
        how: Grant,
        claim: &Claim<'_>,
        renew: bool,
        issued: &Issued,
        written: Written,
        now: Now,
    ) -> Result<Pending, Refusal> {
        let t = now.secs;
        // The store rechecks under the lock and removes the certificate file when the
        // recheck refuses (another request won the name, the presented certificate was
        // revoked meanwhile) or the record fails.
        let (locked, pending) = self.store.commit(written, &issued.record, |locked| {
            // The last moment a request the web server gave up on can leave no trace:
            // after this the certificate is recorded and answered, whoever still listens.
            if req.abandoned.is_set() {
                return Err(Refusal::Abandoned);
            }
            match self.grant_lost(locked, how, claim, t)? {
                Some(refusal) => Err(refusal),
                None => Ok(()),
            }
        })?;
        // The device's name, and for a renewal the certificate it replaces: that one is
        // superseded once this one is seen in use (`identity`), never here. A failure is
        // logged: the certificate stands, the page then shows its serial.
        let replaces = claim.proven.filter(|_| renew).map(|old| old.serial.as_str());
        let name = crate::enroll::user_agent::device_name(req.param_str("HTTP_USER_AGENT"));
        if let Err(e) = locked.device_added(&issued.record.serial, &name, replaces, t) {
            log::error!("{e} (the new device's name is not kept)");
        }
        Ok(pending)
    }

    /// At commit, under the lock: does the grant decided before signing still hold?
    /// A new name must still be unknown and without a live code; a signed-in owner's
    /// certificate must still be valid (not revoked, not expired while this one signed).
    fn grant_lost(
        &self,
        locked: &Locked<'_>,
        how: Grant,
        claim: &Claim<'_>,
        t: i64,
    ) -> Result<Option<Refusal>, Refusal> {
        let username = claim.username.as_str();
        let lost = match how {
            Grant::NewUsername => (locked.username_known(username)
                || codes::has_live(locked, &claim.name_key, t)?)
            .then(|| Refusal::UsernameTaken(username.to_string())),
            Grant::ClientCertificate => claim
                .proven
                .filter(|id| locked.is_revoked(&id.serial) || id.not_after <= t)
                .map(|id| {
                    log::warn!(target: "audit", "certificate serial={} was revoked or expired while a renewal signed", id.serial);
                    Refusal::NotSignedIn
                }),
            Grant::AddDeviceCode | Grant::RecoveryCode => None,
        };
        Ok(lost.or_else(|| {
            locked
                .subject_taken(&claim.subject_line, t)
                .then_some(Refusal::SubjectTaken)
        }))
    }
}

/// Step 6: the certificate, as DER `application/x-x509-user-cert` (what a browser
/// imports), or PEM when the client asks for `application/x-pem-file` and not for DER.
/// `der` is made only when it is sent.
fn certificate_response(
    accept: Option<&str>,
    username: &str,
    pem: Vec<u8>,
    der: Result<Vec<u8>, Refusal>,
) -> Result<Response, Refusal> {
    let wants_pem = accept
        .is_some_and(|a| a.contains("application/x-pem-file") && !a.contains("application/x-x509-user-cert"));
    let resp = if wants_pem {
        Response::new(200, "application/x-pem-file", pem)
    } else {
        Response::new(200, "application/x-x509-user-cert", der?)
    };
    Ok(resp.with_header("Cache-Control", "no-store").with_header(
        "Content-Disposition",
        &format!("attachment; filename=\"{username}.crt\""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enroll::form::FormError;
    use crate::enroll::request::RequestError;
    use crate::enroll::username::UsernameError;

    const RULE: &str = crate::config::DEFAULT_USERNAME_RULE;

    fn read(body: &str, require_email: bool) -> Result<Application<'static>, Refusal> {
        let form: &'static Form = Box::leak(Box::new(
            Form::parse("application/x-www-form-urlencoded", body.as_bytes()).expect("form"),
        ));
        read_form(form, &Regex::new(RULE).unwrap(), false, require_email)
    }

    fn refused(body: &str, require_email: bool) -> Refusal {
        match read(body, require_email) {
            Err(r) => r,
            Ok(_) => panic!("{body:?} was accepted"),
        }
    }

    /// A CSR made by `openssl req` for a P-256 key (the fixture the request tests use).
    fn csr() -> String {
        let key = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let key = openssl::pkey::PKey::from_ec_key(key).unwrap();
        let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
        b.set_pubkey(&key).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
        String::from_utf8(b.build().to_pem().unwrap()).unwrap()
    }

    fn enc(s: &str) -> String {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn read_form_refuses_in_the_order_of_the_fields() {
        assert!(matches!(refused("", false), Refusal::MissingUsername));
        assert!(matches!(
            refused("username=a%2Fb", false),
            Refusal::BadUsername(UsernameError::ForbiddenChar('/'))
        ));
        // A bad email is refused before the missing key request is noticed.
        assert!(matches!(
            refused("username=alice&email=nope", false),
            Refusal::BadEmail
        ));
        assert!(matches!(refused("username=alice", true), Refusal::EmailRequired));
        assert!(matches!(
            refused("username=alice&code=1&code=2", false),
            Refusal::BadForm(FormError::Repeated(_))
        ));
        assert!(matches!(
            refused("username=alice", false),
            Refusal::MissingKeyRequest
        ));
        assert!(matches!(
            refused("username=alice&csr=%20&pubkey=", false),
            Refusal::MissingKeyRequest
        ));
        assert!(matches!(
            refused("username=alice&csr=x&pubkey=y", false),
            Refusal::TwoKeyRequests
        ));
        assert!(matches!(
            refused("username=alice&spkac=!!", false),
            Refusal::BadKeyRequest(Kind::Spkac, RequestError::NotBase64)
        ));
    }

    #[test]
    fn read_form_takes_the_aliases_and_the_optional_fields() {
        let body = format!(
            "username=alice&emailAddress=a%40example.org&code=%20&renew=yes&pkcs10={}",
            enc(&csr())
        );
        let asked = read(&body, true).expect("accepted");
        assert_eq!(asked.username.as_str(), "alice");
        assert!(asked.email.is_some());
        assert_eq!(asked.code, None, "a blank code is no code");
        assert!(asked.renew);
        assert_eq!(asked.request.kind, Kind::Csr);
        let asked = read(&format!("username=bob&code=ABCD&csr={}", enc(&csr())), false).expect("accepted");
        assert_eq!(
            (asked.code, asked.renew, asked.email.is_none()),
            (Some("ABCD"), false, true)
        );
    }

    #[test]
    fn certificate_is_der_unless_only_pem_is_asked_for() {
        let pem = b"PEM".to_vec();
        let der = || Ok(b"DER".to_vec());
        let answer = |accept| certificate_response(accept, "alice", pem.clone(), der()).unwrap();
        for accept in [
            None,
            Some("*/*"),
            Some("application/x-x509-user-cert, application/x-pem-file"),
        ] {
            let r = answer(accept);
            assert_eq!((r.status, r.body.as_slice()), (200, &b"DER"[..]), "{accept:?}");
            assert_eq!(r.headers[0].1, "application/x-x509-user-cert");
        }
        let r = answer(Some("application/x-pem-file"));
        assert_eq!(r.body, b"PEM");
        assert!(r.headers.contains(&("Cache-Control".into(), "no-store".into())));
        assert!(r.headers.contains(&(
            "Content-Disposition".into(),
            "attachment; filename=\"alice.crt\"".into()
        )));
        // A DER encoding that failed is a refusal, not an empty certificate.
        let failed = certificate_response(None, "a", pem.clone(), Err(Refusal::Internal("der".into())));
        assert!(matches!(failed, Err(Refusal::Internal(_))));
        let pem_anyway = certificate_response(
            Some("application/x-pem-file"),
            "a",
            pem,
            Err(Refusal::Internal("der".into())),
        );
        assert!(pem_anyway.is_ok(), "DER that is not sent is not needed");
    }

    #[test]
    fn grant_words_are_what_the_audit_log_says() {
        let all = [
            Grant::NewUsername,
            Grant::ClientCertificate,
            Grant::AddDeviceCode,
            Grant::RecoveryCode,
        ];
        let words: Vec<_> = all.iter().map(|g| g.words()).collect();
        assert_eq!(
            words,
            [
                "new username",
                "client certificate",
                "add-device code",
                "recovery code"
            ]
        );
    }
}
