//! Root tests: real shims in real namespaces. Each test makes its own netns
//! (`labt-shim-<pid>-<n>`) and temp dir and removes them even on failure.

use lab::wire::shim::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lab");

/// `lab shim --spec` returns once the shim is up and its pid file written.
fn shim_pid(run_dir: &Path) -> u32 {
    std::fs::read_to_string(run_dir.join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid")
}
static SEQ: AtomicU32 = AtomicU32::new(0);

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn container(name: &str, argv: Vec<String>) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        argv,
        env: vec![],
        working_dir: None,
        run_as_user: None,
        run_as_group: None,
        mounts: vec![],
        security: Default::default(),
        readiness_probe: None,
        liveness_probe: None,
    }
}

fn exec_probe(cmd: &str, period: u32, failure: u32) -> Probe {
    Probe {
        handler: ProbeHandler::Exec { command: sh(cmd) },
        initial_delay_seconds: 0,
        period_seconds: period,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: failure,
    }
}

struct Pod {
    netns: String,
    dir: tempfile::TempDir,
    spec: ShimSpec,
    pid: Option<u32>,
}

impl Pod {
    fn new(tag: &str, containers: Vec<ContainerSpec>) -> Pod {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let netns = format!("labt-shim-{}-{n}", std::process::id());
        let ip = format!("10.244.{}.{}", 200 + (std::process::id() % 50), 2 + n);
        run("ip", &["netns", "add", &netns]);
        run("ip", &["-n", &netns, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{ip}/32"),
                "dev",
                "lo",
            ],
        );
        let dir = tempfile::Builder::new()
            .prefix("labt-shim-")
            // Not under /tmp: a pod has its own /tmp.
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("resolv.conf"),
            format!("nameserver 10.96.0.10\nsearch {tag}.test\n"),
        )
        .unwrap();
        std::fs::write(
            d.join("hosts"),
            format!("127.0.0.1 localhost\n{ip} {tag}\n"),
        )
        .unwrap();
        std::fs::create_dir_all(d.join("secret")).unwrap();
        std::fs::write(d.join("secret/key"), "s3cret").unwrap();
        std::fs::create_dir_all(d.join("work")).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spec = ShimSpec {
            cluster: "labt".into(),
            namespace: "default".into(),
            pod_name: tag.into(),
            pod_uid: format!("uid-{tag}"),
            hostname: tag.into(),
            netns_path: PathBuf::from("/run/netns").join(&netns),
            pod_ip: ip.parse().unwrap(),
            run_dir: d.join("run"),
            log_dir: d.join("log"),
            resolv_conf: d.join("resolv.conf"),
            hosts: d.join("hosts"),
            hide_paths: vec![
                d.join("secret"),
                PathBuf::from("/run/lab"),
                d.join("does-not-exist"),
            ],
            root_files: vec![],
            restart_policy: RestartPolicy::Always,
            termination_grace_period_seconds: 5,
            log_rotation: Default::default(),
            containers,
        };
        Pod {
            netns,
            dir,
            spec,
            pid: None,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn spawn(&mut self) -> u32 {
        let pid = lab::shim::spawn(Path::new(BIN), &self.spec).expect("spawn");
        self.pid = Some(pid);
        pid
    }

    fn connect(&self) -> Client {
        let s = UnixStream::connect(self.spec.run_dir.join("shim.sock")).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Client {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
            last: None,
        }
    }

    fn log(&self, container: &str, n: u32) -> String {
        std::fs::read_to_string(self.spec.log_dir.join(container).join(format!("{n}.log")))
            .unwrap_or_default()
    }

    fn wait_log(&self, container: &str, n: u32, needle: &str, secs: u64) -> String {
        let t = Instant::now();
        loop {
            let l = self.log(container, n);
            if l.contains(needle) {
                return l;
            }
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "log {container}/{n} never showed {needle:?}: {l:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Inode of the pod's PID namespace.
    fn pid_ns(&self) -> String {
        std::fs::read_link(format!("/proc/{}/ns/pid", self.pid.unwrap()))
            .unwrap()
            .to_string_lossy()
            .to_string()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if let Some(pid) = self.pid
            && lab::shim::is_alive(&self.spec.run_dir) == Some(pid)
        {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap();
    assert!(st.success(), "{cmd} {args:?}");
}

struct Client {
    rd: BufReader<UnixStream>,
    wr: UnixStream,
    last: Option<ShimStatus>,
}

impl Client {
    /// Read statuses until one satisfies `f` (or fail after `secs`).
    fn wait(&mut self, secs: u64, what: &str, f: impl Fn(&ShimStatus) -> bool) -> ShimStatus {
        let t = Instant::now();
        if let Some(s) = &self.last
            && f(s)
        {
            return s.clone();
        }
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {what}; last status {:#?}",
                self.last
            );
            let mut line = String::new();
            match self.rd.read_line(&mut line) {
                Ok(0) => panic!(
                    "socket closed while waiting for {what}; last {:#?}",
                    self.last
                ),
                Ok(_) => {
                    let s: ShimStatus = serde_json::from_str(&line).expect("status json");
                    self.last = Some(s.clone());
                    if f(&s) {
                        return s;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn send(&mut self, c: &ShimCommand) {
        let mut l = serde_json::to_vec(c).unwrap();
        l.push(b'\n');
        // The shim may be gone already (stopped by a signal).
        let _ = self.wr.write_all(&l);
    }

    /// Stop and read until the socket closes; returns the last status.
    fn stop(&mut self, grace: u64, secs: u64) -> ShimStatus {
        self.send(&ShimCommand::Stop {
            grace_seconds: grace,
        });
        let t = Instant::now();
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(secs),
                "stop took too long; last {:#?}",
                self.last
            );
            let mut line = String::new();
            match self.rd.read_line(&mut line) {
                Ok(0) => return self.last.clone().unwrap(),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return self.last.clone().unwrap();
                }
                Ok(_) => self.last = Some(serde_json::from_str(&line).expect("status json")),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn running(s: &ShimStatus, name: &str) -> bool {
    s.containers
        .iter()
        .any(|c| c.name == name && matches!(c.state, ContainerState::Running { .. }))
}

fn get<'a>(s: &'a ShimStatus, name: &str) -> &'a ContainerStatus {
    s.containers.iter().find(|c| c.name == name).unwrap()
}

/// Processes (host-wide) whose PID namespace is `ns`.
fn procs_in_ns(ns: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            !zombie
                && std::fs::read_link(format!("/proc/{p}/ns/pid"))
                    .is_ok_and(|l| l.to_string_lossy() == ns)
        })
        .collect()
}

fn wait_gone(ns: &str, secs: u64) {
    let t = Instant::now();
    while !procs_in_ns(ns).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "pod processes left: {:?}",
            procs_in_ns(ns)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn status_stream_identity_files_and_stop() {
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap();
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut main = container(
        "main",
        sh(
            "echo hello; hostname; cat /etc/resolv.conf; pwd; echo FOO=$FOO; echo PATH=$PATH; \
            ls -A SECRET | wc -l | sed 's/^/hidden=/'; touch SECRET/x 2>/dev/null || echo ro-ok; \
            echo run_lab=$(ls -A /run/lab 2>/dev/null | wc -l); echo pid=$$; echo done; exec sleep 1000",
        ),
    );
    let t0 = Instant::now();
    let mut pod = Pod::new("identity", vec![]);
    let secret = pod.path("secret").to_string_lossy().to_string();
    main.argv[2] = main.argv[2].replace("SECRET", &secret);
    main.env = vec![("FOO".into(), "bar baz".into())];
    main.working_dir = Some(pod.path("work"));
    let mut user = container(
        "user",
        sh("echo uid=$(id -u) gid=$(id -g) groups=$(id -G); pwd; exec sleep 1000"),
    );
    user.run_as_user = Some(65534);
    user.run_as_group = Some(65534);
    user.working_dir = Some(PathBuf::from("/"));
    pod.spec.containers = vec![main, user];
    let setup = t0.elapsed();
    let t1 = Instant::now();
    let pid = pod.spawn();
    let spawned = t1.elapsed();
    let log = pod.wait_log("main", 0, "done", 10);
    eprintln!(
        "spawn() took {spawned:?} (fixture {setup:?}); first log line after {:?}",
        t1.elapsed()
    );

    // Files of the run dir.
    assert_eq!(
        std::fs::read_to_string(pod.spec.run_dir.join("shim.pid"))
            .unwrap()
            .trim(),
        pid.to_string()
    );
    let mode = std::fs::metadata(pod.spec.run_dir.join("shim.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(lab::shim::is_alive(&pod.spec.run_dir), Some(pid));
    assert!(
        std::fs::read_to_string(pod.spec.log_dir.join("shim.log"))
            .unwrap()
            .contains("started")
    );

    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "hello");
    assert_eq!(lines[1], "identity", "hostname");
    assert!(
        log.contains("nameserver 10.96.0.10\nsearch identity.test\n"),
        "{log}"
    );
    assert!(
        log.contains(&format!("{}\n", pod.path("work").display())),
        "workingDir: {log}"
    );
    assert!(log.contains("FOO=bar baz\n"), "{log}");
    assert!(
        log.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{log}"
    );
    assert!(
        log.contains("hidden=0\n"),
        "hidden path must look empty: {log}"
    );
    assert!(
        log.contains("run_lab=0\n"),
        "/run/lab must look empty: {log}"
    );
    assert!(
        log.contains("ro-ok\n"),
        "hidden path must be read-only: {log}"
    );
    assert!(
        log.contains("pid=2\n"),
        "first container is PID 2 of the pod: {log}"
    );
    let ulog = pod.wait_log("user", 0, "uid=", 10);
    assert!(
        ulog.contains("uid=65534 gid=65534 groups=65534\n/\n"),
        "{ulog}"
    );

    // The host is untouched.
    assert_eq!(std::fs::read("/etc/resolv.conf").unwrap(), host_resolv);
    assert_eq!(
        std::fs::read_to_string(pod.path("secret/key")).unwrap(),
        "s3cret"
    );
    // (Other tests add /run/netns mounts concurrently: compare the rest.)
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let strip = |m: &str| m.lines().filter(|l| !l.contains("/run/netns")).count();
    assert_eq!(
        strip(&host_mounts),
        strip(&after),
        "host mount table changed"
    );
    for p in [" /etc/resolv.conf ", " /etc/hosts ", &format!(" {secret} ")] {
        assert!(!after.contains(p), "host sees {p}");
    }
    let pod_mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(pod_mounts.contains(" /etc/resolv.conf "), "{pod_mounts}");

    // Status stream: the current status on connect, Status on request.
    let mut c = pod.connect();
    let s = c.wait(10, "both running and ready", |s| {
        running(s, "main")
            && running(s, "user")
            && s.containers.iter().all(|c| c.ready && c.started)
    });
    assert_eq!(s.shim_pid, pid);
    assert_eq!(s.phase, ShimPhase::Running);
    assert!(s.started_at.ends_with('Z'));
    let mut c2 = pod.connect();
    c2.wait(5, "second client gets status", |s| {
        s.phase == ShimPhase::Running
    });
    c2.send(&ShimCommand::Status);
    c2.last = None;
    c2.wait(5, "status on request", |s| s.phase == ShimPhase::Running);

    // Stop: containers die of SIGTERM (sh exec'd sleep), fast.
    let ns = pod.pid_ns();
    let t = Instant::now();
    let fin = c.stop(10, 10);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "SIGTERM should end it at once: {:?}",
        t.elapsed()
    );
    assert_eq!(fin.phase, ShimPhase::Terminating);
    for ct in &fin.containers {
        match &ct.state {
            ContainerState::Terminated {
                exit_code, signal, ..
            } => assert_eq!((*exit_code, *signal), (143, Some(15))),
            s => panic!("{s:?}"),
        }
    }
    // The other client got the final status too, then EOF.
    let fin2 = c2.stop(10, 5);
    assert_eq!(fin2.phase, ShimPhase::Terminating);
    wait_gone(&ns, 5);
    assert!(!pod.spec.run_dir.join("shim.sock").exists());
    assert!(!pod.spec.run_dir.join("shim.pid").exists());
    assert_eq!(lab::shim::is_alive(&pod.spec.run_dir), None);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn crash_loop_back_off_and_logs_per_restart() {
    let mut pod = Pod::new("crashy", vec![container("app", sh("echo run; exit 1"))]);
    pod.spawn();
    let mut c = pod.connect();
    let s = c.wait(10, "CrashLoopBackOff after a restart", |s| {
        let c = get(s, "app");
        c.restart_count >= 1 && matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff")
    });
    let app = get(&s, "app");
    assert_eq!(s.phase, ShimPhase::Running);
    assert!(!app.ready);
    match &app.state {
        ContainerState::Waiting { message, .. } => {
            assert_eq!(
                message,
                "back-off 10s restarting failed container=app pod=crashy_default(uid-crashy)"
            )
        }
        s => panic!("{s:?}"),
    }
    match app.last_state.as_ref().unwrap() {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (1, "Error")),
        s => panic!("{s:?}"),
    }
    assert_eq!(pod.log("app", 0), "run\n");
    assert_eq!(pod.log("app", 1), "run\n");
    let ns = pod.pid_ns();
    let fin = c.stop(5, 5);
    assert_eq!(fin.phase, ShimPhase::Terminating);
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn container_logs_rotate_and_stay_bounded() {
    // 12 bursts of 200 numbered ~100-byte lines, 0.3 s apart: ~240 KB
    // through a 16 KiB limit with 3 files kept.
    let script = "for r in 0 1 2 3 4 5 6 7 8 9 10 11; do i=0; while [ $i -lt 200 ]; do \
        echo \"line $((r*200+i)) ...........................................................................\"; \
        i=$((i+1)); done; sleep 0.3; done; echo done; exec sleep 1000";
    let mut pod = Pod::new("rotate", vec![container("app", sh(script))]);
    pod.spec.log_rotation = lab::wire::shim::LogRotation {
        max_bytes: 16 << 10,
        max_files: 3,
    };
    pod.spawn();
    let dir = pod.spec.log_dir.join("app");
    let files = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let t = Instant::now();
    let mut most = 0;
    let (names, text) = loop {
        let names = files();
        most = most.max(names.len());
        // Rotated files first (oldest first), the live file last.
        let mut text = String::new();
        for n in names
            .iter()
            .filter(|n| *n != "0.log")
            .chain(["0.log".to_string()].iter())
        {
            text += &std::fs::read_to_string(dir.join(n)).unwrap_or_default();
        }
        let live = std::fs::metadata(dir.join("0.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        if text.contains("done\n") && live < 16 << 10 {
            break (names, text);
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never settled: {names:?}, live {live} bytes"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(most <= 3, "at most 3 files per container, saw {most}");
    assert_eq!(
        names.len(),
        3,
        "two rotated files and the live one: {names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n == "0.log" || n.starts_with("0.log.")),
        "{names:?}"
    );
    for n in names.iter().filter(|n| *n != "0.log") {
        let len = std::fs::metadata(dir.join(n)).unwrap().len();
        assert!(len >= 16 << 10, "{n} rotated at {len} bytes");
    }
    // What is kept is the newest output, in order, ending with the last line.
    let nums: Vec<u32> = text
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(' ').next()?.parse().ok())
        .collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "lines out of order");
    assert_eq!(nums.last(), Some(&2399));
    assert!(nums[0] > 0, "the oldest output was dropped");
    let ns = pod.pid_ns();
    pod.connect().stop(5, 5);
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn never_fails_start_error_and_stays_up() {
    let mut pod = Pod::new(
        "never",
        vec![
            container("a", sh("exit 3")),
            container("b", vec!["/nonexistent/prog".into()]),
        ],
    );
    pod.spec.restart_policy = RestartPolicy::Never;
    let pid = pod.spawn();
    let mut c = pod.connect();
    let s = c.wait(10, "Failed", |s| s.phase == ShimPhase::Failed);
    match &get(&s, "a").state {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (3, "Error")),
        s => panic!("{s:?}"),
    }
    match &get(&s, "b").state {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (128, "StartError")),
        s => panic!("{s:?}"),
    }
    assert!(
        pod.log("b", 0).contains("No such file or directory"),
        "{}",
        pod.log("b", 0)
    );
    assert!(s.containers.iter().all(|c| c.restart_count == 0));
    // A new connection answering with the final status proves the shim
    // stayed up after its pod ended.
    let mut c2 = pod.connect();
    c2.wait(5, "status still readable", |s| s.phase == ShimPhase::Failed);
    assert_eq!(
        lab::shim::is_alive(&pod.spec.run_dir),
        Some(pid),
        "shim stays up after the pod ended"
    );
    let t = Instant::now();
    c.stop(30, 5);
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn on_failure_succeeds() {
    let mut pod = Pod::new(
        "onfail",
        vec![
            container("a", sh("exit 0")),
            container("b", sh("sleep 0.2")),
        ],
    );
    pod.spec.restart_policy = RestartPolicy::OnFailure;
    pod.spawn();
    let mut c = pod.connect();
    let s = c.wait(10, "Succeeded", |s| s.phase == ShimPhase::Succeeded);
    assert!(
        s.containers
            .iter()
            .all(|c| c.restart_count == 0 && !c.ready)
    );
    c.stop(1, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn daemonized_processes_die_and_grace_is_honoured() {
    // `stubborn` ignores SIGTERM (so only SIGKILL after the grace period
    // ends it) and leaves daemonized processes behind.
    let stubborn = container(
        "stubborn",
        sh(
            "trap '' TERM; sleep 1000 & setsid sleep 1001 & (sleep 1002 &); echo up; while :; do sleep 0.2; done",
        ),
    );
    let polite = container(
        "polite",
        sh("trap 'echo bye; exit 0' TERM; echo trapped; while :; do sleep 0.1; done"),
    );
    let mut pod = Pod::new("daemons", vec![stubborn, polite]);
    pod.spawn();
    pod.wait_log("stubborn", 0, "up", 10);
    // A TERM before the shell has set its trap would kill it instead.
    pod.wait_log("polite", 0, "trapped", 10);
    let mut c = pod.connect();
    c.wait(10, "running", |s| {
        running(s, "stubborn") && running(s, "polite")
    });
    let ns = pod.pid_ns();
    assert!(procs_in_ns(&ns).len() >= 6, "{:?}", procs_in_ns(&ns));
    let t = Instant::now();
    // A second stop may shorten the grace period (60 s → 2 s).
    c.send(&ShimCommand::Stop { grace_seconds: 60 });
    let fin = c.stop(2, 10);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "stop took {took:?}"
    );
    match &get(&fin, "stubborn").state {
        ContainerState::Terminated { signal, .. } => assert_eq!(*signal, Some(9)),
        s => panic!("{s:?}"),
    }
    match &get(&fin, "polite").state {
        ContainerState::Terminated {
            exit_code, reason, ..
        } => assert_eq!((*exit_code, reason.as_str()), (0, "Completed")),
        s => panic!("{s:?}"),
    }
    assert!(pod.log("polite", 0).contains("bye"));
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn sigterm_to_the_shim_stops_the_pod() {
    let mut pod = Pod::new("sigterm", vec![container("a", sh("exec sleep 1000"))]);
    let pid = pod.spawn();
    let mut c = pod.connect();
    c.wait(10, "running", |s| running(s, "a"));
    let ns = pod.pid_ns();
    run("kill", &["-TERM", &pid.to_string()]);
    let fin = c.stop(5, 5); // the Stop sent here is redundant
    assert_eq!(fin.phase, ShimPhase::Terminating);
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn probes_readiness_flips_and_liveness_restarts() {
    let mut app = container(
        "app",
        sh("echo started; sleep 1.5; touch ready-flag; exec sleep 1000"),
    );
    app.working_dir = None;
    let mut pod = Pod::new("probes", vec![]);
    let flag = pod.path("work");
    app.working_dir = Some(flag.clone());
    app.readiness_probe = Some(exec_probe(
        "test -f ready-flag && test \"$MARK\" = m1",
        1,
        1,
    ));
    app.env = vec![("MARK".into(), "m1".into())];
    // The host is read-only in the pod: the flag directory is a volume.
    app.mounts = vec![MountSpec {
        source: flag.clone(),
        target: flag.clone(),
        read_only: false,
    }];
    let mut sick = container("sick", sh("exec sleep 1000"));
    sick.liveness_probe = Some(exec_probe("exit 1", 1, 2));
    pod.spec.containers = vec![app, sick];
    pod.spawn();
    let mut c = pod.connect();
    let s = c.wait(10, "app running, not ready", |s| running(s, "app"));
    assert!(!get(&s, "app").ready);
    let t = Instant::now();
    c.wait(10, "app ready", |s| get(s, "app").ready);
    assert!(t.elapsed() >= Duration::from_millis(500), "ready too early");
    // Removing the flag makes it unready again.
    std::fs::remove_file(flag.join("ready-flag")).unwrap();
    c.wait(10, "app unready", |s| {
        !get(s, "app").ready && running(s, "app")
    });
    let s = c.wait(15, "sick restarted by liveness", |s| {
        get(s, "sick").restart_count >= 1
    });
    match get(&s, "sick").last_state.as_ref() {
        Some(ContainerState::Terminated {
            signal, exit_code, ..
        }) => assert_eq!((*exit_code, *signal), (137, Some(9))),
        other => panic!("{other:?}"),
    }
    let ns = pod.pid_ns();
    c.stop(2, 10);
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn http_and_tcp_probes() {
    if !Path::new("/usr/bin/python3").exists() {
        eprintln!("skipped: no /usr/bin/python3");
        return;
    }
    let mut web = container(
        "web",
        vec![
            "/usr/bin/python3".into(),
            "-m".into(),
            "http.server".into(),
            "8080".into(),
        ],
    );
    let mut pod = Pod::new("http", vec![]);
    web.working_dir = Some(pod.path("work"));
    std::fs::write(pod.path("work/ok.html"), "ok").unwrap();
    web.readiness_probe = Some(Probe {
        handler: ProbeHandler::HttpGet {
            host: None, // the pod IP
            port: 8080,
            path: "/ok.html".into(),
            headers: vec![("X-Test".into(), "1".into())],
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 1,
    });
    web.liveness_probe = Some(Probe {
        handler: ProbeHandler::TcpSocket {
            host: Some("127.0.0.1".into()),
            port: 8080,
        },
        initial_delay_seconds: 3,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 2,
    });
    // A 404 readiness probe never gets ready.
    let mut web404 = container("web404", sh("exec sleep 1000"));
    web404.readiness_probe = Some(Probe {
        handler: ProbeHandler::HttpGet {
            host: Some("127.0.0.1".into()),
            port: 8080,
            path: "/missing".into(),
            headers: vec![],
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 1,
    });
    pod.spec.containers = vec![web, web404];
    pod.spawn();
    let mut c = pod.connect();
    c.wait(15, "web ready through httpGet", |s| get(s, "web").ready);
    let log = pod.wait_log("web", 0, "/ok.html", 5);
    assert!(log.contains("GET /ok.html"), "{log}");
    // Four more probe periods (the readiness probe logs each one): the
    // failing probes have had their chances to act by then.
    let t = Instant::now();
    while pod.log("web", 0).matches("GET /ok.html").count() < 5 {
        assert!(t.elapsed() < Duration::from_secs(15), "probes stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.send(&ShimCommand::Status);
    c.last = None;
    let s = c.wait(5, "status", |_| true);
    assert_eq!(get(&s, "web").restart_count, 0, "tcp liveness passes");
    assert!(!get(&s, "web404").ready, "404 is a failure");
    c.stop(2, 10);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn mounts_do_not_leak_even_with_a_shared_root() {
    // Run the shim inside a private mount namespace of this test whose `/`
    // is made *shared*; a `sleep` keeps that namespace observable.
    // The sources lie under a hidden path (as emptyDir/configMap volumes
    // lie under /var/lib/lab): the binds must still see them.
    let mut app = container(
        "app",
        sh(
            "cat TGT/file; touch TGT/new 2>/dev/null || echo ro-ok; cat TFILE; echo; ls -A SECRET | wc -l; exec sleep 1000",
        ),
    );
    let mut pod = Pod::new("mounts", vec![]);
    for d in ["mnt", "secret/src"] {
        std::fs::create_dir_all(pod.path(d)).unwrap();
    }
    std::fs::write(pod.path("secret/src/file"), "from-src").unwrap();
    let (mnt, tgt, tfile) = (
        pod.path("mnt"),
        pod.path("tgt/deeper"),
        pod.path("tfile-dir/key"),
    );
    app.argv[2] = app.argv[2]
        .replace("TGT", &tgt.to_string_lossy())
        .replace("TFILE", &tfile.to_string_lossy())
        .replace("SECRET", &pod.path("secret").to_string_lossy());
    app.mounts = vec![
        MountSpec {
            source: pod.path("secret/src"),
            target: tgt.clone(),
            read_only: true,
        },
        MountSpec {
            source: pod.path("secret/key"),
            target: tfile.clone(),
            read_only: false,
        },
    ];
    // A second container, without mounts, shares the pod's mount view.
    let mut viewer = container(
        "viewer",
        sh("mkdir -p MNT && mount -t tmpfs tmpfs MNT && echo mounted; exec sleep 1000"),
    );
    // Mounting needs CAP_SYS_ADMIN and no seccomp filter.
    viewer.security = Security::privileged();
    viewer.argv[2] = viewer.argv[2].replace("MNT", &mnt.to_string_lossy());
    pod.spec.containers = vec![app, viewer];
    let spec_path = pod.path("spec-in.json");
    std::fs::write(&spec_path, serde_json::to_vec(&pod.spec).unwrap()).unwrap();
    let mpid_file = pod.path("mpid");
    let script = format!(
        "mount --make-rshared / || exit 9; sleep 120 </dev/null >/dev/null 2>&1 & echo $! > {}; exec {BIN} shim --spec {}",
        mpid_file.display(),
        spec_path.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = shim_pid(&pod.spec.run_dir);
    pod.pid = Some(pid);
    let mpid: u32 = std::fs::read_to_string(&mpid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
    let _sleeper = KillOnDrop(mpid);
    let log = pod.wait_log("app", 0, "ro-ok\ns3cret\n0", 10);
    assert_eq!(
        log, "from-srcro-ok\ns3cret\n0\n",
        "binds work and the hidden path is hidden again"
    );
    pod.wait_log("viewer", 0, "mounted", 10);

    let m_info = std::fs::read_to_string(format!("/proc/{mpid}/mountinfo")).unwrap();
    assert!(
        m_info.contains(" shared:"),
        "the test namespace's / is shared: {m_info}"
    );
    let host_info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let pod_info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let m = format!(" {} ", mnt.display());
    let t = format!(" {} ", tgt.display());
    assert!(
        pod_info.contains(&m),
        "the container's mount is in the pod: {pod_info}"
    );
    assert!(pod_info.contains(" /etc/resolv.conf "));
    assert!(
        !pod_info.contains(&t),
        "a container's own mounts stay in its own namespace"
    );
    let with_bind: Vec<u32> = procs_in_ns(&pod.pid_ns())
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/mountinfo")).is_ok_and(|i| i.contains(&t))
        })
        .collect();
    assert_eq!(with_bind.len(), 1, "only the app container has the bind");
    for (who, info) in [("shared parent", &m_info), ("host", &host_info)] {
        assert!(!info.contains(&m), "{who} sees the pod's tmpfs");
        assert!(!info.contains(&t), "{who} sees the container's bind");
        assert!(
            !info.contains(" /etc/resolv.conf "),
            "{who} sees the resolv.conf bind"
        );
        assert!(!info.contains(" /etc/hosts "), "{who} sees the hosts bind");
    }
    let mut c = pod.connect();
    c.wait(10, "running", |s| running(s, "viewer"));
    c.stop(2, 10);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn shim_outlives_the_process_that_spawned_it() {
    let mut pod = Pod::new("orphan", vec![container("a", sh("exec sleep 1000"))]);
    // is_alive() recognises a shim by its spec path in the run dir.
    std::fs::create_dir_all(&pod.spec.run_dir).unwrap();
    let spec_path = pod.spec.run_dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&pod.spec).unwrap()).unwrap();
    let out = Command::new(BIN)
        .args(["shim", "--spec", &spec_path.to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = shim_pid(&pod.spec.run_dir);
    pod.pid = Some(pid);
    // The spawner has exited (output() reaped it); the shim answering a
    // status request proves it outlived it.
    let mut c = pod.connect();
    c.wait(10, "running", |s| running(s, "a"));
    assert_eq!(lab::shim::is_alive(&pod.spec.run_dir), Some(pid));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // state ppid pgrp session
    assert_ne!(
        fields[1],
        std::process::id().to_string(),
        "reparented away from us"
    );
    assert_eq!(fields[3], pid.to_string(), "own session");
    c.stop(2, 10);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn enter_and_exec_runs_in_the_pod() {
    let mut pod = Pod::new("execpod", vec![container("a", sh("exec sleep 1000"))]);
    let pid = pod.spawn();
    let mut c = pod.connect();
    c.wait(10, "running", |s| running(s, "a"));
    let exec = |script: &str, env: &[(String, String)], user: Option<u32>| {
        lab::shim::enter_and_exec(
            pid,
            &sh(script),
            env,
            Some(Path::new("/tmp")),
            user,
            user,
            None,
            &Security::default(),
        )
    };
    // `hostname` runs in the pod (output to our stdout) and exits 0.
    assert_eq!(
        lab::shim::enter_and_exec(
            pid,
            &["hostname".into()],
            &[],
            None,
            None,
            None,
            None,
            &Security::default()
        )
        .unwrap(),
        0
    );
    assert_eq!(
        exec("test \"$(hostname)\" = execpod && exit 7", &[], None).unwrap(),
        7
    );
    assert_eq!(exec("exit 3", &[], None).unwrap(), 3);
    assert_eq!(exec("kill -9 $$", &[], None).unwrap(), 137);
    // PID namespace: PID 1 is the shim; mount view: the pod's resolv.conf.
    assert_eq!(
        exec(
            "grep -q shim /proc/1/cmdline && grep -q 10.96.0.10 /etc/resolv.conf && exit 5",
            &[],
            None
        )
        .unwrap(),
        5
    );
    // Exactly the given env (plus PATH, and HOME from /etc/passwd as a
    // container runtime adds it), cwd, user.
    let env = vec![("A".into(), "b".into())];
    assert_eq!(
        exec(
            "test \"$A\" = b && test \"$(pwd)\" = /tmp && test \"$HOME\" = /root && test -z \"$TERM\" && exit 6",
            &env,
            None
        )
        .unwrap(),
        6
    );
    assert_eq!(
        exec("test $(id -u) = 65534 && exit 8", &[], Some(65534)).unwrap(),
        8
    );
    let e = lab::shim::enter_and_exec(
        pid,
        &["/no/such/thing".into()],
        &[],
        None,
        None,
        None,
        None,
        &Security::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("No such file"), "{e}");
    // An exec'd process that lingers is killed when the pod stops.
    let ns = pod.pid_ns();
    let t = std::thread::spawn(move || {
        lab::shim::enter_and_exec(
            pid,
            &sh("trap '' TERM; sleep 1000"),
            &[],
            None,
            None,
            None,
            None,
            &Security::default(),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    c.stop(1, 10);
    let code = t.join().unwrap().unwrap();
    assert_eq!(code, 137);
    wait_gone(&ns, 5);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn spawn_reports_a_bad_netns() {
    let mut pod = Pod::new("badns", vec![container("a", sh("exec sleep 1000"))]);
    pod.spec.netns_path = PathBuf::from("/run/netns/labt-shim-does-not-exist");
    let e = lab::shim::spawn(Path::new(BIN), &pod.spec).unwrap_err();
    assert!(e.to_string().contains("labt-shim-does-not-exist"), "{e}");
    assert_eq!(lab::shim::is_alive(&pod.spec.run_dir), None);
}
