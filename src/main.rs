//! The command line: parse, pick a front end or an admin command, exit code.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use getacert::admin;
use getacert::app::App;
use getacert::config::Config;
use getacert::log::{self as glog, Sink};
use getacert::web::{cgi, server};

#[derive(Parser)]
#[command(
    name = "getacert",
    version,
    about = "Passwordless login by TLS client certificates: the enrollment page for Apache and nginx",
    long_about = "getacert issues TLS client certificates so your users log in without passwords.\n\n\
        It runs behind your existing Apache or nginx, either as a FastCGI daemon (`serve`), \
        started by mod_fcgid or spawn-fcgi, or as a plain CGI program (run with no command \
        under a web server that sets GATEWAY_INTERFACE). It reads the same ca.conf as \
        `openssl ca` and keeps the same index.txt, serial and newcerts/ files, so \
        `openssl ca -revoke` and `-gencrl` keep working.\n\n\
        Accounts: a username, once issued, belongs to its account until an admin runs \
        `release`; anyone else asking for it gets 409, even after its certificates were \
        revoked or expired. A signed-in user (the web server verified a \
        certificate this CA issued, not revoked) sees their devices at the enrollment \
        URL, can revoke them, and can get a one-time add-device code to enroll another \
        device under the same name. An admin can issue a recovery code for a user who \
        lost every device or let every certificate expire (`recovery-code`).\n\n\
        Start with `getacert init /etc/getacert` to make a CA, then `getacert --config \
        /etc/getacert/ca.conf check`."
)]
struct Cli {
    /// The ca.conf to use [default: $GETACERT_CONFIG, else /etc/getacert/ca.conf]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Make a new CA directory: CA key (0600) and certificate, index.txt, serial,
    /// newcerts/ and a ca.conf that both getacert and `openssl ca` read.
    Init {
        /// The directory to create (e.g. /etc/getacert). Refused if it already holds a CA.
        dir: PathBuf,
        /// The CA's name, shown to users when the browser asks which certificate to send.
        #[arg(long, default_value = "getacert Root CA")]
        cn: String,
        /// Organization (O) of the CA certificate.
        #[arg(long)]
        org: Option<String>,
        /// Two-letter country (C) of the CA certificate.
        #[arg(long)]
        country: Option<String>,
        /// The CA key: rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384.
        #[arg(long, default_value = "rsa:2048")]
        key: String,
        /// How long the CA certificate is valid, in days.
        #[arg(long, default_value_t = 7300)]
        days: u32,
    },
    /// Run as a FastCGI daemon for Apache (mod_proxy_fcgi, mod_fcgid) or nginx.
    ///
    /// Without --listen and without `listen` in ca.conf, serves the socket inherited on
    /// fd 0 (mod_fcgid, spawn-fcgi) or from systemd socket activation.
    Serve {
        /// unix:/run/getacert/getacert.sock or tcp:127.0.0.1:9000. For TCP, set
        /// FCGI_WEB_SERVER_ADDRS to the web server's address(es).
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<String>,
        /// Worker threads that sign (connections are served without one each).
        #[arg(long)]
        workers: Option<usize>,
        /// Log to stderr instead of syslog.
        #[arg(long)]
        log_stderr: bool,
    },
    /// Check the configuration, file permissions, CA key and certificate, database and
    /// the web server's revocation settings; print every problem and warning with its
    /// fix. Exit status 1 when there is a problem; "sound" only with no warning either.
    Check {
        /// A web server configuration file to read for its CRL and OCSP settings
        /// (repeatable); by default Debian's nginx and Apache files (nginx.conf,
        /// sites-enabled/, conf.d/, apache2.conf, conf-enabled/). Each OCSP responder
        /// they name is asked about this CA.
        #[arg(long = "web-config", value_name = "FILE")]
        web_config: Vec<PathBuf>,
    },
    /// List issued certificates: serial, status, username, expiry.
    List,
    /// Revoke certificates (as `openssl ca -revoke`, under getacert's lock), then
    /// regenerate the CRL when `crl` is set in ca.conf. getacert refuses the
    /// certificate at once; its OCSP responder answers "revoked" at once, so a web
    /// server set up as shipped (ssl_ocsp / SSLOCSPEnable) refuses new connections
    /// with it within ocsp_next_update seconds, with no reload.
    Revoke {
        /// The certificate's serial number (hex, as `getacert list` shows it).
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        serial: Option<String>,
        /// Every valid certificate of this username.
        #[arg(long)]
        user: Option<String>,
        /// keyCompromise, superseded, cessationOfOperation, affiliationChanged,
        /// CACompromise, certificateHold, removeFromCRL or unspecified.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Write a new CRL signed by the CA (numbered from the crlnumber file) to --out,
    /// else to the `crl` file of ca.conf, else to standard output.
    Crl {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Mark expired certificates as expired (E) in index.txt, as `openssl ca -updatedb`.
    Updatedb,
    /// Print a one-time recovery code for a user who lost every device. On a new
    /// device they enroll with their username and this code.
    RecoveryCode {
        /// The username.
        name: String,
        /// Revoke all of the user's certificates first (a lost or stolen device).
        #[arg(long)]
        revoke_all: bool,
    },
    /// Copy the CA (ca.conf, key, certificate, index.txt, serial, CRL, newcerts/ …) into
    /// a new directory, under the database lock, so the copy is consistent. Restoring:
    /// docs/deployment.md.
    Backup {
        /// The directory to create (it must not exist, or be empty). Keep it private:
        /// it holds the CA key.
        dir: PathBuf,
    },
    /// Write the man pages and shell completions (for packaging: scripts/deb).
    #[command(hide = true)]
    GenerateDocs {
        /// Where to write man/ and completions/.
        dir: PathBuf,
    },
    /// Free a username for anyone: revoke its certificates that are still valid, void
    /// its codes and record its serials as released (getacert.released, logged). Until
    /// then a name once issued stays its account's, even with every certificate revoked
    /// or expired.
    Release {
        /// The username.
        name: String,
    },
}

fn load_app(config: Option<&std::path::Path>) -> Result<App, String> {
    let path = Config::locate(config);
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    App::new(config).map_err(|e| e.to_string())
}

/// The app for an admin command, logging to stderr.
fn admin_app(config: Option<&std::path::Path>) -> Result<App, String> {
    let app = load_app(config)?;
    glog::init(Sink::Stderr, app.config.log_facility);
    Ok(app)
}

fn parse_listen(spec: &str, config: &Config) -> Result<server::Listen, String> {
    if let Some(path) = spec.strip_prefix("unix:") {
        Ok(server::Listen::Unix {
            path: PathBuf::from(path),
            mode: config.socket_mode,
            group: config.socket_group.clone(),
        })
    } else if let Some(addr) = spec.strip_prefix("tcp:") {
        addr.parse()
            .map(server::Listen::Tcp)
            .map_err(|_| format!("--listen {spec:?}: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:9000"))
    } else {
        Err(format!("--listen {spec:?}: expected unix:PATH or tcp:HOST:PORT"))
    }
}

fn serve(
    cli_config: Option<&std::path::Path>,
    listen: Option<String>,
    workers: Option<usize>,
    sink: Sink,
) -> Result<(), String> {
    let app = load_app(cli_config)?;
    glog::init(sink, app.config.log_facility);
    let listen = match listen.or_else(|| app.config.listen.clone()) {
        Some(spec) => parse_listen(&spec, &app.config)?,
        None if server::inherited_listener_available() => server::Listen::Inherited,
        None => {
            return Err(
                "nowhere to listen: give --listen unix:PATH or tcp:HOST:PORT, set `listen` in \
                        [getacert], or start getacert from mod_fcgid or spawn-fcgi"
                    .into(),
            );
        }
    };
    let opts = server::ServeOptions {
        workers: workers.unwrap_or(app.config.workers),
        queue: app.config.queue,
        max_conns: server::MAX_CONNS,
        max_body: app.config.max_body,
        request_timeout: app.config.request_timeout,
        idle_timeout: server::IDLE_TIMEOUT,
        web_server_addrs: server::ServeOptions::web_server_addrs_from_env()
            .map_err(|e| format!("FCGI_WEB_SERVER_ADDRS: {e}"))?,
    };
    let app = app.daemon().map_err(|e| e.to_string())?;
    let listener = server::bind(&listen).map_err(|e| e.to_string())?;
    // On TCP (--listen tcp: or a socket from spawn-fcgi -p) any local user can connect.
    if listener.tcp_addr().is_some() && !app.has_front_secret() {
        return Err(
            "refusing to serve FastCGI on TCP without front_secret_file in [getacert]: any local \
             user could connect and claim to be the web server (getacert init writes DIR/front-secret)"
                .into(),
        );
    }
    log::info!(
        "serving FastCGI on {listen:?} with {} workers",
        opts.workers.max(1)
    );
    server::serve_on(listener, opts, Arc::new(app)).map_err(|e| e.to_string())
}

fn run_cgi(cli_config: Option<&std::path::Path>) -> Result<(), String> {
    match load_app(cli_config) {
        Ok(app) => {
            glog::init(Sink::Syslog { also_stderr: true }, app.config.log_facility);
            cgi::run_cgi(
                &app,
                app.config.max_body,
                std::env::vars_os(),
                std::io::stdin().lock(),
                std::io::stdout().lock(),
            )
            .map_err(|e| e.to_string())
        }
        Err(e) => {
            // The web server shows 500; the detail goes to its error log via stderr.
            print!(
                "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe enrollment service is not configured correctly. The administrator can find the details in the web server's error log.\n"
            );
            Err(e)
        }
    }
}

/// Whether this process was started by a web server for one CGI request: it has a CGI
/// environment and no listening socket was handed to it (mod_fcgid and spawn-fcgi pass
/// one on fd 0, and may set GATEWAY_INTERFACE too).
fn started_as_cgi() -> bool {
    (std::env::var_os("GATEWAY_INTERFACE").is_some() || std::env::var_os("REQUEST_METHOD").is_some())
        && !server::inherited_listener_available()
}

/// Answers a CGI request that came with command-line arguments, and runs nothing.
///
/// mod_cgi and mod_cgid pass a query string without `=` to the program as its arguments
/// (RFC 3875 4.4, the mechanism of CVE-2012-1823), so in CGI mode the command line is
/// the visitor's: `?revoke+--user+alice` must never become `getacert revoke --user alice`.
fn refuse_cgi_arguments(args: &[std::ffi::OsString]) -> ExitCode {
    glog::init(Sink::Syslog { also_stderr: true }, libc::LOG_AUTHPRIV);
    // Debug formatting escapes control characters: the visitor's bytes forge no log line.
    let shown: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    log::error!(
        "refused: started as CGI with command-line arguments {shown:?} (a query string without '=' \
         becomes argv under mod_cgi); nothing was run. Refuse such query strings in the web \
         server (see apache/getacert-cgi.conf)"
    );
    print!(
        "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         The enrollment service refused this request. The administrator can find the details in \
         the web server's error log.\n"
    );
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    // Decide CGI before looking at the arguments: under CGI they come from the visitor.
    if started_as_cgi() {
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        if !args.is_empty() {
            return refuse_cgi_arguments(&args);
        }
        return match run_cgi(std::env::var_os("GETACERT_CONFIG").map(PathBuf::from).as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("getacert: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Cli::parse();
    // mod_fcgid starts `serve` with a CGI-like environment; nothing else may run in one.
    let cgi_environment =
        std::env::var_os("GATEWAY_INTERFACE").is_some() || std::env::var_os("REQUEST_METHOD").is_some();
    if cgi_environment && !matches!(cli.command, Some(Command::Serve { .. }) | None) {
        eprintln!("getacert: refused: admin commands never run in a web server's CGI environment");
        return ExitCode::FAILURE;
    }
    let config = cli.config.as_deref();
    // Run as root, the commands that read or change the CA act as its owner (check
    // stays root: it judges the files as they are, for whoever runs the daemon).
    if matches!(
        cli.command,
        Some(
            Command::List
                | Command::Revoke { .. }
                | Command::Crl { .. }
                | Command::Updatedb
                | Command::RecoveryCode { .. }
                | Command::Backup { .. }
                | Command::Release { .. }
        )
    ) && let Err(e) = getacert::owner::act_as_ca_owner(&Config::locate(config))
    {
        eprintln!("getacert: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Some(Command::Init {
            dir,
            cn,
            org,
            country,
            key,
            days,
        }) => admin::init(
            &dir,
            &admin::InitOptions {
                cn,
                org,
                country,
                key,
                days,
            },
        ),
        Some(Command::Serve {
            listen,
            workers,
            log_stderr,
        }) => {
            let sink = if log_stderr {
                Sink::Stderr
            } else {
                Sink::Syslog { also_stderr: false }
            };
            serve(config, listen, workers, sink)
        }
        Some(Command::Backup { dir }) => admin_app(config).and_then(|app| {
            let n = app.store.back_up(&dir)?;
            println!("Backed up the CA and {n} certificate(s) to {}", dir.display());
            Ok(())
        }),
        Some(Command::GenerateDocs { dir }) => getacert::docgen::write(Cli::command(), &dir),
        Some(Command::Check { web_config }) => {
            let mut report = admin::check(&Config::locate(config));
            if let Ok(c) = Config::load(&Config::locate(config)) {
                let files = getacert::webcheck::files_or_default(&web_config);
                let (warnings, notes) = getacert::webcheck::report(&files, &c.ca_cert);
                report.warnings.extend(warnings);
                for n in notes {
                    println!("ok: {n}");
                }
            }
            for w in &report.warnings {
                println!("warning: {w}");
            }
            for p in &report.problems {
                println!("problem: {p}");
            }
            if report.problems.is_empty() && report.warnings.is_empty() {
                println!("{}: sound", Config::locate(config).display());
                Ok(())
            } else if report.problems.is_empty() {
                // Not "sound": what a warning names works, but not everywhere.
                println!(
                    "{}: no problems, {} warning(s) to fix",
                    Config::locate(config).display(),
                    report.warnings.len()
                );
                Ok(())
            } else {
                Err(format!("{} problem(s) found", report.problems.len()))
            }
        }
        Some(Command::List) => Config::load(&Config::locate(config))
            .map_err(|e| e.to_string())
            .and_then(|c| admin::list(&c)),
        Some(Command::Revoke { serial, user, reason }) => admin_app(config).and_then(|app| {
            let target = match (serial, user) {
                (Some(s), _) => admin::RevokeTarget::Serial(s),
                (None, Some(u)) => admin::RevokeTarget::User(u),
                (None, None) => return Err("give --serial HEX or --user NAME".into()),
            };
            let revoked = admin::revoke(&app, &target, reason.as_deref())?;
            if revoked.is_empty() {
                return Err("no valid certificate matched: nothing revoked".into());
            }
            println!("revoked: {}", revoked.join(" "));
            println!(
                "OCSP answers \"revoked\" now: a web server using getacert's responder (the shipped \
                 configuration) refuses new connections with it within {} seconds, without a reload.",
                app.config.ocsp_next_update
            );
            if app.config.paths.crl_file.is_some() {
                println!(
                    "The CRL file is updated too; a web server that reads it (ssl_crl, SSLCARevocationFile) \
                     needs a reload to see it."
                );
            }
            Ok(())
        }),
        Some(Command::Crl { out }) => admin_app(config).and_then(|app| {
            let pem = admin::crl(&app, out.is_none())?;
            match out {
                Some(path) => std::fs::write(&path, &pem).map_err(|e| format!("{}: {e}", path.display())),
                None if app.config.paths.crl_file.is_some() => Ok(()),
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&pem).map_err(|e| e.to_string())
                }
            }
        }),
        Some(Command::Updatedb) => admin_app(config).and_then(|app| {
            let changed = admin::updatedb(&app)?;
            println!("{} certificate(s) marked expired", changed.len());
            Ok(())
        }),
        Some(Command::RecoveryCode { name, revoke_all }) => admin_app(config).and_then(|app| {
            let (code, revoked) = admin::recovery_code(&app, &name, revoke_all)?;
            if !revoked.is_empty() {
                println!("revoked: {}", revoked.join(" "));
            }
            println!("Recovery code for {name}: {code}");
            println!(
                "It works once and expires in {} minutes. On the new device: open the enrollment page, \
                 type the username {name} and this code.",
                app.config.code_lifetime / 60
            );
            Ok(())
        }),
        Some(Command::Release { name }) => admin_app(config).and_then(|app| {
            let done = admin::release(&app, &name)?;
            if !done.revoked.is_empty() {
                println!("revoked: {}", done.revoked.join(" "));
            }
            println!(
                "released {name}: {} certificate(s) no longer hold the name; anyone may enroll it now.",
                done.released.len()
            );
            Ok(())
        }),
        None if server::inherited_listener_available() => {
            serve(config, None, None, Sink::Syslog { also_stderr: true })
        }
        None => {
            Err("no command given (try --help); CGI mode needs GATEWAY_INTERFACE from a web server".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("getacert: {e}");
            ExitCode::FAILURE
        }
    }
}
