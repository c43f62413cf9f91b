//! Watching the Service path on real clusters (root): `lab flows` (list,
//! `-w`, rejects), `/metrics` (on the socket API and through kubectl),
//! `lab top svc`, and a deleted Service's series disappearing.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const APP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.47\n        args: [netexec, --http-port=8080, --udp-port=8081]\n        ports: [{name: http, containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n  - {name: udp, port: 81, targetPort: udp, protocol: UDP}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: empty}\nspec:\n  selector: {app: nothing}\n  ports: [{port: 80}]\n";

fn cluster(tag: &str) -> Cluster {
    let c = Cluster::up(tag, &["--empty"]);
    c.apply(APP);
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    c.wait_ready(&["pod/client"], "30s");
    c
}

fn vip(c: &Cluster, svc: &str) -> String {
    c.json(&["svc", svc])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string()
}

fn curl(c: &Cluster, url: &str) -> i32 {
    c.exec("client", &["curl", "-sS", "--max-time", "3", url]).0
}

fn udp(c: &Cluster, target: &str, sport: u16) -> i32 {
    let sport = format!("--source-port={sport}");
    c.exec(
        "client",
        &[
            "/agnhost",
            "connect",
            target,
            "--protocol=udp",
            &sport,
            "--timeout=2s",
        ],
    )
    .0
}

fn flows(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["flows", "-o", "json"];
    a.extend_from_slice(args);
    serde_json::from_str(&c.ok(&a)).expect("lab flows -o json")
}

/// `lab flows -w -o json` in the background; its events on a channel.
struct Watcher {
    child: Child,
    rx: mpsc::Receiver<serde_json::Value>,
}

impl Watcher {
    fn start(c: &Cluster, args: &[&str]) -> Watcher {
        let mut child = Command::new(lab_bin())
            .args(["--cluster", &c.name, "flows", "-w", "-o", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("lab flows -w");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Watcher { child, rx }
    }

    /// The first event within `timeout` for which `f` holds.
    fn find(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(v) if f(&v) => return Some(v),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn flows_list_watch_and_rejects() {
    require_root!();
    let c = cluster("flows");
    let web = vip(&c, "web");
    let empty = vip(&c, "empty");
    let backend = c.pods("app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let backend_ip = c.json(&["pod", &backend])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let w = Watcher::start(&c, &[]);

    // A new UDP flow, seen by the watch (new source ports until the watch is
    // on: the first datagrams may go before it is).
    let target = format!("{web}:81");
    let mut sport = 40100;
    let new = c.eventually(Duration::from_secs(15), "a [NEW] UDP flow event", || {
        sport += 1;
        assert_eq!(udp(&c, &target, sport), 0, "UDP through the VIP failed");
        w.find(Duration::from_secs(1), |e| {
            e["event"] == "new" && e["flow"]["client"]["port"] == sport
        })
    });
    assert_eq!(new["flow"]["proto"], "UDP");
    assert_eq!(new["flow"]["client"]["pod"], "default/client");
    assert_eq!(new["flow"]["service"], "default/web");
    assert_eq!(new["flow"]["backend"]["pod"], format!("default/{backend}"));

    // The list shows it as the user thinks of it.
    let l = flows(&c, &["--service", "web"]);
    let f = l["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["client"]["port"] == sport)
        .unwrap_or_else(|| panic!("flow from port {sport} not listed: {l}"))
        .clone();
    assert_eq!(f["vip"]["ip"], web.as_str());
    assert_eq!(f["vip"]["port"], 81);
    assert_eq!(f["port_name"], "udp");
    assert_eq!(f["backend"]["ip"], backend_ip.as_str());
    assert_eq!(f["backend"]["port"], 8081);
    assert_eq!(f["state"], "REPLIED");
    assert!(f["to_backend"]["packets"].as_u64() >= Some(1), "{f}");
    assert!(f["to_client"]["bytes"].as_u64() > Some(28), "{f}");
    assert_eq!(f["pick"], "random");

    // TCP: curl through the VIP; the closed connection waits in TIME_WAIT.
    assert_eq!(curl(&c, &format!("http://{web}/hostname")), 0);
    let tcp = c.eventually(Duration::from_secs(5), "a TIME_WAIT TCP flow", || {
        flows(&c, &["--pod", "client"])["flows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["proto"] == "TCP" && f["state"] == "TIME_WAIT")
            .cloned()
    });
    assert_eq!(tcp["client"]["pod"], "default/client");
    assert_eq!(tcp["vip"]["ip"], web.as_str());
    assert_eq!(tcp["backend"]["pod"], format!("default/{backend}"));
    assert_eq!(tcp["backend"]["port"], 8080);
    assert!(tcp["to_client"]["packets"].as_u64() >= Some(3), "{tcp}");
    // Filters: the flow is in namespace default, not in kube-system.
    assert!(
        flows(&c, &["-n", "kube-system", "--service", "web"])["flows"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The table form names pods and the Service.
    let table = c.ok(&["flows", "--service", "web"]);
    assert!(
        table.contains("default/client (") && table.contains("TIME_WAIT"),
        "{table}"
    );

    // A Service without endpoints: refused at once, listed as a reject.
    assert_ne!(curl(&c, &format!("http://{empty}/")), 0);
    let rejects = flows(&c, &["--service", "empty"])["rejects"].clone();
    let r = &rejects[rejects.as_array().unwrap().len() - 1];
    assert_eq!(r["reason"], "no endpoints", "{rejects}");
    assert_eq!(r["client"]["pod"], "default/client");
    assert_eq!(r["vip"]["ip"], empty.as_str());
    assert!(
        w.find(Duration::from_secs(5), |e| e["event"] == "reject"
            && e["reject"]["service"] == "default/empty")
            .is_some(),
        "no reject event"
    );
    let table = c.ok(&["flows", "--service", "empty"]);
    assert!(table.contains("<rejected: no endpoints>"), "{table}");

    // The backend goes away: its UDP flow is flushed, an [END] event.
    c.ok(&["scale", "deployment/web", "--replicas", "0"]);
    let end = w
        .find(Duration::from_secs(20), |e| {
            e["event"] == "end" && e["flow"]["client"]["port"] == sport
        })
        .expect("no end event for the flushed UDP flow");
    assert_eq!(end["reason"], "flushed");
    assert_eq!(end["flow"]["proto"], "UDP");
    drop(w);
    c.down();
}

/// One `/metrics` scrape over the socket API, parsed.
fn scrape(c: &Cluster) -> prometheus_parse::Scrape {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--unix-socket",
            &format!("/run/lab/{}/api.sock", c.name),
            "http://lab/metrics",
        ])
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a Prometheus text parser reads it")
}

/// The value of `name{labels ⊇ want}`, summed over matching series.
fn value(s: &prometheus_parse::Scrape, name: &str, want: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && want.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

fn has_series(s: &prometheus_parse::Scrape, want: &[(&str, &str)]) -> bool {
    s.samples
        .iter()
        .any(|x| want.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn metrics_top_svc_and_deleted_services_vanish() {
    require_root!();
    let c = cluster("metric");
    let web = vip(&c, "web");
    let svc = [("namespace", "default"), ("service", "web")];
    let before = scrape(&c);
    let flows0 = value(&before, "lab_service_flows_total", &svc);
    let packets0 = value(&before, "lab_service_packets_total", &svc);
    for _ in 0..10 {
        assert_eq!(curl(&c, &format!("http://{web}/hostname")), 0);
    }
    let after = scrape(&c);
    assert_eq!(
        value(&after, "lab_service_flows_total", &svc) - flows0,
        10.0
    );
    assert!(
        value(&after, "lab_service_packets_total", &svc) - packets0 >= 50.0,
        "10 HTTP exchanges are at least 5 packets each"
    );
    assert!(value(&after, "lab_service_bytes_total", &svc) > 0.0);
    // Per endpoint: the one backend got every flow.
    let backend = c.pods("app=web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let pod = format!("default/{backend}");
    assert_eq!(
        value(
            &after,
            "lab_endpoint_flows_total",
            &[("service", "web"), ("port", "http"), ("pod", &pod)]
        ),
        value(&after, "lab_service_flows_total", &svc)
            - value(
                &after,
                "lab_endpoint_flows_total",
                &[("service", "web"), ("port", "udp")]
            )
    );
    // Rejects, drops by reason, queues, flow table, control plane.
    let empty = vip(&c, "empty");
    assert_ne!(curl(&c, &format!("http://{empty}/")), 0);
    let s = scrape(&c);
    assert_eq!(
        value(
            &s,
            "lab_service_rejects_total",
            &[("namespace", "default"), ("service", "empty")]
        ),
        1.0
    );
    assert!(has_series(&s, &[("reason", "echo_to_vip")]));
    assert!(value(&s, "lab_nat_queue_packets_total", &[]) > 0.0);
    assert!(value(&s, "lab_nat_batch_size_count", &[]) > 0.0);
    assert!(value(&s, "lab_nat_flows", &[]) >= 10.0, "TIME_WAIT flows");
    assert!(value(&s, "lab_network_programming_duration_seconds_count", &[]) >= 1.0);
    assert!(value(&s, "lab_pod_start_duration_seconds_count", &[]) >= 2.0);
    // DNS: a query from a pod shows up by type and rcode once the DNS pod
    // has reported (about a second).
    let dns = c.json(&["svc", "kube-dns", "-n", "kube-system"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();
    let at = format!("@{dns}");
    // Retried: right after `lab up` a DNS pod may not answer yet (dig
    // exits 9, no reply), as on a loaded CI machine.
    c.eventually(
        Duration::from_secs(15),
        "an answer from cluster DNS",
        || {
            let (code, _, _) = c.exec(
                "client",
                &[
                    "dig",
                    "+short",
                    "+tries=1",
                    "+time=2",
                    &at,
                    "web.default.svc.cluster.local",
                ],
            );
            (code == 0).then_some(())
        },
    );
    c.eventually(Duration::from_secs(10), "DNS counters in /metrics", || {
        let s = scrape(&c);
        (value(&s, "lab_dns_requests_total", &[("type", "A")]) >= 1.0
            && value(&s, "lab_dns_responses_total", &[("rcode", "NOERROR")]) >= 1.0)
            .then_some(())
    });
    // The same metrics through the Kubernetes API, as kubectl reads them.
    let out = Command::new("kubectl")
        .env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .args(["get", "--raw", "/metrics"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k = parse(&String::from_utf8_lossy(&out.stdout));
    assert!(value(&k, "lab_service_flows_total", &svc) >= 10.0);

    // lab top svc: rates while traffic runs.
    let traffic = {
        let name = c.name.clone();
        let url = format!("http://{web}/hostname");
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3);
            let mut n = 0;
            while Instant::now() < until && n < 200 {
                let _ = Command::new(lab_bin())
                    .args(["--cluster", &name, "exec", "client", "--"])
                    .args(["curl", "-sS", "--max-time", "3", &url])
                    .stdin(Stdio::null())
                    .output();
                n += 1;
            }
        })
    };
    let top = c.ok(&["top", "svc", "--interval", "1s", "--count", "2"]);
    traffic.join().unwrap();
    let tables: Vec<&str> = top.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{top}");
    let row = |t: &str| -> Vec<String> {
        t.lines()
            .find(|l| l.starts_with("web "))
            .unwrap_or_else(|| panic!("no web row: {top}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert!(tables[0].starts_with("NAME"), "{top}");
    let conns: f64 = tables
        .iter()
        .map(|t| row(t)[1].parse::<f64>().unwrap())
        .sum();
    assert!(conns > 0.0, "no connections per second: {top}");

    // Delete the Service: its series and counters are gone.
    c.ok(&["delete", "svc", "web"]);
    c.eventually(Duration::from_secs(10), "web's series gone", || {
        let s = scrape(&c);
        (!has_series(&s, &[("namespace", "default"), ("service", "web")])).then_some(())
    });
    let out = Command::new("curl")
        .args([
            "-sS",
            "--unix-socket",
            &format!("/run/lab/{}/api.sock", c.name),
            "http://lab/apis/lab.dev/v1/status",
        ])
        .output()
        .expect("curl");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status["service_counters"].get("default/web").is_none(),
        "{}",
        status["service_counters"]
    );
    assert!(has_series(
        &scrape(&c),
        &[("namespace", "default"), ("service", "empty")]
    ));
    c.down();
}
