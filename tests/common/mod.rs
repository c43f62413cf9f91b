//! Harness for integration tests: real clusters driven through the CLI, as a
//! user would. Each test gets a uniquely named cluster that is torn down
//! (`lab down`) even when the test fails, and checks nothing is left.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn lab_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lab")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Tests that need root are marked `#[ignore = "needs root …"]`, so a plain
/// `cargo test` reports them as ignored with that reason; `scripts/test`
/// runs them as root (`--run-ignored all`). Run by hand without root, one
/// fails here and says why instead of passing without having done anything.
#[macro_export]
macro_rules! require_root {
    () => {
        assert!(
            common::is_root(),
            "this test needs root (network namespaces, veths, mounts): run scripts/test"
        );
    };
}

pub struct Cluster {
    pub name: String,
}

impl Cluster {
    /// A fresh cluster name (≤ 20 chars, unique per process and test).
    pub fn unique_name(tag: &str) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_lowercase())
            .take(6)
            .collect();
        format!("t{}{tag}{n}", std::process::id() % 100000)
    }

    /// `lab up` with extra args (e.g. `--empty`). `LAB_TEST_NODES=N` runs
    /// the cluster on N nodes unless the test chose `--nodes` itself
    /// (scripts/test runs the DNS and Services tests on 3 nodes too).
    pub fn up(tag: &str, args: &[&str]) -> Cluster {
        let c = Cluster {
            name: Self::unique_name(tag),
        };
        let mut full = vec!["up"];
        full.extend_from_slice(args);
        let nodes = std::env::var("LAB_TEST_NODES").unwrap_or_default();
        if !nodes.is_empty() && !args.contains(&"--nodes") {
            full.extend_from_slice(&["--nodes", nodes.as_str()]);
        }
        let out = c.run(&full);
        assert!(
            out.status.success(),
            "lab up failed:\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            c.daemon_log()
        );
        c
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(format!("/var/log/lab/{}/daemon.log", self.name))
            .unwrap_or_default()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, None)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(lab_bin());
        cmd.arg("--cluster").arg(&self.name).args(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run lab");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("lab output")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lab {} failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "lab {} should have failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    pub fn apply(&self, yaml: &str) -> String {
        let out = self.run_stdin(&["apply", "-f", "-"], Some(yaml));
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `lab get … -o json` parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    /// Items of a list (or the object itself).
    pub fn items(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let v = self.json(args);
        match v.get("items") {
            Some(i) => i.as_array().cloned().unwrap_or_default(),
            None => vec![v],
        }
    }

    /// Names of pods matching a selector (not terminating).
    pub fn pods(&self, selector: &str) -> Vec<serde_json::Value> {
        self.items(&["pods", "-l", selector])
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    pub fn wait_ready(&self, what: &[&str], timeout: &str) {
        let mut a = vec!["wait", "--for=condition=Ready", "--timeout", timeout];
        a.extend_from_slice(what);
        self.ok(&a);
    }

    /// Wait until `f` returns Some, or panic after `timeout`.
    pub fn eventually<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n{}",
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `lab exec POD -- argv…` → (exit code, stdout, stderr).
    pub fn exec(&self, pod: &str, argv: &[&str]) -> (i32, String, String) {
        let mut a = vec!["exec", pod, "--"];
        a.extend_from_slice(argv);
        let out = self.run(&a);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        std::fs::read_to_string(format!("/run/lab/{}/daemon.pid", self.name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL the cluster's daemon (pods keep running) and wait until it is gone.
    pub fn kill_daemon(&self) {
        let pid = self.daemon_pid().expect("daemon pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the daemon");
        self.eventually(Duration::from_secs(5), "daemon gone", || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
    }

    pub fn down(&self) {
        let out = self.run(&["down"]);
        assert!(
            out.status.success(),
            "lab down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Named network namespaces whose name starts with `prefix-`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect()
}

/// PIDs of processes whose command line contains `needle`.
pub fn pids_with(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Assert that a cluster left nothing behind.
pub fn assert_gone(name: &str) {
    assert!(
        netns_with_prefix(name).is_empty(),
        "netns left: {:?}",
        netns_with_prefix(name)
    );
    for d in ["/run/lab", "/var/lib/lab", "/var/log/lab"] {
        let p = format!("{d}/{name}");
        assert!(!std::path::Path::new(&p).exists(), "{p} left behind");
    }
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&format!("{name}-")))
        .collect();
    assert!(etc.is_empty(), "/etc/netns entries left: {etc:?}");
    let mut procs = pids_with(&format!("--cluster {name} "));
    procs.extend(pids_with(&format!("/run/lab/{name}/")));
    assert!(procs.is_empty(), "processes left: {procs:?}");
}
