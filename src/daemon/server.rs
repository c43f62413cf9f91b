//! The daemon's API server (axum on a unix socket).

use crate::api::*;
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

fn bad(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.to_string(), Vec::new())
}

fn not_found(msg: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, msg.to_string(), Vec::new())
}

/// Every API request runs in a span naming it; its outcome is logged at
/// debug level (`lab up -v`).
async fn trace_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let span = tracing::debug_span!("api", method = %req.method(), path = %req.uri().path());
    let t0 = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            elapsed_us = t0.elapsed().as_micros() as u64,
            "request"
        )
    });
    resp
}

pub async fn serve(listener: tokio::net::UnixListener, d: D, stop: mpsc::Sender<()>) {
    let app = axum::Router::new()
        .route("/v1/status", get(status))
        .route(
            "/v1/apply",
            post(apply).layer(axum::extract::DefaultBodyLimit::max(
                crate::api::MAX_REQUEST_BYTES,
            )),
        )
        .route("/v1/delete", post(delete))
        .route("/v1/objects", get(objects))
        .route("/v1/scale", post(scale))
        .route("/v1/nodes/cordon", post(cordon))
        .route("/v1/evict", post(evict))
        .route("/v1/logs", get(logs))
        .route("/v1/exec", get(exec))
        .route("/v1/watch", get(watch_rv))
        .route("/v1/shutdown", post(shutdown))
        .route("/v1/capture", get(capture))
        .route("/v1/faults", get(fault_list).post(fault_set))
        .route("/v1/faults/clear", post(fault_clear))
        .route("/v1/flows", get(flows))
        .route("/v1/flows/watch", get(flows_watch))
        .route("/v1/metrics/services", get(service_rates))
        .route("/v1/dns/report", post(dns_report))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(trace_request))
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
        .route("/v1/objects", get(objects_read_only))
        .route("/v1/watch", get(watch_rv))
        // The DNS pods' counters (for /metrics): a report, not a change.
        .route("/v1/dns/report", post(dns_report))
        .layer(axum::middleware::from_fn(trace_request))
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
        node_netns: d
            .nodes
            .iter()
            .map(|n| n.name())
            .collect::<Vec<_>>()
            .join(", "),
        daemon_pid: std::process::id(),
        started_at: d.started_at.clone(),
        pods: pods.len(),
        pods_ready: ready,
        services: st.store.list(Kind::Service, None).count(),
        objects: st.store.len(),
        resource_version: st.store.resource_version(),
        // One node's figures as they are; several nodes' summed.
        dataplane: crate::daemon::nodes::sum_maps(d.nodes.iter().map(|n| {
            let mut m = n.dataplane.stats();
            m.insert("Policy rules".into(), n.routing.rule_count().into());
            m.insert("Repairs".into(), n.routing.repairs().into());
            m
        })),
        service_counters: crate::daemon::nodes::sum_maps(
            d.nodes
                .iter()
                .map(|n| n.dataplane.service_counters().into_iter().collect()),
        )
        .into_iter()
        .collect(),
    })
}

async fn apply(
    State(c): State<Ctx>,
    req: Result<Json<ApplyRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<crate::api::ApplyOutcome>, ApiError> {
    let Json(req) = req.map_err(|e| {
        let status = e.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "Request entity too large: lab's API takes at most {} bytes (64 MiB) in one request",
                crate::api::MAX_REQUEST_BYTES
            )
        } else {
            format!("bad apply request: {}", e.body_text())
        };
        ApiError(status, msg, Vec::new())
    })?;
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
            let uid = st.store.get(key).and_then(|o| o.meta().uid.clone());
            match st.delete(key, req.grace_period) {
                Ok(true) => {
                    lines.push(format!("{}/{} deleted", key.kind.qualified(), key.name));
                    if key.kind == Kind::Pod {
                        pods.push((key.clone(), uid));
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
                // By uid, as kubectl waits: a StatefulSet's pod comes back
                // under the same name at once.
                pods.iter()
                    .filter(|(k, uid)| st.store.get(k).is_some_and(|o| o.meta().uid == *uid))
                    .count()
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

/// The read-only API's lists: everything but Secrets (CoreDNS's role
/// cannot read them either).
async fn objects_read_only(
    c: State<Ctx>,
    q: Query<ListQuery>,
) -> Result<Json<ObjectList>, ApiError> {
    for r in q.resources.split(',') {
        if Kind::from_resource(r) == Some(Kind::Secret) {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "secrets are not served by the read-only API".into(),
                vec![],
            ));
        }
    }
    objects(c, q).await
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

async fn cordon(
    State(c): State<Ctx>,
    Json(req): Json<crate::api::CordonRequest>,
) -> Result<Json<Lines>, ApiError> {
    let line = {
        let mut st = c.d.lock();
        st.cordon(&req.name, req.unschedulable).map_err(not_found)?
    };
    committed(&c).await;
    Ok(Json(Lines { lines: vec![line] }))
}

async fn evict(
    State(c): State<Ctx>,
    Json(req): Json<crate::api::EvictRequest>,
) -> Result<Json<Lines>, ApiError> {
    let found = {
        let mut st = c.d.lock();
        st.evict(&req.namespace, &req.name, req.grace_period)
            .map_err(bad)?
    };
    if !found {
        return Err(not_found(format!("pods {:?} not found", req.name)));
    }
    committed(&c).await;
    Ok(Json(Lines {
        lines: vec![format!("evicting pod {}/{}", req.namespace, req.name)],
    }))
}

async fn exec(State(c): State<Ctx>, Query(q): Query<PodRef>) -> Result<Json<ExecTarget>, ApiError> {
    c.d.exec_target(&q.namespace, &q.pod, q.container.as_deref())
        .map(Json)
        .map_err(bad)
}

async fn logs(State(c): State<Ctx>, Query(q): Query<LogsQuery>) -> Result<Response, ApiError> {
    log_response(c.d, q).await.map_err(bad)
}

/// Why a container's log cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LogError {
    /// No such pod, container or previous instance (the runtime's words).
    #[error("{0}")]
    Target(String),
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
        matches!(self, LogError::Target(m) if m.contains("not found"))
    }
}

/// A container's log file as a response body (streamed with `follow`): for
/// `/v1/logs` and the Kubernetes API's `pods/log`. `tail` reads from the end
/// of the file.
pub(crate) async fn log_response(d: D, q: LogsQuery) -> Result<Response, LogError> {
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

async fn watch_rv(
    State(c): State<Ctx>,
    Query(q): Query<WatchQuery>,
) -> Result<Json<WatchReply>, ApiError> {
    let kinds = match q.resources.as_deref() {
        None => None,
        Some(r) => Some(
            r.split(',')
                .map(|x| kind_of(x.trim()))
                .collect::<Result<Vec<Kind>, _>>()?,
        ),
    };
    let mut rx = c.d.rv.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(q.timeout_ms.min(300_000));
    let mut above = q.since;
    loop {
        let woke = tokio::time::timeout_at(deadline, rx.wait_for(|rv| *rv > above))
            .await
            .is_ok();
        let rv = *rx.borrow();
        let Some(kinds) = kinds.as_ref().filter(|_| woke) else {
            return Ok(Json(WatchReply {
                resource_version: rv,
            }));
        };
        // Saved past `since`: answer if one of the kinds changed after it,
        // else wait for the next save.
        let last = {
            let st = c.d.lock();
            kinds
                .iter()
                .map(|k| st.store.kind_version(*k))
                .max()
                .unwrap_or(0)
        };
        if last > q.since {
            return Ok(Json(WatchReply {
                resource_version: rv,
            }));
        }
        above = rv;
    }
}

async fn shutdown(State(c): State<Ctx>) -> Json<Lines> {
    let _ = c.stop.send(()).await;
    Json(Lines {
        lines: vec![format!("cluster {:?} is shutting down", c.d.cfg.name)],
    })
}

/// `lab capture`: a pcapng stream (see [`crate::daemon::capture`]).
async fn capture(
    State(c): State<Ctx>,
    Query(q): Query<CaptureQuery>,
) -> Result<Response, ApiError> {
    use crate::daemon::capture::CaptureError;
    crate::daemon::capture::start(c.d.clone(), q)
        .await
        .map_err(|e| match e {
            CaptureError::NotFound { .. } => not_found(e.to_string()),
            _ => bad(e.to_string()),
        })
}

fn fault_error(e: crate::daemon::faults::FaultError) -> ApiError {
    use crate::daemon::faults::FaultError;
    match e {
        FaultError::NotFound { .. } => not_found(e.to_string()),
        FaultError::Invalid(_) => bad(e.to_string()),
        _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), Vec::new()),
    }
}

/// `lab fault TARGET --…`.
async fn fault_set(
    State(c): State<Ctx>,
    Json(req): Json<fault::FaultRequest>,
) -> Result<Json<Lines>, ApiError> {
    let lines =
        c.d.faults
            .set(&c.d, &req.namespace, &req.target, req.port, req.faults)
            .await
            .map_err(fault_error)?;
    Ok(Json(Lines { lines }))
}

/// `lab fault list`.
async fn fault_list(
    State(c): State<Ctx>,
    Query(q): Query<fault::FaultListQuery>,
) -> Json<fault::FaultList> {
    let ns = (!q.all_namespaces).then_some(q.namespace.as_str());
    Json(fault::FaultList {
        items: c.d.faults.list_status(&c.d, ns),
    })
}

/// `lab fault clear [TARGET]`.
async fn fault_clear(
    State(c): State<Ctx>,
    Json(req): Json<fault::FaultClearRequest>,
) -> Result<Json<Lines>, ApiError> {
    let ns = (!req.all_namespaces).then_some(req.namespace.as_str());
    let lines =
        c.d.faults
            .clear(&c.d, ns, req.target.as_deref())
            .await
            .map_err(fault_error)?;
    Ok(Json(Lines { lines }))
}
async fn flows(
    State(c): State<Ctx>,
    Query(q): Query<crate::api::flows::FlowsQuery>,
) -> Json<crate::api::flows::FlowsReply> {
    Json(crate::daemon::observe::flows(&c.d, &q))
}

async fn flows_watch(
    State(c): State<Ctx>,
    Query(q): Query<crate::api::flows::FlowsQuery>,
) -> Response {
    (
        [("content-type", "application/x-ndjson")],
        crate::daemon::observe::watch(c.d.clone(), q),
    )
        .into_response()
}

async fn service_rates(State(c): State<Ctx>) -> Json<crate::api::flows::ServiceRates> {
    Json(crate::daemon::observe::service_rates(&c.d))
}

async fn dns_report(
    State(c): State<Ctx>,
    Json(r): Json<crate::api::flows::DnsReportRequest>,
) -> Result<Json<Lines>, ApiError> {
    crate::daemon::observe::dns_report(&c.d, r).map_err(not_found)?;
    Ok(Json(Lines { lines: Vec::new() }))
}

async fn metrics(State(c): State<Ctx>) -> Response {
    let d = c.d.clone();
    match tokio::task::spawn_blocking(move || crate::daemon::observe::metrics(&d)).await {
        Ok(text) => (
            [("content-type", crate::daemon::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => {
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), Vec::new()).into_response()
        }
    }
}
