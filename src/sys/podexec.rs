//! Starting a command inside a pod from the daemon (the Kubernetes API's
//! `pods/exec`, which `lab exec` and kubectl use): the pod's namespaces and
//! the container's privileges, with the command's stdio given as
//! descriptors (pipes, or a pseudo-terminal), without touching the caller's
//! signal dispositions, so a multi-threaded daemon can run many at once.
//! The caller waits for the exit code on a blocking thread
//! ([`PodProcess::wait`]).

use super::process::{Execve, Exit, Prepared, Security, Stage, pipe, wait_child};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The command's stdio: either a terminal (the slave side of a pty) or
/// separate descriptors; a missing one is `/dev/null`.
#[derive(Debug)]
pub enum Stdio {
    Tty(OwnedFd),
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    },
}

/// What runs the command: the pod's namespaces and the container's view.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// A process whose UTS, IPC, network, PID and mount namespaces to join
    /// (the pod's shim).
    pub ns_pid: u32,
    /// The container's process in the pod's PID namespace (its mount
    /// namespace has the container's volumes), if it runs.
    pub container_pid: Option<u32>,
    pub env: &'a [(String, String)],
    pub working_dir: Option<&'a Path>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub security: &'a Security,
}

/// A started command. Dropping it does not stop the command.
#[derive(Debug)]
pub struct PodProcess {
    /// The helper that joined the namespaces and waits for the command
    /// (our child; its exit code is the command's).
    helper: u32,
    errors: File,
    pids: File,
    program: String,
    working_dir: String,
    /// The command's host PID once known, cleared when the helper is reaped
    /// (so a signal never reaches a recycled PID).
    command: Arc<Mutex<Option<i32>>>,
}

/// Sends a signal to a started command while it runs.
#[derive(Debug, Clone)]
pub struct Killer {
    command: Arc<Mutex<Option<i32>>>,
}

impl Killer {
    pub fn kill(&self, sig: nix::sys::signal::Signal) {
        let g = self.command.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pid) = *g {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }
}

fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

/// Start `argv` in the pod. Errors before the fork come back here; errors
/// in the child (entering the namespaces, exec) come back from
/// [`PodProcess::wait`].
pub fn spawn(t: &Target<'_>, argv: &[String], stdio: Stdio) -> io::Result<PodProcess> {
    if argv.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    }
    let privileges = Prepared::new(t.security, t.uid, t.gid)?;
    let container_mnt = t
        .container_pid
        .map(|p| cstr(format!("/proc/{p}/ns/mnt")))
        .transpose()?;
    let open = |n: &str| {
        let p = format!("/proc/{}/ns/{n}", t.ns_pid);
        File::open(&p).map_err(|e| io::Error::new(e.kind(), format!("opening {p}: {e}")))
    };
    // mnt last: after it, /proc is the pod's.
    let ns: [(File, libc::c_int); 5] = [
        (open("uts")?, libc::CLONE_NEWUTS),
        (open("ipc")?, libc::CLONE_NEWIPC),
        (open("net")?, libc::CLONE_NEWNET),
        (open("pid")?, libc::CLONE_NEWPID),
        (open("mnt")?, libc::CLONE_NEWNS),
    ];
    // What a runtime adds (PATH, HOME, TERM on a terminal), as the
    // container itself got.
    let env = super::process::exec_env(t.env, t.uid.unwrap_or(0), matches!(stdio, Stdio::Tty(_)));
    let cmd = Execve::new(argv, &env)?;
    let wd = t.working_dir.map(cstr).transpose()?;
    let null = File::options().read(true).write(true).open("/dev/null")?;
    let (tty, fds): (RawFd, [RawFd; 3]) = match &stdio {
        Stdio::Tty(t) => (t.as_raw_fd(), [-1; 3]),
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let f = |o: &Option<OwnedFd>| o.as_ref().map_or(null.as_raw_fd(), |f| f.as_raw_fd());
            (-1, [f(stdin), f(stdout), f(stderr)])
        }
    };
    let (err_r, err_w) = pipe()?;
    let (pid_r, pid_w) = pipe()?;
    let (err_wfd, pid_wfd) = (err_w.as_raw_fd(), pid_w.as_raw_fd());
    // Every other descriptor of this (multi-threaded) process closes in the
    // helper: it must not hold the bridge's pipe ends (stdin would never
    // see EOF) or anything else of the daemon's.
    let mut keep: Vec<libc::c_uint> = [err_wfd, pid_wfd, tty, fds[0], fds[1], fds[2]]
        .iter()
        .filter(|fd| **fd >= 0)
        .map(|fd| *fd as libc::c_uint)
        .collect();
    keep.sort_unstable();
    keep.dedup();

    // Report a failure from a child: [stage, errno as 4 bytes], then exit.
    fn fail(fd: RawFd, stage: u8, errno: Option<i32>) -> ! {
        // SAFETY: write(2)/_exit(2) are async-signal-safe; errno is read first.
        unsafe {
            let e = errno.unwrap_or(*libc::__errno_location());
            let b = e.to_ne_bytes();
            let msg = [stage, b[0], b[1], b[2], b[3]];
            libc::write(fd, msg.as_ptr().cast(), msg.len());
            libc::_exit(126);
        }
    }

    // SAFETY: between fork and exit/exec the children only make raw,
    // async-signal-safe syscalls on memory prepared above.
    let a = unsafe { libc::fork() };
    if a == 0 {
        unsafe {
            for (f, kind) in &ns {
                if libc::setns(f.as_raw_fd(), *kind) < 0 {
                    fail(err_wfd, 1, None);
                }
            }
            if let Some(p) = &container_mnt {
                // Best effort: a container that just exited leaves the pod's view.
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::setns(fd, libc::CLONE_NEWNS);
                    libc::close(fd);
                }
            }
            close_all_but(&keep);
            let b = libc::fork();
            if b < 0 {
                fail(err_wfd, 2, None);
            }
            if b == 0 {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                for s in [libc::SIGINT, libc::SIGQUIT, libc::SIGPIPE, libc::SIGHUP] {
                    libc::signal(s, libc::SIG_DFL);
                }
                if tty >= 0 {
                    if let Err(e) = crate::sys::pty::become_session_leader_on(tty) {
                        fail(err_wfd, 4, Some(e));
                    }
                } else {
                    // Its own process group, as a container runtime's exec.
                    libc::setpgid(0, 0);
                    for (target, fd) in fds.iter().enumerate() {
                        if libc::dup2(*fd, target as libc::c_int) < 0 {
                            fail(err_wfd, 4, None);
                        }
                    }
                }
                if let Some(wd) = &wd
                    && libc::chdir(wd.as_ptr()) < 0
                {
                    fail(err_wfd, 3, None);
                }
                if let Err((stage, e)) = privileges.apply_in_child() {
                    fail(err_wfd, 10 + stage as u8, Some(e));
                }
                fail(err_wfd, 5, Some(cmd.exec()));
            }
            // The command's PID as the host sees it (we are still in the
            // host's PID namespace ourselves).
            let bytes = b.to_ne_bytes();
            libc::write(pid_wfd, bytes.as_ptr().cast(), bytes.len());
            libc::close(pid_wfd);
            let mut status = 0;
            while libc::waitpid(b, &mut status, 0) < 0 {
                if *libc::__errno_location() != libc::EINTR {
                    libc::_exit(126);
                }
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                126
            };
            libc::_exit(code);
        }
    }
    if a < 0 {
        return Err(io::Error::last_os_error());
    }
    // The child has its copies; ours go so EOFs reach the bridge.
    drop((err_w, pid_w, stdio, null));
    Ok(PodProcess {
        helper: a as u32,
        errors: err_r,
        pids: pid_r,
        program: argv[0].clone(),
        working_dir: t
            .working_dir
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        command: Arc::new(Mutex::new(None)),
    })
}

/// Close every descriptor from 3 up except `keep` (sorted).
///
/// # Safety
/// Async-signal-safe (raw `close_range`/`close`); for a forked child only.
unsafe fn close_all_but(keep: &[libc::c_uint]) {
    // SAFETY: closing descriptors; the caller keeps what it still needs.
    unsafe fn range(lo: libc::c_uint, hi: libc::c_uint) {
        if lo > hi {
            return;
        }
        // SAFETY: see above.
        unsafe {
            if libc::syscall(libc::SYS_close_range, lo, hi, 0) < 0 {
                // Kernels before 5.9: close one by one (bounded).
                let mut fd = lo;
                while fd <= hi.min(65535) {
                    libc::close(fd as libc::c_int);
                    fd += 1;
                }
            }
        }
    }
    let mut lo: libc::c_uint = 3;
    for &k in keep {
        if k >= lo {
            // SAFETY: see above.
            unsafe { range(lo, k - 1) };
            lo = k + 1;
        }
    }
    // SAFETY: see above.
    unsafe { range(lo, libc::c_uint::MAX) };
}

impl PodProcess {
    /// A handle that signals the command while it runs.
    pub fn killer(&self) -> Killer {
        Killer {
            command: self.command.clone(),
        }
    }

    /// Block until the command ends: its exit code (128 + signal if
    /// killed), or why it could not start.
    pub fn wait(mut self) -> io::Result<i32> {
        let mut pid = [0u8; 4];
        if self.pids.read_exact(&mut pid).is_ok() {
            *self.command.lock().unwrap_or_else(|e| e.into_inner()) = Some(i32::from_ne_bytes(pid));
        }
        // Wait without reaping, forget the command's PID, then reap: a
        // signal sent through a Killer can never reach a recycled PID.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waitid writes one siginfo_t.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    self.helper as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        *self.command.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let code = wait_child(self.helper).map(Exit::code)?;
        let mut msg = Vec::new();
        let _ = self.errors.read_to_end(&mut msg);
        if msg.len() >= 5 {
            let errno = i32::from_ne_bytes([msg[1], msg[2], msg[3], msg[4]]);
            let e = io::Error::from_raw_os_error(errno);
            let what = match msg[0] {
                1 => "entering the pod's namespaces".to_string(),
                2 => "fork".to_string(),
                3 => format!("chdir {}", self.working_dir),
                4 => "setting up the command's stdio".to_string(),
                10 => Stage::Capabilities.describe().to_string(),
                11 => Stage::NoNewPrivs.describe().to_string(),
                12 => Stage::Seccomp.describe().to_string(),
                13 => Stage::Identity.describe().to_string(),
                _ => format!("exec {:?}", self.program),
            };
            return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
        }
        Ok(code)
    }
}

/// A pipe end or a pty master driven by tokio (non-blocking, edge
/// readiness). A pty master's `EIO` (every slave closed) reads as EOF.
#[derive(Debug)]
pub struct AsyncFdIo(tokio::io::unix::AsyncFd<OwnedFd>);

impl AsyncFdIo {
    pub fn new(fd: OwnedFd) -> io::Result<AsyncFdIo> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: the AsyncFd owns the descriptor; it is neither closed nor
        // replaced while registered.
        Ok(AsyncFdIo(unsafe {
            tokio::io::unix::AsyncFd::register(fd)?
        }))
    }

    pub fn fd(&self) -> &OwnedFd {
        self.0.get_ref()
    }

    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut g = self.0.readable().await?;
            match g.try_io(|f| nix::unistd::read(f.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(r) => return r,
                Err(_) => continue,
            }
        }
    }

    pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let mut g = self.0.writable().await?;
            match g.try_io(|f| nix::unistd::write(f.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_) => continue,
            }
        }
        Ok(())
    }
}
