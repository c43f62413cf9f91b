//! lab's own operations that have no Kubernetes resource, as paths of the
//! same router under `/apis/lab.dev/v1/` (not advertised in discovery, like
//! `/metrics`): reachable with the same credentials on every listener, so
//! `kubectl get --raw /apis/lab.dev/v1/status` works as `lab status` does.
//! Errors are `Status` objects, as everywhere else on the API.
//!
//! | method | path | body / query | answer |
//! |---|---|---|---|
//! | GET | `status` | | [`crate::api::StatusReply`] |
//! | POST | `applies` | [`crate::api::ApplyRequest`] | [`crate::api::ApplyOutcome`] (all documents or none; 422 lists every error) |
//! | POST | `shutdown` | | stops every pod, removes the node, exits |
//! | GET | `capture` | [`crate::api::CaptureQuery`] | pcapng, streamed |
//! | GET | `faults` | [`crate::api::fault::FaultListQuery`] | [`crate::api::fault::FaultList`] |
//! | POST | `faults` | [`crate::api::fault::FaultRequest`] | [`crate::api::Lines`] |
//! | DELETE | `faults` | [`crate::api::fault::FaultClearRequest`] as query | [`crate::api::Lines`] |
//! | GET | `flows` | [`crate::api::flows::FlowsQuery`] (`watch=1`: NDJSON stream) | [`crate::api::flows::FlowsReply`] |
//! | GET | `servicerates` | | [`crate::api::flows::ServiceRates`] |
//! | POST | `dnsreports` | [`crate::api::flows::DnsReportRequest`] | [`crate::api::Lines`] |

use super::Kube;
use super::status::{self, KubeError};
use crate::api::{ApplyRequest, Lines, StatusReply};
use crate::model::{Kind, Object};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The path prefix of lab's own operations.
pub const PREFIX: &str = crate::api::LAB_API;

type Router = axum::Router<Arc<Kube>>;

pub fn routes(r: Router) -> Router {
    use axum::routing::{get, post};
    let p = |s: &str| format!("{PREFIX}/{s}");
    r.route(&p("status"), get(status))
        .route(
            &p("applies"),
            post(apply).layer(axum::extract::DefaultBodyLimit::max(
                crate::api::MAX_REQUEST_BYTES,
            )),
        )
        .route(&p("shutdown"), post(shutdown))
        .route(&p("capture"), get(capture))
        .route(
            &p("faults"),
            get(fault_list).post(fault_set).delete(fault_clear),
        )
        .route(&p("flows"), get(flows))
        .route(&p("servicerates"), get(service_rates))
        .route(&p("dnsreports"), post(dns_report))
}

fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, KubeError> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| status::bad_request(format!("invalid query: {}", e.body_text())))
}

fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, KubeError> {
    serde_json::from_slice(b)
        .map_err(|e| status::bad_request(format!("the request body is not valid: {e}")))
}

fn ok<T: serde::Serialize>(v: &T) -> Response {
    Json(v).into_response()
}

fn not_found(msg: impl std::fmt::Display) -> KubeError {
    KubeError::new(404, "NotFound", msg.to_string())
}

async fn status(State(k): State<Arc<Kube>>) -> Json<StatusReply> {
    let d = &k.d;
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
        dataplane: {
            let mut all = crate::daemon::nodes::sum_named(
                d.nodes
                    .iter()
                    .map(|n| {
                        let mut m = n.dataplane.stats();
                        m.insert("Policy rules".into(), n.routing.rule_count().into());
                        (n.name().to_string(), m)
                    })
                    .collect(),
            );
            all.insert(
                "Repairs".into(),
                crate::daemon::nodes::repairs(&d.nodes).into(),
            );
            all
        },
        service_counters: crate::daemon::nodes::sum_maps(
            d.nodes
                .iter()
                .map(|n| n.dataplane.service_counters().into_iter().collect()),
        )
        .into_iter()
        .collect(),
    })
}

/// `lab apply`: every document of the files at once, validated as a whole
/// before anything changes (Kubernetes has no multi-object transaction;
/// this is lab's). A rejected set is a 422 whose causes list every error.
async fn apply(
    State(k): State<Arc<Kube>>,
    uri: Uri,
    b: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, KubeError> {
    let b = b.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            KubeError::new(
                413,
                "RequestEntityTooLarge",
                format!(
                    "Request entity too large: lab's API takes at most {} bytes (64 MiB) in one request",
                    crate::api::MAX_REQUEST_BYTES
                ),
            )
        } else {
            status::bad_request(e.body_text())
        }
    })?;
    let q: std::collections::HashMap<String, String> = query(&uri)?;
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let req: ApplyRequest = body(&b)?;
    let out = {
        let mut guard = k.d.lock();
        let mut scratch;
        let st = if dry_run {
            scratch = guard.clone();
            &mut scratch
        } else {
            &mut *guard
        };
        st.apply(&req.documents, &req.namespace, req.explicit_namespace)
    };
    match out {
        Ok(o) => {
            if !dry_run {
                k.committed().await;
            }
            Ok(ok(&o))
        }
        Err(errs) => Err(multi_invalid(
            errs.iter().map(ToString::to_string).collect(),
        )),
    }
}

/// A 422 carrying several error lines: the first as the message, every one
/// as a cause (what `lab apply` prints).
pub fn multi_invalid(errs: Vec<String>) -> KubeError {
    let causes: Vec<serde_json::Value> = errs
        .iter()
        .map(|m| serde_json::json!({"reason": "FieldValueInvalid", "message": m}))
        .collect();
    KubeError {
        details: Some(Box::new(serde_json::json!({"causes": causes}))),
        ..KubeError::new(422, "Invalid", errs.first().cloned().unwrap_or_default())
    }
}

async fn shutdown(State(k): State<Arc<Kube>>) -> Json<Lines> {
    let _ = k.stop.send(()).await;
    Json(Lines {
        lines: vec![format!("cluster {:?} is shutting down", k.d.cfg.name)],
    })
}

/// `lab capture`: a pcapng stream (see [`crate::daemon::capture`]).
async fn capture(State(k): State<Arc<Kube>>, uri: Uri) -> Result<Response, KubeError> {
    use crate::daemon::capture::CaptureError;
    let q = query(&uri)?;
    crate::daemon::capture::start(k.d.clone(), q)
        .await
        .map_err(|e| match e {
            CaptureError::NotFound { .. } => not_found(e.to_string()),
            _ => status::bad_request(e.to_string()),
        })
}

fn fault_error(e: crate::daemon::faults::FaultError) -> KubeError {
    use crate::daemon::faults::FaultError;
    match e {
        FaultError::NotFound { .. } => not_found(e.to_string()),
        FaultError::Invalid(_) => status::bad_request(e.to_string()),
        _ => KubeError::new(500, "InternalError", e.to_string()),
    }
}

/// `lab fault TARGET --…`.
async fn fault_set(State(k): State<Arc<Kube>>, b: Bytes) -> Result<Response, KubeError> {
    let req: crate::api::fault::FaultRequest = body(&b)?;
    let lines =
        k.d.faults
            .set(&k.d, &req.namespace, &req.target, req.port, req.faults)
            .await
            .map_err(fault_error)?;
    Ok(ok(&Lines { lines }))
}

/// `lab fault list`.
async fn fault_list(State(k): State<Arc<Kube>>, uri: Uri) -> Result<Response, KubeError> {
    let q: crate::api::fault::FaultListQuery = query(&uri)?;
    let ns = (!q.all_namespaces).then_some(q.namespace.as_str());
    Ok(ok(&crate::api::fault::FaultList {
        items: k.d.faults.list_status(&k.d, ns),
    }))
}

/// `lab fault clear [TARGET]`.
async fn fault_clear(State(k): State<Arc<Kube>>, uri: Uri) -> Result<Response, KubeError> {
    let req: crate::api::fault::FaultClearRequest = query(&uri)?;
    let ns = (!req.all_namespaces).then_some(req.namespace.as_str());
    let lines =
        k.d.faults
            .clear(&k.d, ns, req.target.as_deref())
            .await
            .map_err(fault_error)?;
    Ok(ok(&Lines { lines }))
}

/// `lab flows`; with `watch=1` a stream of [`crate::api::flows::FlowEventLine`]s
/// (one JSON per line), as `lab flows -w`.
async fn flows(State(k): State<Arc<Kube>>, uri: Uri) -> Result<Response, KubeError> {
    let q: crate::api::flows::FlowsQuery = query(&uri)?;
    let raw: std::collections::HashMap<String, String> = query(&uri)?;
    if raw.get("watch").is_some_and(|v| v == "1" || v == "true") {
        return Ok((
            [("content-type", "application/x-ndjson")],
            crate::daemon::observe::watch(k.d.clone(), q),
        )
            .into_response());
    }
    Ok(ok(&crate::daemon::observe::flows(&k.d, &q)))
}

async fn service_rates(State(k): State<Arc<Kube>>) -> Json<crate::api::flows::ServiceRates> {
    Json(crate::daemon::observe::service_rates(&k.d))
}

async fn dns_report(State(k): State<Arc<Kube>>, b: Bytes) -> Result<Response, KubeError> {
    let r: crate::api::flows::DnsReportRequest = body(&b)?;
    crate::daemon::observe::dns_report(&k.d, r).map_err(not_found)?;
    Ok(ok(&Lines { lines: Vec::new() }))
}
