//! The daemon's desired state and allocations, and the user-facing
//! operations on it (apply, delete, scale). Pure: no I/O; all-or-nothing.

use crate::api::ApplyOutcome;
use crate::cluster::ClusterConfig;
use crate::controller::workload::{is_terminating, mark_deleted};
use crate::ipam::{Ipam, IpamError, PodIpam};
use crate::model::parse::{Document, ManifestError, decode};
use crate::model::{Kind, Namespace, Object};
use crate::store::{Key, Store};
use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::Ipv4Addr;

pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];
pub const NETNS_ANNOTATION: &str = "lab.dev/netns";

#[derive(Debug, Clone)]
pub struct State {
    pub config: ClusterConfig,
    pub store: Store,
    pub pod_ipam: PodIpam,
    pub svc_ipam: Ipam,
    /// The last address of each StatefulSet pod that is gone (`ns/name`):
    /// a re-created `db-0` asks for it again (in memory only; Kubernetes
    /// itself gives a re-created pod a new address).
    pub sticky_ips: std::collections::HashMap<String, Ipv4Addr>,
    /// The controllers' memory between passes (see
    /// [`Controllers`](crate::controller::Controllers)).
    pub controllers: crate::controller::Controllers,
}

/// Why one document of an apply was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Not a valid object (the file, document, object and field).
    #[error(transparent)]
    Manifest(ManifestError),
    /// A valid object the cluster refuses (document `index` of `file`).
    #[error("{file}: document {index}: {error}")]
    Object {
        file: String,
        index: usize,
        #[source]
        error: StateError,
    },
}

/// Why a pod update is refused (`kubectl` shows it after the field `spec`).
pub const POD_UPDATE_FORBIDDEN: &str = "Forbidden: pod updates may not change fields (delete and re-create the pod, or use a Deployment)";

/// Why an object cannot be applied, deleted or scaled: the API server's
/// words, naming the object and, for a refused value, the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{0} objects are managed by lab's controllers and cannot be applied")]
    NotWritable(Kind),
    #[error(
        "the namespace from the provided object {object:?} does not match the namespace {given:?}. You must pass '--namespace={object}' to perform this operation."
    )]
    NamespaceMismatch { object: String, given: String },
    #[error("namespaces {0:?} not found")]
    NamespaceNotFound(String),
    #[error("namespace {0:?} is being terminated")]
    NamespaceTerminating(String),
    #[error(
        "nodes {0:?} is forbidden: nodes are registered by lab from the cluster's topology (lab up --nodes N); they cannot be created"
    )]
    NodeCreate(String),
    /// `kind/name` exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// `kind/name` has a deletion in progress.
    #[error("{0} is being deleted; try again once it is gone")]
    BeingDeleted(String),
    #[error("The Pod {0:?} is invalid: spec: {POD_UPDATE_FORBIDDEN}")]
    PodUpdate(String),
    /// A value the API server refuses: its field path and message, and the
    /// object (`kind/name`) when the message names it.
    #[error("{}{field}: {message}", object_prefix(.object))]
    Field {
        object: Option<String>,
        field: String,
        message: String,
    },
    /// `kind/name` cannot change this way.
    #[error("{object}: {message}")]
    Object { object: String, message: String },
    #[error("{0}: kind mismatch")]
    KindMismatch(String),
    #[error("{0}")]
    Ipam(IpamError),
    #[error("namespaces {0:?} is forbidden: this namespace may not be deleted")]
    SystemNamespace(String),
    #[error(
        "nodes {0:?} is forbidden: lab's nodes are part of the cluster's topology and cannot be deleted (cordon or drain it: lab node drain {0})"
    )]
    NodeDelete(String),
    #[error("--replicas must be >= 0")]
    NegativeReplicas,
    /// `kind/name` has no replicas.
    #[error("{0} cannot be scaled (only deployments, replicasets and statefulsets)")]
    NotScalable(String),
    #[error("{plural} {name:?} not found")]
    NotFound { plural: &'static str, name: String },
}

fn object_prefix(object: &Option<String>) -> String {
    object
        .as_ref()
        .map(|o| format!("{o}: "))
        .unwrap_or_default()
}

/// A refused value of `field`.
fn field_error(field: impl Into<String>, message: impl Into<String>) -> StateError {
    StateError::Field {
        object: None,
        field: field.into(),
        message: message.into(),
    }
}

/// A refused value of `field` of the object `label` (`kind/name`).
fn object_field_error(
    label: &str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> StateError {
    StateError::Field {
        object: Some(label.to_string()),
        field: field.into(),
        message: message.into(),
    }
}

impl StateError {
    /// The same error naming the object `label` (`kind/name`).
    fn on(self, label: &str) -> StateError {
        match self {
            StateError::Field {
                object: None,
                field,
                message,
            } => object_field_error(label, field, message),
            StateError::Ipam(e) => StateError::Object {
                object: label.to_string(),
                message: e.to_string(),
            },
            e => e,
        }
    }
}

/// One pod range per node.
fn pod_ipam(config: &ClusterConfig) -> PodIpam {
    let ranges: Vec<_> = config
        .node_specs()
        .into_iter()
        .map(|n| (n.name, n.pod_cidr))
        .collect();
    PodIpam::new(&ranges)
}

fn service_ip(obj: &Object) -> Option<Ipv4Addr> {
    match obj {
        Object::Service(s) => s.spec.as_ref()?.cluster_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

impl State {
    pub fn new(config: ClusterConfig, store: Store) -> State {
        let pod_ipam = pod_ipam(&config);
        let svc_ipam = Ipam::new(config.service_cidr, &[config.dns_ip(), config.snat_ip()]);
        let mut st = State {
            config,
            store,
            pod_ipam,
            svc_ipam,
            sticky_ips: Default::default(),
            controllers: Default::default(),
        };
        st.rebuild_ipam();
        st
    }

    /// Run the controllers (each pass looks at what changed since the last).
    pub fn reconcile_controllers(&mut self) {
        self.controllers.reconcile(&mut self.store);
    }

    /// Remember the address of a StatefulSet pod that is going away, so its
    /// successor of the same name gets it back if it is still free.
    pub fn remember_ip(&mut self, pod: &Object, ip: Ipv4Addr) {
        let by_set = pod
            .meta()
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.kind == "StatefulSet");
        if by_set {
            let key = format!("{}/{}", pod.namespace(), pod.name());
            self.sticky_ips.insert(key, ip);
        }
    }

    /// A new address for a pod: its predecessor's if it had one (a
    /// StatefulSet pod of the same name) and it is free, else the next one.
    /// The address comes from the range of `node`, the node the pod is
    /// bound to.
    pub fn allocate_pod_ip(
        &mut self,
        namespace: &str,
        name: &str,
        node: &str,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.sticky_ips.remove(&format!("{namespace}/{name}"))
            && self.pod_ipam.node_of(ip) == Some(node)
            && self.pod_ipam.claim(ip).is_ok()
        {
            return Ok(ip);
        }
        self.pod_ipam.allocate(node)
    }

    /// Re-derive allocations from the stored objects (after a restart).
    pub fn rebuild_ipam(&mut self) {
        self.pod_ipam = pod_ipam(&self.config);
        self.svc_ipam = Ipam::new(
            self.config.service_cidr,
            &[self.config.dns_ip(), self.config.snat_ip()],
        );
        for o in self.store.list(Kind::Pod, None) {
            if let Some(ip) = pod_ip(o)
                && let Err(e) = self.pod_ipam.claim(ip)
            {
                tracing::warn!(pod = %Key::of(o), %ip, error = %e, "re-claiming a pod's address");
            }
        }
        let ips: Vec<(Key, Ipv4Addr)> = self
            .store
            .list(Kind::Service, None)
            .filter_map(|o| Some((Key::of(o), service_ip(o)?)))
            .collect();
        for (key, ip) in ips {
            if let Err(e) = self.svc_ipam.claim_reserved(ip) {
                tracing::warn!(service = %key, %ip, error = %e, "re-claiming a ClusterIP");
            }
        }
    }

    /// Create the system namespaces and `default/kubernetes` if missing.
    pub fn ensure_system_objects(&mut self) {
        for ns in SYSTEM_NAMESPACES {
            if self.store.get(&Key::new(Kind::Namespace, "", ns)).is_none()
                && self.store.create(namespace(ns)).is_err()
            {
                tracing::error!(namespace = ns, "creating a system namespace: it exists");
            }
        }
        if self
            .store
            .get(&Key::new(Kind::Service, "default", "kubernetes"))
            .is_none()
        {
            let ip = self.config.service_ip(1);
            let svc = serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()], "type": "ClusterIP",
                    "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}
            });
            self.create_system_service(ip, svc);
        }
        self.ensure_cluster_dns();
        crate::controller::nodes::ensure(
            &mut self.store,
            &self.config.node_specs(),
            &crate::controller::nodes::HostInfo::current(),
            std::time::SystemTime::now(),
        );
    }

    /// Create a system Service at its fixed ClusterIP; a failure is logged
    /// (the cluster runs on without it).
    fn create_system_service(&mut self, ip: Ipv4Addr, svc: serde_json::Value) {
        let name = svc.pointer("/metadata/name").cloned().unwrap_or_default();
        let obj = match Object::from_json(Kind::Service, svc) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(service = %name, error = %e, "building a system Service");
                return;
            }
        };
        let key = Key::of(&obj);
        if let Err(e) = self.svc_ipam.claim_reserved(ip) {
            tracing::error!(service = %key, %ip, error = %e, "claiming a system Service's ClusterIP");
            return;
        }
        if self.store.create(obj).is_err() {
            self.svc_ipam.release(ip);
            tracing::error!(service = %key, "creating a system Service: it exists");
        }
    }

    /// `kube-system/kube-dns` at the tenth service IP and the `coredns`
    /// Deployment behind it, as kubeadm installs them (created if missing; a
    /// user's changes to them are kept).
    fn ensure_cluster_dns(&mut self) {
        let ip = self.config.dns_ip();
        if self
            .store
            .get(&Key::new(Kind::Service, "kube-system", "kube-dns"))
            .is_none()
        {
            let svc = serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system",
                    "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                        "kubernetes.io/name": "CoreDNS"}},
                "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()], "type": "ClusterIP",
                    "sessionAffinity": "None", "selector": {"k8s-app": "kube-dns"},
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
            });
            self.create_system_service(ip, svc);
        }
        if self
            .store
            .get(&Key::new(Kind::Deployment, "kube-system", "coredns"))
            .is_none()
        {
            let yaml =
                coredns_deployment(&self.config.name, &self.config.layout().read_only_api_dir());
            let applied = crate::model::parse::parse_documents("coredns", &yaml)
                .map_err(|e| vec![ApplyError::Manifest(e)])
                .and_then(|docs| self.apply(&docs, "kube-system", true));
            if let Err(errors) = applied {
                for e in errors {
                    tracing::error!(error = %e, "creating the coredns deployment");
                }
            }
        }
    }

    /// Validate every document, then apply all of them or none.
    /// `explicit_ns`: the namespace was given with `-n` (then an object naming
    /// another namespace is an error, as with kubectl).
    pub fn apply(
        &mut self,
        docs: &[Document],
        default_ns: &str,
        explicit_ns: bool,
    ) -> Result<ApplyOutcome, Vec<ApplyError>> {
        let mut errors = Vec::new();
        let mut decoded = Vec::new();
        for d in docs {
            match decode(d) {
                Ok(x) => decoded.push((d, x)),
                Err(e) => errors.push(ApplyError::Manifest(e)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut next = self.clone();
        let mut out = ApplyOutcome::default();
        for (doc, dec) in decoded {
            out.warnings
                .extend(dec.warnings.iter().map(|w| format!("Warning: {w}")));
            match next.apply_one(dec.object, default_ns, explicit_ns, &doc.value) {
                Ok(line) => out.results.push(line),
                Err(error) => errors.push(ApplyError::Object {
                    file: doc.source.clone(),
                    index: doc.index,
                    error,
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        *self = next;
        Ok(out)
    }

    fn apply_one(
        &mut self,
        mut obj: Object,
        default_ns: &str,
        explicit_ns: bool,
        doc: &serde_json::Value,
    ) -> Result<String, StateError> {
        let kind = obj.kind();
        if !kind.user_writable() {
            return Err(StateError::NotWritable(kind));
        }
        if kind.namespaced() {
            let ns = match obj.meta().namespace.as_deref() {
                Some(ns) if !ns.is_empty() => {
                    if ns != default_ns && explicit_ns {
                        return Err(StateError::NamespaceMismatch {
                            object: ns.to_string(),
                            given: default_ns.to_string(),
                        });
                    }
                    ns.to_string()
                }
                _ => default_ns.to_string(),
            };
            obj.meta_mut().namespace = Some(ns.clone());
            match self.store.get(&Key::new(Kind::Namespace, "", &ns)) {
                None => return Err(StateError::NamespaceNotFound(ns)),
                Some(n) if is_terminating(n.meta()) => {
                    return Err(StateError::NamespaceTerminating(ns));
                }
                _ => {}
            }
        }
        if kind == Kind::Pod && obj.name().is_empty() {
            let base = obj.meta().generate_name.clone().unwrap_or_default();
            obj.meta_mut().name = Some(format!(
                "{base}{}",
                crate::controller::workload::random_suffix()
            ));
        }
        // Server-managed metadata from the input is dropped.
        {
            let m = obj.meta_mut();
            m.uid = None;
            m.resource_version = None;
            m.creation_timestamp = None;
            m.generation = None;
            m.managed_fields = None;
            m.deletion_timestamp = None;
            m.deletion_grace_period_seconds = None;
            m.self_link = None;
        }
        // As `kubectl apply`: remember what was applied, so the next apply
        // (lab's or kubectl's) can tell the user's keys from the server's.
        {
            let ns = obj.meta().namespace.clone();
            let applied = crate::model::applied::last_applied(doc, ns.as_deref());
            obj.meta_mut()
                .annotations
                .get_or_insert_with(Default::default)
                .insert(crate::model::applied::LAST_APPLIED.into(), applied);
        }
        let key = Key::of(&obj);
        let label = format!("{}/{}", kind.qualified(), obj.name());
        let Some(old) = self.store.get(&key).cloned() else {
            if kind == Kind::Node {
                return Err(StateError::NodeCreate(obj.name().to_string()));
            }
            self.prepare_new(&mut obj)?;
            self.store
                .create(obj)
                .map_err(|_| StateError::AlreadyExists(label.clone()))?;
            return Ok(format!("{label} created"));
        };
        if is_terminating(old.meta()) {
            return Err(StateError::BeingDeleted(label));
        }
        let merged = merge(&old, obj, &label, &mut self.svc_ipam)?;
        Ok(if self.store.update(merged) {
            format!("{label} configured")
        } else {
            format!("{label} unchanged")
        })
    }

    fn prepare_new(&mut self, obj: &mut Object) -> Result<(), StateError> {
        match obj {
            Object::Service(s) => {
                let spec = s.spec.get_or_insert_with(Default::default);
                default_service_spec(spec);
                // NormalizeClusterIPs on create: a clusterIP alone fills clusterIPs.
                if let Some(ip) = spec.cluster_ip.clone().filter(|ip| !ip.is_empty())
                    && spec.cluster_ips.as_ref().is_none_or(Vec::is_empty)
                {
                    spec.cluster_ips = Some(vec![ip]);
                }
                check_cluster_ip_fields(spec)?;
                if needs_cluster_ip(spec) {
                    allocate_cluster_ip(&mut self.svc_ipam, spec)?;
                }
            }
            Object::Pod(p) => {
                if let Some(spec) = p.spec.as_mut() {
                    default_pod_spec(spec);
                }
            }
            Object::Deployment(d) => {
                d.spec.replicas.get_or_insert(1);
                if let Some(spec) = d.spec.template.spec.as_mut() {
                    default_pod_spec(spec);
                }
            }
            Object::ReplicaSet(r) => {
                r.spec.replicas.get_or_insert(1);
                if let Some(spec) = r.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
                    default_pod_spec(spec);
                }
            }
            Object::StatefulSet(s) => default_statefulset(&mut s.spec),
            Object::Job(j) => {
                let spec = j.spec.get_or_insert_with(Default::default);
                if let Some(sel) = &spec.selector {
                    let labels: Vec<String> = sel
                        .match_labels
                        .iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    return Err(field_error(
                        "spec.selector",
                        format!(
                            "Invalid value: {:?}: `selector` not auto-generated (lab generates it from the Job's uid, as the API server does without manualSelector)",
                            labels.join(",")
                        ),
                    ));
                }
                let uid = crate::store::new_uid();
                j.metadata.uid = Some(uid.clone());
                let name = j.metadata.name.clone().unwrap_or_default();
                default_job_spec(spec, &name, &uid);
                // As the API server: a Job without labels gets its template's.
                if j.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                    j.metadata.labels = spec
                        .template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.labels.clone());
                }
            }
            Object::Namespace(n) => {
                n.status = Some(k8s_openapi::api::core::v1::NamespaceStatus {
                    phase: Some("Active".into()),
                    conditions: None,
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Delete an object (pods gracefully). `Ok(false)` when not found.
    pub fn delete(&mut self, key: &Key, grace: Option<i64>) -> Result<bool, StateError> {
        let Some(obj) = self.store.get(key).cloned() else {
            return Ok(false);
        };
        match key.kind {
            Kind::Namespace => {
                if SYSTEM_NAMESPACES.contains(&key.name.as_str()) {
                    return Err(StateError::SystemNamespace(key.name.clone()));
                }
                let mut ns = obj;
                if ns.meta().deletion_timestamp.is_none() {
                    ns.meta_mut().deletion_timestamp = Some(crate::model::now_time());
                    if let Object::Namespace(n) = &mut ns {
                        n.status.get_or_insert_with(Default::default).phase =
                            Some("Terminating".into());
                    }
                    self.store.update(ns);
                }
            }
            Kind::Service => {
                if key.namespace == "default" && key.name == "kubernetes" {
                    // Kubernetes recreates it at once; so does lab.
                    return Ok(true);
                }
                if let Some(ip) = service_ip(&obj) {
                    self.svc_ipam.release(ip);
                }
                self.store.remove(key);
            }
            Kind::Pod => {
                mark_deleted(&mut self.store, key, grace);
            }
            Kind::Node => {
                return Err(StateError::NodeDelete(key.name.clone()));
            }
            _ => {
                self.store.remove(key);
            }
        }
        Ok(true)
    }

    /// `propagationPolicy: Orphan`: the owner's dependents lose their
    /// reference to it (and so outlive it), as the garbage collector's
    /// orphan finalizer does.
    pub fn orphan_dependents(&mut self, owner_uid: &str) {
        let dependents: Vec<Object> = Kind::ALL
            .into_iter()
            .flat_map(|k| self.store.list(k, None))
            .filter(|o| {
                o.meta()
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == owner_uid)
            })
            .cloned()
            .collect();
        for mut o in dependents {
            let refs = o.meta_mut().owner_references.take().unwrap_or_default();
            let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != owner_uid).collect();
            o.meta_mut().owner_references = (!kept.is_empty()).then_some(kept);
            self.store.update(o);
        }
    }

    /// Namespace deletion: delete everything inside; remove the namespace
    /// once its pods are gone.
    pub fn finish_namespaces(&mut self) {
        for key in self.store.keys(Kind::Namespace) {
            let terminating = self
                .store
                .get(&key)
                .is_some_and(|o| is_terminating(o.meta()));
            if !terminating {
                continue;
            }
            let mut remaining = 0;
            for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
                for k in self
                    .store
                    .keys(kind)
                    .into_iter()
                    .filter(|k| k.namespace == key.name)
                {
                    remaining += 1;
                    if let Err(e) = self.delete(&k, None) {
                        tracing::warn!(object = %k, error = %e, "deleting in a terminating namespace");
                    }
                }
            }
            let pods_left = self.store.list(Kind::Pod, Some(&key.name)).count();
            if pods_left == 0 && remaining >= 0 {
                let rest: usize = Kind::ALL
                    .into_iter()
                    .filter(|k| k.namespaced())
                    .map(|k| self.store.list(k, Some(&key.name)).count())
                    .sum();
                if rest == 0 {
                    self.store.remove(&key);
                }
            }
        }
    }

    /// Evict a pod (the API's `pods/eviction`; lab has no
    /// PodDisruptionBudgets, so every eviction is allowed): a graceful
    /// delete. `Ok(false)` when the pod does not exist.
    pub fn evict(
        &mut self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<bool, StateError> {
        let key = Key::new(Kind::Pod, namespace, name);
        if self.store.get(&key).is_none() {
            return Ok(false);
        }
        self.delete(&key, grace.filter(|g| *g >= 0))
    }

    pub fn scale(&mut self, key: &Key, replicas: i32) -> Result<String, StateError> {
        if replicas < 0 {
            return Err(StateError::NegativeReplicas);
        }
        let label = format!("{}/{}", key.kind.qualified(), key.name);
        match self.store.get(key).cloned() {
            Some(Object::Deployment(mut d)) => {
                d.spec.replicas = Some(replicas);
                self.store.update(Object::Deployment(d));
            }
            Some(Object::ReplicaSet(mut r)) => {
                r.spec.replicas = Some(replicas);
                self.store.update(Object::ReplicaSet(r));
            }
            Some(Object::StatefulSet(mut s)) => {
                s.spec.replicas = Some(replicas);
                self.store.update(Object::StatefulSet(s));
            }
            Some(_) => {
                return Err(StateError::NotScalable(label));
            }
            None => {
                return Err(StateError::NotFound {
                    plural: key.kind.plural(),
                    name: key.name.clone(),
                });
            }
        }
        Ok(format!("{label} scaled"))
    }
}

/// The cluster DNS Deployment: two replicas of `lab dns` (image
/// [`crate::model::images::DNS_IMAGE`]), with the directory of the daemon's read-only API
/// socket (list and watch only) mounted at /run/lab-api (/run/lab itself is
/// hidden in pods).
pub fn coredns_deployment(cluster: &str, api_dir: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {{k8s-app: kube-dns}}
spec:
  replicas: 2
  selector:
    matchLabels: {{k8s-app: kube-dns}}
  template:
    metadata:
      labels: {{k8s-app: kube-dns}}
    spec:
      dnsPolicy: Default
      terminationGracePeriodSeconds: 5
      # As kubeadm's coredns: the replicas prefer different nodes.
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm:
              labelSelector:
                matchExpressions: [{{key: k8s-app, operator: In, values: [kube-dns]}}]
              topologyKey: kubernetes.io/hostname
      tolerations:
      - {{key: CriticalAddonsOnly, operator: Exists}}
      - {{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}}
      containers:
      - name: coredns
        image: {image}:{version}
        args: [--api=/run/lab-api/api.sock, --cluster={cluster}]
        ports:
        - {{name: dns, containerPort: 53, protocol: UDP}}
        - {{name: dns-tcp, containerPort: 53, protocol: TCP}}
        readinessProbe:
          httpGet: {{path: /ready, port: 8181}}
          periodSeconds: 1
        livenessProbe:
          httpGet: {{path: /health, port: 8080}}
          initialDelaySeconds: 10
          timeoutSeconds: 5
          failureThreshold: 5
        volumeMounts:
        - {{name: lab-api, mountPath: /run/lab-api, readOnly: true}}
      volumes:
      - name: lab-api
        hostPath: {{path: {dir}, type: Directory}}
"#,
        image = crate::model::images::DNS_IMAGE,
        version = env!("CARGO_PKG_VERSION"),
        dir = api_dir.display(),
        cluster = cluster,
    )
}

/// The API server's defaults for a Service spec (type, sessionAffinity and
/// its ClientIP timeout, each port's protocol and targetPort).
fn default_service_spec(spec: &mut ServiceSpec) {
    spec.type_.get_or_insert_with(|| "ClusterIP".into());
    spec.session_affinity.get_or_insert_with(|| "None".into());
    if spec.session_affinity.as_deref() == Some("ClientIP") {
        spec.session_affinity_config
            .get_or_insert_with(Default::default)
            .client_ip
            .get_or_insert_with(Default::default)
            .timeout_seconds
            .get_or_insert(10800);
    }
    for p in spec.ports.iter_mut().flatten() {
        p.protocol.get_or_insert_with(|| "TCP".into());
        if p.target_port.is_none() {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
}

/// `needsClusterIP`: every type but ExternalName (`None` counts as a value).
fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() != Some("ExternalName")
}

/// A `[]string` as the API server prints an invalid value (Go's `%#v`).
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// The API server's checks of clusterIP, clusterIPs and the IP-family
/// fields against the type (`validateServiceFields`,
/// `ValidateServiceClusterIPsRelatedFields`), after normalisation.
fn check_cluster_ip_fields(spec: &ServiceSpec) -> Result<(), StateError> {
    let ips = spec.cluster_ips.clone().unwrap_or_default();
    if !needs_cluster_ip(spec) {
        const NOT_EXTERNAL: &str = "Forbidden: may not be set for ExternalName services";
        if !ips.is_empty() || spec.cluster_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
            return Err(field_error("spec.clusterIPs", NOT_EXTERNAL));
        }
        if spec.ip_families.as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(field_error("spec.ipFamilies", NOT_EXTERNAL));
        }
        if spec.ip_family_policy.is_some() {
            return Err(field_error("spec.ipFamilyPolicy", NOT_EXTERNAL));
        }
        return Ok(());
    }
    match spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty()) {
        Some(ip) => match ips.first() {
            None => return Err(field_error("spec.clusterIPs", "Required value")),
            Some(first) if first != ip => {
                return Err(field_error(
                    "spec.clusterIPs",
                    format!(
                        "Invalid value: {}: first value must match `clusterIP`",
                        go_strings(&ips)
                    ),
                ));
            }
            _ => {}
        },
        None if !ips.is_empty() => {
            return Err(field_error(
                "spec.clusterIPs",
                format!(
                    "Invalid value: {}: must be empty when `clusterIP` is not specified",
                    go_strings(&ips)
                ),
            ));
        }
        None => {}
    }
    if ips.len() > 1 {
        return Err(field_error(
            "spec.clusterIPs",
            format!(
                "Invalid value: {}: lab is single-stack IPv4: a Service has at most one cluster IP",
                go_strings(&ips)
            ),
        ));
    }
    Ok(())
}

/// Give a Service that needs one its ClusterIP: the requested address if it
/// is in range and free, `None` for headless, else the next free one; then
/// the fields the API server sets with it.
fn allocate_cluster_ip(ipam: &mut Ipam, spec: &mut ServiceSpec) -> Result<(), StateError> {
    const FIELD: &str = "spec.clusterIP";
    let requested = spec.cluster_ip.clone().unwrap_or_default();
    let ip = match requested.as_str() {
        "None" => "None".to_string(),
        "" => ipam
            .allocate()
            .map_err(|e| match e {
                IpamError::Exhausted(n) => field_error(
                    FIELD,
                    format!("failed to allocate a ClusterIP: the service range {n} is full"),
                ),
                e => StateError::Ipam(e),
            })?
            .to_string(),
        s => {
            let ip: Ipv4Addr = s
                .parse()
                .map_err(|_| field_error(FIELD, format!("Invalid value: {s:?}")))?;
            ipam.claim(ip).map_err(|e| match e {
                IpamError::InUse(_) => field_error(
                    FIELD,
                    format!("Invalid value: {s:?}: provided IP is already allocated"),
                ),
                IpamError::OutOfRange { net, .. } => field_error(
                    FIELD,
                    format!(
                        "Invalid value: {s:?}: provided IP is not in the valid range. The range of valid IPs is {net}"
                    ),
                ),
                IpamError::Reserved(_) => field_error(
                    FIELD,
                    format!("Invalid value: {s:?}: provided IP is reserved"),
                ),
                e => StateError::Ipam(e),
            })?;
            ip.to_string()
        }
    };
    spec.cluster_ip = Some(ip.clone());
    spec.cluster_ips = Some(vec![ip]);
    spec.ip_families = Some(vec!["IPv4".into()]);
    spec.ip_family_policy = Some("SingleStack".into());
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    Ok(())
}

/// A Service update as the API server runs it: defaults,
/// `patchAllocatedValues` (a client that left clusterIP/clusterIPs out keeps
/// them), `NormalizeClusterIPs`, `dropTypeDependentFields` (switching to
/// ExternalName clears the unchanged clusterIP and family fields), the
/// clusterIP immutability rule (except to/from ExternalName), the field
/// checks, then the allocation: the ClusterIP is released when the Service
/// becomes ExternalName and allocated when it stops being one.
fn update_service_spec(
    old: &ServiceSpec,
    spec: &mut ServiceSpec,
    ipam: &mut Ipam,
) -> Result<(), StateError> {
    default_service_spec(spec);
    let (old_needs, new_needs) = (needs_cluster_ip(old), needs_cluster_ip(spec));
    let old_ip = old.cluster_ip.clone().unwrap_or_default();
    let old_ips = old.cluster_ips.clone().unwrap_or_default();
    if old_needs && new_needs {
        if spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            spec.cluster_ip = old.cluster_ip.clone();
        }
        if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) && !old_ips.is_empty() {
            spec.cluster_ips = Some(old_ips.clone());
        }
    }
    let new_ip = spec.cluster_ip.clone().unwrap_or_default();
    let mut new_ips = spec.cluster_ips.clone().unwrap_or_default();
    if !old_ips.is_empty() && new_ips.is_empty() && old_ip == new_ip {
        new_ips = old_ips.clone();
    }
    if old_ip != new_ip && new_ips == old_ips {
        new_ips = if !old_ip.is_empty() && new_ip.is_empty() {
            Vec::new()
        } else {
            vec![new_ip.clone()]
        };
    }
    spec.cluster_ips = Some(new_ips.clone()).filter(|v| !v.is_empty());
    if old_needs && !new_needs {
        if new_ip == old_ip && new_ips == old_ips {
            spec.cluster_ip = None;
            spec.cluster_ips = None;
        }
        if spec.ip_families == old.ip_families {
            spec.ip_families = None;
        }
        if spec.ip_family_policy == old.ip_family_policy {
            spec.ip_family_policy = None;
        }
    }
    let both_headless = old_ip == "None" && new_ip == "None";
    if old_needs && new_needs && !both_headless {
        let new_ips = spec.cluster_ips.clone().unwrap_or_default();
        if new_ips.len() >= old_ips.len() {
            if let Some(i) = (0..old_ips.len()).find(|&i| old_ips[i] != new_ips[i]) {
                return Err(field_error(
                    format!("spec.clusterIPs[{i}]"),
                    format!(
                        "Invalid value: {}: may not change once set",
                        go_strings(&new_ips)
                    ),
                ));
            }
        } else if new_ips.is_empty() {
            return Err(field_error(
                "spec.clusterIPs[0]",
                format!(
                    "Invalid value: {}: primary clusterIP can not be unset",
                    go_strings(&new_ips)
                ),
            ));
        }
    }
    check_cluster_ip_fields(spec)?;
    match (old_needs, new_needs) {
        (true, false) => {
            if let Ok(ip) = old_ip.parse::<Ipv4Addr>() {
                ipam.release(ip);
            }
        }
        (false, true) => allocate_cluster_ip(ipam, spec)?,
        (true, true) => {
            if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
                spec.ip_families = old.ip_families.clone();
            }
            if spec.ip_family_policy.is_none() {
                spec.ip_family_policy = old.ip_family_policy.clone();
            }
            if spec.internal_traffic_policy.is_none() {
                spec.internal_traffic_policy = old.internal_traffic_policy.clone();
            }
        }
        (false, false) => {}
    }
    Ok(())
}

/// The API server's Job defaults, with the selector and template labels it
/// generates from the Job's uid.
fn default_job_spec(spec: &mut k8s_openapi::api::batch::v1::JobSpec, name: &str, uid: &str) {
    use crate::controller::job::{
        CONTROLLER_UID, JOB_NAME, LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME,
    };
    if spec.parallelism.is_none() && spec.completions.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    spec.selector = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([(CONTROLLER_UID.to_string(), uid.to_string())].into()),
            match_expressions: None,
        },
    );
    let labels = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(Default::default);
    for (k, v) in [
        (CONTROLLER_UID, uid),
        (JOB_NAME, name),
        (LEGACY_CONTROLLER_UID, uid),
        (LEGACY_JOB_NAME, name),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    if let Some(s) = spec.template.spec.as_mut() {
        default_pod_spec(s);
    }
}

fn default_pod_spec(spec: &mut k8s_openapi::api::core::v1::PodSpec) {
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    for c in &mut spec.containers {
        for p in c.ports.iter_mut().flatten() {
            p.protocol.get_or_insert_with(|| "TCP".into());
        }
        for probe in [&mut c.readiness_probe, &mut c.liveness_probe]
            .into_iter()
            .flatten()
        {
            probe.initial_delay_seconds.get_or_insert(0);
            probe.period_seconds.get_or_insert(10);
            probe.timeout_seconds.get_or_insert(1);
            probe.success_threshold.get_or_insert(1);
            probe.failure_threshold.get_or_insert(3);
        }
    }
}

/// Merge an applied object into the stored one: user fields replace, server
/// fields (uid, status, allocations) stay; immutable fields are checked.
/// Labels and annotations merge three-way, as `kubectl apply` merges them:
/// keys the server or a controller set stay, keys the previous apply set
/// and this one drops go.
fn merge(
    old: &Object,
    new: Object,
    label: &str,
    svc_ipam: &mut Ipam,
) -> Result<Object, StateError> {
    use crate::model::applied::{LAST_APPLIED, applied_keys, merge_map};
    let mut out = old.clone();
    {
        let prev = old
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(LAST_APPLIED))
            .map(String::as_str);
        let m = out.meta_mut();
        m.labels = merge_map(
            old.meta().labels.as_ref(),
            &applied_keys(prev, "labels"),
            new.meta().labels.as_ref(),
        );
        m.annotations = merge_map(
            old.meta().annotations.as_ref(),
            &applied_keys(prev, "annotations"),
            new.meta().annotations.as_ref(),
        );
    }
    match (&mut out, new) {
        (Object::Pod(o), Object::Pod(mut n)) => {
            if let Some(s) = n.spec.as_mut() {
                default_pod_spec(s);
            }
            let mut old_spec = o.spec.clone();
            if let (Some(a), Some(b)) = (old_spec.as_mut(), n.spec.as_ref()) {
                a.node_name = b.node_name.clone();
            }
            if old_spec != n.spec {
                return Err(StateError::PodUpdate(
                    o.metadata.name.clone().unwrap_or_default(),
                ));
            }
        }
        (Object::Service(o), Object::Service(mut n)) => {
            let old_spec = o.spec.clone().unwrap_or_default();
            let spec = n.spec.get_or_insert_with(Default::default);
            update_service_spec(&old_spec, spec, svc_ipam).map_err(|e| e.on(label))?;
            o.spec = n.spec;
        }
        (Object::Deployment(o), Object::Deployment(mut n)) => {
            if o.spec.selector != n.spec.selector {
                return Err(object_field_error(
                    label,
                    "spec.selector",
                    "Invalid value: field is immutable",
                ));
            }
            n.spec.replicas.get_or_insert(1);
            if let Some(s) = n.spec.template.spec.as_mut() {
                default_pod_spec(s);
            }
            if o.spec != n.spec {
                o.spec = n.spec;
                o.metadata.generation = Some(o.metadata.generation.unwrap_or(1) + 1);
            }
        }
        (Object::ReplicaSet(o), Object::ReplicaSet(mut n)) => {
            if o.spec.selector != n.spec.selector {
                return Err(object_field_error(
                    label,
                    "spec.selector",
                    "Invalid value: field is immutable",
                ));
            }
            n.spec.replicas.get_or_insert(1);
            if let Some(s) = n.spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
                default_pod_spec(s);
            }
            if o.spec != n.spec {
                o.spec = n.spec;
                o.metadata.generation = Some(o.metadata.generation.unwrap_or(1) + 1);
            }
        }
        (Object::StatefulSet(o), Object::StatefulSet(mut n)) => {
            default_statefulset(&mut n.spec);
            // What the API server lets an update change; the rest is fixed.
            let mut fixed = n.spec.clone();
            fixed.replicas = o.spec.replicas;
            fixed.ordinals = o.spec.ordinals.clone();
            fixed.template = o.spec.template.clone();
            fixed.update_strategy = o.spec.update_strategy.clone();
            fixed.revision_history_limit = o.spec.revision_history_limit;
            fixed.persistent_volume_claim_retention_policy =
                o.spec.persistent_volume_claim_retention_policy.clone();
            fixed.min_ready_seconds = o.spec.min_ready_seconds;
            if fixed != o.spec {
                return Err(object_field_error(
                    label,
                    "spec",
                    "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
            if o.spec != n.spec {
                o.spec = n.spec;
                o.metadata.generation = Some(o.metadata.generation.unwrap_or(1) + 1);
            }
        }
        (Object::ConfigMap(o), Object::ConfigMap(n)) => {
            if o.immutable == Some(true) && (o.data != n.data || n.immutable != Some(true)) {
                return Err(StateError::Object {
                    object: label.to_string(),
                    message: "field is immutable when `immutable` is set".into(),
                });
            }
            o.data = n.data;
            o.binary_data = n.binary_data;
            o.immutable = n.immutable;
        }
        (Object::Secret(o), Object::Secret(n)) => {
            if o.type_ != n.type_ {
                return Err(object_field_error(
                    label,
                    "type",
                    format!(
                        "Invalid value: {:?}: field is immutable",
                        n.type_.as_deref().unwrap_or("")
                    ),
                ));
            }
            if o.immutable == Some(true) && (o.data != n.data || n.immutable != Some(true)) {
                return Err(object_field_error(
                    label,
                    "data",
                    "Forbidden: field is immutable when `immutable` is set",
                ));
            }
            o.data = n.data;
            o.string_data = None;
            o.immutable = n.immutable;
        }
        (Object::Job(o), Object::Job(mut n)) => {
            let old_spec = o.spec.clone().unwrap_or_default();
            let spec = n.spec.get_or_insert_with(Default::default);
            if spec.selector.is_some() && spec.selector != old_spec.selector {
                return Err(object_field_error(
                    label,
                    "spec.selector",
                    "Invalid value: field is immutable",
                ));
            }
            // An applied manifest that leaves completions out keeps the
            // stored (defaulted) value, as kubectl apply's patch would.
            if spec.completions.is_none() {
                spec.completions = old_spec.completions;
            }
            let uid = o.metadata.uid.clone().unwrap_or_default();
            let name = o.metadata.name.clone().unwrap_or_default();
            default_job_spec(spec, &name, &uid);
            if spec.template != old_spec.template {
                return Err(object_field_error(
                    label,
                    "spec.template",
                    "Invalid value: field is immutable",
                ));
            }
            if spec.completions != old_spec.completions {
                return Err(object_field_error(
                    label,
                    "spec.completions",
                    "Invalid value: field is immutable",
                ));
            }
            if spec.completion_mode != old_spec.completion_mode {
                return Err(object_field_error(
                    label,
                    "spec.completionMode",
                    "Invalid value: field is immutable",
                ));
            }
            if o.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                o.metadata.labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone());
            }
            if o.spec != n.spec {
                o.spec = n.spec;
                o.metadata.generation = Some(o.metadata.generation.unwrap_or(1) + 1);
            }
        }
        (Object::Endpoints(o), Object::Endpoints(n)) => o.subsets = n.subsets,
        (Object::Namespace(_), Object::Namespace(_)) => {}
        (Object::Node(o), Object::Node(n)) => {
            // Users cordon and taint; the pod CIDRs are the node's own. A
            // manifest without a spec (labels only) leaves the spec alone.
            let old_spec = o.spec.clone().unwrap_or_default();
            let Some(mut spec) = n.spec else {
                return Ok(out);
            };
            let cidr_changed = spec.pod_cidr.is_some() && spec.pod_cidr != old_spec.pod_cidr;
            let cidrs_changed = spec.pod_cidrs.is_some() && spec.pod_cidrs != old_spec.pod_cidrs;
            if cidr_changed || cidrs_changed {
                let field = if cidr_changed { "podCIDR" } else { "podCIDRs" };
                return Err(object_field_error(
                    label,
                    format!("spec.{field}"),
                    "Forbidden: node updates may not change podCIDR except from \"\" to valid",
                ));
            }
            spec.pod_cidr = old_spec.pod_cidr;
            spec.pod_cidrs = old_spec.pod_cidrs;
            if spec.unschedulable == Some(false) {
                spec.unschedulable = None;
            }
            if spec.taints.as_ref().is_some_and(Vec::is_empty) {
                spec.taints = None;
            }
            o.spec = Some(spec);
        }
        _ => return Err(StateError::KindMismatch(label.to_string())),
    }
    Ok(out)
}

/// The API server's defaults for a StatefulSet spec.
fn default_statefulset(spec: &mut k8s_openapi::api::apps::v1::StatefulSetSpec) {
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetPersistentVolumeClaimRetentionPolicy,
    };
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    spec.pod_management_policy
        .get_or_insert_with(|| "OrderedReady".into());
    let u = spec.update_strategy.get_or_insert_with(Default::default);
    let t = u.type_.get_or_insert_with(|| "RollingUpdate".into());
    if t == "RollingUpdate" {
        u.rolling_update
            .get_or_insert_with(RollingUpdateStatefulSetStrategy::default)
            .partition
            .get_or_insert(0);
    }
    let p = spec
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
    p.when_deleted.get_or_insert_with(|| "Retain".into());
    p.when_scaled.get_or_insert_with(|| "Retain".into());
    for c in spec.volume_claim_templates.iter_mut().flatten() {
        c.spec
            .get_or_insert_with(Default::default)
            .volume_mode
            .get_or_insert_with(|| "Filesystem".into());
    }
    if let Some(s) = spec.template.spec.as_mut() {
        default_pod_spec(s);
    }
}

pub fn namespace(name: &str) -> Object {
    Object::Namespace(Namespace {
        metadata: crate::model::ObjectMeta {
            name: Some(name.into()),
            labels: Some([("kubernetes.io/metadata.name".to_string(), name.to_string())].into()),
            ..Default::default()
        },
        spec: None,
        status: Some(k8s_openapi::api::core::v1::NamespaceStatus {
            phase: Some("Active".into()),
            conditions: None,
        }),
    })
}

pub fn pod_ip(o: &Object) -> Option<Ipv4Addr> {
    match o {
        Object::Pod(p) => p.status.as_ref()?.pod_ip.as_deref()?.parse().ok(),
        _ => None,
    }
}

/// The network namespace a started pod runs in (recorded by the runtime:
/// usually `<cluster>-<ns>-<pod>`, with the uid appended when that name
/// was taken).
pub fn pod_netns(o: &Object) -> Option<&str> {
    match o {
        Object::Pod(p) => p
            .metadata
            .annotations
            .as_ref()?
            .get(NETNS_ANNOTATION)
            .map(String::as_str)
            .filter(|n| !n.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_documents;

    fn pod_nodes(st: &State, ns: &str) -> Vec<String> {
        st.store
            .list(Kind::Pod, Some(ns))
            .filter_map(|o| match o {
                Object::Pod(p) => p.spec.as_ref()?.node_name.clone(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dns_pods_spread_and_nodes_are_cordoned_not_created_or_deleted() {
        let mut cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        cfg.topology.nodes = 3;
        let mut st = State::new(cfg, Store::default());
        st.ensure_system_objects();
        crate::controller::reconcile(&mut st.store);
        let dns = pod_nodes(&st, "kube-system");
        assert_eq!(dns.len(), 2, "{dns:?}");
        assert_ne!(dns[0], dns[1], "the coredns replicas share a node");
        // Cordon (`spec.unschedulable`, as `lab node cordon` and kubectl
        // patch it): the controller taints the node; the scheduler avoids it.
        let key = Key::new(Kind::Node, "", "t-node-3");
        let Some(Object::Node(mut n)) = st.store.get(&key).cloned() else {
            panic!("no node t-node-3");
        };
        n.spec.get_or_insert_with(Default::default).unschedulable = Some(true);
        st.store.update(Object::Node(n));
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 4\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: x, command: [x]}]}\n";
        st.apply(&parse_documents("f", yaml).unwrap(), "default", false)
            .unwrap();
        crate::controller::reconcile(&mut st.store);
        let web = pod_nodes(&st, "default");
        assert_eq!(web.len(), 4);
        assert!(!web.contains(&"t-node-3".to_string()), "{web:?}");
        // Users cannot create or delete nodes.
        let node = "apiVersion: v1\nkind: Node\nmetadata: {name: t-node-9}\n";
        let e = st
            .apply(&parse_documents("f", node).unwrap(), "default", false)
            .unwrap_err();
        assert!(
            matches!(&e[0], ApplyError::Object { error: StateError::NodeCreate(n), .. } if n == "t-node-9"),
            "{e:?}"
        );
        let e = e[0].to_string();
        assert!(
            e.contains("forbidden") && e.contains("cannot be created"),
            "{e}"
        );
        let e = st
            .delete(&Key::new(Kind::Node, "", "t-node-1"), None)
            .unwrap_err();
        assert_eq!(e, StateError::NodeDelete("t-node-1".into()));
        assert!(e.to_string().contains("cannot be deleted"), "{e}");
        // A label applied to a node is kept; its pod CIDR is not changeable.
        let relabel =
            "apiVersion: v1\nkind: Node\nmetadata: {name: t-node-2, labels: {disk: ssd}}\n";
        st.apply(&parse_documents("f", relabel).unwrap(), "default", false)
            .unwrap();
        let Some(Object::Node(n)) = st.store.get(&Key::new(Kind::Node, "", "t-node-2")) else {
            panic!()
        };
        assert_eq!(n.metadata.labels.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(
            n.spec.as_ref().unwrap().pod_cidr.as_deref(),
            Some("10.244.1.0/24")
        );
        // A labels-only apply leaves a cordon alone.
        let relabel3 =
            "apiVersion: v1\nkind: Node\nmetadata: {name: t-node-3, labels: {disk: hdd}}\n";
        st.apply(&parse_documents("f", relabel3).unwrap(), "default", false)
            .unwrap();
        let Some(Object::Node(n)) = st.store.get(&Key::new(Kind::Node, "", "t-node-3")) else {
            panic!()
        };
        assert_eq!(n.spec.as_ref().unwrap().unschedulable, Some(true));
        let bad = "apiVersion: v1\nkind: Node\nmetadata: {name: t-node-2}\nspec: {podCIDR: 10.9.0.0/24}\n";
        let e = st
            .apply(&parse_documents("f", bad).unwrap(), "default", false)
            .unwrap_err();
        assert!(e[0].to_string().contains("spec.podCIDR"), "{e:?}");
        // Eviction is a graceful delete.
        let victim = st
            .store
            .list(Kind::Pod, Some("default"))
            .next()
            .unwrap()
            .name()
            .to_string();
        assert!(st.evict("default", &victim, Some(0)).unwrap());
        assert!(!st.evict("default", "nope", None).unwrap());
    }

    fn state() -> State {
        let cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        let mut st = State::new(cfg, Store::default());
        st.ensure_system_objects();
        st
    }

    /// Apply `yaml`; the errors as the CLI prints them.
    fn apply(st: &mut State, yaml: &str) -> Result<ApplyOutcome, Vec<String>> {
        let docs = parse_documents("f.yaml", yaml).unwrap();
        st.apply(&docs, "default", false)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";

    #[test]
    fn system_objects() {
        let st = state();
        let Some(Object::Service(k)) =
            st.store
                .get(&Key::new(Kind::Service, "default", "kubernetes"))
        else {
            panic!()
        };
        assert_eq!(
            k.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("10.96.0.1")
        );
        assert!(
            st.store
                .get(&Key::new(Kind::Namespace, "", "kube-system"))
                .is_some()
        );
    }

    #[test]
    fn apply_create_unchanged_configured() {
        let mut st = state();
        assert_eq!(
            apply(&mut st, SVC).unwrap().results,
            ["service/web created"]
        );
        assert_eq!(
            apply(&mut st, SVC).unwrap().results,
            ["service/web unchanged"]
        );
        let ip = service_ip(
            st.store
                .get(&Key::new(Kind::Service, "default", "web"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 96, 0, 2));
        let changed = SVC.replace("port: 80", "port: 81");
        assert_eq!(
            apply(&mut st, &changed).unwrap().results,
            ["service/web configured"]
        );
        // The ClusterIP never changes on re-apply.
        let ip2 = service_ip(
            st.store
                .get(&Key::new(Kind::Service, "default", "web"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ip, ip2);
    }

    #[test]
    fn cluster_ip_rules() {
        let mut st = state();
        let e = apply(
            &mut st,
            &SVC.replace("ports:", "clusterIP: 10.96.0.10\n  ports:"),
        )
        .unwrap_err();
        assert!(e[0].contains("reserved"), "{e:?}");
        let e = apply(
            &mut st,
            &SVC.replace("ports:", "clusterIP: 10.200.0.5\n  ports:"),
        )
        .unwrap_err();
        assert!(e[0].contains("not in the valid range"), "{e:?}");
        apply(
            &mut st,
            &SVC.replace("ports:", "clusterIP: 10.96.5.5\n  ports:"),
        )
        .unwrap();
        let e = apply(
            &mut st,
            &SVC.replace("ports:", "clusterIP: 10.96.5.6\n  ports:"),
        )
        .unwrap_err();
        assert!(
            e[0].ends_with(
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.5.6\"}: may not change once set"
            ),
            "{e:?}"
        );
        // Typed: the API answers 422 with the field from these, not from the text.
        let docs = parse_documents(
            "f.yaml",
            &SVC.replace("ports:", "clusterIP: 10.96.5.6\n  ports:"),
        )
        .unwrap();
        assert_eq!(
            st.apply(&docs, "default", false).unwrap_err(),
            [ApplyError::Object {
                file: "f.yaml".into(),
                index: 1,
                error: StateError::Field {
                    object: Some("service/web".into()),
                    field: "spec.clusterIPs[0]".into(),
                    message: "Invalid value: []string{\"10.96.5.6\"}: may not change once set"
                        .into(),
                },
            }]
        );
        let other = SVC
            .replace("name: web", "name: other")
            .replace("ports:", "clusterIP: 10.96.5.5\n  ports:");
        let e = apply(&mut st, &other).unwrap_err();
        assert!(e[0].contains("already allocated"), "{e:?}");
        // Deleting frees the address.
        st.delete(&Key::new(Kind::Service, "default", "web"), None)
            .unwrap();
        apply(&mut st, &other).unwrap();
    }

    fn svc_spec(st: &State, name: &str) -> k8s_openapi::api::core::v1::ServiceSpec {
        match st.store.get(&Key::new(Kind::Service, "default", name)) {
            Some(Object::Service(s)) => s.spec.clone().unwrap(),
            _ => panic!("no service {name}"),
        }
    }

    const EXT: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: ExternalName\n  externalName: example.com\n";

    #[test]
    fn service_updates_the_api_server_allows() {
        let mut st = state();
        apply(&mut st, SVC).unwrap();
        assert_eq!(
            svc_spec(&st, "web").cluster_ip.as_deref(),
            Some("10.96.0.2")
        );
        // Ports, selector and affinity change in place; the ClusterIP stays.
        let changed = SVC.replace("{app: web}", "{app: web2}").replace(
            "[{port: 80}]",
            "[{name: a, port: 80}, {name: b, port: 8080}]",
        ) + "  sessionAffinity: ClientIP\n";
        assert_eq!(
            apply(&mut st, &changed).unwrap().results,
            ["service/web configured"]
        );
        let spec = svc_spec(&st, "web");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.2"));
        assert_eq!(spec.ports.unwrap().len(), 2);
        assert_eq!(
            spec.session_affinity_config
                .unwrap()
                .client_ip
                .unwrap()
                .timeout_seconds,
            Some(10800)
        );
        // To ExternalName: the ClusterIP and the family fields go, and the
        // address is free again.
        assert_eq!(
            apply(&mut st, EXT).unwrap().results,
            ["service/web configured"]
        );
        let spec = svc_spec(&st, "web");
        assert_eq!(
            (
                spec.cluster_ip,
                spec.cluster_ips,
                spec.ip_families,
                spec.ip_family_policy
            ),
            (None, None, None, None)
        );
        // The released address can be claimed again.
        apply(
            &mut st,
            &SVC.replace("name: web", "name: other")
                .replace("ports:", "clusterIP: 10.96.0.2\n  ports:"),
        )
        .unwrap();
        // Back to ClusterIP: a new address is allocated (or the requested one).
        apply(&mut st, SVC).unwrap();
        let ip = svc_spec(&st, "web").cluster_ip.unwrap();
        assert!(ip.parse::<Ipv4Addr>().is_ok() && ip != "10.96.0.2", "{ip}");
        apply(&mut st, EXT).unwrap();
        apply(
            &mut st,
            &SVC.replace("ports:", "clusterIP: 10.96.7.7\n  ports:"),
        )
        .unwrap();
        let spec = svc_spec(&st, "web");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.7.7"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.7.7".to_string()]));
    }

    #[test]
    fn service_update_as_kubectl_apply_patches_it() {
        // kubectl's patch is applied to the stored object, so the update
        // carries the allocated clusterIP, clusterIPs and family fields:
        // switching to ExternalName clears them as dropTypeDependentFields
        // does, as long as they are unchanged.
        let mut st = state();
        apply(&mut st, SVC).unwrap();
        let stored = st
            .store
            .get(&Key::new(Kind::Service, "default", "web"))
            .unwrap()
            .to_json();
        let mut v = stored.clone();
        v["spec"]["type"] = serde_json::json!("ExternalName");
        v["spec"]["externalName"] = serde_json::json!("example.com");
        let doc = crate::model::parse::Document {
            source: "patch".into(),
            index: 1,
            value: v.clone(),
        };
        st.apply(&[doc], "default", false).unwrap();
        assert_eq!(svc_spec(&st, "web").cluster_ip, None);
        // The same with a changed clusterIP is refused as the API server does.
        let mut st = state();
        apply(&mut st, SVC).unwrap();
        v["spec"]["clusterIP"] = serde_json::json!("10.96.0.77");
        v["spec"]["clusterIPs"] = serde_json::json!(["10.96.0.77"]);
        let doc = crate::model::parse::Document {
            source: "patch".into(),
            index: 1,
            value: v,
        };
        let e = st.apply(&[doc], "default", false).unwrap_err();
        assert!(
            e[0].to_string()
                .ends_with("spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
            "{e:?}"
        );
    }

    #[test]
    fn service_changes_the_api_server_refuses() {
        // (first manifest, second manifest or "" for a create, message).
        let headless = SVC.replace("ports:", "clusterIP: None\n  ports:");
        let cases = [
            (
                SVC.to_string(),
                headless.clone(),
                "spec.clusterIPs[0]: Invalid value: []string{\"None\"}: may not change once set",
            ),
            (
                headless,
                SVC.replace("ports:", "clusterIP: 10.96.0.40\n  ports:"),
                "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.40\"}: may not change once set",
            ),
            (
                SVC.replace(
                    "ports:",
                    "clusterIP: 10.96.0.40\n  clusterIPs: [10.96.0.41]\n  ports:",
                ),
                String::new(),
                "spec.clusterIPs: Invalid value: []string{\"10.96.0.41\"}: first value must match `clusterIP`",
            ),
            (
                SVC.replace("ports:", "clusterIPs: [10.96.0.41]\n  ports:"),
                String::new(),
                "spec.clusterIPs: Invalid value: []string{\"10.96.0.41\"}: must be empty when `clusterIP` is not specified",
            ),
            (
                EXT.replace("example.com", "example.com\n  clusterIP: 10.96.0.40"),
                String::new(),
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
            ),
            (
                EXT.replace("example.com", "example.com\n  ipFamilyPolicy: SingleStack"),
                String::new(),
                "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services",
            ),
            (
                SVC.to_string(),
                EXT.replace("example.com", "example.com\n  clusterIP: 10.96.0.40"),
                "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
            ),
        ];
        for (first, second, want) in cases {
            let mut st = state();
            let rv = st.store.resource_version();
            let e = if second.is_empty() {
                apply(&mut st, &first).unwrap_err()
            } else {
                apply(&mut st, &first).unwrap();
                let rv2 = st.store.resource_version();
                let e = apply(&mut st, &second).unwrap_err();
                assert_eq!(st.store.resource_version(), rv2, "nothing applied: {want}");
                e
            };
            assert!(e[0].ends_with(want), "{first}\n{second}\n{e:?}");
            if second.is_empty() {
                assert_eq!(st.store.resource_version(), rv);
            }
        }
    }

    #[test]
    fn statefulset_defaults_updates_scale_and_sticky_ips() {
        let mut st = state();
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [ARG]}\n";
        let first = sts.replace("ARG", "pause");
        assert_eq!(
            apply(&mut st, &first).unwrap().results,
            ["statefulset.apps/db created"]
        );
        assert_eq!(
            apply(&mut st, &first).unwrap().results,
            ["statefulset.apps/db unchanged"]
        );
        let key = Key::new(Kind::StatefulSet, "default", "db");
        let get = |st: &State| match st.store.get(&key) {
            Some(Object::StatefulSet(s)) => (**s).clone(),
            _ => panic!(),
        };
        let s = get(&st);
        assert_eq!(s.spec.replicas, Some(1));
        assert_eq!(
            s.spec.pod_management_policy.as_deref(),
            Some("OrderedReady")
        );
        let u = s.spec.update_strategy.unwrap();
        assert_eq!(u.type_.as_deref(), Some("RollingUpdate"));
        assert_eq!(u.rolling_update.unwrap().partition, Some(0));
        // The template may change (a new generation); serviceName may not.
        apply(&mut st, &sts.replace("ARG", "netexec")).unwrap();
        assert_eq!(get(&st).metadata.generation, Some(2));
        let e = apply(
            &mut st,
            &first.replace("serviceName: db", "serviceName: other"),
        )
        .unwrap_err();
        assert!(
            e[0].contains("Forbidden") && e[0].contains("'replicas'"),
            "{e:?}"
        );
        assert_eq!(
            st.scale(&key, 3).unwrap(),
            "statefulset.apps/db scaled".to_string()
        );
        assert_eq!(get(&st).spec.replicas, Some(3));

        // A StatefulSet pod's address is offered to its successor.
        crate::controller::reconcile(&mut st.store);
        let pod = st
            .store
            .get(&Key::new(Kind::Pod, "default", "db-0"))
            .cloned()
            .expect("db-0 made by the controller");
        let ip = st.allocate_pod_ip("default", "db-0", "t-node").unwrap();
        st.pod_ipam.release(ip);
        st.remember_ip(&pod, ip);
        let other = st.allocate_pod_ip("default", "x", "t-node").unwrap();
        assert_ne!(other, ip);
        assert_eq!(st.allocate_pod_ip("default", "db-0", "t-node").unwrap(), ip);
        // Taken by someone else meanwhile: a fresh one.
        st.pod_ipam.release(ip);
        st.remember_ip(&pod, ip);
        st.pod_ipam.claim(ip).unwrap();
        assert_ne!(st.allocate_pod_ip("default", "db-0", "t-node").unwrap(), ip);
    }

    #[test]
    fn all_or_nothing() {
        let mut st = state();
        let rv = st.store.resource_version();
        let yaml = format!(
            "{SVC}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: missing}}\ndata: {{a: b}}\n"
        );
        let e = apply(&mut st, &yaml).unwrap_err();
        assert!(
            e[0].contains("document 2") && e[0].contains("missing"),
            "{e:?}"
        );
        assert_eq!(st.store.resource_version(), rv);
        assert!(
            st.store
                .get(&Key::new(Kind::Service, "default", "web"))
                .is_none()
        );
        // The service IP it would have taken is still free.
        apply(&mut st, SVC).unwrap();
        let ip = service_ip(
            st.store
                .get(&Key::new(Kind::Service, "default", "web"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 96, 0, 2));
    }

    #[test]
    fn service_range_exhaustion_is_an_error() {
        let cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/28").unwrap();
        let mut st = State::new(cfg, Store::default());
        st.ensure_system_objects();
        let mut made = 0;
        for i in 0..20 {
            match apply(&mut st, &SVC.replace("name: web", &format!("name: s{i}"))) {
                Ok(_) => made += 1,
                Err(e) => {
                    assert!(e[0].contains("full"), "{e:?}");
                    break;
                }
            }
        }
        // 14 usable, minus kubernetes, kube-dns and the SNAT address.
        assert_eq!(made, 11);
    }

    #[test]
    fn namespaces_and_pod_immutability() {
        let mut st = state();
        apply(
            &mut st,
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n",
        )
        .unwrap();
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team}\nspec:\n  containers: [{name: c, image: x, command: [sleep, '100']}]\n";
        apply(&mut st, pod).unwrap();
        let e = apply(&mut st, &pod.replace("'100'", "'200'")).unwrap_err();
        assert!(e[0].contains("Forbidden"), "{e:?}");
        assert_eq!(apply(&mut st, pod).unwrap().results, ["pod/p unchanged"]);
        assert!(
            st.delete(&Key::new(Kind::Namespace, "", "default"), None)
                .is_err()
        );
        st.delete(&Key::new(Kind::Namespace, "", "team"), None)
            .unwrap();
        st.finish_namespaces();
        // The pod is terminating; the namespace waits for it.
        assert!(
            st.store
                .get(&Key::new(Kind::Namespace, "", "team"))
                .is_some()
        );
        st.store.remove(&Key::new(Kind::Pod, "team", "p"));
        st.finish_namespaces();
        assert!(
            st.store
                .get(&Key::new(Kind::Namespace, "", "team"))
                .is_none()
        );
    }

    const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: c, image: curl, command: [curl, web]}\n";

    #[test]
    fn jobs_get_the_api_servers_defaults_selector_and_labels() {
        let mut st = state();
        assert_eq!(
            apply(&mut st, JOB).unwrap().results,
            ["job.batch/j created"]
        );
        let Some(Object::Job(j)) = st.store.get(&Key::new(Kind::Job, "default", "j")).cloned()
        else {
            panic!()
        };
        let uid = j.metadata.uid.clone().unwrap();
        let spec = j.spec.clone().unwrap();
        assert_eq!(
            (spec.parallelism, spec.completions, spec.backoff_limit),
            (Some(1), Some(1), Some(6))
        );
        assert_eq!(spec.completion_mode.as_deref(), Some("NonIndexed"));
        let sel = spec.selector.unwrap().match_labels.unwrap();
        assert_eq!(sel["batch.kubernetes.io/controller-uid"], uid);
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["job-name"], "j");
        assert_eq!(labels["controller-uid"], uid);
        assert_eq!(
            j.metadata.labels.unwrap()["batch.kubernetes.io/job-name"],
            "j"
        );
        // Re-applying the manifest changes nothing; the template is immutable,
        // parallelism is not.
        assert_eq!(
            apply(&mut st, JOB).unwrap().results,
            ["job.batch/j unchanged"]
        );
        let e = apply(&mut st, &JOB.replace("[curl, web]", "[curl, other]")).unwrap_err();
        assert!(
            e[0].contains("spec.template") && e[0].contains("immutable"),
            "{e:?}"
        );
        assert_eq!(
            apply(
                &mut st,
                &JOB.replace("spec:\n  template", "spec:\n  parallelism: 2\n  template")
            )
            .unwrap()
            .results,
            ["job.batch/j configured"]
        );
        // A user's selector is refused, as without manualSelector.
        let e = apply(
            &mut st,
            &JOB.replace("name: j}", "name: k}").replace(
                "spec:\n  template",
                "spec:\n  selector: {matchLabels: {a: b}}\n  template",
            ),
        )
        .unwrap_err();
        assert!(e[0].contains("not auto-generated"), "{e:?}");
    }

    #[test]
    fn secrets_keep_their_type_and_immutability() {
        let mut st = state();
        let s = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n";
        assert_eq!(apply(&mut st, s).unwrap().results, ["secret/s created"]);
        assert_eq!(apply(&mut st, s).unwrap().results, ["secret/s unchanged"]);
        let e = apply(
            &mut st,
            &s.replace("stringData", "type: example.com/x\nstringData"),
        )
        .unwrap_err();
        assert!(e[0].contains("type") && e[0].contains("immutable"), "{e:?}");
        let frozen = s.replace("stringData", "immutable: true\nstringData");
        assert_eq!(
            apply(&mut st, &frozen).unwrap().results,
            ["secret/s configured"]
        );
        let e = apply(&mut st, &frozen.replace("{a: b}", "{a: c}")).unwrap_err();
        assert!(e[0].contains("immutable"), "{e:?}");
    }
}
