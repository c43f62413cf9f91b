//! The cluster's nodes on this machine: each a network namespace with its
//! own Service proxy (a TUN `svc0` and a NAT instance, kube-proxy's part),
//! its pods' veths and /32 routes, and — with several nodes — an `eth0` on
//! the node network with host-gw routes to the other nodes' pod subnets
//! (src/sys/nodenet.rs). One daemon runs every node's data plane; their
//! flow tables, counters, captures and TUN holders are separate.

use super::dataplane::DataPlane;
use super::routing::ServiceRouting;
use super::runtime::Daemon;
use super::state::State;
use super::tunhold::HoldConfig;
use crate::cluster::{ClusterConfig, Layout, NodeSpec};
use crate::controller::{events, nodes as ctl};
use crate::model::{Kind, Object};
use crate::store::Key;
use crate::sys::net::{self, NetnsHandle};
use crate::sys::{netns, nodenet};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One node's network and Service proxy.
pub struct NodeRt {
    pub spec: NodeSpec,
    pub netlink: Arc<NetnsHandle>,
    pub dataplane: Arc<DataPlane>,
    pub(crate) routing: ServiceRouting,
    /// Its plug on the node network (several nodes only).
    pub uplink: Option<Uplink>,
}

/// The bridge side of a node's `eth0`.
pub struct Uplink {
    pub net: Arc<NetnsHandle>,
    pub port: String,
}

impl NodeRt {
    /// The node's name, also its network namespace's.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Where node `spec`'s run-time files live (TUN holder, flow snapshot): the
/// cluster's run directory with one node (as before nodes existed), a
/// directory per node with several.
pub fn run_dir(layout: &Layout, cfg: &ClusterConfig, spec: &NodeSpec) -> PathBuf {
    if cfg.topology.nodes <= 1 {
        layout.run_dir.clone()
    } else {
        layout.run_dir.join("nodes").join(&spec.name)
    }
}

/// Start every node's data plane (taking over a previous daemon's TUN
/// queues and flows first, so packets wait as briefly as possible), with the
/// Services of `view`.
pub fn start_dataplanes(
    cfg: &ClusterConfig,
    layout: &Layout,
    lab_exe: &std::path::Path,
    view: &super::services::ServicesView,
) -> anyhow::Result<Vec<(NodeSpec, Arc<DataPlane>)>> {
    let mut out = Vec::new();
    let specs = cfg.node_specs();
    let several = specs.len() > 1;
    let batches = super::dataplane::BatchFamilies::default();
    for spec in specs {
        netns::ensure(&spec.name)
            .map_err(|e| anyhow::anyhow!("creating node netns {}: {e}", spec.name))?;
        let dir = run_dir(layout, cfg, &spec);
        crate::sys::process::create_private_dir(&dir)?;
        let dp = DataPlane::start(
            &spec.name,
            dir.join("flows.bin"),
            &HoldConfig {
                lab_exe: lab_exe.to_path_buf(),
                cluster: cfg.name.clone(),
                run_dir: dir,
            },
            &batches,
            several.then_some(spec.name.as_str()),
        )
        .map_err(|e| anyhow::anyhow!("node {}: {e}", spec.name))?;
        dp.update(cfg, view.for_node(&spec.name));
        out.push((spec, dp));
    }
    Ok(out)
}

/// Set up each node's namespace (sysctls, routes and rules of the Services
/// path) and, with several nodes, the node network joining them.
pub async fn setup(
    cfg: &ClusterConfig,
    layout: &Layout,
    planes: Vec<(NodeSpec, Arc<DataPlane>)>,
) -> anyhow::Result<Vec<Arc<NodeRt>>> {
    let mut nodes = Vec::new();
    for (spec, dataplane) in planes {
        let netlink = Arc::new(NetnsHandle::open(&spec.name).await?);
        net::setup_node(&netlink, cfg.pod_cidr)
            .await
            .map_err(|e| anyhow::anyhow!("node {} setup: {e}", spec.name))?;
        let routing = ServiceRouting::setup(
            netlink.clone(),
            cfg.service_cidr,
            super::dataplane::TUN_NAME,
        )
        .await
        .map_err(|e| anyhow::anyhow!("node {} service routing: {e}", spec.name))?;
        nodes.push((spec, netlink, dataplane, routing));
    }
    let bridge = if nodes.len() > 1 {
        let net_ns = layout.net_netns();
        netns::ensure(&net_ns).map_err(|e| anyhow::anyhow!("node network: {e}"))?;
        Some(Arc::new(NetnsHandle::open(&net_ns).await?))
    } else {
        None
    };
    let nodes: Vec<Arc<NodeRt>> = nodes
        .into_iter()
        .map(|(spec, netlink, dataplane, routing)| {
            let uplink = bridge.as_ref().map(|b| Uplink {
                net: b.clone(),
                port: nodenet::port_name(spec.index),
            });
            Arc::new(NodeRt {
                spec,
                netlink,
                dataplane,
                routing,
                uplink,
            })
        })
        .collect();
    if let Some(bridge) = &bridge {
        wire(cfg, bridge, &nodes)
            .await
            .map_err(|e| anyhow::anyhow!("node network: {e}"))?;
    }
    Ok(nodes)
}

/// The node network: the bridge namespace, every node's `eth0` on it, and
/// every node's routes to the others' pod subnets.
async fn wire(cfg: &ClusterConfig, bridge: &NetnsHandle, nodes: &[Arc<NodeRt>]) -> net::Result<()> {
    nodenet::setup_bridge(bridge).await?;
    let prefix = cfg.topology.node_cidr.prefix();
    let addr = |n: &NodeRt| -> Ipv4Addr { n.spec.ip.unwrap_or(Ipv4Addr::UNSPECIFIED) };
    for n in nodes {
        nodenet::attach_node(
            bridge,
            &n.netlink,
            &nodenet::port_name(n.spec.index),
            addr(n),
            prefix,
        )
        .await?;
    }
    for n in nodes {
        let others: Vec<_> = nodes
            .iter()
            .filter(|o| o.spec.index != n.spec.index)
            .map(|o| (o.spec.pod_cidr, addr(o)))
            .collect();
        nodenet::route_to_nodes(&n.netlink, &others).await?;
        n.routing.set_peers(others);
    }
    Ok(())
}

/// Every namespace of the cluster's nodes (and of the node network), for
/// `lab down`: both naming schemes, whichever the cluster used.
pub fn namespaces(layout: &Layout) -> Vec<String> {
    let prefix = format!("{}-node-", layout.cluster);
    let mut out: Vec<String> = netns::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    out.push(layout.node_netns());
    out.push(layout.net_netns());
    out
}

/// A node cut off the node network (`lab fault node/NAME --down`): its
/// kubelet cannot reach the API server any more. What the node lifecycle
/// controller has done about it so far.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    pub since: Instant,
    /// When the node turned NotReady (Ready=Unknown).
    pub not_ready_at: Option<Instant>,
    /// Its pods were evicted.
    pub evicted: bool,
}

impl Daemon {
    fn partitions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Partition>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cut node `name` off the node network (`down`) or plug it back.
    pub(crate) async fn partition(&self, name: &str, down: bool) -> net::Result<()> {
        let Some(node) = self.node(name) else {
            return Ok(());
        };
        if let Some(u) = &node.uplink {
            nodenet::set_port(&u.net, &u.port, !down).await?;
        }
        {
            let mut p = self.partitions();
            if down {
                p.entry(name.to_string()).or_insert(Partition {
                    since: Instant::now(),
                    not_ready_at: None,
                    evicted: false,
                });
            } else {
                p.remove(name);
            }
        }
        tracing::info!(node = name, down, "node network link changed");
        self.notify();
        Ok(())
    }

    /// Whether node `name`'s kubelet is cut off (it starts, stops and
    /// reports nothing meanwhile).
    pub(crate) fn is_partitioned(&self, name: &str) -> bool {
        self.partitions().contains_key(name)
    }

    /// The nodes whose kubelets are cut off.
    pub(crate) fn partitioned(&self) -> Vec<String> {
        self.partitions().keys().cloned().collect()
    }

    /// The node lifecycle controller, run on every reconcile pass: a node
    /// cut off longer than `--node-monitor-grace-period` turns NotReady
    /// (its pods not Ready, so their endpoints are not either); after
    /// `--pod-eviction-timeout` more its pods are evicted; a node plugged
    /// back is Ready again and its kubelet reports its pods as they are.
    pub(crate) fn node_lifecycle(&self, st: &mut State) {
        let now = Instant::now();
        let wall = SystemTime::now();
        let grace = Duration::from_secs(self.cfg.topology.node_monitor_grace_secs);
        let evict = Duration::from_secs(self.cfg.topology.pod_eviction_secs);
        let mut notes: Vec<(Object, events::Note, &'static str)> = Vec::new();
        let mut healed = Vec::new();
        {
            let mut parts = self.partitions();
            for n in &self.nodes {
                let name = n.name();
                let Some(p) = parts.get_mut(name) else {
                    if ctl::mark_reachable(&mut st.store, name, wall) {
                        healed.push(name.to_string());
                    }
                    continue;
                };
                if p.not_ready_at.is_none() && now.duration_since(p.since) >= grace {
                    p.not_ready_at = Some(now);
                    let pods = ctl::mark_unreachable(&mut st.store, name, wall);
                    tracing::warn!(
                        node = name,
                        pods = pods.len(),
                        "node NotReady: its kubelet stopped posting status"
                    );
                    if let Some(o) = st.store.get(&Key::new(Kind::Node, "", name)) {
                        notes.push((
                            o.clone(),
                            events::Note::normal(
                                "NodeNotReady",
                                format!("Node {name} status is now: NodeNotReady"),
                            ),
                            NODE_CONTROLLER,
                        ));
                    }
                    for k in pods {
                        if let Some(o) = st.store.get(&k) {
                            notes.push((
                                o.clone(),
                                events::Note::warning("NodeNotReady", "Node is not ready"),
                                NODE_CONTROLLER,
                            ));
                        }
                    }
                }
                if let Some(t) = p.not_ready_at
                    && !p.evicted
                    && now.duration_since(t) >= evict
                {
                    p.evicted = true;
                    let pods = ctl::evict_pods(&mut st.store, name);
                    tracing::warn!(
                        node = name,
                        pods = pods.len(),
                        "evicting the pods of a NotReady node"
                    );
                    for k in pods {
                        if let Some(o) = st.store.get(&k) {
                            notes.push((
                                o.clone(),
                                events::Note::normal(
                                    "TaintManagerEviction",
                                    format!("Marking for deletion Pod {}/{}", k.namespace, k.name),
                                ),
                                TAINT_MANAGER,
                            ));
                        }
                    }
                }
            }
        }
        for name in &healed {
            tracing::info!(node = %name, "node Ready again");
            if let Some(o) = st.store.get(&Key::new(Kind::Node, "", name)) {
                notes.push((
                    o.clone(),
                    events::Note::normal(
                        "NodeReady",
                        format!("Node {name} status is now: NodeReady"),
                    ),
                    NODE_CONTROLLER,
                ));
            }
            self.report_pods_again(st, name);
        }
        for (o, note, source) in notes {
            events::record(&mut st.store, &o, note, source, None, wall);
        }
    }

    /// A kubelet back in touch posts its pods' status as their shims last
    /// reported it.
    fn report_pods_again(&self, st: &mut State, node: &str) {
        let pods = self.pods_lock();
        for rt in pods.values() {
            let Some(Object::Pod(p)) = st.store.get(&rt.key).cloned() else {
                continue;
            };
            if ctl::pod_node(&p) != Some(node) {
                continue;
            }
            let mut p = p;
            let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
            p.status = Some(crate::controller::podstatus::compute(
                &p,
                ip.as_deref(),
                rt.last_status.as_ref(),
                None,
            ));
            st.store.update(Object::Pod(p));
        }
    }
}

/// The event sources of the node lifecycle controller and its taint manager.
pub const NODE_CONTROLLER: &str = "node-controller";
pub const TAINT_MANAGER: &str = "taint-eviction-controller";

/// The routing repairs of every node for `lab status`: one node's as
/// `N (last: …)`; with several, each node that made any, named.
pub fn repairs(nodes: &[Arc<NodeRt>]) -> String {
    if let [one] = nodes {
        return one.routing.repairs();
    }
    let made: Vec<String> = nodes
        .iter()
        .map(|n| (n.name(), n.routing.repairs()))
        .filter(|(_, r)| r != "0")
        .map(|(name, r)| format!("{name}: {r}"))
        .collect();
    if made.is_empty() {
        "0".into()
    } else {
        made.join("; ")
    }
}

/// Several named nodes' statistics as one map: numbers summed (see
/// [`sum_json`]); a text that differs between nodes given per node
/// (`node-1: …; node-2: …`), one that all share given once.
pub fn sum_named(
    maps: Vec<(String, serde_json::Map<String, serde_json::Value>)>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut all = sum_maps(maps.iter().map(|(_, m)| m.clone()));
    if maps.len() < 2 {
        return all;
    }
    for (key, value) in all.iter_mut() {
        if !value.is_string() {
            continue;
        }
        let texts: Vec<(&str, &str)> = maps
            .iter()
            .filter_map(|(n, m)| Some((n.as_str(), m.get(key)?.as_str()?)))
            .collect();
        if texts.iter().any(|(_, t)| *t != texts[0].1) {
            *value = texts
                .iter()
                .map(|(n, t)| format!("{n}: {t}"))
                .collect::<Vec<_>>()
                .join("; ")
                .into();
        }
    }
    all
}

/// Several nodes' statistics as one map (see [`sum_json`]).
pub fn sum_maps(
    maps: impl IntoIterator<Item = serde_json::Map<String, serde_json::Value>>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut all = serde_json::Value::Object(Default::default());
    for m in maps {
        sum_json(&mut all, &serde_json::Value::Object(m));
    }
    match all {
        serde_json::Value::Object(m) => m,
        _ => Default::default(),
    }
}

/// Add `b` into `a`: numbers summed, objects merged key by key, anything
/// else kept from `a` (per-node data-plane statistics into one view).
pub fn sum_json(a: &mut serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(p), Some(q)) = (x.as_u64(), y.as_u64()) {
                *x = (p + q).into();
            } else if let (Some(p), Some(q)) = (x.as_f64(), y.as_f64())
                && let Some(n) = serde_json::Number::from_f64(p + q)
            {
                *x = n;
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in y {
                match x.get_mut(k) {
                    Some(old) => sum_json(old, v),
                    None => {
                        x.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn texts_that_differ_between_nodes_are_given_per_node() {
        let m = |holder: &str, flows: u64| {
            json!({"TUN holder": holder, "TUN": "svc0 (2 queues)", "Flows": flows})
                .as_object()
                .unwrap()
                .clone()
        };
        let all = sum_named(vec![
            ("n1".into(), m("pid 7", 2)),
            ("n2".into(), m("pid 9", 3)),
        ]);
        assert_eq!(all["TUN holder"], "n1: pid 7; n2: pid 9");
        assert_eq!(all["TUN"], "svc0 (2 queues)");
        assert_eq!(all["Flows"], 5);
        let one = sum_named(vec![("n1".into(), m("pid 7", 2))]);
        assert_eq!(one["TUN holder"], "pid 7");
    }

    #[test]
    fn statistics_add_up() {
        let mut a = json!({"Flows": 2, "Queues": "2 (multi)", "c": {"x": 1}});
        sum_json(
            &mut a,
            &json!({"Flows": 3, "Queues": "2", "c": {"x": 4, "y": 1}}),
        );
        assert_eq!(
            a,
            json!({"Flows": 5, "Queues": "2 (multi)", "c": {"x": 5, "y": 1}})
        );
    }
}
