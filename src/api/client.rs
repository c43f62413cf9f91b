//! HTTP/1 client for the daemon's API on its Unix socket: the same router as
//! the Kubernetes API on HTTPS (the socket is the admin's, mode 0600), so
//! objects are read and written on the Kubernetes resource paths
//! ([`resource_path`]) and lab's own operations live under
//! `/apis/lab.dev/v1/` (see `src/daemon/kube/lab.rs`). Errors come back as
//! `Status` objects.

use super::{ListQuery, ObjectList};
use crate::model::Kind;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the cluster {cluster:?} is not running (no daemon answers on {socket}); start it with `sudo lab up{flag}`"
    )]
    NotRunning {
        cluster: String,
        socket: PathBuf,
        flag: String,
    },
    #[error("permission denied on {0}: run lab as root (sudo)")]
    Permission(PathBuf),
    #[error("{0}")]
    Api(String, Vec<String>),
    /// 404 (the server's message).
    #[error("{0}")]
    NotFound(String),
    /// 410: a watch's resource version is too old.
    #[error("{0}")]
    Gone(String),
    #[error("talking to the daemon: {0}")]
    Transport(String),
}

impl ClientError {
    /// All error lines (several for a rejected apply).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ClientError::Api(e, errs) if !errs.is_empty() => {
                let _ = e;
                errs.clone()
            }
            e => vec![e.to_string()],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    cluster: String,
}

impl Client {
    pub fn new(socket: &Path, cluster: &str) -> Client {
        Client {
            socket: socket.to_path_buf(),
            cluster: cluster.to_string(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        self.send_as(method, path, "application/json", body).await
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        if body.len() > super::MAX_REQUEST_BYTES {
            return Err(ClientError::Api(
                format!(
                    "the request is {} bytes; lab's API takes at most {} bytes (64 MiB) in one request: split the manifest into several files",
                    body.len(),
                    super::MAX_REQUEST_BYTES
                ),
                Vec::new(),
            ));
        }
        // A daemon that answers before reading the whole body (an error)
        // and closes must not kill us with SIGPIPE: see the reply instead.
        let _sigpipe = crate::sys::process::IgnoreSigpipe::new();
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(format!("http://lab{path}"))
            .header("host", "lab")
            .header("content-type", content_type)
            .header("user-agent", "lab")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        Ok(resp)
    }

    /// A new connection to the daemon's socket.
    async fn connect(&self) -> Result<UnixStream, ClientError> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => {
                    ClientError::Permission(self.socket.clone())
                }
                _ => ClientError::NotRunning {
                    cluster: self.cluster.clone(),
                    socket: self.socket.clone(),
                    flag: if self.cluster == crate::cluster::DEFAULT_CLUSTER {
                        String::new()
                    } else {
                        format!(" --cluster {}", self.cluster)
                    },
                },
            })
    }

    /// Open a WebSocket on `path` (a GET with `Upgrade: websocket`) asking
    /// for subprotocol `protocol`, as kubectl opens `pods/exec`: on the
    /// same socket and router as every other request. A refusal comes back
    /// as the server's `Status`, as any failed request.
    pub async fn websocket(&self, path: &str, protocol: &str) -> Result<WebSocket, ClientError> {
        use tokio_tungstenite::tungstenite::handshake::client::generate_key;
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let key = generate_key();
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("http://lab{path}"))
            .header("host", "lab")
            .header("user-agent", "lab")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", &key)
            .header("sec-websocket-protocol", protocol)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(error_of(resp).await);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        if header("sec-websocket-accept") != derive_accept_key(key.as_bytes()) {
            return Err(ClientError::Transport(
                "the WebSocket handshake's Sec-WebSocket-Accept does not match".into(),
            ));
        }
        let chosen = header("sec-websocket-protocol");
        if chosen != protocol {
            return Err(ClientError::Transport(format!(
                "the server chose WebSocket subprotocol {chosen:?}, not {protocol:?}"
            )));
        }
        let io = hyper::upgrade::on(resp)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(io),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body).await?;
        read_json(resp).await
    }

    pub async fn get<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let q = query_string(query);
        self.call(Method::GET, &format!("{path}?{q}"), Vec::new())
            .await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Transport(e.to_string()))?;
        self.call(Method::POST, path, body).await
    }

    /// GET and copy the body to `out` as it arrives (for `logs -f`).
    pub async fn stream(
        &self,
        path: &str,
        out: &mut (impl std::io::Write + ?Sized),
    ) -> Result<(), ClientError> {
        let resp = self.send(Method::GET, path, Vec::new()).await?;
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                out.flush().ok();
            }
        }
        Ok(())
    }
}

impl Client {
    /// GET and copy the body to `out` chunk by chunk (each written whole)
    /// until it ends, `stop` completes (Ctrl-C) or `limit` passes; returns
    /// the bytes copied (for `lab capture`).
    pub async fn stream_until<Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
        out: &mut (dyn std::io::Write + Send),
        stop: impl std::future::Future<Output = ()>,
        limit: Option<std::time::Duration>,
    ) -> Result<u64, ClientError> {
        let q = query_string(query);
        let resp = self
            .send(Method::GET, &format!("{path}?{q}"), Vec::new())
            .await?;
        let mut body = resp.into_body();
        let mut n = 0u64;
        let deadline = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        tokio::pin!(deadline);
        loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = &mut stop => break,
                _ = &mut deadline => break,
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .map_err(|e| ClientError::Transport(e.to_string()))?;
                out.flush().ok();
                n += data.len() as u64;
            }
        }
        Ok(n)
    }
}

impl Client {
    /// GET a JSON document at a full path (query included).
    pub async fn get_path<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, Vec::new()).await
    }

    /// DELETE with a query (lab's own paths).
    pub async fn delete<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
    ) -> Result<T, ClientError> {
        let q = query_string(query);
        self.call(Method::DELETE, &format!("{path}?{q}"), Vec::new())
            .await
    }

    /// Any method on a full path with a JSON body of the given content type
    /// (`application/merge-patch+json` for a PATCH).
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = self.send_as(method, path, content_type, body).await?;
        read_json(resp).await
    }

    /// What `q` names, as lab's listings want it: one GET or list per
    /// resource on the Kubernetes paths (`labelSelector` for the selector).
    /// The version is the oldest of the lists' (a watch from it misses
    /// nothing).
    pub async fn objects(&self, q: &ListQuery) -> Result<ObjectList, ClientError> {
        let mut kinds = Vec::new();
        for r in q.resources.split(',').filter(|s| !s.is_empty()) {
            if r == "all" {
                kinds.extend(Kind::GET_ALL);
            } else {
                kinds.push(Kind::from_resource(r).ok_or_else(|| {
                    ClientError::Api(
                        format!("the server doesn't have a resource type {r:?}"),
                        Vec::new(),
                    )
                })?);
            }
        }
        let ns = if q.all_namespaces {
            None
        } else {
            Some(q.namespace.as_deref().unwrap_or("default"))
        };
        let mut items = Vec::new();
        let mut rv = u64::MAX;
        for kind in kinds {
            let ns = if kind.namespaced() { ns } else { None };
            if let Some(name) = &q.name {
                let path = resource_path(kind, Some(ns.unwrap_or("default")), Some(name));
                match self.get_path::<serde_json::Value>(&path).await {
                    Ok(v) => {
                        rv = rv.min(version_of(&v));
                        items.push(v);
                    }
                    Err(ClientError::NotFound(_)) => {
                        return Err(ClientError::Api(
                            format!("{} {name:?} not found", kind.plural()),
                            Vec::new(),
                        ));
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            let mut path = resource_path(kind, ns, None);
            if let Some(sel) = q.selector.as_deref().filter(|s| !s.is_empty()) {
                path = format!("{path}?labelSelector={}", percent_encode(sel));
            }
            let list: serde_json::Value = self.get_path(&path).await?;
            rv = rv.min(version_of(&list));
            if let Some(serde_json::Value::Array(a)) = list.get("items") {
                for mut item in a.iter().cloned() {
                    // List items carry no kind on the API server; lab's
                    // printers want it.
                    if item.get("kind").is_none() {
                        item["kind"] = serde_json::json!(kind.as_str());
                        item["apiVersion"] = serde_json::json!(kind.api_version());
                    }
                    items.push(item);
                }
            }
        }
        Ok(ObjectList {
            items,
            resource_version: if rv == u64::MAX { 0 } else { rv },
        })
    }

    /// Wait until an object of one of `kinds` (in `ns`, or everywhere)
    /// changes after resource version `since`, or `timeout` passes: a
    /// Kubernetes watch (`?watch=1&resourceVersion=since`) on each kind,
    /// ended at the first event. A version too old for the watch (410) ends
    /// the wait too: the caller lists again.
    pub async fn wait_change(
        &self,
        kinds: &[Kind],
        ns: Option<&str>,
        since: u64,
        timeout: std::time::Duration,
    ) -> Result<(), ClientError> {
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let mut watches = Vec::new();
        for kind in kinds {
            let ns = if kind.namespaced() { ns } else { None };
            let path = format!(
                "{}?watch=1&resourceVersion={since}&timeoutSeconds={secs}",
                resource_path(*kind, ns, None)
            );
            watches.push(Box::pin(self.first_event(path)));
        }
        if watches.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(());
        }
        match tokio::time::timeout(timeout, futures::future::select_all(watches)).await {
            Ok((r, _, _)) => r,
            Err(_) => Ok(()),
        }
    }

    /// Read a watch stream until its first event that is not a bookmark
    /// (or its end).
    async fn first_event(&self, path: String) -> Result<(), ClientError> {
        let resp = match self.send(Method::GET, &path, Vec::new()).await {
            Ok(r) => r,
            Err(ClientError::Gone(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Transport(e.to_string()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            buf.extend_from_slice(data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let ev: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                if ev.get("type").and_then(|t| t.as_str()) != Some("BOOKMARK") {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// The Kubernetes API path of a kind's collection (`name` `None`) or of one
/// object, in namespace `ns` (ignored for cluster-scoped kinds; `None`:
/// every namespace).
pub fn resource_path(kind: Kind, ns: Option<&str>, name: Option<&str>) -> String {
    let av = kind.api_version();
    let mut p = if av.contains('/') {
        format!("/apis/{av}")
    } else {
        format!("/api/{av}")
    };
    if kind.namespaced()
        && let Some(ns) = ns
    {
        p.push_str(&format!("/namespaces/{}", percent_encode(ns)));
    }
    p.push('/');
    p.push_str(kind.plural());
    if let Some(n) = name {
        p.push('/');
        p.push_str(&percent_encode(n));
    }
    p
}

/// An object's or list's `metadata.resourceVersion` as a number (lab's are).
pub fn version_of(v: &serde_json::Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(|r| r.as_str())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A client's end of a WebSocket to the daemon ([`Client::websocket`]).
pub type WebSocket = tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// A failed answer's `Status` as an error.
async fn error_of(resp: hyper::Response<hyper::body::Incoming>) -> ClientError {
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    status_error(status, &bytes)
}

async fn read_json<T: DeserializeOwned>(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<T, ClientError> {
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Transport(format!("bad reply: {e}")))
}

/// A failed request's `Status` object as an error: 404 and 410 as their
/// own variants (callers act on them); a rejected `lab apply` (422 from
/// `/apis/lab.dev/v1/applies`) with every error line as a cause.
fn status_error(code: StatusCode, bytes: &[u8]) -> ClientError {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return ClientError::Api(
            format!("{code}: {}", String::from_utf8_lossy(bytes)),
            Vec::new(),
        );
    };
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or_default()
        .to_string();
    match code {
        StatusCode::NOT_FOUND => return ClientError::NotFound(message),
        StatusCode::GONE => return ClientError::Gone(message),
        _ => {}
    }
    let causes: Vec<String> = match v.pointer("/details/causes") {
        Some(serde_json::Value::Array(a)) if a.iter().all(|c| c.get("field").is_none()) => a
            .iter()
            .filter_map(|c| c.get("message").and_then(|m| m.as_str()))
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    ClientError::Api(message, causes)
}

/// Encode a flat struct as a query string (via its JSON form).
pub fn query_string<Q: Serialize>(q: &Q) -> String {
    let v = serde_json::to_value(q).unwrap_or_default();
    let mut parts = Vec::new();
    if let Some(m) = v.as_object() {
        for (k, v) in m {
            let s = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{k}={}", percent_encode(&s)));
        }
    }
    parts.join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        let q = super::super::ListQuery {
            resources: "pods,svc".into(),
            namespace: Some("a b".into()),
            all_namespaces: true,
            name: None,
            selector: Some("app in (x,y)".into()),
        };
        assert_eq!(
            query_string(&q),
            "resources=pods%2Csvc&namespace=a%20b&all_namespaces=true&selector=app%20in%20%28x%2Cy%29"
        );
    }
}
