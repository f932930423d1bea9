//! Becoming another user: what an admin command run as root does to act as the CA
//! directory's owner, so that every file it writes stays that owner's.

use std::io;

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Drops every supplementary group, then sets the real, effective and saved group and
/// user ids to `gid`/`uid`, and checks that root cannot be regained.
pub fn become_user(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups with a count of 0 reads no memory (the pointer may be null).
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setresgid/setresuid take plain integers and touch no memory of ours.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; this must fail now that root is given up.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("could still become root after giving it up"));
    }
    Ok(())
}
