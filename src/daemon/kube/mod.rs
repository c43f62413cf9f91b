//! The Kubernetes API: HTTPS on the host's `127.0.0.1:<port>`, client
//! certificates from the cluster CA, the real REST paths, objects, status
//! codes, watch streams and Tables, so `kubectl` and client libraries work
//! against lab unchanged. What is served (and what is not) is listed in
//! `docs/kubernetes-mapping.md`.

pub mod apply;
pub mod discovery;
pub mod kubeconfig;
pub mod lab;
pub mod logs;
pub mod openapi;
pub mod paging;
pub mod patch;
pub mod portforward;
pub mod protobuf;
pub mod resources;
pub mod select;
pub mod spdy;
pub mod status;
pub mod stream;
pub mod table;
pub mod tls;
pub mod watch;

use crate::daemon::runtime::Daemon;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub struct Kube {
    pub d: Arc<Daemon>,
    pub log: Arc<watch::EventLog>,
    /// Tells the daemon to shut the cluster down (`lab down`).
    pub stop: tokio::sync::mpsc::Sender<()>,
}

impl Kube {
    /// Wake the reconciler and wait until it has saved the change and
    /// published it (data plane updated, watchers told), as the API server
    /// answers only after etcd has the object: when `lab apply` returns,
    /// the Service's VIP is routed and the DNS pods have been told.
    /// Bounded: a stuck reconcile does not hang the client.
    pub(crate) async fn committed(&self) {
        let d = &self.d;
        let rv = d.lock().store.resource_version();
        let mut rx = d.rv.subscribe();
        d.notify();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| *v >= rv)).await;
    }
}

/// Start the HTTPS listener (called by the daemon's `run`): make the PKI if
/// missing, bind the port (the saved one, or a free one that is then
/// saved), write the kubeconfig, and serve until the task is aborted (which
/// also ends the event log's syncer). Returns the API, for the same router
/// on the Unix sockets ([`serve_unix`]).
pub async fn start(
    d: Arc<Daemon>,
    stop: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<(Arc<Kube>, tokio::task::JoinHandle<()>)> {
    let layout = &d.layout;
    let pki = tls::load_or_create(&layout.state_dir, &d.cfg.name).map_err(anyhow::Error::msg)?;
    let config = tls::server_config(&pki).map_err(anyhow::Error::msg)?;
    let want = d.cfg.api_port.unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", want))
        .await
        .map_err(|e| anyhow::anyhow!("Kubernetes API: cannot listen on 127.0.0.1:{want}: {e}"))?;
    let port = listener.local_addr()?.port();
    if d.cfg.api_port != Some(port) {
        let mut cfg = d.cfg.clone();
        cfg.api_port = Some(port);
        crate::daemon::runtime::write_atomic(
            &layout.config_file(),
            &serde_json::to_vec_pretty(&cfg)?,
            crate::daemon::runtime::PRIVATE,
        )?;
    }
    let kc = kubeconfig::to_yaml(&kubeconfig::build(&d.cfg.name, port, &pki));
    tls::write_private(&layout.kubeconfig(), kc.as_bytes()).map_err(anyhow::Error::msg)?;
    let log = {
        let st = d.lock();
        Arc::new(watch::EventLog::new(&st.store))
    };
    // The reconcile loop syncs it too (see `Daemon::watch_log`).
    let _ = d.watch_log.set(log.clone());
    let k = Arc::new(Kube { d, log, stop });
    tracing::info!("Kubernetes API on https://127.0.0.1:{port}");
    Ok((k.clone(), tokio::spawn(serve(k, listener, config))))
}

/// The one router: the Kubernetes API and lab's own paths under
/// [`lab::PREFIX`]. Served on HTTPS (client certificate = the admin), on
/// the admin Unix socket (mode 0600: root = the admin) and, behind
/// [`read_only`], on the DNS pods' socket.
pub fn router(k: Arc<Kube>) -> axum::Router {
    lab::routes(stream::routes(axum::Router::new()))
        .fallback(dispatch)
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(k)
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

/// Serve `app` on a Unix socket until the task is aborted.
pub async fn serve_unix(listener: tokio::net::UnixListener, app: axum::Router) {
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("API server on the Unix socket: {e}");
    }
}

/// The rights of the DNS pods' socket, as RBAC gives CoreDNS's service
/// account: `get`, `list` and `watch` of resources (not Secrets, no
/// subresources: no logs, exec or port-forward), discovery, lab's status,
/// and the report of the DNS counters (for `/metrics`). Everything else is
/// 403 Forbidden with a `Status`.
pub fn read_only(app: axum::Router) -> axum::Router {
    app.layer(axum::middleware::from_fn(read_only_guard))
}

async fn read_only_guard(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if read_only_allows(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let verb = match *req.method() {
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "use",
    };
    status::forbidden(format!(
        "the read-only API does not allow {verb} on {:?}: it serves get, list and watch only",
        req.uri().path()
    ))
    .into_response()
}

/// Whether the read-only socket serves `method path` (see [`read_only`]).
pub fn read_only_allows(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    if method == Method::POST {
        return path == format!("{}/dnsreports", lab::PREFIX);
    }
    if method != Method::GET {
        return false;
    }
    if matches!(
        path,
        "" | "/version" | "/api" | "/apis" | "/healthz" | "/livez" | "/readyz"
    ) || path == format!("{}/status", lab::PREFIX)
    {
        return true;
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", "lab.dev", ..] => return false,
        ["apis", _] => return true,
        ["apis", _, _, rest @ ..] => rest,
        _ => return false,
    };
    let plural = match rest {
        [] => return true,
        ["namespaces", _, plural] | ["namespaces", _, plural, _] => *plural,
        [plural] | [plural, _] => *plural,
        _ => return false,
    };
    !matches!(plural, "secrets" | "status" | "finalize")
}

async fn serve(k: Arc<Kube>, listener: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) {
    // Keep the event log current as the daemon publishes changes.
    let _syncer = AbortOnDrop({
        let k = k.clone();
        tokio::spawn(async move {
            let mut rx = k.d.rv.subscribe();
            while rx.changed().await.is_ok() {
                let st = k.d.lock();
                k.log.sync(&st.store);
            }
        })
    });
    let app = router(k);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("Kubernetes API accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    _ => return,
                };
            let authenticated = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let mut app = app.clone();
                async move {
                    if !authenticated {
                        return Ok::<_, std::convert::Infallible>(
                            status::unauthorized().into_response(),
                        );
                    }
                    tower::Service::call(&mut app, req.map(Body::new)).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .with_upgrades()
                .await;
        });
    }
}

/// Ends a helper task when the server task is aborted.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn json(v: serde_json::Value) -> Response {
    resources::json_response(StatusCode::OK, &v, &[])
}

async fn dispatch(
    State(k): State<Arc<Kube>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match route(&k, &method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(
    k: &Arc<Kube>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, status::KubeError> {
    let path = uri.path().trim_end_matches('/');
    let q: HashMap<String, String> =
        axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri)
            .map(|q| q.0)
            .map_err(|e| status::bad_request(e.to_string()))?;
    let get = method == Method::GET;
    match path {
        "/version" if get => return Ok(json(discovery::version())),
        "/api" if get => return Ok(json(discovery::api_versions())),
        "/apis" if get => return Ok(json(discovery::api_group_list())),
        "/healthz" | "/livez" | "/readyz" if get => return Ok("ok".into_response()),
        "/metrics" if get => {
            let d = k.d.clone();
            let text = tokio::task::spawn_blocking(move || crate::daemon::observe::metrics(&d))
                .await
                .map_err(|e| status::KubeError::new(500, "InternalError", e.to_string()))?;
            return Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    crate::daemon::metrics::CONTENT_TYPE,
                )],
                text,
            )
                .into_response());
        }
        _ => {}
    }
    if path == "/openapi/v2" || path.starts_with("/openapi/") {
        return openapi::serve(path, &q, headers);
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g] if get => {
            return discovery::api_group(g)
                .map(json)
                .ok_or_else(|| status::path_not_found(path));
        }
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(status::path_not_found(path)),
    };
    if rest.is_empty() {
        return match discovery::resource_list(group, version) {
            Some(v) if get => Ok(json(v)),
            _ => Err(status::path_not_found(path)),
        };
    }
    let s = |x: &&str| Some(x.to_string());
    let (ns, plural, name, sub) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] => (None, "namespaces", s(ns), s(sub)),
        ["namespaces", ns, plural] => (s(ns), *plural, None, None),
        ["namespaces", ns, plural, name] => (s(ns), *plural, s(name), None),
        ["namespaces", ns, plural, name, sub] => (s(ns), *plural, s(name), s(sub)),
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, s(name), None),
        [plural, name, sub] => (None, *plural, s(name), s(sub)),
        _ => return Err(status::path_not_found(path)),
    };
    let info =
        discovery::find(group, version, plural).ok_or_else(|| status::path_not_found(path))?;
    if !info.namespaced && ns.is_some() {
        return Err(status::path_not_found(path));
    }
    let t = resources::Target {
        info,
        ns,
        name,
        sub,
    };
    k.handle(method, t, &q, headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_rights_are_get_list_watch() {
        let get = Method::GET;
        for p in [
            "/version",
            "/api",
            "/apis",
            "/api/v1",
            "/apis/discovery.k8s.io/v1",
            "/api/v1/services",
            "/api/v1/namespaces/kube-system/services",
            "/api/v1/namespaces/kube-system/services/kube-dns",
            "/apis/discovery.k8s.io/v1/endpointslices",
            "/api/v1/namespaces",
            "/api/v1/namespaces/default",
            "/apis/lab.dev/v1/status",
        ] {
            assert!(read_only_allows(&get, p), "GET {p}");
        }
        assert!(read_only_allows(
            &Method::POST,
            "/apis/lab.dev/v1/dnsreports"
        ));
        for (m, p) in [
            (Method::GET, "/api/v1/secrets"),
            (Method::GET, "/api/v1/namespaces/default/secrets/db"),
            (Method::GET, "/api/v1/namespaces/default/pods/x/log"),
            (Method::GET, "/api/v1/namespaces/default/pods/x/exec"),
            (Method::GET, "/api/v1/namespaces/default/pods/x/portforward"),
            (Method::GET, "/api/v1/namespaces/default/status"),
            (Method::GET, "/api/v1/nodes/n/status"),
            (Method::GET, "/apis/lab.dev/v1/flows"),
            (Method::GET, "/apis/lab.dev/v1/capture"),
            (Method::GET, "/metrics"),
            (Method::POST, "/api/v1/namespaces/default/configmaps"),
            (Method::POST, "/apis/lab.dev/v1/applies"),
            (Method::POST, "/apis/lab.dev/v1/shutdown"),
            (Method::PUT, "/api/v1/namespaces/default/configmaps/x"),
            (Method::PATCH, "/api/v1/nodes/n"),
            (Method::DELETE, "/api/v1/namespaces/default/pods/x"),
            (Method::DELETE, "/apis/lab.dev/v1/faults"),
        ] {
            assert!(!read_only_allows(&m, p), "{m} {p}");
        }
    }
}
