//! `getacert backup DIR`: a consistent copy of the CA, taken under the database lock so
//! that no enrollment, revocation or `flock`-wrapped `openssl ca` is half done in it.
//!
//! Everything ca.conf names is copied flat into DIR (the key keeps mode 0600, DIR is
//! 0700), the certificates of newcerts/ into DIR/newcerts/, and DIR/RESTORE.txt says
//! where each file came from. Restoring is copying them back (docs/deployment.md).

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::app::App;
use crate::ca::store::CaFile;

/// Copies the CA into `dir` (which must not exist, or be empty) and returns how many
/// certificates newcerts/ held.
pub fn backup(app: &App, dir: &Path) -> Result<usize, String> {
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

    let config = &app.config;
    let p = &config.paths;
    let attr = PathBuf::from(format!("{}.attr", p.database.display()));
    let in_dir = |f: CaFile| app.store.path(f).unwrap_or_default();
    let codes = in_dir(CaFile::Codes);
    let tries = in_dir(CaFile::CodeTries);
    let released = in_dir(CaFile::Released);
    let devices = in_dir(CaFile::Devices);
    // The front secret and the snippets init made beside it for nginx and Apache.
    let fronts: Vec<PathBuf> = config
        .front_secret_file
        .iter()
        .flat_map(|f| ["", ".nginx", ".apache"].map(|ext| PathBuf::from(format!("{}{ext}", f.display()))))
        .collect();
    // Held until the copy is complete: nothing changes the database meanwhile.
    let _locked = app.store.lock().map_err(|e| e.to_string())?;
    let mut manifest = String::from(
        "getacert backup: each file here, and where it goes back (stop getacert first,\n\
         then copy each back with its owner and mode; see docs/deployment.md).\n\n",
    );
    let mut files: Vec<(&Path, bool)> = vec![
        (&config.file, true),
        (&p.private_key, true),
        (&p.certificate, true),
        (&p.database, true),
        (&attr, false),
        (&p.serial, !config.rand_serial),
        (&p.secret_file, false),
        (&codes, false),
        (&tries, false),
        // Released names: without it a restored CA would hold them again.
        (&released, false),
        // Device names, times and renewals waiting for their new certificate.
        (&devices, false),
    ];
    files.extend(fronts.iter().map(|f| (f.as_path(), false)));
    if let Some(c) = &p.crlnumber {
        files.push((c, false));
    }
    if let Some(c) = &p.crl_file {
        files.push((c, false));
    }
    for (src, required) in files {
        if !src.exists() {
            if required {
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
    let entries = fs::read_dir(&p.new_certs_dir).map_err(|e| fail(&p.new_certs_dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail(&p.new_certs_dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "pem") && path.is_file() {
            copy_file(&path, &dir.join("newcerts").join(entry.file_name()))?;
            n += 1;
        }
    }
    manifest.push_str(&format!("newcerts/*.pem\t{}/\n", p.new_certs_dir.display()));
    let restore = dir.join("RESTORE.txt");
    crate::admin::write_new(&restore, manifest.as_bytes(), 0o600)?;
    for d in [dir.join("newcerts"), dir.to_path_buf()] {
        File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(&d, e))?;
    }
    Ok(n)
}

/// Copies `src` to the new file `dst` with `src`'s permission bits, and fsyncs it.
fn copy_file(src: &Path, dst: &Path) -> Result<(), String> {
    let mode = fs::metadata(src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .permissions()
        .mode()
        & 0o777;
    let content = fs::read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    crate::admin::write_new(dst, &content, mode)
}
