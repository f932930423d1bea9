//! Issue 9, item 5: the `[ getacert ]` section as an admin edits it. A misspelt key is an
//! error naming it (it used to be ignored, leaving the default silently in force), every
//! line of the ca.conf `init` writes can be uncommented, and a regular expression
//! survives OpenSSL's parser (`$` is a variable there, a backslash an escape).

mod common;

use std::fs;
use std::process::Command;

use common::{Ca, HttpRequest, bin, fixture_text};

fn check(ca: &Ca) -> (bool, String) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(&ca.conf)
        .arg("check")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn unknown_getacert_key_is_refused_naming_file_line_and_nearest_key() {
    let ca = Ca::init();
    ca.append_getacert_settings("rsa_min_bit = 4096\n");
    let (ok, text) = check(&ca);
    assert!(!ok, "check refuses the config: {text}");
    let line = fs::read_to_string(&ca.conf)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("rsa_min_bit ="))
        .unwrap()
        + 1;
    assert!(
        text.contains(&ca.conf.display().to_string()),
        "names the file: {text}"
    );
    assert!(text.contains("[getacert] rsa_min_bit"), "names the key: {text}");
    assert!(text.contains(&format!("line {line}")), "names the line: {text}");
    assert!(
        text.contains("did you mean rsa_min_bits?"),
        "hints the nearest key: {text}"
    );
    // The web front end refuses too, without issuing.
    let before = ca.snapshot();
    let csr = fixture_text("rsa2048.csr");
    let req = HttpRequest::form(&[("username", "u1"), ("csr", &csr)]);
    let out = Command::new(bin())
        .env_clear()
        .env("GETACERT_CONFIG", &ca.conf)
        .envs(req.cgi_params())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(common::Reply::parse(&out.stdout).status, 500);
    assert_eq!(ca.snapshot(), before);
}

#[test]
fn uncommenting_every_line_of_inits_ca_conf_keeps_a_config_that_loads() {
    let ca = Ca::init_with(&[]);
    let conf = fs::read_to_string(&ca.conf).unwrap();
    let (head, tail) = conf.split_once("[ getacert ]").unwrap();
    let mut uncommented = 0;
    let tail: String = tail
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.split_once('=').is_some_and(|(k, _)| !k.trim().contains(' ')) => {
                uncommented += 1;
                format!("{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(uncommented >= 25, "uncommented {uncommented} lines");
    fs::write(&ca.conf, format!("{head}[ getacert ]{tail}")).unwrap();
    let (ok, text) = check(&ca);
    assert!(ok, "every line uncommented still loads and is sound: {text}");
    // And the uncommented default username rule means what it says.
    let csr = fixture_text("rsa2048.csr");
    let reply = common::cgi(
        &ca.conf,
        &HttpRequest::form(&[("username", "alice.b-1"), ("csr", &csr)]),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = common::cgi(
        &ca.conf,
        &HttpRequest::form(&[("username", "alice$"), ("csr", &csr)]),
    );
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[test]
fn username_rule_backslash_eaten_by_openssl_is_refused_with_the_fix() {
    let ca = Ca::init();
    ca.append_getacert_settings("username_rule = ^[a-z]+\\d\\$\n");
    let (ok, text) = check(&ca);
    assert!(!ok, "{text}");
    assert!(
        text.contains(r#""\\d""#) && text.contains("write each backslash"),
        "{text}"
    );

    let ca = Ca::init();
    ca.append_getacert_settings("username_rule = ^[a-z]+\\\\d\\$\n");
    let (ok, text) = check(&ca);
    assert!(ok, "{text}");
    let csr = fixture_text("rsa2048.csr");
    let reply = common::cgi(
        &ca.conf,
        &HttpRequest::form(&[("username", "bob7"), ("csr", &csr)]),
    );
    assert_eq!(reply.status, 200, "\\\\d is a digit class: {reply:?}");
    let reply = common::cgi(
        &ca.conf,
        &HttpRequest::form(&[("username", "bobd"), ("csr", &csr)]),
    );
    assert_eq!(reply.status, 400, "and not the letter d: {reply:?}");
}
