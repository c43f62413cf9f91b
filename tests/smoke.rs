//! The smoke scenario: the one test `scripts/vagrant-ci --smoke` runs inside
//! the Debian 12 VM (kernel 6.1, often under QEMU emulation), and that runs
//! natively with the rest of the suite. `lab up` with the sample app; the
//! client pod reaches every backend through `backend-service` by name
//! (cluster DNS → ClusterIP → NAT); `dig` resolves the Service to its
//! ClusterIP; a deleted backend pod is replaced and the Service sends traffic
//! to the new one; `lab down` leaves nothing behind.
//!
//! Waits are bounded: a base that is generous on a normal host, multiplied by
//! `LAB_TEST_TIME_FACTOR` (default 1; scripts/vagrant-ci sets 30 under QEMU
//! emulation, where namespace, veth and fork work runs 12–29× slower).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn time_factor() -> u32 {
    std::env::var("LAB_TEST_TIME_FACTOR")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|f| (1..=100).contains(f))
        .unwrap_or(1)
}

/// `base` scaled by the time factor.
fn bound(base: Duration) -> Duration {
    base * time_factor()
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

fn name(p: &serde_json::Value) -> String {
    p.pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

fn is_ready(p: &serde_json::Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// One `curl http://backend-service/hostname` from the client pod: the
/// answering backend's name, or None if the request failed.
fn hostname_via_service(c: &Cluster, max_time: Duration) -> Option<String> {
    let (code, out, err) = c.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            &max_time.as_secs().max(1).to_string(),
            "http://backend-service/hostname",
        ],
    );
    if code == 0 && !out.trim().is_empty() {
        Some(out.trim().to_string())
    } else {
        eprintln!("curl backend-service: exit {code}: {}", err.trim());
        None
    }
}

/// Ask through the Service until every name in `want` has answered, at most
/// `attempts` requests and `within`; returns the names seen.
fn reach_all(
    c: &Cluster,
    want: &BTreeSet<String>,
    attempts: usize,
    within: Duration,
) -> BTreeSet<String> {
    let deadline = Instant::now() + within;
    let mut seen = BTreeSet::new();
    for _ in 0..attempts {
        if want.is_subset(&seen) || Instant::now() > deadline {
            break;
        }
        if let Some(h) = hostname_via_service(c, bound(Duration::from_secs(5))) {
            seen.insert(h);
        }
    }
    seen
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn smoke_sample_app_service_dns_replacement_and_down() {
    require_root!();
    let factor = time_factor();
    eprintln!("time factor {factor}");
    let t0 = Instant::now();
    // The sample app (3 backends, a client pod) and cluster DNS, Ready.
    let c = Cluster::up(
        "smoke",
        &["--timeout", &secs(bound(Duration::from_secs(20)))],
    );
    eprintln!("lab up: {:?}", t0.elapsed());
    let backends: BTreeSet<String> = c.pods("app=backend").iter().map(name).collect();
    assert_eq!(backends.len(), 3, "3 backend pods: {backends:?}");

    // The client pod reaches all three backends through the Service's name.
    let t = Instant::now();
    let seen = reach_all(&c, &backends, 60, bound(Duration::from_secs(20)));
    assert_eq!(
        seen, backends,
        "curl http://backend-service/hostname from the client pod reached {seen:?}, not every backend"
    );
    eprintln!("all 3 backends through backend-service: {:?}", t.elapsed());

    // dig: the Service's name is its ClusterIP, from the cluster DNS.
    let svc = c.json(&["service", "backend-service"]);
    let cluster_ip = svc
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .expect("backend-service has a ClusterIP")
        .to_string();
    let dig_timeout = bound(Duration::from_secs(2)).as_secs().clamp(2, 60);
    let (code, out, err) = c.exec(
        "client",
        &[
            "dig",
            "+short",
            "+tries=3",
            &format!("+timeout={dig_timeout}"),
            "backend-service.default.svc.cluster.local",
            "A",
        ],
    );
    assert_eq!(code, 0, "dig failed: {out} {err}");
    assert_eq!(
        out.trim(),
        cluster_ip,
        "dig backend-service.default.svc.cluster.local A"
    );

    // Delete a backend: the Deployment replaces it (a new name), it becomes
    // Ready, and the Service sends traffic to it.
    let victim = backends.iter().next().unwrap().clone();
    let t = Instant::now();
    c.ok(&["delete", "pod", &victim]);
    let fresh = c.eventually(
        bound(Duration::from_secs(20)),
        "a Ready replacement backend",
        || {
            let pods = c.pods("app=backend");
            let names: BTreeSet<String> = pods.iter().map(name).collect();
            (pods.len() == 3 && pods.iter().all(is_ready) && !names.contains(&victim))
                .then_some(names)
        },
    );
    let new_ones: BTreeSet<String> = fresh.difference(&backends).cloned().collect();
    assert_eq!(new_ones.len(), 1, "one new backend: {fresh:?}");
    eprintln!(
        "backend {victim} replaced by {new_ones:?}: {:?}",
        t.elapsed()
    );
    let seen = reach_all(&c, &new_ones, 60, bound(Duration::from_secs(20)));
    assert!(
        new_ones.is_subset(&seen),
        "the replacement {new_ones:?} never answered through backend-service (saw {seen:?})"
    );
    assert!(
        !seen.contains(&victim),
        "the deleted pod {victim} still answered"
    );

    // What the daemon warned about on this kernel (the VM runs Debian 12's
    // 6.1): shown, not judged; the assertions above are the verdict.
    let log = c.daemon_log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    eprintln!(
        "daemon log: {} lines, {} warnings/errors{}",
        log.lines().count(),
        warnings.len(),
        warnings
            .iter()
            .take(20)
            .map(|l| format!("\n  {l}"))
            .collect::<String>()
    );

    // lab down leaves no namespace, directory or process.
    let cluster = c.name.clone();
    let t = Instant::now();
    c.down();
    assert_gone(&cluster);
    eprintln!(
        "lab down: {:?}; whole scenario {:?}",
        t.elapsed(),
        t0.elapsed()
    );
}
