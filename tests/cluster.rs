//! Integration tests on real clusters (root): pods as namespaces, the
//! sample app, Deployments, restarts, probes, re-adoption, cleanup.

mod common;
use common::*;
use std::time::{Duration, Instant};

fn pod_ip(p: &serde_json::Value) -> String {
    p.pointer("/status/podIP")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

fn name(p: &serde_json::Value) -> String {
    p.pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

fn restarts(p: &serde_json::Value) -> i64 {
    p.pointer("/status/containerStatuses/0/restartCount")
        .and_then(|v| v.as_i64())
        .unwrap_or(-1)
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn sample_app_up_traffic_replacement_and_down() {
    require_root!();
    let t0 = Instant::now();
    let c = Cluster::up("sample", &[]);
    eprintln!("lab up with the sample app took {:?}", t0.elapsed());
    let backends = c.pods("app=backend");
    assert_eq!(backends.len(), 3, "3 backend pods");
    let client = c.pods("app=client");
    assert_eq!(client.len(), 1);
    let client_ip = pod_ip(&client[0]);

    // `get pods -o wide` shows kubectl's columns plus NETNS.
    let wide = c.ok(&["get", "pods", "-o", "wide"]);
    let header = wide.lines().next().unwrap_or("");
    for col in [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NETNS",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        wide.contains(&format!("{}-default-client", c.name)),
        "{wide}"
    );

    // Pod-to-pod by IP, from the client pod, with curl (a host program).
    let target = &backends[0];
    let (code, out, err) = c.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}:8080/hostname", pod_ip(target)),
        ],
    );
    assert_eq!(code, 0, "curl failed: {err}");
    assert_eq!(out.trim(), name(target), "hostname is the pod name");
    let (_, out, _) = c.exec(
        "client",
        &[
            "curl",
            "-sS",
            "--max-time",
            "5",
            &format!("http://{}:8080/clientip", pod_ip(target)),
        ],
    );
    assert!(
        out.starts_with(&format!("{client_ip}:")),
        "clientip {out} vs {client_ip}"
    );

    // Built-in agnhost in exec, with its exit codes.
    let (code, _, _) = c.exec(
        "client",
        &[
            "/agnhost",
            "connect",
            &format!("{}:8080", pod_ip(target)),
            "--timeout=3s",
        ],
    );
    assert_eq!(code, 0);
    let (code, _, err) = c.exec(
        "client",
        &[
            "/agnhost",
            "connect",
            &format!("{}:9", pod_ip(target)),
            "--timeout=3s",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("REFUSED"), "{err}");

    // Exit codes pass through exec.
    let (code, _, _) = c.exec("client", &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    // Hostname and resolv.conf inside the pod.
    let (_, out, _) = c.exec("client", &["hostname"]);
    assert_eq!(out.trim(), "client");
    let (_, out, _) = c.exec("client", &["cat", "/etc/resolv.conf"]);
    assert!(
        out.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{out}"
    );
    assert!(
        out.contains("nameserver 10.96.0.10") && out.contains("ndots:5"),
        "{out}"
    );

    // Delete a backend pod: the Deployment replaces it with a new name and IP.
    let victim = name(&backends[0]);
    let victim_ip = pod_ip(&backends[0]);
    c.ok(&["delete", "pod", &victim]);
    let fresh = c.eventually(Duration::from_secs(20), "a replacement backend", || {
        let pods = c.pods("app=backend");
        let ready = pods
            .iter()
            .filter(|p| {
                p.pointer("/status/conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .count();
        (pods.len() == 3 && ready == 3 && pods.iter().all(|p| name(p) != victim)).then_some(pods)
    });
    let new_one = fresh
        .iter()
        .find(|p| !backends.iter().any(|b| name(b) == name(p)))
        .expect("a new pod");
    assert_ne!(
        pod_ip(new_one),
        victim_ip,
        "a new IP (freed IPs are not reused at once)"
    );
    assert!(name(new_one).starts_with("backend-"));
    assert!(
        !netns_with_prefix(&c.name)
            .iter()
            .any(|n| n.ends_with(&victim)),
        "victim netns removed"
    );

    // Scale and wait.
    c.ok(&["scale", "deployment/backend", "--replicas", "1"]);
    c.eventually(Duration::from_secs(30), "scale down to 1", || {
        (c.pods("app=backend").len() == 1).then_some(())
    });

    let name = c.name.clone();
    c.down();
    assert_gone(&name);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn bad_manifests_are_rejected_whole() {
    require_root!();
    let c = Cluster::up("bad", &["--empty"]);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("app.yaml");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\ndata: {a: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec:\n  containers:\n  - name: c\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    args: [pause]\n    imagePullPolicyy: Always\n",
    )
    .unwrap();
    let err = c.fails(&["apply", "-f", f.to_str().unwrap()]);
    assert!(err.contains("app.yaml"), "{err}");
    assert!(err.contains("document 2"), "{err}");
    assert!(err.contains("spec.containers[0].imagePullPolicyy"), "{err}");
    // Nothing from that apply was applied.
    let out = c.run(&["get", "configmap", "good"]);
    assert!(!out.status.success());
    // Unsupported image without a command, SCTP, unknown kind.
    let err = c.fails_stdin(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    assert!(err.contains("command") && err.contains("nginx"), "{err}");
    let err = c.fails_stdin("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: s}\n");
    assert!(err.contains("CronJob"), "{err}");
    // Warnings for accepted-but-meaningless fields.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  nodeSelector: {disk: ssd}\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause], imagePullPolicy: Always}\n"),
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Warning") && err.contains("imagePullPolicy"),
        "{err}"
    );
}

impl Cluster {
    fn fails_stdin(&self, yaml: &str) -> String {
        let out = self.run_stdin(&["apply", "-f", "-"], Some(yaml));
        assert!(
            !out.status.success(),
            "should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn restart_policy_backoff_logs_and_readiness() {
    require_root!();
    let c = Cluster::up("restart", &["--empty"]);
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crashy}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo run-$$; exit 3']\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: once}\nspec:\n  restartPolicy: Never\n  containers:\n  - {name: c, image: busybox, command: [sh, -c, 'echo bye; exit 2']}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: gated}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '1000']\n    readinessProbe:\n      exec: {command: [sh, -c, 'echo probed >> /tmp/lab-probes-gated; test -f /tmp/lab-ready-gated']}\n      periodSeconds: 1\n",
    );
    // Restarts with back-off, CrashLoopBackOff in STATUS.
    c.eventually(Duration::from_secs(30), "crashy restarted", || {
        let p = c.json(&["pod", "crashy"]);
        (restarts(&p) >= 1).then_some(())
    });
    c.eventually(Duration::from_secs(20), "CrashLoopBackOff", || {
        c.ok(&["get", "pod", "crashy"])
            .contains("CrashLoopBackOff")
            .then_some(())
    });
    let logs = c.ok(&["logs", "crashy"]);
    assert!(logs.contains("run-"), "{logs}");
    // The kubelet's events, under describe.
    let d = c.eventually(Duration::from_secs(20), "a BackOff event", || {
        let d = c.ok(&["describe", "pod", "crashy"]);
        d.contains("Back-off restarting failed container c in pod crashy_default(")
            .then_some(d)
    });
    let has = |words: &[&str]| d.lines().any(|l| words.iter().all(|w| l.contains(w)));
    assert!(
        has(&[
            "Normal",
            "Scheduled",
            "default-scheduler",
            "Successfully assigned default/crashy to "
        ]),
        "{d}"
    );
    assert!(
        has(&["Normal", "Started", "kubelet", "Started container c"]),
        "{d}"
    );
    assert!(has(&["Warning", "BackOff", "kubelet"]), "{d}");
    let prev = c.ok(&["logs", "crashy", "--previous"]);
    assert!(prev.contains("run-"), "{prev}");
    // restartPolicy Never: Failed, Error.
    c.eventually(Duration::from_secs(20), "once failed", || {
        let p = c.json(&["pod", "once"]);
        (p.pointer("/status/phase").and_then(|v| v.as_str()) == Some("Failed")).then_some(())
    });
    assert!(c.ok(&["get", "pod", "once"]).contains("Error"));
    // Readiness gating through an exec probe: once the probe has failed
    // twice (it counts its runs), the pod must still be not ready.
    c.eventually(Duration::from_secs(20), "the probe ran twice", || {
        let (_, out, _) = c.exec("gated", &["sh", "-c", "cat /tmp/lab-probes-gated"]);
        (out.lines().count() >= 2).then_some(())
    });
    let p = c.json(&["pod", "gated"]);
    assert_eq!(
        p.pointer("/status/containerStatuses/0/ready"),
        Some(&serde_json::json!(false))
    );
    let (code, _, _) = c.exec("gated", &["touch", "/tmp/lab-ready-gated"]);
    assert_eq!(code, 0);
    c.wait_ready(&["pod/gated"], "15s");
    let _ = std::fs::remove_file("/tmp/lab-ready-gated");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn daemon_sigkill_and_readopt() {
    require_root!();
    let c = Cluster::up("readopt", &["--empty"]);
    c.apply(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [netexec, --http-port=8080]}\n",
    );
    c.wait_ready(&["pods", "-l", "app=web"], "30s");
    // Namespace `x-y` pod `z` and namespace `x` pod `y-z` would both be
    // `<cluster>-x-y-z`: the second to start gets its uid appended.
    let pause = |ns: &str, pod: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}}}\nspec:\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n"
        )
    };
    c.apply(&pause("x-y", "z"));
    c.wait_ready(&["-n", "x-y", "pod/z"], "30s");
    c.apply(&pause("x", "y-z"));
    c.wait_ready(&["-n", "x", "pod/y-z"], "30s");
    let netns_of = |ns: &str, pod: &str| {
        let p = c.json(&["-n", ns, "pod", pod]);
        let netns = p["metadata"]["annotations"]["lab.dev/netns"]
            .as_str()
            .unwrap()
            .to_string();
        (netns, pod_ip(&p))
    };
    let twins = [netns_of("x-y", "z"), netns_of("x", "y-z")];
    assert_eq!(twins[0].0, format!("{}-x-y-z", c.name));
    assert!(
        twins[1].0.starts_with(&format!("{}-x-y-z-", c.name)),
        "{twins:?}"
    );
    let addr_in = |netns: &str| {
        let out = std::process::Command::new("ip")
            .args(["-n", netns, "-4", "-o", "addr", "show", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    for (netns, ip) in &twins {
        assert!(addr_in(netns).contains(&format!("{ip}/")), "{netns}: {ip}");
    }
    let before = c.pods("app=web");
    c.kill_daemon();
    // Pods keep serving while the daemon is down.
    let ip = pod_ip(&before[0]);
    let other = format!("{}-default-{}", c.name, name(&before[1]));
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &other, "curl", "-sS", "--max-time", "5"])
        .arg(format!("http://{ip}:8080/hostname"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        name(&before[0])
    );
    c.ok(&["up"]);
    let after = c.pods("app=web");
    assert_eq!(after.len(), 2);
    for b in &before {
        let a = after
            .iter()
            .find(|a| name(a) == name(b))
            .expect("same pods");
        assert_eq!(pod_ip(a), pod_ip(b), "same IP");
        assert_eq!(restarts(a), restarts(b), "no restart");
    }
    // The twins re-adopted in their own namespaces.
    assert_eq!([netns_of("x-y", "z"), netns_of("x", "y-z")], twins);
    // Still managed: delete one, it is replaced.
    c.ok(&["delete", "pod", &name(&before[0])]);
    c.eventually(
        Duration::from_secs(20),
        "replacement after re-adopt",
        || {
            let p = c.pods("app=web");
            (p.len() == 2 && p.iter().all(|x| name(x) != name(&before[0]))).then_some(())
        },
    );
    // Down right after a replacement started: nothing may be left, not even
    // the shim of a pod that was still starting.
    let n = c.name.clone();
    c.down();
    assert_gone(&n);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn two_clusters_side_by_side_and_daemonized_children_die() {
    require_root!();
    let a = Cluster::up("twoa", &["--empty"]);
    let b = Cluster::up("twob", &["--empty"]);
    let pod = |marker: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: forker}}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'setsid sleep 1001{marker} & sleep 1000{marker} & wait']\n"
        )
    };
    let ma = format!("{}", std::process::id() % 1000 + 100);
    a.apply(&pod(&ma));
    b.apply(&pod("7"));
    a.wait_ready(&["pod/forker"], "20s");
    b.wait_ready(&["pod/forker"], "20s");
    let ipa = pod_ip(&a.json(&["pod", "forker"]));
    let ipb = pod_ip(&b.json(&["pod", "forker"]));
    // Same CIDR, separate node namespaces: both get an address of their own.
    assert!(ipa.starts_with("10.244.") && ipb.starts_with("10.244."));
    let needle = format!("sleep 1001{ma}");
    a.eventually(Duration::from_secs(5), "daemonized child running", || {
        (!pids_with(&needle).is_empty()).then_some(())
    });
    a.ok(&["delete", "pod", "forker"]);
    assert!(
        pids_with(&needle).is_empty(),
        "a daemonized child survived pod deletion"
    );
    // Cluster b is untouched.
    assert_eq!(b.pods("").len(), 1);
    let an = a.name.clone();
    a.down();
    assert_gone(&an);
    assert_eq!(b.pods("").len(), 1);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn mounts_do_not_leak_and_volumes_work() {
    require_root!();
    let c = Cluster::up("mounts", &["--empty"]);
    c.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {greeting: hello-from-configmap}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: vols}\nspec:\n  volumes:\n  - {name: scratch, emptyDir: {}}\n  - {name: cfg, configMap: {name: cfg}}\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'echo data > /mnt/lab-scratch/file; sleep 1000']\n    env:\n    - {name: GREETING, valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}}\n    volumeMounts:\n    - {name: scratch, mountPath: /mnt/lab-scratch}\n    - {name: cfg, mountPath: /mnt/lab-cfg, readOnly: true}\n",
    );
    c.wait_ready(&["pod/vols"], "20s");
    let (_, out, _) = c.exec("vols", &["cat", "/mnt/lab-cfg/greeting"]);
    assert_eq!(out.trim(), "hello-from-configmap");
    let (_, out, _) = c.exec("vols", &["sh", "-c", "echo $GREETING"]);
    assert_eq!(out.trim(), "hello-from-configmap");
    // /run/lab and /var/lib/lab are hidden inside the pod.
    let (_, out, _) = c.exec("vols", &["ls", "/var/lib/lab"]);
    assert_eq!(out.trim(), "");
    // Nothing of the pod is mounted in the host's mount namespace.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains("lab-scratch") && !host.contains("lab-cfg"),
        "pod mounts leaked"
    );
    assert!(
        !host.contains(&format!("/var/lib/lab/{}/pods", c.name)),
        "pod mounts leaked"
    );
    // The host's resolv.conf is untouched.
    let (_, inside, _) = c.exec("vols", &["cat", "/etc/resolv.conf"]);
    let outside = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_ne!(inside, outside);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn exhausted_pod_cidr_is_a_pod_status_not_a_crash() {
    require_root!();
    // A /29 has six usable addresses; the two cluster DNS pods hold two.
    let c = Cluster::up("ipam", &["--empty", "--pod-cidr", "10.250.0.0/29"]);
    let pod = |n: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {n}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}}\n"
        )
    };
    let names = ["p1", "p2", "p3", "p4", "p5"];
    c.apply(&names.map(pod).join("---\n"));
    // Pods start concurrently: four get the addresses, the fifth reports why it can't.
    let (stuck, msg) = c.eventually(
        Duration::from_secs(15),
        "one pod reports the exhausted range",
        || {
            let pods = c.items(&["pods"]);
            let ready = pods
                .iter()
                .filter(|p| p["status"]["containerStatuses"][0]["ready"] == serde_json::json!(true))
                .count();
            let stuck: Vec<&serde_json::Value> = pods
                .iter()
                .filter(|p| {
                    p["status"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("no free address"))
                })
                .collect();
            (ready == 4 && stuck.len() == 1).then(|| {
                (
                    name(stuck[0]),
                    stuck[0]["status"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
        },
    );
    assert!(msg.contains("10.250.0.0/29"), "{msg}");
    assert_eq!(c.json(&["pod", &stuck])["status"]["phase"], "Pending");
    // The daemon still answers; freeing an address lets the stuck pod start.
    let other = names.into_iter().find(|p| *p != stuck).unwrap();
    c.ok(&["delete", "pod", other]);
    c.wait_ready(&[&format!("pod/{stuck}")], "30s");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn an_address_no_pod_holds_is_unreachable_at_once() {
    require_root!();
    let c = Cluster::up("unreach", &["--empty", "--pod-cidr", "10.251.0.0/24"]);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n");
    c.wait_ready(&["pod/client"], "30s");
    let before = c.ok(&["status"]);
    let t = Instant::now();
    let (code, out, _) = c.exec("client", &["ping", "-c", "1", "-W", "3", "10.251.0.250"]);
    assert_ne!(code, 0);
    assert!(out.contains("Destination Host Unreachable"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The packet did not loop through the Services TUN.
    let unchanged = |s: &str| -> u64 {
        s.split_whitespace()
            .find_map(|w| w.strip_prefix("forwarded_unchanged="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let after = c.ok(&["status"]);
    assert!(
        unchanged(&after) - unchanged(&before) < 5,
        "{before}\n{after}"
    );
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn pods_whose_shims_died_with_the_daemon_are_not_reported_ready() {
    require_root!();
    let c = Cluster::up("reboot", &["--empty"]);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [netexec, --http-port=8080], readinessProbe: {httpGet: {path: /healthz, port: 8080}, initialDelaySeconds: 2, periodSeconds: 1}}\n");
    c.wait_ready(&["pod/p"], "30s");
    let ip = pod_ip(&c.json(&["pod", "p"]));
    // As after a reboot: the daemon and every shim of this cluster are gone.
    c.kill_daemon();
    let shims = pids_with(&format!("/run/lab/{}/", c.name));
    assert!(!shims.is_empty());
    for &pid in &shims {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // From the first answer of the new daemon on, no status may call the
    // pod ready with the dead shim's container.
    let shim_of = |p: &serde_json::Value| -> Option<u32> {
        p["status"]["containerStatuses"][0]["containerID"]
            .as_str()?
            .strip_prefix("lab://")?
            .split('/')
            .next()?
            .parse()
            .ok()
    };
    let mut up = std::process::Command::new(lab_bin())
        .args(["--cluster", &c.name, "up"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut answers = 0;
    while up.try_wait().unwrap().is_none() {
        let out = c.run(&["get", "pod", "p", "-o", "json"]);
        if let Ok(p) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            answers += 1;
            let ready = p["status"]["containerStatuses"][0]["ready"] == true;
            let old = shim_of(&p).is_some_and(|s| shims.contains(&s));
            assert!(!(ready && old), "stale status served: {p}");
        }
    }
    assert!(up.wait().unwrap().success());
    eprintln!("{answers} status reads while lab up ran");
    // `lab up` waited until the pod really runs again: right after it
    // returns, the pod can be exec'd into and serves on its old IP.
    let p = c.json(&["pod", "p"]);
    assert_eq!(pod_ip(&p), ip, "same IP");
    let (code, out, err) = c.exec(
        "p",
        &[
            "curl",
            "-sS",
            "--max-time",
            "3",
            &format!("http://{ip}:8080/hostname"),
        ],
    );
    assert_eq!((code, out.trim()), (0, "p"), "{err}");
    // The status `lab up` waited on came from the new shim, not from before.
    let id = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let shim: u32 = id
        .strip_prefix("lab://")
        .and_then(|r| r.split('/').next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("containerID {id:?}"));
    assert!(
        !shims.contains(&shim),
        "status still names the dead shim {shim}"
    );
    assert!(std::path::Path::new(&format!("/proc/{shim}")).exists());
}

/// Lab daemons of one cluster, by their command line.
fn daemons_of(cluster: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args.contains(&b"daemon".as_slice()) && args.contains(&cluster.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn five_concurrent_ups_after_a_crash_start_one_daemon_and_lose_nothing() {
    require_root!();
    let c = Cluster::up("fiveup", &["--empty"]);
    c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: before}\ndata: {k: v}\n");
    c.kill_daemon();
    // Five `lab up`s at once, as five terminals or CI jobs would.
    let children: Vec<_> = (0..5)
        .map(|_| {
            std::process::Command::new(common::lab_bin())
                .args(["--cluster", &c.name, "up"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ch in children {
        let out = ch.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent lab up failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.daemon_log()
        );
    }
    let daemons = daemons_of(&c.name);
    assert_eq!(daemons.len(), 1, "daemons: {daemons:?}\n{}", c.daemon_log());
    assert_eq!(
        c.daemon_pid(),
        Some(daemons[0]),
        "the pid file names the live daemon"
    );
    // The write from before the crash survived, and a new one is kept by
    // the one daemon across another crash and restart.
    c.ok(&["get", "configmap", "before"]);
    c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\ndata: {k: v}\n");
    c.kill_daemon();
    c.ok(&["up"]);
    c.ok(&["get", "configmap", "before"]);
    c.ok(&["get", "configmap", "after"]);
    assert_eq!(daemons_of(&c.name).len(), 1);
    // A daemon started by hand while one runs refuses at once and leaves
    // the running one's files alone.
    let out = std::process::Command::new(common::lab_bin())
        .args(["--cluster", &c.name, "daemon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::path::Path::new(&format!("/run/lab/{}/api.sock", c.name)).exists());
    c.ok(&["get", "configmap", "after"]);
}

/// A lab binary under /tmp (a checkout there, as CI may have it) still runs
/// the built-in images: pods see a private /tmp, so the binary is bound in.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn builtin_images_run_from_a_binary_under_tmp() {
    require_root!();
    let dir = tempfile::Builder::new()
        .prefix("lab-bin-")
        .tempdir_in("/tmp")
        .unwrap();
    let bin = dir.path().join("lab");
    std::fs::copy(common::lab_bin(), &bin).unwrap();
    let name = Cluster::unique_name("tmpbin");
    let lab = |args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("--cluster")
            .arg(&name)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let up = lab(&["up", "--empty"]);
    let result = std::panic::catch_unwind(|| {
        assert!(
            up.status.success(),
            "{}",
            String::from_utf8_lossy(&up.stderr)
        );
        let mut apply = std::process::Command::new(&bin)
            .args(["--cluster", &name, "apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        apply
            .stdin
            .take()
            .unwrap()
            .write_all(b"apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [netexec, --http-port=8080]}\n")
            .unwrap();
        assert!(apply.wait().unwrap().success());
        let wait = lab(&[
            "wait",
            "--for=condition=Ready",
            "pod/web",
            "--timeout",
            "60s",
        ]);
        assert!(
            wait.status.success(),
            "{}",
            String::from_utf8_lossy(&wait.stderr)
        );
        let ex = lab(&[
            "exec",
            "web",
            "--",
            bin.to_str().unwrap(),
            "agnhost",
            "--help",
        ]);
        assert!(ex.status.code().is_some());
    });
    let down = lab(&["down"]);
    assert!(down.status.success());
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn an_unreadable_state_file_stops_the_daemon_instead_of_being_overwritten() {
    require_root!();
    let c = Cluster::up("unread", &["--empty"]);
    c.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-me}\ndata: {a: b}\n");
    c.kill_daemon();
    // state.json exists but cannot be read (a directory in its place).
    let state = format!("/var/lib/lab/{}/state.json", c.name);
    let saved = std::fs::read(&state).expect("saved state");
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    std::fs::write(format!("{state}/keep"), &saved).unwrap();
    let out = c.run(&["up", "--empty"]);
    assert!(
        !out.status.success(),
        "the daemon started over an unreadable state"
    );
    assert!(
        c.daemon_log().contains("reading") && c.daemon_log().contains("state.json"),
        "{}",
        c.daemon_log()
    );
    // Nothing was written over it.
    assert_eq!(std::fs::read(format!("{state}/keep")).unwrap(), saved);
    // Put it back: `lab down` finds the pods' namespaces in it.
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::write(&state, &saved).unwrap();
    c.down();
    assert_gone(&c.name);
}
