//! Nothing lost in a restart gap: a tiny holder process keeps the queues of
//! the persistent multi-queue TUN `svc0` open while no daemon runs.
//!
//! Without a reader, a TUN drops every packet routed into it (the kernel's
//! `tun_net_xmit` finds no attached queue). A queue stays attached as long
//! as any descriptor of its open file does, and packets routed into it then
//! wait in its ring (up to the device's `txqueuelen`, 500 packets per
//! queue) until someone reads it.
//!
//! The holder is the lab binary (`lab --cluster C tun-holder --run-dir D
//! --queues N`, hidden), started by the daemon in a session of its own so it
//! outlives the daemon (SIGKILL included). It never reads: it holds
//! descriptors 3..3+N, the same open files as **all** of the daemon's
//! queues, which the daemon reads while it runs. Holding them all matters:
//! the kernel removes a closed queue from the set it spreads flows over and
//! frees what waited in it, so a queue closed with the daemon would lose the
//! packets that reached it between the daemon's last read and its exit (on
//! SIGKILL the kernel tears the address space down before it closes
//! descriptors: milliseconds). With every queue held, the set never changes
//! across a restart: each flow keeps its queue and its order.
//!
//! The next daemon takes copies of the descriptors with `pidfd_getfd`
//! (checked to be `svc0` queues with the virtio-net header: the device keeps
//! the flags its first queue set) and reads what queued. `lab down` stops
//! the holder (by its pidfd, after checking its command line); it also exits
//! by itself within a second when the device is gone or the cluster's run
//! directory was removed.

use crate::sys::pidfd::PidFd;
use crate::sys::process;
use crate::sys::tun::{self, Queue};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// The hidden subcommand.
pub const SUBCOMMAND: &str = "tun-holder";
/// The first descriptor number the holder keeps a queue on.
const HELD_FD: i32 = 3;
/// At most this many queues are held (the data plane uses ≤ 4).
const MAX_HELD: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("taking the TUN queue from the holder (pid {pid}): {source}")]
    Take { pid: u32, source: io::Error },
    #[error("starting the TUN holder: {0}")]
    Spawn(io::Error),
}

/// Where the holder's files live and what it runs as.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    pub lab_exe: PathBuf,
    pub cluster: String,
    pub run_dir: PathBuf,
}

impl HoldConfig {
    fn pid_file(&self) -> PathBuf {
        pid_file(&self.run_dir)
    }
}

fn pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("tun-holder.pid")
}

/// A running holder, found or started by this daemon.
#[derive(Debug)]
pub struct Holder {
    pid: u32,
    pidfd: PidFd,
    /// Set when this daemon started it (so it reaps it).
    child: Option<Child>,
    pid_file: PathBuf,
}

impl Holder {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the holder still runs (it exits by itself when the device
    /// it holds was deleted).
    pub fn alive(&self) -> bool {
        !self.pidfd.exited()
    }

    /// Stop the holder (the cluster is going away): SIGKILL through its
    /// pidfd, wait for it, remove its pid file.
    pub fn stop(mut self) {
        if let Err(e) = self.pidfd.signal(nix::sys::signal::Signal::SIGKILL) {
            tracing::warn!(pid = self.pid, error = %e, "stopping the TUN holder");
        }
        if !self.pidfd.wait_exited(Duration::from_secs(2)) {
            tracing::warn!(pid = self.pid, "the TUN holder did not exit within 2 s");
        }
        if let Some(mut c) = self.child.take()
            && let Err(e) = c.wait()
        {
            tracing::warn!(pid = self.pid, error = %e, "reaping the TUN holder");
        }
        if let Err(e) = std::fs::remove_file(&self.pid_file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.pid_file.display(), error = %e, "removing the TUN holder's pid file");
        }
    }
}

/// The queue count of `pid` if it runs `lab --cluster <cluster> tun-holder
/// … --queues N`.
fn holder_queues(pid: u32, cluster: &str) -> Option<usize> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours = args
        .windows(2)
        .any(|w| w[0] == b"--cluster" && w[1] == cluster.as_bytes())
        && args.iter().any(|a| *a == SUBCOMMAND.as_bytes());
    if !ours {
        return None;
    }
    args.windows(2)
        .find(|w| w[0] == b"--queues")
        .and_then(|w| std::str::from_utf8(w[1]).ok()?.parse().ok())
        .filter(|n| (1..=MAX_HELD).contains(n))
}

/// The cluster's holder, if one runs, and how many queues it holds: its pid
/// file names it, and its pidfd (opened before the command line is checked,
/// so it names that process and no later one with the same pid) says it is
/// ours.
fn find(run_dir: &Path, cluster: &str) -> Option<(u32, PidFd, usize)> {
    let pid: u32 = std::fs::read_to_string(pid_file(run_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let pidfd = PidFd::open(pid).ok()??;
    let n = holder_queues(pid, cluster)?;
    (!pidfd.exited()).then_some((pid, pidfd, n))
}

/// Take over the running holder's queues: copies of its descriptors, each
/// checked to be an attached `name` queue with the virtio-net header.
/// `Ok(None)` when no holder runs. A holder whose queues cannot all be
/// taken is stopped (a queue nobody reads would swallow the flows hashed to
/// it) and the error returned, so the caller opens the device afresh.
pub fn adopt(cfg: &HoldConfig, name: &str) -> Result<Option<(Holder, Vec<Queue>)>, HoldError> {
    let Some((pid, pidfd, n)) = find(&cfg.run_dir, &cfg.cluster) else {
        return Ok(None);
    };
    let holder = Holder {
        pid,
        pidfd,
        child: None,
        pid_file: cfg.pid_file(),
    };
    let taken: io::Result<Vec<Queue>> = (0..n as i32)
        .map(|i| {
            holder
                .pidfd
                .get_fd(HELD_FD + i)
                .and_then(|fd| Queue::adopt(fd, name))
        })
        .collect();
    match taken {
        Ok(q) => Ok(Some((holder, q))),
        Err(source) => {
            holder.stop();
            Err(HoldError::Take { pid, source })
        }
    }
}

/// Start a holder for `queues` (the daemon keeps reading its own
/// descriptors of the same queues) and record its pid.
pub fn spawn(cfg: &HoldConfig, queues: &[Queue]) -> Result<Holder, HoldError> {
    if queues.is_empty() || queues.len() > MAX_HELD {
        return Err(HoldError::Spawn(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} queues to hold (1 to {MAX_HELD})", queues.len()),
        )));
    }
    let run_dir = cfg.run_dir.as_os_str();
    let count = queues.len().to_string();
    let args: [&std::ffi::OsStr; 7] = [
        "--cluster".as_ref(),
        cfg.cluster.as_ref(),
        SUBCOMMAND.as_ref(),
        "--run-dir".as_ref(),
        run_dir,
        "--queues".as_ref(),
        count.as_ref(),
    ];
    let fds: Vec<_> = queues.iter().map(|q| q.as_fd()).collect();
    let child =
        process::spawn_with_fds(&cfg.lab_exe, &args, &fds, HELD_FD).map_err(HoldError::Spawn)?;
    let pid = child.id();
    let pidfd = match PidFd::open(pid) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(HoldError::Spawn(io::Error::other(
                "the TUN holder exited at once",
            )));
        }
        Err(e) => return Err(HoldError::Spawn(e)),
    };
    let holder = Holder {
        pid,
        pidfd,
        child: Some(child),
        pid_file: cfg.pid_file(),
    };
    if let Err(e) = super::runtime::write_atomic(
        &holder.pid_file,
        pid.to_string().as_bytes(),
        super::runtime::POD_READABLE,
    ) {
        holder.stop();
        return Err(HoldError::Spawn(e));
    }
    Ok(holder)
}

/// `lab down` without a daemon: stop the cluster's holder if one runs.
pub fn stop_offline(run_dir: &Path, cluster: &str) -> Option<String> {
    let (pid, pidfd, _) = find(run_dir, cluster)?;
    Holder {
        pid,
        pidfd,
        child: None,
        pid_file: pid_file(run_dir),
    }
    .stop();
    Some(format!("stopped the TUN holder {pid}"))
}

/// The holder process: keep descriptors 3..3+`queues` open, never read
/// them; exit when the device is gone or the cluster's run directory was
/// removed.
pub fn main(run_dir: &Path, queues: usize) -> i32 {
    if !(1..=MAX_HELD).contains(&queues) {
        eprintln!("tun-holder: --queues must be 1 to {MAX_HELD}");
        return 2;
    }
    let mut held = Vec::with_capacity(queues);
    for i in 0..queues as i32 {
        let q = process::take_inherited_fd(HELD_FD + i)
            .and_then(|fd| Queue::adopt(fd, super::dataplane::TUN_NAME));
        match q {
            Ok(q) => held.push(q),
            Err(e) => {
                eprintln!("tun-holder: descriptor {}: {e}", HELD_FD + i);
                return 1;
            }
        }
    }
    loop {
        // The device going away shows on every queue alike.
        match tun::wait_error(held[0].as_raw_fd(), 1000) {
            Ok(true) => return 0,
            Ok(false) => {}
            Err(e) => {
                eprintln!("tun-holder: poll: {e}");
                return 1;
            }
        }
        if !run_dir.is_dir() {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_clusters_holder_is_recognised() {
        // This test process is no holder.
        assert_eq!(holder_queues(std::process::id(), "lab"), None);
        // A pid file naming some other process is not trusted.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(pid_file(dir.path()), std::process::id().to_string()).unwrap();
        assert!(find(dir.path(), "lab").is_none());
        assert!(stop_offline(dir.path(), "lab").is_none());
        // Nor a missing or garbled one.
        std::fs::write(pid_file(dir.path()), "not a pid").unwrap();
        assert!(find(dir.path(), "lab").is_none());
    }

    #[test]
    fn the_holder_refuses_a_bad_queue_count() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(main(dir.path(), 0), 2);
        assert_eq!(main(dir.path(), MAX_HELD + 1), 2);
    }
}
