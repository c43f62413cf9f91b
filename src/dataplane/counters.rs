//! Plain counter structs, readable by the daemon and serialisable for
//! `lab status` / `lab describe svc`.

use serde::{Deserialize, Serialize};

/// Why a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// Shorter than the virtio-net header, or an empty packet.
    Truncated,
    /// Not IPv4 (lab's data plane is IPv4-only for now).
    NotIpv4,
    /// Bad IPv4/TCP/UDP/ICMP lengths or header fields.
    Malformed,
    /// `NEEDS_CSUM` with a `csum_start`/`csum_offset` that does not point at
    /// the TCP/UDP checksum: rewriting it would corrupt the packet.
    BadVnetHeader,
    /// An IP fragment of (or addressed to) a service flow.
    Fragment,
    /// Addressed to the service CIDR but not to an allocated VIP (including
    /// the hairpin SNAT address without a matching flow).
    UnallocatedServiceIp,
    /// ICMP echo request to a VIP (kube-proxy drops these too).
    EchoToVip,
    /// Other ICMP to a VIP: an informational message, or an error about no
    /// known flow.
    IcmpToVip,
    /// A TCP RST to a VIP with no flow.
    StrayRst,
    /// No free source port for a hairpin / port-clash SNAT.
    NoSnatPort,
    /// `out` is too small for the generated reply.
    ReplyBufferTooSmall,
    /// Dropped by an injected fault (`lab fault`: drop, blackhole, a
    /// shaper's full backlog, a reset flow's replies).
    Fault,
    /// A new flow to an `internalTrafficPolicy: Local` Service with no
    /// endpoint on this node (kube-proxy drops these too).
    NoLocalEndpoints,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::Truncated,
        DropReason::NotIpv4,
        DropReason::Malformed,
        DropReason::BadVnetHeader,
        DropReason::Fragment,
        DropReason::UnallocatedServiceIp,
        DropReason::EchoToVip,
        DropReason::IcmpToVip,
        DropReason::StrayRst,
        DropReason::NoSnatPort,
        DropReason::ReplyBufferTooSmall,
        DropReason::Fault,
        DropReason::NoLocalEndpoints,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::Malformed => "malformed",
            DropReason::BadVnetHeader => "bad_vnet_header",
            DropReason::Fragment => "fragment",
            DropReason::UnallocatedServiceIp => "unallocated_service_ip",
            DropReason::EchoToVip => "echo_to_vip",
            DropReason::IcmpToVip => "icmp_to_vip",
            DropReason::StrayRst => "stray_rst",
            DropReason::NoSnatPort => "no_snat_port",
            DropReason::ReplyBufferTooSmall => "reply_buffer_too_small",
            DropReason::Fault => "fault",
            DropReason::NoLocalEndpoints => "no_local_endpoints",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Global counters of one [`super::Nat`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Packets handed to `process` (GSO super-packets count once).
    pub packets: u64,
    /// Packets rewritten (either direction, including ICMP errors).
    pub translated: u64,
    /// Packets matching no flow and not for the service CIDR, written back
    /// unchanged (direct pod↔pod traffic pulled in by the policy rules).
    pub forwarded_unchanged: u64,
    pub flows_created: u64,
    pub flows_expired: u64,
    /// Removed to make room (fixed capacity).
    pub flows_evicted: u64,
    /// UDP flows removed because their backend stopped serving.
    pub flows_flushed: u64,
    /// TCP flows replaced by a new SYN from the same client port.
    pub flows_reopened: u64,
    pub hairpin_flows: u64,
    /// Flows whose client source port was remapped to avoid a reply-tuple
    /// clash.
    pub port_clash_remaps: u64,
    pub affinity_evicted: u64,
    /// ICMP port unreachable generated (no endpoints / unknown port).
    pub rejects: u64,
    pub icmp_errors_translated: u64,
    pub drop_truncated: u64,
    pub drop_not_ipv4: u64,
    pub drop_malformed: u64,
    pub drop_bad_vnet_header: u64,
    pub drop_fragment: u64,
    pub drop_unallocated_service_ip: u64,
    pub drop_echo_to_vip: u64,
    pub drop_icmp_to_vip: u64,
    pub drop_stray_rst: u64,
    pub drop_no_snat_port: u64,
    pub drop_reply_buffer_too_small: u64,
    pub drop_fault: u64,
    #[serde(default)]
    pub drop_no_local_endpoints: u64,
}

impl Counters {
    fn drop_slot(&mut self, r: DropReason) -> &mut u64 {
        match r {
            DropReason::Truncated => &mut self.drop_truncated,
            DropReason::NotIpv4 => &mut self.drop_not_ipv4,
            DropReason::Malformed => &mut self.drop_malformed,
            DropReason::BadVnetHeader => &mut self.drop_bad_vnet_header,
            DropReason::Fragment => &mut self.drop_fragment,
            DropReason::UnallocatedServiceIp => &mut self.drop_unallocated_service_ip,
            DropReason::EchoToVip => &mut self.drop_echo_to_vip,
            DropReason::IcmpToVip => &mut self.drop_icmp_to_vip,
            DropReason::StrayRst => &mut self.drop_stray_rst,
            DropReason::NoSnatPort => &mut self.drop_no_snat_port,
            DropReason::ReplyBufferTooSmall => &mut self.drop_reply_buffer_too_small,
            DropReason::Fault => &mut self.drop_fault,
            DropReason::NoLocalEndpoints => &mut self.drop_no_local_endpoints,
        }
    }

    pub fn count_drop(&mut self, r: DropReason) {
        *self.drop_slot(r) += 1;
    }

    /// Drops for one reason.
    pub fn drops(&self, r: DropReason) -> u64 {
        match r {
            DropReason::Truncated => self.drop_truncated,
            DropReason::NotIpv4 => self.drop_not_ipv4,
            DropReason::Malformed => self.drop_malformed,
            DropReason::BadVnetHeader => self.drop_bad_vnet_header,
            DropReason::Fragment => self.drop_fragment,
            DropReason::UnallocatedServiceIp => self.drop_unallocated_service_ip,
            DropReason::EchoToVip => self.drop_echo_to_vip,
            DropReason::IcmpToVip => self.drop_icmp_to_vip,
            DropReason::StrayRst => self.drop_stray_rst,
            DropReason::NoSnatPort => self.drop_no_snat_port,
            DropReason::ReplyBufferTooSmall => self.drop_reply_buffer_too_small,
            DropReason::Fault => self.drop_fault,
            DropReason::NoLocalEndpoints => self.drop_no_local_endpoints,
        }
    }

    /// Drops for all reasons.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }

    /// Add `o`'s counts to these (summing shards; not on the packet path).
    pub fn add(&mut self, o: &Counters) {
        let (Ok(serde_json::Value::Object(mut a)), Ok(serde_json::Value::Object(b))) =
            (serde_json::to_value(&*self), serde_json::to_value(o))
        else {
            return;
        };
        for (k, v) in b {
            if let Some(x) = a.get_mut(&k) {
                let sum = x
                    .as_u64()
                    .unwrap_or(0)
                    .wrapping_add(v.as_u64().unwrap_or(0));
                *x = sum.into();
            }
        }
        if let Ok(c) = serde_json::from_value(serde_json::Value::Object(a)) {
            *self = c;
        }
    }
}

/// Counters of one service port or one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCounters {
    pub flows: u64,
    /// Wire packets, both directions (a GSO super-packet counts as its
    /// segments).
    pub packets: u64,
    /// IP bytes, both directions.
    pub bytes: u64,
    pub rejects: u64,
    pub drops: u64,
}

impl ServiceCounters {
    pub fn add(&mut self, o: &ServiceCounters) {
        self.flows += o.flows;
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.rejects += o.rejects;
        self.drops += o.drops;
    }
}
