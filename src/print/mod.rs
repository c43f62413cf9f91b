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
    ConfigMap, Deployment, EndpointSlice, Endpoints, Event, Job, Kind, Namespace, Node, Object,
    ObjectMeta, Pod, ReplicaSet, Secret, Service, StatefulSet,
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
    /// The pods bound to a Node (its `Non-terminated Pods:` section).
    pub pods: Vec<Pod>,
}

/// What some rows need beyond their object: the non-terminated pods bound
/// to each node (the PODS column of `get nodes -o wide`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCtx {
    pub node_pods: BTreeMap<String, usize>,
}

impl RowCtx {
    /// Counted from the pods given (any namespace).
    pub fn from_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> RowCtx {
        let mut node_pods = BTreeMap::new();
        for p in pods {
            if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_ref())
                && !pod_terminated(p)
            {
                *node_pods.entry(n.clone()).or_insert(0) += 1;
            }
        }
        RowCtx { node_pods }
    }

    /// Counted from a store's pods.
    pub fn with_pods(store: &crate::store::Store) -> RowCtx {
        RowCtx::from_pods(store.list(Kind::Pod, None).filter_map(|o| match o {
            Object::Pod(p) => Some(&**p),
            _ => None,
        }))
    }
}

/// Succeeded or Failed (kubectl's "non-terminated" pods are the others).
pub fn pod_terminated(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

mod describe;
mod format;
mod podstatus;
mod table;
mod tabwriter;
#[cfg(test)]
mod tests;
mod time;

pub(crate) use self::describe::*;
pub(crate) use self::format::*;
pub(crate) use self::podstatus::*;
pub(crate) use self::table::*;
pub(crate) use self::tabwriter::*;
pub(crate) use self::time::*;
