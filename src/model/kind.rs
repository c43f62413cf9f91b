//! The kinds lab serves, with kubectl's resource names and short names.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    ConfigMap,
    Service,
    Endpoints,
    EndpointSlice,
    Deployment,
    ReplicaSet,
    StatefulSet,
    Pod,
    /// Recorded by the cluster (controllers, scheduler, kubelet), never applied.
    Event,
    Secret,
    Job,
    /// A machine of the cluster (cluster-scoped): registered by the daemon
    /// from the cluster's topology, never created or deleted by users.
    Node,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Namespace,
        Kind::ConfigMap,
        Kind::Service,
        Kind::Endpoints,
        Kind::EndpointSlice,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::Pod,
        Kind::Event,
        Kind::Secret,
        Kind::Job,
        Kind::Node,
    ];

    /// The kinds `kubectl get all` shows, in its order.
    pub const GET_ALL: [Kind; 6] = [
        Kind::Pod,
        Kind::Service,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::StatefulSet,
        Kind::Job,
    ];

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet => "apps/v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::Job => "batch/v1",
            _ => "v1",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::ConfigMap => "ConfigMap",
            Kind::Service => "Service",
            Kind::Endpoints => "Endpoints",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::StatefulSet => "StatefulSet",
            Kind::Pod => "Pod",
            Kind::Event => "Event",
            Kind::Secret => "Secret",
            Kind::Job => "Job",
            Kind::Node => "Node",
        }
    }

    /// Lower-case plural resource name, as in `kubectl get pods`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::ConfigMap => "configmaps",
            Kind::Service => "services",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslices",
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::StatefulSet => "statefulsets",
            Kind::Pod => "pods",
            Kind::Event => "events",
            Kind::Secret => "secrets",
            Kind::Job => "jobs",
            Kind::Node => "nodes",
        }
    }

    /// The `resource.group` form kubectl prints in `-o name` and multi-kind
    /// tables (`pod/client`, `deployment.apps/backend`).
    pub fn qualified(self) -> &'static str {
        match self {
            Kind::Namespace => "namespace",
            Kind::ConfigMap => "configmap",
            Kind::Service => "service",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslice.discovery.k8s.io",
            Kind::Deployment => "deployment.apps",
            Kind::ReplicaSet => "replicaset.apps",
            Kind::StatefulSet => "statefulset.apps",
            Kind::Pod => "pod",
            Kind::Event => "event",
            Kind::Secret => "secret",
            Kind::Job => "job.batch",
            Kind::Node => "node",
        }
    }

    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// Kinds a user may apply (the rest are made by controllers, although
    /// hand-written Endpoints for selector-less Services are allowed).
    pub fn user_writable(self) -> bool {
        !matches!(self, Kind::EndpointSlice | Kind::Event)
    }

    /// Parse a resource name as kubectl accepts it: plural, singular, short
    /// name or kind, case-insensitive, optionally with its API group.
    pub fn from_resource(s: &str) -> Option<Kind> {
        let lower = s.to_ascii_lowercase();
        let base = lower.split('.').next().unwrap_or("");
        Some(match base {
            "namespace" | "namespaces" | "ns" => Kind::Namespace,
            "configmap" | "configmaps" | "cm" => Kind::ConfigMap,
            "service" | "services" | "svc" => Kind::Service,
            "endpoints" | "ep" => Kind::Endpoints,
            "endpointslice" | "endpointslices" => Kind::EndpointSlice,
            "deployment" | "deployments" | "deploy" => Kind::Deployment,
            "replicaset" | "replicasets" | "rs" => Kind::ReplicaSet,
            "statefulset" | "statefulsets" | "sts" => Kind::StatefulSet,
            "pod" | "pods" | "po" => Kind::Pod,
            "event" | "events" | "ev" => Kind::Event,
            "secret" | "secrets" => Kind::Secret,
            "job" | "jobs" => Kind::Job,
            "node" | "nodes" | "no" => Kind::Node,
            _ => return None,
        })
    }

    /// The kind named by a manifest's `apiVersion` + `kind`.
    pub fn from_manifest(api_version: &str, kind: &str) -> Result<Kind, KindError> {
        let k = match kind {
            "Namespace" => Kind::Namespace,
            "ConfigMap" => Kind::ConfigMap,
            "Service" => Kind::Service,
            "Endpoints" => Kind::Endpoints,
            "EndpointSlice" => Kind::EndpointSlice,
            "Deployment" => Kind::Deployment,
            "ReplicaSet" => Kind::ReplicaSet,
            "StatefulSet" => Kind::StatefulSet,
            "Pod" => Kind::Pod,
            "Event" => Kind::Event,
            "Secret" => Kind::Secret,
            "Job" => Kind::Job,
            "Node" => Kind::Node,
            other => return Err(KindError::Unsupported(other.to_string())),
        };
        if api_version != k.api_version() {
            return Err(KindError::ApiVersion {
                api_version: api_version.to_string(),
                kind: k,
            });
        }
        Ok(k)
    }
}

/// Why a manifest's `apiVersion` + `kind` name no kind lab serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error(
        "kind {0:?} is not supported by lab (supported: Namespace, Pod, Service, ConfigMap, Secret, Endpoints, Deployment, ReplicaSet, StatefulSet, Job)"
    )]
    Unsupported(String),
    #[error("apiVersion {api_version:?} is not supported for kind {kind} (use {:?})", kind.api_version())]
    ApiVersion { api_version: String, kind: Kind },
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_resource(k.plural()), Some(k));
            assert_eq!(Kind::from_resource(k.as_str()), Some(k));
            assert_eq!(Kind::from_resource(k.qualified()), Some(k));
            assert_eq!(Kind::from_manifest(k.api_version(), k.as_str()), Ok(k));
        }
        assert_eq!(Kind::from_resource("po"), Some(Kind::Pod));
        assert_eq!(Kind::from_resource("deploy"), Some(Kind::Deployment));
        assert_eq!(Kind::from_resource("svc"), Some(Kind::Service));
        assert_eq!(Kind::from_resource("sts"), Some(Kind::StatefulSet));
        assert_eq!(Kind::from_resource("bogus"), None);
    }

    #[test]
    fn wrong_api_version_is_named() {
        let e = Kind::from_manifest("v1", "Deployment")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apps/v1"), "{e}");
        let e = Kind::from_manifest("v1", "StatefulSetX").unwrap_err();
        assert_eq!(e, KindError::Unsupported("StatefulSetX".into()));
        assert!(e.to_string().contains("StatefulSetX"), "{e}");
        let e = Kind::from_manifest("v1", "Job").unwrap_err().to_string();
        assert!(e.contains("batch/v1"), "{e}");
    }
}
