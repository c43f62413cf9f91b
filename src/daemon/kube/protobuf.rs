//! Request bodies in Kubernetes' protobuf encoding. kubectl's typed
//! `create` generators send protobuf (`kubectl create deployment|service|
//! job|secret|configmap|namespace`), and so do client-go programs using the
//! protobuf content type. Bodies are decoded into the same JSON every other
//! write is, so strict validation and the daemon's apply stay the only path.
//! Answers are JSON (kubectl and client-go always accept it as well).
//!
//! The envelope is the 4-byte magic `k8s\0` and a `runtime.Unknown`
//! (1: typeMeta {1: apiVersion, 2: kind}, 2: raw object, 3: contentEncoding,
//! 4: contentType). The objects are decoded by field tables, one per message
//! (field number, JSON name, type), for every kind lab serves; the numbers
//! are those of Kubernetes' `generated.proto` files (core/v1, apps/v1,
//! batch/v1, meta/v1). Zero values of value fields are dropped and those of
//! pointer fields kept, as Go's `omitempty` JSON does, so a body means the
//! same in protobuf as in JSON. A field outside the tables (fields lab
//! rejects or that no generator sends, such as `affinity`) is a 422 naming
//! it.
//!
//! Why tables and not generated types (the `k8s-pb` crate): k8s-pb is all of
//! the Kubernetes API as prost structs (39,000 lines, every group, no
//! features to select some) and has no JSON form, so it would add prost and
//! a long compile to the first build and still need a conversion per message
//! into the JSON lab validates. The tables are the conversion.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Bytes that are not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint too long")]
    VarintTooLong,
    #[error("length too large")]
    LengthTooLarge,
    #[error("truncated field")]
    TruncatedField,
    #[error("unsupported wire type {0}")]
    WireType(u64),
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, WireError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or(WireError::TruncatedVarint)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError::VarintTooLong)
}

/// The fields of one message, in order.
fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, WireError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, ty) = (key >> 3, key & 7);
        let w = match ty {
            0 => Wire::Varint(varint(b, &mut i)?),
            2 => {
                let len =
                    usize::try_from(varint(b, &mut i)?).map_err(|_| WireError::LengthTooLarge)?;
                let end = i.checked_add(len).filter(|e| *e <= b.len());
                let end = end.ok_or(WireError::TruncatedField)?;
                let v = &b[i..end];
                i = end;
                Wire::Bytes(v)
            }
            1 => {
                i += 8;
                Wire::Fixed
            }
            5 => {
                i += 4;
                Wire::Fixed
            }
            t => return Err(WireError::WireType(t)),
        };
        if i > b.len() {
            return Err(WireError::TruncatedField);
        }
        out.push((num, w));
    }
    Ok(out)
}

/// How one protobuf field becomes JSON.
#[derive(Clone, Copy)]
enum T {
    Str,
    I32,
    I64,
    Bool,
    /// `intstr.IntOrString` {1: type (0 int, 1 string), 2: intVal, 3: strVal}.
    IntOrStr,
    /// `resource.Quantity` {1: string}.
    Qty,
    /// A pointer to a message: kept when empty (`emptyDir: {}` means something).
    Msg(&'static [F]),
    /// A message held by value: dropped when empty, as Go's JSON omits it.
    Struct(&'static [F]),
    /// An embedded message whose fields appear in the parent (Go's inline
    /// structs: `LocalObjectReference`, `ProbeHandler`, `VolumeSource`).
    Inline(&'static [F]),
    MapStr,
    /// `map<string, bytes>`: base64 in JSON, as `[]byte` is.
    MapBytes,
    MapQty,
    /// Server-owned (status, uid, timestamps, managedFields): dropped, as
    /// lab drops them from JSON bodies.
    Ignore,
    /// A field of the Kubernetes API lab does not read in protobuf:
    /// refused naming it.
    No,
}

/// One field: its number, its JSON name, its type, whether it repeats, and
/// whether a zero value is kept (Go pointers: `replicas: 0`,
/// `optional: false`); zero values of the rest are dropped, as Go's
/// `omitempty` drops them from JSON.
#[derive(Clone, Copy)]
struct F {
    tag: u64,
    name: &'static str,
    ty: T,
    list: bool,
    keep: bool,
}

const fn f(tag: u64, name: &'static str, ty: T) -> F {
    F {
        tag,
        name,
        ty,
        list: false,
        keep: false,
    }
}

/// A Go pointer field: a zero value is still a value.
const fn p(tag: u64, name: &'static str, ty: T) -> F {
    F {
        keep: true,
        ..f(tag, name, ty)
    }
}

const fn l(tag: u64, name: &'static str, ty: T) -> F {
    F {
        list: true,
        ..f(tag, name, ty)
    }
}

use T::*;

// k8s.io/apimachinery/pkg/apis/meta/v1
const OWNER_REF: &[F] = &[
    f(5, "apiVersion", Str),
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];
const META: &[F] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(4, "selfLink", Ignore),
    f(5, "uid", Ignore),
    f(6, "resourceVersion", Str),
    f(7, "generation", Ignore),
    f(8, "creationTimestamp", Ignore),
    f(9, "deletionTimestamp", Ignore),
    f(10, "deletionGracePeriodSeconds", Ignore),
    f(11, "labels", MapStr),
    f(12, "annotations", MapStr),
    l(13, "ownerReferences", Msg(OWNER_REF)),
    l(14, "finalizers", Str),
    f(17, "managedFields", Ignore),
];
const SELECTOR_REQ: &[F] = &[f(1, "key", Str), f(2, "operator", Str), l(3, "values", Str)];
const SELECTOR: &[F] = &[
    f(1, "matchLabels", MapStr),
    l(2, "matchExpressions", Msg(SELECTOR_REQ)),
];

// k8s.io/api/core/v1: the pod template.
const LOCAL_REF: &[F] = &[f(1, "name", Str)];
const KEY_SELECTOR: &[F] = &[
    f(1, "", Inline(LOCAL_REF)),
    f(2, "key", Str),
    p(3, "optional", Bool),
];
const FIELD_SELECTOR: &[F] = &[f(1, "apiVersion", Str), f(2, "fieldPath", Str)];
const RESOURCE_SELECTOR: &[F] = &[
    f(1, "containerName", Str),
    f(2, "resource", Str),
    p(3, "divisor", Qty),
];
const ENV_SOURCE: &[F] = &[
    p(1, "fieldRef", Msg(FIELD_SELECTOR)),
    p(2, "resourceFieldRef", Msg(RESOURCE_SELECTOR)),
    p(3, "configMapKeyRef", Msg(KEY_SELECTOR)),
    p(4, "secretKeyRef", Msg(KEY_SELECTOR)),
    f(5, "fileKeyRef", No),
];
const ENV: &[F] = &[
    f(1, "name", Str),
    f(2, "value", Str),
    p(3, "valueFrom", Msg(ENV_SOURCE)),
];
const ENV_FROM_REF: &[F] = &[f(1, "", Inline(LOCAL_REF)), p(2, "optional", Bool)];
const ENV_FROM: &[F] = &[
    f(1, "prefix", Str),
    p(2, "configMapRef", Msg(ENV_FROM_REF)),
    p(3, "secretRef", Msg(ENV_FROM_REF)),
];
const CONTAINER_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "hostPort", I32),
    f(3, "containerPort", I32),
    f(4, "protocol", Str),
    f(5, "hostIP", Str),
];
const RESOURCES: &[F] = &[
    f(1, "limits", MapQty),
    f(2, "requests", MapQty),
    f(3, "claims", No),
];
const VOLUME_MOUNT: &[F] = &[
    f(1, "name", Str),
    f(2, "readOnly", Bool),
    f(3, "mountPath", Str),
    f(4, "subPath", Str),
    f(5, "mountPropagation", Str),
    f(6, "subPathExpr", Str),
    f(7, "recursiveReadOnly", Str),
];
const EXEC: &[F] = &[l(1, "command", Str)];
const HTTP_HEADER: &[F] = &[f(1, "name", Str), f(2, "value", Str)];
const HTTP_GET: &[F] = &[
    f(1, "path", Str),
    f(2, "port", IntOrStr),
    f(3, "host", Str),
    f(4, "scheme", Str),
    l(5, "httpHeaders", Msg(HTTP_HEADER)),
];
const TCP_SOCKET: &[F] = &[f(1, "port", IntOrStr), f(2, "host", Str)];
const GRPC: &[F] = &[f(1, "port", I32), p(2, "service", Str)];
const PROBE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC)),
    p(2, "httpGet", Msg(HTTP_GET)),
    p(3, "tcpSocket", Msg(TCP_SOCKET)),
    p(4, "grpc", Msg(GRPC)),
];
const PROBE: &[F] = &[
    f(1, "", Inline(PROBE_HANDLER)),
    f(2, "initialDelaySeconds", I32),
    f(3, "timeoutSeconds", I32),
    f(4, "periodSeconds", I32),
    f(5, "successThreshold", I32),
    f(6, "failureThreshold", I32),
    p(7, "terminationGracePeriodSeconds", I64),
];
const SLEEP: &[F] = &[f(1, "seconds", I64)];
const LIFECYCLE_HANDLER: &[F] = &[
    p(1, "exec", Msg(EXEC)),
    p(2, "httpGet", Msg(HTTP_GET)),
    p(3, "tcpSocket", Msg(TCP_SOCKET)),
    p(4, "sleep", Msg(SLEEP)),
];
const LIFECYCLE: &[F] = &[
    p(1, "postStart", Msg(LIFECYCLE_HANDLER)),
    p(2, "preStop", Msg(LIFECYCLE_HANDLER)),
    p(3, "stopSignal", Str),
];
const CAPABILITIES: &[F] = &[l(1, "add", Str), l(2, "drop", Str)];
const SECCOMP: &[F] = &[f(1, "type", Str), p(2, "localhostProfile", Str)];
const SECURITY_CONTEXT: &[F] = &[
    p(1, "capabilities", Msg(CAPABILITIES)),
    p(2, "privileged", Bool),
    f(3, "seLinuxOptions", No),
    p(4, "runAsUser", I64),
    p(5, "runAsNonRoot", Bool),
    p(6, "readOnlyRootFilesystem", Bool),
    p(7, "allowPrivilegeEscalation", Bool),
    p(8, "runAsGroup", I64),
    p(9, "procMount", Str),
    f(10, "windowsOptions", No),
    p(11, "seccompProfile", Msg(SECCOMP)),
    f(12, "appArmorProfile", No),
];
const RESIZE_POLICY: &[F] = &[f(1, "resourceName", Str), f(2, "restartPolicy", Str)];
const CONTAINER: &[F] = &[
    f(1, "name", Str),
    f(2, "image", Str),
    l(3, "command", Str),
    l(4, "args", Str),
    f(5, "workingDir", Str),
    l(6, "ports", Msg(CONTAINER_PORT)),
    l(7, "env", Msg(ENV)),
    f(8, "resources", Struct(RESOURCES)),
    l(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    p(10, "livenessProbe", Msg(PROBE)),
    p(11, "readinessProbe", Msg(PROBE)),
    p(12, "lifecycle", Msg(LIFECYCLE)),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    p(15, "securityContext", Msg(SECURITY_CONTEXT)),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    l(19, "envFrom", Msg(ENV_FROM)),
    f(20, "terminationMessagePolicy", Str),
    f(21, "volumeDevices", No),
    p(22, "startupProbe", Msg(PROBE)),
    l(23, "resizePolicy", Msg(RESIZE_POLICY)),
    p(24, "restartPolicy", Str),
    f(25, "restartPolicyRules", No),
];
const KEY_TO_PATH: &[F] = &[f(1, "key", Str), f(2, "path", Str), p(3, "mode", I32)];
const HOST_PATH: &[F] = &[f(1, "path", Str), p(2, "type", Str)];
const EMPTY_DIR: &[F] = &[f(1, "medium", Str), p(2, "sizeLimit", Qty)];
const SECRET_VOLUME: &[F] = &[
    f(1, "secretName", Str),
    l(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];
const CONFIGMAP_VOLUME: &[F] = &[
    f(1, "", Inline(LOCAL_REF)),
    l(2, "items", Msg(KEY_TO_PATH)),
    p(3, "defaultMode", I32),
    p(4, "optional", Bool),
];
const PVC_VOLUME: &[F] = &[f(1, "claimName", Str), f(2, "readOnly", Bool)];
const VOLUME_SOURCE: &[F] = &[
    p(1, "hostPath", Msg(HOST_PATH)),
    p(2, "emptyDir", Msg(EMPTY_DIR)),
    f(3, "gcePersistentDisk", No),
    f(4, "awsElasticBlockStore", No),
    f(5, "gitRepo", No),
    p(6, "secret", Msg(SECRET_VOLUME)),
    f(7, "nfs", No),
    f(8, "iscsi", No),
    f(9, "glusterfs", No),
    p(10, "persistentVolumeClaim", Msg(PVC_VOLUME)),
    f(11, "rbd", No),
    f(12, "flexVolume", No),
    f(13, "cinder", No),
    f(14, "cephfs", No),
    f(15, "flocker", No),
    f(16, "downwardAPI", No),
    f(17, "fc", No),
    f(18, "azureFile", No),
    p(19, "configMap", Msg(CONFIGMAP_VOLUME)),
    f(20, "vsphereVolume", No),
    f(21, "quobyte", No),
    f(22, "azureDisk", No),
    f(23, "photonPersistentDisk", No),
    f(24, "portworxVolume", No),
    f(25, "scaleIO", No),
    f(26, "projected", No),
    f(27, "storageos", No),
    f(28, "csi", No),
    f(29, "ephemeral", No),
    f(30, "image", No),
];
const VOLUME: &[F] = &[f(1, "name", Str), f(2, "", Inline(VOLUME_SOURCE))];
const POD_SECURITY_CONTEXT: &[F] = &[
    f(1, "seLinuxOptions", No),
    p(2, "runAsUser", I64),
    p(3, "runAsNonRoot", Bool),
    l(4, "supplementalGroups", I64),
    p(5, "fsGroup", I64),
    p(6, "runAsGroup", I64),
    f(7, "sysctls", No),
    f(8, "windowsOptions", No),
    p(9, "fsGroupChangePolicy", Str),
    p(10, "seccompProfile", Msg(SECCOMP)),
    f(11, "appArmorProfile", No),
    p(12, "supplementalGroupsPolicy", Str),
    p(13, "seLinuxChangePolicy", Str),
];
const TOLERATION: &[F] = &[
    f(1, "key", Str),
    f(2, "operator", Str),
    f(3, "value", Str),
    f(4, "effect", Str),
    p(5, "tolerationSeconds", I64),
];
const HOST_ALIAS: &[F] = &[f(1, "ip", Str), l(2, "hostnames", Str)];
const DNS_OPTION: &[F] = &[f(1, "name", Str), p(2, "value", Str)];
const DNS_CONFIG: &[F] = &[
    l(1, "nameservers", Str),
    l(2, "searches", Str),
    l(3, "options", Msg(DNS_OPTION)),
];
const POD_SPEC: &[F] = &[
    l(1, "volumes", Msg(VOLUME)),
    l(2, "containers", Msg(CONTAINER)),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", I64),
    p(5, "activeDeadlineSeconds", I64),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", MapStr),
    f(8, "serviceAccountName", Str),
    f(9, "serviceAccount", Str),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    f(12, "hostPID", Bool),
    f(13, "hostIPC", Bool),
    p(14, "securityContext", Msg(POD_SECURITY_CONTEXT)),
    l(15, "imagePullSecrets", Msg(LOCAL_REF)),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(18, "affinity", No),
    f(19, "schedulerName", Str),
    l(20, "initContainers", Msg(CONTAINER)),
    p(21, "automountServiceAccountToken", Bool),
    l(22, "tolerations", Msg(TOLERATION)),
    l(23, "hostAliases", Msg(HOST_ALIAS)),
    f(24, "priorityClassName", Str),
    p(25, "priority", I32),
    p(26, "dnsConfig", Msg(DNS_CONFIG)),
    f(27, "shareProcessNamespace", No),
    f(28, "readinessGates", No),
    p(29, "runtimeClassName", Str),
    p(30, "enableServiceLinks", Bool),
    p(31, "preemptionPolicy", Str),
    f(32, "overhead", MapQty),
    f(33, "topologySpreadConstraints", No),
    f(34, "ephemeralContainers", No),
    p(35, "setHostnameAsFQDN", Bool),
    f(36, "os", No),
    p(37, "hostUsers", Bool),
    f(38, "schedulingGates", No),
    f(39, "resourceClaims", No),
    f(40, "resources", No),
    f(41, "hostnameOverride", No),
    f(42, "workloadRef", No),
];
const POD_TEMPLATE: &[F] = &[
    f(1, "metadata", Struct(META)),
    f(2, "spec", Struct(POD_SPEC)),
];

// Services and Endpoints.
const SERVICE_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    f(3, "port", I32),
    f(4, "targetPort", IntOrStr),
    f(5, "nodePort", I32),
    p(6, "appProtocol", Str),
];
const CLIENT_IP: &[F] = &[p(1, "timeoutSeconds", I32)];
const AFFINITY_CONFIG: &[F] = &[p(1, "clientIP", Msg(CLIENT_IP))];
const SERVICE_SPEC: &[F] = &[
    l(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", MapStr),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    l(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(8, "loadBalancerIP", Str),
    l(9, "loadBalancerSourceRanges", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(12, "healthCheckNodePort", I32),
    f(13, "publishNotReadyAddresses", Bool),
    p(14, "sessionAffinityConfig", Msg(AFFINITY_CONFIG)),
    p(17, "ipFamilyPolicy", Str),
    l(18, "clusterIPs", Str),
    l(19, "ipFamilies", Str),
    p(20, "allocateLoadBalancerNodePorts", Bool),
    p(21, "loadBalancerClass", Str),
    p(22, "internalTrafficPolicy", Str),
    p(23, "trafficDistribution", Str),
];
const OBJECT_REF: &[F] = &[
    f(1, "kind", Str),
    f(2, "namespace", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    f(6, "resourceVersion", Str),
    f(7, "fieldPath", Str),
];
const ENDPOINT_ADDRESS: &[F] = &[
    f(1, "ip", Str),
    p(2, "targetRef", Msg(OBJECT_REF)),
    f(3, "hostname", Str),
    p(4, "nodeName", Str),
];
const ENDPOINT_PORT: &[F] = &[
    f(1, "name", Str),
    f(2, "port", I32),
    f(3, "protocol", Str),
    p(4, "appProtocol", Str),
];
const ENDPOINT_SUBSET: &[F] = &[
    l(1, "addresses", Msg(ENDPOINT_ADDRESS)),
    l(2, "notReadyAddresses", Msg(ENDPOINT_ADDRESS)),
    l(3, "ports", Msg(ENDPOINT_PORT)),
];

// apps/v1 and batch/v1.
const ROLLING_DEPLOYMENT: &[F] = &[p(1, "maxUnavailable", IntOrStr), p(2, "maxSurge", IntOrStr)];
const DEPLOYMENT_STRATEGY: &[F] = &[
    f(1, "type", Str),
    p(2, "rollingUpdate", Msg(ROLLING_DEPLOYMENT)),
];
const DEPLOYMENT_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(SELECTOR)),
    f(3, "template", Struct(POD_TEMPLATE)),
    f(4, "strategy", Struct(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", I32),
    p(6, "revisionHistoryLimit", I32),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", I32),
];
const REPLICASET_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(SELECTOR)),
    f(3, "template", Struct(POD_TEMPLATE)),
    f(4, "minReadySeconds", I32),
];
const QUANTITIES: &[F] = &[f(1, "limits", MapQty), f(2, "requests", MapQty)];
const PVC_SPEC: &[F] = &[
    l(1, "accessModes", Str),
    f(2, "resources", Struct(QUANTITIES)),
    f(3, "volumeName", Str),
    p(4, "selector", Msg(SELECTOR)),
    p(5, "storageClassName", Str),
    p(6, "volumeMode", Str),
    f(7, "dataSource", No),
    f(8, "dataSourceRef", No),
    p(9, "volumeAttributesClassName", Str),
];
const PVC: &[F] = &[
    f(1, "metadata", Struct(META)),
    f(2, "spec", Struct(PVC_SPEC)),
    f(3, "status", Ignore),
];
const ROLLING_STATEFULSET: &[F] = &[p(1, "partition", I32), p(2, "maxUnavailable", IntOrStr)];
const STATEFULSET_STRATEGY: &[F] = &[
    f(1, "type", Str),
    p(2, "rollingUpdate", Msg(ROLLING_STATEFULSET)),
];
const PVC_RETENTION: &[F] = &[f(1, "whenDeleted", Str), f(2, "whenScaled", Str)];
const ORDINALS: &[F] = &[f(1, "start", I32)];
const STATEFULSET_SPEC: &[F] = &[
    p(1, "replicas", I32),
    p(2, "selector", Msg(SELECTOR)),
    f(3, "template", Struct(POD_TEMPLATE)),
    l(4, "volumeClaimTemplates", Msg(PVC)),
    f(5, "serviceName", Str),
    f(6, "podManagementPolicy", Str),
    f(7, "updateStrategy", Struct(STATEFULSET_STRATEGY)),
    p(8, "revisionHistoryLimit", I32),
    f(9, "minReadySeconds", I32),
    p(
        10,
        "persistentVolumeClaimRetentionPolicy",
        Msg(PVC_RETENTION),
    ),
    p(11, "ordinals", Msg(ORDINALS)),
];
const JOB_SPEC: &[F] = &[
    p(1, "parallelism", I32),
    p(2, "completions", I32),
    p(3, "activeDeadlineSeconds", I64),
    p(4, "selector", Msg(SELECTOR)),
    p(5, "manualSelector", Bool),
    f(6, "template", Struct(POD_TEMPLATE)),
    p(7, "backoffLimit", I32),
    p(8, "ttlSecondsAfterFinished", I32),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
    f(11, "podFailurePolicy", No),
    p(12, "backoffLimitPerIndex", I32),
    p(13, "maxFailedIndexes", I32),
    p(14, "podReplacementPolicy", Str),
    p(15, "managedBy", Str),
    f(16, "successPolicy", No),
];

/// An object of a kind with `metadata`, `spec` and `status`.
macro_rules! with_spec {
    ($spec:expr) => {
        &[
            f(1, "metadata", Struct(META)),
            f(2, "spec", Struct($spec)),
            f(3, "status", Ignore),
        ]
    };
}

/// The kinds lab serves, by (apiVersion, kind).
const KINDS: &[(&str, &str, &[F])] = &[
    ("v1", "Pod", with_spec!(POD_SPEC)),
    ("v1", "Service", with_spec!(SERVICE_SPEC)),
    (
        "v1",
        "Endpoints",
        &[
            f(1, "metadata", Struct(META)),
            l(2, "subsets", Msg(ENDPOINT_SUBSET)),
        ],
    ),
    (
        "v1",
        "ConfigMap",
        &[
            f(1, "metadata", Struct(META)),
            f(2, "data", MapStr),
            f(3, "binaryData", MapBytes),
            p(4, "immutable", Bool),
        ],
    ),
    (
        "v1",
        "Secret",
        &[
            f(1, "metadata", Struct(META)),
            f(2, "data", MapBytes),
            f(3, "type", Str),
            f(4, "stringData", MapStr),
            p(5, "immutable", Bool),
        ],
    ),
    // The spec (finalizers) and status are the server's.
    (
        "v1",
        "Namespace",
        &[
            f(1, "metadata", Struct(META)),
            f(2, "spec", Ignore),
            f(3, "status", Ignore),
        ],
    ),
    ("apps/v1", "Deployment", with_spec!(DEPLOYMENT_SPEC)),
    ("apps/v1", "ReplicaSet", with_spec!(REPLICASET_SPEC)),
    ("apps/v1", "StatefulSet", with_spec!(STATEFULSET_SPEC)),
    ("batch/v1", "Job", with_spec!(JOB_SPEC)),
];

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A well-formed field lab does not read in protobuf, by its JSON path
    /// (422 naming it).
    #[error("{0}: lab does not read this field in protobuf; send the object as JSON or YAML")]
    Unsupported(String),
    // The rest: not a well-formed Kubernetes protobuf message (415).
    #[error("not a Kubernetes protobuf message (no k8s magic)")]
    NoMagic,
    /// The bytes of the message at this path (`<object>` for the top) do not parse.
    #[error("{at}: {source}")]
    Wire { at: String, source: WireError },
    #[error("{0} is not UTF-8")]
    NotUtf8(String),
    #[error("{0}: wrong wire type")]
    WrongType(String),
    #[error("{0}: not a plain value")]
    NotPlain(String),
    #[error("content encoding {0:?} is not supported")]
    ContentEncoding(String),
    #[error(
        "lab reads protobuf only for the kinds it serves (got {api_version} {kind}); send JSON"
    )]
    Kind { api_version: String, kind: String },
}

/// The fields of the message at `what`.
fn fields_at<'a>(b: &'a [u8], what: &str) -> Result<Vec<(u64, Wire<'a>)>, Error> {
    fields(b).map_err(|source| Error::Wire {
        at: if what.is_empty() { "<object>" } else { what }.to_string(),
        source,
    })
}

fn text(w: Wire<'_>, what: &str) -> Result<String, Error> {
    match w {
        Wire::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|_| Error::NotUtf8(what.to_string()))
        }
        _ => Err(Error::WrongType(what.to_string())),
    }
}

fn bytes<'a>(w: Wire<'a>, what: &str) -> Result<&'a [u8], Error> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(Error::WrongType(what.to_string())),
    }
}

fn int(w: Wire<'_>, what: &str) -> Result<i64, Error> {
    match w {
        // Go's int32 and int64 are sign-extended varints.
        Wire::Varint(v) => Ok(v as i64),
        _ => Err(Error::WrongType(what.to_string())),
    }
}

/// A map entry (1: key, 2: value).
fn entry<'a>(w: Wire<'a>, what: &str) -> Result<(String, Option<Wire<'a>>), Error> {
    let mut k = String::new();
    let mut v = None;
    for (n, f) in fields_at(bytes(w, what)?, what)? {
        match n {
            1 => k = text(f, what)?,
            2 => v = Some(f),
            _ => {}
        }
    }
    Ok((k, v))
}

fn quantity(w: Wire<'_>, what: &str) -> Result<Value, Error> {
    let mut s = String::new();
    for (n, f) in fields_at(bytes(w, what)?, what)? {
        if n == 1 {
            s = text(f, what)?;
        }
    }
    Ok(Value::String(s))
}

fn int_or_string(w: Wire<'_>, what: &str) -> Result<Value, Error> {
    let (mut ty, mut i, mut s) = (0, 0, String::new());
    for (n, f) in fields_at(bytes(w, what)?, what)? {
        match n {
            1 => ty = int(f, what)?,
            2 => i = int(f, what)? as i32,
            3 => s = text(f, what)?,
            _ => {}
        }
    }
    Ok(if ty == 1 { json!(s) } else { json!(i) })
}

/// The zero value Go's `omitempty` leaves out.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// One scalar or message value of a field.
fn value(fd: &F, w: Wire<'_>, path: &str) -> Result<Value, Error> {
    Ok(match fd.ty {
        Str => Value::String(text(w, path)?),
        I32 => json!(int(w, path)? as i32),
        I64 => json!(int(w, path)?),
        Bool => Value::Bool(int(w, path)? != 0),
        IntOrStr => int_or_string(w, path)?,
        Qty => quantity(w, path)?,
        Msg(m) | Struct(m) => Value::Object(message(m, bytes(w, path)?, path)?),
        Inline(_) | MapStr | MapBytes | MapQty | Ignore | No => {
            return Err(Error::NotPlain(path.to_string()));
        }
    })
}

/// Decode one message by its field table into `out` (inline messages add
/// to their parent's map).
fn message_into(
    table: &[F],
    b: &[u8],
    path: &str,
    out: &mut Map<String, Value>,
) -> Result<(), Error> {
    let at = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    for (n, w) in fields_at(b, path)? {
        let Some(fd) = table.iter().find(|fd| fd.tag == n) else {
            return Err(Error::Unsupported(format!(
                "{} (protobuf field {n})",
                if path.is_empty() { "<object>" } else { path }
            )));
        };
        let here = at(fd.name);
        match fd.ty {
            Ignore => {}
            No => return Err(Error::Unsupported(here)),
            Inline(m) => message_into(m, bytes(w, &here)?, path, out)?,
            MapStr | MapBytes | MapQty => {
                let (k, v) = entry(w, &here)?;
                let v = match (fd.ty, v) {
                    (_, None) if matches!(fd.ty, MapQty) => json!(""),
                    (MapQty, Some(v)) => quantity(v, &here)?,
                    (MapBytes, v) => {
                        let raw = match v {
                            Some(v) => bytes(v, &here)?.to_vec(),
                            None => Vec::new(),
                        };
                        // ByteString serializes as base64, as `[]byte` does in JSON.
                        serde_json::to_value(k8s_openapi::ByteString(raw)).unwrap_or(Value::Null)
                    }
                    (_, Some(v)) => Value::String(text(v, &here)?),
                    (_, None) => json!(""),
                };
                if let Some(m) = out
                    .entry(fd.name)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                {
                    m.insert(k, v);
                }
            }
            _ if fd.list => {
                let i = out
                    .get(fd.name)
                    .and_then(|a| a.as_array())
                    .map_or(0, |a| a.len());
                let item = format!("{here}[{i}]");
                let mut items = Vec::new();
                match (fd.ty, w) {
                    // A packed list of numbers.
                    (I32 | I64 | Bool, Wire::Bytes(b)) => {
                        let mut j = 0;
                        while j < b.len() {
                            let v = varint(b, &mut j).map_err(|source| Error::Wire {
                                at: item.clone(),
                                source,
                            })?;
                            items.push(value(fd, Wire::Varint(v), &item)?);
                        }
                    }
                    _ => items.push(value(fd, w, &item)?),
                }
                if let Some(a) = out
                    .entry(fd.name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    a.extend(items);
                }
            }
            _ => {
                let v = value(fd, w, &here)?;
                out.insert(fd.name.to_string(), v);
            }
        }
    }
    // omitempty: the zero values of value fields go, as in Go's JSON.
    for fd in table {
        if !fd.keep
            && !fd.name.is_empty()
            && !matches!(fd.ty, Msg(_))
            && out.get(fd.name).is_some_and(is_zero)
        {
            out.remove(fd.name);
        }
    }
    Ok(())
}

fn message(table: &[F], b: &[u8], path: &str) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    message_into(table, b, path, &mut out)?;
    Ok(out)
}

/// Decode a protobuf request body into the object's JSON (with
/// `apiVersion` and `kind`), for the kinds lab serves.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    let rest = body.strip_prefix(MAGIC).ok_or(Error::NoMagic)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, f) in fields_at(rest, "envelope")? {
        match n {
            1 => {
                for (m, g) in fields_at(bytes(f, "typeMeta")?, "typeMeta")? {
                    match m {
                        1 => api_version = text(g, "apiVersion")?,
                        2 => kind = text(g, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => raw = Some(bytes(f, "raw")?),
            3 => {
                let enc = text(f, "contentEncoding")?;
                if !enc.is_empty() {
                    return Err(Error::ContentEncoding(enc));
                }
            }
            _ => {}
        }
    }
    let Some((_, _, table)) = KINDS
        .iter()
        .find(|(av, k, _)| *av == api_version && *k == kind)
    else {
        return Err(Error::Kind { api_version, kind });
    };
    let mut o = Map::new();
    o.insert("apiVersion".into(), json!(api_version));
    o.insert("kind".into(), json!(kind));
    message_into(table, raw.unwrap_or_default(), "", &mut o)?;
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kubectl 1.32 sends for
    /// `kubectl create secret generic x --from-literal=a=b` (from its -v=9 log).
    const KUBECTL_SECRET: &[u8] = &[
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0c, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x06, 0x53, 0x65, 0x63,
        0x72, 0x65, 0x74, 0x12, 0x1d, 0x0a, 0x11, 0x0a, 0x01, 0x78, 0x12, 0x00, 0x1a, 0x00, 0x22,
        0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x06, 0x0a, 0x01, 0x61, 0x12,
        0x01, 0x62, 0x1a, 0x00, 0x1a, 0x00, 0x22, 0x00,
    ];

    /// What kubectl 1.32 sends (its -v=9 request bodies) for
    /// `kubectl create deployment web --image=…agnhost:2.45 --replicas=2
    /// --port=8080 -- /agnhost netexec`,
    /// `kubectl create service clusterip svc1 --tcp=80:8080 --tcp=443:https`
    /// and `kubectl create job j1 --image=…agnhost:2.45 -- /agnhost pause`.
    const KUBECTL_DEPLOYMENT: &[u8] = include_bytes!("testdata/deployment.pb");
    const KUBECTL_SERVICE: &[u8] = include_bytes!("testdata/service.pb");
    const KUBECTL_JOB: &[u8] = include_bytes!("testdata/job.pb");

    const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.45";

    #[test]
    fn kubectls_generators_decode_as_their_json() {
        // The JSON kubectl prints for the same commands with
        // `--dry-run=client -o json`, less the empty values Go omits.
        assert_eq!(
            decode(KUBECTL_DEPLOYMENT).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "agnhost", "image": AGNHOST,
                            "command": ["/agnhost", "netexec"],
                            "ports": [{"containerPort": 8080}]}]}}}})
        );
        assert_eq!(
            decode(KUBECTL_SERVICE).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "svc1", "labels": {"app": "svc1"}},
                "spec": {"ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"}],
                    "selector": {"app": "svc1"}, "type": "ClusterIP"}})
        );
        assert_eq!(
            decode(KUBECTL_JOB).unwrap(),
            json!({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "j1"},
                "spec": {"template": {"spec": {
                    "containers": [{"name": "j1", "image": AGNHOST,
                        "command": ["/agnhost", "pause"]}],
                    "restartPolicy": "Never"}}}})
        );
    }

    #[test]
    fn pointer_zeros_stay_and_inline_messages_merge() {
        let varint = |tag: u8, v: u8| vec![tag << 3, v];
        // replicas: 0 (a pointer) stays; minReadySeconds: 0 (a value) goes.
        let spec = [varint(1, 0), varint(5, 0)].concat();
        let tm = msg(&[(1, b"apps/v1"), (2, b"Deployment")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(2, &spec)]))])].concat();
        assert_eq!(decode(&body).unwrap()["spec"], json!({"replicas": 0}));
        // A configMap volume's name (inline LocalObjectReference) and an
        // empty emptyDir (kept: it means something).
        let cm = msg(&[(1, &msg(&[(1, b"conf")]))]);
        let source = msg(&[(19, &cm)]);
        let vol = msg(&[(1, b"v"), (2, &source)]);
        let empty = msg(&[(1, b"scratch"), (2, &msg(&[(2, b"")]))]);
        let spec = msg(&[(1, &vol), (1, &empty)]);
        let tm = msg(&[(1, b"v1"), (2, b"Pod")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(2, &spec)]))])].concat();
        assert_eq!(
            decode(&body).unwrap()["spec"]["volumes"],
            json!([{"name": "v", "configMap": {"name": "conf"}},
                {"name": "scratch", "emptyDir": {}}])
        );
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A message of length-delimited fields.
    fn msg(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, b) in fields {
            put_varint(&mut out, (u64::from(*n) << 3) | 2);
            put_varint(&mut out, b.len() as u64);
            out.extend_from_slice(b);
        }
        out
    }

    #[test]
    fn kubectls_secret_decodes() {
        let v = decode(KUBECTL_SECRET).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                "data": {"a": "Yg=="}})
        );
    }

    #[test]
    fn config_maps_with_labels_and_secrets_with_types() {
        let label = msg(&[(1, b"app"), (2, b"web")]);
        let meta = msg(&[(1, b"c"), (3, b"team"), (11, &label)]);
        let data = msg(&[(1, b"k"), (2, b"v")]);
        let raw = msg(&[(1, &meta), (2, &data)]);
        let tm = msg(&[(1, b"v1"), (2, b"ConfigMap")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &raw)])].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "team", "labels": {"app": "web"}},
                "data": {"k": "v"}})
        );
        let raw = msg(&[(1, &msg(&[(1, b"t")])), (3, b"kubernetes.io/tls")]);
        let tm = msg(&[(1, b"v1"), (2, b"Secret")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &raw)])].concat();
        assert_eq!(decode(&body).unwrap()["type"], "kubernetes.io/tls");
    }

    #[test]
    fn garbage_and_other_kinds_are_errors_not_panics() {
        assert_eq!(decode(b"{}"), Err(Error::NoMagic));
        assert_eq!(
            decode(b"k8s\0\x0a\xff").unwrap_err().to_string(),
            "envelope: truncated varint"
        );
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        // A message cut short inside the object names where.
        let tm = msg(&[(1, b"v1"), (2, b"Pod")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(1, b"\x0a\x05ab")]))])].concat();
        assert_eq!(
            decode(&body),
            Err(Error::Wire {
                at: "metadata".into(),
                source: WireError::TruncatedField
            })
        );
        let tm = msg(&[(1, b"apps/v1"), (2, b"DaemonSet")]);
        let e = decode(&[MAGIC, &msg(&[(1, &tm)])].concat()).unwrap_err();
        assert!(e.to_string().contains("send JSON"), "{e}");
        // Every truncation of a valid message is handled.
        for body in [KUBECTL_SECRET, KUBECTL_DEPLOYMENT, KUBECTL_SERVICE] {
            for n in 0..body.len() {
                let _ = decode(&body[..n]);
            }
        }
        // A pod's affinity (PodSpec field 18) is refused naming it, not dropped.
        let spec = msg(&[(18, b"")]);
        let tm = msg(&[(1, b"v1"), (2, b"Pod")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(2, &spec)]))])].concat();
        assert_eq!(
            decode(&body).unwrap_err(),
            Error::Unsupported("spec.affinity".into())
        );
        // An unknown field number names where it is.
        let meta = msg(&[(1, b"x"), (99, b"")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(1, &meta)]))])].concat();
        assert_eq!(
            decode(&body).unwrap_err(),
            Error::Unsupported("metadata (protobuf field 99)".into())
        );
    }
}
