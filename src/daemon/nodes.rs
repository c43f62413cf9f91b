//! The cluster's nodes on this machine: each a network namespace with its
//! own Service proxy (a TUN `svc0` and a NAT instance, kube-proxy's part),
//! its pods' veths and /32 routes, and — with several nodes — an `eth0` on
//! the node network with host-gw routes to the other nodes' pod subnets
//! (src/sys/nodenet.rs). One daemon runs every node's data plane; their
//! flow tables, counters, captures and TUN holders are separate.

use super::dataplane::DataPlane;
use super::routing::ServiceRouting;
use super::tunhold::HoldConfig;
use crate::cluster::{ClusterConfig, Layout, NodeSpec};
use crate::sys::net::{self, NetnsHandle};
use crate::sys::{netns, nodenet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

/// One node's network and Service proxy.
pub struct NodeRt {
    pub spec: NodeSpec,
    pub netlink: Arc<NetnsHandle>,
    pub dataplane: Arc<DataPlane>,
    pub(crate) routing: ServiceRouting,
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
    for spec in cfg.node_specs() {
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
        nodes.push(Arc::new(NodeRt {
            spec,
            netlink,
            dataplane,
            routing,
        }));
    }
    if nodes.len() > 1 {
        wire(cfg, layout, &nodes)
            .await
            .map_err(|e| anyhow::anyhow!("node network: {e}"))?;
    }
    Ok(nodes)
}

/// The node network: the bridge namespace, every node's `eth0` on it, and
/// every node's routes to the others' pod subnets.
async fn wire(cfg: &ClusterConfig, layout: &Layout, nodes: &[Arc<NodeRt>]) -> net::Result<()> {
    let net_ns = layout.net_netns();
    netns::ensure(&net_ns)?;
    let bridge = NetnsHandle::open(&net_ns).await?;
    nodenet::setup_bridge(&bridge).await?;
    let prefix = cfg.topology.node_cidr.prefix();
    let addr = |n: &NodeRt| -> Ipv4Addr { n.spec.ip.unwrap_or(Ipv4Addr::UNSPECIFIED) };
    for n in nodes {
        nodenet::attach_node(
            &bridge,
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
