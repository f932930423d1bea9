//! The two front ends, from a ca.conf to a served request: the FastCGI daemon
//! (`getacert serve`, or a socket inherited from mod_fcgid or spawn-fcgi) and one CGI
//! request (started by a web server with GATEWAY_INTERFACE), with the CGI guards that
//! decide before the command line is read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::App;
use crate::config::Config;
use crate::log::{self as glog, Sink};
use crate::web::{cgi, server};

/// The configuration at `config` (or where [`Config::locate`] finds it) and its [`App`].
pub fn load_app(config: Option<&Path>) -> Result<App, String> {
    let path = Config::locate(config);
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    App::new(config).map_err(|e| e.to_string())
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

/// The FastCGI daemon: listens where `listen`, ca.conf's `listen` or the inherited
/// socket says, until SIGTERM.
pub fn serve(
    cli_config: Option<&Path>,
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

/// One CGI request, from the environment and standard input to standard output.
pub fn run_cgi(cli_config: Option<&Path>) -> Result<(), String> {
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
pub fn started_as_cgi() -> bool {
    (std::env::var_os("GATEWAY_INTERFACE").is_some() || std::env::var_os("REQUEST_METHOD").is_some())
        && !server::inherited_listener_available()
}

/// Answers a CGI request that came with command-line arguments, and runs nothing.
///
/// mod_cgi and mod_cgid pass a query string without `=` to the program as its arguments
/// (RFC 3875 4.4, the mechanism of CVE-2012-1823), so in CGI mode the command line is
/// the visitor's: `?revoke+--user+alice` must never become `getacert revoke --user alice`.
pub fn refuse_cgi_arguments(args: &[std::ffi::OsString]) -> ExitCode {
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
