use super::*;
use serde_json::json;

fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": ip, "ports": ports}
    }))
    .unwrap()
}

fn slice(ns: &str, svc: &str, eps: serde_json::Value, ports: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{svc}-abc"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": ports
    }))
    .unwrap()
}

fn pod(ns: &str, name: &str, ip: &str, phase: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "status": {"podIP": ip, "phase": phase}
    }))
    .unwrap()
}

fn zone() -> Zone {
    let cfg = ZoneConfig::new(
        "10.96.0.0/16".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
        "10.96.0.10".parse().unwrap(),
    );
    let services = vec![
        svc(
            "default",
            "backend",
            "10.96.0.20",
            json!([{"name": "http", "port": 80, "protocol": "TCP"},
                   {"port": 81}]),
        ),
        svc(
            "kube-system",
            "kube-dns",
            "10.96.0.10",
            json!([{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
        ),
        svc(
            "default",
            "db",
            "None",
            json!([{"name": "mysql", "port": 3306}]),
        ),
        svc("default", "empty-headless", "None", json!([])),
        serde_json::from_value(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "backend.default.svc.cluster.local"}
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "metadata": {"name": "outside", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }))
        .unwrap(),
    ];
    let slices = vec![
        slice(
            "default",
            "db",
            json!([
                {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "hostname": "db-0"},
                {"addresses": ["10.244.0.6"], "conditions": {"ready": true}},
                {"addresses": ["10.244.0.7"], "conditions": {"ready": false}, "hostname": "db-2"}
            ]),
            json!([{"name": "mysql", "port": 3306, "protocol": "TCP"}]),
        ),
        slice(
            "default",
            "empty-headless",
            json!([{"addresses": ["10.244.0.9"], "conditions": {"ready": false}}]),
            json!([]),
        ),
    ];
    let pods = vec![
        pod("default", "a", "10.244.0.5", "Running"),
        pod("default", "gone", "10.244.0.8", "Succeeded"),
    ];
    Zone::build(cfg, &services, &slices, &pods, 42)
}

fn n(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn ask(z: &Zone, q: &str, t: RecordType) -> Answer {
    z.lookup(&n(q), t, DNSClass::IN)
}

fn a_of(ans: &Answer) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = ans
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn is_soa_negative(ans: &Answer, rcode: ResponseCode) -> bool {
    ans.rcode == rcode
        && ans.authoritative
        && ans.answers.is_empty()
        && ans.authority.len() == 1
        && ans.authority[0].record_type() == RecordType::SOA
        && ans.authority[0].ttl == 5
}

#[test]
fn cluster_ip_service_a_record() {
    let z = zone();
    let ans = ask(&z, "backend.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.authoritative);
    assert_eq!(a_of(&ans), vec!["10.96.0.20".parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(ans.answers[0].ttl, 5);
    // Case is kept as asked, matching is case-insensitive.
    let ans = ask(&z, "BackEnd.Default.SVC.cluster.local.", RecordType::A);
    assert_eq!(a_of(&ans).len(), 1);
    assert_eq!(
        ans.answers[0].name.to_string(),
        "BackEnd.Default.SVC.cluster.local."
    );
    // A name without the trailing dot is the same name.
    assert_eq!(
        a_of(&ask(&z, "backend.default.svc.cluster.local", RecordType::A)).len(),
        1
    );
}

#[test]
fn srv_for_named_ports_with_additional_a() {
    let z = zone();
    let ans = ask(
        &z,
        "_http._tcp.backend.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert_eq!(ans.answers.len(), 1);
    let RData::SRV(srv) = &ans.answers[0].data else {
        panic!("not SRV: {ans:?}")
    };
    assert_eq!((srv.priority, srv.weight, srv.port), (0, 100, 80));
    assert_eq!(srv.target.to_string(), "backend.default.svc.cluster.local.");
    assert_eq!(
        a_of(&Answer {
            answers: ans.additionals.clone(),
            ..ans.clone()
        }),
        vec!["10.96.0.20".parse::<Ipv4Addr>().unwrap()]
    );
    // UDP port of kube-dns.
    let ans = ask(
        &z,
        "_dns._udp.kube-dns.kube-system.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(ans.answers.len(), 1);
    // No SRV for the wrong protocol or an unnamed port.
    let ans = ask(
        &z,
        "_http._udp.backend.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert!(is_soa_negative(&ans, ResponseCode::NXDomain), "{ans:?}");
}

#[test]
fn nodata_vs_nxdomain() {
    let z = zone();
    // Existing name, other type: NODATA with SOA.
    let ans = ask(&z, "backend.default.svc.cluster.local.", RecordType::AAAA);
    assert!(is_soa_negative(&ans, ResponseCode::NoError), "{ans:?}");
    let ans = ask(&z, "backend.default.svc.cluster.local.", RecordType::TXT);
    assert!(is_soa_negative(&ans, ResponseCode::NoError), "{ans:?}");
    // Empty non-terminals exist.
    for ent in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "default.pod.cluster.local.",
    ] {
        let ans = ask(&z, ent, RecordType::A);
        assert!(
            is_soa_negative(&ans, ResponseCode::NoError),
            "{ent}: {ans:?}"
        );
    }
    // Unknown names in the zone: NXDOMAIN with SOA.
    for nx in [
        "nope.default.svc.cluster.local.",
        "backend.other.svc.cluster.local.",
        "backend.default.cluster.local.",
        "x.backend.default.svc.cluster.local.",
        "10-244-0-99.default.pod.cluster.local.",
    ] {
        let ans = ask(&z, nx, RecordType::A);
        assert!(
            is_soa_negative(&ans, ResponseCode::NXDomain),
            "{nx}: {ans:?}"
        );
    }
}

#[test]
fn headless_service_records() {
    let z = zone();
    let ans = ask(&z, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        a_of(&ans),
        vec![
            "10.244.0.5".parse::<Ipv4Addr>().unwrap(),
            "10.244.0.6".parse().unwrap()
        ],
        "only ready endpoints"
    );
    // Hostname record for the endpoint with a hostname, dashed IP for the other.
    assert_eq!(
        a_of(&ask(
            &z,
            "db-0.db.default.svc.cluster.local.",
            RecordType::A
        )),
        vec!["10.244.0.5".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(
        a_of(&ask(
            &z,
            "10-244-0-6.db.default.svc.cluster.local.",
            RecordType::A
        )),
        vec!["10.244.0.6".parse::<Ipv4Addr>().unwrap()]
    );
    // Not-ready endpoint: no record.
    let ans = ask(&z, "db-2.db.default.svc.cluster.local.", RecordType::A);
    assert!(is_soa_negative(&ans, ResponseCode::NXDomain));
    // SRV: one per ready endpoint, targets the hostnames, As in additional.
    let ans = ask(
        &z,
        "_mysql._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let mut targets: Vec<String> = ans
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(s) => {
                assert_eq!((s.port, s.weight), (3306, 50));
                s.target.to_string()
            }
            _ => panic!(),
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "10-244-0-6.db.default.svc.cluster.local.",
            "db-0.db.default.svc.cluster.local."
        ]
    );
    assert_eq!(ans.additionals.len(), 2);
    // Headless without ready endpoints: NXDOMAIN.
    let ans = ask(
        &z,
        "empty-headless.default.svc.cluster.local.",
        RecordType::A,
    );
    assert!(is_soa_negative(&ans, ResponseCode::NXDomain), "{ans:?}");
}

#[test]
fn ptr_records() {
    let z = zone();
    let ans = ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert!(ans.authoritative);
    let RData::PTR(PTR(t)) = &ans.answers[0].data else {
        panic!()
    };
    assert_eq!(t.to_string(), "backend.default.svc.cluster.local.");
    assert_eq!(
        reverse_name("10.96.0.20".parse().unwrap()).to_string(),
        "20.0.96.10.in-addr.arpa."
    );
    // Headless endpoint with a hostname.
    let ans = ask(&z, "5.0.244.10.in-addr.arpa.", RecordType::PTR);
    let RData::PTR(PTR(t)) = &ans.answers[0].data else {
        panic!()
    };
    assert_eq!(t.to_string(), "db-0.db.default.svc.cluster.local.");
    // Unallocated address in the service CIDR: NXDOMAIN with the reverse SOA.
    let ans = ask(&z, "99.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert!(is_soa_negative(&ans, ResponseCode::NXDomain), "{ans:?}");
    assert_eq!(ans.authority[0].name.to_string(), "96.10.in-addr.arpa.");
    // Existing PTR name asked for A: NODATA.
    let ans = ask(&z, "20.0.96.10.in-addr.arpa.", RecordType::A);
    assert!(is_soa_negative(&ans, ResponseCode::NoError));
    // Partial reverse name inside our range: NODATA.
    let ans = ask(&z, "96.10.in-addr.arpa.", RecordType::PTR);
    assert!(is_soa_negative(&ans, ResponseCode::NoError), "{ans:?}");
    // Outside our CIDRs (the host's networks): REFUSED, not ours.
    for q in [
        "1.1.168.192.in-addr.arpa.",
        "8.8.8.8.in-addr.arpa.",
        "in-addr.arpa.",
    ] {
        let ans = ask(&z, q, RecordType::PTR);
        assert_eq!(ans.rcode, ResponseCode::Refused, "{q}");
        assert!(!ans.authoritative);
    }
    // Garbage octets are not reverse names.
    assert_eq!(
        ask(&z, "300.0.96.10.in-addr.arpa.", RecordType::PTR).rcode,
        ResponseCode::Refused
    );
}

#[test]
fn pod_records_are_verified() {
    let z = zone();
    assert_eq!(
        a_of(&ask(
            &z,
            "10-244-0-5.default.pod.cluster.local.",
            RecordType::A
        )),
        vec!["10.244.0.5".parse::<Ipv4Addr>().unwrap()]
    );
    // Wrong namespace, finished pod: NXDOMAIN.
    for q in [
        "10-244-0-5.other.pod.cluster.local.",
        "10-244-0-8.default.pod.cluster.local.",
    ] {
        assert!(
            is_soa_negative(&ask(&z, q, RecordType::A), ResponseCode::NXDomain),
            "{q}"
        );
    }
}

#[test]
fn external_name_is_a_cname_chased_inside_the_zone() {
    let z = zone();
    let ans = ask(&z, "ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NoError);
    assert_eq!(ans.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(a_of(&ans), vec!["10.96.0.20".parse::<Ipv4Addr>().unwrap()]);
    let ans = ask(&z, "outside.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.answers.len(), 1);
    let RData::CNAME(CNAME(t)) = &ans.answers[0].data else {
        panic!()
    };
    assert_eq!(t.to_string(), "example.com.");
    let ans = ask(&z, "outside.default.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(ans.answers.len(), 1);
}

#[test]
fn apex_version_and_refused() {
    let z = zone();
    let ans = ask(&z, "dns-version.cluster.local.", RecordType::TXT);
    let RData::TXT(t) = &ans.answers[0].data else {
        panic!()
    };
    assert_eq!(t.to_string(), SPEC_VERSION);
    let ans = ask(&z, "cluster.local.", RecordType::SOA);
    let RData::SOA(soa) = &ans.answers[0].data else {
        panic!()
    };
    assert_eq!((soa.serial, soa.minimum), (42, 5));
    let ans = ask(&z, "cluster.local.", RecordType::NS);
    assert_eq!(ans.answers.len(), 1);
    assert_eq!(
        a_of(&ask(&z, "ns.dns.cluster.local.", RecordType::A)),
        vec!["10.96.0.10".parse::<Ipv4Addr>().unwrap()]
    );
    let any = ask(&z, "cluster.local.", RecordType::ANY);
    assert_eq!(any.answers.len(), 2);
    // Outside the zone: REFUSED at once, nothing else.
    for q in [
        "example.com.",
        "backend.default.svc.cluster.local.example.com.",
        "local.",
        ".",
        "cluster.local.default.svc.",
    ] {
        let ans = ask(&z, q, RecordType::A);
        assert_eq!(ans, Answer::error(ResponseCode::Refused), "{q}");
    }
    // Other classes are refused.
    assert_eq!(
        z.lookup(
            &n("backend.default.svc.cluster.local."),
            RecordType::A,
            DNSClass::CH
        ),
        Answer::error(ResponseCode::Refused)
    );
}

#[test]
fn odd_objects_are_skipped_not_fatal() {
    let cfg = ZoneConfig::new(
        "10.96.0.0/16".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
        "10.96.0.10".parse().unwrap(),
    );
    let bad: Vec<Service> = vec![
        serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
        serde_json::from_value(json!({"metadata": {"name": "y", "namespace": "d"}, "spec": {}}))
            .unwrap(),
        serde_json::from_value(
            json!({"metadata": {"name": "z", "namespace": "d"}, "spec": {"clusterIP": "fd00::1"}}),
        )
        .unwrap(),
    ];
    let slices = vec![slice(
        "d",
        "z",
        json!([{"addresses": ["not-an-ip"]}]),
        json!([{"name": "p", "port": 70000}]),
    )];
    let pods = vec![pod("d", "p", "garbage", "Running")];
    let z = Zone::build(cfg, &bad, &slices, &pods, 1);
    // Apex, NS, dns-version and their parents only.
    assert!(z.len() <= 4, "{}", z.len());
    let ans = ask(&z, "y.d.svc.cluster.local.", RecordType::A);
    assert_eq!(ans.rcode, ResponseCode::NXDomain);
}

#[test]
fn headless_answers_follow_the_ready_condition_as_coredns() {
    // CoreDNS publishes an endpoint when `ready` is true or nil, whatever
    // `serving` and `terminating` say: a terminating pod of a
    // publishNotReadyAddresses Service (ready stays true) is still answered,
    // an ordinary terminating pod (ready false) is not.
    let cfg = ZoneConfig::new(
        "10.96.0.0/16".parse().unwrap(),
        "10.244.0.0/16".parse().unwrap(),
        "10.96.0.10".parse().unwrap(),
    );
    let services = vec![svc("default", "peers", "None", json!([]))];
    let slices = vec![slice(
        "default",
        "peers",
        json!([
            {"addresses": ["10.244.0.5"], "conditions": {"ready": true, "serving": false, "terminating": true}},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.244.0.7"]}
        ]),
        json!([]),
    )];
    let z = Zone::build(cfg, &services, &slices, &[], 1);
    let mut got = a_of(&ask(&z, "peers.default.svc.cluster.local.", RecordType::A));
    got.sort();
    assert_eq!(
        got,
        [Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 0, 7)]
    );
}
