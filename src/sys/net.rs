//! Links, addresses, routes, neighbours and policy rules over rtnetlink,
//! one netlink socket per network namespace.
//!
//! A netlink socket acts on the namespace it was created in, so
//! [`NetnsHandle::open`] creates it on a thread that entered the netns (a
//! [`NetnsThread`], which stays around for sysctl writes) and then drives
//! the connection on the caller's tokio runtime. Nothing here touches the
//! namespace of the calling thread.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};

use crate::proto::Proto;
use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags};
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::route::{RouteHeader, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use netlink_packet_route::{AddressFamily, IpProtocol};
use rtnetlink::{Handle, IpVersion, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::netns::{self, NetnsError, NetnsThread};

/// Routing table `main`.
pub const TABLE_MAIN: u32 = 254;
/// The pods' next hop: a link-local address that exists nowhere, answered
/// by a permanent neighbour entry for the host-side veth's MAC.
pub const POD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The pod side of every pod veth.
pub const POD_IFNAME: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("netns {netns}: open netlink socket: {source}")]
    Socket {
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("netns {netns}: {op}: {source}")]
    Netlink {
        netns: String,
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netns {netns}: link {link} not found")]
    LinkNotFound { netns: String, link: String },
    #[error("netns {netns}: link {link} has no Ethernet address")]
    NoMac { netns: String, link: String },
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidLinkName { name: String, reason: &'static str },
    #[error("rule {rule} cannot be installed: {reason}")]
    InvalidRule { rule: String, reason: &'static str },
    #[error("{}", teardown_message(.0))]
    Teardown(Vec<NetError>),
}

fn teardown_message(errs: &[NetError]) -> String {
    let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    format!("{} teardown error(s): {}", errs.len(), all.join("; "))
}

impl NetError {
    /// The kernel's errno for a failed netlink request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netlink {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| -c.get()),
            _ => None,
        }
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Check a Linux interface name (`dev_valid_name`): 1-15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > 15 {
        "longer than 15 bytes"
    } else if name == "." || name == ".." {
        "reserved"
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
    {
        "contains '/', ':' or whitespace"
    } else {
        return Ok(());
    };
    Err(NetError::InvalidLinkName {
        name: name.to_string(),
        reason,
    })
}

/// A link as seen in one netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub up: bool,
}

/// An IPv4 route as listed by [`NetnsHandle::routes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Network,
    pub oif: Option<u32>,
    pub gateway: Option<Ipv4Addr>,
    pub scope: RouteScope,
    pub table: u32,
}

fn to_netlink(p: Proto) -> IpProtocol {
    match p {
        Proto::Tcp => IpProtocol::Tcp,
        Proto::Udp => IpProtocol::Udp,
    }
}

fn from_netlink(p: IpProtocol) -> Option<Proto> {
    match p {
        IpProtocol::Tcp => Some(Proto::Tcp),
        IpProtocol::Udp => Some(Proto::Udp),
        _ => None,
    }
}

/// What an IPv4 policy rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuleSelector {
    /// `from all` (the kernel's default rules).
    All,
    /// `iif DEV`.
    Iif(String),
    /// `ipproto icmp`.
    Icmp,
    /// `ipproto P sport PORT`.
    ProtoSport(Proto, u16),
    /// `to CIDR` (a node's rule sending traffic for another node's pods
    /// straight to the main table).
    To(Ipv4Network),
    /// Anything else found in the kernel (listed, never installed).
    Other(String),
}

/// An IPv4 policy rule: `priority PRIO <selector> lookup TABLE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    pub priority: u32,
    pub selector: RuleSelector,
    /// Table looked up; 0 for rules whose action is not a table lookup.
    pub table: u32,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.priority)?;
        match &self.selector {
            RuleSelector::All => f.write_str("from all")?,
            RuleSelector::Iif(d) => write!(f, "from all iif {d}")?,
            RuleSelector::Icmp => f.write_str("from all ipproto icmp")?,
            RuleSelector::ProtoSport(p, s) => write!(f, "from all ipproto {p} sport {s}")?,
            RuleSelector::To(c) => write!(f, "from all to {c}")?,
            RuleSelector::Other(o) => write!(f, "{o}")?,
        }
        write!(f, " lookup {}", self.table)
    }
}

/// The result of [`add_pod`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLink {
    pub pod_netns: String,
    pub pod_ip: Ipv4Addr,
    pub host_veth: String,
    pub host_index: u32,
    pub host_mac: [u8; 6],
    /// Index of `eth0` inside the pod netns.
    pub pod_index: u32,
}

/// An rtnetlink handle bound to one named netns, plus a thread inside it
/// for sysctls.
pub struct NetnsHandle {
    name: String,
    handle: Handle,
    thread: NetnsThread,
}

impl fmt::Debug for NetnsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetnsHandle")
            .field("netns", &self.name)
            .finish()
    }
}

fn mac_of(attrs: &[LinkAttribute]) -> Option<[u8; 6]> {
    attrs.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
        _ => None,
    })
}

fn link_from(msg: &netlink_packet_route::link::LinkMessage) -> Link {
    Link {
        index: msg.header.index,
        name: msg
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_default(),
        mac: mac_of(&msg.attributes),
        up: msg.header.flags.contains(LinkFlags::Up),
    }
}

fn route_table(msg: &netlink_packet_route::route::RouteMessage) -> u32 {
    use netlink_packet_route::route::RouteAttribute;
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(msg.header.table as u32)
}

impl NetnsHandle {
    /// Open a netlink connection inside the named netns (or namespace path).
    /// Must be called within a tokio runtime, which drives the connection.
    pub async fn open(netns: &str) -> Result<Self> {
        let thread = NetnsThread::spawn_async(netns).await?;
        let rt = tokio::runtime::Handle::current();
        // The socket is created (and registered with the runtime's reactor)
        // on the thread inside the netns, so it belongs to that netns.
        let (conn, handle, _unsolicited) = thread
            .run_async(move || {
                let _rt = rt.enter();
                rtnetlink::new_connection()
            })
            .await?
            .map_err(|source| NetError::Socket {
                netns: netns.to_string(),
                source,
            })?;
        // Ends by itself once every clone of `handle` is dropped.
        tokio::spawn(conn);
        Ok(NetnsHandle {
            name: netns.to_string(),
            handle,
            thread,
        })
    }

    /// The raw rtnetlink handle (tests make requests not wrapped here).
    #[cfg(test)]
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The rtnetlink handle, for requests made in other `sys` modules.
    pub(crate) fn nl(&self) -> &Handle {
        &self.handle
    }

    /// An error of operation `op` in this netns.
    pub(crate) fn fail(&self, op: impl Into<String>, source: rtnetlink::Error) -> NetError {
        self.err(op, source)
    }

    fn err(&self, op: impl Into<String>, source: rtnetlink::Error) -> NetError {
        NetError::Netlink {
            netns: self.name.clone(),
            op: op.into(),
            source,
        }
    }

    /// Write `net.*` sysctls in this netns, in order.
    pub async fn sysctls(&self, pairs: &[(&str, &str)]) -> Result<()> {
        Ok(self.thread.write_sysctls(pairs).await?)
    }

    #[cfg(test)]
    pub async fn read_sysctl(&self, key: &str) -> Result<String> {
        Ok(self.thread.read_sysctl(key).await?)
    }

    /// The link called `name`, if any.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let got = self
            .handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await;
        match got {
            Ok(m) => Ok(m.as_ref().map(link_from)),
            Err(e) => {
                let e = self.err(format!("get link {name}"), e);
                if e.errno() == Some(libc::ENODEV) {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The index of link `name`; [`NetError::LinkNotFound`] if absent.
    pub async fn link_index(&self, name: &str) -> Result<u32> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| NetError::LinkNotFound {
                netns: self.name.clone(),
                link: name.to_string(),
            })
    }

    /// All links of this netns.
    #[cfg(test)]
    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list links", e))?;
        Ok(msgs.iter().map(link_from).collect())
    }

    /// Names of all links of this netns.
    #[cfg(test)]
    pub async fn list_links(&self) -> Result<Vec<String>> {
        Ok(self.links().await?.into_iter().map(|l| l.name).collect())
    }

    /// `ip link set NAME up`.
    pub async fn set_link_up(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        self.handle
            .link()
            .change(LinkUnspec::new_with_name(name).up().build())
            .execute()
            .await
            .map_err(|e| self.err(format!("set link {name} up"), e))
    }

    /// `ip link set NAME down` (`lab fault pod/NAME --down`).
    pub async fn set_link_down(&self, name: &str) -> Result<()> {
        validate_ifname(name)?;
        self.handle
            .link()
            .change(LinkUnspec::new_with_name(name).down().build())
            .execute()
            .await
            .map_err(|e| self.err(format!("set link {name} down"), e))
    }

    /// `tc qdisc replace dev NAME root tbf rate RATE burst … limit …`: a
    /// token bucket on the link's egress (built as raw TCA_TBF_* attributes;
    /// rtnetlink has no tbf type). Burst: 20 ms at the rate, at least 16 KB;
    /// queue limit: 100 ms at the rate plus the burst.
    pub async fn set_tbf(&self, name: &str, bits_per_second: u64) -> Result<()> {
        use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
        use rtnetlink::packet_core::{
            DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
        };
        let index = self.link_index(name).await?;
        let bytes_per_s = (bits_per_second / 8).max(1);
        let burst = (bytes_per_s / 50).max(16_000).min(u64::from(u32::MAX)) as u32;
        let limit = (bytes_per_s / 10 + u64::from(burst)).min(u64::from(u32::MAX)) as u32;
        // struct tc_tbf_qopt: rate (tc_ratespec, 12 bytes), peakrate (12),
        // limit, buffer, mtu (u32 each); native byte order.
        let mut parms = vec![0u8; 36];
        parms[1] = 1; // rate.linklayer = TC_LINKLAYER_ETHERNET (no rate table)
        let rate32 = bytes_per_s.min(u64::from(u32::MAX)) as u32;
        parms[8..12].copy_from_slice(&rate32.to_ne_bytes());
        parms[24..28].copy_from_slice(&limit.to_ne_bytes());
        let mut options = vec![
            TcOption::Other(DefaultNla::new(1, parms)), // TCA_TBF_PARMS
            TcOption::Other(DefaultNla::new(6, burst.to_ne_bytes().to_vec())), // TCA_TBF_BURST
        ];
        if bytes_per_s > u64::from(u32::MAX) {
            // TCA_TBF_RATE64
            options.push(TcOption::Other(DefaultNla::new(
                4,
                bytes_per_s.to_ne_bytes().to_vec(),
            )));
        }
        let mut msg = TcMessage::with_index(index as i32);
        msg.header.parent = TcHandle::ROOT;
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.attributes.push(TcAttribute::Kind("tbf".to_string()));
        msg.attributes.push(TcAttribute::Options(options));
        let mut req = NetlinkMessage::from(
            netlink_packet_route::RouteNetlinkMessage::NewQueueDiscipline(msg),
        );
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        let op = format!("add tbf qdisc on {name}");
        let mut handle = self.handle.clone();
        let mut resp = handle.request(req).map_err(|e| self.err(op.clone(), e))?;
        use futures::StreamExt;
        while let Some(m) = resp.next().await {
            if let rtnetlink::packet_core::NetlinkPayload::Error(e) = m.payload
                && e.code.is_some()
            {
                return Err(self.err(op, rtnetlink::Error::NetlinkError(e)));
            }
        }
        Ok(())
    }

    /// Remove the root qdisc of `name` (back to the default); Ok(false) if
    /// it had none of its own.
    pub async fn del_root_qdisc(&self, name: &str) -> Result<bool> {
        use netlink_packet_route::tc::TcHandle;
        let index = self.link_index(name).await?;
        let mut req = self.handle.qdisc().del(index as i32);
        req.message_mut().header.parent = TcHandle::ROOT;
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(e.raw_code().abs(), libc::ENOENT | libc::EINVAL) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.err(format!("delete root qdisc of {name}"), e)),
        }
    }

    pub(crate) async fn set_index_up(&self, index: u32, name: &str) -> Result<()> {
        self.handle
            .link()
            .change(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| self.err(format!("set link {name} up"), e))
    }

    /// Delete link `name`; Ok(false) if it does not exist.
    pub async fn del_link(&self, name: &str) -> Result<bool> {
        match self.link(name).await? {
            None => Ok(false),
            Some(l) => self.del_link_index(l.index, name).await,
        }
    }

    async fn del_link_index(&self, index: u32, name: &str) -> Result<bool> {
        match self.handle.link().del(index).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = self.err(format!("delete link {name}"), e);
                if e.errno() == Some(libc::ENODEV) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `ip route replace CIDR dev DEV scope link table TABLE` (idempotent).
    pub async fn add_route_dev(&self, cidr: Ipv4Network, dev: &str, table: u32) -> Result<()> {
        let index = self.link_index(dev).await?;
        self.add_route_index(cidr, index, dev, table).await
    }

    async fn add_route_index(
        &self,
        cidr: Ipv4Network,
        index: u32,
        dev: &str,
        table: u32,
    ) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix())
            .output_interface(index)
            .scope(RouteScope::Link)
            .table_id(table)
            .build();
        self.replace_route(msg, || format!("add route {cidr} dev {dev} table {table}"))
            .await
    }

    /// `ip route replace …` of a built message.
    async fn replace_route(
        &self,
        msg: netlink_packet_route::route::RouteMessage,
        op: impl FnOnce() -> String,
    ) -> Result<()> {
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| self.err(op(), e))
    }

    /// `ip route del CIDR [dev DEV] table TABLE`; Ok(false) if no such route.
    #[cfg(test)]
    pub async fn del_route(
        &self,
        cidr: Ipv4Network,
        dev: Option<&str>,
        table: u32,
    ) -> Result<bool> {
        let oif = match dev {
            Some(d) => match self.link(d).await? {
                Some(l) => Some(l.index),
                // A route through a missing device cannot exist.
                None => return Ok(false),
            },
            None => None,
        };
        self.del_route_oif(cidr, oif, table).await
    }

    async fn del_route_oif(&self, cidr: Ipv4Network, oif: Option<u32>, table: u32) -> Result<bool> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix())
            .table_id(table)
            .scope(RouteScope::NoWhere)
            .protocol(RouteProtocol::Unspec)
            .kind(RouteType::Unspec);
        if let Some(i) = oif {
            b = b.output_interface(i);
        }
        match self.handle.route().del(b.build()).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = self.err(format!("delete route {cidr} table {table}"), e);
                if e.errno() == Some(libc::ESRCH) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `ip route replace unreachable CIDR` in table main (idempotent).
    pub async fn add_unreachable_route(&self, cidr: Ipv4Network) -> Result<()> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(cidr.network(), cidr.prefix())
            .kind(RouteType::Unreachable)
            .scope(RouteScope::Universe)
            .table_id(TABLE_MAIN)
            .build();
        self.replace_route(msg, || format!("add route unreachable {cidr}"))
            .await
    }

    /// IPv4 unicast routes of one table.
    pub async fn routes(&self, table: u32) -> Result<Vec<Route>> {
        use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
        let msgs: Vec<RouteMessage> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list routes", e))?;
        let mut out = Vec::new();
        for m in msgs {
            if m.header.address_family != AddressFamily::Inet
                || m.header.kind != RouteType::Unicast
                || route_table(&m) != table
            {
                continue;
            }
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let (mut oif, mut gateway) = (None, None);
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    _ => {}
                }
            }
            let Ok(dst) = Ipv4Network::new(dst, m.header.destination_prefix_length) else {
                continue;
            };
            out.push(Route {
                dst,
                oif,
                gateway,
                scope: m.header.scope,
                table,
            });
        }
        Ok(out)
    }

    fn rule_message(rule: &Rule, for_add: bool) -> Result<RuleMessage> {
        let mut m = RuleMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.action = RuleAction::ToTable;
        if rule.table > 255 {
            m.header.table = RouteHeader::RT_TABLE_UNSPEC;
            m.attributes.push(RuleAttribute::Table(rule.table));
        } else {
            m.header.table = rule.table as u8;
        }
        m.attributes.push(RuleAttribute::Priority(rule.priority));
        match &rule.selector {
            RuleSelector::All => {}
            RuleSelector::Iif(dev) => {
                validate_ifname(dev)?;
                m.attributes.push(RuleAttribute::Iifname(dev.clone()));
            }
            RuleSelector::Icmp => m
                .attributes
                .push(RuleAttribute::IpProtocol(IpProtocol::Icmp)),
            RuleSelector::To(cidr) => {
                m.header.dst_len = cidr.prefix();
                m.attributes
                    .push(RuleAttribute::Destination(IpAddr::V4(cidr.network())));
            }
            RuleSelector::ProtoSport(p, port) => {
                m.attributes.push(RuleAttribute::IpProtocol(to_netlink(*p)));
                m.attributes
                    .push(RuleAttribute::SourcePortRange(RulePortRange {
                        start: *port,
                        end: *port,
                    }));
            }
            RuleSelector::Other(_) if for_add => {
                return Err(NetError::InvalidRule {
                    rule: rule.to_string(),
                    reason: "unsupported selector",
                });
            }
            // Deleting a rule we could not parse: match priority and table.
            RuleSelector::Other(_) => m.header.action = RuleAction::Unspec,
        }
        if rule.table == 0 {
            m.header.action = RuleAction::Unspec;
        }
        Ok(m)
    }

    /// `ip rule add priority P <selector> lookup T`. Ok(false) if exactly
    /// this rule already exists.
    pub async fn add_rule(&self, rule: &Rule) -> Result<bool> {
        if rule.table == 0 {
            return Err(NetError::InvalidRule {
                rule: rule.to_string(),
                reason: "table 0",
            });
        }
        let mut req = self.handle.rule().add();
        *req.message_mut() = Self::rule_message(rule, true)?;
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = self.err(format!("add rule {rule}"), e);
                if e.errno() == Some(libc::EEXIST) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// `ip rule del …` matching priority, selector and table; Ok(false) if
    /// no such rule.
    pub async fn del_rule(&self, rule: &Rule) -> Result<bool> {
        let msg = Self::rule_message(rule, false)?;
        match self.handle.rule().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(e) => {
                let e = self.err(format!("delete rule {rule}"), e);
                if e.errno() == Some(libc::ENOENT) {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// All IPv4 policy rules, in the kernel's order (by priority).
    pub async fn list_rules(&self) -> Result<Vec<Rule>> {
        let msgs: Vec<RuleMessage> = self
            .handle
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.err("list rules", e))?;
        Ok(msgs.iter().map(parse_rule).collect())
    }
}

fn is_full_port_mask(nla: &rtnetlink::packet_core::DefaultNla) -> bool {
    use rtnetlink::packet_core::Nla;
    const FRA_SPORT_MASK: u16 = 28;
    const FRA_DPORT_MASK: u16 = 29;
    let mut value = [0u8; 2];
    if !matches!(nla.kind(), FRA_SPORT_MASK | FRA_DPORT_MASK) || nla.value_len() != 2 {
        return false;
    }
    nla.emit_value(&mut value);
    value == [0xff, 0xff]
}

fn parse_rule(m: &RuleMessage) -> Rule {
    let mut priority = 0;
    let mut table = m.header.table as u32;
    let (mut iif, mut proto, mut sport, mut dst) = (None, None, None, None);
    let mut other = Vec::new();
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            // Always reported; u32::MAX means "not set".
            RuleAttribute::Protocol(_)
            | RuleAttribute::SuppressPrefixLen(u32::MAX)
            | RuleAttribute::SuppressIfGroup(u32::MAX) => {}
            // Kernels ≥ 6.15 report FRA_SPORT_MASK / FRA_DPORT_MASK with
            // each port range; the full mask means "exactly the range".
            RuleAttribute::Other(nla) if is_full_port_mask(nla) => {}
            RuleAttribute::Iifname(d) => iif = Some(d.clone()),
            RuleAttribute::IpProtocol(p) => proto = Some(*p),
            RuleAttribute::SourcePortRange(r) => sport = Some(*r),
            RuleAttribute::Destination(IpAddr::V4(a)) => {
                dst = Ipv4Network::new(*a, m.header.dst_len).ok();
            }
            a => other.push(format!("{a:?}")),
        }
    }
    let known = [
        iif.as_ref().map(|d| format!("iif {d}")),
        proto.map(|p| format!("ipproto {p:?}")),
        sport.map(|r| format!("sport {}-{}", r.start, r.end)),
    ];
    if m.header.action != RuleAction::ToTable {
        table = 0;
        other.push(format!("action {:?}", m.header.action));
    }
    if m.header.src_len != 0 || (m.header.dst_len != 0 && dst.is_none()) || m.header.tos != 0 {
        other.push(format!(
            "src_len {} dst_len {} tos {}",
            m.header.src_len, m.header.dst_len, m.header.tos
        ));
    }
    let selector = match (iif, proto, sport) {
        _ if !other.is_empty() => None,
        (None, None, None) if dst.is_some() => dst.map(RuleSelector::To),
        _ if dst.is_some() => None,
        (None, None, None) => Some(RuleSelector::All),
        (Some(d), None, None) => Some(RuleSelector::Iif(d)),
        (None, Some(IpProtocol::Icmp), None) => Some(RuleSelector::Icmp),
        (None, Some(p), Some(r)) if r.start == r.end => {
            from_netlink(p).map(|p| RuleSelector::ProtoSport(p, r.start))
        }
        _ => None,
    };
    let selector = selector.unwrap_or_else(|| {
        let desc: Vec<String> = known.into_iter().flatten().chain(other).collect();
        RuleSelector::Other(desc.join(" "))
    });
    Rule {
        priority,
        selector,
        table,
    }
}

/// The node namespace's sysctls: IPv6 off, rp_filter off, forwarding on.
pub const NODE_SYSCTLS: [(&str, &str); 5] = [
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.ip_forward", "1"),
];

/// Configure a cluster's node netns: `lo` up, IPv4 forwarding on, reverse
/// path filtering off (`all`, `default`), IPv6 off (`all`, `default`, so
/// links created later start without it), and an `unreachable` route for
/// the whole pod CIDR: live pods have more specific /32 routes, so a packet
/// for an address no pod holds (a deleted pod's old IP) gets ICMP
/// host-unreachable at once instead of bouncing between the main table and
/// the Services TUN until its TTL runs out.
pub async fn setup_node(node: &NetnsHandle, pod_cidr: Ipv4Network) -> Result<()> {
    node.sysctls(&NODE_SYSCTLS).await?;
    node.set_link_up("lo").await?;
    node.add_unreachable_route(pod_cidr).await
}

/// Policy-routing table whose only route sends everything into the TUN.
pub const SVC_TABLE: u32 = 100;
/// Priority of `iif <tun> lookup main`: packets leaving the TUN skip the
/// service table.
pub const PRIO_IIF: u32 = 100;
/// Priority of `ipproto icmp lookup 100`: ICMP errors from pods go through
/// the NAT so it can translate them.
pub const PRIO_ICMP: u32 = 101;
/// The per-(protocol, targetPort) reply rules take priorities from here...
pub const RULE_BASE: u32 = 1000;
/// ...to here.
pub const RULE_MAX: u32 = 30000;

/// The fixed routes and rules of the Services data path in the node netns:
/// rp_filter 0 and IPv6 off on `dev`, `dev` up, service CIDR → `dev`,
/// table [`SVC_TABLE`] default → `dev`, `iif dev lookup main` and
/// `ipproto icmp lookup 100`. Idempotent: what exists is kept.
pub async fn setup_service_routing(
    node: &NetnsHandle,
    service_cidr: Ipv4Network,
    dev: &str,
) -> Result<()> {
    validate_ifname(dev)?;
    let rp = format!("net/ipv4/conf/{dev}/rp_filter");
    let v6 = format!("net/ipv6/conf/{dev}/disable_ipv6");
    node.sysctls(&[(&rp, "0"), (&v6, "1")]).await?;
    node.set_link_up(dev).await?;
    node.add_route_dev(service_cidr, dev, TABLE_MAIN).await?;
    let default = Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0).expect("/0");
    node.add_route_dev(default, dev, SVC_TABLE).await?;
    for rule in fixed_rules(dev) {
        node.add_rule(&rule).await?;
    }
    Ok(())
}

/// The two rules every Services data path has (see [`setup_service_routing`]).
pub fn fixed_rules(dev: &str) -> [Rule; 2] {
    [
        Rule {
            priority: PRIO_IIF,
            selector: RuleSelector::Iif(dev.to_string()),
            table: TABLE_MAIN,
        },
        Rule {
            priority: PRIO_ICMP,
            selector: RuleSelector::Icmp,
            table: SVC_TABLE,
        },
    ]
}

/// What [`sync_port_rules`] must do to turn the rules in the kernel into
/// exactly one `ipproto P sport PORT lookup 100` rule per wanted pair: the
/// rules to delete (ours but unwanted or duplicate) and to add (each with a
/// free priority in [`RULE_BASE`]..=[`RULE_MAX`]). Rules outside that range
/// or for another table are not ours and are left alone.
pub fn plan_port_rules(
    have: &[Rule],
    want: &std::collections::BTreeSet<(Proto, u16)>,
) -> Result<(Vec<Rule>, Vec<Rule>)> {
    let ours = have
        .iter()
        .filter(|r| (RULE_BASE..=RULE_MAX).contains(&r.priority) && r.table == SVC_TABLE);
    let mut kept = std::collections::BTreeSet::new();
    let mut used = std::collections::BTreeSet::new();
    let mut delete = Vec::new();
    for r in ours {
        used.insert(r.priority);
        match &r.selector {
            RuleSelector::ProtoSport(p, port)
                if want.contains(&(*p, *port)) && kept.insert((*p, *port)) => {}
            _ => delete.push(r.clone()),
        }
    }
    let mut add = Vec::new();
    let mut next = RULE_BASE;
    for (proto, port) in want.difference(&kept) {
        while used.contains(&next) {
            next += 1;
        }
        if next > RULE_MAX {
            return Err(NetError::InvalidRule {
                rule: format!("ipproto {proto} sport {port}"),
                reason: "more (protocol, targetPort) pairs than free rule priorities",
            });
        }
        used.insert(next);
        add.push(Rule {
            priority: next,
            selector: RuleSelector::ProtoSport(*proto, *port),
            table: SVC_TABLE,
        });
    }
    Ok((delete, add))
}

/// Make the per-(protocol, targetPort) reply rules exactly `want`. Adds
/// before it deletes, so a pair that stays never loses its rule. Returns how
/// many such rules exist afterwards.
pub async fn sync_port_rules(
    node: &NetnsHandle,
    want: &std::collections::BTreeSet<(Proto, u16)>,
) -> Result<usize> {
    let have = node.list_rules().await?;
    let (delete, add) = plan_port_rules(&have, want)?;
    for r in &add {
        node.add_rule(r).await?;
    }
    for r in &delete {
        node.del_rule(r).await?;
    }
    Ok(want.len())
}

/// Wire a pod netns to the node: a veth pair `host_veth` (node) ↔ `eth0`
/// (pod), the pod's `/32` address, its link route and default route via
/// [`POD_GATEWAY`] with a permanent neighbour entry for `host_veth`'s MAC,
/// and a `/32` route to the pod in the node. IPv6 is off on both ends and
/// rp_filter off on `host_veth`. On failure the veth is removed again, so
/// nothing is left half-configured.
pub async fn add_pod(
    node: &NetnsHandle,
    pod_netns: &str,
    host_veth: &str,
    pod_ip: Ipv4Addr,
) -> Result<PodLink> {
    validate_ifname(host_veth)?;
    let pod = NetnsHandle::open(pod_netns).await?;
    // IPv6 off before eth0 exists, so it never gets a link-local address.
    pod.sysctls(&[
        ("net.ipv6.conf.all.disable_ipv6", "1"),
        ("net.ipv6.conf.default.disable_ipv6", "1"),
    ])
    .await?;
    let pod_fd = netns::open(pod_netns)?;
    {
        use std::os::fd::AsRawFd;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(POD_IFNAME)
            .setns_by_fd(pod_fd.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host_veth)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        node.handle.link().add(msg).execute().await.map_err(|e| {
            node.err(
                format!("add veth {host_veth} (peer {POD_IFNAME} in netns {pod_netns})"),
                e,
            )
        })?;
    }
    drop(pod_fd);
    match configure_pod(node, &pod, host_veth, pod_ip).await {
        Ok(link) => {
            tracing::debug!(node = %node.name, pod_netns, host_veth, %pod_ip, "pod network added");
            Ok(link)
        }
        Err(e) => {
            if let Err(undo) = node.del_link(host_veth).await {
                tracing::warn!(error = %undo, "removing {host_veth} after a failed add_pod");
            }
            Err(e)
        }
    }
}

async fn configure_pod(
    node: &NetnsHandle,
    pod: &NetnsHandle,
    host_veth: &str,
    pod_ip: Ipv4Addr,
) -> Result<PodLink> {
    let host = node
        .link(host_veth)
        .await?
        .ok_or_else(|| NetError::LinkNotFound {
            netns: node.name.clone(),
            link: host_veth.to_string(),
        })?;
    let host_mac = host.mac.ok_or_else(|| NetError::NoMac {
        netns: node.name.clone(),
        link: host_veth.to_string(),
    })?;
    let pod_index = pod.link_index(POD_IFNAME).await?;

    // Node side: sysctls before the link goes up.
    let rp = format!("net/ipv4/conf/{host_veth}/rp_filter");
    let v6 = format!("net/ipv6/conf/{host_veth}/disable_ipv6");
    node.sysctls(&[(&v6, "1"), (&rp, "0")]).await?;
    pod.sysctls(&[("net/ipv6/conf/eth0/disable_ipv6", "1")])
        .await?;

    // Pod side.
    pod.set_link_up("lo").await?;
    pod.handle
        .address()
        .add(pod_index, IpAddr::V4(pod_ip), 32)
        .replace()
        .execute()
        .await
        .map_err(|e| pod.err(format!("add address {pod_ip}/32 dev {POD_IFNAME}"), e))?;
    pod.set_index_up(pod_index, POD_IFNAME).await?;
    let gw = Ipv4Network::new(POD_GATEWAY, 32).expect("/32");
    pod.add_route_index(gw, pod_index, POD_IFNAME, TABLE_MAIN)
        .await?;
    let default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(POD_GATEWAY)
        .output_interface(pod_index)
        .build();
    pod.handle
        .route()
        .add(default)
        .replace()
        .execute()
        .await
        .map_err(|e| pod.err(format!("add default route via {POD_GATEWAY}"), e))?;
    pod.handle
        .neighbours()
        .add(pod_index, IpAddr::V4(POD_GATEWAY))
        .link_layer_address(&host_mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(|e| pod.err(format!("add neighbour {POD_GATEWAY} dev {POD_IFNAME}"), e))?;

    // Node side: up, and the /32 route to the pod.
    node.set_index_up(host.index, host_veth).await?;
    let dst = Ipv4Network::new(pod_ip, 32).expect("/32");
    node.add_route_index(dst, host.index, host_veth, TABLE_MAIN)
        .await?;

    Ok(PodLink {
        pod_netns: pod.name.clone(),
        pod_ip,
        host_veth: host_veth.to_string(),
        host_index: host.index,
        host_mac,
        pod_index,
    })
}

/// Undo [`add_pod`] on the node side: the `/32` route to `pod_ip` through
/// `host_veth` and the veth itself (its peer in the pod dies with it). Ok if
/// already gone. A route to `pod_ip` through another link (the address was
/// reused) is left alone. Every step is tried; all errors are returned.
pub async fn remove_pod(node: &NetnsHandle, host_veth: &str, pod_ip: Ipv4Addr) -> Result<()> {
    let mut errors = Vec::new();
    match node.link(host_veth).await {
        Ok(None) => {}
        Ok(Some(link)) => {
            let dst = Ipv4Network::new(pod_ip, 32).expect("/32");
            if let Err(e) = node.del_route_oif(dst, Some(link.index), TABLE_MAIN).await {
                errors.push(e);
            }
            if let Err(e) = node.del_link_index(link.index, host_veth).await {
                errors.push(e);
            }
        }
        Err(e) => errors.push(e),
    }
    tracing::debug!(node = %node.name, host_veth, %pod_ip, errors = errors.len(), "pod network removed");
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.pop().expect("one")),
        _ => Err(NetError::Teardown(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::netns::test_support::{Names, next};
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::process::Command;
    use std::time::Duration;

    /// Every test body is bounded in time.
    async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("test timed out")
    }

    /// A host-veth name unique to this process and test (≤ 15 bytes).
    fn veth(tag: &str) -> String {
        let n = format!("lt{}{}{tag}", std::process::id() % 100_000, next());
        assert!(n.len() <= 15, "{n}");
        n
    }

    fn ip(ns: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(ns)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {ns} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn root_link_names() -> Vec<String> {
        let out = Command::new("ip").args(["-o", "link"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// After a test: its namespaces are gone and none of its links ever
    /// showed up in the root netns.
    fn assert_clean(names: Names, links: &[&str]) {
        let ns = names.0.clone();
        drop(names);
        for n in &ns {
            assert!(!netns::exists(n), "netns {n} left behind");
            assert!(!std::path::Path::new(netns::NETNS_DIR).join(n).exists());
        }
        let root = root_link_names();
        for l in links {
            assert!(!root.iter().any(|r| r == l), "link {l} in the root netns");
        }
    }

    fn mac_str(m: &[u8; 6]) -> String {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// One echo answered within 3 tries of 2 s (the first may wait for
    /// the node's ARP resolution of the pod on a loaded machine).
    fn ping(from: &str, to: Ipv4Addr) -> bool {
        (0..3).any(|_| {
            Command::new("ip")
                .args(["netns", "exec", from, "ping", "-c1", "-W2", "-q"])
                .arg(to.to_string())
                .output()
                .unwrap()
                .status
                .success()
        })
    }

    #[tokio::test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    async fn node_with_two_pods_forwards_and_tears_down() {
        let names = Names::create(3);
        let (node_ns, a, b) = (&names.0[0], &names.0[1], &names.0[2]);
        let (va, vb) = (veth("a"), veth("b"));
        let (ip_a, ip_b) = (Ipv4Addr::new(10, 244, 0, 2), Ipv4Addr::new(10, 244, 0, 3));
        bounded(async {
            let node = NetnsHandle::open(node_ns).await.unwrap();
            setup_node(&node, "10.244.0.0/16".parse().unwrap())
                .await
                .unwrap();
            for (k, v) in NODE_SYSCTLS {
                assert_eq!(node.read_sysctl(k).await.unwrap(), v, "{k}");
            }
            assert!(node.link("lo").await.unwrap().unwrap().up);

            let la = add_pod(&node, a, &va, ip_a).await.unwrap();
            let lb = add_pod(&node, b, &vb, ip_b).await.unwrap();
            assert_eq!(la.host_veth, va);
            assert_ne!(la.host_mac, lb.host_mac);

            // Pod side, as iproute2 sees it.
            for (ns, l, addr) in [(a, &la, ip_a), (b, &lb, ip_b)] {
                let addrs = ip(ns, &["-o", "addr", "show"]);
                assert!(
                    addrs.contains(&format!("eth0    inet {addr}/32")),
                    "{addrs}"
                );
                assert!(!addrs.contains("inet6"), "IPv6 left on: {addrs}");
                let routes = ip(ns, &["route", "show"]);
                assert!(
                    routes.contains("default via 169.254.1.1 dev eth0"),
                    "{routes}"
                );
                assert!(
                    routes
                        .lines()
                        .any(|r| r.starts_with("169.254.1.1 dev eth0") && r.contains("scope link")),
                    "{routes}"
                );
                let neigh = ip(ns, &["neigh", "show"]);
                assert!(
                    neigh.contains(&format!(
                        "169.254.1.1 dev eth0 lladdr {} PERMANENT",
                        mac_str(&l.host_mac)
                    )),
                    "{neigh}"
                );
                let links = ip(ns, &["-o", "link", "show", "up"]);
                assert!(
                    links.contains(": lo:") && links.contains(": eth0@"),
                    "{links}"
                );
                assert_eq!(
                    netns::read_sysctl(ns, "net.ipv6.conf.eth0.disable_ipv6").unwrap(),
                    "1"
                );
            }
            // Node side.
            let routes = ip(node_ns, &["route", "show"]);
            for (v, addr) in [(&va, ip_a), (&vb, ip_b)] {
                assert!(
                    routes
                        .lines()
                        .any(|r| r.starts_with(&format!("{addr} dev {v} "))
                            && r.contains("scope link")),
                    "{routes}"
                );
                let conf = format!("net/ipv4/conf/{v}/rp_filter");
                assert_eq!(node.read_sysctl(&conf).await.unwrap(), "0");
                let conf = format!("net/ipv6/conf/{v}/disable_ipv6");
                assert_eq!(node.read_sysctl(&conf).await.unwrap(), "1");
                assert!(node.link(v).await.unwrap().unwrap().up);
            }
            let mut links = node.list_links().await.unwrap();
            links.sort();
            let mut want = vec!["lo".to_string(), va.clone(), vb.clone()];
            want.sort();
            assert_eq!(links, want);
            let node_routes = node.routes(TABLE_MAIN).await.unwrap();
            assert!(
                node_routes
                    .iter()
                    .any(|r| r.dst == Ipv4Network::new(ip_a, 32).unwrap()
                        && r.oif == Some(la.host_index)
                        && r.scope == RouteScope::Link)
            );

            // Traffic crosses the node: ICMP both ways, then TCP.
            assert!(ping(a, ip_b), "ping {a} -> {ip_b}");
            assert!(ping(b, ip_a), "ping {b} -> {ip_a}");
            let listener = netns::run_in(b, || TcpListener::bind((ip_b, 0)))
                .unwrap()
                .unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = std::thread::spawn(move || {
                let (mut s, peer) = listener.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 5];
                s.read_exact(&mut buf).unwrap();
                s.write_all(&buf).unwrap();
                peer
            });
            let echoed = netns::run_in(a, || {
                let to = SocketAddr::from((ip_b, port));
                let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.write_all(b"hello")?;
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf)?;
                Ok::<_, std::io::Error>(buf)
            })
            .unwrap()
            .unwrap();
            assert_eq!(&echoed, b"hello");
            let peer = server.join().unwrap();
            assert_eq!(peer.ip(), IpAddr::V4(ip_a), "client IP preserved");

            // remove_pod: veth (both ends) and route gone; idempotent.
            remove_pod(&node, &va, ip_a).await.unwrap();
            assert!(node.link(&va).await.unwrap().is_none());
            assert!(!ip(node_ns, &["route", "show"]).contains(&ip_a.to_string()));
            let pod_links = ip(a, &["-o", "link"]);
            assert_eq!(pod_links.lines().count(), 1, "{pod_links}");
            remove_pod(&node, &va, ip_a).await.unwrap();
            assert!(!ping(b, ip_a));
            assert!(ping(b, ip_b));
            // A reused address on another veth is not touched by a stale
            // remove of the old one.
            remove_pod(&node, &va, ip_b).await.unwrap();
            assert!(ip(node_ns, &["route", "show"]).contains(&format!("{ip_b} dev {vb}")));
            remove_pod(&node, &vb, ip_b).await.unwrap();
            assert_eq!(node.list_links().await.unwrap(), vec!["lo".to_string()]);
        })
        .await;
        assert_clean(names, &[&va, &vb, "eth0x"]);
    }

    #[tokio::test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    async fn add_pod_failures_leave_nothing_behind() {
        let names = Names::create(3);
        let (node_ns, a, b) = (&names.0[0], &names.0[1], &names.0[2]);
        let (va, vb) = (veth("a"), veth("b"));
        bounded(async {
            let node = NetnsHandle::open(node_ns).await.unwrap();
            setup_node(&node, "10.244.0.0/16".parse().unwrap())
                .await
                .unwrap();
            let ip_a = Ipv4Addr::new(10, 244, 1, 2);
            // Missing pod netns.
            let e = add_pod(&node, "labt-no-such-netns", &va, ip_a)
                .await
                .unwrap_err();
            assert!(
                matches!(e, NetError::Netns(NetnsError::NotFound { .. })),
                "{e}"
            );
            // Bad interface name.
            let e = add_pod(&node, a, "much-too-long-name", ip_a)
                .await
                .unwrap_err();
            assert!(matches!(e, NetError::InvalidLinkName { .. }), "{e}");
            assert_eq!(node.list_links().await.unwrap(), vec!["lo".to_string()]);
            // Host veth name taken: the existing pod stays intact.
            add_pod(&node, a, &va, ip_a).await.unwrap();
            let e = add_pod(&node, b, &va, Ipv4Addr::new(10, 244, 1, 3))
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
            assert!(
                e.to_string().contains(node_ns),
                "error names the netns: {e}"
            );
            assert!(node.link(&va).await.unwrap().is_some());
            assert_eq!(ip(b, &["-o", "link"]).lines().count(), 1);
            // The pod already has eth0.
            let e = add_pod(&node, a, &vb, Ipv4Addr::new(10, 244, 1, 4))
                .await
                .unwrap_err();
            assert_eq!(e.errno(), Some(libc::EEXIST), "{e}");
            assert!(node.link(&vb).await.unwrap().is_none());

            // Lookups of absent things.
            assert!(node.link("nope0").await.unwrap().is_none());
            assert!(matches!(
                node.link_index("nope0").await,
                Err(NetError::LinkNotFound { .. })
            ));
            assert!(!node.del_link("nope0").await.unwrap());
            remove_pod(&node, "nope0", ip_a).await.unwrap();
            assert!(matches!(
                NetnsHandle::open("labt-no-such-netns").await,
                Err(NetError::Netns(NetnsError::NotFound { .. }))
            ));
        })
        .await;
        assert_clean(names, &[&va, &vb]);
    }

    #[tokio::test]
    #[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
    async fn routes_and_rules_round_trip_with_iproute2() {
        let names = Names::create(1);
        let node_ns = &names.0[0];
        let dev = veth("s"); // a veth: this kernel may lack `dummy`
        bounded(async {
            let node = NetnsHandle::open(node_ns).await.unwrap();
            setup_node(&node, "10.244.0.0/16".parse().unwrap())
                .await
                .unwrap();
            node.handle()
                .link()
                .add(LinkVeth::new(&dev, &format!("{dev}p")).build())
                .execute()
                .await
                .unwrap();
            node.set_link_up(&dev).await.unwrap();
            assert!(node.link(&dev).await.unwrap().unwrap().up);

            // Routes.
            let svc: Ipv4Network = "10.96.0.0/12".parse().unwrap();
            let any: Ipv4Network = "0.0.0.0/0".parse().unwrap();
            node.add_route_dev(svc, &dev, TABLE_MAIN).await.unwrap();
            node.add_route_dev(any, &dev, 100).await.unwrap();
            node.add_route_dev(any, &dev, 100).await.unwrap(); // idempotent
            node.add_route_dev(any, &dev, 1000).await.unwrap();
            let t100 = ip(node_ns, &["route", "show", "table", "100"]);
            assert_eq!(t100.lines().count(), 1, "{t100}");
            assert!(t100.starts_with(&format!("default dev {dev} ")), "{t100}");
            assert!(t100.contains("scope link"), "{t100}");
            assert!(ip(node_ns, &["route", "show", "table", "1000"]).starts_with("default dev"));
            let main = ip(node_ns, &["route", "show"]);
            assert!(main.contains(&format!("10.96.0.0/12 dev {dev} ")), "{main}");
            let r = node.routes(100).await.unwrap();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].dst, any);
            assert_eq!(r[0].scope, RouteScope::Link);
            assert_eq!(node.routes(1000).await.unwrap().len(), 1);

            // Rules.
            let rules = [
                Rule {
                    priority: 100,
                    selector: RuleSelector::Iif(dev.clone()),
                    table: TABLE_MAIN,
                },
                Rule {
                    priority: 101,
                    selector: RuleSelector::Icmp,
                    table: 100,
                },
                Rule {
                    priority: 1000,
                    selector: RuleSelector::ProtoSport(Proto::Tcp, 8080),
                    table: 100,
                },
                Rule {
                    priority: 1001,
                    selector: RuleSelector::ProtoSport(Proto::Udp, 53),
                    table: 100,
                },
                Rule {
                    priority: 1002,
                    selector: RuleSelector::ProtoSport(Proto::Tcp, 9090),
                    table: 1000,
                },
            ];
            let defaults = node.list_rules().await.unwrap();
            assert_eq!(
                defaults,
                vec![
                    Rule {
                        priority: 0,
                        selector: RuleSelector::All,
                        table: 255
                    },
                    Rule {
                        priority: 32766,
                        selector: RuleSelector::All,
                        table: TABLE_MAIN
                    },
                    Rule {
                        priority: 32767,
                        selector: RuleSelector::All,
                        table: 253
                    },
                ]
            );
            for r in &rules {
                assert!(node.add_rule(r).await.unwrap(), "{r}");
                assert!(!node.add_rule(r).await.unwrap(), "{r} twice");
            }
            let listed = node.list_rules().await.unwrap();
            for r in &rules {
                assert!(listed.contains(r), "{r} not in {listed:?}");
            }
            assert_eq!(listed.len(), defaults.len() + rules.len());
            let text = ip(node_ns, &["rule", "list"]);
            for want in [
                format!("100:\tfrom all iif {dev} lookup main"),
                "101:\tfrom all ipproto icmp lookup 100".to_string(),
                "1000:\tfrom all ipproto tcp sport 8080 lookup 100".to_string(),
                "1001:\tfrom all ipproto udp sport 53 lookup 100".to_string(),
                "1002:\tfrom all ipproto tcp sport 9090 lookup 1000".to_string(),
            ] {
                assert!(
                    text.lines().any(|l| l.trim_end() == want),
                    "{want:?} not in\n{text}"
                );
            }
            // The kernel really steers by them.
            let get = ip(
                node_ns,
                &[
                    "route",
                    "get",
                    "10.244.9.9",
                    "ipproto",
                    "tcp",
                    "sport",
                    "8080",
                ],
            );
            assert!(get.contains("table 100"), "{get}");
            // Any other port falls through to main, which has no route.
            let other_port = Command::new("ip")
                .args(["-n", node_ns, "route", "get", "10.244.9.9"])
                .args(["ipproto", "tcp", "sport", "8081"])
                .output()
                .unwrap();
            assert!(!other_port.status.success());

            // Rules made by iproute2 parse to the same values; others are
            // listed as Other and can still be deleted.
            ip(
                node_ns,
                &[
                    "rule", "add", "priority", "2000", "ipproto", "udp", "sport", "7000", "lookup",
                    "100",
                ],
            );
            ip(
                node_ns,
                &[
                    "rule",
                    "add",
                    "priority",
                    "3000",
                    "from",
                    "10.0.0.0/8",
                    "lookup",
                    "100",
                ],
            );
            let listed = node.list_rules().await.unwrap();
            assert!(listed.contains(&Rule {
                priority: 2000,
                selector: RuleSelector::ProtoSport(Proto::Udp, 7000),
                table: 100
            }));
            let other = listed.iter().find(|r| r.priority == 3000).unwrap().clone();
            assert!(
                matches!(other.selector, RuleSelector::Other(_)),
                "{other:?}"
            );
            assert!(node.add_rule(&other).await.is_err());
            assert!(node.del_rule(&other).await.unwrap());

            // Delete: exact match only.
            let wrong_port = Rule {
                priority: 1000,
                selector: RuleSelector::ProtoSport(Proto::Tcp, 8081),
                table: 100,
            };
            assert!(!node.del_rule(&wrong_port).await.unwrap());
            for r in &rules {
                assert!(node.del_rule(r).await.unwrap(), "{r}");
                assert!(!node.del_rule(r).await.unwrap(), "{r} twice");
            }
            node.del_rule(&Rule {
                priority: 2000,
                selector: RuleSelector::ProtoSport(Proto::Udp, 7000),
                table: 100,
            })
            .await
            .unwrap();
            assert_eq!(node.list_rules().await.unwrap(), defaults);
            assert_eq!(ip(node_ns, &["rule", "list"]).lines().count(), 3);

            assert!(node.del_route(svc, Some(&dev), TABLE_MAIN).await.unwrap());
            assert!(!node.del_route(svc, Some(&dev), TABLE_MAIN).await.unwrap());
            assert!(node.del_route(any, None, 100).await.unwrap());
            assert!(node.del_route(any, Some(&dev), 1000).await.unwrap());
            assert!(!node.del_route(any, Some("nope0"), 1000).await.unwrap());
            assert!(node.routes(100).await.unwrap().is_empty());
            assert!(node.del_link(&dev).await.unwrap());
        })
        .await;
        assert_clean(names, &[&dev]);
    }
}
