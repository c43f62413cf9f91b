//! `pods/exec`, `pods/attach` and `pods/portforward`: the streaming
//! subresources, over WebSocket as kubectl ≥ 1.30 speaks them.
//!
//! exec and attach use the channel protocol `v5.channel.k8s.io` (also
//! `v4.channel.k8s.io`): every binary message starts with a channel byte,
//! 0 stdin, 1 stdout, 2 stderr, 3 error (one `Status` object when the
//! command ends: `Success`, or `NonZeroExitCode` with an `ExitCode` cause),
//! 4 resize (`{"Width":…,"Height":…}`); v5 adds 255 "close channel N"
//! (kubectl closes stdin with `[255, 0]`). The server closes the WebSocket
//! (1000) after the error channel's message.
//!
//! portforward tunnels SPDY/3.1 in the WebSocket (`SPDY/3.1+portforward.k8s.io`,
//! see [`super::portforward`]).
//!
//! Clients that ask for SPDY itself (kubectl before 1.30, or with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`) get a 400 `Status` saying so.

use super::Kube;
use super::status::{self, KubeError};
use crate::sys::podexec::{self, AsyncFdIo, PodProcess};
use crate::sys::pty;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::api::channel::{CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT};
pub use crate::api::channel::{V4, V5};

/// How long output may still drain after the command has exited (a
/// background child that keeps the pipe open does not hold the session).
const DRAIN: Duration = Duration::from_secs(2);

type Router = axum::Router<Arc<Kube>>;

/// The streaming routes (more specific than the generic dispatcher).
pub fn routes(r: Router) -> Router {
    use axum::routing::any;
    r.route("/api/v1/namespaces/{ns}/pods/{name}/exec", any(exec))
        .route("/api/v1/namespaces/{ns}/pods/{name}/attach", any(attach))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/portforward",
            any(super::portforward::handler),
        )
}

/// The query of a streaming request (`command` repeats).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Options {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
    pub ports: Vec<String>,
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "true" | "True" | "TRUE")
}

pub fn parse_options(query: Option<&str>) -> Result<Options, KubeError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| status::bad_request(format!("invalid query: {e}")))?;
    let mut o = Options::default();
    for (k, v) in pairs {
        match k.as_str() {
            "command" => o.command.push(v),
            "container" if !v.is_empty() => o.container = Some(v),
            "stdin" => o.stdin = truthy(&v),
            "stdout" => o.stdout = truthy(&v),
            "stderr" => o.stderr = truthy(&v),
            "tty" => o.tty = truthy(&v),
            "ports" => o.ports.extend(v.split(',').map(|p| p.trim().to_string())),
            _ => {}
        }
    }
    Ok(o)
}

/// The answer to a request that is not a usable WebSocket upgrade.
pub fn not_websocket(headers: &HeaderMap, what: &str, protocols: &str) -> KubeError {
    let upgrade = headers
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if upgrade.to_ascii_lowercase().starts_with("spdy") {
        status::bad_request(format!(
            "lab serves pods/{what} over WebSocket only ({protocols}, as kubectl 1.30 and later \
             speak it); this client asked for {upgrade}: use kubectl 1.30 or later and do not \
             set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false or KUBECTL_PORT_FORWARD_WEBSOCKETS=false"
        ))
    } else {
        status::bad_request(format!(
            "Upgrade request required: pods/{what} is a WebSocket stream ({protocols})"
        ))
    }
}

fn pod_error(name: &str, e: crate::daemon::runtime::PodTargetError) -> KubeError {
    if e.is_not_found() {
        status::not_found("pods", "", name)
    } else {
        status::bad_request(e)
    }
}

/// Pick v5 or v4 from what the client offers; a 400 otherwise.
fn channel_protocol(ws: WebSocketUpgrade) -> Result<(WebSocketUpgrade, bool), KubeError> {
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let ws = ws.protocols([V5, V4]);
    match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(p) => {
            let v5 = p == V5;
            Ok((ws, v5))
        }
        None => Err(status::bad_request(format!(
            "no supported WebSocket subprotocol: the client offered {offered:?}; lab serves \
             {V5} and {V4}"
        ))),
    }
}

async fn exec(
    State(k): State<Arc<Kube>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match start_exec(k, ns, name, query, &headers, ws) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start_exec(
    k: Arc<Kube>,
    ns: String,
    name: String,
    query: Option<String>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, KubeError> {
    // The request is checked before the transport, as the API server
    // does: kubectl falls back to SPDY when the WebSocket upgrade is
    // refused, and must then see the reason (an unknown container, say)
    // rather than lab's "WebSocket only".
    let mut o = parse_options(query.as_deref())?;
    if o.command.is_empty() {
        return Err(status::bad_request("you must specify at least one command"));
    }
    if !(o.stdin || o.stdout || o.stderr) {
        return Err(status::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    if o.tty {
        // A terminal merges stderr into stdout.
        o.stderr = false;
    }
    let target =
        k.d.exec_target(&ns, &name, o.container.as_deref())
            .map_err(|e| pod_error(&name, e))?;
    let Ok(ws) = ws else {
        return Err(not_websocket(headers, "exec", &format!("{V5} or {V4}")));
    };
    let (ws, v5) = channel_protocol(ws)?;
    let mut argv = std::mem::take(&mut o.command);
    if matches!(argv[0].as_str(), "/agnhost" | "agnhost") {
        argv.splice(
            0..1,
            [
                k.d.lab_exe.to_string_lossy().to_string(),
                "agnhost".to_string(),
            ],
        );
    }
    tracing::info!(namespace = %ns, pod = %name, container = %target.container, command = ?argv, tty = o.tty, "exec");
    Ok(ws.on_upgrade(move |socket| async move {
        exec_session(socket, target, argv, o, v5).await;
    }))
}

/// The `Status` the error channel carries when the command has ended.
/// `result`: the command's exit code, or why it could not run or be
/// waited for.
pub fn exit_status(result: Result<i32, &dyn std::fmt::Display>) -> serde_json::Value {
    match result {
        Ok(0) => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": format!("error executing command in container: {e}"),
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// A resize message's `{"Width":…,"Height":…}` (both non-zero).
pub fn parse_size(json: &[u8]) -> Option<(u16, u16)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let w = u16::try_from(v["Width"].as_u64()?).ok()?;
    let h = u16::try_from(v["Height"].as_u64()?).ok()?;
    (w > 0 && h > 0).then_some((w, h))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// Forward what `io` yields to `channel` until EOF.
async fn pump(io: Arc<AsyncFdIo>, channel: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Send every queued message to the client, then close with `close`.
async fn writer(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(m) = rx.recv().await {
        let closing = matches!(m, Message::Close(_));
        if sink.send(m).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

struct Spawned {
    process: PodProcess,
    stdin: Option<Arc<AsyncFdIo>>,
    outputs: Vec<(Arc<AsyncFdIo>, u8)>,
    terminal: Option<Arc<AsyncFdIo>>,
}

fn spawn_command(
    t: &crate::daemon::runtime::ExecTarget,
    argv: &[String],
    o: &Options,
    size: Option<(u16, u16)>,
) -> std::io::Result<Spawned> {
    let wd = t.working_dir.as_deref().map(std::path::Path::new);
    let target = podexec::Target {
        ns_pid: t.shim_pid,
        container_pid: t.container_pid,
        env: &t.env,
        working_dir: wd,
        uid: t.run_as_user,
        gid: t.run_as_group,
        security: &t.security,
    };
    if o.tty {
        // On the pod's own devpts, as a runtime gives a container's exec.
        let ptmx = std::path::PathBuf::from(format!("/proc/{}/root/dev/pts/ptmx", t.shim_pid));
        let p = pty::open_in(&ptmx, size)?;
        let master = Arc::new(AsyncFdIo::new(p.master)?);
        let process = podexec::spawn(&target, argv, podexec::Stdio::Tty(p.slave))?;
        return Ok(Spawned {
            process,
            stdin: o.stdin.then(|| master.clone()),
            outputs: vec![(master.clone(), STDOUT)],
            terminal: Some(master),
        });
    }
    let pair = || -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok((r, w))
    };
    let (mut stdin, mut child_in) = (None, None);
    if o.stdin {
        let (r, w) = pair()?;
        child_in = Some(r);
        stdin = Some(Arc::new(AsyncFdIo::new(w)?));
    }
    let mut outputs = Vec::new();
    let mut child_out = None;
    let mut child_err = None;
    if o.stdout {
        let (r, w) = pair()?;
        child_out = Some(w);
        outputs.push((Arc::new(AsyncFdIo::new(r)?), STDOUT));
    }
    if o.stderr {
        let (r, w) = pair()?;
        child_err = Some(w);
        outputs.push((Arc::new(AsyncFdIo::new(r)?), STDERR));
    }
    let process = podexec::spawn(
        &target,
        argv,
        podexec::Stdio::Pipes {
            stdin: child_in,
            stdout: child_out,
            stderr: child_err,
        },
    )?;
    Ok(Spawned {
        process,
        stdin,
        outputs,
        terminal: None,
    })
}

async fn exec_session(
    socket: WebSocket,
    target: crate::daemon::runtime::ExecTarget,
    argv: Vec<String>,
    o: Options,
    v5: bool,
) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(writer(sink, rx));
    // kubectl sends the terminal's size first: start the command on a
    // terminal of that size (waiting briefly; input read meanwhile is kept).
    let mut pending: Vec<axum::body::Bytes> = Vec::new();
    let mut size = None;
    if o.tty {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while size.is_none() {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) => match b.split_first() {
                    Some((&RESIZE, rest)) => size = parse_size(rest),
                    _ => pending.push(b),
                },
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    drop(tx);
                    let _ = writer.await;
                    return;
                }
                Ok(Some(Ok(_))) => {}
                Err(_) => break,
            }
        }
    }
    let mut stream =
        futures::stream::iter(pending.into_iter().map(|b| Ok(Message::Binary(b)))).chain(stream);
    let spawned = match spawn_command(&target, &argv, &o, size) {
        Ok(s) => s,
        Err(e) => {
            let st = exit_status(Err(&e));
            let _ = tx.send(frame(ERROR, st.to_string().as_bytes())).await;
            let _ = tx.send(normal_close()).await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let Spawned {
        process,
        stdin,
        outputs,
        terminal,
    } = spawned;
    let killer = process.killer();
    let mut waiter = tokio::task::spawn_blocking(move || process.wait());
    let pumps: Vec<_> = outputs
        .into_iter()
        .map(|(io, ch)| tokio::spawn(pump(io, ch, tx.clone())))
        .collect();
    // Client → command: stdin, resizes, v5 close.
    let mut input = tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(Ok(m)) = stream.next().await {
            let data = match m {
                Message::Binary(b) => b,
                Message::Close(_) => return true,
                _ => continue,
            };
            let Some((&ch, rest)) = data.split_first() else {
                continue;
            };
            match ch {
                STDIN => {
                    if let Some(s) = &stdin
                        && s.write_all(rest).await.is_err()
                    {
                        stdin = None;
                    }
                }
                RESIZE => {
                    if let (Some(t), Some((w, h))) = (&terminal, parse_size(rest)) {
                        let _ = pty::set_size(t.fd(), w, h);
                    }
                }
                // EOF for the command's stdin (a pipe's write end closes
                // here; a terminal stays open for output).
                CLOSE if v5 && rest.first() == Some(&STDIN) => stdin = None,
                _ => {}
            }
        }
        true
    });
    let result = tokio::select! {
        r = &mut waiter => Some(r),
        _ = &mut input => None,
    };
    let result = match result {
        Some(r) => r,
        None => {
            // The client went away: the command goes too.
            killer.kill(nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.await;
            for p in pumps {
                p.abort();
            }
            drop(tx);
            let _ = writer.await;
            return;
        }
    };

    // Let the output drain (bounded: a background child may hold it open).
    let deadline = tokio::time::Instant::now() + DRAIN;
    for p in pumps {
        let abort = p.abort_handle();
        if tokio::time::timeout_at(deadline, p).await.is_err() {
            abort.abort();
        }
    }
    let st = match &result {
        Ok(Ok(code)) => exit_status(Ok(*code)),
        Ok(Err(e)) => exit_status(Err(e)),
        Err(e) => exit_status(Err(e)),
    };
    let _ = tx.send(frame(ERROR, st.to_string().as_bytes())).await;
    let _ = tx.send(normal_close()).await;
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    input.abort();
}

// ---------------------------------------------------------------------------
// attach

async fn attach(
    State(k): State<Arc<Kube>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match start_attach(k, ns, name, query, &headers, ws) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start_attach(
    k: Arc<Kube>,
    ns: String,
    name: String,
    query: Option<String>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, KubeError> {
    // The request before the transport, as for exec.
    let o = parse_options(query.as_deref())?;
    if !(o.stdin || o.stdout || o.stderr) {
        return Err(status::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let target =
        k.d.exec_target(&ns, &name, o.container.as_deref())
            .map_err(|e| pod_error(&name, e))?;
    let path =
        k.d.log_path(&ns, &name, Some(&target.container), false)
            .map_err(|e| pod_error(&name, e))?;
    let Ok(ws) = ws else {
        return Err(not_websocket(headers, "attach", &format!("{V5} or {V4}")));
    };
    let (ws, _) = channel_protocol(ws)?;
    tracing::info!(namespace = %ns, pod = %name, container = %target.container, "attach");
    Ok(ws.on_upgrade(move |socket| async move {
        attach_session(k, socket, ns, name, target, path, o).await;
    }))
}

/// Attach follows the container's log file (the container writes its
/// stdout and stderr there itself), from its current end, until the
/// container's run ends or the client leaves. Containers in lab have no
/// stdin of their own (`stdin: true` is not a supported field), so input
/// from the client is read and dropped.
async fn attach_session(
    k: Arc<Kube>,
    socket: WebSocket,
    ns: String,
    name: String,
    target: crate::daemon::runtime::ExecTarget,
    path: std::path::PathBuf,
    o: Options,
) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(writer(sink, rx));
    let mut input = tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    });
    let channel = if o.stdout || o.tty { STDOUT } else { STDERR };
    let mut file = tokio::fs::File::open(&path).await.ok();
    let mut offset = match &mut file {
        Some(f) => f.seek(std::io::SeekFrom::End(0)).await.unwrap_or(0),
        None => 0,
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut checks = 0u32;
    let ended = loop {
        tokio::select! {
            _ = &mut input => break false,
            _ = tick.tick() => {}
        }
        if let Some(f) = &mut file {
            // Rotation truncates the live file: start again from its top.
            if let Ok(m) = f.metadata().await
                && m.len() < offset
            {
                offset = f.seek(std::io::SeekFrom::Start(0)).await.unwrap_or(0);
            }
            loop {
                match f.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        offset += n as u64;
                        if (o.stdout || o.stderr || o.tty)
                            && tx.send(frame(channel, &buf[..n])).await.is_err()
                        {
                            break;
                        }
                    }
                }
            }
        } else {
            file = tokio::fs::File::open(&path).await.ok();
        }
        checks += 1;
        if checks.is_multiple_of(5) {
            // The run is over when the container's process changed or the
            // pod stopped running.
            let now = k.d.exec_target(&ns, &name, Some(&target.container));
            let same = now.as_ref().is_ok_and(|t| {
                t.container_pid == target.container_pid && t.shim_pid == target.shim_pid
            });
            if !same {
                break true;
            }
        }
    };
    if ended {
        let st = exit_status(Ok(0));
        let _ = tx.send(frame(ERROR, st.to_string().as_bytes())).await;
        let _ = tx.send(normal_close()).await;
    }
    input.abort();
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_every_command_word() {
        let o = parse_options(Some(
            "command=sh&command=-c&command=echo+a%26b&container=c1&stdin=true&stdout=1&tty=false",
        ))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo a&b"]);
        assert_eq!(o.container.as_deref(), Some("c1"));
        assert!(o.stdin && o.stdout && !o.stderr && !o.tty);
    }

    #[test]
    fn resize_messages_parse() {
        assert_eq!(parse_size(br#"{"Width":120,"Height":40}"#), Some((120, 40)));
        assert_eq!(parse_size(br#"{"Width":0,"Height":40}"#), None);
        assert_eq!(parse_size(b"junk"), None);
    }

    #[test]
    fn exit_codes_travel_as_kubectl_reads_them() {
        let s = exit_status(Ok(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(exit_status(Ok(0))["status"], "Success");
        assert_eq!(exit_status(Err(&"x"))["status"], "Failure");
    }

    #[test]
    fn spdy_clients_are_told_what_to_use() {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::UPGRADE, "SPDY/3.1".parse().unwrap());
        let e = not_websocket(&h, "exec", "v5");
        assert_eq!(e.code, 400);
        assert!(e.message.contains("WebSocket only"), "{}", e.message);
        let e = not_websocket(&HeaderMap::new(), "exec", "v5");
        assert!(e.message.contains("Upgrade request required"));
    }
}
