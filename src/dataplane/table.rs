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
    /// No eligible endpoint drops a new flow instead of rejecting it
    /// (`internalTrafficPolicy: Local` without an endpoint on this node).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_without_endpoints: bool,
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

/// Counter indexes of a service port and its service (stable while the
/// name is in the table; see [`Registry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMeta {
    pub port: u32,
    pub service: u32,
}

/// A counter index whose name left the table at `generation`: shards
/// zero its counters and detach their flows from it; the index is handed
/// out again only after every shard has done so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    pub generation: u64,
    /// A service index (else a service-port index).
    pub service: bool,
    pub index: u32,
}

/// A service table ready for the packet path: the table itself, the CIDR
/// mask, `(vip, proto, port)` → counter indexes, VIP → service index, and
/// the names behind every index in use (a retired index's name is empty).
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
    /// Indexes retired and not yet reusable (see [`Retired`]).
    pub retired: Arc<Vec<Retired>>,
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
/// shard counts a service at the same index. A name that leaves the table
/// (the Service was deleted, or lost that port) is retired: its counters
/// disappear, and its index is reused once every shard has detached its
/// remaining flows from it ([`Registry::release`]), so memory follows the
/// Services that exist, not every Service that ever did.
#[derive(Debug, Default)]
pub struct Registry {
    ports: HashMap<String, u32>,
    services: HashMap<String, u32>,
    port_names: Arc<Vec<String>>,
    service_names: Arc<Vec<String>>,
    generation: u64,
    retired: Arc<Vec<Retired>>,
    free_ports: Vec<u32>,
    free_services: Vec<u32>,
}

fn intern(
    map: &mut HashMap<String, u32>,
    names: &mut Arc<Vec<String>>,
    free: &mut Vec<u32>,
    name: &str,
) -> u32 {
    if let Some(i) = map.get(name) {
        return *i;
    }
    let v = Arc::make_mut(names);
    let i = match free.pop() {
        Some(i) if (i as usize) < v.len() => {
            v[i as usize] = name.to_string();
            i
        }
        _ => {
            v.push(name.to_string());
            (v.len() - 1) as u32
        }
    };
    map.insert(name.to_string(), i);
    i
}

/// Retire the names of `map` not in `live`.
fn retire(
    map: &mut HashMap<String, u32>,
    names: &mut Arc<Vec<String>>,
    live: &HashSet<&str>,
    out: &mut Vec<u32>,
) {
    if map.len() == live.len() {
        return; // every interned name is live (live ⊆ map)
    }
    map.retain(|name, i| {
        let keep = live.contains(name.as_str());
        if !keep {
            out.push(*i);
        }
        keep
    });
    if !out.is_empty() {
        let v = Arc::make_mut(names);
        for i in out.iter() {
            if let Some(n) = v.get_mut(*i as usize) {
                n.clear();
            }
        }
    }
}

impl Registry {
    pub fn port_idx(&mut self, id: &str) -> u32 {
        intern(
            &mut self.ports,
            &mut self.port_names,
            &mut self.free_ports,
            id,
        )
    }

    pub fn service_idx(&mut self, name: &str) -> u32 {
        intern(
            &mut self.services,
            &mut self.service_names,
            &mut self.free_services,
            name,
        )
    }

    pub fn port_names(&self) -> &Arc<Vec<String>> {
        &self.port_names
    }

    pub fn service_names(&self) -> &Arc<Vec<String>> {
        &self.service_names
    }

    /// Retired indexes not yet reusable.
    pub fn retired(&self) -> &[Retired] {
        &self.retired
    }

    /// Every shard has detached its flows from indexes retired at or before
    /// `generation`: make those indexes reusable.
    pub fn release(&mut self, generation: u64) {
        if self.retired.iter().all(|r| r.generation > generation) {
            return;
        }
        let v = Arc::make_mut(&mut self.retired);
        v.retain(|r| {
            if r.generation > generation {
                return true;
            }
            if r.service {
                self.free_services.push(r.index);
            } else {
                self.free_ports.push(r.index);
            }
            false
        });
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
        let live_services: HashSet<&str> =
            table.ports.values().map(|sp| sp.service.as_str()).collect();
        let live_ports: HashSet<&str> = table.ports.values().map(|sp| sp.id.as_str()).collect();
        let (mut gone_services, mut gone_ports) = (Vec::new(), Vec::new());
        retire(
            &mut self.services,
            &mut self.service_names,
            &live_services,
            &mut gone_services,
        );
        retire(
            &mut self.ports,
            &mut self.port_names,
            &live_ports,
            &mut gone_ports,
        );
        if !gone_services.is_empty() || !gone_ports.is_empty() {
            let generation = self.generation;
            let v = Arc::make_mut(&mut self.retired);
            v.extend(gone_services.into_iter().map(|index| Retired {
                generation,
                service: true,
                index,
            }));
            v.extend(gone_ports.into_iter().map(|index| Retired {
                generation,
                service: false,
                index,
            }));
        }
        Arc::new(Compiled {
            cidr: table.cidr_mask(),
            table,
            generation: self.generation,
            meta,
            vip_service,
            port_names: Arc::clone(&self.port_names),
            service_names: Arc::clone(&self.service_names),
            faults: None,
            retired: Arc::clone(&self.retired),
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
            drop_without_endpoints: false,
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

    fn one(service: &str) -> Arc<ServiceTable> {
        let mut t = ServiceTable::default();
        t.ports.insert(
            (Ipv4Addr::new(10, 96, 0, 1), Proto::Tcp, 80),
            ServicePort {
                id: format!("{service}:http"),
                service: service.into(),
                endpoints: Vec::new(),
                affinity_timeout: None,
                drop_without_endpoints: false,
            },
        );
        Arc::new(t)
    }

    #[test]
    fn retired_names_free_their_index_only_when_released() {
        let mut r = Registry::default();
        let a = r.compile(one("ns/a"));
        assert_eq!(a.service_names.as_slice(), ["ns/a"]);
        let b = r.compile(one("ns/b"));
        assert_eq!(b.service_names.as_slice(), ["", "ns/b"], "a retired");
        assert_eq!(b.retired.len(), 2, "service and port");
        assert_eq!(b.retired[0].generation, b.generation);
        // Not released yet: a new name gets a new index.
        let c = r.compile(one("ns/c"));
        assert_eq!(c.service_names.len(), 3);
        r.release(b.generation);
        assert_eq!(r.retired().len(), 2, "c's retirement of b is newer");
        let d = r.compile(one("ns/d"));
        assert_eq!(d.service_names[0], "ns/d", "a's index reused");
        assert_eq!(d.service_names.len(), 3);
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
