//! "I am ready" from a daemon to the command that started it, as an event:
//! the starter passes the write end of a pipe (`LAB_READY_FD`); the daemon
//! writes one line once it serves, and the starter's read returns at once.
//! If the daemon dies first, the pipe's last writer is gone and the read
//! returns end-of-file instead: no polling either way.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The environment variable carrying the write end's descriptor number.
pub const ENV: &str = "LAB_READY_FD";

/// The starter's side.
pub struct ReadyPipe {
    read: File,
    write: Option<OwnedFd>,
}

/// What the starter learned.
#[derive(Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The daemon exited (or closed the pipe) without saying it was ready.
    Gone,
    TimedOut,
}

impl ReadyPipe {
    pub fn new() -> io::Result<ReadyPipe> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok(ReadyPipe {
            read: File::from(r),
            write: Some(w),
        })
    }

    /// Let `cmd` inherit the write end (only it: the descriptor stays
    /// close-on-exec in every other child) and tell it the number.
    pub fn pass_to(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let fd = self.write.as_ref().map(|w| w.as_raw_fd()).unwrap_or(-1);
        cmd.env(ENV, fd.to_string());
        // SAFETY: fcntl on a descriptor number is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Wait for the daemon's word. Call after spawning (this drops the
    /// starter's own write end, so end-of-file means the daemon is gone).
    pub fn wait(mut self, timeout: Duration) -> io::Result<Readiness> {
        self.write = None;
        if !super::process::wait_readable(&self.read, timeout)? {
            return Ok(Readiness::TimedOut);
        }
        let mut buf = [0u8; 16];
        let n = self.read.read(&mut buf)?;
        Ok(if n == 0 {
            Readiness::Gone
        } else {
            Readiness::Ready
        })
    }
}

/// The daemon's side: take the descriptor named in the environment (and
/// make sure no child of the daemon inherits it).
pub fn take_from_env() -> Option<File> {
    let fd: i32 = std::env::var(ENV).ok()?.parse().ok()?;
    // SAFETY: removing a variable before any other thread reads the
    // environment (called first thing in the daemon).
    unsafe { std::env::remove_var(ENV) };
    // SAFETY: F_GETFD on an arbitrary number only checks it is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the starter passed us this descriptor for us to own.
    let f = unsafe { File::from_raw_fd(fd) };
    // SAFETY: setting close-on-exec on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(f)
}

/// Tell the starter the daemon serves (and close the pipe).
pub fn signal(f: Option<File>) {
    if let Some(mut f) = f
        && let Err(e) = f.write_all(b"ready\n")
    {
        tracing::debug!(error = %e, "the starter is gone; nobody to tell we are ready");
    }
}
