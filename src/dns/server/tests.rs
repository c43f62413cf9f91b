//! The server on 127.0.0.1 with a fixture zone, asked over real UDP and TCP
//! sockets.

use super::*;
use crate::dns::zone::ZoneConfig;
use hickory_server::proto::op::{Message, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture() -> Zone {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "backend", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    let many: Vec<Service> = (0..60)
        .map(|i| {
            serde_json::from_value(json!({
                "metadata": {"name": format!("s{i}"), "namespace": "default"},
                "spec": {"clusterIP": "None"}
            }))
            .unwrap()
        })
        .collect();
    let eps: Vec<serde_json::Value> = (1..=60)
        .map(|i| json!({"addresses": [format!("10.244.1.{i}")], "conditions": {"ready": true}}))
        .collect();
    let slice = serde_json::from_value(json!({
        "metadata": {"name": "big-x", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "big"}},
        "addressType": "IPv4", "endpoints": eps
    }))
    .unwrap();
    let big: Service = serde_json::from_value(json!({
        "metadata": {"name": "big", "namespace": "default"},
        "spec": {"clusterIP": "None"}
    }))
    .unwrap();
    let mut services = vec![svc, big];
    services.extend(many);
    Zone::build(
        ZoneConfig::new(
            "10.96.0.0/16".parse().unwrap(),
            "10.244.0.0/16".parse().unwrap(),
            "10.96.0.10".parse().unwrap(),
        ),
        &services,
        &[slice],
        &[],
        7,
    )
}

fn query(id: u16, name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

async fn start(with_zone: bool) -> (SocketAddr, Arc<Shared>, Server<Handler>) {
    let shared = Shared::new();
    if with_zone {
        shared.publish(fixture());
    }
    let l = Listeners::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let server = serve(l, shared.clone());
    (addr, shared, server)
}

async fn udp(addr: SocketAddr, bytes: &[u8]) -> Message {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.recv(&mut buf))
        .await
        .expect("answer within 5 s")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn tcp(addr: SocketAddr, bytes: &[u8]) -> Message {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    s.write_all(bytes).await.unwrap();
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .expect("answer within 5 s")
        .unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let (addr, shared, _server) = start(true).await;
    for (i, over_tcp) in [false, true].into_iter().enumerate() {
        let q = query(
            100 + i as u16,
            "backend.default.svc.cluster.local.",
            RecordType::A,
        );
        let m = if over_tcp {
            tcp(addr, &q).await
        } else {
            udp(addr, &q).await
        };
        assert_eq!(m.metadata.id, 100 + i as u16);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.authoritative);
        assert!(!m.metadata.recursion_available);
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(&m.answers[0].data, RData::A(a) if a.0.to_string() == "10.96.0.20"));
    }
    // NXDOMAIN carries the SOA.
    let m = udp(
        addr,
        &query(7, "nope.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities.len(), 1);
    // Outside the zone: REFUSED.
    let m = udp(addr, &query(8, "example.com.", RecordType::A)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(shared.queries.load(Ordering::Relaxed) >= 4);
}

#[tokio::test]
async fn large_answers_truncate_over_udp_and_fit_over_tcp() {
    let (addr, _shared, _server) = start(true).await;
    let q = query(9, "big.default.svc.cluster.local.", RecordType::A);
    let m = udp(addr, &q).await;
    assert!(m.metadata.truncation, "60 A records do not fit 512 bytes");
    let m = tcp(addr, &q).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
}

#[tokio::test]
async fn garbage_and_no_snapshot_do_not_hurt() {
    let (addr, shared, _server) = start(false).await;
    // Before the first snapshot: SERVFAIL, not silence.
    let m = udp(
        addr,
        &query(1, "backend.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Garbage datagrams are dropped or answered FORMERR; the server lives.
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [&b""[..], b"\x00", &[0xffu8; 40], &[0u8; 12]] {
        s.send_to(junk, addr).await.unwrap();
    }
    // No question at all.
    let mut m = Message::query();
    m.metadata.id = 3;
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let r = udp(addr, &m.to_vec().unwrap()).await;
        assert_ne!(r.metadata.response_code, ResponseCode::NoError);
    })
    .await;
    shared.publish(fixture());
    let m = udp(
        addr,
        &query(2, "backend.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
}
