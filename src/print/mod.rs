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
    ConfigMap, Deployment, EndpointSlice, Endpoints, Event, Job, Kind, Namespace, Object,
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
