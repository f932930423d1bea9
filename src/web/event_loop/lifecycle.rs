//! The event loop's clock and signals: deadlines looked at every tick (lingering,
//! unread answers, requests arriving too slowly, idle connections) and the SIGTERM /
//! SIGINT shutdown described in the parent module.

use std::time::Instant;

use signal_hook::consts::SIGINT;

use super::Loop;

impl Loop {
    pub(super) fn on_tick(&mut self, now: Instant) {
        if self.accept_paused {
            self.accept_paused = false;
            self.accept_all();
        }
        let timeout = self.opts.request_timeout;
        let idle_timeout = self.opts.idle_timeout;
        let mut expired = Vec::new();
        for (key, c) in &self.conns {
            if let Some(until) = c.lingering_until {
                if now >= until {
                    expired.push(*key);
                }
            } else if c
                .write_blocked_since
                .is_some_and(|s| now.duration_since(s) > timeout)
            {
                log::warn!(
                    "{}: has not read its answer for {} s; connection closed",
                    c.peer,
                    timeout.as_secs()
                );
                expired.push(*key);
            } else if let Some(since) = c.reading_since.filter(|s| now.duration_since(*s) > timeout) {
                let secs = now.duration_since(since).as_secs();
                log::warn!(
                    "{}: request not complete after {secs} s (params and body must arrive within {} s); \
                     connection closed",
                    c.peer,
                    timeout.as_secs()
                );
                expired.push(*key);
            } else if c.is_idle() && (self.shutting_down || now.duration_since(c.last_seen) > idle_timeout) {
                expired.push(*key);
            }
        }
        for key in expired {
            self.remove(key);
        }
    }

    pub(super) fn on_signal(&mut self, signal: i32) {
        let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
        if self.shutting_down {
            log::warn!("{name} again: closing connections whose request is still arriving");
            let arriving: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.in_flight.is_none() && c.pipelined.is_empty())
                .map(|(k, _)| *k)
                .collect();
            for key in arriving {
                self.remove(key);
            }
            return;
        }
        self.shutting_down = true;
        if !self.inherited {
            // Connections waiting in our own socket's backlog die with it: take them.
            self.accept_all();
        }
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(listener.source());
        }
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.is_idle())
            .map(|(k, _)| *k)
            .collect();
        for key in &idle {
            self.remove(*key);
        }
        log::info!(
            "{name}: no longer accepting; closed {} idle connections, finishing {} requests \
             on {} connections",
            idle.len(),
            self.outstanding,
            self.conns.len()
        );
        let busy: Vec<usize> = self.conns.keys().copied().collect();
        for key in busy {
            if let Some(c) = self.conns.get_mut(&key)
                && c.in_flight.is_none()
                && c.pipelined.is_empty()
                && !c.fcgi.mid_request()
            {
                c.closing = true;
            }
            self.flush(key);
        }
    }
}
