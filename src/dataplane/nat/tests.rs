//! NAT core tests: packets as byte arrays both ways, checksums verified by
//! smoltcp.

use super::*;
use crate::dataplane::table::{Backend, ServicePort};
use proptest::prelude::*;
use smoltcp::wire::{IpAddress, Ipv4Packet, TcpPacket, UdpPacket};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const B1: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 3);
const B2: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 4);
const B3: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 5);
const SNAT: Ipv4Addr = Ipv4Addr::new(10, 111, 255, 254);

fn backend(ip: Ipv4Addr, ready: bool, serving: bool, terminating: bool) -> Backend {
    Backend {
        ip,
        port: 8080,
        ready,
        serving,
        terminating,
    }
}

fn table_with(endpoints: Vec<Backend>, affinity: Option<Duration>) -> Arc<ServiceTable> {
    let mut t = ServiceTable {
        service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
        snat_addr: SNAT,
        ..Default::default()
    };
    t.vips.insert(VIP);
    for proto in [Proto::Tcp, Proto::Udp] {
        t.ports.insert(
            (VIP, proto, 80),
            ServicePort {
                id: "default/web:http".into(),
                service: "default/web".into(),
                endpoints: endpoints.clone(),
                affinity_timeout: affinity,
            },
        );
    }
    Arc::new(t)
}

fn nat(endpoints: Vec<Backend>) -> Nat {
    let mut n = Nat::new(1024);
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
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4len as u16).to_be_bytes());
    let s = checksum::sum(&p[20..], checksum::sum(&pseudo, 0));
    let c = !(s as u16);
    wr16(
        p,
        20 + l4_csum_offset(proto),
        if proto == UDP && c == 0 { 0xffff } else { c },
    );
    b
}

/// The same packet in partial-checksum form (NEEDS_CSUM, pseudo sum only).
fn partial(mut b: Vec<u8>) -> Vec<u8> {
    let (proto, l4len, src, dst) = {
        let p = &b[vnet::LEN..];
        (p[9], rd16(p, 2) as usize - 20, ip_at(p, 12), ip_at(p, 16))
    };
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4len as u16).to_be_bytes());
    let s = checksum::sum(&pseudo, 0) as u16;
    let off = l4_csum_offset(proto);
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

fn verify(b: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let ip = Ipv4Packet::new_checked(&b[vnet::LEN..]).expect("valid IPv4");
    assert!(ip.verify_checksum(), "IP checksum");
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let payload = ip.payload();
    let (sp, dp) = match ip.next_header() {
        smoltcp::wire::IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(payload).unwrap();
            assert!(t.verify_checksum(&s, &d), "TCP checksum");
            (t.src_port(), t.dst_port())
        }
        smoltcp::wire::IpProtocol::Udp => {
            let u = UdpPacket::new_checked(payload).unwrap();
            assert!(u.verify_checksum(&s, &d), "UDP checksum");
            (u.src_port(), u.dst_port())
        }
        p => panic!("unexpected {p}"),
    };
    (ip.src_addr(), sp, ip.dst_addr(), dp)
}

const T0: Duration = Duration::from_secs(100);

fn run(n: &mut Nat, mut b: Vec<u8>) -> (Verdict, Vec<u8>, Vec<u8>) {
    let mut out = vec![0u8; 2048];
    let v = n.process(T0, &mut b, &mut out);
    (v, b, out)
}

#[test]
fn tcp_dnat_both_directions_full_and_partial_checksums() {
    for use_partial in [false, true] {
        let mut n = nat(vec![backend(B1, true, true, false)]);
        let mut syn = packet(TCP, CLIENT, 40000, VIP, 80, SYN, b"");
        if use_partial {
            syn = partial(syn);
        }
        let (v, mut b, _) = run(&mut n, syn);
        assert_eq!(v, Verdict::Forward);
        complete(&mut b);
        assert_eq!(
            verify(&b),
            (CLIENT, 40000, B1, 8080),
            "client IP kept, destination rewritten"
        );
        let mut synack = packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, b"");
        if use_partial {
            synack = partial(synack);
        }
        let (v, mut b, _) = run(&mut n, synack);
        assert_eq!(v, Verdict::Forward);
        complete(&mut b);
        assert_eq!(
            verify(&b),
            (VIP, 80, CLIENT, 40000),
            "reply comes from the VIP"
        );
        // Data with payload (odd length) keeps working.
        let (_, mut b, _) = run(&mut n, packet(TCP, CLIENT, 40000, VIP, 80, ACK, b"hello"));
        complete(&mut b);
        assert_eq!(verify(&b), (CLIENT, 40000, B1, 8080));
        assert_eq!(n.flow_count(), 1);
    }
}

#[test]
fn udp_dnat_and_zero_checksum() {
    let mut n = nat(vec![backend(B2, true, true, false)]);
    let (v, b, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"hostname"));
    assert_eq!(v, Verdict::Forward);
    assert_eq!(verify(&b), (CLIENT, 5000, B2, 8080));
    let (_, b, _) = run(&mut n, packet(UDP, B2, 8080, CLIENT, 5000, 0, b"backend-2"));
    assert_eq!(verify(&b), (VIP, 80, CLIENT, 5000));
    // A UDP datagram without checksum stays without one.
    let mut p = packet(UDP, CLIENT, 5001, VIP, 80, 0, b"x");
    wr16(&mut p[vnet::LEN..], 26, 0);
    let (_, b, _) = run(&mut n, p);
    assert_eq!(rd16(&b[vnet::LEN..], 26), 0);
}

#[test]
fn hairpin_is_snatted_and_reversed() {
    let mut n = nat(vec![backend(CLIENT, true, true, false)]);
    let (v, b, _) = run(&mut n, packet(TCP, CLIENT, 41000, VIP, 80, SYN, b""));
    assert_eq!(v, Verdict::Forward);
    let (src, sport, dst, dport) = verify(&b);
    assert_eq!((src, dst, dport), (SNAT, CLIENT, 8080));
    let (_, b, _) = run(
        &mut n,
        packet(TCP, CLIENT, 8080, SNAT, sport, SYN | ACK, b""),
    );
    assert_eq!(verify(&b), (VIP, 80, CLIENT, 41000));
}

fn icmp_of(b: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, u8, Vec<u8>) {
    let ip = Ipv4Packet::new_checked(&b[vnet::LEN..]).unwrap();
    assert!(ip.verify_checksum());
    let icmp = ip.payload();
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum");
    (
        ip.src_addr(),
        ip.dst_addr(),
        icmp[0],
        icmp[1],
        icmp[8..].to_vec(),
    )
}

#[test]
fn no_endpoints_and_unknown_port_are_rejected_with_port_unreachable() {
    let mut n = nat(vec![]);
    let syn = packet(TCP, CLIENT, 40000, VIP, 80, SYN, b"");
    let (v, _, out) = run(&mut n, syn.clone());
    let Verdict::Reply(len) = v else {
        panic!("{v:?}")
    };
    let (src, dst, ty, code, quoted) = icmp_of(&out[..len]);
    assert_eq!((src, dst, ty, code), (VIP, CLIENT, 3, 3));
    assert_eq!(
        quoted,
        syn[vnet::LEN..vnet::LEN + 28].to_vec(),
        "original header + 8 bytes"
    );
    assert_eq!(VnetHdr::parse(&out).unwrap(), VnetHdr::default());
    // Only unready, non-terminating endpoints: still rejected.
    let mut n = nat(vec![backend(B1, false, false, false)]);
    assert!(matches!(run(&mut n, syn.clone()).0, Verdict::Reply(_)));
    // Unknown port on a known VIP.
    let mut n = nat(vec![backend(B1, true, true, false)]);
    assert!(matches!(
        run(&mut n, packet(TCP, CLIENT, 1, VIP, 81, SYN, b"")).0,
        Verdict::Reply(_)
    ));
    assert_eq!(n.counters().rejects, 1);
}

#[test]
fn unallocated_ips_and_echo_are_dropped_other_traffic_passes() {
    let mut n = nat(vec![backend(B1, true, true, false)]);
    let other = Ipv4Addr::new(10, 96, 9, 9);
    assert_eq!(
        run(&mut n, packet(TCP, CLIENT, 1, other, 80, SYN, b"")).0,
        Verdict::Drop(DropReason::UnallocatedServiceIp)
    );
    // Ping to the VIP.
    let mut ping = packet(UDP, CLIENT, 0, VIP, 0, 0, b"abcd");
    {
        let p = &mut ping[vnet::LEN..];
        p[9] = ICMP;
        p[20] = 8;
        p[21] = 0;
        wr16(p, 10, 0);
        let c = checksum::checksum(&p[..20]);
        wr16(p, 10, c);
    }
    assert_eq!(run(&mut n, ping).0, Verdict::Drop(DropReason::EchoToVip));
    // Pod-to-pod traffic pulled in by a policy rule passes unchanged.
    let direct = packet(TCP, B1, 8080, CLIENT, 5555, ACK, b"x");
    let (v, b, _) = run(&mut n, direct.clone());
    assert_eq!(v, Verdict::Forward);
    assert_eq!(b, direct);
    assert_eq!(n.counters().forwarded_unchanged, 1);
}

#[test]
fn ready_first_then_serving_terminating_fallback() {
    let mut n = nat(vec![
        backend(B1, false, true, true),
        backend(B2, true, true, false),
    ]);
    for port in 0..50 {
        let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 30000 + port, VIP, 80, SYN, b""));
        assert_eq!(verify(&b).2, B2, "a ready endpoint is preferred");
    }
    let mut n = nat(vec![
        backend(B1, false, true, true),
        backend(B2, false, false, true),
    ]);
    for port in 0..50 {
        let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 30000 + port, VIP, 80, SYN, b""));
        assert_eq!(verify(&b).2, B1, "serving+terminating fallback");
    }
}

#[test]
fn uniform_spread_over_backends() {
    let mut n = nat(vec![
        backend(B1, true, true, false),
        backend(B2, true, true, false),
        backend(B3, true, true, false),
    ]);
    let mut hits: HashMap<Ipv4Addr, u32> = HashMap::new();
    for port in 0..3000 {
        let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 20000 + port, VIP, 80, SYN, b""));
        *hits.entry(verify(&b).2).or_default() += 1;
    }
    assert_eq!(hits.len(), 3);
    for (ip, h) in hits {
        assert!((800..1200).contains(&h), "{ip}: {h} of 3000");
    }
}

#[test]
fn client_ip_affinity_sticks_and_expires() {
    let mut n = Nat::new(1024);
    let eps = vec![
        backend(B1, true, true, false),
        backend(B2, true, true, false),
        backend(B3, true, true, false),
    ];
    n.set_table(table_with(eps, Some(Duration::from_secs(60))));
    let mut out = vec![0u8; 2048];
    let mut first = None;
    for port in 0..40u16 {
        let mut b = packet(TCP, CLIENT, 20000 + port, VIP, 80, SYN, b"");
        n.process(T0 + Duration::from_secs(u64::from(port)), &mut b, &mut out);
        let be = verify(&b).2;
        assert_eq!(*first.get_or_insert(be), be, "affinity broke");
    }
    // After the timeout without new connections, a new choice is made.
    let mut seen = std::collections::HashSet::new();
    for i in 0..30u64 {
        let mut b = packet(TCP, CLIENT, 50000 + i as u16, VIP, 80, SYN, b"");
        n.process(T0 + Duration::from_secs(200 + i * 100), &mut b, &mut out);
        seen.insert(verify(&b).2);
    }
    assert!(seen.len() > 1, "affinity never expired");
}

#[test]
fn udp_flows_flushed_tcp_flows_kept_on_table_update() {
    let mut n = nat(vec![backend(B1, true, true, false)]);
    run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    run(&mut n, packet(TCP, CLIENT, 6000, VIP, 80, SYN, b""));
    assert_eq!(n.flow_count(), 2);
    n.set_table(table_with(vec![backend(B2, true, true, false)], None));
    assert_eq!(
        n.flow_count(),
        1,
        "the UDP flow to the removed backend is gone"
    );
    let (_, b, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a"));
    assert_eq!(verify(&b).2, B2, "the next datagram goes to a live backend");
    let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 6000, VIP, 80, ACK, b""));
    assert_eq!(verify(&b).2, B1, "the TCP flow keeps its backend");
}

#[test]
fn conntrack_expiry_with_a_fake_clock() {
    let mut n = nat(vec![backend(B1, true, true, false)]);
    let mut out = vec![0u8; 2048];
    let mut b = packet(UDP, CLIENT, 5000, VIP, 80, 0, b"a");
    n.process(Duration::from_secs(0), &mut b, &mut out);
    let mut b = packet(TCP, CLIENT, 6000, VIP, 80, SYN, b"");
    n.process(Duration::from_secs(0), &mut b, &mut out);
    n.expire(Duration::from_secs(29));
    assert_eq!(n.flow_count(), 2);
    n.expire(Duration::from_secs(31));
    assert_eq!(n.flow_count(), 1, "unreplied UDP flow expires after 30 s");
    n.expire(Duration::from_secs(121));
    assert_eq!(n.flow_count(), 0, "SYN_SENT expires after 120 s");
    // RST closes quickly.
    let mut b = packet(TCP, CLIENT, 7000, VIP, 80, SYN, b"");
    n.process(Duration::from_secs(200), &mut b, &mut out);
    let mut b = packet(TCP, B1, 8080, CLIENT, 7000, RST | ACK, b"");
    n.process(Duration::from_secs(200), &mut b, &mut out);
    n.expire(Duration::from_secs(211));
    assert_eq!(n.flow_count(), 0);
}

#[test]
fn capacity_bounds_a_syn_flood() {
    let mut n = Nat::new(64);
    n.set_table(table_with(vec![backend(B1, true, true, false)], None));
    let mut out = vec![0u8; 2048];
    for i in 0..5000u16 {
        let mut b = packet(TCP, CLIENT, i, VIP, 80, SYN, b"");
        assert_eq!(n.process(T0, &mut b, &mut out), Verdict::Forward);
    }
    assert_eq!(n.flow_count(), 64);
    assert_eq!(n.counters().flows_evicted, 5000 - 64);
}

#[test]
fn icmp_errors_from_backends_are_translated() {
    let mut n = nat(vec![backend(B1, true, true, false)]);
    let (_, fwd, _) = run(&mut n, packet(UDP, CLIENT, 5000, VIP, 80, 0, b"payload"));
    for (ty, code) in [(3u8, 3u8), (3, 4)] {
        // The backend answers with an ICMP error quoting what it received.
        let quoted = &fwd[vnet::LEN..vnet::LEN + 28];
        let mut b = vec![0u8; vnet::LEN + 20 + 8 + 28];
        {
            let p = &mut b[vnet::LEN..];
            p[0] = 0x45;
            wr16(p, 2, (20 + 8 + 28) as u16);
            p[8] = 64;
            p[9] = ICMP;
            p[12..16].copy_from_slice(&B1.octets());
            p[16..20].copy_from_slice(&CLIENT.octets());
            let c = checksum::checksum(&p[..20]);
            wr16(p, 10, c);
            p[20] = ty;
            p[21] = code;
            if code == 4 {
                wr16(p, 26, 1400);
            }
            p[28..].copy_from_slice(quoted);
            let c = checksum::checksum(&p[20..]);
            wr16(p, 22, c);
        }
        let (v, b, _) = run(&mut n, b);
        assert_eq!(v, Verdict::Forward);
        let (src, dst, t, c, inner) = icmp_of(&b);
        assert_eq!((src, dst, t, c), (VIP, CLIENT, ty, code));
        let inner_ip = Ipv4Packet::new_unchecked(&inner[..]);
        assert!(inner_ip.verify_checksum(), "inner IP checksum");
        assert_eq!((inner_ip.src_addr(), inner_ip.dst_addr()), (CLIENT, VIP));
        assert_eq!((rd16(&inner, 20), rd16(&inner, 22)), (5000, 80));
    }
    assert_eq!(n.counters().icmp_errors_translated, 2);
}

#[test]
fn snapshot_and_restore_keep_flows() {
    let mut n = nat(vec![
        backend(B1, true, true, false),
        backend(B2, true, true, false),
    ]);
    let (_, b, _) = run(&mut n, packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    let chosen = verify(&b).2;
    let snap = n.snapshot();
    let mut m = nat(vec![
        backend(B1, true, true, false),
        backend(B2, true, true, false),
    ]);
    assert_eq!(m.restore(&snap, Duration::ZERO), Ok(1));
    for _ in 0..10 {
        let (_, b, _) = run(&mut m, packet(TCP, CLIENT, 40000, VIP, 80, ACK, b"x"));
        assert_eq!(verify(&b).2, chosen, "the restored flow keeps its backend");
    }
    assert!(m.restore(b"garbage", Duration::ZERO).is_err());
}

#[test]
fn malformed_packets_are_counted_drops() {
    let mut n = nat(vec![backend(B1, true, true, false)]);
    let mut out = vec![0u8; 64];
    for bad in [vec![], vec![0u8; 5], vec![0u8; 12], {
        let mut p = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
        p.truncate(vnet::LEN + 30);
        p
    }] {
        let mut b = bad;
        assert!(matches!(n.process(T0, &mut b, &mut out), Verdict::Drop(_)));
    }
    // A fragment to a VIP.
    let mut f = packet(UDP, CLIENT, 1, VIP, 80, 0, b"abc");
    f[vnet::LEN + 6] = 0x20; // MF
    assert_eq!(
        n.process(T0, &mut f, &mut out),
        Verdict::Drop(DropReason::Fragment)
    );
    // A reject that does not fit `out` is a drop, not a panic.
    let mut n = nat(vec![]);
    let mut b = packet(TCP, CLIENT, 1, VIP, 80, SYN, b"");
    assert!(matches!(
        n.process(T0, &mut b, &mut out[..10]),
        Verdict::Drop(_)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut n = nat(vec![backend(B1, true, true, false), backend(CLIENT, true, true, false)]);
        let mut b = data;
        let mut out = vec![0u8; 256];
        let _ = n.process(T0, &mut b, &mut out);
    }

    #[test]
    fn mutated_packets_never_panic(
        proto in prop::sample::select(vec![TCP, UDP, ICMP]),
        flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
        cut in 0usize..90,
    ) {
        let mut n = nat(vec![backend(B1, true, true, false), backend(CLIENT, true, true, false)]);
        let mut out = vec![0u8; 256];
        // Establish a flow so ICMP errors can match it.
        let mut seed = packet(UDP, CLIENT, 5000, VIP, 80, 0, b"abcdefgh");
        let _ = n.process(T0, &mut seed, &mut out);
        let mut p = packet(if proto == ICMP { UDP } else { proto }, CLIENT, 5000, VIP, 80, SYN, b"0123456789abcdefghij");
        if proto == ICMP {
            p[vnet::LEN + 9] = ICMP;
            p[vnet::LEN + 20] = 3;
        }
        for (i, v) in flips {
            if let Some(x) = p.get_mut(i) {
                *x = v;
            }
        }
        p.truncate(p.len().min(vnet::LEN + cut.max(1)));
        let _ = n.process(T0, &mut p, &mut out);
    }
}
