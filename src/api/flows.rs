//! What `lab flows` and `lab top svc` get from the daemon: the NAT's flows
//! as the user thinks of them (client pod → Service → backend pod), recent
//! rejects, flow events, and per-Service counters.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// `GET /apis/lab.dev/v1/flows` (and its `?watch=1` stream). With no filter: every flow. With
/// `namespace` only: flows whose Service, client pod or backend pod is in
/// it. `service` and `pod` name objects in `namespace` (default
/// "default"); `pod` matches the client or the backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowsQuery {
    pub namespace: Option<String>,
    pub service: Option<String>,
    pub pod: Option<String>,
    /// Only this node's Service proxy (several nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One side of a flow: an address, a port, and the pod behind the address
/// (`ns/name`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub ip: Ipv4Addr,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

/// Packets and bytes one way (a GSO super-packet counts as its segments;
/// bytes are IP bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

/// One flow of the NAT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// `TCP` or `UDP`.
    pub proto: String,
    pub client: Peer,
    /// `ns/name`; `None` once the Service was deleted (the flow lives on).
    pub service: Option<String>,
    /// The Service port's name (empty for an unnamed single port).
    #[serde(default)]
    pub port_name: String,
    /// The ClusterIP and port the client connected to.
    pub vip: Peer,
    /// The endpoint the NAT picked (pod IP and targetPort).
    pub backend: Peer,
    /// The client address the backend sees when the source is rewritten
    /// too (hairpin, or a source-port clash): `ip:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat: Option<String>,
    /// SYN_SENT, SYN_RECV, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK,
    /// TIME_WAIT, CLOSE (TCP); UNREPLIED, REPLIED (UDP).
    pub state: String,
    pub age_ms: u64,
    /// Since the last packet either way.
    pub idle_ms: u64,
    /// Until the flow times out in its state.
    pub expires_ms: u64,
    /// Client → backend.
    pub to_backend: Traffic,
    /// Backend → client.
    pub to_client: Traffic,
    /// How the backend was chosen: `random`, `affinity` (sessionAffinity
    /// ClientIP hit) or `restored` (from a flow-table snapshot).
    pub pick: String,
    /// The `lab fault` that hit this flow, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// The node whose Service proxy holds the flow (clusters of several
    /// nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A connection attempt answered with ICMP port unreachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectView {
    pub proto: String,
    pub client: Peer,
    pub vip: Peer,
    pub service: Option<String>,
    /// `no endpoints` or `unknown port`.
    pub reason: String,
    pub age_ms: u64,
    /// The node whose Service proxy rejected it (several nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowsReply {
    pub flows: Vec<FlowView>,
    /// The most recent rejects (a bounded ring), oldest first.
    pub rejects: Vec<RejectView>,
}

/// One line of `/apis/lab.dev/v1/flows?watch=1`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum FlowEventLine {
    New {
        flow: FlowView,
    },
    /// The TCP state changed, or a UDP flow got its first reply.
    Update {
        flow: FlowView,
    },
    /// `reason`: expired, evicted, flushed or reopened.
    End {
        reason: String,
        flow: FlowView,
    },
    Reject {
        reject: RejectView,
    },
    /// Events dropped because the watcher (or the NAT's bounded event
    /// queue) fell behind.
    Lost {
        count: u64,
    },
}

/// Per-Service counters at one instant (`GET /apis/lab.dev/v1/servicerates`), for
/// rates computed by the client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceRates {
    /// Milliseconds on the daemon's monotonic clock.
    pub at_ms: u64,
    pub services: BTreeMap<String, ServiceSample>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSample {
    /// Flows created (connections) so far.
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    pub rejects: u64,
    pub drops: u64,
    /// Flows in the table now.
    pub active: u64,
}

/// A DNS pod's counters (`POST /apis/lab.dev/v1/dnsreports`, allowed on the read-only API):
/// queries by type (`A`, `AAAA`, `SRV`, …) and responses by rcode
/// (`NOERROR`, `NXDOMAIN`, …), since the pod started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsReport {
    pub types: BTreeMap<String, u64>,
    pub rcodes: BTreeMap<String, u64>,
}

/// The body of `POST /apis/lab.dev/v1/dnsreports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsReportRequest {
    /// The reporting pod's name (its hostname); the daemon keeps reports
    /// only for `kube-system` pods that exist.
    pub pod: String,
    pub report: DnsReport,
}
