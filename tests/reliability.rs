//! Reliability under stress on real clusters (root): nothing lost in a
//! daemon restart gap, and a SYN flood from one pod does not stop another
//! pod's requests to the same Service.
//!
//! Traffic goes only from pods to the cluster's own VIPs; every loop is
//! bounded in count and time.

mod common;
use common::*;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ECHO: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: c
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080, --udp-port=8081]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: udp, port: 81, targetPort: 8081, protocol: UDP}
";

fn pause_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n"
    )
}

fn vip(c: &Cluster, svc: &str) -> Ipv4Addr {
    c.json(&["svc", svc])
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .expect("service has a ClusterIP")
}

fn pod_netns(c: &Cluster, pod: &str) -> String {
    c.json(&["pod", pod])
        .pointer("/metadata/annotations/lab.dev~1netns")
        .and_then(|v| v.as_str())
        .expect("pod has a netns")
        .to_string()
}

fn pod_ip(c: &Cluster, pod: &str) -> Ipv4Addr {
    c.json(&["pod", pod])
        .pointer("/status/podIP")
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .expect("pod has an IP")
}

/// Run `f` on a thread that entered the pod's network namespace: sockets it
/// creates belong to the pod (and stay there when used from other threads).
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// Wait until `pid` has exited (a zombie counts: its descriptors and locks
/// are released; its parent reaps it when it likes).
fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return,
            Ok(s)
                if s.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z')) =>
            {
                return;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    panic!("process {pid} did not exit within 10 s");
}

fn holder_pid(c: &Cluster) -> Option<u32> {
    std::fs::read_to_string(format!("/run/lab/{}/tun-holder.pid", c.name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

struct GapResult {
    sent: u64,
    lost: Vec<u64>,
    stall: Duration,
}

/// Paced UDP datagrams ("echo N", one every `every`) from the pod's socket
/// to the VIP's netexec echo, while `during` runs (started after 300 ms);
/// sending stops 1 s after it returned, echoes are awaited 2 s more.
fn udp_across(sock: UdpSocket, every: Duration, during: impl FnOnce()) -> GapResult {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rx = sock.try_clone().unwrap();
    let stop_rx = stop.clone();
    let receiver = std::thread::spawn(move || {
        let mut got: Vec<(u64, Instant)> = Vec::new();
        let mut buf = [0u8; 64];
        let mut quiet_since: Option<Instant> = None;
        loop {
            match rx.recv(&mut buf) {
                Ok(n) => {
                    if let Some(k) = std::str::from_utf8(&buf[..n])
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                    {
                        got.push((k, Instant::now()));
                    }
                }
                Err(_) => {
                    if stop_rx.load(Ordering::Relaxed) {
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_secs(2) {
                            break;
                        }
                    }
                }
            }
        }
        got
    });
    let stop_tx = stop.clone();
    let tx = sock;
    let sender = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut seq = 0u64;
        // Bounded: at most 60 s of datagrams whatever happens.
        while !stop_tx.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(60) {
            let _ = tx.send(format!("echo {seq}").as_bytes());
            seq += 1;
            let next = t0 + every * seq as u32;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        seq
    });
    std::thread::sleep(Duration::from_millis(300));
    during();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let got = receiver.join().unwrap();
    let seen: HashSet<u64> = got.iter().map(|(k, _)| *k).collect();
    let lost = (0..sent).filter(|k| !seen.contains(k)).collect();
    let stall = got
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or_default();
    GapResult { sent, lost, stall }
}

/// Issue 12, item 3: while the daemon restarts, packets for Services wait
/// in the TUN (the holder process keeps its queues attached) instead of
/// being dropped. A SIGKILL and a graceful (SIGTERM) restart, each followed
/// by `lab up`: not one datagram of a paced UDP stream through a VIP is
/// lost (SIGKILL: at most the ones the daemon held in hand). Before the
/// holder, every datagram in the gap was: 45 of 347 in this test.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn no_datagram_lost_across_daemon_restarts() {
    require_root!();
    let c = Cluster::up("gap", &["--empty"]);
    c.apply(&format!("{ECHO}---\n{}", pause_pod("client")));
    c.wait_ready(&["pods", "--all"], "60s");
    let ip = vip(&c, "echo");
    let ns = pod_netns(&c, "client");
    let holder = holder_pid(&c);
    for signal in [
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let sock = in_netns(&ns, move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.connect((ip, 81)).unwrap();
            s
        });
        let mut up_took = Duration::ZERO;
        let r = udp_across(sock, Duration::from_millis(5), || {
            let pid = c.daemon_pid().expect("daemon pid");
            let t0 = Instant::now();
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal).unwrap();
            wait_dead(pid);
            c.ok(&["up"]);
            up_took = t0.elapsed();
        });
        eprintln!(
            "{signal}: {} of {} datagrams lost, longest stall {:?}, signal to `lab up` returned {:?}",
            r.lost.len(),
            r.sent,
            r.stall,
            up_took
        );
        assert!(r.sent > 200, "only {} datagrams sent", r.sent);
        // SIGKILL may catch a queue thread holding a packet it has read but
        // not yet written back: at most one per queue (the data plane uses
        // at most 4). A graceful stop finishes what it read: nothing lost.
        let allowed = if signal == nix::sys::signal::Signal::SIGKILL {
            4
        } else {
            0
        };
        assert!(
            r.lost.len() <= allowed,
            "{signal} restart lost {} of {} datagrams (seq {:?}); stall {:?}\n{}",
            r.lost.len(),
            r.sent,
            &r.lost[..r.lost.len().min(20)],
            r.stall,
            c.daemon_log()
        );
        assert!(holder.is_some(), "the daemon started no TUN holder");
        assert_eq!(
            holder_pid(&c),
            holder,
            "the same holder carries on across restarts"
        );
        let status = c.ok(&["status"]);
        assert!(
            status.contains("queues taken over at start"),
            "the new daemon did not take the holder's queues:\n{status}"
        );
    }
    c.down();
    let holder = holder.unwrap_or_default();
    assert!(
        !std::path::Path::new(&format!("/proc/{holder}/cmdline")).exists()
            || std::fs::read(format!("/proc/{holder}/cmdline")).is_ok_and(|c| c.is_empty()),
        "lab down left the TUN holder {holder} running"
    );
    assert_gone(&c.name);
}

/// `lab down` of a cluster whose daemon was killed stops the holder too
/// (found by its pid file, checked by its command line).
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn down_after_a_crash_stops_the_tun_holder() {
    require_root!();
    let c = Cluster::up("hold", &["--empty"]);
    let holder = holder_pid(&c).expect("holder pid file");
    c.kill_daemon();
    assert!(
        std::path::Path::new(&format!("/proc/{holder}")).exists(),
        "the holder outlives the daemon"
    );
    let out = c.ok(&["down"]);
    assert!(out.contains("stopped the TUN holder"), "{out}");
    assert_gone(&c.name);
}

// ---------------------------------------------------------------------------
// SYN flood.

/// TCP SYNs from `src` (random source ports) to `dst:port` through a raw
/// socket of the calling thread's netns, at most `count` of them within
/// `limit`, paced to `rate` per second. Returns how many were sent.
fn syn_flood(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    port: u16,
    count: u64,
    rate: u64,
    limit: Duration,
) -> u64 {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, sendto, socket,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::Tcp,
    )
    .expect("raw socket");
    let to = SockaddrIn::from(std::net::SocketAddrV4::new(dst, 0));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut seg = [0u8; 20];
    while sent < count && t0.elapsed() < limit {
        // xorshift: a new source port and sequence number per SYN.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let sport = 1024 + (x % 64_000) as u16;
        seg.fill(0);
        seg[0..2].copy_from_slice(&sport.to_be_bytes());
        seg[2..4].copy_from_slice(&port.to_be_bytes());
        seg[4..8].copy_from_slice(&((x >> 20) as u32).to_be_bytes());
        seg[12] = 5 << 4;
        seg[13] = 0x02; // SYN
        seg[14..16].copy_from_slice(&64_240u16.to_be_bytes());
        let mut sum: u32 = 0;
        for w in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        sum += 6 + 20;
        for w in seg.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        seg[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        if sendto(fd.as_raw_fd(), &seg, &to, MsgFlags::empty()).is_ok() {
            sent += 1;
        }
        // Pace in bursts of 100.
        if sent.is_multiple_of(100) {
            let due = t0 + Duration::from_secs_f64(sent as f64 / rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
    sent
}

fn status_number(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(',').parse().ok())
}

/// A counter of the `Counters:` line of `lab status` (`name=value`, absent
/// when zero).
fn counter(status: &str, name: &str) -> u64 {
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Issue 12, item 5: one pod flooding a VIP with SYNs (bounded: 10 s of
/// them, 1000/s unless LAB_TEST_FLOOD_RATE says otherwise) does not stop another pod's requests to the same VIP:
/// ≥ 90% of a paced curl loop succeeds with p99 < 100 ms, a connection
/// established before the flood keeps answering, and the flow table stays
/// within its capacity.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn syn_flood_does_not_stop_other_clients() {
    require_root!();
    let c = Cluster::up("flood", &["--empty"]);
    c.apply(&format!(
        "{ECHO}---\n{}---\n{}",
        pause_pod("client"),
        pause_pod("attacker")
    ));
    c.wait_ready(&["pods", "--all"], "60s");
    let ip = vip(&c, "echo");
    let attacker_ip = pod_ip(&c, "attacker");
    let attacker_ns = pod_netns(&c, "attacker");
    let client_ns = pod_netns(&c, "client");

    // An established keep-alive connection from the client, opened before
    // the flood, asked every 50 ms during it.
    let mut conn = in_netns(&client_ns, move || {
        TcpStream::connect_timeout(&(ip, 80).into(), Duration::from_secs(3)).expect("connect")
    });
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let ask = |conn: &mut TcpStream| -> Result<Duration, String> {
        let t0 = Instant::now();
        conn.write_all(b"GET /hostname HTTP/1.1\r\nHost: echo\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        // One small response: headers and a body of a pod name.
        while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() < 40 {
            let n = conn.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            got.extend_from_slice(&buf[..n]);
            if got.starts_with(b"HTTP/1.1 200") && got.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        Ok(t0.elapsed())
    };
    ask(&mut conn).expect("the established connection answers before the flood");

    let flows_before = status_number(&c.ok(&["status"]), "Flows:").expect("Flows in status");
    // SYNs per second, for 10 s. Each SYN costs the data plane three TUN
    // round trips (SYN, the backend's SYN-ACK, the attacker kernel's RST),
    // so 1000/s keeps a debug build on a busy 2-core machine below its
    // packet rate: this tests the flow table (thousands of flows, their
    // expiry and snapshots beside established traffic), not CPU starvation
    // (see docs/services.md, "SYN flood").
    let rate: u64 = std::env::var("LAB_TEST_FLOOD_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = flooding.clone();
        let ns = attacker_ns.clone();
        std::thread::spawn(move || {
            let n = in_netns(&ns, move || {
                syn_flood(
                    attacker_ip,
                    ip,
                    80,
                    rate * 10,
                    rate,
                    Duration::from_secs(12),
                )
            });
            flooding.store(false, Ordering::Relaxed);
            n
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    // The paced curl loop (real curl in the client pod): 100 requests, one
    // every 50 ms, each with a new connection.
    let curl = std::thread::spawn({
        let c_name = c.name.clone();
        move || {
            let script = format!(
                "for i in $(seq 100); do curl -s -o /dev/null --max-time 1 -w '%{{http_code}} %{{time_total}}\\n' http://{ip}/hostname; sleep 0.05; done"
            );
            std::process::Command::new(lab_bin())
                .args([
                    "--cluster",
                    &c_name,
                    "exec",
                    "client",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ])
                .output()
                .expect("lab exec curl loop")
        }
    });
    let mut established = Vec::new();
    let mut established_errors = Vec::new();
    let mut max_flows = flows_before;
    let mut evicted = 0;
    let mut round = 0u32;
    while flooding.load(Ordering::Relaxed) {
        match ask(&mut conn) {
            Ok(d) => established.push(d),
            Err(e) => {
                // The stream is out of step after a failed request.
                established_errors.push(e);
                break;
            }
        }
        round += 1;
        if round.is_multiple_of(20) {
            let s = c.ok(&["status"]);
            max_flows = max_flows.max(status_number(&s, "Flows:").unwrap_or(0));
            evicted = evicted.max(counter(&s, "flows_evicted"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = flood.join().unwrap();
    let out = curl.join().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    let mut ok_times: Vec<f64> = Vec::new();
    let mut failed = 0;
    for l in lines.lines() {
        let mut it = l.split_whitespace();
        match (it.next(), it.next().and_then(|t| t.parse::<f64>().ok())) {
            (Some("200"), Some(t)) => ok_times.push(t),
            _ => failed += 1,
        }
    }
    ok_times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let total = ok_times.len() + failed;
    let status = c.ok(&["status"]);
    eprintln!(
        "flood: {sent} SYNs; curl: {} of {total} ok, p50 {:.1} ms, p99 {:.1} ms; established: {} answers, longest {:?}, {} errors; flows max {max_flows}, evicted {evicted}, created {}",
        ok_times.len(),
        percentile(&ok_times, 0.5) * 1000.0,
        percentile(&ok_times, 0.99) * 1000.0,
        established.len(),
        established.iter().max().copied().unwrap_or_default(),
        established_errors.len(),
        counter(&status, "flows_created"),
    );
    assert!(sent >= rate * 5, "the flood sent only {sent} SYNs");
    assert_eq!(
        total,
        100,
        "curl loop output:\n{lines}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ok_times.len() * 10 >= total * 9,
        "only {} of {total} requests succeeded during the flood:\n{lines}",
        ok_times.len()
    );
    assert!(
        percentile(&ok_times, 0.99) < 0.100,
        "p99 {:.1} ms during the flood:\n{lines}",
        percentile(&ok_times, 0.99) * 1000.0
    );
    assert!(
        established_errors.is_empty(),
        "the established connection failed during the flood: {established_errors:?}"
    );
    assert!(
        established.iter().all(|d| *d < Duration::from_millis(500)),
        "the established connection stalled: longest answer {:?}",
        established.iter().max()
    );
    assert!(
        max_flows <= 262_144,
        "the flow table grew past its capacity: {max_flows}"
    );
    let created = counter(&status, "flows_created");
    assert!(
        created >= sent / 2,
        "the flood did not reach the data plane: {created} flows created for {sent} SYNs"
    );
}
