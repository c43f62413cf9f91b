//! StatefulSets on real clusters (root): ordered start, per-pod DNS through
//! the headless Service, a deleted pod coming back under its own name (and
//! hostname, address and claim directory), scale down from the highest
//! ordinal, rolling update in reverse ordinal order — checked with `lab`,
//! `dig` from a pod, and the real `kubectl` (scale, rollout status, watch).

mod common;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NS: &str = "data";

fn manifest(replicas: u32, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  clusterIP: None\n  selector: {{app: db}}\n  ports: [{{name: http, port: 8080}}]\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  serviceName: db\n  replicas: {replicas}\n  podManagementPolicy: {policy}\n  selector: {{matchLabels: {{app: db}}}}\n  template:\n    metadata: {{labels: {{app: db}}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080]\n        ports: [{{name: http, containerPort: 8080}}]\n        readinessProbe: {{httpGet: {{path: /readyz, port: http}}, periodSeconds: 1}}\n        volumeMounts: [{{name: data, mountPath: /data}}]\n  volumeClaimTemplates:\n  - metadata: {{name: data}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: client, namespace: {NS}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n"
    )
}

/// (name, uid, ip, ready, terminating) of the set's pods, by name.
type PodRow = (String, String, String, bool, bool);

fn set_pods(c: &Cluster) -> Vec<PodRow> {
    let mut v: Vec<PodRow> = c
        .items(&["pods", "-n", NS, "-l", "app=db"])
        .iter()
        .map(|p| {
            let s = |ptr: &str| {
                p.pointer(ptr)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let ready = p
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            (
                s("/metadata/name"),
                s("/metadata/uid"),
                s("/status/podIP"),
                ready,
                p.pointer("/metadata/deletionTimestamp").is_some(),
            )
        })
        .collect();
    v.sort();
    v
}

fn pod<'a>(pods: &'a [PodRow], name: &str) -> Option<&'a PodRow> {
    pods.iter().find(|p| p.0 == name)
}

/// `lab exec -n NS POD -- argv…` → (exit code, stdout + stderr).
fn exec_ns(c: &Cluster, pod: &str, argv: &[&str]) -> (i32, String) {
    let mut a = vec!["exec", "-n", NS, pod, "--"];
    a.extend_from_slice(argv);
    let out = c.run(&a);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn in_pod(c: &Cluster, pod: &str, argv: &[&str]) -> String {
    let (code, out) = exec_ns(c, pod, argv);
    assert_eq!(code, 0, "exec {pod} {argv:?}: {out}");
    out
}

fn dig_a(c: &Cluster, name: &str) -> Vec<String> {
    let out = in_pod(
        c,
        "client",
        &["dig", "+short", "+tries=1", "+timeout=2", name],
    );
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

fn kubectl_cmd(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .args(["--request-timeout=30s", "-n", NS])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn kok(c: &Cluster, args: &[&str]) -> String {
    let out: Output = kubectl_cmd(c, args)
        .output()
        .expect("kubectl must be installed (scripts/provision installs kubernetes-client)");
    assert!(
        out.status.success(),
        "kubectl {} failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn ordered_start_per_pod_dns_and_stable_identity() {
    require_root!();
    let c = Cluster::up("sts", &["--empty"]);
    c.apply(&manifest(3, "OrderedReady"));

    // OrderedReady: the pods present are always db-0..db-k, and every one
    // but the newest is Running and Ready before the next exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_counts = Vec::new();
    loop {
        let pods = set_pods(&c);
        let names: Vec<&str> = pods.iter().map(|p| p.0.as_str()).collect();
        let want: Vec<String> = (0..names.len()).map(|i| format!("db-{i}")).collect();
        assert_eq!(names, want, "pods are a prefix of the ordinals");
        for p in pods.iter().take(pods.len().saturating_sub(1)) {
            assert!(p.3, "{} is Ready before the next pod exists: {pods:?}", p.0);
        }
        if seen_counts.last() != Some(&pods.len()) {
            seen_counts.push(pods.len());
        }
        if pods.len() == 3 && pods.iter().all(|p| p.3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {pods:?}\n{}",
            c.daemon_log()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(seen_counts.len() >= 2, "saw the set grow: {seen_counts:?}");
    c.wait_ready(&["-n", NS, "pod/client"], "30s");

    let sts = c.json(&["sts", "-n", NS, "db"]);
    let st = &sts["status"];
    assert_eq!(st["replicas"], 3, "{st}");
    assert_eq!(st["readyReplicas"], 3, "{st}");
    assert_eq!(st["updatedReplicas"], 3, "{st}");
    assert_eq!(st["currentRevision"], st["updateRevision"], "{st}");
    let table = c.ok(&["get", "sts", "-n", NS]);
    assert!(
        table.starts_with("NAME   READY   AGE\ndb     3/3"),
        "{table}"
    );

    // Identity: labels, hostname, /etc/hosts as the kubelet writes it.
    let p0 = c.json(&["pod", "-n", NS, "db-0"]);
    let labels = &p0["metadata"]["labels"];
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "db-0");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "0");
    assert_eq!(labels["controller-revision-hash"], st["updateRevision"]);
    assert_eq!(p0["spec"]["hostname"], "db-0");
    assert_eq!(p0["spec"]["subdomain"], "db");
    let pods = set_pods(&c);
    let ip0 = pod(&pods, "db-0").unwrap().2.clone();
    assert_eq!(in_pod(&c, "db-0", &["hostname"]).trim(), "db-0");
    let hosts = in_pod(&c, "db-0", &["cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{ip0}\tdb-0.db.{NS}.svc.cluster.local\tdb-0\n")),
        "{hosts}"
    );

    // Per-pod DNS through the headless Service, and the Service name itself.
    let fqdn = format!("db-0.db.{NS}.svc.cluster.local");
    assert_eq!(dig_a(&c, &fqdn), std::slice::from_ref(&ip0));
    let mut all: Vec<String> = pods.iter().map(|p| p.2.clone()).collect();
    all.sort();
    assert_eq!(dig_a(&c, &format!("db.{NS}.svc.cluster.local")), all);
    assert_eq!(
        dig_a(&c, &format!("db-2.db.{NS}.svc.cluster.local")),
        [pod(&pods, "db-2").unwrap().2.clone()]
    );

    // The EndpointSlice names each endpoint by the pod's hostname, which is
    // what the DNS records come from (as CoreDNS reads them).
    let slices = c.items(&["endpointslices", "-n", NS]);
    let mut hosts: Vec<String> = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["hostname"].as_str().map(str::to_string))
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["db-0", "db-1", "db-2"], "{slices:?}");

    // The claim directory is the pod's /data; it outlives the pod.
    in_pod(&c, "db-0", &["sh", "-c", "echo kept > /data/mark"]);
    let claim = format!("/var/lib/lab/{}/claims/{NS}/data-db-0/mark", c.name);
    assert_eq!(std::fs::read_to_string(&claim).unwrap(), "kept\n");

    // A deleted db-0 comes back as db-0: same hostname, address, data.
    let uid0 = pod(&pods, "db-0").unwrap().1.clone();
    c.ok(&["delete", "pod", "-n", NS, "db-0"]);
    let back = c.eventually(Duration::from_secs(30), "db-0 back and Ready", || {
        let pods = set_pods(&c);
        pod(&pods, "db-0")
            .filter(|p| p.1 != uid0 && p.3 && !p.4)
            .cloned()
    });
    assert_eq!(back.2, ip0, "db-0 keeps its address");
    assert_eq!(in_pod(&c, "db-0", &["hostname"]).trim(), "db-0");
    assert_eq!(in_pod(&c, "db-0", &["cat", "/data/mark"]), "kept\n");
    // DNS follows the EndpointSlice through the DNS pods' watch: eventually
    // consistent, as with CoreDNS.
    c.eventually(Duration::from_secs(5), "db-0's A record back", || {
        (dig_a(&c, &fqdn) == [ip0.clone()]).then_some(())
    });
    assert_eq!(set_pods(&c).len(), 3);
}

/// Order in which pods of the set first show up as Terminating in a
/// `kubectl get pods -w --output-watch-events` transcript.
fn termination_order(text: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 4
            && f[1].starts_with("db-")
            && (f[3] == "Terminating" || f[0] == "DELETED")
            && order.last().map(String::as_str) != Some(f[1])
            && !order.iter().any(|o| o == f[1])
        {
            order.push(f[1].to_string());
        }
    }
    order
}

fn watch_while(c: &Cluster, f: impl FnOnce()) -> String {
    let mut watch = kubectl_cmd(
        c,
        &["get", "pods", "-w", "--output-watch-events", "--no-headers"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("kubectl");
    std::thread::sleep(Duration::from_millis(700));
    f();
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn scale_down_from_the_top_and_rolling_update_in_reverse_with_kubectl() {
    require_root!();
    let c = Cluster::up("stsup", &["--empty"]);
    c.apply(&manifest(3, "Parallel"));
    // Parallel: every pod is created in the same pass, ready or not.
    let first = c.eventually(Duration::from_secs(30), "the first pods", || {
        let pods = set_pods(&c);
        (!pods.is_empty()).then_some(pods)
    });
    assert_eq!(first.len(), 3, "{first:?}");
    c.eventually(Duration::from_secs(60), "3 ready pods", || {
        let pods = set_pods(&c);
        (pods.len() == 3 && pods.iter().all(|p| p.3)).then_some(())
    });
    let before = set_pods(&c);

    // Rolling update: highest ordinal first, each waits for the one above.
    let text = watch_while(&c, || {
        kok(
            &c,
            &[
                "patch",
                "sts",
                "db",
                "--type=json",
                "-p",
                r#"[{"op":"add","path":"/spec/template/metadata/labels/v","value":"2"}]"#,
            ],
        );
        let out = kok(&c, &["rollout", "status", "sts/db", "--timeout=60s"]);
        assert!(out.contains("roll out complete: 3 new pods"), "{out}");
    });
    assert_eq!(termination_order(&text), ["db-2", "db-1", "db-0"], "{text}");
    let sts = c.json(&["sts", "-n", NS, "db"]);
    assert_eq!(
        sts["status"]["currentRevision"],
        sts["status"]["updateRevision"]
    );
    assert_eq!(sts["status"]["updatedReplicas"], 3);
    for p in c.items(&["pods", "-n", NS, "-l", "app=db"]) {
        assert_eq!(p["metadata"]["labels"]["v"], "2", "{p}");
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"],
            sts["status"]["updateRevision"]
        );
    }
    // Each pod came back under its name with its address.
    let after = set_pods(&c);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, &b.2), (&a.0, &a.2), "same name and IP");
        assert_ne!(b.1, a.1, "a new pod");
    }

    // Scale down with kubectl: Parallel deletes the condemned pods in one
    // pass, highest ordinal first (one at a time under OrderedReady: the
    // test below).
    let text = watch_while(&c, || {
        let out = kok(&c, &["scale", "sts", "db", "--replicas=1"]);
        assert!(out.contains("statefulset.apps/db scaled"), "{out}");
        c.eventually(Duration::from_secs(30), "only db-0 left", || {
            let pods = set_pods(&c);
            (pods.len() == 1 && pods[0].0 == "db-0").then_some(())
        });
    });
    assert_eq!(termination_order(&text), ["db-2", "db-1"], "{text}");

    // Claims outlive scale down, as PVCs do.
    for n in 0..3 {
        let d = format!("/var/lib/lab/{}/claims/{NS}/data-db-{n}", c.name);
        assert!(std::path::Path::new(&d).is_dir(), "{d}");
    }
    // `lab scale sts/NAME` back up; describe shows the set.
    c.ok(&["scale", "-n", NS, "sts/db", "--replicas=2"]);
    c.eventually(Duration::from_secs(30), "2 ready pods", || {
        let pods = set_pods(&c);
        (pods.len() == 2 && pods.iter().all(|p| p.3)).then_some(())
    });
    let d = c.ok(&["describe", "sts", "-n", NS, "db"]);
    assert!(d.contains("Replicas:           2 desired | 2 total"), "{d}");
    assert!(d.contains("Volume Claims:\n  Name:          data"), "{d}");
    let out = kok(&c, &["get", "sts"]);
    assert!(out.contains("db     2/2"), "{out}");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn ordered_scale_down_is_one_at_a_time() {
    require_root!();
    let c = Cluster::up("stsdn", &["--empty"]);
    c.apply(&manifest(3, "OrderedReady"));
    c.eventually(Duration::from_secs(60), "3 ready pods", || {
        let pods = set_pods(&c);
        (pods.len() == 3 && pods.iter().all(|p| p.3)).then_some(())
    });
    c.ok(&["scale", "-n", NS, "sts/db", "--replicas=1"]);
    // db-1 may start terminating only once db-2 is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pods = set_pods(&c);
        if let Some(p1) = pod(&pods, "db-1").filter(|p| p.4) {
            assert!(
                pod(&pods, "db-2").is_none(),
                "db-1 {p1:?} terminating while db-2 exists: {pods:?}"
            );
        }
        if pod(&pods, "db-1").is_none() {
            assert!(
                pod(&pods, "db-2").is_none(),
                "db-1 went before db-2: {pods:?}"
            );
            assert!(pod(&pods, "db-0").is_some_and(|p| !p.4), "{pods:?}");
            break;
        }
        assert!(Instant::now() < deadline, "timed out: {pods:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn termination_order_reads_a_watch_transcript() {
    let text = "ADDED db-0 1/1 Running 0 5s\nMODIFIED db-2 1/1 Terminating 0 5s\nMODIFIED db-2 0/1 Terminating 0 5s\nDELETED db-2 0/1 Terminating 0 5s\nADDED db-2 0/1 Pending 0 0s\nMODIFIED db-1 1/1 Terminating 0 5s\n";
    assert_eq!(termination_order(text), ["db-2", "db-1"]);
}
