//! Low-level process and namespace syscalls for the pod shim: fork, setns,
//! unshare, mounts, exec and reaping. Every `unsafe` the shim needs lives
//! here; callers get safe functions with the preconditions written down.
//!
//! Code that runs between `fork` and `exec` in a child of a process that may
//! have other threads only makes raw syscalls on data prepared before the
//! fork (no allocation, no locks).

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
pub use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use super::security::{Prepared, Security, Stage};

/// Default `PATH` for programs started with an environment that has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn ctx(what: impl std::fmt::Display, e: Errno) -> io::Error {
    io::Error::new(err(e).kind(), format!("{what}: {}", e.desc()))
}

fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

/// A command as execve(2) takes it, built before a fork (nothing is
/// allocated after it): argv, `KEY=value` environment, and the paths to try
/// (the program itself if it names a path, else it in each directory of the
/// environment's PATH).
pub(crate) struct Execve {
    candidates: Vec<CString>,
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    env: Vec<*const libc::c_char>,
}

impl Execve {
    pub(crate) fn new(argv: &[String], env: &[(String, String)]) -> io::Result<Execve> {
        let Some(program) = argv.first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        let candidates: Vec<CString> = if program.contains('/') {
            vec![cstr(program)?]
        } else {
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstr(format!("{d}/{program}")))
                .collect::<io::Result<_>>()?
        };
        let c_argv: Vec<CString> = argv.iter().map(cstr).collect::<io::Result<_>>()?;
        let c_env: Vec<CString> = env
            .iter()
            .map(|(k, v)| cstr(format!("{k}={v}")))
            .collect::<io::Result<_>>()?;
        // The CStrings' bytes live on the heap: these pointers stay valid
        // while `self` (which owns them) lives, wherever it is moved.
        let ptrs = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|c| c.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        Ok(Execve {
            candidates,
            argv: ptrs(&c_argv),
            _argv: c_argv,
            env: ptrs(&c_env),
            _env: c_env,
        })
    }

    /// Try each candidate path. Returns only if none could be executed,
    /// with the errno to report (ENOENT unless a candidate failed
    /// otherwise). Calls only execve(2): safe between fork and exec.
    ///
    /// # Safety
    /// Replaces the process image on success.
    pub(crate) unsafe fn exec(&self) -> libc::c_int {
        let mut last = libc::ENOENT;
        for c in &self.candidates {
            // SAFETY: NUL-terminated strings and null-terminated arrays
            // owned by `self`.
            unsafe {
                libc::execve(c.as_ptr(), self.argv.as_ptr(), self.env.as_ptr());
                let e = *libc::__errno_location();
                if e != libc::ENOENT && e != libc::ENOTDIR {
                    last = e;
                }
            }
        }
        last
    }
}

// ---------------------------------------------------------------------------
// Namespaces, mounts, identity.

/// Join the namespace at `path` (`/run/netns/x`, `/proc/<pid>/ns/mnt`, …).
pub fn setns_path(path: &Path, kind: CloneFlags) -> io::Result<()> {
    let f = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    nix::sched::setns(f.as_fd(), kind).map_err(|e| ctx(format_args!("setns {}", path.display()), e))
}

/// `unshare(2)`.
pub fn unshare(flags: CloneFlags) -> io::Result<()> {
    nix::sched::unshare(flags).map_err(|e| ctx("unshare", e))
}

/// Make every mount of this mount namespace a recursive slave, so that no
/// mount made here propagates back to the namespace it was copied from, even
/// if `/` is shared (systemd). Must come before any other mount.
pub fn make_root_rslave() -> io::Result<()> {
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| ctx("making / a recursive slave", e))
}

/// Mount a fresh procfs on `/proc` (for the caller's PID namespace).
pub fn mount_proc() -> io::Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
        .map_err(|e| ctx("mounting /proc", e))
}

/// Replace `/sys` by a read-only sysfs of the caller's network namespace,
/// as `ip netns exec` does (so `/sys/class/net` lists the pod's
/// interfaces), with none of the host's mounts below it (cgroups, debugfs).
pub fn remount_sysfs() -> io::Result<()> {
    let _ = nix::mount::umount2("/sys", MntFlags::MNT_DETACH);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    nix::mount::mount(Some("sysfs"), "/sys", Some("sysfs"), flags, None::<&str>)
        .map_err(|e| ctx("mounting /sys", e))
}

/// Bind `source` onto `target` (recursively), read-only if asked.
pub fn bind_mount(source: &Path, target: &Path, read_only: bool) -> io::Result<()> {
    let what = || format!("binding {} onto {}", source.display(), target.display());
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ctx(what(), e))?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(|e| ctx(what(), e))?;
    }
    Ok(())
}

/// Where [`enter_mirror_root`] builds the new root: on the pod's own `/run`
/// tmpfs, so nothing is created on the host.
const MIRROR_ROOT: &str = "/run/.lab-root";

/// Give the calling process's mount namespace a root of its own that
/// mirrors the current one and adds `extra` files at its top: a small
/// tmpfs holding, for every entry of `/`, a recursive bind of it (symlinks
/// copied as symlinks), plus each `(name, file)` bound read-only at
/// `/<name>`. Nothing is written to the host: the tmpfs lives on the pod's
/// `/run` and is then moved over `/` (as `switch_root` does), so a process
/// that joins the namespace later (`setns`, e.g. `lab exec`) starts in it,
/// and the mounts of the old root stay in the namespace, covered (open
/// descriptors into them keep working for binds). The tmpfs itself ends
/// read-only. The caller must be single-threaded and in a mount namespace
/// of its own whose `/` is not shared; `/run` must be its own tmpfs.
pub fn enter_mirror_root(extra: &[(&str, &File)]) -> io::Result<()> {
    let base = Path::new(MIRROR_ROOT);
    let io_ctx =
        |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    std::fs::create_dir(base).map_err(io_ctx(format!("mkdir {MIRROR_ROOT}")))?;
    mount_tmpfs(base, "mode=0755,size=1024k", MsFlags::empty())?;
    // Unbindable: the recursive bind of /run below must not copy the new
    // root into itself.
    nix::mount::mount(
        None::<&str>,
        base,
        None::<&str>,
        MsFlags::MS_UNBINDABLE,
        None::<&str>,
    )
    .map_err(|e| ctx("making the new root unbindable", e))?;
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir("/")
        .map_err(io_ctx("reading /".into()))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in &names {
        let src = Path::new("/").join(name);
        let dst = base.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let to =
                std::fs::read_link(&src).map_err(io_ctx(format!("readlink {}", src.display())))?;
            std::os::unix::fs::symlink(&to, &dst)
                .map_err(io_ctx(format!("symlink {}", dst.display())))?;
        } else if ft.is_dir() {
            std::fs::create_dir(&dst).map_err(io_ctx(format!("mkdir {}", dst.display())))?;
            nix::mount::mount(
                Some(&src),
                &dst,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| ctx(format_args!("binding {}", src.display()), e))?;
        } else if ft.is_file() {
            File::create(&dst).map_err(io_ctx(format!("creating {}", dst.display())))?;
            nix::mount::mount(
                Some(&src),
                &dst,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| ctx(format_args!("binding {}", src.display()), e))?;
        }
        // Sockets, FIFOs and device nodes at the top of / are left out.
    }
    for (name, file) in extra {
        let dst = base.join(name);
        if !dst.exists() {
            File::create(&dst).map_err(io_ctx(format!("creating {}", dst.display())))?;
        }
        let src = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        bind_mount(&src, &dst, true)?;
    }
    let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    nix::mount::mount(None::<&str>, base, None::<&str>, ro, None::<&str>)
        .map_err(|e| ctx("making the new root read-only", e))?;
    nix::unistd::chdir(base).map_err(|e| ctx("chdir to the new root", e))?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| ctx("moving the new root over /", e))?;
    nix::unistd::chroot(".").map_err(|e| ctx("chroot into the new root", e))?;
    nix::unistd::chdir("/").map_err(|e| ctx("chdir /", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| ctx("making the new root private", e))?;
    // The mount point it was built on, now an empty directory of the pod's /run.
    let _ = std::fs::remove_dir(MIRROR_ROOT);
    Ok(())
}

const TMPFS: &CStr = c"tmpfs";
const HIDE_OPTS: &CStr = c"size=4k,mode=0555";
const HIDE_FLAGS: libc::c_ulong =
    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Hide `target` under an empty, read-only tmpfs.
pub fn mount_empty_tmpfs_ro(target: &Path) -> io::Result<()> {
    nix::mount::mount(
        Some(TMPFS),
        target,
        Some(TMPFS),
        MsFlags::from_bits_truncate(HIDE_FLAGS),
        Some(HIDE_OPTS),
    )
    .map_err(|e| ctx(format_args!("hiding {}", target.display()), e))
}

/// Mount a fresh tmpfs on `target` with `opts` (`nosuid,nodev` always).
pub fn mount_tmpfs(target: &Path, opts: &str, extra: MsFlags) -> io::Result<()> {
    nix::mount::mount(
        Some(TMPFS),
        target,
        Some(TMPFS),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra,
        Some(opts),
    )
    .map_err(|e| ctx(format_args!("mounting a tmpfs on {}", target.display()), e))
}

/// Mount points of the caller's mount namespace (`/proc/self/mountinfo`),
/// in mount order.
pub fn mount_points() -> io::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .collect())
}

/// Mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach (lazily unmount) every mount at or below one of `roots` in the
/// caller's mount namespace, except mounts that lead to a path in `keep`
/// (they hold a volume's source). In a namespace that is a slave of the
/// host's, this changes nothing on the host; it leaves nothing of those
/// mounts (other clusters' network namespaces, sockets) beneath the pod's
/// covers. Errors are ignored: what cannot be detached is still covered.
pub fn detach_mounts_under(roots: &[&Path], keep: &[&Path]) -> io::Result<usize> {
    let mut points: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .filter(|m| !keep.iter().any(|k| k.starts_with(m)))
        .collect();
    // A lazy unmount takes every mount beneath it along, and no mount
    // listed has a kept path beneath it (it would not be listed): detach
    // only the topmost ones. Each umount waits for an RCU grace period, and
    // one per mount made a pod's start cost one per network namespace on
    // the machine (/run/netns/*: 500 with 500 pods). Sorted by components,
    // a mount's descendants follow it; a path listed twice (mounts stacked
    // on one another) is detached twice.
    points.sort();
    let mut tops: Vec<PathBuf> = Vec::new();
    for p in points {
        match tops.last() {
            Some(t) if p != *t && p.starts_with(t) => {}
            _ => tops.push(p),
        }
    }
    let mut n = 0;
    for p in tops {
        if nix::mount::umount2(&p, MntFlags::MNT_DETACH).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Device nodes a container gets in its `/dev` (bound from the host's).
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Replace `/dev` by a container's `/dev`, as runc builds it: a tmpfs with
/// the harmless device nodes bound from the host, a private devpts, a
/// `/dev/shm` tmpfs, an mqueue and the usual symlinks. No disk, memory or
/// other device of the host is reachable. Needs the pod's `/proc`.
pub fn mount_container_dev() -> io::Result<()> {
    let mut nodes = Vec::new();
    for n in DEV_NODES {
        let p = Path::new("/dev").join(n);
        if let Ok(f) = open_path(&p) {
            nodes.push((p, f));
        }
    }
    mount_tmpfs(
        Path::new("/dev"),
        "mode=0755,size=65536k",
        MsFlags::MS_STRICTATIME,
    )?;
    for (p, f) in &nodes {
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o666)
                .open(p)
                .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", p.display())))?;
        }
        let src = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        nix::mount::mount(Some(&src), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| ctx(format_args!("binding {}", p.display()), e))?;
    }
    let mkdir = |p: &str| {
        std::fs::create_dir_all(p).map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))
    };
    mkdir("/dev/pts")?;
    nix::mount::mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(|e| ctx("mounting /dev/pts", e))?;
    mkdir("/dev/shm")?;
    mount_tmpfs(
        Path::new("/dev/shm"),
        "mode=1777,size=65536k",
        MsFlags::MS_NOEXEC,
    )?;
    mkdir("/dev/mqueue")?;
    // Best effort: an mqueue of the pod's IPC namespace.
    let _ = nix::mount::mount(
        Some("mqueue"),
        "/dev/mqueue",
        Some("mqueue"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    );
    for (link, to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, link)
            .map_err(|e| io::Error::new(e.kind(), format!("symlink {link}: {e}")))?;
    }
    nix::mount::mount(
        None::<&str>,
        "/dev",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME | MsFlags::MS_RDONLY,
        Some("mode=0755,size=65536k"),
    )
    .map_err(|e| ctx("making /dev read-only", e))?;
    Ok(())
}

/// Mask and protect `/proc` and `/sys` as runc's defaults do: kernel-wide
/// knobs read-only, files that leak kernel state bound to `/dev/null`,
/// firmware and hardware directories under an empty tmpfs.
pub fn mask_proc_and_sys() -> io::Result<()> {
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        let p = Path::new(p);
        if p.exists() {
            bind_mount(p, p, true)?;
        }
    }
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ] {
        let p = Path::new(p);
        if p.exists() {
            bind_mount(Path::new("/dev/null"), p, false)?;
        }
    }
    for p in ["/proc/acpi", "/proc/scsi", "/sys/firmware"] {
        let p = Path::new(p);
        if p.is_dir() {
            mount_empty_tmpfs_ro(p)?;
        }
    }
    Ok(())
}

/// Restore the default SIGPIPE action (Rust ignores it), so a command whose
/// output goes to a closed pipe (`lab get pods | head -1`) ends quietly.
pub fn default_sigpipe() {
    // SAFETY: setting a signal disposition to its default has no memory
    // effects; called before other threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// SIGPIPE ignored until dropped (then the previous disposition is back):
/// a write to a peer that closed fails with EPIPE instead of killing us.
pub struct IgnoreSigpipe(Option<nix::sys::signal::SigAction>);

impl IgnoreSigpipe {
    pub fn new() -> IgnoreSigpipe {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
        let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: SIG_IGN runs no handler code.
        IgnoreSigpipe(unsafe { sigaction(Signal::SIGPIPE, &ign) }.ok())
    }
}

impl Default for IgnoreSigpipe {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restoring the disposition saved in `new`.
            let _ = unsafe { nix::sys::signal::sigaction(Signal::SIGPIPE, old) };
        }
    }
}

pub fn set_hostname(name: &str) -> io::Result<()> {
    nix::unistd::sethostname(name).map_err(|e| ctx(format_args!("sethostname {name:?}"), e))
}

pub fn setsid() -> io::Result<()> {
    nix::unistd::setsid()
        .map(|_| ())
        .map_err(|e| ctx("setsid", e))
}

/// Set the umask, returning the previous one.
pub fn set_umask(mask: u32) -> u32 {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ))
    .bits() as u32
}

/// The caller's PID as seen by the procfs mounted on `/proc` (before the
/// shim mounts its own procfs, that is the host PID).
pub fn pid_via_proc() -> io::Result<u32> {
    let link = std::fs::read_link("/proc/self")?;
    link.to_string_lossy()
        .parse()
        .map_err(|_| io::Error::other(format!("unexpected /proc/self link {}", link.display())))
}

// ---------------------------------------------------------------------------
// File descriptors.

/// A pipe, both ends close-on-exec: (read, write).
pub fn pipe() -> io::Result<(File, File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ctx("pipe", e))?;
    Ok((File::from(r), File::from(w)))
}

/// Point stdin at `stdin` and stdout and stderr at `out`.
pub fn redirect_stdio(stdin: &File, out: &File) -> io::Result<()> {
    nix::unistd::dup2_stdin(stdin).map_err(|e| ctx("dup2 stdin", e))?;
    nix::unistd::dup2_stdout(out).map_err(|e| ctx("dup2 stdout", e))?;
    nix::unistd::dup2_stderr(out).map_err(|e| ctx("dup2 stderr", e))?;
    Ok(())
}

/// Close every descriptor above 2 except those in `keep`.
pub fn close_fds_except(keep: &[RawFd]) -> io::Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: the caller is single-threaded and owns every inherited
            // descriptor; none of them is referenced by a live Rust object
            // except those in `keep` (and the read_dir handle, already gone).
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Wait until `f` is readable or `timeout` passes; true if readable.
pub fn wait_readable(f: &impl AsFd, timeout: std::time::Duration) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
    loop {
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ctx("poll", e)),
        }
    }
}

// ---------------------------------------------------------------------------
// Processes.

pub enum Forked {
    Parent { child: u32 },
    Child,
}

/// `fork(2)`.
///
/// The caller must be single-threaded (the shim calls it before it starts any
/// runtime), so the child may do anything the parent could.
pub fn fork_single_threaded() -> io::Result<Forked> {
    // SAFETY: documented precondition: no other thread exists, so no lock
    // can be held across the fork.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Forked::Parent {
            child: child.as_raw() as u32,
        }),
        Ok(nix::unistd::ForkResult::Child) => Ok(Forked::Child),
        Err(e) => Err(ctx("fork", e)),
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// Shell convention: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Reap one child that has ended, without blocking. `None` when no child has
/// ended (or there are no children).
pub fn reap_any() -> Option<(i32, Exit)> {
    loop {
        match nix::sys::wait::waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => return Some((pid.as_raw(), Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return Some((pid.as_raw(), Exit::Signal(sig as i32)));
            }
            Ok(WaitStatus::StillAlive) => return None,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Wait for a given child, blocking.
pub fn wait_child(pid: u32) -> io::Result<Exit> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(pid as i32), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig as i32)),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(ctx("waitpid", e)),
        }
    }
}

/// Send `sig` to a process. A process that is gone already is not an
/// error; any other failure (not permitted) is logged.
pub fn signal_pid(pid: i32, sig: Signal) {
    if pid > 0
        && let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid), sig)
        && e != Errno::ESRCH
    {
        tracing::warn!(pid, signal = %sig, error = %e, "signalling a process");
    }
}

/// Send `sig` to a process group. A group that is gone already is not an
/// error; any other failure is logged.
pub fn signal_group(pgid: i32, sig: Signal) {
    if pgid > 1
        && let Err(e) = nix::sys::signal::killpg(Pid::from_raw(pgid), sig)
        && e != Errno::ESRCH
    {
        tracing::warn!(pgid, signal = %sig, error = %e, "signalling a process group");
    }
}

/// `kill(-1, sig)`: every process the caller may signal except itself. From
/// PID 1 of a PID namespace that is every other process of the namespace.
/// None left (ESRCH) is not an error; any other failure is logged.
pub fn signal_all(sig: Signal) {
    if let Err(e) = nix::sys::signal::kill(Pid::from_raw(-1), sig)
        && e != Errno::ESRCH
    {
        tracing::warn!(signal = %sig, error = %e, "signalling every process");
    }
}

/// PIDs listed in the procfs mounted on `/proc` other than the caller.
pub fn other_pids() -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&p| p != me)
        .collect()
}

/// A bind mount made in the new process's own mount namespace.
#[derive(Debug, Clone)]
pub struct BindMount {
    /// Usually `/proc/self/fd/N`: a descriptor the shim opened before the
    /// pod's view hid the path (see [`open_path`]).
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Everything needed to start one program (a container or an exec probe).
pub struct Launch<'a> {
    pub argv: &'a [String],
    /// The complete environment.
    pub env: &'a [(String, String)],
    /// chdir'd into after the mounts (created if missing and possible).
    pub working_dir: Option<&'a Path>,
    /// Capabilities, no_new_privs, seccomp, user and group.
    pub security: &'a Prepared,
    /// The pod's writable places (`/tmp`, `/run`, `/dev/shm`) are
    /// read-only for this process (`readOnlyRootFilesystem`).
    pub read_only_root: bool,
    /// Non-empty (or `read_only_root`): the process gets its own mount
    /// namespace with these binds.
    pub mounts: &'a [BindMount],
    /// Join this mount namespace first (an exec probe entering a container).
    pub join_mnt: Option<File>,
    /// Stdout and stderr (None: /dev/null). Stdin is always /dev/null.
    pub output: Option<File>,
}

struct PreparedMount {
    source: CString,
    target: CString,
    /// Directories to create (outermost first) when the source is a
    /// directory: the target and its parents.
    dir_mkdirs: Vec<CString>,
    /// The same when the source is a file: the target's parents (then an
    /// empty file is created at the target).
    file_mkdirs: Vec<CString>,
    read_only: bool,
}

fn dir_chain(p: &Path) -> io::Result<Vec<CString>> {
    let mut v: Vec<CString> = p
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty() && *a != Path::new("/"))
        .map(cstr)
        .collect::<io::Result<_>>()?;
    v.reverse();
    Ok(v)
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 1;

/// Set or clear the read-only flag of the mount at `path` (and of every
/// mount below it if `recursive`), leaving its other flags alone.
///
/// # Safety
/// A raw syscall: callable between fork and exec.
unsafe fn set_read_only(
    path: *const libc::c_char,
    read_only: bool,
    recursive: bool,
) -> libc::c_int {
    let attr = MountAttr {
        attr_set: if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if read_only { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: pointers to a NUL-terminated path and a local struct.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path,
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as libc::c_int
    }
}

const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// [`set_read_only`] on the mount tree a descriptor from `open_tree` holds.
///
/// # Safety
/// A raw syscall: callable between fork and exec.
unsafe fn set_read_only_fd(fd: libc::c_int, read_only: bool, recursive: bool) -> libc::c_int {
    let attr = MountAttr {
        attr_set: if read_only { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if read_only { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: an empty C string and a local struct.
    unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        ) as libc::c_int
    }
}

/// Make the mount at `path` and every mount below it read-only
/// (`mount_setattr(2)` with `AT_RECURSIVE`).
pub fn make_read_only_recursive(path: &Path) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: a raw syscall on a local C string.
    if unsafe { set_read_only(c.as_ptr(), true, true) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("making {} read-only: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Start a program in its own process group with exactly `env`. Returns its
/// PID. Fails (without leaving a process behind) if the mounts, the
/// privilege drop or the exec fail.
pub fn launch(l: Launch<'_>) -> io::Result<u32> {
    let Some(program) = l.argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut mounts = Vec::new();
    for m in l.mounts {
        mounts.push(PreparedMount {
            source: cstr(&m.source)?,
            target: cstr(&m.target)?,
            dir_mkdirs: dir_chain(&m.target)?,
            file_mkdirs: dir_chain(m.target.parent().unwrap_or(Path::new("/")))?,
            read_only: m.read_only,
        });
    }
    let workdir = l
        .working_dir
        .map(|w| Ok::<_, io::Error>((dir_chain(w)?, cstr(w)?)))
        .transpose()?;
    let read_only_root = l.read_only_root;
    let pod_writable: Vec<CString> = POD_WRITABLE.iter().map(cstr).collect::<io::Result<_>>()?;
    let own_mnt_ns = !l.mounts.is_empty() || read_only_root;
    let mut trees: Vec<libc::c_int> = vec![-1; mounts.len()];
    let join_mnt = l.join_mnt;
    let security = l.security.clone();

    let mut cmd = Command::new(program);
    cmd.args(&l.argv[1..])
        .env_clear()
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    match l.output {
        Some(f) => {
            cmd.stdout(f.try_clone()?).stderr(f);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let child = move || -> io::Result<()> {
        let check = |r: libc::c_int| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY (whole block): raw syscalls on pointers to data owned by
        // this closure, prepared before the fork; nothing allocates.
        unsafe {
            check(libc::setpgid(0, 0))?;
            if let Some(f) = &join_mnt {
                check(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNS))?;
            }
            if own_mnt_ns {
                // Clone each source's mount tree while still in the pod's
                // namespace (a bind needs its source in the caller's
                // namespace; the sources are descriptors opened there), set
                // its read-only flag, then attach it in our own namespace.
                for (m, fd) in mounts.iter().zip(trees.iter_mut()) {
                    *fd = libc::syscall(
                        libc::SYS_open_tree,
                        libc::AT_FDCWD,
                        m.source.as_ptr(),
                        (OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_RECURSIVE as u32)
                            as libc::c_uint,
                    ) as libc::c_int;
                    check(*fd)?;
                    // A clone copies the source mount's flags (the host view
                    // is read-only): set exactly what the volume asks for.
                    check(set_read_only_fd(*fd, m.read_only, m.read_only))?;
                }
                check(libc::unshare(libc::CLONE_NEWNS))?;
                for (m, fd) in mounts.iter().zip(trees.iter()) {
                    let mut st: libc::stat = std::mem::zeroed();
                    check(libc::stat(m.source.as_ptr(), &mut st))?;
                    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                    // Mount points outside the pod's tmpfs were made by the
                    // shim before the host view went read-only.
                    for d in if is_dir {
                        &m.dir_mkdirs
                    } else {
                        &m.file_mkdirs
                    } {
                        libc::mkdir(d.as_ptr(), 0o755);
                    }
                    if !is_dir {
                        let f = libc::open(
                            m.target.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if f >= 0 {
                            libc::close(f);
                        }
                    }
                    check(libc::syscall(
                        libc::SYS_move_mount,
                        *fd,
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        m.target.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    ) as libc::c_int)?;
                    libc::close(*fd);
                }
                if read_only_root {
                    for p in &pod_writable {
                        set_read_only(p.as_ptr(), true, false);
                    }
                }
            }
            if let Some((chain, dir)) = &workdir {
                for d in chain {
                    libc::mkdir(d.as_ptr(), 0o755);
                }
                check(libc::chdir(dir.as_ptr()))?;
            }
            if let Err((_, errno)) = security.apply_in_child() {
                return Err(io::Error::from_raw_os_error(errno));
            }
        }
        Ok(())
    };
    // SAFETY: `child` only makes async-signal-safe syscalls (see above).
    unsafe { cmd.pre_exec(child) };
    let c = cmd.spawn()?;
    Ok(c.id())
}

/// The places a pod may write outside its volumes (its own tmpfs mounts).
pub const POD_WRITABLE: &[&str] = &["/tmp", "/run", "/dev/shm"];

/// An `O_PATH` descriptor for `path` (not closed on fork; closed on exec),
/// to bind it later as `/proc/self/fd/N` once its path is hidden.
pub fn open_path(path: &Path) -> io::Result<File> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ctx(format_args!("opening {}", path.display()), e))?;
    Ok(File::from(fd))
}

/// The environment of a command in a pod (a container's, or an exec's):
/// the container's, plus what a container runtime adds when it is missing — `PATH` (the default image PATH),
/// `HOME` (the user's home from `/etc/passwd`, `/` if none, as runc) and,
/// with a terminal, `TERM=xterm` (as containerd and CRI-O).
pub fn exec_env(env: &[(String, String)], uid: u32, tty: bool) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    let has = |env: &[(String, String)], k: &str| env.iter().any(|(n, _)| n == k);
    if !has(&env, "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    if !has(&env, "HOME") {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        env.push(("HOME".into(), home_of(&passwd, uid)));
    }
    if tty && !has(&env, "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    env
}

/// The home directory of `uid` in a passwd file's text; `/` if it has none.
pub fn home_of(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 7 && f[2].parse::<u32>().ok() == Some(uid) && !f[5].is_empty())
                .then(|| f[5].to_string())
        })
        .next()
        .unwrap_or_else(|| "/".into())
}

/// Write `bytes` to `path` atomically (temp file in the same directory, then
/// rename), with the given mode, synced to disk before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_replacing(path, bytes, mode, true)
}

/// [`write_atomic`] without the sync to disk, for files that are written
/// anew before every use (a pod's resolv.conf, hosts and volume files, the
/// shim's spec and PID file): a reader still sees the old or the new
/// content, never a torn one, and after a machine crash the next pod start
/// writes them again. A sync costs milliseconds on a busy disk, several
/// times per pod start.
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_replacing(path, bytes, mode, false)
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // Exactly `mode`, whatever the umask (a Secret volume's 0440).
        {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if res.is_err()
        && let Err(e) = std::fs::remove_file(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %e, "removing a partly written file");
    }
    res
}

/// Create `dir` (and missing parents) with mode 0700, and make an existing
/// `dir` 0700: directories holding a cluster's state, logs and sockets are
/// for root only.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io::Error::new(e.kind(), format!("chmod {}: {e}", dir.display())))
}

/// Open a directory to reach files under it later by name, even once its
/// path is hidden by a mount.
pub fn open_dir(path: &Path) -> io::Result<File> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ctx(format_args!("opening {}", path.display()), e))?;
    Ok(File::from(fd))
}

/// Remove `name` in `dir` (ignores a missing file).
pub fn unlink_at(dir: &File, name: &str) -> io::Result<()> {
    match nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(ctx(format_args!("removing {name}"), e)),
    }
}

/// Open `<dir>/<sub>/<file>` for appending, creating `sub` (mode 0700) and
/// the file (mode 0600: container output may hold anything) if needed.
pub fn open_append_at(dir: &File, sub: &str, file: &str) -> io::Result<File> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    match nix::sys::stat::mkdirat(dir, sub, Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(ctx(format_args!("creating {sub}"), e)),
    }
    let path = format!("{sub}/{file}");
    let flags = OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir, path.as_str(), flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| ctx(format_args!("opening {path}"), e))?;
    Ok(File::from(fd))
}

/// Start `exe` with `args` in a session of its own (so it outlives the
/// caller, SIGKILL included), with `fds` as its descriptors `first`,
/// `first + 1`, … and none of the caller's other descriptors beyond stdio
/// (they are made close-on-exec in the child). Stdio is `/dev/null`.
pub fn spawn_with_fds(
    exe: &Path,
    args: &[&OsStr],
    fds: &[std::os::fd::BorrowedFd<'_>],
    first: RawFd,
) -> io::Result<std::process::Child> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let n = RawFd::try_from(fds.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many descriptors"))?;
    // Copies numbered above the target range, so that no dup2 in the child
    // overwrites a source not yet moved.
    let mut high = Vec::with_capacity(fds.len());
    for fd in fds {
        // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor ≥ the bound or -1.
        let h = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, first + n) };
        if h < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor that we own.
        high.push(unsafe { OwnedFd::from_raw_fd(h) });
    }
    let raws: Vec<RawFd> = high.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe syscalls on
    // descriptor numbers prepared before the fork (`raws` is only read).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            for (i, raw) in raws.iter().enumerate() {
                // dup2 leaves the copy without close-on-exec.
                if libc::dup2(*raw, first + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            // Everything above is closed at exec (close-on-exec rather than
            // closed now, so std's own exec-status pipe still works).
            libc::syscall(
                libc::SYS_close_range,
                first + raws.len() as RawFd,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(high);
    child
}

/// Take ownership of descriptor `n`, inherited from the parent (see
/// [`spawn_with_fds`]). Call once per descriptor, at start-up.
pub fn take_inherited_fd(n: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_GETFD only checks that the descriptor is open.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open and nothing else in this process owns
    // it (the caller's precondition).
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(n) })
}

/// Give the calling thread nice value `nice` (lower = sooner on a busy CPU):
/// the data plane's delay thread, whose lateness would add to every injected
/// delay. Root may lower it below 0.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    let tid = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority(2) on this thread's id; no memory is passed.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Few malloc arenas for a process with many short-lived threads (the
/// daemon's blocking pool, one netns thread per pod start): glibc gives
/// threads up to 8 arenas per core, each holding on to the peak of what its
/// threads once allocated, which made most of the daemon's RSS with 500
/// pods. Call before any thread exists. A no-op off glibc.
pub fn limit_malloc_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc parameter; no thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Give memory that malloc holds free back to the system (every arena,
/// not only the top of the heap): after a burst (hundreds of pods started),
/// the peak of transient buffers stays resident otherwise. A no-op off
/// glibc.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_env_adds_what_a_runtime_adds() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nweb:x:1000:1000::/home/web:/bin/sh\nnohome:x:1001:1001:::/bin/sh\n";
        assert_eq!(home_of(passwd, 0), "/root");
        assert_eq!(home_of(passwd, 1000), "/home/web");
        assert_eq!(home_of(passwd, 1001), "/");
        assert_eq!(home_of(passwd, 4242), "/");
        assert_eq!(home_of("garbage", 0), "/");
        let given = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("HOME".into(), "/x".into()),
        ];
        assert_eq!(exec_env(&given, 0, false), given);
        let env = exec_env(&[], 0, true);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some(DEFAULT_PATH));
        assert_eq!(get("TERM"), Some("xterm"));
        assert!(get("HOME").is_some());
        assert!(exec_env(&[], 0, false).iter().all(|(k, _)| k != "TERM"));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/x\\011y\\134z"), "/x\ty\\z");
        assert_eq!(unescape_mountinfo("/plain\\04"), "/plain\\04");
        assert!(mount_points().unwrap().contains(&PathBuf::from("/")));
    }
}
