//! Table-driven: every case states what kube-controller-manager writes for
//! the same Service and pods (read from its EndpointSlice, Endpoints and
//! mirroring controllers: `podToEndpoint`, `ShouldPodBeInEndpoints`,
//! `addEndpointSubset` + `RepackSubsets`, `setEndpointSliceLabels`,
//! `newEndpointSlice` of the mirroring controller).

use super::*;
use serde_json::{Value, json};

/// Deterministic generated-name suffixes: `00001`, `00002`, …
fn counter() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("{n:05}")
    }
}

#[derive(Clone, Copy)]
struct P {
    name: &'static str,
    ip: &'static str,
    ready: bool,
    terminating: bool,
}

const fn p(name: &'static str, ip: &'static str, ready: bool, terminating: bool) -> P {
    P {
        name,
        ip,
        ready,
        terminating,
    }
}

fn pod_json(p: P, ports: Value) -> Value {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": p.name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": "lab-node", "containers": [{"name": "c", "image": "x", "command": ["x"], "ports": ports}]},
        "status": {"podIP": p.ip, "phase": "Running",
            "conditions": [{"type": "Ready", "status": if p.ready {"True"} else {"False"}}]}
    });
    if p.terminating {
        v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    v
}

fn http_ports() -> Value {
    json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
}

fn add_pod(s: &mut Store, p: P, ports: Value) {
    s.create(Object::from_json(Kind::Pod, pod_json(p, ports)).unwrap())
        .unwrap();
}

fn add_svc(s: &mut Store, spec: Value, labels: Value) {
    s.create(
        Object::from_json(
            Kind::Service,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default", "labels": labels},
                "spec": spec}),
        )
        .unwrap(),
    )
    .unwrap();
}

fn svc_spec(extra: Value) -> Value {
    let mut spec = json!({"clusterIP": "10.96.0.50", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn slices(s: &Store, service: &str) -> Vec<EndpointSlice> {
    s.list(Kind::EndpointSlice, Some("default"))
        .filter_map(|o| match o {
            Object::EndpointSlice(x) => Some(x.clone()),
            _ => None,
        })
        .filter(|x| x.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL] == service)
        .collect()
}

fn endpoints(s: &Store, name: &str) -> Option<Endpoints> {
    match s.get(&Key::new(Kind::Endpoints, "default", name)) {
        Some(Object::Endpoints(e)) => Some(e.clone()),
        _ => None,
    }
}

fn run(s: &mut Store, names: &mut impl FnMut() -> String) {
    reconcile_with(s, names);
}

/// Where a pod's address lands in the v1 Endpoints object.
#[derive(Debug, PartialEq)]
enum InEndpoints {
    Addresses,
    NotReady,
    Absent,
}

#[test]
fn conditions_as_the_controllers_write_them() {
    use InEndpoints::*;
    // (pod Ready, terminating, publishNotReadyAddresses) →
    // slice (ready, serving, terminating), place in Endpoints.
    #[rustfmt::skip]
    let cases = [
        (true,  false, false, (true,  true,  false), Addresses),
        (false, false, false, (false, false, false), NotReady),
        // Terminating: never ready, serving from readiness, out of Endpoints.
        (true,  true,  false, (false, true,  true),  Absent),
        (false, true,  false, (false, false, true),  Absent),
        // publishNotReadyAddresses: ready regardless, and it stays in
        // Endpoints (ready) even while terminating.
        (true,  false, true,  (true,  true,  false), Addresses),
        (false, false, true,  (true,  false, false), Addresses),
        (true,  true,  true,  (true,  true,  true),  Addresses),
        (false, true,  true,  (true,  false, true),  Addresses),
    ];
    for (i, (ready, terminating, publish, want, place)) in cases.into_iter().enumerate() {
        let mut s = Store::default();
        add_svc(
            &mut s,
            svc_spec(json!({"publishNotReadyAddresses": publish})),
            json!({}),
        );
        add_pod(
            &mut s,
            p("a", "10.244.0.2", ready, terminating),
            http_ports(),
        );
        run(&mut s, &mut counter());
        let sl = slices(&s, "web");
        assert_eq!(sl.len(), 1, "case {i}");
        let eps = sl[0].endpoints.as_ref().unwrap();
        assert_eq!(eps.len(), 1, "case {i}");
        let c = eps[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap()),
            want,
            "case {i}: slice conditions"
        );
        let sub = endpoints(&s, "web").unwrap().subsets.unwrap_or_default();
        let got = match sub.first() {
            None => Absent,
            Some(x) if x.addresses.is_some() => Addresses,
            Some(_) => NotReady,
        };
        assert_eq!(got, place, "case {i}: Endpoints");
    }
}

#[test]
fn pods_the_controllers_leave_out() {
    // Terminal pods and pods without an IP are in neither object.
    for (phase, ip) in [
        ("Succeeded", "10.244.0.2"),
        ("Failed", "10.244.0.2"),
        ("Pending", ""),
    ] {
        let mut s = Store::default();
        add_svc(&mut s, svc_spec(json!({})), json!({}));
        let mut v = pod_json(p("a", ip, true, false), http_ports());
        v["status"]["phase"] = json!(phase);
        s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
        run(&mut s, &mut counter());
        let sl = slices(&s, "web");
        assert_eq!(sl.len(), 1);
        assert!(sl[0].endpoints.as_ref().unwrap().is_empty(), "{phase}");
        assert!(endpoints(&s, "web").unwrap().subsets.is_none(), "{phase}");
    }
}

#[test]
fn slice_metadata_as_the_controller_writes_it() {
    // (clusterIP, Service labels) → slice labels.
    let cases = [
        (
            "10.96.0.50",
            json!({"app": "web", "tier": "fe"}),
            json!({"app": "web", "tier": "fe",
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
        ),
        (
            "None",
            json!({"app": "web"}),
            json!({"app": "web", "service.kubernetes.io/headless": "",
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
        ),
        // Reserved keys on the Service are not copied; the controller's own win.
        (
            "10.96.0.50",
            json!({"kubernetes.io/service-name": "spoof",
                "endpointslice.kubernetes.io/managed-by": "me",
                "service.kubernetes.io/headless": ""}),
            json!({"kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
        ),
    ];
    for (ip, labels, want) in cases {
        let mut s = Store::default();
        add_svc(&mut s, svc_spec(json!({"clusterIP": ip})), labels.clone());
        add_pod(&mut s, p("a", "10.244.0.2", true, false), http_ports());
        run(&mut s, &mut counter());
        let sl = &slices(&s, "web")[0];
        // generateName "web-" + five characters.
        assert_eq!(sl.metadata.name.as_deref(), Some("web-00001"));
        assert_eq!(
            serde_json::to_value(sl.metadata.labels.as_ref().unwrap()).unwrap(),
            want,
            "{ip} {labels}"
        );
        let owner = &sl.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Service", "web", Some(true))
        );
        assert_eq!(sl.address_type, "IPv4");
        let e = &sl.endpoints.as_ref().unwrap()[0];
        assert_eq!(e.node_name.as_deref(), Some("lab-node"));
        assert_eq!(e.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));
        // The port carries the Service port's name and the resolved number.
        let port = &sl.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("http"), Some(8080), Some("TCP"))
        );
        // Endpoints: the Service's labels (headless label as the Service's
        // ClusterIP says) plus the controller's managed-by label.
        let el = endpoints(&s, "web").unwrap().metadata.labels.unwrap();
        assert_eq!(
            el["endpoints.kubernetes.io/managed-by"],
            "endpoint-controller"
        );
        assert_eq!(el.contains_key(HEADLESS_LABEL), ip == "None", "{ip}");
    }
}

#[test]
fn generated_names_are_kept_recycled_and_cut() {
    let mut s = Store::default();
    let mut names = counter();
    add_svc(&mut s, svc_spec(json!({})), json!({}));
    run(&mut s, &mut names);
    // No pods: one placeholder slice, no ports, no endpoints.
    let sl = slices(&s, "web");
    assert_eq!(sl.len(), 1);
    assert_eq!(sl[0].metadata.name.as_deref(), Some("web-00001"));
    assert!(sl[0].ports.as_ref().unwrap().is_empty());
    assert!(sl[0].endpoints.as_ref().unwrap().is_empty());
    // A pod arrives: the placeholder's name is recycled (delete + create of
    // the controller become an update).
    add_pod(&mut s, p("a", "10.244.0.2", true, false), http_ports());
    run(&mut s, &mut names);
    let sl = slices(&s, "web");
    assert_eq!(sl.len(), 1);
    assert_eq!(sl[0].metadata.name.as_deref(), Some("web-00001"));
    assert_eq!(sl[0].endpoints.as_ref().unwrap().len(), 1);
    // Steady state: no new names, no writes.
    let rv = s.resource_version();
    run(&mut s, &mut names);
    assert_eq!(s.resource_version(), rv);
    // The last pod leaves: the same slice becomes the placeholder again.
    s.remove(&Key::new(Kind::Pod, "default", "a"));
    run(&mut s, &mut names);
    let sl = slices(&s, "web");
    assert_eq!(sl[0].metadata.name.as_deref(), Some("web-00001"));
    assert!(sl[0].ports.as_ref().unwrap().is_empty());
    // A long Service name: the generated base is cut to 58 characters.
    let long = "a".repeat(63);
    let mut v = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": long, "namespace": "default"}, "spec": svc_spec(json!({}))});
    v["spec"]["clusterIP"] = json!("10.96.0.51");
    s.create(Object::from_json(Kind::Service, v).unwrap())
        .unwrap();
    run(&mut s, &mut names);
    let n = slices(&s, &long)[0].metadata.name.clone().unwrap();
    assert_eq!(n.len(), 63);
    assert!(
        n.starts_with(&"a".repeat(58)) && n.ends_with("00002"),
        "{n}"
    );
}

#[test]
fn one_slice_per_port_set_and_at_most_100_endpoints() {
    let mut s = Store::default();
    add_svc(&mut s, svc_spec(json!({})), json!({}));
    // `http` resolves to 8080 on most pods and 9090 on one: two port sets.
    for i in 0..101u8 {
        let name: &'static str = Box::leak(format!("p{i}").into_boxed_str());
        let ip: &'static str = Box::leak(format!("10.244.1.{i}").into_boxed_str());
        add_pod(&mut s, p(name, ip, true, false), http_ports());
    }
    add_pod(
        &mut s,
        p("other", "10.244.2.1", true, false),
        json!([{"name": "http", "containerPort": 9090}]),
    );
    // A pod without the named port: a slice with no ports (kube-proxy
    // ignores it), and no place in Endpoints.
    add_pod(
        &mut s,
        p("noport", "10.244.2.2", true, false),
        json!([{"name": "web", "containerPort": 80}]),
    );
    run(&mut s, &mut counter());
    let mut shape: Vec<(Vec<i32>, usize)> = slices(&s, "web")
        .iter()
        .map(|x| {
            (
                x.ports.iter().flatten().filter_map(|p| p.port).collect(),
                x.endpoints.as_ref().unwrap().len(),
            )
        })
        .collect();
    shape.sort();
    assert_eq!(
        shape,
        [
            (vec![], 1),
            (vec![8080], 1),
            (vec![8080], 100),
            (vec![9090], 1)
        ]
    );
    let subsets = endpoints(&s, "web").unwrap().subsets.unwrap();
    let ports: Vec<(i32, usize)> = subsets
        .iter()
        .map(|x| {
            (
                x.ports.as_ref().unwrap()[0].port,
                x.addresses.as_ref().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(ports, [(8080, 101), (9090, 1)]);
}

#[test]
fn subsets_packed_as_repack_subsets_packs_them() {
    let two = json!([
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
        {"name": "metrics", "port": 9100, "protocol": "TCP", "targetPort": "metrics"}]);
    let both = json!([{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9100}]);
    // (service ports, pods with their container ports) → subsets as
    // [(port numbers, ready IPs, not-ready IPs)].
    type Want = Vec<(Vec<i32>, Vec<&'static str>, Vec<&'static str>)>;
    type Case = (Value, Vec<(P, Value)>, Want);
    let cases: Vec<Case> = vec![
        // Same ports: one subset, addresses sorted as text (".10" < ".9").
        (
            json!([]),
            vec![
                (p("a", "10.244.0.9", true, false), http_ports()),
                (p("b", "10.244.0.10", true, false), http_ports()),
            ],
            vec![(vec![8080], vec!["10.244.0.10", "10.244.0.9"], vec![])],
        ),
        // Ready and not ready with the same ports share a subset.
        (
            json!([]),
            vec![
                (p("a", "10.244.0.2", true, false), http_ports()),
                (p("b", "10.244.0.3", false, false), http_ports()),
            ],
            vec![(vec![8080], vec!["10.244.0.2"], vec!["10.244.0.3"])],
        ),
        // Two ports offered by the same pods: one subset with both ports.
        (
            two.clone(),
            vec![
                (p("a", "10.244.0.2", true, false), both.clone()),
                (p("b", "10.244.0.3", true, false), both.clone()),
            ],
            vec![(vec![8080, 9100], vec!["10.244.0.2", "10.244.0.3"], vec![])],
        ),
        // Ports grouped by the addresses that offer them, not pods by ports:
        // http is on a and b, metrics only on a.
        (
            two,
            vec![
                (p("a", "10.244.0.2", true, false), both),
                (p("b", "10.244.0.3", true, false), http_ports()),
            ],
            vec![
                (vec![8080], vec!["10.244.0.2", "10.244.0.3"], vec![]),
                (vec![9100], vec!["10.244.0.2"], vec![]),
            ],
        ),
    ];
    for (i, (ports, pods, want)) in cases.into_iter().enumerate() {
        let mut s = Store::default();
        let spec = if ports.as_array().unwrap().is_empty() {
            svc_spec(json!({}))
        } else {
            svc_spec(json!({"ports": ports}))
        };
        add_svc(&mut s, spec, json!({}));
        for (pod, cports) in pods {
            add_pod(&mut s, pod, cports);
        }
        run(&mut s, &mut counter());
        let got: Want = endpoints(&s, "web")
            .unwrap()
            .subsets
            .unwrap()
            .iter()
            .map(|x| {
                let ips = |v: &Option<Vec<EndpointAddress>>| {
                    v.iter()
                        .flatten()
                        .map(|a| &*Box::leak(a.ip.clone().into_boxed_str()))
                        .collect::<Vec<&'static str>>()
                };
                (
                    x.ports.iter().flatten().map(|p| p.port).collect(),
                    ips(&x.addresses),
                    ips(&x.not_ready_addresses),
                )
            })
            .collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn headless_without_ports_and_hostnames() {
    let mut s = Store::default();
    add_svc(
        &mut s,
        json!({"clusterIP": "None", "selector": {"app": "web"}}),
        json!({}),
    );
    let mut v = pod_json(p("db-0", "10.244.0.2", true, false), json!([]));
    v["spec"]["hostname"] = json!("db-0");
    v["spec"]["subdomain"] = json!("web");
    s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
    let mut v = pod_json(p("other", "10.244.0.3", true, false), json!([]));
    v["spec"]["hostname"] = json!("other");
    v["spec"]["subdomain"] = json!("elsewhere");
    s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
    run(&mut s, &mut counter());
    let sub = endpoints(&s, "web").unwrap().subsets.unwrap();
    assert_eq!(sub.len(), 1);
    assert!(sub[0].ports.is_none());
    let hosts: Vec<_> = sub[0]
        .addresses
        .iter()
        .flatten()
        .map(|a| a.hostname.clone())
        .collect();
    // The hostname is set only when the pod's subdomain names the Service.
    assert_eq!(hosts, [Some("db-0".to_string()), None]);
    let sl = &slices(&s, "web")[0];
    assert!(sl.ports.as_ref().unwrap().is_empty());
    assert_eq!(sl.endpoints.as_ref().unwrap().len(), 2);
}

fn add_endpoints(s: &mut Store, name: &str, v: Value) {
    let mut obj = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"team": "x"},
            "annotations": {"note": "kept", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
    obj["subsets"] = v;
    s.create(Object::from_json(Kind::Endpoints, obj).unwrap())
        .unwrap();
}

#[test]
fn mirroring_as_the_mirroring_controller_writes_it() {
    let mut s = Store::default();
    let mut names = counter();
    add_svc(
        &mut s,
        json!({"clusterIP": "10.96.0.60", "ports": [{"port": 80, "protocol": "TCP"}]}),
        json!({}),
    );
    add_endpoints(
        &mut s,
        "web",
        json!([
            {"addresses": [{"ip": "10.244.0.9"}, {"ip": "not-an-ip"}],
             "notReadyAddresses": [{"ip": "10.244.0.8"}], "ports": [{"port": 9376, "protocol": "TCP"}]},
            // Same ports: the same slice; a duplicate address is mirrored once.
            {"addresses": [{"ip": "10.244.0.7"}, {"ip": "10.244.0.9"}], "ports": [{"port": 9376, "protocol": "TCP"}]},
            {"addresses": [{"ip": "10.244.0.6"}], "ports": [{"name": "other", "port": 53, "protocol": "UDP"}]}
        ]),
    );
    run(&mut s, &mut names);
    let mut sl = slices(&s, "web");
    sl.sort_by_key(|x| x.ports.as_ref().unwrap()[0].port);
    assert_eq!(sl.len(), 2);
    let (udp, tcp) = (&sl[0], &sl[1]);
    type Conds = (String, Option<bool>, Option<bool>, Option<bool>);
    let conds: Vec<Conds> = tcp
        .endpoints
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| {
            let c = e.conditions.clone().unwrap();
            (e.addresses[0].clone(), c.ready, c.serving, c.terminating)
        })
        .collect();
    // Only `ready` is set by the mirroring controller.
    assert_eq!(
        conds,
        [
            ("10.244.0.9".into(), Some(true), None, None),
            ("10.244.0.8".into(), Some(false), None, None),
            ("10.244.0.7".into(), Some(true), None, None),
        ]
    );
    // An unnamed Endpoints port is mirrored with an empty name.
    let port = &tcp.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some(""), Some(9376)));
    assert_eq!(
        udp.ports.as_ref().unwrap()[0].name.as_deref(),
        Some("other")
    );
    assert_eq!(
        serde_json::to_value(tcp.metadata.labels.as_ref().unwrap()).unwrap(),
        json!({"team": "x", "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslicemirroring-controller.k8s.io"})
    );
    assert_eq!(
        serde_json::to_value(tcp.metadata.annotations.as_ref().unwrap()).unwrap(),
        json!({"note": "kept"})
    );
    let owner = &tcp.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Endpoints", "web")
    );
    let mut got: Vec<_> = sl
        .iter()
        .map(|x| x.metadata.name.clone().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, ["web-00001", "web-00002"]);
    // The hand-written Endpoints are not the controller's: they stay as written.
    let e = endpoints(&s, "web").unwrap();
    assert!(!e.metadata.labels.unwrap().contains_key(EP_MANAGED_BY));

    // The Service gets a selector: the mirrors go, the EndpointSlice
    // controller takes over.
    let Some(Object::Service(mut svc)) = s.get(&Key::new(Kind::Service, "default", "web")).cloned()
    else {
        panic!()
    };
    svc.spec.as_mut().unwrap().selector = Some([("app".into(), "web".into())].into());
    s.update(Object::Service(svc));
    run(&mut s, &mut names);
    let sl = slices(&s, "web");
    assert_eq!(sl.len(), 1);
    assert_eq!(
        sl[0].metadata.labels.as_ref().unwrap()[MANAGED_BY],
        SLICE_CONTROLLER
    );
}

#[test]
fn mirroring_skipped_and_cleaned_up() {
    let mut s = Store::default();
    add_svc(
        &mut s,
        json!({"clusterIP": "10.96.0.60", "ports": [{"port": 80, "protocol": "TCP"}]}),
        json!({}),
    );
    let subsets = json!([{"addresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 80}]}]);
    add_endpoints(&mut s, "web", subsets.clone());
    // Endpoints without a Service are not mirrored.
    add_endpoints(&mut s, "alone", subsets.clone());
    run(&mut s, &mut counter());
    assert_eq!(slices(&s, "web").len(), 1);
    assert_eq!(slices(&s, "alone").len(), 0);
    // The skip-mirror label turns mirroring off (and removes the mirror).
    let Some(Object::Endpoints(mut e)) =
        s.get(&Key::new(Kind::Endpoints, "default", "web")).cloned()
    else {
        panic!()
    };
    e.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(SKIP_MIRROR.into(), "true".into());
    s.update(Object::Endpoints(e));
    run(&mut s, &mut counter());
    assert_eq!(slices(&s, "web").len(), 0);
    // Deleted Endpoints: the mirror goes too.
    s.remove(&Key::new(Kind::Endpoints, "default", "web"));
    add_endpoints(&mut s, "web", subsets);
    run(&mut s, &mut counter());
    assert_eq!(slices(&s, "web").len(), 1);
    s.remove(&Key::new(Kind::Endpoints, "default", "web"));
    run(&mut s, &mut counter());
    assert_eq!(slices(&s, "web").len(), 0);
}

#[test]
fn external_name_and_removed_selectors_are_left_alone() {
    // Kubernetes' controllers return early for ExternalName Services and for
    // Services without a selector: what they wrote before stays as it was.
    for change in ["ExternalName", "no-selector"] {
        let mut s = Store::default();
        let mut names = counter();
        add_svc(&mut s, svc_spec(json!({})), json!({}));
        add_pod(&mut s, p("a", "10.244.0.2", true, false), http_ports());
        run(&mut s, &mut names);
        let before = (slices(&s, "web"), endpoints(&s, "web"));
        let Some(Object::Service(mut svc)) =
            s.get(&Key::new(Kind::Service, "default", "web")).cloned()
        else {
            panic!()
        };
        let spec = svc.spec.as_mut().unwrap();
        if change == "ExternalName" {
            spec.type_ = Some("ExternalName".into());
            spec.external_name = Some("example.com".into());
            spec.cluster_ip = None;
        } else {
            spec.selector = None;
        }
        s.update(Object::Service(svc));
        // Even a pod change is not reflected any more.
        s.remove(&Key::new(Kind::Pod, "default", "a"));
        run(&mut s, &mut names);
        let mut after = slices(&s, "web");
        if change == "no-selector" {
            // The now selector-less Service's leftover Endpoints (they carry
            // no skip-mirror label) are mirrored like hand-written ones.
            let mirrored: Vec<_> = after
                .iter()
                .filter(|x| x.metadata.labels.as_ref().unwrap()[MANAGED_BY] == MIRROR_CONTROLLER)
                .cloned()
                .collect();
            assert_eq!(mirrored.len(), 1);
            assert_eq!(
                mirrored[0].endpoints.as_ref().unwrap()[0].addresses,
                ["10.244.0.2"]
            );
            after.retain(|x| !mirrored.contains(x));
        }
        assert_eq!((after, endpoints(&s, "web")), before, "{change}");
    }
}

#[test]
fn deleting_or_recreating_the_service_removes_its_objects() {
    let mut s = Store::default();
    let mut names = counter();
    add_svc(&mut s, svc_spec(json!({})), json!({}));
    add_pod(&mut s, p("a", "10.244.0.2", true, false), http_ports());
    run(&mut s, &mut names);
    // Re-created under the same name (new uid): the old slice is garbage.
    s.remove(&Key::new(Kind::Service, "default", "web"));
    add_svc(&mut s, svc_spec(json!({})), json!({}));
    run(&mut s, &mut names);
    let sl = slices(&s, "web");
    assert_eq!(sl.len(), 1);
    assert_eq!(sl[0].metadata.name.as_deref(), Some("web-00002"));
    s.remove(&Key::new(Kind::Service, "default", "web"));
    run(&mut s, &mut names);
    assert!(slices(&s, "web").is_empty());
    assert!(endpoints(&s, "web").is_none());
}

#[test]
fn named_ports_resolve_per_protocol_and_sidecars() {
    let mut s = Store::default();
    add_svc(
        &mut s,
        svc_spec(json!({"ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": "dns"}]})),
        json!({}),
    );
    let mut v = pod_json(
        p("a", "10.244.0.2", true, false),
        json!([{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
    );
    // A restartable init container (sidecar) offers the TCP one.
    v["spec"]["initContainers"] = json!([{"name": "side", "image": "x", "command": ["x"],
        "restartPolicy": "Always", "ports": [{"name": "dns", "containerPort": 5354, "protocol": "TCP"}]}]);
    s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
    run(&mut s, &mut counter());
    let ports: Vec<_> = slices(&s, "web")[0]
        .ports
        .clone()
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port.unwrap(), p.protocol.unwrap()))
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".into(), 5353, "UDP".into()),
            ("dns-tcp".into(), 5354, "TCP".into())
        ]
    );
}

#[test]
fn many_services_one_slice_each_and_a_quiet_steady_state() {
    let mut s = Store::default();
    let n = 300;
    for i in 0..n {
        let mut v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("s{i}"), "namespace": "default"},
            "spec": svc_spec(json!({}))});
        v["spec"]["selector"] = json!({"app": format!("a{i}")});
        v["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", i / 250, i % 250 + 1));
        s.create(Object::from_json(Kind::Service, v).unwrap())
            .unwrap();
        let mut p = pod_json(p("x", "10.244.0.2", true, false), http_ports());
        p["metadata"]["name"] = json!(format!("p{i}"));
        p["metadata"]["labels"] = json!({"app": format!("a{i}")});
        p["status"]["podIP"] = json!(format!("10.244.{}.{}", i / 250, i % 250 + 1));
        s.create(Object::from_json(Kind::Pod, p).unwrap()).unwrap();
    }
    run(&mut s, &mut counter());
    assert_eq!(s.list(Kind::EndpointSlice, None).count(), n);
    assert_eq!(s.list(Kind::Endpoints, None).count(), n);
    for i in [0, n / 2, n - 1] {
        let sl = slices(&s, &format!("s{i}"));
        assert_eq!(sl.len(), 1);
        assert_eq!(sl[0].endpoints.as_ref().unwrap().len(), 1);
    }
    let rv = s.resource_version();
    run(&mut s, &mut counter());
    assert_eq!(s.resource_version(), rv, "a second pass writes nothing");
}

/// A small deterministic generator (xorshift64*): the same operations for
/// both stores of a run, and a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
}

const NAMESPACES: [&str; 2] = ["default", "other"];
const SVC_NAMES: [&str; 4] = ["s0", "s1", "s2", "s3"];
const POD_NAMES: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

/// One random change a user (or the kubelet) could make to what the
/// endpoints controllers read: Services, pods, hand-written Endpoints, and
/// the controllers' own slices tampered with or deleted.
fn random_change(rng: &mut Rng, s: &Store, uid: &mut u64) -> Vec<Change> {
    let ns = rng.pick(&NAMESPACES);
    let mut fresh_uid = || {
        *uid += 1;
        format!("uid-{uid}")
    };
    match rng.below(9) {
        // A Service created, changed, or deleted and created again.
        0 | 1 => {
            let name = rng.pick(&SVC_NAMES);
            let key = Key::new(Kind::Service, ns, name);
            let uid = match s.get(&key) {
                Some(o) if rng.below(4) != 0 => o.meta().uid.clone().unwrap(),
                _ => fresh_uid(),
            };
            let selector = match rng.below(4) {
                0 => Value::Null,
                1 => json!({"app": "b"}),
                _ => json!({"app": "a"}),
            };
            let mut spec = json!({
                "clusterIP": if rng.below(4) == 0 { "None".to_string() } else { format!("10.96.0.{}", rng.below(200) + 1) },
                "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                    "targetPort": if rng.coin() { json!("http") } else { json!(8080) }}],
                "publishNotReadyAddresses": rng.below(4) == 0,
            });
            if !selector.is_null() {
                spec["selector"] = selector;
            }
            if rng.below(8) == 0 {
                spec["type"] = json!("ExternalName");
                spec["externalName"] = json!("example.com");
            }
            let obj = Object::from_json(
                Kind::Service,
                json!({"apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": name, "namespace": ns, "uid": uid,
                        "labels": {"tier": rng.below(2).to_string()}},
                    "spec": spec}),
            )
            .unwrap();
            match s.get(&key) {
                Some(o) if o.meta().uid.as_deref() == obj.meta().uid.as_deref() => {
                    vec![Change::Update(obj)]
                }
                Some(_) => vec![Change::Remove(key), Change::Create(obj)],
                None => vec![Change::Create(obj)],
            }
        }
        2 => vec![Change::Remove(Key::new(
            Kind::Service,
            ns,
            rng.pick(&SVC_NAMES),
        ))],
        // A pod created or changed: labels, readiness, address, phase,
        // termination, its port.
        3 | 4 => {
            let name = rng.pick(&POD_NAMES);
            let key = Key::new(Kind::Pod, ns, name);
            let uid = s
                .get(&key)
                .and_then(|o| o.meta().uid.clone())
                .unwrap_or_else(&mut fresh_uid);
            let mut v = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "uid": uid,
                    "labels": match rng.below(3) { 0 => json!({}), 1 => json!({"app": "b"}), _ => json!({"app": "a"}) }},
                "spec": {"nodeName": "lab-node", "hostname": name, "subdomain": rng.pick(&SVC_NAMES),
                    "containers": [{"name": "c", "image": "x", "command": ["x"],
                    "ports": [{"name": "http", "containerPort": if rng.coin() { 8080 } else { 9090 }, "protocol": "TCP"}]}]},
                "status": {"phase": if rng.below(6) == 0 { "Succeeded" } else { "Running" },
                    "conditions": [{"type": "Ready", "status": if rng.coin() { "True" } else { "False" }}]}
            });
            if rng.below(5) != 0 {
                v["status"]["podIP"] = json!(format!("10.244.0.{}", rng.below(8) + 2));
            }
            if rng.below(5) == 0 {
                v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            let obj = Object::from_json(Kind::Pod, v).unwrap();
            if s.get(&key).is_some() {
                vec![Change::Update(obj)]
            } else {
                vec![Change::Create(obj)]
            }
        }
        5 => vec![Change::Remove(Key::new(
            Kind::Pod,
            ns,
            rng.pick(&POD_NAMES),
        ))],
        // Hand-written Endpoints (mirrored when the Service has no
        // selector), or the controller's Endpoints overwritten or deleted.
        6 => {
            let name = rng.pick(&SVC_NAMES);
            let key = Key::new(Kind::Endpoints, ns, name);
            if rng.below(3) == 0 {
                return vec![Change::Remove(key)];
            }
            let mut labels = json!({});
            if rng.below(4) == 0 {
                labels[SKIP_MIRROR] = json!("true");
            }
            let obj = Object::from_json(
                Kind::Endpoints,
                json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "uid": fresh_uid(), "labels": labels},
                    "subsets": [{"addresses": [{"ip": format!("10.1.0.{}", rng.below(4) + 1)}],
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}),
            )
            .unwrap();
            if s.get(&key).is_some() {
                vec![Change::Remove(key), Change::Create(obj)]
            } else {
                vec![Change::Create(obj)]
            }
        }
        // One of the slices deleted or emptied by hand.
        7 => {
            let all: Vec<Key> = s.keys(Kind::EndpointSlice);
            if all.is_empty() {
                return Vec::new();
            }
            let key = all[rng.below(all.len() as u64) as usize].clone();
            if rng.coin() {
                vec![Change::Remove(key)]
            } else {
                vec![Change::EmptySlice(key)]
            }
        }
        // A slice someone else made for a Service: labelled as the slice
        // or the mirroring controller's, owned by nothing or by a Service
        // of another uid.
        _ => {
            let svc = rng.pick(&SVC_NAMES);
            let by = if rng.coin() {
                SLICE_CONTROLLER
            } else {
                MIRROR_CONTROLLER
            };
            let mut meta = json!({"name": format!("{svc}-hand{}", rng.below(3)), "namespace": ns,
                "uid": fresh_uid(),
                "labels": {SERVICE_NAME_LABEL: svc, MANAGED_BY: by}});
            if rng.coin() {
                meta["ownerReferences"] = json!([{"apiVersion": "v1",
                    "kind": if rng.coin() { "Service" } else { "Endpoints" },
                    "name": rng.pick(&SVC_NAMES), "uid": format!("uid-{}", rng.below(*uid + 1)),
                    "controller": true}]);
            }
            let obj = Object::from_json(
                Kind::EndpointSlice,
                json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": meta, "addressType": "IPv4", "endpoints": [], "ports": []}),
            )
            .unwrap();
            let key = Key::of(&obj);
            if s.get(&key).is_some() {
                vec![Change::Remove(key), Change::Create(obj)]
            } else {
                vec![Change::Create(obj)]
            }
        }
    }
}

enum Change {
    Create(Object),
    Update(Object),
    Remove(Key),
    /// A slice's endpoints removed (in each store's own copy: the uids the
    /// stores gave it differ).
    EmptySlice(Key),
}

fn apply(s: &mut Store, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Create(o) => {
                let _ = s.create(o.clone());
            }
            Change::Update(o) => {
                s.update(o.clone());
            }
            Change::Remove(k) => {
                s.remove(k);
            }
            Change::EmptySlice(k) => {
                if let Some(Object::EndpointSlice(mut sl)) = s.get(k).cloned() {
                    sl.endpoints = Some(Vec::new());
                    s.update(Object::EndpointSlice(sl));
                }
            }
        }
    }
}

/// Every object, without what the store assigns per write (resource
/// version, creation time, the uid of objects the controllers created).
fn normalized(s: &Store) -> Vec<Value> {
    Kind::ALL
        .iter()
        .flat_map(|k| s.list(*k, None))
        .map(|o| {
            let mut v = o.to_json();
            let m = &mut v["metadata"];
            m.as_object_mut().unwrap().remove("resourceVersion");
            m.as_object_mut().unwrap().remove("creationTimestamp");
            if !m["uid"].as_str().unwrap_or_default().starts_with("uid-") {
                m.as_object_mut().unwrap().remove("uid");
            }
            for r in m["ownerReferences"].as_array_mut().into_iter().flatten() {
                if !r["uid"].as_str().unwrap_or_default().starts_with("uid-") {
                    r.as_object_mut().unwrap().remove("uid");
                }
            }
            v
        })
        .collect()
}

/// Until nothing changes, as `controller::reconcile` runs them (bounded).
fn settle(s: &mut Store, mut pass: impl FnMut(&mut Store)) {
    for _ in 0..6 {
        let rv = s.resource_version();
        pass(s);
        if s.resource_version() == rv {
            return;
        }
    }
    panic!("the controllers do not settle");
}

/// The controller that remembers between passes (looking only at what
/// changed) ends every step in the same store as a full pass over
/// everything, over random sequences of changes to Services, pods,
/// Endpoints and slices.
#[test]
fn incremental_passes_match_full_passes() {
    for seed in 1..=10u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut inc, mut full) = (Store::default(), Store::default());
        let (mut inc_names, mut full_names) = (counter(), counter());
        let mut ctl = Controller::default();
        let mut uid = 0;
        let mut looked = 0;
        for step in 0..100 {
            let changes = random_change(&mut rng, &inc, &mut uid);
            apply(&mut inc, &changes);
            apply(&mut full, &changes);
            settle(&mut inc, |s| ctl.reconcile_with(s, &mut inc_names));
            settle(&mut full, |s| reconcile_with(s, &mut full_names));
            looked += inc.list(Kind::EndpointSlice, None).count();
            assert_eq!(
                normalized(&inc),
                normalized(&full),
                "seed {seed}, step {step}: the incremental pass differs from a full one"
            );
        }
        assert!(looked > 0, "seed {seed} never made a slice");
    }
}

/// A pass with nothing changed since the last one writes nothing and reads
/// nothing; one changed pod concerns only the Services that select it.
#[test]
fn a_quiet_pass_is_free_and_a_change_touches_only_its_services() {
    let mut s = Store::default();
    for i in 0..50 {
        let mut v = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("s{i}"), "namespace": "default"},
            "spec": svc_spec(json!({}))});
        v["spec"]["selector"] = json!({"app": format!("a{i}")});
        s.create(Object::from_json(Kind::Service, v).unwrap())
            .unwrap();
    }
    let mut ctl = Controller::default();
    let mut names = counter();
    settle(&mut s, |s| ctl.reconcile_with(s, &mut names));
    let rv = s.resource_version();
    let mut touched = BTreeSet::new();
    ctl.observe(&s, &Key::new(Kind::Service, "default", "s3"), &mut touched);
    assert_eq!(touched.len(), 1);
    ctl.reconcile_with(&mut s, &mut names);
    assert_eq!(s.resource_version(), rv);
    // A pod for s7: its Endpoints and slice change, nothing else.
    let mut p = pod_json(p("x", "10.244.0.2", true, false), http_ports());
    p["metadata"]["labels"] = json!({"app": "a7"});
    s.create(Object::from_json(Kind::Pod, p).unwrap()).unwrap();
    let before = s.resource_version();
    let mut pod_names = BTreeSet::new();
    ctl.observe(&s, &Key::new(Kind::Pod, "default", "x"), &mut pod_names);
    assert_eq!(
        pod_names,
        [("default".to_string(), "s7".to_string())].into()
    );
    settle(&mut s, |s| ctl.reconcile_with(s, &mut names));
    let changed: BTreeSet<Key> = s.changes_since(before).unwrap().cloned().collect();
    assert_eq!(
        changed,
        [
            Key::new(Kind::Endpoints, "default", "s7"),
            Key::new(
                Kind::EndpointSlice,
                "default",
                &slices(&s, "s7")[0].metadata.name.clone().unwrap()
            ),
        ]
        .into()
    );
    assert_eq!(slices(&s, "s7")[0].endpoints.as_ref().unwrap().len(), 1);
}
