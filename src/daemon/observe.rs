//! What the APIs serve to watch the Service path: `lab flows` (list and
//! watch), `/metrics`, the per-Service samples of `lab top svc`, and the DNS
//! pods' counter reports. Shared by the Unix-socket API and the Kubernetes
//! API.

use super::flows::{self as fv, Filter, Names, Pods};
use super::metrics::{Labels, Scrape};
use super::runtime::Daemon;
use crate::api::flows::{DnsReportRequest, FlowEventLine, FlowsQuery, FlowsReply, ServiceRates};
use crate::dataplane::DropReason;
use crate::model::Kind;
use crate::store::Key;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

fn pods(d: &Daemon) -> Pods {
    fv::pods(&d.lock().store)
}

/// `lab flows`: every flow and recent reject that the filter selects.
pub fn flows(d: &Daemon, q: &FlowsQuery) -> FlowsReply {
    let (list, now) = d.dataplane.list_flows();
    let pods = pods(d);
    let names = Names {
        ports: &list.ports,
        services: &list.services,
    };
    let filter = Filter::new(q);
    let mut flows: Vec<_> = list
        .flows
        .iter()
        .map(|f| fv::view(f, now, names, &pods))
        .filter(|v| filter.flow(v))
        .collect();
    // Oldest first, as conntrack -L lists a quiet table.
    flows.sort_by(|a, b| {
        b.age_ms
            .cmp(&a.age_ms)
            .then(a.client.port.cmp(&b.client.port))
    });
    let rejects = list
        .rejects
        .iter()
        .map(|r| fv::reject_view(r, now, names, &pods))
        .filter(|v| filter.reject(v))
        .collect();
    FlowsReply { flows, rejects }
}

/// `lab flows -w`: one JSON line per event, until the client goes away.
/// The NAT sends events only while at least one such stream is open.
pub fn watch(d: Arc<Daemon>, q: FlowsQuery) -> axum::body::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let (guard, mut events) = d.dataplane.watch_flows();
    tokio::spawn(async move {
        let _guard = guard;
        let filter = Filter::new(&q);
        let mut cached: Option<(u64, Pods)> = None;
        let mut lost = d.dataplane.flow_events_lost();
        // An empty line at once: the client knows the watch is on.
        if tx.send(Ok(b"\n".to_vec())).await.is_err() {
            return;
        }
        loop {
            let got = tokio::select! {
                _ = tx.closed() => break,
                r = events.recv() => r,
            };
            let line = match got {
                Ok(e) => {
                    let rv = *d.rv.borrow();
                    if cached.as_ref().is_none_or(|(v, _)| *v != rv) {
                        cached = Some((rv, pods(&d)));
                    }
                    let pods = cached.as_ref().map(|c| &c.1);
                    let (list_ports, list_services) = d.dataplane.names();
                    let names = Names {
                        ports: &list_ports,
                        services: &list_services,
                    };
                    let now = d.dataplane.clock();
                    let line = fv::event_line(&e, now, names, pods.unwrap_or(&Pods::new()));
                    if !filter.line(&line) {
                        continue;
                    }
                    line
                }
                Err(RecvError::Lagged(n)) => FlowEventLine::Lost { count: n },
                Err(RecvError::Closed) => break,
            };
            let mut out = Vec::new();
            let queue_lost = d.dataplane.flow_events_lost();
            if queue_lost > lost {
                let l = FlowEventLine::Lost {
                    count: queue_lost - lost,
                };
                lost = queue_lost;
                out.extend(serde_json::to_vec(&l).unwrap_or_default());
                out.push(b'\n');
            }
            out.extend(serde_json::to_vec(&line).unwrap_or_default());
            out.push(b'\n');
            if tx.send(Ok(out)).await.is_err() {
                break;
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    axum::body::Body::from_stream(stream)
}

/// `lab top svc`: per-Service counters and active flows now.
pub fn service_rates(d: &Daemon) -> ServiceRates {
    let (list, now) = d.dataplane.list_flows();
    let counters = d.dataplane.service_counters_raw();
    let names = Names {
        ports: &list.ports,
        services: &list.services,
    };
    ServiceRates {
        at_ms: now.as_millis() as u64,
        services: fv::service_samples(&counters, &list.flows, names),
    }
}

/// A DNS report from a pod that is not (or no longer) in kube-system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pod kube-system/{pod} not found")]
pub struct UnknownDnsPod {
    pub pod: String,
}

/// Keep a DNS pod's report, if it names a pod of kube-system that exists.
pub fn dns_report(d: &Daemon, r: DnsReportRequest) -> Result<(), UnknownDnsPod> {
    let key = Key::new(Kind::Pod, "kube-system", &r.pod);
    if d.lock().store.get(&key).is_none() {
        return Err(UnknownDnsPod { pod: r.pod });
    }
    d.metrics
        .dns_report(format!("kube-system/{}", r.pod), r.report);
    Ok(())
}

fn split_service(s: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, n)) => (ns.to_string(), n.to_string()),
        None => (String::new(), s.to_string()),
    }
}

/// `ns/name:port` → (namespace, service, port name).
fn split_port(id: &str) -> (String, String, String) {
    let (svc, port) = id.rsplit_once(':').unwrap_or((id, ""));
    let (ns, name) = split_service(svc);
    (ns, name, port.to_string())
}

fn svc_labels(s: &str) -> Labels {
    let (ns, name) = split_service(s);
    vec![("namespace", ns), ("service", name)]
}

/// One scrape of `/metrics`.
pub fn metrics(d: &Daemon) -> String {
    let dp = &d.dataplane;
    let mut s = Scrape::default();
    // Per Service.
    let services = dp.service_counters_raw();
    let per_svc = |f: fn(&crate::dataplane::ServiceCounters) -> u64| {
        services
            .iter()
            .map(move |(k, c)| (svc_labels(k), f(c)))
            .collect::<Vec<_>>()
    };
    s.counters(
        "service_flows",
        "Flows (connections, UDP conversations) created to a Service.",
        per_svc(|c| c.flows),
    );
    s.counters(
        "service_packets",
        "Packets translated for a Service, both directions (GSO super-packets count as their segments).",
        per_svc(|c| c.packets),
    );
    s.counters(
        "service_bytes",
        "IP bytes translated for a Service, both directions.",
        per_svc(|c| c.bytes),
    );
    s.counters(
        "service_rejects",
        "Connection attempts answered with ICMP port unreachable (no endpoints, unknown port).",
        per_svc(|c| c.rejects),
    );
    s.counters(
        "service_drops",
        "Packets of a Service's flows or VIP dropped by the NAT.",
        per_svc(|c| c.drops),
    );
    // Per endpoint.
    let pods = pods(d);
    let endpoints = dp.endpoint_counters();
    let ep = |f: fn(&crate::dataplane::ServiceCounters) -> u64| {
        endpoints
            .iter()
            .map(|((id, ip, port), c)| {
                let (ns, svc, pname) = split_port(id);
                (
                    vec![
                        ("namespace", ns),
                        ("service", svc),
                        ("port", pname),
                        ("endpoint", format!("{ip}:{port}")),
                        ("pod", pods.get(ip).cloned().unwrap_or_default()),
                    ],
                    f(c),
                )
            })
            .collect::<Vec<_>>()
    };
    s.counters(
        "endpoint_flows",
        "Flows the NAT sent to an endpoint (live and ended).",
        ep(|c| c.flows),
    );
    s.counters(
        "endpoint_packets",
        "Packets of flows to an endpoint, both directions.",
        ep(|c| c.packets),
    );
    s.counters(
        "endpoint_bytes",
        "IP bytes of flows to an endpoint, both directions.",
        ep(|c| c.bytes),
    );
    // The NAT as a whole.
    let g = dp.global_counters();
    s.counters(
        "nat_drops",
        "Packets the NAT dropped, by reason.",
        DropReason::ALL
            .iter()
            .map(|r| (vec![("reason", r.as_str().to_string())], g.drops(*r))),
    );
    let one = |v: u64| [(Labels::new(), v)];
    s.counters(
        "nat_translated_packets",
        "Packets rewritten (either direction).",
        one(g.translated),
    );
    s.counters(
        "nat_unchanged_packets",
        "Packets matching no flow written back unchanged (direct pod-to-pod traffic pulled in by the reply rules).",
        one(g.forwarded_unchanged),
    );
    s.counters("nat_rejects", "ICMP port unreachable sent.", one(g.rejects));
    s.counters("nat_flows_created", "Flows created.", one(g.flows_created));
    s.counters(
        "nat_flows_ended",
        "Flows removed from the table, by reason.",
        [
            ("expired", g.flows_expired),
            ("evicted", g.flows_evicted),
            ("flushed", g.flows_flushed),
            ("reopened", g.flows_reopened),
        ]
        .map(|(r, v)| (vec![("reason", r.to_string())], v)),
    );
    s.counters(
        "nat_flow_evictions",
        "Flows evicted to make room (the table is full).",
        one(g.flows_evicted),
    );
    s.gauge(
        "nat_flows",
        "Flows in the table now.",
        dp.flow_count() as i64,
    );
    s.gauge(
        "nat_flow_capacity",
        "Flows the table holds at most.",
        super::dataplane::FLOW_CAPACITY as i64,
    );
    s.counters(
        "nat_flow_events_lost",
        "Flow events dropped because the bounded event queue was full (lab flows -w).",
        one(dp.flow_events_lost()),
    );
    s.counters(
        "nat_queue_packets",
        "Packets read from svc0, by queue.",
        dp.queue_stats.iter().enumerate().map(|(i, q)| {
            (
                vec![("queue", i.to_string())],
                q.packets.load(std::sync::atomic::Ordering::Relaxed),
            )
        }),
    );
    s.histograms(
        "nat_batch_size",
        "Packets read per wake-up of a queue (cut at 256).",
        &dp.batch_size,
    );
    s.histograms(
        "nat_batch_duration_seconds",
        "Time a queue spent on one batch (read, translate, write).",
        &dp.batch_seconds,
    );
    // Control plane.
    s.histogram(
        "network_programming_duration_seconds",
        "From a pod or endpoint change to the NAT table that reflects it (kube-proxy's network_programming_duration_seconds).",
        &d.metrics.programming,
    );
    s.histogram(
        "pod_start_duration_seconds",
        "From the daemon starting a pod to its first Ready.",
        &d.metrics.pod_start,
    );
    // DNS, as the DNS pods last reported.
    let reports = {
        let st = d.lock();
        d.metrics.dns_reports(|pod| {
            let (ns, name) = split_service(pod);
            st.store.get(&Key::new(Kind::Pod, &ns, &name)).is_some()
        })
    };
    s.counters(
        "dns_requests",
        "DNS queries answered by the cluster DNS pods, by query type.",
        reports.iter().flat_map(|(pod, r)| {
            r.types
                .iter()
                .map(move |(t, v)| (vec![("pod", pod.clone()), ("type", t.clone())], *v))
        }),
    );
    s.counters(
        "dns_responses",
        "DNS responses of the cluster DNS pods, by rcode.",
        reports.iter().flat_map(|(pod, r)| {
            r.rcodes
                .iter()
                .map(move |(c, v)| (vec![("pod", pod.clone()), ("rcode", c.clone())], *v))
        }),
    );
    s.finish()
}
