//! HTTP/1 client for the daemon's unix socket.

use super::ErrorReply;
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
        let stream = UnixStream::connect(&self.socket)
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
            })?;
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
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let err: ErrorReply = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorReply {
                error: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                errors: Vec::new(),
            });
            return Err(ClientError::Api(err.error, err.errors));
        }
        Ok(resp)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, path, body).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad reply: {e}")))
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
    pub async fn stream<Q: Serialize>(
        &self,
        path: &str,
        query: &Q,
        out: &mut (impl std::io::Write + ?Sized),
    ) -> Result<(), ClientError> {
        let q = query_string(query);
        let resp = self
            .send(Method::GET, &format!("{path}?{q}"), Vec::new())
            .await?;
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
