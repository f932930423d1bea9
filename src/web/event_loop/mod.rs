//! The FastCGI daemon's event loop: one thread that accepts connections, reads records
//! into each connection's [`Connection`] state machine, writes answers, enforces the
//! deadlines, and hands complete requests to the worker [`Pool`]. An idle keep-alive
//! connection costs a descriptor and a few hundred bytes, never a thread.
//!
//! Rules:
//! - a request (params and body) must arrive whole within `request_timeout` of its first
//!   byte, else the connection is closed; a body over `max_body` is answered 413 as soon
//!   as it crosses the limit (`fastcgi.rs`) and the connection ends with that answer;
//! - a peer that leaves its answers unread for `request_timeout` (or more than 1 MiB of
//!   them) is disconnected;
//! - a connection with nothing going on is closed after `idle_timeout`, or earlier when
//!   `max_conns` is reached and a new one arrives (the longest idle goes first);
//! - complete requests go to the pool's bounded queue; when it is full the answer is 503
//!   with Retry-After at once ([`overload`]);
//! - when the web server goes away (end of stream, reset, ABORT_REQUEST) while its
//!   request is queued or being handled, the request's [`Abandoned`] flag is raised: the
//!   worker drops it unhandled, or the handler stops before it records anything;
//! - SIGTERM or SIGINT: stop accepting (an inherited listener stays open in the process
//!   that passed it, so what waits in its backlog is left for the next daemon; a socket
//!   this process bound is drained of waiting connections first), close idle
//!   connections, answer everything already read, then return; a second signal also
//!   closes connections whose request is still arriving.
//!
//! It decides no answer (the [`Handler`] does, on a worker) and parses no record.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

mod accept;
mod lifecycle;

use super::fastcgi::{self, Connection, Event, Limits};
use super::pool::{Done, Job, Peer, Pool, overload};
use super::server::{self, ServeOptions};
use super::socket::{Listener, Stream};
use super::{Abandoned, Handler, Request};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const SIGNALS: Token = Token(2);
const FIRST_CONN: usize = 3;

/// How often deadlines are looked at.
const TICK: Duration = Duration::from_millis(250);
/// After a final answer the write side is shut and what still arrives is read and
/// dropped for at most this long, so the answer is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);
/// Answers a web server may leave unread before it counts as hostile.
const MAX_UNREAD: usize = 1 << 20;
/// Complete requests one connection may send ahead (FastCGI without multiplexing
/// allows none; some clients pipeline a little).
const MAX_PIPELINED: usize = 4;

struct InFlight {
    id: u16,
    abandoned: Abandoned,
}

struct Conn {
    stream: Stream,
    peer: Peer,
    fcgi: Connection,
    /// Bytes to write, in order.
    out: Vec<u8>,
    /// When the request being read sent its first byte; `None` between requests.
    reading_since: Option<Instant>,
    last_seen: Instant,
    in_flight: Option<InFlight>,
    pipelined: VecDeque<(u16, bool, Request, Instant)>,
    /// Since when `out` has waited for the peer to read; `None` while writes go through.
    write_blocked_since: Option<Instant>,
    /// Close once `out` is written.
    closing: bool,
    /// The write side is shut; reading and dropping input until the peer closes or this.
    lingering_until: Option<Instant>,
}

impl Conn {
    /// Nothing is being read, handled or written: closing it loses nothing.
    fn is_idle(&self) -> bool {
        self.in_flight.is_none()
            && self.pipelined.is_empty()
            && self.out.is_empty()
            && !self.fcgi.mid_request()
    }
}

struct Loop {
    opts: ServeOptions,
    poll: Poll,
    listener: Option<Listener>,
    inherited: bool,
    accept_paused: bool,
    conns: HashMap<usize, Conn>,
    next_token: usize,
    pool: Pool,
    done: Receiver<Done>,
    /// Jobs pushed whose [`Done`] has not come back.
    outstanding: usize,
    shutting_down: bool,
    buf: Vec<u8>,
    limits: Limits,
    /// Last time a "limit reached" line was logged, and how many were not.
    throttle: (Option<Instant>, u64),
}

/// Serves `listener` until SIGTERM or SIGINT has been handled (`Ok`), or a fault in the
/// loop itself (`Err`). `inherited`: the listener was passed by a process manager.
pub fn run(
    listener: server::Listener,
    inherited: bool,
    opts: ServeOptions,
    handler: Arc<dyn Handler>,
) -> io::Result<()> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let mut listener = match listener {
        server::Listener::Unix(l) => {
            l.set_nonblocking(true)?;
            Listener::Unix(UnixListener::from_std(l))
        }
        server::Listener::Tcp(l) => {
            l.set_nonblocking(true)?;
            Listener::Tcp(TcpListener::from_std(l))
        }
    };
    poll.registry()
        .register(listener.source(), LISTENER, Interest::READABLE)?;
    let (done_tx, done) = mpsc::channel();
    let wake = move || {
        if let Err(e) = waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
    };
    let pool = Pool::start(opts.workers, opts.queue, handler, done_tx, Arc::new(wake))?;
    let limits = Limits {
        max_params: fastcgi::DEFAULT_MAX_PARAMS,
        max_body: opts.max_body,
        max_conns: opts.max_conns,
        max_reqs: opts.workers.max(1) + opts.queue,
    };
    let mut lp = Loop {
        opts,
        poll,
        listener: Some(listener),
        inherited,
        accept_paused: false,
        conns: HashMap::new(),
        next_token: FIRST_CONN,
        pool,
        done,
        outstanding: 0,
        shutting_down: false,
        buf: vec![0; 64 * 1024],
        limits,
        throttle: (None, 0),
    };
    let result = lp.serve(&mut signals);
    let Loop { pool, .. } = lp;
    pool.stop();
    result
}

impl Loop {
    fn serve(&mut self, signals: &mut Signals) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut last_tick = Instant::now();
        loop {
            let timeout = (!self.conns.is_empty() || self.accept_paused).then_some(TICK);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {}
                    SIGNALS => {
                        for signal in signals.pending() {
                            self.on_signal(signal);
                        }
                    }
                    Token(key) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(key);
                        }
                        if event.is_writable() {
                            self.flush(key);
                        }
                    }
                }
            }
            while let Ok(done) = self.done.try_recv() {
                self.on_done(done);
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.on_tick(last_tick);
            }
            if self.shutting_down && self.conns.is_empty() && self.outstanding == 0 {
                log::info!("every accepted request is answered; stopping");
                return Ok(());
            }
        }
    }

    /// Logs `message` at most once a second, saying how many were left out.
    fn log_throttled(&mut self, message: &str) {
        let now = Instant::now();
        match self.throttle.0 {
            Some(at) if now.duration_since(at) < Duration::from_secs(1) => self.throttle.1 += 1,
            _ => {
                let skipped = std::mem::take(&mut self.throttle.1);
                let more = if skipped > 0 {
                    format!(" ({skipped} more like it in the last second)")
                } else {
                    String::new()
                };
                log::warn!("{message}{more}");
                self.throttle.0 = Some(now);
            }
        }
    }

    /// Forgets a connection; a request of it still with a worker is marked abandoned.
    fn remove(&mut self, key: usize) {
        if let Some(mut conn) = self.conns.remove(&key) {
            if let Some(f) = &conn.in_flight {
                f.abandoned.set();
            }
            let _ = self.poll.registry().deregister(conn.stream.source());
        }
    }

    fn read(&mut self, key: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(&key) else {
                return;
            };
            let n = match conn.stream.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if conn.lingering_until.is_none() {
                        log::warn!("{}: read failed: {e}", conn.peer);
                    }
                    return self.gone(key);
                }
            };
            if n == 0 {
                return self.gone(key);
            }
            let now = Instant::now();
            conn.last_seen = now;
            if conn.lingering_until.is_some() || conn.closing {
                continue;
            }
            if !conn.fcgi.mid_request() {
                conn.reading_since = Some(now);
            }
            let events = conn.fcgi.feed(self.buf.get(..n).unwrap_or_default());
            let started = conn.reading_since.unwrap_or(now);
            if !conn.fcgi.mid_request() {
                conn.reading_since = None;
            }
            for event in events {
                self.on_event(key, event, started);
            }
            self.flush(key);
        }
    }

    /// The peer closed or broke the connection.
    fn gone(&mut self, key: usize) {
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        if let Some(f) = &conn.in_flight {
            log::warn!(
                "{}: the web server closed the connection while request {} was being handled; \
                 it is dropped unless already recorded",
                conn.peer,
                f.id
            );
        } else if conn.fcgi.mid_request() && conn.lingering_until.is_none() && !conn.closing {
            log::warn!("{}: connection closed in the middle of a request", conn.peer);
        }
        self.remove(key);
    }

    fn on_event(&mut self, key: usize, event: Event, started: Instant) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        match event {
            Event::Write(bytes) => {
                conn.out.extend_from_slice(&bytes);
                if conn.out.len() > MAX_UNREAD {
                    log::warn!("{}: does not read its answers; connection closed", conn.peer);
                    self.remove(key);
                }
            }
            Event::Request {
                id,
                keep_conn,
                request,
            } => {
                if conn.in_flight.is_none() {
                    self.dispatch(key, id, keep_conn, request, started);
                } else if conn.pipelined.len() < MAX_PIPELINED {
                    conn.pipelined.push_back((id, keep_conn, request, started));
                } else {
                    log::warn!("{}: too many requests sent ahead; connection closed", conn.peer);
                    self.remove(key);
                }
            }
            Event::Abort { id } => {
                if let Some(f) = conn.in_flight.as_ref().filter(|f| f.id == id) {
                    log::warn!(
                        "{}: ABORT_REQUEST for request {id}; it is dropped unless already recorded",
                        conn.peer
                    );
                    f.abandoned.set();
                }
            }
            Event::Close => conn.closing = true,
            Event::Violation(e) => {
                log::warn!("{}: {e}; connection closed", conn.peer);
                conn.closing = true;
            }
        }
    }

    fn dispatch(&mut self, key: usize, id: u16, keep_conn: bool, mut request: Request, started: Instant) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let abandoned = Abandoned::new();
        request.abandoned = abandoned.clone();
        let job = Job {
            conn: key,
            peer: conn.peer,
            id,
            keep_conn,
            request,
            deadline: started + self.opts.request_timeout,
        };
        if self.pool.try_push(job) {
            self.outstanding += 1;
            conn.in_flight = Some(InFlight { id, abandoned });
        } else {
            conn.fcgi.answered();
            conn.out
                .extend_from_slice(&fastcgi::encode_response(id, &overload()));
            if !keep_conn {
                conn.closing = true;
            }
            let peer = conn.peer;
            let counters = &self.pool.counters;
            let total = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
            let queued = counters.queued.load(Ordering::Relaxed);
            self.log_throttled(&format!(
                "{peer}: request {id} answered 503: the queue is full ({queued} waiting for \
                 {} workers; {total} refused so far)",
                self.opts.workers
            ));
        }
    }

    fn on_done(&mut self, done: Done) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let Some(conn) = self.conns.get_mut(&done.conn) else {
            if let Some(status) = done.status {
                log::warn!(
                    "the answer to request {} (status {status}) was not delivered: the web server \
                     had closed the connection",
                    done.id
                );
            }
            return;
        };
        conn.in_flight = None;
        conn.fcgi.answered();
        conn.out.extend_from_slice(&done.bytes);
        if let Some((id, keep_conn, request, started)) = conn.pipelined.pop_front() {
            self.dispatch(done.conn, id, keep_conn, request, started);
        } else if !done.keep_conn || self.shutting_down {
            conn.closing = true;
        }
        self.flush(done.conn);
    }

    /// Writes what is pending; once all is written on a closing connection, shuts the
    /// write side and lingers.
    fn flush(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => return self.remove(key),
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.write_blocked_since.get_or_insert_with(Instant::now);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if conn.in_flight.is_none() && conn.lingering_until.is_none() {
                        log::warn!("{}: write failed: {e}", conn.peer);
                    }
                    return self.gone(key);
                }
            }
        }
        conn.write_blocked_since = None;
        let finished = conn.closing || conn.fcgi.is_finished();
        if finished && conn.in_flight.is_none() && conn.pipelined.is_empty() && conn.lingering_until.is_none()
        {
            conn.stream.shutdown_write();
            conn.lingering_until = Some(Instant::now() + LINGER);
            self.read(key);
        }
    }
}
