//! A signed-in user's account: their devices (name, added, last seen, renewals), renaming
//! and revoking one, a one-time add-device code, and completing a renewal once its new
//! certificate signs in. Each action runs under the database lock and answers the
//! account page ([`super::get`] gathers it). Who is signed in is [`super::identity`]'s.

use std::collections::HashMap;

use crate::ca::codes::CodeKind;
use crate::ca::crl;
use crate::ca::index::{self, Record, Status};
use crate::ca::store::Locked;
use crate::ca::store::devices::{self, DeviceInfo};
use crate::enroll::form::Form;
use crate::web::{Request, Response};

use super::page::{Device, Renewal};
use super::{App, Identity, Now, Refusal, remote};

/// A user's certificates, newest first, and what getacert.devices says of them (by the
/// serial as index.txt writes it).
pub(crate) struct Listing {
    pub(crate) records: Vec<Record>,
    pub(crate) info: HashMap<String, DeviceInfo>,
}

impl App {
    /// The database lock for a state-changing account action. Once it is held is the last
    /// moment a request the web server gave up on (closed, ABORT_REQUEST) can leave no
    /// trace, since nobody would see its answer: such a request is refused here.
    fn lock_for(&self, req: &Request) -> Result<Locked<'_>, Refusal> {
        let locked = self.store.lock()?;
        if req.abandoned.is_set() {
            return Err(Refusal::Abandoned);
        }
        Ok(locked)
    }

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
        let mut locked = self.lock_for(req)?;
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

    /// Renames one of the signed-in user's own live devices (the form's `serial`) to the
    /// form's `name` ([`devices::check_name`]). Anything else is refused and nothing is
    /// written: another account's serial, a revoked or expired one (403), a bad name (400).
    pub(super) fn rename_device(
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
        let raw = form.one_of(&["name"]).map_err(Refusal::BadForm)?.unwrap_or("");
        let name = devices::check_name(raw).map_err(Refusal::BadDeviceName)?;
        let t = now.secs;
        let locked = self.lock_for(req)?;
        let mine = locked.user_records(&who.username)?.into_iter().any(|r| {
            index::normalize_serial(&r.serial).as_deref() == Some(serial.as_str())
                && r.effective_status(t) == Status::Valid
        });
        if !mine {
            return Err(Refusal::NotYourDevice);
        }
        locked.rename_device(&serial, name, t)?;
        let devices = self.devices(&locked, &who.username)?;
        drop(locked);
        log::info!(
            target: "audit",
            "renamed serial={serial} user={} by=device serial={} remote={}",
            who.username,
            who.serial,
            remote(req)
        );
        let notice = format!("The device with certificate {serial} is now called \u{201c}{name}\u{201d}.");
        Ok(self.account_page(req, who, &devices, Some(&notice), None, now))
    }

    /// A signed-in request presented `who`'s certificate, which a renewal made to replace
    /// `old`: the renewal completes now. `old` (if still valid and `who`'s) is revoked as
    /// superseded, with every other certificate made to replace it that never signed in
    /// (an import that failed, tried again); then the renewal is marked done. Only a
    /// signed-in request, whose TLS handshake proved the new key, calls this: an OCSP
    /// lookup for the new serial, which anybody can send, never does. A failure is
    /// logged and tried again at the next request; the user stays signed in either way.
    pub(super) fn complete_renewal(&self, locked: &mut Locked<'_>, who: &Identity, old: &str, t: i64) {
        let result = (|| -> Result<Vec<Record>, Refusal> {
            let records = locked.user_records(&who.username)?;
            let serials: Vec<String> = records.iter().map(|r| r.serial.clone()).collect();
            let info = locked.device_info(&serials);
            let norm = |s: &str| index::normalize_serial(s).unwrap_or_default();
            let doomed: Vec<String> = records
                .iter()
                .filter(|r| {
                    let s = norm(&r.serial);
                    s == old
                        || (s != who.serial
                            && info
                                .get(&r.serial)
                                .is_some_and(|i| i.seen.is_none() && i.replaces.as_deref() == Some(old)))
                })
                .map(|r| norm(&r.serial))
                .collect();
            let revoked = crl::revoke(locked, Some("superseded"), t, |r| {
                doomed.contains(&norm(&r.serial))
            })?;
            if !revoked.is_empty() {
                self.refresh_crl(locked, t);
            }
            locked.replacement_done(&who.serial, t)?;
            Ok(revoked)
        })();
        match result {
            Ok(revoked) => {
                let list: Vec<&str> = revoked.iter().map(|r| r.serial.as_str()).collect();
                log::info!(
                    target: "audit",
                    "renewal complete user={} serial={} replaces={old} superseded={}",
                    who.username,
                    who.serial,
                    if list.is_empty() { "-".to_string() } else { list.join(",") }
                );
            }
            Err(e) => log::error!("completing the renewal of {old} by {}: {e}", who.serial),
        }
    }

    pub(super) fn add_device_code(
        &self,
        req: &Request,
        who: &Identity,
        now: Now,
    ) -> Result<Response, Refusal> {
        let t = now.secs;
        let locked = self.lock_for(req)?;
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

/// The account page's list: each certificate's status as of `now`, which one this
/// request presented, its name and times, and which is which in a renewal not yet done.
pub(super) fn device_views(listing: &Listing, this_serial: &str, now: i64) -> Vec<Device> {
    let norm = |s: &str| index::normalize_serial(s).unwrap_or_default();
    let live = |r: &Record| r.effective_status(now) == Status::Valid;
    // New certificate → the one it replaces, both still valid.
    let pending: Vec<(String, String)> = listing
        .records
        .iter()
        .filter(|r| live(r))
        .filter_map(|r| {
            let old = listing.info.get(&r.serial)?.replaces.clone()?;
            listing
                .records
                .iter()
                .any(|o| norm(&o.serial) == old && live(o))
                .then(|| (norm(&r.serial), old))
        })
        .collect();
    listing
        .records
        .iter()
        .map(|r| {
            let info = listing.info.get(&r.serial).cloned().unwrap_or_default();
            let s = norm(&r.serial);
            let renewal = pending
                .iter()
                .find_map(|(new, old)| {
                    (*new == s).then(|| Renewal::New {
                        replaces: old.clone(),
                    })
                })
                .or_else(|| {
                    pending
                        .iter()
                        .find_map(|(new, old)| (*old == s).then(|| Renewal::Replaced { by: new.clone() }))
                });
            Device {
                serial: r.serial.clone(),
                status: r.effective_status(now),
                expires: r.expires_unix(),
                this: s == this_serial,
                name: info.name,
                added: info.added,
                seen: info.seen,
                ocsp: info.ocsp,
                renewal,
            }
        })
        .collect()
}

/// Whole days left on the presented certificate when fewer than `renew_days` (the
/// account page's renewal banner), else `None`.
pub(super) fn renew_soon(who: &Identity, renew_days: i64, now: i64) -> Option<i64> {
    let left = (who.not_after - now).max(0);
    (left < renew_days * 86400).then_some(left / 86400)
}
