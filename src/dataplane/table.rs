//! The service table the control plane hands to the NAT core, built whole
//! and swapped whole.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// `ns/name:port` (for counters).
    pub id: String,
    /// `ns/name`.
    pub service: String,
    pub endpoints: Vec<Backend>,
    /// ClientIP session affinity.
    pub affinity_timeout: Option<Duration>,
}

impl ServicePort {
    /// Where new flows may go: Ready endpoints, or if none, Serving and
    /// Terminating ones (Kubernetes' terminating-endpoint fallback).
    pub fn eligible(&self) -> impl Iterator<Item = &Backend> {
        let any_ready = self.endpoints.iter().any(|b| b.ready);
        self.endpoints.iter().filter(move |b| {
            if any_ready {
                b.ready
            } else {
                b.serving && b.terminating
            }
        })
    }

    pub fn serves(&self, ip: Ipv4Addr, port: u16) -> bool {
        self.endpoints
            .iter()
            .any(|b| b.ip == ip && b.port == port && (b.ready || b.serving))
    }
}

#[derive(Debug, Clone)]
pub struct ServiceTable {
    /// The service CIDR (network, prefix length).
    pub service_cidr: (Ipv4Addr, u8),
    /// Reserved hairpin SNAT source (never allocated to a Service).
    pub snat_addr: Ipv4Addr,
    /// Allocated ClusterIPs.
    pub vips: HashSet<Ipv4Addr>,
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
    pub fn in_service_cidr(&self, ip: Ipv4Addr) -> bool {
        let (net, len) = self.service_cidr;
        if len == 0 {
            return false;
        }
        let mask = u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(net) & mask
    }
}
