//! Flow events for `lab flows -w` (what `conntrack -E` shows): a flow was
//! created, changed state, or ended; a connection attempt was rejected.
//! Free when nobody watches: the packet path reads one relaxed atomic
//! ([`FlowEvents::on`]) before building an event. While someone watches,
//! events go into a bounded channel without blocking; when it is full the
//! event is dropped and counted ([`FlowEvents::lost`]), never waited for.
//! Recent rejects are also kept in a small ring per shard ([`Rejects`]) so
//! `lab flows` lists them without anyone watching.

use super::conntrack::{Flow, Tuple};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Timed out in its state (or a packet found it expired).
    Expired,
    /// Removed to make room (the table is full).
    Evicted,
    /// UDP flow whose backend stopped serving.
    Flushed,
    /// A new SYN from the same client port replaced a closed TCP flow.
    Reopened,
}

/// Why a connection attempt got ICMP port unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The Service port has no serving endpoint.
    NoEndpoints,
    /// A known VIP on a port (or protocol) the Service does not have.
    UnknownPort,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoEndpoints => "no endpoints",
            RejectReason::UnknownPort => "unknown port",
        }
    }
}

/// One rejected attempt: the client's packet as it was sent to the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// Client → VIP:port (ports are 0 for protocols without them).
    pub orig: Tuple,
    pub service: Option<u32>,
    pub port: Option<u32>,
    pub reason: RejectReason,
    pub at: Duration,
}

/// Rejects kept per shard (the newest win).
pub const REJECTS_PER_SHARD: usize = 16;

/// A bounded ring of recent rejects (one per NAT shard).
#[derive(Debug, Default)]
pub struct Rejects {
    ring: VecDeque<Reject>,
}

impl Rejects {
    pub fn push(&mut self, r: Reject) {
        if self.ring.len() >= REJECTS_PER_SHARD {
            self.ring.pop_front();
        }
        self.ring.push_back(r);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Reject> {
        self.ring.iter()
    }

    /// Forget rejects for these (retired) service indexes.
    pub fn forget(&mut self, services: &[u32]) {
        self.ring
            .retain(|r| r.service.is_none_or(|s| !services.contains(&s)));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEventKind {
    New,
    /// TCP state changed, or the first reply of a UDP flow.
    Update,
    End(EndReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    Flow {
        kind: FlowEventKind,
        flow: Flow,
        at: Duration,
    },
    Reject(Reject),
}

/// Events in the channel at most (about 130 KiB); more are dropped and
/// counted.
pub const EVENT_QUEUE: usize = 1024;

/// The event channel shared by all shards: see the module documentation.
pub struct FlowEvents {
    watchers: AtomicUsize,
    tx: SyncSender<FlowEvent>,
    rx: Mutex<Receiver<FlowEvent>>,
    lost: AtomicU64,
}

impl FlowEvents {
    pub fn new(capacity: usize) -> Arc<FlowEvents> {
        let (tx, rx) = sync_channel(capacity.max(1));
        Arc::new(FlowEvents {
            watchers: AtomicUsize::new(0),
            tx,
            rx: Mutex::new(rx),
            lost: AtomicU64::new(0),
        })
    }

    /// Whether anyone watches (one relaxed load: the packet path's cost
    /// when nobody does).
    #[inline]
    pub fn on(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) != 0
    }

    /// Queue an event without blocking; a full queue drops and counts it.
    pub fn send(&self, e: FlowEvent) {
        match self.tx.try_send(e) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events dropped because the queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }

    /// Start watching: events flow while the guard lives.
    pub fn watch(self: &Arc<Self>) -> WatchGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatchGuard(Arc::clone(self))
    }

    /// The next event, waiting up to `timeout` (for the one thread that
    /// fans events out to watchers).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<FlowEvent> {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        // Timeout, or every sender gone: nothing to hand out.
        rx.recv_timeout(timeout).ok()
    }
}

/// Ends a watch when dropped.
pub struct WatchGuard(Arc<FlowEvents>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn reject(n: u16) -> Reject {
        Reject {
            orig: Tuple {
                proto: 6,
                src: Ipv4Addr::new(10, 244, 0, 2),
                sport: n,
                dst: Ipv4Addr::new(10, 96, 0, 9),
                dport: 80,
            },
            service: Some(u32::from(n % 2)),
            port: None,
            reason: RejectReason::NoEndpoints,
            at: Duration::from_secs(u64::from(n)),
        }
    }

    #[test]
    fn events_flow_only_while_watched_and_overflow_is_counted() {
        let ev = FlowEvents::new(2);
        assert!(!ev.on());
        let g = ev.watch();
        assert!(ev.on());
        for n in 0..3 {
            ev.send(FlowEvent::Reject(reject(n)));
        }
        assert_eq!(ev.lost(), 1);
        assert!(ev.recv_timeout(Duration::ZERO).is_some());
        assert!(ev.recv_timeout(Duration::ZERO).is_some());
        assert!(ev.recv_timeout(Duration::ZERO).is_none());
        drop(g);
        assert!(!ev.on());
    }

    #[test]
    fn reject_ring_is_bounded_and_forgets_deleted_services() {
        let mut r = Rejects::default();
        for n in 0..40 {
            r.push(reject(n));
        }
        assert_eq!(r.iter().count(), REJECTS_PER_SHARD);
        assert_eq!(r.iter().last().map(|r| r.orig.sport), Some(39));
        r.forget(&[1]);
        assert!(r.iter().all(|r| r.service == Some(0)));
        assert_eq!(r.iter().count(), REJECTS_PER_SHARD / 2);
    }
}
