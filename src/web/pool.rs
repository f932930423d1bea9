//! The bounded pool of worker threads that answer complete requests for the event loop
//! (`event_loop.rs`): one queue in (a [`Job`]), one queue out (a [`Done`]) and a wake-up
//! of the loop. A full queue is refused at once ([`Pool::try_push`] says so), so the
//! loop can answer 503 instead of letting requests pile up.
//!
//! A worker drops a job before calling the handler when the web server has given up on
//! it (the loop set its [`Abandoned`](super::Abandoned) flag) or when it waited past its
//! deadline; nothing is signed or recorded for it. It does no socket I/O itself.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::fastcgi::{self, REQUEST_COMPLETE};
use super::server::call_handler;
use super::{Handler, Request, Response};

/// Seconds a refused client is told to wait.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The one answer the wire layer makes itself: the daemon is overloaded (queue full) or
/// a request waited past its deadline. Every other status comes from the handler.
pub fn overload() -> Response {
    Response::new(
        503,
        "text/plain; charset=utf-8",
        b"The server is busy. Please try again in a few seconds.\n".to_vec(),
    )
    .with_header("Retry-After", &RETRY_AFTER_SECS.to_string())
    .with_header("Cache-Control", "no-store")
}

/// Who sent a request, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Unix,
    Tcp(SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix => write!(f, "unix socket peer"),
            Peer::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// A complete request for a worker.
pub struct Job {
    /// The event loop's key for the connection.
    pub conn: usize,
    pub peer: Peer,
    pub id: u16,
    pub keep_conn: bool,
    pub request: Request,
    /// Past this, the request is answered 503 without calling the handler.
    pub deadline: Instant,
}

/// What a worker made of a [`Job`]: the records to send back.
pub struct Done {
    pub conn: usize,
    pub id: u16,
    pub keep_conn: bool,
    /// STDOUT and END_REQUEST, or END_REQUEST alone for a dropped request.
    pub bytes: Vec<u8>,
    /// The status answered; `None` when the request was dropped unanswered.
    pub status: Option<u16>,
}

/// Counters shared by the loop and the workers, for the log.
#[derive(Debug, Default)]
pub struct Counters {
    /// Jobs pushed and not yet taken by a worker.
    pub queued: AtomicUsize,
    /// Requests dropped because the web server had gone.
    pub abandoned: AtomicU64,
    /// Requests answered 503 because the queue was full or their deadline passed.
    pub refused: AtomicU64,
}

pub struct Pool {
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl Pool {
    /// Starts `workers` threads behind a queue of `queue` jobs; each [`Done`] goes to
    /// `done`, followed by `wake()`.
    pub fn start(
        workers: usize,
        queue: usize,
        handler: Arc<dyn Handler>,
        done: Sender<Done>,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Pool> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        let workers = (0..workers.max(1))
            .map(|i| {
                let (rx, handler, done, wake, counters) = (
                    rx.clone(),
                    handler.clone(),
                    done.clone(),
                    wake.clone(),
                    counters.clone(),
                );
                thread::Builder::new()
                    .name(format!("fcgi-worker-{i}"))
                    .spawn(move || worker(&rx, &*handler, &done, &*wake, &counters))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool {
            jobs: Some(jobs),
            workers,
            counters,
        })
    }

    /// Queues `job`; false (at once) when the queue is full.
    pub fn try_push(&self, job: Job) -> bool {
        let Some(jobs) = &self.jobs else {
            return false;
        };
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        match jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.queued.fetch_sub(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lets the workers finish what is queued, then waits for them.
    pub fn stop(mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                log::error!("a worker thread panicked outside the handler");
            }
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<Job>>,
    handler: &dyn Handler,
    done: &Sender<Done>,
    wake: &(dyn Fn() + Send + Sync),
    counters: &Counters,
) {
    loop {
        // The lock is held only while waiting; a poisoned one still guards a channel.
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        counters.queued.fetch_sub(1, Ordering::Relaxed);
        if done.send(answer(job, handler, counters)).is_err() {
            return;
        }
        wake();
    }
}

/// Answers one job, or drops it before the handler when nobody waits for it any more.
fn answer(job: Job, handler: &dyn Handler, counters: &Counters) -> Done {
    let Job {
        conn,
        peer,
        id,
        keep_conn,
        request,
        deadline,
    } = job;
    let (bytes, status) = if request.abandoned.is_set() {
        let total = counters.abandoned.fetch_add(1, Ordering::Relaxed) + 1;
        log::warn!(
            "{peer}: request {id} dropped before it was handled: the web server gave up on it \
             ({total} dropped so far)"
        );
        let mut out = Vec::new();
        fastcgi::encode_end_request(&mut out, id, 0, REQUEST_COMPLETE);
        (out, None)
    } else if Instant::now() > deadline {
        let total = counters.refused.fetch_add(1, Ordering::Relaxed) + 1;
        log::warn!(
            "{peer}: request {id} waited past its deadline for a worker; answered 503 without \
             handling it ({total} refused so far, {} queued)",
            counters.queued.load(Ordering::Relaxed)
        );
        (fastcgi::encode_response(id, &overload()), Some(503))
    } else {
        let response = call_handler(handler, &request);
        if request.abandoned.is_set() {
            // Gone while it was handled: the handler refused it before recording unless
            // it was past that point (then the status is 200 and the audit log has it).
            log::warn!(
                "{peer}: the web server gave up on request {id} while it was handled; its \
                 answer (status {}) is not sent",
                response.status
            );
            let mut out = Vec::new();
            fastcgi::encode_end_request(&mut out, id, 0, REQUEST_COMPLETE);
            (out, None)
        } else {
            (fastcgi::encode_response(id, &response), Some(response.status))
        }
    };
    Done {
        conn,
        id,
        keep_conn,
        bytes,
        status,
    }
}
