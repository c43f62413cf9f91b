//! Service-level fault injection, decided inside the NAT where a Service
//! picks its backend (`lab fault svc/NAME …`). Pure: rules come in as plain
//! data ([`FaultRule`]), are compiled per service-port counter index into a
//! [`FaultTable`] that rides along with the published service table, and
//! [`decide`] returns what to do with one packet of a flow.
//!
//! - **reset** is decided once per flow, when it is created: the client's
//!   packets of a chosen flow are answered with a TCP RST from the VIP (UDP:
//!   ICMP port unreachable) and never reach the backend.
//! - **blackhole** drops every packet of flows whose backend is the named
//!   pod (the Service does not retry another backend: the client times out).
//! - **drop** and **delay** act per packet, on packets towards the Service
//!   (client → backend); replies pass, so `--delay 100ms` adds 100 ms to
//!   each round trip and `--drop 10%` loses a tenth of the requests.
//! - **bandwidth** is a shaper per Service and direction (a virtual clock:
//!   a packet leaves when the ones before it have, at the configured rate;
//!   with more than [`SHAPER_BACKLOG`] queued it is dropped, as a tbf with
//!   that latency does). A GSO super-packet counts with all its bytes.
//!
//! Every flow a fault acted on carries a marker ([`Flow::fault`], bits
//! below; [`marker_names`] names them) for `lab flows`.
//!
//! [`Flow::fault`]: super::conntrack::Flow::fault

use super::table::{Compiled, ServiceTable};
use rand::Rng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Flow marker bits ([`super::conntrack::Flow::fault`]).
pub const MARK_BLACKHOLE: u8 = 1;
pub const MARK_RESET: u8 = 2;
pub const MARK_DROP: u8 = 4;
pub const MARK_DELAY: u8 = 8;
pub const MARK_BANDWIDTH: u8 = 16;

/// The most a shaper queues before it drops (tbf's `latency`).
pub const SHAPER_BACKLOG: Duration = Duration::from_millis(100);

/// The names of the marker bits set in `bits`, in a fixed order
/// (`["delay", "drop"]`), for `lab flows`' `fault` field.
pub fn marker_names(bits: u8) -> Vec<&'static str> {
    [
        (MARK_BLACKHOLE, "blackhole"),
        (MARK_RESET, "reset"),
        (MARK_DROP, "drop"),
        (MARK_DELAY, "delay"),
        (MARK_BANDWIDTH, "bandwidth"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n)
    .collect()
}

/// What a fault does (resolved: a blackholed pod is its IP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Added to every packet towards the Service, ± a uniform jitter.
    Delay { base: Duration, jitter: Duration },
    /// Parts per million of packets towards the Service dropped.
    Drop { ppm: u32 },
    /// Parts per million of new flows reset.
    Reset { ppm: u32 },
    /// Flows to this backend are dropped whole.
    Blackhole { ip: Ipv4Addr },
    /// Bits per second, each direction.
    Bandwidth { bps: u64 },
}

/// One fault on a Service (`ns/name`), optionally on one of its ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    pub service: String,
    /// The Service's `port` (not the targetPort); `None` = every port.
    pub port: Option<u16>,
    pub effect: Effect,
}

/// A shaper shared by a Service's ports: per direction, the clock time
/// (ns) at which the link is free again.
#[derive(Debug)]
pub struct Shaper {
    bps: u64,
    free_at: [AtomicU64; 2],
}

impl Shaper {
    pub fn new(bps: u64) -> Shaper {
        Shaper {
            bps: bps.max(1),
            free_at: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    /// Admit `bytes` in direction `dir` (0 = towards the Service) at `now`:
    /// the wait before it may leave, or `None` (drop) when more than
    /// [`SHAPER_BACKLOG`] is already queued.
    pub fn admit(&self, dir: usize, now: Duration, bytes: u64) -> Option<Duration> {
        let now_ns = now.as_nanos() as u64;
        let cost = bytes.saturating_mul(8_000_000_000) / self.bps;
        let slot = &self.free_at[dir.min(1)];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let start = cur.max(now_ns);
            let wait = start - now_ns;
            if wait > SHAPER_BACKLOG.as_nanos() as u64 {
                return None;
            }
            match slot.compare_exchange_weak(
                cur,
                start.saturating_add(cost),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Duration::from_nanos(wait)),
                Err(v) => cur = v,
            }
        }
    }
}

/// The faults of one service port, merged from every rule that applies.
#[derive(Debug, Default)]
pub struct PortFaults {
    pub drop_ppm: u32,
    pub reset_ppm: u32,
    pub delay: Option<(Duration, Duration)>,
    pub blackhole: Vec<Ipv4Addr>,
    pub shaper: Option<Arc<Shaper>>,
}

/// Faults by service-port counter index.
#[derive(Debug, Default)]
pub struct FaultTable {
    by_port: Vec<Option<PortFaults>>,
}

impl FaultTable {
    /// Compile `rules` against a compiled service table: each rule applies
    /// to the ports of its service (or the one port it names). `None` when
    /// nothing applies, so the packet path tests one pointer.
    pub fn compile(rules: &[FaultRule], c: &Compiled) -> Option<FaultTable> {
        if rules.is_empty() {
            return None;
        }
        let table: &ServiceTable = &c.table;
        let mut by_port: Vec<Option<PortFaults>> = Vec::new();
        // One shaper per rule, shared by the ports it covers.
        let shapers: Vec<Option<Arc<Shaper>>> = rules
            .iter()
            .map(|r| match r.effect {
                Effect::Bandwidth { bps } => Some(Arc::new(Shaper::new(bps))),
                _ => None,
            })
            .collect();
        let mut any = false;
        for (key, sp) in &table.ports {
            let Some(meta) = c.meta.get(key) else {
                continue;
            };
            for (r, shaper) in rules.iter().zip(&shapers) {
                if r.service != sp.service || r.port.is_some_and(|p| p != key.2) {
                    continue;
                }
                let i = meta.port as usize;
                if by_port.len() <= i {
                    by_port.resize_with(i + 1, || None);
                }
                let pf = by_port[i].get_or_insert_with(PortFaults::default);
                any = true;
                match &r.effect {
                    Effect::Delay { base, jitter } => pf.delay = Some((*base, *jitter)),
                    Effect::Drop { ppm } => pf.drop_ppm = (*ppm).min(1_000_000),
                    Effect::Reset { ppm } => pf.reset_ppm = (*ppm).min(1_000_000),
                    Effect::Blackhole { ip } => pf.blackhole.push(*ip),
                    Effect::Bandwidth { .. } => pf.shaper = shaper.clone(),
                }
            }
        }
        any.then_some(FaultTable { by_port })
    }

    #[inline]
    pub fn get(&self, port: u32) -> Option<&PortFaults> {
        self.by_port.get(port as usize)?.as_ref()
    }
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pass,
    Drop,
    /// Answer the client with a reset (TCP RST / ICMP port unreachable).
    Reset,
    /// Send it after this long.
    Delay(Duration),
}

fn chance(rng: &mut SmallRng, ppm: u32) -> bool {
    ppm > 0 && rng.random_range(0..1_000_000u32) < ppm
}

/// Decide a new flow's per-flow faults: the marker bits to start it with
/// (reset chosen with its probability).
pub fn on_new_flow(pf: &PortFaults, rng: &mut SmallRng) -> u8 {
    if chance(rng, pf.reset_ppm) {
        MARK_RESET
    } else {
        0
    }
}

/// Decide one packet of a flow with marker `mark` (updated with what hit
/// it) whose backend is `backend`; `to_service` = client → backend;
/// `bytes` = its IP bytes (a GSO super-packet's whole length).
pub fn decide(
    pf: &PortFaults,
    rng: &mut SmallRng,
    now: Duration,
    to_service: bool,
    mark: &mut u8,
    backend: Ipv4Addr,
    bytes: u64,
) -> Action {
    if pf.blackhole.contains(&backend) {
        *mark |= MARK_BLACKHOLE;
        return Action::Drop;
    }
    if *mark & MARK_RESET != 0 {
        return if to_service {
            Action::Reset
        } else {
            Action::Drop
        };
    }
    let mut wait = Duration::ZERO;
    if to_service {
        if chance(rng, pf.drop_ppm) {
            *mark |= MARK_DROP;
            return Action::Drop;
        }
        if let Some((base, jitter)) = pf.delay {
            let d = if jitter.is_zero() {
                base
            } else {
                let j = jitter.as_nanos() as i64;
                let off = rng.random_range(-j..=j);
                let ns = base.as_nanos() as i64 + off;
                Duration::from_nanos(ns.max(0) as u64)
            };
            *mark |= MARK_DELAY;
            wait += d;
        }
    }
    if let Some(s) = &pf.shaper {
        match s.admit(usize::from(!to_service), now, bytes) {
            Some(w) => {
                if !w.is_zero() {
                    *mark |= MARK_BANDWIDTH;
                }
                wait += w;
            }
            None => {
                *mark |= MARK_BANDWIDTH;
                return Action::Drop;
            }
        }
    }
    if wait.is_zero() {
        Action::Pass
    } else {
        Action::Delay(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drop_rate_is_close_to_the_setting() {
        let pf = PortFaults {
            drop_ppm: 300_000,
            ..Default::default()
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let mut mark = 0;
        let ip = Ipv4Addr::new(10, 244, 0, 2);
        let dropped = (0..10_000)
            .filter(|_| {
                decide(&pf, &mut rng, Duration::ZERO, true, &mut mark, ip, 100) == Action::Drop
            })
            .count();
        assert!((2_700..3_300).contains(&dropped), "{dropped}");
        assert_eq!(mark, MARK_DROP);
        // Replies are never dropped by --drop.
        let mut m2 = 0;
        assert!((0..1000).all(
            |_| decide(&pf, &mut rng, Duration::ZERO, false, &mut m2, ip, 100) == Action::Pass
        ));
    }

    #[test]
    fn delay_with_jitter_stays_in_range() {
        let pf = PortFaults {
            delay: Some((Duration::from_millis(100), Duration::from_millis(20))),
            ..Default::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut mark = 0;
        for _ in 0..1000 {
            let a = decide(
                &pf,
                &mut rng,
                Duration::ZERO,
                true,
                &mut mark,
                Ipv4Addr::LOCALHOST,
                1,
            );
            let Action::Delay(d) = a else { panic!("{a:?}") };
            assert!(d >= Duration::from_millis(80) && d <= Duration::from_millis(120));
        }
        assert_eq!(marker_names(mark), ["delay"]);
    }

    #[test]
    fn blackhole_and_reset() {
        let bad = Ipv4Addr::new(10, 244, 0, 9);
        let pf = PortFaults {
            blackhole: vec![bad],
            reset_ppm: 1_000_000,
            ..Default::default()
        };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut m = 0;
        assert_eq!(
            decide(&pf, &mut rng, Duration::ZERO, true, &mut m, bad, 1),
            Action::Drop
        );
        assert_eq!(m, MARK_BLACKHOLE);
        let mut m = on_new_flow(&pf, &mut rng);
        assert_eq!(m, MARK_RESET);
        let other = Ipv4Addr::new(10, 244, 0, 1);
        assert_eq!(
            decide(&pf, &mut rng, Duration::ZERO, true, &mut m, other, 1),
            Action::Reset
        );
        assert_eq!(
            marker_names(MARK_BLACKHOLE | MARK_RESET),
            ["blackhole", "reset"]
        );
    }

    #[test]
    fn shaper_paces_and_drops_beyond_its_backlog() {
        // 8 Mbit/s = 1 byte per µs: 1000-byte packets leave 1 ms apart.
        let s = Shaper::new(8_000_000);
        let t0 = Duration::from_secs(1);
        assert_eq!(s.admit(0, t0, 1000), Some(Duration::ZERO));
        assert_eq!(s.admit(0, t0, 1000), Some(Duration::from_millis(1)));
        // The other direction has its own clock.
        assert_eq!(s.admit(1, t0, 1000), Some(Duration::ZERO));
        let mut admitted = 2;
        while s.admit(0, t0, 1000).is_some() {
            admitted += 1;
        }
        // 100 ms of backlog at 1 ms each (+ the one that finds exactly 100).
        assert!((100..=102).contains(&admitted), "{admitted}");
        // Once time passes, the link is free again.
        assert!(s.admit(0, t0 + Duration::from_secs(1), 1000).is_some());
    }
}
