//! Starting a shim (`lab shim --spec FILE`: namespaces, mounts, fork into
//! the new PID namespace) and the daemon/CLI side: [`spawn`], [`is_alive`],
//! [`enter_and_exec`].

use super::runtime::{self, Handover};
use crate::sys::process::{self as sys, CloneFlags, Forked};
use crate::wire::shim::ShimSpec;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the first process waits for the shim to report it is up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The shim did not come up; the message is what it reported.
    #[error("the pod's shim failed to start: {0}")]
    Start(String),
    #[error("{0}")]
    Exec(String),
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        context: context.into(),
        source,
    }
}

fn spec_file(run_dir: &Path) -> PathBuf {
    run_dir.join("spec.json")
}

// ---------------------------------------------------------------------------
// The shim process.

/// `lab shim --spec FILE`. Must be called in a fresh, single-threaded
/// process. The first process exits 0 once the shim is up (non-zero with the
/// error on stderr otherwise); the forked shim returns here only when the
/// pod has been stopped.
pub fn run(spec_path: &Path) -> i32 {
    // A session of its own, detached from the daemon's (and any terminal):
    // done here rather than between fork and exec in the daemon, so the
    // daemon can start shims with posix_spawn (vfork) instead of fork,
    // which copies the page tables of a daemon holding hundreds of pods.
    let _ = nix::unistd::setsid();
    let spec = match std::fs::read(spec_path)
        .map_err(|e| format!("reading {}: {e}", spec_path.display()))
        .and_then(|b| {
            serde_json::from_slice::<ShimSpec>(&b)
                .map_err(|e| format!("parsing {}: {e}", spec_path.display()))
        }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lab shim: {e}");
            return 1;
        }
    };
    match start(spec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lab shim: {e}");
            1
        }
    }
}

fn start(spec: ShimSpec) -> io::Result<i32> {
    for d in [&spec.run_dir, &spec.log_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", d.display())))?;
    }
    // Opened before the new mount namespace exists, so that writes through
    // them (pid file, socket, logs) reach the host's mounts, which the
    // pod's read-only view does not change; and they stay reachable once
    // the pod's view hides their paths.
    let run_dir = sys::open_dir(&spec.run_dir)?;
    let log_dir = sys::open_dir(&spec.log_dir)?;
    sys::setns_path(&spec.netns_path, CloneFlags::CLONE_NEWNET)?;
    sys::unshare(
        CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC,
    )?;
    let (r, w) = sys::pipe()?;
    match sys::fork_single_threaded()? {
        Forked::Parent { child } => {
            drop(w);
            drop(log_dir);
            wait_for_shim(&spec, &run_dir, child, r)
        }
        Forked::Child => {
            drop(r);
            Ok(shim_main(spec, w, run_dir, log_dir))
        }
    }
}

/// The first process: wait for `OK` (or an error) from the shim, then write
/// its PID file.
fn wait_for_shim(spec: &ShimSpec, run_dir: &File, child: u32, mut r: File) -> io::Result<i32> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sys::wait_readable(&r, left)? {
            sys::signal_pid(child as i32, nix::sys::signal::Signal::SIGKILL);
            let _ = sys::wait_child(child);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the shim did not come up within 30s",
            ));
        }
        let n = r.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') {
            break;
        }
    }
    let msg = String::from_utf8_lossy(&buf).trim().to_string();
    if msg == "OK" {
        let pid_file = spec.run_dir.join("shim.pid");
        nix::unistd::fchdir(run_dir)?;
        sys::write_replace(
            Path::new("shim.pid"),
            format!("{child}\n").as_bytes(),
            0o600,
        )
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", pid_file.display())))?;
        return Ok(0);
    }
    let _ = sys::wait_child(child);
    let why = msg
        .strip_prefix("ERR ")
        .unwrap_or("the shim exited during start-up");
    Err(io::Error::other(why.to_string()))
}

/// PID 1 of the pod.
fn shim_main(spec: ShimSpec, mut ready: File, run_dir: File, log_dir: File) -> i32 {
    match set_up_pod(spec, &ready, &run_dir, &log_dir) {
        Ok((spec, host_pid, listener, sources)) => runtime::main(Handover {
            spec,
            host_pid,
            ready,
            listener,
            run_dir,
            log_dir,
            sources,
        }),
        Err(e) => {
            let _ = writeln!(ready, "ERR {e}");
            1
        }
    }
}

type SetUp = (
    ShimSpec,
    u32,
    std::os::unix::net::UnixListener,
    HashMap<PathBuf, File>,
);

/// Whether `p` lies on one of the pod's own tmpfs mounts (made after the
/// host view went read-only, so mount points there are made later).
fn on_pod_tmpfs(p: &Path) -> bool {
    sys::POD_WRITABLE
        .iter()
        .chain(["/dev", "/proc", "/sys"].iter())
        .any(|t| p.starts_with(t))
}

/// Create a mount point on the host (before the pod's view of it becomes
/// read-only), as a container runtime creates them in the image's rootfs.
fn make_mount_point(source_is_dir: bool, target: &Path) {
    if on_pod_tmpfs(target) || target.exists() {
        return;
    }
    if source_is_dir {
        let _ = std::fs::create_dir_all(target);
    } else if let Some(parent) = target.parent() {
        let _ = std::fs::create_dir_all(parent);
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(target);
    }
}

/// The pod's mount namespace, as a container runtime gives a container:
/// the host's filesystem read-only (every mount, recursively); its own
/// `/proc` (masked like runc's), a read-only `/sys`, a container `/dev`,
/// private writable `/tmp` and `/run` tmpfs mounts; lab's state, logs and
/// every other cluster's files under empty read-only tmpfs mounts; the
/// pod's resolv.conf and hosts bound in. Volume sources are opened first
/// (`O_PATH`) so containers bind them by descriptor whatever is hidden.
fn set_up_pod(spec: ShimSpec, ready: &File, run_dir: &File, log_dir: &File) -> io::Result<SetUp> {
    let wrap = |what: &str| {
        let what = what.to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    sys::setsid()?;
    // Still the host's procfs: /proc/self is our host PID.
    let host_pid = sys::pid_via_proc()?;
    // Before any other mount: nothing may propagate back to the host.
    sys::make_root_rslave()?;
    let mut sources: HashMap<PathBuf, File> = HashMap::new();
    for c in &spec.containers {
        for m in &c.mounts {
            if !sources.contains_key(&m.source) {
                let f = sys::open_path(&m.source)?;
                sources.insert(m.source.clone(), f);
            }
            make_mount_point(m.source.is_dir(), &m.target);
        }
        if let Some(w) = &c.working_dir {
            make_mount_point(true, w);
        }
    }
    let root_files: Vec<(&str, File)> = spec
        .root_files
        .iter()
        .map(|(name, src)| Ok((name.as_str(), sys::open_path(src)?)))
        .collect::<io::Result<_>>()?;
    // Bound by descriptor too: their paths may lie anywhere.
    let etc_files = [
        (sys::open_path(&spec.resolv_conf)?, "/etc/resolv.conf"),
        (sys::open_path(&spec.hosts)?, "/etc/hosts"),
    ];
    let sock = spec.run_dir.join("shim.sock");
    match std::fs::remove_file(&sock) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(wrap(&format!("removing stale {}", sock.display()))(e)),
    }
    let old = sys::set_umask(0o177);
    let listener = std::os::unix::net::UnixListener::bind(&sock);
    sys::set_umask(old);
    let listener = listener.map_err(wrap(&format!("binding {}", sock.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))
            .map_err(wrap("chmod shim.sock"))?;
    }
    listener.set_nonblocking(true)?;
    let log = sys::open_append_at(log_dir, ".", "shim.log").map_err(wrap("opening shim.log"))?;
    let _ = run_dir;

    // Nothing of the host's /run (other clusters' network namespaces, every
    // daemon's sockets), /tmp, lab's state and logs, or the host's /proc and
    // /dev sub-mounts stays in the pod's namespace, except what leads to a
    // volume's source; what is left is covered below.
    let mut keep: Vec<&Path> = sources.keys().map(PathBuf::as_path).collect();
    keep.extend([spec.resolv_conf.as_path(), spec.hosts.as_path()]);
    let mut roots: Vec<&Path> = ["/run", "/tmp", "/proc", "/dev", "/etc/netns"]
        .iter()
        .map(Path::new)
        .collect();
    roots.extend(spec.hide_paths.iter().map(PathBuf::as_path));
    // `/` itself, `/dev` and `/proc` are replaced or needed below: only
    // what lies under them goes.
    let top = [Path::new("/proc"), Path::new("/dev")];
    keep.extend(top);
    sys::detach_mounts_under(&roots, &keep)?;
    sys::make_read_only_recursive(Path::new("/"))?;
    let _ = nix::mount::umount2("/proc", nix::mount::MntFlags::MNT_DETACH);
    sys::mount_proc()?;
    let sysfs = sys::remount_sysfs();
    sys::mount_container_dev()?;
    sys::mask_proc_and_sys()?;
    sys::mount_tmpfs(
        Path::new("/tmp"),
        "mode=1777,size=262144k",
        nix::mount::MsFlags::empty(),
    )?;
    sys::mount_tmpfs(
        Path::new("/run"),
        "mode=0755,size=65536k",
        nix::mount::MsFlags::empty(),
    )?;
    for (f, target) in etc_files {
        let src = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
        sys::bind_mount(&src, Path::new(target), true)?;
    }
    for p in &spec.hide_paths {
        if p.is_dir() {
            sys::mount_empty_tmpfs_ro(p)?;
        }
    }
    if !root_files.is_empty() {
        let extra: Vec<(&str, &File)> = root_files.iter().map(|(n, f)| (*n, f)).collect();
        sys::enter_mirror_root(&extra).map_err(wrap("giving the pod a root of its own"))?;
    }
    drop(root_files);
    sys::set_hostname(&spec.hostname)?;
    let null = File::open("/dev/null").map_err(wrap("opening /dev/null"))?;
    sys::redirect_stdio(&null, &log)?;
    drop((null, log));
    let mut keep = vec![
        ready.as_raw_fd(),
        listener.as_raw_fd(),
        run_dir.as_raw_fd(),
        log_dir.as_raw_fd(),
    ];
    keep.extend(sources.values().map(|f| f.as_raw_fd()));
    sys::close_fds_except(&keep)?;
    if let Err(e) = sysfs {
        runtime::log(format_args!("warning: {e}"));
    }
    Ok((spec, host_pid, listener, sources))
}

// ---------------------------------------------------------------------------
// The daemon's side.

/// Write `spec.json` into `spec.run_dir` and start `<lab_exe> shim --spec
/// …` detached (own session, no terminal). Returns the shim's host PID once
/// its containers have been started.
pub fn spawn(lab_exe: &Path, spec: &ShimSpec) -> Result<u32, Error> {
    for d in [&spec.run_dir, &spec.log_dir] {
        sys::create_private_dir(d).map_err(io_ctx(format!("creating {}", d.display())))?;
    }
    let spec_path = spec_file(&spec.run_dir);
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| Error::Start(format!("encoding the spec: {e}")))?;
    sys::write_replace(&spec_path, &json, 0o600)
        .map_err(io_ctx(format!("writing {}", spec_path.display())))?;
    let pid_file = spec.run_dir.join("shim.pid");
    // A stale pid file would name the old shim as this one.
    match std::fs::remove_file(&pid_file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_ctx(format!("removing {}", pid_file.display()))(e));
        }
        _ => {}
    }
    let mut cmd = Command::new(lab_exe);
    cmd.arg("shim")
        .arg("--spec")
        .arg(&spec_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // No pre_exec hook (the shim starts its own session): std spawns it
    // with posix_spawn, not fork.
    let out = cmd
        .output()
        .map_err(io_ctx(format!("running {}", lab_exe.display())))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = msg
            .strip_prefix("lab shim: ")
            .map(str::to_string)
            .unwrap_or(msg);
        return Err(Error::Start(if msg.is_empty() {
            out.status.to_string()
        } else {
            msg
        }));
    }
    let text = std::fs::read_to_string(&pid_file)
        .map_err(io_ctx(format!("reading {}", pid_file.display())))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Start(format!("{} holds {text:?}, not a PID", pid_file.display())))
}

/// The shim's host PID if `<run_dir>/shim.pid` names a live process that is
/// `lab shim --spec <run_dir>/spec.json`.
pub fn is_alive(run_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(run_dir.join("shim.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let want = spec_file(run_dir);
    args.windows(3)
        .any(|w| w[0] == b"shim" && w[1] == b"--spec" && Path::new(OsStr::from_bytes(w[2])) == want)
        .then_some(pid)
}

/// Run `argv` in the pod whose shim is `shim_pid` (its PID, UTS, IPC,
/// network and mount namespaces; the container's mount namespace if
/// `container_pid` runs), with exactly `env` (plus a default `PATH` and the
/// user's `HOME` when missing), as `run_as_user`/`run_as_group` if given,
/// with the container's `security` (capabilities, no_new_privs, seccomp):
/// what `pods/exec` does ([`crate::sys::podexec`]), with this process's
/// stdio. Returns the exit code, 128 + signal if it was killed.
#[allow(clippy::too_many_arguments)]
pub fn enter_and_exec(
    shim_pid: u32,
    argv: &[String],
    env: &[(String, String)],
    working_dir: Option<&Path>,
    run_as_user: Option<u32>,
    run_as_group: Option<u32>,
    container_pid: Option<u32>,
    security: &sys::Security,
) -> Result<i32, Error> {
    use crate::sys::podexec;
    let err = |e: io::Error| Error::Exec(e.to_string());
    let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().map_err(err);
    let stdio = podexec::Stdio::Pipes {
        stdin: Some(dup(io::stdin().as_fd())?),
        stdout: Some(dup(io::stdout().as_fd())?),
        stderr: Some(dup(io::stderr().as_fd())?),
    };
    let target = podexec::Target {
        ns_pid: shim_pid,
        container_pid,
        env,
        working_dir,
        uid: run_as_user,
        gid: run_as_group,
        security,
    };
    podexec::spawn(&target, argv, stdio)
        .and_then(|p| p.wait())
        .map_err(err)
}
