//! `pods/log`: a container's log file as a response body, streamed with
//! `follow`.

use crate::api::LogsQuery;
use crate::daemon::runtime::Daemon;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a container's log cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// No such pod, container or previous instance.
    #[error(transparent)]
    Target(#[from] crate::daemon::runtime::PodTargetError),
    #[error("reading {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("reading the log: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl LogError {
    /// The pod or container is not there (the API answers 404).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, LogError::Target(e) if e.is_not_found())
    }
}

/// A container's log file as a response body (streamed with `follow`): for
/// the Kubernetes API's `pods/log`. `tail` reads from the end
/// of the file.
pub(crate) async fn log_response(d: Arc<Daemon>, q: LogsQuery) -> Result<Response, LogError> {
    let path = d
        .log_path(&q.namespace, &q.pod, q.container.as_deref(), q.previous)
        .map_err(LogError::Target)?;
    let p = path.clone();
    let tail = q.tail;
    let data = tokio::task::spawn_blocking(move || match tail {
        Some(n) => crate::logfile::read_tail(&p, n),
        None => std::fs::read(&p).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(Vec::new())
            } else {
                Err(e)
            }
        }),
    })
    .await?
    .map_err(|source| LogError::Read {
        path: path.clone(),
        source,
    })?;
    if !q.follow {
        return Ok(data.into_response());
    }
    // Follow: send what is there, then what is appended, until the pod's
    // container log changes (restart) or the pod goes away.
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
    let start_len = tokio::fs::metadata(&path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    tokio::spawn(async move {
        if tx.send(Ok(data)).await.is_err() {
            return;
        }
        let mut pos = start_len;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if d.log_path(&q.namespace, &q.pod, q.container.as_deref(), false)
                .is_err()
            {
                break;
            }
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                continue;
            };
            if meta.len() > pos {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                if let Ok(mut f) = tokio::fs::File::open(&path).await {
                    let _ = f.seek(std::io::SeekFrom::Start(pos)).await;
                    let mut buf = Vec::new();
                    let _ = f.read_to_end(&mut buf).await;
                    pos += buf.len() as u64;
                    if tx.send(Ok(buf)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Ok(Body::from_stream(stream).into_response())
}
