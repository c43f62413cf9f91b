//! A pseudo-terminal for `lab exec -t`, as a container runtime gives one:
//! the command becomes a session leader with the pty's slave side as its
//! controlling terminal (so an interactive shell owns its job control), and
//! this side relays between the user's terminal (in raw mode meanwhile) and
//! the pty's master side, following window-size changes.

use nix::errno::Errno;
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use super::process::Exit;

/// How often the relay looks for the command's exit and a new window size
/// when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// Both sides of a new pty (each close-on-exec: the command gets the slave
/// through `dup2`, which clears the flag on the copies).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

fn winsize(fd: RawFd) -> Option<libc::winsize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the local struct.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

fn set_cloexec(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map(drop)
        .map_err(io::Error::from)
}

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(io::stdin()).unwrap_or(false)
}

impl Pty {
    /// A new pty of the devpts instance whose `ptmx` is at `ptmx` (a pod's
    /// own `/dev/pts`, reached through `/proc/<pid>/root`, so the command
    /// finds its terminal as `/dev/pts/N` there, as in a container), sized
    /// like the terminal on stdin. Falls back to the host's devpts.
    pub fn open_in(ptmx: &std::path::Path) -> io::Result<Pty> {
        match Self::open_ptmx(ptmx) {
            Ok(p) => Ok(p),
            Err(e) => {
                tracing::debug!(ptmx = %ptmx.display(), error = %e, "using the host's devpts");
                Self::open()
            }
        }
    }

    fn open_ptmx(ptmx: &std::path::Path) -> io::Result<Pty> {
        use std::os::unix::fs::OpenOptionsExt;
        let master: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(ptmx)?
            .into();
        let unlock: libc::c_int = 0;
        // SAFETY: ioctls on a descriptor we own with pointers to locals;
        // TIOCGPTPEER returns a new descriptor (or -1).
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
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        };
        if let Some(ws) = winsize(0) {
            // SAFETY: TIOCSWINSZ reads the local struct.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
        Ok(Pty { master, slave })
    }

    /// A new pty of the host's devpts, sized like the terminal on stdin.
    pub fn open() -> io::Result<Pty> {
        let ws = winsize(0);
        let p = nix::pty::openpty(ws.as_ref(), None::<&Termios>).map_err(io::Error::from)?;
        set_cloexec(&p.master)?;
        set_cloexec(&p.slave)?;
        Ok(Pty {
            master: p.master,
            slave: p.slave,
        })
    }
}

/// The user's terminal in raw mode until dropped (then restored), so every
/// key reaches the command's pty, whose own line discipline interprets it.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}

fn exit_of(s: WaitStatus) -> Option<Exit> {
    match s {
        WaitStatus::Exited(_, c) => Some(Exit::Code(c)),
        WaitStatus::Signaled(_, sig, _) => Some(Exit::Signal(sig as i32)),
        _ => None,
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut p = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
                let _ = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(100u16));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Relay stdin → `master` and `master` → stdout until `child` (the process
/// holding the other side) exits; returns how it ended. Output still in the
/// pty when it exits is written out first.
pub fn relay(master: &OwnedFd, child: u32) -> io::Result<Exit> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let pid = Pid::from_raw(child as i32);
    let mfd = master.as_fd();
    {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let fl = OFlag::from_bits_truncate(fcntl(mfd, FcntlArg::F_GETFL)?);
        fcntl(mfd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    }
    let stdin = io::stdin();
    let mut out = io::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    let mut stdin_open = true;
    let mut master_open = true;
    let mut size = winsize(0);
    // Copy what the pty holds to stdout; false once its other side is closed.
    let drain = |out: &mut io::Stdout, buf: &mut [u8]| -> io::Result<bool> {
        loop {
            match nix::unistd::read(mfd, buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(false),
                Ok(n) => {
                    out.write_all(&buf[..n])?;
                    out.flush()?;
                }
                Err(Errno::EAGAIN) => return Ok(true),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    };
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(s) => {
                if let Some(e) = exit_of(s) {
                    if master_open {
                        drain(&mut out, &mut buf)?;
                    }
                    return Ok(e);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        if !master_open {
            // Every holder of the slave side is gone: only the exit is left.
            return super::process::wait_child(child);
        }
        let mut fds = vec![PollFd::new(mfd, PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(TICK.as_millis() as u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |f: &PollFd| {
            f.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let (m_ready, in_ready) = (ready(&fds[0]), fds.get(1).is_some_and(ready));
        if m_ready {
            master_open = drain(&mut out, &mut buf)?;
        }
        if in_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                // End of input: the terminal's end-of-file character, as a
                // user typing ^D.
                Ok(0) => {
                    stdin_open = false;
                    write_all_fd(mfd, &[4])?;
                }
                Ok(n) => write_all_fd(mfd, &buf[..n])?,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
        let now = winsize(0);
        if let Some(ws) = now
            && size.is_none_or(|s| (s.ws_row, s.ws_col) != (ws.ws_row, ws.ws_col))
        {
            // SAFETY: TIOCSWINSZ reads the local struct.
            unsafe { libc::ioctl(mfd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
            size = now;
        }
    }
}
