//! The Services data plane's shell: the TUN `svc0` in the node netns, one
//! supervised thread per queue feeding packets through the sharded NAT core
//! ([`crate::dataplane::Sharded`]: no global lock; the service table is
//! published by pointer), bounded expiry passes on a thread of their own, and flow-table snapshots
//! (compact binary, taken shard by shard, written by their own thread only
//! when something changed) so a restarted daemon keeps established
//! connections. A holder process keeps the queues attached while no daemon
//! runs, so a restart loses no packet ([`super::tunhold`], [`handover`]).

use super::metrics::HistogramFamily;
use super::queueio::{self, QueueOptions};
use super::services::ServicesView;
use super::tunhold::{self, HoldConfig, Holder};
use crate::cluster::ClusterConfig;
use crate::dataplane::events::{FlowEvent, WatchGuard};
use crate::dataplane::shard::{EndpointCounters, FlowList};
use crate::dataplane::{self as dp, Sharded, SnapshotStats, Verdict, Worker};
use crate::sys;
use crate::sys::tun::Queue;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const TUN_NAME: &str = "svc0";
/// Flow-table capacity (entries); a SYN flood evicts, it does not grow.
pub const FLOW_CAPACITY: usize = 262_144;
/// How long an idle queue thread sleeps in poll() (a stop wakes it at once).
const QUEUE_POLL_MS: u16 = 200;
/// After a stop request a queue still empties what it holds, up to this
/// many packets (bounded: under load it may never see an empty queue).
const STOP_DRAIN_MAX: u32 = 4096;
/// With blocking reads, a read that took this long is counted as having
/// waited for its packet (a new batch).
const READ_WAITED: Duration = Duration::from_micros(10);
/// How often, and for how long at most, a stop interrupts a queue thread
/// blocked in read() until it ends.
const STOP_SIGNAL_EVERY: Duration = Duration::from_millis(1);
const STOP_SIGNAL_FOR: Duration = Duration::from_secs(5);
/// A queue that ran this long before failing restarts without delay growth.
const QUEUE_HEALTHY: Duration = Duration::from_secs(30);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Expiry passes (each bounded per shard).
const EXPIRE_EVERY: Duration = Duration::from_millis(250);
/// The snapshot writer looks for changes this often; flows created or
/// removed are written within this time.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// Traffic on existing flows only moves their expiries: refresh the file at
/// most this often for that alone.
const SNAPSHOT_REFRESH: Duration = Duration::from_secs(10);

pub struct DataPlane {
    core: Arc<Sharded>,
    node: String,
    snapshot_path: PathBuf,
    epoch: Instant,
    last_view: Mutex<Option<ServicesView>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    queue_restarts: AtomicU64,
    last_snapshot: Mutex<Option<SnapshotStats>>,
    /// Serialises snapshot writers (the thread and a final save).
    save_lock: Mutex<()>,
    /// Woken when a queue re-attached to the TUN after losing it (the device
    /// was deleted and re-created): its link state, routes and rules need
    /// putting back ([`super::repair`] waits on this).
    pub tun_reattached: tokio::sync::Notify,
    pub queues: usize,
    /// Running `lab capture`s of svc0 (one atomic flag when none).
    pub capture: Arc<super::capture::Hub>,
    /// Packets held back by injected delays (`lab fault --delay`).
    pub delayer: Arc<super::faults::Delayer>,
    /// Wakes queue threads sleeping in poll() when stopping.
    waker: sys::tun::Waker,
    /// The first service table is installed: queues may read (a packet
    /// read before would meet an empty table and be dropped or rejected).
    table_ready: AtomicBool,
    /// The process keeping the queues attached while no daemon runs.
    holder: Mutex<Option<Holder>>,
    /// Whether the queues were taken over from a holder at start.
    adopted: bool,
    /// Flow events fanned out to `lab flows -w` watchers.
    flow_tx: tokio::sync::broadcast::Sender<FlowEvent>,
    /// Per queue: packets, batch sizes, batch processing times.
    pub queue_stats: Vec<QueueStats>,
    pub batch_size: HistogramFamily,
    pub batch_seconds: HistogramFamily,
}

/// What one queue thread measures (for `/metrics`): a plain counter, one
/// histogram observation per batch (a wake-up's reads until EAGAIN, cut
/// at [`BATCH_MAX`] packets). The histograms are this queue's members of
/// the [`DataPlane`]'s families.
pub struct QueueStats {
    pub packets: AtomicU64,
    batch_size: Histogram,
    batch_seconds: Histogram,
}

/// The queue-batch histogram families every node's data plane records
/// into (one `/metrics` family each, its series labelled by queue and, with
/// several nodes, by node).
#[derive(Clone)]
pub struct BatchFamilies {
    pub size: HistogramFamily,
    pub seconds: HistogramFamily,
}

impl Default for BatchFamilies {
    fn default() -> BatchFamilies {
        BatchFamilies {
            size: HistogramFamily::new_with_constructor(batch_size_histogram as fn() -> _),
            seconds: HistogramFamily::new_with_constructor(batch_seconds_histogram as fn() -> _),
        }
    }
}

fn batch_size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 9))
}

fn batch_seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-6, 4.0, 10))
}

/// A batch is cut here for the histograms (under sustained load a queue
/// may never see EAGAIN).
pub const BATCH_MAX: u64 = 256;
/// Flow events buffered per `lab flows -w` watcher before it loses some.
const WATCH_BUFFER: usize = 4096;

/// Why the data plane of a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("creating TUN {TUN_NAME} in {node}: {source}")]
    Tun {
        node: String,
        source: std::io::Error,
    },
    #[error("creating the data plane's eventfd: {0}")]
    Waker(std::io::Error),
    #[error("starting thread {name}: {source}")]
    Thread {
        name: String,
        source: std::io::Error,
    },
}

/// Start a named data-plane thread.
fn spawn_named(
    name: String,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|source| StartError::Thread { name, source })
}

/// Why a queue's run ended.
enum QueueEnd {
    Stopped,
    Failed(String, /* the fd is dead: reopen the queue */ bool),
}

impl DataPlane {
    /// Create (or re-attach to) `svc0`, restore the flow table if a
    /// snapshot exists, and start the queue threads. (Its routes and rules
    /// are [`super::routing::ServiceRouting`]'s.)
    /// `batches`: the families its queues record into, `node_label` the
    /// node to label their series with (none with one node).
    pub fn start(
        node: &str,
        snapshot_path: PathBuf,
        hold: &HoldConfig,
        batches: &BatchFamilies,
        node_label: Option<&str>,
    ) -> Result<Arc<DataPlane>, StartError> {
        let queues = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let Handover {
            queues: devs,
            holder,
            adopted,
        } = handover(node, queues, hold)?;
        let epoch = Instant::now();
        let core = Arc::new(Sharded::new(
            FLOW_CAPACITY,
            dp::shard::SHARDS,
            rand::random(),
        ));
        if let Ok(bytes) = std::fs::read(&snapshot_path) {
            match core.restore(&bytes, Duration::ZERO) {
                Ok(n) => tracing::info!("restored {n} flows from {}", snapshot_path.display()),
                Err(e) => tracing::warn!("ignoring flow snapshot {}: {e}", snapshot_path.display()),
            }
        }
        let (batch_size, batch_seconds) = (batches.size.clone(), batches.seconds.clone());
        let plane = Arc::new(DataPlane {
            core,
            node: node.to_string(),
            snapshot_path,
            epoch,
            last_view: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
            queue_restarts: AtomicU64::new(0),
            last_snapshot: Mutex::new(None),
            save_lock: Mutex::new(()),
            tun_reattached: tokio::sync::Notify::new(),
            queues: devs.len(),
            capture: Arc::new(super::capture::Hub::default()),
            delayer: Arc::new(super::faults::Delayer::default()),
            waker: sys::tun::Waker::new().map_err(StartError::Waker)?,
            table_ready: AtomicBool::new(false),
            holder: Mutex::new(holder),
            adopted,
            flow_tx: tokio::sync::broadcast::channel(WATCH_BUFFER).0,
            queue_stats: (0..devs.len())
                .map(|i| {
                    let mut l = vec![("queue", i.to_string())];
                    if let Some(n) = node_label {
                        l.push(("node", n.to_string()));
                    }
                    QueueStats {
                        packets: AtomicU64::new(0),
                        batch_size: batch_size.get_or_create_owned(&l),
                        batch_seconds: batch_seconds.get_or_create_owned(&l),
                    }
                })
                .collect(),
            batch_size,
            batch_seconds,
        });
        let mut threads = Vec::new();
        for (i, dev) in devs.into_iter().enumerate() {
            let p = plane.clone();
            threads.push(spawn_named(format!("svc0-q{i}"), move || {
                p.supervise(i, dev)
            })?);
        }
        let p = plane.clone();
        threads.push(spawn_named("svc0-expire".to_string(), move || p.expiry())?);
        let p = plane.clone();
        threads.push(spawn_named("svc0-events".to_string(), move || {
            p.fan_out_events()
        })?);
        let p = plane.clone();
        threads.push(spawn_named("svc0-snapshot".to_string(), move || {
            p.snapshotter()
        })?);
        let p = plane.clone();
        threads.push(spawn_named("svc0-delay".to_string(), move || {
            p.delayer.run(&p.stop, &p.capture)
        })?);
        *plane.threads.lock().unwrap_or_else(|e| e.into_inner()) = threads;
        Ok(plane)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleep up to `d`, waking early on stop; false if stopping.
    fn nap(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            self.waker.wait(left);
        }
        false
    }

    /// Run queue `i`, restarting it with backoff when it fails or panics.
    /// Each distinct failure is logged once (repeats at powers of two), not
    /// at the rate the queue fails.
    fn supervise(&self, i: usize, dev: Queue) {
        if !self.await_table() {
            return;
        }
        let mut dev = Some(dev);
        let mut backoff = BACKOFF_MIN;
        let mut last: Option<String> = None;
        let mut repeats = 0u64;
        while !self.stopping() {
            let d = match dev.take() {
                Some(d) => d,
                None => match sys::tun::open(&self.node, TUN_NAME, 1) {
                    Ok(mut v) if !v.is_empty() => {
                        tracing::info!("{TUN_NAME} queue {i} re-attached");
                        self.tun_reattached.notify_one();
                        v.remove(0)
                    }
                    Ok(_) => {
                        if !self.nap(backoff) {
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        let msg = format!("re-opening {TUN_NAME} queue {i}: {e}");
                        if last.as_deref() != Some(msg.as_str()) {
                            tracing::error!("{msg}; retrying with backoff");
                            last = Some(msg);
                        }
                        if !self.nap(backoff) {
                            break;
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            let started = Instant::now();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.queue(i, &d)));
            let (msg, dead) = match run {
                Ok(QueueEnd::Stopped) => break,
                Ok(QueueEnd::Failed(m, dead)) => (m, dead),
                Err(p) => {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".into());
                    (format!("{TUN_NAME} queue {i} panicked: {what}"), false)
                }
            };
            self.queue_restarts.fetch_add(1, Ordering::Relaxed);
            if started.elapsed() >= QUEUE_HEALTHY {
                backoff = BACKOFF_MIN;
            }
            if last.as_deref() == Some(msg.as_str()) {
                repeats += 1;
                if repeats.is_power_of_two() {
                    tracing::warn!("{msg} (again: {repeats} restarts since it was first logged)");
                }
            } else {
                tracing::error!("{msg}; restarting queue {i} in {backoff:?}");
                last = Some(msg);
                repeats = 0;
            }
            if dead {
                // The device went away (deleted by hand): re-open at once
                // rather than after a grown delay, so Services come back
                // within a second; a re-open that fails backs off above.
                backoff = BACKOFF_MIN;
            } else {
                dev = Some(d);
            }
            if !self.nap(backoff) {
                break;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Wait until the first service table is installed (what waited in
    /// the queues during a restart gap is then read with the saved
    /// Services). False if stopping first.
    fn await_table(&self) -> bool {
        while !self.table_ready.load(Ordering::Acquire) {
            if self.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// One queue: the options of [`super::queueio`] (thread placement,
    /// io_uring rounds, UDP coalescing) decide how it reads and writes;
    /// each packet goes through the sharded NAT and back out.
    fn queue(&self, i: usize, dev: &Queue) -> QueueEnd {
        let opts = QueueOptions::get();
        // A stop wakes a queue by a signal (EINTR) when its handler is in
        // place; otherwise by the eventfd, polled next to the queue.
        let signals = match queueio::install_wake_signal() {
            Ok(()) => true,
            Err(e) => {
                static ONCE: std::sync::Once = std::sync::Once::new();
                ONCE.call_once(|| {
                    tracing::warn!(
                        "{TUN_NAME}: no handler for the stop signal ({e}); queues poll the stop eventfd and never block in read()"
                    )
                });
                false
            }
        };
        // Blocking reads need the signal (nothing else interrupts a read);
        // io_uring reads are non-blocking per read and sleep in poll().
        let block = opts.block && !opts.uring && signals;
        if let Err(e) = dev.set_nonblocking(!block) {
            return QueueEnd::Failed(format!("{TUN_NAME}: setting blocking mode: {e}"), false);
        }
        if opts.pin {
            match queueio::pin_current_thread(i) {
                Ok(cpu) => tracing::debug!("{TUN_NAME} queue {i} pinned to CPU {cpu}"),
                Err(e) => tracing::warn!("{TUN_NAME} queue {i}: pinning: {e}"),
            }
        }
        self.delayer.offer_fd(dev.as_fd());
        if opts.uring {
            match queueio::Rounds::new(dev.as_raw_fd()) {
                Ok(r) => return self.queue_uring(i, dev, r, opts.gro, signals),
                Err(e) => {
                    static ONCE: std::sync::Once = std::sync::Once::new();
                    ONCE.call_once(|| {
                        tracing::warn!(
                            "{TUN_NAME}: io_uring unavailable ({e}); plain reads and writes"
                        )
                    });
                }
            }
        }
        if block {
            return self.queue_block(i, dev);
        }
        self.queue_plain(i, dev, signals)
    }

    /// What one packet read from the queue becomes: the NAT's verdict
    /// applied (a capture records it, a delay takes it).
    fn translate(&self, w: &mut Worker, before: &mut Vec<u8>, pkt: &mut [u8]) -> Out {
        let capturing = self.capture.active();
        if capturing {
            before.clear();
            before.extend_from_slice(pkt);
        }
        let verdict = self.core.process(w, self.now(), pkt);
        // Recorded before it is written, so a reply the kernel turns
        // around at once cannot be recorded ahead of it.
        if capturing {
            let after = match verdict {
                Verdict::Forward | Verdict::Delay(_) => Some(&pkt[..]),
                Verdict::Reply(len) => {
                    let out = w.out();
                    Some(&out[..len.min(out.len())])
                }
                Verdict::Drop(_) => None,
            };
            self.capture.record(before, after, &verdict);
        }
        match verdict {
            Verdict::Forward => Out::Same,
            Verdict::Reply(len) => Out::Reply(len.min(w.out().len())),
            Verdict::Drop(_) => Out::Nothing,
            Verdict::Delay(d) => {
                self.delayer.push(d, pkt);
                Out::Nothing
            }
        }
    }

    /// Plain system calls: read until EAGAIN, writing each packet as it is
    /// translated, then sleep in poll() (woken at once by a stop). On a
    /// stop the queue is emptied first (bounded): what already arrived is
    /// answered now rather than after the next daemon's start (or lost, if
    /// no holder keeps the queue attached).
    fn queue_plain(&self, i: usize, dev: &Queue, signals: bool) -> QueueEnd {
        let fd = dev.as_raw_fd();
        let wake = (!signals).then(|| self.waker.as_raw_fd());
        let mut w = self.core.worker();
        // Room for a 64 KiB GSO super-packet plus its virtio-net header.
        let mut buf = vec![0u8; 65_536 + 64];
        // The packet as it arrived, kept while a capture runs.
        let mut before: Vec<u8> = Vec::new();
        let stats = &self.queue_stats[i.min(self.queue_stats.len() - 1)];
        let mut batch = Batch::new(stats);
        let mut drain_left = STOP_DRAIN_MAX;
        loop {
            if self.stopping() {
                if drain_left == 0 {
                    break;
                }
                drain_left -= 1;
            }
            let n = match dev.recv(&mut buf) {
                Ok(n) => {
                    batch.add(1);
                    n
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    batch.end();
                    if self.stopping() {
                        break;
                    }
                    if let Err(e) = sys::tun::wait_readable(fd, wake, QUEUE_POLL_MS) {
                        return QueueEnd::Failed(format!("polling {TUN_NAME}: {e}"), false);
                    }
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let dead = dead_errno(e.raw_os_error());
                    return QueueEnd::Failed(format!("reading {TUN_NAME}: {e}"), dead);
                }
            };
            let res = match self.translate(&mut w, &mut before, &mut buf[..n]) {
                Out::Same => dev.send(&buf[..n]),
                Out::Reply(len) => dev.send(&w.out()[..len]),
                Out::Nothing => Ok(0),
            };
            if let Err(e) = res {
                tracing::debug!("writing {TUN_NAME}: {e}");
            }
        }
        QueueEnd::Stopped
    }

    /// Blocking reads (`LAB_DP_BLOCK`): one `read()` per packet, which
    /// sleeps in the kernel while the queue is empty (no EAGAIN read, no
    /// `poll()`), then the write. A stop interrupts the read with
    /// [`queueio::WAKE_SIGNAL`] (repeated by [`Self::stop_threads`] until
    /// the thread ends, so a signal that lands between the stop check and
    /// the read is not lost); the queue is then emptied (bounded) with
    /// reads that never wait. A read that took over [`READ_WAITED`] is
    /// counted as a wake-up for the batch histograms (there is no EAGAIN
    /// to end a batch).
    fn queue_block(&self, i: usize, dev: &Queue) -> QueueEnd {
        let fd = dev.as_raw_fd();
        let mut w = self.core.worker();
        let mut buf = vec![0u8; 65_536 + 64];
        let mut before: Vec<u8> = Vec::new();
        let stats = &self.queue_stats[i.min(self.queue_stats.len() - 1)];
        let mut batch = Batch::new(stats);
        batch.live = true;
        while !self.stopping() {
            let t0 = Instant::now();
            let n = match dev.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // Another holder of this queue's file made it
                    // non-blocking (its flags are shared): wait as the
                    // poll loop does.
                    batch.end();
                    if let Err(e) = sys::tun::wait_readable(fd, None, QUEUE_POLL_MS) {
                        return QueueEnd::Failed(format!("polling {TUN_NAME}: {e}"), false);
                    }
                    continue;
                }
                Err(e) => {
                    let dead = dead_errno(e.raw_os_error());
                    return QueueEnd::Failed(format!("reading {TUN_NAME}: {e}"), dead);
                }
            };
            let t1 = Instant::now();
            if t1.duration_since(t0) >= READ_WAITED {
                batch.end_at(t0);
            }
            batch.add_at(1, t1);
            self.forward(dev, &mut w, &mut before, &mut buf[..n]);
        }
        // Empty what the queue holds (bounded), never waiting.
        let mut left = STOP_DRAIN_MAX;
        while left > 0 {
            match queueio::readable_now(fd) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!("polling {TUN_NAME} while stopping: {e}");
                    break;
                }
            }
            let n = match dev.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            left -= 1;
            batch.add(1);
            self.forward(dev, &mut w, &mut before, &mut buf[..n]);
        }
        batch.end();
        QueueEnd::Stopped
    }

    /// Translate one packet and write what it becomes.
    fn forward(&self, dev: &Queue, w: &mut Worker, before: &mut Vec<u8>, pkt: &mut [u8]) {
        let res = match self.translate(w, before, pkt) {
            Out::Same => dev.send(pkt),
            Out::Reply(len) => dev.send(&w.out()[..len]),
            Out::Nothing => Ok(0),
        };
        if let Err(e) = res {
            tracing::debug!("writing {TUN_NAME}: {e}");
        }
    }

    /// io_uring rounds ([`queueio::Rounds`]): each `io_uring_enter` carries
    /// the previous round's writes and a batch of non-blocking reads; a
    /// round that reads nothing (and has nothing to write) sleeps in poll().
    /// With `gro`, a round's consecutive UDP datagrams of one flow go out as
    /// one GSO super-packet. On a stop: emptied as in [`Self::queue_plain`],
    /// and the last writes flushed.
    fn queue_uring(
        &self,
        i: usize,
        dev: &Queue,
        mut r: queueio::Rounds,
        gro: bool,
        signals: bool,
    ) -> QueueEnd {
        let fd = dev.as_raw_fd();
        let wake = (!signals).then(|| self.waker.as_raw_fd());
        let mut w = self.core.worker();
        let mut before: Vec<u8> = Vec::new();
        let stats = &self.queue_stats[i.min(self.queue_stats.len() - 1)];
        let mut batch = Batch::new(stats);
        let mut drain_left = STOP_DRAIN_MAX;
        loop {
            let stopping = self.stopping();
            if stopping && drain_left == 0 {
                break;
            }
            let (n, write_errors) = match r.round(true) {
                Ok(x) => x,
                Err(e) => {
                    let dead = dead_errno(e.raw_os_error());
                    return QueueEnd::Failed(format!("io_uring on {TUN_NAME}: {e}"), dead);
                }
            };
            for e in write_errors {
                tracing::debug!(
                    "writing {TUN_NAME}: {}",
                    std::io::Error::from_raw_os_error(e)
                );
            }
            // A read error other than "empty" ends the queue (or, for
            // EINTR, is retried next round).
            for g in &r.got {
                match *g {
                    Err(libc::EAGAIN | libc::EINTR) | Ok(_) => {}
                    Err(e) => {
                        let err = std::io::Error::from_raw_os_error(e);
                        return QueueEnd::Failed(
                            format!("reading {TUN_NAME}: {err}"),
                            dead_errno(Some(e)),
                        );
                    }
                }
            }
            if n == 0 {
                batch.end();
                if stopping {
                    break;
                }
                if let Err(e) = sys::tun::wait_readable(fd, wake, QUEUE_POLL_MS) {
                    return QueueEnd::Failed(format!("polling {TUN_NAME}: {e}"), false);
                }
                continue;
            }
            batch.add(n as u64);
            if stopping {
                drain_left = drain_left.saturating_sub(n as u32);
            }
            for j in 0..r.got.len() {
                let len = match r.got[j] {
                    Ok(len) if len > 0 => len,
                    _ => continue,
                };
                let slot = r.slot(j);
                match self.translate(&mut w, &mut before, &mut slot[..len]) {
                    Out::Same => r.write(j, len),
                    Out::Reply(l) => {
                        let l = l.min(slot.len());
                        slot[..l].copy_from_slice(&w.out()[..l]);
                        r.write(j, l);
                    }
                    Out::Nothing => {}
                }
            }
            if gro {
                coalesce(&mut r);
            }
        }
        // The last round's writes.
        if let Err(e) = r.round(false) {
            tracing::debug!("writing {TUN_NAME}: {e}");
        }
        QueueEnd::Stopped
    }

    /// Bounded expiry passes, one shard locked at a time.
    fn expiry(&self) {
        while self.nap(EXPIRE_EVERY) {
            self.core.expire(self.now());
        }
    }

    /// Write the snapshot when flows were created or removed (checked every
    /// second), or when traffic moved expiries (at most every 10 s).
    fn snapshotter(&self) {
        let mut written: Option<(u64, u64)> = None;
        let mut at = Instant::now();
        while self.nap(SNAPSHOT_EVERY) {
            let marks = self.core.change_marks();
            let due = match written {
                None => true,
                Some((structural, traffic)) => {
                    marks.0 != structural
                        || (marks.1 != traffic && at.elapsed() >= SNAPSHOT_REFRESH)
                }
            };
            if due {
                self.save();
                written = Some(marks);
                at = Instant::now();
            }
        }
    }

    /// Write the flow table now: each shard locked only while its flows are
    /// copied; encoding and the file write happen outside any lock. Skipped
    /// when the run directory is gone (`lab down` removed it).
    pub fn save(&self) {
        let _one = self.save_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, stats) = self.core.snapshot(self.now());
        if self.snapshot_path.parent().is_some_and(Path::is_dir)
            && let Err(e) =
                super::runtime::write_atomic(&self.snapshot_path, &bytes, super::runtime::PRIVATE)
        {
            tracing::warn!("writing {}: {e}", self.snapshot_path.display());
        }
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    /// Install a new service table. Cheap when
    /// nothing changed; the table is compiled here and published by pointer,
    /// so no queue waits for it. Returns whether a new table was published.
    pub fn update(&self, cfg: &ClusterConfig, view: ServicesView) -> bool {
        let mut last = self.last_view.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref() == Some(&view) {
            return false;
        }
        let table = build_table(cfg, &view);
        self.core.set_table(Arc::new(table));
        *last = Some(view);
        drop(last);
        self.table_ready.store(true, Ordering::Release);
        true
    }

    /// Move flow events from the NAT's bounded queue to the watchers (a
    /// thread of its own; it blocks in the queue while nothing happens).
    fn fan_out_events(&self) {
        let ev = Arc::clone(self.core.events());
        while !self.stopping() {
            if let Some(e) = ev.recv_timeout(Duration::from_millis(200)) {
                // No receiver left: the event is dropped (the watch ended).
                let _ = self.flow_tx.send(e);
            }
        }
    }

    /// Watch flow events: the NAT sends them while the guard lives.
    pub fn watch_flows(&self) -> (WatchGuard, tokio::sync::broadcast::Receiver<FlowEvent>) {
        let rx = self.flow_tx.subscribe();
        (self.core.events().watch(), rx)
    }

    /// Events the NAT dropped because its queue was full.
    pub fn flow_events_lost(&self) -> u64 {
        self.core.events().lost()
    }

    /// The flows and recent rejects, and the NAT's clock now.
    pub fn list_flows(&self) -> (FlowList, Duration) {
        (self.core.list(), self.now())
    }

    /// The names behind the NAT's counter indexes (service ports, services).
    pub fn names(&self) -> (Arc<Vec<String>>, Arc<Vec<String>>) {
        self.core.names()
    }

    /// The NAT's clock (flow times are relative to it).
    pub fn clock(&self) -> Duration {
        self.now()
    }

    pub fn endpoint_counters(&self) -> EndpointCounters {
        self.core.endpoint_counters()
    }

    pub fn service_counters_raw(&self) -> std::collections::BTreeMap<String, dp::ServiceCounters> {
        self.core.service_counters()
    }

    pub fn global_counters(&self) -> dp::Counters {
        self.core.counters()
    }

    pub fn flow_count(&self) -> usize {
        self.core.flow_count()
    }

    /// Facts for `lab status` / `lab describe svc`.
    pub fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "TUN".into(),
            format!(
                "{TUN_NAME} ({} queues, offload on, {} flow shards)",
                self.queues,
                self.core.shard_count()
            )
            .into(),
        );
        m.insert("Flows".into(), self.core.flow_count().into());
        m.insert(
            "TUN holder".into(),
            match self
                .holder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                Some(h) if !h.alive() => format!(
                    "pid {} exited: packets are dropped while no daemon runs, until the next daemon starts a new one",
                    h.pid()
                ),
                Some(h) if self.adopted => format!("pid {} (queues taken over at start)", h.pid()),
                Some(h) => format!("pid {} (started with this daemon)", h.pid()),
                None => "none: packets are dropped while no daemon runs".into(),
            }
            .into(),
        );
        m.insert(
            "Queue restarts".into(),
            self.queue_restarts.load(Ordering::Relaxed).into(),
        );
        if let Some(s) = *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) {
            m.insert(
                "Snapshot".into(),
                format!(
                    "{} flows, {} bytes, shard locked {} µs median / {} µs longest, {} ms in all",
                    s.flows,
                    s.bytes,
                    s.median_hold.as_micros(),
                    s.max_hold.as_micros(),
                    s.total.as_millis()
                )
                .into(),
            );
        }
        let (queued, sent, dropped) = (
            self.delayer.queued(),
            self.delayer.sent.load(Ordering::Relaxed),
            self.delayer.dropped.load(Ordering::Relaxed),
        );
        if queued + sent as usize + dropped as usize > 0 {
            m.insert(
                "Fault delays".into(),
                format!("{queued} queued, {sent} sent, {dropped} dropped (queue full)").into(),
            );
        }
        m.insert(
            "Counters".into(),
            serde_json::to_value(self.core.counters()).unwrap_or_default(),
        );
        m
    }

    /// Install the injected faults' rules (`lab fault`).
    pub fn set_faults(&self, rules: Vec<dp::fault::FaultRule>) {
        self.core.set_faults(rules);
    }

    /// Per-service counters (`ns/name` → counter → value).
    pub fn service_counters(&self) -> HashMap<String, serde_json::Value> {
        self.core
            .service_counters()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect()
    }

    /// Stop the queue, expiry and snapshot threads and wait for them (a
    /// queue empties itself first; sleepers are woken at once).
    fn stop_threads(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake();
        let signals = queueio::wake_signal_installed();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let name = t.thread().name().unwrap_or("?").to_string();
            if signals && name.starts_with("svc0-q") {
                // A queue asleep in read() or poll(): interrupt it until it
                // ends (a signal that arrives before the call starts is
                // missed).
                use std::os::unix::thread::JoinHandleExt;
                let until = Instant::now() + STOP_SIGNAL_FOR;
                while !t.is_finished() && Instant::now() < until {
                    queueio::interrupt(t.as_pthread_t());
                    std::thread::sleep(STOP_SIGNAL_EVERY);
                }
            }
            if t.join().is_err() {
                tracing::error!(thread = name, "a data-plane thread panicked");
            }
        }
    }

    /// The cluster is going away (`lab down`): stop the threads and the
    /// holder; no snapshot.
    pub fn stop(&self) {
        self.stop_threads();
        if let Some(h) = self.holder.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.stop();
        }
    }

    /// Graceful daemon stop (a restart follows): stop the threads, then
    /// write a final snapshot. The TUN stays (persistent) and so does the
    /// holder: from the moment the queues close, packets wait in its queue
    /// for the next daemon.
    pub fn shutdown(&self) {
        self.stop_threads();
        self.save();
    }
}

/// What a translated packet becomes on the way out.
enum Out {
    /// The packet itself, rewritten in place (or unchanged).
    Same,
    /// A generated reply, in the worker's output buffer.
    Reply(usize),
    Nothing,
}

/// EBADFD/ENODEV/EFAULT/EBADF: the queue was detached or the device
/// deleted; this descriptor will not recover.
fn dead_errno(e: Option<i32>) -> bool {
    matches!(
        e,
        Some(libc::EBADFD | libc::ENODEV | libc::EFAULT | libc::EBADF)
    )
}

/// A queue's batch accounting: packets per wake-up (reads until the queue
/// was empty, cut at [`BATCH_MAX`]) and the time they took.
struct Batch<'a> {
    stats: &'a QueueStats,
    n: u64,
    start: Instant,
    /// Count packets as they are added, not when the batch ends (a
    /// blocking queue ends a batch only when the next packet comes).
    live: bool,
}

impl<'a> Batch<'a> {
    fn new(stats: &'a QueueStats) -> Batch<'a> {
        Batch {
            stats,
            n: 0,
            start: Instant::now(),
            live: false,
        }
    }

    fn add(&mut self, k: u64) {
        if self.n >= BATCH_MAX {
            self.end();
        }
        if self.n == 0 {
            self.start = Instant::now();
        }
        self.count(k);
    }

    /// [`Batch::add`] with the time already read.
    fn add_at(&mut self, k: u64, at: Instant) {
        if self.n >= BATCH_MAX {
            self.end_at(at);
        }
        if self.n == 0 {
            self.start = at;
        }
        self.count(k);
    }

    fn count(&mut self, k: u64) {
        self.n += k;
        if self.live {
            self.stats.packets.fetch_add(k, Ordering::Relaxed);
        }
    }

    fn end(&mut self) {
        if self.n > 0 {
            self.end_at(Instant::now());
        }
    }

    fn end_at(&mut self, at: Instant) {
        if self.n == 0 {
            return;
        }
        if !self.live {
            self.stats.packets.fetch_add(self.n, Ordering::Relaxed);
        }
        self.stats.batch_size.observe(self.n as f64);
        self.stats
            .batch_seconds
            .observe(at.saturating_duration_since(self.start).as_secs_f64());
        self.n = 0;
    }
}

/// Merge runs of consecutive queued writes that are UDP datagrams of one
/// flow into one GSO super-packet each (in the first one's slot).
fn coalesce(r: &mut queueio::Rounds) {
    let writes = std::mem::take(r.writes());
    if writes.len() < 2 {
        *r.writes() = writes;
        return;
    }
    let mut out = Vec::with_capacity(writes.len());
    let mut head: Option<(usize, dp::gro::Train)> = None;
    for &(slot, len) in &writes {
        if let Some((h, t)) = head.as_mut()
            && *h < slot
        {
            let (hb, nb) = r.two_slots(*h, slot);
            if dp::gro::append(t, hb, &nb[..len]) {
                continue;
            }
        }
        if let Some((h, t)) = head.take() {
            out.push((h, dp::gro::finish(&t, r.slot(h))));
        }
        match dp::gro::start(&r.slot(slot)[..len]) {
            Some(t) => head = Some((slot, t)),
            None => out.push((slot, len)),
        }
    }
    if let Some((h, t)) = head.take() {
        out.push((h, dp::gro::finish(&t, r.slot(h))));
    }
    *r.writes() = out;
}

/// The queues a starting daemon reads, and who keeps the TUN attached after it.
struct Handover {
    queues: Vec<Queue>,
    holder: Option<Holder>,
    /// The queues came from a running holder (packets may wait in them).
    adopted: bool,
}

/// Take over from the previous daemon: if a holder keeps the queues of
/// `svc0` attached, read copies of its descriptors (what queued in the gap
/// is read first, each flow on the queue it had; the queue count stays the
/// one the cluster started with); otherwise create or re-attach the device
/// with `queues` queues and start a holder on them. Failing to start a
/// holder is logged, not fatal: the data plane works, but packets are
/// dropped while no daemon runs.
fn handover(node: &str, queues: usize, hold: &HoldConfig) -> Result<Handover, StartError> {
    match tunhold::adopt(hold, TUN_NAME) {
        Ok(Some((holder, all))) => {
            tracing::info!(
                holder = holder.pid(),
                queues = all.len(),
                "took over the {TUN_NAME} queues from the TUN holder"
            );
            return Ok(Handover {
                queues: all,
                holder: Some(holder),
                adopted: true,
            });
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "opening {TUN_NAME} afresh"),
    }
    let all = sys::tun::open(node, TUN_NAME, queues).map_err(|source| StartError::Tun {
        node: node.to_string(),
        source,
    })?;
    let holder = match tunhold::spawn(hold, &all) {
        Ok(h) => {
            tracing::info!(holder = h.pid(), "started the TUN holder");
            Some(h)
        }
        Err(e) => {
            tracing::error!(error = %e, "no TUN holder: packets will be dropped while no daemon runs");
            None
        }
    };
    Ok(Handover {
        queues: all,
        holder,
        adopted: false,
    })
}

/// The NAT core's table from the services view.
pub fn build_table(cfg: &ClusterConfig, view: &ServicesView) -> dp::ServiceTable {
    let mut t = dp::ServiceTable {
        service_cidr: (cfg.service_cidr.network(), cfg.service_cidr.prefix()),
        snat_addr: cfg.snat_ip(),
        vips: view.vips.iter().copied().collect::<HashSet<_>>(),
        ports: HashMap::new(),
    };
    for p in &view.ports {
        let proto = p.proto;
        t.ports.insert(
            (p.vip, proto, p.port),
            dp::ServicePort {
                id: p.id.clone(),
                service: p.service.clone(),
                endpoints: p
                    .endpoints
                    .iter()
                    .map(|e| dp::Backend {
                        ip: e.ip,
                        port: e.port,
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                    })
                    .collect(),
                affinity_timeout: p.affinity_seconds.map(|s| Duration::from_secs(s.into())),
                drop_without_endpoints: p.local_only,
            },
        );
    }
    t
}
