//! The Services data path repairs itself (root): deleting the service-CIDR
//! route, any of the policy rules, table 100's route or the TUN itself in
//! the node namespace breaks Services only until the daemon notices (netlink
//! events) and puts it back — checked with real TCP and UDP traffic through
//! a VIP, before and after each break, and against the kernel's state.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080, --udp-port=8081]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: 8080}\n  - {name: udp, port: 81, targetPort: 8081, protocol: UDP}\n  - {name: closed, port: 82, targetPort: 9999, protocol: UDP}\n";

fn ip(args: &[&str]) -> (bool, String) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn ip_ok(args: &[&str]) -> String {
    let (ok, out) = ip(args);
    assert!(ok, "ip {args:?}: {out}");
    out
}

struct Probe {
    client_ns: String,
    vip: String,
}

impl Probe {
    /// One HTTP request through the VIP from the client pod's netns.
    fn tcp(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "curl", "-sS"])
            .args(["--connect-timeout", "0.3", "--max-time", "0.5"])
            .arg(format!("http://{}/hostname", self.vip))
            .output()
            .map(|o| o.status.success() && !o.stdout.is_empty())
            .unwrap_or(false)
    }

    /// One UDP exchange through the VIP (agnhost connect waits for netexec's echo).
    fn udp(&self) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client_ns,
                lab_bin(),
                "agnhost",
                "connect",
            ])
            .arg(format!("{}:81", self.vip))
            .args(["--protocol=udp", "--timeout=500ms"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// UDP to a port nothing listens on: the backend's ICMP port
    /// unreachable comes back through the `ipproto icmp` rule and the NAT
    /// (translated), so the client is refused instead of timing out. The
    /// backend's kernel rate-limits those errors per destination (a burst
    /// of 6, then one a second), so a few tries are allowed.
    fn udp_refused(&self) -> bool {
        (0..4).any(|_| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.client_ns,
                    lab_bin(),
                    "agnhost",
                    "connect",
                ])
                .arg(format!("{}:82", self.vip))
                .args(["--protocol=udp", "--timeout=700ms"])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout).contains("REFUSED")
                        || String::from_utf8_lossy(&o.stderr).contains("REFUSED")
                })
                .unwrap_or(false)
        })
    }

    /// Time from `since` until TCP and then UDP succeed again (bounded).
    fn recovers(&self, since: Instant) -> Duration {
        let deadline = since + Duration::from_secs(10);
        while !self.tcp() {
            assert!(
                Instant::now() < deadline,
                "TCP through the VIP never came back"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        while !self.udp() {
            assert!(
                Instant::now() < deadline,
                "UDP through the VIP never came back"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        since.elapsed()
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn route_main(n: &str) -> String {
    ip_ok(&["-n", n, "route", "show", "table", "main"])
}

fn rules(n: &str) -> String {
    ip_ok(&["-n", n, "rule", "show"])
}

fn table100(n: &str) -> String {
    ip_ok(&["-n", n, "route", "show", "table", "100"])
}

/// The priority of the reply rule `ipproto P sport PORT`, if present.
fn reply_rule(n: &str, proto: &str, port: &str) -> Option<String> {
    rules(n)
        .lines()
        .find(|l| l.contains(&format!("ipproto {proto} sport {port} ")))
        .and_then(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
}

fn repairs(c: &Cluster) -> u64 {
    let s = c.ok(&["status"]);
    s.lines()
        .find_map(|l| l.strip_prefix("Repairs:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no Repairs line in lab status:\n{s}"))
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn deleted_routes_rules_and_tun_come_back_within_a_second() {
    require_root!();
    let c = Cluster::up("repair", &["--empty"]);
    c.apply(APP);
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    c.wait_ready(&["pod/client"], "30s");
    let node = format!("{}-node", c.name);
    let vip = c
        .json(&["svc", "web"])
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    let client_ns = c
        .json(&["pod", "client"])
        .pointer("/metadata/annotations/lab.dev~1netns")
        .and_then(|v| v.as_str())
        .expect("the client pod's netns annotation")
        .to_string();
    let svc_cidr = c
        .ok(&["status"])
        .lines()
        .find_map(|l| {
            l.strip_prefix("Service CIDR:")
                .map(|v| v.trim().to_string())
        })
        .unwrap();
    let p = Probe { client_ns, vip };
    assert!(p.tcp(), "TCP through the VIP before any break");
    assert!(p.udp(), "UDP through the VIP before any break");
    assert!(p.udp_refused(), "ICMP errors translated before any break");
    assert_eq!(repairs(&c), 0);

    assert!(route_main(&node).contains(&format!("{svc_cidr} dev svc0")));
    assert!(table100(&node).contains("default dev svc0"));
    let tcp_prio = reply_rule(&node, "tcp", "8080").expect("tcp reply rule");
    let udp_prio = reply_rule(&node, "udp", "8081").expect("udp reply rule");

    // (name, the break, the kernel state that must come back)
    type Check = Box<dyn Fn(&str) -> bool>;
    let cidr = svc_cidr.clone();
    let cases: Vec<(&str, Vec<String>, Check)> = vec![
        (
            "service-CIDR route",
            vec![
                "route".into(),
                "del".into(),
                svc_cidr.clone(),
                "dev".into(),
                "svc0".into(),
            ],
            Box::new(move |n: &str| route_main(n).contains(&format!("{cidr} dev svc0"))),
        ),
        (
            "rule iif svc0 lookup main",
            vec!["rule".into(), "del".into(), "priority".into(), "100".into()],
            Box::new(move |n: &str| rules(n).contains("iif svc0 lookup main")),
        ),
        (
            "rule ipproto icmp lookup 100",
            vec!["rule".into(), "del".into(), "priority".into(), "101".into()],
            Box::new(move |n: &str| rules(n).contains("ipproto icmp lookup 100")),
        ),
        (
            "reply rule tcp sport 8080",
            vec![
                "rule".into(),
                "del".into(),
                "priority".into(),
                tcp_prio.clone(),
            ],
            Box::new(move |n: &str| reply_rule(n, "tcp", "8080").is_some()),
        ),
        (
            "reply rule udp sport 8081",
            vec![
                "rule".into(),
                "del".into(),
                "priority".into(),
                udp_prio.clone(),
            ],
            Box::new(move |n: &str| reply_rule(n, "udp", "8081").is_some()),
        ),
        (
            "table 100 flushed",
            vec!["route".into(), "flush".into(), "table".into(), "100".into()],
            Box::new(move |n: &str| table100(n).contains("default dev svc0")),
        ),
        (
            "TUN down",
            vec!["link".into(), "set".into(), "svc0".into(), "down".into()],
            Box::new(move |n: &str| {
                ip_ok(&["-n", n, "link", "show", "svc0"]).contains(",UP")
                    && route_main(n).contains("dev svc0")
            }),
        ),
        (
            "TUN deleted",
            vec!["link".into(), "del".into(), "svc0".into()],
            Box::new(move |n: &str| {
                ip(&["-n", n, "link", "show", "svc0"]).1.contains(",UP")
                    && route_main(n).contains("dev svc0")
                    && table100(n).contains("default dev svc0")
            }),
        ),
    ];
    let mut report = Vec::new();
    for (i, (name, brk, back)) in cases.iter().enumerate() {
        assert!(p.tcp() && p.udp(), "{name}: traffic before the break");
        let mut args = vec!["-n", node.as_str()];
        args.extend(brk.iter().map(String::as_str));
        let t0 = Instant::now();
        ip_ok(&args);
        let state = wait_for(name, || back(&node));
        let traffic = p.recovers(t0);
        assert!(p.udp_refused(), "{name}: ICMP errors are translated again");
        report.push(format!(
            "{name}: kernel state back after {state:?}, traffic after {traffic:?}"
        ));
        assert!(
            traffic < Duration::from_secs(1),
            "{name}: Services came back only after {traffic:?}\n{}",
            c.daemon_log()
        );
        // Every break was seen and repaired (not merely survived).
        let want = i as u64 + 1;
        wait_for("the repair counted", || repairs(&c) >= want);
    }
    eprintln!("{}", report.join("\n"));
    // The deletion of the TUN was logged once, not per retry, and nothing
    // about it repeats at the rate it is retried.
    let log = c.daemon_log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("svc0") || l.contains("Services") || l.contains("put back"))
        .collect();
    eprintln!("{}", lines.join("\n"));
    assert!(
        log.matches("the Services TUN is gone").count() <= 1,
        "{log}"
    );
    assert!(lines.len() < 40, "too much logged:\n{}", lines.join("\n"));
    // Through the API too, after all of it.
    let (code, out, err) = c.exec(
        "client",
        &["curl", "-sS", "--max-time", "3", "http://web/hostname"],
    );
    assert_eq!(code, 0, "{out}{err}");
}
