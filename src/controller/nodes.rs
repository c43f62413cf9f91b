//! Node objects: one per node of the cluster's topology
//! ([`crate::cluster::ClusterConfig::node_specs`]), registered by the daemon
//! as each kubelet registers its own, and the node lifecycle controller's
//! part that lab plays (the `node.kubernetes.io/unschedulable` taint of a
//! cordoned node).
//!
//! Pure: functions over the [`Store`]; the daemon calls [`ensure`] at start
//! and [`reconcile`] runs with the other controllers.

use crate::cluster::NodeSpec;
use crate::model::{Kind, Node, Object, ObjectMeta};
use crate::store::{Key, Store};
use k8s_openapi::api::core::v1::{
    NodeAddress, NodeCondition, NodeSpec as KNodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The taint the node lifecycle controller puts on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// The kubelet version every node reports.
pub const KUBELET_VERSION: &str = "v1.32.0-lab";
/// Pods a node takes (the kubelet's default `--max-pods`).
pub const MAX_PODS: &str = "110";

/// What a node reports about its machine (the same host for every node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub kernel_version: String,
}

impl HostInfo {
    /// The running kernel's release.
    pub fn current() -> HostInfo {
        HostInfo {
            kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }
}

pub fn time(now: SystemTime) -> Time {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

/// The Node object a node of the topology registers (`first`: the
/// control-plane node). Ready from the start: its kubelet is this daemon.
pub fn desired_node(spec: &NodeSpec, first: bool, host: &HostInfo, now: SystemTime) -> Node {
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/arch".into(), go_arch().into());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert(HOSTNAME_LABEL.into(), spec.name.clone());
    labels.insert("beta.kubernetes.io/arch".into(), go_arch().into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    if first {
        labels.insert(CONTROL_PLANE_LABEL.into(), String::new());
    }
    let mut addresses = Vec::new();
    if let Some(ip) = spec.ip {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: spec.name.clone(),
    });
    let resources: BTreeMap<String, Quantity> =
        [("pods".to_string(), Quantity(MAX_PODS.to_string()))].into();
    let mut node = Node {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            labels: Some(labels),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into(),
            ),
            ..Default::default()
        },
        spec: Some(KNodeSpec {
            pod_cidr: Some(spec.pod_cidr.to_string()),
            pod_cidrs: Some(vec![spec.pod_cidr.to_string()]),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(addresses),
            capacity: Some(resources.clone()),
            allocatable: Some(resources),
            node_info: Some(NodeSystemInfo {
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: String::new(),
                os_image: "lab".into(),
                kernel_version: host.kernel_version.clone(),
                operating_system: "linux".into(),
                architecture: go_arch().into(),
                container_runtime_version: "lab://0.1.0".into(),
                machine_id: String::new(),
                system_uuid: String::new(),
                boot_id: String::new(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    set_ready(
        &mut node,
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
        now,
    );
    node
}

/// Kubernetes' name of this machine's architecture (`GOARCH`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Set the node's Ready condition (`status` "True", "False" or "Unknown"),
/// as the kubelet (or the node lifecycle controller) posts it: the
/// heartbeat is `now`; the transition time moves only when the status
/// changes. Returns whether the status changed.
pub fn set_ready(
    node: &mut Node,
    status: &str,
    reason: &str,
    message: &str,
    now: SystemTime,
) -> bool {
    let now = time(now);
    let conditions = node
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    match conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) => {
            let changed = c.status != status;
            if changed {
                c.last_transition_time = Some(now.clone());
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_heartbeat_time = Some(now);
            changed
        }
        None => {
            conditions.push(NodeCondition {
                type_: "Ready".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(now),
            });
            true
        }
    }
}

/// The status of a node's Ready condition ("Unknown" without one).
pub fn ready_status(node: &Node) -> &str {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map_or("Unknown", |c| c.status.as_str())
}

/// Register the topology's nodes: create the missing ones; refresh what the
/// kubelet owns on existing ones (its labels, podCIDR, addresses, capacity,
/// node info, a Ready heartbeat) and keep what users set (other labels,
/// annotations, `unschedulable`, taints); remove nodes of this cluster that
/// the topology no longer has.
pub fn ensure(store: &mut Store, specs: &[NodeSpec], host: &HostInfo, now: SystemTime) {
    for (i, spec) in specs.iter().enumerate() {
        let want = desired_node(spec, i == 0, host, now);
        let key = Key::new(Kind::Node, "", &spec.name);
        match store.get(&key).cloned() {
            None => {
                let _ = store.create(Object::Node(Box::new(want)));
            }
            Some(Object::Node(mut n)) => {
                let labels = n.metadata.labels.get_or_insert_with(Default::default);
                for (k, v) in want.metadata.labels.iter().flatten() {
                    labels.insert(k.clone(), v.clone());
                }
                if i != 0 {
                    labels.remove(CONTROL_PLANE_LABEL);
                }
                let s = n.spec.get_or_insert_with(Default::default);
                let ws = want.spec.clone().unwrap_or_default();
                s.pod_cidr = ws.pod_cidr;
                s.pod_cidrs = ws.pod_cidrs;
                let st = n.status.get_or_insert_with(Default::default);
                let wst = want.status.clone().unwrap_or_default();
                st.addresses = wst.addresses;
                st.capacity = wst.capacity;
                st.allocatable = wst.allocatable;
                st.node_info = wst.node_info;
                set_ready(
                    &mut n,
                    "True",
                    "KubeletReady",
                    "kubelet is posting ready status",
                    now,
                );
                store.update(Object::Node(n));
            }
            Some(_) => {}
        }
    }
    for key in store.keys(Kind::Node) {
        if !specs.iter().any(|s| s.name == key.name) {
            store.remove(&key);
        }
    }
}

/// The node lifecycle controller's `TaintNodesByCondition` for cordoning:
/// a node with `spec.unschedulable` carries the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint, and loses it when
/// uncordoned.
pub fn reconcile(store: &mut Store) {
    for key in store.keys(Kind::Node) {
        let Some(Object::Node(mut n)) = store.get(&key).cloned() else {
            continue;
        };
        let spec = n.spec.get_or_insert_with(Default::default);
        let cordoned = spec.unschedulable == Some(true);
        let taints = spec.taints.get_or_insert_with(Vec::new);
        let has = taints.iter().any(|t| t.key == UNSCHEDULABLE_TAINT);
        if cordoned == has {
            continue;
        }
        if cordoned {
            taints.push(Taint {
                key: UNSCHEDULABLE_TAINT.into(),
                effect: "NoSchedule".into(),
                time_added: None,
                value: None,
            });
        } else {
            taints.retain(|t| t.key != UNSCHEDULABLE_TAINT);
        }
        if taints.is_empty() {
            spec.taints = None;
        }
        store.update(Object::Node(n));
    }
}

/// The nodes of the store, in topology order (by name: `-node-1`, `-node-2`
/// … sort as the topology numbers them up to 9; numerically beyond).
pub fn nodes(store: &Store) -> Vec<Node> {
    let mut v: Vec<Node> = store
        .list(Kind::Node, None)
        .filter_map(|o| match o {
            Object::Node(n) => Some((**n).clone()),
            _ => None,
        })
        .collect();
    v.sort_by_key(|n| node_order(n.metadata.name.as_deref().unwrap_or("")));
    v
}

/// Sort key: the trailing number of `<cluster>-node-<i>`, then the name.
pub fn node_order(name: &str) -> (u64, String) {
    let n = name
        .rsplit('-')
        .next()
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    (n, name.to_string())
}

/// The taint the node lifecycle controller puts on a node whose kubelet
/// stopped posting status (with `NoSchedule` and `NoExecute`).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The node a pod is bound to (`spec.nodeName`).
pub fn pod_node(p: &k8s_openapi::api::core::v1::Pod) -> Option<&str> {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

fn pods_on<'a>(store: &'a Store, node: &'a str) -> impl Iterator<Item = Key> + 'a {
    store
        .list(Kind::Pod, None)
        .filter(move |o| matches!(o, Object::Pod(p) if pod_node(p) == Some(node)))
        .map(Key::of)
}

/// The kubelet of `name` stopped posting status for longer than the grace
/// period: as the node lifecycle controller does, Ready turns Unknown, the
/// `unreachable` taints go on, and every pod on the node gets
/// `Ready=False` (so its endpoints go not-ready). Returns the pods marked.
pub fn mark_unreachable(store: &mut Store, name: &str, now: SystemTime) -> Vec<Key> {
    let key = Key::new(Kind::Node, "", name);
    let Some(Object::Node(mut n)) = store.get(&key).cloned() else {
        return Vec::new();
    };
    set_ready(
        &mut n,
        "Unknown",
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
        now,
    );
    let taints = n
        .spec
        .get_or_insert_with(Default::default)
        .taints
        .get_or_insert_with(Vec::new);
    for effect in ["NoSchedule", "NoExecute"] {
        if !taints
            .iter()
            .any(|t| t.key == UNREACHABLE_TAINT && t.effect == effect)
        {
            taints.push(Taint {
                key: UNREACHABLE_TAINT.into(),
                effect: effect.into(),
                value: None,
                time_added: (effect == "NoExecute").then(|| time(now)),
            });
        }
    }
    store.update(Object::Node(n));
    let pods: Vec<Key> = pods_on(store, name).collect();
    let mut marked = Vec::new();
    for k in pods {
        let Some(Object::Pod(mut p)) = store.get(&k).cloned() else {
            continue;
        };
        let Some(conds) = p.status.as_mut().and_then(|s| s.conditions.as_mut()) else {
            continue;
        };
        let mut changed = false;
        for c in conds
            .iter_mut()
            .filter(|c| c.type_ == "Ready" && c.status != "False")
        {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
            c.message = None;
            c.last_transition_time = Some(time(now));
            changed = true;
        }
        if changed {
            store.update(Object::Pod(p));
            marked.push(k);
        }
    }
    marked
}

/// The kubelet of `name` posts status again: Ready, and the `unreachable`
/// taints come off. Returns whether the node was not Ready before.
pub fn mark_reachable(store: &mut Store, name: &str, now: SystemTime) -> bool {
    let key = Key::new(Kind::Node, "", name);
    let Some(Object::Node(mut n)) = store.get(&key).cloned() else {
        return false;
    };
    if ready_status(&n) == "True" {
        return false;
    }
    set_ready(
        &mut n,
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
        now,
    );
    if let Some(spec) = n.spec.as_mut()
        && let Some(t) = spec.taints.as_mut()
    {
        t.retain(|t| t.key != UNREACHABLE_TAINT);
        if t.is_empty() {
            spec.taints = None;
        }
    }
    store.update(Object::Node(n));
    true
}

/// The taint manager's eviction of a node NotReady past the eviction
/// timeout: every pod on it not already terminating is marked for graceful
/// deletion (its controller replaces it on another node; the pod itself
/// stays Terminating until its kubelet is back to stop it). Returns them.
pub fn evict_pods(store: &mut Store, name: &str) -> Vec<Key> {
    let pods: Vec<Key> = pods_on(store, name).collect();
    pods.into_iter()
        .filter(|k| super::workload::mark_deleted(store, k, None))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;

    fn specs(n: u32) -> Vec<NodeSpec> {
        let mut cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        cfg.topology.nodes = n;
        cfg.node_specs()
    }

    fn get(store: &Store, name: &str) -> Node {
        match store.get(&Key::new(Kind::Node, "", name)) {
            Some(Object::Node(n)) => (**n).clone(),
            _ => panic!("no node {name}"),
        }
    }

    #[test]
    fn one_node_looks_as_before() {
        let mut s = Store::default();
        let host = HostInfo {
            kernel_version: "6.1.0".into(),
        };
        ensure(&mut s, &specs(1), &host, SystemTime::now());
        let n = get(&s, "t-node");
        let l = n.metadata.labels.clone().unwrap();
        assert_eq!(l[HOSTNAME_LABEL], "t-node");
        assert_eq!(l["kubernetes.io/os"], "linux");
        assert_eq!(l[CONTROL_PLANE_LABEL], "");
        let spec = n.spec.clone().unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.0.0/16"));
        let st = n.status.clone().unwrap();
        let addrs = st.addresses.unwrap();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].type_, "Hostname");
        assert_eq!(st.capacity.unwrap()["pods"].0, "110");
        assert_eq!(ready_status(&n), "True");
        assert_eq!(st.node_info.unwrap().kernel_version, "6.1.0");
    }

    #[test]
    fn several_nodes_keep_user_changes_and_drop_stale_ones() {
        let mut s = Store::default();
        let host = HostInfo::default();
        ensure(&mut s, &specs(3), &host, SystemTime::now());
        assert_eq!(s.keys(Kind::Node).len(), 3);
        let n2 = get(&s, "t-node-2");
        assert!(
            !n2.metadata
                .labels
                .as_ref()
                .unwrap()
                .contains_key(CONTROL_PLANE_LABEL)
        );
        assert!(
            get(&s, "t-node-1")
                .metadata
                .labels
                .unwrap()
                .contains_key(CONTROL_PLANE_LABEL)
        );
        let addrs = n2.status.clone().unwrap().addresses.unwrap();
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(
            n2.spec.clone().unwrap().pod_cidr.as_deref(),
            Some("10.244.1.0/24")
        );
        // A user's label and cordon survive a daemon restart.
        let mut n = n2.clone();
        n.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("disk".into(), "ssd".into());
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        s.update(Object::Node(Box::new(n)));
        ensure(&mut s, &specs(2), &host, SystemTime::now());
        let n2 = get(&s, "t-node-2");
        assert_eq!(n2.metadata.labels.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(n2.spec.unwrap().unschedulable, Some(true));
        assert_eq!(s.keys(Kind::Node).len(), 2);
    }

    #[test]
    fn cordon_taints_and_uncordon_untaints() {
        let mut s = Store::default();
        ensure(&mut s, &specs(2), &HostInfo::default(), SystemTime::now());
        let mut n = get(&s, "t-node-1");
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        s.update(Object::Node(Box::new(n)));
        reconcile(&mut s);
        let taints = get(&s, "t-node-1").spec.unwrap().taints.unwrap();
        assert_eq!(taints[0].key, UNSCHEDULABLE_TAINT);
        assert_eq!(taints[0].effect, "NoSchedule");
        let rv = s.resource_version();
        reconcile(&mut s);
        assert_eq!(s.resource_version(), rv, "idempotent");
        let mut n = get(&s, "t-node-1");
        n.spec.as_mut().unwrap().unschedulable = None;
        s.update(Object::Node(Box::new(n)));
        reconcile(&mut s);
        assert!(get(&s, "t-node-1").spec.unwrap().taints.is_none());
    }

    #[test]
    fn ready_transition_time_moves_only_on_change() {
        let t0 = UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let t1 = t0 + std::time::Duration::from_secs(10);
        let mut n = desired_node(&specs(1)[0], true, &HostInfo::default(), t0);
        assert!(!set_ready(&mut n, "True", "KubeletReady", "m", t1));
        let c = &n.status.as_ref().unwrap().conditions.as_ref().unwrap()[0];
        assert_eq!(c.last_transition_time, Some(time(t0)));
        assert_eq!(c.last_heartbeat_time, Some(time(t1)));
        assert!(set_ready(
            &mut n,
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
            t1
        ));
        assert_eq!(ready_status(&n), "Unknown");
    }
}
