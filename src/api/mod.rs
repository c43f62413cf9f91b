//! What the `lab` CLI and the DNS pods send to the daemon and get back.
//! There is one API, the Kubernetes API (`src/daemon/kube/`): served on
//! HTTPS at `127.0.0.1:<port>` (client certificate), on the admin socket
//! `/run/lab/<cluster>/api.sock` (mode 0600, no certificate: root is the
//! admin; `curl --unix-socket` works) and, get/list/watch only, on the DNS
//! pods' read-only socket. Objects travel on the Kubernetes resource paths;
//! lab's own operations (status, the all-or-nothing `lab apply`, flows,
//! capture, faults, service rates, DNS counters, shutdown, exec targets)
//! are paths under [`LAB_API`], listed in `src/daemon/kube/lab.rs`. Errors
//! are `Status` objects.

pub mod channel;
pub mod client;
pub mod fault;
pub mod flows;

use crate::model::parse::Document;

/// The path prefix of lab's own operations (no Kubernetes resource).
pub const LAB_API: &str = "/apis/lab.dev/v1";
/// [`StatusReply`].
pub const STATUS: &str = "/apis/lab.dev/v1/status";
/// `lab apply`: an [`ApplyRequest`] → [`ApplyOutcome`].
pub const APPLIES: &str = "/apis/lab.dev/v1/applies";

/// The largest request body the API takes: one `lab apply` (every document
/// of its files, as JSON). Each object is also limited to
/// [`crate::model::parse::MAX_OBJECT_BYTES`] (3 MiB, the API server's
/// request limit) and a ConfigMap's data to 1 MiB.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplyRequest {
    pub documents: Vec<Document>,
    pub namespace: String,
    /// `-n` was given explicitly.
    #[serde(default)]
    pub explicit_namespace: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// A resource name as kubectl accepts it (`pods`, `deploy`, `svc`…).
    pub resource: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lines {
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ListQuery {
    /// Comma-separated resource names (`pods,svc`, or `all`).
    pub resources: String,
    pub namespace: Option<String>,
    #[serde(default)]
    pub all_namespaces: bool,
    pub name: Option<String>,
    pub selector: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectList {
    /// Kubernetes JSON objects.
    pub items: Vec<serde_json::Value>,
    pub resource_version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsQuery {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
    #[serde(default)]
    pub previous: bool,
    #[serde(default)]
    pub follow: bool,
    pub tail: Option<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatusReply {
    pub cluster: String,
    pub pod_cidr: String,
    pub service_cidr: String,
    pub dns_ip: String,
    pub node_netns: String,
    pub daemon_pid: u32,
    pub started_at: String,
    pub pods: usize,
    pub pods_ready: usize,
    pub services: usize,
    pub objects: usize,
    pub resource_version: u64,
    /// Free-form data-plane facts (policy rule count, counters).
    #[serde(default)]
    pub dataplane: serde_json::Map<String, serde_json::Value>,
    /// Per-service data-plane counters (`ns/name` → counters).
    #[serde(default)]
    pub service_counters: std::collections::BTreeMap<String, serde_json::Value>,
}

/// What [`APPLIES`] answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// kubectl-style lines: `deployment.apps/backend created`.
    pub results: Vec<String>,
    pub warnings: Vec<String>,
}

/// `lab capture`: what to capture and when to stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureQuery {
    pub namespace: String,
    /// `svc0`, `svc/NAME` or `pod/NAME`.
    pub target: String,
    /// Stop after this many packets (0 or absent: no limit).
    #[serde(default)]
    pub count: u64,
    /// Stop after this long.
    #[serde(default)]
    pub duration_ms: Option<u64>,
}
