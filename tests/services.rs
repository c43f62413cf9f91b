//! Integration tests of ClusterIP Services on real clusters (root): the
//! TUN and NAT data plane, load balancing, client IP preservation, hairpin,
//! rejects, UDP, affinity, named ports, restarts.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn vip(c: &Cluster, svc: &str) -> String {
    c.json(&["svc", svc])
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn curl(c: &Cluster, pod: &str, url: &str) -> (i32, String) {
    let (code, out, _) = c.exec(pod, &["curl", "-sS", "--max-time", "3", url]);
    (code, out.trim().to_string())
}

const BACKENDS: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080, --udp-port=8081]\n        ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n";

fn with_backends(tag: &str, svc: &str) -> Cluster {
    let c = Cluster::up(tag, &["--empty"]);
    c.apply(&format!("{BACKENDS}---\n{svc}"));
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    c.wait_ready(&["pod/client"], "30s");
    c
}

const WEB_SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n  - {name: udp, port: 81, targetPort: udp, protocol: UDP}\n";

fn hostnames(c: &Cluster, pod: &str, url: &str, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let (code, out) = curl(c, pod, url);
        assert_eq!(code, 0, "curl {url} failed");
        *seen.entry(out).or_default() += 1;
    }
    seen
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn load_balancing_client_ip_hairpin_and_failover() {
    require_root!();
    let c = with_backends("svc", WEB_SVC);
    let ip = vip(&c, "web");
    assert!(ip.starts_with("10.96."), "{ip}");
    let pods: Vec<String> = c
        .pods("app=web")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    // Spread: all three backends within 30 connections.
    let seen = hostnames(&c, "client", &format!("http://{ip}/hostname"), 30);
    assert_eq!(seen.len(), 3, "not all backends answered: {seen:?}");
    for name in seen.keys() {
        assert!(pods.contains(name), "{name} is not a backend");
    }
    // The backend sees the client pod's own IP.
    let client_ip = c.json(&["pod", "client"])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, out) = curl(&c, "client", &format!("http://{ip}/clientip"));
    assert!(
        out.starts_with(&format!("{client_ip}:")),
        "{out} vs {client_ip}"
    );
    // Hairpin: a backend reaches itself (and the others) through the VIP.
    let me = &pods[0];
    let mut hit_self = false;
    for _ in 0..30 {
        let (code, out) = curl(&c, me, &format!("http://{ip}/hostname"));
        assert_eq!(code, 0, "hairpin connection failed");
        hit_self |= &out == me;
        if hit_self {
            break;
        }
    }
    assert!(hit_self, "never reached itself through its VIP");
    // Delete a backend: new connections only go to live ones.
    let victim = pods[1].clone();
    c.ok(&["delete", "pod", &victim]);
    let seen = hostnames(&c, "client", &format!("http://{ip}/hostname"), 15);
    assert!(
        !seen.contains_key(&victim),
        "deleted pod still served: {seen:?}"
    );
    // Counters show up in describe.
    let d = c.ok(&["describe", "svc", "web"]);
    assert!(d.contains("Counters"), "{d}");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn no_endpoints_rejects_fast_and_unknown_port() {
    require_root!();
    let c = Cluster::up("rej", &["--empty"]);
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  selector: {app: nothing}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n");
    c.wait_ready(&["pod/client"], "30s");
    let ip = vip(&c, "empty");
    let t0 = Instant::now();
    let (code, _, err) = c.exec(
        "client",
        &["/agnhost", "connect", &format!("{ip}:80"), "--timeout=5s"],
    );
    let took = t0.elapsed();
    assert_eq!(code, 1);
    assert!(err.contains("REFUSED"), "{err}");
    assert!(took < Duration::from_secs(1), "reject took {took:?}");
    // A port the Service lacks is rejected too.
    let (_, _, err) = c.exec(
        "client",
        &["/agnhost", "connect", &format!("{ip}:81"), "--timeout=5s"],
    );
    assert!(err.contains("REFUSED"), "{err}");
    // An unallocated address in the service CIDR is dropped (timeout).
    let (_, _, err) = c.exec(
        "client",
        &["/agnhost", "connect", "10.96.200.200:80", "--timeout=1s"],
    );
    assert!(err.contains("TIMEOUT"), "{err}");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn udp_service_survives_backend_replacement() {
    require_root!();
    let c = with_backends("udp", WEB_SVC);
    let ip = vip(&c, "web");
    let target = format!("{ip}:81");
    let connect = |c: &Cluster| {
        let (code, _, err) = c.exec(
            "client",
            &[
                "/agnhost",
                "connect",
                &target,
                "--protocol=udp",
                "--source-port=40001",
                "--timeout=2s",
            ],
        );
        (code, err)
    };
    let (code, err) = connect(&c);
    assert_eq!(code, 0, "{err}");
    // Replace every backend; the fixed-source-port client keeps working.
    c.ok(&["scale", "deployment/web", "--replicas", "0"]);
    c.eventually(Duration::from_secs(20), "backends gone", || {
        c.pods("app=web").is_empty().then_some(())
    });
    c.ok(&["scale", "deployment/web", "--replicas", "1"]);
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    // The new endpoint reaches every node's data plane eventually (as
    // kube-proxy programs it); until then the Service has no endpoints and
    // rejects. A stale flow to the removed backend would not go away by
    // retrying: each attempt from the same source port refreshes it, and
    // its idle timeout is far longer than this wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, err) = connect(&c);
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "UDP flow to a removed backend was not flushed: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn client_ip_affinity_and_named_ports() {
    require_root!();
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: sticky}\nspec:\n  selector: {app: web}\n  sessionAffinity: ClientIP\n  ports: [{name: web, port: 8000, targetPort: http}]\n";
    let c = with_backends("aff", svc);
    let ip = vip(&c, "sticky");
    let seen = hostnames(&c, "client", &format!("http://{ip}:8000/hostname"), 10);
    assert_eq!(seen.len(), 1, "affinity did not stick: {seen:?}");
    let eps = c.ok(&["get", "endpoints", "sticky"]);
    assert!(eps.contains(":8080"), "named targetPort resolved: {eps}");
}

/// SIGTERM is the graceful restart: the daemon stops its queue threads,
/// writes the flow snapshot (binary, `flows.bin`), and the next daemon
/// restores it — the flows are there before any new packet arrives.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn flow_table_survives_a_graceful_restart() {
    require_root!();
    let c = with_backends("vfsn", WEB_SVC);
    let ip = vip(&c, "web");
    for _ in 0..5 {
        assert_eq!(curl(&c, "client", &format!("http://{ip}/hostname")).0, 0);
    }
    let flows = |c: &Cluster| -> usize {
        let s = c.ok(&["status"]);
        s.lines()
            .find_map(|l| l.trim().strip_prefix("Flows:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Flows line in {s}"))
    };
    let before = flows(&c);
    assert!(before >= 5, "{before} flows after 5 connections");
    let pid = c.daemon_pid().expect("daemon pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM the daemon");
    c.eventually(Duration::from_secs(10), "daemon gone", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    c.ok(&["up"]);
    let after = flows(&c);
    assert!(
        after >= 5,
        "{after} flows restored (had {before}); the snapshot was not written or not read"
    );
    assert_eq!(curl(&c, "client", &format!("http://{ip}/hostname")).0, 0);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn vip_and_connections_survive_daemon_restart() {
    require_root!();
    let c = with_backends("vrst", WEB_SVC);
    let ip = vip(&c, "web");
    c.kill_daemon();
    c.ok(&["up"]);
    let t0 = Instant::now();
    assert_eq!(vip(&c, "web"), ip, "the VIP changed across a restart");
    c.eventually(
        Duration::from_secs(2),
        "service traffic after restart",
        || (curl(&c, "client", &format!("http://{ip}/hostname")).0 == 0).then_some(()),
    );
    eprintln!("service answered {:?} after lab up", t0.elapsed());
    // The DNS pods outlived the daemon and follow the new one: a Service
    // created after the restart resolves by name.
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: again}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n");
    let again = vip(&c, "again");
    c.eventually(
        Duration::from_secs(5),
        "new service resolves after restart",
        || {
            let (_, out, _) = c.exec("client", &["getent", "hosts", "again"]);
            out.starts_with(&format!("{again} ")).then_some(())
        },
    );
    assert_eq!(curl(&c, "client", "http://web/hostname").0, 0);
    let status = c.ok(&["status"]);
    assert!(status.contains("Policy rules"), "{status}");
}

/// A burst of same-size datagrams on one flow (what the UDP coalescing
/// merges), answered by netexec's UDP echo; prints how many distinct
/// replies came back (a garbled one fails the parse).
const BURST: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.connect((host, port))
# Trains of 20 back to back, paced so the echo server's socket keeps up.
for i in range(n):
    s.send(b"echo %04d" % i)
    if i % 20 == 19:
        time.sleep(0.02)
got = set()
s.settimeout(3.0)
try:
    while len(got) < n:
        got.add(int(s.recv(100)))
except socket.timeout:
    pass
print(len(got))
"#;

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn io_uring_and_udp_coalescing_carry_tcp_and_udp() {
    require_root!();
    // The queue I/O options (off by default) are read from the daemon's
    // environment when it starts.
    let c = Cluster {
        name: Cluster::unique_name("uring"),
    };
    let out = std::process::Command::new(lab_bin())
        .args(["--cluster", &c.name, "up", "--empty"])
        .envs([("LAB_DP_URING", "1"), ("LAB_DP_GRO", "1")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("lab up");
    assert!(
        out.status.success(),
        "lab up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        c.daemon_log().contains("uring=true gro=true"),
        "{}",
        c.daemon_log()
    );
    c.apply(&format!("{BACKENDS}---\n{WEB_SVC}"));
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    c.wait_ready(&["pod/client"], "30s");
    let ip = vip(&c, "web");
    let seen = hostnames(&c, "client", &format!("http://{ip}/hostname"), 12);
    assert!(seen.len() >= 2, "balanced over the backends: {seen:?}");
    let n = 300;
    let (code, out, err) = c.exec(
        "client",
        &["python3", "-c", BURST, &ip, "81", &n.to_string()],
    );
    assert_eq!(code, 0, "{out}{err}");
    let got: usize = out.trim().parse().unwrap_or_else(|_| panic!("{out:?}"));
    // A datagram may be dropped under load, never garbled.
    assert!(got >= n * 95 / 100, "{got} of {n} echoed");
}
