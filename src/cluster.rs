//! A cluster's identity and where its things live: names of namespaces,
//! links, files and sockets all derive from the cluster name, so several
//! clusters coexist.

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use crate::wire::shim::LogRotation;

pub const DEFAULT_CLUSTER: &str = "lab";
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The node network of a cluster with several nodes (`--node-cidr`): the
/// nodes' `eth0` addresses, on a bridge in the cluster's own namespace.
pub const DEFAULT_NODE_CIDR: &str = "172.18.0.0/24";
/// Each node's pod subnet (`node.spec.podCIDR`) with several nodes: a /24
/// out of the pod CIDR, as kube-controller-manager's `--node-cidr-mask-size`.
pub const DEFAULT_NODE_CIDR_MASK_SIZE: u8 = 24;
/// Nodes a cluster may have (`--nodes`).
pub const MAX_NODES: u32 = 64;
/// The pods' gateway (a link-local address answered by the node side veth).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// Validate a cluster name: short and `[a-z0-9-]`, so that every derived
/// name (netns, files) stays valid.
pub fn validate_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Name(name.to_string()))
    }
}

/// A cluster setting `lab up` (or `lab daemon`) refuses, naming the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "invalid cluster name {0:?}: use 1-20 characters of [a-z0-9-], not starting or ending with '-'"
    )]
    Name(String),
    #[error("invalid {flag} {value:?}: {reason}")]
    Cidr {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{flag} {cidr} is too small (at most /{max})")]
    TooSmall {
        flag: &'static str,
        cidr: Ipv4Network,
        max: u8,
    },
    #[error("--pod-cidr {pod} overlaps --service-cidr {service}")]
    Overlap {
        pod: Ipv4Network,
        service: Ipv4Network,
    },
    #[error("the CIDRs must not contain {GATEWAY} (the pods' gateway)")]
    Gateway,
    #[error("{flag}: {source}")]
    Size {
        flag: &'static str,
        source: SizeError,
    },
    #[error("--container-log-max-size {0} is too small (at least 1Ki)")]
    LogSizeTooSmall(String),
    #[error(
        "--container-log-max-files must be at least 2 (the live file and one rotated), got {0}"
    )]
    LogFiles(u32),
}

/// A byte size that is not a Kubernetes quantity lab reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {0:?}: use a number with an optional suffix (Ki, Mi, Gi, k, M, G), e.g. 10Mi"
)]
pub struct SizeError(pub String);

/// The settings a cluster is created with (saved with its state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub name: String,
    pub pod_cidr: Ipv4Network,
    pub service_cidr: Ipv4Network,
    /// The Kubernetes API's port on 127.0.0.1 (chosen at the first start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_port: Option<u16>,
    /// Container log rotation (`--container-log-max-size`/`-files`).
    #[serde(default)]
    pub log_rotation: LogRotation,
    /// Nodes, their network and how a lost node is noticed (`--nodes`).
    #[serde(default)]
    pub topology: Topology,
}

/// A node topology `lab up` refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("--nodes {0}: use 1 to {MAX_NODES}")]
    Nodes(u32),
    #[error("invalid --node-cidr {0:?}: {1}")]
    NodeCidr(String, String),
    #[error("--node-cidr {0} overlaps the pod or service CIDR or 169.254.1.1")]
    Overlap(Ipv4Network),
    #[error("--node-cidr {0} has no room for {1} nodes")]
    NoRoom(Ipv4Network, u32),
    #[error("--node-cidr-mask-size {0} must be between the pod CIDR's prefix ({1}) and 30")]
    Mask(u8, u8),
    #[error("--pod-cidr {pod_cidr} holds only {fit} /{mask} node subnets, not {nodes}")]
    Subnets {
        pod_cidr: Ipv4Network,
        fit: u64,
        mask: u8,
        nodes: u32,
    },
}

/// How many nodes a cluster has and how they are wired and watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// `--nodes`: 1 (the default) is the original one-node cluster (node
    /// netns `<cluster>-node`, the whole pod CIDR, no node network).
    pub nodes: u32,
    /// `--node-cidr`: the node network (used with 2 nodes or more).
    pub node_cidr: Ipv4Network,
    /// `--node-cidr-mask-size`: each node's pod subnet (2 nodes or more).
    pub node_cidr_mask_size: u8,
    /// `--node-monitor-grace-period`: a node whose kubelet stopped posting
    /// status turns NotReady (Ready=Unknown) after this many seconds.
    pub node_monitor_grace_secs: u64,
    /// `--pod-eviction-timeout`: the pods of a node NotReady this long are
    /// evicted (deleted, so their controllers replace them elsewhere).
    pub pod_eviction_secs: u64,
}

impl Default for Topology {
    fn default() -> Topology {
        Topology {
            nodes: 1,
            node_cidr: DEFAULT_NODE_CIDR.parse().expect("valid"),
            node_cidr_mask_size: DEFAULT_NODE_CIDR_MASK_SIZE,
            node_monitor_grace_secs: DEFAULT_NODE_MONITOR_GRACE_SECS,
            pod_eviction_secs: DEFAULT_POD_EVICTION_SECS,
        }
    }
}

/// Kubernetes waits 40 s; lab's nodes share one machine, so a lost node is
/// noticed sooner (the flag sets Kubernetes' value back).
pub const DEFAULT_NODE_MONITOR_GRACE_SECS: u64 = 10;
/// Kubernetes evicts after 5 min (the taint's tolerationSeconds 300); lab
/// after 30 s, so a learner sees the replacement without waiting minutes.
pub const DEFAULT_POD_EVICTION_SECS: u64 = 30;

/// One node of a cluster: its names and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// 1-based.
    pub index: u32,
    /// The Node object's name, also its network namespace's.
    pub name: String,
    /// `node.spec.podCIDR`: the node's pods take their addresses here.
    pub pod_cidr: Ipv4Network,
    /// Its address on the node network (none in a one-node cluster).
    pub ip: Option<Ipv4Addr>,
}

impl ClusterConfig {
    pub fn new(
        name: &str,
        pod_cidr: &str,
        service_cidr: &str,
    ) -> Result<ClusterConfig, ConfigError> {
        validate_name(name)?;
        let pod_cidr = parse_cidr("--pod-cidr", pod_cidr)?;
        let service_cidr = parse_cidr("--service-cidr", service_cidr)?;
        for (flag, cidr, max) in [
            ("--pod-cidr", pod_cidr, 30),
            ("--service-cidr", service_cidr, 28),
        ] {
            if cidr.prefix() > max {
                return Err(ConfigError::TooSmall { flag, cidr, max });
            }
        }
        if pod_cidr.overlaps(service_cidr) {
            return Err(ConfigError::Overlap {
                pod: pod_cidr,
                service: service_cidr,
            });
        }
        if pod_cidr.contains(GATEWAY) || service_cidr.contains(GATEWAY) {
            return Err(ConfigError::Gateway);
        }
        Ok(ClusterConfig {
            name: name.to_string(),
            pod_cidr,
            service_cidr,
            api_port: None,
            log_rotation: LogRotation::default(),
            topology: Topology::default(),
        })
    }

    /// Set the node count and network, checking they fit: each node needs
    /// its own pod subnet out of the pod CIDR and an address on the node
    /// network, which overlaps neither the pod nor the service CIDR.
    pub fn with_nodes(
        mut self,
        nodes: u32,
        node_cidr: &str,
        mask: u8,
    ) -> Result<ClusterConfig, TopologyError> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(TopologyError::Nodes(nodes));
        }
        let bad =
            |e: ipnetwork::IpNetworkError| TopologyError::NodeCidr(node_cidr.into(), e.to_string());
        let net: Ipv4Network = node_cidr.parse().map_err(bad)?;
        let net = Ipv4Network::new(net.network(), net.prefix()).map_err(bad)?;
        if nodes > 1 {
            if net.overlaps(self.pod_cidr)
                || net.overlaps(self.service_cidr)
                || net.contains(GATEWAY)
            {
                return Err(TopologyError::Overlap(net));
            }
            // Addresses .1 (reserved) to .nodes, the broadcast unused.
            if net.prefix() > 30 || u64::from(nodes) + 2 > 1u64 << (32 - net.prefix()) {
                return Err(TopologyError::NoRoom(net, nodes));
            }
            if mask < self.pod_cidr.prefix() || mask > 30 {
                return Err(TopologyError::Mask(mask, self.pod_cidr.prefix()));
            }
            if u64::from(nodes) > 1u64 << (mask - self.pod_cidr.prefix()) {
                return Err(TopologyError::Subnets {
                    pod_cidr: self.pod_cidr,
                    fit: 1u64 << (mask - self.pod_cidr.prefix()),
                    mask,
                    nodes,
                });
            }
        }
        self.topology.nodes = nodes;
        self.topology.node_cidr = net;
        self.topology.node_cidr_mask_size = mask;
        Ok(self)
    }

    /// The cluster's nodes, in order. One node keeps the original names
    /// (`<cluster>-node`, the whole pod CIDR); several are
    /// `<cluster>-node-1..N`, node i with the i-th `/mask` of the pod CIDR
    /// and the address `.i+1` of the node network (`.1` stays free, as a
    /// gateway's would be).
    pub fn node_specs(&self) -> Vec<NodeSpec> {
        let t = &self.topology;
        if t.nodes <= 1 {
            return vec![NodeSpec {
                index: 1,
                name: format!("{}-node", self.name),
                pod_cidr: self.pod_cidr,
                ip: None,
            }];
        }
        let size = 1u32 << (32 - t.node_cidr_mask_size);
        (1..=t.nodes)
            .map(|i| NodeSpec {
                index: i,
                name: format!("{}-node-{i}", self.name),
                pod_cidr: Ipv4Network::new(
                    Ipv4Addr::from(u32::from(self.pod_cidr.network()) + (i - 1) * size),
                    t.node_cidr_mask_size,
                )
                .expect("checked by with_nodes"),
                ip: Some(Ipv4Addr::from(u32::from(t.node_cidr.network()) + i + 1)),
            })
            .collect()
    }

    /// The node a pod address belongs to.
    pub fn node_of_ip(&self, ip: Ipv4Addr) -> Option<NodeSpec> {
        self.node_specs()
            .into_iter()
            .find(|n| n.pod_cidr.contains(ip))
    }

    /// The `n`th address of the service CIDR (1 = `default/kubernetes`,
    /// 10 = `kube-system/kube-dns`).
    pub fn service_ip(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_cidr.network()) + n)
    }

    pub fn dns_ip(&self) -> Ipv4Addr {
        self.service_ip(10)
    }

    /// The reserved hairpin SNAT source: the service CIDR's last usable
    /// address, never allocated.
    pub fn snat_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.service_cidr.broadcast()) - 1)
    }

    pub fn layout(&self) -> Layout {
        Layout::new(&self.name)
    }
}

/// A CIDR flag's value, normalised to its network address.
fn parse_cidr(flag: &'static str, value: &str) -> Result<Ipv4Network, ConfigError> {
    let bad = |e: ipnetwork::IpNetworkError| ConfigError::Cidr {
        flag,
        value: value.to_string(),
        reason: e.to_string(),
    };
    let net: Ipv4Network = value.parse().map_err(bad)?;
    Ipv4Network::new(net.network(), net.prefix()).map_err(bad)
}

/// A byte size as a Kubernetes quantity: `10Mi`, `512Ki`, `1G`, `2048`.
pub fn parse_byte_size(s: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(s.to_string());
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// The rotation settings from `lab up`'s flags over `base` (the saved or
/// default ones), checked as the kubelet checks its configuration.
pub fn log_rotation(
    base: LogRotation,
    max_size: Option<&str>,
    max_files: Option<u32>,
) -> Result<LogRotation, ConfigError> {
    let mut r = base;
    if let Some(s) = max_size {
        r.max_bytes = parse_byte_size(s).map_err(|source| ConfigError::Size {
            flag: "--container-log-max-size",
            source,
        })?;
        if r.max_bytes < 1024 {
            return Err(ConfigError::LogSizeTooSmall(s.to_string()));
        }
    }
    if let Some(n) = max_files {
        if n < 2 {
            return Err(ConfigError::LogFiles(n));
        }
        r.max_files = n;
    }
    Ok(r)
}

/// Paths and names derived from the cluster name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub cluster: String,
    /// `/run/lab/<cluster>`
    pub run_dir: PathBuf,
    /// `/var/lib/lab/<cluster>`
    pub state_dir: PathBuf,
    /// `/var/log/lab/<cluster>`
    pub log_dir: PathBuf,
}

impl Layout {
    pub fn new(cluster: &str) -> Layout {
        let root = |base: &str| {
            PathBuf::from(std::env::var("LAB_ROOT").unwrap_or_default() + base).join(cluster)
        };
        Layout {
            cluster: cluster.to_string(),
            run_dir: root("/run/lab"),
            state_dir: root("/var/lib/lab"),
            log_dir: root("/var/log/lab"),
        }
    }

    pub fn api_socket(&self) -> PathBuf {
        self.run_dir.join("api.sock")
    }

    /// Directory of the read-only API socket (list and watch only), the
    /// one thing the cluster DNS pods get mounted.
    pub fn read_only_api_dir(&self) -> PathBuf {
        self.run_dir.join("read-only")
    }

    pub fn read_only_api_socket(&self) -> PathBuf {
        self.read_only_api_dir().join("api.sock")
    }

    /// Held (flock) by the one daemon of the cluster for its whole life.
    pub fn daemon_lock(&self) -> PathBuf {
        self.run_dir.join("daemon.lock")
    }

    /// Held by the `lab up` that is starting the daemon.
    pub fn up_lock(&self) -> PathBuf {
        self.run_dir.join("up.lock")
    }

    /// The admin kubeconfig of the cluster's Kubernetes API (0600).
    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.join("kubeconfig")
    }

    pub fn daemon_pid(&self) -> PathBuf {
        self.run_dir.join("daemon.pid")
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("state.json")
    }

    pub fn config_file(&self) -> PathBuf {
        self.state_dir.join("cluster.json")
    }

    pub fn daemon_log(&self) -> PathBuf {
        self.log_dir.join("daemon.log")
    }

    pub fn node_netns(&self) -> String {
        format!("{}-node", self.cluster)
    }

    pub fn node_name(&self) -> String {
        format!("{}-node", self.cluster)
    }

    /// The namespace of the node network's bridge (several nodes only).
    pub fn net_netns(&self) -> String {
        format!("{}-net", self.cluster)
    }

    /// The pod's named network namespace: `<cluster>-<ns>-<pod>`, shortened
    /// with a hash when too long for a file name.
    pub fn pod_netns(&self, namespace: &str, pod: &str, uid: &str) -> String {
        let full = format!("{}-{namespace}-{pod}", self.cluster);
        if full.len() <= 200 {
            full
        } else {
            format!("{}-{}", &full[..180], &uid[..8.min(uid.len())])
        }
    }

    /// Per-pod runtime directory (shim socket, pid, spec).
    pub fn pod_run_dir(&self, uid: &str) -> PathBuf {
        self.run_dir.join("pods").join(uid)
    }

    /// Per-pod state (resolv.conf, hosts, emptyDir and configMap volumes).
    pub fn pod_state_dir(&self, uid: &str) -> PathBuf {
        self.state_dir.join("pods").join(uid)
    }

    /// A persistent volume claim's directory (StatefulSet
    /// `volumeClaimTemplates`): `/var/lib/lab/<cluster>/claims/<ns>/<claim>`.
    /// Outlives its pods and its StatefulSet; removed by `lab down`.
    pub fn claim_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        self.state_dir.join("claims").join(namespace).join(claim)
    }

    /// `/var/log/lab/<cluster>/pods/<ns>_<pod>_<uid>`, as the kubelet names it.
    pub fn pod_log_dir(&self, namespace: &str, pod: &str, uid: &str) -> PathBuf {
        self.log_dir
            .join("pods")
            .join(format!("{namespace}_{pod}_{uid}"))
    }
}

/// Host-side veth name for a pod IP: `lxc` + 8 hex digits (fits 15 chars;
/// lives only in the cluster's node netns).
pub fn host_veth(ip: Ipv4Addr) -> String {
    format!("lxc{:08x}", u32::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_and_rotation_flags() {
        assert_eq!(parse_byte_size("10Mi"), Ok(10 << 20));
        assert_eq!(parse_byte_size("64Ki"), Ok(65536));
        assert_eq!(parse_byte_size("2k"), Ok(2000));
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        for bad in ["", "Mi", "10MB", "-1", "1.5Mi", "99999999999999999999Gi"] {
            assert!(parse_byte_size(bad).is_err(), "{bad}");
        }
        let d = LogRotation::default();
        assert_eq!((d.max_bytes, d.max_files), (10 << 20, 5));
        let r = log_rotation(d, Some("64Ki"), Some(2)).unwrap();
        assert_eq!((r.max_bytes, r.max_files), (65536, 2));
        assert_eq!(log_rotation(r, None, None), Ok(r));
        assert_eq!(
            log_rotation(d, None, Some(1)),
            Err(ConfigError::LogFiles(1))
        );
        assert!(
            log_rotation(d, Some("10"), None)
                .unwrap_err()
                .to_string()
                .contains("too small")
        );
        assert_eq!(
            log_rotation(d, Some("10MB"), None).unwrap_err().to_string(),
            "--container-log-max-size: invalid size \"10MB\": use a number with an optional suffix (Ki, Mi, Gi, k, M, G), e.g. 10Mi"
        );
    }

    #[test]
    fn names_and_addresses() {
        let c = ClusterConfig::new("lab", DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR).unwrap();
        assert_eq!(c.service_ip(1), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(c.dns_ip(), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(c.snat_ip(), Ipv4Addr::new(10, 111, 255, 254));
        assert_eq!(host_veth(Ipv4Addr::new(10, 244, 0, 7)), "lxc0af40007");
        assert!(host_veth(Ipv4Addr::new(255, 255, 255, 255)).len() <= 15);
        let l = c.layout();
        assert_eq!(l.node_netns(), "lab-node");
        assert_eq!(l.pod_netns("default", "client", "u"), "lab-default-client");
        assert!(l.pod_netns("default", &"x".repeat(253), "0123456789").len() <= 200);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(validate_name("Lab").is_err());
        assert!(validate_name("a_b").is_err());
        assert!(validate_name(&"a".repeat(21)).is_err());
        assert!(validate_name("lab-2").is_ok());
        assert!(ClusterConfig::new("x", "10.0.0.0/8", "10.96.0.0/12").is_err());
        assert!(ClusterConfig::new("x", "nonsense", "10.96.0.0/12").is_err());
        assert!(ClusterConfig::new("x", "10.244.0.0/31", "10.96.0.0/12").is_err());
        let c = ClusterConfig::new("x", "10.244.1.7/16", "10.96.0.0/12").unwrap();
        assert_eq!(c.pod_cidr.to_string(), "10.244.0.0/16");
    }

    #[test]
    fn node_topology() {
        let c = ClusterConfig::new("lab", DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR).unwrap();
        let one = c.node_specs();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "lab-node");
        assert_eq!(one[0].pod_cidr, c.pod_cidr);
        assert_eq!(one[0].ip, None);
        let c = c.with_nodes(3, DEFAULT_NODE_CIDR, 24).unwrap();
        let n = c.node_specs();
        assert_eq!(
            n.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["lab-node-1", "lab-node-2", "lab-node-3"]
        );
        assert_eq!(n[2].pod_cidr.to_string(), "10.244.2.0/24");
        assert_eq!(n[0].ip, Some(Ipv4Addr::new(172, 18, 0, 2)));
        assert_eq!(
            c.node_of_ip(Ipv4Addr::new(10, 244, 1, 9)).unwrap().name,
            "lab-node-2"
        );
        assert_eq!(c.node_of_ip(Ipv4Addr::new(10, 244, 9, 9)), None);
        let base = ClusterConfig::new("x", "10.244.0.0/22", DEFAULT_SERVICE_CIDR).unwrap();
        let e = base
            .clone()
            .with_nodes(5, DEFAULT_NODE_CIDR, 24)
            .unwrap_err();
        assert!(e.to_string().contains("holds only 4"), "{e}");
        assert!(base.clone().with_nodes(0, DEFAULT_NODE_CIDR, 24).is_err());
        assert!(base.clone().with_nodes(2, "10.244.0.0/24", 24).is_err());
        assert!(base.clone().with_nodes(3, "172.18.0.0/30", 24).is_err());
        assert!(base.with_nodes(2, "172.18.0.0/29", 16).is_err());
    }
}
