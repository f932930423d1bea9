//! Admin commands run as root act as the CA directory's owner: every file they write
//! (index.txt, crl.pem, crlnumber, serial, the lock file, getacert.codes) stays that
//! user's, so the daemon, which runs as that user, can still write it afterwards.

use std::path::Path;

use crate::ca::store::{CaFile, Store};
use crate::config::Config;
use crate::ffi::privs;

/// As root, becomes the owner of the directory that holds the database (when that is
/// not root) and says so on stderr; as anyone else, does nothing.
pub fn act_as_ca_owner(config_path: &Path) -> Result<(), String> {
    if privs::euid() != 0 {
        return Ok(());
    }
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let store = Store::new(&config);
    let dir = store.path(CaFile::Directory).unwrap_or_default();
    let meta = store
        .stat(CaFile::Directory)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    if meta.uid == 0 {
        return Ok(());
    }
    privs::become_user(meta.uid, meta.gid).map_err(|e| {
        format!(
            "cannot act as {}'s owner (uid {}): {e}; run the command as that user: runuser -u USER -- getacert …",
            dir.display(),
            meta.uid
        )
    })?;
    eprintln!(
        "getacert: acting as uid {} gid {}, the owner of {}",
        meta.uid,
        meta.gid,
        dir.display()
    );
    Ok(())
}
