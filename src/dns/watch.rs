//! Keep the DNS snapshot current from the daemon's API: list Services,
//! EndpointSlices and Pods in one consistent read, build a [`Zone`], publish
//! it, then long-poll `/v1/watch` until the store moves past that version
//! and do it again. No polling interval: a change is in the snapshot a
//! list-and-build after the daemon committed it. While the daemon is away
//! (restarting) the last snapshot keeps being served.

use crate::api::client::{Client, ClientError};
use crate::api::{ListQuery, ObjectList, StatusReply, WatchQuery, WatchReply};
use crate::dns::server::Shared;
use crate::dns::zone::{Zone, ZoneConfig};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::sync::Arc;
use std::time::Duration;

/// Why the DNS server cannot read the cluster right now.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The daemon's API (away while it restarts).
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("daemon reports a bad {what} {value:?}")]
    BadStatus { what: &'static str, value: String },
}

/// The zone's configuration from the daemon's status.
pub async fn zone_config(client: &Client) -> Result<ZoneConfig, WatchError> {
    let st: StatusReply = client.get("/v1/status", &()).await?;
    let parse = |what: &'static str, s: &str| WatchError::BadStatus {
        what,
        value: s.to_string(),
    };
    Ok(ZoneConfig::new(
        st.service_cidr
            .parse()
            .map_err(|_| parse("service CIDR", &st.service_cidr))?,
        st.pod_cidr
            .parse()
            .map_err(|_| parse("pod CIDR", &st.pod_cidr))?,
        st.dns_ip.parse().map_err(|_| parse("DNS IP", &st.dns_ip))?,
    ))
}

/// What the zone is built from.
const ZONE_RESOURCES: &str = "services,endpointslices,pods";

/// One consistent read of what the zone is built from, and its version.
pub async fn snapshot(client: &Client, cfg: &ZoneConfig) -> Result<(Zone, u64), WatchError> {
    let list: ObjectList = client
        .get(
            "/v1/objects",
            &ListQuery {
                resources: ZONE_RESOURCES.into(),
                namespace: None,
                all_namespaces: true,
                name: None,
                selector: None,
            },
        )
        .await?;
    let (mut services, mut slices, mut pods) = (Vec::new(), Vec::new(), Vec::new());
    for item in list.items {
        match item.get("kind").and_then(|k| k.as_str()) {
            Some("Service") => services.extend(serde_json::from_value::<Service>(item).ok()),
            Some("EndpointSlice") => {
                slices.extend(serde_json::from_value::<EndpointSlice>(item).ok())
            }
            Some("Pod") => pods.extend(serde_json::from_value::<Pod>(item).ok()),
            _ => {}
        }
    }
    let rv = list.resource_version;
    Ok((
        Zone::build(cfg.clone(), &services, &slices, &pods, rv as u32),
        rv,
    ))
}

/// Run forever: keep `shared` current. Errors (daemon restarting) are
/// logged once per outage and retried with a short back-off.
pub async fn run(client: Client, shared: Arc<Shared>) {
    let mut cfg: Option<ZoneConfig> = None;
    let mut since: u64 = 0;
    let mut failing = false;
    loop {
        let step = async {
            let c = match &cfg {
                Some(c) => c.clone(),
                None => zone_config(&client).await?,
            };
            cfg = Some(c.clone());
            let (zone, rv) = snapshot(&client, &c).await?;
            let names = zone.len();
            shared.publish(zone);
            Ok::<_, WatchError>((rv, names))
        };
        match step.await {
            Ok((rv, names)) => {
                if failing || since == 0 {
                    tracing::info!(names, resource_version = rv, "serving");
                }
                failing = false;
                since = rv;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the cluster (keeping the last records)");
                }
                failing = true;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        }
        // Wait for what the zone is built from to move (the daemon answers
        // at once if it already has, or after the timeout with the same
        // version): other changes (events, deployments, ...) cost no list.
        let w: Result<WatchReply, _> = client
            .get(
                "/v1/watch",
                &WatchQuery {
                    since,
                    timeout_ms: 30_000,
                    resources: Some(ZONE_RESOURCES.into()),
                },
            )
            .await;
        if let Err(e) = w {
            if !failing {
                tracing::warn!(error = %e, "watch failed");
            }
            failing = true;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Report the query counters to the daemon (for its `/metrics`) about once
/// a second while they change, over the same API connection the records
/// come from. The pod's hostname is its name.
pub async fn report(client: Client, shared: Arc<Shared>) {
    let pod = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut sent = crate::api::flows::DnsReport::default();
    let mut failing = false;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = shared.counts();
        if now == sent || pod.is_empty() {
            continue;
        }
        let r: Result<crate::api::Lines, _> = client
            .post(
                "/v1/dns/report",
                &crate::api::flows::DnsReportRequest {
                    pod: pod.clone(),
                    report: now.clone(),
                },
            )
            .await;
        match r {
            Ok(_) => {
                sent = now;
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::debug!(error = %e, "reporting DNS counters");
                }
                failing = true;
            }
        }
    }
}
