//! The daemon's local HTTP/JSON API on `/run/lab/<cluster>/api.sock`
//! (mode 0600). The CLI is its client; `curl --unix-socket` works too.
//!
//! | method | path | body / query | answer |
//! |---|---|---|---|
//! | GET | `/v1/status` | | [`StatusReply`] |
//! | POST | `/v1/apply` | [`ApplyRequest`] | [`crate::api::ApplyOutcome`] |
//! | POST | `/v1/delete` | [`DeleteRequest`] | [`Lines`] |
//! | GET | `/v1/objects` | [`ListQuery`] | [`ObjectList`] |
//! | POST | `/v1/scale` | [`ScaleRequest`] | [`Lines`] |
//! | GET | `/v1/logs` | [`LogsQuery`] | text (streamed with `follow`) |
//! | GET | `/v1/exec` | [`PodRef`] | [`ExecTarget`] |
//! | GET | `/v1/watch` | `?since=RV&timeout_ms=N[&resources=a,b]` | [`WatchReply`] once the store passes RV (with `resources`: once one of those kinds changed after RV) |
//! | POST | `/v1/shutdown` | | stops every pod, removes the node, exits |
//! | GET | `/v1/capture` | [`CaptureQuery`] | pcapng, streamed |
//! | POST | `/v1/faults` | [`fault::FaultRequest`] | [`Lines`] |
//! | GET | `/v1/faults` | [`fault::FaultListQuery`] | [`fault::FaultList`] |
//! | POST | `/v1/faults/clear` | [`fault::FaultClearRequest`] | [`Lines`] |
//! | GET | `/v1/flows` | [`flows::FlowsQuery`] | [`flows::FlowsReply`] |
//! | GET | `/v1/flows/watch` | [`flows::FlowsQuery`] | one [`flows::FlowEventLine`] JSON per line, streamed |
//! | GET | `/metrics` | | Prometheus text format (also on the Kubernetes API) |
//! | GET | `/v1/metrics/services` | | [`flows::ServiceRates`]: counters for `lab top svc` |
//!
//! Errors are `{"error": "...", "errors": [...]}` with a 4xx/5xx status.

pub mod client;
pub mod fault;
pub mod flows;

use crate::model::parse::Document;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteRequest {
    pub namespace: String,
    #[serde(default)]
    pub targets: Vec<Target>,
    /// Delete what these manifests name.
    #[serde(default)]
    pub documents: Vec<Document>,
    pub grace_period: Option<i64>,
    #[serde(default)]
    pub ignore_not_found: bool,
    /// Delete every object of `targets[0].resource` matching this selector.
    pub selector: Option<String>,
    /// Wait until deleted pods are gone.
    #[serde(default)]
    pub wait: bool,
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
pub struct ScaleRequest {
    pub namespace: String,
    pub resource: String,
    pub name: String,
    pub replicas: i32,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    pub container: Option<String>,
}

/// What `lab exec` needs to enter a pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecTarget {
    pub shim_pid: u32,
    pub container: String,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// The container's process in the pod's PID namespace (its mount
    /// namespace holds the container's volume mounts).
    #[serde(default)]
    pub container_pid: Option<u32>,
    /// The container's privileges: `lab exec` runs with the same.
    #[serde(default)]
    pub security: crate::sys::security::Security,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatchQuery {
    /// Answer once the store's resource version is above this.
    pub since: u64,
    /// ...or after this long with the same version (at most 300 000).
    #[serde(default = "default_watch_timeout_ms")]
    pub timeout_ms: u64,
    /// Only changes to objects of these resources count (comma-separated,
    /// as `ListQuery::resources`); none: any change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
}

fn default_watch_timeout_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WatchReply {
    pub resource_version: u64,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
    #[serde(default)]
    pub errors: Vec<String>,
}

/// What `/v1/apply` answers.
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

/// `lab node cordon|uncordon`: set or clear a node's `spec.unschedulable`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CordonRequest {
    pub name: String,
    pub unschedulable: bool,
}

/// Evict a pod (as the API's `pods/eviction`): a graceful delete.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvictRequest {
    pub namespace: String,
    pub name: String,
    pub grace_period: Option<i64>,
}
