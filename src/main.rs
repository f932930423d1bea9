//! The command line: parse, pick a front end or an admin command, exit code.
//!
//! A table of contents: the command line's definition is in `cli.rs`, the front ends
//! (FastCGI daemon, CGI) in `getacert::front`, the admin commands' bodies in
//! `getacert::admin::commands`. What stays here is the order of the guards: CGI is
//! decided before the arguments are read (under CGI they are the visitor's), admin
//! commands never run in a CGI environment, and as root they act as the CA's owner.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use getacert::admin::{self, commands};
use getacert::config::Config;
use getacert::front;
use getacert::log::Sink;

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    // Decide CGI before looking at the arguments: under CGI they come from the visitor.
    if front::started_as_cgi() {
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        if !args.is_empty() {
            return front::refuse_cgi_arguments(&args);
        }
        let config = std::env::var_os("GETACERT_CONFIG").map(PathBuf::from);
        return exit(front::run_cgi(config.as_deref()));
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
    if cli.command.as_ref().is_some_and(Command::acts_as_ca_owner)
        && let Err(e) = getacert::owner::act_as_ca_owner(&Config::locate(config))
    {
        eprintln!("getacert: {e}");
        return ExitCode::FAILURE;
    }
    exit(match cli.command {
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
            front::serve(config, listen, workers, sink)
        }
        Some(Command::Check { web_config }) => commands::check(config, &web_config),
        Some(Command::List) => commands::list(config),
        Some(Command::Revoke { serial, user, reason }) => {
            commands::revoke(config, serial, user, reason.as_deref())
        }
        Some(Command::Crl { out }) => commands::crl(config, out.as_deref()),
        Some(Command::Updatedb) => commands::updatedb(config),
        Some(Command::RecoveryCode { name, revoke_all }) => {
            commands::recovery_code(config, &name, revoke_all)
        }
        Some(Command::Backup { dir }) => commands::backup(config, &dir),
        Some(Command::Release { name }) => commands::release(config, &name),
        Some(Command::GenerateDocs { dir }) => getacert::docgen::write(Cli::command(), &dir),
        None if getacert::web::server::inherited_listener_available() => {
            front::serve(config, None, None, Sink::Syslog { also_stderr: true })
        }
        None => {
            Err("no command given (try --help); CGI mode needs GATEWAY_INTERFACE from a web server".into())
        }
    })
}

fn exit(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("getacert: {e}");
            ExitCode::FAILURE
        }
    }
}
