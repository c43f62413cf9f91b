//! The NAT's flows as `lab flows` shows them: conntrack-style state names,
//! pod names for addresses, Service names for counter indexes, and the
//! filters of `-n`, `--service` and `--pod`. Pure.

use crate::api::flows::{
    FlowEventLine, FlowView, FlowsQuery, Peer, RejectView, ServiceSample, Traffic,
};
use crate::dataplane::conntrack::{Flow, NO_INDEX, Pick, TCP, TcpState, UDP};
use crate::dataplane::events::{EndReason, FlowEvent, FlowEventKind, Reject};
use crate::model::{Kind, Object};
use crate::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Pod IP → `ns/name`.
pub type Pods = HashMap<Ipv4Addr, String>;

/// Every pod with an IP (host-network pods have none here).
pub fn pods(store: &Store) -> Pods {
    store
        .list(Kind::Pod, None)
        .filter_map(|o| {
            let Object::Pod(p) = o else { return None };
            let ip = p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
            Some((
                ip,
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or_default(),
                    p.metadata.name.as_deref().unwrap_or_default()
                ),
            ))
        })
        .collect()
}

/// The names behind the NAT's counter indexes (empty: retired).
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub ports: &'a [String],
    pub services: &'a [String],
}

impl Names<'_> {
    fn get(v: &[String], i: u32) -> Option<&str> {
        if i == NO_INDEX {
            return None;
        }
        v.get(i as usize)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

pub fn proto_name(p: u8) -> String {
    match p {
        TCP => "TCP".into(),
        UDP => "UDP".into(),
        1 => "ICMP".into(),
        n => format!("proto-{n}"),
    }
}

/// nf_conntrack's names for TCP states; UNREPLIED / REPLIED for UDP.
pub fn state_name(f: &Flow) -> &'static str {
    match f.tcp {
        Some(TcpState::SynSent) => "SYN_SENT",
        Some(TcpState::SynRecv) => "SYN_RECV",
        Some(TcpState::Established) => "ESTABLISHED",
        Some(TcpState::FinWait) => "FIN_WAIT",
        Some(TcpState::CloseWait) => "CLOSE_WAIT",
        Some(TcpState::LastAck) => "LAST_ACK",
        Some(TcpState::TimeWait) => "TIME_WAIT",
        Some(TcpState::Close) => "CLOSE",
        None if f.replied => "REPLIED",
        None => "UNREPLIED",
    }
}

pub fn pick_name(p: Pick) -> &'static str {
    match p {
        Pick::Random => "random",
        Pick::Affinity => "affinity",
        Pick::Restored => "restored",
    }
}

pub fn end_name(r: EndReason) -> &'static str {
    match r {
        EndReason::Expired => "expired",
        EndReason::Evicted => "evicted",
        EndReason::Flushed => "flushed",
        EndReason::Reopened => "reopened",
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn peer(ip: Ipv4Addr, port: u16, pods: &Pods) -> Peer {
    Peer {
        ip,
        port,
        pod: pods.get(&ip).cloned(),
    }
}

/// One flow as the user thinks of it, at `now` (the NAT's clock).
pub fn view(f: &Flow, now: Duration, names: Names<'_>, pods: &Pods) -> FlowView {
    let service = Names::get(names.services, f.service).map(str::to_string);
    let port_name = Names::get(names.ports, f.port)
        .and_then(|id| id.rsplit_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    FlowView {
        proto: proto_name(f.orig.proto),
        client: peer(f.orig.src, f.orig.sport, pods),
        service,
        port_name,
        vip: Peer {
            ip: f.orig.dst,
            port: f.orig.dport,
            pod: None,
        },
        backend: peer(f.reply.src, f.reply.sport, pods),
        snat: f
            .snat()
            .then(|| format!("{}:{}", f.reply.dst, f.reply.dport)),
        state: state_name(f).into(),
        age_ms: ms(now.saturating_sub(f.stats.created)),
        idle_ms: ms(now.saturating_sub(f.stats.seen)),
        expires_ms: ms(f.expires.saturating_sub(now)),
        to_backend: Traffic {
            packets: f.stats.packets[0],
            bytes: f.stats.bytes[0],
        },
        to_client: Traffic {
            packets: f.stats.packets[1],
            bytes: f.stats.bytes[1],
        },
        pick: pick_name(f.stats.pick).into(),
        // Which `lab fault`s acted on this flow.
        fault: Some(crate::dataplane::fault::marker_names(f.fault).join(","))
            .filter(|s| !s.is_empty()),
        node: None,
    }
}

pub fn reject_view(r: &Reject, now: Duration, names: Names<'_>, pods: &Pods) -> RejectView {
    RejectView {
        proto: proto_name(r.orig.proto),
        client: peer(r.orig.src, r.orig.sport, pods),
        vip: Peer {
            ip: r.orig.dst,
            port: r.orig.dport,
            pod: None,
        },
        service: r
            .service
            .and_then(|i| Names::get(names.services, i))
            .map(str::to_string),
        reason: r.reason.as_str().into(),
        age_ms: ms(now.saturating_sub(r.at)),
        node: None,
    }
}

/// A flow event as a watch line.
pub fn event_line(e: &FlowEvent, now: Duration, names: Names<'_>, pods: &Pods) -> FlowEventLine {
    match e {
        FlowEvent::Flow { kind, flow, at } => {
            // Ages as of the event, not of the moment it is printed.
            let v = view(flow, (*at).max(flow.stats.seen), names, pods);
            match kind {
                FlowEventKind::New => FlowEventLine::New { flow: v },
                FlowEventKind::Update => FlowEventLine::Update { flow: v },
                FlowEventKind::End(r) => FlowEventLine::End {
                    reason: end_name(*r).into(),
                    flow: v,
                },
            }
        }
        FlowEvent::Reject(r) => FlowEventLine::Reject {
            reject: reject_view(r, now.max(r.at), names, pods),
        },
    }
}

/// What `-n`, `--service` and `--pod` select (see
/// [`crate::api::flows::FlowsQuery`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    namespace: Option<String>,
    service: Option<String>,
    pod: Option<String>,
}

impl Filter {
    pub fn new(q: &FlowsQuery) -> Filter {
        let ns = q.namespace.clone().unwrap_or_else(|| "default".into());
        let qualify = |n: &String| {
            if n.contains('/') {
                n.clone()
            } else {
                format!("{ns}/{n}")
            }
        };
        Filter {
            namespace: q
                .namespace
                .clone()
                .filter(|_| q.service.is_none() && q.pod.is_none()),
            service: q.service.as_ref().map(qualify),
            pod: q.pod.as_ref().map(qualify),
        }
    }

    fn in_ns(&self, name: Option<&str>) -> bool {
        match (&self.namespace, name) {
            (Some(ns), Some(n)) => n.split_once('/').is_some_and(|(a, _)| a == ns),
            _ => false,
        }
    }

    fn matches(&self, service: Option<&str>, pods: [Option<&str>; 2]) -> bool {
        if self.namespace.is_some() && !self.in_ns(service) && !pods.iter().any(|p| self.in_ns(*p))
        {
            return false;
        }
        if let Some(s) = &self.service
            && service != Some(s.as_str())
        {
            return false;
        }
        if let Some(p) = &self.pod
            && !pods.contains(&Some(p.as_str()))
        {
            return false;
        }
        true
    }

    pub fn flow(&self, v: &FlowView) -> bool {
        self.matches(
            v.service.as_deref(),
            [v.client.pod.as_deref(), v.backend.pod.as_deref()],
        )
    }

    pub fn reject(&self, v: &RejectView) -> bool {
        self.matches(v.service.as_deref(), [v.client.pod.as_deref(), None])
    }

    pub fn line(&self, l: &FlowEventLine) -> bool {
        match l {
            FlowEventLine::New { flow }
            | FlowEventLine::Update { flow }
            | FlowEventLine::End { flow, .. } => self.flow(flow),
            FlowEventLine::Reject { reject } => self.reject(reject),
            FlowEventLine::Lost { .. } => true,
        }
    }
}

/// Per-Service samples for `lab top svc`: the NAT's counters plus the
/// flows in the table now.
pub fn service_samples(
    counters: &BTreeMap<String, crate::dataplane::ServiceCounters>,
    flows: &[Flow],
    names: Names<'_>,
) -> BTreeMap<String, ServiceSample> {
    let mut out: BTreeMap<String, ServiceSample> = counters
        .iter()
        .map(|(k, c)| {
            (
                k.clone(),
                ServiceSample {
                    flows: c.flows,
                    packets: c.packets,
                    bytes: c.bytes,
                    rejects: c.rejects,
                    drops: c.drops,
                    active: 0,
                },
            )
        })
        .collect();
    for f in flows {
        if let Some(s) = Names::get(names.services, f.service)
            && let Some(x) = out.get_mut(s)
        {
            x.active += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::conntrack::{FlowStats, Tuple};
    use crate::dataplane::events::RejectReason;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
    const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);

    fn flow(tcp: Option<TcpState>, replied: bool) -> Flow {
        let proto = if tcp.is_some() { TCP } else { UDP };
        Flow {
            orig: Tuple {
                proto,
                src: CLIENT,
                sport: 40000,
                dst: VIP,
                dport: 80,
            },
            reply: Tuple {
                proto,
                src: BACKEND,
                sport: 8080,
                dst: CLIENT,
                dport: 40000,
            },
            port: 0,
            service: 0,
            tcp,
            fin_orig: false,
            fin_reply: false,
            replied,
            expires: Duration::from_secs(200),
            fault: 0,
            stats: FlowStats {
                created: Duration::from_secs(90),
                seen: Duration::from_secs(99),
                pick: Pick::Affinity,
                packets: [3, 2],
                bytes: [300, 2000],
            },
        }
    }

    fn names() -> (Vec<String>, Vec<String>) {
        (vec!["default/web:http".into()], vec!["default/web".into()])
    }

    fn pods() -> Pods {
        Pods::from([
            (CLIENT, "default/client".to_string()),
            (BACKEND, "prod/web-1".to_string()),
        ])
    }

    #[test]
    fn state_names_follow_conntrack() {
        use TcpState::*;
        let got: Vec<_> = [
            SynSent,
            SynRecv,
            Established,
            FinWait,
            CloseWait,
            LastAck,
            TimeWait,
            Close,
        ]
        .into_iter()
        .map(|s| state_name(&flow(Some(s), true)))
        .collect();
        assert_eq!(
            got,
            [
                "SYN_SENT",
                "SYN_RECV",
                "ESTABLISHED",
                "FIN_WAIT",
                "CLOSE_WAIT",
                "LAST_ACK",
                "TIME_WAIT",
                "CLOSE"
            ]
        );
        assert_eq!(state_name(&flow(None, false)), "UNREPLIED");
        assert_eq!(state_name(&flow(None, true)), "REPLIED");
    }

    #[test]
    fn a_flow_names_its_pods_service_and_counts() {
        let (p, s) = names();
        let n = Names {
            ports: &p,
            services: &s,
        };
        let v = view(
            &flow(Some(TcpState::Established), true),
            Duration::from_secs(100),
            n,
            &pods(),
        );
        assert_eq!(v.client.pod.as_deref(), Some("default/client"));
        assert_eq!(v.backend.pod.as_deref(), Some("prod/web-1"));
        assert_eq!((v.backend.ip, v.backend.port), (BACKEND, 8080));
        assert_eq!(v.service.as_deref(), Some("default/web"));
        assert_eq!(v.port_name, "http");
        assert_eq!((v.vip.ip, v.vip.port), (VIP, 80));
        assert_eq!(
            (v.age_ms, v.idle_ms, v.expires_ms),
            (10_000, 1_000, 100_000)
        );
        assert_eq!(
            v.to_backend,
            Traffic {
                packets: 3,
                bytes: 300
            }
        );
        assert_eq!(
            v.to_client,
            Traffic {
                packets: 2,
                bytes: 2000
            }
        );
        assert_eq!(v.pick, "affinity");
        assert_eq!(v.snat, None);
        assert_eq!(v.fault, None);
        // A deleted Service's flow: no name.
        let mut f = flow(None, false);
        f.service = NO_INDEX;
        f.port = NO_INDEX;
        let v = view(&f, Duration::from_secs(100), n, &pods());
        assert_eq!((v.service, v.port_name.as_str()), (None, ""));
        let json =
            serde_json::to_value(view(&flow(None, true), Duration::ZERO, n, &pods())).unwrap();
        assert!(json.get("fault").is_none(), "omitted when unset");
        assert_eq!(json["state"], "REPLIED");
    }

    #[test]
    fn filters_by_namespace_service_and_pod() {
        let (p, s) = names();
        let n = Names {
            ports: &p,
            services: &s,
        };
        let v = view(
            &flow(Some(TcpState::SynSent), false),
            Duration::ZERO,
            n,
            &pods(),
        );
        let f = |ns: Option<&str>, svc: Option<&str>, pod: Option<&str>| {
            Filter::new(&FlowsQuery {
                namespace: ns.map(Into::into),
                service: svc.map(Into::into),
                pod: pod.map(Into::into),
                node: None,
            })
            .flow(&v)
        };
        assert!(f(None, None, None));
        assert!(f(Some("default"), None, None));
        assert!(f(Some("prod"), None, None), "the backend pod's namespace");
        assert!(!f(Some("kube-system"), None, None));
        assert!(f(None, Some("web"), None));
        assert!(!f(Some("prod"), Some("web"), None));
        assert!(f(None, None, Some("client")));
        assert!(f(Some("prod"), None, Some("web-1")));
        assert!(!f(None, None, Some("web-1")), "web-1 is in prod");
        let r = reject_view(
            &Reject {
                orig: v_tuple(),
                service: Some(0),
                port: None,
                reason: RejectReason::UnknownPort,
                at: Duration::from_secs(1),
            },
            Duration::from_secs(3),
            n,
            &pods(),
        );
        assert_eq!(r.reason, "unknown port");
        assert_eq!(r.age_ms, 2000);
        assert!(
            Filter::new(&FlowsQuery {
                service: Some("web".into()),
                ..Default::default()
            })
            .reject(&r)
        );
    }

    fn v_tuple() -> Tuple {
        flow(None, false).orig
    }
}
