//! The command line's definition: `getacert [--config FILE] COMMAND`. The help texts
//! here are the man pages too (`getacert generate-docs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
pub struct Cli {
    /// The ca.conf to use [default: $GETACERT_CONFIG, else /etc/getacert/ca.conf]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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

impl Command {
    /// Run as root, the commands that read or change the CA act as its owner (check
    /// stays root: it judges the files as they are, for whoever runs the daemon).
    pub fn acts_as_ca_owner(&self) -> bool {
        match self {
            Command::List
            | Command::Revoke { .. }
            | Command::Crl { .. }
            | Command::Updatedb
            | Command::RecoveryCode { .. }
            | Command::Backup { .. }
            | Command::Release { .. } => true,
            Command::Init { .. }
            | Command::Serve { .. }
            | Command::Check { .. }
            | Command::GenerateDocs { .. } => false,
        }
    }
}
