//! NAT core tests: packets as byte arrays both ways, checksums verified by
//! smoltcp (partial sums are completed from `csum_start` first).

use super::super::conntrack::FIN;
use super::super::table::Backend;
use super::*;
use proptest::prelude::*;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use std::collections::{HashMap, HashSet};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 21);
const B1: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);
const B2: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 4);
const B3: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 5);
const NODE: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
const SNAT: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 254);
const T0: Duration = Duration::from_secs(100);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn be(ip: Ipv4Addr, ready: bool, serving: bool, terminating: bool) -> Backend {
    Backend {
        ip,
        port: 8080,
        ready,
        serving,
        terminating,
    }
}

fn up(ip: Ipv4Addr) -> Backend {
    be(ip, true, true, false)
}

/// VIP:80 (TCP and UDP, ids `default/web:http[-udp]`) → `endpoints`;
/// VIP2:80/TCP (`default/other:http`) → B1.
fn table_with(endpoints: Vec<Backend>, affinity: Option<Duration>) -> Arc<ServiceTable> {
    let mut t = ServiceTable {
        service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
        snat_addr: SNAT,
        ..Default::default()
    };
    t.vips.insert(VIP);
    t.vips.insert(VIP2);
    for (proto, id) in [
        (Proto::Tcp, "default/web:http"),
        (Proto::Udp, "default/web:http-udp"),
    ] {
        t.ports.insert(
            (VIP, proto, 80),
            ServicePort {
                id: id.into(),
                service: "default/web".into(),
                endpoints: endpoints.clone(),
                affinity_timeout: affinity,
                drop_without_endpoints: false,
            },
        );
    }
    t.ports.insert(
        (VIP2, Proto::Tcp, 80),
        ServicePort {
            id: "default/other:http".into(),
            service: "default/other".into(),
            endpoints: vec![up(B1)],
            affinity_timeout: None,
            drop_without_endpoints: false,
        },
    );
    Arc::new(t)
}

fn nat(endpoints: Vec<Backend>) -> Nat {
    let mut n = Nat::with_seed(1024, 7);
    n.set_table(table_with(endpoints, None));
    n
}

/// vnet header + IPv4 + TCP/UDP with correct checksums.
fn packet(
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let l4len = if proto == TCP { 20 } else { 8 } + payload.len();
    let total = 20 + l4len;
    let mut b = vec![0u8; vnet::LEN + total];
    let p = &mut b[vnet::LEN..];
    p[0] = 0x45;
    wr16(p, 2, total as u16);
    wr16(p, 4, 0x1234);
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&p[..20]);
    wr16(p, 10, c);
    wr16(p, 20, sport);
    wr16(p, 22, dport);
    if proto == TCP {
        p[32] = 5 << 4;
        p[33] = flags;
        wr16(p, 34, 65535);
        p[40..].copy_from_slice(payload);
    } else {
        wr16(p, 24, l4len as u16);
        p[28..].copy_from_slice(payload);
    }
    let ph = checksum::pseudo_header(src.octets(), dst.octets(), proto, l4len as u16);
    let c = !(checksum::sum(&p[20..], u32::from(ph)) as u16);
    let at = 20 + if proto == TCP { 16 } else { 6 };
    wr16(
        p,
        at,
        if proto == UDP {
            checksum::udp_nonzero(c)
        } else {
            c
        },
    );
    b
}

/// The same packet in offload form: NEEDS_CSUM, pseudo-header sum only.
fn partial(mut b: Vec<u8>) -> Vec<u8> {
    let p = &b[vnet::LEN..];
    let (proto, l4len) = (p[9], rd16(p, 2) - 20);
    let s = checksum::pseudo_header(
        p[12..16].try_into().unwrap(),
        p[16..20].try_into().unwrap(),
        proto,
        l4len,
    );
    let off = if proto == TCP { 16 } else { 6 };
    wr16(&mut b[vnet::LEN..], 20 + off, s);
    VnetHdr {
        flags: vnet::F_NEEDS_CSUM,
        csum_start: 20,
        csum_offset: off as u16,
        ..Default::default()
    }
    .write(&mut b);
    b
}

/// Complete a partial checksum the way the kernel does (from csum_start).
fn complete(b: &mut [u8]) {
    let h = VnetHdr::parse(b).unwrap();
    if !h.needs_csum() {
        return;
    }
    let p = &mut b[vnet::LEN..];
    let start = usize::from(h.csum_start);
    let at = start + usize::from(h.csum_offset);
    let c = !(checksum::sum(&p[start..], 0) as u16);
    wr16(p, at, c);
}

/// Check every checksum with smoltcp; returns (src, sport, dst, dport).
fn verify(b: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let mut b = b.to_vec();
    complete(&mut b);
    let ip = Ipv4Packet::new_checked(&b[vnet::LEN..]).expect("valid IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let (sp, dp) = match ip.next_header() {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert!(t.verify_checksum(&s, &d), "TCP checksum");
            (t.src_port(), t.dst_port())
        }
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert_ne!(u.checksum(), 0, "UDP checksum must stay present");
            assert!(u.verify_checksum(&s, &d), "UDP checksum");
            (u.src_port(), u.dst_port())
        }
        p => panic!("unexpected {p}"),
    };
    (ip.src_addr(), sp, ip.dst_addr(), dp)
}

fn run_at(n: &mut Nat, now: Duration, mut b: Vec<u8>) -> (Verdict, Vec<u8>, Vec<u8>) {
    let mut out = vec![0u8; 2048];
    let v = n.process(now, &mut b, &mut out);
    if let Verdict::Reply(len) = v {
        out.truncate(len);
    }
    (v, b, out)
}

fn run(n: &mut Nat, b: Vec<u8>) -> (Verdict, Vec<u8>, Vec<u8>) {
    run_at(n, T0, b)
}

/// Send a client packet and return the backend it went to.
fn backend_of(n: &mut Nat, now: Duration, sport: u16) -> Ipv4Addr {
    let (v, b, _) = run_at(n, now, packet(TCP, CLIENT, sport, VIP, 80, SYN, b""));
    assert_eq!(v, Verdict::Forward);
    verify(&b).2
}

/// An ICMP error `src → dst` quoting `quoted`, with correct checksums.
fn icmp_error(src: Ipv4Addr, dst: Ipv4Addr, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + quoted.len();
    let mut b = vec![0u8; vnet::LEN + total];
    let p = &mut b[vnet::LEN..];
    p[0] = 0x45;
    p[1] = 0xc0;
    wr16(p, 2, total as u16);
    p[8] = 64;
    p[9] = ICMP;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let c = checksum::checksum(&p[..20]);
    wr16(p, 10, c);
    p[20] = ty;
    p[21] = code;
    if (ty, code) == (3, 4) {
        wr16(p, 26, 1400); // next-hop MTU
    }
    p[28..].copy_from_slice(quoted);
    let c = checksum::checksum(&p[20..]);
    wr16(p, 22, c);
    b
}

/// Outer addresses, type, code and the quoted bytes of an ICMP packet,
/// after checking the outer IP and ICMP checksums.
fn icmp_of(b: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, u8, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(&b[vnet::LEN..]).unwrap();
    assert!(ip.verify_checksum(), "outer IP checksum");
    assert_eq!(ip.next_header(), IpProtocol::Icmp);
    let icmp = smoltcp::wire::Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(), "ICMP checksum");
    let raw = ip.payload();
    (
        ip.src_addr(),
        ip.dst_addr(),
        raw[0],
        raw[1],
        raw[8..].to_vec(),
    )
}

/// Every packet is accounted for exactly once.
fn assert_accounted(n: &Nat) {
    let c = n.counters();
    assert_eq!(
        c.packets,
        c.translated + c.forwarded_unchanged + c.rejects + c.total_drops(),
        "{c:?}"
    );
}

#[test]
fn tcp_dnat_both_directions_full_and_partial_checksums() {
    for offload in [false, true] {
        let mut n = nat(vec![up(B1)]);
        let maybe = |b: Vec<u8>| if offload { partial(b) } else { b };
        let (v, b, _) = run(&mut n, maybe(packet(TCP, CLIENT, 40000, VIP, 80, SYN, b"")));
        assert_eq!(v, Verdict::Forward);
        assert_eq!(
            verify(&b),
            (CLIENT, 40000, B1, 8080),
            "client IP kept, destination rewritten"
        );
        // The vnet header is passed through untouched.
        assert_eq!(VnetHdr::parse(&b).unwrap().needs_csum(), offload);
        let (v, b, _) = run(
            &mut n,
            maybe(packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, b"")),
        );
        assert_eq!(v, Verdict::Forward);
        assert_eq!(
            verify(&b),
            (VIP, 80, CLIENT, 40000),
            "reply comes from the VIP"
        );
        // Data with an odd-length payload.
        let (_, b, _) = run(
            &mut n,
            maybe(packet(TCP, CLIENT, 40000, VIP, 80, ACK, b"hello")),
        );
        assert_eq!(verify(&b), (CLIENT, 40000, B1, 8080));
        assert_eq!(n.flow_count(), 1);
        assert_eq!(n.flows().next().unwrap().tcp, Some(TcpState::Established));
        assert_accounted(&n);
    }
}

#[test]
fn gso_super_packet_is_rewritten_once_and_counted_as_segments() {
    let mut n = nat(vec![up(B1)]);
    run(&mut n, packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i * 7) as u8).collect();
    let mut b = partial(packet(TCP, CLIENT, 40000, VIP, 80, ACK, &payload));
    let mut h = VnetHdr::parse(&b).unwrap();
    h.gso_type = vnet::GSO_TCPV4;
    h.gso_size = 1448;
    h.hdr_len = 40;
    h.write(&mut b);
    let (v, b, _) = run(&mut n, b);
    assert_eq!(v, Verdict::Forward);
    assert_eq!(verify(&b), (CLIENT, 40000, B1, 8080));
    let pc = &n.port_counters()["default/web:http"];
    assert_eq!(pc.packets, 1 + 60_000usize.div_ceil(1448) as u64);
    assert_eq!(pc.bytes, 40 + 40 + 60_000);
}

#[test]
fn vnet_header_that_disagrees_with_the_packet_is_dropped() {
    let mut n = nat(vec![up(B1)]);
    let mut b = partial(packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    let mut h = VnetHdr::parse(&b).unwrap();
    h.csum_offset = 6;
    h.write(&mut b);
    assert_eq!(run(&mut n, b).0, Verdict::Drop(DropReason::BadVnetHeader));
    assert_eq!(n.counters().drop_bad_vnet_header, 1);
    assert_eq!(n.service_counters()["default/web"].drops, 1);
    // Pass-through traffic does not care.
    let mut d = partial(packet(TCP, B1, 1, B2, 2, ACK, b""));
    d[6] = 99;
    assert_eq!(run(&mut n, d).0, Verdict::Forward);
    assert_accounted(&n);
}

#[test]
fn udp_dnat_and_zero_checksum() {
    for offload in [false, true] {
        let mut n = nat(vec![up(B2)]);
        let maybe = |b: Vec<u8>| if offload { partial(b) } else { b };
        let (v, b, _) = run(
            &mut n,
            maybe(packet(UDP, CLIENT, 5000, VIP, 80, 0, b"hostname")),
        );
        assert_eq!(v, Verdict::Forward);
        assert_eq!(verify(&b), (CLIENT, 5000, B2, 8080));
        let (_, b, _) = run(
            &mut n,
            maybe(packet(UDP, B2, 8080, CLIENT, 5000, 0, b"backend-2")),
        );
        assert_eq!(verify(&b), (VIP, 80, CLIENT, 5000));
    }
    // A UDP datagram without a checksum stays without one.
    let mut n = nat(vec![up(B2)]);
    let mut p = packet(UDP, CLIENT, 5001, VIP, 80, 0, b"x");
    wr16(&mut p[vnet::LEN..], 26, 0);
    let (_, b, _) = run(&mut n, p);
    assert_eq!(rd16(&b[vnet::LEN..], 26), 0);
    assert_eq!(rd32(&b[vnet::LEN..], 16), u32::from(B2));
}

#[test]
fn udp_checksum_that_updates_to_zero_becomes_ffff() {
    // Search a payload whose translated checksum is exactly 0 (RFC 768).
    for x in 0..=u16::MAX {
        let mut n = nat(vec![up(B2)]);
        let (_, b, _) = run(
            &mut n,
            packet(UDP, CLIENT, 5000, VIP, 80, 0, &x.to_be_bytes()),
        );
        let mut want = packet(UDP, CLIENT, 5000, B2, 8080, 0, &x.to_be_bytes());
        wr16(&mut want[vnet::LEN..], 10, rd16(&b[vnet::LEN..], 10));
        if rd16(&want[vnet::LEN..], 26) == 0xffff {
            assert_eq!(rd16(&b[vnet::LEN..], 26), 0xffff);
            verify(&b);
            return;
        }
    }
    panic!("no payload computes to a zero checksum");
}

#[test]
fn hairpin_is_snatted_and_reversed() {
    for offload in [false, true] {
        let mut n = nat(vec![up(CLIENT)]);
        let maybe = |b: Vec<u8>| if offload { partial(b) } else { b };
        let (v, b, _) = run(&mut n, maybe(packet(TCP, CLIENT, 41000, VIP, 80, SYN, b"")));
        assert_eq!(v, Verdict::Forward);
        let (src, sport, dst, dport) = verify(&b);
        assert_eq!((src, dst, dport), (SNAT, CLIENT, 8080));
        assert!(sport >= 1024);
        let (_, b, _) = run(
            &mut n,
            maybe(packet(TCP, CLIENT, 8080, SNAT, sport, SYN | ACK, b"")),
        );
        assert_eq!(verify(&b), (VIP, 80, CLIENT, 41000));
        let (_, b, _) = run(
            &mut n,
            maybe(packet(TCP, CLIENT, 41000, VIP, 80, ACK, b"data")),
        );
        assert_eq!(
            verify(&b),
            (SNAT, sport, CLIENT, 8080),
            "same SNAT port for the flow"
        );
        assert_eq!(n.counters().hairpin_flows, 1);
    }
    // A packet to the SNAT address that matches no flow is dropped.
    let mut n = nat(vec![up(CLIENT)]);
    assert_eq!(
        run(&mut n, packet(TCP, CLIENT, 8080, SNAT, 5555, ACK, b"")).0,
        Verdict::Drop(DropReason::UnallocatedServiceIp)
    );
}

#[test]
fn source_port_clash_across_vips_is_remapped() {
    // VIP:80 and VIP2:80 both land on B1:8080; the client reuses port 7000.
    let mut n = nat(vec![up(B1)]);
    let (_, a, _) = run(&mut n, packet(TCP, CLIENT, 7000, VIP, 80, SYN, b""));
    assert_eq!(verify(&a), (CLIENT, 7000, B1, 8080));
    let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 7000, VIP2, 80, SYN, b""));
    let (src, p2, dst, dport) = verify(&b);
    assert_eq!((src, dst, dport), (CLIENT, B1, 8080));
    assert_ne!(p2, 7000);
    assert_eq!(n.counters().port_clash_remaps, 1);
    // Replies find their own flow.
    let (_, r, _) = run(&mut n, packet(TCP, B1, 8080, CLIENT, 7000, SYN | ACK, b""));
    assert_eq!(verify(&r), (VIP, 80, CLIENT, 7000));
    let (_, r, _) = run(&mut n, packet(TCP, B1, 8080, CLIENT, p2, SYN | ACK, b""));
    assert_eq!(verify(&r), (VIP2, 80, CLIENT, 7000));
}

#[test]
fn icmp_errors_from_backends_are_translated() {
    let mut n = nat(vec![up(B1)]);
    let (_, fwd, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"payload"));
    // The backend quotes the header + 8 bytes (port unreachable), or the
    // whole datagram (checks the inner UDP checksum too).
    for (ty, code, quote) in [(3u8, 3u8, 28usize), (3, 4, 35), (11, 0, 35)] {
        let quoted = &fwd[vnet::LEN..vnet::LEN + quote];
        let (v, b, _) = run(&mut n, icmp_error(B1, CLIENT, ty, code, quoted));
        assert_eq!(v, Verdict::Forward);
        let (src, dst, t, c, inner) = icmp_of(&b);
        assert_eq!((src, dst, t, c), (VIP, CLIENT, ty, code));
        if code == 4 {
            assert_eq!(rd16(&b[vnet::LEN..], 26), 1400, "next-hop MTU kept");
        }
        let inner_ip = Ipv4Packet::new_unchecked(&inner[..]);
        assert!(inner_ip.verify_checksum(), "inner IP checksum");
        assert_eq!((inner_ip.src_addr(), inner_ip.dst_addr()), (CLIENT, VIP));
        assert_eq!((rd16(&inner, 20), rd16(&inner, 22)), (5000, 80));
        if quote == 35 {
            let u = UdpPacket::new_checked(&inner[20..]).unwrap();
            assert!(
                u.verify_checksum(&IpAddress::Ipv4(CLIENT), &IpAddress::Ipv4(VIP)),
                "inner UDP"
            );
        }
    }
    assert_eq!(n.counters().icmp_errors_translated, 3);
    // An error about no flow, to a client: passes unchanged.
    let stray = icmp_error(
        B2,
        CLIENT,
        3,
        3,
        &packet(UDP, CLIENT, 1, B2, 2, 0, b"")[vnet::LEN..vnet::LEN + 28],
    );
    let (v, b, _) = run(&mut n, stray.clone());
    assert_eq!((v, b), (Verdict::Forward, stray));
    assert_accounted(&n);
}

#[test]
fn frag_needed_towards_a_vip_is_translated_to_the_backend() {
    // The backend's (translated) reply VIP:80 → client is too big for the
    // client's link: the node sends frag-needed to the VIP, quoting it.
    let mut n = nat(vec![up(B1)]);
    run(&mut n, packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    let (_, reply, _) = run(
        &mut n,
        packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, b"big"),
    );
    assert_eq!(verify(&reply), (VIP, 80, CLIENT, 40000));
    let quoted = reply[vnet::LEN..].to_vec(); // whole packet: 20 + 20 + 3
    let (v, b, _) = run(&mut n, icmp_error(NODE, VIP, 3, 4, &quoted));
    assert_eq!(v, Verdict::Forward);
    let (src, dst, t, c, inner) = icmp_of(&b);
    assert_eq!((src, dst, t, c), (NODE, B1, 3, 4));
    let inner_ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert!(inner_ip.verify_checksum());
    assert_eq!((inner_ip.src_addr(), inner_ip.dst_addr()), (B1, CLIENT));
    let tcp = TcpPacket::new_checked(inner_ip.payload()).unwrap();
    assert_eq!((tcp.src_port(), tcp.dst_port()), (8080, 40000));
    assert!(
        tcp.verify_checksum(&IpAddress::Ipv4(B1), &IpAddress::Ipv4(CLIENT)),
        "inner TCP"
    );
    // The same kind of error about no flow, to a VIP: dropped (it would loop).
    let other = packet(TCP, VIP, 80, CLIENT, 1, ACK, b"");
    assert_eq!(
        run(&mut n, icmp_error(NODE, VIP, 3, 4, &other[vnet::LEN..])).0,
        Verdict::Drop(DropReason::IcmpToVip)
    );
}

#[test]
fn hairpin_icmp_error_goes_back_to_the_client() {
    let mut n = nat(vec![up(CLIENT)]);
    let (_, fwd, _) = run(&mut n, packet(UDP, CLIENT, 5353, VIP, 80, 0, b"q"));
    let (_, sport, _, _) = verify(&fwd);
    // The pod answers its own (SNATed) datagram with port unreachable.
    let (v, b, _) = run(
        &mut n,
        icmp_error(CLIENT, SNAT, 3, 3, &fwd[vnet::LEN..vnet::LEN + 28]),
    );
    assert_eq!(v, Verdict::Forward);
    let (src, dst, _, _, inner) = icmp_of(&b);
    assert_eq!((src, dst), (VIP, CLIENT));
    let inner_ip = Ipv4Packet::new_unchecked(&inner[..]);
    assert!(inner_ip.verify_checksum());
    assert_eq!((inner_ip.src_addr(), inner_ip.dst_addr()), (CLIENT, VIP));
    assert_eq!((rd16(&inner, 20), rd16(&inner, 22)), (5353, 80));
    assert_ne!(sport, 5353);
}

#[test]
fn local_traffic_policy_without_local_endpoints_drops_instead_of_rejecting() {
    let mut t = (*table_with(vec![], None)).clone();
    for sp in t.ports.values_mut() {
        sp.drop_without_endpoints = true;
    }
    let mut n = Nat::with_seed(1024, 7);
    n.set_table(Arc::new(t.clone()));
    let syn = packet(TCP, CLIENT, 40000, VIP, 80, SYN, b"");
    assert!(matches!(run(&mut n, syn.clone()).0, Verdict::Drop(_)));
    assert_eq!(n.counters().drops(DropReason::NoLocalEndpoints), 1);
    assert_eq!(n.counters().rejects, 0);
    assert_eq!(n.flow_count(), 0);
    // A local endpoint: translated as usual.
    for sp in t.ports.values_mut() {
        sp.endpoints = vec![up(B1)];
    }
    n.set_table(Arc::new(t));
    let (v, pkt, _) = run(&mut n, syn);
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    assert_eq!(&pkt[vnet::LEN + 16..vnet::LEN + 20], &B1.octets());
}

#[test]
fn no_endpoints_and_unknown_port_are_rejected_with_port_unreachable() {
    let mut n = nat(vec![]);
    let syn = packet(TCP, CLIENT, 40000, VIP, 80, SYN, b"");
    let (v, _, out) = run(&mut n, syn.clone());
    let Verdict::Reply(len) = v else {
        panic!("{v:?}")
    };
    assert_eq!(len, vnet::LEN + 20 + 8 + 28);
    let (src, dst, ty, code, quoted) = icmp_of(&out);
    assert_eq!((src, dst, ty, code), (VIP, CLIENT, 3, 3));
    assert_eq!(
        quoted,
        syn[vnet::LEN..vnet::LEN + 28].to_vec(),
        "original header + 8 bytes"
    );
    assert_eq!(VnetHdr::parse(&out).unwrap(), VnetHdr::default());
    assert_eq!(n.flow_count(), 0, "no flow for a rejected packet");
    // Only unready, non-terminating endpoints: still rejected; UDP too.
    let mut n = nat(vec![
        be(B1, false, false, false),
        be(B2, false, true, false),
    ]);
    assert!(matches!(run(&mut n, syn.clone()).0, Verdict::Reply(_)));
    assert!(matches!(
        run(&mut n, packet(UDP, CLIENT, 1, VIP, 80, 0, b"")).0,
        Verdict::Reply(_)
    ));
    assert_eq!(n.port_counters()["default/web:http"].rejects, 1);
    assert_eq!(n.service_counters()["default/web"].rejects, 2);
    // Unknown port on a known VIP; other protocols to a VIP.
    let mut n = nat(vec![up(B1)]);
    let (v, _, out) = run(&mut n, packet(TCP, CLIENT, 1, VIP, 81, SYN, b""));
    assert!(matches!(v, Verdict::Reply(_)));
    assert_eq!(icmp_of(&out).0, VIP);
    let mut sctp = packet(UDP, CLIENT, 1, VIP, 80, 0, b"");
    sctp[vnet::LEN + 9] = 132;
    assert!(matches!(run(&mut n, sctp).0, Verdict::Reply(_)));
    assert_eq!(n.counters().rejects, 2);
    assert_eq!(n.service_counters()["default/web"].rejects, 2);
    // A reject that does not fit `out` is a counted drop, not a panic.
    let mut small = [0u8; 40];
    let mut b = packet(TCP, CLIENT, 1, VIP, 81, SYN, b"");
    assert_eq!(
        n.process(T0, &mut b, &mut small),
        Verdict::Drop(DropReason::ReplyBufferTooSmall)
    );
    assert_accounted(&n);
}

#[test]
fn unallocated_ips_echo_and_other_traffic() {
    let mut n = nat(vec![up(B1)]);
    let other = Ipv4Addr::new(10, 96, 9, 9);
    assert_eq!(
        run(&mut n, packet(TCP, CLIENT, 1, other, 80, SYN, b"")).0,
        Verdict::Drop(DropReason::UnallocatedServiceIp)
    );
    let echo = |dst: Ipv4Addr| {
        let mut b = icmp_error(CLIENT, dst, 8, 0, b"abcdefgh");
        let p = &mut b[vnet::LEN..];
        wr16(p, 22, 0);
        let c = checksum::checksum(&p[20..]);
        wr16(p, 22, c);
        b
    };
    assert_eq!(
        run(&mut n, echo(VIP)).0,
        Verdict::Drop(DropReason::EchoToVip)
    );
    assert_eq!(
        run(&mut n, echo(other)).0,
        Verdict::Drop(DropReason::UnallocatedServiceIp)
    );
    assert_eq!(n.counters().drop_echo_to_vip, 1);
    assert_eq!(n.service_counters()["default/web"].drops, 1);
    // A ping between pods and direct pod-to-pod traffic pass unchanged.
    for direct in [echo(B2), packet(TCP, B1, 8080, CLIENT, 5555, ACK, b"x")] {
        let (v, b, _) = run(&mut n, direct.clone());
        assert_eq!((v, b), (Verdict::Forward, direct));
    }
    assert_eq!(n.counters().forwarded_unchanged, 2);
    // A stray RST to a VIP creates nothing.
    assert_eq!(
        run(&mut n, packet(TCP, CLIENT, 9, VIP, 80, RST, b"")).0,
        Verdict::Drop(DropReason::StrayRst)
    );
    assert_eq!(n.flow_count(), 0);
    assert_accounted(&n);
}

#[test]
fn ready_first_then_serving_terminating_fallback() {
    let mut n = nat(vec![be(B1, false, true, true), up(B2)]);
    for port in 0..50 {
        assert_eq!(
            backend_of(&mut n, T0, 30000 + port),
            B2,
            "a ready endpoint is preferred"
        );
    }
    let mut n = nat(vec![
        be(B1, false, true, true),
        be(B2, false, false, true),
        be(B3, false, false, false),
    ]);
    for port in 0..50 {
        assert_eq!(
            backend_of(&mut n, T0, 30000 + port),
            B1,
            "serving+terminating fallback"
        );
    }
}

#[test]
fn uniform_spread_over_backends() {
    // 6000 draws over 3 backends: expected 2000 each, sd ≈ 36.5; the bounds
    // are ±8 sd, so a correct implementation essentially never fails, while
    // a biased one (e.g. always the first, or a 2:1 split) always does.
    for seed in [1, 2, 3] {
        let mut n = Nat::with_seed(10_000, seed);
        n.set_table(table_with(vec![up(B1), up(B2), up(B3)], None));
        let mut hits: HashMap<Ipv4Addr, u32> = HashMap::new();
        for port in 0..6000 {
            *hits
                .entry(backend_of(&mut n, T0, 10000 + port))
                .or_default() += 1;
        }
        assert_eq!(hits.len(), 3);
        for (ip, h) in hits {
            assert!((1700..2300).contains(&h), "{ip}: {h} of 6000");
        }
    }
}

#[test]
fn client_ip_affinity_sticks_refreshes_and_expires() {
    let mut n = Nat::with_seed(1024, 11);
    n.set_table(table_with(vec![up(B1), up(B2), up(B3)], Some(secs(60))));
    let first = backend_of(&mut n, T0, 20000);
    // New connections every 50 s keep refreshing the 60 s timeout.
    for i in 1..40u64 {
        assert_eq!(
            backend_of(&mut n, T0 + secs(50 * i), 20000 + i as u16),
            first,
            "affinity broke"
        );
    }
    assert_eq!(n.affinity_count(), 1);
    // Another client gets its own entry.
    let (_, b, _) = run(&mut n, packet(TCP, B3, 1, VIP, 80, SYN, b""));
    let _ = verify(&b);
    assert_eq!(n.affinity_count(), 2);
    // After the timeout without new connections, a new choice is made.
    let mut seen = HashSet::new();
    for i in 0..40u64 {
        seen.insert(backend_of(
            &mut n,
            T0 + secs(10_000 + i * 61),
            50000 + i as u16,
        ));
    }
    assert!(seen.len() > 1, "affinity never expired");
    // Expiry sweeps remove stale entries.
    n.expire(T0 + secs(100_000));
    assert_eq!(n.affinity_count(), 0);
    // The sticky backend stops being ready: the client moves.
    n.set_table(table_with(vec![up(B1), up(B2), up(B3)], Some(secs(60))));
    let now = T0 + secs(200_000);
    let b = backend_of(&mut n, now, 60000);
    let rest: Vec<_> = [B1, B2, B3]
        .into_iter()
        .filter(|x| *x != b)
        .map(up)
        .collect();
    let mut eps = rest.clone();
    eps.push(be(b, false, true, true));
    n.set_table(table_with(eps, Some(secs(60))));
    let moved = backend_of(&mut n, now, 60001);
    assert_ne!(moved, b);
    assert_eq!(backend_of(&mut n, now, 60002), moved);
}

#[test]
fn udp_flows_flushed_tcp_flows_kept_on_table_update() {
    let mut n = nat(vec![up(B1)]);
    run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    run(&mut n, packet(UDP, CLIENT, 5001, VIP, 80, 0, b"a"));
    run(&mut n, packet(TCP, CLIENT, 6000, VIP, 80, SYN, b""));
    assert_eq!(n.flow_count(), 3);
    // Same table again: nothing flushed.
    n.set_table(table_with(vec![up(B1)], None));
    n.expire(T0);
    assert_eq!(n.flow_count(), 3);
    // B1 terminating but still serving: kept too.
    n.set_table(table_with(vec![be(B1, false, true, true), up(B2)], None));
    n.expire(T0);
    assert_eq!(n.flow_count(), 3);
    assert_eq!(n.counters().flows_flushed, 0);
    n.set_table(table_with(vec![up(B2)], None));
    // The packet path checks UDP flows at once after a table change...
    let (_, b, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    assert_eq!(verify(&b).2, B2, "the next datagram goes to a live backend");
    assert_eq!(n.counters().flows_flushed, 1);
    // ...and a bounded sweep removes the rest.
    n.expire(T0);
    assert_eq!(n.counters().flows_flushed, 2);
    assert_eq!(
        n.flow_count(),
        2,
        "the UDP flows to the removed backend are gone (one re-created on B2)"
    );
    let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 6000, VIP, 80, ACK, b""));
    assert_eq!(verify(&b).2, B1, "the TCP flow keeps its backend");
    // Endpoints gone entirely: UDP rejected, no flow left behind.
    n.set_table(table_with(vec![], None));
    assert!(matches!(
        run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a")).0,
        Verdict::Reply(_)
    ));
    n.set_table(table_with(vec![up(B3)], None));
    let (_, b, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    assert_eq!(verify(&b).2, B3);
}

#[test]
fn conntrack_expiry_with_a_fake_clock() {
    let mut n = nat(vec![up(B1)]);
    run_at(&mut n, secs(0), packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    run_at(
        &mut n,
        secs(0),
        packet(TCP, CLIENT, 6000, VIP, 80, SYN, b""),
    );
    n.expire(secs(29));
    assert_eq!(n.flow_count(), 2);
    n.expire(secs(30));
    assert_eq!(n.flow_count(), 1, "unreplied UDP flow expires after 30 s");
    n.expire(secs(120));
    assert_eq!(n.flow_count(), 0, "SYN_SENT expires after 120 s");
    // Replied UDP: 120 s.
    run_at(
        &mut n,
        secs(200),
        packet(UDP, CLIENT, 5001, VIP, 80, 0, b"a"),
    );
    run_at(
        &mut n,
        secs(200),
        packet(UDP, B1, 8080, CLIENT, 5001, 0, b"a"),
    );
    n.expire(secs(319));
    assert_eq!(n.flow_count(), 1);
    n.expire(secs(320));
    assert_eq!(n.flow_count(), 0);
    // Established: 5 days; RST: 10 s.
    run_at(
        &mut n,
        secs(400),
        packet(TCP, CLIENT, 7000, VIP, 80, SYN, b""),
    );
    run_at(
        &mut n,
        secs(400),
        packet(TCP, B1, 8080, CLIENT, 7000, SYN | ACK, b""),
    );
    run_at(
        &mut n,
        secs(400),
        packet(TCP, CLIENT, 7000, VIP, 80, ACK, b""),
    );
    n.expire(secs(400 + 431_999));
    assert_eq!(n.flow_count(), 1);
    run_at(
        &mut n,
        secs(500),
        packet(TCP, B1, 8080, CLIENT, 7000, RST | ACK, b""),
    );
    n.expire(secs(509));
    assert_eq!(n.flow_count(), 1);
    n.expire(secs(510));
    assert_eq!(n.flow_count(), 0);
    assert_eq!(n.counters().flows_expired, 4);
    // A packet hitting an expired flow before the sweep is a new flow.
    run_at(
        &mut n,
        secs(1000),
        packet(UDP, CLIENT, 5002, VIP, 80, 0, b"a"),
    );
    run_at(
        &mut n,
        secs(1031),
        packet(UDP, CLIENT, 5002, VIP, 80, 0, b"a"),
    );
    assert_eq!(n.counters().flows_created, 6);
    assert_eq!(n.counters().flows_expired, 5);
    // ... and a reply hitting an expired flow is not translated.
    let r = packet(UDP, B1, 8080, CLIENT, 5002, 0, b"late");
    let (v, b, _) = run_at(&mut n, secs(2000), r.clone());
    assert_eq!((v, b), (Verdict::Forward, r));
    assert_accounted(&n);
}

#[test]
fn tcp_close_and_port_reuse_after_time_wait() {
    let mut n = nat(vec![up(B1), up(B2), up(B3)]);
    let first = backend_of(&mut n, T0, 7000);
    run(
        &mut n,
        packet(TCP, first, 8080, CLIENT, 7000, SYN | ACK, b""),
    );
    run(&mut n, packet(TCP, CLIENT, 7000, VIP, 80, ACK, b""));
    run(&mut n, packet(TCP, CLIENT, 7000, VIP, 80, FIN | ACK, b""));
    run(
        &mut n,
        packet(TCP, first, 8080, CLIENT, 7000, FIN | ACK, b""),
    );
    run(&mut n, packet(TCP, CLIENT, 7000, VIP, 80, ACK, b""));
    assert_eq!(n.flows().next().unwrap().tcp, Some(TcpState::TimeWait));
    // A new SYN from the same port starts a new connection (a new choice).
    let mut seen = HashSet::new();
    for i in 0..30 {
        let b = backend_of(&mut n, T0 + secs(i), 7000);
        seen.insert(b);
        run(&mut n, packet(TCP, CLIENT, 7000, VIP, 80, RST, b""));
    }
    assert!(seen.len() > 1);
    assert_eq!(n.counters().flows_reopened, 30);
    assert_eq!(n.flow_count(), 1);
}

#[test]
fn capacity_bounds_a_syn_flood_and_spares_established_flows() {
    let mut n = Nat::with_seed(64, 5);
    n.set_table(table_with(vec![up(B1)], None));
    // 16 established connections.
    for p in 0..16u16 {
        run(&mut n, packet(TCP, CLIENT, 60000 + p, VIP, 80, SYN, b""));
        run(
            &mut n,
            packet(TCP, B1, 8080, CLIENT, 60000 + p, SYN | ACK, b""),
        );
        run(&mut n, packet(TCP, CLIENT, 60000 + p, VIP, 80, ACK, b""));
    }
    for i in 0..5000u16 {
        let src = Ipv4Addr::new(10, 244, 1 + (i >> 8) as u8, i as u8);
        assert_eq!(
            run(&mut n, packet(TCP, src, 1000, VIP, 80, SYN, b"")).0,
            Verdict::Forward
        );
    }
    assert_eq!(n.flow_count(), 64);
    assert_eq!(n.counters().flows_evicted, 5016 - 64);
    let alive = (0..16u16)
        .filter(|p| {
            let (_, b, _) = run(&mut n, packet(TCP, B1, 8080, CLIENT, 60000 + p, ACK, b""));
            verify(&b).0 == VIP
        })
        .count();
    assert!(alive >= 14, "only {alive} of 16 established flows survived");
}

#[test]
fn snapshot_and_restore_keep_flows_and_affinity() {
    let eps = vec![up(B1), up(B2), up(B3)];
    let mut n = Nat::with_seed(1024, 3);
    n.set_table(table_with(eps.clone(), Some(secs(600))));
    let chosen = backend_of(&mut n, secs(1000), 40000);
    run_at(
        &mut n,
        secs(1000),
        packet(TCP, chosen, 8080, CLIENT, 40000, SYN | ACK, b""),
    );
    run_at(
        &mut n,
        secs(1000),
        packet(TCP, CLIENT, 40000, VIP, 80, ACK, b""),
    );
    run_at(
        &mut n,
        secs(1000),
        packet(UDP, CLIENT, 5000, VIP, 80, 0, b"x"),
    );
    n.expire(secs(1010));
    let snap = n.snapshot();
    // Another process, another clock epoch.
    let mut m = Nat::with_seed(1024, 99);
    assert_eq!(m.restore(&snap, secs(5)).unwrap(), 2);
    m.set_table(table_with(eps, Some(secs(600))));
    for _ in 0..5 {
        let (_, b, _) = run_at(
            &mut m,
            secs(6),
            packet(TCP, CLIENT, 40000, VIP, 80, ACK, b"x"),
        );
        assert_eq!(verify(&b).2, chosen, "the restored flow keeps its backend");
    }
    let (_, b, _) = run_at(
        &mut m,
        secs(6),
        packet(TCP, chosen, 8080, CLIENT, 40000, ACK, b"y"),
    );
    assert_eq!(verify(&b), (VIP, 80, CLIENT, 40000));
    assert_eq!(
        m.flows().find(|f| f.orig.proto == TCP).unwrap().tcp,
        Some(TcpState::Established)
    );
    // Affinity survived too: a new connection sticks.
    assert_eq!(backend_of(&mut m, secs(7), 40001), chosen);
    // The UDP flow kept its remaining time (30 s from t=1000, saved at 1010).
    m.expire(secs(5 + 19));
    assert_eq!(m.flows().filter(|f| f.orig.proto == UDP).count(), 1);
    m.expire(secs(5 + 21));
    assert_eq!(m.flows().filter(|f| f.orig.proto == UDP).count(), 0);
    // Restoring twice does not duplicate; garbage and other versions fail.
    assert_eq!(m.restore(&snap, secs(30)).unwrap(), 1);
    assert!(matches!(
        m.restore(b"garbage", secs(0)),
        Err(RestoreError::Parse(_))
    ));
    let mut v9 = snap.clone();
    v9[8] = 9;
    assert!(matches!(
        m.restore(&v9, secs(0)),
        Err(RestoreError::Version(9))
    ));
    assert!(
        snap.len() < 300,
        "2 flows and an affinity entry take {} bytes",
        snap.len()
    );
}

#[test]
fn malformed_packets_are_counted_drops() {
    let mut n = nat(vec![up(B1)]);
    let mut cases: Vec<(Vec<u8>, DropReason)> = vec![
        (vec![], DropReason::Truncated),
        (vec![0u8; 5], DropReason::Truncated),
        (vec![0u8; 10], DropReason::Truncated),
        (vec![0u8; 12], DropReason::NotIpv4),
    ];
    let mut v6 = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
    v6[vnet::LEN] = 0x60;
    cases.push((v6, DropReason::NotIpv4));
    let mut cut = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
    cut.truncate(vnet::LEN + 30);
    cases.push((cut, DropReason::Malformed));
    let mut ihl = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
    ihl[vnet::LEN] = 0x44;
    cases.push((ihl, DropReason::Malformed));
    let mut doff = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
    doff[vnet::LEN + 32] = 0xf0; // data offset 60 > segment
    cases.push((doff, DropReason::Malformed));
    let mut ulen = packet(UDP, CLIENT, 1, VIP, 80, 0, b"abc");
    wr16(&mut ulen[vnet::LEN..], 24, 200);
    cases.push((ulen, DropReason::Malformed));
    let mut short_icmp = icmp_error(B1, CLIENT, 3, 3, b"");
    short_icmp.truncate(vnet::LEN + 24);
    wr16(&mut short_icmp[vnet::LEN..], 2, 24);
    cases.push((short_icmp, DropReason::Malformed));
    // Fragments of (or to) a service flow.
    let mut frag = packet(UDP, CLIENT, 1, VIP, 80, 0, b"abc");
    frag[vnet::LEN + 6] = 0x20; // MF
    cases.push((frag, DropReason::Fragment));
    let mut later = packet(UDP, CLIENT, 1, VIP, 80, 0, b"abc");
    later[vnet::LEN + 7] = 0x10; // offset 128
    cases.push((later, DropReason::Fragment));
    for (i, (mut b, reason)) in cases.into_iter().enumerate() {
        let mut out = [0u8; 128];
        assert_eq!(
            n.process(T0, &mut b, &mut out),
            Verdict::Drop(reason),
            "case {i}"
        );
    }
    // The first fragment of a reply matching a flow is dropped; fragments
    // of unrelated traffic pass.
    run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"q"));
    let mut rf = packet(UDP, B1, 8080, CLIENT, 5000, 0, b"big");
    rf[vnet::LEN + 6] |= 0x20;
    assert_eq!(run(&mut n, rf).0, Verdict::Drop(DropReason::Fragment));
    let mut pf = packet(UDP, B1, 1, B2, 2, 0, b"big");
    pf[vnet::LEN + 6] |= 0x20;
    assert_eq!(
        run(&mut n, pf.clone()),
        (Verdict::Forward, pf, vec![0u8; 2048])
    );
    assert_eq!(n.counters().drop_fragment, 3);
    assert_accounted(&n);
}

#[test]
fn counters_per_port_and_service() {
    let mut n = nat(vec![up(B1)]);
    run(&mut n, packet(TCP, CLIENT, 1, VIP, 80, SYN, b""));
    run(&mut n, packet(TCP, B1, 8080, CLIENT, 1, SYN | ACK, b""));
    run(&mut n, packet(UDP, CLIENT, 2, VIP, 80, 0, b"abcd"));
    run(&mut n, packet(TCP, CLIENT, 3, VIP2, 80, SYN, b""));
    let p = n.port_counters();
    assert_eq!(
        p["default/web:http"],
        ServiceCounters {
            flows: 1,
            packets: 2,
            bytes: 80,
            rejects: 0,
            drops: 0
        }
    );
    assert_eq!(p["default/web:http-udp"].bytes, 32);
    let s = n.service_counters();
    assert_eq!(s["default/web"].flows, 2);
    assert_eq!(s["default/web"].packets, 3);
    assert_eq!(s["default/other"].flows, 1);
    let c = n.counters();
    assert_eq!((c.flows_created, c.translated, c.packets), (3, 4, 4));
    // Serialisable for `lab status`.
    let j = serde_json::to_value(c).unwrap();
    assert_eq!(j["flows_created"], 3);
}

/// A few packets that exercise every path, as mutation seeds.
fn seeds() -> Vec<Vec<u8>> {
    let fwd = packet(UDP, CLIENT, 5000, B1, 8080, 0, b"abcdefgh");
    vec![
        packet(TCP, CLIENT, 5000, VIP, 80, SYN, b"0123456789"),
        partial(packet(TCP, CLIENT, 5000, VIP, 80, ACK, b"0123456789")),
        packet(UDP, CLIENT, 5000, VIP, 80, 0, b"abcdefgh"),
        packet(UDP, B1, 8080, CLIENT, 5000, 0, b"abcdefgh"),
        packet(TCP, CLIENT, 5000, VIP, 81, SYN, b""),
        icmp_error(B1, CLIENT, 3, 3, &fwd[vnet::LEN..]),
        icmp_error(
            NODE,
            VIP,
            3,
            4,
            &packet(UDP, VIP, 80, CLIENT, 5000, 0, b"x")[vnet::LEN..],
        ),
        packet(TCP, CLIENT, 5000, SNAT, 80, SYN, b""),
    ]
}

fn fuzz_nat() -> Nat {
    let mut n = Nat::with_seed(32, 1);
    n.set_table(table_with(
        vec![up(B1), up(CLIENT), be(B2, false, true, true)],
        Some(secs(5)),
    ));
    let mut out = [0u8; 128];
    for mut s in seeds() {
        let _ = n.process(T0, &mut s, &mut out);
    }
    n
}

/// Run one packet and check the invariants: no panic, length unchanged,
/// replies within `out`, every packet accounted for exactly once, and an
/// "unchanged" forward really leaves the bytes alone.
fn check(n: &mut Nat, now: Duration, mut b: Vec<u8>, out_len: usize) -> Result<(), TestCaseError> {
    let orig = b.clone();
    let before = n.counters().clone();
    let mut out = vec![0u8; out_len];
    let v = n.process(now, &mut b, &mut out);
    prop_assert_eq!(b.len(), orig.len());
    let c = n.counters();
    prop_assert_eq!(c.packets, before.packets + 1);
    prop_assert_eq!(
        c.packets,
        c.translated + c.forwarded_unchanged + c.rejects + c.total_drops()
    );
    match v {
        Verdict::Reply(len) => {
            prop_assert!(len <= out_len);
            prop_assert_eq!(c.rejects, before.rejects + 1);
        }
        Verdict::Drop(r) => prop_assert_eq!(c.drops(r), before.drops(r) + 1),
        Verdict::Forward if c.forwarded_unchanged > before.forwarded_unchanged => {
            prop_assert_eq!(&b, &orig)
        }
        Verdict::Forward | Verdict::Delay(_) => {
            prop_assert_eq!(c.translated, before.translated + 1)
        }
    }
    prop_assert!(n.flow_count() <= 32);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120), out_len in 0usize..100) {
        let mut n = fuzz_nat();
        check(&mut n, T0, data, out_len)?;
    }

    #[test]
    fn mutated_packets_never_panic(
        packets in proptest::collection::vec((
            0usize..8,
            proptest::collection::vec((0usize..90, any::<u8>()), 0..6),
            any::<[u8; 10]>(),
            any::<bool>(),
            0usize..100,
            0u64..400,
        ), 1..6),
    ) {
        let mut n = fuzz_nat();
        for (seed, flips, vnet_hdr, random_vnet, cut, dt) in packets {
            let mut p = seeds()[seed].clone();
            if random_vnet {
                p[..vnet::LEN].copy_from_slice(&vnet_hdr);
            }
            for (i, v) in flips {
                if let Some(x) = p.get_mut(i) {
                    *x = v;
                }
            }
            p.truncate(p.len().min(cut + 1));
            check(&mut n, T0 + secs(dt), p, 96)?;
            n.expire(T0 + secs(dt));
        }
        let snap = n.snapshot();
        let mut m = Nat::with_seed(8, 2);
        prop_assert!(m.restore(&snap, T0).is_ok());
        prop_assert!(m.flow_count() <= 8);
    }
}

mod sharded {
    use super::super::super::shard::{self, Sharded, Worker};
    use super::*;

    fn go(s: &Sharded, w: &mut Worker, mut b: Vec<u8>) -> (Verdict, Vec<u8>) {
        let v = s.process(w, T0, &mut b);
        (v, b)
    }

    /// Every flow's two tuples must sit in one shard: drive many flows
    /// (plain, hairpin, port clash, ICMP errors) through 8 shards and check
    /// both directions translate.
    #[test]
    fn both_directions_and_icmp_errors_find_the_flow_shard() {
        let s = Sharded::new(8192, 8, 5);
        s.set_table(table_with(vec![up(B1), up(B2), up(CLIENT)], None));
        let mut w = s.worker();
        let mut shards_used = HashSet::new();
        for port in 30000..30300u16 {
            let (v, b) = go(&s, &mut w, packet(TCP, CLIENT, port, VIP, 80, SYN, b""));
            assert_eq!(v, Verdict::Forward);
            let (src, sport, dst, dport) = verify(&b);
            assert_eq!(dport, 8080);
            // Hairpin flows come from the SNAT address and a chosen port.
            if dst == CLIENT {
                assert_eq!(src, SNAT);
            } else {
                assert_eq!((src, sport), (CLIENT, port));
            }
            shards_used.insert(shard::key(TCP, src, sport, 8));
            let (_, r) = go(
                &s,
                &mut w,
                packet(TCP, dst, 8080, src, sport, SYN | ACK, b""),
            );
            assert_eq!(verify(&r), (VIP, 80, CLIENT, port), "reply of port {port}");
            // The same client port towards VIP2 (→ B1 only): a clash when
            // the first flow went to B1, remapped within the shard.
            let (_, b2) = go(&s, &mut w, packet(TCP, CLIENT, port, VIP2, 80, SYN, b""));
            let (s2, p2, d2, _) = verify(&b2);
            assert_eq!((s2, d2), (CLIENT, B1));
            let (_, r2) = go(
                &s,
                &mut w,
                packet(TCP, B1, 8080, CLIENT, p2, SYN | ACK, b""),
            );
            assert_eq!(verify(&r2), (VIP2, 80, CLIENT, port));
            // An ICMP error from the backend about the request reaches the
            // client as if from the VIP.
            let quoted = &b[vnet::LEN..vnet::LEN + 28];
            let (v, e) = go(&s, &mut w, icmp_error(dst, src, 3, 3, quoted));
            assert_eq!(v, Verdict::Forward);
            let (esrc, edst, _, _, _) = icmp_of(&e);
            assert_eq!((esrc, edst), (VIP, CLIENT));
        }
        assert_eq!(shards_used.len(), 8, "flows spread over every shard");
        let c = s.counters();
        assert_eq!(c.flows_created, 600);
        assert_eq!(c.icmp_errors_translated, 300);
        assert!(c.hairpin_flows > 0 && c.port_clash_remaps > 0);
        assert_eq!(c.forwarded_unchanged, 0, "no packet missed its flow");
        assert_eq!(s.flow_count(), 600);
        assert_eq!(s.service_counters()["default/web"].flows, 300);
        // A snapshot restores into another instance, every flow in place.
        let (bytes, stats) = s.snapshot(T0);
        assert_eq!(stats.flows, 600);
        assert!(bytes.len() <= 600 * 64, "{} bytes", bytes.len());
        let t = Sharded::new(8192, 8, 77);
        assert_eq!(t.restore(&bytes, T0).unwrap(), 600);
        t.set_table(table_with(vec![up(B1), up(B2), up(CLIENT)], None));
        let mut w = t.worker();
        let before = t.counters().flows_created;
        let (_, b) = go(&t, &mut w, packet(TCP, CLIENT, 30007, VIP2, 80, ACK, b""));
        let (_, p, d, _) = verify(&b);
        let (_, r) = go(&t, &mut w, packet(TCP, d, 8080, CLIENT, p, ACK, b""));
        assert_eq!(verify(&r), (VIP2, 80, CLIENT, 30007));
        assert_eq!(t.counters().flows_created, before, "no flow re-created");
    }

    #[test]
    fn table_updates_are_picked_up_and_udp_flushed() {
        let s = Sharded::new(1024, 4, 1);
        s.set_table(table_with(vec![up(B1)], None));
        let mut w = s.worker();
        for port in 5000..5016 {
            go(&s, &mut w, packet(UDP, CLIENT, port, VIP, 80, 0, b"a"));
        }
        s.set_table(table_with(vec![up(B2)], None));
        let (_, b) = go(&s, &mut w, packet(UDP, CLIENT, 5003, VIP, 80, 0, b"a"));
        assert_eq!(verify(&b).2, B2, "the next datagram goes to a live backend");
        s.expire(T0);
        assert_eq!(s.counters().flows_flushed, 16);
        assert_eq!(s.flow_count(), 1);
    }

    #[test]
    fn snat_ports_stay_in_their_shard() {
        let t = Tuple {
            proto: UDP,
            src: B1,
            sport: 8080,
            dst: SNAT,
            dport: 0,
        };
        for n in [2usize, 7, 64] {
            for s in 0..n {
                for p in [1024u16, 1025, 40000, 65535, 65534] {
                    let q = shard::port_in_shard(&t, p, 1024, (s, n));
                    assert!(q >= 1024);
                    assert_eq!(shard::key(UDP, SNAT, q, n), s);
                }
            }
        }
    }
}

// --- injected faults (lab fault) -------------------------------------------

fn with_faults(n: &mut Nat, rules: &[fault::FaultRule]) {
    let mut c = n.registry.compile(Arc::clone(&n.compiled.table));
    if let Some(m) = Arc::get_mut(&mut c) {
        m.faults = fault::FaultTable::compile(rules, m).map(Arc::new);
    }
    n.install(c);
}

fn rule(effect: fault::Effect) -> fault::FaultRule {
    fault::FaultRule {
        service: "default/web".into(),
        port: None,
        effect,
    }
}

#[test]
fn reset_answers_the_syn_with_a_rst_from_the_vip() {
    let mut n = nat(vec![up(B1)]);
    with_faults(&mut n, &[rule(fault::Effect::Reset { ppm: 1_000_000 })]);
    let mut syn = packet(TCP, CLIENT, 40000, VIP, 80, SYN, &[]);
    wr32(&mut syn[vnet::LEN..], 24, 1000); // seq
    let (v, _, out) = run_at(&mut n, T0, syn);
    assert!(matches!(v, Verdict::Reply(_)), "{v:?}");
    assert_eq!(verify(&out), (VIP, 80, CLIENT, 40000));
    let t = &out[vnet::LEN + 20..];
    assert_eq!(t[13], RST | ACK);
    assert_eq!(rd32(t, 8), 1001, "acknowledges the SYN");
    let f = n.flows().next().copied().unwrap();
    assert_eq!(fault::marker_names(f.fault), ["reset"]);
    // UDP flows get a port unreachable instead.
    let (v, _, out) = run_at(&mut n, T0, packet(UDP, CLIENT, 40001, VIP, 80, 0, b"x"));
    assert!(matches!(v, Verdict::Reply(_)));
    assert_eq!(out[vnet::LEN + 20], 3, "ICMP destination unreachable");
    assert_eq!(n.counters().drops(DropReason::Fault), 1);
    assert_eq!(n.counters().rejects, 1);
}

#[test]
fn blackhole_drops_only_flows_to_that_backend_both_ways() {
    let mut n = nat(vec![up(B1), up(B2)]);
    with_faults(&mut n, &[rule(fault::Effect::Blackhole { ip: B1 })]);
    let (mut to_b1, mut to_b2) = (0, 0);
    for port in 40000..40040 {
        let (v, b, _) = run_at(&mut n, T0, packet(TCP, CLIENT, port, VIP, 80, SYN, &[]));
        match v {
            Verdict::Drop(DropReason::Fault) => to_b1 += 1,
            Verdict::Forward => {
                assert_eq!(verify(&b).2, B2);
                to_b2 += 1;
            }
            v => panic!("{v:?}"),
        }
    }
    assert!(to_b1 > 0 && to_b2 > 0, "{to_b1} / {to_b2}");
    for f in n.flows() {
        let hit = f.fault & fault::MARK_BLACKHOLE != 0;
        assert_eq!(hit, f.backend().0 == B1);
    }
    // A reply from the blackholed backend is dropped too.
    let f = *n.flows().find(|f| f.backend().0 == B1).unwrap();
    let reply = packet(TCP, B1, 8080, CLIENT, f.orig.sport, SYN | ACK, &[]);
    assert_eq!(
        run_at(&mut n, T0, reply).0,
        Verdict::Drop(DropReason::Fault)
    );
}

#[test]
fn delay_holds_rewritten_requests_and_lets_replies_pass() {
    let mut n = nat(vec![up(B1)]);
    let d = Duration::from_millis(100);
    with_faults(
        &mut n,
        &[rule(fault::Effect::Delay {
            base: d,
            jitter: Duration::ZERO,
        })],
    );
    let (v, b, _) = run_at(&mut n, T0, packet(TCP, CLIENT, 40000, VIP, 80, SYN, &[]));
    assert_eq!(v, Verdict::Delay(d));
    assert_eq!(
        verify(&b),
        (CLIENT, 40000, B1, 8080),
        "rewritten before it waits"
    );
    let (v, b, _) = run_at(
        &mut n,
        T0,
        packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, &[]),
    );
    assert_eq!(v, Verdict::Forward);
    assert_eq!(verify(&b), (VIP, 80, CLIENT, 40000));
    // Another service is untouched, and so are flows without faults.
    let (v, _, _) = run_at(&mut n, T0, packet(TCP, CLIENT, 40001, VIP2, 80, SYN, &[]));
    assert_eq!(v, Verdict::Forward);
    let other = n.flows().find(|f| f.orig.dst == VIP2).unwrap();
    assert_eq!(other.fault, 0);
    // Clearing the faults restores plain forwarding.
    with_faults(&mut n, &[]);
    let (v, _, _) = run_at(&mut n, T0, packet(TCP, CLIENT, 40000, VIP, 80, ACK, &[]));
    assert_eq!(v, Verdict::Forward);
}

mod flows;
