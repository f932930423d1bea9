//! A signed-in user's account: their devices, revoking one, a one-time add-device code.
//! Each action runs under the database lock and answers the account page
//! ([`super::get`] gathers it). Who is signed in is [`super::identity`]'s.

use crate::ca::codes::CodeKind;
use crate::ca::crl;
use crate::ca::index::{self, Record};
use crate::enroll::form::Form;
use crate::web::{Request, Response};

use super::page::Device;
use super::{App, Identity, Now, Refusal, remote};

impl App {
    pub(super) fn revoke_device(
        &self,
        req: &Request,
        form: &Form,
        who: &Identity,
        now: Now,
    ) -> Result<Response, Refusal> {
        let serial = form
            .one_of(&["serial"])
            .map_err(Refusal::BadForm)?
            .and_then(index::normalize_serial)
            .ok_or(Refusal::NotYourDevice)?;
        let t = now.secs;
        let mut locked = self.store.lock()?;
        // Once the lock is held, the last moment a request the web server gave up on
        // (closed, ABORT_REQUEST) can leave no trace: nobody would see the answer.
        if req.abandoned.is_set() {
            return Err(Refusal::Abandoned);
        }
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
        Ok(self.account_page(req, who, &devices, Some(&notice), None, now))
    }

    pub(super) fn add_device_code(
        &self,
        req: &Request,
        who: &Identity,
        now: Now,
    ) -> Result<Response, Refusal> {
        let t = now.secs;
        let locked = self.store.lock()?;
        // Once the lock is held, the last moment a request the web server gave up on
        // (closed, ABORT_REQUEST) can leave no trace: nobody would see the answer.
        if req.abandoned.is_set() {
            return Err(Refusal::Abandoned);
        }
        let code = self.issue_code(&locked, &who.username, CodeKind::AddDevice, t)?;
        let devices = self.devices(&locked, &who.username)?;
        drop(locked);
        log::info!(target: "audit", "add-device code issued user={} by serial={} remote={}", who.username, who.serial, remote(req));
        Ok(self.account_page(req, who, &devices, None, Some(&code), now))
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

/// The account page's list: each certificate's status as of `now`, and which one this
/// request presented.
pub(super) fn device_views(devices: &[Record], this_serial: &str, now: i64) -> Vec<Device> {
    devices
        .iter()
        .map(|r| Device {
            serial: r.serial.clone(),
            status: r.effective_status(now),
            expires: r.expires_unix(),
            this: r.serial == this_serial,
        })
        .collect()
}
