//! The NAT split into shards so several TUN queues work without a global
//! lock. The kernel picks a TUN queue by a flow hash of each direction
//! separately, so a flow's request and reply can arrive on different queues:
//! per-queue state would not see both. Instead the flow space is split by a
//! key both directions carry — the client's (address, port, protocol): the
//! source of a client → VIP packet, the destination of a backend → client
//! reply. Hairpin and port-clash flows, whose reply goes to an SNAT port,
//! get a port chosen to land in the same shard; an ICMP error is placed by
//! the flow it quotes. Each shard is a plain [`Nat`] behind its own mutex
//! (held for one packet); the compiled service table is published by
//! pointer and a generation number, so the reconciler never waits for a
//! queue and a queue never waits for the reconciler; ClientIP affinity
//! entries are shared (split by client IP) because one client's flows
//! spread over all shards.

use super::affinity::SharedAffinity;
use super::conntrack::{Flow, TCP, Tuple, UDP};
use super::counters::{Counters, ServiceCounters};
use super::events::{EVENT_QUEUE, FlowEvents, Reject};
use super::fault::{FaultRule, FaultTable};
use super::nat::{AFFINITY_SWEEP_BUDGET, Nat, RestoreError, Verdict, restore_affinity};
use super::snapshot::{self as snap, SavedFlow};
use super::table::{Compiled, Registry, ServiceTable};
use super::vnet;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shards of the flow table. Fixed, so a snapshot taken by a daemon on one
/// machine restores into the same shards on another with more cores.
pub const SHARDS: usize = 64;
const ICMP: u8 = 1;

#[inline]
fn mix(proto: u8, ip: Ipv4Addr) -> u32 {
    (u32::from(ip) ^ (u32::from(proto) << 24)).wrapping_mul(0x9e37_79b1) >> 16
}

/// The shard of (protocol, client address, client port). Consecutive ports
/// of one client go to consecutive shards.
#[inline]
pub fn key(proto: u8, ip: Ipv4Addr, port: u16, n: usize) -> usize {
    (mix(proto, ip) + u32::from(port)) as usize % n.max(1)
}

/// The shard of a flow by its original (client → VIP) tuple.
#[inline]
pub fn of_orig(t: &Tuple, n: usize) -> usize {
    key(t.proto, t.src, t.sport, n)
}

/// The shard of a flow by its reply (backend → client or SNAT) tuple.
#[inline]
pub fn of_reply(t: &Tuple, n: usize) -> usize {
    key(t.proto, t.dst, t.dport, n)
}

/// The shard of a packet with tuple `t`: towards a VIP it is a request
/// (keyed by its source), otherwise a reply or unrelated (keyed by its
/// destination; the SNAT address is in the service CIDR but only ever a
/// reply's destination).
#[inline]
fn of_tuple(t: &Tuple, c: &Compiled, n: usize) -> usize {
    if c.in_cidr(t.dst) && t.dst != c.table.snat_addr {
        of_orig(t, n)
    } else {
        of_reply(t, n)
    }
}

/// A port within `n / 2` of `p`, at least `min`, such that `reply` with it
/// as destination port lands in shard `shard.0` of `shard.1`.
pub fn port_in_shard(reply: &Tuple, p: u16, min: u16, shard: (usize, usize)) -> u16 {
    let (s, n) = shard;
    if n <= 1 {
        return p;
    }
    let cur = key(reply.proto, reply.dst, p, n) as i64;
    let mut q = i64::from(p) - cur + s as i64;
    if q < i64::from(min) {
        q += n as i64;
    }
    if q > i64::from(u16::MAX) {
        q -= n as i64;
    }
    q as u16
}

#[inline]
fn rd16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline]
fn ip_at(b: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3])
}

/// The shard that holds the flow `buf` (vnet header + IPv4) belongs to, or
/// shard 0 for anything no flow can match (non-first fragments, garbage:
/// the NAT forwards or drops those without looking at flows).
pub fn of_packet(buf: &[u8], c: &Compiled, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let Some(p) = buf.get(vnet::LEN..) else {
        return 0;
    };
    if p.len() < 20 || p[0] >> 4 != 4 || rd16(p, 6) & 0x1fff != 0 {
        return 0;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let proto = p[9];
    if ihl < 20 || p.len() < ihl + 4 {
        return 0;
    }
    match proto {
        TCP | UDP => {
            let t = Tuple {
                proto,
                src: ip_at(p, 12),
                sport: rd16(p, ihl),
                dst: ip_at(p, 16),
                dport: rd16(p, ihl + 2),
            };
            of_tuple(&t, c, n)
        }
        ICMP if matches!(p[ihl], 3 | 11 | 12) => {
            // The quoted packet went the other way: place the error by the
            // flow tuple the NAT will look up (the quoted one reversed).
            let at = ihl + 8;
            let Some(inner) = p.get(at..) else { return 0 };
            if inner.len() < 20 || inner[0] >> 4 != 4 {
                return 0;
            }
            let iihl = usize::from(inner[0] & 0x0f) * 4;
            if iihl < 20 || inner.len() < iihl + 4 || !matches!(inner[9], TCP | UDP) {
                return 0;
            }
            let quoted = Tuple {
                proto: inner[9],
                src: ip_at(inner, 12),
                sport: rd16(inner, iihl),
                dst: ip_at(inner, 16),
                dport: rd16(inner, iihl + 2),
            };
            of_tuple(&quoted.reversed(), c, n)
        }
        _ => 0,
    }
}

/// What one snapshot cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotStats {
    pub flows: usize,
    pub bytes: usize,
    /// The longest time one shard was locked (queues wait at most this;
    /// on a loaded machine it includes the snapshot thread being preempted
    /// while it held the lock).
    pub max_hold: Duration,
    /// The median time a shard was locked.
    pub median_hold: Duration,
    /// Wall time of the whole snapshot (copying and encoding).
    pub total: Duration,
}

/// A queue thread's view of the published table: checked by generation per
/// packet (one relaxed atomic load), re-read only when it changed.
pub struct Worker {
    compiled: Arc<Compiled>,
    out: Vec<u8>,
}

impl Worker {
    /// Room for generated replies (ICMP port unreachable).
    pub fn out(&mut self) -> &mut [u8] {
        &mut self.out
    }
}

/// The sharded NAT: see the module documentation.
pub struct Sharded {
    shards: Vec<Mutex<Nat>>,
    affinity: Arc<SharedAffinity>,
    registry: Mutex<Registry>,
    current: Mutex<Arc<Compiled>>,
    generation: AtomicU64,
    /// Injected faults, compiled into every published table.
    faults: Mutex<Arc<Vec<FaultRule>>>,
    events: Arc<FlowEvents>,
}

/// The flow table as `lab flows` lists it: copied shard by shard (each
/// locked only for its copy), with the names behind the counter indexes.
#[derive(Debug, Default)]
pub struct FlowList {
    pub flows: Vec<Flow>,
    /// Recent rejects, oldest first.
    pub rejects: Vec<Reject>,
    /// Service-port ids and service names by index (empty: retired).
    pub ports: Arc<Vec<String>>,
    pub services: Arc<Vec<String>>,
    /// The longest time one shard was locked.
    pub max_hold: Duration,
}

impl FlowList {
    /// The name behind a service index (`None`: the Service was deleted).
    pub fn service(&self, i: u32) -> Option<&str> {
        self.services
            .get(i as usize)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The id (`ns/name:port`) behind a service-port index.
    pub fn port(&self, i: u32) -> Option<&str> {
        self.ports
            .get(i as usize)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Per endpoint: `(service-port id, backend address, backend port)`.
pub type EndpointCounters = BTreeMap<(String, Ipv4Addr, u16), ServiceCounters>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sharded {
    /// Room for `capacity` flows (and as many affinity entries) in `shards`
    /// shards; `seed` drives hashing and backend choice.
    pub fn new(capacity: usize, shards: usize, seed: u64) -> Sharded {
        let shards = shards.max(1);
        let affinity = Arc::new(SharedAffinity::new(capacity, seed.rotate_left(17), 16));
        let events = FlowEvents::new(EVENT_QUEUE);
        Sharded {
            shards: (0..shards)
                .map(|i| {
                    let mut nat = Nat::shard(
                        capacity.div_ceil(shards),
                        seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1)),
                        (i, shards),
                        Arc::clone(&affinity),
                    );
                    nat.set_events(Arc::clone(&events));
                    Mutex::new(nat)
                })
                .collect(),
            affinity,
            registry: Mutex::new(Registry::default()),
            current: Mutex::new(Arc::new(Compiled::default())),
            generation: AtomicU64::new(0),
            faults: Mutex::new(Arc::new(Vec::new())),
            events,
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Compile and publish a new service table. Costs O(service ports) on
    /// the caller's thread; queues pick it up by pointer on their next
    /// packet, shards on their next packet or expiry pass.
    pub fn set_table(&self, table: Arc<ServiceTable>) {
        let mut reg = lock(&self.registry);
        self.publish(&mut reg, table);
    }

    /// Compile `table` with the faults and publish it (the registry lock
    /// held by the caller orders concurrent publishers).
    fn publish(&self, reg: &mut Registry, table: Arc<ServiceTable>) {
        let rules = Arc::clone(&lock(&self.faults));
        let mut c = reg.compile(table);
        if let Some(m) = Arc::get_mut(&mut c) {
            m.faults = FaultTable::compile(&rules, m).map(Arc::new);
        }
        let generation = c.generation;
        *lock(&self.current) = c;
        self.generation.store(generation, Ordering::Release);
    }

    /// Replace the injected faults (`lab fault`): the current service table
    /// is republished with them compiled in.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        let mut reg = lock(&self.registry);
        *lock(&self.faults) = Arc::new(rules);
        let table = Arc::clone(&self.current().table);
        self.publish(&mut reg, table);
    }

    fn current(&self) -> Arc<Compiled> {
        Arc::clone(&lock(&self.current))
    }

    pub fn worker(&self) -> Worker {
        Worker {
            compiled: self.current(),
            out: vec![0u8; 2048],
        }
    }

    /// Lock shard `i`, bringing it up to the table `c` if that is newer.
    fn shard(&self, i: usize, c: &Arc<Compiled>) -> MutexGuard<'_, Nat> {
        let mut nat = lock(&self.shards[i]);
        if nat.compiled().generation < c.generation {
            nat.install(Arc::clone(c));
        }
        nat
    }

    /// Process one packet (see [`Nat::process`]); a generated reply is in
    /// `w.out()[..len]`.
    pub fn process(&self, w: &mut Worker, now: Duration, buf: &mut [u8]) -> Verdict {
        if self.generation.load(Ordering::Acquire) != w.compiled.generation {
            w.compiled = self.current();
        }
        let i = of_packet(buf, &w.compiled, self.shards.len());
        let mut nat = self.shard(i, &w.compiled);
        nat.process(now, buf, &mut w.out)
    }

    /// One bounded expiry pass over every shard (each locked in turn for
    /// at most [`super::nat::FLOW_SWEEP_BUDGET`] slots) and the affinity
    /// entries; returns the flows removed.
    pub fn expire(&self, now: Duration) -> usize {
        let c = self.current();
        let mut n = 0;
        let mut detached = u64::MAX;
        for i in 0..self.shards.len() {
            let mut nat = self.shard(i, &c);
            n += nat.expire(now);
            detached = detached.min(nat.detached_generation());
        }
        self.affinity.expire(now, AFFINITY_SWEEP_BUDGET);
        // Counter indexes every shard has detached its flows from may be
        // handed to new Services.
        lock(&self.registry).release(detached);
        n
    }

    /// The flow table and affinity entries in the binary snapshot format,
    /// expiries relative to `now`. Each shard is locked only while its
    /// flows are copied out; encoding happens after.
    pub fn snapshot(&self, now: Duration) -> (Vec<u8>, SnapshotStats) {
        let t0 = Instant::now();
        self.snapshot_timed(now, || t0.elapsed())
    }

    /// [`Sharded::snapshot`], measuring lock holds with `clock` (e.g. the
    /// thread's CPU clock, to leave out preemption).
    pub fn snapshot_timed(
        &self,
        now: Duration,
        clock: impl Fn() -> Duration,
    ) -> (Vec<u8>, SnapshotStats) {
        let start = Instant::now();
        // Names before and after the copies: an index whose name changed in
        // between (retired, or retired and reused) is not saved.
        let names = || {
            let r = lock(&self.registry);
            (Arc::clone(r.port_names()), Arc::clone(r.service_names()))
        };
        let before = names();
        let mut holds = Vec::with_capacity(self.shards.len());
        let mut parts: Vec<Vec<Flow>> = Vec::with_capacity(self.shards.len());
        let mut max_hold = Duration::ZERO;
        for s in &self.shards {
            // Allocate outside the lock; under it, only copy.
            let n = lock(s).flow_count();
            let mut v = Vec::with_capacity(n + 64);
            let nat = lock(s);
            let t = clock();
            nat.copy_flows(&mut v);
            let held = clock().saturating_sub(t);
            holds.push(held);
            max_hold = max_hold.max(held);
            drop(nat);
            parts.push(v);
        }
        let count: usize = parts.iter().map(Vec::len).sum();
        let sticky: Vec<_> = self
            .affinity
            .each(|a| a.iter().copied().collect::<Vec<_>>())
            .flatten()
            .collect();
        let after = names();
        let stable = |b: &[String], a: &[String]| -> Vec<String> {
            a.iter()
                .enumerate()
                .map(|(i, n)| {
                    if b.get(i) == Some(n) {
                        n.clone()
                    } else {
                        String::new()
                    }
                })
                .collect()
        };
        let ports = stable(&before.0, &after.0);
        let services = stable(&before.1, &after.1);
        let mut e = snap::Encoder::new(&ports, &services, now, count);
        for f in parts.iter().flatten() {
            e.flow(f);
        }
        for s in &sticky {
            e.affinity(s);
        }
        let bytes = e.finish();
        let stats = SnapshotStats {
            flows: count,
            bytes: bytes.len(),
            max_hold,
            median_hold: {
                holds.sort_unstable();
                holds.get(holds.len() / 2).copied().unwrap_or_default()
            },
            total: start.elapsed(),
        };
        (bytes, stats)
    }

    /// Load a snapshot (of this or another process), expiries relative to
    /// `now`; returns the flows restored.
    pub fn restore(&self, bytes: &[u8], now: Duration) -> Result<usize, RestoreError> {
        let d = snap::decode(bytes)?;
        let (ports, services): (Vec<u32>, Vec<u32>) = {
            let mut r = lock(&self.registry);
            (
                d.ports.iter().map(|p| r.port_idx(p)).collect(),
                d.services.iter().map(|s| r.service_idx(s)).collect(),
            )
        };
        let n = self.shards.len();
        let mut restored = 0;
        for s in &d.flows {
            let mapped = SavedFlow {
                port: ports[s.port as usize],
                service: services[s.service as usize],
                ..*s
            };
            let i = of_orig(&s.orig, n);
            restored += usize::from(lock(&self.shards[i]).insert_saved(&mapped, now));
        }
        for a in &d.affinity {
            restore_affinity(&self.affinity, a, now);
        }
        Ok(restored)
    }

    pub fn flow_count(&self) -> usize {
        self.shards.iter().map(|s| lock(s).flow_count()).sum()
    }

    /// The names behind counter indexes: (service-port ids, services).
    pub fn names(&self) -> (Arc<Vec<String>>, Arc<Vec<String>>) {
        let r = lock(&self.registry);
        (Arc::clone(r.port_names()), Arc::clone(r.service_names()))
    }

    /// Flow events (`lab flows -w`): watch it to make the shards send.
    pub fn events(&self) -> &Arc<FlowEvents> {
        &self.events
    }

    /// The flows and recent rejects, each shard locked only while its part
    /// is copied (memory is reserved before taking the lock).
    pub fn list(&self) -> FlowList {
        let mut out = FlowList::default();
        let mut rejects = Vec::new();
        for s in &self.shards {
            let n = lock(s).flow_count();
            out.flows.reserve(n + 64);
            let t = Instant::now();
            let nat = lock(s);
            nat.copy_flows(&mut out.flows);
            rejects.extend(nat.rejects().copied());
            drop(nat);
            out.max_hold = out.max_hold.max(t.elapsed());
        }
        rejects.sort_by_key(|r| r.at);
        out.rejects = rejects;
        let r = lock(&self.registry);
        out.ports = Arc::clone(r.port_names());
        out.services = Arc::clone(r.service_names());
        out
    }

    /// Per-endpoint flows, packets and bytes: the totals of ended flows
    /// plus the live flows' own counts, shard by shard.
    pub fn endpoint_counters(&self) -> EndpointCounters {
        let mut by_index: std::collections::HashMap<(u32, Ipv4Addr, u16), ServiceCounters> =
            std::collections::HashMap::new();
        let mut flows = Vec::new();
        for s in &self.shards {
            let n = lock(s).flow_count();
            flows.clear();
            flows.reserve(n + 64);
            let nat = lock(s);
            nat.copy_flows(&mut flows);
            let ended: Vec<_> = nat
                .ended_totals()
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            drop(nat);
            for (k, v) in ended {
                by_index.entry(k).or_default().add(&v);
            }
            for f in &flows {
                if f.port == super::conntrack::NO_INDEX {
                    continue;
                }
                let e = by_index
                    .entry((f.port, f.reply.src, f.reply.sport))
                    .or_default();
                e.flows += 1;
                e.packets += f.stats.packets[0] + f.stats.packets[1];
                e.bytes += f.stats.bytes[0] + f.stats.bytes[1];
            }
        }
        let names = Arc::clone(lock(&self.registry).port_names());
        by_index
            .into_iter()
            .filter_map(|((i, ip, port), c)| {
                let id = names.get(i as usize).filter(|n| !n.is_empty())?;
                Some(((id.clone(), ip, port), c))
            })
            .collect()
    }

    pub fn affinity_count(&self) -> usize {
        self.affinity.len()
    }

    /// The global counters, summed over the shards.
    pub fn counters(&self) -> Counters {
        let mut sum = Counters::default();
        for s in &self.shards {
            sum.add(lock(s).counters());
        }
        sum
    }

    /// (structural changes, translated packets), summed: the snapshot
    /// writer's "did anything change" test.
    pub fn change_marks(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(a, b), s| {
            let n = lock(s);
            (a + n.structural_changes(), b + n.counters().translated)
        })
    }

    /// Per-service counters (`ns/name` → counters), summed over the shards.
    pub fn service_counters(&self) -> BTreeMap<String, ServiceCounters> {
        self.indexed_sum(true)
    }

    /// Per-service-port counters (`ns/name:port` → counters), summed.
    pub fn port_counters(&self) -> BTreeMap<String, ServiceCounters> {
        self.indexed_sum(false)
    }

    /// Sum per-index counters over the shards and name them; retired
    /// indexes (deleted Services) are left out.
    fn indexed_sum(&self, services: bool) -> BTreeMap<String, ServiceCounters> {
        let names = {
            let r = lock(&self.registry);
            Arc::clone(if services {
                r.service_names()
            } else {
                r.port_names()
            })
        };
        let mut sum = vec![ServiceCounters::default(); names.len()];
        for s in &self.shards {
            let n = lock(s);
            let (ports, svcs) = n.indexed_counters();
            for (acc, c) in sum.iter_mut().zip(if services { svcs } else { ports }) {
                acc.add(c);
            }
        }
        names
            .iter()
            .cloned()
            .zip(sum)
            .filter(|(n, _)| !n.is_empty())
            .collect()
    }
}
