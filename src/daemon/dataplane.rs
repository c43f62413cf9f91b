//! The Services data plane's shell: the TUN `svc0` in the node netns, one
//! thread per queue feeding packets through the pure NAT core
//! ([`crate::dataplane::Nat`]), the policy rules kept in sync with the
//! Services, periodic expiry and flow-table snapshots (so a restarted daemon
//! keeps established connections).

use super::services::{Proto, ServicesView};
use crate::cluster::ClusterConfig;
use crate::dataplane::{self as dp, Nat, Verdict};
use crate::sys;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TUN_NAME: &str = "svc0";
/// Flow-table capacity (entries); a SYN flood evicts, it does not grow.
pub const FLOW_CAPACITY: usize = 262_144;

pub struct DataPlane {
    nat: Arc<Mutex<Nat>>,
    snapshot_path: PathBuf,
    epoch: Instant,
    last_view: Mutex<Option<ServicesView>>,
    stop: Arc<AtomicBool>,
    pub queues: usize,
}

fn lock(nat: &Mutex<Nat>) -> std::sync::MutexGuard<'_, Nat> {
    nat.lock().unwrap_or_else(|e| e.into_inner())
}

impl DataPlane {
    /// Create (or re-attach to) `svc0`, restore the flow table if a
    /// snapshot exists, and start the queue threads. (Its routes and rules
    /// are [`super::routing::ServiceRouting`]'s.)
    pub fn start(node: &str, snapshot_path: PathBuf) -> Result<Arc<DataPlane>, String> {
        let queues = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        let devs = sys::tun::open(node, TUN_NAME, queues)
            .map_err(|e| format!("creating TUN {TUN_NAME}: {e}"))?;
        let epoch = Instant::now();
        let mut nat = Nat::new(FLOW_CAPACITY);
        if let Ok(bytes) = std::fs::read(&snapshot_path) {
            match nat.restore(&bytes, Duration::ZERO) {
                Ok(n) => tracing::info!("restored {n} flows from {}", snapshot_path.display()),
                Err(e) => tracing::warn!("ignoring flow snapshot {}: {e}", snapshot_path.display()),
            }
        }
        let plane = Arc::new(DataPlane {
            nat: Arc::new(Mutex::new(nat)),
            snapshot_path,
            epoch,
            last_view: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            queues: devs.len(),
        });
        for (i, dev) in devs.into_iter().enumerate() {
            let p = plane.clone();
            std::thread::Builder::new()
                .name(format!("svc0-q{i}"))
                .spawn(move || p.queue_loop(dev))
                .map_err(|e| e.to_string())?;
        }
        let p = plane.clone();
        std::thread::Builder::new()
            .name("svc0-expire".into())
            .spawn(move || p.housekeeping())
            .map_err(|e| e.to_string())?;
        Ok(plane)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn queue_loop(&self, dev: tun_rs::SyncDevice) {
        // Room for a 64 KiB GSO super-packet plus its virtio-net header.
        let mut buf = vec![0u8; 65_536 + 64];
        let mut out = vec![0u8; 2048];
        while !self.stop.load(Ordering::Relaxed) {
            let n = match dev.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("reading {TUN_NAME}: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let verdict = lock(&self.nat).process(self.now(), &mut buf[..n], &mut out);
            let res = match verdict {
                Verdict::Forward => dev.send(&buf[..n]),
                Verdict::Reply(len) => dev.send(&out[..len.min(out.len())]),
                Verdict::Drop(_) => Ok(0),
            };
            if let Err(e) = res {
                tracing::debug!("writing {TUN_NAME}: {e}");
            }
        }
    }

    fn housekeeping(&self) {
        let mut last_flows = usize::MAX;
        let mut ticks = 0u32;
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(250));
            let now = self.now();
            lock(&self.nat).expire(now);
            ticks += 1;
            // Snapshot the flow table every second when it changed, so even a
            // SIGKILLed daemon's successor finds recent flows.
            if ticks.is_multiple_of(4) {
                let (flows, bytes) = {
                    let nat = lock(&self.nat);
                    (nat.flow_count(), nat.snapshot())
                };
                if flows != last_flows || flows > 0 {
                    last_flows = flows;
                    let _ = super::runtime::write_atomic(
                        &self.snapshot_path,
                        &bytes,
                        super::runtime::PRIVATE,
                    );
                }
            }
        }
    }

    /// Write the flow table now (graceful daemon stop).
    pub fn save(&self) {
        let bytes = lock(&self.nat).snapshot();
        let _ = super::runtime::write_atomic(&self.snapshot_path, &bytes, super::runtime::PRIVATE);
    }

    /// Install a new service table and sync the policy rules. Cheap when
    /// nothing changed.
    pub fn update(&self, cfg: &ClusterConfig, view: ServicesView) {
        {
            let mut last = self.last_view.lock().unwrap_or_else(|e| e.into_inner());
            if last.as_ref() == Some(&view) {
                return;
            }
            let table = build_table(cfg, &view);
            lock(&self.nat).set_table(Arc::new(table));
            *last = Some(view);
        }
    }

    /// Facts for `lab status` / `lab describe svc`.
    pub fn stats(&self) -> serde_json::Map<String, serde_json::Value> {
        let nat = lock(&self.nat);
        let mut m = serde_json::Map::new();
        m.insert(
            "TUN".into(),
            format!("{TUN_NAME} ({} queues, offload on)", self.queues).into(),
        );
        m.insert("Flows".into(), nat.flow_count().into());
        m.insert(
            "Counters".into(),
            serde_json::to_value(nat.counters()).unwrap_or_default(),
        );
        m
    }

    /// Per-service counters (`ns/name` → counter → value).
    pub fn service_counters(&self) -> HashMap<String, serde_json::Value> {
        lock(&self.nat)
            .service_counters()
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect()
    }

    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
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
        let proto = match p.proto {
            Proto::Tcp => dp::Proto::Tcp,
            Proto::Udp => dp::Proto::Udp,
        };
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
            },
        );
    }
    t
}
