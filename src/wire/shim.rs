//! The contract between the daemon and a pod's shim.
//!
//! The daemon writes a [`ShimSpec`] as JSON to `<run_dir>/spec.json` and starts
//! `lab shim --spec <run_dir>/spec.json`. The shim becomes PID 1 of a new PID
//! namespace inside the pod's network namespace, writes its host PID to
//! `<run_dir>/shim.pid`, and listens on `<run_dir>/shim.sock`.
//!
//! On that socket every message is one JSON object on one line. A client that
//! connects first receives the current [`ShimStatus`], then a new one after
//! every change. A client may send [`ShimCommand`]s.

pub use crate::sys::security::Security;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Everything a shim needs to run one pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShimSpec {
    pub cluster: String,
    pub namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// Already truncated to 63 characters.
    pub hostname: String,
    /// `/run/netns/<name>`: the pod's network namespace.
    pub netns_path: PathBuf,
    pub pod_ip: Ipv4Addr,
    /// Holds `spec.json`, `shim.pid`, `shim.sock`.
    pub run_dir: PathBuf,
    /// Container logs go to `<log_dir>/<container>/<restart_count>.log`;
    /// the shim's own diagnostics to `<log_dir>/shim.log`.
    pub log_dir: PathBuf,
    /// Bound onto `/etc/resolv.conf` in the pod's mount namespace.
    pub resolv_conf: PathBuf,
    /// Bound onto `/etc/hosts` in the pod's mount namespace.
    pub hosts: PathBuf,
    /// Directories hidden (an empty read-only tmpfs) in the pod's mount view,
    /// e.g. `/var/lib/lab`, `/var/log/lab`, `/etc/netns` (all of the host's
    /// `/run` is replaced by the pod's own tmpfs anyway).
    pub hide_paths: Vec<PathBuf>,
    /// Files that must exist at `/<name>` in the pod's view, as an image
    /// would carry them (`agnhost` → the lab binary, for `sh -c "/agnhost
    /// …"`): the pod then gets a root of its own mirroring the host's (see
    /// `sys::process::enter_mirror_root`); nothing is created on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_files: Vec<(String, PathBuf)>,
    pub restart_policy: RestartPolicy,
    pub termination_grace_period_seconds: u64,
    pub containers: Vec<ContainerSpec>,
    /// When to rotate container logs (the kubelet's containerLogMaxSize and
    /// containerLogMaxFiles).
    #[serde(default)]
    pub log_rotation: LogRotation,
}

/// Container log rotation, as the kubelet's `containerLogMaxSize` (10Mi)
/// and `containerLogMaxFiles` (5, the live file included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRotation {
    pub max_bytes: u64,
    pub max_files: u32,
}

impl Default for LogRotation {
    fn default() -> Self {
        LogRotation {
            max_bytes: 10 << 20,
            max_files: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    /// The program and its arguments, fully resolved (built-in images are
    /// already mapped to `[<lab exe>, "agnhost", …]`).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// Bind mounts made in the container's own mount namespace.
    pub mounts: Vec<MountSpec>,
    /// Capabilities, no_new_privs, seccomp, read-only root, runAsNonRoot.
    #[serde(default)]
    pub security: Security,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub handler: ProbeHandler,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProbeHandler {
    /// `host` defaults to the pod IP; named ports are resolved by the daemon.
    HttpGet {
        host: Option<String>,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: Option<String>,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
}

/// What the shim reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShimStatus {
    /// Host PID of the shim (PID 1 of the pod's PID namespace).
    pub shim_pid: u32,
    /// RFC 3339.
    pub started_at: String,
    pub phase: ShimPhase,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShimPhase {
    /// At least one container is running or will be restarted.
    Running,
    /// A stop command was received; containers are being terminated.
    Terminating,
    /// Every container terminated with exit code 0 and none will restart.
    Succeeded,
    /// Every container terminated, at least one not with 0, none will restart.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    /// Readiness: true when running and the readiness probe (if any) passes.
    pub ready: bool,
    pub started: bool,
    /// PID of the running container process in the pod's PID namespace
    /// (`lab exec` joins its mount namespace).
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContainerState {
    /// `reason` is `ContainerCreating`, `CrashLoopBackOff` or `StartError`.
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started_at: String,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        /// `Completed` (exit 0), `Error`, or `StartError`.
        reason: String,
        started_at: String,
        finished_at: String,
    },
}

/// Commands a client may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ShimCommand {
    /// Send the current status now.
    Status,
    /// Graceful termination: SIGTERM to every container, SIGKILL after
    /// `grace_seconds`, then the shim exits (which kills everything left in
    /// the PID namespace).
    Stop { grace_seconds: u64 },
}
