//! Lock-free facts about the CA directory's files, for the admin commands that inspect
//! it (`check`, acting as the CA's owner, `backup`): owner and mode, a file's text as it
//! is now, the certificates in newcerts/. Nothing here changes a file, and nothing here
//! is a decision that changes the database: those read through [`super::Locked`].

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::{CaFile, Store};

/// Owner, group and permission bits of a file, and whether it is a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileFacts {
    pub uid: u32,
    pub gid: u32,
    /// `st_mode`, file type bits included.
    pub mode: u32,
    pub is_dir: bool,
}

/// One `*.pem` entry of newcerts/.
#[derive(Debug)]
pub struct NewCert {
    /// The file name, `SERIAL.pem` when getacert or `openssl ca` wrote it.
    pub name: OsString,
    pub path: PathBuf,
    /// A regular file (not a directory or a dangling link).
    pub is_file: bool,
}

/// The error for a file ca.conf leaves unset.
fn unset(file: CaFile) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{file:?} is not configured"))
}

impl Store {
    /// Owner and mode of `file` (following symbolic links, as `openssl ca` opens them).
    pub fn stat(&self, file: CaFile) -> io::Result<FileFacts> {
        let path = self.path(file).ok_or_else(|| unset(file))?;
        let m = fs::metadata(path)?;
        Ok(FileFacts {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode(),
            is_dir: m.is_dir(),
        })
    }

    /// The text of `file` now, without the lock: for diagnostics that must work while
    /// another process holds it. Under the lock, read with [`super::Locked::read`].
    pub fn peek(&self, file: CaFile) -> io::Result<String> {
        fs::read_to_string(self.path(file).ok_or_else(|| unset(file))?)
    }

    /// The `*.pem` entries of newcerts/, in directory order.
    pub fn newcerts(&self) -> io::Result<Vec<NewCert>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.paths.new_certs_dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "pem") {
                out.push(NewCert {
                    name: entry.file_name(),
                    is_file: path.is_file(),
                    path,
                });
            }
        }
        Ok(out)
    }
}
