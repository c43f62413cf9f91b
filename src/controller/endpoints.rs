//! The endpoints controllers: Service + Pods → `Endpoints` and
//! `EndpointSlice`, with ready/serving/terminating conditions and named
//! target ports resolved per pod. Selector-less Services get their slice
//! mirrored from hand-written Endpoints.

use super::workload::{is_terminating, pod_ready};
use crate::model::labels::Selector;
use crate::model::{EndpointSlice, Endpoints, Kind, Object, Pod, Service};
use crate::store::{Key, Store};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, ObjectReference};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// Resolve a Service port's targetPort against one pod. `None` when a named
/// port is not declared by any container with that protocol.
pub fn resolve_target_port(
    pod: &Pod,
    target: Option<&IntOrString>,
    port: i32,
    protocol: &str,
) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(s)) => {
            if let Ok(n) = s.parse::<i32>() {
                return Some(n);
            }
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.iter().flatten().find_map(|p| {
                    (p.name.as_deref() == Some(s.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

fn pod_ip(p: &Pod) -> Option<&str> {
    p.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|s| !s.is_empty())
}

/// One endpoint candidate.
struct Candidate<'a> {
    pod: &'a Pod,
    ip: String,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// Run the controller for every Service; remove objects of deleted Services.
pub fn reconcile(store: &mut Store) {
    let services: Vec<Service> = store
        .list(Kind::Service, None)
        .filter_map(|o| match o {
            Object::Service(s) => Some((**s).clone()),
            _ => None,
        })
        .collect();
    let mut wanted_slices = BTreeSet::new();
    let mut managed_eps = BTreeSet::new();
    for svc in &services {
        let ns = svc.metadata.namespace.clone().unwrap_or_default();
        let name = svc.metadata.name.clone().unwrap_or_default();
        let spec = svc.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let (ports, subsets_from): (Vec<SlicePort>, Vec<Endpoint>);
        match spec.selector.as_ref().filter(|s| !s.is_empty()) {
            Some(sel) => {
                let selector = Selector::from_map(sel);
                let publish = spec.publish_not_ready_addresses == Some(true);
                let cands: Vec<Candidate<'_>> = store
                    .list(Kind::Pod, Some(&ns))
                    .filter_map(|o| match o {
                        Object::Pod(p) => Some(&**p),
                        _ => None,
                    })
                    .filter(|p| selector.matches(&p.metadata.labels.clone().unwrap_or_default()))
                    .filter_map(|p| {
                        let ip = pod_ip(p)?.to_string();
                        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                        if matches!(phase, Some("Succeeded") | Some("Failed")) {
                            return None;
                        }
                        let terminating = is_terminating(&p.metadata);
                        let serving = pod_ready(p) || publish;
                        Some(Candidate {
                            pod: p,
                            ip,
                            ready: serving && !terminating,
                            serving,
                            terminating,
                        })
                    })
                    .collect();
                let (eps, slices) = build(svc, &spec, &cands);
                managed_eps.insert(Key::new(Kind::Endpoints, &ns, &name));
                put(store, Object::Endpoints(eps));
                for s in slices {
                    wanted_slices.insert(Key::of(&Object::EndpointSlice(s.clone())));
                    put(store, Object::EndpointSlice(s));
                }
                continue;
            }
            None => {
                // Mirror hand-written Endpoints into a slice.
                let Some(Object::Endpoints(eps)) =
                    store.get(&Key::new(Kind::Endpoints, &ns, &name)).cloned()
                else {
                    continue;
                };
                let mut endpoints = Vec::new();
                let mut sp = Vec::new();
                for subset in eps.subsets.iter().flatten() {
                    for p in subset.ports.iter().flatten() {
                        sp.push(SlicePort {
                            name: p.name.clone(),
                            port: Some(p.port),
                            protocol: p.protocol.clone().or(Some("TCP".into())),
                            app_protocol: None,
                        });
                    }
                    for (addrs, ready) in [
                        (&subset.addresses, true),
                        (&subset.not_ready_addresses, false),
                    ] {
                        for a in addrs.iter().flatten() {
                            endpoints.push(Endpoint {
                                addresses: vec![a.ip.clone()],
                                conditions: Some(EndpointConditions {
                                    ready: Some(ready),
                                    serving: Some(ready),
                                    terminating: Some(false),
                                }),
                                hostname: a.hostname.clone(),
                                ..Default::default()
                            });
                        }
                    }
                }
                ports = sp;
                subsets_from = endpoints;
            }
        }
        let slice = slice_object(svc, format!("{name}-mirror"), ports, subsets_from);
        wanted_slices.insert(Key::of(&Object::EndpointSlice(slice.clone())));
        put(store, Object::EndpointSlice(slice));
    }
    // Drop slices whose Service is gone or that are no longer wanted, and
    // controller-made Endpoints of deleted Services.
    for key in store.keys(Kind::EndpointSlice) {
        if !wanted_slices.contains(&key) {
            store.remove(&key);
        }
    }
    for key in store.keys(Kind::Endpoints) {
        let svc_exists = store
            .get(&Key::new(Kind::Service, &key.namespace, &key.name))
            .is_some();
        let controller_made = store.get(&key).is_some_and(|o| {
            o.meta()
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(MANAGED_BY_EP))
        });
        if controller_made && !svc_exists && !managed_eps.contains(&key) {
            store.remove(&key);
        }
    }
}

const MANAGED_BY_EP: &str = "endpoints.kubernetes.io/managed-by";

fn put(store: &mut Store, obj: Object) {
    let key = Key::of(&obj);
    match store.get(&key) {
        None => {
            let _ = store.create(obj);
        }
        Some(old) => {
            let mut obj = obj;
            let m = old.meta().clone();
            let meta = obj.meta_mut();
            meta.uid = m.uid;
            meta.creation_timestamp = m.creation_timestamp;
            meta.generation = m.generation;
            store.update(obj);
        }
    }
}

fn owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn slice_object(
    svc: &Service,
    name: String,
    ports: Vec<SlicePort>,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let svc_name = svc.metadata.name.clone().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.to_string(), svc_name),
                (
                    MANAGED_BY.to_string(),
                    "endpointslice-controller.k8s.io".to_string(),
                ),
            ])),
            owner_references: Some(vec![owner(svc)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    }
}

fn target_ref(p: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        name: p.metadata.name.clone(),
        namespace: p.metadata.namespace.clone(),
        uid: p.metadata.uid.clone(),
        ..Default::default()
    }
}

fn build(
    svc: &Service,
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    cands: &[Candidate<'_>],
) -> (Endpoints, Vec<EndpointSlice>) {
    let name = svc.metadata.name.clone().unwrap_or_default();
    // Group pods by their resolved port set.
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Vec<&Candidate<'_>>> = BTreeMap::new();
    for c in cands {
        let mut ports = Vec::new();
        for p in spec.ports.iter().flatten() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Some(n) = resolve_target_port(c.pod, p.target_port.as_ref(), p.port, &proto) {
                ports.push((p.name.clone().unwrap_or_default(), n, proto));
            }
        }
        if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
            continue;
        }
        groups.entry(ports).or_default().push(c);
    }
    let hostname = |c: &Candidate<'_>| {
        let s = c.pod.spec.as_ref()?;
        (s.subdomain.as_deref() == Some(name.as_str()))
            .then(|| s.hostname.clone())
            .flatten()
    };
    let mut subsets = Vec::new();
    let mut slices = Vec::new();
    for (i, (ports, members)) in groups.iter().enumerate() {
        let addr = |c: &&Candidate<'_>| EndpointAddress {
            ip: c.ip.clone(),
            hostname: hostname(c),
            node_name: c.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(target_ref(c.pod)),
        };
        let ready: Vec<EndpointAddress> = members.iter().filter(|c| c.ready).map(addr).collect();
        let not_ready: Vec<EndpointAddress> = members
            .iter()
            .filter(|c| !c.ready && !c.terminating)
            .map(addr)
            .collect();
        if !ready.is_empty() || !not_ready.is_empty() {
            subsets.push(EndpointSubset {
                addresses: Some(ready).filter(|v| !v.is_empty()),
                not_ready_addresses: Some(not_ready).filter(|v| !v.is_empty()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| EndpointPort {
                            name: Some(n.clone()).filter(|n| !n.is_empty()),
                            port: *p,
                            protocol: Some(proto.clone()),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            });
        }
        let endpoints = members
            .iter()
            .map(|c| Endpoint {
                addresses: vec![c.ip.clone()],
                conditions: Some(EndpointConditions {
                    ready: Some(c.ready),
                    serving: Some(c.serving),
                    terminating: Some(c.terminating),
                }),
                hostname: hostname(c),
                node_name: c.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                target_ref: Some(target_ref(c.pod)),
                ..Default::default()
            })
            .collect();
        let slice_ports = ports
            .iter()
            .map(|(n, p, proto)| SlicePort {
                name: Some(n.clone()),
                port: Some(*p),
                protocol: Some(proto.clone()),
                app_protocol: None,
            })
            .collect();
        let slice_name = if i == 0 {
            format!("{name}-slice")
        } else {
            format!("{name}-slice-{i}")
        };
        slices.push(slice_object(svc, slice_name, slice_ports, endpoints));
    }
    if slices.is_empty() {
        // An empty slice still carries the service's ports, as Kubernetes does.
        slices.push(slice_object(
            svc,
            format!("{name}-slice"),
            Vec::new(),
            Vec::new(),
        ));
    }
    let eps = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(
                svc.metadata
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .chain([(MANAGED_BY_EP.to_string(), "endpoint-controller".to_string())])
                    .collect(),
            ),
            ..Default::default()
        },
        subsets: Some(subsets).filter(|s| !s.is_empty()),
    };
    (eps, slices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool, terminating: bool, app: &str) -> Object {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "image": "x", "command": ["x"],
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"podIP": ip, "phase": "Running",
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        });
        if terminating {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        Object::from_json(Kind::Pod, v).unwrap()
    }

    fn svc(ports: serde_json::Value) -> Object {
        Object::from_json(
            Kind::Service,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": ports}}),
        )
        .unwrap()
    }

    fn slice(store: &Store) -> EndpointSlice {
        match store.get(&Key::new(Kind::EndpointSlice, "default", "web-slice")) {
            Some(Object::EndpointSlice(s)) => s.clone(),
            _ => panic!("no slice"),
        }
    }

    #[test]
    fn conditions_follow_pods() {
        let mut s = Store::default();
        s.create(svc(json!([{"port": 80, "targetPort": 8080}])))
            .unwrap();
        s.create(pod("a", "10.244.0.2", true, false, "web"))
            .unwrap();
        s.create(pod("b", "10.244.0.3", false, false, "web"))
            .unwrap();
        s.create(pod("c", "10.244.0.4", true, true, "web")).unwrap();
        s.create(pod("d", "10.244.0.5", true, false, "other"))
            .unwrap();
        reconcile(&mut s);
        let sl = slice(&s);
        let cond: BTreeMap<_, _> = sl
            .endpoints
            .iter()
            .flatten()
            .map(|e| {
                let c = e.conditions.clone().unwrap();
                (
                    e.addresses[0].clone(),
                    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap()),
                )
            })
            .collect();
        assert_eq!(cond.len(), 3);
        assert_eq!(cond["10.244.0.2"], (true, true, false));
        assert_eq!(cond["10.244.0.3"], (false, false, false));
        assert_eq!(cond["10.244.0.4"], (false, true, true));
        assert_eq!(sl.ports.as_ref().unwrap()[0].port, Some(8080));
        let Some(Object::Endpoints(eps)) = s.get(&Key::new(Kind::Endpoints, "default", "web"))
        else {
            panic!()
        };
        let sub = &eps.subsets.as_ref().unwrap()[0];
        assert_eq!(sub.addresses.as_ref().unwrap().len(), 1);
        // The terminating pod left Endpoints at once; the unready one is notReady.
        assert_eq!(
            sub.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.244.0.3"
        );
    }

    #[test]
    fn named_ports_and_multi_port() {
        let mut s = Store::default();
        s.create(svc(json!([
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
        ])))
        .unwrap();
        s.create(pod("a", "10.244.0.2", true, false, "web"))
            .unwrap();
        reconcile(&mut s);
        let ports: Vec<_> = slice(&s)
            .ports
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap(),
                    p.port.unwrap(),
                    p.protocol.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("http".into(), 8080, "TCP".into()),
                ("dns".into(), 53, "UDP".into())
            ]
        );
    }

    #[test]
    fn service_deletion_removes_objects_and_publish_not_ready() {
        let mut s = Store::default();
        let mut sv = svc(json!([{"port": 80}]));
        if let Object::Service(x) = &mut sv {
            x.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        }
        s.create(sv).unwrap();
        s.create(pod("b", "10.244.0.3", false, false, "web"))
            .unwrap();
        reconcile(&mut s);
        assert_eq!(
            slice(&s).endpoints.unwrap()[0]
                .conditions
                .as_ref()
                .unwrap()
                .ready,
            Some(true)
        );
        s.remove(&Key::new(Kind::Service, "default", "web"));
        reconcile(&mut s);
        assert_eq!(s.list(Kind::EndpointSlice, None).count(), 0);
        assert_eq!(s.list(Kind::Endpoints, None).count(), 0);
    }

    #[test]
    fn selectorless_service_mirrors_hand_written_endpoints() {
        let mut s = Store::default();
        s.create(
            Object::from_json(
                Kind::Service,
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext", "namespace": "default"},
                    "spec": {"ports": [{"port": 80}]}}),
            )
            .unwrap(),
        )
        .unwrap();
        s.create(
            Object::from_json(
                Kind::Endpoints,
                json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext", "namespace": "default"},
                    "subsets": [{"addresses": [{"ip": "10.244.0.9"}], "ports": [{"port": 9376}]}]}),
            )
            .unwrap(),
        )
        .unwrap();
        reconcile(&mut s);
        let Some(Object::EndpointSlice(sl)) =
            s.get(&Key::new(Kind::EndpointSlice, "default", "ext-mirror"))
        else {
            panic!()
        };
        assert_eq!(sl.endpoints.as_ref().unwrap()[0].addresses[0], "10.244.0.9");
        assert_eq!(sl.ports.as_ref().unwrap()[0].port, Some(9376));
        // The hand-written Endpoints stay.
        assert!(
            s.get(&Key::new(Kind::Endpoints, "default", "ext"))
                .is_some()
        );
    }
}
