//! The cluster DNS zone: an immutable snapshot of every record, built from
//! Services, EndpointSlices and Pods, and the lookup that answers one
//! question from it. Pure: no I/O, unit-tested from fixtures.
//!
//! Records follow the Kubernetes DNS-based service discovery specification
//! (<https://github.com/kubernetes/dns/blob/master/docs/specification.md>):
//!
//! - `<svc>.<ns>.svc.<zone>` A → the ClusterIP; for a headless service one A
//!   per ready endpoint (no ready endpoint: the name does not exist);
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for each named port
//!   (ClusterIP: `0 100 <port> <svc>.<ns>.svc.<zone>`; headless: one per
//!   ready endpoint, target `<hostname>.<svc>.<ns>.svc.<zone>`);
//! - `<hostname>.<svc>.<ns>.svc.<zone>` A for headless endpoints (the pod's
//!   `hostname` when its `subdomain` names the service, else the dashed IP);
//! - PTR for ClusterIPs and headless endpoint addresses;
//! - `a-b-c-d.<ns>.pod.<zone>` A for running pods (verified: a pod with that
//!   IP must exist in that namespace);
//! - ExternalName services → CNAME;
//! - `dns-version.<zone>` TXT `1.1.0`; SOA and NS at the apex.
//!
//! A name in the zone that does not exist is NXDOMAIN; an existing name
//! (including an empty non-terminal such as `<ns>.svc.<zone>`) asked for
//! another type is NODATA (NOERROR, no answer); both carry the SOA in the
//! authority section so resolvers cache the negative answer for the SOA
//! minimum (the record TTL). Names outside the cluster's zones are REFUSED
//! at once: the node has no uplink, so there is nothing to forward to.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use ipnetwork::Ipv4Network;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// The schema version of the Kubernetes DNS specification implemented.
pub const SPEC_VERSION: &str = "1.1.0";
/// Label linking an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the zone is built for.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// The cluster domain, `cluster.local`.
    pub domain: String,
    pub service_cidr: Ipv4Network,
    pub pod_cidr: Ipv4Network,
    /// The kube-dns ClusterIP (the NS record's address).
    pub dns_ip: Ipv4Addr,
    /// TTL of every record, and the SOA minimum (negative-caching TTL).
    pub ttl: u32,
}

impl ZoneConfig {
    pub fn new(service_cidr: Ipv4Network, pod_cidr: Ipv4Network, dns_ip: Ipv4Addr) -> ZoneConfig {
        ZoneConfig {
            domain: "cluster.local".into(),
            service_cidr,
            pod_cidr,
            dns_ip,
            ttl: 5,
        }
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// Set for every name in the cluster's zones (forward and reverse).
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    /// An empty, non-authoritative answer with `rcode` (REFUSED, FORMERR, …).
    pub fn error(rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// An immutable snapshot of the cluster's records.
#[derive(Debug, Clone)]
pub struct Zone {
    cfg: ZoneConfig,
    origin: Name,
    soa: Record,
    /// Every existing name in the forward zone (lower-case), with its
    /// records; empty non-terminals have none.
    nodes: HashMap<LowerName, Vec<Record>>,
    /// PTR targets per address in the service and pod CIDRs.
    reverse: HashMap<Ipv4Addr, Vec<Name>>,
    /// Reverse zones (`96.10.in-addr.arpa.`) with the CIDR each stands for.
    reverse_zones: Vec<(Name, Ipv4Network)>,
}

fn name(s: &str) -> Option<Name> {
    let mut n = Name::from_ascii(s).ok()?;
    n.set_fqdn(true);
    Some(n)
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// The reverse name of an address (the tests build PTR questions with it).
#[cfg(test)]
fn reverse_name(ip: Ipv4Addr) -> Name {
    let o = ip.octets();
    name(&format!(
        "{}.{}.{}.{}.in-addr.arpa.",
        o[3], o[2], o[1], o[0]
    ))
    .expect("a reverse name is valid")
}

/// The reverse zone covering a CIDR: its whole octets (`10.96.0.0/12` →
/// `10.in-addr.arpa.`, `10.244.0.0/16` → `244.10.in-addr.arpa.`).
fn reverse_zone(net: Ipv4Network) -> Name {
    let o = net.network().octets();
    let whole = (net.prefix() / 8) as usize;
    let mut s = String::new();
    for i in (0..whole).rev() {
        s.push_str(&format!("{}.", o[i]));
    }
    s.push_str("in-addr.arpa.");
    name(&s).expect("a reverse zone name is valid")
}

/// Parse a (possibly partial) reverse name into its leading octets.
fn reverse_octets(n: &Name) -> Option<Vec<u8>> {
    let labels: Vec<String> = n
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    let k = labels.len().checked_sub(2)?;
    if labels[k..] != ["in-addr", "arpa"] || k > 4 {
        return None;
    }
    let mut octets = Vec::with_capacity(k);
    for l in labels[..k].iter().rev() {
        if l.len() > 1 && l.starts_with('0') {
            return None;
        }
        octets.push(l.parse::<u8>().ok()?);
    }
    Some(octets)
}

struct Builder {
    ttl: u32,
    origin: Name,
    nodes: HashMap<LowerName, Vec<Record>>,
    reverse: HashMap<Ipv4Addr, Vec<Name>>,
}

impl Builder {
    /// Make `n` and every ancestor up to the origin exist.
    fn touch(&mut self, n: &Name) {
        let mut cur = n.clone();
        while self.origin.zone_of(&cur) {
            let key = LowerName::new(&cur);
            if self.nodes.contains_key(&key) {
                break;
            }
            self.nodes.insert(key, Vec::new());
            if cur.num_labels() == 0 {
                break;
            }
            cur = cur.base_name();
        }
    }

    fn add(&mut self, owner: &Name, data: RData) {
        self.touch(owner);
        let rec = Record::from_rdata(owner.clone(), self.ttl, data);
        let recs = self.nodes.entry(LowerName::new(owner)).or_default();
        if !recs.contains(&rec) {
            recs.push(rec);
        }
    }

    fn ptr(&mut self, ip: Ipv4Addr, target: &Name) {
        let v = self.reverse.entry(ip).or_default();
        if !v.contains(target) {
            v.push(target.clone());
        }
    }
}

/// (namespace, service name).
type SvcKey = (String, String);
/// (port name, lower-case protocol, port number).
type NamedPort = (String, String, u16);

/// A ready endpoint of a headless service.
struct Ready {
    ip: Ipv4Addr,
    hostname: Option<String>,
}

impl Zone {
    /// Build the snapshot. `serial` is the SOA serial (the store's resource
    /// version, so secondaries and humans can see it move).
    pub fn build(
        cfg: ZoneConfig,
        services: &[Service],
        slices: &[EndpointSlice],
        pods: &[Pod],
        serial: u32,
    ) -> Zone {
        let origin = name(&cfg.domain).unwrap_or_else(|| name("cluster.local").expect("valid"));
        let sub = |s: &str| name(&format!("{s}.{}", cfg.domain));
        let ns_name = sub("ns.dns").expect("valid");
        let soa = Record::from_rdata(
            origin.clone(),
            cfg.ttl,
            RData::SOA(SOA::new(
                ns_name.clone(),
                sub("hostmaster").expect("valid"),
                serial,
                7200,
                1800,
                86400,
                cfg.ttl,
            )),
        );
        let mut b = Builder {
            ttl: cfg.ttl,
            origin: origin.clone(),
            nodes: HashMap::new(),
            reverse: HashMap::new(),
        };
        b.add(&origin, soa.data.clone());
        b.add(&origin, RData::NS(NS(ns_name.clone())));
        b.add(&ns_name, RData::A(A(cfg.dns_ip)));
        if let Some(v) = sub("dns-version") {
            b.add(&v, RData::TXT(TXT::new(vec![SPEC_VERSION.into()])));
        }

        // Ready endpoints and named ports per (namespace, service).
        let mut ready: HashMap<SvcKey, Vec<Ready>> = HashMap::new();
        let mut ports: HashMap<SvcKey, BTreeSet<NamedPort>> = HashMap::new();
        for s in slices {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let key = (ns, svc.clone());
            for p in s.ports.iter().flatten() {
                if let (Some(n), Some(port)) = (p.name.as_deref().filter(|n| !n.is_empty()), p.port)
                    && let Ok(port) = u16::try_from(port)
                {
                    let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                    ports
                        .entry(key.clone())
                        .or_default()
                        .insert((n.to_string(), proto, port));
                }
            }
            for e in s.endpoints.iter().flatten() {
                let ok = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ok {
                    continue;
                }
                for a in &e.addresses {
                    if let Ok(ip) = a.parse::<Ipv4Addr>() {
                        ready.entry(key.clone()).or_default().push(Ready {
                            ip,
                            hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                        });
                    }
                }
            }
        }

        for s in services {
            let (Some(ns), Some(svc)) =
                (s.metadata.namespace.as_deref(), s.metadata.name.as_deref())
            else {
                continue;
            };
            let Some(base) = name(&format!("{svc}.{ns}.svc.{}", cfg.domain)) else {
                continue;
            };
            let Some(spec) = s.spec.as_ref() else {
                continue;
            };
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref().and_then(name) {
                    b.add(&base, RData::CNAME(CNAME(target)));
                }
                continue;
            }
            let srv_name = |pname: &str, proto: &str| {
                name(&format!("_{pname}._{proto}.{svc}.{ns}.svc.{}", cfg.domain))
            };
            match spec.cluster_ip.as_deref() {
                Some("None") => {
                    let key = (ns.to_string(), svc.to_string());
                    let eps = ready.get(&key).map(Vec::as_slice).unwrap_or_default();
                    if eps.is_empty() {
                        continue;
                    }
                    let weight = (100 / eps.len()).max(1) as u16;
                    for ep in eps {
                        b.add(&base, RData::A(A(ep.ip)));
                        let host = ep.hostname.clone().unwrap_or_else(|| dashed(ep.ip));
                        let Some(hname) = name(&format!("{host}.{svc}.{ns}.svc.{}", cfg.domain))
                        else {
                            continue;
                        };
                        b.add(&hname, RData::A(A(ep.ip)));
                        b.ptr(ep.ip, &hname);
                        for (pname, proto, port) in ports.get(&key).into_iter().flatten() {
                            if let Some(sn) = srv_name(pname, proto) {
                                b.add(&sn, RData::SRV(SRV::new(0, weight, *port, hname.clone())));
                            }
                        }
                    }
                }
                Some(ip) => {
                    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    b.add(&base, RData::A(A(ip)));
                    b.ptr(ip, &base);
                    for p in spec.ports.iter().flatten() {
                        let Some(pname) = p.name.as_deref().filter(|n| !n.is_empty()) else {
                            continue;
                        };
                        let proto = p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                        if let (Some(sn), Ok(port)) =
                            (srv_name(pname, &proto), u16::try_from(p.port))
                        {
                            b.add(&sn, RData::SRV(SRV::new(0, 100, port, base.clone())));
                        }
                    }
                }
                None => {}
            }
        }

        for p in pods {
            let Some(ns) = p.metadata.namespace.as_deref() else {
                continue;
            };
            let status = p.status.as_ref();
            if matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            ) || p.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let Some(ip) = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            if let Some(n) = name(&format!("{}.{ns}.pod.{}", dashed(ip), cfg.domain)) {
                b.add(&n, RData::A(A(ip)));
            }
        }

        let mut reverse_zones = vec![(reverse_zone(cfg.service_cidr), cfg.service_cidr)];
        reverse_zones.push((reverse_zone(cfg.pod_cidr), cfg.pod_cidr));
        Zone {
            cfg,
            origin,
            soa,
            nodes: b.nodes,
            reverse: b.reverse,
            reverse_zones,
        }
    }

    /// How many names exist in the forward zone.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Answer one question. `qname` is the name as asked (its case is kept
    /// in the answer).
    pub fn lookup(&self, qname: &Name, qtype: RecordType, qclass: DNSClass) -> Answer {
        if !matches!(qclass, DNSClass::IN | DNSClass::ANY) {
            return Answer::error(ResponseCode::Refused);
        }
        let mut qname = qname.clone();
        qname.set_fqdn(true);
        if self.origin.zone_of(&qname) {
            return self.forward(&qname, qtype);
        }
        if let Some(octets) = reverse_octets(&qname) {
            return self.reverse_lookup(&qname, &octets, qtype);
        }
        Answer::error(ResponseCode::Refused)
    }

    fn negative(&self, rcode: ResponseCode, soa: Record) -> Answer {
        Answer {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![soa],
            additionals: Vec::new(),
        }
    }

    fn forward(&self, qname: &Name, qtype: RecordType) -> Answer {
        let Some(recs) = self.nodes.get(&LowerName::new(qname)) else {
            return self.negative(ResponseCode::NXDomain, self.soa.clone());
        };
        let as_asked = |r: &Record| {
            let mut r = r.clone();
            r.name = qname.clone();
            r
        };
        let mut answers: Vec<Record> = recs
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .map(as_asked)
            .collect();
        if answers.is_empty() {
            // A CNAME answers every type; chase it while it stays in the zone.
            if let Some(c) = recs.iter().find(|r| r.record_type() == RecordType::CNAME) {
                answers.push(as_asked(c));
                if let RData::CNAME(CNAME(target)) = &c.data
                    && self.origin.zone_of(target)
                    && let Some(t) = self.nodes.get(&LowerName::new(target))
                {
                    answers.extend(t.iter().filter(|r| r.record_type() == qtype).cloned());
                }
                return Answer {
                    rcode: ResponseCode::NoError,
                    authoritative: true,
                    answers,
                    authority: Vec::new(),
                    additionals: Vec::new(),
                };
            }
            return self.negative(ResponseCode::NoError, self.soa.clone());
        }
        let mut additionals = Vec::new();
        for a in &answers {
            if let RData::SRV(srv) = &a.data
                && let Some(t) = self.nodes.get(&LowerName::new(&srv.target))
            {
                for r in t.iter().filter(|r| r.record_type() == RecordType::A) {
                    if !additionals.contains(r) {
                        additionals.push(r.clone());
                    }
                }
            }
        }
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers,
            authority: Vec::new(),
            additionals,
        }
    }

    fn reverse_lookup(&self, qname: &Name, octets: &[u8], qtype: RecordType) -> Answer {
        // Which of our reverse zones holds the name, if any: a partial name
        // (fewer than four octets) is ours when its range overlaps a CIDR.
        let ours = self.reverse_zones.iter().find(|(_, net)| {
            let bits = (octets.len() * 8) as u8;
            if bits < net.prefix() / 8 * 8 {
                return false; // above the zone apex
            }
            let mut a = [0u8; 4];
            a[..octets.len()].copy_from_slice(octets);
            let addr = Ipv4Addr::from(a);
            if bits >= net.prefix() {
                net.contains(addr)
            } else {
                Ipv4Network::new(addr, bits).is_ok_and(|r| r.contains(net.network()))
            }
        });
        let Some((zname, _)) = ours else {
            return Answer::error(ResponseCode::Refused);
        };
        let soa = Record::from_rdata(zname.clone(), self.cfg.ttl, self.soa.data.clone());
        if octets.len() < 4 {
            return self.negative(ResponseCode::NoError, soa);
        }
        let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
        let Some(targets) = self.reverse.get(&ip) else {
            return self.negative(ResponseCode::NXDomain, soa);
        };
        if !matches!(qtype, RecordType::PTR | RecordType::ANY) {
            return self.negative(ResponseCode::NoError, soa);
        }
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            answers: targets
                .iter()
                .map(|t| {
                    Record::from_rdata(qname.clone(), self.cfg.ttl, RData::PTR(PTR(t.clone())))
                })
                .collect(),
            authority: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
