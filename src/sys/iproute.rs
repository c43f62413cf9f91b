//! Network namespaces and pod links through iproute2 (`ip`), used while the
//! rtnetlink implementation is not wired in. Every operation names the
//! namespace it acts in with `ip -n`, so nothing touches the root netns.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct NetError {
    pub context: String,
    pub message: String,
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError {
            context: format!("ip {}", args.join(" ")),
            message: format!("cannot run ip (install iproute2): {e}"),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(NetError {
            context: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

pub fn netns_exists(name: &str) -> bool {
    netns_path(name).exists()
}

pub fn netns_create(name: &str) -> Result<PathBuf, NetError> {
    ip(&["netns", "add", name])?;
    Ok(netns_path(name))
}

/// Delete a named netns; Ok if it does not exist.
pub fn netns_delete(name: &str) -> Result<(), NetError> {
    if !netns_exists(name) {
        return Ok(());
    }
    ip(&["netns", "delete", name]).map(|_| ())
}

/// Write a sysctl inside a netns (`/proc/sys/net` is per network namespace).
pub fn sysctl(netns: &str, key: &str, value: &str) -> Result<(), NetError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "sh",
            "-c",
            &format!("echo {value} > {path}"),
        ])
        .output()
        .map_err(|e| NetError {
            context: format!("sysctl {key} in {netns}"),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError {
            context: format!("sysctl {key}={value} in {netns}"),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The node namespace's sysctls: IPv6 off, rp_filter off, forwarding on
/// (set by both [`setup_node`] and `sys::net::setup_node`).
pub const NODE_SYSCTLS: [(&str, &str); 5] = [
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.ip_forward", "1"),
];

/// Node namespace: lo up and [`NODE_SYSCTLS`].
pub fn setup_node(node: &str) -> Result<(), NetError> {
    ip(&["-n", node, "link", "set", "lo", "up"])?;
    for (k, v) in NODE_SYSCTLS {
        sysctl(node, k, v)?;
    }
    Ok(())
}

/// An `unreachable` route for the whole pod CIDR in the node netns: live
/// pods have more specific /32 routes; a packet for an address no pod holds
/// (a deleted pod's old IP) gets ICMP host-unreachable at once instead of
/// bouncing between the main table and the Services TUN until its TTL runs
/// out.
pub fn pod_cidr_unreachable(node: &str, pod_cidr: &str) -> Result<(), NetError> {
    ip(&["-n", node, "route", "replace", "unreachable", pod_cidr])?;
    Ok(())
}

pub fn list_links(netns: &str) -> Result<Vec<String>, NetError> {
    let out = ip(&["-n", netns, "-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

fn link_mac(netns: &str, dev: &str) -> Result<String, NetError> {
    let out = ip(&["-n", netns, "-o", "link", "show", dev])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(String::from)
        .ok_or_else(|| NetError {
            context: format!("mac of {dev} in {netns}"),
            message: "no link/ether address".into(),
        })
}

/// Routed /32 pod network: a veth from the node netns into the pod netns
/// (`eth0`), the pod's address and routes via 169.254.1.1, a permanent
/// neighbour entry for the node side, and a /32 route in the node.
pub fn add_pod(
    node: &str,
    pod_netns: &str,
    host_veth: &str,
    pod_ip: Ipv4Addr,
) -> Result<(), NetError> {
    let ipn = format!("{pod_ip}/32");
    let ips = pod_ip.to_string();
    ip(&[
        "-n", node, "link", "add", host_veth, "type", "veth", "peer", "name", "eth0", "netns",
        pod_netns,
    ])?;
    let mac = link_mac(node, host_veth)?;
    // Pod side.
    sysctl(pod_netns, "net.ipv6.conf.all.disable_ipv6", "1")?;
    sysctl(pod_netns, "net.ipv6.conf.default.disable_ipv6", "1")?;
    ip(&["-n", pod_netns, "link", "set", "lo", "up"])?;
    ip(&["-n", pod_netns, "addr", "add", &ipn, "dev", "eth0"])?;
    ip(&["-n", pod_netns, "link", "set", "eth0", "up"])?;
    ip(&[
        "-n",
        pod_netns,
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])?;
    ip(&[
        "-n",
        pod_netns,
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])?;
    ip(&[
        "-n",
        pod_netns,
        "neigh",
        "replace",
        "169.254.1.1",
        "lladdr",
        &mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    // Node side.
    sysctl(node, &format!("net.ipv4.conf.{host_veth}.rp_filter"), "0")?;
    ip(&["-n", node, "link", "set", host_veth, "up"])?;
    ip(&[
        "-n", node, "route", "replace", &ips, "dev", host_veth, "scope", "link",
    ])?;
    Ok(())
}

/// Remove the pod's link (its peer dies with it) and route; Ok if absent.
pub fn remove_pod(node: &str, host_veth: &str, pod_ip: Ipv4Addr) -> Result<(), NetError> {
    let links = list_links(node).unwrap_or_default();
    if links.iter().any(|l| l == host_veth) {
        ip(&["-n", node, "link", "delete", host_veth])?;
    }
    let _ = ip(&["-n", node, "route", "delete", &pod_ip.to_string()]);
    Ok(())
}

/// Policy-routing table whose only route sends everything into the TUN.
pub const SVC_TABLE: &str = "100";
/// Priorities: `iif <tun> lookup main` first, then ICMP, then one rule per
/// (protocol, targetPort) from [`RULE_BASE`] on.
pub const PRIO_IIF: u32 = 100;
pub const PRIO_ICMP: u32 = 101;
pub const RULE_BASE: u32 = 1000;
pub const RULE_MAX: u32 = 30000;

/// Routes and fixed rules of the Services data path in the node netns:
/// service CIDR → `dev`, table 100 default → `dev`, `iif dev lookup main`,
/// `ipproto icmp lookup 100`; rp_filter 0 and IPv6 off on `dev`.
pub fn setup_service_routing(node: &str, service_cidr: &str, dev: &str) -> Result<(), NetError> {
    sysctl(node, &format!("net.ipv4.conf.{dev}.rp_filter"), "0")?;
    let _ = sysctl(node, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1");
    ip(&["-n", node, "link", "set", dev, "up"])?;
    ip(&["-n", node, "route", "replace", service_cidr, "dev", dev])?;
    ip(&[
        "-n", node, "route", "replace", "default", "dev", dev, "table", SVC_TABLE,
    ])?;
    let rules = list_rules(node)?;
    if !rules.iter().any(|r| r.priority == PRIO_IIF) {
        ip(&[
            "-n",
            node,
            "rule",
            "add",
            "priority",
            &PRIO_IIF.to_string(),
            "iif",
            dev,
            "lookup",
            "main",
        ])?;
    }
    if !rules.iter().any(|r| r.priority == PRIO_ICMP) {
        ip(&[
            "-n",
            node,
            "rule",
            "add",
            "priority",
            &PRIO_ICMP.to_string(),
            "ipproto",
            "icmp",
            "lookup",
            SVC_TABLE,
        ])?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Rule {
    pub priority: u32,
    #[serde(default)]
    pub ipproto: Option<String>,
    #[serde(default)]
    pub sport: Option<u16>,
    #[serde(default)]
    pub table: Option<String>,
}

pub fn list_rules(node: &str) -> Result<Vec<Rule>, NetError> {
    let out = ip(&["-n", node, "-j", "rule", "list"])?;
    serde_json::from_str(&out).map_err(|e| NetError {
        context: format!("ip -j rule list in {node}"),
        message: e.to_string(),
    })
}

/// Make the per-(protocol, targetPort) rules exactly `want` (`("tcp", 8080)`…).
/// Returns how many such rules exist afterwards.
pub fn sync_port_rules(
    node: &str,
    want: &std::collections::BTreeSet<(String, u16)>,
) -> Result<usize, NetError> {
    let rules = list_rules(node)?;
    let ours: Vec<&Rule> = rules
        .iter()
        .filter(|r| {
            (RULE_BASE..=RULE_MAX).contains(&r.priority) && r.table.as_deref() == Some(SVC_TABLE)
        })
        .collect();
    let mut have = std::collections::BTreeSet::new();
    for r in &ours {
        let key = (r.ipproto.clone().unwrap_or_default(), r.sport.unwrap_or(0));
        if want.contains(&key) && !have.contains(&key) {
            have.insert(key);
        } else {
            ip(&[
                "-n",
                node,
                "rule",
                "del",
                "priority",
                &r.priority.to_string(),
            ])?;
        }
    }
    let mut used: std::collections::BTreeSet<u32> = ours.iter().map(|r| r.priority).collect();
    let mut next = RULE_BASE;
    for (proto, port) in want.difference(&have) {
        while used.contains(&next) {
            next += 1;
        }
        if next > RULE_MAX {
            return Err(NetError {
                context: "policy rules".into(),
                message: format!(
                    "more than {} (protocol, targetPort) pairs",
                    RULE_MAX - RULE_BASE
                ),
            });
        }
        ip(&[
            "-n",
            node,
            "rule",
            "add",
            "priority",
            &next.to_string(),
            "ipproto",
            proto,
            "sport",
            &port.to_string(),
            "lookup",
            SVC_TABLE,
        ])?;
        used.insert(next);
    }
    Ok(want.len())
}
