//! The streaming subresources driven by the real `kubectl` against a real
//! cluster: `exec` (output, exit codes, stdin, `cp` both ways, `-it` under a
//! pty with its size), SPDY-only clients refused with a clear message, `attach`,
//! `port-forward` to a pod and a Service (curl from the host loopback
//! answers from the pod), `lab port-forward` for pod/svc/deploy, and a
//! forward to a pod that is deleted ending (kubectl's and lab's); and the
//! `kube` crate exec'ing and forwarding a port (the older channel protocol);
//! `lab exec` as a client of the same `pods/exec` (stdin, exit codes, the
//! errors kubectl prints, `-it` following the window's size).
//!
//! kubectl must be on PATH (`scripts/provision` installs Debian's
//! kubernetes-client): without it these tests fail, they do not skip.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn kubeconfig(c: &Cluster) -> String {
    format!("/var/lib/lab/{}/kubeconfig", c.name)
}

fn kubectl_cmd(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig(c))
        .env("HOME", std::env::temp_dir())
        .env_remove("KUBECTL_REMOTE_COMMAND_WEBSOCKETS")
        .env_remove("KUBECTL_PORT_FORWARD_WEBSOCKETS")
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    kubectl_cmd(c, args)
        .output()
        .expect("kubectl must be installed (scripts/provision installs kubernetes-client)")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A background process killed when the test is done (or fails).
struct Bg {
    child: Child,
    lines: mpsc::Receiver<String>,
    err: std::thread::JoinHandle<String>,
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bg {
    fn start(mut cmd: Command) -> Bg {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        Bg { child, lines, err }
    }

    /// The first stdout line satisfying `f`, within `timeout`.
    fn line(&self, timeout: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return l,
                Ok(_) => {}
                Err(_) => panic!("no line with {what} within {timeout:?}"),
            }
        }
    }

    /// The local port from `Forwarding from 127.0.0.1:PORT -> REMOTE`.
    fn forwarding_port(&self, remote: u16) -> u16 {
        let l = self.line(Duration::from_secs(30), "Forwarding from", |l| {
            l.starts_with("Forwarding from 127.0.0.1:")
        });
        assert!(l.ends_with(&format!("-> {remote}")), "{l}");
        l.trim_start_matches("Forwarding from 127.0.0.1:")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Wait for the process to end by itself: (exit code, stderr).
    fn ends_within(mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let err = std::mem::replace(&mut self.err, std::thread::spawn(String::new));
                return (st.code(), err.join().unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "the process did not end within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// GET on the cluster's admin socket: (body, HTTP code).
fn curl_unix(c: &Cluster, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(format!("/run/lab/{}/api.sock", c.name))
        .arg(format!("http://lab{path}"))
        .output()
        .expect("curl");
    let t = text(&out.stdout);
    let (body, code) = t.rsplit_once('\n').unwrap_or((&t, ""));
    (body.to_string(), code.to_string())
}

fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {}", out.status);
    text(&out.stdout)
}

const TICKER: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: ticker
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    command: [\"sh\", \"-c\", \"i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done\"]
---
apiVersion: v1
kind: Pod
metadata:
  name: victim
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: v
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    args: [\"netexec\", \"--http-port=8080\"]
    ports:
    - name: http
      containerPort: 8080
";

/// `kubectl exec -it` under a real terminal (python3's pty module) of
/// 40 rows × 120 columns: the command sees a terminal of that size, reads a
/// line typed into it, and its exit code comes back.
const PTY_DRIVER: &str = r#"
import os, pty, sys, time, select, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.execvp("kubectl", ["kubectl", "exec", "-it", "client", "--", "sh", "-c",
        "stty size; echo in-tty; read x; echo got:$x; exit 7"])
out = b""
deadline = time.time() + 30
sent = False
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.5)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if b"in-tty" in out and not sent:
        os.write(fd, b"hello\r")
        sent = True
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nexit=%d\n" % os.waitstatus_to_exitcode(st))
"#;

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kubectl_exec_attach_and_port_forward() {
    require_root!();
    let c = Cluster::up("strm", &[]);
    c.apply(TICKER);
    c.wait_ready(&["pod", "--all"], "60s");

    // exec: output, exit codes, stdin.
    let out = kubectl(&c, &["exec", "client", "--", "echo", "hi"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    let out = kubectl(
        &c,
        &[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    let err = text(&out.stderr);
    assert!(err.contains("err\n"), "{err}");
    assert!(err.contains("command terminated with exit code 3"), "{err}");
    let mut cat = kubectl_cmd(&c, &["exec", "-i", "client", "--", "cat"]);
    cat.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cat.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"x\nsecond line\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "x\nsecond line\n");
    let out = kubectl(&c, &["exec", "client", "--", "no-such-command"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no-such-command"),
        "{}",
        text(&out.stderr)
    );

    // kubectl cp is tar over exec: binary stdin and stdout, both ways.
    let dir = std::env::temp_dir().join(format!("{}-cp", c.name));
    std::fs::create_dir_all(&dir).unwrap();
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("in.bin"), &data).unwrap();
    let src = dir.join("in.bin").to_string_lossy().to_string();
    let back = dir.join("back.bin").to_string_lossy().to_string();
    for args in [
        ["cp", src.as_str(), "client:/tmp/in.bin"],
        ["cp", "client:/tmp/in.bin", back.as_str()],
    ] {
        let out = kubectl(&c, &args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(
        std::fs::read(&back).unwrap() == data,
        "kubectl cp changed the bytes"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // exec -it under a pty.
    let out = Command::new("python3")
        .arg("-c")
        .arg(PTY_DRIVER)
        .env("KUBECONFIG", kubeconfig(&c))
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("python3");
    let o = text(&out.stdout);
    assert!(o.contains("40 120"), "{o}");
    assert!(o.contains("got:hello"), "{o}");
    assert!(o.contains("exit=7"), "{o}");

    // A client that only speaks SPDY is told what to use.
    let mut spdy = kubectl_cmd(&c, &["exec", "client", "--", "true"]);
    spdy.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
    let out = spdy.output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("BadRequest") && err.contains("WebSocket only"),
        "{err}"
    );

    // attach streams what the container writes from now on.
    let attach = Bg::start(kubectl_cmd(&c, &["attach", "ticker"]));
    let first = attach.line(Duration::from_secs(20), "tick", |l| l.starts_with("tick "));
    let n: u64 = first[5..].parse().unwrap();
    let next = attach.line(Duration::from_secs(5), "the next tick", |l| {
        l.starts_with("tick ")
    });
    assert!(next[5..].parse::<u64>().unwrap() > n, "{first} then {next}");
    // It ends (successfully) when the container's run ends.
    c.ok(&["delete", "pod", "ticker", "--wait=false"]);
    let (code, err) = attach.ends_within(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");

    // port-forward to a pod, then to a Service (one of its ready pods, at
    // its targetPort), from the host's loopback.
    let pf = Bg::start(kubectl_cmd(&c, &["port-forward", "pod/client", "0:8080"]));
    let port = pf.forwarding_port(8080);
    for _ in 0..3 {
        assert_eq!(curl(&format!("http://127.0.0.1:{port}/hostname")), "client");
    }
    drop(pf);
    let pf = Bg::start(kubectl_cmd(
        &c,
        &["port-forward", "svc/backend-service", "0:80"],
    ));
    let port = pf.forwarding_port(8080);
    let host = curl(&format!("http://127.0.0.1:{port}/hostname"));
    assert!(host.starts_with("backend-"), "{host}");
    drop(pf);

    // The same natively, for pod, svc (named target port) and deploy.
    let lab = |args: &[&str]| {
        let mut cmd = Command::new(lab_bin());
        cmd.arg("--cluster")
            .arg(&c.name)
            .arg("port-forward")
            .args(args);
        Bg::start(cmd)
    };
    let pf = lab(&["svc/backend-service", ":80"]);
    let port = pf.forwarding_port(8080);
    assert!(curl(&format!("http://127.0.0.1:{port}/hostname")).starts_with("backend-"));
    drop(pf);
    let pf = lab(&["deploy/frontend", "0:http"]);
    let port = pf.forwarding_port(8080);
    assert!(curl(&format!("http://127.0.0.1:{port}/hostname")).starts_with("frontend-"));
    // Ctrl-C ends it quietly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pf.child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (code, err) = pf.ends_within(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    let out = c.run(&["port-forward", "svc/backend-service", "9999"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("does not have a service port 9999"),
        "{}",
        text(&out.stderr)
    );

    // A forward to a pod that is deleted ends, and its open connection with it.
    let kpf = Bg::start(kubectl_cmd(&c, &["port-forward", "pod/victim", "0:8080"]));
    let lpf = lab(&["pod/victim", "0:http"]);
    kpf.forwarding_port(8080);
    let lport = lpf.forwarding_port(8080);
    assert_eq!(
        curl(&format!("http://127.0.0.1:{lport}/hostname")),
        "victim"
    );
    let held = Command::new("curl")
        .args(["-s", "-m", "30"])
        .arg(format!("http://127.0.0.1:{lport}/shell?cmd=sleep+25"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    c.ok(&["delete", "pod", "victim"]);
    let (code, err) = kpf.ends_within(Duration::from_secs(15));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("lost connection to pod"), "{err}");
    let (code, err) = lpf.ends_within(Duration::from_secs(15));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("lost connection to pod"), "{err}");
    let mut held = held;
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the forwarded connection outlived the pod"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("forwards ended {:?} after the delete began", t0.elapsed());
}

/// `lab exec -it` on a new pty sized 40x120 inside a shell; once the
/// command is running the window becomes 50x100 (SIGWINCH to lab), then a
/// line is typed. After lab exits the shell prints its exit code and the
/// terminal's settings (restored from raw mode or not).
const LAB_PTY_DRIVER: &str = r#"
import os, pty, sys, time, select, fcntl, termios, struct
lab, cluster = sys.argv[1], sys.argv[2]
inner = "stty size; echo ready; read x; stty size; echo got:$x; exit 7"
script = '"$0" --cluster "$1" exec -it client -- sh -c "$2"; echo "rc=$?"; stty -a'
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    os.execvp("sh", ["sh", "-c", script, lab, cluster, inner])
out = b""
deadline = time.time() + 30
stage = 0
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if stage == 0 and b"ready" in out:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 100, 0, 0))
        stage, resized = 1, time.time()
    elif stage == 1 and time.time() - resized > 0.5:
        os.write(fd, b"hello\r")
        stage = 2
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nexit=%d\n" % os.waitstatus_to_exitcode(st))
"#;

#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn lab_exec_is_a_pods_exec_client() {
    require_root!();
    let c = Cluster::up("labexec", &["--empty"]);
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.47, args: [pause]}\n",
    );
    c.wait_ready(&["pod/client"], "30s");

    // The daemon starts the command for pods/exec (its log names it); the
    // lab-only path lab exec used before is gone.
    let (code, out, err) = c.exec("client", &["echo", "through-pods-exec"]);
    assert_eq!((code, out.as_str()), (0, "through-pods-exec\n"), "{err}");
    let log = c.daemon_log();
    assert!(
        log.lines()
            .any(|l| l.contains("lab::daemon::kube::stream: exec")
                && l.contains(r#"command=["echo", "through-pods-exec"]"#)),
        "{log}"
    );
    let (body, code) = curl_unix(
        &c,
        "/apis/lab.dev/v1/namespaces/default/pods/client/exectarget",
    );
    assert_eq!(code, "404", "{body}");

    // Exit codes, stdout and stderr apart, as kubectl.
    let (code, out, err) = c.exec("client", &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    let (code, _, _) = c.exec("client", &["sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 137);
    // stdin with -i (closed at its end: cat ends); without -i the command
    // reads nothing, as with kubectl.
    let data: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let o = c.run_stdin(
        &["exec", "-i", "client", "--", "sh", "-c", "cat; echo end"],
        Some(&data),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{data}end\n"));
    let o = c.run_stdin(&["exec", "client", "--", "wc", "-c"], Some("abc"));
    assert_eq!(text(&o.stdout).trim(), "0");
    // The image's /agnhost runs as the server maps it (the same for
    // kubectl): `connect` to a closed port says so on stderr, exit 1.
    let (code, out, err) = c.exec(
        "client",
        &["/agnhost", "connect", "127.0.0.1:1", "--timeout", "1s"],
    );
    assert_eq!((code, err.trim()), (1, "REFUSED"), "{out}{err}");

    // What cannot run: the Status message as kubectl prints it, exit 1.
    let fails = |args: &[&str]| -> String {
        let o = c.run(args);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        text(&o.stderr)
    };
    let e = fails(&["exec", "client", "--", "no-such-command"]);
    assert!(
        e.starts_with("error: error executing command in container: ")
            && e.contains("no-such-command"),
        "{e}"
    );
    let e = fails(&["exec", "nope", "--", "true"]);
    assert_eq!(e, "error: pods \"nope\" not found\n");
    let e = fails(&["exec", "client", "-c", "nope", "--", "true"]);
    assert_eq!(e, "error: container nope is not valid for pod client\n");
    // kubectl falls back to SPDY when the WebSocket upgrade is refused: it
    // must still see why (not "WebSocket only"), as from the API server.
    let o = kubectl(&c, &["exec", "client", "-c", "nope", "--", "true"]);
    assert_eq!(
        text(&o.stderr),
        "Error from server (BadRequest): container nope is not valid for pod client\n"
    );
    // pods/log: the API server's (and kubelet's) 400s, not a 404.
    let o = kubectl(&c, &["logs", "client", "-c", "nope"]);
    assert!(
        text(&o.stderr).contains("container nope is not valid for pod client"),
        "{o:?}"
    );
    let o = kubectl(&c, &["logs", "client", "--previous"]);
    assert_eq!(
        text(&o.stderr),
        "Error from server (BadRequest): previous terminated container \"c\" in pod \"client\" not found\n"
    );

    // -t without -i: no terminal and no warning, as kubectl.
    let o = c.run(&["exec", "-t", "client", "--", "sh", "-c", "tty; exit 2"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
        ("not a tty\n", "")
    );

    // -it under a pty: the first size, then the new one after SIGWINCH;
    // the exit code; the terminal back in cooked mode afterwards.
    let out = Command::new("python3")
        .arg("-c")
        .arg(LAB_PTY_DRIVER)
        .args([lab_bin(), &c.name])
        .output()
        .expect("python3");
    let o = text(&out.stdout);
    let (first, second) = (o.find("40 120"), o.find("50 100"));
    assert!(
        first.is_some() && second.is_some() && first < second,
        "sizes: {o}"
    );
    assert!(o.contains("got:hello"), "{o}");
    assert!(o.contains("rc=7"), "{o}");
    assert!(
        o.contains(" icanon ") && o.contains(" echo ") && o.contains("opost"),
        "the terminal is restored: {o}"
    );
}

const WEB: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.47
    args: [\"netexec\", \"--http-port=8080\"]
";

/// A client library (the `kube` crate) execs and forwards a port: it
/// speaks v5/v4.channel.k8s.io for exec and the older channel protocol
/// (`?ports=`) for port-forward.
#[test]
#[ignore = "needs root (namespaces, mounts): scripts/test runs it as root"]
fn kube_client_execs_and_forwards_a_port() {
    require_root!();
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Cluster::up("kstrm", &["--empty"]);
    c.apply(WEB);
    c.wait_ready(&["pod/web"], "60s");
    let path = kubeconfig(&c);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(kube::Client::try_from(cfg).unwrap(), "default");
        let limit = Duration::from_secs(20);

        let mut p = pods
            .exec(
                "web",
                ["sh", "-c", "echo from-kube; exit 4"],
                &AttachParams::default().stderr(false),
            )
            .await
            .unwrap();
        let mut out = String::new();
        let mut stdout = p.stdout().unwrap();
        tokio::time::timeout(limit, stdout.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out, "from-kube\n");
        let st = tokio::time::timeout(limit, p.take_status().unwrap())
            .await
            .unwrap()
            .expect("a Status on the error channel");
        assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"), "{st:?}");
        let causes = st.details.and_then(|d| d.causes).unwrap_or_default();
        assert_eq!(causes[0].message.as_deref(), Some("4"));

        let mut pf = pods.portforward("web", &[8080]).await.unwrap();
        let mut s = pf.take_stream(8080).unwrap();
        s.write_all(b"GET /hostname HTTP/1.0\r\nHost: web\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        tokio::time::timeout(limit, s.read_to_end(&mut resp))
            .await
            .expect("the forwarded connection ends after the answer")
            .unwrap();
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.0 200"), "{resp}");
        assert!(resp.ends_with("\r\n\r\nweb"), "{resp}");
    });
}
