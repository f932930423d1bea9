//! Accepting connections for the event loop: the web-server address filter, the
//! `max_conns` limit (the longest idle connection makes room), registration.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::time::Instant;

use mio::{Interest, Token};

use super::super::fastcgi::Connection;
use super::super::pool::Peer;
use super::{Conn, Loop};

impl Loop {
    pub(super) fn accept_all(&mut self) {
        while let Some(listener) = &self.listener {
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                    _ => {
                        // Out of descriptors or memory, or worse: try again at the next tick.
                        self.log_throttled(&format!("accept failed: {e}; retrying shortly"));
                        self.accept_paused = true;
                        return;
                    }
                },
            };
            if let (Peer::Tcp(addr), Some(allowed)) = (peer, &self.opts.web_server_addrs)
                && !allowed
                    .iter()
                    .any(|a: &IpAddr| a.to_canonical() == addr.ip().to_canonical())
            {
                log::warn!("{peer}: not in FCGI_WEB_SERVER_ADDRS; connection closed");
                continue;
            }
            if self.conns.len() >= self.opts.max_conns && !self.evict_idle() {
                let max = self.opts.max_conns;
                self.log_throttled(&format!(
                    "{peer}: {max} connections open, none idle; new connection closed"
                ));
                continue;
            }
            let key = self.next_token;
            self.next_token += 1;
            if let Err(e) = self.poll.registry().register(
                stream.source(),
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("{peer}: cannot watch the connection: {e}");
                continue;
            }
            let now = Instant::now();
            self.conns.insert(
                key,
                Conn {
                    stream,
                    peer,
                    fcgi: Connection::new(self.limits),
                    out: Vec::new(),
                    reading_since: None,
                    last_seen: now,
                    in_flight: None,
                    pipelined: VecDeque::new(),
                    write_blocked_since: None,
                    closing: false,
                    lingering_until: None,
                },
            );
            // Edge-triggered: what arrived before registration is read now.
            self.read(key);
        }
    }

    /// Closes the connection idle the longest; false when none is idle.
    fn evict_idle(&mut self) -> bool {
        let oldest = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle() && c.lingering_until.is_none())
            .min_by_key(|(_, c)| c.last_seen)
            .map(|(k, _)| *k);
        oldest.is_some_and(|key| {
            self.remove(key);
            true
        })
    }
}
