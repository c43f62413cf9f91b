//! Pods cannot escape: what a container (and `lab exec` into it) may do,
//! checked from inside real pods of one real cluster.

mod common;
use common::Cluster;
use std::time::Duration;

/// Docker's and containerd's default capability set, as /proc shows it.
const DEFAULT_CAPS: u64 = 0x00000000a80425fb;
const CAP_KILL: u64 = 1 << 5;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'grep -E "^(CapEff|CapBnd|CapPrm|CapInh|NoNewPrivs|Seccomp):" /proc/self/status; echo "fds: $(ls /proc/self/fd | tr "\n" " ")"; exec sleep 1000']
---
apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext: {privileged: true}
---
apiVersion: v1
kind: Pod
metadata: {name: netadmin}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext:
      capabilities: {add: [NET_ADMIN], drop: [KILL]}
---
apiVersion: v1
kind: Pod
metadata: {name: minimal}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
---
apiVersion: v1
kind: Pod
metadata: {name: escalate}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext: {allowPrivilegeEscalation: true, seccompProfile: {type: Unconfined}}
---
apiVersion: v1
kind: Pod
metadata: {name: nobody}
spec:
  securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true}
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
---
apiVersion: v1
kind: Pod
metadata: {name: rofs}
spec:
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext: {readOnlyRootFilesystem: true}
    volumeMounts: [{name: scratch, mountPath: /srv/lab-rofs-scratch}]
---
apiVersion: v1
kind: Pod
metadata: {name: rootrefused}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sleep, '1000']
    securityContext: {runAsNonRoot: true}
"#;

/// `Name:\thex` lines of /proc/<pid>/status → value.
fn status_field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v, 16).expect("hex")
}

struct Probe<'a> {
    c: &'a Cluster,
}

impl Probe<'_> {
    fn status(&self, pod: &str) -> String {
        let (code, out, err) = self.c.exec(pod, &["cat", "/proc/self/status"]);
        assert_eq!(code, 0, "{pod}: {err}");
        out
    }

    fn caps(&self, pod: &str) -> u64 {
        hex(&status_field(&self.status(pod), "CapEff").unwrap())
    }

    /// Run a shell script in `pod`; (code, stdout+stderr).
    fn sh(&self, pod: &str, script: &str) -> (i32, String) {
        let (code, out, err) = self.c.exec(pod, &["sh", "-c", script]);
        (code, format!("{out}{err}"))
    }

    fn fails(&self, pod: &str, script: &str, what: &str) {
        let (code, out) = self.sh(pod, script);
        assert_ne!(code, 0, "{pod}: {what} must fail, but it worked: {out}");
    }

    fn works(&self, pod: &str, script: &str, what: &str) -> String {
        let (code, out) = self.sh(pod, script);
        assert_eq!(code, 0, "{pod}: {what} must work: {out}");
        out
    }
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn pods_cannot_escape_and_get_exactly_their_privileges() {
    require_root!();
    let c = Cluster::up("isol", &["--empty"]);
    c.apply(PODS);
    for p in [
        "plain", "priv", "netadmin", "minimal", "escalate", "nobody", "rofs",
    ] {
        c.wait_ready(&[&format!("pod/{p}")], "30s");
    }
    let p = Probe { c: &c };
    let host_bnd = hex(&status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    )
    .unwrap());

    // The container itself (its log) and `lab exec` into it: the default set.
    let log = c.eventually(Duration::from_secs(10), "plain's log", || {
        let out = c.run(&["logs", "plain"]);
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        s.contains("Seccomp:").then_some(s)
    });
    assert_eq!(
        hex(&status_field(&log, "CapEff").unwrap()),
        DEFAULT_CAPS,
        "{log}"
    );
    assert_eq!(
        hex(&status_field(&log, "CapBnd").unwrap()),
        DEFAULT_CAPS,
        "{log}"
    );
    assert_eq!(hex(&status_field(&log, "CapInh").unwrap()), 0, "{log}");
    assert_eq!(status_field(&log, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(status_field(&log, "Seccomp").as_deref(), Some("2"));
    // No descriptor of the shim's (its host-side run and log directories,
    // the volume sources) leaks into a container: stdio and ls's own.
    assert!(log.contains("fds: 0 1 2 3 \n"), "{log}");
    let st = p.status("plain");
    assert_eq!(hex(&status_field(&st, "CapEff").unwrap()), DEFAULT_CAPS);
    assert_eq!(hex(&status_field(&st, "CapBnd").unwrap()), DEFAULT_CAPS);
    assert_eq!(status_field(&st, "NoNewPrivs").as_deref(), Some("1"));
    assert_eq!(status_field(&st, "Seccomp").as_deref(), Some("2"));

    // Exactly what was asked for.
    assert_eq!(p.caps("priv"), host_bnd, "privileged: every capability");
    let st = p.status("priv");
    assert_eq!(status_field(&st, "Seccomp").as_deref(), Some("0"));
    assert_eq!(status_field(&st, "NoNewPrivs").as_deref(), Some("0"));
    assert_eq!(
        p.caps("netadmin"),
        (DEFAULT_CAPS | CAP_NET_ADMIN) & !CAP_KILL
    );
    assert_eq!(p.caps("minimal"), CAP_NET_BIND_SERVICE);
    assert_eq!(
        status_field(&p.status("minimal"), "NoNewPrivs").as_deref(),
        Some("1")
    );
    let st = p.status("escalate");
    assert_eq!(status_field(&st, "NoNewPrivs").as_deref(), Some("0"));
    assert_eq!(status_field(&st, "Seccomp").as_deref(), Some("0"));
    assert_eq!(hex(&status_field(&st, "CapEff").unwrap()), DEFAULT_CAPS);
    let st = p.status("nobody");
    assert_eq!(
        hex(&status_field(&st, "CapEff").unwrap()),
        0,
        "non-root: none"
    );
    assert!(
        status_field(&st, "Uid").unwrap().starts_with("65534"),
        "{st}"
    );
    assert!(
        status_field(&st, "Gid").unwrap().starts_with("65534"),
        "{st}"
    );

    // runAsNonRoot without a user: refused, with kubelet's reason.
    c.eventually(Duration::from_secs(20), "rootrefused not started", || {
        let out = c.run(&["logs", "rootrefused"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("runAsNonRoot")
            .then_some(())
    });
    assert!(
        common::pids_with("sleep 1000").len() >= 7,
        "the other pods run"
    );

    // Escapes that must fail from a default pod.
    let c_name = &c.name;
    p.fails("plain", "umount /etc/resolv.conf", "umount");
    p.fails("plain", "umount -l /var/lib/lab", "umount of a mask");
    p.fails("plain", "mount -t tmpfs none /mnt", "mount");
    p.fails("plain", "nsenter -t 1 -m true", "nsenter");
    p.fails("plain", "nsenter --net=/proc/1/ns/net true", "setns");
    p.fails("plain", "unshare -U true", "a new user namespace");
    p.fails("plain", "unshare -m true", "a new mount namespace");
    p.fails("plain", "touch /etc/lab-escape", "writing /etc");
    p.fails("plain", "touch /usr/lab-escape", "writing /usr");
    p.fails("plain", "echo x >> /etc/hosts", "writing /etc/hosts");
    p.fails(
        "plain",
        "v=$(cat /proc/sys/vm/overcommit_memory) && echo $v > /proc/sys/vm/overcommit_memory",
        "writing a kernel sysctl",
    );
    p.fails(
        "plain",
        &format!("cat /var/lib/lab/{c_name}/state.json"),
        "reading state.json",
    );
    p.fails(
        "plain",
        &format!("test -e /run/lab/{c_name}/api.sock"),
        "seeing the admin API socket",
    );
    p.fails(
        "plain",
        &format!("test -e /run/netns/{c_name}-node"),
        "seeing the node netns",
    );
    for d in ["/var/lib/lab", "/var/log/lab", "/etc/netns", "/run"] {
        let out = p.works("plain", &format!("ls -A {d}"), "listing a hidden directory");
        assert!(
            !out.contains("lab") && !out.contains(c_name.as_str()),
            "{d} shows {out}"
        );
    }
    // Not even beneath the covers: no mount of the host's /run (other
    // clusters' network namespaces), /tmp or lab's directories remains in
    // the pod's mount namespace.
    let info = p.works("plain", "cat /proc/self/mountinfo", "mountinfo");
    for line in info.lines() {
        let point = line.split(' ').nth(4).unwrap_or("");
        assert!(
            !point.starts_with("/run/")
                && !point.starts_with("/tmp/")
                && !point.starts_with("/var/lib/lab/")
                && !point.starts_with("/var/log/lab/")
                && !point.starts_with("/dev/shm/"),
            "{line}"
        );
    }
    assert!(
        !info.contains("nsfs"),
        "a network namespace is mounted: {info}"
    );
    // Another pod's logs, by every path the host has.
    assert!(std::path::Path::new(&format!("/var/log/lab/{c_name}/pods")).exists());
    p.fails(
        "plain",
        &format!("ls /var/log/lab/{c_name}/pods"),
        "reading other pods' logs",
    );
    // No host device: /dev holds only the container set.
    let devs = p.works("plain", "ls -A /dev", "ls /dev");
    for d in devs.split_whitespace() {
        assert!(
            [
                "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue",
                "fd", "stdin", "stdout", "stderr"
            ]
            .contains(&d),
            "/dev/{d} is visible in the pod"
        );
    }
    // What a container may do: its own /tmp, /run and /dev/shm.
    p.works(
        "plain",
        "echo ok > /tmp/f && echo ok > /run/f && cat /tmp/f",
        "writing /tmp",
    );
    p.works(
        "plain",
        "cat /etc/resolv.conf | grep -q 'search default.svc'",
        "resolv.conf",
    );
    p.works("plain", "grep -q plain /etc/hosts", "hosts");
    p.works(
        "plain",
        "ls /proc/1/cmdline >/dev/null && test ! -e /proc/kcore -o ! -s /proc/kcore",
        "procfs",
    );

    // readOnlyRootFilesystem: even the pod's /tmp is read-only, volumes are not.
    p.fails(
        "rofs",
        "touch /tmp/x",
        "writing /tmp with readOnlyRootFilesystem",
    );
    p.works(
        "rofs",
        "touch /srv/lab-rofs-scratch/x",
        "writing a volume with readOnlyRootFilesystem",
    );
    // The non-root pod cannot read root's files or gain root via setuid.
    p.fails("nobody", "cat /etc/shadow", "reading /etc/shadow as nobody");

    // A privileged pod can do what its capabilities allow (documented:
    // it is root on the host).
    p.works(
        "priv",
        "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m",
        "privileged mount",
    );
    p.works(
        "netadmin",
        "ip addr add 127.0.0.9/32 dev lo && ip addr del 127.0.0.9/32 dev lo",
        "NET_ADMIN",
    );
    p.fails(
        "plain",
        "ip addr add 127.0.0.9/32 dev lo",
        "NET_ADMIN without the capability",
    );
    c.down();
    common::assert_gone(&c.name);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn state_and_logs_are_for_root_only() {
    require_root!();
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::up("perms", &["--empty"]);
    c.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: secretish}\ndata: {password: hunter2}\n",
    );
    let mode = |p: &str| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    let n = &c.name;
    assert_eq!(mode(&format!("/var/lib/lab/{n}/state.json")), 0o600);
    assert_eq!(mode(&format!("/var/lib/lab/{n}/cluster.json")), 0o600);
    for d in ["/var/lib/lab", "/var/log/lab", "/run/lab"] {
        assert_eq!(mode(&format!("{d}/{n}")), 0o700, "{d}/{n}");
    }
    // Pod logs: 0600 files in 0700 directories.
    let logs = std::fs::read_dir(format!("/var/log/lab/{n}/pods"))
        .unwrap()
        .flatten()
        .next()
        .expect("a pod's log directory (DNS)")
        .path();
    assert_eq!(mode(logs.to_str().unwrap()), 0o700);
    let shim_log = logs.join("shim.log");
    assert_eq!(mode(shim_log.to_str().unwrap()), 0o600);
    c.down();
}
