//! `getacert init`: a new CA directory (the article's steps 1 and 4 done right) and the
//! ca.conf from the key table.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509, X509NameBuilder};

use crate::app::App;
use crate::ca::store::create_new as write_new;
use crate::config::{Config, ca_conf};

/// What `init` makes.
pub struct InitOptions {
    pub cn: String,
    pub org: Option<String>,
    pub country: Option<String>,
    pub key: String,
    pub days: u32,
}

fn make_key(spec: &str) -> Result<PKey<Private>, String> {
    let bad = || format!("--key {spec:?}: use rsa:2048, rsa:3072, rsa:4096, ec:P-256 or ec:P-384");
    let (kind, param) = spec.split_once(':').ok_or_else(bad)?;
    let key = match kind {
        "rsa" => {
            let bits: u32 = param.parse().map_err(|_| bad())?;
            if !(2048..=8192).contains(&bits) {
                return Err(bad());
            }
            PKey::from_rsa(Rsa::generate(bits).map_err(|e| e.to_string())?)
        }
        "ec" => {
            let nid = match param {
                "P-256" | "prime256v1" => Nid::X9_62_PRIME256V1,
                "P-384" | "secp384r1" => Nid::SECP384R1,
                _ => return Err(bad()),
            };
            let group = EcGroup::from_curve_name(nid).map_err(|e| e.to_string())?;
            PKey::from_ec_key(EcKey::generate(&group).map_err(|e| e.to_string())?)
        }
        _ => return Err(bad()),
    };
    key.map_err(|e| e.to_string())
}

fn ca_cert(key: &PKey<Private>, opts: &InitOptions) -> Result<X509, openssl::error::ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    if let Some(c) = &opts.country {
        name.append_entry_by_nid(Nid::COUNTRYNAME, c)?;
    }
    if let Some(o) = &opts.org {
        name.append_entry_by_nid(Nid::ORGANIZATIONNAME, o)?;
    }
    name.append_entry_by_nid(Nid::COMMONNAME, &opts.cn)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let mut b = X509::builder()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    // notBefore a few minutes back, like issued certificates (see NOT_BEFORE_SLACK).
    let back = crate::app::now() - crate::ca::sign::NOT_BEFORE_SLACK;
    let (from, until) = (
        Asn1Time::from_unix(back as libc::time_t)?,
        Asn1Time::days_from_now(opts.days)?,
    );
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.set_pubkey(key)?;
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

pub fn init(dir: &Path, opts: &InitOptions) -> Result<(), String> {
    for existing in ["rootCA.key", "rootCA.pem", "ca.conf", "index.txt", "serial"] {
        if dir.join(existing).exists() {
            return Err(format!(
                "{} already exists: refusing to overwrite a CA. Choose another directory.",
                dir.join(existing).display()
            ));
        }
    }
    fs::create_dir_all(dir.join("newcerts")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Only the CA's owner enters the directory; the web server reads what it needs (the
    // CA certificate, the CRL) as root at start-up, or through getacert.
    for d in [dir.clone(), dir.join("newcerts")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let key = make_key(&opts.key)?;
    let cert = ca_cert(&key, opts).map_err(|e| format!("making the CA certificate: {e}"))?;
    let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
    let cert_pem = cert.to_pem().map_err(|e| e.to_string())?;
    // A failure part way (a full disk) removes every file this init made.
    let files = [
        ("rootCA.key", key_pem.as_slice(), 0o600),
        ("rootCA.pem", cert_pem.as_slice(), 0o644),
        ("ca-bundle.crt", cert_pem.as_slice(), 0o644),
        ("index.txt", b"".as_slice(), 0o640),
        ("index.txt.attr", b"unique_subject = no\n".as_slice(), 0o640),
        ("serial", b"1000\n".as_slice(), 0o640),
        ("crlnumber", b"1000\n".as_slice(), 0o640),
    ];
    let conf = ca_conf(&dir);
    let mut created: Vec<PathBuf> = Vec::new();
    let mut made = || -> Result<(), String> {
        let conf_file = ("ca.conf", conf.as_bytes(), 0o640);
        for (name, content, mode) in files.into_iter().chain([conf_file]) {
            let path = dir.join(name);
            let existed = path.exists();
            let written = write_new(&path, content, mode);
            if !existed && path.exists() {
                created.push(path);
            }
            written?;
        }
        for name in [
            "front-secret",
            "front-secret.nginx",
            "front-secret.apache",
            "crl.pem",
            "index.txt.lock",
        ] {
            if !dir.join(name).exists() {
                created.push(dir.join(name));
            }
        }
        write_front_secret(&dir)?;
        // An empty CRL from the start, so ssl_crl / SSLCARevocationFile can point at it
        // before the first revocation.
        let app = Config::load(&dir.join("ca.conf"))
            .map_err(|e| e.to_string())
            .and_then(|c| App::new(c).map_err(|e| e.to_string()))?;
        super::crl(&app, true).map(|_| ()).map_err(|e| e.to_string())
    };
    if let Err(e) = made() {
        for path in created {
            let _ = fs::remove_file(path);
        }
        return Err(e);
    }
    println!("Made a CA in {}:", dir.display());
    println!("  rootCA.key (0600: only this user may read it), rootCA.pem, ca-bundle.crt,");
    println!("  index.txt, index.txt.attr, serial, crlnumber, crl.pem (empty), newcerts/, ca.conf,");
    println!("  front-secret, front-secret.nginx, front-secret.apache (0600: the web server's proof;");
    println!("  nginx/getacert.conf and apache/getacert.conf include them)");
    println!("Next: getacert --config {} check", dir.join("ca.conf").display());
    Ok(())
}

/// The front secret (64 hex digits from 32 random bytes) and the two web-server
/// snippets that send it, all 0600: read by getacert and by the web server's master
/// process (root), never by its workers or by PHP.
fn write_front_secret(dir: &Path) -> Result<(), String> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw).map_err(|e| format!("random front secret: {e}"))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_new(&dir.join("front-secret"), format!("{hex}\n").as_bytes(), 0o600)?;
    write_new(
        &dir.join("front-secret.nginx"),
        format!(
            "# Included by nginx/getacert.conf in the getacert location only: never in a PHP one.\n\
             fastcgi_param GETACERT_FRONT_SECRET \"{hex}\";\n"
        )
        .as_bytes(),
        0o600,
    )?;
    write_new(
        &dir.join("front-secret.apache"),
        format!(
            "# Included by apache/getacert.conf inside <Location \"/getacert.php\"> only.\n\
             SetEnv GETACERT_FRONT_SECRET \"{hex}\"\n"
        )
        .as_bytes(),
        0o600,
    )
}
