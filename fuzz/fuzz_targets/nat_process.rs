//! Feed arbitrary bytes through the NAT core (`lab::dataplane::Nat::process`).
//!
//! The input is split on the 4-byte separator `NAT!` into up to 8 packets
//! (each a virtio-net header + "IPv4 packet"), processed in order at
//! increasing times against a table with two VIPs, ready, terminating and
//! hairpin endpoints and ClientIP affinity, after a few valid packets have
//! created flows that replies and ICMP errors can match. Checks, beyond "no
//! panic": buffers keep their length, replies fit `out`, and every packet
//! is counted exactly once.
#![no_main]

use lab::dataplane::{Backend, Nat, Proto, ServicePort, ServiceTable, Verdict};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn table(with_endpoints: bool) -> Arc<ServiceTable> {
    let mut t = ServiceTable {
        service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
        snat_addr: Ipv4Addr::new(10, 111, 255, 254),
        ..Default::default()
    };
    let vip2 = Ipv4Addr::new(10, 96, 0, 21);
    t.vips.insert(VIP);
    t.vips.insert(vip2);
    let eps: Vec<Backend> = if with_endpoints {
        vec![
            Backend {
                ip: Ipv4Addr::new(10, 244, 0, 3),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
            },
            Backend {
                ip: CLIENT,
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
            },
            Backend {
                ip: Ipv4Addr::new(10, 244, 0, 4),
                port: 8080,
                ready: false,
                serving: true,
                terminating: true,
            },
        ]
    } else {
        Vec::new()
    };
    for (vip, proto, affinity) in [
        (VIP, Proto::Tcp, None),
        (VIP, Proto::Udp, None),
        (vip2, Proto::Tcp, Some(Duration::from_secs(10))),
    ] {
        t.ports.insert(
            (vip, proto, 80),
            ServicePort {
                id: format!("default/web-{vip}:{proto:?}"),
                service: format!("default/web-{vip}"),
                endpoints: eps.clone(),
                affinity_timeout: affinity,
                drop_without_endpoints: false,
            },
        );
    }
    Arc::new(t)
}

/// A valid client → VIP packet (checksums need not be right for this).
fn seed(proto: u8, sport: u16) -> Vec<u8> {
    let l4 = if proto == 6 { 20 } else { 8 };
    let mut b = vec![0u8; 10 + 20 + l4];
    let p = &mut b[10..];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&CLIENT.octets());
    p[16..20].copy_from_slice(&VIP.octets());
    p[20..22].copy_from_slice(&sport.to_be_bytes());
    p[22..24].copy_from_slice(&80u16.to_be_bytes());
    if proto == 6 {
        p[32] = 0x50;
        p[33] = 0x02;
    } else {
        p[24..26].copy_from_slice(&(l4 as u16).to_be_bytes());
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let mut nat = Nat::with_seed(64, 1);
    nat.set_table(table(true));
    let mut out = vec![0u8; 256];
    for (i, proto) in [6u8, 17, 6].into_iter().enumerate() {
        let _ = nat.process(
            Duration::from_secs(1),
            &mut seed(proto, 40_000 + i as u16),
            &mut out,
        );
    }
    let mut t = 1;
    let mut rest = data;
    for k in 0..8 {
        let (pkt, tail) = match rest.windows(4).position(|w| w == b"NAT!") {
            Some(i) => (&rest[..i], &rest[i + 4..]),
            None => (rest, &[][..]),
        };
        let mut buf = pkt.to_vec();
        let before = nat.counters().packets;
        let v = nat.process(Duration::from_secs(t), &mut buf, &mut out);
        assert_eq!(buf.len(), pkt.len());
        if let Verdict::Reply(len) = v {
            assert!(len <= out.len());
        }
        let c = nat.counters();
        assert_eq!(c.packets, before + 1);
        assert_eq!(
            c.packets,
            c.translated + c.forwarded_unchanged + c.rejects + c.total_drops()
        );
        t += u64::from(pkt.first().copied().unwrap_or(0) % 64);
        if k == 3 {
            // Endpoint churn in the middle: UDP flows are flushed.
            nat.set_table(table(pkt.len() % 2 == 0));
        }
        if tail.is_empty() {
            break;
        }
        rest = tail;
    }
    nat.expire(Duration::from_secs(t + 1000));
    let snap = nat.snapshot();
    let mut other = Nat::with_seed(8, 2);
    assert!(other.restore(&snap, Duration::ZERO).is_ok());
});
