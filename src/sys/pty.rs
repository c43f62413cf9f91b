//! Pseudo-terminals for commands run in a pod with a TTY (`kubectl exec
//! -t`): open a pair, size it, and make the slave a child's controlling
//! terminal (new session, `TIOCSCTTY`, stdio). One place for this setup,
//! so every path that runs a command on a terminal does it the same way.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A pseudo-terminal pair; both descriptors close-on-exec.
#[derive(Debug)]
pub struct Pty {
    /// The side the bridge reads output from and writes input to.
    pub master: OwnedFd,
    /// The side the command gets as its terminal (stdin, stdout, stderr).
    pub slave: OwnedFd,
}

/// Open a pseudo-terminal pair (`/dev/ptmx`), optionally sized.
pub fn open(size: Option<(u16, u16)>) -> io::Result<Pty> {
    // SAFETY: plain syscalls; every returned descriptor is owned at once.
    let master = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: `master` is a valid ptmx descriptor.
    unsafe {
        if libc::grantpt(master.as_raw_fd()) != 0 || libc::unlockpt(master.as_raw_fd()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: the buffer is writable for its whole length.
    let r = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated path into `name`.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    // SAFETY: opening the slave path just named by the kernel.
    let slave = unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    if let Some((cols, rows)) = size {
        set_size(&master, cols, rows)?;
    }
    Ok(Pty { master, slave })
}

/// A pseudo-terminal pair of the devpts instance whose `ptmx` is at
/// `ptmx` — a pod's own `/dev/pts`, reached through `/proc/PID/root`, so
/// the command finds its terminal as `/dev/pts/N` in the pod (`tty`
/// names it), as in a container — optionally sized. Falls back to the
/// host's devpts ([`open`]) when the pod has none.
pub fn open_in(ptmx: &std::path::Path, size: Option<(u16, u16)>) -> io::Result<Pty> {
    let pod = || -> io::Result<Pty> {
        use std::os::unix::fs::OpenOptionsExt;
        let master: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(ptmx)?
            .into();
        let unlock: libc::c_int = 0;
        // SAFETY: ioctls on a descriptor we own with a pointer to a local;
        // TIOCGPTPEER returns a new descriptor (or -1), owned at once.
        let slave = unsafe {
            if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::ioctl(
                master.as_raw_fd(),
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        if let Some((cols, rows)) = size {
            set_size(&master, cols, rows)?;
        }
        Ok(Pty { master, slave })
    };
    match pod() {
        Ok(p) => Ok(p),
        Err(e) => {
            tracing::debug!(ptmx = %ptmx.display(), error = %e, "using the host's devpts");
            open(size)
        }
    }
}

/// Set a terminal's window size (`TIOCSWINSZ`); the foreground process
/// group gets `SIGWINCH`.
pub fn set_size(fd: &impl AsRawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// In a forked child, before exec: start a new session, make `tty` its
/// controlling terminal and the child's stdin, stdout and stderr. Returns
/// the errno on failure.
///
/// # Safety
/// Only async-signal-safe syscalls: callable between `fork` and `exec` of a
/// multi-threaded parent.
pub unsafe fn become_session_leader_on(tty: RawFd) -> Result<(), i32> {
    let errno = || unsafe { *libc::__errno_location() };
    // SAFETY (whole block): raw syscalls on a descriptor the caller owns.
    unsafe {
        if libc::setsid() < 0 {
            return Err(errno());
        }
        if libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
            return Err(errno());
        }
        for target in 0..3 {
            if libc::dup2(tty, target) < 0 {
                return Err(errno());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_pair_carries_bytes_and_a_size() {
        let p = open(Some((100, 30))).unwrap();
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize.
        assert_eq!(
            unsafe { libc::ioctl(p.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) },
            0
        );
        assert_eq!((ws.ws_col, ws.ws_row), (100, 30));
        let mut m = std::fs::File::from(p.master);
        let mut s = std::fs::File::from(p.slave);
        m.write_all(b"hi\n").unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi\n");
    }
}
