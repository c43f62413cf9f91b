//! Named network namespaces, compatible with iproute2's `ip netns`.
//!
//! A named netns is a bind mount of a namespace file on `/run/netns/NAME`,
//! exactly as `ip netns add` makes it, so `ip netns list` and
//! `ip netns exec NAME …` work on the namespaces created here (and the
//! functions here work on namespaces made by `ip netns add`).
//!
//! Namespace switching happens only on dedicated std threads, never on the
//! calling thread (which may be a tokio worker): [`run_in`] and
//! [`run_in_async`] spawn a thread per call, [`NetnsThread`] keeps one thread
//! inside a namespace for a sequence of jobs. A thread that entered a netns
//! never leaves it; it exits when its work is done, so no code ever runs on
//! a thread that is "accidentally" in the wrong namespace.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Where named network namespaces live (as for iproute2).
pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("invalid netns name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("netns {netns} already exists")]
    Exists { netns: String },
    #[error("netns {netns} does not exist")]
    NotFound { netns: String },
    #[error("invalid sysctl key {key:?}: {reason}")]
    InvalidSysctl { key: String, reason: &'static str },
    #[error("netns {netns}: {op}: {source}")]
    Io {
        netns: String,
        op: String,
        #[source]
        source: io::Error,
    },
    #[error("netns {netns}: the namespace thread panicked or exited")]
    ThreadDied { netns: String },
}

impl NetnsError {
    fn io(netns: &str, op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        NetnsError::Io {
            netns: netns.to_string(),
            op: op.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = NetnsError> = std::result::Result<T, E>;

/// Check a namespace name as iproute2 would accept it as a file name in
/// `/run/netns`.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > 255 {
        "longer than 255 bytes"
    } else if name == "." || name == ".." {
        "reserved"
    } else if name.contains('/') || name.contains('\0') {
        "contains '/' or NUL"
    } else {
        return Ok(());
    };
    Err(NetnsError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

/// `/run/netns/NAME` for a name; a string starting with `/` is taken as a
/// path to a namespace file as it is (e.g. `/proc/PID/ns/net`).
pub fn path_of(netns: &str) -> Result<PathBuf> {
    if netns.starts_with('/') {
        Ok(PathBuf::from(netns))
    } else {
        validate_name(netns)?;
        Ok(Path::new(NETNS_DIR).join(netns))
    }
}

/// Whether `path` is a namespace file (a mounted nsfs inode), not merely a
/// file left behind by an interrupted `create`.
fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Whether the named netns exists (its file is a mounted namespace).
pub fn exists(name: &str) -> bool {
    path_of(name).map(|p| is_nsfs(&p)).unwrap_or(false)
}

/// Names in `/run/netns`, sorted (what `ip netns list` shows).
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetnsError::io("-", format!("read {NETNS_DIR}"), e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| NetnsError::io("-", format!("read {NETNS_DIR}"), e))?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Open a namespace file (name or path) for `setns`.
pub fn open(netns: &str) -> Result<File> {
    let path = path_of(netns)?;
    File::open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            NetnsError::NotFound {
                netns: netns.to_string(),
            }
        } else {
            NetnsError::io(netns, format!("open {}", path.display()), e)
        }
    })
}

static RUN_NETNS_READY: AtomicBool = AtomicBool::new(false);
static RUN_NETNS_LOCK: Mutex<()> = Mutex::new(());

/// Whether `/run/netns` is a mount point with shared propagation.
fn run_netns_is_shared_mount() -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // Fields: id parent major:minor root mountpoint options [optional...] - ...
    // The last mount on the path is the one visible.
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(NETNS_DIR))
        .is_some_and(|l| {
            l.split(" - ")
                .next()
                .unwrap_or("")
                .split(' ')
                .skip(6)
                .any(|f| f.starts_with("shared:"))
        })
}

/// Make sure `/run/netns` exists and is a shared mount point, as
/// `ip netns add` does: mount propagation then carries each namespace bind
/// mount into mount namespaces created later (e.g. by `ip netns exec`).
fn ensure_run_netns() -> Result<()> {
    if RUN_NETNS_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let _lock = RUN_NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if RUN_NETNS_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(NETNS_DIR)
        .map_err(|e| NetnsError::io("-", format!("mkdir {NETNS_DIR}"), e))?;
    if !run_netns_is_shared_mount() {
        let make_shared = || {
            nix::mount::mount(
                None::<&str>,
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        match make_shared() {
            Ok(()) => {}
            // Not a mount point yet: bind it onto itself, then share it.
            Err(Errno::EINVAL) => {
                nix::mount::mount(
                    Some(NETNS_DIR),
                    NETNS_DIR,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| NetnsError::io("-", format!("bind-mount {NETNS_DIR}"), e))?;
                make_shared()
                    .map_err(|e| NetnsError::io("-", format!("make {NETNS_DIR} shared"), e))?;
            }
            Err(e) => {
                return Err(NetnsError::io("-", format!("make {NETNS_DIR} shared"), e));
            }
        }
    }
    RUN_NETNS_READY.store(true, Ordering::Release);
    Ok(())
}

/// Create the named netns, like `ip netns add NAME` but without forking.
/// Fails with [`NetnsError::Exists`] if the name is taken.
pub fn create(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    ensure_run_netns()?;
    let path = Path::new(NETNS_DIR).join(name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                NetnsError::Exists {
                    netns: name.to_string(),
                }
            } else {
                NetnsError::io(name, format!("create {}", path.display()), e)
            }
        })?;
    let target = path.clone();
    // A fresh thread gets the new namespace; the calling thread's stays.
    let made = std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || -> nix::Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
            nix::mount::mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .map_err(|e| NetnsError::io(name, "spawn thread", e))?
        .join();
    let err = match made {
        Ok(Ok(())) => return Ok(path),
        Ok(Err(e)) => NetnsError::io(name, "unshare + bind-mount the new netns", e),
        Err(_) => NetnsError::ThreadDied {
            netns: name.to_string(),
        },
    };
    if let Err(e) = fs::remove_file(&path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(netns = name, path = %path.display(), error = %e, "removing a netns file that was not mounted");
    }
    Err(err)
}

/// Create the named netns unless it already exists (a stale, unmounted file
/// of that name is replaced).
pub fn ensure(name: &str) -> Result<PathBuf> {
    let path = path_of(name)?;
    if is_nsfs(&path) {
        return Ok(path);
    }
    if path.exists() {
        delete(name)?;
    }
    match create(name) {
        Err(NetnsError::Exists { .. }) if is_nsfs(&path) => Ok(path),
        r => r,
    }
}

/// Delete the named netns like `ip netns delete`: lazy unmount, unlink.
/// Ok if it does not exist. Processes still inside keep the namespace alive.
pub fn delete(name: &str) -> Result<()> {
    validate_name(name)?;
    let path = Path::new(NETNS_DIR).join(name);
    match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(NetnsError::io(
                name,
                format!("umount {}", path.display()),
                e,
            ));
        }
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::io(
            name,
            format!("unlink {}", path.display()),
            e,
        )),
    }
}

fn enter(netns: &str, file: &File) -> Result<()> {
    nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| NetnsError::io(netns, "setns", e))
}

/// Run `f` on a new thread that has entered the netns (name or path) and
/// return its result. Blocks the caller until `f` returns; from async code
/// use [`run_in_async`].
#[cfg(test)]
pub fn run_in<F, R>(netns: &str, f: F) -> Result<R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let file = open(netns)?;
    std::thread::scope(|s| {
        let thread = std::thread::Builder::new()
            .name("netns-run".into())
            .spawn_scoped(s, || {
                enter(netns, &file)?;
                Ok(f())
            })
            .map_err(|e| NetnsError::io(netns, "spawn thread", e))?;
        thread.join().map_err(|_| NetnsError::ThreadDied {
            netns: netns.to_string(),
        })?
    })
}

fn sysctl_path(key: &str) -> Result<PathBuf> {
    let bad = |reason| NetnsError::InvalidSysctl {
        key: key.to_string(),
        reason,
    };
    // `net.ipv4.ip_forward`, or with '/' separators when a component (an
    // interface name) contains dots: `net/ipv4/conf/eth0.100/rp_filter`.
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.first() != Some(&"net") {
        // Only net.* is per network namespace; anything else would change
        // the whole machine.
        return Err(bad("only net.* sysctls are per network namespace"));
    }
    if parts.len() < 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad("malformed"));
    }
    Ok(Path::new("/proc/sys").join(rel))
}

/// Write one `net.*` sysctl of the *current thread's* netns.
fn write_sysctl_here(netns: &str, key: &str, value: &str) -> Result<()> {
    let path = sysctl_path(key)?;
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| NetnsError::io(netns, format!("open sysctl {key}"), e))?;
    f.write_all(value.as_bytes())
        .map_err(|e| NetnsError::io(netns, format!("write sysctl {key}={value}"), e))
}

#[cfg(test)]
fn read_sysctl_here(netns: &str, key: &str) -> Result<String> {
    use std::io::Read;
    let path = sysctl_path(key)?;
    let mut s = String::new();
    File::open(&path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| NetnsError::io(netns, format!("read sysctl {key}"), e))?;
    Ok(s.trim_end().to_string())
}

/// Write a `net.*` sysctl inside the netns, e.g.
/// `write_sysctl("c1-node", "net.ipv4.ip_forward", "1")`.
#[cfg(test)]
pub fn write_sysctl(netns: &str, key: &str, value: &str) -> Result<()> {
    write_sysctls(netns, &[(key, value)])
}

/// Write several `net.*` sysctls inside the netns from one thread, in order.
#[cfg(test)]
pub fn write_sysctls(netns: &str, pairs: &[(&str, &str)]) -> Result<()> {
    for (key, _) in pairs {
        sysctl_path(key)?;
    }
    run_in(netns, || {
        pairs
            .iter()
            .try_for_each(|(k, v)| write_sysctl_here(netns, k, v))
    })?
}

/// Read a `net.*` sysctl inside the netns (trailing newline removed).
#[cfg(test)]
pub fn read_sysctl(netns: &str, key: &str) -> Result<String> {
    sysctl_path(key)?;
    run_in(netns, || read_sysctl_here(netns, key))?
}

type Job = Box<dyn FnOnce() + Send>;

/// One std thread that has entered a netns and runs jobs there until this
/// value is dropped. Cheaper than [`run_in`] for many small jobs (sysctl
/// writes, opening sockets bound to the namespace).
pub struct NetnsThread {
    netns: String,
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for NetnsThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsThread")
            .field("netns", &self.netns)
            .finish()
    }
}

impl NetnsThread {
    fn start(netns: &str, ready: Box<dyn FnOnce(Result<()>) + Send>) -> Result<Self> {
        let file = open(netns)?;
        let name = netns.to_string();
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("netns-worker".into())
            .spawn(move || {
                let entered = enter(&name, &file);
                drop(file);
                let ok = entered.is_ok();
                ready(entered);
                if !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    // A panicking job must not take the thread down with it:
                    // its caller sees the dropped reply channel instead.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| NetnsError::io(netns, "spawn thread", e))?;
        Ok(NetnsThread {
            netns: netns.to_string(),
            jobs: tx,
        })
    }

    /// Start the thread and wait (briefly, blocking) until it is inside the
    /// netns.
    #[cfg(test)]
    pub fn spawn(netns: &str) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel(1);
        let t = Self::start(
            netns,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.recv().map_err(|_| NetnsError::ThreadDied {
            netns: netns.to_string(),
        })??;
        Ok(t)
    }

    /// [`NetnsThread::spawn`] for async callers.
    pub async fn spawn_async(netns: &str) -> Result<Self> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = Self::start(
            netns,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        rx.await.map_err(|_| NetnsError::ThreadDied {
            netns: netns.to_string(),
        })??;
        Ok(t)
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.jobs.send(job).map_err(|_| NetnsError::ThreadDied {
            netns: self.netns.clone(),
        })
    }

    /// Run `f` inside the netns, blocking until it returns (do not call
    /// from an async task; use [`NetnsThread::run_async`] there).
    #[cfg(test)]
    pub fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Box::new(move || {
            let _ = tx.send(f());
        }))?;
        rx.recv().map_err(|_| NetnsError::ThreadDied {
            netns: self.netns.clone(),
        })
    }

    /// Run `f` inside the netns and await its result.
    pub async fn run_async<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            let _ = tx.send(f());
        }))?;
        rx.await.map_err(|_| NetnsError::ThreadDied {
            netns: self.netns.clone(),
        })
    }

    /// Write `net.*` sysctls inside the netns, in order.
    pub async fn write_sysctls(&self, pairs: &[(&str, &str)]) -> Result<()> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| {
                sysctl_path(k)?;
                Ok((k.to_string(), v.to_string()))
            })
            .collect::<Result<_>>()?;
        let netns = self.netns.clone();
        self.run_async(move || {
            owned
                .iter()
                .try_for_each(|(k, v)| write_sysctl_here(&netns, k, v))
        })
        .await?
    }

    /// Read a `net.*` sysctl inside the netns.
    #[cfg(test)]
    pub async fn read_sysctl(&self, key: &str) -> Result<String> {
        sysctl_path(key)?;
        let (netns, key) = (self.netns.clone(), key.to_string());
        self.run_async(move || read_sysctl_here(&netns, &key))
            .await?
    }
}

/// Unique, self-cleaning namespace names for tests in this layer.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    /// A unique suffix shared by all tests of the process.
    pub(crate) fn next() -> usize {
        N.fetch_add(1, Ordering::Relaxed)
    }

    /// `labt-<pid>-<n>` names, deleted when the guard drops (even on panic).
    pub(crate) struct Names(pub(crate) Vec<String>);

    impl Names {
        pub(crate) fn new(k: usize) -> Self {
            Names(
                (0..k)
                    .map(|_| format!("labt-{}-{}", std::process::id(), next()))
                    .collect(),
            )
        }

        /// Create them all.
        pub(crate) fn create(k: usize) -> Self {
            let names = Self::new(k);
            for n in &names.0 {
                super::create(n).unwrap();
            }
            names
        }
    }

    impl Drop for Names {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = super::delete(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Names;
    use super::*;
    use std::process::Command;

    fn ip_netns_list() -> String {
        let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn listed(out: &str, name: &str) -> bool {
        out.lines()
            .any(|l| l.split_whitespace().next() == Some(name))
    }

    #[test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    fn create_list_delete_agree_with_ip_netns() {
        let ns = Names::new(1);
        let name = &ns.0[0];
        assert!(!exists(name));
        let path = create(name).unwrap();
        assert_eq!(path, Path::new(NETNS_DIR).join(name));
        assert!(exists(name));
        assert!(list().unwrap().contains(name));
        assert!(
            listed(&ip_netns_list(), name),
            "ip netns list misses {name}"
        );
        assert!(matches!(create(name), Err(NetnsError::Exists { .. })));
        assert_eq!(ensure(name).unwrap(), path);
        // `ip netns exec` works on it and sees a fresh namespace.
        let out = Command::new("ip")
            .args(["netns", "exec", name, "ip", "-o", "link"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let links = String::from_utf8_lossy(&out.stdout);
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains(": lo:"));
        delete(name).unwrap();
        assert!(!exists(name));
        assert!(!list().unwrap().contains(name));
        assert!(!listed(&ip_netns_list(), name));
        delete(name).unwrap();
        assert!(!Path::new(NETNS_DIR).join(name).exists());
    }

    #[test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    fn ensure_replaces_stale_file_and_names_are_checked() {
        let ns = Names::new(1);
        let name = &ns.0[0];
        ensure_run_netns().unwrap();
        fs::write(Path::new(NETNS_DIR).join(name), b"").unwrap();
        assert!(!exists(name));
        ensure(name).unwrap();
        assert!(exists(name));
        for bad in ["", ".", "..", "a/b"] {
            assert!(matches!(create(bad), Err(NetnsError::InvalidName { .. })));
        }
        assert!(matches!(
            run_in("labt-no-such-netns", || ()),
            Err(NetnsError::NotFound { .. })
        ));
    }

    #[test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    fn run_in_is_inside_the_netns() {
        let ns = Names::new(1);
        let name = &ns.0[0];
        create(name).unwrap();
        let ino_of = |p: &str| {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(p).unwrap().ino()
        };
        let want = ino_of(&format!("{NETNS_DIR}/{name}"));
        let (ino, ifs) = run_in(name, || {
            let ifs: Vec<String> = nix::net::if_::if_nameindex()
                .unwrap()
                .iter()
                .map(|i| i.name().to_string_lossy().into_owned())
                .collect();
            (ino_of("/proc/thread-self/ns/net"), ifs)
        })
        .unwrap();
        assert_eq!(ino, want);
        assert_eq!(ifs, vec!["lo".to_string()]);
        // The calling thread did not move.
        assert_ne!(ino_of("/proc/thread-self/ns/net"), want);

        let t = NetnsThread::spawn(name).unwrap();
        assert_eq!(
            t.run(move || ino_of("/proc/thread-self/ns/net")).unwrap(),
            want
        );
        // A panicking job reports an error and the thread keeps serving.
        assert!(t.run(|| panic!("job panics")).is_err());
        assert_eq!(t.run(|| 7).unwrap(), 7);
        delete(name).unwrap();
    }

    #[test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    fn sysctls_are_per_netns() {
        let ns = Names::new(2);
        let (a, b) = (&ns.0[0], &ns.0[1]);
        create(a).unwrap();
        create(b).unwrap();
        let root_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        write_sysctls(
            a,
            &[
                ("net.ipv4.ip_forward", "1"),
                ("net/ipv4/conf/lo/rp_filter", "2"),
            ],
        )
        .unwrap();
        assert_eq!(read_sysctl(a, "net.ipv4.ip_forward").unwrap(), "1");
        assert_eq!(read_sysctl(a, "net.ipv4.conf.lo.rp_filter").unwrap(), "2");
        assert_eq!(read_sysctl(b, "net.ipv4.ip_forward").unwrap(), "0");
        let root_after = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        assert_eq!(root_before, root_after);
        // Non-network sysctls are refused: they are not per netns.
        for key in ["kernel.hostname", "net..x", "net/../kernel/x", "net"] {
            assert!(
                matches!(
                    write_sysctl(a, key, "x"),
                    Err(NetnsError::InvalidSysctl { .. })
                ),
                "{key}"
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = NetnsThread::spawn_async(b).await.unwrap();
            t.write_sysctls(&[("net.ipv4.ip_forward", "1")])
                .await
                .unwrap();
            assert_eq!(t.read_sysctl("net.ipv4.ip_forward").await.unwrap(), "1");
        });
        assert_eq!(
            fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
            root_before
        );
    }
}
