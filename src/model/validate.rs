//! Validation of decoded objects: the three field lists (honoured, accepted
//! with a warning, rejected) and value checks.
//!
//! The field lists are data ([`HONOURED`], [`WARNED`]): a field present in a
//! manifest is honoured if it lies in an honoured subtree, accepted with a
//! warning if it lies in a warned subtree, and rejected otherwise. The
//! published lists in `docs/manifest-fields.md` are generated from them
//! (`lab fields`).

use super::labels::Selector;
use super::{Kind, Object};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn fe(field: impl Into<String>, message: impl std::fmt::Display) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.to_string(),
    }
}

/// Why one value is refused, in the API server's words; the caller names
/// the field (`fe(field, e)`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("Required value")]
    Required,
    #[error(
        "Invalid value: {0:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
    )]
    ConfigKey(String),
    #[error("Invalid value: {0:?}: must be no more than 253 characters")]
    ConfigKeyTooLong(String),
    #[error("Invalid value: {0:?}: must not be '.' or '..'")]
    DotName(String),
    #[error("Invalid value: {0:?}: must not start with '..'")]
    DotDotPrefix(String),
    #[error("Invalid value: {0:?}: must be a relative path")]
    AbsolutePath(String),
    #[error("Invalid value: {0:?}: must not contain '..'")]
    DotDotInPath(String),
    #[error("Invalid value: {0}: must be a number between 0 and 0777 (octal), both inclusive")]
    FileMode(i32),
    #[error("{0:?}: must be a valid IPv4 address")]
    NotIpv4(String),
    #[error("{0:?}: may not be unspecified, loopback, link-local or multicast")]
    SpecialIp(String),
    /// `IsDNS1123Subdomain`'s length message (the caller shows the value).
    #[error("must be no more than 253 characters")]
    SubdomainTooLong,
    /// `IsDNS1123Subdomain`'s format message (the caller shows the value).
    #[error(
        r"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )]
    Rfc1123Subdomain,
    #[error("must be between 1 and 65535, inclusive")]
    PortRange,
    #[error("named port {0:?} is not one of the container's ports")]
    NamedPort(String),
    #[error("SCTP is not supported by lab (TCP and UDP are)")]
    Sctp,
    #[error("Unsupported value: {0:?}: supported values: \"TCP\", \"UDP\"")]
    Protocol(String),
    #[error("must be >= 0")]
    Negative,
    #[error("{0:?} must be an integer or a percentage")]
    NotPercent(String),
    #[error(
        "{0:?}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', start and end with an alphanumeric character, and be at most 63 characters"
    )]
    DnsLabel(String),
    #[error("{0:?}: a DNS-1035 label must start with an alphabetic character")]
    Dns1035Label(String),
    #[error("{0:?}: must be no more than 253 characters")]
    DnsSubdomainTooLong(String),
    #[error(
        "{0:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
    )]
    DnsSubdomain(String),
    #[error(
        "{0:?}: a port name must be at most 15 lower case alphanumerics or '-', with at least one letter"
    )]
    PortName(String),
    #[error("a label key name must not be empty")]
    EmptyLabelKey,
    #[error(
        "{0:?}: a label value must be at most 63 alphanumerics, '-', '_' or '.', beginning and ending with an alphanumeric"
    )]
    LabelValue(String),
}

const META_HONOURED: &[&str] = &["name", "generateName", "namespace", "labels", "annotations"];
/// Set by the server; ignored on input so `lab get -o yaml` output re-applies.
const META_SERVER: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];
const META_WARNED: &[&str] = &["ownerReferences", "finalizers"];

/// Pod spec fields lab honours (paths relative to a PodSpec; `[]` = every item).
pub const POD_HONOURED: &[&str] = &[
    "containers[].name",
    "containers[].image",
    "containers[].command",
    "containers[].args",
    "containers[].workingDir",
    "containers[].ports[].name",
    "containers[].ports[].containerPort",
    "containers[].ports[].protocol",
    "containers[].env[].name",
    "containers[].env[].value",
    "containers[].env[].valueFrom.fieldRef",
    "containers[].env[].valueFrom.configMapKeyRef",
    "containers[].env[].valueFrom.secretKeyRef",
    "containers[].envFrom[].configMapRef",
    "containers[].envFrom[].secretRef",
    "containers[].envFrom[].prefix",
    "containers[].volumeMounts[].name",
    "containers[].volumeMounts[].mountPath",
    "containers[].volumeMounts[].readOnly",
    "containers[].volumeMounts[].subPath",
    "containers[].readinessProbe",
    "containers[].livenessProbe",
    "containers[].securityContext.runAsUser",
    "containers[].securityContext.runAsGroup",
    "containers[].securityContext.runAsNonRoot",
    "containers[].securityContext.capabilities",
    "containers[].securityContext.privileged",
    "containers[].securityContext.allowPrivilegeEscalation",
    "containers[].securityContext.readOnlyRootFilesystem",
    "containers[].securityContext.seccompProfile",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "volumes[].name",
    "volumes[].emptyDir",
    "volumes[].configMap",
    "volumes[].secret",
    "volumes[].hostPath",
    "volumes[].persistentVolumeClaim.claimName",
    "hostname",
    "subdomain",
    "dnsPolicy",
    "dnsConfig",
    "hostAliases",
    "enableServiceLinks",
    "shareProcessNamespace",
    "securityContext.runAsUser",
    "securityContext.runAsGroup",
    "securityContext.runAsNonRoot",
    "securityContext.seccompProfile",
    // The scheduler's (src/controller/scheduler.rs).
    "nodeName",
    "nodeSelector",
    "tolerations[].key",
    "tolerations[].operator",
    "tolerations[].value",
    "tolerations[].effect",
    "affinity.nodeAffinity",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].labelSelector",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].topologyKey",
    "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[].namespaces",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].weight",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.labelSelector",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.topologyKey",
    "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.namespaces",
    "topologySpreadConstraints[].maxSkew",
    "topologySpreadConstraints[].topologyKey",
    "topologySpreadConstraints[].whenUnsatisfiable",
    "topologySpreadConstraints[].labelSelector",
    "topologySpreadConstraints[].minDomains",
    "topologySpreadConstraints[].matchLabelKeys",
];

/// Pod spec fields accepted with a warning because they mean nothing here.
pub const POD_WARNED: &[&str] = &[
    "containers[].imagePullPolicy",
    "containers[].resources",
    "containers[].terminationMessagePath",
    "containers[].terminationMessagePolicy",
    "containers[].stdin",
    "containers[].stdinOnce",
    "containers[].tty",
    "containers[].ports[].hostIP",
    "containers[].securityContext",
    "containers[].resizePolicy",
    "volumes[].persistentVolumeClaim.readOnly",
    // Not honoured: tolerationSeconds (no NoExecute eviction by taint),
    // podAffinity, anti-affinity's namespaceSelector/matchLabelKeys/
    // mismatchLabelKeys, spread's nodeAffinityPolicy/nodeTaintsPolicy
    // (lab always uses their defaults, Honor and Ignore).
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
    "priority",
    "preemptionPolicy",
    "schedulerName",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "imagePullSecrets",
    "runtimeClassName",
    "overhead",
    "os",
    "securityContext",
    "hostUsers",
];

/// Service spec fields honoured.
pub const SERVICE_HONOURED: &[&str] = &[
    "selector",
    "ports[].name",
    "ports[].protocol",
    "ports[].port",
    "ports[].targetPort",
    "clusterIP",
    "clusterIPs",
    "type",
    "sessionAffinity",
    "sessionAffinityConfig",
    "publishNotReadyAddresses",
    "externalName",
    "internalTrafficPolicy",
];
pub const SERVICE_WARNED: &[&str] = &[
    "ports[].appProtocol",
    "ipFamilies",
    "ipFamilyPolicy",
    "trafficDistribution",
];

pub const DEPLOYMENT_HONOURED: &[&str] = &["replicas", "selector", "template.metadata", "strategy"];
pub const DEPLOYMENT_WARNED: &[&str] = &[
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "minReadySeconds",
];
/// Job spec fields honoured (the pod template's are [`POD_HONOURED`]).
pub const JOB_HONOURED: &[&str] = &[
    "parallelism",
    "completions",
    "backoffLimit",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "completionMode",
    "suspend",
    "selector",
    "template.metadata",
];
pub const JOB_WARNED: &[&str] = &["podReplacementPolicy", "manualSelector"];
/// Node spec fields honoured (`podCIDR(s)` are the node's own and stay).
pub const NODE_HONOURED: &[&str] = &["unschedulable", "taints", "podCIDR", "podCIDRs"];
pub const NODE_WARNED: &[&str] = &["providerID", "externalID", "configSource"];
/// Secret fields honoured.
pub const SECRET_HONOURED: &[&str] = &["data", "stringData", "type", "immutable"];
/// The API server's limit on a Secret's data (the sum of the values).
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;
pub const REPLICASET_HONOURED: &[&str] = &["replicas", "selector", "template.metadata"];
pub const REPLICASET_WARNED: &[&str] = &["minReadySeconds"];
pub const STATEFULSET_HONOURED: &[&str] = &[
    "replicas",
    "selector",
    "template.metadata",
    "serviceName",
    "podManagementPolicy",
    "updateStrategy.type",
    "updateStrategy.rollingUpdate.partition",
    "ordinals.start",
    "persistentVolumeClaimRetentionPolicy",
    "volumeClaimTemplates[].apiVersion",
    "volumeClaimTemplates[].kind",
    "volumeClaimTemplates[].metadata.name",
    "volumeClaimTemplates[].spec.volumeMode",
];
pub const STATEFULSET_WARNED: &[&str] = &[
    "revisionHistoryLimit",
    "minReadySeconds",
    "volumeClaimTemplates[].metadata.labels",
    "volumeClaimTemplates[].metadata.annotations",
    "volumeClaimTemplates[].spec.accessModes",
    "volumeClaimTemplates[].spec.resources",
    "volumeClaimTemplates[].spec.storageClassName",
    "volumeClaimTemplates[].status",
];

use super::images::builtin_image;

/// The images lab runs without a `command`.
pub fn is_builtin_image(image: &str) -> bool {
    builtin_image(image).is_some()
}

/// Walks a JSON object and sorts its fields against honoured/warned subtrees.
struct FieldWalker<'a> {
    honoured: Vec<String>,
    warned: Vec<String>,
    ignored: &'a [&'a str],
    warnings: Vec<String>,
}

fn covers(pattern: &str, path: &str) -> bool {
    path == pattern
        || (path.starts_with(pattern)
            && matches!(path.as_bytes().get(pattern.len()), Some(b'.') | Some(b'[')))
}

fn is_prefix_of_some(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| covers(path, p))
}

impl FieldWalker<'_> {
    /// `path` uses `[]` for arrays (the pattern form); `shown` has indices.
    fn walk(&mut self, v: &Value, path: &str, shown: &str) -> Result<(), FieldError> {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let s = if shown.is_empty() {
                        k.clone()
                    } else {
                        format!("{shown}.{k}")
                    };
                    self.field(child, &p, &s)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, &format!("{path}[]"), &format!("{shown}[{i}]"))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn field(&mut self, v: &Value, path: &str, shown: &str) -> Result<(), FieldError> {
        if v.is_null() {
            return Ok(());
        }
        if self.honoured.iter().any(|p| covers(p, path)) || self.ignored.contains(&path) {
            return Ok(());
        }
        if is_prefix_of_some(&self.honoured, path) {
            return self.walk(v, path, shown);
        }
        if self.warned.iter().any(|p| covers(p, path)) {
            self.warnings
                .push(format!("{shown} is accepted but has no effect in lab"));
            return Ok(());
        }
        Err(fe(shown, unsupported_reason(path)))
    }
}

/// Why a well-known field is rejected (the generic message otherwise).
fn unsupported_reason(path: &str) -> &'static str {
    let last = path.rsplit('.').next().unwrap_or(path);
    match last {
        "hostPort" => "field is not supported by lab (pods have no node ports)",
        "hostNetwork" | "hostPID" | "hostIPC" => {
            "field is not supported by lab (every pod has its own namespaces)"
        }
        "initContainers" => "field is not supported by lab (init containers are not run)",
        "maxUnavailable" if path.starts_with("spec.updateStrategy") => {
            "field is not supported by lab (an alpha feature of Kubernetes; StatefulSets update one pod at a time)"
        }
        _ => "field is not supported by lab",
    }
}

fn prefixed(prefix: &str, list: &[&str]) -> Vec<String> {
    list.iter().map(|p| format!("{prefix}{p}")).collect()
}

/// The honoured and warned subtrees of a whole object of `kind`.
pub fn field_lists(kind: Kind) -> (Vec<String>, Vec<String>) {
    let mut honoured = prefixed("metadata.", META_HONOURED);
    let mut warned = prefixed("metadata.", META_WARNED);
    honoured.extend([
        "apiVersion".to_string(),
        "kind".to_string(),
        "status".to_string(),
    ]);
    match kind {
        Kind::Pod => {
            honoured.extend(prefixed("spec.", POD_HONOURED));
            warned.extend(prefixed("spec.", POD_WARNED));
        }
        Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet => {
            let (h, w) = match kind {
                Kind::Deployment => (DEPLOYMENT_HONOURED, DEPLOYMENT_WARNED),
                Kind::StatefulSet => (STATEFULSET_HONOURED, STATEFULSET_WARNED),
                _ => (REPLICASET_HONOURED, REPLICASET_WARNED),
            };
            honoured.extend(prefixed("spec.", h));
            warned.extend(prefixed("spec.", w));
            honoured.extend(prefixed("spec.template.spec.", POD_HONOURED));
            warned.extend(prefixed("spec.template.spec.", POD_WARNED));
        }
        Kind::Service => {
            honoured.extend(prefixed("spec.", SERVICE_HONOURED));
            warned.extend(prefixed("spec.", SERVICE_WARNED));
        }
        Kind::ConfigMap => honoured.extend(["data".to_string(), "immutable".to_string()]),
        Kind::Secret => honoured.extend(SECRET_HONOURED.iter().map(|f| f.to_string())),
        Kind::Job => {
            honoured.extend(prefixed("spec.", JOB_HONOURED));
            warned.extend(prefixed("spec.", JOB_WARNED));
            honoured.extend(prefixed("spec.template.spec.", POD_HONOURED));
            warned.extend(prefixed("spec.template.spec.", POD_WARNED));
        }
        Kind::Namespace => warned.push("spec".to_string()),
        Kind::Endpoints => honoured.push("subsets".to_string()),
        Kind::EndpointSlice => {
            honoured.extend(["addressType", "endpoints", "ports"].map(String::from))
        }
        // Recorded by the cluster: nothing in a manifest is taken.
        Kind::Event => {}
        // Registered by the daemon; users change labels, annotations,
        // cordoning and taints (the rest is the kubelet's).
        Kind::Node => {
            honoured.extend(prefixed("spec.", NODE_HONOURED));
            warned.extend(prefixed("spec.", NODE_WARNED));
        }
    }
    (honoured, warned)
}

/// Validate an object. Returns the warnings, or the first error.
pub fn validate(obj: &Object) -> Result<Vec<String>, FieldError> {
    let kind = obj.kind();
    let (honoured, warned) = field_lists(kind);
    let server: Vec<String> = META_SERVER
        .iter()
        .map(|f| format!("metadata.{f}"))
        .collect();
    let server_refs: Vec<&str> = server.iter().map(String::as_str).collect();
    let mut walker = FieldWalker {
        honoured,
        warned,
        ignored: &server_refs,
        warnings: Vec::new(),
    };
    walker.walk(&obj.to_json(), "", "")?;
    let mut warnings = walker.warnings;

    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or("");
    let generate = meta.generate_name.as_deref().unwrap_or("");
    if name.is_empty() && (kind != Kind::Pod || generate.is_empty()) {
        return Err(fe("metadata.name", "required field is missing"));
    }
    if !name.is_empty() {
        match kind {
            Kind::Namespace => dns_label(name).map_err(|m| fe("metadata.name", m))?,
            Kind::Service => dns1035_label(name).map_err(|m| fe("metadata.name", m))?,
            _ => dns_subdomain(name).map_err(|m| fe("metadata.name", m))?,
        }
    }
    if let Some(ns) = meta.namespace.as_deref() {
        if kind == Kind::Namespace {
            return Err(fe("metadata.namespace", "a Namespace is not namespaced"));
        }
        dns_label(ns).map_err(|m| fe("metadata.namespace", m))?;
    }
    for (k, v) in meta.labels.iter().flatten() {
        label_key(k).map_err(|m| fe(format!("metadata.labels.{k}"), m))?;
        label_value(v).map_err(|m| fe(format!("metadata.labels.{k}"), m))?;
    }

    match obj {
        Object::Pod(p) => {
            let spec = p
                .spec
                .as_ref()
                .ok_or_else(|| fe("spec", "required field is missing"))?;
            pod_spec(spec, "spec", &mut warnings)?;
        }
        Object::Deployment(d) => {
            let spec = &d.spec;
            for (f, v) in [
                ("revisionHistoryLimit", spec.revision_history_limit),
                ("progressDeadlineSeconds", spec.progress_deadline_seconds),
                ("minReadySeconds", spec.min_ready_seconds),
            ] {
                non_negative(v, &format!("spec.{f}"))?;
            }
            if let (Some(p), Some(m)) = (spec.progress_deadline_seconds, spec.min_ready_seconds)
                && p <= m
            {
                return Err(fe(
                    "spec.progressDeadlineSeconds",
                    "must be greater than minReadySeconds",
                ));
            }
            workload(spec.replicas, &spec.selector, &spec.template, &mut warnings)?;
            if let Some(s) = &spec.strategy {
                match s.type_.as_deref().unwrap_or("RollingUpdate") {
                    "RollingUpdate" | "Recreate" => {}
                    t => {
                        return Err(fe(
                            "spec.strategy.type",
                            format!("{t:?} is not RollingUpdate or Recreate"),
                        ));
                    }
                }
                if let Some(ru) = &s.rolling_update {
                    for (f, v) in [
                        ("maxSurge", &ru.max_surge),
                        ("maxUnavailable", &ru.max_unavailable),
                    ] {
                        if let Some(v) = v {
                            percent_or_int(v)
                                .map_err(|m| fe(format!("spec.strategy.rollingUpdate.{f}"), m))?;
                        }
                    }
                }
            }
        }
        Object::ReplicaSet(r) => {
            let spec = &r.spec;
            non_negative(spec.min_ready_seconds, "spec.minReadySeconds")?;
            let template = spec
                .template
                .as_ref()
                .ok_or_else(|| fe("spec.template", "required field is missing"))?;
            workload(spec.replicas, &spec.selector, template, &mut warnings)?;
        }
        Object::StatefulSet(s) => stateful_set(s, &mut warnings)?,
        Object::Service(s) => service(s)?,
        Object::ConfigMap(c) => {
            let size: usize = c
                .data
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.len())
                .sum();
            if size > MAX_CONFIGMAP_BYTES {
                return Err(fe(
                    "data",
                    format!(
                        "Too long: must have at most {MAX_CONFIGMAP_BYTES} bytes (the data is {size} bytes; a ConfigMap holds at most 1 MiB)"
                    ),
                ));
            }
            for k in c.data.iter().flatten().map(|(k, _)| k) {
                config_key(k).map_err(|m| fe(format!("data.{k}"), m))?;
            }
        }
        Object::Secret(sec) => secret(sec)?,
        Object::Job(j) => job(j, &mut warnings)?,
        Object::Endpoints(e) => endpoints(e)?,
        Object::EndpointSlice(e) => endpoint_slice(e)?,
        _ => {}
    }
    Ok(warnings)
}

/// The API server's limit on a ConfigMap's data (keys and values).
pub const MAX_CONFIGMAP_BYTES: usize = 1024 * 1024;

/// What the API server does to an object on every write before validating
/// it: a Secret's `stringData` is merged into `data` (a `stringData` key
/// wins) and dropped (it is write-only), and an empty `type` becomes
/// `Opaque`.
pub fn normalize(obj: &mut Object) {
    if let Object::Secret(s) = obj {
        if let Some(sd) = s.string_data.take() {
            let data = s.data.get_or_insert_with(Default::default);
            for (k, v) in sd {
                data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
            }
        }
        if s.type_.as_deref().is_none_or(str::is_empty) {
            s.type_ = Some("Opaque".into());
        }
    }
}

/// A ConfigMap or Secret key (`IsConfigMapKey`): a file name the kubelet
/// can write.
pub fn config_key(k: &str) -> Result<(), ValueError> {
    let chars_ok = k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if k.is_empty() || !chars_ok {
        return Err(ValueError::ConfigKey(k.to_string()));
    }
    if k.len() > 253 {
        return Err(ValueError::ConfigKeyTooLong(k.to_string()));
    }
    if k == "." || k == ".." {
        return Err(ValueError::DotName(k.to_string()));
    }
    if k.starts_with("..") {
        return Err(ValueError::DotDotPrefix(k.to_string()));
    }
    Ok(())
}

/// A Secret as the API server validates it (after [`normalize`]): keys,
/// the 1 MiB limit, and the keys its `type` requires.
fn secret(s: &k8s_openapi::api::core::v1::Secret) -> Result<(), FieldError> {
    let data = s.data.clone().unwrap_or_default();
    let mut size = 0;
    for (k, v) in &data {
        config_key(k).map_err(|m| fe(format!("data[{k}]"), m))?;
        size += v.0.len();
    }
    if size > MAX_SECRET_BYTES {
        return Err(fe(
            "data",
            format!(
                "Too long: must have at most {MAX_SECRET_BYTES} bytes (the data is {size} bytes; a Secret holds at most 1 MiB)"
            ),
        ));
    }
    let ty = s.type_.as_deref().unwrap_or("Opaque");
    match ty {
        "Opaque" => {}
        "kubernetes.io/basic-auth" => {
            if !data.contains_key("username") && !data.contains_key("password") {
                return Err(fe(
                    "data[username]",
                    "Required value (a kubernetes.io/basic-auth Secret needs `username` or `password`)",
                ));
            }
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    return Err(fe(
                        format!("data[{key}]"),
                        "Required value (a kubernetes.io/tls Secret needs `tls.crt` and `tls.key`)",
                    ));
                }
            }
        }
        t if t.starts_with("kubernetes.io/") || t.starts_with("bootstrap.kubernetes.io/") => {
            return Err(fe(
                "type",
                format!(
                    "Unsupported value: {t:?}: lab supports the Secret types \"Opaque\", \"kubernetes.io/basic-auth\", \"kubernetes.io/tls\" (and custom types, treated as Opaque)"
                ),
            ));
        }
        t => {
            if t.len() > 253 {
                return Err(fe("type", "Too long: may not be more than 253 bytes"));
            }
        }
    }
    Ok(())
}

/// A Job as the API server validates it.
fn job(j: &k8s_openapi::api::batch::v1::Job, warnings: &mut Vec<String>) -> Result<(), FieldError> {
    let spec = j
        .spec
        .as_ref()
        .ok_or_else(|| fe("spec", "required field is missing"))?;
    for (f, v) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished),
    ] {
        non_negative(v, &format!("spec.{f}"))?;
    }
    if spec.active_deadline_seconds.is_some_and(|d| d <= 0) {
        return Err(fe("spec.activeDeadlineSeconds", "must be greater than 0"));
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            return Err(fe(
                "spec.completionMode",
                "Unsupported value: \"Indexed\": lab runs NonIndexed Jobs only",
            ));
        }
        Some(m) => {
            return Err(fe(
                "spec.completionMode",
                format!("Unsupported value: {m:?}: supported values: \"NonIndexed\", \"Indexed\""),
            ));
        }
    }
    if spec.suspend == Some(true) {
        return Err(fe(
            "spec.suspend",
            "Unsupported value: true: lab does not suspend Jobs",
        ));
    }
    if let Some(sel) = &spec.selector {
        label_selector(sel, "spec.selector")?;
    }
    let t = &spec.template;
    let labels = t
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels_map(&labels, "spec.template.metadata.labels")?;
    let pod = t
        .spec
        .as_ref()
        .ok_or_else(|| fe("spec.template.spec", "required field is missing"))?;
    pod_spec(pod, "spec.template.spec", warnings)?;
    match pod.restart_policy.as_deref() {
        Some("OnFailure") | Some("Never") => {}
        None => {
            return Err(fe(
                "spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            ));
        }
        Some(rp) => {
            return Err(fe(
                "spec.template.spec.restartPolicy",
                format!("Unsupported value: {rp:?}: supported values: \"OnFailure\", \"Never\""),
            ));
        }
    }
    Ok(())
}

fn non_negative(v: Option<i32>, field: &str) -> Result<(), FieldError> {
    if v.is_some_and(|v| v < 0) {
        return Err(fe(field, "must be greater than or equal to 0"));
    }
    Ok(())
}

/// Keys and values of a label map (`metadata.labels`, a Service selector,
/// a selector's `matchLabels`).
fn labels_map(m: &std::collections::BTreeMap<String, String>, at: &str) -> Result<(), FieldError> {
    for (k, v) in m {
        label_key(k).map_err(|e| fe(format!("{at}.{k}"), e))?;
        label_value(v).map_err(|e| fe(format!("{at}.{k}"), e))?;
    }
    Ok(())
}

/// A `LabelSelector` as the API server validates it.
fn label_selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    at: &str,
) -> Result<(), FieldError> {
    if let Some(m) = &s.match_labels {
        labels_map(m, &format!("{at}.matchLabels"))?;
    }
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let f = format!("{at}.matchExpressions[{i}]");
        label_key(&e.key).map_err(|m| fe(format!("{f}.key"), m))?;
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(fe(
                    format!("{f}.values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(fe(
                    format!("{f}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => {
                return Err(fe(
                    format!("{f}.operator"),
                    format!(
                        "Unsupported value: {op:?}: supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
                    ),
                ));
            }
        }
        for (j, v) in values.iter().enumerate() {
            label_value(v).map_err(|m| fe(format!("{f}.values[{j}]"), m))?;
        }
    }
    Ok(())
}

/// An endpoint address as the API server accepts it: a valid IPv4 address
/// that is not unspecified, loopback, link-local or multicast.
fn endpoint_ip(ip: &str) -> Result<(), ValueError> {
    let a: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| ValueError::NotIpv4(ip.to_string()))?;
    if a.is_unspecified() || a.is_loopback() || a.is_link_local() || a.is_multicast() {
        return Err(ValueError::SpecialIp(ip.to_string()));
    }
    Ok(())
}

fn endpoints(e: &k8s_openapi::api::core::v1::Endpoints) -> Result<(), FieldError> {
    for (i, s) in e.subsets.iter().flatten().enumerate() {
        let f = format!("subsets[{i}]");
        for (list, addrs) in [
            ("addresses", &s.addresses),
            ("notReadyAddresses", &s.not_ready_addresses),
        ] {
            for (j, a) in addrs.iter().flatten().enumerate() {
                endpoint_ip(&a.ip).map_err(|m| fe(format!("{f}.{list}[{j}].ip"), m))?;
            }
        }
        for (j, p) in s.ports.iter().flatten().enumerate() {
            let pf = format!("{f}.ports[{j}]");
            if !(1..=65535).contains(&p.port) {
                return Err(fe(
                    format!("{pf}.port"),
                    "must be between 1 and 65535, inclusive",
                ));
            }
            protocol(p.protocol.as_deref()).map_err(|m| fe(format!("{pf}.protocol"), m))?;
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                dns_label(n).map_err(|m| fe(format!("{pf}.name"), m))?;
            }
        }
    }
    Ok(())
}

fn endpoint_slice(e: &k8s_openapi::api::discovery::v1::EndpointSlice) -> Result<(), FieldError> {
    if e.address_type != "IPv4" {
        return Err(fe(
            "addressType",
            format!(
                "Unsupported value: {:?}: supported values: \"IPv4\" (lab has no IPv6 or FQDN endpoints)",
                e.address_type
            ),
        ));
    }
    for (i, ep) in e.endpoints.iter().flatten().enumerate() {
        if ep.addresses.is_empty() {
            return Err(fe(
                format!("endpoints[{i}].addresses"),
                "Required value: must contain at least 1 address",
            ));
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            endpoint_ip(a).map_err(|m| fe(format!("endpoints[{i}].addresses[{j}]"), m))?;
        }
    }
    for (j, p) in e.ports.iter().flatten().enumerate() {
        let pf = format!("ports[{j}]");
        if let Some(port) = p.port
            && !(1..=65535).contains(&port)
        {
            return Err(fe(
                format!("{pf}.port"),
                "must be between 1 and 65535, inclusive",
            ));
        }
        protocol(p.protocol.as_deref()).map_err(|m| fe(format!("{pf}.protocol"), m))?;
    }
    Ok(())
}

fn workload(
    replicas: Option<i32>,
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    warnings: &mut Vec<String>,
) -> Result<(), FieldError> {
    if replicas.is_some_and(|r| r < 0) {
        return Err(fe("spec.replicas", "must be greater than or equal to 0"));
    }
    label_selector(selector, "spec.selector")?;
    let sel =
        Selector::from_label_selector(selector).map_err(|e| fe("spec.selector", e.to_string()))?;
    if sel.is_empty() {
        return Err(fe(
            "spec.selector",
            "empty selector is invalid for a workload",
        ));
    }
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels_map(&labels, "spec.template.metadata.labels")?;
    if !sel.matches(&labels) {
        return Err(fe(
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ));
    }
    let spec = template
        .spec
        .as_ref()
        .ok_or_else(|| fe("spec.template.spec", "required field is missing"))?;
    pod_spec(spec, "spec.template.spec", warnings)?;
    if let Some(rp) = spec.restart_policy.as_deref()
        && rp != "Always"
    {
        return Err(fe(
            "spec.template.spec.restartPolicy",
            format!("Unsupported value: {rp:?}: supported values: \"Always\""),
        ));
    }
    Ok(())
}

/// A StatefulSet: the API server's checks on its own fields, then the
/// template as a pod would see it (one `persistentVolumeClaim` volume per
/// claim template, so `volumeMounts` may name the claims).
fn stateful_set(
    s: &k8s_openapi::api::apps::v1::StatefulSet,
    warnings: &mut Vec<String>,
) -> Result<(), FieldError> {
    let spec = &s.spec;
    // The pods' names are their hostnames (DNS labels): on a real cluster a
    // set whose `<name>-<ordinal>` is not one cannot create its pods.
    if let Some(name) = s.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        let last = spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0)
            + spec.replicas.unwrap_or(1).max(1)
            - 1;
        let pod = format!("{name}-{last}");
        dns_label(&pod).map_err(|m| {
            fe(
                "metadata.name",
                format!("the pods' names (and hostnames) would be invalid: {m}"),
            )
        })?;
    }
    non_negative(spec.min_ready_seconds, "spec.minReadySeconds")?;
    non_negative(spec.revision_history_limit, "spec.revisionHistoryLimit")?;
    if let Some(n) = spec.service_name.as_deref().filter(|n| !n.is_empty()) {
        dns1035_label(n).map_err(|m| fe("spec.serviceName", m))?;
    }
    if let Some(p) = spec.pod_management_policy.as_deref()
        && !matches!(p, "OrderedReady" | "Parallel")
    {
        return Err(fe(
            "spec.podManagementPolicy",
            format!("Unsupported value: {p:?}: supported values: \"OrderedReady\", \"Parallel\""),
        ));
    }
    if let Some(u) = &spec.update_strategy {
        let t = u.type_.as_deref().unwrap_or("RollingUpdate");
        match t {
            "RollingUpdate" => {}
            "OnDelete" if u.rolling_update.is_none() => {}
            "OnDelete" => {
                return Err(fe(
                    "spec.updateStrategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'OnDelete'",
                ));
            }
            t => {
                return Err(fe(
                    "spec.updateStrategy.type",
                    format!(
                        "Unsupported value: {t:?}: supported values: \"OnDelete\", \"RollingUpdate\""
                    ),
                ));
            }
        }
        non_negative(
            u.rolling_update.as_ref().and_then(|r| r.partition),
            "spec.updateStrategy.rollingUpdate.partition",
        )?;
    }
    non_negative(
        spec.ordinals.as_ref().and_then(|o| o.start),
        "spec.ordinals.start",
    )?;
    if let Some(p) = &spec.persistent_volume_claim_retention_policy {
        for (f, v) in [
            ("whenDeleted", &p.when_deleted),
            ("whenScaled", &p.when_scaled),
        ] {
            match v.as_deref() {
                None | Some("Retain") => {}
                Some("Delete") => {
                    return Err(fe(
                        format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
                        "\"Delete\" is not supported by lab: claim directories are kept until `lab down` (use \"Retain\")",
                    ));
                }
                Some(o) => {
                    return Err(fe(
                        format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
                        format!(
                            "Unsupported value: {o:?}: supported values: \"Retain\", \"Delete\""
                        ),
                    ));
                }
            }
        }
    }
    let mut template = spec.template.clone();
    let mut claims = HashSet::new();
    for (i, c) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let f = format!("spec.volumeClaimTemplates[{i}]");
        let name = c.metadata.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(fe(
                format!("{f}.metadata.name"),
                "required field is missing",
            ));
        }
        dns_label(name).map_err(|m| fe(format!("{f}.metadata.name"), m))?;
        if !claims.insert(name.to_string()) {
            return Err(fe(
                format!("{f}.metadata.name"),
                format!("Duplicate value: {name:?}"),
            ));
        }
        if let Some(m) = c.spec.as_ref().and_then(|s| s.volume_mode.as_deref())
            && m != "Filesystem"
        {
            return Err(fe(
                format!("{f}.spec.volumeMode"),
                format!("{m:?} is not supported by lab (a claim is a directory: \"Filesystem\")"),
            ));
        }
        if let Some(ps) = template.spec.as_mut() {
            let vols = ps.volumes.get_or_insert_with(Vec::new);
            vols.retain(|v| v.name != name);
            vols.push(k8s_openapi::api::core::v1::Volume {
                name: name.to_string(),
                persistent_volume_claim: Some(
                    k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                        claim_name: format!("{name}-x-0"),
                        read_only: None,
                    },
                ),
                ..Default::default()
            });
        }
    }
    workload(spec.replicas, &spec.selector, &template, warnings)
}

fn pod_spec(spec: &PodSpec, at: &str, warnings: &mut Vec<String>) -> Result<(), FieldError> {
    if spec.containers.is_empty() {
        return Err(fe(
            format!("{at}.containers"),
            "Required value: a pod needs at least one container",
        ));
    }
    let volumes: HashSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut vol_names = HashSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let f = format!("{at}.volumes[{i}]");
        dns_label(&v.name).map_err(|m| fe(format!("{f}.name"), m))?;
        if !vol_names.insert(v.name.as_str()) {
            return Err(fe(
                format!("{f}.name"),
                format!("Duplicate value: {:?}", v.name),
            ));
        }
        let sources = [
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.host_path.is_some(),
            v.persistent_volume_claim.is_some(),
            v.secret.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            1 => {}
            0 => {
                return Err(fe(
                    f,
                    "volume type not supported by lab (supported: emptyDir, configMap, secret, hostPath, persistentVolumeClaim)",
                ));
            }
            _ => return Err(fe(f, "may not specify more than 1 volume type")),
        }
        if let Some(h) = &v.host_path
            && !h.path.starts_with('/')
        {
            return Err(fe(format!("{f}.hostPath.path"), "must be an absolute path"));
        }
        if let Some(c) = &v.persistent_volume_claim {
            dns_subdomain(&c.claim_name)
                .map_err(|m| fe(format!("{f}.persistentVolumeClaim.claimName"), m))?;
        }
        if let Some(sv) = &v.secret {
            let sf = format!("{f}.secret");
            match sv.secret_name.as_deref() {
                None | Some("") => {
                    return Err(fe(format!("{sf}.secretName"), "Required value"));
                }
                Some(n) => dns_subdomain(n).map_err(|m| fe(format!("{sf}.secretName"), m))?,
            }
            file_mode(sv.default_mode).map_err(|m| fe(format!("{sf}.defaultMode"), m))?;
            for (j, it) in sv.items.iter().flatten().enumerate() {
                let itf = format!("{sf}.items[{j}]");
                config_key(&it.key).map_err(|m| fe(format!("{itf}.key"), m))?;
                volume_path(&it.path).map_err(|m| fe(format!("{itf}.path"), m))?;
                file_mode(it.mode).map_err(|m| fe(format!("{itf}.mode"), m))?;
            }
        }
    }
    let mut names = HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let f = format!("{at}.containers[{i}]");
        if !names.insert(c.name.as_str()) {
            return Err(fe(
                format!("{f}.name"),
                format!("Duplicate value: {:?}", c.name),
            ));
        }
        container(c, &f, &volumes, warnings)?;
    }
    if let Some(rp) = spec.restart_policy.as_deref()
        && !matches!(rp, "Always" | "OnFailure" | "Never")
    {
        return Err(fe(
            format!("{at}.restartPolicy"),
            format!(
                "Unsupported value: {rp:?}: supported values: \"Always\", \"OnFailure\", \"Never\""
            ),
        ));
    }
    if spec.termination_grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(fe(
            format!("{at}.terminationGracePeriodSeconds"),
            "must be >= 0",
        ));
    }
    if let Some(p) = spec.dns_policy.as_deref()
        && !matches!(
            p,
            "ClusterFirst" | "Default" | "None" | "ClusterFirstWithHostNet"
        )
    {
        return Err(fe(
            format!("{at}.dnsPolicy"),
            format!(
                "Unsupported value: {p:?}: supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\""
            ),
        ));
    }
    dns_config(spec, at)?;
    if let Some(sc) = &spec.security_context {
        let f = format!("{at}.securityContext");
        ids(sc.run_as_user, sc.run_as_group, &f)?;
        seccomp_profile(sc.seccomp_profile.as_ref(), &f)?;
    }
    for (f, v) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = v {
            dns_label(v).map_err(|m| fe(format!("{at}.{f}"), m))?;
        }
    }
    scheduling(spec, at)
}

/// The scheduler's inputs: nodeName, nodeSelector, tolerations, node
/// affinity, pod anti-affinity terms and topology spread constraints.
fn scheduling(spec: &PodSpec, at: &str) -> Result<(), FieldError> {
    if let Some(n) = &spec.node_name {
        dns_subdomain(n).map_err(|m| fe(format!("{at}.nodeName"), m))?;
    }
    for (k, v) in spec.node_selector.iter().flatten() {
        let f = format!("{at}.nodeSelector.{k}");
        label_key(k).map_err(|m| fe(&f, m))?;
        label_value(v).map_err(|m| fe(&f, m))?;
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let f = format!("{at}.tolerations[{i}]");
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("Equal");
        if !key.is_empty() {
            label_key(key).map_err(|m| fe(format!("{f}.key"), m))?;
        }
        match op {
            "Exists" => {
                if t.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    return Err(fe(
                        format!("{f}.operator"),
                        "Invalid value: \"Exists\": value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            "Equal" => {
                if key.is_empty() {
                    return Err(fe(
                        format!("{f}.operator"),
                        "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                    ));
                }
                label_value(t.value.as_deref().unwrap_or(""))
                    .map_err(|m| fe(format!("{f}.value"), m))?;
            }
            other => {
                return Err(fe(
                    format!("{f}.operator"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Equal\", \"Exists\""
                    ),
                ));
            }
        }
        match t.effect.as_deref().unwrap_or("") {
            "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => {
                return Err(fe(
                    format!("{f}.effect"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                    ),
                ));
            }
        }
        if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
            return Err(fe(
                format!("{f}.effect"),
                "Invalid value: effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
    if let Some(aff) = &spec.affinity {
        if let Some(na) = &aff.node_affinity {
            let f = format!("{at}.affinity.nodeAffinity");
            if let Some(r) = &na.required_during_scheduling_ignored_during_execution {
                let rf =
                    format!("{f}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
                if r.node_selector_terms.is_empty() {
                    return Err(fe(
                        rf,
                        "Required value: must have at least one node selector term",
                    ));
                }
                for (i, t) in r.node_selector_terms.iter().enumerate() {
                    node_selector_term(t, &format!("{rf}[{i}]"))?;
                }
            }
            for (i, p) in na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .enumerate()
            {
                let pf = format!("{f}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                weight(p.weight, &format!("{pf}.weight"))?;
                node_selector_term(&p.preference, &format!("{pf}.preference"))?;
            }
        }
        if let Some(anti) = &aff.pod_anti_affinity {
            let f = format!("{at}.affinity.podAntiAffinity");
            for (i, t) in anti
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .enumerate()
            {
                pod_affinity_term(
                    t,
                    &format!("{f}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"),
                )?;
            }
            for (i, w) in anti
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .enumerate()
            {
                let pf = format!("{f}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
                weight(w.weight, &format!("{pf}.weight"))?;
                pod_affinity_term(&w.pod_affinity_term, &format!("{pf}.podAffinityTerm"))?;
            }
        }
    }
    let mut seen = HashSet::new();
    for (i, c) in spec
        .topology_spread_constraints
        .iter()
        .flatten()
        .enumerate()
    {
        let f = format!("{at}.topologySpreadConstraints[{i}]");
        if c.max_skew <= 0 {
            return Err(fe(
                format!("{f}.maxSkew"),
                format!("Invalid value: {}: must be greater than zero", c.max_skew),
            ));
        }
        if c.topology_key.is_empty() {
            return Err(fe(
                format!("{f}.topologyKey"),
                "Required value: can not be empty",
            ));
        }
        label_key(&c.topology_key).map_err(|m| fe(format!("{f}.topologyKey"), m))?;
        match c.when_unsatisfiable.as_str() {
            "DoNotSchedule" | "ScheduleAnyway" => {}
            other => {
                return Err(fe(
                    format!("{f}.whenUnsatisfiable"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
                    ),
                ));
            }
        }
        if !seen.insert((c.topology_key.clone(), c.when_unsatisfiable.clone())) {
            return Err(fe(
                format!("{f}.{{topologyKey, whenUnsatisfiable}}"),
                format!(
                    "Duplicate value: {{{:?}, {:?}}}",
                    c.topology_key, c.when_unsatisfiable
                ),
            ));
        }
        if let Some(m) = c.min_domains {
            if m <= 0 {
                return Err(fe(
                    format!("{f}.minDomains"),
                    format!("Invalid value: {m}: must be greater than 0"),
                ));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                return Err(fe(
                    format!("{f}.minDomains"),
                    format!(
                        "Invalid value: {m}: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        if let Some(sel) = &c.label_selector {
            Selector::from_label_selector(sel)
                .map_err(|m| fe(format!("{f}.labelSelector"), m.to_string()))?;
        }
    }
    Ok(())
}

fn weight(w: i32, field: &str) -> Result<(), FieldError> {
    if !(1..=100).contains(&w) {
        return Err(fe(
            field,
            format!("Invalid value: {w}: must be in the range 1-100"),
        ));
    }
    Ok(())
}

fn pod_affinity_term(
    t: &k8s_openapi::api::core::v1::PodAffinityTerm,
    f: &str,
) -> Result<(), FieldError> {
    if t.topology_key.is_empty() {
        return Err(fe(
            format!("{f}.topologyKey"),
            "Required value: can not be empty",
        ));
    }
    label_key(&t.topology_key).map_err(|m| fe(format!("{f}.topologyKey"), m))?;
    if let Some(sel) = &t.label_selector {
        Selector::from_label_selector(sel)
            .map_err(|m| fe(format!("{f}.labelSelector"), m.to_string()))?;
    }
    for (i, n) in t.namespaces.iter().flatten().enumerate() {
        dns_label(n).map_err(|m| fe(format!("{f}.namespaces[{i}]"), m))?;
    }
    Ok(())
}

/// One node selector term: operators and their values, as the API checks them.
fn node_selector_term(
    t: &k8s_openapi::api::core::v1::NodeSelectorTerm,
    f: &str,
) -> Result<(), FieldError> {
    for (i, r) in t.match_expressions.iter().flatten().enumerate() {
        let rf = format!("{f}.matchExpressions[{i}]");
        label_key(&r.key).map_err(|m| fe(format!("{rf}.key"), m))?;
        node_selector_requirement(r, &rf)?;
    }
    for (i, r) in t.match_fields.iter().flatten().enumerate() {
        let rf = format!("{f}.matchFields[{i}]");
        if r.key != "metadata.name" {
            return Err(fe(
                format!("{rf}.key"),
                format!(
                    "Invalid value: {:?}: not a valid field selector key (supported: metadata.name)",
                    r.key
                ),
            ));
        }
        if !matches!(r.operator.as_str(), "In" | "NotIn")
            || r.values.as_ref().is_none_or(|v| v.len() != 1)
        {
            return Err(fe(
                format!("{rf}.values"),
                "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ));
        }
    }
    Ok(())
}

fn node_selector_requirement(
    r: &k8s_openapi::api::core::v1::NodeSelectorRequirement,
    rf: &str,
) -> Result<(), FieldError> {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" | "NotIn" => {
            if values.is_empty() {
                return Err(fe(
                    format!("{rf}.values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                return Err(fe(
                    format!("{rf}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                return Err(fe(
                    format!("{rf}.values"),
                    "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            }
            if values[0].parse::<i64>().is_err() {
                return Err(fe(
                    format!("{rf}.values[0]"),
                    format!("Invalid value: {:?}: must be an integer", values[0]),
                ));
            }
        }
        other => {
            return Err(fe(
                format!("{rf}.operator"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"DoesNotExist\", \"Exists\", \"Gt\", \"In\", \"Lt\", \"NotIn\""
                ),
            ));
        }
    }
    Ok(())
}

/// `validatePodDNSConfig`: limits from libc's resolver (3 nameservers, 32
/// search domains, 2048 characters), valid IPs and domains, named options.
fn dns_config(spec: &k8s_openapi::api::core::v1::PodSpec, at: &str) -> Result<(), FieldError> {
    let f = format!("{at}.dnsConfig");
    if spec.dns_policy.as_deref() == Some("None") {
        let Some(c) = &spec.dns_config else {
            return Err(fe(
                f,
                "Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        };
        if c.nameservers.as_ref().is_none_or(Vec::is_empty) {
            return Err(fe(
                format!("{f}.nameservers"),
                "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
    }
    let Some(c) = &spec.dns_config else {
        return Ok(());
    };
    let servers = c.nameservers.clone().unwrap_or_default();
    if servers.len() > 3 {
        return Err(fe(
            format!("{f}.nameservers"),
            format!(
                "Invalid value: {}: must not have more than 3 nameservers",
                go_strings(&servers)
            ),
        ));
    }
    for (i, ns) in servers.iter().enumerate() {
        if ns.parse::<std::net::IpAddr>().is_err() {
            return Err(fe(
                format!("{f}.nameservers[{i}]"),
                format!(
                    "Invalid value: {ns:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
                ),
            ));
        }
    }
    let searches = c.searches.clone().unwrap_or_default();
    if searches.len() > 32 {
        return Err(fe(
            format!("{f}.searches"),
            format!(
                "Invalid value: {}: must not have more than 32 search paths",
                go_strings(&searches)
            ),
        ));
    }
    if searches.join(" ").len() > 2048 {
        return Err(fe(
            format!("{f}.searches"),
            format!(
                "Invalid value: {}: must not have more than 2048 characters (including spaces) in the search list",
                go_strings(&searches)
            ),
        ));
    }
    for (i, d) in searches.iter().enumerate() {
        // A trailing dot is fine.
        let d = d.strip_suffix('.').unwrap_or(d);
        is_dns1123_subdomain(d).map_err(|m| {
            fe(
                format!("{f}.searches[{i}]"),
                format!("Invalid value: {d:?}: {m}"),
            )
        })?;
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if o.name.as_deref().is_none_or(str::is_empty) {
            return Err(fe(
                format!("{f}.options[{i}]"),
                "Required value: must not be empty",
            ));
        }
    }
    Ok(())
}

/// A volume file's mode (`defaultMode`, `items[].mode`): 0 to 0777.
fn file_mode(m: Option<i32>) -> Result<(), ValueError> {
    match m {
        Some(m) if !(0..=0o777).contains(&m) => Err(ValueError::FileMode(m)),
        _ => Ok(()),
    }
}

/// A relative path inside a volume (`items[].path`).
fn volume_path(p: &str) -> Result<(), ValueError> {
    if p.is_empty() {
        return Err(ValueError::Required);
    }
    if p.starts_with('/') {
        return Err(ValueError::AbsolutePath(p.to_string()));
    }
    if p.split('/').any(|x| x == "..") {
        return Err(ValueError::DotDotInPath(p.to_string()));
    }
    if p.starts_with("..") {
        return Err(ValueError::DotDotPrefix(p.to_string()));
    }
    Ok(())
}

/// A `[]string` as the API server prints an invalid value (Go's `%#v`).
fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `IsDNS1123Subdomain`, with the API server's message.
fn is_dns1123_subdomain(s: &str) -> Result<(), ValueError> {
    if s.len() > 253 {
        return Err(ValueError::SubdomainTooLong);
    }
    let ok = !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ValueError::Rfc1123Subdomain)
    }
}

fn container(
    c: &Container,
    f: &str,
    volumes: &HashSet<&str>,
    warnings: &mut Vec<String>,
) -> Result<(), FieldError> {
    dns_label(&c.name).map_err(|m| fe(format!("{f}.name"), m))?;
    let image = c.image.as_deref().unwrap_or("");
    if image.is_empty() && c.command.is_none() {
        return Err(fe(format!("{f}.image"), "Required value"));
    }
    if !is_builtin_image(image) && c.command.as_ref().is_none_or(Vec::is_empty) {
        return Err(fe(
            format!("{f}.command"),
            format!(
                "image {image:?} is not built into lab and lab has no registry: give the container a `command` (a host program to run); built in: registry.k8s.io/e2e-test-images/agnhost, lab.dev/dns"
            ),
        ));
    }
    if !image.is_empty() && !is_builtin_image(image) {
        warnings.push(format!(
            "{f}.image {image:?} is not pulled: the container runs its command as a host program"
        ));
    }
    let mut port_names = HashSet::new();
    for (j, p) in c.ports.iter().flatten().enumerate() {
        let pf = format!("{f}.ports[{j}]");
        if !(1..=65535).contains(&p.container_port) {
            return Err(fe(
                format!("{pf}.containerPort"),
                "must be between 1 and 65535, inclusive",
            ));
        }
        protocol(p.protocol.as_deref()).map_err(|m| fe(format!("{pf}.protocol"), m))?;
        if let Some(n) = &p.name {
            port_name(n).map_err(|m| fe(format!("{pf}.name"), m))?;
            if !port_names.insert(n.as_str()) {
                return Err(fe(format!("{pf}.name"), format!("Duplicate value: {n:?}")));
            }
        }
        if p.host_port.is_some_and(|h| h != 0) {
            return Err(fe(
                format!("{pf}.hostPort"),
                "field is not supported by lab (pods have no node ports)",
            ));
        }
    }
    for (j, e) in c.env.iter().flatten().enumerate() {
        if e.name.is_empty() || e.name.contains('=') {
            return Err(fe(
                format!("{f}.env[{j}].name"),
                "a valid environment variable name is required",
            ));
        }
        if let Some(r) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            let ok = matches!(
                r.field_path.as_str(),
                "metadata.name"
                    | "metadata.namespace"
                    | "metadata.uid"
                    | "spec.nodeName"
                    | "spec.serviceAccountName"
                    | "status.podIP"
                    | "status.podIPs"
                    | "status.hostIP"
                    | "status.hostIPs"
            ) || r.field_path.starts_with("metadata.labels['")
                || r.field_path.starts_with("metadata.annotations['");
            if !ok {
                return Err(fe(
                    format!("{f}.env[{j}].valueFrom.fieldRef.fieldPath"),
                    format!("Unsupported value: {:?}", r.field_path),
                ));
            }
        }
    }
    for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
        if !volumes.contains(m.name.as_str()) {
            return Err(fe(
                format!("{f}.volumeMounts[{j}].name"),
                format!("Not found: {:?}", m.name),
            ));
        }
        if !m.mount_path.starts_with('/') {
            return Err(fe(
                format!("{f}.volumeMounts[{j}].mountPath"),
                "must be an absolute path",
            ));
        }
    }
    for (name, probe) in [
        ("readinessProbe", &c.readiness_probe),
        ("livenessProbe", &c.liveness_probe),
    ] {
        let Some(p) = probe else { continue };
        let pf = format!("{f}.{name}");
        let handlers = [
            p.http_get.is_some(),
            p.tcp_socket.is_some(),
            p.exec.is_some(),
        ];
        match handlers.iter().filter(|h| **h).count() {
            1 => {}
            0 => {
                return Err(fe(
                    pf,
                    "must specify a handler type (httpGet, tcpSocket or exec; grpc is not supported)",
                ));
            }
            _ => return Err(fe(pf, "may not specify more than 1 handler type")),
        }
        if let Some(h) = &p.http_get {
            if h.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err(fe(
                    format!("{pf}.httpGet.scheme"),
                    "only HTTP is supported by lab",
                ));
            }
            probe_port(c, &h.port).map_err(|m| fe(format!("{pf}.httpGet.port"), m))?;
        }
        if let Some(t) = &p.tcp_socket {
            probe_port(c, &t.port).map_err(|m| fe(format!("{pf}.tcpSocket.port"), m))?;
        }
        if let Some(e) = &p.exec
            && e.command.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(fe(format!("{pf}.exec.command"), "Required value"));
        }
        for (k, v) in [
            ("initialDelaySeconds", p.initial_delay_seconds),
            ("periodSeconds", p.period_seconds),
            ("timeoutSeconds", p.timeout_seconds),
            ("successThreshold", p.success_threshold),
            ("failureThreshold", p.failure_threshold),
        ] {
            if v.is_some_and(|v| v < 0) {
                return Err(fe(format!("{pf}.{k}"), "must be >= 0"));
            }
        }
    }
    if let Some(sc) = &c.security_context {
        let at = format!("{f}.securityContext");
        ids(sc.run_as_user, sc.run_as_group, &at)?;
        seccomp_profile(sc.seccomp_profile.as_ref(), &at)?;
        let caps = sc.capabilities.as_ref();
        for (list, names) in [
            ("add", caps.and_then(|c| c.add.as_ref())),
            ("drop", caps.and_then(|c| c.drop.as_ref())),
        ] {
            for (j, n) in names.into_iter().flatten().enumerate() {
                if !n.eq_ignore_ascii_case("ALL") && crate::sys::security::capability(n).is_none() {
                    return Err(fe(
                        format!("{at}.capabilities.{list}[{j}]"),
                        format!(
                            "{n:?} is not a Linux capability (e.g. NET_ADMIN, SYS_PTRACE, ALL)"
                        ),
                    ));
                }
            }
        }
        let privileged = sc.privileged == Some(true);
        let adds_sys_admin = caps.and_then(|c| c.add.as_ref()).is_some_and(|a| {
            a.iter().any(|n| {
                n.eq_ignore_ascii_case("ALL")
                    || crate::sys::security::capability(n)
                        == crate::sys::security::capability("SYS_ADMIN")
            })
        });
        if sc.allow_privilege_escalation == Some(false) && privileged {
            return Err(fe(
                format!("{at}.allowPrivilegeEscalation"),
                "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sc.allow_privilege_escalation == Some(false) && adds_sys_admin {
            return Err(fe(
                format!("{at}.allowPrivilegeEscalation"),
                "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
        if privileged {
            warnings.push(format!(
                "{at}.privileged: the container gets every capability and no seccomp filter: it can undo the pod's isolation and is root on the host"
            ));
        }
    }
    Ok(())
}

fn ids(user: Option<i64>, group: Option<i64>, at: &str) -> Result<(), FieldError> {
    for (k, v) in [("runAsUser", user), ("runAsGroup", group)] {
        if v.is_some_and(|v| !(0..=i64::from(u32::MAX - 1)).contains(&v)) {
            return Err(fe(format!("{at}.{k}"), "must be between 0 and 4294967294"));
        }
    }
    Ok(())
}

fn seccomp_profile(
    p: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    at: &str,
) -> Result<(), FieldError> {
    match p.map(|p| p.type_.as_str()) {
        None | Some("RuntimeDefault") | Some("Unconfined") => Ok(()),
        Some("Localhost") => Err(fe(
            format!("{at}.seccompProfile.type"),
            "Localhost profiles are not supported by lab (RuntimeDefault and Unconfined are)",
        )),
        Some(t) => Err(fe(
            format!("{at}.seccompProfile.type"),
            format!(
                "Unsupported value: {t:?}: supported values: \"RuntimeDefault\", \"Unconfined\""
            ),
        )),
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
pub fn probe_port(c: &Container, port: &IntOrString) -> Result<u16, ValueError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or(ValueError::PortRange),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| ValueError::NamedPort(name.clone()))
        }
    }
}

fn service(s: &k8s_openapi::api::core::v1::Service) -> Result<(), FieldError> {
    let Some(spec) = &s.spec else { return Ok(()) };
    if let Some(sel) = &spec.selector {
        labels_map(sel, "spec.selector")?;
    }
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    match ty {
        "ClusterIP" => {}
        "ExternalName" => {
            // The CNAME target may end in a dot (fully qualified).
            let v = spec.external_name.as_deref().unwrap_or_default();
            let cname = v.strip_suffix('.').unwrap_or(v);
            if cname.is_empty() {
                return Err(fe("spec.externalName", "Required value"));
            }
            is_dns1123_subdomain(cname).map_err(|m| {
                fe(
                    "spec.externalName",
                    format!("Invalid value: {cname:?}: {m}"),
                )
            })?;
        }
        "NodePort" | "LoadBalancer" => {
            return Err(fe(
                "spec.type",
                format!(
                    "{ty} is not supported by lab (one machine, no nodes to expose: use ClusterIP)"
                ),
            ));
        }
        t => return Err(fe("spec.type", format!("Unsupported value: {t:?}"))),
    }
    if ty == "ClusterIP"
        && spec.ports.as_ref().is_none_or(Vec::is_empty)
        && spec.cluster_ip.as_deref() != Some("None")
    {
        return Err(fe("spec.ports", "Required value"));
    }
    let multi = spec.ports.as_ref().is_some_and(|p| p.len() > 1);
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let f = format!("spec.ports[{i}]");
        if !(1..=65535).contains(&p.port) {
            return Err(fe(
                format!("{f}.port"),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = protocol(p.protocol.as_deref()).map_err(|m| fe(format!("{f}.protocol"), m))?;
        match &p.name {
            Some(n) if !n.is_empty() => {
                dns_label(n).map_err(|m| fe(format!("{f}.name"), m))?;
                if !names.insert(n.clone()) {
                    return Err(fe(format!("{f}.name"), format!("Duplicate value: {n:?}")));
                }
            }
            _ if multi => {
                return Err(fe(
                    format!("{f}.name"),
                    "Required value: a multi-port Service needs port names",
                ));
            }
            _ => {}
        }
        if !seen.insert((p.port, proto)) {
            return Err(fe(
                f.to_string(),
                format!("Duplicate value: port {} {proto}", p.port),
            ));
        }
        if let Some(t) = &p.target_port {
            match t {
                IntOrString::Int(n) if !(1..=65535).contains(n) => {
                    return Err(fe(
                        format!("{f}.targetPort"),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                IntOrString::String(n) if n.parse::<u16>().is_err() => {
                    port_name(n).map_err(|m| fe(format!("{f}.targetPort"), m))?;
                }
                _ => {}
            }
        }
        if p.node_port.is_some() {
            return Err(fe(format!("{f}.nodePort"), "field is not supported by lab"));
        }
    }
    match spec.internal_traffic_policy.as_deref().unwrap_or("Cluster") {
        "Cluster" | "Local" => {}
        a => {
            return Err(fe(
                "spec.internalTrafficPolicy",
                format!("Unsupported value: {a:?}: supported values: \"Cluster\", \"Local\""),
            ));
        }
    }
    match spec.session_affinity.as_deref().unwrap_or("None") {
        "None" | "ClientIP" => {}
        a => {
            return Err(fe(
                "spec.sessionAffinity",
                format!("Unsupported value: {a:?}: supported values: \"ClientIP\", \"None\""),
            ));
        }
    }
    if let Some(t) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        && !(1..=86400).contains(&t)
    {
        return Err(fe(
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "must be greater than 0 and less than or equal to 86400",
        ));
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && !ip.is_empty()
        && ip != "None"
        && ip.parse::<std::net::Ipv4Addr>().is_err()
    {
        return Err(fe(
            "spec.clusterIP",
            format!("{ip:?} is not a valid IPv4 address or \"None\""),
        ));
    }
    Ok(())
}

fn protocol(p: Option<&str>) -> Result<&'static str, ValueError> {
    match p.unwrap_or("TCP") {
        "TCP" => Ok("TCP"),
        "UDP" => Ok("UDP"),
        "SCTP" => Err(ValueError::Sctp),
        other => Err(ValueError::Protocol(other.to_string())),
    }
}

fn percent_or_int(v: &IntOrString) -> Result<(), ValueError> {
    match v {
        IntOrString::Int(n) if *n >= 0 => Ok(()),
        IntOrString::Int(_) => Err(ValueError::Negative),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .and_then(|n| n.parse::<u32>().ok())
            .map(|_| ())
            .ok_or_else(|| ValueError::NotPercent(s.clone())),
    }
}

fn dns_label(s: &str) -> Result<(), ValueError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValueError::DnsLabel(s.to_string()))
    }
}

fn dns1035_label(s: &str) -> Result<(), ValueError> {
    dns_label(s)?;
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(ValueError::Dns1035Label(s.to_string()));
    }
    Ok(())
}

fn dns_subdomain(s: &str) -> Result<(), ValueError> {
    if s.len() > 253 {
        return Err(ValueError::DnsSubdomainTooLong(s.to_string()));
    }
    for part in s.split('.') {
        dns_label(part).map_err(|_| ValueError::DnsSubdomain(s.to_string()))?;
    }
    Ok(())
}

fn port_name(s: &str) -> Result<(), ValueError> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(ValueError::PortName(s.to_string()))
    }
}

fn label_key(k: &str) -> Result<(), ValueError> {
    let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
    if let Some(p) = prefix {
        dns_subdomain(p)?;
    }
    label_value(name)?;
    if name.is_empty() {
        return Err(ValueError::EmptyLabelKey);
    }
    Ok(())
}

fn label_value(v: &str) -> Result<(), ValueError> {
    let ok = v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && (v.is_empty()
            || (v.as_bytes()[0].is_ascii_alphanumeric()
                && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(ValueError::LabelValue(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{ManifestError, decode, parse_documents};
    use super::*;
    use crate::model::images::BuiltinImage;

    /// The warnings of a one-document manifest, or why it is refused.
    fn check(yaml: &str) -> Result<Vec<String>, ManifestError> {
        let docs = parse_documents("t.yaml", yaml)?;
        decode(&docs[0]).map(|d| d.warnings)
    }

    /// The message a refused manifest gets (a panic if it is accepted).
    fn refused(yaml: &str) -> String {
        match check(yaml) {
            Ok(w) => panic!("accepted (warnings {w:?}):\n{yaml}"),
            Err(e) => e.to_string(),
        }
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    args: [netexec]\n";

    #[test]
    fn scheduling_fields_are_honoured_and_checked() {
        let with = |extra: &str| format!("{POD}{extra}");
        let ok = check(&with("  nodeSelector: {disk: ssd}\n  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]\n  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: [{matchExpressions: [{key: gen, operator: Gt, values: ['3']}]}]\n      preferredDuringSchedulingIgnoredDuringExecution: [{weight: 5, preference: {matchFields: [{key: metadata.name, operator: In, values: [n1]}]}}]\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: a}}}]\n  topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: a}}}]\n")).unwrap();
        assert!(ok.is_empty(), "{ok:?}");
        // What lab does not implement is still named in a warning.
        let w = check(&with("  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: [{topologyKey: zone, labelSelector: {}}]\n")).unwrap();
        assert!(
            w.iter().any(|w| w.contains("spec.affinity.podAffinity")),
            "{w:?}"
        );
        let w = check(&with("  tolerations: [{key: k, operator: Exists, effect: NoExecute, tolerationSeconds: 5}]\n")).unwrap();
        assert!(
            w.iter()
                .any(|w| w.contains("spec.tolerations[0].tolerationSeconds")),
            "{w:?}"
        );
        for (extra, field) in [
            (
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Near, values: [x]}]}]\n",
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator",
            ),
            (
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: [{matchExpressions: [{key: a, operator: Gt, values: [big]}]}]\n",
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]",
            ),
            (
                "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms: []\n",
                "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
            ),
            (
                "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution: [{weight: 0, preference: {}}]\n",
                "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 0, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule}]\n",
                "spec.topologySpreadConstraints[0].maxSkew",
            ),
            (
                "  topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: Maybe}]\n",
                "spec.topologySpreadConstraints[0].whenUnsatisfiable",
            ),
            (
                "  tolerations: [{key: k, operator: Matches}]\n",
                "spec.tolerations[0].operator",
            ),
            (
                "  tolerations: [{key: k, effect: NoWay}]\n",
                "spec.tolerations[0].effect",
            ),
            (
                "  nodeSelector: {'bad key!': x}\n",
                "spec.nodeSelector.bad key!",
            ),
        ] {
            let e = refused(&with(extra));
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    /// The shipped samples pass validation (the full-stack one needs root
    /// and Debian packages to run: tests/fullstack.rs).
    #[test]
    fn samples_validate() {
        for (name, text) in [
            (
                "lab/full-stack.yaml",
                include_str!("../../lab/full-stack.yaml"),
            ),
            (
                "lab/sample-app.yaml",
                include_str!("../../lab/sample-app.yaml"),
            ),
        ] {
            for d in parse_documents(name, text).unwrap() {
                if let Err(e) = decode(&d) {
                    panic!("{e}");
                }
            }
        }
    }

    #[test]
    fn statefulsets() {
        let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  serviceName: db\n  replicas: 3\n  selector: {matchLabels: {app: db}}\n  EXTRA\n  template:\n    metadata: {labels: {app: db}}\n    spec:\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [pause]\n        volumeMounts: [{name: data, mountPath: /data}]\n  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], VOLUMEMODE resources: {requests: {storage: 1Gi}}}\n";
        let ok = |extra: &str| check(&sts.replace("EXTRA", extra).replace("VOLUMEMODE", ""));
        let w = ok("podManagementPolicy: Parallel").unwrap();
        assert!(
            w.iter()
                .any(|w| w.contains("volumeClaimTemplates[0].spec.accessModes")),
            "{w:?}"
        );
        assert!(ok("updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}").is_ok());
        assert!(ok("updateStrategy: {type: OnDelete}").is_ok());
        assert!(ok("ordinals: {start: 5}").is_ok());
        for (extra, field) in [
            ("podManagementPolicy: Random", "spec.podManagementPolicy"),
            (
                "updateStrategy: {type: Recreate}",
                "spec.updateStrategy.type",
            ),
            (
                "updateStrategy: {type: OnDelete, rollingUpdate: {partition: 1}}",
                "spec.updateStrategy.rollingUpdate",
            ),
            (
                "updateStrategy: {rollingUpdate: {partition: -1}}",
                "spec.updateStrategy.rollingUpdate.partition",
            ),
            (
                "updateStrategy: {rollingUpdate: {maxUnavailable: 2}}",
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ),
            (
                "persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}",
                "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
            ),
            ("minReadySeconds: -1", "spec.minReadySeconds"),
        ] {
            let e = ok(extra).unwrap_err().to_string();
            assert!(e.contains(field), "{extra}: {e}");
        }
        for bad in [
            "name: db.x".to_string(),
            format!("name: {}", "d".repeat(62)),
        ] {
            let yaml = sts
                .replace("EXTRA", "")
                .replace("VOLUMEMODE", "")
                .replace("{name: db}", &format!("{{{bad}}}"));
            let e = refused(&yaml);
            assert!(
                e.contains("metadata.name") && e.contains("hostnames"),
                "{e}"
            );
        }
        let e = refused(
            &sts.replace("serviceName: db", "serviceName: Db")
                .replace("EXTRA", "")
                .replace("VOLUMEMODE", ""),
        );
        assert!(e.contains("spec.serviceName"), "{e}");
        let e = refused(
            &sts.replace("EXTRA", "")
                .replace("VOLUMEMODE", "volumeMode: Block,"),
        );
        assert!(e.contains("volumeMode") && e.contains("directory"), "{e}");
        // A mount must name a volume or a claim template.
        let e = refused(
            &sts.replace("EXTRA", "")
                .replace("VOLUMEMODE", "")
                .replace("name: data, mountPath", "name: other, mountPath"),
        );
        assert!(e.contains("volumeMounts"), "{e}");
    }

    #[test]
    fn builtin_images() {
        assert!(is_builtin_image(
            "registry.k8s.io/e2e-test-images/agnhost:2.47"
        ));
        assert!(is_builtin_image("registry.k8s.io/e2e-test-images/agnhost"));
        assert!(!is_builtin_image("nginx:1.25"));
        assert_eq!(builtin_image("lab.dev/dns:v1"), Some(BuiltinImage::Dns));
        assert_eq!(builtin_image("lab.dev/dns"), Some(BuiltinImage::Dns));
        assert_eq!(builtin_image("lab.dev/dnsx"), None);
        assert_eq!(check(POD), Ok(vec![]));
    }

    #[test]
    fn unknown_image_needs_command() {
        let e = refused(&POD.replace("registry.k8s.io/e2e-test-images/agnhost:2.47", "nginx"));
        assert!(
            e.contains("spec.containers[0].command") && e.contains("nginx"),
            "{e}"
        );
    }

    #[test]
    fn warned_and_rejected_fields() {
        let w = check(&format!("{POD}    imagePullPolicy: Always\n    resources: {{limits: {{cpu: 1}}}}\n  nodeSelector: {{a: b}}\n  priorityClassName: high\n")).unwrap();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("imagePullPolicy"), "{w:?}");
        let e = refused(&format!(
            "{POD}    lifecycle: {{preStop: {{exec: {{command: [x]}}}}}}\n"
        ));
        assert!(
            e.contains("spec.containers[0].lifecycle") && e.contains("not supported"),
            "{e}"
        );
        let e = refused(&format!("{POD}  hostNetwork: true\n"));
        assert!(e.contains("spec.hostNetwork"), "{e}");
        assert!(e.contains("its own namespaces"), "{e}");
        let e = refused(&POD.replace(
            "args: [netexec]",
            "args: [netexec]\n    ports: [{containerPort: 80, hostPort: 8080}]",
        ));
        assert!(e.contains("hostPort") && e.contains("no node ports"), "{e}");
        let e = refused(&format!(
            "{POD}    env:\n    - name: A\n      valueFrom: {{resourceFieldRef: {{resource: limits.cpu}}}}\n"
        ));
        assert!(
            e.contains("spec.containers[0].env[0].valueFrom.resourceFieldRef"),
            "{e}"
        );
        assert!(
            check(&format!(
                "{POD}    env:\n    - name: A\n      valueFrom: {{secretKeyRef: {{name: s, key: k, optional: true}}}}\n    envFrom: [{{secretRef: {{name: s}}, prefix: S_}}]\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn value_checks() {
        let e = refused(&POD.replace("name: p}", "name: P_bad}"));
        assert!(e.contains("metadata.name"), "{e}");
        let e = refused(&format!("{POD}    ports: [{{containerPort: 70000}}]\n"));
        assert!(
            e.contains("spec.containers[0].ports[0].containerPort"),
            "{e}"
        );
        let e = refused(&format!(
            "{POD}    ports: [{{containerPort: 80, protocol: SCTP}}]\n"
        ));
        assert!(e.contains("SCTP"), "{e}");
        let e = refused(&format!("{POD}  restartPolicy: Sometimes\n"));
        assert!(e.contains("spec.restartPolicy"), "{e}");
        let e = refused(&format!(
            "{POD}    readinessProbe: {{httpGet: {{port: http}}}}\n"
        ));
        assert!(e.contains("readinessProbe.httpGet.port"), "{e}");
        let e = refused(&format!(
            "{POD}    volumeMounts: [{{name: v, mountPath: /x}}]\n"
        ));
        assert!(e.contains("volumeMounts[0].name"), "{e}");
        let e = refused(&format!(
            "{POD}  volumes: [{{name: v, downwardAPI: {{}}}}]\n"
        ));
        assert!(e.contains("spec.volumes[0].downwardAPI"), "{e}");
    }

    /// Secret volumes as the API server validates them: (volume, error
    /// field or None for valid).
    #[test]
    fn secret_volumes() {
        let cases: &[(&str, Option<&str>)] = &[
            ("{secretName: s}", None),
            ("{secretName: s, defaultMode: 0400, optional: true}", None),
            (
                "{secretName: s, items: [{key: a.b, path: dir/a, mode: 0600}]}",
                None,
            ),
            (
                "{}",
                Some("spec.volumes[0].secret.secretName: Required value"),
            ),
            (
                "{secretName: Bad_Name}",
                Some("spec.volumes[0].secret.secretName"),
            ),
            (
                "{secretName: s, defaultMode: 01000}",
                Some("spec.volumes[0].secret.defaultMode: Invalid value: 512"),
            ),
            ("{secretName: s, defaultMode: -1}", Some("defaultMode")),
            (
                "{secretName: s, items: [{key: a, path: /etc/x}]}",
                Some("items[0].path: Invalid value: \"/etc/x\": must be a relative path"),
            ),
            (
                "{secretName: s, items: [{key: a, path: x/../../y}]}",
                Some("items[0].path"),
            ),
            (
                "{secretName: s, items: [{key: a, path: ..data}]}",
                Some("items[0].path"),
            ),
            (
                "{secretName: s, items: [{key: 'a b', path: x}]}",
                Some("items[0].key"),
            ),
            (
                "{secretName: s, items: [{key: a, path: x, mode: 0777}]}",
                None,
            ),
            (
                "{secretName: s, items: [{key: a, path: x, mode: 01777}]}",
                Some("items[0].mode"),
            ),
        ];
        for (vol, want) in cases {
            let r = check(&format!("{POD}  volumes: [{{name: v, secret: {vol}}}]\n"));
            match want {
                None => assert!(r.is_ok(), "{vol}: {r:?}"),
                Some(f) => {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(f), "{vol}: {e}");
                }
            }
        }
    }

    fn secret_yaml(body: &str) -> String {
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{body}")
    }

    /// Secrets as the API server validates them, after merging stringData:
    /// (body, error or None).
    #[test]
    fn secrets() {
        let cases: &[(&str, Option<&str>)] = &[
            ("data: {a: YWJj}\n", None),
            ("stringData: {a: abc}\n", None),
            ("type: Opaque\n", None),
            ("data: {a: 'not base64!'}\n", Some("data")),
            (
                "data: {'a b': YWJj}\n",
                Some("data[a b]: Invalid value: \"a b\": a valid config key"),
            ),
            ("stringData: {'..x': v}\n", Some("data[..x]")),
            ("stringData: {'.': v}\n", Some("data[.]")),
            (
                "type: kubernetes.io/basic-auth\nstringData: {username: admin}\n",
                None,
            ),
            (
                "type: kubernetes.io/basic-auth\nstringData: {password: pw}\n",
                None,
            ),
            (
                "type: kubernetes.io/basic-auth\nstringData: {user: admin}\n",
                Some("data[username]: Required value"),
            ),
            (
                "type: kubernetes.io/tls\nstringData: {tls.crt: c, tls.key: k}\n",
                None,
            ),
            (
                "type: kubernetes.io/tls\nstringData: {tls.crt: c}\n",
                Some("data[tls.key]: Required value"),
            ),
            (
                "type: kubernetes.io/tls\ndata: {tls.key: aw==}\n",
                Some("data[tls.crt]: Required value"),
            ),
            (
                "type: kubernetes.io/service-account-token\n",
                Some("type: Unsupported value"),
            ),
            (
                "type: kubernetes.io/dockerconfigjson\n",
                Some("type: Unsupported value"),
            ),
            ("type: example.com/custom\nstringData: {a: b}\n", None),
            ("immutable: true\nstringData: {a: b}\n", None),
            ("binaryData: {a: YWJj}\n", Some("binaryData")),
        ];
        for (body, want) in cases {
            let r = check(&secret_yaml(body));
            match want {
                None => assert!(r.is_ok(), "{body}: {r:?}"),
                Some(f) => {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(f), "{body}: {e}");
                }
            }
        }
    }

    #[test]
    fn secret_string_data_merges_into_data_and_type_defaults() {
        let docs = parse_documents(
            "t.yaml",
            &secret_yaml("data: {a: b2xk, k: dg==}\nstringData: {a: new, b: plain}\n"),
        )
        .unwrap();
        let d = decode(&docs[0]).unwrap();
        let Object::Secret(s) = d.object else {
            panic!()
        };
        assert!(s.string_data.is_none());
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        let data = s.data.unwrap();
        let text = |k: &str| String::from_utf8(data[k].0.clone()).unwrap();
        assert_eq!(
            (text("a"), text("b"), text("k")),
            ("new".into(), "plain".into(), "v".into())
        );
    }

    #[test]
    fn secret_size_limit() {
        // 1 MiB of values is the limit, as for ConfigMaps.
        let big = |n: usize| secret_yaml(&format!("stringData: {{a: '{}'}}\n", "x".repeat(n)));
        assert!(check(&big(MAX_SECRET_BYTES)).is_ok());
        let e = refused(&big(MAX_SECRET_BYTES + 1));
        assert!(e.contains("data: Too long") && e.contains("1048576"), "{e}");
    }

    const JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  EXTRA\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - {name: c, image: curl, command: [curl, web]}\n";

    /// Jobs as the API server validates them: (spec addition, error or None).
    #[test]
    fn jobs() {
        let cases: &[(&str, Option<&str>)] = &[
            ("completions: 3", None),
            ("parallelism: 2", None),
            ("backoffLimit: 0", None),
            ("activeDeadlineSeconds: 60", None),
            ("ttlSecondsAfterFinished: 0", None),
            ("completionMode: NonIndexed", None),
            ("suspend: false", None),
            (
                "completions: -1",
                Some("spec.completions: must be greater than or equal to 0"),
            ),
            ("parallelism: -1", Some("spec.parallelism")),
            ("backoffLimit: -1", Some("spec.backoffLimit")),
            (
                "ttlSecondsAfterFinished: -5",
                Some("spec.ttlSecondsAfterFinished"),
            ),
            (
                "activeDeadlineSeconds: 0",
                Some("spec.activeDeadlineSeconds: must be greater than 0"),
            ),
            (
                "completionMode: Indexed",
                Some("spec.completionMode: Unsupported value"),
            ),
            ("suspend: true", Some("spec.suspend")),
            (
                "podFailurePolicy: {rules: []}",
                Some("spec.podFailurePolicy: field is not supported"),
            ),
            ("backoffLimitPerIndex: 1", Some("spec.backoffLimitPerIndex")),
        ];
        for (extra, want) in cases {
            let r = check(&JOB.replace("EXTRA", extra));
            match want {
                None => assert!(r.is_ok(), "{extra}: {r:?}"),
                Some(f) => {
                    let e = r.unwrap_err().to_string();
                    assert!(e.contains(f), "{extra}: {e}");
                }
            }
        }
        let e = refused(
            &JOB.replace("EXTRA", "completions: 1")
                .replace("restartPolicy: Never", "restartPolicy: Always"),
        );
        assert!(e.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""), "{e}");
        let e = refused(
            &JOB.replace("EXTRA", "completions: 1")
                .replace("      restartPolicy: Never\n", ""),
        );
        assert!(
            e.contains("spec.template.spec.restartPolicy: Required value"),
            "{e}"
        );
        let e = refused(
            &JOB.replace("EXTRA", "completions: 1")
                .replace("image: curl,", "image: curl, imagePullPolicyy: x,"),
        );
        assert!(
            e.contains("spec.template.spec.containers[0].imagePullPolicyy"),
            "{e}"
        );
    }

    #[test]
    fn services() {
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: a}\n  ports:\n";
        assert!(check(&format!("{svc}  - {{port: 80, targetPort: 8080}}\n")).is_ok());
        let e = refused(&format!("{svc}  - {{port: 80}}\n  - {{port: 81}}\n"));
        assert!(e.contains("spec.ports[0].name"), "{e}");
        let e = refused(&format!("{svc}  - {{port: 80, protocol: SCTP}}\n"));
        assert!(
            e.contains("spec.ports[0].protocol") && e.contains("SCTP"),
            "{e}"
        );
        let e = refused(&format!("{svc}  - {{port: 80}}\n  type: NodePort\n"));
        assert!(e.contains("spec.type"), "{e}");
        let e = refused(&format!(
            "{svc}  - {{port: 80}}\n  clusterIP: 10.96.0.300\n"
        ));
        assert!(e.contains("spec.clusterIP"), "{e}");
        let e = refused(&format!(
            "{svc}  - {{port: 80}}\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {{clientIP: {{timeoutSeconds: 90000}}}}\n"
        ));
        assert!(e.contains("timeoutSeconds"), "{e}");
    }

    #[test]
    fn external_names_and_dns_configs_as_the_api_server() {
        let ext = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: ExternalName\n  externalName: ";
        // A trailing dot is allowed (fully qualified).
        for ok in ["example.com", "example.com.", "db.prod.svc.cluster.local"] {
            assert!(check(&format!("{ext}{ok}\n")).is_ok(), "{ok}");
        }
        for (bad, want) in [
            (
                "Example.com",
                "spec.externalName: Invalid value: \"Example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            ),
            (
                "a..b",
                "spec.externalName: Invalid value: \"a..b\": a lowercase RFC 1123 subdomain",
            ),
            ("'-a.com'", "spec.externalName: Invalid value: \"-a.com\""),
            ("'.'", "spec.externalName: Required value"),
        ] {
            let e = refused(&format!("{ext}{bad}\n"));
            assert!(e.contains(want), "{bad}: {e}");
        }
        let pod = |extra: &str| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n{extra}  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n"
            )
        };
        assert!(
            check(&pod(
                "  dnsConfig: {nameservers: [1.1.1.1, 1.1.1.2, 1.1.1.3], searches: [a.b, c.d.]}\n"
            ))
            .is_ok()
        );
        let many: Vec<String> = (0..33).map(|i| format!("s{i}.x")).collect();
        let long: Vec<String> = (0..9).map(|i| format!("{i}{}", "a".repeat(250))).collect();
        for (extra, want) in [
            (
                "  dnsConfig: {nameservers: [1.1.1.1, 1.1.1.2, 1.1.1.3, 1.1.1.4]}\n".to_string(),
                "spec.dnsConfig.nameservers: Invalid value: []string{\"1.1.1.1\", \"1.1.1.2\", \"1.1.1.3\", \"1.1.1.4\"}: must not have more than 3 nameservers",
            ),
            (
                "  dnsConfig: {nameservers: [not-an-ip]}\n".to_string(),
                "spec.dnsConfig.nameservers[0]: Invalid value: \"not-an-ip\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ),
            (
                format!("  dnsConfig: {{searches: [{}]}}\n", many.join(", ")),
                "\"s32.x\"}: must not have more than 32 search paths",
            ),
            (
                format!("  dnsConfig: {{searches: [{}]}}\n", long.join(", ")),
                "must not have more than 2048 characters (including spaces) in the search list",
            ),
            (
                "  dnsConfig: {searches: [UPPER.case]}\n".to_string(),
                "spec.dnsConfig.searches[0]: Invalid value: \"UPPER.case\": a lowercase RFC 1123 subdomain",
            ),
            (
                "  dnsConfig: {options: [{value: '1'}]}\n".to_string(),
                "spec.dnsConfig.options[0]: Required value: must not be empty",
            ),
            (
                "  dnsPolicy: None\n".to_string(),
                "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            ),
            (
                "  dnsPolicy: None\n  dnsConfig: {searches: [a.b]}\n".to_string(),
                "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            ),
        ] {
            let e = refused(&pod(&extra));
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn deployments() {
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n";
        assert_eq!(check(d), Ok(vec![]));
        let e = refused(&d.replace("labels: {app: x}", "labels: {app: y}"));
        assert!(e.contains("spec.template.metadata.labels"), "{e}");
        let e = refused(&d.replace("args: [pause]}", "args: [pause], imagePullPolicyy: x}"));
        assert!(
            e.contains("spec.template.spec.containers[0].imagePullPolicyy"),
            "{e}"
        );
    }

    #[test]
    fn security_contexts() {
        let sc = |body: &str| check(&format!("{POD}    securityContext: {body}\n"));
        assert_eq!(
            sc("{capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}"),
            Ok(vec![])
        );
        assert_eq!(
            sc(
                "{allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 1000}"
            ),
            Ok(vec![])
        );
        assert_eq!(sc("{seccompProfile: {type: RuntimeDefault}}"), Ok(vec![]));
        let e = sc("{capabilities: {add: [FLY]}}").unwrap_err().to_string();
        assert!(
            e.contains("spec.containers[0].securityContext.capabilities.add[0]"),
            "{e}"
        );
        let e = sc("{capabilities: {drop: [KILL, NOPE]}}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("capabilities.drop[1]"), "{e}");
        let e = sc("{privileged: true, allowPrivilegeEscalation: false}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("securityContext.allowPrivilegeEscalation"),
            "{e}"
        );
        let e = sc("{capabilities: {add: [CAP_SYS_ADMIN]}, allowPrivilegeEscalation: false}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allowPrivilegeEscalation"), "{e}");
        let e = sc("{seccompProfile: {type: Localhost, localhostProfile: x.json}}")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("seccompProfile.type") && e.contains("Localhost"),
            "{e}"
        );
        let w = sc("{privileged: true}").unwrap();
        assert!(
            w.iter()
                .any(|w| w.contains("privileged") && w.contains("root on the host")),
            "{w:?}"
        );
        // Still warned: fields that mean nothing here.
        let w = sc("{seLinuxOptions: {level: s0}}").unwrap();
        assert!(w[0].contains("seLinuxOptions"), "{w:?}");
        let e = refused(&POD.replace(
            "spec:\n",
            "spec:\n  securityContext: {seccompProfile: {type: Bogus}}\n",
        ));
        assert!(
            e.contains("spec.securityContext.seccompProfile.type"),
            "{e}"
        );
    }

    #[test]
    fn labels_and_selectors() {
        let svc =
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n";
        let e = refused(&format!("{svc}  selector: {{app: 'bad value!'}}\n"));
        assert!(
            e.contains("spec.selector.app") && e.contains("label value"),
            "{e}"
        );
        let e = refused(&format!("{svc}  selector: {{'a b': x}}\n"));
        assert!(e.contains("spec.selector.a b"), "{e}");
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: SEL\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n";
        let e = refused(&d.replace("SEL", "{matchLabels: {app: 'bad value!'}}"));
        assert!(e.contains("spec.selector.matchLabels.app"), "{e}");
        let e = refused(&d.replace("SEL", "{matchExpressions: [{key: app, operator: In}]}"));
        assert!(
            e.contains("spec.selector.matchExpressions[0].values"),
            "{e}"
        );
        let e = refused(&d.replace(
            "SEL",
            "{matchExpressions: [{key: app, operator: In, values: ['x y']}]}",
        ));
        assert!(e.contains("matchExpressions[0].values[0]"), "{e}");
        let e = refused(&d.replace(
            "SEL",
            "{matchExpressions: [{key: app, operator: Exists, values: [x]}]}",
        ));
        assert!(e.contains("matchExpressions[0].values"), "{e}");
        assert!(
            check(&d.replace(
                "SEL",
                "{matchExpressions: [{key: app, operator: In, values: [x]}]}"
            ))
            .is_ok()
        );
        let e = refused(
            &d.replace("SEL", "{matchLabels: {app: x}}")
                .replace("labels: {app: x}", "labels: {app: x, t: 'bad value!'}"),
        );
        assert!(e.contains("spec.template.metadata.labels.t"), "{e}");
    }

    #[test]
    fn counts_are_not_negative() {
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  EXTRA\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n";
        for f in [
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "minReadySeconds",
            "replicas",
        ] {
            let e = refused(&d.replace("EXTRA", &format!("{f}: -1")));
            assert!(
                e.contains(&format!("spec.{f}")) && e.contains(">= 0")
                    || e.contains("greater than or equal to 0"),
                "{f}: {e}"
            );
        }
        assert!(check(&d.replace("EXTRA", "revisionHistoryLimit: 0")).is_ok());
        let e = refused(&d.replace(
            "EXTRA",
            "minReadySeconds: 30\n  progressDeadlineSeconds: 30",
        ));
        assert!(e.contains("spec.progressDeadlineSeconds"), "{e}");
        let rs = d
            .replace("Deployment", "ReplicaSet")
            .replace("EXTRA", "minReadySeconds: -2");
        assert!(refused(&rs).contains("spec.minReadySeconds"));
    }

    #[test]
    fn config_map_size() {
        let cm = |n: usize| {
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: '{}'}}\n",
                "x".repeat(n)
            )
        };
        assert!(check(&cm(MAX_CONFIGMAP_BYTES - 1)).is_ok());
        let e = refused(&cm(MAX_CONFIGMAP_BYTES));
        assert!(e.contains("data: Too long") && e.contains("1048576"), "{e}");
    }

    #[test]
    fn endpoint_addresses() {
        let ep = |ip: &str| {
            check(&format!(
                "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: e}}\nsubsets: [{{addresses: [{{ip: '{ip}'}}], ports: [{{port: 80}}]}}]\n"
            ))
        };
        assert!(ep("10.244.0.5").is_ok());
        for bad in [
            "999.1.1.1",
            "not-an-ip",
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "224.0.0.1",
            "fd00::1",
        ] {
            let e = ep(bad).unwrap_err().to_string();
            assert!(e.contains("subsets[0].addresses[0].ip"), "{bad}: {e}");
        }
        let e = refused(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets: [{notReadyAddresses: [{ip: 1.2.3}], ports: [{port: 0}]}]\n",
        );
        assert!(e.contains("subsets[0].notReadyAddresses[0].ip"), "{e}");
        let slice = |body: &str| {
            check(&format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s}}\n{body}"
            ))
        };
        assert!(
            slice(
                "addressType: IPv4\nendpoints: [{addresses: [10.244.0.5]}]\nports: [{port: 80}]\n"
            )
            .is_ok()
        );
        let e = slice("addressType: IPv4\nendpoints: [{addresses: [999.1.1.1]}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("endpoints[0].addresses[0]"), "{e}");
        let e = slice("addressType: FQDN\nendpoints: [{addresses: [a.b]}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("addressType"), "{e}");
        let e = slice(
            "addressType: IPv4\nendpoints: [{addresses: [10.244.0.5]}]\nports: [{port: 0}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ports[0].port"), "{e}");
    }
}
