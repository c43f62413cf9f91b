//! The daemon's API server (axum on a unix socket).

use super::*;
use crate::controller::workload::is_terminating;
use crate::daemon::runtime::Daemon;
use crate::model::labels::Selector;
use crate::model::parse::decode;
use crate::model::{Kind, Object};
use crate::store::Key;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

type D = Arc<Daemon>;

#[derive(Clone)]
struct Ctx {
    d: D,
    stop: mpsc::Sender<()>,
}

pub struct ApiError(StatusCode, String, Vec<String>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorReply {
                error: self.1,
                errors: self.2,
            }),
        )
            .into_response()
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into(), Vec::new())
}

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.into(), Vec::new())
}

pub async fn serve(listener: tokio::net::UnixListener, d: D, stop: mpsc::Sender<()>) {
    let app = axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/apply", post(apply))
        .route("/v1/delete", post(delete))
        .route("/v1/objects", get(objects))
        .route("/v1/scale", post(scale))
        .route("/v1/logs", get(logs))
        .route("/v1/exec", get(exec))
        .route("/v1/watch", get(watch_rv))
        .route("/v1/shutdown", post(shutdown))
        .with_state(Ctx { d, stop });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("API server: {e}");
    }
}

/// The read-only API for pods that watch the cluster (the DNS pods): status,
/// object lists and the watch, nothing that changes anything (what RBAC's
/// `get`/`list`/`watch` verbs give CoreDNS's service account).
pub async fn serve_read_only(listener: tokio::net::UnixListener, d: D) {
    let (stop, _) = mpsc::channel(1);
    let app = axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/objects", get(objects))
        .route("/v1/watch", get(watch_rv))
        .with_state(Ctx { d, stop });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("read-only API server: {e}");
    }
}

async fn status(State(c): State<Ctx>) -> Json<StatusReply> {
    let d = &c.d;
    let st = d.lock();
    let pods: Vec<&Object> = st.store.list(Kind::Pod, None).collect();
    let ready = pods
        .iter()
        .filter(|o| matches!(o, Object::Pod(p) if crate::controller::workload::pod_ready(p)))
        .count();
    Json(StatusReply {
        cluster: d.cfg.name.clone(),
        pod_cidr: d.cfg.pod_cidr.to_string(),
        service_cidr: d.cfg.service_cidr.to_string(),
        dns_ip: d.cfg.dns_ip().to_string(),
        node_netns: d.layout.node_netns(),
        daemon_pid: std::process::id(),
        started_at: d.started_at.clone(),
        pods: pods.len(),
        pods_ready: ready,
        services: st.store.list(Kind::Service, None).count(),
        objects: st.store.len(),
        resource_version: st.store.resource_version(),
        dataplane: d.dataplane.stats(),
        service_counters: d.dataplane.service_counters().into_iter().collect(),
    })
}

async fn apply(
    State(c): State<Ctx>,
    Json(req): Json<ApplyRequest>,
) -> Result<Json<crate::daemon::state::ApplyOutcome>, ApiError> {
    let out = {
        let mut st = c.d.lock();
        st.apply(&req.documents, &req.namespace, req.explicit_namespace)
    };
    match out {
        Ok(o) => {
            committed(&c).await;
            Ok(Json(o))
        }
        Err(errs) => Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            errs.first().cloned().unwrap_or_default(),
            errs,
        )),
    }
}

/// Wake the reconciler and wait until it has saved the change and published
/// it (data plane updated, `/v1/watch` bumped), as the API server answers
/// only after etcd has the object: when `lab apply` returns, the Service's
/// VIP is routed and the DNS pods have been told. Bounded: a stuck
/// reconcile does not hang the client.
async fn committed(c: &Ctx) {
    committed_on(&c.d).await;
}

/// [`committed`] for any caller holding the daemon (the Kubernetes API too).
pub(crate) async fn committed_on(d: &Daemon) {
    let rv = d.lock().store.resource_version();
    let mut rx = d.rv.subscribe();
    d.notify();
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| *v >= rv)).await;
}

fn kind_of(resource: &str) -> Result<Kind, ApiError> {
    Kind::from_resource(resource).ok_or_else(|| {
        bad(format!(
            "the server doesn't have a resource type {resource:?}"
        ))
    })
}

async fn delete(
    State(c): State<Ctx>,
    Json(req): Json<DeleteRequest>,
) -> Result<Json<Lines>, ApiError> {
    let mut keys = Vec::new();
    {
        let st = c.d.lock();
        for t in &req.targets {
            let kind = kind_of(&t.resource)?;
            let ns = if kind.namespaced() {
                req.namespace.as_str()
            } else {
                ""
            };
            if let Some(sel) = &req.selector {
                let sel = Selector::parse(sel).map_err(bad)?;
                for o in st.store.list(kind, kind.namespaced().then_some(ns)) {
                    if sel.matches(&o.meta().labels.clone().unwrap_or_default()) {
                        keys.push(Key::of(o));
                    }
                }
            } else {
                keys.push(Key::new(kind, ns, &t.name));
            }
        }
        for doc in &req.documents {
            let dec = decode(doc).map_err(|e| bad(e.to_string()))?;
            let kind = dec.object.kind();
            let ns = match dec.object.meta().namespace.as_deref() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => req.namespace.clone(),
            };
            keys.push(Key::new(kind, &ns, dec.object.name()));
        }
    }
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut pods = Vec::new();
    {
        let mut st = c.d.lock();
        for key in &keys {
            match st.delete(key, req.grace_period) {
                Ok(true) => {
                    lines.push(format!("{}/{} deleted", key.kind.qualified(), key.name));
                    if key.kind == Kind::Pod {
                        pods.push(key.clone());
                    }
                }
                Ok(false) if req.ignore_not_found => {}
                Ok(false) => errors.push(format!("{} {:?} not found", key.kind.plural(), key.name)),
                Err(e) => errors.push(e),
            }
        }
    }
    committed(&c).await;
    if req.wait {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::time::Instant::now() < deadline {
            let left = {
                let st = c.d.lock();
                pods.iter().filter(|k| st.store.get(k).is_some()).count()
            };
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if !errors.is_empty() {
        let mut all = lines.clone();
        all.extend(
            errors
                .iter()
                .map(|e| format!("Error from server (NotFound): {e}")),
        );
        return Err(ApiError(StatusCode::NOT_FOUND, errors[0].clone(), all));
    }
    Ok(Json(Lines { lines }))
}

async fn objects(
    State(c): State<Ctx>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ObjectList>, ApiError> {
    let mut kinds = Vec::new();
    for r in q.resources.split(',').filter(|s| !s.is_empty()) {
        if r == "all" {
            kinds.extend(Kind::GET_ALL);
        } else {
            kinds.push(kind_of(r)?);
        }
    }
    let selector = q
        .selector
        .as_deref()
        .map(Selector::parse)
        .transpose()
        .map_err(bad)?;
    let st = c.d.lock();
    let ns = if q.all_namespaces {
        None
    } else {
        Some(q.namespace.as_deref().unwrap_or("default"))
    };
    let mut items = Vec::new();
    for kind in kinds {
        if let Some(name) = &q.name {
            let key = Key::new(kind, ns.unwrap_or("default"), name);
            match st.store.get(&key) {
                Some(o) => items.push(o.to_json()),
                None => {
                    return Err(not_found(format!("{} {name:?} not found", kind.plural())));
                }
            }
            continue;
        }
        for o in st
            .store
            .list(kind, if kind.namespaced() { ns } else { None })
        {
            if selector
                .as_ref()
                .is_some_and(|s| !s.matches(&o.meta().labels.clone().unwrap_or_default()))
            {
                continue;
            }
            items.push(o.to_json());
        }
    }
    Ok(Json(ObjectList {
        items,
        resource_version: st.store.resource_version(),
    }))
}

async fn scale(
    State(c): State<Ctx>,
    Json(req): Json<ScaleRequest>,
) -> Result<Json<Lines>, ApiError> {
    let kind = kind_of(&req.resource)?;
    let line = {
        let mut st = c.d.lock();
        st.scale(&Key::new(kind, &req.namespace, &req.name), req.replicas)
            .map_err(not_found)?
    };
    committed(&c).await;
    Ok(Json(Lines { lines: vec![line] }))
}

async fn exec(State(c): State<Ctx>, Query(q): Query<PodRef>) -> Result<Json<ExecTarget>, ApiError> {
    c.d.exec_target(&q.namespace, &q.pod, q.container.as_deref())
        .map(Json)
        .map_err(bad)
}

async fn logs(State(c): State<Ctx>, Query(q): Query<LogsQuery>) -> Result<Response, ApiError> {
    log_response(c.d, q).await.map_err(bad)
}

/// A container's log file as a response body (streamed with `follow`): for
/// `/v1/logs` and the Kubernetes API's `pods/log`.
pub(crate) async fn log_response(d: D, q: LogsQuery) -> Result<Response, String> {
    let path = d.log_path(&q.namespace, &q.pod, q.container.as_deref(), q.previous)?;
    let data = tokio::fs::read(&path).await.unwrap_or_default();
    let data = match q.tail {
        Some(n) => {
            let text = String::from_utf8_lossy(&data);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            let mut s = lines[start..].join("\n");
            if !s.is_empty() {
                s.push('\n');
            }
            s.into_bytes()
        }
        None => data,
    };
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

#[derive(serde::Deserialize)]
struct WatchQuery {
    since: u64,
    timeout_ms: Option<u64>,
}

async fn watch_rv(State(c): State<Ctx>, Query(q): Query<WatchQuery>) -> Json<WatchReply> {
    let mut rx = c.d.rv.subscribe();
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(30_000).min(300_000));
    let _ = tokio::time::timeout(timeout, rx.wait_for(|rv| *rv > q.since)).await;
    let rv = *rx.borrow();
    Json(WatchReply {
        resource_version: rv,
    })
}

async fn shutdown(State(c): State<Ctx>) -> Json<Lines> {
    let _ = c.stop.send(()).await;
    Json(Lines {
        lines: vec![format!("cluster {:?} is shutting down", c.d.cfg.name)],
    })
}

/// Whether a pod object counts as terminating (for clients).
pub fn terminating(o: &Object) -> bool {
    is_terminating(o.meta())
}
