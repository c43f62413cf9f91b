//! The DNS server: hickory-server over UDP and TCP, answering from the
//! current [`Zone`] snapshot, plus CoreDNS-style health and readiness
//! endpoints.

use crate::dns::zone::{Answer, Zone};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// What the server answers from, shared with the watcher that replaces it.
#[derive(Default)]
pub struct Shared {
    zone: RwLock<Option<Arc<Zone>>>,
    /// Set once the first snapshot is in (the readiness endpoint).
    ready: AtomicBool,
    pub queries: AtomicU64,
    /// Queries by type and responses by rcode, for the daemon's `/metrics`
    /// (reported by [`crate::dns::watch::report`]).
    counts: Mutex<crate::api::flows::DnsReport>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared::default())
    }

    /// Replace the snapshot whole.
    pub fn publish(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(zone));
        self.ready.store(true, Ordering::Release);
    }

    pub fn zone(&self) -> Option<Arc<Zone>> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Count one answered query (type `None`: no parseable question).
    pub fn count(&self, qtype: Option<String>, rcode: String) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        // At most a few dozen distinct types: the rest are `other`.
        let t = qtype.unwrap_or_else(|| "none".into());
        let t = if c.types.len() >= 31 && !c.types.contains_key(&t) {
            "other".into()
        } else {
            t
        };
        *c.types.entry(t).or_default() += 1;
        *c.rcodes.entry(rcode).or_default() += 1;
    }

    /// The counts so far.
    pub fn counts(&self) -> crate::api::flows::DnsReport {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An rcode as CoreDNS's metrics name it (`NOERROR`, `NXDOMAIN`, …).
pub fn rcode_name(c: ResponseCode) -> String {
    match c {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

/// The hickory request handler.
pub struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub fn new(shared: Arc<Shared>) -> Handler {
        Handler { shared }
    }
}

fn failed(request: &Request, code: ResponseCode) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = code;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        self.shared.queries.fetch_add(1, Ordering::Relaxed);
        let resp_edns = request.edns.as_ref().map(|e| {
            let mut r = Edns::new();
            r.set_max_payload(e.max_payload().max(512));
            r.set_version(0);
            r
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(e) = &resp_edns {
            builder.edns(e);
        }
        if request.metadata.message_type != MessageType::Query {
            return failed(request, ResponseCode::FormErr);
        }
        let mut qtype = None;
        let ans = if request.metadata.op_code != OpCode::Query {
            Answer::error(ResponseCode::NotImp)
        } else {
            match (request.request_info(), self.shared.zone()) {
                // Not exactly one question.
                (Err(_), _) => Answer::error(ResponseCode::FormErr),
                // No snapshot yet.
                (Ok(_), None) => Answer::error(ResponseCode::ServFail),
                (Ok(info), Some(zone)) => {
                    let q = info.query.original();
                    qtype = Some(q.query_type().to_string());
                    zone.lookup(q.name(), q.query_type(), q.query_class())
                }
            }
        };
        self.shared.count(qtype, rcode_name(ans.rcode));
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = ans.rcode;
        metadata.authoritative = ans.authoritative;
        let msg = builder.build(
            metadata,
            ans.answers.iter(),
            ans.authority.iter(),
            std::iter::empty(),
            ans.additionals.iter(),
        );
        response
            .send_response(msg)
            .await
            .unwrap_or_else(|_| failed(request, ResponseCode::ServFail))
    }
}

/// Bound sockets of one DNS server.
pub struct Listeners {
    pub udp: tokio::net::UdpSocket,
    pub tcp: tokio::net::TcpListener,
}

impl Listeners {
    /// Bind UDP and TCP on the same address (port 0: the same free port for
    /// both, for tests).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Listeners> {
        for _ in 0..20 {
            let udp = tokio::net::UdpSocket::bind(addr).await?;
            let local = udp.local_addr()?;
            match tokio::net::TcpListener::bind(local).await {
                Ok(tcp) => return Ok(Listeners { udp, tcp }),
                Err(e) if addr.port() != 0 => return Err(e),
                Err(_) => continue,
            }
        }
        Err(std::io::Error::other("no port free for both UDP and TCP"))
    }

    #[cfg(test)]
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }
}

/// Serve DNS until the process ends (or the returned server is dropped).
pub fn serve(listeners: Listeners, shared: Arc<Shared>) -> Server<Handler> {
    let mut server = Server::new(Handler::new(shared));
    server.register_socket(listeners.udp);
    server.register_listener(listeners.tcp, Duration::from_secs(10), 64 * 1024);
    server
}

/// `GET /health` (always 200 while the process runs) and `GET /ready` (200
/// once the first snapshot is in, 503 before), as CoreDNS serves them on
/// :8080 and :8181.
pub async fn serve_health(
    health: tokio::net::TcpListener,
    ready: tokio::net::TcpListener,
    shared: Arc<Shared>,
) {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    let h = Router::new().route("/health", get(|| async { "OK" }));
    let r = Router::new().route(
        "/ready",
        get(move || {
            let shared = shared.clone();
            async move {
                if shared.is_ready() {
                    (StatusCode::OK, "OK")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "no records yet")
                }
            }
        }),
    );
    let (h, r) = tokio::join!(axum::serve(health, h), axum::serve(ready, r));
    for (what, res) in [("health", h), ("readiness", r)] {
        if let Err(e) = res {
            tracing::error!(endpoint = what, error = %e, "probe endpoint stopped");
        }
    }
}

#[cfg(test)]
mod tests;
