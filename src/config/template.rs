//! The ca.conf `getacert init` writes: the `openssl ca` sections of a new CA directory,
//! then every `[ getacert ]` key from the key table, commented out at its default.

use std::path::Path;

use super::keys::GETACERT_KEYS;

/// The ca.conf `init` writes: usable by `openssl ca` unchanged, with every getacert
/// setting listed, commented out at its default.
pub fn ca_conf(dir: &Path) -> String {
    let mut s = format!(
        "# ca.conf written by `getacert init`. Read by getacert and by `openssl ca -config`.\n\
         # When you run `openssl ca` by hand, hold getacert's lock:\n\
         #   flock {dir}/index.txt.lock openssl ca -config {dir}/ca.conf ...\n\
         \n\
         [ ca ]\n\
         default_ca      = CA_default\n\
         \n\
         [ CA_default ]\n\
         dir             = {dir}\n\
         database        = $dir/index.txt\n\
         new_certs_dir   = $dir/newcerts\n\
         certificate     = $dir/rootCA.pem\n\
         private_key     = $dir/rootCA.key\n\
         serial          = $dir/serial\n\
         # Random 127-bit serials (as `openssl ca` makes them with rand_serial): a CA\n\
         # restored from a backup cannot issue a serial again that it issued after the\n\
         # backup was taken. The serial file is then not used.\n\
         rand_serial     = yes\n\
         crlnumber       = $dir/crlnumber\n\
         crl             = $dir/crl.pem\n\
         default_days    = 365\n\
         default_crl_days = 30\n\
         default_md      = sha256\n\
         policy          = policy_getacert\n\
         email_in_dn     = yes\n\
         name_opt        = ca_default\n\
         cert_opt        = ca_default\n\
         copy_extensions = none\n\
         unique_subject  = no\n\
         # getacert's built-in client profile is used while x509_extensions is unset;\n\
         # for `openssl ca` by hand, add `-extensions getacert_client`.\n\
         \n\
         [ policy_getacert ]\n\
         countryName            = optional\n\
         stateOrProvinceName    = optional\n\
         localityName           = optional\n\
         organizationName       = optional\n\
         organizationalUnitName = optional\n\
         commonName             = supplied\n\
         emailAddress           = optional\n\
         \n\
         # A client certificate only signs (its TLS CertificateVerify): digitalSignature,\n\
         # right for RSA, EC and Ed25519 keys alike (keyEncipherment is not allowed on EC\n\
         # and Ed25519 keys). getacert adds the email as a subjectAltName itself; for\n\
         # `openssl ca` by hand with an email, add `subjectAltName = email:copy`.\n\
         [ getacert_client ]\n\
         basicConstraints       = critical, CA:FALSE\n\
         keyUsage               = critical, digitalSignature\n\
         extendedKeyUsage       = clientAuth\n\
         subjectKeyIdentifier   = hash\n\
         authorityKeyIdentifier = keyid\n\
         \n\
         [ getacert ]\n\
         # Set by init: the daemon answers only requests that carry this file's content\n\
         # (the web server includes front-secret.nginx / front-secret.apache, root-only).\n\
         front_secret_file = {dir}/front-secret\n\
         # Every other setting at its default. A line you uncomment is one you changed.\n",
        dir = dir.display()
    );
    for (key, default, comment) in GETACERT_KEYS.iter().filter(|(k, _, _)| *k != "front_secret_file") {
        s.push_str(&template_line(key, default, comment));
    }
    s
}

/// One `[ getacert ]` key as `init` writes it: its comment, then the key commented out at
/// its default, written so that uncommenting the line changes nothing. A default that is
/// not a literal value ("(from the CA certificate)") goes in the comment, the value left
/// empty (empty means the default). `$` and `\` are escaped for OpenSSL's parser.
fn template_line(key: &str, default: &str, comment: &str) -> String {
    if default.starts_with('(') {
        format!(
            "# {comment}; default: {}\n# {key} =\n",
            default.trim_matches(['(', ')'])
        )
    } else {
        let escaped = default.replace('\\', "\\\\").replace('$', "\\$");
        format!("# {comment}\n# {key} = {escaped}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ca.conf `init` writes lists every `[ getacert ]` key, commented out, but
    /// for `front_secret_file`, which it sets (to the secret it makes).
    #[test]
    fn init_ca_conf_lists_every_key() {
        let conf = ca_conf(Path::new("/etc/getacert"));
        let section = conf.split("[ getacert ]").nth(1).expect("a [ getacert ] section");
        for (key, _, _) in GETACERT_KEYS {
            let want = match *key {
                "front_secret_file" => "front_secret_file = /etc/getacert/front-secret".to_string(),
                key => format!("# {key} ="),
            };
            assert!(
                section.lines().any(|l| l.starts_with(&want)),
                "init's ca.conf does not list {key}"
            );
        }
    }
}
