//! The node namespace's kernel state for Services, over rtnetlink: the
//! fixed routes and rules of the data path, and one reply rule per
//! (protocol, targetPort) in use, kept in sync with the Services — and put
//! back when someone deletes any of it ([`ServiceRouting::repair`], driven
//! by [`super::repair`]).

use crate::proto::Proto;
use crate::sys::net::{self, Link, NetError, NetnsHandle, Route, Rule};
use crate::sys::nodenet;
use ipnetwork::Ipv4Network;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct ServiceRouting {
    node: Arc<NetnsHandle>,
    dev: String,
    service_cidr: Ipv4Network,
    /// The pairs wanted last and whether they are installed.
    rules_state: tokio::sync::Mutex<RulesState>,
    rules: AtomicUsize,
    /// Repairs made and the last one's description (for `lab status`).
    repairs: std::sync::Mutex<(u64, String)>,
    /// With several nodes: the other nodes' pod subnets and addresses, whose
    /// routes and `to` rules this node needs (set once the node network is
    /// wired; empty with one node).
    peers: std::sync::Mutex<Vec<(Ipv4Network, Ipv4Addr)>>,
}

#[derive(Default)]
struct RulesState {
    /// The pairs last asked for; `None` until the first sync.
    wanted: Option<BTreeSet<(Proto, u16)>>,
    /// Whether `wanted` is what the kernel has (as far as we know).
    installed: bool,
}

/// Something of the Services data path missing from the node netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Missing {
    /// The TUN itself (the data plane's queues re-create it).
    Tun,
    /// The TUN is down.
    TunDown,
    /// `service CIDR dev <tun>` in table main.
    ServiceRoute,
    /// `default dev <tun>` in the Services table.
    TableDefault,
    /// One of the fixed rules, or a per-port reply rule (or a duplicate or
    /// stale reply rule is present).
    Rule(String),
    /// The route to another node's pod subnet (subnet, via that node).
    NodeRoute(Ipv4Network, Ipv4Addr),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Tun => f.write_str("the TUN"),
            Missing::TunDown => f.write_str("the TUN is down"),
            Missing::ServiceRoute => f.write_str("the service-CIDR route"),
            Missing::TableDefault => write!(f, "table {}'s default route", net::SVC_TABLE),
            Missing::Rule(r) => write!(f, "rule {r}"),
            Missing::NodeRoute(cidr, via) => write!(f, "the route to {cidr} via {via}"),
        }
    }
}

/// What differs between the kernel's state (`link`, routes of table main
/// and of [`net::SVC_TABLE`], all rules) and what the data path needs.
/// Pure: the repair loop calls it on every check, and writes only when it
/// finds something.
pub(crate) fn missing(
    dev: &str,
    service_cidr: Ipv4Network,
    link: Option<&Link>,
    main: &[Route],
    svc_table: &[Route],
    rules: &[Rule],
    want: Option<&BTreeSet<(Proto, u16)>>,
) -> Vec<Missing> {
    let mut out = Vec::new();
    match link {
        None => out.push(Missing::Tun),
        Some(l) => {
            if !l.up {
                out.push(Missing::TunDown);
            }
            let through = |r: &Route, dst: Ipv4Network| r.dst == dst && r.oif == Some(l.index);
            if !main.iter().any(|r| through(r, service_cidr)) {
                out.push(Missing::ServiceRoute);
            }
            let default = Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0).expect("/0");
            if !svc_table.iter().any(|r| through(r, default)) {
                out.push(Missing::TableDefault);
            }
        }
    }
    for r in net::fixed_rules(dev) {
        if !rules.contains(&r) {
            out.push(Missing::Rule(r.to_string()));
        }
    }
    if let Some(want) = want {
        match net::plan_port_rules(rules, want) {
            Ok((delete, add)) => out.extend(
                add.iter()
                    .chain(delete.iter())
                    .map(|r| Missing::Rule(r.to_string())),
            ),
            Err(e) => out.push(Missing::Rule(e.to_string())),
        }
    }
    out
}

/// What of the node network's part in this node is missing: the route to
/// each other node's pod subnet via that node (table main) and the rule
/// sending that subnet to table main ahead of the Services reply rules.
/// Pure, like [`missing`].
pub(crate) fn missing_peers(
    main: &[Route],
    rules: &[Rule],
    peers: &[(Ipv4Network, Ipv4Addr)],
) -> Vec<Missing> {
    let mut out = Vec::new();
    for (cidr, via) in peers {
        if !main
            .iter()
            .any(|r| r.dst == *cidr && r.gateway == Some(*via))
        {
            out.push(Missing::NodeRoute(*cidr, *via));
        }
        let rule = nodenet::other_node_rule(*cidr);
        if !rules.contains(&rule) {
            out.push(Missing::Rule(rule.to_string()));
        }
    }
    out
}

impl ServiceRouting {
    /// Install the fixed routes and rules for `dev` (which must exist).
    pub(crate) async fn setup(
        node: Arc<NetnsHandle>,
        service_cidr: Ipv4Network,
        dev: &str,
    ) -> Result<Self, NetError> {
        net::setup_service_routing(&node, service_cidr, dev).await?;
        Ok(ServiceRouting {
            node,
            dev: dev.to_string(),
            service_cidr,
            rules_state: tokio::sync::Mutex::new(RulesState::default()),
            rules: AtomicUsize::new(0),
            repairs: std::sync::Mutex::new((0, String::new())),
            peers: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The other nodes' pod subnets and addresses this node routes to
    /// (what [`ServiceRouting::repair`] puts back when deleted).
    pub(crate) fn set_peers(&self, peers: Vec<(Ipv4Network, Ipv4Addr)>) {
        *self.peers.lock().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    pub(crate) fn netns(&self) -> &str {
        self.node.name()
    }

    /// Make the reply rules exactly `want`. Costs nothing when `want` is
    /// what was installed last; errors are logged (the next change, or the
    /// repair loop, retries).
    pub(crate) async fn sync(&self, want: &BTreeSet<(Proto, u16)>) {
        let mut st = self.rules_state.lock().await;
        if st.installed && st.wanted.as_ref() == Some(want) {
            return;
        }
        st.wanted = Some(want.clone());
        st.installed = false;
        match net::sync_port_rules(&self.node, want).await {
            Ok(n) => {
                self.rules.store(n, Ordering::Relaxed);
                st.installed = true;
            }
            Err(e) => {
                tracing::error!(netns = self.node.name(), error = %e, "syncing policy rules");
            }
        }
    }

    /// Compare the kernel's state with what the data path needs and put
    /// back whatever is missing (link up, routes, fixed rules, the reply
    /// rules last synced). Returns what was missing; an empty list means
    /// nothing was written. [`Missing::Tun`] is returned without touching
    /// anything else: the data plane re-creates the device, and its
    /// appearance triggers the next check.
    pub(crate) async fn repair(&self) -> Result<Vec<Missing>, NetError> {
        let mut st = self.rules_state.lock().await;
        let link = self.node.link(&self.dev).await?;
        // Table main holds the service route and the routes to the other
        // nodes (those stay whatever the TUN's state).
        let main = self.node.routes(net::TABLE_MAIN).await?;
        let svc = if link.is_some() {
            self.node.routes(net::SVC_TABLE).await?
        } else {
            Vec::new()
        };
        let rules = self.node.list_rules().await?;
        let want = st.wanted.clone();
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let peers_gone = missing_peers(&main, &rules, &peers);
        if !peers_gone.is_empty() {
            nodenet::route_to_nodes(&self.node, &peers).await?;
        }
        let mut gone = missing(
            &self.dev,
            self.service_cidr,
            link.as_ref(),
            &main,
            &svc,
            &rules,
            want.as_ref(),
        );
        if gone.is_empty() || gone.contains(&Missing::Tun) {
            gone.extend(peers_gone);
            return Ok(gone);
        }
        net::setup_service_routing(&self.node, self.service_cidr, &self.dev).await?;
        if let Some(want) = &want {
            st.installed = false;
            let n = net::sync_port_rules(&self.node, want).await?;
            self.rules.store(n, Ordering::Relaxed);
            st.installed = true;
        }
        gone.extend(peers_gone);
        Ok(gone)
    }

    /// Record a repair (what was put back).
    pub(crate) fn count_repair(&self, what: &str) {
        let mut r = self.repairs.lock().unwrap_or_else(|e| e.into_inner());
        r.0 += 1;
        r.1 = what.to_string();
    }

    /// `N (last: …)` for `lab status`, or `0`.
    pub(crate) fn repairs(&self) -> String {
        let r = self.repairs.lock().unwrap_or_else(|e| e.into_inner());
        if r.0 == 0 {
            "0".into()
        } else {
            format!("{} (last: {})", r.0, r.1)
        }
    }

    /// Policy rules of the data path: the fixed ones plus one per pair.
    pub(crate) fn rule_count(&self) -> usize {
        self.rules.load(Ordering::Relaxed) + net::fixed_rules(&self.dev).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::net::{RuleSelector, SVC_TABLE, TABLE_MAIN};
    use netlink_packet_route::route::RouteScope;

    fn route(dst: &str, oif: u32, table: u32) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            oif: Some(oif),
            gateway: None,
            scope: RouteScope::Link,
            table,
        }
    }

    fn port_rule(prio: u32, p: Proto, port: u16) -> Rule {
        Rule {
            priority: prio,
            selector: RuleSelector::ProtoSport(p, port),
            table: SVC_TABLE,
        }
    }

    #[test]
    fn finds_each_missing_piece_and_nothing_when_whole() {
        let cidr: Ipv4Network = "10.96.0.0/12".parse().unwrap();
        let link = Link {
            index: 7,
            name: "svc0".into(),
            mac: None,
            up: true,
        };
        let main = vec![
            route("10.244.0.5/32", 3, TABLE_MAIN),
            route("10.96.0.0/12", 7, TABLE_MAIN),
        ];
        let svc = vec![route("0.0.0.0/0", 7, SVC_TABLE)];
        let mut rules: Vec<Rule> = net::fixed_rules("svc0").to_vec();
        rules.push(port_rule(1000, Proto::Tcp, 8080));
        let want: BTreeSet<_> = [(Proto::Tcp, 8080)].into();
        let check = |link: Option<&Link>, main: &[Route], svc: &[Route], rules: &[Rule]| {
            missing("svc0", cidr, link, main, svc, rules, Some(&want))
        };
        assert_eq!(check(Some(&link), &main, &svc, &rules), vec![]);
        // Before the first sync, the reply rules are not judged.
        assert_eq!(
            missing("svc0", cidr, Some(&link), &main, &svc, &rules[..2], None),
            vec![]
        );

        assert_eq!(
            check(Some(&link), &main[..1], &svc, &rules),
            vec![Missing::ServiceRoute]
        );
        // A route to the CIDR through another device does not count.
        let elsewhere = vec![route("10.96.0.0/12", 3, TABLE_MAIN)];
        assert_eq!(
            check(Some(&link), &elsewhere, &svc, &rules),
            vec![Missing::ServiceRoute]
        );
        assert_eq!(
            check(Some(&link), &main, &[], &rules),
            vec![Missing::TableDefault]
        );
        let down = Link {
            up: false,
            ..link.clone()
        };
        assert_eq!(
            check(Some(&down), &main, &svc, &rules),
            vec![Missing::TunDown]
        );
        for i in 0..3 {
            let mut r = rules.clone();
            let gone = r.remove(i);
            assert_eq!(
                check(Some(&link), &main, &svc, &r),
                vec![Missing::Rule(if i < 2 {
                    gone.to_string()
                } else {
                    // Re-added at the first free priority.
                    port_rule(1000, Proto::Tcp, 8080).to_string()
                })],
                "rule {i}"
            );
        }
        // A stale reply rule counts too (it would send replies into the TUN).
        let mut stale = rules.clone();
        stale.push(port_rule(1001, Proto::Udp, 53));
        assert_eq!(
            check(Some(&link), &main, &svc, &stale),
            vec![Missing::Rule(port_rule(1001, Proto::Udp, 53).to_string())]
        );
        // The TUN gone: its routes went with it; the rules by name stay.
        assert_eq!(check(None, &[], &[], &rules), vec![Missing::Tun]);
    }

    #[test]
    fn finds_a_missing_route_or_rule_to_another_nodes_subnet() {
        let peers: Vec<(Ipv4Network, Ipv4Addr)> = vec![
            (
                "10.244.1.0/24".parse().unwrap(),
                Ipv4Addr::new(172, 18, 0, 3),
            ),
            (
                "10.244.2.0/24".parse().unwrap(),
                Ipv4Addr::new(172, 18, 0, 4),
            ),
        ];
        let via = |dst: &str, gw: Ipv4Addr| Route {
            gateway: Some(gw),
            scope: RouteScope::Universe,
            ..route(dst, 9, TABLE_MAIN)
        };
        let main = vec![
            route("172.18.0.0/24", 9, TABLE_MAIN),
            via("10.244.1.0/24", peers[0].1),
            via("10.244.2.0/24", peers[1].1),
        ];
        let rules: Vec<Rule> = peers
            .iter()
            .map(|(c, _)| nodenet::other_node_rule(*c))
            .collect();
        assert_eq!(missing_peers(&main, &rules, &peers), vec![]);
        assert_eq!(missing_peers(&[], &[], &[]), vec![]);
        assert_eq!(
            missing_peers(&[main[0].clone(), main[2].clone()], &rules, &peers),
            vec![Missing::NodeRoute(peers[0].0, peers[0].1)]
        );
        // A route to the subnet through another gateway does not count.
        let wrong = vec![via("10.244.1.0/24", peers[1].1), main[2].clone()];
        assert_eq!(
            missing_peers(&wrong, &rules, &peers),
            vec![Missing::NodeRoute(peers[0].0, peers[0].1)]
        );
        assert_eq!(
            missing_peers(&main, &rules[..1], &peers),
            vec![Missing::Rule(rules[1].to_string())]
        );
    }
}
