//! `getacert backup DIR`: a consistent copy of the CA, taken under the database lock so
//! that no enrollment, revocation or `flock`-wrapped `openssl ca` is half done in it.
//!
//! Everything ca.conf names is copied flat into DIR (the key keeps mode 0600, DIR is
//! 0700), the certificates of newcerts/ into DIR/newcerts/, and DIR/RESTORE.txt says
//! where each file came from. Restoring is copying them back (docs/deployment.md).

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{CaFile, Store, create_new};

impl Store {
    /// Copies the CA into `dir` (which must not exist, or be empty) and returns how many
    /// certificates newcerts/ held.
    pub fn back_up(&self, dir: &Path) -> Result<usize, String> {
        let fail = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        if let Ok(mut entries) = fs::read_dir(dir)
            && entries.next().is_some()
        {
            return Err(format!(
                "{} is not empty: back up into a new directory",
                dir.display()
            ));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("newcerts"))
            .map_err(|e| fail(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| fail(dir, e))?;

        // Held until the copy is complete: nothing changes the database meanwhile.
        let _locked = self.lock().map_err(|e| e.to_string())?;
        let mut manifest = String::from(
            "getacert backup: each file here, and where it goes back (stop getacert first,\n\
             then copy each back with its owner and mode; see docs/deployment.md).\n\n",
        );
        let files: Vec<(PathBuf, bool)> = [
            (CaFile::Conf, true),
            (CaFile::PrivateKey, true),
            (CaFile::Certificate, true),
            (CaFile::Database, true),
            (CaFile::DatabaseAttr, false),
            (CaFile::Serial, !self.rand_serial),
            (CaFile::TokenSecret, false),
            (CaFile::Codes, false),
            (CaFile::CodeTries, false),
            // Released names: without it a restored CA would hold them again.
            (CaFile::Released, false),
            // Device names, added and last seen, pending renewals.
            (CaFile::Devices, false),
            // The front secret and the snippets init made beside it for nginx and Apache.
            (CaFile::FrontSecret, false),
            (CaFile::FrontSecretNginx, false),
            (CaFile::FrontSecretApache, false),
        ]
        .into_iter()
        .filter_map(|(f, required)| Some((self.path(f)?, required)))
        // Only when ca.conf names them: the default place of crlnumber is not copied.
        .chain(self.paths.crlnumber.iter().map(|c| (c.clone(), false)))
        .chain(self.paths.crl_file.iter().map(|c| (c.clone(), false)))
        .collect();
        for (src, required) in &files {
            if !src.exists() {
                if *required {
                    return Err(format!("{}: missing, nothing was backed up", src.display()));
                }
                continue;
            }
            let name = src
                .file_name()
                .ok_or_else(|| format!("{}: not a file name", src.display()))?;
            let dst = dir.join(name);
            if dst.exists() {
                return Err(format!(
                    "{} and another file are both called {}: back up by hand",
                    src.display(),
                    name.to_string_lossy()
                ));
            }
            copy_file(src, &dst)?;
            manifest.push_str(&format!("{}\t{}\n", name.to_string_lossy(), src.display()));
        }
        let mut n = 0;
        let newcerts = &self.paths.new_certs_dir;
        for cert in self.newcerts().map_err(|e| fail(newcerts, e))? {
            if cert.is_file {
                copy_file(&cert.path, &dir.join("newcerts").join(&cert.name))?;
                n += 1;
            }
        }
        manifest.push_str(&format!("newcerts/*.pem\t{}/\n", newcerts.display()));
        let restore = dir.join("RESTORE.txt");
        create_new(&restore, manifest.as_bytes(), 0o600)?;
        for d in [dir.join("newcerts"), dir.to_path_buf()] {
            File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(&d, e))?;
        }
        Ok(n)
    }
}

/// Copies `src` to the new file `dst` with `src`'s permission bits, and fsyncs it.
fn copy_file(src: &Path, dst: &Path) -> Result<(), String> {
    let mode = fs::metadata(src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .permissions()
        .mode()
        & 0o777;
    let content = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    create_new(dst, &content, mode)
}
