//! Integration tests (root, real clusters) of EndpointSlices, Endpoints and
//! Service updates as Kubernetes makes them: a terminating pod of a
//! publishNotReadyAddresses Service stays in rotation and in headless DNS;
//! a Service switches ClusterIP → ExternalName → ClusterIP (dig shows the
//! CNAME, then an A for the new VIP, and curl goes through it); ports,
//! selector and affinity change in place with traffic following; the real
//! kubectl sees the controllers' slice names and labels and gets the API
//! server's refusal for a changed clusterIP.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.47";

fn client() -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: client}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: {AGNHOST}, args: [pause]}}\n"
    )
}

fn vip(c: &Cluster, svc: &str) -> String {
    c.json(&["svc", svc])
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn pod_ip(c: &Cluster, pod: &str) -> String {
    c.json(&["pod", pod])["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn curl(c: &Cluster, url: &str) -> (i32, String) {
    let (code, out, _) = c.exec("client", &["curl", "-sS", "--max-time", "3", url]);
    (code, out.trim().to_string())
}

/// The hostnames answering `url` over `n` requests (each must succeed).
fn hostnames(c: &Cluster, url: &str, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| {
            let (code, out) = curl(c, url);
            assert_eq!(code, 0, "curl {url}: {out}");
            out
        })
        .collect()
}

/// `dig` from the client: (status, answer records as "TYPE RDATA").
fn dig(c: &Cluster, name: &str) -> (String, Vec<String>) {
    let (_, out, err) = c.exec("client", &["dig", "+tries=1", "+timeout=2", name, "A"]);
    let status = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(',').next())
        .unwrap_or("NONE")
        .to_string();
    let mut answers: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    answers.sort();
    if status == "NONE" {
        eprintln!("dig {name}: {out}{err}");
    }
    (status, answers)
}

fn kubectl(c: &Cluster, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .arg("--request-timeout=30s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("kubectl must be installed (scripts/provision installs it)");
    if let Some(s) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    child.wait_with_output().expect("kubectl output")
}

fn kubectl_ok(c: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(c, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Conditions of the slice endpoint with address `ip` among `svc`'s slices.
fn conditions(c: &Cluster, svc: &str, ip: &str) -> Option<(bool, bool, bool)> {
    let sel = format!("kubernetes.io/service-name={svc}");
    c.items(&["endpointslices", "-l", &sel])
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["addresses"][0] == ip)
        .map(|e| {
            let b = |k: &str| e["conditions"][k].as_bool().unwrap_or(false);
            (b("ready"), b("serving"), b("terminating"))
        })
}

const PEERS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: peers}\nspec:\n  clusterIP: None\n  publishNotReadyAddresses: true\n  selector: {app: peer}\n  ports: [{name: http, port: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: peer-vip}\nspec:\n  publishNotReadyAddresses: true\n  selector: {app: peer}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: plain-vip}\nspec:\n  selector: {app: peer}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n";

fn peer(name: &str) -> String {
    // --delay-shutdown: keeps serving for 60 s after SIGTERM, so the pod
    // stays terminating (and answering) while the test looks.
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: peer}}}}\nspec:\n  terminationGracePeriodSeconds: 60\n  containers:\n  - {{name: c, image: {AGNHOST}, args: [netexec, --http-port=8080, --delay-shutdown=60], ports: [{{name: http, containerPort: 8080}}]}}\n"
    )
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn terminating_pod_of_publish_not_ready_service_stays_in_rotation_and_dns() {
    require_root!();
    let c = Cluster::up("epterm", &["--empty"]);
    c.apply(&format!(
        "{PEERS}---\n{}---\n{}---\n{}",
        peer("peer-a"),
        peer("peer-b"),
        client()
    ));
    c.wait_ready(&["pod/peer-a", "pod/peer-b", "pod/client"], "30s");
    let (a, b) = (pod_ip(&c, "peer-a"), pod_ip(&c, "peer-b"));
    let mut both = vec![format!("A {a}"), format!("A {b}")];
    both.sort();
    c.eventually(Duration::from_secs(10), "both peers in DNS", || {
        (dig(&c, "peers.default.svc.cluster.local").1 == both).then_some(())
    });

    let out = c.ok(&["delete", "pod", "peer-b", "--wait=false"]);
    assert!(out.contains("deleted"), "{out}");
    // The controller's view: still ready (publishNotReadyAddresses), serving
    // (Ready), terminating — and out of the ordinary Service's rotation.
    c.eventually(Duration::from_secs(5), "peer-b terminating", || {
        (conditions(&c, "peers", &b) == Some((true, true, true))).then_some(())
    });
    assert_eq!(conditions(&c, "plain-vip", &b), Some((false, true, true)));
    // Endpoints: peer-b stays in `addresses` only where publishNotReady is set.
    let addrs = |svc: &str| -> Vec<String> {
        c.json(&["endpoints", svc])["subsets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .flat_map(|s| s["addresses"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["ip"].as_str().map(String::from))
            .collect()
    };
    assert!(addrs("peer-vip").contains(&b), "{:?}", addrs("peer-vip"));
    assert!(!addrs("plain-vip").contains(&b), "{:?}", addrs("plain-vip"));

    // Headless DNS keeps answering with both, as CoreDNS does.
    for _ in 0..3 {
        assert_eq!(dig(&c, "peers.default.svc.cluster.local").1, both);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The VIP with publishNotReadyAddresses still sends new connections to
    // the terminating pod; the other one does not.
    let seen = hostnames(&c, &format!("http://{}/hostname", vip(&c, "peer-vip")), 30);
    assert_eq!(
        seen,
        ["peer-a".to_string(), "peer-b".to_string()].into(),
        "peer-vip"
    );
    let seen = hostnames(&c, &format!("http://{}/hostname", vip(&c, "plain-vip")), 15);
    assert_eq!(seen, ["peer-a".to_string()].into(), "plain-vip");
    c.ok(&[
        "delete",
        "pod",
        "peer-a",
        "peer-b",
        "--force",
        "--wait=false",
    ]);
    c.down();
}

const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080, --udp-port=8081]\n        ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n";

fn alias_cluster_ip() -> &'static str {
    "apiVersion: v1\nkind: Service\nmetadata: {name: alias, labels: {tier: front}}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}]\n"
}

fn alias_external() -> &'static str {
    "apiVersion: v1\nkind: Service\nmetadata: {name: alias, labels: {tier: front}}\nspec:\n  type: ExternalName\n  externalName: web.default.svc.cluster.local\n"
}

fn web_cluster(tag: &str) -> Cluster {
    let c = Cluster::up(tag, &["--empty"]);
    c.apply(&format!("{WEB}---\n{}", client()));
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    c.wait_ready(&["pod/client"], "30s");
    c
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn cluster_ip_to_external_name_and_back() {
    require_root!();
    let c = web_cluster("epext");
    let web = vip(&c, "web");
    c.apply(alias_cluster_ip());
    let vip1 = vip(&c, "alias");
    assert!(!vip1.is_empty());
    c.eventually(Duration::from_secs(5), "alias A", || {
        (dig(&c, "alias.default.svc.cluster.local")
            == ("NOERROR".into(), vec![format!("A {vip1}")]))
            .then_some(())
    });
    assert_eq!(curl(&c, &format!("http://{vip1}/hostname")).0, 0);

    // To ExternalName with the real kubectl: its patch carries the stored
    // clusterIP, which the API server drops (the address is released).
    let out = kubectl_ok(&c, &["apply", "-f", "-"], Some(alias_cluster_ip()));
    assert!(out.contains("service/alias"), "{out}");
    let out = kubectl_ok(&c, &["apply", "-f", "-"], Some(alias_external()));
    assert!(out.contains("service/alias configured"), "{out}");
    let spec = c.json(&["svc", "alias"])["spec"].clone();
    assert!(
        spec.get("clusterIP").is_none() && spec.get("clusterIPs").is_none(),
        "{spec}"
    );
    assert!(spec.get("ipFamilies").is_none(), "{spec}");
    c.eventually(Duration::from_secs(5), "alias CNAME", || {
        let (status, ans) = dig(&c, "alias.default.svc.cluster.local");
        (status == "NOERROR"
            && ans
                == [
                    format!("A {web}"),
                    "CNAME web.default.svc.cluster.local.".to_string(),
                ])
        .then_some(())
    });
    // The old VIP is gone from the data plane.
    let (code, _) = {
        let (code, out, _) = c.exec(
            "client",
            &[
                "curl",
                "-sS",
                "--max-time",
                "1",
                &format!("http://{vip1}/hostname"),
            ],
        );
        (code, out)
    };
    assert_ne!(code, 0, "old VIP {vip1} still answers");

    // Back to ClusterIP (lab apply): a new address, an A record again, and
    // traffic through the new VIP and by name.
    let out = c.apply(alias_cluster_ip());
    assert!(out.contains("service/alias configured"), "{out}");
    let vip2 = vip(&c, "alias");
    assert!(!vip2.is_empty() && vip2 != "None");
    c.eventually(Duration::from_secs(5), "alias A again", || {
        (dig(&c, "alias.default.svc.cluster.local")
            == ("NOERROR".into(), vec![format!("A {vip2}")]))
            .then_some(())
    });
    c.eventually(Duration::from_secs(5), "traffic via the new VIP", || {
        (curl(&c, &format!("http://{vip2}/hostname")).0 == 0).then_some(())
    });
    let (code, out) = curl(&c, "http://alias/hostname");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("web-"), "{out}");

    // What the API server forbids, kubectl shows with its message.
    let other = if vip2.ends_with(".200") {
        "10.96.0.201"
    } else {
        "10.96.0.200"
    };
    let changed = alias_cluster_ip().replace("ports:", &format!("clusterIP: {other}\n  ports:"));
    let out = kubectl(&c, &["apply", "-f", "-"], Some(&changed));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "spec.clusterIPs[0]: Invalid value: []string{{\"{other}\"}}: may not change once set"
        )),
        "{err}"
    );
    let bad = alias_external().replace("web.default.svc.cluster.local", "Not_A_Name");
    let err =
        String::from_utf8_lossy(&kubectl(&c, &["apply", "-f", "-"], Some(&bad)).stderr).to_string();
    assert!(
        err.contains(
            "spec.externalName: Invalid value: \"Not_A_Name\": a lowercase RFC 1123 subdomain"
        ),
        "{err}"
    );
    assert_eq!(vip(&c, "alias"), vip2, "refused changes change nothing");
    c.down();
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn ports_selector_and_affinity_updates_and_slices_as_kubectl_sees_them() {
    require_root!();
    let c = web_cluster("epport");
    let v = vip(&c, "web");
    let url = |port: u16| format!("http://{v}:{port}/hostname");
    assert_eq!(curl(&c, &url(80)).0, 0);
    // A known VIP on a port the Service lacks: rejected at once (exit 7).
    assert_eq!(curl(&c, &url(81)).0, 7);

    let slice_names = || -> Vec<String> {
        let mut v: Vec<String> = c
            .items(&["endpointslices", "-l", "kubernetes.io/service-name=web"])
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str().map(String::from))
            .collect();
        v.sort();
        v
    };
    let before = slice_names();
    assert_eq!(before.len(), 1, "{before:?}");

    // Add a port (UDP and a second TCP port): both carry traffic at once.
    let two = WEB.split("---\n").nth(1).unwrap().replace(
        "ports: [{name: http, port: 80, targetPort: http}]",
        "ports: [{name: http, port: 80, targetPort: http}, {name: alt, port: 81, targetPort: 8080}, {name: udp, port: 82, protocol: UDP, targetPort: udp}]",
    );
    assert!(c.apply(&two).contains("service/web configured"));
    c.eventually(Duration::from_secs(5), "port 81", || {
        (curl(&c, &url(81)).0 == 0).then_some(())
    });
    let (code, _, err) = c.exec(
        "client",
        &[
            "/agnhost",
            "connect",
            &format!("{v}:82"),
            "--protocol=udp",
            "--timeout=2s",
        ],
    );
    assert_eq!(code, 0, "UDP port 82: {err}");
    // The slice keeps its name; its ports follow the Service.
    assert_eq!(slice_names(), before);

    // The real kubectl sees the controller's names and labels.
    let yaml = kubectl_ok(
        &c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "yaml",
        ],
        None,
    );
    let name = &before[0];
    let suffix = name.strip_prefix("web-").expect("generateName web-");
    assert!(
        suffix.len() == 5
            && suffix
                .chars()
                .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
        "{name}"
    );
    for want in [
        format!("name: {name}"),
        "endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io".to_string(),
        "kubernetes.io/service-name: web".to_string(),
        "addressType: IPv4".to_string(),
        "kind: Service".to_string(),
        "serving: true".to_string(),
        "terminating: false".to_string(),
        "name: alt".to_string(),
        "port: 8081".to_string(),
    ] {
        assert!(yaml.contains(&want), "{want:?} not in:\n{yaml}");
    }
    // Endpoints: every port offered by both pods, in one subset.
    let eps = c.json(&["endpoints", "web"]);
    let subsets = eps["subsets"].as_array().cloned().unwrap_or_default();
    assert_eq!(subsets.len(), 1, "{eps}");
    assert_eq!(subsets[0]["addresses"].as_array().unwrap().len(), 2);
    assert_eq!(subsets[0]["ports"].as_array().unwrap().len(), 3);
    assert_eq!(
        eps["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );

    // Remove port 80: refused at once, 81 still served.
    let only81 = WEB.split("---\n").nth(1).unwrap().replace(
        "ports: [{name: http, port: 80, targetPort: http}]",
        "ports: [{name: alt, port: 81, targetPort: 8080}]",
    );
    c.apply(&only81);
    c.eventually(Duration::from_secs(5), "port 80 gone", || {
        (curl(&c, &url(80)).0 == 7).then_some(())
    });
    assert_eq!(curl(&c, &url(81)).0, 0);
    assert_eq!(vip(&c, "web"), v, "the ClusterIP never changes");

    // Selector to pods that do not exist: refused; back: served.
    c.apply(&only81.replace("selector: {app: web}", "selector: {app: nobody}"));
    c.eventually(Duration::from_secs(5), "no endpoints", || {
        (curl(&c, &url(81)).0 == 7).then_some(())
    });
    c.apply(&only81);
    c.eventually(Duration::from_secs(5), "endpoints back", || {
        (curl(&c, &url(81)).0 == 0).then_some(())
    });
    // ClientIP affinity switched on: one backend for this client.
    assert_eq!(hostnames(&c, &url(81), 20).len(), 2, "both backends before");
    c.apply(&only81.replace(
        "spec:\n  selector",
        "spec:\n  sessionAffinity: ClientIP\n  selector",
    ));
    c.eventually(Duration::from_secs(5), "affinity", || {
        (hostnames(&c, &url(81), 10).len() == 1).then_some(())
    });
    c.down();
}
