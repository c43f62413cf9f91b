//! The flow table: a slab of flows with one hash index holding both
//! directions (original and reply tuple), a fixed capacity with sampling
//! eviction, TCP state tracking with nf_conntrack's default timeouts, and
//! bounded expiry sweeps driven by a passed-in clock.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// 5-tuple as seen on the wire: (protocol, src, sport, dst, dport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Tuple {
    /// The tuple of a packet going the other way.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

impl Hash for Tuple {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u64((u64::from(u32::from(self.src)) << 32) | u64::from(u32::from(self.dst)));
        h.write_u64(
            (u64::from(self.sport) << 32) | (u64::from(self.dport) << 16) | u64::from(self.proto),
        );
    }
}

/// A keyed multiply-fold hasher: fast for the two words a [`Tuple`] hashes
/// to, seeded per table so a pod cannot precompute colliding tuples offline
/// (not a cryptographic PRF: an adaptive attacker only costs us probe time).
#[derive(Clone, Copy)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    pub fn new(seed: u64) -> KeyedState {
        let mut s = SplitMix(seed);
        KeyedState {
            k0: s.next_u64(),
            k1: s.next_u64() | 1,
        }
    }
}

pub struct KeyedHasher {
    acc: u64,
    k1: u64,
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl Hasher for KeyedHasher {
    #[inline]
    fn finish(&self) -> u64 {
        fold_mul(
            self.acc ^ 0x243f_6a88_85a3_08d3,
            self.k1.rotate_left(23) | 1,
        )
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w) ^ ((c.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.acc = fold_mul(self.acc ^ i, self.k1);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    #[inline]
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            acc: self.k0,
            k1: self.k1,
        }
    }
}

pub type FastMap<K, V> = HashMap<K, V, KeyedState>;

/// SplitMix64, for seeding and sampling.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// TCP connection states, as nf_conntrack names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TcpState {
    SynSent,
    SynRecv,
    Established,
    /// The client sent the first FIN.
    FinWait,
    /// The backend sent the first FIN.
    CloseWait,
    /// Both sides sent FIN; waiting for the last ACK.
    LastAck,
    TimeWait,
    /// Reset.
    Close,
}

impl TcpState {
    /// nf_conntrack's default timeouts.
    pub fn timeout(self) -> Duration {
        Duration::from_secs(match self {
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::Established => 432_000,
            TcpState::FinWait => 120,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
        })
    }

    /// A SYN from the client on a flow in this state starts a new
    /// connection (port reuse), as in nf_conntrack.
    pub fn reopens(self) -> bool {
        matches!(self, TcpState::TimeWait | TcpState::Close)
    }
}

/// nf_conntrack_udp_timeout (unreplied) and _stream (replied).
pub const UDP_UNREPLIED: Duration = Duration::from_secs(30);
pub const UDP_REPLIED: Duration = Duration::from_secs(120);
/// nf_conntrack_tcp_timeout_unacknowledged: a TCP flow the backend never
/// answered (e.g. picked up mid-stream) does not get the 5-day timeout.
pub const TCP_UNREPLIED_MAX: Duration = Duration::from_secs(300);

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

/// Which direction of its flow a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → VIP (as sent by the client).
    Orig,
    /// Backend → client (as sent by the backend).
    Reply,
}

/// How a flow's backend was chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pick {
    /// Uniform random among the eligible endpoints.
    #[default]
    Random,
    /// `sessionAffinity: ClientIP`: the client's remembered backend.
    Affinity,
    /// Loaded from a flow-table snapshot (chosen by an earlier daemon).
    Restored,
}

/// What `lab flows` shows of a flow beyond its tuples: when it started and
/// was last seen, how its backend was chosen, and packets and bytes each
/// way (`[client → backend, backend → client]`; a GSO super-packet counts
/// as its segments). Updated on the packet path with plain adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: Duration,
    pub seen: Duration,
    pub pick: Pick,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

impl FlowStats {
    pub fn new(now: Duration, pick: Pick) -> FlowStats {
        FlowStats {
            created: now,
            seen: now,
            pick,
            ..FlowStats::default()
        }
    }

    #[inline]
    pub fn count(&mut self, dir: Dir, packets: u64, bytes: u64, now: Duration) {
        let d = (dir == Dir::Reply) as usize;
        self.packets[d] += packets;
        self.bytes[d] += bytes;
        self.seen = now;
    }
}

/// A counter index that names nothing: a flow of a deleted Service keeps
/// working, but its packets are no longer counted for any Service.
pub const NO_INDEX: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Client → VIP:port, as the client sent it.
    pub orig: Tuple,
    /// Backend → client (or → SNAT address:port for hairpin / port clashes),
    /// as the backend sends it.
    pub reply: Tuple,
    /// Index of the ServicePort's counters.
    pub port: u32,
    /// Index of the service's counters.
    pub service: u32,
    /// `None` for UDP.
    pub tcp: Option<TcpState>,
    pub fin_orig: bool,
    pub fin_reply: bool,
    /// A packet came back from the backend.
    pub replied: bool,
    pub expires: Duration,
    /// Which injected faults acted on this flow (bits of
    /// [`super::fault`]'s `MARK_*`; names: [`super::fault::marker_names`]).
    pub fault: u8,
    pub stats: FlowStats,
}

impl Flow {
    pub fn backend(&self) -> (Ipv4Addr, u16) {
        (self.reply.src, self.reply.sport)
    }

    /// The source is rewritten too (hairpin, or a source-port clash).
    pub fn snat(&self) -> bool {
        (self.reply.dst, self.reply.dport) != (self.orig.src, self.orig.sport)
    }

    /// The client reaches itself through the VIP.
    pub fn hairpin(&self) -> bool {
        self.reply.dst != self.orig.src
    }

    /// Replied and not closing: the flows eviction spares.
    pub fn assured(&self) -> bool {
        self.replied && matches!(self.tcp, None | Some(TcpState::Established))
    }

    /// Timeout for the current state.
    pub fn timeout(&self) -> Duration {
        match self.tcp {
            Some(s) if self.replied => s.timeout(),
            Some(s) => s.timeout().min(TCP_UNREPLIED_MAX),
            None if self.replied => UDP_REPLIED,
            None => UDP_UNREPLIED,
        }
    }

    /// Advance the TCP state for a packet with `flags` going `dir`, and
    /// refresh the expiry.
    pub fn track(&mut self, dir: Dir, flags: u8, now: Duration) {
        if dir == Dir::Reply {
            self.replied = true;
        }
        if let Some(state) = self.tcp {
            self.tcp = Some(self.next_state(state, dir, flags));
        }
        self.expires = now + self.timeout();
    }

    fn next_state(&mut self, state: TcpState, dir: Dir, flags: u8) -> TcpState {
        use TcpState::*;
        if flags & RST != 0 {
            return Close;
        }
        if flags & FIN != 0 {
            match dir {
                Dir::Orig => self.fin_orig = true,
                Dir::Reply => self.fin_reply = true,
            }
            return match (self.fin_orig, self.fin_reply) {
                (true, true) => match state {
                    TimeWait => TimeWait,
                    _ => LastAck,
                },
                (true, false) => FinWait,
                _ => CloseWait,
            };
        }
        match state {
            SynSent if dir == Dir::Reply && flags & (SYN | ACK) == SYN | ACK => SynRecv,
            SynRecv if dir == Dir::Orig && flags & ACK != 0 => Established,
            LastAck if flags & ACK != 0 => TimeWait,
            s => s,
        }
    }
}

/// Random slots looked at to pick an eviction victim: with half the table
/// assured, an assured flow is evicted with probability 2^-16 per insert.
const EVICTION_SAMPLES: usize = 16;

/// Slab of flows plus one index for both directions.
pub struct Table {
    capacity: usize,
    slots: Vec<Option<Flow>>,
    free: Vec<u32>,
    /// Tuple → slot << 1 | (1 for the reply direction).
    index: FastMap<Tuple, u32>,
    sweep: usize,
    rng: SplitMix,
    udp: usize,
}

impl Table {
    pub fn new(capacity: usize, seed: u64) -> Table {
        // Slot indices are stored shifted left by one in a u32.
        let capacity = capacity.clamp(1, (u32::MAX >> 2) as usize);
        let initial = capacity.min(4096);
        let mut index = FastMap::with_hasher(KeyedState::new(seed));
        index.reserve(initial * 2);
        Table {
            capacity,
            slots: Vec::with_capacity(initial),
            free: Vec::new(),
            index,
            sweep: 0,
            rng: SplitMix(seed ^ 0x5851_f42d_4c95_7f2d),
            udp: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of UDP flows (lets a table update skip the flush scan).
    pub fn udp_flows(&self) -> usize {
        self.udp
    }

    #[inline]
    pub fn find(&self, t: &Tuple) -> Option<(usize, Dir)> {
        let v = *self.index.get(t)?;
        let dir = if v & 1 == 0 { Dir::Orig } else { Dir::Reply };
        Some(((v >> 1) as usize, dir))
    }

    pub fn contains(&self, t: &Tuple) -> bool {
        self.index.contains_key(t)
    }

    #[inline]
    pub fn get(&self, i: usize) -> Option<&Flow> {
        self.slots.get(i)?.as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, i: usize) -> Option<&mut Flow> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn remove(&mut self, i: usize) -> Option<Flow> {
        let f = self.slots.get_mut(i)?.take()?;
        self.index.remove(&f.orig);
        self.index.remove(&f.reply);
        if f.orig.proto == UDP {
            self.udp -= 1;
        }
        self.free.push(i as u32);
        Some(f)
    }

    /// Pick a victim among a few random slots: the one with the lowest
    /// (assured, expires) — an expired or half-open flow before an
    /// established one, the one closest to expiry among equals.
    fn evict_one(&mut self) -> Option<Flow> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let mut best: Option<(bool, Duration, usize)> = None;
        for _ in 0..EVICTION_SAMPLES {
            let i = (self.rng.next_u64() % n as u64) as usize;
            if let Some(f) = &self.slots[i] {
                let cand = (f.assured(), f.expires, i);
                if best.is_none_or(|b| (cand.0, cand.1) < (b.0, b.1)) {
                    best = Some(cand);
                }
            }
        }
        // The table is full when we get here, so a miss is rare; fall back to
        // the next occupied slot after a random start (bounded by n).
        let victim = match best {
            Some((_, _, i)) => i,
            None => {
                let start = (self.rng.next_u64() % n as u64) as usize;
                (0..n)
                    .map(|k| (start + k) % n)
                    .find(|&i| self.slots[i].is_some())?
            }
        };
        self.remove(victim)
    }

    /// Insert a flow whose tuples are both absent (the caller checks);
    /// evicts one flow first when full and returns it.
    pub fn insert(&mut self, flow: Flow) -> (usize, Option<Flow>) {
        debug_assert!(!self.contains(&flow.orig) && !self.contains(&flow.reply));
        let evicted = if self.len() >= self.capacity {
            self.evict_one()
        } else {
            None
        };
        let (o, r) = (flow.orig, flow.reply);
        if o.proto == UDP {
            self.udp += 1;
        }
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(flow);
                i as usize
            }
            None => {
                self.slots.push(Some(flow));
                self.slots.len() - 1
            }
        };
        self.index.insert(o, (i as u32) << 1);
        self.index.insert(r, ((i as u32) << 1) | 1);
        (i, evicted)
    }

    /// Remove expired flows, looking at no more than `budget` slots.
    pub fn expire(&mut self, now: Duration, budget: usize) -> usize {
        self.expire_with(now, budget, |_| {})
    }

    /// [`Table::expire`], handing each removed flow to `gone`.
    pub fn expire_with(
        &mut self,
        now: Duration,
        budget: usize,
        mut gone: impl FnMut(&Flow),
    ) -> usize {
        let n = self.slots.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.sweep = (self.sweep + 1) % n;
            let i = self.sweep;
            if self.slots[i].as_ref().is_some_and(|f| f.expires <= now)
                && let Some(f) = self.remove(i)
            {
                gone(&f);
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

    /// Remove the flows in slots `start..start + budget` for which `keep` is
    /// false; returns how many, and the slot to continue from (`None` when
    /// the end of the slab was reached).
    pub fn retain_range(
        &mut self,
        start: usize,
        budget: usize,
        mut keep: impl FnMut(&Flow) -> bool,
    ) -> (usize, Option<usize>) {
        let end = start.saturating_add(budget).min(self.slots.len());
        let mut removed = 0;
        for i in start..end {
            if self.slots[i].as_ref().is_some_and(|f| !keep(f)) {
                self.remove(i);
                removed += 1;
            }
        }
        (removed, (end < self.slots.len()).then_some(end))
    }

    /// Run `f` on the flows in slots `start..start + budget`; returns the
    /// slot to continue from (`None` when the end of the slab was reached).
    pub fn for_range_mut(
        &mut self,
        start: usize,
        budget: usize,
        mut f: impl FnMut(&mut Flow),
    ) -> Option<usize> {
        let end = start.saturating_add(budget).min(self.slots.len());
        for flow in self.slots[start.min(end)..end].iter_mut().flatten() {
            f(flow);
        }
        (end < self.slots.len()).then_some(end)
    }

    /// Remove every flow for which `keep` is false; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&Flow) -> bool) -> usize {
        let mut removed = 0;
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|f| !keep(f)) {
                self.remove(i);
                removed += 1;
            }
        }
        removed
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
                proto: TCP,
                src: a,
                sport: n,
                dst: v,
                dport: 80,
            },
            reply: Tuple {
                proto: TCP,
                src: b,
                sport: 8080,
                dst: a,
                dport: n,
            },
            port: 0,
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
            fault: 0,
            stats: FlowStats::default(),
        }
    }

    #[test]
    fn both_directions_are_found() {
        let mut t = Table::new(10, 1);
        let f = flow(1000, 10, false);
        let (i, ev) = t.insert(f);
        assert!(ev.is_none());
        assert_eq!(t.find(&f.orig), Some((i, Dir::Orig)));
        assert_eq!(t.find(&f.reply), Some((i, Dir::Reply)));
        assert_eq!(t.find(&f.orig.reversed()), None);
        assert_eq!(t.remove(i), Some(f));
        assert!(t.find(&f.orig).is_none() && t.find(&f.reply).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn capacity_is_a_hard_bound_and_prefers_unestablished_victims() {
        let mut t = Table::new(100, 7);
        for i in 0..50 {
            t.insert(flow(i, 1000, true));
        }
        let mut evictions = 0;
        for i in 50..10_000u16 {
            evictions += usize::from(t.insert(flow(i, 100, false)).1.is_some());
        }
        assert_eq!(t.len(), 100);
        assert_eq!(evictions, 10_000 - 100);
        // A SYN flood mostly evicts its own half-open flows.
        let established = t.iter().filter(|(_, f)| f.assured()).count();
        assert!(
            established >= 45,
            "established flows evicted: {established} left"
        );
        assert!(t.slots.len() <= 100);
        assert_eq!(t.index.len(), 200);
    }

    #[test]
    fn expiry_is_bounded_and_complete() {
        let mut t = Table::new(1000, 3);
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
        assert_eq!(
            t.find(&flow(1, 0, false).reply).map(|x| x.1),
            Some(Dir::Reply)
        );
    }

    #[test]
    fn tcp_state_machine_and_timeouts() {
        use TcpState::*;
        let mut f = flow(1, 0, false);
        let s = |f: &Flow| f.tcp.unwrap();
        let secs = Duration::from_secs;
        f.track(Dir::Orig, SYN, secs(0));
        assert_eq!((s(&f), f.expires), (SynSent, secs(120)));
        f.track(Dir::Reply, SYN | ACK, secs(1));
        assert_eq!((s(&f), f.expires), (SynRecv, secs(61)));
        f.track(Dir::Orig, ACK, secs(2));
        assert_eq!((s(&f), f.expires), (Established, secs(432_002)));
        f.track(Dir::Reply, FIN | ACK, secs(3));
        assert_eq!((s(&f), f.expires), (CloseWait, secs(63)));
        f.track(Dir::Orig, FIN | ACK, secs(4));
        assert_eq!((s(&f), f.expires), (LastAck, secs(34)));
        f.track(Dir::Reply, ACK, secs(5));
        assert_eq!((s(&f), f.expires), (TimeWait, secs(125)));
        assert!(s(&f).reopens());
        f.track(Dir::Orig, RST, secs(6));
        assert_eq!((s(&f), f.expires), (Close, secs(16)));

        // Client closes first; never replied: capped timeouts.
        let mut g = flow(2, 0, false);
        g.tcp = Some(Established);
        g.track(Dir::Orig, FIN | ACK, secs(0));
        assert_eq!((s(&g), g.expires), (FinWait, secs(120)));
        g.tcp = Some(Established);
        g.track(Dir::Orig, ACK, secs(0));
        assert_eq!(g.expires, TCP_UNREPLIED_MAX);

        let mut u = flow(3, 0, false);
        u.orig.proto = UDP;
        u.tcp = None;
        u.track(Dir::Orig, 0, secs(0));
        assert_eq!(u.expires, UDP_UNREPLIED);
        u.track(Dir::Reply, 0, secs(0));
        assert_eq!(u.expires, UDP_REPLIED);
    }

    #[test]
    fn hasher_spreads_tuples() {
        let st = KeyedState::new(42);
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u16 {
            seen.insert(st.hash_one(flow(i, 0, false).orig) >> 50);
        }
        // 10k keys into 16k buckets: ~7.5k distinct if uniform.
        assert!(seen.len() > 6500, "{}", seen.len());
        let other = KeyedState::new(43);
        let t = flow(1, 0, false).orig;
        assert_ne!(st.hash_one(t), other.hash_one(t), "keyed");
    }
}
