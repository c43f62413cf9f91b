//! What `lab flows` and the metrics read from the NAT: per-flow counters,
//! flow events, the reject ring, per-endpoint totals, and counters that
//! disappear with their Service.

use super::*;
use crate::dataplane::events::{EndReason, FlowEvent, FlowEventKind, RejectReason};
use crate::dataplane::shard::Sharded;

fn drain(ev: &FlowEvents) -> Vec<FlowEvent> {
    std::iter::from_fn(|| ev.recv_timeout(Duration::ZERO)).collect()
}

fn kinds(ev: &FlowEvents) -> Vec<FlowEventKind> {
    drain(ev)
        .into_iter()
        .filter_map(|e| match e {
            FlowEvent::Flow { kind, .. } => Some(kind),
            FlowEvent::Reject(_) => None,
        })
        .collect()
}

#[test]
fn per_flow_counters_each_way_and_state_events_while_watched() {
    let mut n = nat(vec![up(B1)]);
    let ev = FlowEvents::new(64);
    n.set_events(Arc::clone(&ev));
    let w = ev.watch();
    run_at(&mut n, T0, packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    assert_eq!(kinds(&ev), [FlowEventKind::New]);
    run_at(
        &mut n,
        T0 + secs(1),
        packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, b""),
    );
    run_at(
        &mut n,
        T0 + secs(2),
        packet(TCP, CLIENT, 40000, VIP, 80, ACK, b"hello"),
    );
    // Two updates: SYN_RECV, then ESTABLISHED; a data packet changes nothing.
    run_at(
        &mut n,
        T0 + secs(3),
        packet(TCP, B1, 8080, CLIENT, 40000, ACK, b"world!!"),
    );
    let states: Vec<_> = drain(&ev)
        .into_iter()
        .map(|e| match e {
            FlowEvent::Flow { kind, flow, .. } => (kind, flow.tcp),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        states,
        [
            (FlowEventKind::Update, Some(TcpState::SynRecv)),
            (FlowEventKind::Update, Some(TcpState::Established)),
        ]
    );
    let f = *n.flows().next().unwrap();
    assert_eq!(f.stats.packets, [2, 2]);
    assert_eq!(f.stats.bytes, [40 + 45, 40 + 47]);
    assert_eq!(f.stats.created, T0);
    assert_eq!(f.stats.seen, T0 + secs(3));
    assert_eq!(f.stats.pick, Pick::Random);
    // Ended: the event carries the final counts; the endpoint keeps them.
    n.expire(T0 + secs(3) + TcpState::Established.timeout());
    let end = drain(&ev);
    assert!(
        matches!(end.as_slice(), [FlowEvent::Flow { kind: FlowEventKind::End(EndReason::Expired), flow, .. }] if flow.stats.packets == [2, 2]),
        "{end:?}"
    );
    let idx = n.compiled().meta[&(VIP, Proto::Tcp, 80)].port;
    let t = &n.ended_totals()[&(idx, B1, 8080)];
    assert_eq!((t.flows, t.packets, t.bytes), (1, 4, 172));
    // Nobody watching: nothing is queued, nothing is lost.
    drop(w);
    run_at(&mut n, T0, packet(TCP, CLIENT, 40001, VIP, 80, SYN, b""));
    assert!(drain(&ev).is_empty());
    assert_eq!(ev.lost(), 0);
}

#[test]
fn affinity_hits_are_marked_and_evictions_are_end_events() {
    let mut n = Nat::with_seed(2, 7);
    n.set_table(table_with(vec![up(B1), up(B2)], Some(secs(100))));
    let ev = FlowEvents::new(64);
    n.set_events(Arc::clone(&ev));
    let _w = ev.watch();
    for p in 1..=3 {
        run_at(&mut n, T0, packet(TCP, CLIENT, p, VIP, 80, SYN, b""));
    }
    let picks: Vec<_> = drain(&ev)
        .into_iter()
        .filter_map(|e| match e {
            FlowEvent::Flow {
                kind: FlowEventKind::New,
                flow,
                ..
            } => Some(flow.stats.pick),
            FlowEvent::Flow {
                kind: FlowEventKind::End(r),
                ..
            } => {
                assert_eq!(r, EndReason::Evicted);
                None
            }
            _ => None,
        })
        .collect();
    assert_eq!(picks, [Pick::Random, Pick::Affinity, Pick::Affinity]);
    assert_eq!(n.counters().flows_evicted, 1);
}

#[test]
fn rejects_are_remembered_with_their_reason() {
    let mut n = nat(vec![]);
    run(&mut n, packet(TCP, CLIENT, 40000, VIP, 80, SYN, b""));
    run(&mut n, packet(TCP, CLIENT, 40001, VIP, 81, SYN, b""));
    let r: Vec<_> = n.rejects().map(|r| (r.orig.sport, r.reason)).collect();
    assert_eq!(
        r,
        [
            (40000, RejectReason::NoEndpoints),
            (40001, RejectReason::UnknownPort)
        ]
    );
    let svc = n.compiled().vip_service[&VIP];
    assert!(n.rejects().all(|r| r.service == Some(svc)));
}

/// The table without `default/other` (VIP2).
fn without_other(endpoints: Vec<Backend>) -> Arc<ServiceTable> {
    let mut t = (*table_with(endpoints, None)).clone();
    t.vips.remove(&VIP2);
    t.ports.remove(&(VIP2, Proto::Tcp, 80));
    Arc::new(t)
}

#[test]
fn a_deleted_services_counters_vanish_and_its_index_is_reused_only_after_its_flows_are_detached() {
    let mut n = nat(vec![up(B1)]);
    run(&mut n, packet(TCP, CLIENT, 40000, VIP2, 80, SYN, b""));
    run(&mut n, packet(TCP, B1, 8080, CLIENT, 40000, SYN | ACK, b""));
    assert_eq!(n.service_counters()["default/other"].packets, 2);
    let old = n.compiled().vip_service[&VIP2];
    n.set_table(without_other(vec![up(B1)]));
    assert!(!n.service_counters().contains_key("default/other"));
    assert!(!n.port_counters().contains_key("default/other:http"));
    // The established flow keeps working...
    let (v, b, _) = run(&mut n, packet(TCP, CLIENT, 40000, VIP2, 80, ACK, b""));
    assert_eq!(v, Verdict::Forward);
    assert_eq!(verify(&b).2, B1);
    // ...and is detached by the next expiry pass; then the index is free.
    n.expire(T0);
    let f = *n.flows().next().unwrap();
    assert_eq!((f.service, f.port), (NO_INDEX, NO_INDEX));
    let mut t = (*without_other(vec![up(B1)])).clone();
    t.vips.insert(VIP2);
    t.ports.insert(
        (VIP2, Proto::Tcp, 80),
        ServicePort {
            id: "default/new:http".into(),
            service: "default/new".into(),
            endpoints: vec![up(B2)],
            affinity_timeout: None,
            drop_without_endpoints: false,
        },
    );
    n.set_table(Arc::new(t));
    assert_eq!(n.compiled().vip_service[&VIP2], old, "index reused");
    // The old flow's packets are not counted for the new Service.
    run(&mut n, packet(TCP, CLIENT, 40000, VIP2, 80, ACK, b""));
    assert_eq!(
        n.service_counters()["default/new"],
        ServiceCounters::default()
    );
    run(&mut n, packet(TCP, CLIENT, 40001, VIP2, 80, SYN, b""));
    assert_eq!(n.service_counters()["default/new"].flows, 1);
    // A snapshot leaves the detached flow out (its Service is gone).
    let mut r = Nat::with_seed(1024, 9);
    assert_eq!(r.restore(&n.snapshot(), T0).unwrap(), 1);
}

#[test]
fn sharded_listing_endpoints_and_deletion() {
    let s = Sharded::new(1024, 8, 3);
    s.set_table(table_with(vec![up(B1), up(B2)], None));
    let mut w = s.worker();
    for p in 1..=20u16 {
        let mut b = packet(TCP, CLIENT, 40000 + p, VIP2, 80, SYN, b"");
        assert_eq!(s.process(&mut w, T0, &mut b), Verdict::Forward);
    }
    let mut b = packet(TCP, CLIENT, 1, VIP, 81, SYN, b"");
    assert!(matches!(s.process(&mut w, T0, &mut b), Verdict::Reply(_)));
    let l = s.list();
    assert_eq!(l.flows.len(), 20);
    assert!(
        l.flows
            .iter()
            .all(|f| l.service(f.service) == Some("default/other"))
    );
    assert_eq!(l.rejects.len(), 1);
    let e = s.endpoint_counters();
    let c = &e[&("default/other:http".to_string(), B1, 8080)];
    assert_eq!((c.flows, c.packets), (20, 20));
    s.set_table(without_other(vec![up(B1)]));
    assert!(!s.service_counters().contains_key("default/other"));
    s.expire(T0);
    assert!(s.endpoint_counters().is_empty());
    assert!(s.list().flows.iter().all(|f| f.service == NO_INDEX));
}
