//! GET: what a page shows, gathered from the request, the config, the CA and (for a
//! signed-in visitor) the database under its lock, then handed to [`super::page`] as a
//! view. The assets, the enrollment page and the account page. A failure here is a
//! [`Refusal`] answered bare ([`Refusal::PageUnavailable`], [`Refusal::PageTokens`]),
//! logged here. Nothing here changes the database.

use std::borrow::Cow;

use crate::web::{Request, Response};

use super::page::{self, AccountView, CodeView, EnrollView, SignedIn, Site};
use super::{App, Identity, Now, Refusal, account};

impl App {
    pub(crate) fn serve_get(&self, req: &Request, now: Now) -> Response {
        if let Some(name) = query_param(req, "asset") {
            return page::asset(&name);
        }
        let who = match self.client_identity(req, now) {
            Ok(who) => who,
            Err(e) => {
                log::warn!("{e:?} while checking a client certificate");
                return Refusal::PageUnavailable.response(false);
            }
        };
        let enroll = query_param(req, "enroll");
        if enroll.is_none()
            && let Some(who) = &who
        {
            if let Err(refusal) = self.limit_address(req, now) {
                return self.refuse(req, &refusal);
            }
            let devices = self
                .store
                .lock()
                .map_err(|e| e.to_string())
                .and_then(|l| self.devices(&l, &who.username).map_err(|e| e.to_string()));
            return match devices {
                Ok(devices) => self.account_page(req, who, &devices, None, None, now),
                Err(e) => {
                    log::error!("listing the devices of {}: {e}", who.username);
                    Refusal::PageUnavailable.response(false)
                }
            };
        }
        // The form token is this requester's: the certificate presented (`?enroll=...` while
        // signed in), else a cookie set now.
        let tokens = match &who {
            Some(who) => self.account_token(who, now).map(|t| (t, None)),
            None => self.anonymous_token(req, now),
        }
        .and_then(|(token, cookie)| Ok((token, cookie, self.make_challenge(now)?)));
        let (token, cookie, challenge) = match tokens {
            Ok(t) => t,
            Err(e) => return token_failure(&e),
        };
        let action = action(req);
        let name = self.site_name();
        page::enroll_page(&EnrollView {
            site: self.site(&name, &action),
            token: &token,
            challenge: &challenge,
            set_cookie: cookie.as_deref(),
            signed_in: who.as_ref().map(|who| SignedIn {
                username: &who.username,
                renew: enroll.as_deref() == Some("renew"),
            }),
        })
    }

    /// The account page of `who` with `devices` (and a notice or a fresh code): after a
    /// GET, a revocation or a new add-device code.
    pub(crate) fn account_page(
        &self,
        req: &Request,
        who: &Identity,
        devices: &account::Listing,
        notice: Option<&str>,
        code: Option<&str>,
        now: Now,
    ) -> Response {
        let action = action(req);
        let token = match self.account_token(who, now) {
            Ok(t) => t,
            Err(e) => return token_failure(&e),
        };
        let name = self.site_name();
        page::account_page(&AccountView {
            site: self.site(&name, &action),
            username: &who.username,
            token: &token,
            devices: account::device_views(devices, &who.serial, now.secs),
            renew_soon: account::renew_soon(who, self.config.renew_days, now.secs),
            notice,
            code: code.map(|c| CodeView {
                code: c,
                link: add_device_link(req, &who.username, c),
                minutes: self.config.code_lifetime / 60,
            }),
        })
    }

    fn site<'a>(&'a self, name: &'a str, action: &'a str) -> Site<'a> {
        Site {
            name,
            auth_url: &self.config.auth_url,
            action,
        }
    }

    /// `site_name` from `[getacert]`, else the CA certificate's common name.
    fn site_name(&self) -> String {
        if let Some(name) = &self.config.site_name {
            return name.clone();
        }
        self.ca
            .cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
            .next()
            .and_then(|e| e.data().to_string().ok())
            .unwrap_or_else(|| "this site".to_string())
    }
}

/// A form token or challenge could not be made (the HMAC failed): no page.
fn token_failure(e: &Refusal) -> Response {
    log::error!("{e:?} while making the page's tokens");
    Refusal::PageTokens.response(false)
}

/// The path the page was requested at, so forms post back to the same URL whatever it
/// is mapped to (`/getacert.php` for the article's links).
fn action(req: &Request) -> String {
    let uri = req
        .param_str("DOCUMENT_URI")
        .or_else(|| req.param_str("SCRIPT_NAME").filter(|s| !s.is_empty()))
        .or_else(|| {
            req.param_str("REQUEST_URI")
                .map(|u| u.split('?').next().unwrap_or(u))
        })
        .unwrap_or("");
    let uri = if uri.is_empty() { "/getacert.php" } else { uri };
    // A path only: no scheme, host or query can be injected into the form target.
    uri.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\'' && *c != '<' && *c != '>')
        .collect()
}

fn query_param<'a>(req: &'a Request, name: &str) -> Option<Cow<'a, str>> {
    let q = req.param("QUERY_STRING")?;
    form_urlencoded::parse(q).find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The absolute link that opens the enrollment page on a new device with `username` and
/// `code` filled in (by enroll.js, from the fragment). The host comes from the request
/// (`HTTP_HOST`, plus `SERVER_PORT` when the host has none and it is not 443); `None`
/// when the host does not look like one. Only the signed-in visitor sees the link.
fn add_device_link(req: &Request, username: &str, code: &str) -> Option<String> {
    let host = req.param_str("HTTP_HOST")?;
    let name_ok = |h: &str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
    };
    if !name_ok(host) {
        return None;
    }
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        && !host.ends_with(']');
    let port = req
        .param_str("SERVER_PORT")
        .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && *p != "443");
    let authority = match (has_port, port) {
        (false, Some(p)) => format!("{host}:{p}"),
        _ => host.to_string(),
    };
    let fragment = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("code", code)
        .finish();
    Some(format!("https://{authority}{}?enroll=1#{fragment}", action(req)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(params: &[(&str, &str)]) -> Request {
        Request::with_params(params)
    }

    #[test]
    fn form_action_is_the_path_only() {
        assert_eq!(action(&req(&[])), "/getacert.php");
        assert_eq!(action(&req(&[("REQUEST_URI", "/enroll?x=1")])), "/enroll");
        assert_eq!(action(&req(&[("DOCUMENT_URI", "/a\"><script>")])), "/ascript");
    }

    #[test]
    fn add_device_link_from_host_and_port() {
        let r = req(&[
            ("HTTP_HOST", "example.org"),
            ("SERVER_PORT", "8443"),
            ("DOCUMENT_URI", "/e"),
        ]);
        assert_eq!(
            add_device_link(&r, "alice", "ABCD-1234").as_deref(),
            Some("https://example.org:8443/e?enroll=1#username=alice&code=ABCD-1234")
        );
        let r = req(&[("HTTP_HOST", "example.org:9443"), ("SERVER_PORT", "8443")]);
        assert!(
            add_device_link(&r, "a", "c")
                .unwrap()
                .starts_with("https://example.org:9443/")
        );
        assert_eq!(add_device_link(&req(&[("HTTP_HOST", "evil/x")]), "a", "c"), None);
    }
}
