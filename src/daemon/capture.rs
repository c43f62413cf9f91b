//! Packet capture for `lab capture` (pcapng, pure Rust via `pcap-file`).
//!
//! - **svc0 / svc/NAME**: the queue threads hand each packet to the
//!   [`Hub`] twice — as it arrived from the TUN (`svc0-in`) and as it left
//!   the NAT (`svc0-out`, with the verdict as a packet comment: the rewrite,
//!   a drop and its reason, a generated reply, an injected delay) — so one
//!   capture shows the DNAT. A delayed packet appears on `svc0-out` when it
//!   actually leaves. The packets are the IP packets as the TUN carries
//!   them (raw IPv4, link type 228 `IPV4`: libpcap reads several interfaces
//!   of one file only when their link types match as stored, which `RAW`
//!   (101) does not): with offload on, a GSO super-packet is
//!   one large packet (as tcpdump shows it on a TUN with offload).
//! - **pod/NAME**: an `AF_PACKET` socket opened inside the pod's netns on
//!   `eth0` (both directions, Ethernet frames).
//!
//! Cost: with no capture running the queue threads test one atomic flag per
//! packet. While one runs, matching packets are copied into a bounded
//! channel per capture; when the reader is slow the channel is full and
//! packets are dropped and counted (reported in the file's interface
//! statistics block and in the daemon log), never waited for.

use crate::dataplane::Verdict;
use crate::dataplane::vnet;
use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::interface_statistics::{
    InterfaceStatisticsBlock, InterfaceStatisticsOption,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Records queued per capture before packets are dropped (and counted).
pub const CHANNEL_PACKETS: usize = 8192;
/// The most bytes of a packet recorded (a 64 KiB GSO super-packet fits).
pub const SNAPLEN: u32 = 262_144;
/// Interface ids in a TUN capture.
pub const IF_IN: u32 = 0;
pub const IF_OUT: u32 = 1;

/// One captured packet.
#[derive(Debug)]
pub struct Record {
    pub iface: u32,
    /// Since the Unix epoch.
    pub ts: Duration,
    pub data: Vec<u8>,
    pub comment: Option<String>,
}

/// Which TUN packets a capture wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Every packet (`svc0`).
    pub all: bool,
    /// Packets from or to these addresses (a Service's VIP).
    pub ips: HashSet<Ipv4Addr>,
    /// Packets from or to these (address, port) pairs (its backends).
    pub endpoints: HashSet<(Ipv4Addr, u16)>,
}

/// (src, sport, dst, dport, proto) of an IPv4 packet (ports 0 for other
/// protocols).
fn addrs(ip: &[u8]) -> Option<(Ipv4Addr, u16, Ipv4Addr, u16, u8)> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let first = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    let (sp, dp) = if matches!(ip[9], 6 | 17) && first && ip.len() >= ihl + 4 {
        (
            u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
            u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
        )
    } else {
        (0, 0)
    };
    Some((src, sp, dst, dp, ip[9]))
}

impl Filter {
    pub fn matches(&self, ip: &[u8]) -> bool {
        if self.all {
            return true;
        }
        let Some((s, sp, d, dp, _)) = addrs(ip) else {
            return false;
        };
        self.ips.contains(&s)
            || self.ips.contains(&d)
            || self.endpoints.contains(&(s, sp))
            || self.endpoints.contains(&(d, dp))
    }
}

/// A running capture's end of the hub.
pub struct Sub {
    filter: Filter,
    tx: SyncSender<Record>,
    /// Shared by the hubs feeding one capture.
    pub dropped: Arc<AtomicU64>,
    /// The id of this hub's `-in` interface in the capture ([`IF_IN`] +
    /// 2 × the node's position when it covers several nodes).
    base: u32,
}

/// Where the queue threads hand packets to running captures.
#[derive(Default)]
pub struct Hub {
    active: AtomicBool,
    subs: Mutex<Vec<Arc<Sub>>>,
}

fn now_unix() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn ip_of(buf: &[u8]) -> &[u8] {
    buf.get(vnet::LEN..).unwrap_or(&[])
}

fn ep(ip: Ipv4Addr, port: u16, proto: u8) -> String {
    if matches!(proto, 6 | 17) {
        format!("{ip}:{port}")
    } else {
        ip.to_string()
    }
}

/// What the NAT did, in words, from the packet before and after.
pub fn describe(before: &[u8], after: Option<&[u8]>, verdict: &Verdict) -> String {
    let rewrite = |after: &[u8]| -> String {
        match (addrs(before), addrs(after)) {
            (Some((s, sp, d, dp, p)), Some((s2, sp2, d2, dp2, _))) => {
                let mut parts = Vec::new();
                if (d, dp) != (d2, dp2) {
                    parts.push(format!("dst {} -> {}", ep(d, dp, p), ep(d2, dp2, p)));
                }
                if (s, sp) != (s2, sp2) {
                    parts.push(format!("src {} -> {}", ep(s, sp, p), ep(s2, sp2, p)));
                }
                if parts.is_empty() {
                    "forwarded unchanged".to_string()
                } else {
                    format!("rewritten: {}", parts.join(", "))
                }
            }
            _ => "forwarded".to_string(),
        }
    };
    match verdict {
        Verdict::Forward => after.map(rewrite).unwrap_or_default(),
        Verdict::Delay(d) => format!(
            "delayed {:.1} ms by a fault, {}",
            d.as_secs_f64() * 1000.0,
            after.map(rewrite).unwrap_or_default()
        ),
        Verdict::Drop(crate::dataplane::DropReason::Fault) => {
            "dropped by an injected fault (lab fault list)".to_string()
        }
        Verdict::Drop(r) => format!("dropped: {r}"),
        Verdict::Reply(_) => {
            let what = after
                .and_then(|a| addrs(a).map(|x| (x.4, a)))
                .map(|(p, a)| match p {
                    1 => "ICMP port unreachable",
                    6 if a.len() > 33 && a[33] & 0x04 != 0 => "TCP RST",
                    _ => "a reply",
                })
                .unwrap_or("a reply");
            format!("answered by the NAT with {what} (the packet goes no further)")
        }
    }
}

impl Hub {
    /// Whether any capture runs (one relaxed load: the packet path's only
    /// cost when none does).
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self, filter: Filter) -> (Arc<Sub>, Receiver<Record>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_PACKETS);
        let sub = Arc::new(Sub {
            filter,
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            base: 0,
        });
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(sub.clone());
        self.active.store(true, Ordering::Relaxed);
        (sub, rx)
    }

    /// Feed an existing subscription's capture from this hub too (a
    /// capture over several nodes' proxies), its packets on interfaces
    /// `base` (in) and `base + 1` (out). Returns this hub's subscription
    /// (to unsubscribe).
    pub fn attach(&self, sub: &Sub, base: u32) -> Arc<Sub> {
        let mine = Arc::new(Sub {
            filter: sub.filter.clone(),
            tx: sub.tx.clone(),
            dropped: sub.dropped.clone(),
            base,
        });
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(mine.clone());
        self.active.store(true, Ordering::Relaxed);
        mine
    }

    pub fn unsubscribe(&self, sub: &Arc<Sub>) {
        let mut subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|s| !Arc::ptr_eq(s, sub));
        self.active.store(!subs.is_empty(), Ordering::Relaxed);
    }

    fn send(sub: &Sub, r: Record) {
        match sub.tx.try_send(r) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                sub.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A packet through the NAT: `before` as read from the TUN (the vnet
    /// header and the IP packet), `after` what was written back (the
    /// rewritten packet, a generated reply; `None` for a drop). A delayed
    /// packet's `after` only describes the rewrite: [`Hub::departed`]
    /// records it when it leaves.
    pub fn record(&self, before: &[u8], after: Option<&[u8]>, verdict: &Verdict) {
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (b, a) = (ip_of(before), after.map(ip_of));
        let mut comment: Option<String> = None;
        let ts = now_unix();
        for s in &subs {
            let hit = s.filter.matches(b) || a.is_some_and(|a| s.filter.matches(a));
            if !hit {
                continue;
            }
            let c = comment
                .get_or_insert_with(|| describe(b, a, verdict))
                .clone();
            Hub::send(
                s,
                Record {
                    iface: s.base + IF_IN,
                    ts,
                    data: b.to_vec(),
                    comment: Some(format!("nat: {c}")),
                },
            );
            if let Some(a) = a
                && !matches!(verdict, Verdict::Delay(_))
            {
                Hub::send(
                    s,
                    Record {
                        iface: s.base + IF_OUT,
                        ts,
                        data: a.to_vec(),
                        comment: Some(format!("nat: {c}")),
                    },
                );
            }
        }
    }

    /// A delayed packet leaving (vnet header + IP).
    pub fn departed(&self, pkt: &[u8], waited: Duration) {
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ip = ip_of(pkt);
        for s in subs.iter().filter(|s| s.filter.matches(ip)) {
            Hub::send(
                s,
                Record {
                    iface: s.base + IF_OUT,
                    ts: now_unix(),
                    data: ip.to_vec(),
                    comment: Some(format!(
                        "nat: sent after an injected delay of {:.1} ms",
                        waited.as_secs_f64() * 1000.0
                    )),
                },
            );
        }
    }
}

/// An interface of the pcapng file.
pub struct Iface {
    pub name: String,
    pub description: String,
    pub link: DataLink,
}

/// Write pcapng blocks into a byte buffer (the HTTP body's next chunk).
pub struct Encoder {
    w: PcapNgWriter<Vec<u8>>,
    ifaces: usize,
}

impl Encoder {
    pub fn new(ifaces: &[Iface]) -> Result<Encoder, pcap_file::PcapError> {
        let mut w = PcapNgWriter::new(Vec::new())?;
        for i in ifaces {
            let mut idb = InterfaceDescriptionBlock::new(i.link, SNAPLEN);
            idb.options = vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(i.name.to_string())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(i.description.clone())),
                // Timestamps in nanoseconds (the crate writes them so).
                InterfaceDescriptionOption::IfTsResol(9),
            ];
            w.write_pcapng_block(idb)?;
        }
        Ok(Encoder {
            w,
            ifaces: ifaces.len(),
        })
    }

    pub fn packet(&mut self, r: &Record) -> Result<(), pcap_file::PcapError> {
        let len = r.data.len().min(SNAPLEN as usize);
        let mut options = Vec::new();
        if let Some(c) = &r.comment {
            options.push(EnhancedPacketOption::Comment(Cow::Borrowed(c.as_str())));
        }
        self.w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: r.iface,
            timestamp: r.ts,
            original_len: r.data.len() as u32,
            data: Cow::Borrowed(&r.data[..len]),
            options,
        })?;
        Ok(())
    }

    /// Interface statistics (packets dropped because the reader was slow)
    /// at the end of the capture.
    pub fn stats(&mut self, dropped: u64) -> Result<(), pcap_file::PcapError> {
        let ts = now_unix().as_nanos() as u64;
        for i in 0..self.ifaces {
            self.w.write_pcapng_block(InterfaceStatisticsBlock {
                interface_id: i as u32,
                timestamp: ts,
                options: vec![InterfaceStatisticsOption::IsbIfDrop(dropped)],
            })?;
        }
        Ok(())
    }

    /// The bytes written so far (taken).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.w.get_mut())
    }
}

/// Bounds of one capture.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Stop after this many packets (0 = no limit).
    pub count: u64,
    pub duration: Option<Duration>,
}

/// Move records from `rx` into pcapng chunks for `out` until the count or
/// the duration is reached, the source ends, or the client goes away.
/// Returns (packets written, dropped).
pub fn pump(
    rx: Receiver<Record>,
    mut enc: Encoder,
    limits: Limits,
    out: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    dropped: impl Fn() -> u64,
) -> (u64, u64) {
    let deadline = limits.duration.map(|d| Instant::now() + d);
    let mut written = 0u64;
    let head = enc.take();
    if out.blocking_send(Ok(head)).is_err() {
        return (0, dropped());
    }
    let done = |written: u64| limits.count > 0 && written >= limits.count;
    'outer: while !done(written) {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(Duration::from_millis(200))
            }
            None => Duration::from_millis(200),
        };
        match rx.recv_timeout(wait) {
            Ok(r) => {
                let mut batch = vec![r];
                while batch.len() < 256 && !done(written + batch.len() as u64) {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                for r in &batch {
                    if enc.packet(r).is_err() {
                        break 'outer;
                    }
                    written += 1;
                }
                if out.blocking_send(Ok(enc.take())).is_err() {
                    return (written, dropped());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if out.is_closed() {
                    return (written, dropped());
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let d = dropped();
    if enc.stats(d).is_ok() {
        let _ = out.blocking_send(Ok(enc.take()));
    }
    (written, d)
}

/// Read a pod's `eth0` from an `AF_PACKET` socket (opened in its netns)
/// into `tx` until `stop` is set or the socket fails.
pub fn read_packets(
    sock: crate::sys::packet::PacketSocket,
    tx: SyncSender<Record>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; SNAPLEN as usize];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv(&mut buf) {
            Ok(Some(n)) => {
                let r = Record {
                    iface: 0,
                    ts: now_unix(),
                    data: buf[..n].to_vec(),
                    comment: None,
                };
                match tx.try_send(r) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pod capture socket");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        let mut p = vec![0u8; vnet::LEN + 28];
        let ip = &mut p[vnet::LEN..];
        ip[0] = 0x45;
        ip[3] = 28;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        ip[20..22].copy_from_slice(&sp.to_be_bytes());
        ip[22..24].copy_from_slice(&dp.to_be_bytes());
        p
    }

    #[test]
    fn a_capture_over_several_hubs_tags_each_hubs_packets_and_counts_drops_once() {
        let (one, two) = (Hub::default(), Hub::default());
        let (sub, rx) = one.subscribe(Filter {
            all: true,
            ..Default::default()
        });
        let sub2 = two.attach(&sub, 2);
        assert!(two.active());
        let a = udp([10, 244, 1, 2], 40000, [10, 96, 0, 20], 53);
        let b = udp([10, 244, 1, 2], 40000, [10, 244, 0, 7], 5353);
        two.record(&a, Some(&b), &Verdict::Forward);
        one.record(
            &a,
            None,
            &Verdict::Drop(crate::dataplane::DropReason::Fault),
        );
        let got: Vec<u32> = rx.try_iter().map(|r| r.iface).collect();
        assert_eq!(got, vec![2, 3, IF_IN]);
        sub2.dropped.fetch_add(1, Ordering::Relaxed);
        assert_eq!(sub.dropped.load(Ordering::Relaxed), 1);
        two.unsubscribe(&sub2);
        assert!(!two.active());
        assert!(one.active());
    }

    #[test]
    fn records_both_sides_with_the_rewrite_and_parses_back() {
        let hub = Hub::default();
        assert!(!hub.active());
        let vip = Ipv4Addr::new(10, 96, 0, 20);
        let (sub, rx) = hub.subscribe(Filter {
            ips: [vip].into(),
            ..Default::default()
        });
        assert!(hub.active());
        let a = udp([10, 244, 0, 2], 40000, [10, 96, 0, 20], 53);
        let b = udp([10, 244, 0, 2], 40000, [10, 244, 0, 7], 5353);
        hub.record(&a, Some(&b), &Verdict::Forward);
        // Not for this Service: ignored.
        let other = udp([10, 244, 0, 2], 1, [10, 244, 0, 9], 2);
        hub.record(&other, Some(&other), &Verdict::Forward);
        let ifaces = [
            Iface {
                name: "svc0-in".into(),
                description: "in".into(),
                link: DataLink::IPV4,
            },
            Iface {
                name: "svc0-out".into(),
                description: "out".into(),
                link: DataLink::IPV4,
            },
        ];
        let (tx, mut brx) = tokio::sync::mpsc::channel(16);
        hub.unsubscribe(&sub);
        assert!(!hub.active());
        drop(sub);
        let enc = Encoder::new(&ifaces).unwrap();
        let (n, d) = pump(
            rx,
            enc,
            Limits {
                count: 0,
                duration: Some(Duration::from_millis(50)),
            },
            tx,
            || 0,
        );
        assert_eq!((n, d), (2, 0));
        let mut bytes = Vec::new();
        while let Ok(Ok(c)) = brx.try_recv() {
            bytes.extend(c);
        }
        let mut r = pcap_file::pcapng::PcapNgReader::new(&bytes[..]).unwrap();
        let mut pkts = Vec::new();
        while let Some(b) = r.next_block() {
            if let pcap_file::pcapng::Block::EnhancedPacket(p) = b.unwrap() {
                let comment = p.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                pkts.push((p.interface_id, p.data.to_vec(), comment));
            }
        }
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].0, IF_IN);
        assert_eq!(&pkts[0].1[16..20], &[10, 96, 0, 20]);
        assert_eq!(pkts[1].0, IF_OUT);
        assert_eq!(&pkts[1].1[16..20], &[10, 244, 0, 7]);
        assert_eq!(
            pkts[1].2.as_deref(),
            Some("nat: rewritten: dst 10.96.0.20:53 -> 10.244.0.7:5353")
        );
    }
}

/// Why a capture cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "invalid capture target {0:?}: want svc0, svc/NAME or pod/NAME (e.g. lab capture svc/web -w web.pcapng)"
    )]
    Target(String),
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
    #[error(
        "service {0:?} is headless (clusterIP: None): its traffic goes straight to pod IPs and never crosses svc0; capture a pod instead (lab capture pod/NAME)"
    )]
    Headless(String),
    #[error("pod {0:?} is not running")]
    NotRunning(String),
    #[error("opening a packet socket on eth0 of pod {pod:?}: {error}")]
    Socket { pod: String, error: String },
    #[error("starting the capture: {0}")]
    Internal(String),
}

/// Start a capture for `q` and return the pcapng stream as a response body
/// (chunks of whole blocks; ends at the count, the duration, or when the
/// client goes away).
pub async fn start(
    d: Arc<super::runtime::Daemon>,
    q: crate::api::CaptureQuery,
) -> Result<axum::response::Response, CaptureError> {
    use crate::model::{Kind, Object};
    use crate::store::Key;
    use axum::response::IntoResponse;
    let limits = Limits {
        count: q.count,
        duration: q.duration_ms.map(Duration::from_millis),
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let ns = q.namespace.clone();
    let target = q.target.trim().to_string();
    // Two interfaces per node's proxy: `svc0-in`/`svc0-out` with one node,
    // `<node>/svc0-in`/`<node>/svc0-out` with several (node i's at 2i, 2i+1).
    let several = d.nodes.len() > 1;
    let tun_ifaces = |what: &str| {
        d.nodes
            .iter()
            .flat_map(|n| {
                let (tag, on) = if several {
                    (format!("{}/", n.name()), format!(" on node {}", n.name()))
                } else {
                    (String::new(), String::new())
                };
                [
                    Iface {
                        name: format!("{tag}svc0-in"),
                        description: format!(
                            "{what}: packets as they arrived from the TUN svc0{on}, before lab's NAT"
                        ),
                        link: DataLink::IPV4,
                    },
                    Iface {
                        name: format!("{tag}svc0-out"),
                        description: format!(
                            "{what}: packets as lab's NAT wrote them back to svc0{on} (after DNAT / reverse NAT)"
                        ),
                        link: DataLink::IPV4,
                    },
                ]
            })
            .collect::<Vec<_>>()
    };
    let spawn_err = |e: std::io::Error| CaptureError::Internal(e.to_string());
    if target == "svc0" || target.starts_with("svc/") || target.starts_with("service/") {
        let (filter, what) = if target == "svc0" {
            (
                Filter {
                    all: true,
                    ..Default::default()
                },
                "svc0".to_string(),
            )
        } else {
            let name = target.split_once('/').map(|x| x.1).unwrap_or_default();
            let st = d.lock();
            let Some(Object::Service(s)) = st.store.get(&Key::new(Kind::Service, &ns, name)) else {
                return Err(CaptureError::NotFound {
                    kind: "service",
                    name: name.to_string(),
                    namespace: ns,
                });
            };
            let vip = s
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.as_deref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .ok_or_else(|| CaptureError::Headless(name.to_string()))?;
            let view = super::services::view(&st.store);
            let id = format!("{ns}/{name}");
            let endpoints = view
                .ports
                .iter()
                .filter(|p| p.service == id)
                .flat_map(|p| p.endpoints.iter().map(|e| (e.ip, e.port)))
                .collect();
            (
                Filter {
                    all: false,
                    ips: [vip].into(),
                    endpoints,
                },
                format!("svc/{name} ({vip})"),
            )
        };
        let enc =
            Encoder::new(&tun_ifaces(&what)).map_err(|e| CaptureError::Internal(e.to_string()))?;
        // Every node's proxy: one subscription fed by all their hubs.
        let hubs: Vec<_> = d
            .nodes
            .iter()
            .map(|n| n.dataplane.capture.clone())
            .collect();
        let (sub, rx) = hubs[0].subscribe(filter);
        let mut subs = vec![sub.clone()];
        for (i, h) in hubs.iter().enumerate().skip(1) {
            subs.push(h.attach(&sub, 2 * i as u32));
        }
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let s2 = sub.clone();
                let (n, dropped) = pump(rx, enc, limits, tx, move || {
                    s2.dropped.load(Ordering::Relaxed)
                });
                for (h, s) in hubs.iter().zip(&subs) {
                    h.unsubscribe(s);
                }
                tracing::info!(target = %what, packets = n, dropped, "capture ended");
            })
            .map_err(spawn_err)?;
    } else if let Some(pod) = target
        .strip_prefix("pod/")
        .or_else(|| target.strip_prefix("po/"))
        .or_else(|| target.strip_prefix("pods/"))
    {
        let netns = {
            let st = d.lock();
            match st.store.get(&Key::new(Kind::Pod, &ns, pod)) {
                Some(o @ Object::Pod(_)) => {
                    super::state::pod_netns(o).unwrap_or_default().to_string()
                }
                _ => {
                    return Err(CaptureError::NotFound {
                        kind: "pod",
                        name: pod.to_string(),
                        namespace: ns,
                    });
                }
            }
        };
        if netns.is_empty() || !crate::sys::netns::exists(&netns) {
            return Err(CaptureError::NotRunning(pod.to_string()));
        }
        let sock_err = |error: String| CaptureError::Socket {
            pod: pod.to_string(),
            error,
        };
        let t = crate::sys::netns::NetnsThread::spawn_async(&netns)
            .await
            .map_err(|e| sock_err(e.to_string()))?;
        let sock = t
            .run_async(|| crate::sys::packet::PacketSocket::open("eth0"))
            .await
            .map_err(|e| sock_err(e.to_string()))?
            .map_err(|e| sock_err(e.to_string()))?;
        drop(t);
        let enc = Encoder::new(&[Iface {
            name: "eth0".into(),
            description: format!("eth0 of pod {ns}/{pod} (AF_PACKET, both directions)"),
            link: DataLink::ETHERNET,
        }])
        .map_err(|e| CaptureError::Internal(e.to_string()))?;
        let (rtx, rx) = std::sync::mpsc::sync_channel(CHANNEL_PACKETS);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (s2, d2) = (stop.clone(), dropped.clone());
        std::thread::Builder::new()
            .name("capture-pod".into())
            .spawn(move || read_packets(sock, rtx, s2, d2))
            .map_err(spawn_err)?;
        let what = format!("pod/{pod}");
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let d3 = dropped.clone();
                let (n, dr) = pump(rx, enc, limits, tx, move || d3.load(Ordering::Relaxed));
                stop.store(true, Ordering::Relaxed);
                tracing::info!(target = %what, packets = n, dropped = dr, "capture ended");
            })
            .map_err(spawn_err)?;
    } else {
        return Err(CaptureError::Target(target));
    }
    let stream =
        futures::stream::unfold(
            body_rx,
            |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
        );
    Ok(axum::body::Body::from_stream(stream).into_response())
}
