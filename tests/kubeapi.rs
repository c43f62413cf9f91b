//! The Kubernetes API driven by the real `kubectl` (and curl) against a real
//! cluster: apply/re-apply/change, get (tables, wide, jsonpath), watch,
//! scale, label/annotate, wait, logs, delete, strict validation, server
//! dry-run, 410 Gone, 401 without the client certificate, and that pods
//! cannot reach the API port.
//!
//! kubectl must be on PATH (`scripts/provision` installs Debian's
//! kubernetes-client): without it these tests fail, they do not skip.

mod common;
use common::*;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lab/sample-app.yaml");

fn kubeconfig(c: &Cluster) -> String {
    format!("/var/lib/lab/{}/kubeconfig", c.name)
}

fn kubectl_cmd(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig(c))
        .env("HOME", std::env::temp_dir())
        .args(["--request-timeout=30s"])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    kubectl_cmd(c, args)
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

fn port(c: &Cluster) -> String {
    let kc = std::fs::read_to_string(kubeconfig(c)).expect("kubeconfig written");
    let line = kc
        .lines()
        .find(|l| l.contains("server:"))
        .expect("server line");
    line.rsplit(':').next().unwrap().trim().to_string()
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (body.to_string(), code.to_string())
}

#[test]
fn kubectl_is_installed() {
    let out = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .expect("kubectl must be on PATH (scripts/provision installs kubernetes-client)");
    assert!(out.status.success());
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kubectl_drives_the_sample_app() {
    require_root!();
    let c = Cluster::up("kapi", &["--empty"]);
    let kc = std::fs::metadata(kubeconfig(&c)).expect("kubeconfig");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(kc.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        c.ok(&["kubeconfig"]),
        std::fs::read_to_string(kubeconfig(&c)).unwrap()
    );

    // apply: created, unchanged, configured.
    let out = kok(&c, &["apply", "-f", SAMPLE]);
    for l in [
        "deployment.apps/frontend created",
        "deployment.apps/backend created",
        "service/backend-service created",
        "pod/client created",
    ] {
        assert!(out.contains(l), "{out}");
    }
    let out = kok(&c, &["apply", "-f", SAMPLE]);
    assert_eq!(out.matches("unchanged").count(), 4, "{out}");
    let changed = std::fs::read_to_string(SAMPLE)
        .unwrap()
        .replace("replicas: 3", "replicas: 2");
    let changed_path = std::env::temp_dir().join(format!("{}-sample.yaml", c.name));
    std::fs::write(&changed_path, changed).unwrap();
    let out = kok(&c, &["apply", "-f", changed_path.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/backend configured"), "{out}");
    assert!(out.contains("deployment.apps/frontend unchanged"), "{out}");
    let _ = std::fs::remove_file(&changed_path);

    // rollout status, wait, get (server-side tables), -o wide, jsonpath.
    kok(
        &c,
        &["rollout", "status", "deploy/backend", "--timeout=60s"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while kok(&c, &["get", "pods", "-l", "app=backend", "-o", "name"])
        .lines()
        .count()
        != 2
    {
        assert!(
            Instant::now() < deadline,
            "the third backend never went away"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    kok(
        &c,
        &[
            "wait",
            "--for=condition=Ready",
            "pod",
            "-l",
            "app=backend",
            "--timeout=60s",
        ],
    );
    kok(
        &c,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=60s",
        ],
    );
    let out = kok(&c, &["get", "pods"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert!(out.contains("client") && out.contains("Running"), "{out}");
    let out = kok(&c, &["get", "pods", "-o", "wide"]);
    assert!(
        out.lines().next().unwrap().contains("IP") && out.contains("NODE"),
        "{out}"
    );
    assert!(out.contains(&format!("{}-node", c.name)), "{out}");
    let names = kok(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "app=backend",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
    );
    let backends: Vec<&str> = names.split_whitespace().collect();
    assert_eq!(backends.len(), 2, "{names}");
    let phase = kok(
        &c,
        &[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name",
        ],
    );
    assert!(phase.contains("pod/client"), "{phase}");

    // get -w sees a deletion.
    let mut watch = kubectl_cmd(&c, &["get", "pods", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut event_watch = kubectl_cmd(&c, &["get", "events", "-w", "--watch-only"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let victim = backends[0].to_string();
    let out = kok(&c, &["delete", "pod", &victim]);
    assert!(out.contains(&format!("pod \"{victim}\" deleted")), "{out}");
    // The kubelet's Killing event for the deleted pod, found by field selector.
    let selector = format!("--field-selector=involvedObject.name={victim},reason=Killing");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = kok(&c, &["get", "events", &selector, "-o", "name"]);
        if !out.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no Killing event for {victim}");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = watch.kill();
    let _ = event_watch.kill();
    let ew = event_watch.wait_with_output().unwrap();
    let etext = String::from_utf8_lossy(&ew.stdout);
    assert!(
        etext
            .lines()
            .any(|l| l.contains("Killing") && l.contains(&format!("pod/{victim}"))),
        "get events -w:\n{etext}\n{}",
        String::from_utf8_lossy(&ew.stderr)
    );
    assert!(
        etext.lines().any(|l| l.contains("SuccessfulCreate")),
        "the replacement's SuccessfulCreate is streamed:\n{etext}"
    );
    let w = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&w.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("DELETED") && l.contains(&victim)),
        "watch output:\n{text}\n{}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("ADDED") && l.contains("backend-")),
        "the replacement pod is ADDED:\n{text}"
    );

    // scale, label, annotate.
    let out = kok(&c, &["scale", "deployment", "backend", "--replicas=1"]);
    assert!(out.contains("deployment.apps/backend scaled"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = kok(&c, &["get", "pods", "-l", "app=backend", "-o", "name"]);
        let running = kok(
            &c,
            &[
                "get",
                "deploy",
                "backend",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        );
        if n.lines().count() == 1 && running == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scale to 1 did not converge: {n}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(kok(&c, &["label", "pod", "client", "tier=tools"]).contains("pod/client labeled"));
    assert!(kok(&c, &["annotate", "pod", "client", "note=hello"]).contains("pod/client annotated"));
    let out = kok(
        &c,
        &[
            "get",
            "pod",
            "client",
            "-o",
            "jsonpath={.metadata.labels.tier}/{.metadata.annotations.note}",
        ],
    );
    assert_eq!(out, "tools/hello");
    assert!(kok(&c, &["get", "pods", "-l", "tier=tools", "-o", "name"]).contains("pod/client"));

    // expose, run, edit, rollout restart, get events, logs -f.
    let out = kok(
        &c,
        &[
            "expose",
            "deployment",
            "frontend",
            "--name=fe2",
            "--port=81",
            "--target-port=8080",
        ],
    );
    assert!(out.contains("service/fe2 exposed"), "{out}");
    let out = kok(
        &c,
        &[
            "run",
            "sleeper",
            "--image=registry.k8s.io/e2e-test-images/agnhost:2.45",
            "--",
            "pause",
        ],
    );
    assert!(out.contains("pod/sleeper created"), "{out}");
    let out = kubectl_cmd(&c, &["edit", "deployment", "frontend"])
        .env("KUBE_EDITOR", r"sed -i s/replicas:\ 1/replicas:\ 2/")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("deployment.apps/frontend edited"), "{text}");
    assert_eq!(
        kok(
            &c,
            &[
                "get",
                "deploy",
                "frontend",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "2"
    );
    assert!(kok(&c, &["rollout", "restart", "deploy/frontend"]).contains("restarted"));
    kok(
        &c,
        &["rollout", "status", "deploy/frontend", "--timeout=60s"],
    );
    // Events as the controllers, scheduler and kubelet record them.
    let events = kok(&c, &["get", "events"]);
    for reason in [
        "Scheduled",
        "Pulled",
        "Created",
        "Started",
        "SuccessfulCreate",
        "ScalingReplicaSet",
        "Killing",
    ] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }
    let scaled = kok(
        &c,
        &[
            "get",
            "events",
            "--field-selector=involvedObject.kind=Deployment",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    );
    assert!(
        !scaled.is_empty() && scaled.split(' ').all(|r| r == "ScalingReplicaSet"),
        "{scaled}"
    );
    let d = kok(&c, &["describe", "deploy", "frontend"]);
    assert!(d.contains("Scaled up replica set frontend-"), "{d}");
    let v1 = kok(
        &c,
        &[
            "get",
            "events.v1.events.k8s.io",
            "-o",
            "jsonpath={.items[0].regarding.kind}",
        ],
    );
    assert!(!v1.is_empty(), "events.k8s.io/v1 lists the events");
    let ev = std::env::temp_dir().join(format!("lab-event-{}.yaml", std::process::id()));
    std::fs::write(&ev, "apiVersion: v1\nkind: Event\nmetadata: {name: fake, namespace: default}\ninvolvedObject: {kind: Pod, name: client}\nreason: Fake\n").unwrap();
    let out = kubectl(&c, &["create", "-f", ev.to_str().unwrap()]);
    let _ = std::fs::remove_file(&ev);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("read-only"),
        "events cannot be created: {err}"
    );
    let mut follow = kubectl_cmd(&c, &["logs", "-f", "client"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        follow.try_wait().unwrap().is_none(),
        "logs -f ended instead of following"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // explain reads the OpenAPI v3 schemas.
    let out = kok(&c, &["explain", "service.spec"]);
    assert!(
        out.contains("clusterIP") && out.contains("selector"),
        "{out}"
    );
    let out = kok(&c, &["explain", "deployment.spec.replicas"]);
    assert!(out.contains("integer"), "{out}");

    // logs.
    let out = kok(&c, &["logs", "deploy/backend", "--tail=5"]);
    assert!(!out.trim().is_empty(), "backend logs are empty");

    // Strict validation: an unknown field is refused, naming it.
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {a: b}\nbogus: 1\n";
    let mut child = kubectl_cmd(&c, &["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bad.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus") && err.contains("invalid"), "{err}");

    // --dry-run=server changes nothing.
    let out = kok(
        &c,
        &[
            "scale",
            "deploy",
            "frontend",
            "--replicas=3",
            "--dry-run=server",
        ],
    );
    assert!(out.contains("server dry run"), "{out}");
    assert_eq!(
        kok(
            &c,
            &[
                "get",
                "deploy",
                "frontend",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "2"
    );

    // 410 Gone for a watch from a version older than the event log; 401
    // without the client certificate.
    let p = port(&c);
    let pki = format!("/var/lib/lab/{}/pki", c.name);
    let auth = [
        "--cacert".to_string(),
        format!("{pki}/ca.crt"),
        "--cert".into(),
        format!("{pki}/admin.crt"),
        "--key".into(),
        format!("{pki}/admin.key"),
    ];
    let a: Vec<&str> = auth.iter().map(String::as_str).collect();
    let url =
        format!("https://127.0.0.1:{p}/api/v1/namespaces/default/pods?watch=1&resourceVersion=1");
    let (body, code) = curl(&[&a[..], &[url.as_str()]].concat());
    assert_eq!(code, "410", "{body}");
    assert!(body.contains("\"reason\":\"Expired\""), "{body}");
    let url = format!("https://127.0.0.1:{p}/api/v1/namespaces/default/pods");
    let (body, code) = curl(&["--cacert", &format!("{pki}/ca.crt"), &url]);
    assert_eq!(code, "401", "{body}");
    assert!(
        body.contains("\"kind\":\"Status\"") && body.contains("Unauthorized"),
        "{body}"
    );
    let (body, code) = curl(&[&a[..], &[url.as_str()]].concat());
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("\"kind\":\"PodList\""), "{body}");
    let all_pods: serde_json::Value = serde_json::from_str(&body).unwrap();
    let all_pods = all_pods["items"].as_array().unwrap().len();
    assert!(all_pods >= 3, "{body}");

    // Paging: kubectl walks limit/continue pages; a raw page says what is left.
    let chunked = kok(&c, &["get", "pods", "--chunk-size=1", "-o", "name"]);
    assert_eq!(chunked.lines().count(), all_pods, "{chunked}");
    let (body, _) = curl(&[&a[..], &[&format!("{url}?limit=1")[..]]].concat());
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{body}");
    assert!(page["metadata"]["continue"].is_string(), "{body}");
    assert_eq!(
        page["metadata"]["remainingItemCount"],
        all_pods - 1,
        "{body}"
    );
    let (body, code) = curl(&[&a[..], &[&format!("{url}?limit=1&continue=garbage")[..]]].concat());
    assert_eq!(code, "400", "{body}");

    // Bookmarks: the end of the initial events, then progress.
    let (body, _) = curl(
        &[
            &a[..],
            &[&format!(
                "{url}?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
            )[..]],
        ]
        .concat(),
    );
    let lines: Vec<serde_json::Value> = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let added = lines.iter().take_while(|l| l["type"] == "ADDED").count();
    assert_eq!(added, all_pods, "{body}");
    let end = &lines[added];
    assert_eq!(end["type"], "BOOKMARK", "{body}");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    assert!(
        end["object"]["metadata"]["resourceVersion"].is_string(),
        "{body}"
    );
    let (body, code) = curl(
        &[
            &a[..],
            &[&format!("https://127.0.0.1:{p}/api/v1/namespaces/default/pods/nope")[..]],
        ]
        .concat(),
    );
    assert_eq!(code, "404", "{body}");
    assert!(body.contains("pods \\\"nope\\\" not found"), "{body}");

    // The API is on the host's loopback only: a pod cannot reach it (its
    // own 127.0.0.1 is its own, and the node gateway has no such port).
    for target in ["127.0.0.1", "169.254.1.1"] {
        let (code, out, _) = c.exec(
            "client",
            &[
                "curl",
                "-sk",
                "-m",
                "3",
                &format!("https://{target}:{p}/version"),
            ],
        );
        assert_ne!(code, 0, "a pod reached the API at {target}:{p}: {out}");
        assert!(!out.contains("gitVersion"), "{out}");
    }

    // --cascade=orphan: the Deployment goes, its ReplicaSet and pods stay,
    // no longer owned.
    let rs = kok(&c, &["get", "rs", "-l", "app=frontend", "-o", "name"]);
    assert!(rs.starts_with("replicaset.apps/frontend-"), "{rs}");
    kok(&c, &["delete", "deploy", "frontend", "--cascade=orphan"]);
    std::thread::sleep(Duration::from_millis(500));
    let after = kok(&c, &["get", "rs", "-l", "app=frontend", "-o", "name"]);
    assert_eq!(after, rs, "the ReplicaSets outlive their Deployment");
    let owners = kok(
        &c,
        &[
            "get",
            "rs",
            "-l",
            "app=frontend",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences}",
        ],
    );
    assert!(owners.trim().is_empty(), "still owned: {owners}");
    let pods = kok(&c, &["get", "pods", "-l", "app=frontend", "-o", "name"]);
    assert!(
        !pods.trim().is_empty(),
        "the orphaned ReplicaSet's pods stay"
    );
    kok(&c, &["delete", "rs", "-l", "app=frontend"]);

    // delete -f removes everything the file made.
    let out = kok(
        &c,
        &["delete", "-f", SAMPLE, "--wait=true", "--ignore-not-found"],
    );
    assert!(out.contains("deployment.apps \"backend\" deleted"), "{out}");
    let out = kok(
        &c,
        &["get", "deploy,svc", "-l", "app=backend", "-o", "name"],
    );
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn write_kubeconfig_merges_and_down_removes_the_context() {
    require_root!();
    let home = tempfile::tempdir().unwrap();
    // The user's existing config keeps its other entries.
    std::fs::create_dir_all(home.path().join(".kube")).unwrap();
    std::fs::write(
        home.path().join(".kube/config"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: other\n  context: {cluster: other, user: other}\nusers:\n- name: other\n  user: {}\ncurrent-context: other\n",
    )
    .unwrap();
    // SAFETY: nextest runs each test in its own process; nothing else in
    // this process reads the environment concurrently.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::remove_var("SUDO_USER");
    }
    let c = Cluster::up("kcfg", &["--empty", "--write-kubeconfig"]);
    let ctx = format!("lab-{}", c.name);
    let cfg = std::fs::read_to_string(home.path().join(".kube/config")).unwrap();
    assert!(cfg.contains(&ctx) && cfg.contains("other"), "{cfg}");
    // Plain kubectl with the user's own config reaches the cluster.
    let out = Command::new("kubectl")
        .env_remove("KUBECONFIG")
        .env("HOME", home.path())
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .expect("kubectl must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("namespace/kube-system"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.down();
    let cfg = std::fs::read_to_string(home.path().join(".kube/config")).unwrap();
    assert!(!cfg.contains(&ctx), "lab down leaves its context:\n{cfg}");
    assert!(cfg.contains("name: other"), "{cfg}");
}

/// A real client library (the `kube` crate) lists, watches and patches.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kube_client_lists_watches_and_patches() {
    require_root!();
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{
        Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
    };
    async fn next_event<S>(s: &mut S) -> WatchEvent<ConfigMap>
    where
        S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
    {
        tokio::time::timeout(std::time::Duration::from_secs(10), s.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the stream goes on")
    }
    let c = Cluster::up("kcrate", &["--empty"]);
    let path = kubeconfig(&c);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kc", "labels": {"app": "k"}}, "data": {"a": "1"}}))
        .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        let list = cms
            .list(&ListParams::default().labels("app=k"))
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1);
        let rv = list.metadata.resource_version.clone().unwrap();
        let mut events = cms
            .watch(&WatchParams::default().labels("app=k"), &rv)
            .await
            .unwrap()
            .boxed();
        cms.patch(
            "kc",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
        match next_event(&mut events).await {
            WatchEvent::Modified(o) => {
                assert_eq!(o.data.unwrap()["a"], "2");
            }
            other => panic!("expected MODIFIED, got {other:?}"),
        }
        let got = cms.get("kc").await.unwrap();
        assert_eq!(got.data.unwrap()["a"], "2");
        cms.delete("kc", &DeleteParams::default()).await.unwrap();
        match next_event(&mut events).await {
            WatchEvent::Deleted(o) => assert_eq!(o.metadata.name.as_deref(), Some("kc")),
            other => panic!("expected DELETED, got {other:?}"),
        }
        let err = cms.get("kc").await.unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    });
}

/// kubectl's typed generators (`create deployment|service|job`, which send
/// protobuf bodies), `expose` and `run` all create what they say, and the
/// objects work: the Deployment's pods run and its Service has endpoints.
/// An image lab cannot run comes back as a readable 422.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kubectl_create_generators() {
    require_root!();
    let c = Cluster::up("kgen", &["--empty"]);
    let agnhost = "--image=registry.k8s.io/e2e-test-images/agnhost:2.45";
    let out = kok(
        &c,
        &[
            "create",
            "deployment",
            "web",
            agnhost,
            "--replicas=2",
            "--port=8080",
            "--",
            "/agnhost",
            "netexec",
            "--http-port=8080",
        ],
    );
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = kok(
        &c,
        &["create", "service", "clusterip", "web", "--tcp=80:8080"],
    );
    assert!(out.contains("service/web created"), "{out}");
    let out = kok(
        &c,
        &["create", "job", "once", agnhost, "--", "/agnhost", "pause"],
    );
    assert!(out.contains("job.batch/once created"), "{out}");
    let out = kok(
        &c,
        &[
            "expose",
            "deployment",
            "web",
            "--name=web2",
            "--port=81",
            "--target-port=8080",
        ],
    );
    assert!(out.contains("service/web2 exposed"), "{out}");
    let out = kok(&c, &["run", "solo", agnhost, "--", "pause"]);
    assert!(out.contains("pod/solo created"), "{out}");
    let out = kok(&c, &["create", "configmap", "conf", "--from-literal=a=b"]);
    assert!(out.contains("configmap/conf created"), "{out}");
    let out = kok(
        &c,
        &["create", "secret", "generic", "sec", "--from-literal=a=b"],
    );
    assert!(out.contains("secret/sec created"), "{out}");
    kok(&c, &["create", "namespace", "team"]);
    let out = kok(
        &c,
        &[
            "create",
            "deployment",
            "w",
            agnhost,
            "-n",
            "team",
            "--",
            "/agnhost",
            "pause",
        ],
    );
    assert!(out.contains("deployment.apps/w created"), "{out}");

    // create -f and apply -f with kubectl's default validation (it asks
    // the OpenAPI v3 documents whether the server validates fields).
    let f = std::env::temp_dir().join(format!("{}-cm.yaml", c.name));
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromfile}\ndata: {a: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fromfile}\nspec:\n  selector: {matchLabels: {app: ff}}\n  template:\n    metadata: {labels: {app: ff}}\n    spec: {containers: [{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.45, args: [pause]}]}\n",
    )
    .unwrap();
    let out = kok(&c, &["create", "-f", f.to_str().unwrap()]);
    assert!(
        out.contains("configmap/fromfile created")
            && out.contains("deployment.apps/fromfile created"),
        "{out}"
    );
    let out = kok(&c, &["apply", "-f", f.to_str().unwrap()]);
    assert!(out.contains("configmap/fromfile"), "{out}");
    std::fs::write(
        &f,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndatta: {a: b}\n",
    )
    .unwrap();
    let out = kubectl(&c, &["create", "-f", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("datta"), "{err}");
    let _ = std::fs::remove_file(&f);

    // What the protobuf bodies said arrived: the fields as kubectl set them.
    let spec = kok(
        &c,
        &[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.replicas} {.spec.selector.matchLabels.app} {.spec.template.spec.containers[0].command} {.spec.template.spec.containers[0].ports[0].containerPort}",
        ],
    );
    assert_eq!(
        spec,
        r#"2 web ["/agnhost","netexec","--http-port=8080"] 8080"#
    );
    let svc = kok(
        &c,
        &[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.type} {.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.selector.app}",
        ],
    );
    assert_eq!(svc, "ClusterIP 80 8080 web");
    let job = kok(
        &c,
        &[
            "get",
            "job",
            "once",
            "-o",
            "jsonpath={.spec.template.spec.restartPolicy}",
        ],
    );
    assert_eq!(job, "Never");
    kok(&c, &["rollout", "status", "deploy/web", "--timeout=60s"]);
    kok(
        &c,
        &["wait", "--for=condition=Ready", "pod/solo", "--timeout=60s"],
    );
    // The Service made from protobuf answers, through its ClusterIP, from a pod.
    let (code, out, err) = c.exec(
        "solo",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "http://web.default.svc.cluster.local/hostname",
        ],
    );
    assert!(code == 0 && out.starts_with("web-"), "{code} {out}{err}");
    let eps = kok(
        &c,
        &[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ],
    );
    assert_eq!(eps.split_whitespace().count(), 2, "{eps}");

    // An image lab cannot run: the API server's 422, readable by kubectl.
    for args in [
        &["create", "deployment", "nginx", "--image=nginx"][..],
        &["create", "job", "nj", "--image=nginx"][..],
        &["run", "np", "--image=nginx"][..],
    ] {
        let out = kubectl(&c, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            err.contains("is invalid")
                && err.contains("image \"nginx\" is not built into lab")
                && err.contains("command"),
            "{args:?}: {err}"
        );
    }
    let out = kubectl(
        &c,
        &["create", "service", "nodeport", "np", "--tcp=80:8080"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.type") && err.contains("NodePort"),
        "{err}"
    );
}

/// Paging lists from one snapshot: a `continue` token reads the list as it
/// was at the first page's resourceVersion, whatever changed since; a token
/// older than the server keeps is 410 Expired with a token to go on.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn continue_tokens_list_from_the_first_pages_snapshot() {
    require_root!();
    let c = Cluster::up("kpage", &["--empty"]);
    for n in ["a", "b", "c", "d", "e"] {
        kok(
            &c,
            &[
                "create",
                "configmap",
                &format!("cm-{n}"),
                "--from-literal=v=old",
            ],
        );
    }
    kok(
        &c,
        &[
            "label",
            "configmap",
            "cm-a",
            "cm-b",
            "cm-c",
            "cm-d",
            "cm-e",
            "set=p",
        ],
    );
    // kubectl walks two-item pages.
    let out = kok(
        &c,
        &["get", "cm", "-l", "set=p", "--chunk-size=2", "-o", "name"],
    );
    assert_eq!(out.lines().count(), 5, "{out}");

    let raw = |query: &str| -> serde_json::Value {
        let path = format!("/api/v1/namespaces/default/configmaps?labelSelector=set%3Dp&{query}");
        serde_json::from_str(&kok(&c, &["get", "--raw", &path])).unwrap()
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                format!(
                    "{}={}",
                    i["metadata"]["name"].as_str().unwrap(),
                    i["data"]["v"].as_str().unwrap()
                )
            })
            .collect()
    };
    let p1 = raw("limit=2");
    assert_eq!(names(&p1), ["cm-a=old", "cm-b=old"]);
    let rv = p1["metadata"]["resourceVersion"].clone();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // The list changes between pages: one item goes, one changes, two
    // come (one sorting into the pages still to be read).
    kok(&c, &["delete", "configmap", "cm-c"]);
    kok(
        &c,
        &[
            "patch",
            "configmap",
            "cm-d",
            "-p",
            r#"{"data":{"v":"new"}}"#,
        ],
    );
    for n in ["cm-bb", "cm-f"] {
        kok(&c, &["create", "configmap", n, "--from-literal=v=new"]);
        kok(&c, &["label", "configmap", n, "set=p"]);
    }
    let p2 = raw(&format!("limit=2&continue={token}"));
    assert_eq!(names(&p2), ["cm-c=old", "cm-d=old"], "{p2}");
    assert_eq!(p2["metadata"]["resourceVersion"], rv);
    assert_eq!(p2["metadata"]["remainingItemCount"], 1);
    let token = p2["metadata"]["continue"].as_str().unwrap();
    let p3 = raw(&format!("limit=2&continue={token}"));
    assert_eq!(names(&p3), ["cm-e=old"], "{p3}");
    assert!(p3["metadata"].get("continue").is_none(), "{p3}");
    // A fresh list sees the changes.
    assert_eq!(
        names(&raw("limit=10")),
        [
            "cm-a=old",
            "cm-b=old",
            "cm-bb=new",
            "cm-d=new",
            "cm-e=old",
            "cm-f=new"
        ]
    );

    // A token from a version older than the daemon's event log: 410
    // Expired, as the API server answers, with a token to go on from now.
    use base64::Engine;
    let old = base64::engine::general_purpose::STANDARD
        .encode(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"default/cm-b\u0000"}"#);
    let p = port(&c);
    let pki = format!("/var/lib/lab/{}/pki", c.name);
    let url = format!(
        "https://127.0.0.1:{p}/api/v1/namespaces/default/configmaps?labelSelector=set%3Dp&limit=2&continue={old}"
    );
    let (body, code) = curl(&[
        "--cacert",
        &format!("{pki}/ca.crt"),
        "--cert",
        &format!("{pki}/admin.crt"),
        "--key",
        &format!("{pki}/admin.key"),
        &url,
    ]);
    assert_eq!(code, "410", "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["reason"], "Expired", "{body}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("too old to display a consistent list")
    );
    let fresh = st["metadata"]["continue"].as_str().unwrap();
    let rest = raw(&format!("limit=10&continue={fresh}"));
    assert_eq!(
        names(&rest),
        ["cm-bb=new", "cm-d=new", "cm-e=old", "cm-f=new"],
        "the rest of the list, read now"
    );
}

/// Server-side apply: `kubectl apply --server-side` creates and updates,
/// records managedFields, a field another manager owns is a 409 conflict
/// (kubectl prints the API server's message), `--force-conflicts` takes
/// it, and a field the manager stops applying goes.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn server_side_apply_owns_fields_and_reports_conflicts() {
    require_root!();
    let c = Cluster::up("kssa", &["--empty"]);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, replicas: u32, extra_label: bool| -> String {
        let extra = if extra_label { ", tier: web" } else { "" };
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: ssa, labels: {{app: ssa{extra}}}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: ssa}}}}\n  template:\n    metadata: {{labels: {{app: ssa}}}}\n    spec:\n      containers:\n      - {{name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.45, args: [pause]}}\n"
        );
        let p = dir.path().join(name);
        std::fs::write(&p, yaml).unwrap();
        p.to_str().unwrap().to_string()
    };
    let managers = |c: &Cluster| -> Vec<(String, String, serde_json::Value)> {
        let out = kok(
            c,
            &[
                "get",
                "deploy",
                "ssa",
                "-o",
                "json",
                "--show-managed-fields",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["manager"].as_str().unwrap().to_string(),
                    m["operation"].as_str().unwrap().to_string(),
                    m["fieldsV1"].clone(),
                )
            })
            .collect()
    };
    let replicas = |c: &Cluster| {
        kok(
            c,
            &["get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}"],
        )
    };

    // Created by apply, with the extra label; re-applied unchanged.
    let out = kok(
        &c,
        &["apply", "--server-side", "-f", &file("a.yaml", 2, true)],
    );
    assert!(
        out.contains("deployment.apps/ssa serverside-applied"),
        "{out}"
    );
    kok(
        &c,
        &["apply", "--server-side", "-f", &file("a.yaml", 2, true)],
    );
    let m = managers(&c);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0.as_str(), m[0].1.as_str()), ("kubectl", "Apply"));
    assert!(m[0].2["f:spec"]["f:replicas"].is_object(), "{m:?}");
    assert!(
        m[0].2["f:spec"]["f:template"]["f:spec"]["f:containers"][r#"k:{"name":"c"}"#]["f:image"]
            .is_object(),
        "{m:?}"
    );
    // The API server writes no last-applied annotation for apply.
    let ann = kok(
        &c,
        &[
            "get",
            "deploy",
            "ssa",
            "-o",
            "jsonpath={.metadata.annotations}",
        ],
    );
    assert!(!ann.contains("last-applied"), "{ann}");

    // kubectl scale is another manager of spec.replicas: applying another
    // value conflicts, and nothing changes.
    kok(&c, &["scale", "deploy", "ssa", "--replicas=3"]);
    let out = kubectl(
        &c,
        &["apply", "--server-side", "-f", &file("b.yaml", 4, true)],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
    assert_eq!(replicas(&c), "3");
    // Applying the value it has is shared ownership, not a conflict.
    kok(
        &c,
        &["apply", "--server-side", "-f", &file("c.yaml", 3, true)],
    );
    // --force-conflicts takes the field.
    kok(
        &c,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &file("b.yaml", 4, true),
        ],
    );
    assert_eq!(replicas(&c), "4");
    let m = managers(&c);
    assert!(
        m.iter()
            .filter(|(_, op, _)| op == "Update")
            .all(|(_, _, f)| f["f:spec"].get("f:replicas").is_none()),
        "{m:?}"
    );
    // A label the manager no longer applies goes; the rest stays.
    kok(
        &c,
        &["apply", "--server-side", "-f", &file("d.yaml", 4, false)],
    );
    let labels = kok(
        &c,
        &["get", "deploy", "ssa", "-o", "jsonpath={.metadata.labels}"],
    );
    assert!(
        labels.contains("app") && !labels.contains("tier"),
        "{labels}"
    );
    kok(&c, &["rollout", "status", "deploy/ssa", "--timeout=60s"]);

    // After a client-side apply, server-side apply of another value
    // conflicts with kubectl's client-side manager.
    let cm = dir.path().join("cm.yaml");
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {a: '1'}\n",
    )
    .unwrap();
    kok(&c, &["apply", "-f", cm.to_str().unwrap()]);
    std::fs::write(
        &cm,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {a: '2'}\n",
    )
    .unwrap();
    let out = kubectl(&c, &["apply", "--server-side", "-f", cm.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("conflict with \"kubectl-client-side-apply\"")
            && err.contains(".data.a"),
        "{err}"
    );
    // --dry-run=server changes nothing.
    kok(
        &c,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            cm.to_str().unwrap(),
        ],
    );
    assert_eq!(
        kok(&c, &["get", "cm", "conf", "-o", "jsonpath={.data.a}"]),
        "1"
    );
}

/// One API (issue 11, item 7): the admin Unix socket serves the same
/// Kubernetes paths as HTTPS (no certificate: the socket is root's), lab's
/// own operations are paths of that API (`kubectl get --raw`), and one API
/// write is one new resourceVersion (create, merge patch, server-side
/// apply), not a write plus a second bump for its managed fields.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn one_api_on_the_socket_and_one_version_per_write() {
    require_root!();
    let c = Cluster::up("kone", &["--empty"]);
    let status: serde_json::Value =
        serde_json::from_str(&kok(&c, &["get", "--raw", "/apis/lab.dev/v1/status"])).unwrap();
    assert_eq!(status["cluster"], c.name.as_str(), "{status}");

    let sock = format!("/run/lab/{}/api.sock", c.name);
    let api = |method: &str, path: &str, ct: &str, body: &str| -> (serde_json::Value, String) {
        let url = format!("http://lab{path}");
        let mut args = vec!["--unix-socket", &sock, "-X", method];
        let h = format!("Content-Type: {ct}");
        if !body.is_empty() {
            args.extend(["-H", &h, "--data-binary", body]);
        }
        args.push(&url);
        let (b, code) = curl(&args);
        (serde_json::from_str(&b).unwrap_or_default(), code)
    };
    let rv = |v: &serde_json::Value| -> u64 {
        v["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no resourceVersion: {v}"))
    };
    let (list, code) = api("GET", "/api/v1/namespaces/default/configmaps", "", "");
    assert_eq!(code, "200", "{list}");
    assert_eq!(list["kind"], "ConfigMapList");

    // Other writes (the DNS pods' status) may land in between: the
    // smallest step over a few tries is the write's own.
    let cms = "/api/v1/namespaces/default/configmaps";
    let (mut create, mut patch, mut apply) = (u64::MAX, u64::MAX, u64::MAX);
    for i in 0..5 {
        let (list, _) = api("GET", cms, "", "");
        let before = rv(&list);
        let body = format!(r#"{{"metadata": {{"name": "cm{i}"}}, "data": {{"a": "1"}}}}"#);
        let (obj, code) = api("POST", cms, "application/json", &body);
        assert_eq!(code, "201", "{obj}");
        let created = rv(&obj);
        create = create.min(created - before);
        let path = format!("{cms}/cm{i}");
        let (obj, code) = api(
            "PATCH",
            &path,
            "application/merge-patch+json",
            r#"{"metadata": {"labels": {"x": "y"}}, "data": {"a": "2"}}"#,
        );
        assert_eq!(code, "200", "{obj}");
        assert_eq!(obj["data"]["a"], "2", "{obj}");
        let patched = rv(&obj);
        patch = patch.min(patched - created);
        let (obj, code) = api(
            "PATCH",
            &format!("{path}?fieldManager=t"),
            "application/apply-patch+yaml",
            &format!(
                "{{apiVersion: v1, kind: ConfigMap, metadata: {{name: cm{i}}}, data: {{b: '3'}}}}"
            ),
        );
        assert_eq!(code, "200", "{obj}");
        apply = apply.min(rv(&obj) - patched);
    }
    assert_eq!(
        (create, patch, apply),
        (1, 1, 1),
        "versions one API write took (create, merge patch, apply)"
    );
    c.down();
}

/// Server-side apply on the `scale` subresource, as `kubectl apply
/// --server-side --subresource=scale` sends it (the Deployment, of which
/// `spec.replicas` counts) and as an `autoscaling/v1` Scale: the manager
/// owns `spec.replicas`, another owner is a conflict unless forced, and
/// other fields are refused.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn server_side_apply_on_the_scale_subresource() {
    require_root!();
    let c = Cluster::up("kssascale", &["--empty"]);
    kok(
        &c,
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.k8s.io/e2e-test-images/agnhost:2.45",
            "--",
            "/agnhost",
            "pause",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = |replicas: u32, extra: &str| -> String {
        let p = dir.path().join(format!("scale-{replicas}.yaml"));
        std::fs::write(
            &p,
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: default}}\nspec: {{replicas: {replicas}{extra}}}\n"),
        )
        .unwrap();
        p.to_str().unwrap().to_string()
    };
    // `kubectl apply --server-side --subresource=scale [flags] -f <file>`.
    let scale = |flags: &[&str], n: u32, extra: &str| -> Output {
        let f = file(n, extra);
        let mut args = vec!["apply", "--server-side", "--subresource=scale"];
        args.extend_from_slice(flags);
        args.extend(["-f", f.as_str()]);
        kubectl(&c, &args)
    };
    let ok = |out: Output| -> String {
        assert!(out.status.success(), "{out:?}\n{}", c.daemon_log());
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let replicas = |c: &Cluster| -> i64 {
        kok(
            c,
            &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
        )
        .trim()
        .parse()
        .unwrap()
    };
    // `create deployment` owns spec.replicas: taking it over is a conflict
    // (as on the API server), forced here.
    let out = scale(&[], 3, "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("kubectl-create"),
        "{err}"
    );
    let out = ok(scale(&["--force-conflicts"], 3, ""));
    assert!(
        out.contains("scale.autoscaling/web serverside-applied"),
        "{out}"
    );
    assert_eq!(replicas(&c), 3);
    let mf = kok(
        &c,
        &[
            "get",
            "deploy",
            "web",
            "--show-managed-fields",
            "-o",
            "json",
        ],
    );
    let mf: serde_json::Value = serde_json::from_str(&mf).unwrap();
    let owner = mf["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl" && e["operation"] == "Apply")
        .unwrap_or_else(|| panic!("no Apply entry by kubectl: {mf}"));
    assert!(
        owner["fieldsV1"]["f:spec"]["f:replicas"].is_object(),
        "{owner}"
    );
    // Recorded as a write through /scale, as the API server does; the
    // object's own entries name no subresource.
    assert_eq!(owner["subresource"], "scale", "{owner}");
    assert_eq!(owner["apiVersion"], "apps/v1", "{owner}");
    let create = mf["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-create")
        .unwrap_or_else(|| panic!("no entry by kubectl-create: {mf}"));
    assert!(create.get("subresource").is_none(), "{create}");
    // Another manager: a conflict on spec.replicas, unless forced.
    let out = scale(&["--field-manager=other"], 4, "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("conflict"), "{err}");
    assert_eq!(replicas(&c), 3);
    ok(scale(
        &["--field-manager=other", "--force-conflicts"],
        4,
        "",
    ));
    assert_eq!(replicas(&c), 4);
    // Only spec.replicas goes through /scale.
    let out = scale(&[], 5, ", paused: true");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("spec.paused"),
        "{err}"
    );
    assert_eq!(replicas(&c), 4);
    // An autoscaling/v1 Scale body (on the admin socket): the answer is the Scale.
    let (body, code) = curl(&[
        "--unix-socket",
        &format!("/run/lab/{}/api.sock", c.name),
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/apply-patch+yaml",
        "--data-binary",
        "{apiVersion: autoscaling/v1, kind: Scale, metadata: {name: web}, spec: {replicas: 1}}",
        "http://lab/apis/apps/v1/namespaces/default/deployments/web/scale?fieldManager=t&force=true",
    ]);
    assert_eq!(code, "200", "{body}");
    let scale: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(scale["kind"], "Scale", "{scale}");
    assert_eq!(scale["spec"]["replicas"], 1, "{scale}");
    assert_eq!(replicas(&c), 1);
    c.down();
}
