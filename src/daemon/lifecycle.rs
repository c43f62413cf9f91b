//! A pod sandbox's life on the machine — its network namespace and veth,
//! its files, its shim — as one sequence behind one seam ([`PodSys`]).
//!
//! The daemon runs it on the real machine ([`HostSys`]: netlink, namespace
//! files, the shim binary, pidfds); the tests below run the same sequence on
//! a recording fake, so starting, re-adopting after a daemon crash, tearing
//! down and a start that fails half way are unit-tested without root.

use super::podspec::Prepared;
use crate::cluster::host_veth;
use crate::sys::net::{self, NetnsHandle};
use crate::sys::{netns, pidfd};
use crate::wire::shim::ShimSpec;
use async_trait::async_trait;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An error from the machine, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub(crate) struct SysError {
    pub op: String,
    pub message: String,
}

impl SysError {
    fn new(op: impl Into<String>, e: impl std::fmt::Display) -> SysError {
        SysError {
            op: op.into(),
            message: e.to_string(),
        }
    }
}

/// Which step of a pod start failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("creating the pod's network namespace: {0}")]
    Netns(SysError),
    #[error("pod network: {0}")]
    Network(SysError),
    #[error("pod files: {0}")]
    Files(SysError),
    #[error("starting the pod's shim: {0}")]
    Shim(SysError),
}

/// What a pod's lifecycle needs from the machine.
#[async_trait]
pub(crate) trait PodSys: Send + Sync {
    /// Create the named netns unless it exists.
    async fn ensure_netns(&self, netns: &str) -> Result<(), SysError>;
    /// Delete the named netns and its `/etc/netns` directory; Ok if absent.
    fn delete_netns(&self, netns: &str) -> Result<(), SysError>;
    /// Whether the netns of the node holding `ip` has a link of this name.
    async fn has_link(&self, ip: Ipv4Addr, name: &str) -> Result<bool, SysError>;
    /// Wire the pod netns to the node (veth, address, routes, neighbour).
    async fn add_pod_network(&self, netns: &str, veth: &str, ip: Ipv4Addr) -> Result<(), SysError>;
    /// Remove the node side of the pod's network; Ok if already gone.
    async fn remove_pod_network(&self, veth: &str, ip: Ipv4Addr) -> Result<(), SysError>;
    fn write_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError>;
    fn create_dir(&self, path: &Path) -> Result<(), SysError>;
    /// Create a directory (and its parents) only root may enter (0700).
    fn create_private_dir(&self, path: &Path) -> Result<(), SysError>;
    /// Remove a directory tree; Ok if absent.
    fn remove_dir(&self, path: &Path) -> Result<(), SysError>;
    fn read_file(&self, path: &Path) -> Option<Vec<u8>>;
    /// The pid of the live shim whose run directory this is.
    fn shim_alive(&self, run_dir: &Path) -> Option<u32>;
    /// Start a shim for `spec`; returns its pid once it is up.
    async fn spawn_shim(&self, spec: &ShimSpec) -> Result<u32, SysError>;
    fn signal(&self, pid: u32, signal: nix::sys::signal::Signal);
    /// Wait up to `timeout` for `pid` to exit; true if it is gone.
    async fn wait_exit(&self, pid: u32, timeout: Duration) -> bool;
}

/// A started (or re-adopted) sandbox.
#[derive(Debug)]
pub(crate) struct Up {
    pub spec: ShimSpec,
    pub shim_pid: u32,
}

/// How a sandbox goes away.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Teardown {
    /// The shim, if one is known to run.
    pub shim_pid: Option<u32>,
    /// The shim was already told to stop (over its control socket).
    pub stop_sent: bool,
    pub grace: Duration,
    /// Remove the node side of the network (not needed when the whole node
    /// netns is about to go).
    pub remove_network: bool,
}

pub(crate) struct Lifecycle {
    sys: Arc<dyn PodSys>,
    /// Sandboxes being created at once (see [`MAX_STARTING`]).
    starting: tokio::sync::Semaphore,
}

/// At most this many sandboxes are created at the same time; more wait
/// their turn. Creating one is mostly kernel work (a network namespace, a
/// shim's mounts, two execs) with short waits between: a few at once keep
/// the cores busy, while hundreds at once (a 500-replica Deployment) only
/// thrash — every start holding a thread, a process and memory while the
/// others run.
pub(crate) const MAX_STARTING: usize = 8;

impl Lifecycle {
    pub(crate) fn new(sys: Arc<dyn PodSys>) -> Lifecycle {
        Lifecycle {
            sys,
            starting: tokio::sync::Semaphore::new(MAX_STARTING),
        }
    }

    /// Bring a pod's sandbox up: re-adopt its shim if one still runs;
    /// otherwise netns, network (unless its veth exists), files, shim, in
    /// that order, stopping at the first step that fails.
    pub(crate) async fn bring_up(
        &self,
        prepared: &Prepared,
        netns_name: &str,
        ip: Ipv4Addr,
    ) -> Result<Up, StartError> {
        let spec = &prepared.spec;
        if let Some(pid) = self.sys.shim_alive(&spec.run_dir) {
            let saved = self
                .sys
                .read_file(&spec.run_dir.join("spec.json"))
                .and_then(|b| serde_json::from_slice::<ShimSpec>(&b).ok())
                .unwrap_or_else(|| spec.clone());
            tracing::info!(shim_pid = pid, "re-adopted the pod's shim");
            return Ok(Up {
                spec: saved,
                shim_pid: pid,
            });
        }
        // Closed never: `acquire` fails only on a closed semaphore.
        let _turn = self.starting.acquire().await.ok();
        let t0 = Instant::now();
        self.sys
            .ensure_netns(netns_name)
            .await
            .map_err(StartError::Netns)?;
        let veth = host_veth(ip);
        if !self
            .sys
            .has_link(ip, &veth)
            .await
            .map_err(StartError::Network)?
        {
            self.sys
                .add_pod_network(netns_name, &veth, ip)
                .await
                .map_err(StartError::Network)?;
        }
        let t_net = t0.elapsed();
        self.write_files(prepared, netns_name)
            .map_err(StartError::Files)?;
        let t_files = t0.elapsed();
        let pid = self.sys.spawn_shim(spec).await.map_err(StartError::Shim)?;
        // Where a pod start's time goes (`lab up -v` shows the rest).
        tracing::info!(
            shim_pid = pid,
            network_us = t_net.as_micros() as u64,
            files_us = (t_files - t_net).as_micros() as u64,
            shim_us = (t0.elapsed() - t_files).as_micros() as u64,
            "pod sandbox up"
        );
        Ok(Up {
            spec: spec.clone(),
            shim_pid: pid,
        })
    }

    fn write_files(&self, prepared: &Prepared, netns_name: &str) -> Result<(), SysError> {
        use super::runtime::POD_READABLE;
        let (files, spec) = (&prepared.files, &prepared.spec);
        self.sys.write_file(
            &spec.resolv_conf,
            files.resolv_conf.as_bytes(),
            POD_READABLE,
        )?;
        self.sys
            .write_file(&spec.hosts, files.hosts.as_bytes(), POD_READABLE)?;
        let etc = etc_netns(netns_name).join("resolv.conf");
        self.sys
            .write_file(&etc, files.resolv_conf.as_bytes(), POD_READABLE)?;
        for d in &files.private_dirs {
            self.sys.create_private_dir(d)?;
        }
        for d in &files.dirs {
            self.sys.create_dir(d)?;
        }
        for (p, content, mode) in &files.files {
            self.sys.write_file(p, content, *mode)?;
        }
        Ok(())
    }

    /// Stop the shim (SIGTERM unless told over its socket, SIGKILL after the
    /// grace period and 3 s more), then remove the network, the netns and
    /// the pod's directories. Every step is tried; failures are logged.
    pub(crate) async fn teardown(
        &self,
        t: Teardown,
        ip: Option<Ipv4Addr>,
        netns_name: &str,
        dirs: &[PathBuf],
    ) {
        use nix::sys::signal::Signal;
        let run_dir = dirs.first();
        let pid = t
            .shim_pid
            .or_else(|| run_dir.and_then(|d| self.sys.shim_alive(d)));
        if let Some(pid) = pid {
            if !t.stop_sent {
                self.sys.signal(pid, Signal::SIGTERM);
            }
            if !self
                .sys
                .wait_exit(pid, t.grace + Duration::from_secs(3))
                .await
            {
                self.sys.signal(pid, Signal::SIGKILL);
                if !self.sys.wait_exit(pid, Duration::from_secs(2)).await {
                    tracing::warn!(pid, "pod shim still alive 2 s after SIGKILL");
                }
            }
        }
        if t.remove_network
            && let Some(ip) = ip
            && let Err(e) = self.sys.remove_pod_network(&host_veth(ip), ip).await
        {
            tracing::warn!(pod_ip = %ip, error = %e, "removing pod network");
        }
        if !netns_name.is_empty()
            && let Err(e) = self.sys.delete_netns(netns_name)
        {
            tracing::warn!(netns = netns_name, error = %e, "deleting netns");
        }
        for d in dirs {
            if let Err(e) = self.sys.remove_dir(d) {
                tracing::warn!(error = %e, "removing pod directory");
            }
        }
    }
}

fn etc_netns(netns_name: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns_name)
}

/// Delete a pod's named netns and its `/etc/netns` directory; Ok if absent.
pub(crate) fn delete_pod_netns(name: &str) -> Result<(), SysError> {
    netns::delete(name).map_err(|e| SysError::new(format!("delete netns {name}"), e))?;
    remove_tree(&etc_netns(name))
}

fn remove_tree(path: &Path) -> Result<(), SysError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_op("remove", path, e)),
        _ => Ok(()),
    }
}

/// The real machine: netlink in the nodes' netns, `/run/netns`, the file
/// system, the lab binary as shim, pidfds.
pub(crate) struct HostSys {
    /// Each node's pod range and netlink handle: a pod's veth lives in the
    /// node whose range holds its address.
    pub nodes: Vec<(ipnetwork::Ipv4Network, Arc<NetnsHandle>)>,
    pub lab_exe: PathBuf,
}

impl HostSys {
    fn node(&self, ip: Ipv4Addr) -> Result<&NetnsHandle, SysError> {
        self.nodes
            .iter()
            .find(|(r, _)| r.contains(ip))
            .map(|(_, h)| h.as_ref())
            .ok_or_else(|| {
                SysError::new(
                    format!("pod address {ip}"),
                    std::io::Error::other("in no node's pod range"),
                )
            })
    }
}

fn io_op(op: &str, path: &Path, e: std::io::Error) -> SysError {
    SysError::new(format!("{op} {}", path.display()), e)
}

#[async_trait]
impl PodSys for HostSys {
    async fn ensure_netns(&self, name: &str) -> Result<(), SysError> {
        let n = name.to_string();
        tokio::task::spawn_blocking(move || netns::ensure(&n))
            .await
            .map_err(|e| SysError::new("netns thread", e))?
            .map(|_| ())
            .map_err(|e| SysError::new(format!("netns {name}"), e))
    }

    fn delete_netns(&self, name: &str) -> Result<(), SysError> {
        delete_pod_netns(name)
    }

    async fn has_link(&self, ip: Ipv4Addr, name: &str) -> Result<bool, SysError> {
        self.node(ip)?
            .link(name)
            .await
            .map(|l| l.is_some())
            .map_err(|e| SysError::new(format!("link {name}"), e))
    }

    async fn add_pod_network(
        &self,
        netns_name: &str,
        veth: &str,
        ip: Ipv4Addr,
    ) -> Result<(), SysError> {
        net::add_pod(self.node(ip)?, netns_name, veth, ip)
            .await
            .map(|_| ())
            .map_err(|e| SysError::new(format!("add {veth} ({ip})"), e))
    }

    async fn remove_pod_network(&self, veth: &str, ip: Ipv4Addr) -> Result<(), SysError> {
        net::remove_pod(self.node(ip)?, veth, ip)
            .await
            .map_err(|e| SysError::new(format!("remove {veth} ({ip})"), e))
    }

    fn write_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
        // Every start writes a pod's files anew: no sync to disk needed.
        super::runtime::write_atomic_unsynced(path, data, mode).map_err(|e| io_op("write", path, e))
    }

    fn create_dir(&self, path: &Path) -> Result<(), SysError> {
        std::fs::create_dir_all(path).map_err(|e| io_op("create", path, e))
    }

    fn create_private_dir(&self, path: &Path) -> Result<(), SysError> {
        crate::sys::process::create_private_dir(path).map_err(|e| io_op("create", path, e))
    }

    fn remove_dir(&self, path: &Path) -> Result<(), SysError> {
        remove_tree(path)
    }

    fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    fn shim_alive(&self, run_dir: &Path) -> Option<u32> {
        crate::shim::is_alive(run_dir)
    }

    async fn spawn_shim(&self, spec: &ShimSpec) -> Result<u32, SysError> {
        let (exe, spec) = (self.lab_exe.clone(), spec.clone());
        tokio::task::spawn_blocking(move || crate::shim::spawn(&exe, &spec))
            .await
            .map_err(|e| SysError::new("shim thread", e))?
            .map_err(|e| SysError::new("lab shim", e))
    }

    fn signal(&self, pid: u32, signal: nix::sys::signal::Signal) {
        if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal) {
            tracing::debug!(pid, ?signal, error = %e, "signal");
        }
    }

    async fn wait_exit(&self, pid: u32, timeout: Duration) -> bool {
        pidfd::wait_exit(pid, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::podspec::PodFiles;
    use nix::sys::signal::Signal;
    use std::collections::{HashMap, HashSet};
    use std::sync::Mutex;

    /// Records every call; fails the step named in `fail`; knows which
    /// shims are alive and which processes exit when signalled.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<String>>,
        fail: Option<&'static str>,
        links: Mutex<HashSet<String>>,
        alive: Mutex<HashMap<PathBuf, u32>>,
        files: Mutex<HashMap<PathBuf, Vec<u8>>>,
        /// Processes that ignore SIGTERM.
        stubborn: HashSet<u32>,
        /// Processes that have exited.
        exited: Mutex<HashSet<u32>>,
    }

    impl Fake {
        fn record(&self, call: String) -> Result<(), SysError> {
            let step = call
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            self.calls.lock().unwrap().push(call);
            match self.fail {
                Some(f) if f == step => Err(SysError::new(step, "injected failure")),
                _ => Ok(()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        fn steps(&self) -> Vec<String> {
            self.calls()
                .iter()
                .map(|c| c.split_whitespace().next().unwrap().to_string())
                .collect()
        }
    }

    #[async_trait]
    impl PodSys for Fake {
        async fn ensure_netns(&self, n: &str) -> Result<(), SysError> {
            self.record(format!("ensure_netns {n}"))
        }
        fn delete_netns(&self, n: &str) -> Result<(), SysError> {
            self.record(format!("delete_netns {n}"))
        }
        async fn has_link(&self, _ip: Ipv4Addr, name: &str) -> Result<bool, SysError> {
            self.record(format!("has_link {name}"))?;
            Ok(self.links.lock().unwrap().contains(name))
        }
        async fn add_pod_network(&self, n: &str, v: &str, ip: Ipv4Addr) -> Result<(), SysError> {
            self.record(format!("add_pod_network {n} {v} {ip}"))?;
            self.links.lock().unwrap().insert(v.to_string());
            Ok(())
        }
        async fn remove_pod_network(&self, v: &str, ip: Ipv4Addr) -> Result<(), SysError> {
            self.record(format!("remove_pod_network {v} {ip}"))?;
            self.links.lock().unwrap().remove(v);
            Ok(())
        }
        fn write_file(&self, p: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
            self.record(format!("write_file {} {mode:o}", p.display()))?;
            self.files
                .lock()
                .unwrap()
                .insert(p.to_path_buf(), data.to_vec());
            Ok(())
        }
        fn create_dir(&self, p: &Path) -> Result<(), SysError> {
            self.record(format!("create_dir {}", p.display()))
        }
        fn create_private_dir(&self, p: &Path) -> Result<(), SysError> {
            self.record(format!("create_private_dir {}", p.display()))
        }
        fn remove_dir(&self, p: &Path) -> Result<(), SysError> {
            self.record(format!("remove_dir {}", p.display()))
        }
        fn read_file(&self, p: &Path) -> Option<Vec<u8>> {
            self.files.lock().unwrap().get(p).cloned()
        }
        fn shim_alive(&self, run_dir: &Path) -> Option<u32> {
            let pid = *self.alive.lock().unwrap().get(run_dir)?;
            (!self.exited.lock().unwrap().contains(&pid)).then_some(pid)
        }
        async fn spawn_shim(&self, spec: &ShimSpec) -> Result<u32, SysError> {
            self.record(format!("spawn_shim {}", spec.pod_name))?;
            self.alive
                .lock()
                .unwrap()
                .insert(spec.run_dir.clone(), 4242);
            Ok(4242)
        }
        fn signal(&self, pid: u32, s: Signal) {
            let _ = self.record(format!("signal {pid} {s:?}"));
            if s == Signal::SIGKILL || !self.stubborn.contains(&pid) {
                self.exited.lock().unwrap().insert(pid);
            }
        }
        async fn wait_exit(&self, pid: u32, timeout: Duration) -> bool {
            let _ = self.record(format!("wait_exit {pid} {}s", timeout.as_secs()));
            self.exited.lock().unwrap().contains(&pid)
        }
    }

    fn prepared() -> Prepared {
        let run_dir = PathBuf::from("/run/lab/c/pods/uid1");
        let state = PathBuf::from("/var/lib/lab/c/pods/uid1");
        let spec = ShimSpec {
            cluster: "c".into(),
            namespace: "default".into(),
            pod_name: "web".into(),
            pod_uid: "uid1".into(),
            hostname: "web".into(),
            netns_path: PathBuf::from("/run/netns/c-default-web"),
            pod_ip: IP,
            run_dir: run_dir.clone(),
            log_dir: PathBuf::from("/var/log/lab/c/pods/default_web_uid1"),
            resolv_conf: state.join("resolv.conf"),
            hosts: state.join("hosts"),
            hide_paths: Vec::new(),
            root_files: Vec::new(),
            restart_policy: Default::default(),
            termination_grace_period_seconds: 30,
            containers: Vec::new(),
            log_rotation: Default::default(),
        };
        Prepared {
            spec,
            files: PodFiles {
                resolv_conf: "nameserver 10.96.0.10\n".into(),
                hosts: "127.0.0.1 localhost\n".into(),
                dirs: vec![
                    state.join("volumes/data"),
                    run_dir.join("volumes/secret/creds"),
                ],
                private_dirs: vec![run_dir.join("volumes")],
                files: vec![
                    (state.join("volumes/cfg/key"), b"value".to_vec(), 0o644),
                    (
                        run_dir.join("volumes/secret/creds/password"),
                        b"s3cret".to_vec(),
                        0o400,
                    ),
                ],
            },
        }
    }

    const IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 7);

    fn lifecycle(fake: Fake) -> (Lifecycle, Arc<Fake>) {
        let fake = Arc::new(fake);
        (Lifecycle::new(fake.clone()), fake)
    }

    #[tokio::test]
    async fn start_creates_netns_network_files_then_the_shim() {
        let (lc, fake) = lifecycle(Fake::default());
        let up = lc.bring_up(&prepared(), "c-default-web", IP).await.unwrap();
        assert_eq!(up.shim_pid, 4242);
        let veth = host_veth(IP);
        assert_eq!(
            fake.calls(),
            [
                "ensure_netns c-default-web".to_string(),
                format!("has_link {veth}"),
                format!("add_pod_network c-default-web {veth} 10.244.0.7"),
                "write_file /var/lib/lab/c/pods/uid1/resolv.conf 644".into(),
                "write_file /var/lib/lab/c/pods/uid1/hosts 644".into(),
                "write_file /etc/netns/c-default-web/resolv.conf 644".into(),
                "create_private_dir /run/lab/c/pods/uid1/volumes".into(),
                "create_dir /var/lib/lab/c/pods/uid1/volumes/data".into(),
                "create_dir /run/lab/c/pods/uid1/volumes/secret/creds".into(),
                "write_file /var/lib/lab/c/pods/uid1/volumes/cfg/key 644".into(),
                "write_file /run/lab/c/pods/uid1/volumes/secret/creds/password 400".into(),
                "spawn_shim web".into(),
            ]
        );
    }

    #[tokio::test]
    async fn a_restart_with_the_network_in_place_keeps_it() {
        let fake = Fake::default();
        fake.links.lock().unwrap().insert(host_veth(IP));
        let (lc, fake) = lifecycle(fake);
        lc.bring_up(&prepared(), "c-default-web", IP).await.unwrap();
        assert!(!fake.steps().contains(&"add_pod_network".to_string()));
        assert!(fake.steps().contains(&"spawn_shim".to_string()));
    }

    #[tokio::test]
    async fn a_live_shim_is_re_adopted_and_nothing_is_created() {
        let p = prepared();
        let fake = Fake::default();
        fake.alive
            .lock()
            .unwrap()
            .insert(p.spec.run_dir.clone(), 777);
        // The spec the running shim was started with wins over a new one.
        let mut saved = p.spec.clone();
        saved.hostname = "saved-hostname".into();
        fake.files.lock().unwrap().insert(
            p.spec.run_dir.join("spec.json"),
            serde_json::to_vec(&saved).unwrap(),
        );
        let (lc, fake) = lifecycle(fake);
        let up = lc.bring_up(&p, "c-default-web", IP).await.unwrap();
        assert_eq!(up.shim_pid, 777);
        assert_eq!(up.spec.hostname, "saved-hostname");
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    }

    #[tokio::test]
    async fn a_start_that_fails_half_way_says_where_and_goes_no_further() {
        for (step, stops_before) in [
            ("ensure_netns", "has_link"),
            ("add_pod_network", "write_file"),
            ("write_file", "create_dir"),
            ("spawn_shim", "never"),
        ] {
            let (lc, fake) = lifecycle(Fake {
                fail: Some(step),
                ..Fake::default()
            });
            let e = lc
                .bring_up(&prepared(), "c-default-web", IP)
                .await
                .unwrap_err();
            let want = match step {
                "ensure_netns" => "network namespace",
                "add_pod_network" => "pod network",
                "write_file" => "pod files",
                _ => "shim",
            };
            assert!(e.to_string().contains(want), "{step}: {e}");
            assert!(e.to_string().contains("injected failure"), "{e}");
            let steps = fake.steps();
            assert_eq!(steps.last().map(String::as_str), Some(step), "{steps:?}");
            assert!(!steps.contains(&stops_before.to_string()), "{steps:?}");
        }
    }

    fn dirs() -> Vec<PathBuf> {
        vec![
            PathBuf::from("/run/lab/c/pods/uid1"),
            PathBuf::from("/var/lib/lab/c/pods/uid1"),
        ]
    }

    #[tokio::test]
    async fn teardown_terms_waits_then_removes_everything() {
        let (lc, fake) = lifecycle(Fake::default());
        let t = Teardown {
            shim_pid: Some(31),
            stop_sent: false,
            grace: Duration::from_secs(30),
            remove_network: true,
        };
        lc.teardown(t, Some(IP), "c-default-web", &dirs()).await;
        let veth = host_veth(IP);
        assert_eq!(
            fake.calls(),
            [
                "signal 31 SIGTERM".to_string(),
                "wait_exit 31 33s".into(),
                format!("remove_pod_network {veth} 10.244.0.7"),
                "delete_netns c-default-web".into(),
                "remove_dir /run/lab/c/pods/uid1".into(),
                "remove_dir /var/lib/lab/c/pods/uid1".into(),
            ]
        );
    }

    #[tokio::test]
    async fn teardown_kills_a_shim_that_outlives_its_grace() {
        let (lc, fake) = lifecycle(Fake {
            stubborn: [31].into(),
            ..Fake::default()
        });
        let t = Teardown {
            shim_pid: Some(31),
            stop_sent: true,
            grace: Duration::from_secs(2),
            remove_network: true,
        };
        lc.teardown(t, Some(IP), "c-default-web", &dirs()).await;
        let calls = fake.calls();
        // Told over its socket already: no SIGTERM, but SIGKILL after 2+3 s.
        assert_eq!(calls[0], "wait_exit 31 5s");
        assert_eq!(calls[1], "signal 31 SIGKILL");
        assert_eq!(calls[2], "wait_exit 31 2s");
        assert!(calls.iter().any(|c| c.starts_with("delete_netns")));
    }

    #[tokio::test]
    async fn teardown_at_shutdown_leaves_the_network_to_the_node_netns_and_goes_on_after_errors() {
        let (lc, fake) = lifecycle(Fake {
            fail: Some("delete_netns"),
            ..Fake::default()
        });
        let t = Teardown {
            shim_pid: None,
            stop_sent: false,
            grace: Duration::from_secs(2),
            remove_network: false,
        };
        lc.teardown(t, Some(IP), "c-default-web", &dirs()).await;
        // No shim known or alive: nothing to signal; no per-pod netlink
        // work; a failing netns deletion does not stop the rest.
        assert_eq!(fake.steps(), ["delete_netns", "remove_dir", "remove_dir"]);
    }

    #[tokio::test]
    async fn after_a_crash_a_shim_found_by_its_run_dir_is_stopped_too() {
        let fake = Fake::default();
        fake.alive
            .lock()
            .unwrap()
            .insert(PathBuf::from("/run/lab/c/pods/uid1"), 55);
        let (lc, fake) = lifecycle(fake);
        let t = Teardown {
            shim_pid: None,
            stop_sent: false,
            grace: Duration::from_secs(1),
            remove_network: true,
        };
        lc.teardown(t, Some(IP), "c-default-web", &dirs()).await;
        assert_eq!(fake.calls()[0], "signal 55 SIGTERM");
    }
}
