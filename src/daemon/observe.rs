//! What the APIs serve to watch the Service path: `lab flows` (list and
//! watch), `/metrics`, the per-Service samples of `lab top svc`, and the DNS
//! pods' counter reports. Shared by the Unix-socket API and the Kubernetes
//! API.

use super::flows::{self as fv, Filter, Names, Pods};
use super::metrics::{Labels, Scrape};
use super::nodes::NodeRt;
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

/// The nodes whose Service proxies `node` selects (all when `None`), and
/// the name to tag their flows with (only when the cluster has several).
fn selected<'a>(
    d: &'a Daemon,
    node: Option<&'a str>,
) -> impl Iterator<Item = (&'a Arc<NodeRt>, Option<String>)> + 'a {
    let several = d.nodes.len() > 1;
    d.nodes
        .iter()
        .filter(move |n| node.is_none_or(|x| x == n.name()))
        .map(move |n| (n, several.then(|| n.name().to_string())))
}

/// `lab flows`: every flow and recent reject that the filter selects, of
/// every node's Service proxy (or of `--node`'s).
pub fn flows(d: &Daemon, q: &FlowsQuery) -> FlowsReply {
    let pods = pods(d);
    let filter = Filter::new(q);
    let mut flows = Vec::new();
    let mut rejects = Vec::new();
    for (n, tag) in selected(d, q.node.as_deref()) {
        let (list, now) = n.dataplane.list_flows();
        let names = Names {
            ports: &list.ports,
            services: &list.services,
        };
        flows.extend(
            list.flows
                .iter()
                .map(|f| fv::view(f, now, names, &pods))
                .filter(|v| filter.flow(v))
                .map(|mut v| {
                    v.node = tag.clone();
                    v
                }),
        );
        rejects.extend(
            list.rejects
                .iter()
                .map(|r| fv::reject_view(r, now, names, &pods))
                .filter(|v| filter.reject(v))
                .map(|mut v| {
                    v.node = tag.clone();
                    v
                }),
        );
    }
    // Oldest first, as conntrack -L lists a quiet table.
    flows.sort_by(|a, b| {
        b.age_ms
            .cmp(&a.age_ms)
            .then(a.client.port.cmp(&b.client.port))
    });
    rejects.sort_by_key(|r| std::cmp::Reverse(r.age_ms));
    FlowsReply { flows, rejects }
}

/// `lab flows -w`: one JSON line per event, until the client goes away.
/// The NAT sends events only while at least one such stream is open.
pub fn watch(d: Arc<Daemon>, q: FlowsQuery) -> axum::body::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let nodes: Vec<(Arc<NodeRt>, Option<String>)> = selected(&d, q.node.as_deref())
        .map(|(n, t)| (n.clone(), t))
        .collect();
    for (n, tag) in nodes {
        tokio::spawn(watch_node(d.clone(), n, tag, q.clone(), tx.clone()));
    }
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    axum::body::Body::from_stream(stream)
}

/// One node's part of a flow watch: its events as lines into `tx`.
async fn watch_node(
    d: Arc<Daemon>,
    node: Arc<NodeRt>,
    tag: Option<String>,
    q: FlowsQuery,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) {
    let (guard, mut events) = node.dataplane.watch_flows();
    {
        let _guard = guard;
        let filter = Filter::new(&q);
        let mut cached: Option<(u64, Pods)> = None;
        let mut lost = node.dataplane.flow_events_lost();
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
                    let (list_ports, list_services) = node.dataplane.names();
                    let names = Names {
                        ports: &list_ports,
                        services: &list_services,
                    };
                    let now = node.dataplane.clock();
                    let mut line = fv::event_line(&e, now, names, pods.unwrap_or(&Pods::new()));
                    tag_line(&mut line, &tag);
                    if !filter.line(&line) {
                        continue;
                    }
                    line
                }
                Err(RecvError::Lagged(n)) => FlowEventLine::Lost { count: n },
                Err(RecvError::Closed) => break,
            };
            let mut out = Vec::new();
            let queue_lost = node.dataplane.flow_events_lost();
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
    }
}

/// Say which node's proxy an event comes from (several nodes).
fn tag_line(line: &mut FlowEventLine, tag: &Option<String>) {
    match line {
        FlowEventLine::New { flow }
        | FlowEventLine::Update { flow }
        | FlowEventLine::End { flow, .. } => flow.node = tag.clone(),
        FlowEventLine::Reject { reject } => reject.node = tag.clone(),
        FlowEventLine::Lost { .. } => {}
    }
}

/// `lab top svc`: per-Service counters and active flows now.
/// Summed over every node's proxy.
pub fn service_rates(d: &Daemon) -> ServiceRates {
    let mut services: std::collections::BTreeMap<String, crate::api::flows::ServiceSample> =
        Default::default();
    let mut at = std::time::Duration::ZERO;
    for (i, n) in d.nodes.iter().enumerate() {
        let (list, now) = n.dataplane.list_flows();
        if i == 0 {
            at = now;
        }
        let counters = n.dataplane.service_counters_raw();
        let names = Names {
            ports: &list.ports,
            services: &list.services,
        };
        for (k, s) in fv::service_samples(&counters, &list.flows, names) {
            let x = services.entry(k).or_default();
            x.flows += s.flows;
            x.packets += s.packets;
            x.bytes += s.bytes;
            x.rejects += s.rejects;
            x.drops += s.drops;
            x.active += s.active;
        }
    }
    ServiceRates {
        at_ms: at.as_millis() as u64,
        services,
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
    let mut s = Scrape::default();
    // Each node's Service proxy; its series carry a `node` label when the
    // cluster has several (one node's look as they always did).
    let several = d.nodes.len() > 1;
    let tagged = |mut l: Labels, n: &NodeRt| {
        if several {
            l.push(("node", n.name().to_string()));
        }
        l
    };
    let pods = pods(d);
    let mut per_svc: Vec<Vec<(Labels, u64)>> = vec![Vec::new(); 5];
    let mut per_ep: Vec<Vec<(Labels, u64)>> = vec![Vec::new(); 3];
    let mut drops = Vec::new();
    let mut globals: Vec<Vec<(Labels, u64)>> = vec![Vec::new(); 6];
    let mut ended = Vec::new();
    let mut flows_now = Vec::new();
    let mut queues = Vec::new();
    for n in &d.nodes {
        let dp = &n.dataplane;
        for (k, c) in dp.service_counters_raw() {
            let l = tagged(svc_labels(&k), n);
            for (i, v) in [c.flows, c.packets, c.bytes, c.rejects, c.drops]
                .into_iter()
                .enumerate()
            {
                per_svc[i].push((l.clone(), v));
            }
        }
        for ((id, ip, port), c) in dp.endpoint_counters() {
            let (ns, svc, pname) = split_port(&id);
            let l = tagged(
                vec![
                    ("namespace", ns),
                    ("service", svc),
                    ("port", pname),
                    ("endpoint", format!("{ip}:{port}")),
                    ("pod", pods.get(&ip).cloned().unwrap_or_default()),
                ],
                n,
            );
            for (i, v) in [c.flows, c.packets, c.bytes].into_iter().enumerate() {
                per_ep[i].push((l.clone(), v));
            }
        }
        let g = dp.global_counters();
        for r in DropReason::ALL {
            drops.push((
                tagged(vec![("reason", r.as_str().to_string())], n),
                g.drops(r),
            ));
        }
        for (i, v) in [
            g.translated,
            g.forwarded_unchanged,
            g.rejects,
            g.flows_created,
            g.flows_evicted,
            dp.flow_events_lost(),
        ]
        .into_iter()
        .enumerate()
        {
            globals[i].push((tagged(Labels::new(), n), v));
        }
        for (r, v) in [
            ("expired", g.flows_expired),
            ("evicted", g.flows_evicted),
            ("flushed", g.flows_flushed),
            ("reopened", g.flows_reopened),
        ] {
            ended.push((tagged(vec![("reason", r.to_string())], n), v));
        }
        flows_now.push((tagged(Labels::new(), n), dp.flow_count() as i64));
        for (i, q) in dp.queue_stats.iter().enumerate() {
            queues.push((
                tagged(vec![("queue", i.to_string())], n),
                q.packets.load(std::sync::atomic::Ordering::Relaxed),
            ));
        }
    }
    let [sf, sp, sb, sr, sd]: [Vec<(Labels, u64)>; 5] =
        per_svc.try_into().unwrap_or_else(|_| Default::default());
    s.counters(
        "service_flows",
        "Flows (connections, UDP conversations) created to a Service.",
        sf,
    );
    s.counters(
        "service_packets",
        "Packets translated for a Service, both directions (GSO super-packets count as their segments).",
        sp,
    );
    s.counters(
        "service_bytes",
        "IP bytes translated for a Service, both directions.",
        sb,
    );
    s.counters(
        "service_rejects",
        "Connection attempts answered with ICMP port unreachable (no endpoints, unknown port).",
        sr,
    );
    s.counters(
        "service_drops",
        "Packets of a Service's flows or VIP dropped by the NAT.",
        sd,
    );
    let [ef, ep, eb]: [Vec<(Labels, u64)>; 3] =
        per_ep.try_into().unwrap_or_else(|_| Default::default());
    s.counters(
        "endpoint_flows",
        "Flows the NAT sent to an endpoint (live and ended).",
        ef,
    );
    s.counters(
        "endpoint_packets",
        "Packets of flows to an endpoint, both directions.",
        ep,
    );
    s.counters(
        "endpoint_bytes",
        "IP bytes of flows to an endpoint, both directions.",
        eb,
    );
    s.counters("nat_drops", "Packets the NAT dropped, by reason.", drops);
    let [translated, unchanged, rejects, created, evicted, lost]: [Vec<(Labels, u64)>; 6] =
        globals.try_into().unwrap_or_else(|_| Default::default());
    s.counters(
        "nat_translated_packets",
        "Packets rewritten (either direction).",
        translated,
    );
    s.counters(
        "nat_unchanged_packets",
        "Packets matching no flow written back unchanged (direct pod-to-pod traffic pulled in by the reply rules).",
        unchanged,
    );
    s.counters("nat_rejects", "ICMP port unreachable sent.", rejects);
    s.counters("nat_flows_created", "Flows created.", created);
    s.counters(
        "nat_flows_ended",
        "Flows removed from the table, by reason.",
        ended,
    );
    s.counters(
        "nat_flow_evictions",
        "Flows evicted to make room (the table is full).",
        evicted,
    );
    s.gauges("nat_flows", "Flows in the table now.", flows_now);
    s.gauge(
        "nat_flow_capacity",
        "Flows the table holds at most (each node's proxy).",
        super::dataplane::FLOW_CAPACITY as i64,
    );
    s.counters(
        "nat_flow_events_lost",
        "Flow events dropped because the bounded event queue was full (lab flows -w).",
        lost,
    );
    s.counters(
        "nat_queue_packets",
        "Packets read from svc0, by queue.",
        queues,
    );
    // One family for every node's queues (their series carry the node).
    let dp = &d.nodes[0].dataplane;
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
