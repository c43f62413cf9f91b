//! Destination NAT for ClusterIP Services, with kube-proxy's semantics.
//!
//! Client → VIP:port packets are rewritten to a backend podIP:targetPort
//! (destination only, so the backend sees the real client IP); the backend's
//! replies, pulled back into the TUN by policy rules, get their source
//! rewritten back to VIP:port. Hairpin flows (a pod reaching itself through
//! its VIP) are also SNATed to a reserved address so the reply returns
//! through the TUN. No endpoints → ICMP port unreachable; ICMP errors from
//! backends are translated through their flow.
//!
//! IP fragments addressed to the service CIDR are dropped (the backends'
//! MTU equals the clients', so fragmentation only happens with odd senders);
//! other fragments pass unchanged.

use super::checksum;
use super::conntrack::{
    Counters, Flow, Found, ServiceCounters, Table, TcpState, Tuple, UDP_REPLIED, UDP_UNREPLIED,
};
use super::table::{Backend, Proto, ServiceTable};
use super::vnet::{self, VnetHdr};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Malformed,
    NotIpv4,
    Fragment,
    UnallocatedServiceIp,
    EchoToVip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write `buf` back to the TUN (rewritten in place, or unchanged).
    Forward,
    /// Write `out[..len]` (a generated packet with its vnet header) instead.
    Reply(usize),
    Drop(DropReason),
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

/// (service port key, client IP).
type AffinityKey = ((Ipv4Addr, u8, u16), Ipv4Addr);

pub struct Nat {
    table: Arc<ServiceTable>,
    flows: Table,
    counters: Counters,
    service_index: HashMap<String, usize>,
    services: Vec<(String, ServiceCounters)>,
    service_map: HashMap<String, ServiceCounters>,
    /// (port key, client ip) → (backend, expires).
    affinity: HashMap<AffinityKey, ((Ipv4Addr, u16), Duration)>,
    rng: u64,
    next_snat_port: u16,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Flows with `expires` as time left.
    flows: Vec<(Flow, String)>,
}

fn rd16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn rd32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn wr16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

fn ip_at(b: &[u8], i: usize) -> Ipv4Addr {
    Ipv4Addr::from(rd32(b, i))
}

/// Offsets of the L4 checksum field for TCP/UDP.
fn l4_csum_offset(proto: u8) -> usize {
    if proto == TCP { 16 } else { 6 }
}

/// Rewrite one address (`at`: 12 = source, 16 = destination) and optionally
/// the port (`port_at`: offset inside L4) of an IPv4 packet, fixing the IP
/// header checksum and the TCP/UDP checksum (full, or partial under
/// NEEDS_CSUM).
fn rewrite(
    pkt: &mut [u8],
    ihl: usize,
    partial: bool,
    at: usize,
    new_ip: Ipv4Addr,
    port_at: usize,
    new_port: u16,
) {
    let proto = pkt[9];
    let old_ip = rd32(pkt, at);
    let new = u32::from(new_ip);
    let l4 = ihl;
    let csum_at = l4 + l4_csum_offset(proto);
    let old_port = rd16(pkt, l4 + port_at);
    if old_ip != new {
        let c = checksum::update32(rd16(pkt, 10), old_ip, new);
        wr16(pkt, 10, c);
        pkt[at..at + 4].copy_from_slice(&new.to_be_bytes());
        let l4c = rd16(pkt, csum_at);
        if partial {
            wr16(pkt, csum_at, checksum::partial_update32(l4c, old_ip, new));
        } else if !(proto == UDP && l4c == 0) {
            wr16(pkt, csum_at, checksum::update32(l4c, old_ip, new));
        }
    }
    if old_port != new_port {
        wr16(pkt, l4 + port_at, new_port);
        let l4c = rd16(pkt, csum_at);
        // Ports are covered by the kernel's completion of a partial sum.
        if !(partial || proto == UDP && l4c == 0) {
            wr16(pkt, csum_at, checksum::update16(l4c, old_port, new_port));
        }
    }
}

impl Nat {
    pub fn new(capacity: usize) -> Nat {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e3779b97f4a7c15, |d| d.as_nanos() as u64)
            | 1;
        Nat {
            table: Arc::new(ServiceTable::default()),
            flows: Table::new(capacity),
            counters: Counters::default(),
            service_index: HashMap::new(),
            services: Vec::new(),
            service_map: HashMap::new(),
            affinity: HashMap::new(),
            rng: seed,
            next_snat_port: 1024,
        }
    }

    fn rand(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545f4914f6cdd1d)
    }

    fn service_idx(&mut self, name: &str) -> usize {
        if let Some(i) = self.service_index.get(name) {
            return *i;
        }
        self.services
            .push((name.to_string(), ServiceCounters::default()));
        let i = self.services.len() - 1;
        self.service_index.insert(name.to_string(), i);
        i
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Per-service counters (`ns/name` → counters).
    pub fn service_counters(&mut self) -> &HashMap<String, ServiceCounters> {
        self.service_map = self.services.iter().cloned().collect();
        &self.service_map
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Swap the service table. UDP flows whose backend no longer serves (or
    /// whose service port is gone) are removed at once, so the next datagram
    /// picks a live backend; TCP flows are left to finish.
    pub fn set_table(&mut self, table: Arc<ServiceTable>) {
        let t = table.clone();
        let flushed = self.flows.retain(|f| {
            if f.orig.proto != UDP {
                return true;
            }
            let (vip, p, port) = f.port_key;
            let Some(proto) = Proto::from_number(p) else {
                return false;
            };
            t.ports
                .get(&(vip, proto, port))
                .is_some_and(|sp| sp.serves(f.reply.src, f.reply.sport))
        });
        self.counters.flows_flushed += flushed as u64;
        self.affinity
            .retain(|((vip, p, port), _), ((ip, bport), _)| {
                Proto::from_number(*p)
                    .and_then(|proto| t.ports.get(&(*vip, proto, *port)))
                    .is_some_and(|sp| sp.serves(*ip, *bport))
            });
        self.table = table;
    }

    /// Remove expired flows and affinity entries (bounded work).
    pub fn expire(&mut self, now: Duration) {
        let n = self.flows.expire(now, 4096);
        self.counters.flows_expired += n as u64;
        if !self.affinity.is_empty() && self.rand().is_multiple_of(16) {
            self.affinity.retain(|_, (_, exp)| *exp > now);
        }
    }

    pub fn snapshot(&self) -> Vec<u8> {
        let snap = Snapshot {
            flows: self
                .flows
                .iter()
                .map(|(_, f)| {
                    let name = self
                        .services
                        .get(f.service)
                        .map(|s| s.0.clone())
                        .unwrap_or_default();
                    (f.clone(), name)
                })
                .collect(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    /// Restore flows saved by [`Nat::snapshot`] of another process: their
    /// `expires` are taken relative to that process's clock, so every flow
    /// gets its state's full timeout from `now`.
    pub fn restore(&mut self, bytes: &[u8], now: Duration) -> Result<usize, String> {
        let snap: Snapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut n = 0;
        for (mut f, name) in snap.flows {
            f.service = self.service_idx(&name);
            f.expires = now
                + match f.tcp {
                    Some(s) => s.timeout(),
                    None if f.replied => UDP_REPLIED,
                    None => UDP_UNREPLIED,
                };
            if self.flows.find(&f.orig).is_none() && !self.flows.reply_exists(&f.reply) {
                self.flows.insert(f);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Process one packet from the TUN: `buf` = virtio-net header + IPv4.
    pub fn process(&mut self, now: Duration, buf: &mut [u8], out: &mut [u8]) -> Verdict {
        self.counters.packets += 1;
        let Some(hdr) = VnetHdr::parse(buf) else {
            self.counters.drop_malformed += 1;
            return Verdict::Drop(DropReason::Malformed);
        };
        let pkt = &mut buf[vnet::LEN..];
        if pkt.is_empty() || pkt[0] >> 4 != 4 {
            self.counters.drop_not_ipv4 += 1;
            return Verdict::Drop(DropReason::NotIpv4);
        }
        let ihl = usize::from(pkt[0] & 0x0f) * 4;
        if ihl < 20 || pkt.len() < ihl {
            return self.malformed();
        }
        let total = usize::from(rd16(pkt, 2));
        if total < ihl || total > pkt.len() {
            return self.malformed();
        }
        let pkt = &mut pkt[..total];
        let proto = pkt[9];
        let src = ip_at(pkt, 12);
        let dst = ip_at(pkt, 16);
        let frag = rd16(pkt, 6);
        let to_services = self.table.in_service_cidr(dst);
        if frag & 0x3fff != 0 {
            // More-fragments set or a non-zero offset.
            if to_services {
                self.counters.drop_fragment += 1;
                return Verdict::Drop(DropReason::Fragment);
            }
            self.counters.forwarded_unchanged += 1;
            return Verdict::Forward;
        }
        match proto {
            TCP | UDP => {
                let need = if proto == TCP { 20 } else { 8 };
                if total < ihl + need {
                    return self.malformed();
                }
                let partial = hdr.needs_csum();
                let tuple = Tuple {
                    proto,
                    src,
                    sport: rd16(pkt, ihl),
                    dst,
                    dport: rd16(pkt, ihl + 2),
                };
                let flags = if proto == TCP { pkt[ihl + 13] } else { 0 };
                let len = total as u64;
                match self.flows.find(&tuple) {
                    Some(Found::Orig(i)) => {
                        self.track(i, true, flags, now, len);
                        let Some(f) = self.flows.get(i) else {
                            return Verdict::Forward;
                        };
                        let (b, sn) = (f.reply.src, f.reply.sport);
                        let (ns, np) = (f.reply.dst, f.reply.dport);
                        rewrite(pkt, ihl, partial, 16, b, 2, sn);
                        if f.hairpin() {
                            rewrite(pkt, ihl, partial, 12, ns, 0, np);
                        }
                        self.counters.translated += 1;
                        Verdict::Forward
                    }
                    Some(Found::Reply(i)) => {
                        self.track(i, false, flags, now, len);
                        let Some(f) = self.flows.get(i) else {
                            return Verdict::Forward;
                        };
                        let (vip, vport) = (f.orig.dst, f.orig.dport);
                        let (c, cp) = (f.orig.src, f.orig.sport);
                        let hairpin = f.hairpin();
                        rewrite(pkt, ihl, partial, 12, vip, 0, vport);
                        if hairpin {
                            rewrite(pkt, ihl, partial, 16, c, 2, cp);
                        }
                        self.counters.translated += 1;
                        Verdict::Forward
                    }
                    None if to_services => self.new_flow(now, tuple, flags, pkt, ihl, partial, out),
                    None => {
                        self.counters.forwarded_unchanged += 1;
                        Verdict::Forward
                    }
                }
            }
            ICMP => {
                if total < ihl + 8 {
                    return self.malformed();
                }
                let icmp_type = pkt[ihl];
                if to_services {
                    if !self.table.vips.contains(&dst) {
                        self.counters.drop_unallocated_vip += 1;
                        return Verdict::Drop(DropReason::UnallocatedServiceIp);
                    }
                    if icmp_type == 8 {
                        self.counters.drop_echo_to_vip += 1;
                        return Verdict::Drop(DropReason::EchoToVip);
                    }
                }
                if matches!(icmp_type, 3 | 11) {
                    return self.icmp_error(pkt, ihl);
                }
                self.counters.forwarded_unchanged += 1;
                Verdict::Forward
            }
            _ => {
                if to_services {
                    self.counters.drop_unallocated_vip += 1;
                    return Verdict::Drop(DropReason::UnallocatedServiceIp);
                }
                self.counters.forwarded_unchanged += 1;
                Verdict::Forward
            }
        }
    }

    fn malformed(&mut self) -> Verdict {
        self.counters.drop_malformed += 1;
        Verdict::Drop(DropReason::Malformed)
    }

    /// Update TCP state, expiry and counters of flow `i`.
    fn track(&mut self, i: usize, from_client: bool, flags: u8, now: Duration, len: u64) {
        let Some(f) = self.flows.get_mut(i) else {
            return;
        };
        if !from_client {
            f.replied = true;
        }
        if let Some(state) = f.tcp {
            let next = if flags & RST != 0 {
                TcpState::Close
            } else if flags & FIN != 0 {
                if from_client {
                    f.fin_orig = true;
                } else {
                    f.fin_reply = true;
                }
                if f.fin_orig && f.fin_reply {
                    TcpState::TimeWait
                } else {
                    TcpState::FinWait
                }
            } else {
                match state {
                    TcpState::SynSent if !from_client && flags & SYN != 0 && flags & ACK != 0 => {
                        TcpState::SynRecv
                    }
                    TcpState::SynRecv if from_client && flags & ACK != 0 => TcpState::Established,
                    s => s,
                }
            };
            f.tcp = Some(next);
            f.expires = now + next.timeout();
        } else {
            f.expires = now
                + if f.replied {
                    UDP_REPLIED
                } else {
                    UDP_UNREPLIED
                };
        }
        let svc = f.service;
        if let Some(s) = self.services.get_mut(svc) {
            s.1.packets += 1;
            s.1.bytes += len;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        now: Duration,
        t: Tuple,
        flags: u8,
        pkt: &mut [u8],
        ihl: usize,
        partial: bool,
        out: &mut [u8],
    ) -> Verdict {
        if !self.table.vips.contains(&t.dst) {
            self.counters.drop_unallocated_vip += 1;
            return Verdict::Drop(DropReason::UnallocatedServiceIp);
        }
        let Some(proto) = Proto::from_number(t.proto) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let key = (t.dst, proto, t.dport);
        let table = self.table.clone();
        let Some(sp) = table.ports.get(&key) else {
            // A known VIP on a port it lacks: reject.
            return self.reject(pkt, ihl, out, None);
        };
        let svc = self.service_idx(&sp.service);
        let eligible: Vec<&Backend> = sp.eligible().collect();
        if eligible.is_empty() {
            return self.reject(pkt, ihl, out, Some(svc));
        }
        let port_key = (t.dst, t.proto, t.dport);
        let backend = match sp.affinity_timeout {
            Some(timeout) => {
                let sticky = self
                    .affinity
                    .get(&(port_key, t.src))
                    .filter(|(b, exp)| *exp > now && eligible.iter().any(|e| (e.ip, e.port) == *b))
                    .map(|(b, _)| *b);
                let b = match sticky {
                    Some(b) => b,
                    None => {
                        let e = eligible[(self.rand() % eligible.len() as u64) as usize];
                        (e.ip, e.port)
                    }
                };
                self.affinity.insert((port_key, t.src), (b, now + timeout));
                b
            }
            None => {
                let e = eligible[(self.rand() % eligible.len() as u64) as usize];
                (e.ip, e.port)
            }
        };
        // Hairpin: the backend is the client itself; SNAT so the reply
        // comes back through the TUN.
        let (reply_dst, reply_dport) = if backend.0 == t.src {
            let snat = table.snat_addr;
            let mut port = self.next_snat_port;
            let mut found = None;
            for _ in 0..64512u32 {
                port = if port == u16::MAX { 1024 } else { port + 1 };
                let cand = Tuple {
                    proto: t.proto,
                    src: backend.0,
                    sport: backend.1,
                    dst: snat,
                    dport: port,
                };
                if !self.flows.reply_exists(&cand) {
                    found = Some(port);
                    break;
                }
            }
            self.next_snat_port = port;
            match found {
                Some(p) => (snat, p),
                None => return self.reject(pkt, ihl, out, Some(svc)),
            }
        } else {
            (t.src, t.sport)
        };
        let reply = Tuple {
            proto: t.proto,
            src: backend.0,
            sport: backend.1,
            dst: reply_dst,
            dport: reply_dport,
        };
        if self.flows.reply_exists(&reply) {
            // Another flow already owns this reply tuple (a client reusing a
            // source port towards two VIPs that chose the same backend).
            return self.reject(pkt, ihl, out, Some(svc));
        }
        // A flow first seen mid-stream (e.g. after a restart without a snapshot)
        // is taken as established.
        let tcp = (t.proto == TCP).then_some(if flags & SYN != 0 && flags & ACK == 0 {
            TcpState::SynSent
        } else {
            TcpState::Established
        });
        let expires = now + tcp.map_or(UDP_UNREPLIED, TcpState::timeout);
        let flow = Flow {
            orig: t,
            reply,
            port_key,
            service: svc,
            tcp,
            fin_orig: false,
            fin_reply: false,
            replied: false,
            expires,
        };
        let hairpin = flow.hairpin();
        let (_, evicted) = self.flows.insert(flow);
        self.counters.flows_created += 1;
        if evicted {
            self.counters.flows_evicted += 1;
        }
        if let Some(s) = self.services.get_mut(svc) {
            s.1.flows += 1;
            s.1.packets += 1;
            s.1.bytes += pkt.len() as u64;
        }
        rewrite(pkt, ihl, partial, 16, backend.0, 2, backend.1);
        if hairpin {
            rewrite(pkt, ihl, partial, 12, reply_dst, 0, reply_dport);
        }
        self.counters.translated += 1;
        Verdict::Forward
    }

    /// ICMP port unreachable from the VIP to the client, quoting the
    /// original header and 8 bytes, into `out` (with a zero vnet header).
    fn reject(&mut self, pkt: &[u8], ihl: usize, out: &mut [u8], svc: Option<usize>) -> Verdict {
        self.counters.rejects += 1;
        if let Some(s) = svc.and_then(|i| self.services.get_mut(i)) {
            s.1.rejects += 1;
        }
        let quoted = (ihl + 8).min(pkt.len());
        let len = 20 + 8 + quoted;
        if out.len() < vnet::LEN + len {
            return Verdict::Drop(DropReason::Malformed);
        }
        VnetHdr::default().write(out);
        let o = &mut out[vnet::LEN..vnet::LEN + len];
        o.fill(0);
        o[0] = 0x45;
        wr16(o, 2, len as u16);
        o[8] = 64;
        o[9] = ICMP;
        o[12..16].copy_from_slice(&pkt[16..20]); // from the VIP
        o[16..20].copy_from_slice(&pkt[12..16]); // to the client
        let c = checksum::checksum(&o[..20]);
        wr16(o, 10, c);
        o[20] = 3;
        o[21] = 3;
        o[28..28 + quoted].copy_from_slice(&pkt[..quoted]);
        let c = checksum::checksum(&o[20..]);
        wr16(o, 22, c);
        Verdict::Reply(vnet::LEN + len)
    }

    /// Translate an ICMP error a backend sent about a flow.
    fn icmp_error(&mut self, pkt: &mut [u8], ihl: usize) -> Verdict {
        let inner_at = ihl + 8;
        if pkt.len() < inner_at + 20 || pkt[inner_at] >> 4 != 4 {
            self.counters.forwarded_unchanged += 1;
            return Verdict::Forward;
        }
        let iihl = usize::from(pkt[inner_at] & 0x0f) * 4;
        if iihl < 20 || pkt.len() < inner_at + iihl + 4 {
            self.counters.forwarded_unchanged += 1;
            return Verdict::Forward;
        }
        let iproto = pkt[inner_at + 9];
        if iproto != TCP && iproto != UDP {
            self.counters.forwarded_unchanged += 1;
            return Verdict::Forward;
        }
        let isrc = ip_at(pkt, inner_at + 12);
        let idst = ip_at(pkt, inner_at + 16);
        let il4 = inner_at + iihl;
        let isport = rd16(pkt, il4);
        let idport = rd16(pkt, il4 + 2);
        // The quoted packet went backend-ward: client(or SNAT) → backend. Its
        // reverse is the flow's reply tuple.
        let reverse = Tuple {
            proto: iproto,
            src: idst,
            sport: idport,
            dst: isrc,
            dport: isport,
        };
        let Some(Found::Reply(i)) = self.flows.find(&reverse) else {
            self.counters.forwarded_unchanged += 1;
            return Verdict::Forward;
        };
        let Some(f) = self.flows.get(i) else {
            return Verdict::Forward;
        };
        let (vip, vport, client, cport) = (f.orig.dst, f.orig.dport, f.orig.src, f.orig.sport);
        // Outer: from the VIP, to the real client.
        let set_ip = |pkt: &mut [u8], at: usize, hc_at: usize, ip: Ipv4Addr| {
            let old = rd32(pkt, at);
            let new = u32::from(ip);
            let c = checksum::update32(rd16(pkt, hc_at), old, new);
            wr16(pkt, hc_at, c);
            pkt[at..at + 4].copy_from_slice(&new.to_be_bytes());
        };
        set_ip(pkt, 12, 10, vip);
        set_ip(pkt, 16, 10, client);
        // Inner: client → VIP:port, as the client sent it.
        set_ip(pkt, inner_at + 12, inner_at + 10, client);
        set_ip(pkt, inner_at + 16, inner_at + 10, vip);
        wr16(pkt, il4, cport);
        wr16(pkt, il4 + 2, vport);
        // The ICMP checksum covers the whole message: recompute it.
        let total = pkt.len();
        wr16(pkt, ihl + 2, 0);
        let c = checksum::checksum(&pkt[ihl..total]);
        wr16(pkt, ihl + 2, c);
        self.counters.icmp_errors_translated += 1;
        Verdict::Forward
    }
}

#[cfg(test)]
mod tests;
