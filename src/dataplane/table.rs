//! The service table the control plane hands to the NAT core, built whole
//! and swapped whole: [`Registry::compile`] turns a [`ServiceTable`] into a
//! [`Compiled`] table (lookup maps plus stable counter indexes), which the
//! NAT shards pick up by pointer (`Nat::install`), never by copying.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::proto::Proto;

/// One endpoint of a service port, with its EndpointSlice conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub ip: Ipv4Addr,
    /// The resolved targetPort.
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// `ns/name:portname` (for counters).
    pub id: String,
    /// `ns/name`.
    pub service: String,
    pub endpoints: Vec<Backend>,
    /// `sessionAffinity: ClientIP` with this timeout.
    pub affinity_timeout: Option<Duration>,
}

impl ServicePort {
    /// Whether new flows may go to `b`: Ready endpoints, or if none is Ready,
    /// Serving + Terminating ones (Kubernetes' terminating-endpoint fallback).
    /// `any_ready` is `self.any_ready()`, passed in to keep this O(1).
    #[inline]
    pub fn is_eligible(b: &Backend, any_ready: bool) -> bool {
        if any_ready {
            b.ready
        } else {
            b.serving && b.terminating
        }
    }

    pub fn any_ready(&self) -> bool {
        self.endpoints.iter().any(|b| b.ready)
    }

    /// Where new flows may go (see [`ServicePort::is_eligible`]).
    pub fn eligible(&self) -> impl Iterator<Item = &Backend> {
        let any_ready = self.any_ready();
        self.endpoints
            .iter()
            .filter(move |b| Self::is_eligible(b, any_ready))
    }

    /// Whether `ip:port` is still a serving endpoint (UDP flows to anything
    /// else are flushed on a table update).
    pub fn serves(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.endpoints
            .iter()
            .any(|b| b.ip == ip && b.port == port && (b.ready || b.serving))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTable {
    /// The service CIDR (network, prefix length).
    pub service_cidr: (Ipv4Addr, u8),
    /// Reserved hairpin SNAT source inside the service CIDR (never allocated
    /// to a Service, never assigned to an interface).
    pub snat_addr: Ipv4Addr,
    /// Allocated ClusterIPs.
    pub vips: HashSet<Ipv4Addr>,
    /// `(vip, protocol, port)` → the service port.
    pub ports: HashMap<(Ipv4Addr, Proto, u16), ServicePort>,
}

impl Default for ServiceTable {
    fn default() -> Self {
        ServiceTable {
            service_cidr: (Ipv4Addr::UNSPECIFIED, 0),
            snat_addr: Ipv4Addr::UNSPECIFIED,
            vips: HashSet::new(),
            ports: HashMap::new(),
        }
    }
}

impl ServiceTable {
    /// `(network, mask)` as host-order integers; prefix 0 (no table yet)
    /// matches nothing.
    pub fn cidr_mask(&self) -> Option<(u32, u32)> {
        let (net, len) = self.service_cidr;
        if len == 0 {
            return None;
        }
        let mask = u32::MAX << (32 - u32::from(len.min(32)));
        Some((u32::from(net) & mask, mask))
    }

    pub fn in_service_cidr(&self, ip: Ipv4Addr) -> bool {
        self.cidr_mask()
            .is_some_and(|(net, mask)| u32::from(ip) & mask == net)
    }
}

/// Counter indexes of a service port and its service (stable for the
/// lifetime of the [`Registry`] that handed them out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMeta {
    pub port: u32,
    pub service: u32,
}

/// A service table ready for the packet path: the table itself, the CIDR
/// mask, `(vip, proto, port)` → counter indexes, VIP → service index, and
/// the names behind every index handed out so far (names only grow, so a
/// newer [`Compiled`] names every index an older one did).
#[derive(Debug, Default)]
pub struct Compiled {
    pub table: Arc<ServiceTable>,
    /// Bumped by each [`Registry::compile`].
    pub generation: u64,
    pub cidr: Option<(u32, u32)>,
    pub meta: HashMap<(Ipv4Addr, Proto, u16), PortMeta>,
    pub vip_service: HashMap<Ipv4Addr, u32>,
    pub port_names: Arc<Vec<String>>,
    pub service_names: Arc<Vec<String>>,
    /// Injected faults by port index (`lab fault`); `None` when there are
    /// none, so the packet path tests one pointer.
    pub faults: Option<Arc<super::fault::FaultTable>>,
}

impl Compiled {
    #[inline]
    pub fn in_cidr(&self, ip: Ipv4Addr) -> bool {
        self.cidr
            .is_some_and(|(net, mask)| u32::from(ip) & mask == net)
    }
}

/// Hands out counter indexes for service-port ids and service names, and
/// compiles tables with them. One registry per set of NAT shards, so every
/// shard counts a service at the same index.
#[derive(Debug, Default)]
pub struct Registry {
    ports: HashMap<String, u32>,
    services: HashMap<String, u32>,
    port_names: Arc<Vec<String>>,
    service_names: Arc<Vec<String>>,
    generation: u64,
}

fn intern(map: &mut HashMap<String, u32>, names: &mut Arc<Vec<String>>, name: &str) -> u32 {
    if let Some(i) = map.get(name) {
        return *i;
    }
    let v = Arc::make_mut(names);
    v.push(name.to_string());
    let i = (v.len() - 1) as u32;
    map.insert(name.to_string(), i);
    i
}

impl Registry {
    pub fn port_idx(&mut self, id: &str) -> u32 {
        intern(&mut self.ports, &mut self.port_names, id)
    }

    pub fn service_idx(&mut self, name: &str) -> u32 {
        intern(&mut self.services, &mut self.service_names, name)
    }

    pub fn port_names(&self) -> &Arc<Vec<String>> {
        &self.port_names
    }

    pub fn service_names(&self) -> &Arc<Vec<String>> {
        &self.service_names
    }

    /// Build the packet path's view of `table`: O(service ports), done by
    /// the caller (the reconciler), never by a queue.
    pub fn compile(&mut self, table: Arc<ServiceTable>) -> Arc<Compiled> {
        let mut meta = HashMap::with_capacity(table.ports.len());
        let mut vip_service = HashMap::with_capacity(table.vips.len());
        for (key, sp) in &table.ports {
            let service = self.service_idx(&sp.service);
            let port = self.port_idx(&sp.id);
            meta.insert(*key, PortMeta { port, service });
            vip_service.insert(key.0, service);
        }
        self.generation += 1;
        Arc::new(Compiled {
            cidr: table.cidr_mask(),
            table,
            generation: self.generation,
            meta,
            vip_service,
            port_names: Arc::clone(&self.port_names),
            service_names: Arc::clone(&self.service_names),
            faults: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8, ready: bool, serving: bool, terminating: bool) -> Backend {
        Backend {
            ip: Ipv4Addr::new(10, 244, 0, n),
            port: 80,
            ready,
            serving,
            terminating,
        }
    }

    #[test]
    fn eligibility_prefers_ready_then_serving_terminating() {
        let mut sp = ServicePort {
            id: "a/b:c".into(),
            service: "a/b".into(),
            endpoints: vec![b(1, true, true, false), b(2, false, true, true)],
            affinity_timeout: None,
        };
        let ips: Vec<_> = sp.eligible().map(|b| b.ip.octets()[3]).collect();
        assert_eq!(ips, [1]);
        sp.endpoints[0].ready = false;
        sp.endpoints[0].serving = false;
        let ips: Vec<_> = sp.eligible().map(|b| b.ip.octets()[3]).collect();
        assert_eq!(ips, [2]);
        assert!(sp.serves(Ipv4Addr::new(10, 244, 0, 2), 80));
        assert!(!sp.serves(Ipv4Addr::new(10, 244, 0, 1), 80));
        sp.endpoints[1].serving = false;
        assert_eq!(sp.eligible().count(), 0);
    }

    #[test]
    fn cidr() {
        let t = ServiceTable {
            service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
            ..Default::default()
        };
        assert!(t.in_service_cidr(Ipv4Addr::new(10, 111, 255, 254)));
        assert!(!t.in_service_cidr(Ipv4Addr::new(10, 112, 0, 0)));
        assert!(!ServiceTable::default().in_service_cidr(Ipv4Addr::new(1, 2, 3, 4)));
        let one = ServiceTable {
            service_cidr: (Ipv4Addr::new(10, 96, 0, 7), 32),
            ..Default::default()
        };
        assert!(one.in_service_cidr(Ipv4Addr::new(10, 96, 0, 7)));
        assert!(!one.in_service_cidr(Ipv4Addr::new(10, 96, 0, 8)));
    }
}
