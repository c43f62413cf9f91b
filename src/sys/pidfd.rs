//! Waiting for any process to exit (not only a child) without polling:
//! a pidfd becomes readable when its process terminates (Linux ≥ 5.3).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

/// A handle on one process that outlives pid reuse: once opened, it refers
/// to that process only.
#[derive(Debug)]
pub struct PidFd {
    fd: OwnedFd,
}

impl PidFd {
    /// Open a pidfd for `pid`. `Ok(None)` if no such process exists (it has
    /// already exited and been reaped).
    pub fn open(pid: u32) -> io::Result<Option<PidFd>> {
        let pid_t = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: the syscall returned a fresh descriptor that we now own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Some(PidFd { fd }))
    }

    /// Whether the process has exited (a zombie counts as exited).
    #[cfg(test)]
    pub fn exited(&self) -> bool {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, timeout 0.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }

    /// Wait until the process exits or `timeout` passes; true if it exited.
    pub async fn exited_within(self, timeout: Duration) -> io::Result<bool> {
        // SAFETY: the AsyncFd owns the descriptor and it is neither closed
        // nor replaced while registered.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.fd,
                tokio::io::Interest::READABLE,
            )?
        };
        match tokio::time::timeout(timeout, fd.readable()).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(false),
        }
    }
}

/// Wait up to `timeout` for `pid` to exit; true if it is gone (or was
/// already). Errors opening the pidfd count as "not known to have exited".
pub async fn wait_exit(pid: u32, timeout: Duration) -> bool {
    match PidFd::open(pid) {
        Ok(None) => true,
        Ok(Some(fd)) => fd.exited_within(timeout).await.unwrap_or(false),
        Err(e) => {
            tracing::warn!(pid, error = %e, "pidfd_open");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sees_a_process_exit_without_polling() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).unwrap().expect("process exists");
        assert!(!fd.exited());
        let t0 = std::time::Instant::now();
        assert!(fd.exited_within(Duration::from_secs(10)).await.unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn times_out_on_a_live_process_and_knows_a_gone_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(!wait_exit(pid, Duration::from_millis(50)).await);
        child.kill().unwrap();
        child.wait().unwrap();
        // Reaped: no such process any more.
        assert!(wait_exit(pid, Duration::from_millis(50)).await);
    }
}
