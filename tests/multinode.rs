//! Several nodes on one machine (root): real traffic across the node
//! network through each node's own Service proxy, `internalTrafficPolicy:
//! Local`, and a node cut off the network turning NotReady with its pods
//! replaced elsewhere.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

/// `/metrics` over the socket API.
fn metrics(c: &Cluster) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--unix-socket"])
        .arg(format!("/run/lab/{}/api.sock", c.name))
        .arg("http://lab/metrics")
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// One agnhost netexec backend pinned to each node, a Service over them, and
/// a client on node 1.
fn pinned(c: &Cluster, nodes: &[&str], svc_extra: &str) {
    let mut yaml = String::new();
    for (i, n) in nodes.iter().enumerate() {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}, labels: {{app: web}}}}\nspec:\n  nodeName: {n}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    args: [netexec, --http-port=8080]\n    ports: [{{containerPort: 8080}}]\n---\n"
        ));
    }
    yaml.push_str(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  nodeName: {}-node-1\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n{svc_extra}  ports:\n  - {{port: 80, targetPort: 8080}}\n",
        c.name
    ));
    c.apply(&yaml);
    c.wait_ready(&["pods", "--all"], "30s");
}

fn curl(c: &Cluster, pod: &str, url: &str) -> (i32, String) {
    let (code, out, _) = c.exec(pod, &["curl", "-sS", "--max-time", "2", url]);
    (code, out.trim().to_string())
}

fn pod_ip(c: &Cluster, pod: &str) -> String {
    c.json(&["pod", pod])["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn node_of(c: &Cluster, pod: &str) -> String {
    c.json(&["pod", pod])["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn a_client_reaches_backends_on_other_nodes_with_its_own_address() {
    require_root!();
    let c = Cluster::up("mnvip", &["--empty", "--nodes", "3"]);
    let nodes: Vec<String> = (1..=3).map(|i| format!("{}-node-{i}", c.name)).collect();
    // The node network and each node's own pod subnet and proxy.
    for (i, n) in nodes.iter().enumerate() {
        let node = c.json(&["node", n]);
        assert_eq!(
            node["spec"]["podCIDR"].as_str(),
            Some(format!("10.244.{i}.0/24").as_str())
        );
        assert_eq!(
            node["status"]["addresses"][0]["address"].as_str(),
            Some(format!("172.18.0.{}", i + 2).as_str()),
            "{node}"
        );
    }
    let wide = c.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.contains("PODCIDR") && wide.contains("172.18.0.3"),
        "{wide}"
    );
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    pinned(&c, &refs, "");
    let client_ip = pod_ip(&c, "client");
    assert!(client_ip.starts_with("10.244.0."), "{client_ip}");
    for (i, node) in nodes.iter().enumerate() {
        let ip = pod_ip(&c, &format!("web-{i}"));
        assert!(ip.starts_with(&format!("10.244.{i}.")), "web-{i}: {ip}");
        assert_eq!(&node_of(&c, &format!("web-{i}")), node);
        // status.hostIP: the node's InternalIP, as the kubelet reports it.
        let pod = c.json(&["pod", &format!("web-{i}")]);
        let host = format!("172.18.0.{}", i + 2);
        assert_eq!(pod["status"]["hostIP"].as_str(), Some(host.as_str()));
        assert_eq!(
            pod["status"]["hostIPs"][0]["ip"].as_str(),
            Some(host.as_str())
        );
    }
    // Pod to pod across nodes: routed host-gw style, the source unchanged.
    let (code, out) = curl(
        &c,
        "client",
        &format!("http://{}:8080/clientip", pod_ip(&c, "web-2")),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(&format!("{client_ip}:")), "{out}");
    // Through the VIP: every backend answers, each sees the client's own IP.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..40 {
        let (code, host) = curl(&c, "client", "http://web/hostname");
        assert_eq!(code, 0, "{host}\n{}", c.daemon_log());
        let (code, who) = curl(&c, "client", "http://web/clientip");
        assert_eq!(code, 0);
        assert!(
            who.starts_with(&format!("{client_ip}:")),
            "backend saw {who}"
        );
        *seen.entry(host).or_default() += 1;
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "not every node's backend answered: {seen:?}");
    // The flows live in the client's node's proxy only.
    let flows: serde_json::Value =
        serde_json::from_str(&c.ok(&["flows", "-o", "json"])).expect("json");
    let on: BTreeSet<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["service"].as_str() == Some("default/web"))
        .filter_map(|f| f["node"].as_str())
        .collect();
    assert_eq!(on, BTreeSet::from([nodes[0].as_str()]), "{flows}");
    let node2: serde_json::Value =
        serde_json::from_str(&c.ok(&["flows", "--node", &nodes[1], "-o", "json"])).expect("json");
    assert!(
        node2["flows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["service"].as_str() != Some("default/web")),
        "{node2}"
    );
    // `lab capture svc0` covers every node's proxy, each on its own pair of
    // interfaces: the client's SYN to the VIP is on node 1's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc0.pcapng");
    let mut cap = Command::new(lab_bin())
        .args(["--cluster", &c.name, "capture", "svc0", "-w"])
        .arg(&file)
        .args(["--duration", "3s", "-c", "40"])
        .spawn()
        .unwrap();
    let vip = c.json(&["svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let vip_octets: Vec<u8> = vip.split('.').map(|o| o.parse().unwrap()).collect();
    c.eventually(Duration::from_secs(5), "the capture's end", || {
        curl(&c, "client", &format!("http://{vip}/hostname"));
        cap.try_wait().unwrap().map(|_| ())
    });
    let bytes = std::fs::read(&file).unwrap();
    let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).expect("a pcapng file");
    let (mut names, mut syn_ifaces) = (Vec::new(), Vec::new());
    while let Some(b) = r.next_block() {
        match b.expect("a valid block") {
            pcap_file::pcapng::Block::InterfaceDescription(i) => {
                names.extend(i.options.iter().filter_map(|o| match o {
                    pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                }));
            }
            pcap_file::pcapng::Block::EnhancedPacket(p) => {
                let d = &p.data;
                if d.len() >= 40 && d[9] == 6 && d[33] & 0x12 == 0x02 && d[16..20] == vip_octets[..]
                {
                    syn_ifaces.push(p.interface_id);
                }
            }
            _ => {}
        }
    }
    let want: Vec<String> = nodes
        .iter()
        .flat_map(|n| [format!("{n}/svc0-in"), format!("{n}/svc0-out")])
        .collect();
    assert_eq!(names, want);
    assert!(syn_ifaces.contains(&0), "SYNs to the VIP on {syn_ifaces:?}");
    // Someone deletes node 1's route to node 3's pod subnet and its rule:
    // the repair loop puts both back, and node 3's pod answers again.
    let web2 = format!("http://{}:8080/hostname", pod_ip(&c, "web-2"));
    let ip_n1 = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["-n", &nodes[0]])
            .args(args)
            .output()
            .expect("ip");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    ip_n1(&["route", "del", "10.244.2.0/24"]);
    ip_n1(&["rule", "del", "to", "10.244.2.0/24", "priority", "90"]);
    c.eventually(Duration::from_secs(5), "route and rule back", || {
        let routes = ip_n1(&["route", "show", "10.244.2.0/24"]);
        let rules = ip_n1(&["rule", "show", "priority", "90"]);
        (routes.contains("via 172.18.0.4") && rules.contains("to 10.244.2.0/24")).then_some(())
    });
    let (code, out) = curl(&c, "client", &web2);
    assert_eq!((code, out.as_str()), (0, "web-2"));
    // Counted for node 1 (one repair or two: the deletions may wake it apart).
    let status = c.ok(&["status"]);
    let repairs = status
        .lines()
        .find_map(|l| l.strip_prefix("Repairs:"))
        .unwrap_or_default();
    assert!(repairs.contains(&format!("{}: ", nodes[0])), "{status}");
    c.down();
    assert_gone(&c.name);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn internal_traffic_policy_local_uses_only_the_clients_node() {
    require_root!();
    let c = Cluster::up("mnlocal", &["--empty", "--nodes", "3"]);
    let n = |i: u32| format!("{}-node-{i}", c.name);
    // Backends on nodes 1 and 2; the client is on node 1.
    pinned(&c, &[&n(1), &n(2)], "  internalTrafficPolicy: Local\n");
    for _ in 0..10 {
        let (code, host) = curl(&c, "client", "http://web/hostname");
        assert_eq!(code, 0, "{host}");
        assert_eq!(host, "web-0", "Local: only the client's node's backend");
    }
    // No backend on the client's node: dropped (a timeout, not a reject).
    c.ok(&["delete", "pod", "web-0"]);
    c.eventually(Duration::from_secs(10), "web-0 gone", || {
        (!c.run(&["get", "pod", "web-0"]).status.success()).then_some(())
    });
    let (code, _, err) = c.exec(
        "client",
        &["curl", "-sS", "--max-time", "1", "http://web/hostname"],
    );
    assert_eq!(code, 28, "want a timeout (dropped), got {code}: {err}");
    let m = metrics(&c);
    // Every node's queues in one batch histogram family, by node.
    for i in 1..=3 {
        let node = format!("node=\"{}\"", n(i));
        assert!(
            m.lines()
                .any(|l| l.starts_with("lab_nat_batch_size_count{") && l.contains(&node)),
            "no batch histogram for {node}:\n{}",
            m.lines()
                .filter(|l| l.contains("batch_size_count"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        m.lines().any(|l| l.starts_with("lab_nat_drops_total{")
            && l.contains("reason=\"no_local_endpoints\"")
            && l.contains(&n(1))
            && !l.ends_with(" 0")),
        "no counted drop:\n{}",
        m.lines()
            .filter(|l| l.contains("nat_drops"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Cluster policy again: the node-2 backend answers.
    let out = Command::new("kubectl")
        .env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .args(["patch", "svc", "web", "--type=merge", "-p"])
        .arg(r#"{"spec":{"internalTrafficPolicy":"Cluster"}}"#)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.eventually(Duration::from_secs(5), "the node-2 backend", || {
        let (code, host) = curl(&c, "client", "http://web/hostname");
        (code == 0 && host == "web-1").then_some(())
    });
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn a_node_cut_off_turns_not_ready_and_its_pods_are_replaced() {
    require_root!();
    let c = Cluster::up(
        "mndown",
        &[
            "--empty",
            "--nodes",
            "3",
            "--node-monitor-grace-period",
            "2s",
            "--pod-eviction-timeout",
            "3s",
        ],
    );
    let n3 = format!("{}-node-3", c.name);
    c.apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 3\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  nodeName: {}-node-1\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n",
        c.name
    ));
    c.wait_ready(&["pods", "--all"], "30s");
    let on_n3: Vec<String> = c
        .pods("app=web")
        .iter()
        .filter(|p| p["spec"]["nodeName"].as_str() == Some(n3.as_str()))
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(on_n3.len(), 1, "one replica per node");
    let victim = on_n3[0].clone();
    let out = c.ok(&["fault", &format!("node/{n3}"), "--down"]);
    assert!(out.contains("set"), "{out}");
    // NotReady after the grace period; its pod's endpoint is not ready.
    c.eventually(Duration::from_secs(10), "node NotReady", || {
        let s = c.ok(&["get", "nodes"]);
        s.lines()
            .any(|l| l.starts_with(&n3) && l.contains("NotReady"))
            .then_some(())
    });
    let victim_ip = c.json(&["pod", &victim])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let slices = c.items(&["endpointslices", "-l", "kubernetes.io/service-name=web"]);
    let ep = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["addresses"][0].as_str() == Some(victim_ip.as_str()))
        .expect("the cut-off pod's endpoint");
    assert_eq!(ep["conditions"]["ready"], false, "{ep}");
    // No new connection goes to it from now on.
    for _ in 0..15 {
        let (code, host) = curl(&c, "client", "http://web/hostname");
        assert_eq!(code, 0, "{host}");
        assert_ne!(
            host, victim,
            "a new connection went to the NotReady node's pod"
        );
    }
    // Evicted after the timeout: replaced on another node, the old one
    // Terminating until its node is back.
    c.eventually(Duration::from_secs(15), "a replacement elsewhere", || {
        let pods = c.pods("app=web");
        let ready_elsewhere = pods
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .filter(|p| p["spec"]["nodeName"].as_str() != Some(n3.as_str()))
            .filter(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count();
        (ready_elsewhere == 3).then_some(())
    });
    assert!(
        !c.json(&["pod", &victim])["metadata"]["deletionTimestamp"].is_null(),
        "the evicted pod is Terminating"
    );
    let events = c.ok(&["get", "events", "-A"]);
    assert!(
        events.contains("NodeNotReady") && events.contains("TaintManagerEviction"),
        "{events}"
    );
    // Healed: Ready again, and the evicted pod finally goes.
    c.ok(&["fault", &format!("node/{n3}"), "--up"]);
    c.eventually(Duration::from_secs(15), "node Ready, old pod gone", || {
        let ready = c
            .ok(&["get", "nodes"])
            .lines()
            .any(|l| l.starts_with(&n3) && l.split_whitespace().nth(1) == Some("Ready"));
        let gone = !c.run(&["get", "pod", &victim]).status.success();
        (ready && gone).then_some(())
    });
    c.down();
    assert_gone(&c.name);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn node_faults_are_refused_where_they_make_no_sense() {
    require_root!();
    let c = Cluster::up("mnbad", &["--empty"]);
    let one = c.fails(&["fault", &format!("node/{}-node", c.name), "--down"]);
    assert!(one.contains("no node network"), "{one}");
    let missing = c.fails(&["fault", "node/nope", "--down"]);
    assert!(missing.contains("not found"), "{missing}");
}
