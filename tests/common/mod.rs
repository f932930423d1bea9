//! Shared helpers of the integration tests: a CA in a temporary directory, the real
//! `getacert` binary as a FastCGI daemon (with a guard that kills it) or as a CGI
//! program, an independent FastCGI client (`fastcgi-client`, driven over blocking std
//! sockets), a hand-written FastCGI record encoder for malformed streams, and the
//! `openssl` CLI as the judge of keys, requests, certificates and the database.
//!
//! Nothing here uses getacert's own FastCGI code or index parser: the tests must be
//! able to catch a bug there.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509StoreContext};
use tempfile::TempDir;

/// How long any single socket read or write may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_getacert"))
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture_text(name: &str) -> String {
    fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// A username no other test in this process uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------
// The openssl CLI

/// Runs `openssl ARGS` and returns its output, whatever the exit status.
pub fn openssl_output<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed")
}

/// Runs `openssl ARGS`, fails the test unless it succeeds, returns stdout + stderr.
pub fn openssl<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = openssl_output(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

/// A fresh SPKAC for `key` over `challenge`, as `openssl spkac` prints it (`SPKAC=...`).
pub fn make_spkac(key: &Path, challenge: &str) -> String {
    let out = openssl([
        OsStr::new("spkac"),
        OsStr::new("-key"),
        key.as_os_str(),
        OsStr::new("-challenge"),
        OsStr::new(challenge),
        OsStr::new("-digest"),
        OsStr::new("sha256"),
    ]);
    out.lines()
        .find(|l| l.starts_with("SPKAC="))
        .unwrap_or_else(|| panic!("no SPKAC in {out}"))
        .to_string()
}

/// A fresh PEM CSR for `key` (its subject is ignored by getacert).
pub fn make_csr(key: &Path) -> String {
    let out = Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=ignored-by-getacert", "-key"])
        .arg(key)
        .stdin(Stdio::null())
        .output()
        .expect("openssl req");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM is ASCII")
}

/// A new P-256 key at `path` (`openssl genpkey`).
pub fn ec_p256_key(path: &Path) {
    openssl([
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path.to_str().expect("UTF-8 path"),
    ]);
}

// ---------------------------------------------------------------------------------------
// The CA directory

/// A CA in a temporary directory, made by `getacert init` (or by hand, see
/// `article_ca_conf.rs`).
pub struct Ca {
    pub tmp: TempDir,
    pub dir: PathBuf,
    pub conf: PathBuf,
    /// Where this CA's certificate is (`rootCA.pem` for `init`).
    pub cert: PathBuf,
}

/// Everything an enrollment may change, byte for byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.files {
            m.entry(k, &String::from_utf8_lossy(v));
        }
        m.finish()
    }
}

impl Ca {
    /// `getacert init DIR --cn X --org MyApp --country US` (RSA-2048 CA key), with the
    /// per-address and per-username rate limits off: every request of a test comes from
    /// one address, and most tests enroll far more than a visitor would.
    pub fn init() -> Ca {
        let ca = Ca::init_with(&[]);
        ca.append_getacert_settings("address_rate = off\nusername_rate = off\n");
        ca
    }

    /// `init` with sequential serials (`rand_serial = no`, as the article's CAs and
    /// `openssl ca` by default): for the tests of the serial file itself.
    pub fn init_sequential() -> Ca {
        let ca = Ca::init();
        let conf = fs::read_to_string(&ca.conf).unwrap();
        assert!(
            conf.contains("\nrand_serial     = yes\n"),
            "init writes rand_serial = yes"
        );
        fs::write(
            &ca.conf,
            conf.replace("\nrand_serial     = yes\n", "\nrand_serial     = no\n"),
        )
        .unwrap();
        ca
    }

    /// Appends lines to ca.conf, which `init` ends with its `[ getacert ]` section.
    pub fn append_getacert_settings(&self, lines: &str) {
        let conf = fs::read_to_string(&self.conf).unwrap();
        let last_section = conf.lines().rfind(|l| l.trim_start().starts_with('[')).unwrap();
        assert_eq!(
            last_section.trim(),
            "[ getacert ]",
            "ca.conf ends with [ getacert ]"
        );
        let mut f = fs::OpenOptions::new().append(true).open(&self.conf).unwrap();
        f.write_all(format!("\n{lines}").as_bytes()).unwrap();
    }

    /// `getacert init` and its ca.conf exactly as written (default rate limits).
    pub fn init_with(extra: &[&str]) -> Ca {
        let tmp = tempfile::Builder::new()
            .prefix("getacert-test-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().join("ca");
        let out = Command::new(bin())
            .arg("init")
            .arg(&dir)
            .args(["--cn", "X", "--org", "MyApp", "--country", "US"])
            .args(extra)
            .output()
            .expect("run getacert init");
        assert!(
            out.status.success(),
            "getacert init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = dir.canonicalize().unwrap();
        // The front secret is tested on its own (tests/identity.rs, tests/servers):
        // elsewhere the daemon answers any client, as with `front_secret_file` unset.
        let conf = dir.join("ca.conf");
        let text = fs::read_to_string(&conf).unwrap();
        let line = format!("front_secret_file = {}/front-secret\n", dir.display());
        assert!(text.contains(&line), "init sets front_secret_file:\n{text}");
        fs::write(&conf, text.replace(&line, "")).unwrap();
        Ca {
            conf,
            cert: dir.join("rootCA.pem"),
            dir,
            tmp,
        }
    }

    /// Turns the front secret `init` made back on; returns it.
    pub fn enable_front_secret(&self) -> String {
        self.append_getacert_settings(&format!(
            "front_secret_file = {}/front-secret\n",
            self.dir.display()
        ));
        fs::read_to_string(self.path("front-secret"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// A scratch path inside the test's temporary directory (outside the CA directory).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn index_text(&self) -> String {
        fs::read_to_string(self.path("index.txt")).expect("read index.txt")
    }

    /// index.txt parsed by the tests' own reader; fails the test on a malformed line.
    pub fn index(&self) -> Vec<IndexLine> {
        parse_index(&self.index_text())
    }

    /// The names in newcerts/, without `.pem`, sorted.
    pub fn newcerts(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path("newcerts"))
            .expect("read newcerts")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .map(|n| n.strip_suffix(".pem").map(str::to_string).unwrap_or(n))
            .collect();
        names.sort();
        names
    }

    /// index.txt, index.txt.attr, serial, crlnumber, getacert.codes and every file in
    /// newcerts/.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = BTreeMap::new();
        for name in [
            "index.txt",
            "index.txt.attr",
            "serial",
            "crlnumber",
            "getacert.codes",
        ] {
            if let Ok(bytes) = fs::read(self.path(name)) {
                files.insert(name.to_string(), bytes);
            }
        }
        for e in fs::read_dir(self.path("newcerts")).expect("read newcerts") {
            let e = e.unwrap();
            files.insert(
                format!("newcerts/{}", e.file_name().to_string_lossy()),
                fs::read(e.path()).unwrap(),
            );
        }
        Snapshot { files }
    }

    /// `openssl ca -config CONF ARGS`, whatever its exit status.
    pub fn openssl_ca_output(&self, args: &[&str]) -> Output {
        let mut all: Vec<&OsStr> = vec![OsStr::new("ca"), OsStr::new("-config"), self.conf.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        openssl_output(all)
    }

    /// `openssl ca -config CONF ARGS`; fails the test unless it succeeds.
    pub fn openssl_ca(&self, args: &[&str]) -> String {
        let out = self.openssl_ca_output(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "openssl ca {args:?} failed:\n{text}");
        text
    }

    /// What `openssl ca -status SERIAL` says, e.g. `Valid (V)`. (Its exit status is no
    /// verdict: OpenSSL 3.0 exits 1 after a successful status query.)
    pub fn status(&self, serial: &str) -> String {
        let out = self.openssl_ca_output(&["-status", serial]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{serial}=")))
            .unwrap_or_else(|| panic!("openssl ca -status {serial}: {text}"))
            .trim()
            .to_string()
    }

    pub fn ca_x509(&self) -> X509 {
        X509::from_pem(&fs::read(&self.cert).unwrap()).unwrap()
    }

    /// Verifies `der` against this CA in-process (chain, signature, validity) and
    /// returns it parsed. The CLI check is [`Ca::openssl_verify`].
    pub fn check_cert(&self, der: &[u8]) -> X509 {
        self.check_certs(&[der.to_vec()]).pop().unwrap()
    }

    /// [`Ca::check_cert`] for many certificates at once.
    pub fn check_certs(&self, ders: &[Vec<u8>]) -> Vec<X509> {
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(self.ca_x509()).unwrap();
        let store = store.build();
        let chain = openssl::stack::Stack::new().unwrap();
        let mut ctx = X509StoreContext::new().unwrap();
        ders.iter()
            .enumerate()
            .map(|(i, der)| {
                let cert = X509::from_der(der).unwrap_or_else(|e| panic!("answer {i} is not DER: {e}"));
                let ok = ctx
                    .init(&store, &cert, &chain, |c| {
                        let ok = c.verify_cert()?;
                        Ok(if ok { Ok(()) } else { Err(c.error()) })
                    })
                    .unwrap();
                if let Err(e) = ok {
                    panic!("answer {i} does not verify against the CA: {e}");
                }
                cert
            })
            .collect()
    }

    /// `openssl verify -CAfile rootCA.pem` on each certificate (DER), in one call.
    pub fn openssl_verify(&self, ders: &[Vec<u8>]) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let batch = self.scratch(&format!("verify-{}", N.fetch_add(1, Ordering::Relaxed)));
        fs::create_dir_all(&batch).unwrap();
        let mut args: Vec<std::ffi::OsString> =
            vec!["verify".into(), "-CAfile".into(), self.cert.clone().into()];
        for (i, der) in ders.iter().enumerate() {
            let pem = X509::from_der(der).unwrap().to_pem().unwrap();
            let path = batch.join(format!("{i}.pem"));
            fs::write(&path, pem).unwrap();
            args.push(path.into());
        }
        let out = openssl(&args);
        let oks = out.lines().filter(|l| l.ends_with(": OK")).count();
        assert_eq!(oks, ders.len(), "openssl verify:\n{out}");
    }

    /// The database is sound by the tests' own reading and by `openssl ca`: every line
    /// has six fields, serials are distinct, each has its newcerts file holding the
    /// certificate with that serial, and `openssl ca -updatedb` reads it.
    /// With `exact_newcerts`, newcerts/ holds nothing else.
    pub fn assert_consistent(&self, exact_newcerts: bool) {
        let index = self.index();
        let mut serials: Vec<&str> = index.iter().map(|l| l.serial.as_str()).collect();
        serials.sort();
        let before = serials.len();
        serials.dedup();
        assert_eq!(before, serials.len(), "serials in index.txt repeat");
        for line in &index {
            let pem = fs::read(self.path(&format!("newcerts/{}.pem", line.serial)))
                .unwrap_or_else(|e| panic!("newcerts/{}.pem: {e}", line.serial));
            let cert = X509::from_pem(&pem).unwrap();
            assert_eq!(
                serial_of(&cert),
                line.serial,
                "newcerts file holds another serial"
            );
        }
        if exact_newcerts {
            assert_eq!(self.newcerts(), serials, "newcerts/ and index.txt disagree");
        }
        self.openssl_ca(&["-updatedb"]);
    }
}

/// One index.txt line as the tests read it (independently of getacert's parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLine {
    pub status: String,
    pub expires: String,
    pub revoked: String,
    pub serial: String,
    pub file: String,
    pub subject: String,
}

pub fn parse_index(text: &str) -> Vec<IndexLine> {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "index.txt does not end with a newline: {text:?}"
    );
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 6, "index.txt line {line:?} has {} fields", f.len());
            assert!(["V", "R", "E"].contains(&f[0]), "status in {line:?}");
            assert!(f[1].len() == 13 || f[1].len() == 15, "expiry in {line:?}");
            assert!(
                f[3].len().is_multiple_of(2)
                    && f[3]
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "serial in {line:?}"
            );
            IndexLine {
                status: f[0].into(),
                expires: f[1].into(),
                revoked: f[2].into(),
                serial: f[3].into(),
                file: f[4].into(),
                subject: f[5].into(),
            }
        })
        .collect()
}

/// The serial as index.txt writes it: upper-case hex, even length.
pub fn serial_of(cert: &X509) -> String {
    let hex = cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string();
    if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    }
}

pub fn common_name(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Requests and responses

/// One HTTP request as the web server would pass it to getacert.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// More CGI/FastCGI parameters (HTTP_ORIGIN, ...); they replace defaults of the same
    /// name (REMOTE_ADDR, ...).
    pub params: Vec<(String, String)>,
}

impl HttpRequest {
    pub fn get() -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            content_type: None,
            body: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A form POST, `application/x-www-form-urlencoded`.
    pub fn form(fields: &[(&str, &str)]) -> HttpRequest {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields {
            s.append_pair(k, v);
        }
        HttpRequest::raw_form(s.finish().into_bytes())
    }

    /// A POST of an already encoded form body.
    pub fn raw_form(body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            body,
            params: Vec::new(),
        }
    }

    pub fn with_param(mut self, k: &str, v: &str) -> HttpRequest {
        self.params.push((k.into(), v.into()));
        self
    }

    /// Every parameter a web server would send, in order.
    pub fn cgi_params(&self) -> Vec<(String, String)> {
        let mut p = vec![
            ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
            ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
            ("REQUEST_METHOD".into(), self.method.clone()),
            ("SCRIPT_NAME".into(), "/getacert".into()),
            ("REQUEST_URI".into(), "/getacert".into()),
            ("REMOTE_ADDR".into(), "192.0.2.7".into()),
            ("CONTENT_LENGTH".into(), self.body.len().to_string()),
        ];
        if let Some(ct) = &self.content_type {
            p.push(("CONTENT_TYPE".into(), ct.clone()));
        }
        // An extra parameter replaces a default one of the same name.
        for (k, v) in &self.params {
            match p.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = v.clone(),
                None => p.push((k.clone(), v.clone())),
            }
        }
        p
    }
}

/// A CGI-style response: `Status:` line, headers, body.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = if self.is_cert() {
            format!("<{} bytes of certificate>", self.body.len())
        } else {
            String::from_utf8_lossy(&self.body).chars().take(400).collect()
        };
        write!(f, "{} {:?} {body:?}", self.status, self.headers)
    }
}

impl Reply {
    /// Parses CGI/FastCGI responder output.
    pub fn parse(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)))
            .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split.0]).into_owned();
        let mut status = 200;
        let mut headers = Vec::new();
        for line in head.lines() {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            let v = v.trim().to_string();
            if k.eq_ignore_ascii_case("Status") {
                status = v[..3].parse().expect("status code");
            }
            headers.push((k.to_string(), v));
        }
        Reply {
            status,
            headers,
            body: raw[split.1..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `name=value` of the page's `Set-Cookie` (the cookie its form token is bound to).
    pub fn cookie(&self) -> String {
        let c = self
            .header("Set-Cookie")
            .unwrap_or_else(|| panic!("no Set-Cookie: {self:?}"));
        c.split(';').next().unwrap().trim().to_string()
    }

    pub fn is_cert(&self) -> bool {
        self.header("Content-Type") == Some("application/x-x509-user-cert")
    }

    /// The issued certificate (DER); fails the test unless this is one.
    pub fn cert_der(&self) -> Vec<u8> {
        assert!(
            self.status == 200 && self.is_cert(),
            "expected a certificate, got {self:?}"
        );
        self.body.clone()
    }

    /// What a page's `attr="..."` says.
    fn page_attr(&self, marker: &str) -> String {
        let text = self.text();
        let start = text
            .find(marker)
            .unwrap_or_else(|| panic!("no {marker} in the page: {self:?}"))
            + marker.len();
        text[start..].split('"').next().unwrap().to_string()
    }

    /// The SPKAC challenge the page hands out.
    pub fn challenge(&self) -> String {
        self.page_attr("challenge=\"")
    }

    /// The form token the page hands out.
    pub fn token(&self) -> String {
        self.page_attr("name=\"token\" value=\"")
    }
}

// ---------------------------------------------------------------------------------------
// Front ends

/// Where a request is sent: a FastCGI socket or a CGI process.
#[derive(Debug, Clone)]
pub enum Front {
    Unix(PathBuf),
    /// A TCP socket, with the front secret every request carries (the daemon refuses
    /// TCP without one).
    Tcp(SocketAddr, Option<String>),
    /// `getacert` run as CGI with `GETACERT_CONFIG=conf`.
    Cgi(PathBuf),
}

impl Front {
    pub fn send(&self, req: &HttpRequest) -> Reply {
        match self {
            Front::Cgi(conf) => cgi(conf, req),
            Front::Unix(_) | Front::Tcp(..) => {
                fcgi_request(self, req).unwrap_or_else(|e| panic!("FastCGI request to {self:?} failed: {e}"))
            }
        }
    }

    /// GET the page; returns (challenge, form token).
    pub fn challenge_and_token(&self) -> (String, String) {
        let page = self.send(&HttpRequest::get());
        assert_eq!(page.status, 200, "{page:?}");
        (page.challenge(), page.token())
    }

    pub fn connect(&self) -> io::Result<Conn> {
        let conn = match self {
            Front::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
            Front::Tcp(a, _) => Conn::Tcp(TcpStream::connect(a)?),
            Front::Cgi(_) => panic!("CGI has no socket"),
        };
        conn.set_timeouts(Some(IO_TIMEOUT))?;
        Ok(conn)
    }

    /// Enrolls `username` by posting `csr` (PEM; its subject is ignored, so one CSR
    /// serves many usernames).
    pub fn enroll_csr(&self, username: &str, csr: &str) -> Reply {
        self.send(&HttpRequest::form(&[("username", username), ("csr", csr)]))
    }

    /// GETs a challenge, makes an SPKAC with `key` over it and enrolls `username`,
    /// posting the page's form token with the cookie it is bound to, as a browser does.
    pub fn enroll_spkac(&self, username: &str, key: &Path) -> Reply {
        let page = self.send(&HttpRequest::get());
        assert_eq!(page.status, 200, "{page:?}");
        let spkac = make_spkac(key, &page.challenge());
        self.send(
            &HttpRequest::form(&[
                ("username", username),
                ("pubkey", &spkac),
                ("token", &page.token()),
            ])
            .with_param("HTTP_COOKIE", &page.cookie()),
        )
    }
}

/// Runs the binary as a CGI program for one request.
pub fn cgi(conf: &Path, req: &HttpRequest) -> Reply {
    cgi_raw(conf, &req.cgi_params(), &req.body)
}

/// Runs the binary as CGI with exactly these variables (plus GETACERT_CONFIG and PATH).
pub fn cgi_raw(conf: &Path, vars: &[(String, String)], stdin: &[u8]) -> Reply {
    let mut child = Command::new(bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GETACERT_CONFIG", conf)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn getacert as CGI");
    let mut input = child.stdin.take().unwrap();
    let body = stdin.to_vec();
    // The program may stop reading early (413): a broken pipe is fine.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "getacert (CGI) exited with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Reply::parse(&out.stdout)
}

// ---------------------------------------------------------------------------------------
// The independent FastCGI client: fastcgi-client over blocking std sockets

/// A connected socket; also drives `fastcgi-client`, whose futures never wait because
/// every read and write here blocks.
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Conn::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fastcgi_client::io::AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().read(buf))
    }
}

impl fastcgi_client::io::AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // fastcgi-client 0.12 ends an empty body with two empty STDIN records. The first
        // one completes the request, so getacert may answer and close (keep_conn = 0)
        // before the second is written. The answer is then already in our receive
        // buffer: let the client go on to read it. A real early close still fails the
        // request, at the read.
        match self.get_mut().write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Poll::Ready(Ok(buf.len())),
            other => Poll::Ready(other),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The client closes after the answer; the application may have closed first.
        let _ = self.get_mut().shutdown_write();
        Poll::Ready(Ok(()))
    }
}

/// Runs a future whose I/O never returns `Pending` (blocking sockets) to completion.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::yield_now();
    }
}

/// One request over a new connection with `fastcgi-client` (no keep-alive).
pub fn fcgi_request(front: &Front, req: &HttpRequest) -> Result<Reply, String> {
    let conn = front.connect().map_err(|e| format!("connect: {e}"))?;
    let mut params = fastcgi_client::Params::default();
    for (k, v) in req.cgi_params() {
        params = params.custom(k, v);
    }
    if let Front::Tcp(_, Some(secret)) = front {
        params = params.custom("GETACERT_FRONT_SECRET", secret.clone());
    }
    let body = fastcgi_client::io::Cursor::new(req.body.clone());
    let client = fastcgi_client::Client::new(conn);
    let out = block_on(client.execute_once(fastcgi_client::Request::new(params, body)))
        .map_err(|e| format!("{e}"))?;
    let stdout = out.stdout.ok_or("empty STDOUT")?;
    Ok(Reply::parse(&stdout))
}

// ---------------------------------------------------------------------------------------
// The daemon

/// How the daemon gets its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// `serve --listen unix:PATH`
    Unix,
    /// `serve --listen tcp:127.0.0.1:PORT`
    Tcp,
    /// `spawn-fcgi -s PATH -n -- getacert --config CONF` (the socket on fd 0)
    SpawnFcgiUnix,
    /// `spawn-fcgi -a 127.0.0.1 -p PORT -n -- getacert --config CONF`
    SpawnFcgiTcp,
}

/// A running `getacert` FastCGI daemon; killed (SIGKILL) and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    pub front: Front,
    listen: Listen,
    conf: PathBuf,
    workers: usize,
    pub log: PathBuf,
}

/// A TCP port that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    pub fn start(ca: &Ca, listen: Listen, workers: usize) -> Daemon {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut tries = 0;
        let secret = matches!(listen, Listen::Tcp | Listen::SpawnFcgiTcp).then(|| {
            let conf = fs::read_to_string(&ca.conf).unwrap();
            if conf.contains("front_secret_file") {
                fs::read_to_string(ca.path("front-secret"))
                    .unwrap()
                    .trim()
                    .to_string()
            } else {
                ca.enable_front_secret()
            }
        });
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let front = match listen {
                Listen::Unix | Listen::SpawnFcgiUnix => Front::Unix(ca.scratch(&format!("fcgi-{n}.sock"))),
                Listen::Tcp | Listen::SpawnFcgiTcp => {
                    Front::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())), secret.clone())
                }
            };
            let mut d = Daemon {
                child: None,
                front,
                listen,
                conf: ca.conf.clone(),
                workers,
                log: ca.scratch(&format!("daemon-{n}.log")),
            };
            match d.try_spawn() {
                Ok(()) => return d,
                // Another test may have taken the free port in the meantime.
                Err(e) if tries < 5 && matches!(d.front, Front::Tcp(..)) => {
                    eprintln!("daemon did not start ({e}); trying another port");
                    tries += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match (self.listen, &self.front) {
            (Listen::Unix, Front::Unix(p)) => {
                let mut c = Command::new(bin());
                c.arg("--config").arg(&self.conf).arg("serve");
                c.arg("--listen").arg(format!("unix:{}", p.display()));
                c
            }
            (Listen::Tcp, Front::Tcp(a, _)) => {
                let mut c = Command::new(bin());
                c.arg("--config").arg(&self.conf).arg("serve");
                c.arg("--listen").arg(format!("tcp:{a}"));
                c
            }
            (Listen::SpawnFcgiUnix, Front::Unix(p)) => {
                let _ = fs::remove_file(p);
                let mut c = Command::new("spawn-fcgi");
                c.arg("-s").arg(p).arg("-n").arg("--").arg(bin());
                c.arg("--config").arg(&self.conf);
                c
            }
            (Listen::SpawnFcgiTcp, Front::Tcp(a, _)) => {
                let mut c = Command::new("spawn-fcgi");
                c.args(["-a", "127.0.0.1", "-p", &a.port().to_string(), "-n", "--"]);
                c.arg(bin()).arg("--config").arg(&self.conf);
                c
            }
            other => unreachable!("{other:?}"),
        };
        if matches!(self.listen, Listen::Unix | Listen::Tcp) {
            cmd.args(["--workers", &self.workers.to_string(), "--log-stderr"]);
        }
        let mut child = cmd
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .env_remove("GETACERT_CONFIG")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the daemon exited with {status} at start: {}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if self.front.connect().is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the daemon did not start listening within 15 s".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`, then wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `within` for it to exit; its exit status, or `None`
    /// when it was still running then (it is then killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        terminate(&mut child, within)
    }

    /// Starts it again on the same socket.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// SIGTERM to `child`, then up to `within` for it to exit (killed after that: `None`).
pub fn terminate(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {}", child.id());
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------
// A hand-written FastCGI encoder, for streams no real client would send

pub mod raw {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
    pub const RESPONDER: u16 = 1;
    pub const AUTHORIZER: u16 = 2;
    pub const KEEP_CONN: u8 = 1;
    pub const REQUEST_COMPLETE: u8 = 0;
    pub const CANT_MPX_CONN: u8 = 1;
    pub const UNKNOWN_ROLE: u8 = 3;

    /// One record with `version`, padded to a multiple of 8.
    pub fn record_v(version: u8, kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        assert!(content.len() <= 0xffff);
        let pad = (8 - content.len() % 8) % 8;
        let mut out = vec![version, kind];
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        out.extend_from_slice(&[pad as u8, 0]);
        out.extend_from_slice(content);
        out.extend(std::iter::repeat_n(0, pad));
        out
    }

    pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
        record_v(1, kind, id, content)
    }

    pub fn begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
        let [r1, r0] = role.to_be_bytes();
        record(BEGIN_REQUEST, id, &[r1, r0, flags, 0, 0, 0, 0, 0])
    }

    fn length(out: &mut Vec<u8>, n: usize) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            out.extend_from_slice(&(n as u32 | 0x8000_0000).to_be_bytes());
        }
    }

    pub fn pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            length(&mut out, k.len());
            length(&mut out, v.len());
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }

    /// A whole stream (PARAMS or STDIN): records of at most 65535 bytes, then the empty one.
    pub fn stream(kind: u8, id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in data.chunks(0xffff) {
            out.extend(record(kind, id, chunk));
        }
        out.extend(record(kind, id, &[]));
        out
    }

    pub fn params(id: u16, p: &[(&[u8], &[u8])]) -> Vec<u8> {
        stream(PARAMS, id, &pairs(p))
    }

    /// BEGIN_REQUEST, PARAMS, STDIN: a whole request.
    pub fn request(id: u16, flags: u8, p: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
        [
            begin(id, RESPONDER, flags),
            params(id, p),
            stream(STDIN, id, body),
        ]
        .concat()
    }

    /// A record read back from the application.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Rec {
        pub version: u8,
        pub kind: u8,
        pub id: u16,
        pub content: Vec<u8>,
    }

    impl Rec {
        /// END_REQUEST's (app status, protocol status).
        pub fn end_request(&self) -> (u32, u8) {
            assert_eq!(self.kind, END_REQUEST, "{self:?}");
            let c = &self.content;
            (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), c[4])
        }
    }

    /// Splits complete records off `buf`; returns them and the bytes used.
    pub fn parse(buf: &[u8]) -> (Vec<Rec>, usize) {
        let mut recs = Vec::new();
        let mut at = 0;
        while buf.len() >= at + 8 {
            let h = &buf[at..at + 8];
            let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
            let total = 8 + len + usize::from(h[6]);
            if buf.len() < at + total {
                break;
            }
            recs.push(Rec {
                version: h[0],
                kind: h[1],
                id: u16::from_be_bytes([h[2], h[3]]),
                content: buf[at + 8..at + 8 + len].to_vec(),
            });
            at += total;
        }
        (recs, at)
    }
}

/// What came back on a connection.
#[derive(Debug)]
pub struct Answer {
    pub records: Vec<raw::Rec>,
    /// The application closed the connection (EOF or reset) at the end.
    pub closed: bool,
}

impl Answer {
    /// The STDOUT stream of request `id`, parsed.
    pub fn reply(&self, id: u16) -> Option<Reply> {
        let out: Vec<u8> = self
            .records
            .iter()
            .filter(|r| r.kind == raw::STDOUT && r.id == id)
            .flat_map(|r| r.content.clone())
            .collect();
        (!out.is_empty()).then(|| Reply::parse(&out))
    }

    pub fn has_stdout(&self) -> bool {
        self.records.iter().any(|r| r.kind == raw::STDOUT)
    }
}

/// Reads records until `done` says enough, or the connection ends (EOF or reset), or
/// `quiet` passes without a byte. Fails the test on a read error other than those.
pub fn read_records(conn: &mut Conn, quiet: Duration, done: impl Fn(&[raw::Rec]) -> bool) -> Answer {
    conn.set_timeouts(Some(quiet)).unwrap();
    let mut buf = Vec::new();
    let mut records = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match conn.read(&mut chunk) {
            Ok(0) => {
                return Answer {
                    records,
                    closed: true,
                };
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let (recs, used) = raw::parse(&buf);
                buf.drain(..used);
                records.extend(recs);
                if done(&records) {
                    return Answer {
                        records,
                        closed: false,
                    };
                }
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Answer {
                    records,
                    closed: true,
                };
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Answer {
                    records,
                    closed: false,
                };
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Stops once an END_REQUEST for `id` has arrived.
pub fn until_end(id: u16) -> impl Fn(&[raw::Rec]) -> bool {
    move |recs| recs.iter().any(|r| r.kind == raw::END_REQUEST && r.id == id)
}

/// FastCGI parameters as raw bytes, for the raw encoder.
pub type ByteParams = Vec<(Vec<u8>, Vec<u8>)>;

/// The parameters of a request as (bytes, bytes), for the raw encoder.
pub fn byte_params(req: &HttpRequest) -> ByteParams {
    req.cgi_params()
        .into_iter()
        .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
        .collect()
}

pub fn as_refs(p: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    p.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect()
}
