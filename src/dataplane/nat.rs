//! Destination NAT for ClusterIP Services, with kube-proxy's semantics.
//!
//! Client → VIP:port packets are rewritten to a backend podIP:targetPort
//! (destination only, so the backend sees the real client IP); the backend's
//! replies, pulled back into the TUN by policy rules, get their source
//! rewritten back to VIP:port. Hairpin flows (a pod reaching itself through
//! its VIP) also get their source rewritten to the reserved SNAT address so
//! the reply returns through the TUN. No endpoints, or a known VIP on a port
//! the service lacks → ICMP port unreachable from the VIP. ICMP errors about
//! a flow are translated (outer and quoted inner headers) in both directions.
//!
//! Decisions worth knowing:
//! - **Fragments**: every IP fragment (first or not) addressed to the service
//!   CIDR, or whose first fragment matches a flow, is dropped and counted —
//!   later fragments carry no ports, so they could not follow their flow.
//!   Pod MTUs are equal on both sides and TCP sets DF, so only odd UDP
//!   senders (datagrams over the MTU) are affected. Other fragments pass
//!   unchanged.
//! - **Offload**: with `NEEDS_CSUM` the L4 checksum holds the pseudo-header
//!   sum and is updated for address changes only; the vnet header's
//!   `csum_start`/`csum_offset` must point at the TCP/UDP checksum or the
//!   packet is dropped (rewriting it would corrupt it). GSO super-packets are
//!   rewritten once; segmentation is left to the kernel.
//! - **Port clashes**: if a client uses the same source port towards two
//!   VIPs that land on the same backend, the second flow's source port is
//!   remapped (like nf_nat's clash resolution), so both reply tuples stay
//!   unique. Hairpin flows get the SNAT address and a free random port.
//! - **Loose pickup**: a TCP segment without SYN that matches no flow (e.g.
//!   after a restart without a snapshot) creates an Established flow with
//!   the unacknowledged timeout; a stray RST creates nothing.
//! - The IPv4 header checksum is not verified: the kernel did that before
//!   routing the packet into the TUN; checksums are updated incrementally,
//!   so a bad one stays bad.
//! - Randomness: backend choice uses a seeded `SmallRng` (uniform, unbiased
//!   `random_range`); [`Nat::new`] seeds it from the OS once.

use super::affinity::{AffinityKey, SharedAffinity};
use super::checksum;
use super::conntrack::{
    ACK, Dir, Flow, FlowStats, NO_INDEX, Pick, RST, SYN, TCP, Table, TcpState, Tuple, UDP,
};
use super::counters::{Counters, DropReason, ServiceCounters};
use super::events::{
    EndReason, FlowEvent, FlowEventKind, FlowEvents, Reject, RejectReason, Rejects,
};
use super::fault::{self, Action};
use super::shard;
pub use super::snapshot::RestoreError;
use super::snapshot::{self as snap, SavedFlow};
use super::table::{Compiled, Proto, Registry, ServicePort, ServiceTable};
use super::vnet::{self, VnetHdr};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use smoltcp::wire::{Icmpv4Packet, Ipv4Packet, TcpPacket};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

const ICMP: u8 = 1;
/// Slots of the flow table looked at per [`Nat::expire`] call.
pub const FLOW_SWEEP_BUDGET: usize = 4096;
/// Slots of the affinity table looked at per [`Nat::expire`] call.
pub const AFFINITY_SWEEP_BUDGET: usize = 1024;
/// Slots checked per [`Nat::expire`] call for UDP flows whose backend
/// stopped serving after a table change (packets of such flows are checked
/// on the packet path meanwhile, so the flush takes effect at once).
pub const FLUSH_SWEEP_BUDGET: usize = 4096;
/// Random probes for a free SNAT port before giving up on a new flow.
const SNAT_PORT_TRIES: usize = 64;
const SNAT_PORT_MIN: u16 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write `buf` back to the TUN (rewritten in place, or unchanged).
    Forward,
    /// Write `out[..len]` (a generated packet with its vnet header) instead,
    /// and drop the original.
    Reply(usize),
    Drop(DropReason),
    /// Write `buf` (rewritten as for `Forward`) after this long: an injected
    /// delay or a shaper's queue (`lab fault`, [`super::fault`]).
    Delay(Duration),
}

/// Where the L4 checksum is and how to update it.
#[derive(Debug, Clone, Copy)]
struct L4 {
    ihl: usize,
    csum_at: usize,
    partial: bool,
    udp: bool,
    /// The vnet header's checksum offsets agree with the packet (or
    /// `NEEDS_CSUM` is not set).
    vnet_ok: bool,
    /// Wire packets this (GSO) packet stands for, and its IP bytes.
    segs: u64,
    bytes: u64,
}

/// The NAT / conntrack / load-balancer core. Single-threaded: several
/// queues use several `Nat`s, one per shard of the flow space
/// ([`super::shard::Sharded`]), which share the affinity entries and the
/// compiled service table.
pub struct Nat {
    compiled: Arc<Compiled>,
    /// Names → counter indexes for [`Nat::set_table`] and [`Nat::restore`]
    /// of a stand-alone `Nat` (shards use their owner's registry).
    registry: Registry,
    flows: Table,
    affinity: Arc<SharedAffinity>,
    /// Expire the affinity entries in [`Nat::expire`] (a stand-alone `Nat`;
    /// shards leave it to their owner).
    owns_affinity: bool,
    counters: Counters,
    /// Counters by the registry's port / service indexes.
    ports: Vec<ServiceCounters>,
    services: Vec<ServiceCounters>,
    rng: SmallRng,
    /// The newest `now` seen (snapshots store time left relative to it).
    last_now: Duration,
    /// (this shard, shard count): SNAT ports are picked so the reply tuple
    /// lands in this shard too.
    shard: (usize, usize),
    /// Next slot of the bounded UDP flush after a table change.
    flush: Option<usize>,
    /// Where flow events go while someone watches (`lab flows -w`).
    events: Option<Arc<FlowEvents>>,
    /// Recent rejects (`lab flows`).
    rejects: Rejects,
    /// Per endpoint (service port index, backend address, port): totals of
    /// the flows that already ended (live flows carry their own), so
    /// per-endpoint metrics cost nothing on the packet path.
    ended: HashMap<EndpointKey, ServiceCounters>,
    /// Counter indexes retired by the newest table, whose flows the bounded
    /// detach pass in [`Nat::expire`] still has to visit.
    retired_ports: Vec<u32>,
    retired_services: Vec<u32>,
    /// The newest retirement generation taken in.
    retired_seen: u64,
    /// Next slot of the detach pass, and the generation it completes.
    detach: Option<(usize, u64)>,
    /// Every flow is detached from indexes retired up to this generation.
    detached: u64,
    /// Flows removed by a sweep, accounted after it (kept for its capacity).
    scratch: Vec<Flow>,
}

/// (service port index, backend address, backend port).
pub type EndpointKey = (u32, Ipv4Addr, u16);

/// Past this many ended-endpoint totals in a shard, totals of endpoints no
/// longer in the table are dropped at the next table change.
const ENDED_MAX: usize = 4096;

#[inline]
fn rd16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline]
fn rd32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[inline]
fn wr16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn wr32(b: &mut [u8], i: usize, v: u32) {
    b[i..i + 4].copy_from_slice(&v.to_be_bytes());
}

/// Set the IPv4 address at `addr_at` (12 = source, 16 = destination) and the
/// port at `port_at` (absolute offset), fixing the IPv4 header checksum and
/// the TCP/UDP checksum (RFC 1624, or the partial sum under NEEDS_CSUM).
#[inline]
fn set_endpoint(pkt: &mut [u8], l: &L4, addr_at: usize, ip: Ipv4Addr, port_at: usize, port: u16) {
    let new_ip = u32::from(ip);
    let old_ip = rd32(pkt, addr_at);
    let old_port = rd16(pkt, port_at);
    if old_ip != new_ip {
        wr16(pkt, 10, checksum::update32(rd16(pkt, 10), old_ip, new_ip));
        wr32(pkt, addr_at, new_ip);
    }
    let c = rd16(pkt, l.csum_at);
    let c = if l.partial {
        // Ports are summed when the kernel completes the checksum.
        checksum::partial_update32(c, old_ip, new_ip)
    } else if l.udp && c == 0 {
        0
    } else {
        let c = checksum::update16(checksum::update32(c, old_ip, new_ip), old_port, port);
        if l.udp { checksum::udp_nonzero(c) } else { c }
    };
    wr16(pkt, l.csum_at, c);
    wr16(pkt, port_at, port);
}

/// Set a 16-bit word inside an ICMP message, updating the ICMP checksum.
#[inline]
fn icmp_set16(pkt: &mut [u8], icsum_at: usize, at: usize, new: u16) {
    let old = rd16(pkt, at);
    if old != new {
        wr16(pkt, at, new);
        let c = checksum::update16(rd16(pkt, icsum_at), old, new);
        wr16(pkt, icsum_at, c);
    }
}

fn icmp_set32(pkt: &mut [u8], icsum_at: usize, at: usize, new: u32) {
    icmp_set16(pkt, icsum_at, at, (new >> 16) as u16);
    icmp_set16(pkt, icsum_at, at + 2, new as u16);
}

/// The quoted packet inside an ICMP error (offsets absolute in `pkt`).
struct Inner {
    at: usize,
    l4: usize,
    /// Absolute offset of the quoted L4 checksum, if quoted and in use.
    l4_csum: Option<usize>,
    udp: bool,
}

impl Inner {
    /// Rewrite the quoted address at `at + addr_off` and port at
    /// `l4 + port_off`, fixing the inner IPv4 checksum, the quoted L4
    /// checksum (if any) and the outer ICMP checksum.
    fn set(
        &self,
        pkt: &mut [u8],
        icsum: usize,
        addr_off: usize,
        ip: Ipv4Addr,
        port_off: usize,
        port: u16,
    ) {
        let new = u32::from(ip);
        let old = rd32(pkt, self.at + addr_off);
        let old_port = rd16(pkt, self.l4 + port_off);
        let ihc = checksum::update32(rd16(pkt, self.at + 10), old, new);
        icmp_set16(pkt, icsum, self.at + 10, ihc);
        icmp_set32(pkt, icsum, self.at + addr_off, new);
        icmp_set16(pkt, icsum, self.l4 + port_off, port);
        if let Some(at) = self.l4_csum {
            let c = checksum::update16(checksum::update32(rd16(pkt, at), old, new), old_port, port);
            let c = if self.udp {
                checksum::udp_nonzero(c)
            } else {
                c
            };
            icmp_set16(pkt, icsum, at, c);
        }
    }
}

impl Nat {
    /// A NAT with room for `capacity` flows (and as many affinity entries),
    /// seeded from the OS.
    pub fn new(capacity: usize) -> Nat {
        Nat::with_seed(capacity, rand::random())
    }

    /// A NAT whose backend choice, hashing and eviction follow `seed`
    /// (deterministic tests and fuzzing).
    pub fn with_seed(capacity: usize, seed: u64) -> Nat {
        let affinity = Arc::new(SharedAffinity::new(capacity, seed.rotate_left(17), 1));
        let mut n = Nat::shard(capacity, seed, (0, 1), affinity);
        n.owns_affinity = true;
        n
    }

    /// Shard `shard.0` of `shard.1`, with room for `capacity` flows, using
    /// the shared `affinity` entries. Tables come in by [`Nat::install`].
    pub fn shard(
        capacity: usize,
        seed: u64,
        shard: (usize, usize),
        affinity: Arc<SharedAffinity>,
    ) -> Nat {
        Nat {
            compiled: Arc::new(Compiled::default()),
            registry: Registry::default(),
            flows: Table::new(capacity, seed),
            affinity,
            owns_affinity: false,
            counters: Counters::default(),
            ports: Vec::new(),
            services: Vec::new(),
            rng: SmallRng::seed_from_u64(seed ^ 0x6a09_e667_f3bc_c909),
            last_now: Duration::ZERO,
            shard: (shard.0, shard.1.max(1)),
            flush: None,
            events: None,
            rejects: Rejects::default(),
            ended: HashMap::new(),
            retired_ports: Vec::new(),
            retired_services: Vec::new(),
            retired_seen: 0,
            detach: None,
            detached: 0,
            scratch: Vec::new(),
        }
    }

    /// Send flow events to `events` (while someone watches it).
    pub fn set_events(&mut self, events: Arc<FlowEvents>) {
        self.events = Some(events);
    }

    /// Recent rejects, oldest first.
    pub fn rejects(&self) -> impl Iterator<Item = &Reject> {
        self.rejects.iter()
    }

    /// Totals of ended flows per endpoint.
    pub fn ended_totals(&self) -> &HashMap<EndpointKey, ServiceCounters> {
        &self.ended
    }

    /// Flows are detached from every index retired up to this generation.
    pub fn detached_generation(&self) -> u64 {
        self.detached
    }

    #[inline]
    fn event(&self, e: impl FnOnce() -> FlowEvent) {
        if let Some(ev) = &self.events
            && ev.on()
        {
            ev.send(e());
        }
    }

    /// Account a flow that left the table.
    fn ended(&mut self, f: &Flow, reason: EndReason, now: Duration) {
        if f.port != NO_INDEX {
            let e = self
                .ended
                .entry((f.port, f.reply.src, f.reply.sport))
                .or_default();
            e.flows += 1;
            e.packets += f.stats.packets[0] + f.stats.packets[1];
            e.bytes += f.stats.bytes[0] + f.stats.bytes[1];
        }
        self.event(|| FlowEvent::Flow {
            kind: FlowEventKind::End(reason),
            flow: *f,
            at: now,
        });
    }

    /// Account the flows a sweep put in `scratch`.
    fn ended_scratch(&mut self, reason: EndReason, now: Duration) {
        let gone = std::mem::take(&mut self.scratch);
        for f in &gone {
            self.ended(f, reason, now);
        }
        self.scratch = gone;
        self.scratch.clear();
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The names behind counter indexes: the longer of the compiled table's
    /// and the own registry's lists (both grow from the same start).
    fn names(&self) -> (&[String], &[String]) {
        let c = &self.compiled;
        let r = &self.registry;
        let ports = if r.port_names().len() > c.port_names.len() {
            r.port_names()
        } else {
            &c.port_names
        };
        let services = if r.service_names().len() > c.service_names.len() {
            r.service_names()
        } else {
            &c.service_names
        };
        (ports, services)
    }

    /// Per-service counters (`ns/name` → counters).
    pub fn service_counters(&self) -> BTreeMap<String, ServiceCounters> {
        let names = self.names().1;
        named(names, &self.services)
    }

    /// Per-service-port counters (`ns/name:port` → counters).
    pub fn port_counters(&self) -> BTreeMap<String, ServiceCounters> {
        let names = self.names().0;
        named(names, &self.ports)
    }

    /// Counters by index (the owner of several shards names and sums them).
    pub fn indexed_counters(&self) -> (&[ServiceCounters], &[ServiceCounters]) {
        (&self.ports, &self.services)
    }

    /// Count of flow-table changes that a snapshot would show (created,
    /// removed, reopened); packets on existing flows only move expiries.
    pub fn structural_changes(&self) -> u64 {
        let c = &self.counters;
        c.flows_created + c.flows_expired + c.flows_evicted + c.flows_flushed + c.flows_reopened
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub fn flow_capacity(&self) -> usize {
        self.flows.capacity()
    }

    pub fn affinity_count(&self) -> usize {
        self.affinity.len()
    }

    /// The flows, for inspection (debugging, tests).
    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter().map(|(_, f)| f)
    }

    pub fn table(&self) -> &Arc<ServiceTable> {
        &self.compiled.table
    }

    pub fn compiled(&self) -> &Arc<Compiled> {
        &self.compiled
    }

    /// Make room for counters up to these indexes.
    fn grow(&mut self, ports: usize, services: usize) {
        if self.ports.len() < ports {
            self.ports.resize(ports, ServiceCounters::default());
        }
        if self.services.len() < services {
            self.services.resize(services, ServiceCounters::default());
        }
    }

    /// Run `f` on the counters of a port and of its service.
    #[inline]
    fn with_counters(
        &mut self,
        port: Option<u32>,
        service: Option<u32>,
        f: impl Fn(&mut ServiceCounters),
    ) {
        if let Some(c) = port.and_then(|i| self.ports.get_mut(i as usize)) {
            f(c);
        }
        if let Some(c) = service.and_then(|i| self.services.get_mut(i as usize)) {
            f(c);
        }
    }

    /// Swap the service table (a stand-alone `Nat`: compiles it with its own
    /// registry; shards get [`Nat::install`] from their owner). UDP flows
    /// whose backend no longer serves (or whose service port is gone) are
    /// flushed: checked on the packet path at once, so the next datagram
    /// picks a live backend, and removed by bounded sweeps in
    /// [`Nat::expire`]. TCP flows are left to finish or time out. Affinity
    /// entries for backends that stopped serving are ignored when a new
    /// flow looks them up and age out. (No flow is ever created while a
    /// service has no endpoints — those packets are rejected.)
    pub fn set_table(&mut self, table: Arc<ServiceTable>) {
        let c = self.registry.compile(table);
        self.install(c);
    }

    /// Install a compiled table: O(1) plus growing the counter vectors.
    pub fn install(&mut self, c: Arc<Compiled>) {
        self.grow(c.port_names.len(), c.service_names.len());
        if self.flows.udp_flows() > 0 {
            self.flush = Some(0);
        }
        // Indexes retired since the last table: their counters go at once,
        // their flows are detached by bounded passes in `expire`.
        let mut newly = false;
        for r in c
            .retired
            .iter()
            .filter(|r| r.generation > self.retired_seen)
        {
            let (list, counters) = if r.service {
                (&mut self.retired_services, &mut self.services)
            } else {
                (&mut self.retired_ports, &mut self.ports)
            };
            if let Some(x) = counters.get_mut(r.index as usize) {
                *x = ServiceCounters::default();
            }
            list.push(r.index);
            newly = true;
        }
        if let Some(g) = c.retired.iter().map(|r| r.generation).max() {
            self.retired_seen = self.retired_seen.max(g);
        }
        if newly {
            self.detach = Some((0, c.generation));
            let ports = &self.retired_ports;
            self.ended.retain(|k, _| !ports.contains(&k.0));
            self.rejects.forget(&self.retired_services);
        } else if self.detach.is_none() {
            self.detached = c.generation;
        }
        if self.ended.len() > ENDED_MAX {
            let t = &c.table;
            let names = &c.port_names;
            self.ended.retain(|k, _| {
                names.get(k.0 as usize).is_some_and(|id| {
                    t.ports.values().any(|sp| {
                        &sp.id == id && sp.endpoints.iter().any(|b| (b.ip, b.port) == (k.1, k.2))
                    })
                })
            });
        }
        self.compiled = c;
    }

    /// One bounded step of detaching flows from retired counter indexes
    /// (they keep working, uncounted); when the pass is through, the
    /// indexes' counters are zeroed again and may be reused.
    fn detach_step(&mut self) {
        let Some((start, target)) = self.detach else {
            return;
        };
        let (ports, services) = (&self.retired_ports, &self.retired_services);
        let next = self.flows.for_range_mut(start, FLUSH_SWEEP_BUDGET, |f| {
            if ports.contains(&f.port) {
                f.port = NO_INDEX;
            }
            if services.contains(&f.service) {
                f.service = NO_INDEX;
            }
        });
        match next {
            Some(n) => self.detach = Some((n, target)),
            None => {
                for i in std::mem::take(&mut self.retired_ports) {
                    if let Some(x) = self.ports.get_mut(i as usize) {
                        *x = ServiceCounters::default();
                    }
                }
                for i in std::mem::take(&mut self.retired_services) {
                    if let Some(x) = self.services.get_mut(i as usize) {
                        *x = ServiceCounters::default();
                    }
                }
                self.detach = None;
                self.detached = target.max(self.detached);
            }
        }
    }

    /// Whether a UDP flow's backend still serves under the current table.
    fn udp_serving(&self, f: &Flow) -> bool {
        self.compiled
            .table
            .ports
            .get(&(f.orig.dst, Proto::Udp, f.orig.dport))
            .is_some_and(|sp| sp.serves(f.reply.src, f.reply.sport))
    }

    /// One bounded step of the UDP flush after a table change.
    fn flush_step(&mut self) {
        let Some(start) = self.flush else { return };
        let compiled = Arc::clone(&self.compiled);
        let serving = |f: &Flow| {
            compiled
                .table
                .ports
                .get(&(f.orig.dst, Proto::Udp, f.orig.dport))
                .is_some_and(|sp| sp.serves(f.reply.src, f.reply.sport))
        };
        let mut gone = std::mem::take(&mut self.scratch);
        let (removed, next) = self.flows.retain_range(start, FLUSH_SWEEP_BUDGET, |f| {
            let keep = f.orig.proto != UDP || serving(f);
            if !keep {
                gone.push(*f);
            }
            keep
        });
        self.scratch = gone;
        let now = self.last_now;
        self.ended_scratch(EndReason::Flushed, now);
        self.counters.flows_flushed += removed as u64;
        self.flush = next;
    }

    /// Remove expired flows and affinity entries, looking at a bounded number
    /// of slots per call; returns how many flows were removed. A packet that
    /// hits an expired flow before the sweep does is treated as new anyway.
    pub fn expire(&mut self, now: Duration) -> usize {
        self.last_now = self.last_now.max(now);
        self.flush_step();
        self.detach_step();
        let mut gone = std::mem::take(&mut self.scratch);
        let n = self
            .flows
            .expire_with(now, FLOW_SWEEP_BUDGET, |f| gone.push(*f));
        self.scratch = gone;
        self.ended_scratch(EndReason::Expired, now);
        self.counters.flows_expired += n as u64;
        if self.owns_affinity {
            self.affinity.expire(now, AFFINITY_SWEEP_BUDGET);
            // A stand-alone NAT is its own registry's only shard.
            self.registry.release(self.detached);
        }
        n
    }

    /// Copy the live flows into `out` (a snapshot taken shard by shard:
    /// the caller holds this shard's lock only for the copy).
    pub fn copy_flows(&self, out: &mut Vec<Flow>) {
        out.extend(self.flows.iter().map(|(_, f)| *f));
    }

    /// The newest clock value this `Nat` has seen.
    pub fn last_now(&self) -> Duration {
        self.last_now
    }

    /// Insert a flow read from a snapshot (counter indexes already mapped
    /// to this `Nat`'s registry), expiring `left` after `now`. Returns
    /// false (nothing inserted) if it is not sane, clashes with a present
    /// flow, belongs to another shard, or the table is full.
    pub fn insert_saved(&mut self, s: &SavedFlow, now: Duration) -> bool {
        let sane = matches!(s.orig.proto, TCP | UDP)
            && s.reply.proto == s.orig.proto
            && (s.orig.proto == TCP) == s.tcp.is_some()
            && s.orig != s.reply;
        if !sane || self.flows.contains(&s.orig) || self.flows.contains(&s.reply) {
            return false;
        }
        if self.flows.len() >= self.flows.capacity() {
            return false;
        }
        if self.shard.1 > 1
            && (shard::of_orig(&s.orig, self.shard.1) != self.shard.0
                || shard::of_reply(&s.reply, self.shard.1) != self.shard.0)
        {
            return false;
        }
        let mut f = Flow {
            orig: s.orig,
            reply: s.reply,
            port: s.port,
            service: s.service,
            tcp: s.tcp,
            fin_orig: s.fin_orig,
            fin_reply: s.fin_reply,
            replied: s.replied,
            expires: Duration::ZERO,
            fault: 0,
            stats: FlowStats::new(now, Pick::Restored),
        };
        f.expires = now + s.left.min(f.timeout());
        self.grow(s.port as usize + 1, s.service as usize + 1);
        self.flows.insert(f);
        true
    }

    /// The flow table and affinity entries in the compact binary format of
    /// [`super::snapshot`], with each expiry stored as time left (relative
    /// to the newest clock value seen), so a new process with another clock
    /// epoch can [`Nat::restore`] it.
    pub fn snapshot(&self) -> Vec<u8> {
        let (ports, services) = self.names();
        let mut e = snap::Encoder::new(ports, services, self.last_now, self.flows.len());
        for (_, f) in self.flows.iter() {
            e.flow(f);
        }
        for a in self
            .affinity
            .each(|a| a.iter().copied().collect::<Vec<_>>())
        {
            for s in &a {
                e.affinity(s);
            }
        }
        e.finish()
    }

    /// Load flows and affinity entries saved by [`Nat::snapshot`] (of this or
    /// another process), with expiries relative to `now`. Flows whose tuples
    /// are already present, or that do not fit, are skipped; returns the
    /// number of flows restored. UDP flows to backends that stopped serving
    /// meanwhile are flushed when a table is installed.
    pub fn restore(&mut self, bytes: &[u8], now: Duration) -> Result<usize, RestoreError> {
        let d = snap::decode(bytes)?;
        self.last_now = self.last_now.max(now);
        let ports: Vec<u32> = d.ports.iter().map(|p| self.registry.port_idx(p)).collect();
        let services: Vec<u32> = d
            .services
            .iter()
            .map(|p| self.registry.service_idx(p))
            .collect();
        let mut n = 0;
        for s in &d.flows {
            let mapped = SavedFlow {
                port: ports[s.port as usize],
                service: services[s.service as usize],
                ..*s
            };
            n += usize::from(self.insert_saved(&mapped, now));
        }
        for a in &d.affinity {
            restore_affinity(&self.affinity, a, now);
        }
        Ok(n)
    }

    fn drop(&mut self, r: DropReason) -> Verdict {
        self.counters.count_drop(r);
        Verdict::Drop(r)
    }

    fn drop_for(&mut self, r: DropReason, port: Option<u32>, service: Option<u32>) -> Verdict {
        self.with_counters(port, service, |c| c.drops += 1);
        self.drop(r)
    }

    fn unchanged(&mut self) -> Verdict {
        self.counters.forwarded_unchanged += 1;
        Verdict::Forward
    }

    #[inline]
    fn in_cidr(&self, ip: Ipv4Addr) -> bool {
        self.compiled.in_cidr(ip)
    }

    /// Process one packet from the TUN: `buf` = virtio-net header + IPv4
    /// packet. `out` receives generated replies (ICMP port unreachable; 576
    /// bytes are always enough).
    pub fn process(&mut self, now: Duration, buf: &mut [u8], out: &mut [u8]) -> Verdict {
        self.counters.packets += 1;
        self.last_now = self.last_now.max(now);
        let Some(hdr) = VnetHdr::parse(buf) else {
            return self.drop(DropReason::Truncated);
        };
        let pkt = &mut buf[vnet::LEN..];
        match pkt.first() {
            None => return self.drop(DropReason::Truncated),
            Some(v) if v >> 4 != 4 => return self.drop(DropReason::NotIpv4),
            Some(_) => {}
        }
        let (ihl, total, proto, src, dst, fragment, first_fragment) =
            match Ipv4Packet::new_checked(&*pkt) {
                Ok(ip) => (
                    usize::from(ip.header_len()),
                    usize::from(ip.total_len()),
                    u8::from(ip.next_header()),
                    ip.src_addr(),
                    ip.dst_addr(),
                    ip.more_frags() || ip.frag_offset() != 0,
                    ip.frag_offset() == 0,
                ),
                Err(_) => return self.drop(DropReason::Malformed),
            };
        // Trailing bytes beyond the IP total length are left alone.
        let pkt = &mut pkt[..total];
        let to_svc = self.in_cidr(dst);
        if fragment {
            return self.fragment(pkt, ihl, proto, dst, to_svc, first_fragment);
        }
        match proto {
            TCP | UDP => self.tcp_udp(now, &hdr, pkt, ihl, proto, src, dst, to_svc, out),
            ICMP => self.icmp(&hdr, pkt, ihl, dst, to_svc),
            _ if to_svc => {
                if self.compiled.table.vips.contains(&dst) {
                    // kube-proxy rejects anything else sent to a ClusterIP.
                    let svc = self.compiled.vip_service.get(&dst).copied();
                    self.reject(pkt, ihl, out, None, svc)
                } else {
                    self.drop(DropReason::UnallocatedServiceIp)
                }
            }
            _ => self.unchanged(),
        }
    }

    fn fragment(
        &mut self,
        pkt: &[u8],
        ihl: usize,
        proto: u8,
        dst: Ipv4Addr,
        to_svc: bool,
        first: bool,
    ) -> Verdict {
        if to_svc {
            let svc = self.compiled.vip_service.get(&dst).copied();
            return self.drop_for(DropReason::Fragment, None, svc);
        }
        if first && matches!(proto, TCP | UDP) && pkt.len() >= ihl + 4 {
            let t = Tuple {
                proto,
                src: Ipv4Addr::from(rd32(pkt, 12)),
                sport: rd16(pkt, ihl),
                dst,
                dport: rd16(pkt, ihl + 2),
            };
            if let Some(f) = self.flows.find(&t).and_then(|(i, _)| self.flows.get(i)) {
                let (p, s) = (f.port, f.service);
                return self.drop_for(DropReason::Fragment, Some(p), Some(s));
            }
        }
        self.unchanged()
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp_udp(
        &mut self,
        now: Duration,
        hdr: &VnetHdr,
        pkt: &mut [u8],
        ihl: usize,
        proto: u8,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        to_svc: bool,
        out: &mut [u8],
    ) -> Verdict {
        let l4 = &pkt[ihl..];
        let (flags, csum_off) = if proto == TCP {
            if TcpPacket::new_checked(l4).is_err() {
                return self.drop(DropReason::Malformed);
            }
            (l4[13], 16)
        } else {
            let ulen = if l4.len() >= 8 {
                usize::from(rd16(l4, 4))
            } else {
                0
            };
            if ulen < 8 || ulen > l4.len() {
                return self.drop(DropReason::Malformed);
            }
            (0, 6)
        };
        let partial = hdr.needs_csum();
        let l = L4 {
            ihl,
            csum_at: ihl + csum_off,
            partial,
            udp: proto == UDP,
            vnet_ok: !partial
                || (usize::from(hdr.csum_start) == ihl && usize::from(hdr.csum_offset) == csum_off),
            segs: hdr.segments(pkt.len()),
            bytes: pkt.len() as u64,
        };
        let t = Tuple {
            proto,
            src,
            sport: rd16(pkt, ihl),
            dst,
            dport: rd16(pkt, ihl + 2),
        };
        let mut why_stale = EndReason::Expired;
        let found = match self.flows.find(&t) {
            Some((i, dir)) => {
                let stale = self.flows.get(i).copied().is_some_and(|f| {
                    let f = &f;
                    let reopen = dir == Dir::Orig
                        && flags & (SYN | ACK | RST) == SYN
                        && f.tcp.is_some_and(TcpState::reopens);
                    let flushed = self.flush.is_some()
                        && f.orig.proto == UDP
                        && f.expires > now
                        && !self.udp_serving(f);
                    if reopen {
                        self.counters.flows_reopened += 1;
                    } else if f.expires <= now {
                        self.counters.flows_expired += 1;
                    } else if flushed {
                        self.counters.flows_flushed += 1;
                    }
                    let why = if reopen {
                        EndReason::Reopened
                    } else if f.expires <= now {
                        EndReason::Expired
                    } else {
                        EndReason::Flushed
                    };
                    why_stale = why;
                    reopen || f.expires <= now || flushed
                });
                if stale {
                    if let Some(f) = self.flows.remove(i) {
                        self.ended(&f, why_stale, now);
                    }
                    None
                } else {
                    Some((i, dir))
                }
            }
            None => None,
        };
        match found {
            Some((i, dir)) => self.translate(now, pkt, &l, i, dir, flags, out),
            None if to_svc => self.new_flow(now, pkt, &l, t, flags, out),
            None => self.unchanged(),
        }
    }

    /// Rewrite a packet of an existing flow (applying injected faults).
    #[allow(clippy::too_many_arguments)]
    fn translate(
        &mut self,
        now: Duration,
        pkt: &mut [u8],
        l: &L4,
        i: usize,
        dir: Dir,
        flags: u8,
        out: &mut [u8],
    ) -> Verdict {
        let Some(f) = self.flows.get_mut(i) else {
            return self.unchanged();
        };
        if !l.vnet_ok {
            let (p, s) = (f.port, f.service);
            return self.drop_for(DropReason::BadVnetHeader, Some(p), Some(s));
        }
        let before = (f.tcp, f.replied);
        f.track(dir, flags, now);
        f.stats.count(dir, l.segs, l.bytes, now);
        let changed = before != (f.tcp, f.replied);
        let mut action = Action::Pass;
        if let Some(pf) = self.compiled.faults.as_ref().and_then(|t| t.get(f.port)) {
            let backend = f.reply.src;
            action = fault::decide(
                pf,
                &mut self.rng,
                now,
                dir == Dir::Orig,
                &mut f.fault,
                backend,
                l.bytes,
            );
        }
        let f = *f;
        if changed {
            self.event(|| FlowEvent::Flow {
                kind: FlowEventKind::Update,
                flow: f,
                at: now,
            });
        }
        match action {
            Action::Pass | Action::Delay(_) => {}
            Action::Drop => return self.drop_for(DropReason::Fault, Some(f.port), Some(f.service)),
            Action::Reset => return self.fault_reset(pkt, l, out, f.port, f.service),
        }
        match dir {
            Dir::Orig => {
                set_endpoint(pkt, l, 16, f.reply.src, l.ihl + 2, f.reply.sport);
                if f.snat() {
                    set_endpoint(pkt, l, 12, f.reply.dst, l.ihl, f.reply.dport);
                }
            }
            Dir::Reply => {
                set_endpoint(pkt, l, 12, f.orig.dst, l.ihl, f.orig.dport);
                if f.snat() {
                    set_endpoint(pkt, l, 16, f.orig.src, l.ihl + 2, f.orig.sport);
                }
            }
        }
        self.counters.translated += 1;
        let (segs, bytes) = (l.segs, l.bytes);
        self.with_counters(Some(f.port), Some(f.service), |c| {
            c.packets += segs;
            c.bytes += bytes;
        });
        match action {
            Action::Delay(d) => Verdict::Delay(d),
            _ => Verdict::Forward,
        }
    }

    /// A reset flow's client packet (still as the client sent it): answer
    /// with a TCP RST from the VIP (UDP: ICMP port unreachable) into `out`;
    /// the packet itself goes nowhere.
    fn fault_reset(
        &mut self,
        pkt: &[u8],
        l: &L4,
        out: &mut [u8],
        port: u32,
        service: u32,
    ) -> Verdict {
        if l.udp {
            return self.reject(pkt, l.ihl, out, Some(port), Some(service));
        }
        self.counters.count_drop(DropReason::Fault);
        self.with_counters(Some(port), Some(service), |c| c.drops += 1);
        let ihl = l.ihl;
        let len = 40;
        let Some(o) = out.get_mut(..vnet::LEN + len) else {
            return self.drop_for(DropReason::ReplyBufferTooSmall, Some(port), Some(service));
        };
        let tcp = &pkt[ihl..];
        let flags = tcp[13];
        let seq = rd32(tcp, 4);
        let ack = rd32(tcp, 8);
        let doff = usize::from(tcp[12] >> 4) * 4;
        let payload = tcp.len().saturating_sub(doff) as u32;
        let seglen = payload + u32::from(flags & SYN != 0) + u32::from(flags & 0x01 != 0);
        VnetHdr::default().write(o);
        let o = &mut o[vnet::LEN..];
        o.fill(0);
        o[0] = 0x45;
        wr16(o, 2, len as u16);
        o[8] = 64;
        o[9] = TCP;
        o[12..16].copy_from_slice(&pkt[16..20]); // from the VIP
        o[16..20].copy_from_slice(&pkt[12..16]); // to the client
        let c = checksum::checksum(&o[..20]);
        wr16(o, 10, c);
        o[20..22].copy_from_slice(&tcp[2..4]);
        o[22..24].copy_from_slice(&tcp[0..2]);
        if flags & ACK != 0 {
            wr32(o, 24, ack);
            o[33] = RST;
        } else {
            wr32(o, 28, seq.wrapping_add(seglen));
            o[33] = RST | ACK;
        }
        o[32] = 5 << 4;
        let (src, dst) = ([o[12], o[13], o[14], o[15]], [o[16], o[17], o[18], o[19]]);
        let ph = checksum::pseudo_header(src, dst, TCP, 20);
        let c = !checksum::fold(checksum::sum(&o[20..40], u32::from(ph)));
        wr16(o, 36, c);
        Verdict::Reply(vnet::LEN + len)
    }

    /// A free `dport` for `reply` (its other fields fixed), probing random
    /// ports.
    fn free_port(&mut self, reply: &mut Tuple) -> bool {
        for _ in 0..SNAT_PORT_TRIES {
            let p = self.rng.random_range(SNAT_PORT_MIN..=u16::MAX);
            reply.dport = shard::port_in_shard(reply, p, SNAT_PORT_MIN, self.shard);
            if !self.flows.contains(reply) {
                return true;
            }
        }
        false
    }

    /// A client packet to the service CIDR that matches no flow.
    fn new_flow(
        &mut self,
        now: Duration,
        pkt: &mut [u8],
        l: &L4,
        t: Tuple,
        flags: u8,
        out: &mut [u8],
    ) -> Verdict {
        if !self.compiled.table.vips.contains(&t.dst) {
            return self.drop(DropReason::UnallocatedServiceIp);
        }
        let Some(proto) = Proto::from_number(t.proto) else {
            return self.drop(DropReason::Malformed);
        };
        let compiled = Arc::clone(&self.compiled);
        let table = &compiled.table;
        let key = (t.dst, proto, t.dport);
        let (Some(sp), Some(meta)) = (table.ports.get(&key), compiled.meta.get(&key).copied())
        else {
            // A known VIP on a port the service lacks.
            let svc = self.compiled.vip_service.get(&t.dst).copied();
            return self.reject(pkt, l.ihl, out, None, svc);
        };
        let (mp, ms) = (Some(meta.port), Some(meta.service));
        if t.proto == TCP && flags & RST != 0 {
            return self.drop_for(DropReason::StrayRst, mp, ms);
        }
        let any_ready = sp.any_ready();
        let eligible = sp
            .endpoints
            .iter()
            .filter(|b| ServicePort::is_eligible(b, any_ready))
            .count();
        if eligible == 0 {
            if sp.drop_without_endpoints {
                return self.drop_for(DropReason::NoLocalEndpoints, mp, ms);
            }
            return self.reject(pkt, l.ihl, out, mp, ms);
        }
        if !l.vnet_ok {
            return self.drop_for(DropReason::BadVnetHeader, mp, ms);
        }
        let akey = AffinityKey {
            vip: t.dst,
            proto: t.proto,
            port: t.dport,
            client: t.src,
        };
        let mut pick = Pick::Random;
        let sticky = sp
            .affinity_timeout
            .and_then(|_| self.affinity.get(&akey, now))
            .filter(|b| {
                sp.endpoints
                    .iter()
                    .any(|e| (e.ip, e.port) == *b && ServicePort::is_eligible(e, any_ready))
            });
        let backend = match sticky {
            Some(b) => {
                pick = Pick::Affinity;
                b
            }
            None => {
                let k = self.rng.random_range(0..eligible);
                let e = sp
                    .endpoints
                    .iter()
                    .filter(|b| ServicePort::is_eligible(b, any_ready))
                    .nth(k);
                match e {
                    Some(e) => (e.ip, e.port),
                    None => return self.reject(pkt, l.ihl, out, mp, ms),
                }
            }
        };
        let mut reply = Tuple {
            proto: t.proto,
            src: backend.0,
            sport: backend.1,
            dst: t.src,
            dport: t.sport,
        };
        if backend.0 == t.src {
            // Hairpin: SNAT so the backend's reply comes back to the TUN.
            reply.dst = table.snat_addr;
            if !self.free_port(&mut reply) {
                return self.drop_for(DropReason::NoSnatPort, mp, ms);
            }
            self.counters.hairpin_flows += 1;
        } else if self.flows.contains(&reply) {
            if !self.free_port(&mut reply) {
                return self.drop_for(DropReason::NoSnatPort, mp, ms);
            }
            self.counters.port_clash_remaps += 1;
        }
        let tcp = (t.proto == TCP).then_some(if flags & (SYN | ACK) == SYN {
            TcpState::SynSent
        } else {
            TcpState::Established
        });
        let fault = compiled
            .faults
            .as_ref()
            .and_then(|ft| ft.get(meta.port))
            .map_or(0, |pf| fault::on_new_flow(pf, &mut self.rng));
        let flow = Flow {
            orig: t,
            reply,
            port: meta.port,
            service: meta.service,
            tcp,
            fin_orig: false,
            fin_reply: false,
            replied: false,
            expires: now,
            fault,
            stats: FlowStats::new(now, pick),
        };
        let (i, evicted) = self.flows.insert(flow);
        if let Some(old) = evicted {
            self.counters.flows_evicted += 1;
            self.ended(&old, EndReason::Evicted, now);
        }
        if let Some(timeout) = sp.affinity_timeout
            && self.affinity.set(akey, backend, now + timeout)
        {
            self.counters.affinity_evicted += 1;
        }
        self.counters.flows_created += 1;
        self.with_counters(mp, ms, |c| c.flows += 1);
        let v = self.translate(now, pkt, l, i, Dir::Orig, flags, out);
        if let Some(f) = self.flows.get(i).copied() {
            self.event(|| FlowEvent::Flow {
                kind: FlowEventKind::New,
                flow: f,
                at: now,
            });
        }
        v
    }

    /// ICMP port unreachable from the VIP to the client, quoting the original
    /// IP header and 8 bytes, into `out` (after a zero vnet header); the
    /// attempt is remembered (`lab flows`) and, if watched, sent as an event.
    fn reject(
        &mut self,
        pkt: &[u8],
        ihl: usize,
        out: &mut [u8],
        port: Option<u32>,
        service: Option<u32>,
    ) -> Verdict {
        let proto = pkt[9];
        let ports = matches!(proto, TCP | UDP) && pkt.len() >= ihl + 4;
        let r = Reject {
            orig: Tuple {
                proto,
                src: Ipv4Addr::from(rd32(pkt, 12)),
                sport: if ports { rd16(pkt, ihl) } else { 0 },
                dst: Ipv4Addr::from(rd32(pkt, 16)),
                dport: if ports { rd16(pkt, ihl + 2) } else { 0 },
            },
            service,
            port,
            reason: if port.is_some() {
                RejectReason::NoEndpoints
            } else {
                RejectReason::UnknownPort
            },
            at: self.last_now,
        };

        let quoted = (ihl + 8).min(pkt.len());
        let len = 20 + 8 + quoted;
        let Some(o) = out.get_mut(..vnet::LEN + len) else {
            return self.drop_for(DropReason::ReplyBufferTooSmall, port, service);
        };
        VnetHdr::default().write(o);
        let o = &mut o[vnet::LEN..];
        o.fill(0);
        o[0] = 0x45;
        o[1] = 0xc0; // precedence "internetwork control", as Linux sends errors
        wr16(o, 2, len as u16);
        o[8] = 64;
        o[9] = ICMP;
        o[12..16].copy_from_slice(&pkt[16..20]); // from the VIP
        o[16..20].copy_from_slice(&pkt[12..16]); // to the client
        let c = checksum::checksum(&o[..20]);
        wr16(o, 10, c);
        o[20] = 3; // destination unreachable
        o[21] = 3; // port unreachable
        o[28..28 + quoted].copy_from_slice(&pkt[..quoted]);
        let c = checksum::checksum(&o[20..]);
        wr16(o, 22, c);
        self.counters.rejects += 1;
        self.with_counters(port, service, |c| c.rejects += 1);
        self.rejects.push(r);
        self.event(|| FlowEvent::Reject(r));
        Verdict::Reply(vnet::LEN + len)
    }

    fn icmp(
        &mut self,
        hdr: &VnetHdr,
        pkt: &mut [u8],
        ihl: usize,
        dst: Ipv4Addr,
        to_svc: bool,
    ) -> Verdict {
        if Icmpv4Packet::new_checked(&pkt[ihl..]).is_err() {
            return self.drop(DropReason::Malformed);
        }
        let ty = pkt[ihl];
        // Destination unreachable, time exceeded, parameter problem.
        if matches!(ty, 3 | 11 | 12)
            && let Some(v) = self.icmp_error(hdr, pkt, ihl)
        {
            return v;
        }
        if to_svc {
            if !self.compiled.table.vips.contains(&dst) {
                return self.drop(DropReason::UnallocatedServiceIp);
            }
            let svc = self.compiled.vip_service.get(&dst).copied();
            let r = if ty == 8 {
                DropReason::EchoToVip
            } else {
                DropReason::IcmpToVip
            };
            return self.drop_for(r, None, svc);
        }
        self.unchanged()
    }

    /// Translate an ICMP error about a flow; `None` if it matches none.
    fn icmp_error(&mut self, hdr: &VnetHdr, pkt: &mut [u8], ihl: usize) -> Option<Verdict> {
        let at = ihl + 8;
        let inner = pkt.get(at..)?;
        if inner.len() < 20 || inner[0] >> 4 != 4 {
            return None;
        }
        let iihl = usize::from(inner[0] & 0x0f) * 4;
        // RFC 792: the header plus at least 8 bytes (the ports) are quoted.
        if iihl < 20 || inner.len() < iihl + 8 || rd16(inner, 6) & 0x1fff != 0 {
            return None;
        }
        let iproto = inner[9];
        if iproto != TCP && iproto != UDP {
            return None;
        }
        let isrc = Ipv4Addr::from(rd32(inner, 12));
        let idst = Ipv4Addr::from(rd32(inner, 16));
        let l4 = at + iihl;
        let quoted = Tuple {
            proto: iproto,
            src: isrc,
            sport: rd16(pkt, l4),
            dst: idst,
            dport: rd16(pkt, l4 + 2),
        };
        // The error goes back to the quoted packet's sender.
        if Ipv4Addr::from(rd32(pkt, 16)) != isrc {
            return None;
        }
        let (i, dir) = self.flows.find(&quoted.reversed())?;
        let f = *self.flows.get(i)?;
        if hdr.needs_csum() {
            return Some(self.drop_for(DropReason::BadVnetHeader, Some(f.port), Some(f.service)));
        }
        let l4_csum = if iproto == TCP {
            (pkt.len() >= l4 + 18).then_some(l4 + 16)
        } else {
            (rd16(pkt, l4 + 6) != 0).then_some(l4 + 6)
        };
        let inner = Inner {
            at,
            l4,
            l4_csum,
            udp: iproto == UDP,
        };
        let icsum = ihl + 2;
        let set_outer = |pkt: &mut [u8], addr_at: usize, ip: Ipv4Addr| {
            let (old, new) = (rd32(pkt, addr_at), u32::from(ip));
            wr16(pkt, 10, checksum::update32(rd16(pkt, 10), old, new));
            wr32(pkt, addr_at, new);
        };
        match dir {
            // The quoted packet is client (or SNAT) → backend, as the backend
            // got it: the error heads for the client, as if from the VIP.
            Dir::Reply => {
                set_outer(pkt, 12, f.orig.dst);
                set_outer(pkt, 16, f.orig.src);
                inner.set(pkt, icsum, 12, f.orig.src, 0, f.orig.sport);
                inner.set(pkt, icsum, 16, f.orig.dst, 2, f.orig.dport);
            }
            // The quoted packet is VIP → client, as the client got it: the
            // error heads for the backend (e.g. the client's port is closed,
            // or frag-needed on the way to the client).
            Dir::Orig => {
                if f.snat() {
                    set_outer(pkt, 12, f.reply.dst);
                }
                set_outer(pkt, 16, f.reply.src);
                inner.set(pkt, icsum, 12, f.reply.src, 0, f.reply.sport);
                inner.set(pkt, icsum, 16, f.reply.dst, 2, f.reply.dport);
            }
        }
        self.counters.icmp_errors_translated += 1;
        self.counters.translated += 1;
        let bytes = pkt.len() as u64;
        self.with_counters(Some(f.port), Some(f.service), |c| {
            c.packets += 1;
            c.bytes += bytes;
        });
        Some(Verdict::Forward)
    }
}

fn named(names: &[String], v: &[ServiceCounters]) -> BTreeMap<String, ServiceCounters> {
    v.iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let n = names.get(i).filter(|n| !n.is_empty())?;
            Some((n.clone(), c.clone()))
        })
        .collect()
}

/// Load a saved affinity entry (timeouts are at most 86400 s in
/// Kubernetes).
pub(crate) fn restore_affinity(a: &SharedAffinity, s: &snap::SavedAffinity, now: Duration) {
    let left = s.left.min(Duration::from_secs(86_400));
    a.set(s.key, s.backend, now + left);
}

#[cfg(test)]
mod tests;
