//! Cluster DNS: lab's own DNS server, run as the `coredns` pods of
//! `kube-system` behind the `kube-dns` Service (`lab dns`, image
//! [`crate::model::images::DNS_IMAGE`]).
//!
//! - [`zone`]: the pure part — an immutable snapshot of every record and the
//!   lookup answering one question from it.
//! - [`server`]: hickory-server over UDP and TCP with a handler reading the
//!   current snapshot; health (`:8080/health`) and readiness
//!   (`:8181/ready`) endpoints as CoreDNS has them.
//! - [`watch`]: keeps the snapshot current from the daemon's Kubernetes API
//!   (list, then watch Services, EndpointSlices and Pods), rebuilding and
//!   swapping it whole on every change; and
//!   reports query counters (by type and rcode) to the daemon's `/metrics`.

pub mod server;
pub mod watch;
pub mod zone;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// `lab dns` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DnsArgs {
    /// The daemon's API socket, as mounted into the pod.
    #[arg(long, default_value = "/run/lab-api/api.sock")]
    pub api: PathBuf,
    /// The cluster's name (for messages).
    #[arg(long, default_value = crate::cluster::DEFAULT_CLUSTER)]
    pub cluster: String,
    /// Address to answer DNS on (UDP and TCP).
    #[arg(long, default_value = "0.0.0.0:53")]
    pub listen: SocketAddr,
    /// Port of `GET /health`.
    #[arg(long, default_value_t = 8080)]
    pub health_port: u16,
    /// Port of `GET /ready` (200 once the records are loaded).
    #[arg(long, default_value_t = 8181)]
    pub ready_port: u16,
}

/// Run the DNS server until killed.
pub fn main(args: &DnsArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "starting the runtime");
            return 1;
        }
    };
    rt.block_on(async {
        let bind = |port: u16| {
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
        };
        let listeners = match server::Listeners::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(listen = %args.listen, error = %e, "cannot listen");
                return 1;
            }
        };
        let (health, ready) = match (bind(args.health_port).await, bind(args.ready_port).await) {
            (Ok(h), Ok(r)) => (h, r),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for health/readiness");
                return 1;
            }
        };
        let shared = server::Shared::new();
        let _server = server::serve(listeners, shared.clone());
        tracing::info!(
            listen = %args.listen,
            api = %args.api.display(),
            "answering for cluster.local (UDP, TCP)"
        );
        let client = crate::api::client::Client::new(&args.api, &args.cluster);
        tokio::join!(
            server::serve_health(health, ready, shared.clone()),
            watch::report(client.clone(), shared.clone()),
            watch::run(client, shared)
        );
        0
    })
}
