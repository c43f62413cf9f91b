//! The node network of a cluster with several nodes, over rtnetlink: a
//! bridge `br0` in the cluster's own namespace (`<cluster>-net`, the
//! "switch"), each node's `eth0` plugged into it by a veth pair (the bridge
//! side is called `node-<i>`), and host-gw routes: every node reaches the
//! other nodes' pod subnets through their `eth0` addresses, as kindnet and
//! flannel's host-gw backend do.
//!
//! Every function is idempotent: a restarted daemon runs them again over
//! what the previous one left.

use super::net::{NetnsHandle, Result, Rule, RuleSelector, TABLE_MAIN, validate_ifname};
use ipnetwork::Ipv4Network;
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};

/// The bridge in the node network's namespace.
pub const BRIDGE: &str = "br0";
/// A node's interface on the node network.
pub const NODE_IFNAME: &str = "eth0";
/// Priority of the `to <other node's pod subnet> lookup main` rules: before
/// the Services reply rules (1000+), so a backend's reply to a client on
/// another node goes straight there; that node's own rules pull it into its
/// proxy, which holds the flow.
pub const PRIO_OTHER_NODES: u32 = 90;

/// The bridge side of node `index`'s veth.
pub fn port_name(index: u32) -> String {
    format!("node-{index}")
}

/// The node network's namespace: IPv6 off, `lo` and `br0` up.
pub async fn setup_bridge(net: &NetnsHandle) -> Result<()> {
    net.sysctls(&[
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
    ])
    .await?;
    net.set_link_up("lo").await?;
    if net.link(BRIDGE).await?.is_none() {
        let msg = LinkMessageBuilder::<LinkBridge>::new(BRIDGE).build();
        net.nl()
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| net.fail(format!("add bridge {BRIDGE}"), e))?;
    }
    net.set_link_up(BRIDGE).await
}

/// Plug a node into the bridge: a veth `port` (in `net`, on `br0`) whose
/// peer is the node's `eth0` with `ip/prefix`. Kept as it is when both ends
/// exist and the address is on `eth0`; otherwise made again.
pub async fn attach_node(
    net: &NetnsHandle,
    node: &NetnsHandle,
    port: &str,
    ip: Ipv4Addr,
    prefix: u8,
) -> Result<()> {
    validate_ifname(port)?;
    let have_port = net.link(port).await?;
    let have_eth = node.link(NODE_IFNAME).await?;
    if have_port.is_none() || have_eth.is_none() {
        // A half left by a crash: start again.
        if have_port.is_some() {
            net.del_link(port).await?;
        }
        if have_eth.is_some() {
            node.del_link(NODE_IFNAME).await?;
        }
        let node_fd = super::netns::open(node.name())?;
        use std::os::fd::AsRawFd;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(NODE_IFNAME)
            .setns_by_fd(node_fd.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(
            netlink_packet_route::link::InfoKind::Veth,
        )
        .name(port)
        .set_info_data(netlink_packet_route::link::InfoData::Veth(
            netlink_packet_route::link::InfoVeth::Peer(peer),
        ))
        .build();
        net.nl().link().add(msg).execute().await.map_err(|e| {
            net.fail(
                format!("add veth {port} (peer {NODE_IFNAME} in {})", node.name()),
                e,
            )
        })?;
    }
    let bridge = net.link_index(BRIDGE).await?;
    let port_index = net.link_index(port).await?;
    net.nl()
        .link()
        .change(
            LinkUnspec::new_with_index(port_index)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| net.fail(format!("set {port} master {BRIDGE} up"), e))?;
    let rp = format!("net/ipv4/conf/{NODE_IFNAME}/rp_filter");
    node.sysctls(&[(&rp, "0")]).await?;
    let eth = node.link_index(NODE_IFNAME).await?;
    node.nl()
        .address()
        .add(eth, IpAddr::V4(ip), prefix)
        .replace()
        .execute()
        .await
        .map_err(|e| node.fail(format!("add address {ip}/{prefix} dev {NODE_IFNAME}"), e))?;
    node.set_index_up(eth, NODE_IFNAME).await
}

/// Node `node`'s routes to the other nodes' pod subnets, each via that
/// node's address (`others`: pod subnet, node address), and the rules that
/// send those subnets to the main table ahead of the Services reply rules.
pub async fn route_to_nodes(node: &NetnsHandle, others: &[(Ipv4Network, Ipv4Addr)]) -> Result<()> {
    let eth = node.link_index(NODE_IFNAME).await?;
    for (cidr, via) in others {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix())
            .gateway(*via)
            .output_interface(eth)
            .table_id(TABLE_MAIN)
            .build();
        node.nl()
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| node.fail(format!("add route {cidr} via {via}"), e))?;
        node.add_rule(&other_node_rule(*cidr)).await?;
    }
    Ok(())
}

/// `to CIDR lookup main` at [`PRIO_OTHER_NODES`].
pub fn other_node_rule(cidr: Ipv4Network) -> Rule {
    Rule {
        priority: PRIO_OTHER_NODES,
        selector: RuleSelector::To(cidr),
        table: TABLE_MAIN,
    }
}

/// Cut node `port` off the node network (`lab fault node/NAME --down`) or
/// plug it back: the bridge side of its veth goes down or up. The node's
/// own `eth0` keeps its address and routes (only its carrier drops).
pub async fn set_port(net: &NetnsHandle, port: &str, up: bool) -> Result<()> {
    if up {
        net.set_link_up(port).await
    } else {
        net.set_link_down(port).await
    }
}
