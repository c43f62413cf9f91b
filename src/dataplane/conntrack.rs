//! The flow table: fixed capacity, both directions indexed, TCP state with
//! nf_conntrack's default timeouts, bounded expiry sweeps and sampling
//! eviction when full.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

/// 5-tuple as seen on the wire: (protocol, src, sport, dst, dport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// A cheap hasher for tuples (the table is not exposed to untrusted keys
/// beyond what a pod can send; collisions only cost time).
#[derive(Default)]
pub struct TupleHasher(u64);

impl Hasher for TupleHasher {
    fn finish(&self) -> u64 {
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(8) ^ u64::from(i)).wrapping_mul(0x9e3779b97f4a7c15);
    }
    fn write_u16(&mut self, i: u16) {
        self.0 = (self.0.rotate_left(16) ^ u64::from(i)).wrapping_mul(0x9e3779b97f4a7c15);
    }
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(32) ^ u64::from(i)).wrapping_mul(0x9e3779b97f4a7c15);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(29) ^ i).wrapping_mul(0x9e3779b97f4a7c15);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<TupleHasher>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    FinWait,
    TimeWait,
    Close,
}

impl TcpState {
    pub fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::Established => 432_000,
            TcpState::FinWait => 120,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        })
    }
}

pub const UDP_UNREPLIED: Duration = Duration::from_secs(30);
pub const UDP_REPLIED: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    /// Client → VIP as the client sent it.
    pub orig: Tuple,
    /// Backend → client (or → SNAT address for hairpin) as the backend sends it.
    pub reply: Tuple,
    /// `(vip, proto, port)` key of the ServicePort.
    pub port_key: (Ipv4Addr, u8, u16),
    pub service: usize,
    pub tcp: Option<TcpState>,
    /// FIN seen from the client / from the backend.
    pub fin_orig: bool,
    pub fin_reply: bool,
    pub replied: bool,
    pub expires: Duration,
}

impl Flow {
    pub fn backend(&self) -> (Ipv4Addr, u16) {
        (self.reply.src, self.reply.sport)
    }

    pub fn hairpin(&self) -> bool {
        self.reply.dst != self.orig.src
    }

    pub fn established(&self) -> bool {
        matches!(self.tcp, Some(TcpState::Established)) || (self.tcp.is_none() && self.replied)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub packets: u64,
    pub translated: u64,
    pub forwarded_unchanged: u64,
    pub flows_created: u64,
    pub flows_expired: u64,
    pub flows_evicted: u64,
    pub flows_flushed: u64,
    pub rejects: u64,
    pub drop_malformed: u64,
    pub drop_not_ipv4: u64,
    pub drop_fragment: u64,
    pub drop_unallocated_vip: u64,
    pub drop_echo_to_vip: u64,
    pub icmp_errors_translated: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounters {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    pub rejects: u64,
    pub drops: u64,
}

/// Slab of flows plus the two indexes.
#[derive(Debug, Default)]
pub struct Table {
    pub capacity: usize,
    slots: Vec<Option<Flow>>,
    free: Vec<usize>,
    by_orig: FastMap<Tuple, usize>,
    by_reply: FastMap<Tuple, usize>,
    sweep: usize,
    rng: u64,
}

pub enum Found {
    Orig(usize),
    Reply(usize),
}

impl Table {
    pub fn new(capacity: usize) -> Table {
        Table {
            capacity: capacity.max(1),
            rng: 0x2545f4914f6cdd1d,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_orig.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_orig.is_empty()
    }

    pub fn find(&self, t: &Tuple) -> Option<Found> {
        if let Some(i) = self.by_orig.get(t) {
            return Some(Found::Orig(*i));
        }
        self.by_reply.get(t).map(|i| Found::Reply(*i))
    }

    pub fn reply_exists(&self, t: &Tuple) -> bool {
        self.by_reply.contains_key(t) || self.by_orig.contains_key(t)
    }

    pub fn get(&self, i: usize) -> Option<&Flow> {
        self.slots.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Flow> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn remove(&mut self, i: usize) -> Option<Flow> {
        let f = self.slots.get_mut(i)?.take()?;
        self.by_orig.remove(&f.orig);
        self.by_reply.remove(&f.reply);
        self.free.push(i);
        Some(f)
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545f4914f6cdd1d)
    }

    /// Pick a victim among a few random slots: an unestablished flow, else
    /// the one closest to expiry.
    fn evict_one(&mut self) -> bool {
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        let mut best: Option<(bool, Duration, usize)> = None;
        for _ in 0..16 {
            let i = (self.next_rand() % n as u64) as usize;
            if let Some(f) = &self.slots[i] {
                let cand = (f.established(), f.expires, i);
                if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                    best = Some(cand);
                }
            }
        }
        let victim = match best {
            Some((_, _, i)) => i,
            None => match self.slots.iter().position(Option::is_some) {
                Some(i) => i,
                None => return false,
            },
        };
        self.remove(victim).is_some()
    }

    /// Insert a flow; evicts one first when full (returns whether it did).
    pub fn insert(&mut self, flow: Flow) -> (usize, bool) {
        let mut evicted = false;
        if self.len() >= self.capacity {
            evicted = self.evict_one();
        }
        let (o, r) = (flow.orig, flow.reply);
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(flow);
                i
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.by_orig.insert(o, i);
        self.by_reply.insert(r, i);
        (i, evicted)
    }

    /// Remove expired flows, looking at no more than `budget` slots.
    pub fn expire(&mut self, now: Duration, budget: usize) -> usize {
        let n = self.slots.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.sweep = (self.sweep + 1) % n;
            let i = self.sweep;
            if self.slots[i].as_ref().is_some_and(|f| f.expires <= now) {
                self.remove(i);
                removed += 1;
            }
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Flow)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i, f)))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Flow) -> bool) -> usize {
        let doomed: Vec<usize> = self
            .iter()
            .filter(|(_, f)| !keep(f))
            .map(|(i, _)| i)
            .collect();
        for i in &doomed {
            self.remove(*i);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: u16, expires: u64, established: bool) -> Flow {
        let a = Ipv4Addr::new(10, 244, 0, 2);
        let v = Ipv4Addr::new(10, 96, 0, 5);
        let b = Ipv4Addr::new(10, 244, 0, 3);
        Flow {
            orig: Tuple {
                proto: 6,
                src: a,
                sport: n,
                dst: v,
                dport: 80,
            },
            reply: Tuple {
                proto: 6,
                src: b,
                sport: 8080,
                dst: a,
                dport: n,
            },
            port_key: (v, 6, 80),
            service: 0,
            tcp: Some(if established {
                TcpState::Established
            } else {
                TcpState::SynSent
            }),
            fin_orig: false,
            fin_reply: false,
            replied: established,
            expires: Duration::from_secs(expires),
        }
    }

    #[test]
    fn capacity_is_a_hard_bound_and_prefers_unestablished_victims() {
        let mut t = Table::new(100);
        for i in 0..50 {
            t.insert(flow(i, 1000, true));
        }
        let mut evictions = 0;
        for i in 50..10_000u16 {
            evictions += t.insert(flow(i, 100, false)).1 as usize;
        }
        assert_eq!(t.len(), 100);
        assert_eq!(evictions, 10_000 - 100);
        // A SYN flood mostly evicts its own half-open flows.
        let established = t.iter().filter(|(_, f)| f.established()).count();
        assert!(
            established >= 40,
            "established flows evicted: {established} left"
        );
        assert!(t.slots.len() <= 100);
    }

    #[test]
    fn expiry_is_bounded_and_complete() {
        let mut t = Table::new(1000);
        for i in 0..500 {
            t.insert(flow(i, if i % 2 == 0 { 10 } else { 100 }, false));
        }
        assert_eq!(t.expire(Duration::from_secs(50), 100), 50);
        let mut total = 50;
        for _ in 0..10 {
            total += t.expire(Duration::from_secs(50), 100);
        }
        assert_eq!(total, 250);
        assert_eq!(t.len(), 250);
        assert!(t.find(&flow(1, 0, false).orig).is_some());
        assert!(t.find(&flow(0, 0, false).orig).is_none());
        assert!(matches!(
            t.find(&flow(1, 0, false).reply),
            Some(Found::Reply(_))
        ));
    }
}
