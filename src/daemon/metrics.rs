//! `GET /metrics`: the daemon's Prometheus metrics (OpenMetrics text, made
//! by the `prometheus-client` crate), served on the Unix-socket API and on
//! the Kubernetes API (client certificate), as the API server serves its
//! own `/metrics`.
//!
//! Counters the NAT keeps anyway (per Service, per endpoint, drops by
//! reason, flow table) are read at scrape time into a fresh registry, so a
//! deleted Service's series are simply not there any more. Histograms that
//! must accumulate (queue batches, endpoint-change → data-plane latency,
//! pod start) live here and in the data plane's shell. DNS counters come
//! from the DNS pods, which report them over their API connection
//! (`POST /apis/lab.dev/v1/dnsreports`, about once a second while they change).

use crate::api::flows::DnsReport;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// Label sets: a few (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;
pub type CounterFamily = Family<Labels, Counter>;
pub type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The OpenMetrics content type `encode` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets from 0.5 ms to about 16 s.
pub fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A DNS pod's report may name at most this many query types or rcodes
/// (the rest are summed as `other`).
pub const DNS_LABELS_MAX: usize = 32;

/// The daemon-wide histograms and the DNS pods' reports.
pub struct Metrics {
    /// From a pod or endpoint change to the NAT table publish (kube-proxy's
    /// `network_programming_duration_seconds`).
    pub programming: Histogram,
    /// From the daemon starting a pod to its first Ready.
    pub pod_start: Histogram,
    /// The oldest change not yet in the data plane.
    pending: Mutex<Option<Instant>>,
    /// Pods being started (uid → when), until Ready or gone.
    starting: Mutex<HashMap<String, Instant>>,
    /// DNS pod (`ns/name`) → its last report.
    dns: Mutex<BTreeMap<String, DnsReport>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            programming: latency_buckets(),
            pod_start: latency_buckets(),
            pending: Mutex::new(None),
            starting: Mutex::new(HashMap::new()),
            dns: Mutex::new(BTreeMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The store changed (called with every reconcile wake-up): remember
    /// when, if nothing older is pending.
    pub fn changed(&self) {
        lock(&self.pending).get_or_insert_with(Instant::now);
    }

    /// A reconcile pass starts: the oldest change it covers.
    pub fn take_change(&self) -> Option<Instant> {
        lock(&self.pending).take()
    }

    /// The data plane published a new table for changes made at `since`.
    pub fn programmed(&self, since: Option<Instant>) {
        if let Some(t) = since {
            self.programming.observe(t.elapsed().as_secs_f64());
        }
    }

    pub fn pod_starting(&self, uid: &str) {
        lock(&self.starting)
            .entry(uid.to_string())
            .or_insert_with(Instant::now);
    }

    /// The pod became Ready: observe its start time (once).
    pub fn pod_ready(&self, uid: &str) {
        if let Some(t) = lock(&self.starting).remove(uid) {
            self.pod_start.observe(t.elapsed().as_secs_f64());
        }
    }

    pub fn pod_gone(&self, uid: &str) {
        lock(&self.starting).remove(uid);
    }

    /// Keep a DNS pod's report (bounded label sets).
    pub fn dns_report(&self, pod: String, mut r: DnsReport) {
        r.types = bound(r.types);
        r.rcodes = bound(r.rcodes);
        lock(&self.dns).insert(pod, r);
    }

    /// The reports of the DNS pods that still exist.
    pub fn dns_reports(&self, live: impl Fn(&str) -> bool) -> BTreeMap<String, DnsReport> {
        let mut m = lock(&self.dns);
        m.retain(|k, _| live(k));
        m.clone()
    }
}

fn bound(m: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    if m.len() <= DNS_LABELS_MAX {
        return m;
    }
    let mut out = BTreeMap::new();
    let mut other = 0u64;
    for (i, (k, v)) in m.into_iter().enumerate() {
        if i < DNS_LABELS_MAX - 1 && k != "other" {
            out.insert(k, v);
        } else {
            other = other.saturating_add(v);
        }
    }
    out.insert("other".into(), other);
    out
}

/// Builds one scrape: families are filled from current values, then
/// encoded by `prometheus-client`.
pub struct Scrape {
    registry: Registry,
}

impl Default for Scrape {
    fn default() -> Self {
        Scrape {
            registry: Registry::with_prefix("lab"),
        }
    }
}

impl Scrape {
    /// A counter family filled from `(labels, value)` pairs.
    pub fn counters(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        let f = CounterFamily::default();
        for (l, v) in values {
            f.get_or_create(&l).inc_by(v);
        }
        self.registry.register(name, help, f);
    }

    /// A gauge family, one series per label set.
    pub fn gauges(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Labels, i64)>,
    ) {
        let f = Family::<Labels, Gauge<i64>>::default();
        for (l, v) in values {
            f.get_or_create(&l).set(v);
        }
        self.registry.register(name, help, f);
    }

    pub fn gauge(&mut self, name: &str, help: &str, v: i64) {
        let g = Gauge::<i64>::default();
        g.set(v);
        self.registry.register(name, help, g);
    }

    /// A histogram that lives elsewhere (shared, not copied).
    pub fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.registry.register(name, help, h.clone());
    }

    pub fn histograms(&mut self, name: &str, help: &str, h: &HistogramFamily) {
        self.registry.register(name, help, h.clone());
    }

    pub fn finish(self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_encodes_what_it_was_given_and_nothing_else() {
        let m = Metrics::default();
        m.changed();
        m.programmed(m.take_change());
        m.pod_starting("u1");
        m.pod_ready("u1");
        m.pod_ready("u1");
        let mut s = Scrape::default();
        s.counters(
            "service_packets",
            "Packets.",
            [(vec![("service", "default/web".to_string())], 42)],
        );
        s.histogram("pod_start_duration_seconds", "Pod start.", &m.pod_start);
        s.histogram(
            "network_programming_duration_seconds",
            "Programming.",
            &m.programming,
        );
        let text = s.finish();
        assert!(
            text.contains("lab_service_packets_total{service=\"default/web\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("lab_pod_start_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("lab_network_programming_duration_seconds_count 1"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn dns_reports_are_bounded_and_follow_their_pods() {
        let m = Metrics::default();
        let types = (0..100).map(|i| (format!("T{i}"), 1)).collect();
        m.dns_report(
            "kube-system/coredns-a".into(),
            DnsReport {
                types,
                rcodes: BTreeMap::new(),
            },
        );
        m.dns_report("kube-system/coredns-b".into(), DnsReport::default());
        let r = m.dns_reports(|p| p.ends_with("-a"));
        assert_eq!(r.len(), 1);
        let t = &r["kube-system/coredns-a"].types;
        assert_eq!(t.len(), DNS_LABELS_MAX);
        assert_eq!(t.values().sum::<u64>(), 100);
        assert_eq!(t["other"], 100 - (DNS_LABELS_MAX as u64 - 1));
    }
}
