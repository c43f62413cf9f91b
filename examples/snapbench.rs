//! What a flow-table snapshot costs the packet path, at full table.
//!
//! Fills the sharded NAT to its capacity (262,144 flows), runs two "queue"
//! threads pushing packets of existing flows through it (as the TUN queue
//! threads do), and takes snapshots meanwhile. Prints, as JSON: the
//! snapshot size (bytes per flow), the longest and median time a shard was
//! locked by the snapshot (wall time, and the snapshot thread's CPU time:
//! the wall figure includes preemption on a shared machine), the whole snapshot's wall time, the per-packet latency of
//! the queue threads with and without snapshots running (max and p99.99),
//! and the restore time. Pure user-space: no TUN, no network.
//!
//! `cargo run --release --example snapbench`

use lab::dataplane::{Backend, Proto, ServicePort, ServiceTable, Sharded};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FLOWS: usize = 262_144;
const CLIENTS: usize = 16;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn table() -> Arc<ServiceTable> {
    let mut t = ServiceTable {
        service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
        snat_addr: Ipv4Addr::new(10, 111, 255, 254),
        ..Default::default()
    };
    t.vips.insert(VIP);
    t.ports.insert(
        (VIP, Proto::Tcp, 80),
        ServicePort {
            id: "default/web:http".into(),
            service: "default/web".into(),
            endpoints: (3..6)
                .map(|n| Backend {
                    ip: Ipv4Addr::new(10, 244, 0, n),
                    port: 8080,
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
            affinity_timeout: None,
            drop_without_endpoints: false,
        },
    );
    Arc::new(t)
}

/// vnet header (zero) + IPv4 + TCP, client `c` port `p` → VIP:80.
fn packet(buf: &mut [u8; 50], c: usize, p: u16, flags: u8) {
    buf.fill(0);
    let ip = &mut buf[10..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 244, 1 + (c / 200) as u8, (c % 200) as u8 + 2]);
    ip[16..20].copy_from_slice(&VIP.octets());
    ip[20..22].copy_from_slice(&p.to_be_bytes());
    ip[22..24].copy_from_slice(&80u16.to_be_bytes());
    ip[32] = 5 << 4;
    ip[33] = flags;
}

/// This thread's CPU time: lock holds without the time the thread sat
/// preempted (the machine is shared).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn client_port(i: usize) -> (usize, u16) {
    (i % CLIENTS, 1024 + (i / CLIENTS) as u16)
}

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(0)
}

/// Two threads processing packets of existing flows for `d`; returns
/// per-packet latencies in ns.
fn load(nat: &Arc<Sharded>, d: Duration, during: impl FnOnce()) -> Vec<u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2)
        .map(|k| {
            let nat = nat.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut w = nat.worker();
                let mut lat = Vec::with_capacity(4_000_000);
                let mut buf = [0u8; 50];
                let mut i = k * 7919;
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 104_729) % FLOWS;
                    let (c, p) = client_port(i);
                    packet(&mut buf, c, p, 0x10);
                    let t = Instant::now();
                    nat.process(&mut w, t0.elapsed() + Duration::from_secs(1), &mut buf);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    let start = Instant::now();
    during();
    if let Some(left) = d.checked_sub(start.elapsed()) {
        std::thread::sleep(left);
    }
    stop.store(true, Ordering::Relaxed);
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect()
}

fn main() {
    let nat = Arc::new(Sharded::new(FLOWS, lab::dataplane::shard::SHARDS, 42));
    nat.set_table(table());
    let mut w = nat.worker();
    let mut buf = [0u8; 50];
    let t = Instant::now();
    for i in 0..FLOWS {
        let (c, p) = client_port(i);
        packet(&mut buf, c, p, 0x02);
        nat.process(&mut w, Duration::from_secs(1), &mut buf);
    }
    let fill = t.elapsed();
    let flows = nat.flow_count();

    let mut base = load(&nat, Duration::from_secs(3), || {});
    let mut stats = Vec::new();
    let mut cpu_stats = Vec::new();
    let mut bytes = Vec::new();
    let mut during = load(&nat, Duration::from_secs(3), || {
        for _ in 0..5 {
            let (b, s) = nat.snapshot(Duration::from_secs(2));
            stats.push(s);
            bytes = b;
            let (_, s) = nat.snapshot_timed(Duration::from_secs(2), thread_cpu);
            cpu_stats.push(s);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let t = Instant::now();
    let other = Sharded::new(FLOWS, lab::dataplane::shard::SHARDS, 7);
    let restored = other.restore(&bytes, Duration::ZERO).unwrap_or(0);
    let restore = t.elapsed();
    let max_hold = stats.iter().map(|s| s.max_hold).max().unwrap_or_default();
    let median_hold = stats
        .iter()
        .map(|s| s.median_hold)
        .max()
        .unwrap_or_default();
    let cpu_max_hold = cpu_stats
        .iter()
        .map(|s| s.max_hold)
        .max()
        .unwrap_or_default();
    let total = stats.iter().map(|s| s.total).max().unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({
            "flows": flows,
            "fill_ms": fill.as_millis() as u64,
            "snapshots": stats.len(),
            "snapshot_bytes": bytes.len(),
            "bytes_per_flow": bytes.len() as f64 / flows.max(1) as f64,
            "max_shard_lock_us": max_hold.as_micros() as u64,
            "median_shard_lock_us": median_hold.as_micros() as u64,
            "max_shard_lock_cpu_us": cpu_max_hold.as_micros() as u64,
            "snapshot_wall_ms_max": total.as_millis() as u64,
            "packets_without_snapshots": base.len(),
            "packet_ns_p9999_without": pct(&mut base, 0.9999),
            "packet_ns_max_without": base.iter().max().copied().unwrap_or(0),
            "packets_during_snapshots": during.len(),
            "packet_ns_p9999_during": pct(&mut during, 0.9999),
            "packet_ns_max_during": during.iter().max().copied().unwrap_or(0),
            "restored": restored,
            "restore_ms": restore.as_millis() as u64,
        })
    );
}
