//! The shim's event loop, as PID 1 of the pod: starts containers, reaps
//! every child, runs probes, serves the status socket, stops the pod.
//! Decisions are made by the pure [`Pod`]; this module only carries them out.

use super::pod::{Action, Now, Pod};
use super::probe::{ProbeKind, Timing};
use super::time::now_rfc3339;
use crate::sys::process::{self as sys, BindMount, Exit, Launch, Prepared};
use crate::wire::shim::{ProbeHandler, ShimCommand, ShimSpec, ShimStatus};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Line in the shim's own log (its stderr is `<log_dir>/shim.log`).
pub(super) fn log(msg: impl std::fmt::Display) {
    tracing::info!("{msg}");
}

/// How often container log sizes are checked (the kubelet: every 10 s).
const ROTATE_CHECK: Duration = Duration::from_secs(1);

/// What the set-up before the event loop hands over.
pub(super) struct Handover {
    pub spec: ShimSpec,
    pub host_pid: u32,
    /// Written `OK` once the containers are started, then closed.
    pub ready: File,
    /// Bound (and made non-blocking) before any path was hidden.
    pub listener: std::os::unix::net::UnixListener,
    /// `run_dir` and `log_dir`, opened before any path was hidden.
    pub run_dir: File,
    pub log_dir: File,
    /// `O_PATH` descriptors of the volume sources, by path: containers
    /// bind `/proc/self/fd/N`, whatever the pod's view hides.
    pub sources: HashMap<PathBuf, File>,
}

enum Event {
    Command(ShimCommand),
    ProbeDone {
        container: usize,
        kind: ProbeKind,
        run: u64,
        ok: bool,
    },
    ProbeTimeout {
        pid: i32,
    },
}

struct Stopping {
    deadline: Instant,
    killed_at: Option<Instant>,
}

struct Shell {
    spec: ShimSpec,
    pod: Pod,
    t0: Instant,
    host_pid: u32,
    started_at: String,
    log_dir: File,
    sources: HashMap<PathBuf, File>,
    probe_pids: HashMap<i32, (usize, ProbeKind, u64)>,
    tx: mpsc::UnboundedSender<Event>,
    status: watch::Sender<ShimStatus>,
    stopping: Option<Stopping>,
}

/// Run the event loop until the pod is stopped. Returns the exit code.
pub(super) fn main(h: Handover) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let mut ready = h.ready;
            let _ = writeln!(ready, "ERR starting the event loop: {e}");
            return 1;
        }
    };
    rt.block_on(serve(h))
}

async fn serve(h: Handover) -> i32 {
    let Handover {
        spec,
        host_pid,
        mut ready,
        listener,
        run_dir,
        log_dir,
        sources,
    } = h;
    let setup = (|| {
        let l = UnixListener::from_std(listener)?;
        Ok::<_, std::io::Error>((
            l,
            signal(SignalKind::child())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })();
    let (listener, mut sigchld, mut sigterm, mut sigint) = match setup {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(ready, "ERR setting up the event loop: {e}");
            return 1;
        }
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let pod = Pod::new(&spec);
    let started_at = now_rfc3339();
    let (status, status_rx) = watch::channel(pod.status(host_pid, &started_at));
    let mut shell = Shell {
        spec,
        pod,
        t0: Instant::now(),
        host_pid,
        started_at,
        log_dir,
        sources,
        probe_pids: HashMap::new(),
        tx: tx.clone(),
        status,
        stopping: None,
    };
    log(format_args!(
        "shim for pod {}/{} started (host pid {host_pid})",
        shell.spec.namespace, shell.spec.pod_name
    ));
    shell.step();
    shell.publish();
    let _ = ready.write_all(b"OK\n");
    drop(ready);

    let mut clients = JoinSet::new();
    let mut rotate_tick = tokio::time::interval(ROTATE_CHECK);
    rotate_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        shell.reap();
        shell.step();
        shell.publish();
        if shell.finished() {
            break;
        }
        let wake = shell.next_wake();
        tokio::select! {
            _ = sigchld.recv() => {}
            _ = sigterm.recv() => shell.begin_stop(shell.spec.termination_grace_period_seconds, "SIGTERM"),
            _ = sigint.recv() => shell.begin_stop(shell.spec.termination_grace_period_seconds, "SIGINT"),
            Some(ev) = rx.recv() => shell.handle(ev),
            r = listener.accept() => match r {
                Ok((s, _)) => {
                    clients.spawn(client(s, status_rx.clone(), tx.clone()));
                }
                Err(e) => log(format_args!("accept: {e}")),
            },
            Some(_) = clients.join_next(), if !clients.is_empty() => {}
            _ = rotate_tick.tick() => shell.rotate_logs(),
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    // Final status, then make the pod disappear.
    shell.publish();
    drop(listener);
    for name in ["shim.sock", "shim.pid"] {
        if let Err(e) = sys::unlink_at(&run_dir, name) {
            log(e);
        }
    }
    drop(status_rx);
    drop(shell);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    log("shim stopped");
    0
}

impl Shell {
    fn now(&self) -> Now {
        Now {
            mono: self.t0.elapsed(),
            wall: now_rfc3339(),
        }
    }

    fn publish(&self) {
        let new = self.pod.status(self.host_pid, &self.started_at);
        self.status.send_if_modified(|cur| {
            if *cur == new {
                return false;
            }
            if cur.phase != new.phase {
                log(format_args!("pod phase {:?}", new.phase));
            }
            *cur = new;
            true
        });
    }

    /// Carry out whatever is due now; escalate a stop past its grace period.
    fn step(&mut self) {
        let now = self.t0.elapsed();
        for a in self.pod.due(now) {
            self.act(a);
        }
        if let Some(s) = &mut self.stopping
            && s.killed_at.is_none()
            && Instant::now() >= s.deadline
        {
            if !sys::other_pids().is_empty() {
                log("grace period over: SIGKILL to every process of the pod");
            }
            for c in &self.pod.containers {
                if let Some(pid) = c.pid {
                    sys::signal_group(pid, Signal::SIGKILL);
                }
            }
            sys::signal_all(Signal::SIGKILL);
            s.killed_at = Some(Instant::now());
        }
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Start(i) => self.start(i),
            Action::Probe {
                container,
                kind,
                run,
            } => self.run_probe(container, kind, run),
            Action::Kill { container, pid } => {
                log(format_args!(
                    "container {} failed its liveness probe: killing it",
                    self.spec.containers[container].name
                ));
                sys::signal_group(pid, Signal::SIGKILL);
                sys::signal_pid(pid, Signal::SIGKILL);
            }
        }
    }

    /// Rotate and prune every container's logs as the kubelet would.
    fn rotate_logs(&mut self) {
        let policy = self.spec.log_rotation;
        let stamp = super::logs::stamp(&now_rfc3339());
        for (c, st) in self.spec.containers.iter().zip(&self.pod.containers) {
            let run = st.restart_count;
            match super::logs::rotate(&self.log_dir, &c.name, run, &policy, &stamp) {
                Ok(Some(r)) => {
                    tracing::debug!(container = %c.name, file = %r.file, bytes = r.bytes, "log rotated");
                    if let Err(e) =
                        super::logs::prune(&self.log_dir, &c.name, run, policy.max_files)
                    {
                        tracing::warn!(container = %c.name, "pruning rotated logs: {e}");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(container = %c.name, "rotating the log: {e}"),
            }
        }
    }

    /// The container's environment plus `PATH` and `HOME` when missing, as
    /// a container runtime sets them.
    fn env_of(&self, i: usize) -> Vec<(String, String)> {
        let c = &self.spec.containers[i];
        sys::exec_env(&c.env, c.run_as_user.unwrap_or(0), false)
    }

    fn start(&mut self, i: usize) {
        let c = &self.spec.containers[i];
        let n = self.pod.containers[i].restart_count;
        let log_file = sys::open_append_at(&self.log_dir, &c.name, &format!("{n}.log"));
        // Runs before the previous one leave nothing behind.
        if let Err(e) =
            super::logs::prune(&self.log_dir, &c.name, n, self.spec.log_rotation.max_files)
        {
            tracing::warn!(container = %c.name, "pruning old logs: {e}");
        }
        let mounts: Vec<BindMount> = c
            .mounts
            .iter()
            .map(|m| BindMount {
                source: match self.sources.get(&m.source) {
                    Some(f) => PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())),
                    None => m.source.clone(),
                },
                target: m.target.clone(),
                read_only: m.read_only,
            })
            .collect();
        let env = self.env_of(i);
        let res = match &log_file {
            Ok(f) => f.try_clone().and_then(|out| {
                let security = Prepared::new(&c.security, c.run_as_user, c.run_as_group)?;
                sys::launch(Launch {
                    argv: &c.argv,
                    env: &env,
                    working_dir: c.working_dir.as_deref(),
                    security: &security,
                    read_only_root: c.security.read_only_root,
                    mounts: &mounts,
                    join_mnt: None,
                    output: Some(out),
                })
            }),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        };
        let now = self.now();
        match res {
            Ok(pid) => {
                log(format_args!(
                    "container {} started (pid {pid}, run {n})",
                    c.name
                ));
                self.pod.started(i, pid as i32, &now);
            }
            Err(e) => {
                let msg = format!("failed to start container {:?}: {:?}: {e}", c.name, c.argv);
                log(&msg);
                if let Ok(mut f) = log_file {
                    let _ = writeln!(f, "lab: {msg}");
                }
                self.pod.start_failed(i, &now);
            }
        }
    }

    fn run_probe(&mut self, i: usize, kind: ProbeKind, run: u64) {
        let c = &self.spec.containers[i];
        let probe = match kind {
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
        };
        let Some(probe) = probe else { return };
        let timeout = Timing::of(probe).timeout;
        let tx = self.tx.clone();
        let done = move |ok| {
            let _ = tx.send(Event::ProbeDone {
                container: i,
                kind,
                run,
                ok,
            });
        };
        let pod_ip = self.spec.pod_ip;
        match probe.handler.clone() {
            ProbeHandler::Exec { command } => {
                let join_mnt = self.pod.containers[i]
                    .pid
                    .and_then(|p| File::open(format!("/proc/{p}/ns/mnt")).ok());
                let env = self.env_of(i);
                let res = Prepared::new(&c.security, c.run_as_user, c.run_as_group).and_then(
                    |security| {
                        sys::launch(Launch {
                            argv: &command,
                            env: &env,
                            working_dir: c.working_dir.as_deref(),
                            security: &security,
                            read_only_root: false,
                            mounts: &[],
                            join_mnt,
                            output: None,
                        })
                    },
                );
                match res {
                    Ok(pid) => {
                        let pid = pid as i32;
                        self.probe_pids.insert(pid, (i, kind, run));
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(timeout).await;
                            let _ = tx.send(Event::ProbeTimeout { pid });
                        });
                    }
                    Err(_) => done(false),
                }
            }
            ProbeHandler::TcpSocket { host, port } => {
                tokio::spawn(async move {
                    let ok = tokio::time::timeout(timeout, async {
                        let addr = resolve(host.as_deref(), pod_ip, port).await?;
                        TcpStream::connect(addr).await.ok()
                    })
                    .await
                    .ok()
                    .flatten()
                    .is_some();
                    done(ok);
                });
            }
            ProbeHandler::HttpGet {
                host,
                port,
                path,
                headers,
            } => {
                tokio::spawn(async move {
                    let ok =
                        tokio::time::timeout(timeout, http_get(host, pod_ip, port, path, headers))
                            .await
                            .unwrap_or(false);
                    done(ok);
                });
            }
        }
    }

    fn probe_result(&mut self, i: usize, kind: ProbeKind, run: u64, ok: bool) {
        if let Some(a) = self.pod.probe_finished(i, kind, run, ok) {
            self.act(a);
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Command(ShimCommand::Stop { grace_seconds }) => {
                self.begin_stop(grace_seconds, "stop command")
            }
            Event::Command(ShimCommand::Status) => {}
            Event::ProbeDone {
                container,
                kind,
                run,
                ok,
            } => self.probe_result(container, kind, run, ok),
            Event::ProbeTimeout { pid } => {
                if let Some((i, kind, run)) = self.probe_pids.remove(&pid) {
                    sys::signal_group(pid, Signal::SIGKILL);
                    self.probe_result(i, kind, run, false);
                }
            }
        }
    }

    /// Reap every child that ended: containers, probes, orphans.
    fn reap(&mut self) {
        while let Some((pid, exit)) = sys::reap_any() {
            if let Some((i, kind, run)) = self.probe_pids.remove(&pid) {
                self.probe_result(i, kind, run, exit == Exit::Code(0));
            } else if let Some(i) = self.pod.container_of(pid) {
                // Like a container's cgroup: what it left in its process
                // group goes with it.
                sys::signal_group(pid, Signal::SIGKILL);
                log(format_args!(
                    "container {} exited ({})",
                    self.spec.containers[i].name,
                    match exit {
                        Exit::Code(c) => format!("code {c}"),
                        Exit::Signal(s) => format!("signal {s}"),
                    }
                ));
                let now = self.now();
                self.pod.exited(i, exit, &now);
            }
        }
    }

    fn begin_stop(&mut self, grace_seconds: u64, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(grace_seconds);
        if let Some(s) = &mut self.stopping {
            // A second stop may only shorten the grace period.
            if deadline < s.deadline {
                log(format_args!(
                    "{why}: grace period shortened to {grace_seconds}s"
                ));
                s.deadline = deadline;
            }
            return;
        }
        log(format_args!(
            "stopping ({why}, grace period {grace_seconds}s)"
        ));
        for pid in self.pod.begin_stop() {
            sys::signal_group(pid, Signal::SIGTERM);
            sys::signal_pid(pid, Signal::SIGTERM);
        }
        sys::signal_all(Signal::SIGTERM);
        self.stopping = Some(Stopping {
            deadline,
            killed_at: None,
        });
    }

    /// Stopped: no other process is left in the pod (or SIGKILL was sent a
    /// while ago; leaving kills whatever remains).
    fn finished(&self) -> bool {
        let Some(s) = &self.stopping else {
            return false;
        };
        sys::other_pids().is_empty()
            || s.killed_at
                .is_some_and(|k| k.elapsed() > Duration::from_secs(2))
    }

    fn next_wake(&self) -> Instant {
        if self.stopping.is_some() {
            // Processes that entered the pod (exec) are not our children:
            // poll for them.
            return Instant::now() + Duration::from_millis(20);
        }
        match self.pod.next_deadline() {
            Some(d) => self.t0 + d,
            None => Instant::now() + Duration::from_secs(3600),
        }
    }
}

async fn resolve(host: Option<&str>, pod_ip: Ipv4Addr, port: u16) -> Option<SocketAddr> {
    match host.filter(|h| !h.is_empty()) {
        None => Some(SocketAddr::new(IpAddr::V4(pod_ip), port)),
        Some(h) => match h.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, port)),
            Err(_) => tokio::net::lookup_host((h, port)).await.ok()?.next(),
        },
    }
}

/// A kubelet-style HTTP GET: success is a status in 200..=399.
async fn http_get(
    host: Option<String>,
    pod_ip: Ipv4Addr,
    port: u16,
    path: String,
    headers: Vec<(String, String)>,
) -> bool {
    let Some(addr) = resolve(host.as_deref(), pod_ip, port).await else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let host_header = match host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => format!("{h}:{port}"),
        None => format!("{pod_ip}:{port}"),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        req.push_str(&format!("Host: {host_header}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    // Only the status line matters.
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    status_ok(&buf)
}

/// `HTTP/1.x NNN …` with 200 <= NNN < 400.
fn status_ok(resp: &[u8]) -> bool {
    let line = resp.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let proto_ok = parts.next().is_some_and(|p| p.starts_with("HTTP/"));
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    proto_ok && code.is_some_and(|c| (200..400).contains(&c))
}

/// One client of the status socket: the current status at once, then every
/// change; commands in the other direction.
async fn client(
    stream: UnixStream,
    mut status: watch::Receiver<ShimStatus>,
    tx: mpsc::UnboundedSender<Event>,
) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut reading = true;
    async fn send(wr: &mut tokio::net::unix::OwnedWriteHalf, s: &ShimStatus) -> bool {
        let Ok(mut line) = serde_json::to_vec(s) else {
            return false;
        };
        line.push(b'\n');
        wr.write_all(&line).await.is_ok()
    }
    let cur = status.borrow_and_update().clone();
    if !send(&mut wr, &cur).await {
        return;
    }
    loop {
        tokio::select! {
            r = status.changed() => {
                if r.is_err() {
                    return;
                }
                let cur = status.borrow_and_update().clone();
                if !send(&mut wr, &cur).await {
                    return;
                }
            }
            l = lines.next_line(), if reading => match l {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match serde_json::from_str::<ShimCommand>(&line) {
                    Ok(ShimCommand::Status) => {
                        let cur = status.borrow().clone();
                        if !send(&mut wr, &cur).await {
                            return;
                        }
                    }
                    Ok(cmd) => {
                        let _ = tx.send(Event::Command(cmd));
                    }
                    Err(e) => log(format_args!("bad command on the socket: {e}")),
                },
                _ => reading = false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_ok;

    #[test]
    fn http_status_lines() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n"));
        assert!(!status_ok(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!status_ok(b"HTTP/1.1 199 Early\r\n"));
        assert!(!status_ok(b"garbage"));
        assert!(!status_ok(b""));
    }
}
