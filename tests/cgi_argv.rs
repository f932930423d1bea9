//! Issue: under mod_cgi a query string without `=` becomes the program's command line
//! (RFC 3875 4.4; PHP-CGI's CVE-2012-1823). getacert must decide that it is a CGI before
//! it reads its arguments, and then run nothing the visitor typed: every case here is an
//! admin command smuggled in through `?cmd+arg+arg`, run exactly as Apache would run it.

mod common;

use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Ca, HttpRequest, Reply, bin, unique_name};

/// Runs the binary as mod_cgi does for `GET /getacert.php?QUERY` when QUERY has no `=`:
/// the CGI environment, and the query split at `+` as argv.
fn cgi_with_search_string(ca: &Ca, query: &str) -> Output {
    let mut vars = HttpRequest::get().cgi_params();
    vars.retain(|(k, _)| k != "QUERY_STRING");
    vars.push(("QUERY_STRING".into(), query.into()));
    Command::new(bin())
        .args(query.split('+'))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GETACERT_CONFIG", &ca.conf)
        .envs(vars)
        .stdin(Stdio::null())
        .output()
        .expect("spawn getacert as CGI")
}

fn assert_refused(what: &str, out: &Output) {
    let reply = Reply::parse(&out.stdout);
    assert_eq!(reply.status, 500, "{what}: {reply:?}");
    assert!(!out.status.success(), "{what}: exit status {}", out.status);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("started as CGI with command-line arguments"),
        "{what}: the refusal is logged: {log}"
    );
}

#[test]
fn cgi_query_string_without_equals_never_runs_an_admin_command() {
    let ca = Ca::init();
    let alice = unique_name("alice");
    let csr = common::fixture_text("rsa2048.csr");
    let reply = common::cgi(
        &ca.conf,
        &HttpRequest::form(&[("username", &alice), ("csr", &csr)]),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let before = ca.snapshot();
    let out_file = ca.scratch("overwritten");
    let new_ca = ca.scratch("newca");
    let port = common::free_port();
    let cases = [
        format!("revoke+--user+{alice}"),
        format!("recovery-code+{alice}+--revoke-all"),
        format!("release+{alice}"),
        format!("crl+--out+{}", out_file.display()),
        format!("init+{}", new_ca.display()),
        "updatedb".to_string(),
        "list".to_string(),
        "check".to_string(),
        "--help".to_string(),
        "--version".to_string(),
    ];
    for query in &cases {
        assert_refused(query, &cgi_with_search_string(&ca, query));
    }
    // `serve` would open an unfiltered FastCGI port: it must not listen, even briefly.
    let query = format!("serve+--listen+tcp:127.0.0.1:{port}");
    let out = cgi_with_search_string(&ca, &query);
    assert_refused(&query, &out);
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err(),
        "{query}: nothing listens on {port}"
    );
    assert_eq!(ca.snapshot(), before, "the CA database is exactly as before");
    assert!(!out_file.exists(), "crl --out wrote no file");
    assert!(!new_ca.exists(), "init made no CA");
    assert_eq!(
        ca.status(&ca.index()[0].serial),
        "Valid (V)",
        "alice is not revoked"
    );
}

/// REQUEST_METHOD alone (a server that sets no GATEWAY_INTERFACE) is a CGI environment too.
#[test]
fn cgi_environment_without_gateway_interface_still_refuses_arguments() {
    let ca = Ca::init();
    let out = Command::new(bin())
        .args(["updatedb"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GETACERT_CONFIG", &ca.conf)
        .env("REQUEST_METHOD", "GET")
        .env("QUERY_STRING", "updatedb")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_refused("REQUEST_METHOD only", &out);
}

/// Without arguments the CGI still answers (the page, here), so the fix refuses only argv.
#[test]
fn cgi_without_arguments_still_serves_the_page() {
    let ca = Ca::init();
    let reply = common::cgi(&ca.conf, &HttpRequest::get());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.text().contains("<form"), "the enrollment page");
}
