//! Several nodes: Node objects, the scheduler's decisions (spreading,
//! nodeSelector, an impossible selector's message and event, cordoning) and
//! draining, through `lab` and through the real `kubectl` (`get nodes -o
//! wide`, `label node`, `cordon`, `drain`, `uncordon`), on `lab up --nodes 3`
//! clusters.
//!
//! These check scheduling decisions (spec.nodeName, conditions, events);
//! cross-node traffic is tested with the node network.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.47";

fn deployment(name: &str, replicas: u32, extra_spec: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n{extra_spec}      containers:\n      - {{name: c, image: {AGNHOST}, args: [pause]}}\n"
    )
}

fn bare_pod(name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n{extra_spec}  containers:\n  - {{name: c, image: {AGNHOST}, args: [pause]}}\n"
    )
}

fn node_of(p: &Value) -> Option<String> {
    p.pointer("/spec/nodeName")
        .and_then(|n| n.as_str())
        .map(String::from)
}

/// Pods of `app` (not terminating) per node; waits until all `n` are bound.
fn placement(c: &Cluster, app: &str, n: usize) -> BTreeMap<String, usize> {
    c.eventually(
        Duration::from_secs(30),
        &format!("{n} pods of {app} bound"),
        || {
            let pods = c.pods(&format!("app={app}"));
            let nodes: Vec<String> = pods.iter().filter_map(node_of).collect();
            (pods.len() == n && nodes.len() == n).then(|| {
                let mut m = BTreeMap::new();
                for node in nodes {
                    *m.entry(node).or_insert(0) += 1;
                }
                m
            })
        },
    )
}

fn pod_condition(p: &Value, type_: &str) -> Option<Value> {
    p.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn lab_schedules_cordons_and_drains_over_three_nodes() {
    require_root!();
    let c = Cluster::up("nodes", &["--empty", "--nodes", "3"]);
    let n = |i: u32| format!("{}-node-{i}", c.name);

    // Three Ready nodes; the first is the control plane.
    let out = c.ok(&["get", "nodes"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATUS   ROLES"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&n(1))
            && lines[1].contains(" Ready ")
            && lines[1].contains("control-plane"),
        "{out}"
    );
    assert!(lines[2].contains("<none>"), "{out}");
    let wide = c.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("INTERNAL-IP")
            && wide.contains("PODCIDR")
            && wide.contains("PODS"),
        "{wide}"
    );
    assert!(wide.contains("10.244.1.0/24"), "{wide}");

    // The two DNS replicas land on different nodes.
    let dns = c.eventually(Duration::from_secs(30), "coredns bound", || {
        let pods = c.items(&["pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"]);
        let nodes: Vec<String> = pods.iter().filter_map(node_of).collect();
        (nodes.len() == 2).then_some(nodes)
    });
    assert_ne!(dns[0], dns[1], "coredns replicas share a node");

    // A Deployment of 6 spreads 2/2/2, with a Scheduled event each.
    c.apply(&deployment("web", 6, ""));
    let spread = placement(&c, "web", 6);
    assert_eq!(
        spread.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{spread:?}"
    );
    let events = c.ok(&["get", "events"]);
    assert!(
        events.contains("Scheduled") && events.contains(&format!("to {}", n(1))),
        "{events}"
    );
    c.wait_ready(&["pod", "-l", "app=web"], "60s");

    // nodeSelector to a labelled node (labelled with lab apply).
    c.apply(&format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {}, labels: {{disk: ssd}}}}\n",
        n(3)
    ));
    c.apply(&bare_pod("fast", "  nodeSelector: {disk: ssd}\n"));
    let p = c.eventually(Duration::from_secs(20), "fast bound", || {
        c.json(&["pod", "fast"]).pipe_some(node_of)
    });
    assert_eq!(p, n(3));

    // An impossible selector stays Pending, worded as kube-scheduler words it.
    c.apply(&bare_pod("nowhere", "  nodeSelector: {disk: nvme}\n"));
    let want = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    let cond = c.eventually(Duration::from_secs(20), "PodScheduled=False", || {
        pod_condition(&c.json(&["pod", "nowhere"]), "PodScheduled")
    });
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "Unschedulable");
    assert_eq!(cond["message"], want);
    let pod = c.json(&["pod", "nowhere"]);
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(node_of(&pod).is_none());
    let describe = c.ok(&["describe", "pod", "nowhere"]);
    assert!(
        describe.contains("FailedScheduling")
            && describe.contains("didn't match Pod's node affinity/selector"),
        "{describe}"
    );
    // One event, not one per reconcile.
    std::thread::sleep(Duration::from_millis(500));
    let failed: Vec<Value> = c
        .items(&["events"])
        .into_iter()
        .filter(|e| e["reason"] == "FailedScheduling" && e["involvedObject"]["name"] == "nowhere")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["count"], 1, "{failed:?}");

    // A cordoned node gets no new pods.
    assert_eq!(
        c.ok(&["node", "cordon", &n(2)]).trim(),
        format!("node/{} cordoned", n(2))
    );
    let out = c.ok(&["get", "nodes"]);
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    let taints = c.json(&["node", &n(2)])["spec"]["taints"].clone();
    assert_eq!(
        taints[0]["key"], "node.kubernetes.io/unschedulable",
        "{taints}"
    );
    c.ok(&["scale", "deployment/web", "--replicas", "9"]);
    let spread = placement(&c, "web", 9);
    assert_eq!(
        spread.get(&n(2)),
        Some(&2),
        "new pods went to the cordoned node: {spread:?}"
    );

    // Drain node 1: its web pods (and the DNS pod, if there) move elsewhere.
    let out = c.ok(&[
        "node",
        "drain",
        &n(1),
        "--grace-period",
        "1",
        "--timeout",
        "60s",
    ]);
    assert!(out.contains(&format!("node/{} cordoned", n(1))), "{out}");
    assert!(out.contains("evicting pod default/web-"), "{out}");
    assert!(out.contains("evicted"), "{out}");
    assert!(out.contains(&format!("node/{} drained", n(1))), "{out}");
    let spread = placement(&c, "web", 9);
    assert!(!spread.contains_key(&n(1)), "{spread:?}");
    assert_eq!(spread.get(&n(2)), Some(&2), "{spread:?}");
    assert_eq!(spread.get(&n(3)), Some(&7), "{spread:?}");
    let on_1: Vec<Value> = c
        .items(&["pods", "-A"])
        .into_iter()
        .filter(|p| node_of(p).as_deref() == Some(n(1).as_str()))
        .collect();
    assert!(on_1.is_empty(), "{on_1:?}");
    let describe = c.ok(&["describe", "node", &n(3)]);
    assert!(
        describe.contains("Non-terminated Pods:")
            && describe.contains("fast")
            && describe.contains("web-"),
        "{describe}"
    );

    // A pod no controller owns is refused unless --force.
    let err = c.fails(&["node", "drain", &n(3), "--timeout", "30s"]);
    assert!(
        err.contains("cannot delete Pods that declare no controller")
            && err.contains("default/fast"),
        "{err}"
    );

    // Uncordoned, node 2 takes pods again; nodes cannot be deleted.
    c.ok(&["node", "uncordon", &n(2)]);
    let out = c.ok(&["get", "node", &n(2)]);
    assert!(!out.contains("SchedulingDisabled"), "{out}");
    let err = c.fails(&["delete", "node", &n(2)]);
    assert!(err.contains("cannot be deleted"), "{err}");
    c.down();
}

trait PipeSome {
    fn pipe_some<T>(self, f: impl FnOnce(&Value) -> Option<T>) -> Option<T>;
}

impl PipeSome for Value {
    fn pipe_some<T>(self, f: impl FnOnce(&Value) -> Option<T>) -> Option<T> {
        f(&self)
    }
}

fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .args(["--request-timeout=30s"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl must be installed (scripts/provision installs kubernetes-client)")
}

fn kok(c: &Cluster, args: &[&str]) -> String {
    let out = kubectl(c, args);
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        c.daemon_log()
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kubectl_gets_labels_cordons_and_drains_nodes() {
    require_root!();
    let c = Cluster::up("knodes", &["--empty", "--nodes", "3"]);
    let n = |i: u32| format!("{}-node-{i}", c.name);

    let out = kok(&c, &["get", "nodes", "-o", "wide"]);
    let header = out.lines().next().unwrap();
    for col in [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
        "PODCIDR",
        "PODS",
    ] {
        assert!(header.contains(col), "{col}: {out}");
    }
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains("10.244.2.0/24") && out.contains("control-plane"),
        "{out}"
    );
    let ip = kok(
        &c,
        &[
            "get",
            "node",
            &n(2),
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ],
    );
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");

    // kubectl label → nodeSelector follows it.
    kok(&c, &["label", "node", &n(3), "disk=ssd"]);
    let out = kubectl_apply(&c, &bare_pod("fast", "  nodeSelector: {disk: ssd}\n"));
    assert!(out.contains("pod/fast created"), "{out}");
    let node = c.eventually(Duration::from_secs(20), "fast bound", || {
        let s = kok(
            &c,
            &["get", "pod", "fast", "-o", "jsonpath={.spec.nodeName}"],
        );
        (!s.is_empty()).then_some(s)
    });
    assert_eq!(node, n(3));

    // kubectl cordon = a strategic-merge PATCH of spec.unschedulable.
    let out = kok(&c, &["cordon", &n(2)]);
    assert!(out.contains(&format!("node/{} cordoned", n(2))), "{out}");
    let out = kok(&c, &["get", "nodes"]);
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    kubectl_apply(&c, &deployment("web", 4, ""));
    let spread = placement(&c, "web", 4);
    assert!(!spread.contains_key(&n(2)), "{spread:?}");
    kok(
        &c,
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "app=web",
            "--timeout=60s",
        ],
    );

    // kubectl drain: evictions through pods/eviction; the Deployment's pods
    // come back on node 3 (node 2 is cordoned).
    let out = kubectl(
        &c,
        &[
            "drain",
            &n(1),
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--grace-period=1",
            "--timeout=90s",
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}\n{}", c.daemon_log());
    assert!(
        text.contains("evicting pod") && text.contains(&format!("node/{} drained", n(1))),
        "{text}"
    );
    let spread = placement(&c, "web", 4);
    assert_eq!(spread.get(&n(3)), Some(&4), "{spread:?}");
    let left = kok(
        &c,
        &[
            "get",
            "pods",
            "-A",
            "--field-selector",
            &format!("spec.nodeName={}", n(1)),
            "-o",
            "name",
        ],
    );
    assert!(left.trim().is_empty(), "{left}");

    kok(&c, &["uncordon", &n(1)]);
    kok(&c, &["uncordon", &n(2)]);
    let out = kok(&c, &["get", "nodes"]);
    assert!(!out.contains("SchedulingDisabled"), "{out}");
    // Nodes are not for users to delete.
    let out = kubectl(&c, &["delete", "node", &n(3)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "{err}"
    );
    c.down();
}

fn kubectl_apply(c: &Cluster, yaml: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .args(["--request-timeout=30s", "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}
