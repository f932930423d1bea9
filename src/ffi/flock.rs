//! `flock(2)` on an open file: what `File::lock`/`try_lock` do on Linux, without
//! needing Rust 1.89, and on a descriptor opened read-only (flock needs no write access,
//! so the lock file never has to be writable by whoever else takes it).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Takes the exclusive lock without waiting: `Ok(true)` when taken, `Ok(false)` when
/// another open file description holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock takes a descriptor and flags and touches no memory of ours; the
    // descriptor is open for as long as `file` is borrowed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Releases the lock (closing the file releases it too).
pub fn unlock(file: &File) -> io::Result<()> {
    // SAFETY: as above: a live descriptor and constant flags, no memory passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
