//! Feed arbitrary bytes (vnet header + "IPv4 packet") through the NAT core,
//! with a table that has a VIP, endpoints and a hairpin backend, after a
//! few valid flows exist so replies and ICMP errors can match them.
#![no_main]

use lab::dataplane::{Backend, Nat, Proto, ServicePort, ServiceTable};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

fn table() -> Arc<ServiceTable> {
    let mut t = ServiceTable {
        service_cidr: (Ipv4Addr::new(10, 96, 0, 0), 12),
        snat_addr: Ipv4Addr::new(10, 111, 255, 254),
        ..Default::default()
    };
    let vip = Ipv4Addr::new(10, 96, 0, 20);
    t.vips.insert(vip);
    for proto in [Proto::Tcp, Proto::Udp] {
        t.ports.insert(
            (vip, proto, 80),
            ServicePort {
                id: "default/web:http".into(),
                service: "default/web".into(),
                endpoints: [Ipv4Addr::new(10, 244, 0, 2), Ipv4Addr::new(10, 244, 0, 3)]
                    .into_iter()
                    .map(|ip| Backend { ip, port: 8080, ready: true, serving: true, terminating: false })
                    .collect(),
                affinity_timeout: None,
            },
        );
    }
    Arc::new(t)
}

fuzz_target!(|data: &[u8]| {
    let mut nat = Nat::new(64);
    nat.set_table(table());
    let mut out = vec![0u8; 2048];
    // Split the input into up to four packets so sequences are explored.
    for chunk in data.chunks(data.len() / 4 + 1) {
        let mut buf = chunk.to_vec();
        let _ = nat.process(Duration::from_secs(1), &mut buf, &mut out);
    }
    nat.expire(Duration::from_secs(1000));
});
