//! Address allocation over an IPv4 CIDR: u32 arithmetic and a set of used
//! addresses. Pure; the daemon rebuilds it from stored objects at start.

use ipnetwork::Ipv4Network;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("no free address left in {0}")]
    Exhausted(Ipv4Network),
    #[error("{addr} is not in the range {net}")]
    OutOfRange { addr: Ipv4Addr, net: Ipv4Network },
    #[error("{0} is already allocated")]
    InUse(Ipv4Addr),
    #[error("{0} is reserved")]
    Reserved(Ipv4Addr),
    #[error("no node {0:?} with a pod range")]
    UnknownNode(String),
}

/// Pod addresses: one range per node (its `spec.podCIDR`); a pod takes its
/// address from the range of the node it is bound to.
#[derive(Debug, Clone)]
pub struct PodIpam {
    nodes: Vec<(String, Ipam)>,
}

impl PodIpam {
    pub fn new(nodes: &[(String, Ipv4Network)]) -> PodIpam {
        PodIpam {
            nodes: nodes
                .iter()
                .map(|(n, net)| (n.clone(), Ipam::new(*net, &[])))
                .collect(),
        }
    }

    fn range_of(&mut self, addr: Ipv4Addr) -> Option<&mut Ipam> {
        self.nodes
            .iter_mut()
            .map(|(_, i)| i)
            .find(|i| i.net.contains(addr))
    }

    /// The node whose range holds `addr`.
    pub fn node_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, i)| i.net.contains(addr))
            .map(|(n, _)| n.as_str())
    }

    /// The next free address of `node`'s range.
    pub fn allocate(&mut self, node: &str) -> Result<Ipv4Addr, IpamError> {
        match self.nodes.iter_mut().find(|(n, _)| n == node) {
            Some((_, i)) => i.allocate(),
            None => Err(IpamError::UnknownNode(node.to_string())),
        }
    }

    /// Mark `addr` used, in whichever node's range holds it.
    pub fn claim(&mut self, addr: Ipv4Addr) -> Result<(), IpamError> {
        let first = self.nodes.first().map(|(_, i)| i.net);
        match self.range_of(addr) {
            Some(i) => i.claim(addr),
            None => Err(IpamError::OutOfRange {
                addr,
                net: first.unwrap_or_else(|| Ipv4Network::from(addr)),
            }),
        }
    }

    pub fn release(&mut self, addr: Ipv4Addr) {
        if let Some(i) = self.range_of(addr) {
            i.release(addr);
        }
    }

    /// Addresses in use on every node.
    #[cfg(test)]
    #[allow(dead_code)]
    pub fn used_count(&self) -> usize {
        self.nodes.iter().map(|(_, i)| i.used_count()).sum()
    }
}

#[derive(Debug, Clone)]
pub struct Ipam {
    net: Ipv4Network,
    used: BTreeSet<u32>,
    reserved: BTreeSet<u32>,
    /// Next candidate (round-robin, so a freed address is not reused at once).
    next: u32,
}

impl Ipam {
    /// Usable addresses are the network's minus its network and broadcast
    /// address and minus `reserved`.
    pub fn new(net: Ipv4Network, reserved: &[Ipv4Addr]) -> Ipam {
        let first = u32::from(net.network()) + 1;
        Ipam {
            net,
            used: BTreeSet::new(),
            reserved: reserved.iter().map(|a| u32::from(*a)).collect(),
            next: first,
        }
    }

    fn first(&self) -> u32 {
        u32::from(self.net.network()) + 1
    }

    fn last(&self) -> u32 {
        u32::from(self.net.broadcast()).saturating_sub(1)
    }

    /// The `n`th usable address (1-based), e.g. `nth(1)` is the first.
    #[cfg(test)]
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let a = u32::from(self.net.network()).checked_add(n)?;
        (n >= 1 && a <= self.last()).then(|| Ipv4Addr::from(a))
    }

    /// The last usable address.
    #[cfg(test)]
    pub fn last_usable(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.last())
    }

    pub fn allocate(&mut self) -> Result<Ipv4Addr, IpamError> {
        let (first, last) = (self.first(), self.last());
        if last < first {
            return Err(IpamError::Exhausted(self.net));
        }
        let size = u64::from(last - first) + 1;
        let mut cand = self.next.clamp(first, last);
        for _ in 0..size {
            if !self.used.contains(&cand) && !self.reserved.contains(&cand) {
                self.used.insert(cand);
                self.next = if cand == last { first } else { cand + 1 };
                return Ok(Ipv4Addr::from(cand));
            }
            cand = if cand == last { first } else { cand + 1 };
        }
        Err(IpamError::Exhausted(self.net))
    }

    /// Claim a specific address (a requested ClusterIP, or one restored from
    /// saved state).
    pub fn claim(&mut self, addr: Ipv4Addr) -> Result<(), IpamError> {
        let a = u32::from(addr);
        if a < self.first() || a > self.last() {
            return Err(IpamError::OutOfRange {
                addr,
                net: self.net,
            });
        }
        if self.reserved.contains(&a) {
            return Err(IpamError::Reserved(addr));
        }
        if !self.used.insert(a) {
            return Err(IpamError::InUse(addr));
        }
        Ok(())
    }

    /// Claim an address even if it is in the reserved set (used for the
    /// system Services' well-known addresses).
    pub fn claim_reserved(&mut self, addr: Ipv4Addr) -> Result<(), IpamError> {
        let a = u32::from(addr);
        if !self.reserved.remove(&a) {
            return self.claim(addr);
        }
        let r = self.claim(addr);
        self.reserved.insert(a);
        r
    }

    pub fn release(&mut self, addr: Ipv4Addr) {
        self.used.remove(&u32::from(addr));
    }

    #[cfg(test)]
    pub fn used_count(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_round_robin_and_never_twice() {
        let mut ipam = Ipam::new(net("10.0.0.0/29"), &[]);
        let got: Vec<_> = (0..6).map(|_| ipam.allocate().unwrap()).collect();
        assert_eq!(got[0], Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(got[5], Ipv4Addr::new(10, 0, 0, 6));
        assert_eq!(
            ipam.allocate(),
            Err(IpamError::Exhausted(net("10.0.0.0/29")))
        );
        ipam.release(Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(ipam.allocate().unwrap(), Ipv4Addr::new(10, 0, 0, 3));
        assert_eq!(ipam.used_count(), 6);
    }

    #[test]
    fn freed_address_is_not_reused_first() {
        let mut ipam = Ipam::new(net("10.0.0.0/24"), &[]);
        let a = ipam.allocate().unwrap();
        ipam.release(a);
        assert_ne!(ipam.allocate().unwrap(), a);
    }

    #[test]
    fn reserved_and_claims() {
        let dns = Ipv4Addr::new(10, 96, 0, 10);
        let mut ipam = Ipam::new(net("10.96.0.0/28"), &[dns]);
        for _ in 0..13 {
            assert_ne!(ipam.allocate().unwrap(), dns);
        }
        assert_eq!(
            ipam.allocate(),
            Err(IpamError::Exhausted(net("10.96.0.0/28")))
        );
        assert_eq!(ipam.claim(dns), Err(IpamError::Reserved(dns)));
        ipam.claim_reserved(dns).unwrap();
        assert!(matches!(
            ipam.claim(Ipv4Addr::new(10, 97, 0, 1)),
            Err(IpamError::OutOfRange { .. })
        ));
        assert_eq!(ipam.nth(10), Some(dns));
        assert_eq!(ipam.last_usable(), Ipv4Addr::new(10, 96, 0, 14));
    }

    #[test]
    fn tiny_networks_do_not_panic() {
        let mut ipam = Ipam::new(net("10.0.0.0/32"), &[]);
        assert!(ipam.allocate().is_err());
        let mut ipam = Ipam::new(net("10.0.0.0/31"), &[]);
        assert!(ipam.allocate().is_err());
        assert!(ipam.claim(Ipv4Addr::new(10, 0, 0, 0)).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        #[derive(Debug, Clone)]
        enum Op {
            Allocate,
            Release(u8),
            Claim(u8),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => Just(Op::Allocate),
                1 => any::<u8>().prop_map(Op::Release),
                1 => any::<u8>().prop_map(Op::Claim),
            ]
        }

        proptest! {
            /// Against a plain set as the model: an address is never handed
            /// out twice, never outside the usable range, never reserved;
            /// allocation fails exactly when every usable address is taken.
            #[test]
            fn never_twice_never_reserved_exhausted_only_when_full(
                prefix in 26u8..=31,
                reserved_offsets in proptest::collection::vec(1u32..8, 0..3),
                ops in proptest::collection::vec(op(), 1..200),
            ) {
                let net = Ipv4Network::new(Ipv4Addr::new(10, 96, 0, 0), prefix).unwrap();
                let base = u32::from(net.network());
                let usable: BTreeSet<u32> = if prefix >= 31 {
                    BTreeSet::new()
                } else {
                    (base + 1..u32::from(net.broadcast())).collect()
                };
                let reserved: Vec<Ipv4Addr> =
                    reserved_offsets.iter().map(|o| Ipv4Addr::from(base + o)).collect();
                let reserved_set: BTreeSet<u32> = reserved.iter().map(|a| u32::from(*a)).collect();
                let mut ipam = Ipam::new(net, &reserved);
                let mut model: BTreeSet<u32> = BTreeSet::new();
                let free = |m: &BTreeSet<u32>| {
                    usable.iter().filter(|a| !m.contains(a) && !reserved_set.contains(a)).count()
                };
                for op in ops {
                    match op {
                        Op::Allocate => match ipam.allocate() {
                            Ok(a) => {
                                let a = u32::from(a);
                                prop_assert!(usable.contains(&a), "{a} outside");
                                prop_assert!(!reserved_set.contains(&a), "reserved {a}");
                                prop_assert!(model.insert(a), "{a} handed out twice");
                            }
                            Err(IpamError::Exhausted(_)) => prop_assert_eq!(free(&model), 0),
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        },
                        Op::Release(i) => {
                            if let Some(a) = model.iter().nth(i as usize % model.len().max(1)).copied() {
                                ipam.release(Ipv4Addr::from(a));
                                model.remove(&a);
                            }
                        }
                        Op::Claim(o) => {
                            let a = base + u32::from(o) % 40;
                            let r = ipam.claim(Ipv4Addr::from(a));
                            let ok = usable.contains(&a) && !reserved_set.contains(&a) && !model.contains(&a);
                            prop_assert_eq!(r.is_ok(), ok, "claim {}", a);
                            if ok {
                                model.insert(a);
                            }
                        }
                    }
                    prop_assert_eq!(ipam.used_count(), model.len());
                }
            }
        }
    }
}
