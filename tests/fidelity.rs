//! Small fidelity fixes checked on real clusters (root): `lab exec -it`
//! under a real pty (Debian's dash as an interactive shell: job control,
//! exit code, HOME/TERM/PATH), `/agnhost` inside a container's shell, and
//! re-applying what `lab up` applied.

mod common;
use common::*;
use std::process::Command;

const CLIENT: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n";

/// Run `lab exec -it POD -- sh` on a new pty (python3's pty module), type
/// `script` into it, and return (exit code, everything the terminal showed).
fn interactive_sh(c: &Cluster, pod: &str, script: &str) -> (i32, String) {
    const HARNESS: &str = r#"
import os, pty, select, sys, time
argv, script = sys.argv[1:-1], sys.argv[-1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
sent = False
deadline = time.time() + 20
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and b"$ " in out:
        os.write(fd, script.encode())
        sent = True
    if not sent and time.time() > deadline - 15:
        os.write(fd, script.encode())
        sent = True
_, st = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(st))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(HARNESS)
        .args([
            lab_bin(),
            "--cluster",
            &c.name,
            "exec",
            "-it",
            pod,
            "--",
            "sh",
        ])
        .arg(script)
        .output()
        .expect("python3 (scripts/provision installs it)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn exec_it_runs_an_interactive_shell_on_its_own_pty() {
    require_root!();
    let c = Cluster::up("tty", &["--empty"]);
    c.apply(CLIENT);
    c.wait_ready(&["pod/client"], "30s");
    // The shell is dash (Debian's sh): it complains when it is not a
    // session leader owning its terminal.
    let (code, out) = interactive_sh(
        &c,
        "client",
        "echo \"H=$HOME T=$TERM P=$PATH\"; ps -o pid=,sid=,tpgid=,comm= -p $$; tty; sleep 0.2 & wait; exit 7\n",
    );
    assert_eq!(code, 7, "the shell's exit code passes through:\n{out}");
    assert!(
        !out.contains("Cannot set tty process group") && !out.contains("job control"),
        "{out}"
    );
    assert!(
        out.contains(
            "H=/root T=xterm P=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "{out}"
    );
    // The shell leads its session and is the terminal's foreground group.
    let line = out
        .lines()
        .find(|l| l.trim().ends_with(" sh") || l.trim().ends_with(" dash"))
        .unwrap_or_else(|| panic!("no ps line:\n{out}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f[0], f[1], "session leader: {line}");
    // Its terminal's foreground group is the job running (`ps`, which the
    // shell put in a group of its own: job control works); -1 would mean no
    // controlling terminal.
    let tpgid: i64 = f[2].parse().unwrap();
    assert!(
        tpgid > 0 && f[2] != f[0],
        "job control on its terminal: {line}"
    );
    assert!(out.contains("/dev/pts/"), "stdin is a pty:\n{out}");
    // -t without a terminal on stdin: kubectl's warning, then no pty.
    let o = c.run(&["exec", "-it", "client", "--", "sh", "-c", "tty; exit 4"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Unable to use a TTY"),
        "{o:?}"
    );
    // Without -t: no pty, no TERM, still HOME; exit codes pass through.
    let (code, o, e) = c.exec(
        "client",
        &["sh", "-c", "echo \"H=$HOME T=${TERM:-none}\"; tty; exit 3"],
    );
    assert_eq!(code, 3, "{o}{e}");
    assert!(o.contains("H=/root T=none"), "{o}");
    assert!(o.contains("not a tty"), "{o}");
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn agnhost_is_at_the_root_of_its_pods_and_nowhere_on_the_host() {
    require_root!();
    let c = Cluster::up("agnroot", &["--empty"]);
    // As the e2e suite runs it: the image's /agnhost from a shell.
    c.apply(&format!(
        "{CLIENT}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: srv, labels: {{app: srv}}}}\nspec:\n  containers:\n  - name: c\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    command: [sh, -c, \"/agnhost netexec --http-port=8080\"]\n    volumeMounts: [{{name: cfg, mountPath: /tmp/cfg}}, {{name: scratch, mountPath: /run/scratch}}]\n  volumes:\n  - {{name: cfg, configMap: {{name: cfg}}}}\n  - {{name: scratch, emptyDir: {{}}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg}}\ndata: {{greeting: hello}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: srv}}\nspec:\n  selector: {{app: srv}}\n  ports: [{{port: 80, targetPort: 8080}}]\n"
    ));
    c.wait_ready(&["pod/client", "pod/srv"], "30s");
    // By VIP: the DNS pods of an --empty cluster may still be starting.
    let vip = c
        .json(&["svc", "srv"])
        .pointer("/spec/clusterIP")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_string();
    let (code, out, err) = c.exec(
        "client",
        &[
            "sh",
            "-c",
            &format!("/agnhost connect {vip}:80 --timeout=3s && echo connected"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("connected"), "{out}{err}");
    // The pod's root is read-only like the rest of its view of the host;
    // its /tmp is its own.
    let (code, out, err) = c.exec(
        "client",
        &["sh", "-c", "test -x /agnhost && ! touch /agnhost-x 2>/dev/null && ! touch /etc/lab-x 2>/dev/null && touch /tmp/x && ls / | tr '\\n' ' '"],
    );
    assert_eq!(code, 0, "{out}{err}");
    for d in ["etc", "usr", "proc", "tmp", "agnhost"] {
        assert!(
            out.split_whitespace().any(|e| e == d),
            "{d} missing from / : {out}"
        );
    }
    assert!(!out.contains(".lab-root"), "{out}");
    // Volumes still bind (their sources are reached by descriptor, below
    // the moved root).
    let (code, out, err) = c.exec(
        "srv",
        &[
            "sh",
            "-c",
            "cat /tmp/cfg/greeting && touch /run/scratch/f && test -x /agnhost",
        ],
    );
    assert_eq!((code, out.trim()), (0, "hello"), "{err}");
    // Nothing of it on the host.
    assert!(
        !std::path::Path::new("/agnhost").exists(),
        "/agnhost on the host"
    );
    // A pod of another image has no /agnhost.
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers:\n  - {name: c, image: busybox, command: [sleep, '1000']}\n");
    c.wait_ready(&["pod/plain"], "30s");
    let (code, _, _) = c.exec("plain", &["test", "-e", "/agnhost"]);
    assert_eq!(code, 1);
}

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn reapplying_what_up_applied_is_unchanged_with_lab_and_kubectl() {
    require_root!();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/lab/sample-app.yaml");
    let c = Cluster::up("reapply", &["-f", manifest]);
    let netns = |c: &Cluster| {
        c.json(&["pod", "client"])
            .pointer("/metadata/annotations/lab.dev~1netns")
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let before = netns(&c).expect("the server sets lab.dev/netns on pods");
    let out = c.ok(&["apply", "-f", manifest]);
    for l in out.lines() {
        assert!(l.ends_with(" unchanged"), "lab apply: {out}");
    }
    assert_eq!(
        netns(&c).as_deref(),
        Some(before.as_str()),
        "server annotation kept"
    );
    let kubeconfig = format!("/var/lib/lab/{}/kubeconfig", c.name);
    let kubectl = |args: &[&str]| {
        let o = Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(args)
            .output()
            .expect("kubectl (scripts/provision installs it)");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = kubectl(&["apply", "-f", manifest]);
    assert!(ok, "{out}{err}");
    for l in out.lines() {
        assert!(l.ends_with(" unchanged"), "kubectl apply: {out}{err}");
    }
    assert!(
        !err.contains("missing the kubectl.kubernetes.io/last-applied-configuration"),
        "{err}"
    );
    assert_eq!(netns(&c).as_deref(), Some(before.as_str()));
    // A real change is still a change, and removing an applied label
    // removes it while the server's annotation stays.
    let text = std::fs::read_to_string(manifest).unwrap();
    let changed = text.replacen(
        "  labels:\n    app: client\n",
        "  labels:\n    app: client\n    extra: x\n",
        1,
    );
    assert_ne!(changed, text);
    let out = c.apply(&changed);
    assert!(out.contains("pod/client configured"), "{out}");
    let out = c.apply(&text);
    assert!(out.contains("pod/client configured"), "{out}");
    let pod = c.json(&["pod", "client"]);
    assert!(pod.pointer("/metadata/labels/extra").is_none(), "{pod}");
    assert_eq!(netns(&c).as_deref(), Some(before.as_str()));
    let (ok, out, err) = kubectl(&["apply", "-f", manifest]);
    assert!(
        ok && out.lines().all(|l| l.ends_with(" unchanged")),
        "{out}{err}"
    );
}
