//! kubectl's human-readable output, as pure functions: the `get` tables
//! (including `-o wide`, `-A`, `--show-labels`, `--no-headers` and the
//! `kind/name` prefix of multi-kind listings), `-o name`, and `describe`.
//!
//! The layouts follow kubectl's printers (`pkg/printers/internalversion`) and
//! describers (`kubectl/pkg/describe`): the same headers, cell formats and
//! alignment. Alignment is produced by [`tabwrite`], a re-implementation of
//! Go's `text/tabwriter` elastic tabstops, configured as kubectl configures it
//! (tables: min width 6, padding 3; describe: min width 0, padding 2), so
//! column widths come out exactly as kubectl's do — including describe's
//! "column blocks" that end at a line without a tab.
//!
//! Time is an argument (`now`), so everything here is deterministic.

use crate::model::{
    ConfigMap, Deployment, EndpointSlice, Endpoints, Kind, Namespace, Object, ObjectMeta, Pod,
    ReplicaSet, Service,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, EnvVar, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The pod annotation naming the pod's network namespace (lab's NETNS column).
pub const NETNS_ANNOTATION: &str = "lab.dev/netns";

/// Options of a `get` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableOpts {
    /// `-o wide`: the extra columns.
    pub wide: bool,
    /// `-A`: a leading NAMESPACE column.
    pub all_namespaces: bool,
    /// Prefix names with `pod/`, `service/`, `deployment.apps/`… as kubectl
    /// does when several kinds are listed.
    pub show_kind: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// `--show-labels`: a trailing LABELS column.
    pub show_labels: bool,
}

/// Objects related to the one being described, looked up by the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Related {
    /// The Service's Endpoints (for the `Endpoints:` line of each port).
    pub endpoints: Option<Endpoints>,
    /// The Deployment's ReplicaSets (for `OldReplicaSets:` / `NewReplicaSet:`).
    pub replicasets: Vec<ReplicaSet>,
    /// Event lines. When every line has kubectl's five tab-separated columns
    /// (`Type\tReason\tAge\tFrom\tMessage`) they are printed under kubectl's
    /// header; otherwise each line is printed as is, indented.
    pub events: Vec<String>,
    /// Data-plane counters of a Service (lab's own `Counters:` section).
    pub counters: Option<BTreeMap<String, u64>>,
}

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

/// kubectl's AGE format: k8s.io/apimachinery `duration.HumanDuration`
/// (`45s`, `119s`, `5m30s`, `65m`, `3h12m`, `23h`, `2d3h`, `12d`, `2y30d`, `9y`).
pub fn human_age(d: Duration) -> String {
    human_duration_ns(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// `HumanDuration` over a signed number of nanoseconds: up to 2 s in the
/// future reads `0s` (clock skew), further is `<invalid>`.
fn human_duration_ns(d: i128) -> String {
    const NS: i128 = 1_000_000_000;
    const MIN: i128 = 60 * NS;
    const HOUR: i128 = 60 * MIN;
    // Go's int(d.Seconds()) truncates toward zero, as Rust's `/` does.
    let seconds = d / NS;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / MIN;
    if minutes < 10 {
        let s = (d / NS) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        let m = (d / MIN) % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

fn system_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// kubectl's `translateTimestampSince`: `<unknown>` for an unset time.
fn since(t: Option<&Time>, now: SystemTime) -> String {
    match t {
        None => "<unknown>".into(),
        Some(t) => human_duration_ns(system_ns(now) - t.0.as_nanosecond()),
    }
}

/// Go's `time.RFC1123Z` layout, in UTC.
fn rfc1123z(t: &Time) -> String {
    t.0.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

fn rfc1123z_opt(t: Option<&Time>) -> String {
    match t {
        Some(t) => rfc1123z(t),
        // Go formats the zero time.
        None => "Mon, 01 Jan 0001 00:00:00 +0000".into(),
    }
}

// ---------------------------------------------------------------------------
// Go text/tabwriter
// ---------------------------------------------------------------------------

/// Align tab-separated cells the way Go's `text/tabwriter` does with a
/// space pad character and no flags: a column's width is computed over a
/// *block* of consecutive lines that have a tab-terminated cell in that
/// column, as `max(minwidth, widest cell + padding)`; the text after a
/// line's last tab is not part of any column and is never padded.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut tw = TabWriter {
        lines: &lines,
        widths: Vec::new(),
        minwidth,
        padding,
        out: String::with_capacity(text.len() * 2),
    };
    tw.format(0, lines.len());
    tw.out
}

struct TabWriter<'a> {
    lines: &'a [Vec<&'a str>],
    widths: Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: String,
}

impl TabWriter<'_> {
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            // The last cell of a line is not tab-terminated: it belongs to no column.
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                width = width.max(cell_width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&w) = self.widths.get(j) {
                    let pad = w.saturating_sub(cell_width(cell));
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 != self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

fn cell_width(s: &str) -> usize {
    s.chars().count()
}

// ---------------------------------------------------------------------------
// Small formatting helpers shared by tables and describe
// ---------------------------------------------------------------------------

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn opt_str(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// `labels.FormatLabels`: sorted `k=v` joined by commas, `<none>` if empty.
fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `None` for an invalid
/// operator. An empty selector is the empty string.
pub fn selector_string(sel: &LabelSelector) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k, format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let r = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        };
        reqs.push((&e.key, r));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` if empty, `<error>` if invalid.
fn format_label_selector(sel: &LabelSelector) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn protocol(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("TCP")
}

/// kubectl's `layoutContainerCells`: names and images, comma-joined.
fn container_cells(containers: &[Container]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers.iter().map(|c| opt_str(&c.image)).collect();
    (names.join(","), images.join(","))
}

fn pod_template_containers(t: Option<&PodTemplateSpec>) -> &[Container] {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}

// ---------------------------------------------------------------------------
// Pod status (the STATUS, READY and RESTARTS columns)
// ---------------------------------------------------------------------------

struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Time>,
}

fn later(acc: &mut Option<Time>, t: Option<&Time>) {
    if let Some(t) = t
        && acc.as_ref().is_none_or(|a| a.0 < t.0)
    {
        *acc = Some(t.clone());
    }
}

fn last_finished(cs: &ContainerStatus) -> Option<&Time> {
    cs.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
}

/// kubectl's `printPod` status logic.
fn pod_summary(pod: &Pod) -> PodSummary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let init_containers = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[]);
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);

    let restartable = |name: &str| {
        init_containers
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };

    let total = containers.len()
        + init_containers
            .iter()
            .filter(|c| restartable(&c.name))
            .count();
    let mut ready = 0usize;
    // An object without status has not been looked at yet: the API server
    // would have set phase Pending.
    let phase = match status {
        None => "Pending".to_string(),
        Some(s) => s
            .phase
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "Pending".to_string()),
    };
    let status_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let mut reason = if status_reason.is_empty() {
        phase.clone()
    } else {
        status_reason.to_string()
    };
    for c in conditions {
        if c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated") {
            reason = "SchedulingGated".into();
        }
    }

    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut last_restart: Option<Time> = None;
    let mut last_restartable_restart: Option<Time> = None;
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += i64::from(cs.restart_count);
        later(&mut last_restart, last_finished(cs));
        let is_restartable = restartable(&cs.name);
        if is_restartable {
            restartable_restarts += i64::from(cs.restart_count);
            later(&mut last_restartable_restart, last_finished(cs));
        }
        let state = cs.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting = state.and_then(|s| s.waiting.as_ref());
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_restartable && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = opt_str(&t.reason);
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if t.signal.unwrap_or(0) != 0 {
                format!("Init:Signal:{}", t.signal.unwrap_or(0))
            } else {
                format!("Init:ExitCode:{}", t.exit_code)
            };
        } else if let Some(r) = waiting
            .map(|w| opt_str(&w.reason))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{}/{}", i, init_containers.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            later(&mut last_restart, last_finished(cs));
            let state = cs.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .map(|w| opt_str(&w.reason))
                .unwrap_or("");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = opt_str(&t.reason);
                reason = if !r.is_empty() {
                    r.to_string()
                } else if t.signal.unwrap_or(0) != 0 {
                    format!("Signal:{}", t.signal.unwrap_or(0))
                } else {
                    format!("ExitCode:{}", t.exit_code)
                };
            } else if cs.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status_reason == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// The STATUS column of `kubectl get pods`: `Running`, `ContainerCreating`,
/// `CrashLoopBackOff`, `Completed`, `Error`, `Init:0/1`, `Terminating`, …
pub fn pod_status_reason(pod: &Pod) -> String {
    pod_summary(pod).reason
}

// ---------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------

pub(crate) fn headers(kind: Kind, wide: bool) -> Vec<&'static str> {
    let (base, extra): (&[&str], &[&str]) = match kind {
        Kind::Pod => (
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES", "NETNS"],
        ),
        Kind::Service => (
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        Kind::Endpoints => (&["NAME", "ENDPOINTS", "AGE"], &[]),
        Kind::EndpointSlice => (&["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[]),
        Kind::Deployment => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::ReplicaSet => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::ConfigMap => (&["NAME", "DATA", "AGE"], &[]),
        Kind::Namespace => (&["NAME", "STATUS", "AGE"], &[]),
    };
    let mut h = base.to_vec();
    if wide {
        h.extend_from_slice(extra);
    }
    h
}

/// The cells after NAME for one object.
pub(crate) fn row_cells(obj: &Object, wide: bool, now: SystemTime) -> Vec<String> {
    match obj {
        Object::Pod(p) => pod_row(p, wide, now),
        Object::Service(s) => service_row(s, wide, now),
        Object::Endpoints(e) => vec![
            format_endpoints(e, None),
            since(e.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::EndpointSlice(s) => vec![
            s.address_type.clone(),
            format_discovery_ports(s),
            format_discovery_endpoints(s),
            since(s.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Deployment(d) => deployment_row(d, wide, now),
        Object::ReplicaSet(r) => replicaset_row(r, wide, now),
        Object::ConfigMap(c) => vec![
            (c.data.as_ref().map_or(0, |d| d.len())
                + c.binary_data.as_ref().map_or(0, |d| d.len()))
            .to_string(),
            since(c.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Namespace(n) => vec![
            namespace_phase(n),
            since(n.metadata.creation_timestamp.as_ref(), now),
        ],
    }
}

fn pod_row(pod: &Pod, wide: bool, now: SystemTime) -> Vec<String> {
    let s = pod_summary(pod);
    let restarts = match &s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(t), now)),
        _ => s.restarts.to_string(),
    };
    let mut cells = vec![
        format!("{}/{}", s.ready, s.total),
        s.reason,
        restarts,
        since(pod.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let status = pod.status.as_ref();
        let spec = pod.spec.as_ref();
        let ip = status
            .and_then(|st| st.pod_ips.as_ref())
            .and_then(|ips| ips.first())
            .map(|ip| ip.ip.clone())
            .or_else(|| status.and_then(|st| st.pod_ip.clone()))
            .unwrap_or_default();
        let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
        let nominated = status
            .and_then(|s| s.nominated_node_name.clone())
            .unwrap_or_default();
        let gates = spec
            .and_then(|s| s.readiness_gates.as_deref())
            .unwrap_or(&[]);
        let readiness = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
            let true_count = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{}/{}", true_count, gates.len())
        };
        let netns = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NETNS_ANNOTATION))
            .map(String::as_str)
            .unwrap_or("");
        cells.extend([
            or_none(&ip).to_string(),
            or_none(&node).to_string(),
            or_none(&nominated).to_string(),
            readiness,
            or_none(netns).to_string(),
        ]);
    }
    cells
}

fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// `spec.clusterIPs`, falling back to `spec.clusterIP` for objects that only
/// carry the singular field.
fn cluster_ips(svc: &Service) -> Vec<String> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    match spec.cluster_ips.as_ref() {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect(),
    }
}

fn service_external_ip(svc: &Service, wide: bool) -> String {
    let spec = svc.spec.as_ref();
    let external_ips = spec.and_then(|s| s.external_ips.as_deref()).unwrap_or(&[]);
    match service_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".into()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.ip.clone()
                        .filter(|s| !s.is_empty())
                        .or_else(|| i.hostname.clone().filter(|s| !s.is_empty()))
                })
                .collect();
            lb.sort();
            lb.dedup();
            let mut lb_str = lb.join(",");
            // kubectl clips the load-balancer part to 16 bytes unless wide.
            if !wide && lb_str.len() > 16 {
                let mut end = 13;
                while !lb_str.is_char_boundary(end) {
                    end -= 1;
                }
                lb_str.truncate(end);
                lb_str.push_str("...");
            }
            let mut results: Vec<String> = Vec::new();
            if !lb_str.is_empty() {
                results.extend(lb_str.split(',').map(String::from));
            }
            if !external_ips.is_empty() {
                results.extend(external_ips.iter().cloned());
                return results.join(",");
            }
            if lb_str.is_empty() {
                "<pending>".into()
            } else {
                lb_str
            }
        }
        "ExternalName" => spec
            .and_then(|s| s.external_name.clone())
            .unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(svc: &Service) -> String {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let s = ports
        .iter()
        .map(|p| match p.node_port {
            Some(np) if np > 0 => format!("{}:{}/{}", p.port, np, protocol(&p.protocol)),
            _ => format!("{}/{}", p.port, protocol(&p.protocol)),
        })
        .collect::<Vec<_>>()
        .join(",");
    if s.is_empty() { "<none>".into() } else { s }
}

fn service_row(svc: &Service, wide: bool, now: SystemTime) -> Vec<String> {
    let ips = cluster_ips(svc);
    let mut cells = vec![
        service_type(svc).to_string(),
        ips.first().cloned().unwrap_or_else(|| "<none>".into()),
        service_external_ip(svc, wide),
        service_ports(svc),
        since(svc.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        cells.push(format_labels(
            svc.spec.as_ref().and_then(|s| s.selector.as_ref()),
        ));
    }
    cells
}

/// kubectl's `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
/// `port` restricts to subset ports of that name (describe's per-port line).
fn format_endpoints(ep: &Endpoints, port: Option<&str>) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or(&[]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = ss.addresses.as_deref().unwrap_or(&[]);
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(a.ip.clone());
            }
            continue;
        }
        for p in ports {
            if port.is_none_or(|name| opt_str(&p.name) == name) {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(&a.ip, &p.port.to_string()));
                }
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn list_with_more(list: Vec<String>, more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn format_discovery_ports(s: &EndpointSlice) -> String {
    const MAX: usize = 3;
    let (mut list, mut more, mut count) = (Vec::new(), false, 0);
    for p in s.ports.iter().flatten() {
        if list.len() < MAX {
            list.push(match (&p.port, &p.name) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "*".into(),
            });
        } else if list.len() == MAX {
            more = true;
        }
        count += 1;
    }
    list_with_more(list, more, count, MAX)
}

fn format_discovery_endpoints(s: &EndpointSlice) -> String {
    const MAX: usize = 3;
    let (mut list, mut more, mut count) = (Vec::new(), false, 0);
    for e in s.endpoints.iter().flatten() {
        for a in &e.addresses {
            if list.len() < MAX {
                list.push(a.clone());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(list, more, count, MAX)
}

fn deployment_row(d: &Deployment, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = &d.spec;
    let status = d.status.as_ref();
    let desired = spec.replicas.unwrap_or(1);
    let mut cells = vec![
        format!(
            "{}/{}",
            status.and_then(|s| s.ready_replicas).unwrap_or(0),
            desired
        ),
        status
            .and_then(|s| s.updated_replicas)
            .unwrap_or(0)
            .to_string(),
        status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            .to_string(),
        since(d.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(Some(&spec.template)));
        let selector = selector_string(&spec.selector).unwrap_or_else(|| "<invalid>".into());
        cells.extend([names, images, selector]);
    }
    cells
}

fn replicaset_row(r: &ReplicaSet, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = &r.spec;
    let status = r.status.as_ref();
    let mut cells = vec![
        spec.replicas.unwrap_or(1).to_string(),
        status.map_or(0, |s| s.replicas).to_string(),
        status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
            .to_string(),
        since(r.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(spec.template.as_ref()));
        let selector = format_label_selector(&spec.selector);
        cells.extend([names, images, selector]);
    }
    cells
}

fn namespace_phase(n: &Namespace) -> String {
    match n.status.as_ref().and_then(|s| s.phase.clone()) {
        Some(p) => p,
        None if n.metadata.deletion_timestamp.is_some() => "Terminating".into(),
        None => "Active".into(),
    }
}

/// `kubectl get` table for objects of one kind (the caller groups by kind
/// and separates groups with a blank line). Every line ends with `\n`; no
/// objects give an empty string.
pub fn table(objects: &[&Object], opts: &TableOpts, now: SystemTime) -> String {
    let Some(first) = objects.first() else {
        return String::new();
    };
    let kind = first.kind();
    let mut text = String::new();
    if !opts.no_headers {
        let mut h: Vec<&str> = Vec::new();
        if opts.all_namespaces && kind.namespaced() {
            h.push("NAMESPACE");
        }
        h.extend(headers(kind, opts.wide));
        if opts.show_labels {
            h.push("LABELS");
        }
        text.push_str(&h.join("\t"));
        text.push('\n');
    }
    for obj in objects {
        let mut cells: Vec<String> = Vec::new();
        if opts.all_namespaces && kind.namespaced() {
            cells.push(obj.namespace().to_string());
        }
        cells.push(if opts.show_kind {
            format!("{}/{}", obj.kind().qualified(), obj.name())
        } else {
            obj.name().to_string()
        });
        cells.extend(row_cells(obj, opts.wide, now));
        if opts.show_labels {
            cells.push(format_labels(obj.meta().labels.as_ref()));
        }
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    tabwrite(&text, 6, 3)
}

/// `-o name`: one `resource.group/name` per line (`pod/client`,
/// `deployment.apps/backend`, `service/backend-service`).
pub fn names(objects: &[&Object], kind: Kind) -> String {
    objects
        .iter()
        .map(|o| format!("{}/{}\n", kind.qualified(), o.name()))
        .collect()
}

// ---------------------------------------------------------------------------
// Describe
// ---------------------------------------------------------------------------

/// kubectl's describe `PrefixWriter` over a tabwriter (min width 0, padding 2):
/// text accumulates until a flush, which aligns it.
#[derive(Default)]
struct Desc {
    pending: String,
    out: String,
}

impl Desc {
    fn w(&mut self, level: usize, s: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(s);
    }

    fn flush(&mut self) {
        self.out.push_str(&tabwrite(&self.pending, 0, 2));
        self.pending.clear();
    }

    fn finish(mut self) -> String {
        self.flush();
        self.out
    }
}

macro_rules! w {
    ($d:expr, $level:expr, $($arg:tt)*) => {
        $d.w($level, &format!($($arg)*))
    };
}

/// `kubectl describe` for one object.
pub fn describe(obj: &Object, related: &Related, now: SystemTime) -> String {
    let mut d = Desc::default();
    match obj {
        Object::Pod(p) => describe_pod(&mut d, p, related, now),
        Object::Service(s) => describe_service(&mut d, s, related),
        Object::Deployment(dep) => describe_deployment(&mut d, dep, related),
        Object::ReplicaSet(r) => describe_replicaset(&mut d, r, related),
        Object::Endpoints(e) => describe_endpoints(&mut d, e, related),
        Object::EndpointSlice(s) => describe_endpointslice(&mut d, s, related),
        Object::ConfigMap(c) => describe_configmap(&mut d, c, related),
        Object::Namespace(n) => describe_namespace(&mut d, n),
    }
    d.finish()
}

fn name_namespace(d: &mut Desc, meta: &ObjectMeta) {
    w!(d, 0, "Name:\t{}\n", opt_str(&meta.name));
    w!(d, 0, "Namespace:\t{}\n", opt_str(&meta.namespace));
}

/// `printLabelsMultilineWithIndent`.
fn labels_multiline(d: &mut Desc, title: &str, labels: Option<&BTreeMap<String, String>>) {
    w!(d, 0, "{title}:\t");
    match labels {
        Some(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i != 0 {
                    d.w(0, "\t");
                }
                w!(d, 0, "{k}={v}\n");
            }
        }
        _ => d.w(0, "<none>\n"),
    }
}

/// `printAnnotationsMultiline` (skips kubectl's last-applied-configuration,
/// breaks long or multi-line values).
fn annotations_multiline(
    d: &mut Desc,
    title: &str,
    annotations: Option<&BTreeMap<String, String>>,
) {
    const MAX_LEN: usize = 140;
    w!(d, 0, "{title}:\t");
    let entries: Vec<(&String, &String)> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if entries.is_empty() {
        d.w(0, "<none>\n");
        return;
    }
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i != 0 {
            d.w(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_LEN || value.contains('\n') {
            w!(d, 0, "{key}:\n");
            for s in value.split('\n') {
                w!(d, 0, "\t  {}\n", shorten(s, MAX_LEN - 2));
            }
        } else {
            w!(d, 0, "{key}: {value}\n");
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

fn describe_events(d: &mut Desc, events: &[String]) {
    if events.is_empty() {
        d.w(0, "Events:\t<none>\n");
        return;
    }
    d.flush();
    let tabular = events.iter().all(|e| e.matches('\t').count() == 4);
    if tabular {
        d.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
        d.w(1, "----\t------\t----\t----\t-------\n");
    } else {
        d.w(0, "Events:\n");
    }
    for e in events {
        w!(d, 1, "{}\n", e.trim_end_matches('\n'));
    }
}

fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

fn describe_pod(d: &mut Desc, pod: &Pod, related: &Related, now: SystemTime) {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    name_namespace(d, meta);
    // The API server's priority admission sets 0 when nothing else applies.
    w!(
        d,
        0,
        "Priority:\t{}\n",
        spec.and_then(|s| s.priority).unwrap_or(0)
    );
    if let Some(pc) = spec
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Priority Class Name:\t{pc}\n");
    }
    if let Some(rc) = spec
        .and_then(|s| s.runtime_class_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Runtime Class Name:\t{rc}\n");
    }
    if let Some(sa) = spec
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Service Account:\t{sa}\n");
    }
    match spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        None => d.w(0, "Node:\t<none>\n"),
        Some(node) => {
            let host_ip = status.and_then(|s| s.host_ip.as_deref()).unwrap_or("");
            w!(d, 0, "Node:\t{node}/{host_ip}\n");
        }
    }
    if let Some(t) = status.and_then(|s| s.start_time.as_ref()) {
        w!(d, 0, "Start Time:\t{}\n", rfc1123z(t));
    }
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if let Some(t) = meta
        .deletion_timestamp
        .as_ref()
        .filter(|_| phase != "Failed" && phase != "Succeeded")
    {
        w!(
            d,
            0,
            "Status:\tTerminating (lasts {})\n",
            since(Some(t), now)
        );
        let grace = meta
            .deletion_grace_period_seconds
            .or_else(|| spec.and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        w!(d, 0, "Termination Grace Period:\t{grace}s\n");
    } else {
        w!(d, 0, "Status:\t{phase}\n");
    }
    if let Some(r) = status
        .and_then(|s| s.reason.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Reason:\t{r}\n");
    }
    if let Some(m) = status
        .and_then(|s| s.message.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Message:\t{m}\n");
    }
    w!(
        d,
        0,
        "IP:\t{}\n",
        status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("")
    );
    let pod_ips: Vec<&str> = match status.and_then(|s| s.pod_ips.as_deref()) {
        Some(ips) if !ips.is_empty() => ips.iter().map(|i| i.ip.as_str()).collect(),
        // Objects that carry only the singular field.
        _ => status
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
    };
    if pod_ips.is_empty() {
        d.w(0, "IPs:\t<none>\n");
    } else {
        d.w(0, "IPs:\n");
        for ip in pod_ips {
            w!(d, 1, "IP:\t{ip}\n");
        }
    }
    if let Some(c) = controlled_by(meta) {
        w!(d, 0, "Controlled By:\t{c}\n");
    }
    if let Some(n) = status
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "NominatedNodeName:\t{n}\n");
    }
    let empty_spec = PodSpec::default();
    let spec_ref = spec.unwrap_or(&empty_spec);
    if let Some(init) = spec_ref
        .init_containers
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        let st = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or(&[]);
        describe_containers(d, "Init Containers", init, Some(st), Some(pod), "");
    }
    let st = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    describe_containers(
        d,
        "Containers",
        &spec_ref.containers,
        Some(st),
        Some(pod),
        "",
    );
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    if let Some(gates) = spec_ref
        .readiness_gates
        .as_deref()
        .filter(|g| !g.is_empty())
    {
        d.w(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let status = conditions
                .iter()
                .find(|c| c.type_ == g.condition_type)
                .map_or("<none>", |c| c.status.as_str());
            w!(d, 1, "{} \t{} \n", g.condition_type, status);
        }
    }
    if !conditions.is_empty() {
        d.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w!(d, 1, "{} \t{} \n", c.type_, c.status);
        }
    }
    describe_volumes(d, spec_ref.volumes.as_deref().unwrap_or(&[]), "");
    let qos = status
        .and_then(|s| s.qos_class.clone())
        .unwrap_or_else(|| qos_class(spec_ref));
    w!(d, 0, "QoS Class:\t{qos}\n");
    labels_multiline(d, "Node-Selectors", spec_ref.node_selector.as_ref());
    tolerations_multiline(
        d,
        "Tolerations",
        spec_ref.tolerations.as_deref().unwrap_or(&[]),
    );
    describe_events(d, &related.events);
}

/// kubelet's QoS classification (`qos.GetPodQOS`), from cpu and memory.
fn qos_class(spec: &PodSpec) -> String {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let compute = |m: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        m.map(|m| {
            m.iter()
                .filter(|(k, q)| (k.as_str() == "cpu" || k.as_str() == "memory") && !is_zero(&q.0))
                .map(|(k, q)| (k.clone(), q.0.clone()))
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default()
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = c.resources.as_ref();
        let requests = compute(r.and_then(|r| r.requests.as_ref()));
        let limits = compute(r.and_then(|r| r.limits.as_ref()));
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        if limits.len() != 2 || requests.iter().any(|(k, v)| limits.get(k) != Some(v)) {
            guaranteed = false;
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

fn is_zero(q: &str) -> bool {
    q.trim_start_matches(['+', '-'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .all(|c| c == '0' || c == '.')
}

fn tolerations_multiline(d: &mut Desc, title: &str, tolerations: &[Toleration]) {
    w!(d, 0, "{title}:\t");
    if tolerations.is_empty() {
        d.w(0, "<none>\n");
        return;
    }
    let mut sorted: Vec<&Toleration> = tolerations.iter().collect();
    sorted.sort_by(|a, b| opt_str(&a.key).cmp(opt_str(&b.key)));
    for (i, t) in sorted.into_iter().enumerate() {
        if i != 0 {
            d.w(0, "\t");
        }
        let mut s = opt_str(&t.key).to_string();
        let value = opt_str(&t.value);
        if !value.is_empty() {
            s.push('=');
            s.push_str(value);
        }
        let effect = opt_str(&t.effect);
        if !effect.is_empty() {
            s.push(':');
            s.push_str(effect);
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            if !opt_str(&t.key).is_empty() || !effect.is_empty() {
                s.push_str(" op=Exists");
            } else {
                s.push_str("op=Exists");
            }
        }
        if let Some(secs) = t.toleration_seconds {
            s.push_str(&format!(" for {secs}s"));
        }
        w!(d, 0, "{s}\n");
    }
}

/// `describeContainers`; `statuses` is `None` for pod templates.
fn describe_containers(
    d: &mut Desc,
    label: &str,
    containers: &[Container],
    statuses: Option<&[ContainerStatus]>,
    pod: Option<&Pod>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w!(d, 0, "{space}{label}:{none}\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in containers {
        let status = statuses.and_then(|s| s.iter().find(|st| st.name == c.name));
        w!(d, 1, "{name_indent}{}:\n", c.name);
        if let Some(st) = status {
            w!(d, 2, "Container ID:\t{}\n", opt_str(&st.container_id));
        }
        w!(d, 2, "Image:\t{}\n", opt_str(&c.image));
        if let Some(st) = status {
            w!(d, 2, "Image ID:\t{}\n", st.image_id);
        }
        let ports = c.ports.as_deref().unwrap_or(&[]);
        let port_string = ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, protocol(&p.protocol)))
            .collect::<Vec<_>>()
            .join(", ");
        if port_string.contains(',') {
            w!(d, 2, "Ports:\t{port_string}\n");
        } else {
            w!(d, 2, "Port:\t{}\n", or_none(&port_string));
        }
        let host_ports = ports
            .iter()
            .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(&p.protocol)))
            .collect::<Vec<_>>()
            .join(", ");
        if host_ports.contains(',') {
            w!(d, 2, "Host Ports:\t{host_ports}\n");
        } else {
            w!(d, 2, "Host Port:\t{}\n", or_none(&host_ports));
        }
        for (title, list) in [("Command", &c.command), ("Args", &c.args)] {
            if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                w!(d, 2, "{title}:\n");
                for item in list {
                    for s in item.split('\n') {
                        w!(d, 3, "{s}\n");
                    }
                }
            }
        }
        if let Some(st) = status {
            describe_state(d, "State", st.state.as_ref());
            if let Some(last) = st.last_state.as_ref().filter(|s| s.terminated.is_some()) {
                describe_state(d, "Last State", Some(last));
            }
            w!(
                d,
                2,
                "Ready:\t{}\n",
                if st.ready { "True" } else { "False" }
            );
            w!(d, 2, "Restart Count:\t{}\n", st.restart_count);
        }
        if let Some(r) = c.resources.as_ref() {
            describe_resources(d, r);
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                w!(d, 2, "{title}:\t{}\n", describe_probe(p));
            }
        }
        if let Some(env_from) = c.env_from.as_deref().filter(|e| !e.is_empty()) {
            d.w(2, "Environment Variables from:\n");
            for e in env_from {
                let (from, name, optional) = if let Some(r) = &e.config_map_ref {
                    ("ConfigMap", r.name.as_str(), r.optional.unwrap_or(false))
                } else if let Some(r) = &e.secret_ref {
                    ("Secret", r.name.as_str(), r.optional.unwrap_or(false))
                } else {
                    ("", "", false)
                };
                match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                    None => w!(d, 3, "{name}\t{from}\tOptional: {optional}\n"),
                    Some(p) => w!(
                        d,
                        3,
                        "{name}\t{from} with prefix '{p}'\tOptional: {optional}\n"
                    ),
                }
            }
        }
        describe_env(d, c, pod);
        let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
        if mounts.is_empty() {
            d.w(2, "Mounts:\t<none>\n");
        } else {
            d.w(2, "Mounts:\n");
            let mut sorted: Vec<_> = mounts.iter().collect();
            sorted.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
            for m in sorted {
                let mut flags = vec![if m.read_only == Some(true) {
                    "ro".to_string()
                } else {
                    "rw".to_string()
                }];
                if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    flags.push(format!("path={sp:?}"));
                }
                w!(
                    d,
                    3,
                    "{} from {} ({})\n",
                    m.mount_path,
                    m.name,
                    flags.join(",")
                );
            }
        }
    }
}

fn describe_state(d: &mut Desc, name: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        w!(d, 2, "{name}:\tRunning\n");
        w!(d, 3, "Started:\t{}\n", rfc1123z_opt(r.started_at.as_ref()));
    } else if let Some(wt) = &state.waiting {
        w!(d, 2, "{name}:\tWaiting\n");
        if let Some(r) = wt.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Reason:\t{r}\n");
        }
    } else if let Some(t) = &state.terminated {
        w!(d, 2, "{name}:\tTerminated\n");
        if let Some(r) = t.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Reason:\t{r}\n");
        }
        if let Some(m) = t.message.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Message:\t{m}\n");
        }
        w!(d, 3, "Exit Code:\t{}\n", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            w!(d, 3, "Signal:\t{sig}\n");
        }
        w!(d, 3, "Started:\t{}\n", rfc1123z_opt(t.started_at.as_ref()));
        w!(
            d,
            3,
            "Finished:\t{}\n",
            rfc1123z_opt(t.finished_at.as_ref())
        );
    } else {
        w!(d, 2, "{name}:\tWaiting\n");
    }
}

fn describe_resources(d: &mut Desc, r: &ResourceRequirements) {
    for (title, m) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
            w!(d, 2, "{title}:\n");
            for (k, q) in m {
                w!(d, 3, "{k}:\t{}\n", q.0);
            }
        }
    }
}

/// kubectl's `DescribeProbe`, with the API server's defaults for unset fields.
fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    if let Some(e) = &p.exec {
        return format!(
            "exec [{}] {attrs}",
            e.command.as_deref().unwrap_or(&[]).join(" ")
        );
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let port = int_or_string(&h.port);
        let host = opt_str(&h.host);
        let authority = if port.is_empty() {
            host.to_string()
        } else {
            join_host_port(host, &port)
        };
        let path = opt_str(&h.path);
        let slash = if !path.is_empty() && !path.starts_with('/') && !authority.is_empty() {
            "/"
        } else {
            ""
        };
        return format!("http-get {scheme}://{authority}{slash}{path} {attrs}");
    }
    if let Some(t) = &p.tcp_socket {
        return format!(
            "tcp-socket {}:{} {attrs}",
            opt_str(&t.host),
            int_or_string(&t.port)
        );
    }
    if let Some(g) = &p.grpc {
        return format!("grpc <pod>:{} {} {attrs}", g.port, opt_str(&g.service));
    }
    format!("unknown {attrs}")
}

fn describe_env(d: &mut Desc, c: &Container, pod: Option<&Pod>) {
    let env = c.env.as_deref().unwrap_or(&[]);
    if env.is_empty() {
        d.w(2, "Environment:\t<none>\n");
        return;
    }
    d.w(2, "Environment:\n");
    for e in env {
        let Some(from) = &e.value_from else {
            for (i, s) in opt_str(&e.value).split('\n').enumerate() {
                if i == 0 {
                    w!(d, 3, "{}:\t{s}\n", e.name);
                } else {
                    w!(d, 3, "\t{s}\n");
                }
            }
            continue;
        };
        if let Some(f) = &from.field_ref {
            let value = pod.map(|p| resolve_field(p, e)).unwrap_or_default();
            let api = f.api_version.as_deref().unwrap_or("v1");
            w!(d, 3, "{}:\t{value} ({api}:{})\n", e.name, f.field_path);
        } else if let Some(r) = &from.resource_field_ref {
            let value = resource_field_value(c, &r.resource);
            w!(d, 3, "{}:\t{value} ({})\n", e.name, r.resource);
        } else if let Some(s) = &from.secret_key_ref {
            w!(
                d,
                3,
                "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                e.name,
                s.key,
                s.name,
                s.optional.unwrap_or(false)
            );
        } else if let Some(s) = &from.config_map_key_ref {
            w!(
                d,
                3,
                "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                e.name,
                s.key,
                s.name,
                s.optional.unwrap_or(false)
            );
        }
    }
}

/// The downward-API value of a `fieldRef` env var, as kubectl resolves it.
fn resolve_field(pod: &Pod, e: &EnvVar) -> String {
    let Some(path) = e
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
    else {
        return String::new();
    };
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = subscript("metadata.labels") {
        return meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    if let Some(k) = subscript("metadata.annotations") {
        return meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    match path {
        "metadata.name" => opt_str(&meta.name).into(),
        "metadata.namespace" => opt_str(&meta.namespace).into(),
        "metadata.uid" => opt_str(&meta.uid).into(),
        "spec.nodeName" => spec
            .map(|s| opt_str(&s.node_name).to_string())
            .unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .map(|s| opt_str(&s.service_account_name).to_string())
            .unwrap_or_default(),
        "status.hostIP" => status
            .map(|s| opt_str(&s.host_ip).to_string())
            .unwrap_or_default(),
        "status.podIP" => status
            .map(|s| opt_str(&s.pod_ip).to_string())
            .unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn resource_field_value(c: &Container, resource: &str) -> String {
    let r = c.resources.as_ref();
    let lookup =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| { m.and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    let value = match resource.split_once('.') {
        Some(("limits", k)) => lookup(r.and_then(|r| r.limits.as_ref()), k),
        Some(("requests", k)) => lookup(r.and_then(|r| r.requests.as_ref()), k),
        _ => None,
    };
    match value {
        Some(v) => v,
        None if resource == "limits.cpu" || resource == "limits.memory" => {
            "node allocatable".into()
        }
        None => "0".into(),
    }
}

fn describe_volumes(d: &mut Desc, volumes: &[Volume], space: &str) {
    if volumes.is_empty() {
        w!(d, 0, "{space}Volumes:\t<none>\n");
        return;
    }
    w!(d, 0, "{space}Volumes:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in volumes {
        w!(d, 1, "{name_indent}{}:\n", v.name);
        if let Some(h) = &v.host_path {
            w!(
                d,
                2,
                "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                h.path,
                h.type_.as_deref().unwrap_or("<none>")
            );
        } else if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .filter(|q| !is_zero(q))
                .unwrap_or_else(|| "<unset>".into());
            w!(
                d,
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                opt_str(&e.medium)
            );
        } else if let Some(s) = &v.secret {
            w!(
                d,
                2,
                "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                opt_str(&s.secret_name),
                s.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.config_map {
            w!(
                d,
                2,
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                c.name,
                c.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.persistent_volume_claim {
            w!(
                d,
                2,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                c.claim_name,
                c.read_only.unwrap_or(false)
            );
        } else if let Some(da) = &v.downward_api {
            d.w(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n");
            for item in da.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    w!(d, 3, "{} -> {}\n", f.field_path, item.path);
                }
                if let Some(r) = &item.resource_field_ref {
                    w!(d, 3, "{} -> {}\n", r.resource, item.path);
                }
            }
        } else if let Some(p) = &v.projected {
            d.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for s in p.sources.iter().flatten() {
                if let Some(sec) = &s.secret {
                    w!(
                        d,
                        2,
                        "SecretName:\t{}\n    Optional:\t{}\n",
                        sec.name,
                        sec.optional.unwrap_or(false)
                    );
                } else if s.downward_api.is_some() {
                    d.w(2, "DownwardAPI:\ttrue\n");
                } else if let Some(cm) = &s.config_map {
                    w!(
                        d,
                        2,
                        "ConfigMapName:\t{}\n    Optional:\t{}\n",
                        cm.name,
                        cm.optional.unwrap_or(false)
                    );
                } else if let Some(t) = &s.service_account_token {
                    w!(
                        d,
                        2,
                        "TokenExpirationSeconds:\t{}\n",
                        t.expiration_seconds.unwrap_or(3607)
                    );
                }
            }
        } else {
            d.w(1, "<unknown>\n");
        }
    }
}

/// kubectl's `DescribePodTemplate`.
fn describe_pod_template(d: &mut Desc, template: Option<&PodTemplateSpec>) {
    d.w(0, "Pod Template:\n");
    let Some(t) = template else {
        d.w(1, "<unset>");
        return;
    };
    let meta = t.metadata.clone().unwrap_or_default();
    labels_multiline(d, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations_multiline(d, "  Annotations", meta.annotations.as_ref());
    }
    let spec = t.spec.clone().unwrap_or_default();
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 1, "Service Account:\t{sa}\n");
    }
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        describe_containers(d, "Init Containers", init, None, None, "  ");
    }
    describe_containers(d, "Containers", &spec.containers, None, None, "  ");
    describe_volumes(d, spec.volumes.as_deref().unwrap_or(&[]), "  ");
    if let Some(pc) = spec
        .priority_class_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 1, "Priority Class Name:\t{pc}\n");
    }
    labels_multiline(d, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations_multiline(
        d,
        "  Tolerations",
        spec.tolerations.as_deref().unwrap_or(&[]),
    );
}

fn describe_service(d: &mut Desc, svc: &Service, related: &Related) {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_type = service_type(svc);
    name_namespace(d, meta);
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "Selector:\t{}\n",
        format_labels(spec.selector.as_ref())
    );
    w!(d, 0, "Type:\t{svc_type}\n");
    // The API server defaults the IP family fields of every non-ExternalName
    // Service; lab is IPv4 single-stack.
    let defaulted = svc_type != "ExternalName";
    match spec.ip_family_policy.as_deref() {
        Some(p) => w!(d, 0, "IP Family Policy:\t{p}\n"),
        None if defaulted => d.w(0, "IP Family Policy:\tSingleStack\n"),
        None => {}
    }
    match spec.ip_families.as_deref() {
        Some(f) if !f.is_empty() => w!(d, 0, "IP Families:\t{}\n", f.join(",")),
        _ if defaulted => d.w(0, "IP Families:\tIPv4\n"),
        _ => d.w(0, "IP Families:\t<none>\n"),
    }
    let ips = cluster_ips(svc);
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| ips.first().cloned())
        .unwrap_or_default();
    w!(d, 0, "IP:\t{cluster_ip}\n");
    if ips.is_empty() {
        d.w(0, "IPs:\t<none>\n");
    } else {
        w!(d, 0, "IPs:\t{}\n", ips.join(","));
    }
    if let Some(e) = spec.external_ips.as_deref().filter(|e| !e.is_empty()) {
        w!(d, 0, "External IPs:\t{}\n", e.join(","));
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        w!(d, 0, "Desired LoadBalancer IP:\t{ip}\n");
    }
    if let Some(n) = spec.external_name.as_deref().filter(|s| !s.is_empty()) {
        w!(d, 0, "External Name:\t{n}\n");
    }
    let empty = Endpoints::default();
    let endpoints = related.endpoints.as_ref().unwrap_or(&empty);
    for p in spec.ports.iter().flatten() {
        let name = opt_str(&p.name);
        let shown = or_unset(name);
        let proto = protocol(&p.protocol);
        w!(d, 0, "Port:\t{shown}\t{}/{proto}\n", p.port);
        let target = p
            .target_port
            .as_ref()
            .map_or_else(|| p.port.to_string(), int_or_string);
        w!(d, 0, "TargetPort:\t{target}/{proto}\n");
        if let Some(ap) = &p.app_protocol {
            w!(d, 0, "AppProtocol:\t{ap}\n");
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            w!(d, 0, "NodePort:\t{shown}\t{np}/{proto}\n");
        }
        w!(
            d,
            0,
            "Endpoints:\t{}\n",
            format_endpoints(endpoints, Some(name))
        );
    }
    w!(
        d,
        0,
        "Session Affinity:\t{}\n",
        spec.session_affinity.as_deref().unwrap_or("None")
    );
    if let Some(t) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "External Traffic Policy:\t{t}\n");
    }
    match spec.internal_traffic_policy.as_deref() {
        Some(t) => w!(d, 0, "Internal Traffic Policy:\t{t}\n"),
        None if defaulted => d.w(0, "Internal Traffic Policy:\tCluster\n"),
        None => {}
    }
    if let Some(n) = spec.health_check_node_port.filter(|n| *n != 0) {
        w!(d, 0, "HealthCheck NodePort:\t{n}\n");
    }
    if let Some(r) = spec
        .load_balancer_source_ranges
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        w!(d, 0, "LoadBalancer Source Ranges:\t{}\n", r.join(","));
    }
    if let Some(t) = &spec.traffic_distribution {
        w!(d, 0, "Traffic Distribution:\t{t}\n");
    }
    if let Some(counters) = &related.counters {
        if counters.is_empty() {
            d.w(0, "Counters:\t<none>\n");
        } else {
            d.w(0, "Counters:\n");
            for (k, v) in counters {
                w!(d, 1, "{k}:\t{v}\n");
            }
        }
    }
    describe_events(d, &related.events);
}

fn or_unset(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

fn describe_deployment(d: &mut Desc, dep: &Deployment, related: &Related) {
    let meta = &dep.metadata;
    let spec = &dep.spec;
    let status = dep.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    w!(
        d,
        0,
        "CreationTimestamp:\t{}\n",
        rfc1123z_opt(meta.creation_timestamp.as_ref())
    );
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "Selector:\t{}\n",
        selector_string(&spec.selector).unwrap_or_else(|| "<invalid>".into())
    );
    w!(
        d,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
        spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0)
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let strategy_type = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    w!(d, 0, "StrategyType:\t{strategy_type}\n");
    w!(
        d,
        0,
        "MinReadySeconds:\t{}\n",
        spec.min_ready_seconds.unwrap_or(0)
    );
    if strategy_type == "RollingUpdate" {
        // Defaulted by the API server when the manifest leaves it out.
        let ru = strategy.rolling_update.clone().unwrap_or_default();
        let pct = |v: &Option<IntOrString>| v.as_ref().map_or_else(|| "25%".into(), int_or_string);
        w!(
            d,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            pct(&ru.max_unavailable),
            pct(&ru.max_surge)
        );
    }
    describe_pod_template(d, Some(&spec.template));
    if let Some(conds) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        d.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        d.w(1, "----\t------\t------\n");
        for c in conds {
            w!(
                d,
                1,
                "{} \t{}\t{}\n",
                opt_str(&c.type_),
                opt_str(&c.status),
                opt_str(&c.reason)
            );
        }
    }
    let (old, new) = split_replicasets(&spec.template, &related.replicasets);
    if !old.is_empty() || !new.is_empty() {
        w!(d, 0, "OldReplicaSets:\t{}\n", replicasets_by_labels(&old));
        w!(d, 0, "NewReplicaSet:\t{}\n", replicasets_by_labels(&new));
    }
    describe_events(d, &related.events);
}

/// The Deployment's new ReplicaSet is the one whose template equals the
/// Deployment's (ignoring `pod-template-hash`); failing that, the one with
/// the highest `deployment.kubernetes.io/revision`. All others are old.
fn split_replicasets<'a>(
    template: &PodTemplateSpec,
    rss: &'a [ReplicaSet],
) -> (Vec<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    fn strip(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove("pod-template-hash");
            if l.is_empty() {
                m.labels = None;
            }
        }
        t
    }
    let want = strip(template);
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse::<i64>().ok())
    };
    let new_index = rss
        .iter()
        .position(|rs| rs.spec.template.as_ref().is_some_and(|t| strip(t) == want))
        .or_else(|| {
            rss.iter()
                .enumerate()
                .filter_map(|(i, rs)| revision(rs).map(|r| (r, i)))
                .max()
                .map(|(_, i)| i)
        });
    let mut old = Vec::new();
    let mut new = Vec::new();
    for (i, rs) in rss.iter().enumerate() {
        if Some(i) == new_index {
            new.push(rs);
        } else {
            old.push(rs);
        }
    }
    (old, new)
}

fn replicasets_by_labels(rss: &[&ReplicaSet]) -> String {
    let list = rss
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                opt_str(&rs.metadata.name),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.replicas.unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if list.is_empty() {
        "<none>".into()
    } else {
        list
    }
}

fn describe_replicaset(d: &mut Desc, rs: &ReplicaSet, related: &Related) {
    let meta = &rs.metadata;
    let spec = &rs.spec;
    let status = rs.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    w!(
        d,
        0,
        "Selector:\t{}\n",
        format_label_selector(&spec.selector)
    );
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    if let Some(c) = controlled_by(meta) {
        w!(d, 0, "Controlled By:\t{c}\n");
    }
    w!(
        d,
        0,
        "Replicas:\t{} current / {} desired\n",
        status.replicas,
        spec.replicas.unwrap_or(1)
    );
    // kubectl counts the pods by phase; from the ReplicaSet alone, ready
    // pods are the running ones and the rest are still waiting.
    let ready = status.ready_replicas.unwrap_or(0);
    w!(
        d,
        0,
        "Pods Status:\t{} Running / {} Waiting / 0 Succeeded / 0 Failed\n",
        ready,
        (status.replicas - ready).max(0)
    );
    describe_pod_template(d, spec.template.as_ref());
    if let Some(conds) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        d.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        d.w(1, "----\t------\t------\n");
        for c in conds {
            w!(
                d,
                1,
                "{} \t{}\t{}\n",
                opt_str(&c.type_),
                opt_str(&c.status),
                opt_str(&c.reason)
            );
        }
    }
    describe_events(d, &related.events);
}

fn describe_endpoints(d: &mut Desc, ep: &Endpoints, related: &Related) {
    name_namespace(d, &ep.metadata);
    labels_multiline(d, "Labels", ep.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", ep.metadata.annotations.as_ref());
    d.w(0, "Subsets:\n");
    for ss in ep.subsets.iter().flatten() {
        let join = |a: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
            let s = a
                .iter()
                .flatten()
                .map(|a| a.ip.as_str())
                .collect::<Vec<_>>()
                .join(",");
            if s.is_empty() {
                "<none>".to_string()
            } else {
                s
            }
        };
        w!(d, 1, "Addresses:\t{}\n", join(&ss.addresses));
        w!(
            d,
            1,
            "NotReadyAddresses:\t{}\n",
            join(&ss.not_ready_addresses)
        );
        if let Some(ports) = ss.ports.as_deref().filter(|p| !p.is_empty()) {
            d.w(1, "Ports:\n");
            d.w(2, "Name\tPort\tProtocol\n");
            d.w(2, "----\t----\t--------\n");
            for p in ports {
                w!(
                    d,
                    2,
                    "{}\t{}\t{}\n",
                    or_unset(opt_str(&p.name)),
                    p.port,
                    protocol(&p.protocol)
                );
            }
        }
        d.w(0, "\n");
    }
    describe_events(d, &related.events);
}

fn describe_endpointslice(d: &mut Desc, s: &EndpointSlice, related: &Related) {
    name_namespace(d, &s.metadata);
    labels_multiline(d, "Labels", s.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", s.metadata.annotations.as_ref());
    w!(d, 0, "AddressType:\t{}\n", s.address_type);
    match s.ports.as_deref() {
        None | Some([]) => d.w(0, "Ports: <unset>\n"),
        Some(ports) => {
            d.w(0, "Ports:\n");
            d.w(1, "Name\tPort\tProtocol\n");
            d.w(1, "----\t----\t--------\n");
            for p in ports {
                let port = p
                    .port
                    .map_or_else(|| "<unset>".to_string(), |n| n.to_string());
                w!(
                    d,
                    1,
                    "{}\t{port}\t{}\n",
                    or_unset(opt_str(&p.name)),
                    protocol(&p.protocol)
                );
            }
        }
    }
    match s.endpoints.as_deref() {
        None | Some([]) => d.w(0, "Endpoints: <none>\n"),
        Some(endpoints) => {
            d.w(0, "Endpoints:\n");
            for e in endpoints {
                w!(d, 1, "- Addresses:\t{}\n", or_none(&e.addresses.join(", ")));
                d.w(2, "Conditions:\n");
                let ready = e
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .map_or_else(|| "<unset>".to_string(), |r| r.to_string());
                w!(d, 3, "Ready:\t{ready}\n");
                w!(
                    d,
                    2,
                    "Hostname:\t{}\n",
                    e.hostname.as_deref().unwrap_or("<unset>")
                );
                if let Some(t) = &e.target_ref {
                    w!(
                        d,
                        2,
                        "TargetRef:\t{}/{}\n",
                        opt_str(&t.kind),
                        opt_str(&t.name)
                    );
                }
                w!(
                    d,
                    2,
                    "NodeName:\t{}\n",
                    e.node_name.as_deref().unwrap_or("<unset>")
                );
                w!(d, 2, "Zone:\t{}\n", e.zone.as_deref().unwrap_or("<unset>"));
            }
        }
    }
    describe_events(d, &related.events);
}

fn describe_configmap(d: &mut Desc, cm: &ConfigMap, related: &Related) {
    name_namespace(d, &cm.metadata);
    labels_multiline(d, "Labels", cm.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", cm.metadata.annotations.as_ref());
    d.w(0, "\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        w!(d, 0, "{k}:\n----\n");
        w!(d, 0, "{v}\n");
        d.w(0, "\n");
    }
    d.w(0, "\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        w!(d, 0, "{k}: {} bytes\n", v.0.len());
    }
    d.w(0, "\n");
    describe_events(d, &related.events);
}

fn describe_namespace(d: &mut Desc, ns: &Namespace) {
    let meta = &ns.metadata;
    w!(d, 0, "Name:\t{}\n", opt_str(&meta.name));
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(d, 0, "Status:\t{}\n", namespace_phase(ns));
    if let Some(conds) = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .filter(|c| !c.is_empty())
    {
        d.w(0, "Conditions:\n");
        d.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        d.w(1, "----\t------\t------------------\t------\t-------\n");
        for c in conds {
            w!(
                d,
                1,
                "{}\t{}\t{}\t{}\t{}\n",
                c.type_,
                c.status,
                rfc1123z_opt(c.last_transition_time.as_ref()),
                opt_str(&c.reason),
                opt_str(&c.message)
            );
        }
    }
    // lab has neither ResourceQuotas nor LimitRanges.
    d.w(0, "\nNo resource quota.\n");
    d.w(0, "\nNo LimitRange resource.\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// 2024-01-01T00:10:00Z
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_704_067_800)
    }

    fn obj(kind: Kind, v: Value) -> Object {
        Object::from_json(kind, v).expect("fixture parses")
    }

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).expect("pod fixture parses")
    }

    fn render(objects: &[Object], opts: TableOpts) -> String {
        let refs: Vec<&Object> = objects.iter().collect();
        table(&refs, &opts, now())
    }

    fn running_pod(name: &str, created: &str, ip: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                          "labels": {"app": "client"},
                          "annotations": {"lab.dev/netns": format!("lab-{name}")}},
            "spec": {"nodeName": "lab-node", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "ready": true, "restartCount": 0,
                           "image": "busybox", "imageID": "",
                           "state": {"running": {"startedAt": created}}}]}
        })
    }

    fn restarted_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "backend-7d4b9c-x2x4p", "namespace": "apps",
                          "creationTimestamp": "2023-12-31T22:00:00Z"},
            "spec": {"containers": [{"name": "web", "image": "agnhost"}, {"name": "side", "image": "busybox"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [
                           {"name": "web", "ready": true, "restartCount": 3, "image": "agnhost", "imageID": "",
                            "state": {"running": {"startedAt": "2024-01-01T00:09:48Z"}},
                            "lastState": {"terminated": {"exitCode": 137, "reason": "Error",
                                "startedAt": "2024-01-01T00:01:00Z", "finishedAt": "2024-01-01T00:09:48Z"}}},
                           {"name": "side", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "",
                            "state": {"running": {"startedAt": "2023-12-31T22:00:01Z"}}}]}
        })
    }

    // --- human_age ---------------------------------------------------------

    #[test]
    fn human_age_matches_apimachinery() {
        let s = |secs: u64| Duration::from_secs(secs);
        let ms = |m: u64| Duration::from_millis(m);
        const M: u64 = 60;
        const H: u64 = 3600;
        const D: u64 = 24 * H;
        const Y: u64 = 365 * D;
        // duration_test.go TestHumanDuration
        let cases = [
            (s(1), "1s"),
            (s(70), "70s"),
            (s(190), "3m10s"),
            (s(70 * M), "70m"),
            (s(47 * H), "47h"),
            (s(49 * H), "2d1h"),
            (s((8 * 24 + 2) * H), "8d"),
            (s(367 * D), "367d"),
            (s((365 * 2 * 24 + 25) * H), "2y1d"),
            (s((365 * 8 * 24 + 2) * H), "8y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_age(d), want, "{d:?}");
        }
        // TestHumanDurationBoundaries (non-negative cases)
        let boundaries = [
            (s(0), "0s"),
            (ms(999), "0s"),
            (ms(2 * M * 1000 - 1), "119s"),
            (s(2 * M), "2m"),
            (s(2 * M + 1), "2m1s"),
            (ms(10 * M * 1000 - 1), "9m59s"),
            (s(10 * M), "10m"),
            (s(10 * M + 1), "10m"),
            (ms(3 * H * 1000 - 1), "179m"),
            (s(3 * H), "3h"),
            (s(3 * H + M), "3h1m"),
            (ms(8 * H * 1000 - 1), "7h59m"),
            (s(8 * H), "8h"),
            (s(8 * H + 59 * M), "8h"),
            (ms(2 * D * 1000 - 1), "47h"),
            (s(2 * D), "2d"),
            (s(2 * D + H), "2d1h"),
            (ms(8 * D * 1000 - 1), "7d23h"),
            (s(8 * D), "8d"),
            (s(8 * D + 23 * H), "8d"),
            (ms(2 * Y * 1000 - 1), "729d"),
            (s(2 * Y), "2y"),
            (s(2 * Y + 23 * H), "2y"),
            (s(2 * Y + 23 * H + 59 * M), "2y"),
            (ms((2 * Y + D) * 1000 - 1), "2y"),
            (s(2 * Y + D), "2y1d"),
            (s(3 * Y), "3y"),
            (s(7 * Y), "7y"),
            (ms(8 * Y * 1000 - 1), "7y364d"),
            (s(8 * Y), "8y"),
            (s(8 * Y + 364 * D), "8y"),
            (s(9 * Y), "9y"),
        ];
        for (d, want) in boundaries {
            assert_eq!(human_age(d), want, "{d:?}");
        }
        // Negative durations (clock skew): the negative boundary cases.
        assert_eq!(human_duration_ns(-2_000_000_000), "<invalid>");
        assert_eq!(human_duration_ns(-2_000_000_000 + 1), "0s");
        assert_eq!(human_duration_ns(-1), "0s");
    }

    #[test]
    fn age_of_future_and_missing_timestamps() {
        let objs = [
            obj(
                Kind::ConfigMap,
                json!({"metadata": {"name": "future", "creationTimestamp": "2024-01-01T00:10:05Z"}}),
            ),
            obj(
                Kind::ConfigMap,
                json!({"metadata": {"name": "skew", "creationTimestamp": "2024-01-01T00:10:01Z"}}),
            ),
            obj(Kind::ConfigMap, json!({"metadata": {"name": "unset"}})),
        ];
        assert_eq!(
            render(&objs, TableOpts::default()),
            "NAME     DATA   AGE\n\
             future   0      <invalid>\n\
             skew     0      0s\n\
             unset    0      <unknown>\n"
        );
    }

    // --- tabwriter ---------------------------------------------------------

    #[test]
    fn tabwriter_blocks_like_go() {
        // Column widths hold within a block of consecutive lines that have
        // the column; a line without a tab ends the block.
        let text = "Name:\tx\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tbusybox\n    Port:\t<none>\n";
        assert_eq!(
            tabwrite(text, 0, 2),
            "Name:       x\nNamespace:  default\nContainers:\n  c:\n    Image:  busybox\n    Port:   <none>\n"
        );
        // The cell after the last tab is never padded; min width applies.
        assert_eq!(
            tabwrite("a\tb\tc\nddd\te\tf\n", 6, 3),
            "a     b     c\nddd   e     f\n"
        );
        // Nested columns: the second column's block is only the lines having it.
        assert_eq!(
            tabwrite("Port:\t<unset>\t80/TCP\nTargetPort:\t8080/TCP\n", 0, 2),
            "Port:        <unset>  80/TCP\nTargetPort:  8080/TCP\n"
        );
        // Widths count characters, not bytes.
        assert_eq!(tabwrite("é\tx\nab\ty", 0, 1), "é  x\nab y");
    }

    // --- pods ----------------------------------------------------------------

    #[test]
    fn pods_table() {
        let objs = [
            obj(Kind::Pod, restarted_pod()),
            obj(
                Kind::Pod,
                running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
            ),
        ];
        assert_eq!(
            render(&objs, TableOpts::default()),
            "NAME                   READY   STATUS    RESTARTS      AGE\n\
             backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m\n\
             client                 1/1     Running   0             5m\n"
        );
    }

    #[test]
    fn pods_table_wide_has_lab_netns_column() {
        let objs = [
            obj(
                Kind::Pod,
                running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
            ),
            obj(Kind::Pod, restarted_pod()),
        ];
        let opts = TableOpts {
            wide: true,
            ..Default::default()
        };
        assert_eq!(
            render(&objs, opts),
            "NAME                   READY   STATUS    RESTARTS      AGE    IP           NODE       NOMINATED NODE   READINESS GATES   NETNS\n\
             client                 1/1     Running   0             5m     10.244.0.7   lab-node   <none>           <none>            lab-client\n\
             backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m   <none>       <none>     <none>           <none>            <none>\n"
        );
    }

    #[test]
    fn pods_all_namespaces_kind_labels_and_no_headers() {
        let objs = [
            obj(Kind::Pod, restarted_pod()),
            obj(
                Kind::Pod,
                running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
            ),
        ];
        let opts = TableOpts {
            all_namespaces: true,
            show_kind: true,
            show_labels: true,
            ..Default::default()
        };
        assert_eq!(
            render(&objs, opts),
            "NAMESPACE   NAME                       READY   STATUS    RESTARTS      AGE    LABELS\n\
             apps        pod/backend-7d4b9c-x2x4p   1/2     Running   3 (12s ago)   130m   <none>\n\
             default     pod/client                 1/1     Running   0             5m     app=client\n"
        );
        let opts = TableOpts {
            no_headers: true,
            ..Default::default()
        };
        assert_eq!(
            render(&objs, opts),
            "backend-7d4b9c-x2x4p   1/2   Running   3 (12s ago)   130m\n\
             client                 1/1   Running   0             5m\n"
        );
    }

    fn status_of(status: Value) -> String {
        let mut v = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}]},
        });
        v["status"] = status;
        pod_status_reason(&pod(v))
    }

    #[test]
    fn pod_status_reasons() {
        let cs = |state: Value| {
            json!({"phase": "Pending", "containerStatuses": [
            {"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "", "state": state}]})
        };
        assert_eq!(
            status_of(cs(json!({"waiting": {"reason": "ContainerCreating"}}))),
            "ContainerCreating"
        );
        assert_eq!(
            status_of(cs(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status_of(cs(
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
            )),
            "Completed"
        );
        assert_eq!(
            status_of(cs(
                json!({"terminated": {"exitCode": 1, "reason": "Error"}})
            )),
            "Error"
        );
        assert_eq!(
            status_of(cs(json!({"terminated": {"exitCode": 2}}))),
            "ExitCode:2"
        );
        assert_eq!(
            status_of(cs(json!({"terminated": {"exitCode": 137, "signal": 9}}))),
            "Signal:9"
        );
        assert_eq!(status_of(json!({"phase": "Pending"})), "Pending");
        assert_eq!(status_of(json!({"podIP": "10.244.0.9"})), "Pending");
        assert_eq!(
            status_of(json!({"phase": "Failed", "reason": "Evicted"})),
            "Evicted"
        );
        // No status at all: not looked at yet.
        assert_eq!(
            pod_status_reason(&pod(json!({"metadata": {"name": "p"}}))),
            "Pending"
        );
        // Running but not ready yet.
        assert_eq!(status_of(cs(json!({"running": {}}))).as_str(), "Pending");
    }

    #[test]
    fn pod_status_completed_with_running_sibling() {
        let v = |ready_condition: bool| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": if ready_condition {"True"} else {"False"}}],
                    "containerStatuses": [
                        {"name": "a", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        {"name": "b", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                         "state": {"running": {}}}]}
            })
        };
        assert_eq!(pod_status_reason(&pod(v(true))), "Running");
        assert_eq!(pod_status_reason(&pod(v(false))), "NotReady");
    }

    #[test]
    fn pod_status_terminating_and_init() {
        let mut p = running_pod("x", "2024-01-01T00:00:00Z", "10.244.0.9");
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:00Z");
        assert_eq!(pod_status_reason(&pod(p.clone())), "Terminating");
        // A finished pod being deleted keeps its phase.
        p["status"]["phase"] = json!("Succeeded");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        assert_eq!(pod_status_reason(&pod(p)), "Completed");

        let init = |state: Value| {
            pod(json!({
                "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "c"}]},
                "status": {"phase": "Pending",
                    "initContainerStatuses": [
                        {"name": "i1", "ready": false, "restartCount": 2, "image": "", "imageID": "", "state": state},
                        {"name": "i2", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                         "state": {"waiting": {"reason": "PodInitializing"}}}],
                    "containerStatuses": [{"name": "c", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                        "state": {"waiting": {"reason": "PodInitializing"}}}]}
            }))
        };
        assert_eq!(pod_status_reason(&init(json!({"running": {}}))), "Init:0/2");
        assert_eq!(
            pod_status_reason(&init(json!({"waiting": {"reason": "CrashLoopBackOff"}}))),
            "Init:CrashLoopBackOff"
        );
        assert_eq!(
            pod_status_reason(&init(json!({"terminated": {"exitCode": 3}}))),
            "Init:ExitCode:3"
        );
        assert_eq!(
            pod_status_reason(&init(json!({"terminated": {"exitCode": 0}}))),
            "Init:1/2"
        );
        // Restarts of init containers count while initializing.
        let s = pod_summary(&init(json!({"running": {}})));
        assert_eq!((s.ready, s.total, s.restarts), (0, 1, 2));
    }

    // --- services --------------------------------------------------------------

    fn services() -> Vec<Object> {
        vec![
            obj(
                Kind::Service,
                json!({
                    "metadata": {"name": "backend-service", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                             "selector": {"app": "backend", "tier": "web"},
                             "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                                       {"name": "dns", "port": 53, "protocol": "UDP"}]}
                }),
            ),
            obj(
                Kind::Service,
                json!({
                    "metadata": {"name": "db", "namespace": "default", "creationTimestamp": "2023-12-29T00:10:00Z"},
                    "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"},
                             "ports": [{"port": 5432}]}
                }),
            ),
            obj(
                Kind::Service,
                json!({
                    "metadata": {"name": "ext", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
                    "spec": {"type": "ExternalName", "externalName": "example.com"}
                }),
            ),
        ]
    }

    #[test]
    fn services_table() {
        assert_eq!(
            render(&services(), TableOpts::default()),
            "NAME              TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)         AGE\n\
             backend-service   ClusterIP      10.96.0.20   <none>        80/TCP,53/UDP   45s\n\
             db                ClusterIP      None         <none>        5432/TCP        3d\n\
             ext               ExternalName   <none>       example.com   <none>          10m\n"
        );
        let opts = TableOpts {
            wide: true,
            show_kind: true,
            ..Default::default()
        };
        assert_eq!(
            render(&services(), opts),
            "NAME                      TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)         AGE   SELECTOR\n\
             service/backend-service   ClusterIP      10.96.0.20   <none>        80/TCP,53/UDP   45s   app=backend,tier=web\n\
             service/db                ClusterIP      None         <none>        5432/TCP        3d    app=db\n\
             service/ext               ExternalName   <none>       example.com   <none>          10m   <none>\n"
        );
    }

    // --- endpoints and slices --------------------------------------------------

    fn endpoints(n: usize) -> Value {
        let addrs: Vec<Value> = (0..n)
            .map(|i| json!({"ip": format!("10.244.0.{}", i + 5)}))
            .collect();
        json!({
            "metadata": {"name": "backend-service", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
            "subsets": [{"addresses": addrs, "notReadyAddresses": [{"ip": "10.244.0.99"}],
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]
        })
    }

    #[test]
    fn endpoints_table_truncates_after_three() {
        let objs = [
            obj(Kind::Endpoints, endpoints(2)),
            obj(Kind::Endpoints, endpoints(4)),
            obj(
                Kind::Endpoints,
                json!({"metadata": {"name": "empty", "creationTimestamp": "2024-01-01T00:09:15Z"}}),
            ),
        ];
        // NAME is 15 wide (+3); ENDPOINTS is padded to its widest cell + 3.
        let rows = [
            ["NAME", "ENDPOINTS", "AGE"],
            ["backend-service", "10.244.0.5:8080,10.244.0.6:8080", "45s"],
            [
                "backend-service",
                "10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080 + 1 more...",
                "45s",
            ],
            ["empty", "<none>", "45s"],
        ];
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap() + 3;
        let manual: String = rows
            .iter()
            .map(|r| format!("{:<18}{:<w1$}{}\n", r[0], r[1], r[2]))
            .collect();
        assert_eq!(render(&objs, TableOpts::default()), manual);
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    wide: true,
                    ..Default::default()
                }
            ),
            manual
        );
        // Multiple subsets and ports count towards "more".
        let ep: Endpoints = serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"name": "b", "port": 81}]},
                {"addresses": [{"ip": "fd00::1"}]}
            ]
        }))
        .unwrap();
        assert_eq!(
            format_endpoints(&ep, None),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:81 + 2 more..."
        );
        assert_eq!(
            format_endpoints(&ep, Some("b")),
            "10.0.0.1:81,10.0.0.2:81,fd00::1"
        );
    }

    #[test]
    fn endpointslices_table() {
        let objs = [
            obj(
                Kind::EndpointSlice,
                json!({
                    "metadata": {"name": "backend-service-abc12", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                    "addressType": "IPv4",
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                    "endpoints": [
                        {"addresses": ["10.244.0.5"], "conditions": {"ready": true}},
                        {"addresses": ["10.244.0.6"]}, {"addresses": ["10.244.0.7"]}, {"addresses": ["10.244.0.8"]}]
                }),
            ),
            obj(
                Kind::EndpointSlice,
                json!({
                    "metadata": {"name": "empty-xyz", "namespace": "default", "creationTimestamp": "2024-01-01T00:09:15Z"},
                    "addressType": "IPv4"
                }),
            ),
        ];
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    show_kind: true,
                    ..Default::default()
                }
            ),
            "NAME                                                   ADDRESSTYPE   PORTS     ENDPOINTS                                      AGE\n\
             endpointslice.discovery.k8s.io/backend-service-abc12   IPv4          8080      10.244.0.5,10.244.0.6,10.244.0.7 + 1 more...   45s\n\
             endpointslice.discovery.k8s.io/empty-xyz               IPv4          <unset>   <unset>                                        45s\n"
        );
    }

    // --- deployments and replicasets -------------------------------------------

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "backend", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z",
                          "labels": {"app": "backend"}},
            "spec": {"replicas": 3,
                     "selector": {"matchLabels": {"app": "backend"},
                                  "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
                     "template": {"metadata": {"labels": {"app": "backend", "env": "prod"}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                                       "args": ["netexec", "--http-port=8080"],
                                       "ports": [{"containerPort": 8080}]},
                                      {"name": "log", "image": "busybox", "command": ["sh", "-c", "tail -f /dev/null"]}]}}},
            "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1}
        })
    }

    fn replicaset(name: &str, hash: &str, image: &str, replicas: i32, revision: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z",
                          "annotations": {"deployment.kubernetes.io/revision": revision},
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend",
                                               "uid": "u1", "controller": true}]},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": "backend", "pod-template-hash": hash}},
                     "template": {"metadata": {"labels": {"app": "backend", "env": "prod", "pod-template-hash": hash}},
                                  "spec": {"containers": [
                                      {"name": "web", "image": image,
                                       "args": ["netexec", "--http-port=8080"],
                                       "ports": [{"containerPort": 8080}]},
                                      {"name": "log", "image": "busybox", "command": ["sh", "-c", "tail -f /dev/null"]}]}}},
            "status": {"replicas": replicas, "readyReplicas": replicas.min(2)}
        })
    }

    #[test]
    fn deployments_table() {
        let objs = [obj(Kind::Deployment, deployment())];
        assert_eq!(
            render(&objs, TableOpts::default()),
            "NAME      READY   UP-TO-DATE   AVAILABLE   AGE\n\
             backend   2/3     3            2           10m\n"
        );
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    wide: true,
                    show_kind: true,
                    ..Default::default()
                }
            ),
            "NAME                      READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES                                                 SELECTOR\n\
             deployment.apps/backend   2/3     3            2           10m   web,log      registry.k8s.io/e2e-test-images/agnhost:2.53,busybox   app=backend,env in (dev,prod)\n"
        );
    }

    #[test]
    fn replicasets_table() {
        let img = "registry.k8s.io/e2e-test-images/agnhost:2.53";
        let objs = [obj(
            Kind::ReplicaSet,
            replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2"),
        )];
        assert_eq!(
            render(&objs, TableOpts::default()),
            "NAME             DESIRED   CURRENT   READY   AGE\n\
             backend-7d4b9c   3         3         2       10m\n"
        );
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    wide: true,
                    ..Default::default()
                }
            ),
            "NAME             DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES                                                 SELECTOR\n\
             backend-7d4b9c   3         3         2       10m   web,log      registry.k8s.io/e2e-test-images/agnhost:2.53,busybox   app=backend,pod-template-hash=7d4b9c\n"
        );
    }

    // --- configmaps and namespaces -------------------------------------------------

    #[test]
    fn configmaps_and_namespaces_tables() {
        let objs = [
            obj(
                Kind::ConfigMap,
                json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "default",
                "creationTimestamp": "2023-12-31T21:10:00Z"}, "data": {"ca.crt": "x"}}),
            ),
            obj(
                Kind::ConfigMap,
                json!({"metadata": {"name": "web", "namespace": "default",
                "creationTimestamp": "2024-01-01T00:04:30Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}}),
            ),
        ];
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    all_namespaces: true,
                    ..Default::default()
                }
            ),
            "NAMESPACE   NAME               DATA   AGE\n\
             default     kube-root-ca.crt   1      3h\n\
             default     web                3      5m30s\n"
        );
        let objs = [
            obj(
                Kind::Namespace,
                json!({"metadata": {"name": "default", "creationTimestamp": "2023-12-29T21:10:00Z"},
                "status": {"phase": "Active"}}),
            ),
            obj(
                Kind::Namespace,
                json!({"metadata": {"name": "kube-system", "creationTimestamp": "2023-12-29T21:10:00Z"}}),
            ),
            obj(
                Kind::Namespace,
                json!({"metadata": {"name": "old", "creationTimestamp": "2023-12-29T21:10:00Z",
                "deletionTimestamp": "2024-01-01T00:09:00Z"}}),
            ),
        ];
        // -A adds no NAMESPACE column for cluster-scoped kinds.
        assert_eq!(
            render(
                &objs,
                TableOpts {
                    all_namespaces: true,
                    ..Default::default()
                }
            ),
            "NAME          STATUS        AGE\n\
             default       Active        2d3h\n\
             kube-system   Active        2d3h\n\
             old           Terminating   2d3h\n"
        );
    }

    #[test]
    fn empty_table_and_names() {
        assert_eq!(table(&[], &TableOpts::default(), now()), "");
        let objs = [
            obj(
                Kind::Pod,
                running_pod("client", "2024-01-01T00:05:00Z", "10.244.0.7"),
            ),
            obj(Kind::Pod, restarted_pod()),
        ];
        let refs: Vec<&Object> = objs.iter().collect();
        assert_eq!(
            names(&refs, Kind::Pod),
            "pod/client\npod/backend-7d4b9c-x2x4p\n"
        );
        let d = obj(Kind::Deployment, deployment());
        assert_eq!(names(&[&d], Kind::Deployment), "deployment.apps/backend\n");
        let s = &services()[0];
        assert_eq!(names(&[s], Kind::Service), "service/backend-service\n");
    }

    // --- describe ---------------------------------------------------------------

    #[test]
    fn describe_service_layout() {
        let svc = &services()[0];
        let mut counters = BTreeMap::new();
        counters.insert("flows_created".to_string(), 12u64);
        counters.insert("rejected_no_endpoints".to_string(), 0u64);
        let related = Related {
            endpoints: Some(serde_json::from_value(endpoints(4)).unwrap()),
            counters: Some(counters),
            ..Default::default()
        };
        let out = describe(svc, &related, now());
        assert_eq!(
            out,
            "Name:                     backend-service\n\
             Namespace:                default\n\
             Labels:                   <none>\n\
             Annotations:              <none>\n\
             Selector:                 app=backend,tier=web\n\
             Type:                     ClusterIP\n\
             IP Family Policy:         SingleStack\n\
             IP Families:              IPv4\n\
             IP:                       10.96.0.20\n\
             IPs:                      10.96.0.20\n\
             Port:                     http  80/TCP\n\
             TargetPort:               8080/TCP\n\
             Endpoints:                10.244.0.5:8080,10.244.0.6:8080,10.244.0.7:8080 + 1 more...\n\
             Port:                     dns  53/UDP\n\
             TargetPort:               53/UDP\n\
             Endpoints:                \n\
             Session Affinity:         None\n\
             Internal Traffic Policy:  Cluster\n\
             Counters:\n\
             \x20 flows_created:          12\n\
             \x20 rejected_no_endpoints:  0\n\
             Events:                   <none>\n"
        );
        // Without endpoints, or with events.
        let related = Related {
            events: vec!["Normal\tCreated\t45s\tlab\tallocated 10.96.0.20".into()],
            ..Default::default()
        };
        let out = describe(svc, &related, now());
        assert!(out.contains("Endpoints:                <none>\n"), "{out}");
        assert!(
            out.ends_with(
                "Events:\n\
                 \x20 Type    Reason   Age   From  Message\n\
                 \x20 ----    ------   ----  ----  -------\n\
                 \x20 Normal  Created  45s   lab   allocated 10.96.0.20\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn describe_events_table_matches_kubectl() {
        let mut d = Desc::default();
        d.w(0, "Name:\tx\n");
        describe_events(
            &mut d,
            &["Normal\tScheduled\t5m\tdefault-scheduler\tSuccessfully assigned default/x".into()],
        );
        assert_eq!(
            d.finish(),
            "Name:  x\n\
             Events:\n\
             \x20 Type    Reason     Age   From               Message\n\
             \x20 ----    ------     ----  ----               -------\n\
             \x20 Normal  Scheduled  5m    default-scheduler  Successfully assigned default/x\n"
        );
    }

    #[test]
    fn describe_pod_layout() {
        let mut v = restarted_pod();
        v["metadata"]["labels"] = json!({"app": "backend", "pod-template-hash": "7d4b9c"});
        v["metadata"]["annotations"] = json!({"lab.dev/netns": "lab-backend"});
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "backend-7d4b9c", "uid": "u", "controller": true}]);
        v["spec"]["nodeName"] = json!("lab-node");
        v["spec"]["containers"][0]["args"] = json!(["netexec", "--http-port=8080"]);
        v["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080, "protocol": "TCP"}]);
        v["spec"]["containers"][0]["env"] = json!([
            {"name": "MODE", "value": "fast"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
        v["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": true}]);
        v["spec"]["containers"][0]["readinessProbe"] =
            json!({"httpGet": {"path": "/healthz", "port": 8080}});
        v["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "web"}}, {"name": "scratch", "emptyDir": {}}]);
        v["status"]["hostIP"] = json!("10.0.0.1");
        v["status"]["podIP"] = json!("10.244.0.12");
        v["status"]["podIPs"] = json!([{"ip": "10.244.0.12"}]);
        v["status"]["startTime"] = json!("2023-12-31T22:00:00Z");
        v["status"]["conditions"] = json!([{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}]);
        let p = obj(Kind::Pod, v);
        let out = describe(&p, &Related::default(), now());
        let expected_head = "Name:         backend-7d4b9c-x2x4p\n\
             Namespace:    apps\n\
             Priority:     0\n\
             Node:         lab-node/10.0.0.1\n\
             Start Time:   Sun, 31 Dec 2023 22:00:00 +0000\n\
             Labels:       app=backend\n\
             \x20             pod-template-hash=7d4b9c\n\
             Annotations:  lab.dev/netns: lab-backend\n\
             Status:       Running\n\
             IP:           10.244.0.12\n\
             IPs:\n\
             \x20 IP:           10.244.0.12\n\
             Controlled By:  ReplicaSet/backend-7d4b9c\n\
             Containers:\n\
             \x20 web:\n\
             \x20   Container ID:  \n\
             \x20   Image:         agnhost\n\
             \x20   Image ID:      \n\
             \x20   Port:          8080/TCP\n\
             \x20   Host Port:     0/TCP\n\
             \x20   Args:\n\
             \x20     netexec\n\
             \x20     --http-port=8080\n\
             \x20   State:          Running\n\
             \x20     Started:      Mon, 01 Jan 2024 00:09:48 +0000\n\
             \x20   Last State:     Terminated\n\
             \x20     Reason:       Error\n\
             \x20     Exit Code:    137\n\
             \x20     Started:      Mon, 01 Jan 2024 00:01:00 +0000\n\
             \x20     Finished:     Mon, 01 Jan 2024 00:09:48 +0000\n\
             \x20   Ready:          True\n\
             \x20   Restart Count:  3\n\
             \x20   Readiness:      http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n\
             \x20   Environment:\n\
             \x20     MODE:      fast\n\
             \x20     POD_NAME:  backend-7d4b9c-x2x4p (v1:metadata.name)\n\
             \x20   Mounts:\n\
             \x20     /etc/cfg from cfg (ro)\n\
             \x20 side:\n\
             \x20   Container ID:   \n\
             \x20   Image:          busybox\n";
        assert!(out.starts_with(expected_head), "{out}");
        let expected_tail = "Conditions:\n\
             \x20 Type          Status\n\
             \x20 Initialized   True \n\
             \x20 Ready         False \n\
             Volumes:\n\
             \x20 cfg:\n\
             \x20   Type:      ConfigMap (a volume populated by a ConfigMap)\n\
             \x20   Name:      web\n\
             \x20   Optional:  false\n\
             \x20 scratch:\n\
             \x20   Type:        EmptyDir (a temporary directory that shares a pod's lifetime)\n\
             \x20   Medium:      \n\
             \x20   SizeLimit:   <unset>\n\
             QoS Class:       BestEffort\n\
             Node-Selectors:  <none>\n\
             Tolerations:     <none>\n\
             Events:          <none>\n";
        assert!(out.ends_with(expected_tail), "{out}");
    }

    #[test]
    fn describe_terminating_pod() {
        let mut v = running_pod("x", "2024-01-01T00:00:00Z", "10.244.0.9");
        v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:09:50Z");
        v["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        let out = describe(&obj(Kind::Pod, v), &Related::default(), now());
        assert!(
            out.contains("Status:                    Terminating (lasts 10s)\n"),
            "{out}"
        );
        assert!(out.contains("Termination Grace Period:  30s\n"), "{out}");
    }

    #[test]
    fn describe_deployment_layout() {
        let img = "registry.k8s.io/e2e-test-images/agnhost:2.53";
        let rss: Vec<ReplicaSet> = vec![
            serde_json::from_value(replicaset("backend-old", "aaa", "agnhost:old", 0, "1"))
                .unwrap(),
            serde_json::from_value(replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2")).unwrap(),
        ];
        let related = Related {
            replicasets: rss,
            ..Default::default()
        };
        let out = describe(&obj(Kind::Deployment, deployment()), &related, now());
        let expected = "Name:                   backend\n\
             Namespace:              default\n\
             CreationTimestamp:      Mon, 01 Jan 2024 00:00:00 +0000\n\
             Labels:                 app=backend\n\
             Annotations:            <none>\n\
             Selector:               app=backend,env in (dev,prod)\n\
             Replicas:               3 desired | 3 updated | 3 total | 2 available | 1 unavailable\n\
             StrategyType:           RollingUpdate\n\
             MinReadySeconds:        0\n\
             RollingUpdateStrategy:  25% max unavailable, 25% max surge\n\
             Pod Template:\n\
             \x20 Labels:  app=backend\n\
             \x20          env=prod\n\
             \x20 Containers:\n\
             \x20  web:\n\
             \x20   Image:      registry.k8s.io/e2e-test-images/agnhost:2.53\n\
             \x20   Port:       8080/TCP\n\
             \x20   Host Port:  0/TCP\n\
             \x20   Args:\n\
             \x20     netexec\n\
             \x20     --http-port=8080\n\
             \x20   Environment:  <none>\n\
             \x20   Mounts:       <none>\n\
             \x20  log:\n\
             \x20   Image:      busybox\n\
             \x20   Port:       <none>\n\
             \x20   Host Port:  <none>\n\
             \x20   Command:\n\
             \x20     sh\n\
             \x20     -c\n\
             \x20     tail -f /dev/null\n\
             \x20   Environment:   <none>\n\
             \x20   Mounts:        <none>\n\
             \x20 Volumes:         <none>\n\
             \x20 Node-Selectors:  <none>\n\
             \x20 Tolerations:     <none>\n\
             OldReplicaSets:    backend-old (0/0 replicas created)\n\
             NewReplicaSet:     backend-7d4b9c (3/3 replicas created)\n\
             Events:            <none>\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn describe_replicaset_endpoints_slice_configmap_namespace() {
        let img = "agnhost";
        let rs = obj(
            Kind::ReplicaSet,
            replicaset("backend-7d4b9c", "7d4b9c", img, 3, "2"),
        );
        let out = describe(&rs, &Related::default(), now());
        assert!(out.starts_with("Name:           backend-7d4b9c\nNamespace:      default\nSelector:       app=backend,pod-template-hash=7d4b9c\n"), "{out}");
        assert!(
            out.contains("Controlled By:  Deployment/backend\n"),
            "{out}"
        );
        assert!(
            out.contains("Replicas:       3 current / 3 desired\n"),
            "{out}"
        );
        assert!(
            out.contains("Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 0 Failed\n"),
            "{out}"
        );

        let ep = obj(Kind::Endpoints, endpoints(2));
        assert_eq!(
            describe(&ep, &Related::default(), now()),
            "Name:         backend-service\n\
             Namespace:    default\n\
             Labels:       <none>\n\
             Annotations:  <none>\n\
             Subsets:\n\
             \x20 Addresses:          10.244.0.5,10.244.0.6\n\
             \x20 NotReadyAddresses:  10.244.0.99\n\
             \x20 Ports:\n\
             \x20   Name  Port  Protocol\n\
             \x20   ----  ----  --------\n\
             \x20   http  8080  TCP\n\
             \n\
             Events:  <none>\n"
        );

        let slice = obj(
            Kind::EndpointSlice,
            json!({
                "metadata": {"name": "backend-service-abc12", "namespace": "default",
                              "labels": {"kubernetes.io/service-name": "backend-service"}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": true},
                               "targetRef": {"kind": "Pod", "name": "backend-x"}, "nodeName": "lab-node"}]
            }),
        );
        assert_eq!(
            describe(&slice, &Related::default(), now()),
            "Name:         backend-service-abc12\n\
             Namespace:    default\n\
             Labels:       kubernetes.io/service-name=backend-service\n\
             Annotations:  <none>\n\
             AddressType:  IPv4\n\
             Ports:\n\
             \x20 Name  Port  Protocol\n\
             \x20 ----  ----  --------\n\
             \x20 http  8080  TCP\n\
             Endpoints:\n\
             \x20 - Addresses:  10.244.0.5\n\
             \x20   Conditions:\n\
             \x20     Ready:    true\n\
             \x20   Hostname:   <unset>\n\
             \x20   TargetRef:  Pod/backend-x\n\
             \x20   NodeName:   lab-node\n\
             \x20   Zone:       <unset>\n\
             Events:         <none>\n"
        );

        let cm = obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "web", "namespace": "default"},
            "data": {"index.html": "hello", "z": "1"}}),
        );
        assert_eq!(
            describe(&cm, &Related::default(), now()),
            "Name:         web\n\
             Namespace:    default\n\
             Labels:       <none>\n\
             Annotations:  <none>\n\
             \n\
             Data\n\
             ====\n\
             index.html:\n\
             ----\n\
             hello\n\
             \n\
             z:\n\
             ----\n\
             1\n\
             \n\
             \n\
             BinaryData\n\
             ====\n\
             \n\
             Events:  <none>\n"
        );

        let ns = obj(
            Kind::Namespace,
            json!({"metadata": {"name": "default",
            "labels": {"kubernetes.io/metadata.name": "default"}}, "status": {"phase": "Active"}}),
        );
        assert_eq!(
            describe(&ns, &Related::default(), now()),
            "Name:         default\n\
             Labels:       kubernetes.io/metadata.name=default\n\
             Annotations:  <none>\n\
             Status:       Active\n\
             \n\
             No resource quota.\n\
             \n\
             No LimitRange resource.\n"
        );
    }

    #[test]
    fn long_and_multiline_annotations_are_broken() {
        let long = "x".repeat(200);
        let cm = obj(
            Kind::ConfigMap,
            json!({"metadata": {"name": "c", "namespace": "d",
            "annotations": {"a": "short", "b": long, "c": "one\ntwo",
                            "kubectl.kubernetes.io/last-applied-configuration": "{}"}}}),
        );
        let out = describe(&cm, &Related::default(), now());
        let shortened = format!("{}...", "x".repeat(138));
        assert!(
            out.contains(&format!("Annotations:  a: short\n              b:\n                {shortened}\n              c:\n                one\n                two\n")),
            "{out}"
        );
        assert!(!out.contains("last-applied"), "{out}");
    }

    #[test]
    fn selectors_probes_tolerations_qos_and_load_balancers() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "z", "operator": "NotIn", "values": ["y", "x"]},
                {"key": "c", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(selector_string(&sel).unwrap(), "a=1,b=2,c,!d,z notin (x,y)");
        assert_eq!(format_label_selector(&LabelSelector::default()), "<none>");
        let bad: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "k", "operator": "Near"}]}))
                .unwrap();
        assert_eq!(format_label_selector(&bad), "<error>");

        let probe = |v: Value| describe_probe(&serde_json::from_value::<Probe>(v).unwrap());
        assert_eq!(
            probe(json!({"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 2})),
            "exec [cat /tmp/ready] delay=0s timeout=1s period=2s #success=1 #failure=3"
        );
        assert_eq!(
            probe(json!({"tcpSocket": {"port": "dns"}, "initialDelaySeconds": 5})),
            "tcp-socket :dns delay=5s timeout=1s period=10s #success=1 #failure=3"
        );

        let mut d = Desc::default();
        let tolerations: Vec<Toleration> = serde_json::from_value(json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "dedicated", "operator": "Equal", "value": "lab", "effect": "NoSchedule"},
            {"operator": "Exists"}]))
        .unwrap();
        tolerations_multiline(&mut d, "Tolerations", &tolerations);
        assert_eq!(
            d.finish(),
            "Tolerations:  op=Exists\n\
             \x20             dedicated=lab:NoSchedule\n\
             \x20             node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n"
        );

        let qos = |resources: Value| {
            qos_class(
                &serde_json::from_value(
                    json!({"containers": [{"name": "c", "resources": resources}]}),
                )
                .unwrap(),
            )
        };
        assert_eq!(qos(json!({})), "BestEffort");
        assert_eq!(qos(json!({"requests": {"cpu": "100m"}})), "Burstable");
        assert_eq!(
            qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
            "Guaranteed"
        );
        assert_eq!(
            qos(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
            ),
            "Burstable"
        );

        let lb: Service = serde_json::from_value(json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}, {"ip": "203.0.113.9"}]}}
        }))
        .unwrap();
        assert_eq!(service_external_ip(&lb, false), "203.0.113.10,...");
        assert_eq!(service_external_ip(&lb, true), "203.0.113.10,203.0.113.9");
        assert_eq!(service_ports(&lb), "80:30080/TCP");
        let pending: Service = serde_json::from_value(
            json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}),
        )
        .unwrap();
        assert_eq!(service_external_ip(&pending, false), "<pending>");
    }
}
