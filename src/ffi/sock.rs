//! Socket and account calls that std does not offer: finding the listening socket a
//! process manager handed over (fd 0 for mod_fcgid and spawn-fcgi, fd 3 for systemd socket
//! activation), looking a group name up, and creating a socket file under a strict umask.
//!
//! This module decides nothing: which socket to serve and what to do with it is
//! `web/server.rs`'s business.

use std::ffi::{CString, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};

/// A listening socket this process inherited.
#[derive(Debug)]
pub enum InheritedListener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// systemd's first passed descriptor (`SD_LISTEN_FDS_START`).
const SD_LISTEN_FDS_START: RawFd = 3;

/// Set once the inherited descriptor has been given an owner, so it never gets two.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// fd 3 when systemd passed sockets to this very process (`LISTEN_PID`, `LISTEN_FDS`).
fn systemd_fd() -> Option<RawFd> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let count: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    (pid == std::process::id() && count >= 1).then_some(SD_LISTEN_FDS_START)
}

/// The descriptor to serve on: systemd's when it is meant for us, else fd 0.
fn inherited_fd() -> RawFd {
    systemd_fd().unwrap_or(libc::STDIN_FILENO)
}

/// Whether `fd` is an open socket in the listening state.
fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, a live c_int on our
    // stack; a closed descriptor or one that is not a socket only makes it fail.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut value).cast::<c_void>(),
            &mut len,
        )
    };
    rc == 0 && value != 0
}

/// The address family of socket `fd` (`AF_UNIX`, `AF_INET`, `AF_INET6`).
fn socket_family(fd: RawFd) -> io::Result<libc::sa_family_t> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into `storage`, which is that large.
    let rc = unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `storage` was zeroed (a valid sockaddr_storage) and then filled by the kernel.
    Ok(unsafe { storage.assume_init() }.ss_family)
}

/// True when this process was started with a listening socket to serve: fd 0 (mod_fcgid,
/// spawn-fcgi) or systemd socket activation meant for this process.
pub fn inherited_listener_available() -> bool {
    !TAKEN.load(Ordering::SeqCst) && is_listening_socket(inherited_fd())
}

/// Takes ownership of the inherited listening socket, in blocking mode with close-on-exec.
/// `Ok(None)`: there is none. Only the first call can return one.
pub fn take_inherited_listener() -> io::Result<Option<InheritedListener>> {
    let fd = inherited_fd();
    if !is_listening_socket(fd) || TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: `fd` is open (getsockopt succeeded on it), the process manager gave it to
    // us, std never takes ownership of fd 0 or 3, and `TAKEN` makes this the only owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl(F_SETFD) on a descriptor we own touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let listener = match libc::c_int::from(socket_family(fd)?) {
        libc::AF_UNIX => InheritedListener::Unix(UnixListener::from(owned)),
        libc::AF_INET | libc::AF_INET6 => InheritedListener::Tcp(TcpListener::from(owned)),
        family => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("inherited socket on fd {fd} has address family {family}, not unix or inet"),
            ));
        }
    };
    match &listener {
        InheritedListener::Unix(l) => l.set_nonblocking(false)?,
        InheritedListener::Tcp(l) => l.set_nonblocking(false)?,
    }
    Ok(Some(listener))
}

/// The id of group `name`, `Ok(None)` when there is no such group.
pub fn group_id(name: &str) -> io::Result<Option<u32>> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name contains a NUL byte"))?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        let mut group = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer points to live memory of the advertised size: `c_name` is
        // NUL-terminated, `group` and `result` are on our stack, `buf` has `buf.len()` bytes.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                group.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        match rc {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 if result.is_null() => return Ok(None),
            // SAFETY: on success `result` points to `group`, which getgrnam_r filled.
            0 => return Ok(Some(unsafe { (*result).gr_gid })),
            libc::ENOENT | libc::ESRCH => return Ok(None),
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

/// Runs `f` with the process umask made at least as strict as `mask`, then restores it.
/// The umask is process-wide: files other threads create meanwhile only get more private.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    let mask = mask as libc::mode_t;
    // SAFETY: umask cannot fail and touches no memory (same for the two calls below).
    let old = unsafe { libc::umask(mask) };
    // SAFETY: as above.
    unsafe { libc::umask(old | mask) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    out
}

/// Raises the soft limit on open descriptors to the hard limit (capped at 65,536, which
/// is more than the daemon ever holds) and returns the soft limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `limit`, a live value on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = limit.rlim_max.min(65_536);
    if wanted > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from `raised`, a live value on our stack.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    Ok(limit.rlim_cur)
}
