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

    /// A copy of the process's descriptor `target` (`pidfd_getfd`, Linux ≥
    /// 5.6; needs ptrace rights over it, which root has). The copy refers to
    /// the same open file and is close-on-exec.
    pub fn get_fd(&self, target: i32) -> io::Result<OwnedFd> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_getfd takes a pidfd, a descriptor number and flags
        // and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, self.fd.as_raw_fd(), target, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    /// Send `sig` to exactly this process (not to whoever reuses its pid);
    /// `Ok(false)` if it has already exited.
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal(pidfd, sig, NULL info, 0 flags).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(false),
                _ => Err(e),
            };
        }
        Ok(true)
    }

    /// Whether the process has exited (a zombie counts as exited).
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

    /// Block up to `timeout` for the process to exit; true if it has.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(60_000) as i32) };
            if rc > 0 {
                return true;
            }
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return false;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
        }
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

    #[test]
    fn copies_a_descriptor_of_a_process() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let (mut r, w) = crate::sys::process::pipe().unwrap();
        let me = PidFd::open(std::process::id()).unwrap().unwrap();
        let copy = me.get_fd(w.as_raw_fd()).unwrap();
        assert_ne!(copy.as_raw_fd(), w.as_raw_fd());
        drop(w);
        // The copy is the same open file: what it writes, the pipe carries.
        std::fs::File::from(copy).write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
        assert!(me.get_fd(1_000_000).is_err(), "no such descriptor");
    }

    #[test]
    fn signals_exactly_its_process_and_waits_for_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).unwrap().unwrap();
        assert!(!fd.wait_exited(Duration::from_millis(20)));
        assert!(fd.signal(nix::sys::signal::Signal::SIGKILL).unwrap());
        assert!(fd.wait_exited(Duration::from_secs(5)));
        child.wait().unwrap();
        // Reaped: the pidfd still names it, and says it is gone.
        assert!(!fd.signal(nix::sys::signal::Signal::SIGKILL).unwrap());
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
