//! `pods/portforward` as kubectl ≥ 1.30 speaks it: a WebSocket with the
//! subprotocol `SPDY/3.1+portforward.k8s.io` whose binary messages carry a
//! SPDY/3.1 connection as a byte stream (client-go's tunneling dialer). In
//! it, kubectl opens two streams per local connection, both with headers
//! `streamtype` (`error` / `data`), `port` and `requestid`: the data
//! stream carries the bytes, the error stream (written by the server only)
//! carries an error message, if any, and ends when the connection is done.
//!
//! Each data stream becomes a TCP connection to `127.0.0.1:<port>` made
//! inside the pod's network namespace (as the kubelet dials localhost in
//! the sandbox), from a thread that entered it. The session ends when the
//! client leaves or the pod goes away (then the WebSocket closes, and
//! kubectl reports that it lost the connection to the pod).

use super::Kube;
use super::spdy::{self, Frame};
use super::status::{self, KubeError};
use super::stream::not_websocket;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Forwarded connections open at once per session.
const MAX_CONNECTIONS: usize = 1024;

/// How long a connection attempt inside the pod may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn handler(
    State(k): State<Arc<Kube>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match start(k, ns, name, query, &headers, ws) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn start(
    k: Arc<Kube>,
    ns: String,
    name: String,
    query: Option<String>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, KubeError> {
    let Ok(ws) = ws else {
        return Err(not_websocket(headers, "portforward", PROTOCOL));
    };
    let target = k.d.exec_target(&ns, &name, None).map_err(|e| {
        if e.is_not_found() {
            status::not_found("pods", "", &name)
        } else {
            status::bad_request(e)
        }
    })?;
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    let ws = ws.protocols([PROTOCOL, super::stream::V4]);
    match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(PROTOCOL) => {
            tracing::info!(namespace = %ns, pod = %name, "port-forward");
            Ok(ws.on_upgrade(move |socket| async move {
                session(k, socket, ns, name, target.shim_pid).await;
            }))
        }
        Some(_) => {
            let o = super::stream::parse_options(query.as_deref())?;
            let ports = o
                .ports
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| status::bad_request(format!("invalid port {p:?}")))
                })
                .collect::<Result<Vec<u16>, _>>()?;
            if ports.is_empty() || ports.len() > 64 {
                return Err(status::bad_request(
                    "pods/portforward over v4.channel.k8s.io needs ports=P[,P…] (1 to 64)",
                ));
            }
            tracing::info!(namespace = %ns, pod = %name, ?ports, "port-forward (channels)");
            Ok(ws.on_upgrade(move |socket| async move {
                channel_session(k, socket, ns, name, target.shim_pid, ports).await;
            }))
        }
        None => Err(status::bad_request(format!(
            "no supported WebSocket subprotocol: the client offered {offered:?}; lab serves \
             pods/portforward as {PROTOCOL} (kubectl 1.30 and later) or {} with ?ports=",
            super::stream::V4
        ))),
    }
}

/// The older WebSocket port-forward protocol (client libraries such as
/// kube-rs and the Python client): `?ports=P1,P2`, subprotocol
/// `v4.channel.k8s.io`; port i has data channel 2i and error channel 2i+1,
/// each opened by the server with the port as two little-endian bytes. One
/// connection per port is made at once; the WebSocket closes when every
/// connection has ended (there is no half-close per channel), when the
/// client leaves, or when the pod goes away.
async fn channel_session(
    k: Arc<Kube>,
    socket: WebSocket,
    ns: String,
    name: String,
    shim_pid: u32,
    ports: Vec<u16>,
) {
    let (mut sink, mut source) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if sink.send(Message::Binary(f.into())).await.is_err() {
                return;
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let netns_path = format!("/proc/{shim_pid}/ns/net");
    let Ok(netns) = crate::sys::netns::NetnsThread::spawn_async(&netns_path).await else {
        drop(out);
        let _ = writer.await;
        return;
    };
    let netns = Arc::new(netns);
    let mut to_pod = Vec::new();
    let mut conns = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ch = (2 * i) as u8;
        for c in [ch, ch + 1] {
            let mut m = vec![c];
            m.extend_from_slice(&port.to_le_bytes());
            let _ = out.send(m).await;
        }
        let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
        to_pod.push(Some(tx));
        conns.spawn(channel_forward(
            netns.clone(),
            ch,
            *port,
            format!("{ns}/{name}"),
            rx,
            out.clone(),
        ));
    }
    let mut alive = tokio::time::interval(Duration::from_millis(500));
    let why = loop {
        tokio::select! {
            m = source.next() => match m {
                Some(Ok(Message::Binary(b))) => {
                    let Some((&ch, rest)) = b.split_first() else { continue };
                    let i = usize::from(ch / 2);
                    if ch % 2 == 0
                        && !rest.is_empty()
                        && let Some(slot) = to_pod.get_mut(i)
                        && let Some(tx) = slot
                        && tx.send(rest.to_vec()).await.is_err()
                    {
                        *slot = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "the client left",
                Some(Ok(_)) => {}
            },
            done = conns.join_next() => {
                if done.is_none() {
                    break "every connection ended";
                }
            }
            _ = alive.tick() => {
                if !k.d.exec_target(&ns, &name, None).is_ok_and(|t| t.shim_pid == shim_pid) {
                    break "the pod is gone";
                }
            }
        }
    };
    tracing::info!(namespace = %ns, pod = %name, reason = why, "port-forward ended");
    conns.abort_all();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

/// One port of a channel session: its connection inside the pod, copied to
/// and from channel `ch` (an error goes to `ch + 1`).
async fn channel_forward(
    netns: Arc<crate::sys::netns::NetnsThread>,
    ch: u8,
    port: u16,
    pod: String,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let tcp = netns
        .run_async(move || {
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                CONNECT_TIMEOUT,
            )
            .and_then(|s| s.set_nonblocking(true).map(|_| s))
        })
        .await;
    let tcp = match tcp {
        Ok(Ok(s)) => tokio::net::TcpStream::from_std(s),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e.to_string())),
    };
    let tcp = match tcp {
        Ok(t) => t,
        Err(e) => {
            let mut m = vec![ch + 1];
            m.extend_from_slice(
                format!("error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} inside the pod's network namespace: {e}").as_bytes(),
            );
            let _ = out.send(m).await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let to_pod = async move {
        while let Some(d) = from_client.recv().await {
            if wr.write_all(&d).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let to_client = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf[1..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf[0] = ch;
                    if out.send(buf[..n + 1].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // The pod closing its side ends this port (the protocol has no
    // per-channel close to pass on).
    tokio::select! {
        _ = to_client => {}
        _ = async { to_pod.await; std::future::pending::<()>().await } => {}
    }
}

struct DataStream {
    to_pod: Option<mpsc::Sender<Vec<u8>>>,
    cancel: Option<oneshot::Sender<()>>,
}

async fn session(k: Arc<Kube>, socket: WebSocket, ns: String, name: String, shim_pid: u32) {
    let (mut sink, mut source) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let (close_tx, mut close_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                f = out_rx.recv() => match f {
                    Some(f) => {
                        if sink.send(Message::Binary(f.into())).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = &mut close_rx => break,
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
        let _ = sink.close().await;
    });
    let netns_path = format!("/proc/{shim_pid}/ns/net");
    let netns = match crate::sys::netns::NetnsThread::spawn_async(&netns_path).await {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::warn!(namespace = %ns, pod = %name, error = %e, "port-forward: entering the pod's netns");
            drop(out);
            let _ = writer.await;
            return;
        }
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut inflater = spdy::Inflater::new();
    let mut deflater = spdy::Deflater::default();
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut data: HashMap<u32, DataStream> = HashMap::new();
    let mut conns = tokio::task::JoinSet::new();
    let mut alive = tokio::time::interval(Duration::from_millis(500));
    let why = 'session: loop {
        let msg = tokio::select! {
            m = source.next() => m,
            _ = alive.tick() => {
                let same = k
                    .d
                    .exec_target(&ns, &name, None)
                    .is_ok_and(|t| t.shim_pid == shim_pid);
                if !same {
                    break 'session "the pod is gone";
                }
                continue;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let bytes = match msg {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "the client left",
            Some(Ok(_)) => continue,
        };
        if buf.len() + bytes.len() > spdy::MAX_FRAME + 8 {
            break "frame too large";
        }
        buf.extend_from_slice(&bytes);
        loop {
            let frame = match spdy::next_frame(&mut buf, &mut inflater) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(namespace = %ns, pod = %name, error = %e, "port-forward: bad SPDY frame");
                    break 'session "protocol error";
                }
            };
            match frame {
                Frame::SynStream { id, headers, .. } => {
                    let _ = out.send(spdy::syn_reply(id, &mut deflater)).await;
                    let request = headers.get("requestid").cloned().unwrap_or_default();
                    match headers.get("streamtype").map(String::as_str) {
                        Some("error") if errors.len() < MAX_CONNECTIONS => {
                            errors.insert(request, id);
                        }
                        Some("data") if data.len() >= MAX_CONNECTIONS => {
                            // Bounded: refuse a connection beyond the limit.
                            errors.remove(&request);
                            let _ = out.send(spdy::rst_stream(id, spdy::REFUSED_STREAM)).await;
                        }
                        Some("data") => {
                            let err_id = errors.remove(&request);
                            let port = headers.get("port").cloned().unwrap_or_default();
                            let (to_pod, rx) = mpsc::channel(16);
                            let (cancel, cancelled) = oneshot::channel();
                            data.insert(
                                id,
                                DataStream {
                                    to_pod: Some(to_pod),
                                    cancel: Some(cancel),
                                },
                            );
                            conns.spawn(forward(
                                netns.clone(),
                                Conn {
                                    id,
                                    err_id,
                                    port,
                                    pod: format!("{ns}/{name}"),
                                },
                                rx,
                                cancelled,
                                out.clone(),
                            ));
                        }
                        _ => {
                            let _ = out.send(spdy::rst_stream(id, spdy::PROTOCOL_ERROR)).await;
                        }
                    }
                }
                Frame::Data { id, flags, data: d } => {
                    if let Some(s) = data.get_mut(&id) {
                        if !d.is_empty()
                            && let Some(tx) = &s.to_pod
                            && tx.send(d).await.is_err()
                        {
                            s.to_pod = None;
                        }
                        if flags & spdy::FLAG_FIN != 0 {
                            s.to_pod = None;
                        }
                    }
                }
                Frame::RstStream { id, .. } => {
                    if let Some(mut s) = data.remove(&id)
                        && let Some(c) = s.cancel.take()
                    {
                        let _ = c.send(());
                    }
                }
                Frame::Ping(id) => {
                    let _ = out.send(spdy::ping(id)).await;
                }
                Frame::GoAway => break 'session "the client left",
                Frame::Ignored(_) => {}
            }
        }
    };
    tracing::info!(namespace = %ns, pod = %name, reason = why, "port-forward ended");
    conns.abort_all();
    drop(out);
    let _ = close_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

struct Conn {
    id: u32,
    err_id: Option<u32>,
    port: String,
    pod: String,
}

/// One forwarded connection: dial inside the pod, copy both ways until both
/// sides are done or the client resets the stream, then end the error
/// stream (with a message if it failed).
async fn forward(
    netns: Arc<crate::sys::netns::NetnsThread>,
    c: Conn,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    mut cancelled: oneshot::Receiver<()>,
    out: mpsc::Sender<Vec<u8>>,
) {
    let result = async {
        let port: u16 = c
            .port
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("invalid port {:?}", c.port))?;
        let tcp = netns
            .run_async(move || {
                std::net::TcpStream::connect_timeout(
                    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    CONNECT_TIMEOUT,
                )
                .and_then(|s| s.set_nonblocking(true).map(|_| s))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| {
                format!(
                    "error forwarding port {port} to pod {}: failed to connect to localhost:{port} inside the pod's network namespace: {e}",
                    c.pod
                )
            })?;
        let tcp = tokio::net::TcpStream::from_std(tcp).map_err(|e| e.to_string())?;
        let (mut rd, mut wr) = tcp.into_split();
        let id = c.id;
        let out2 = out.clone();
        let to_client = async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out2.send(spdy::data(id, false, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = out2.send(spdy::data(id, true, &[])).await;
        };
        let to_pod = async move {
            while let Some(d) = from_client.recv().await {
                if wr.write_all(&d).await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        };
        tokio::select! {
            _ = async { tokio::join!(to_client, to_pod) } => {}
            _ = &mut cancelled => {}
        }
        Ok::<(), String>(())
    }
    .await;
    if let Err(msg) = &result {
        tracing::info!(pod = %c.pod, port = %c.port, error = %msg, "port-forward connection failed");
        let _ = out.send(spdy::data(c.id, true, &[])).await;
    }
    if let Some(e) = c.err_id {
        if let Err(msg) = result {
            let _ = out.send(spdy::data(e, false, msg.as_bytes())).await;
        }
        let _ = out.send(spdy::data(e, true, &[])).await;
    }
}
