//! The full-stack sample (`lab/full-stack.yaml`) on real servers from the
//! host: nginx → python backends → Redis and MariaDB, every hop by Service
//! name, surviving the deletion of a backend pod (root; installs the Debian
//! packages it needs with `scripts/install-full-stack`, which does not start
//! the host's own services).

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

fn listening_on_host(port: u16) -> bool {
    let out = Command::new("ss").args(["-Hltn"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.split_whitespace()
            .nth(3)
            .is_some_and(|a| a.ends_with(&format!(":{port}")))
    })
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn full_stack_sample_flows_through_every_tier_and_survives_a_backend_loss() {
    require_root!();
    let root = env!("CARGO_MANIFEST_DIR");
    let st = Command::new(format!("{root}/scripts/install-full-stack"))
        .status()
        .expect("scripts/install-full-stack");
    assert!(st.success(), "installing the full-stack packages failed");
    let host_listeners: Vec<u16> = [80, 3306, 6379]
        .into_iter()
        .filter(|p| listening_on_host(*p))
        .collect();

    let c = Cluster::up("full", &["--empty"]);
    let yaml = std::fs::read_to_string(format!("{root}/lab/full-stack.yaml")).unwrap();
    c.apply(&yaml);
    for tier in ["database", "cache", "backend", "frontend"] {
        c.ok(&[
            "wait",
            "--for=condition=Ready",
            "pods",
            "-l",
            &format!("tier={tier}"),
            "-n",
            "fullstack",
            "--timeout",
            "90s",
        ]);
    }
    c.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "-n",
        "fullstack",
    ]);

    // The host's own services were not started by the install.
    for p in [80u16, 3306, 6379] {
        assert!(
            host_listeners.contains(&p) || !listening_on_host(p),
            "something on the host now listens on :{p}"
        );
    }

    let exec = |argv: &[&str]| {
        let mut a = vec!["exec", "-n", "fullstack", "client", "--"];
        a.extend_from_slice(argv);
        let out = c.run(&a);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let get = || -> Result<serde_json::Value, String> {
        let (code, out) = exec(&["curl", "-sS", "--max-time", "5", "http://frontend/"]);
        if code != 0 {
            return Err(format!("curl exit {code}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out:?}"))?;
        match v.get("error") {
            Some(_) => Err(out),
            None => Ok(v),
        }
    };

    // front-end → back-end → Redis (hits) and MariaDB (visits), by name.
    let first = c.eventually(Duration::from_secs(20), "the first request", || get().ok());
    let mut last_hits = first["hits"].as_i64().unwrap();
    let mut last_visits = first["visits"].as_i64().unwrap();
    let mut backends = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let v = get().expect("request through every tier");
        let (h, n) = (v["hits"].as_i64().unwrap(), v["visits"].as_i64().unwrap());
        assert!(h > last_hits && n > last_visits, "counters move: {v}");
        (last_hits, last_visits) = (h, n);
        backends.insert(v["backend"].as_str().unwrap().to_string());
    }
    assert_eq!(backends.len(), 2, "both backends serve: {backends:?}");
    // The database really holds the rows (asked by Service name from a pod,
    // with the password of the Secret the backends and MariaDB read).
    let secret = c.json(&["secret", "db-credentials", "-n", "fullstack"]);
    let password: k8s_openapi::ByteString =
        serde_json::from_value(secret["data"]["password"].clone()).unwrap();
    let password = String::from_utf8(password.0).unwrap();
    assert_eq!(password, "app-password");
    let (code, out) = exec(&[
        "sh",
        "-c",
        &format!(
            "mariadb --no-defaults -h mysql -u app -p'{password}' app -N -e 'SELECT COUNT(*) FROM visits'"
        ),
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim().parse::<i64>().unwrap(), last_visits);
    let (code, out) = exec(&["redis-cli", "-h", "redis-service", "GET", "hits"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim().parse::<i64>().unwrap(), last_hits);

    // Delete one backend pod: every request keeps working.
    let victim = c.items(&["pods", "-n", "fullstack", "-l", "app=backend"])[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok(&["delete", "pod", &victim, "-n", "fullstack", "--wait=false"]);
    let mut after = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let v = get().expect("requests keep working while a backend goes away");
        let h = v["hits"].as_i64().unwrap();
        assert!(h > last_hits, "{v}");
        last_hits = h;
        after.insert(v["backend"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!after.contains(&victim) || after.len() > 1, "{after:?}");
    // The Deployment replaces it and the new pod serves too.
    c.eventually(
        Duration::from_secs(30),
        "a replacement backend serves",
        || {
            let v = get().ok()?;
            let b = v["backend"].as_str()?.to_string();
            (b != victim && !backends.contains(&b)).then_some(())
        },
    );

    // MariaDB and Redis are StatefulSets behind headless Services: their
    // pods have stable names and per-pod DNS names, and their data lives in
    // claims that outlive the pods.
    for (pod, svc) in [("mariadb-0", "mysql"), ("redis-0", "redis-service")] {
        let ip = c.json(&["pod", "-n", "fullstack", pod])["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, out) = exec(&[
            "dig",
            "+short",
            "+tries=1",
            "+timeout=2",
            &format!("{pod}.{svc}.fullstack.svc.cluster.local"),
        ]);
        assert_eq!(
            (code, out.trim()),
            (0, ip.as_str()),
            "{pod} by its own name"
        );
        let (code, out) = exec(&["dig", "+short", "+search", "+tries=1", "+timeout=2", svc]);
        assert_eq!((code, out.trim()), (0, ip.as_str()), "headless {svc}");
    }
    let v = c.eventually(Duration::from_secs(20), "a request", || get().ok());
    let (hits, visits) = (v["hits"].as_i64().unwrap(), v["visits"].as_i64().unwrap());
    c.ok(&["delete", "pod", "mariadb-0", "redis-0", "-n", "fullstack"]);
    for tier in ["database", "cache"] {
        c.ok(&[
            "wait",
            "--for=condition=Ready",
            "pods",
            "-l",
            &format!("tier={tier}"),
            "-n",
            "fullstack",
            "--timeout",
            "90s",
        ]);
    }
    let names: Vec<String> = c
        .items(&["pods", "-n", "fullstack", "-l", "tier in (database,cache)"])
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["mariadb-0", "redis-0"]);
    let v = c.eventually(
        Duration::from_secs(30),
        "a request after the restart",
        || get().ok(),
    );
    assert!(
        v["hits"].as_i64().unwrap() > hits && v["visits"].as_i64().unwrap() > visits,
        "the counters continue from their claims: {v} (before: {hits} hits, {visits} visits)"
    );
}
