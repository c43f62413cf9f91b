//! Secrets and Jobs on a real cluster: a pod reads a Secret through env and
//! volumes (contents and file modes checked inside the pod and on the host),
//! `describe` shows sizes and never a value; a Job that curls a Service
//! completes and `lab wait --for=condition=complete` returns; a failing Job
//! hits its backoffLimit and reports Failed; the same through `kubectl`.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const SECRET_POD: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: db}
type: kubernetes.io/basic-auth
stringData:
  username: app
  password: s3cr3t-value
---
apiVersion: v1
kind: Secret
metadata: {name: extra}
data:
  token: dG9rZW4tdmFsdWU=
---
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  containers:
  - name: c
    image: debian
    command: [sleep, "3600"]
    env:
    - name: DB_PASSWORD
      valueFrom: {secretKeyRef: {name: db, key: password}}
    - name: MISSING
      valueFrom: {secretKeyRef: {name: db, key: nope, optional: true}}
    - name: ABSENT
      valueFrom: {secretKeyRef: {name: no-such-secret, key: x, optional: true}}
    envFrom:
    - secretRef: {name: extra}
      prefix: X_
    volumeMounts:
    - {name: creds, mountPath: /etc/creds, readOnly: true}
    - {name: strict, mountPath: /etc/strict}
    - {name: picked, mountPath: /etc/picked}
    - {name: maybe, mountPath: /etc/maybe}
  - name: other-user
    image: debian
    command: [sleep, "3600"]
    securityContext: {runAsUser: 1000}
    volumeMounts:
    - {name: creds, mountPath: /etc/creds, readOnly: true}
    - {name: strict, mountPath: /etc/strict}
  volumes:
  - name: creds
    secret: {secretName: db}
  - name: strict
    secret: {secretName: db, defaultMode: 0400}
  - name: picked
    secret:
      secretName: db
      items:
      - {key: password, path: sub/pw, mode: 0600}
  - name: maybe
    secret: {secretName: no-such-secret, optional: true}
"#;

fn sh(c: &Cluster, pod: &str, container: Option<&str>, script: &str) -> (i32, String) {
    let mut a = vec!["exec", pod];
    if let Some(ct) = container {
        a.extend(["-c", ct]);
    }
    a.extend(["--", "sh", "-c", script]);
    let out = c.run(&a);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn a_pod_reads_a_secret_by_env_and_volume_and_describe_hides_it() {
    require_root!();
    let c = Cluster::up("secret", &["--empty"]);
    let out = c.apply(SECRET_POD);
    assert!(out.contains("secret/db created"), "{out}");
    c.wait_ready(&["pod/reader"], "60s");

    // Environment.
    assert_eq!(
        sh(&c, "reader", None, "echo $DB_PASSWORD").1,
        "s3cr3t-value"
    );
    assert_eq!(sh(&c, "reader", None, "echo $X_token").1, "token-value");
    assert_eq!(
        sh(&c, "reader", None, "echo ${MISSING-unset} ${ABSENT-unset}").1,
        "unset unset"
    );
    // Volumes: contents and modes (0644 default, defaultMode, items[].mode).
    assert_eq!(
        sh(
            &c,
            "reader",
            None,
            "cat /etc/creds/username /etc/creds/password"
        )
        .1,
        "apps3cr3t-value"
    );
    let modes = sh(
        &c,
        "reader",
        None,
        "stat -c '%n %a' /etc/creds/password /etc/strict/password /etc/picked/sub/pw; ls /etc/picked; ls -A /etc/maybe | wc -l",
    )
    .1;
    assert_eq!(
        modes, "/etc/creds/password 644\n/etc/strict/password 400\n/etc/picked/sub/pw 600\nsub\n0",
        "{modes}"
    );
    // Another user in the pod reads the 0644 files but not the 0400 ones.
    let (code, out) = sh(&c, "reader", Some("other-user"), "cat /etc/creds/password");
    assert_eq!((code, out.as_str()), (0, "s3cr3t-value"));
    let (code, _) = sh(&c, "reader", Some("other-user"), "cat /etc/strict/password");
    assert_ne!(code, 0, "a 0400 root file must not be readable by uid 1000");

    // On the host: the files live on tmpfs under the pod's run directory,
    // below a directory only root may enter.
    let uid = c.json(&["pod", "reader"])["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let vols = format!("/run/lab/{}/pods/{uid}/volumes", c.name);
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&vols), 0o700, "{vols}");
    assert_eq!(mode(&format!("/run/lab/{}", c.name)), 0o700);
    assert_eq!(mode(&format!("{vols}/secret/strict/password")), 0o400);
    assert_eq!(mode(&format!("{vols}/secret/creds/password")), 0o644);
    // Nothing of the Secret is written to disk for the volume.
    let state = format!("/var/lib/lab/{}/pods/{uid}", c.name);
    let on_disk = Command::new("grep")
        .args(["-r", "-l", "s3cr3t-value", &state])
        .output()
        .unwrap();
    assert!(on_disk.stdout.is_empty(), "secret value under {state}");

    // The read-only API the DNS pods watch does not serve Secrets.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            &format!("/run/lab/{}/read-only/api.sock", c.name),
            "http://lab/api/v1/namespaces/default/secrets",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");

    // get / describe / -o yaml.
    let out = c.ok(&["get", "secrets"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    assert!(
        out.lines().any(|l| l.split_whitespace().take(3).eq([
            "db",
            "kubernetes.io/basic-auth",
            "2"
        ])),
        "{out}"
    );
    let d = c.ok(&["describe", "secret", "db"]);
    assert!(!d.contains("s3cr3t"), "describe shows the value:\n{d}");
    assert!(d.contains("Type:  kubernetes.io/basic-auth"), "{d}");
    assert!(d.contains("password:  12 bytes"), "{d}");
    assert!(d.contains("username:  3 bytes"), "{d}");
    // stringData is merged into data and never stored. (The applied
    // manifest itself is kept in the last-applied-configuration
    // annotation, as kubectl apply keeps it on a real cluster.)
    let v = c.json(&["secret", "db"]);
    assert!(v.get("stringData").is_none(), "{v}");
    assert_eq!(v["data"]["password"], "czNjcjN0LXZhbHVl", "{v}"); // base64 of the value
    // Re-applying the same manifest changes nothing; the type is immutable.
    assert!(c.apply(SECRET_POD).contains("secret/db unchanged"));
    let e = c.run_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {username: app}\n"),
    );
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        !e.status.success() && err.contains("type") && err.contains("immutable"),
        "{err}"
    );
    // A pod that needs a missing Secret does not start, and says why.
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: lost}\nspec:\n  containers:\n  - {name: c, image: debian, command: [sleep, '60'], env: [{name: A, valueFrom: {secretKeyRef: {name: gone, key: k}}}]}\n");
    c.eventually(
        std::time::Duration::from_secs(20),
        "the start error",
        || {
            let p = c.json(&["pod", "lost"]);
            let msg = p.pointer("/status/message")?.as_str()?.to_string();
            msg.contains("secret \"gone\" not found").then_some(())
        },
    );
}

const WEB: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/e2e-test-images/agnhost:2.47
        args: [netexec, --http-port=8080]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#;

const JOBS: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: fetch}
spec:
  completions: 2
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: curl
        image: curlimages/curl
        command: [curl, -sS, --max-time, "5", --retry, "5", --retry-connrefused, "http://web/hostname"]
---
apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: debian, command: [sh, -c, "exit 3"]}
"#;

const DEADLINE_AND_TTL: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: slow}
spec:
  activeDeadlineSeconds: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: debian, command: [sleep, "60"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: brief}
spec:
  ttlSecondsAfterFinished: 0
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - {name: c, image: debian, command: ["true"]}
"#;

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn a_job_curls_a_service_and_completes_a_failing_one_hits_its_backoff_limit() {
    require_root!();
    let c = Cluster::up("jobs", &["--empty"]);
    c.apply(WEB);
    c.wait_ready(&["pods", "-l", "app=web"], "60s");
    c.wait_ready(
        &["pods", "-l", "k8s-app=kube-dns", "-n", "kube-system"],
        "60s",
    );
    c.apply(JOBS);
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/fetch",
        "--timeout=60s",
    ]);
    let j = c.json(&["job", "fetch"]);
    assert_eq!(j["status"]["succeeded"], 2, "{j}");
    assert!(j["status"]["completionTime"].is_string(), "{j}");
    let types: Vec<&str> = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"], "{j}");
    // Its pods: `<job>-<random>`, the Job's labels and owner, Succeeded,
    // each got an answer from a backend through the Service.
    let pods = c.items(&["pods", "-l", "job-name=fetch"]);
    assert_eq!(pods.len(), 2);
    let uid = j["metadata"]["uid"].as_str().unwrap();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("fetch-") && name.len() == 11, "{name}");
        assert_eq!(
            p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            "fetch"
        );
        assert_eq!(p["metadata"]["labels"]["controller-uid"], uid);
        assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(p["status"]["phase"], "Succeeded");
        let log = c.ok(&["logs", name]);
        assert!(log.starts_with("web-"), "{name}: {log}");
    }
    let out = c.ok(&["get", "jobs"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    assert!(
        out.lines().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["fetch", "Complete", "2/2"])),
        "{out}"
    );
    let d = c.ok(&["describe", "job", "fetch"]);
    assert!(
        d.contains("0 Active (0 Ready) / 2 Succeeded / 0 Failed"),
        "{d}"
    );
    assert!(d.contains("Completions:      2"), "{d}");
    assert_eq!(j["metadata"]["labels"]["job-name"], "fetch", "{j}");

    // The failing Job: two pods (the second after the controller's 10 s
    // delay), then Failed with BackoffLimitExceeded.
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/broken",
        "--timeout=60s",
    ]);
    let j = c.json(&["job", "broken"]);
    assert_eq!(j["status"]["failed"], 2, "{j}");
    let failed = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{j}");
    assert_eq!(c.items(&["pods", "-l", "job-name=broken"]).len(), 2);
    let out = c.ok(&["get", "jobs", "broken"]);
    assert!(out.contains("Failed") && out.contains("0/1"), "{out}");
    // Waiting for a condition that cannot come times out.
    let e = c.fails(&[
        "wait",
        "--for=condition=complete",
        "job/broken",
        "--timeout=1s",
    ]);
    assert!(e.contains("timed out"), "{e}");

    let all = c.ok(&["get", "all"]);
    assert!(
        all.contains("job.batch/fetch") && all.contains("job.batch/broken"),
        "{all}"
    );

    // activeDeadlineSeconds stops a running Job; ttlSecondsAfterFinished
    // removes a finished one with its pods.
    c.apply(DEADLINE_AND_TTL);
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/slow",
        "--timeout=30s",
    ]);
    let j = c.json(&["job", "slow"]);
    let reasons: Vec<&str> = j["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["DeadlineExceeded", "DeadlineExceeded"], "{j}");
    assert!(
        c.pods("job-name=slow").is_empty(),
        "the deadline stops the Job's pods"
    );
    c.eventually(
        std::time::Duration::from_secs(30),
        "the finished Job with ttlSecondsAfterFinished: 0 to go",
        || {
            let out = c.run(&["get", "job", "brief"]);
            (!out.status.success()).then_some(())
        },
    );
    c.eventually(std::time::Duration::from_secs(30), "its pod to go", || {
        c.items(&["pods", "-l", "job-name=brief"])
            .is_empty()
            .then_some(())
    });

    // Deleting a Job deletes its pods.
    c.ok(&["delete", "job", "fetch"]);
    c.eventually(
        std::time::Duration::from_secs(30),
        "the Job's pods to go",
        || {
            c.items(&["pods", "-l", "job-name=fetch"])
                .is_empty()
                .then_some(())
        },
    );
}

fn kubectl(c: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", format!("/var/lib/lab/{}/kubeconfig", c.name))
        .env("HOME", std::env::temp_dir())
        .arg("--request-timeout=30s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kubectl must be installed (scripts/provision installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn kok(c: &Cluster, args: &[&str]) -> String {
    let (ok, out, err) = kubectl(c, args);
    assert!(ok, "kubectl {args:?}: {err}\n{out}");
    out
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kubectl_creates_secrets_and_runs_jobs() {
    require_root!();
    let c = Cluster::up("ksecj", &["--empty"]);
    // `kubectl create secret` sends protobuf.
    let out = kok(
        &c,
        &[
            "create",
            "secret",
            "generic",
            "x",
            "--from-literal=a=bcd",
            "--from-literal=pw=hunter2",
        ],
    );
    assert!(out.contains("secret/x created"), "{out}");
    let out = kok(&c, &["get", "secret", "x"]);
    assert!(out.contains("Opaque") && out.contains(" 2 "), "{out}");
    let d = kok(&c, &["describe", "secret", "x"]);
    assert!(!d.contains("hunter2") && d.contains("pw:  7 bytes"), "{d}");
    let v = kok(&c, &["get", "secret", "x", "-o", "jsonpath={.data.pw}"]);
    assert_eq!(v, "aHVudGVyMg==");
    let (ok, _, err) = kubectl(
        &c,
        &["create", "secret", "generic", "bad", "--from-literal=a b=c"],
    );
    assert!(!ok, "{err}");
    // The other generators that send protobuf work the same way.
    assert!(kok(&c, &["create", "namespace", "team"]).contains("namespace/team created"));
    let out = kok(
        &c,
        &[
            "create",
            "configmap",
            "cm",
            "-n",
            "team",
            "--from-literal=k=v",
        ],
    );
    assert!(out.contains("configmap/cm created"), "{out}");
    let v = kok(
        &c,
        &["get", "cm", "cm", "-n", "team", "-o", "jsonpath={.data.k}"],
    );
    assert_eq!(v, "v");
    let out = kok(
        &c,
        &[
            "create",
            "secret",
            "tls",
            "cert",
            &format!("--cert=/var/lib/lab/{}/pki/admin.crt", c.name),
            &format!("--key=/var/lib/lab/{}/pki/admin.key", c.name),
        ],
    );
    assert!(out.contains("secret/cert created"), "{out}");
    let out = kok(&c, &["get", "secret", "cert"]);
    assert!(
        out.contains("kubernetes.io/tls") && out.contains(" 2 "),
        "{out}"
    );

    // A Job through kubectl: apply, wait, get.
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: once}\nspec:\n  template:\n    spec:\n      restartPolicy: OnFailure\n      containers:\n      - {name: c, image: debian, command: [sh, -c, 'echo done']}\n";
    let path = std::env::temp_dir().join(format!("{}-job.yaml", c.name));
    std::fs::write(&path, job).unwrap();
    let out = kok(&c, &["apply", "-f", path.to_str().unwrap()]);
    assert!(out.contains("job.batch/once created"), "{out}");
    kok(
        &c,
        &[
            "wait",
            "--for=condition=complete",
            "job/once",
            "--timeout=60s",
        ],
    );
    let out = kok(&c, &["get", "jobs"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    assert!(out.contains("Complete") && out.contains("1/1"), "{out}");
    assert_eq!(kok(&c, &["logs", "job/once"]).trim(), "done");
    // restartPolicy Always is refused as the API server refuses it.
    std::fs::write(&path, job.replace("OnFailure", "Always")).unwrap();
    let (ok, _, err) = kubectl(&c, &["apply", "-f", path.to_str().unwrap()]);
    assert!(
        !ok && err.contains("spec.template.spec.restartPolicy"),
        "{err}"
    );
    let _ = std::fs::remove_file(&path);
    kok(&c, &["delete", "job", "once"]);
}
