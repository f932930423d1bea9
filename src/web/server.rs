//! The FastCGI daemon's sockets: binds or inherits the listening socket, refuses TCP
//! peers that `FCGI_WEB_SERVER_ADDRS` does not list (in `event_loop.rs`), and starts the
//! event loop and the worker pool that serve it.
//!
//! It does not parse records (`fastcgi.rs` does), drive connections (`event_loop.rs`)
//! nor decide answers (the [`Handler`] does, on a worker of `pool.rs`). Connections cost
//! no thread: one loop reads them all, and only complete requests reach the
//! `workers` threads, through a queue of `queue` places.

use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Handler, Request, Response};
use crate::ffi::sock;

/// Where the FastCGI socket comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket created at `path` (a stale socket file there is replaced), then
    /// given `mode` and, when set, `group`.
    Unix {
        path: PathBuf,
        mode: u32,
        group: Option<String>,
    },
    Tcp(SocketAddr),
    /// The listening socket on fd 0 (mod_fcgid, spawn-fcgi) or from systemd socket
    /// activation (`LISTEN_FDS`, `LISTEN_PID`).
    Inherited,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Worker threads that run the handler (at least 1).
    pub workers: usize,
    /// Complete requests that may wait for a worker; one more is answered 503 at once.
    pub queue: usize,
    /// Connections held open at once (idle keep-alive ones included).
    pub max_conns: usize,
    /// Largest request body handed to the handler; a longer one is answered 413 as soon
    /// as it crosses the limit.
    pub max_body: usize,
    /// How long a request (params and body) may take to arrive, from its first byte;
    /// also how long a complete one may wait for a worker.
    pub request_timeout: Duration,
    /// How long a connection with nothing going on is kept.
    pub idle_timeout: Duration,
    /// TCP peers allowed to connect; `None`: any. Not applied to Unix sockets.
    pub web_server_addrs: Option<Vec<IpAddr>>,
}

/// Connections held open at once, at most (fewer when the descriptor limit is lower).
pub const MAX_CONNS: usize = 4096;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

impl ServeOptions {
    /// `FCGI_WEB_SERVER_ADDRS` from the environment (libfcgi's variable: a comma-separated
    /// list of IP addresses). Unset or empty: `None`. A bad entry is an error, not ignored.
    pub fn web_server_addrs_from_env() -> io::Result<Option<Vec<IpAddr>>> {
        match std::env::var("FCGI_WEB_SERVER_ADDRS") {
            Ok(list) if list.trim().is_empty() => Ok(None),
            Ok(list) => parse_web_server_addrs(&list).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "FCGI_WEB_SERVER_ADDRS is not valid UTF-8",
            )),
        }
    }
}

/// Parses a comma-separated list of IP addresses (spaces around entries allowed).
pub fn parse_web_server_addrs(list: &str) -> io::Result<Vec<IpAddr>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("FCGI_WEB_SERVER_ADDRS: {s:?} is not an IP address ({e})"),
                )
            })
        })
        .collect()
}

/// True when this process was handed a listening socket ([`Listen::Inherited`] works).
pub fn inherited_listener_available() -> bool {
    sock::inherited_listener_available()
}

/// A bound, listening socket.
#[derive(Debug)]
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// The TCP address actually bound (port 0 resolved); `None` for Unix sockets.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(_) => None,
        }
    }
}

/// Binds (or takes over) the socket `listen` names.
pub fn bind(listen: &Listen) -> io::Result<Listener> {
    match listen {
        Listen::Unix { path, mode, group } => bind_unix(path, *mode, group.as_deref()),
        Listen::Tcp(addr) => TcpListener::bind(addr)
            .map(Listener::Tcp)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))),
        Listen::Inherited => match sock::take_inherited_listener()? {
            Some(sock::InheritedListener::Unix(l)) => Ok(Listener::Unix(l)),
            Some(sock::InheritedListener::Tcp(l)) => Ok(Listener::Tcp(l)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no inherited listening socket: fd 0 is not one and LISTEN_FDS is not set \
                 for this process (start getacert from mod_fcgid, spawn-fcgi or a systemd \
                 socket, or give a listen address)",
            )),
        },
    }
}

fn bind_unix(path: &Path, mode: u32, group: Option<&str>) -> io::Result<Listener> {
    let at = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(at(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process is listening on this socket",
                )));
            }
            fs::remove_file(path).map_err(at)?;
        }
        Ok(_) => {
            return Err(at(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not removing it",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(at(e)),
    }
    // Only the owner may connect until the mode and group below are in place.
    let listener = sock::with_umask(0o177, || UnixListener::bind(path)).map_err(at)?;
    if let Some(name) = group {
        let gid = sock::group_id(name).map_err(at)?.ok_or_else(|| {
            at(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group named {name:?}"),
            ))
        })?;
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(at)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(at)?;
    Ok(Listener::Unix(listener))
}

/// Binds `listen` and serves it until SIGTERM or SIGINT; see [`serve_on`].
pub fn serve(listen: Listen, mut opts: ServeOptions, handler: Arc<dyn Handler>) -> io::Result<()> {
    let listener = bind(&listen)?;
    // Each connection is a descriptor: lift the soft limit to the hard one, and hold no
    // more connections than it leaves room for (files, the workers' own descriptors).
    let limit = sock::raise_open_files_limit()?;
    let room = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(64 + 4 * opts.workers);
    opts.max_conns = opts.max_conns.min(room).max(1);
    log::info!(
        "serving FastCGI on {listen:?}: {} workers, queue {}, up to {} connections, requests \
         must arrive within {} s",
        opts.workers.max(1),
        opts.queue,
        opts.max_conns,
        opts.request_timeout.as_secs()
    );
    run(listener, matches!(listen, Listen::Inherited), opts, handler)
}

/// Serves FastCGI on `listener` (one this process bound) until SIGTERM or SIGINT; then
/// stops accepting, answers what it has read, and returns `Ok`. `Err`: the event loop
/// itself failed.
pub fn serve_on(listener: Listener, opts: ServeOptions, handler: Arc<dyn Handler>) -> io::Result<()> {
    run(listener, false, opts, handler)
}

fn run(listener: Listener, inherited: bool, opts: ServeOptions, handler: Arc<dyn Handler>) -> io::Result<()> {
    super::event_loop::run(listener, inherited, opts, handler)
}

/// Calls the handler; a panic becomes a logged 500 instead of taking the caller down.
pub fn call_handler(handler: &dyn Handler, request: &Request) -> Response {
    panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request))).unwrap_or_else(|_| {
        log::error!("the request handler panicked; answering 500");
        Response::new(
            500,
            "text/plain; charset=utf-8",
            b"Internal Server Error\n".to_vec(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::fastcgi::{
        BEGIN_REQUEST, END_REQUEST, FLAG_KEEP_CONN, GET_VALUES, GET_VALUES_RESULT, PARAMS, ROLE_RESPONDER,
        STDIN, STDOUT, encode_pairs, encode_record, parse_record,
    };
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::OwnedFd;
    use std::process::{Command, Stdio};
    use std::thread;
    use std::time::Instant;

    /// Answers `METHOD body` (413 when too large); panics when asked to.
    struct Echo;

    impl Handler for Echo {
        fn handle(&self, req: &Request) -> Response {
            if req.param("PANIC").is_some() {
                panic!("asked to panic");
            }
            if req.body_too_large {
                return Response::new(413, "text/plain", b"too large".to_vec());
            }
            let method = String::from_utf8_lossy(req.param("REQUEST_METHOD").unwrap_or(b"?"));
            let odd = req.param("ODD").map_or(String::new(), |v| format!(" odd={v:?}"));
            let body = format!("{method} {}{odd}", String::from_utf8_lossy(&req.body));
            Response::new(200, "text/plain", body.into_bytes())
        }
    }

    fn options(workers: usize) -> ServeOptions {
        ServeOptions {
            workers,
            queue: 8,
            max_conns: 64,
            max_body: 100,
            request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            web_server_addrs: None,
        }
    }

    /// Starts serving `listener` on background threads; they end with the test process.
    fn start(listener: Listener, opts: ServeOptions) {
        thread::spawn(move || serve_on(listener, opts, Arc::new(Echo)));
    }

    fn request_bytes(id: u16, keep_conn: bool, params: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let flags = if keep_conn { FLAG_KEEP_CONN } else { 0 };
        encode_record(
            &mut out,
            BEGIN_REQUEST,
            id,
            &[0, ROLE_RESPONDER as u8, flags, 0, 0, 0, 0, 0],
        );
        encode_record(&mut out, PARAMS, id, &encode_pairs(params.iter().copied()));
        encode_record(&mut out, PARAMS, id, &[]);
        if !body.is_empty() {
            encode_record(&mut out, STDIN, id, body);
        }
        encode_record(&mut out, STDIN, id, &[]);
        out
    }

    /// Reads records until END_REQUEST; returns the STDOUT text.
    fn read_response(stream: &mut impl Read) -> String {
        let (mut buf, mut stdout) = (Vec::new(), Vec::new());
        loop {
            while let Some((record, used)) = parse_record(&buf).unwrap() {
                match record.kind {
                    STDOUT => stdout.extend_from_slice(record.content),
                    END_REQUEST => return String::from_utf8(stdout).unwrap(),
                    other => panic!("unexpected record type {other}"),
                }
                buf.drain(..used);
            }
            let mut chunk = [0; 4096];
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed before END_REQUEST");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn ask(
        stream: &mut (impl Read + Write),
        keep_conn: bool,
        params: &[(&[u8], &[u8])],
        body: &[u8],
    ) -> String {
        stream
            .write_all(&request_bytes(1, keep_conn, params, body))
            .unwrap();
        read_response(stream)
    }

    const POST: [(&[u8], &[u8]); 1] = [(b"REQUEST_METHOD", b"POST")];

    /// True when the peer closed without sending anything.
    fn closed_at_once(stream: &mut TcpStream) -> bool {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match stream.read(&mut [0; 16]) {
            Ok(0) => true,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }

    #[test]
    fn unix_socket_replaces_a_stale_socket_sets_the_mode_and_keeps_connections_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("getacert.sock");
        drop(UnixListener::bind(&path).unwrap()); // a stale socket file, nobody listening
        let listen = Listen::Unix {
            path: path.clone(),
            mode: 0o660,
            group: None,
        };
        start(bind(&listen).unwrap(), options(2));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o660);

        let mut stream = UnixStream::connect(&path).unwrap();
        let first = ask(&mut stream, true, &POST, b"one");
        assert!(first.starts_with("Status: 200 OK\r\n"), "{first}");
        assert!(first.ends_with("\r\n\r\nPOST one"), "{first}");
        let second = ask(&mut stream, false, &POST, b"two");
        assert!(second.ends_with("POST two"), "{second}");
        assert_eq!(stream.read(&mut [0; 8]).unwrap(), 0, "closed after keep_conn = 0");

        let odd: [(&[u8], &[u8]); 1] = [(b"ODD", b"\xff\x00")];
        let mut stream = UnixStream::connect(&path).unwrap();
        assert!(ask(&mut stream, false, &odd, b"").ends_with("?  odd=[255, 0]"));
    }

    #[test]
    fn unix_socket_path_that_is_not_a_stale_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-socket");
        fs::write(&file, "keep me").unwrap();
        let listen = Listen::Unix {
            path: file.clone(),
            mode: 0o600,
            group: None,
        };
        let err = bind(&listen).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");

        let live = dir.path().join("live.sock");
        let _other = UnixListener::bind(&live).unwrap();
        let err = bind(&Listen::Unix {
            path: live,
            mode: 0o600,
            group: None,
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");

        let path = dir.path().join("g.sock");
        let group = Some("no-such-group-getacert".to_string());
        let err = bind(&Listen::Unix {
            path,
            mode: 0o600,
            group,
        })
        .unwrap_err();
        assert!(err.to_string().contains("no group named"), "{err}");
    }

    #[test]
    fn group_names_are_looked_up() {
        assert_eq!(sock::group_id("root").unwrap(), Some(0));
        assert_eq!(sock::group_id("no-such-group-getacert").unwrap(), None);
    }

    #[test]
    fn tcp_peers_outside_fcgi_web_server_addrs_are_closed_at_once() {
        let open = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let open_addr = open.tcp_addr().unwrap();
        let mut opts = options(1);
        opts.web_server_addrs = Some(parse_web_server_addrs(" 192.0.2.1, 127.0.0.1").unwrap());
        start(open, opts.clone());
        let mut stream = TcpStream::connect(open_addr).unwrap();
        assert!(ask(&mut stream, false, &POST, b"hi").ends_with("POST hi"));

        let closed = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let closed_addr = closed.tcp_addr().unwrap();
        opts.web_server_addrs = Some(vec!["192.0.2.1".parse().unwrap(), "::1".parse().unwrap()]);
        start(closed, opts);
        let mut stream = TcpStream::connect(closed_addr).unwrap();
        assert!(closed_at_once(&mut stream));
    }

    #[test]
    fn fcgi_web_server_addrs_parsing() {
        let parsed = parse_web_server_addrs("127.0.0.1,::1, 10.0.0.2 ,").unwrap();
        assert_eq!(parsed.len(), 3);
        let err = parse_web_server_addrs("127.0.0.1,localhost").unwrap_err();
        assert!(err.to_string().contains("\"localhost\""), "{err}");
    }

    #[test]
    fn a_client_that_stalls_or_vanishes_mid_request_does_not_hold_up_others() {
        let listener = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        start(listener, options(2));
        let partial = request_bytes(1, true, &POST, b"never finished");
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled.write_all(&partial[..20]).unwrap();

        let mut other = TcpStream::connect(addr).unwrap();
        assert!(ask(&mut other, true, &POST, b"b").ends_with("POST b"));
        drop(stalled); // disconnects mid-request
        for body in ["c", "d", "e"] {
            let mut next = TcpStream::connect(addr).unwrap();
            assert!(ask(&mut next, false, &POST, body.as_bytes()).ends_with(body));
        }
        assert!(
            ask(&mut other, false, &POST, b"f").ends_with("POST f"),
            "keep-alive survived"
        );
    }

    #[test]
    fn a_stalled_client_is_dropped_after_the_request_timeout() {
        let listener = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        let mut opts = options(1);
        opts.request_timeout = Duration::from_millis(300);
        start(listener, opts);
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled
            .write_all(&request_bytes(1, true, &POST, b"x")[..20])
            .unwrap();
        thread::sleep(Duration::from_millis(50));

        let started = Instant::now();
        let mut next = TcpStream::connect(addr).unwrap();
        assert!(ask(&mut next, false, &POST, b"y").ends_with("POST y"));
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(closed_at_once(&mut stalled));
    }

    /// A peer that sends and never reads (here: GET_VALUES over and over) cannot make
    /// the daemon buffer answers without end: it is disconnected.
    #[test]
    fn a_peer_that_never_reads_its_answers_is_disconnected() {
        let listener = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        let mut opts = options(1);
        opts.request_timeout = Duration::from_millis(500);
        start(listener, opts);
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut record = Vec::new();
        encode_record(
            &mut record,
            GET_VALUES,
            0,
            &encode_pairs([(&b"FCGI_MAX_CONNS"[..], &b""[..]), (b"FCGI_MAX_REQS", b"")]),
        );
        let burst = record.repeat(1000);
        let started = Instant::now();
        let cut = loop {
            if let Err(e) = stream.write_all(&burst) {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "still connected");
        };
        assert!(
            matches!(
                cut.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{cut}"
        );
    }

    #[test]
    fn a_panicking_handler_gets_a_500_and_the_worker_lives_on() {
        let listener = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        start(listener, options(1));
        let mut stream = TcpStream::connect(addr).unwrap();
        let panic: [(&[u8], &[u8]); 1] = [(b"PANIC", b"1")];
        assert!(ask(&mut stream, true, &panic, b"").starts_with("Status: 500 "));
        assert!(ask(&mut stream, true, &POST, b"after").ends_with("POST after"));
        let big = vec![b'x'; 101];
        assert!(ask(&mut stream, false, &POST, &big).starts_with("Status: 413 "));
    }

    #[test]
    fn get_values_reports_the_connections_and_requests_really_held() {
        let listener = bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let addr = listener.tcp_addr().unwrap();
        start(listener, options(3));
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut out = Vec::new();
        encode_record(
            &mut out,
            GET_VALUES,
            0,
            &encode_pairs([(&b"FCGI_MAX_CONNS"[..], &b""[..]), (b"FCGI_MAX_REQS", b"")]),
        );
        stream.write_all(&out).unwrap();
        let mut expected = Vec::new();
        // 64 connections (options()), 3 workers + 8 queued requests.
        let answer = encode_pairs([(&b"FCGI_MAX_CONNS"[..], &b"64"[..]), (b"FCGI_MAX_REQS", b"11")]);
        encode_record(&mut expected, GET_VALUES_RESULT, 0, &answer);
        let mut got = vec![0; expected.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(got, expected);
    }

    /// The real peer: libfcgi's `cgi-fcgi` (Debian libfcgi-bin) as the web server.
    #[test]
    fn cgi_fcgi_from_libfcgi_is_answered() {
        if Command::new("cgi-fcgi")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!("skipped: cgi-fcgi not installed (apt-get install libfcgi-bin)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fcgi.sock");
        start(
            bind(&Listen::Unix {
                path: path.clone(),
                mode: 0o600,
                group: None,
            })
            .unwrap(),
            options(2),
        );
        let run = |env: &[(&str, &std::ffi::OsStr)], body: &[u8]| {
            let mut child = Command::new("cgi-fcgi")
                .args(["-bind", "-connect"])
                .arg(&path)
                .env_clear()
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(body).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        };
        use std::os::unix::ffi::OsStrExt;
        let os = |s: &'static [u8]| std::ffi::OsStr::from_bytes(s);
        let answer = run(
            &[("REQUEST_METHOD", os(b"POST")), ("CONTENT_LENGTH", os(b"5"))],
            b"hello",
        );
        assert!(
            answer.starts_with("Status: 200 OK\r\n") && answer.ends_with("POST hello"),
            "{answer}"
        );
        let answer = run(&[("REQUEST_METHOD", os(b"GET")), ("ODD", os(b"\xe9"))], b"");
        assert!(answer.ends_with("GET  odd=[233]"), "{answer}");
        let big = [b'z'; 5000];
        let answer = run(
            &[("REQUEST_METHOD", os(b"POST")), ("CONTENT_LENGTH", os(b"5000"))],
            &big,
        );
        assert!(answer.starts_with("Status: 413 "), "{answer}");
    }

    const CHILD_TEST: &str = "web::server::tests::inherited_child";

    /// The child half of [`an_inherited_listening_socket_is_served`]; does nothing alone.
    #[test]
    fn inherited_child() {
        if std::env::var_os("GETACERT_TEST_INHERITED_CHILD").is_none() {
            return;
        }
        // Never outlive the parent test, whoever started us.
        thread::spawn(|| {
            thread::sleep(Duration::from_secs(30));
            std::process::exit(3)
        });
        assert!(inherited_listener_available());
        let result = serve(Listen::Inherited, options(2), Arc::new(Echo));
        panic!("serve returned {result:?}");
    }

    /// mod_fcgid and spawn-fcgi pass the listening socket as fd 0, systemd as fd 3 with
    /// `LISTEN_PID` and `LISTEN_FDS`.
    #[test]
    fn an_inherited_listening_socket_is_served() {
        let exe = std::env::current_exe().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut launchers = Vec::new();

        let path = dir.path().join("fd0.sock");
        let mut fd0 = Command::new(&exe);
        fd0.stdin(Stdio::from(OwnedFd::from(UnixListener::bind(&path).unwrap())));
        launchers.push(("fd 0", fd0, path));

        let path = dir.path().join("fd3.sock");
        let mut fd3 = Command::new("sh");
        fd3.args([
            "-c",
            r#"export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@" 3<&0 0</dev/null"#,
        ])
        .arg(&exe)
        .stdin(Stdio::from(OwnedFd::from(UnixListener::bind(&path).unwrap())));
        launchers.push(("LISTEN_FDS", fd3, path));

        let path = dir.path().join("activate.sock");
        if Command::new("systemd-socket-activate")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok()
        {
            let mut activate = Command::new("systemd-socket-activate");
            activate
                .arg("--listen")
                .arg(&path)
                .args(["-E", "GETACERT_TEST_INHERITED_CHILD=1"])
                .arg(&exe)
                .stdin(Stdio::null())
                .stderr(Stdio::null());
            launchers.push(("systemd-socket-activate", activate, path));
        } else {
            eprintln!("systemd-socket-activate not installed: that case is skipped");
        }

        for (name, mut command, path) in launchers {
            let mut child = command
                .args(["--exact", CHILD_TEST, "--nocapture"])
                .env("GETACERT_TEST_INHERITED_CHILD", "1")
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut stream = loop {
                match UnixStream::connect(&path) {
                    Ok(stream) => break stream,
                    Err(e) if Instant::now() > deadline => panic!("{name}: {e}"),
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            };
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let answer = ask(&mut stream, false, &POST, name.as_bytes());
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(answer.ends_with(&format!("POST {name}")), "{name}: {answer}");
        }
    }
}
