//! What the Services data plane needs from the store, as plain data: every
//! (VIP, protocol, port) with its endpoints and conditions, the allocated
//! VIPs, and the set of (protocol, targetPort) pairs in use (one policy rule
//! each). Pure.

use crate::controller::endpoints::SERVICE_NAME_LABEL;
use crate::model::{Kind, Object};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

pub use crate::proto::Proto;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// The endpoint's `nodeName`.
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    pub vip: Ipv4Addr,
    pub proto: Proto,
    pub port: u16,
    /// `ns/name:portname` (portname empty for an unnamed port).
    pub id: String,
    /// `ns/name`.
    pub service: String,
    pub endpoints: Vec<EndpointView>,
    /// ClientIP affinity timeout in seconds.
    pub affinity_seconds: Option<u32>,
    /// `internalTrafficPolicy: Local`: a node's proxy uses only that node's
    /// endpoints (see [`ServicesView::for_node`]).
    pub local_only: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicesView {
    pub vips: BTreeSet<Ipv4Addr>,
    pub ports: Vec<PortView>,
    /// One policy rule per pair.
    pub target_ports: BTreeSet<(Proto, u16)>,
}

impl ServicesView {
    /// What node `node`'s Service proxy serves: the same, except that a
    /// port with `internalTrafficPolicy: Local` keeps only the endpoints on
    /// `node` (none left: new flows are dropped, as kube-proxy does).
    pub fn for_node(&self, node: &str) -> ServicesView {
        self.clone().into_node(node)
    }

    /// [`ServicesView::for_node`] without a copy.
    pub fn into_node(mut self, node: &str) -> ServicesView {
        for p in self.ports.iter_mut().filter(|p| p.local_only) {
            p.endpoints.retain(|e| e.node.as_deref() == Some(node));
        }
        self
    }
}

pub fn view(store: &Store) -> ServicesView {
    let mut out = ServicesView::default();
    // Slices by (namespace, service).
    let mut slices: BTreeMap<
        (String, String),
        Vec<&k8s_openapi::api::discovery::v1::EndpointSlice>,
    > = BTreeMap::new();
    for o in store.list(Kind::EndpointSlice, None) {
        if let Object::EndpointSlice(s) = o
            && let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
        {
            slices
                .entry((
                    s.metadata.namespace.clone().unwrap_or_default(),
                    svc.clone(),
                ))
                .or_default()
                .push(s);
        }
    }
    for o in store.list(Kind::Service, None) {
        let Object::Service(s) = o else { continue };
        let Some(spec) = &s.spec else { continue };
        let Some(vip) = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        out.vips.insert(vip);
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(10800)
                .clamp(1, 86400) as u32
        });
        let my_slices = slices
            .get(&(ns.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        for p in spec.ports.iter().flatten() {
            let Some(proto) = Proto::from_k8s(p.protocol.as_deref()) else {
                continue;
            };
            let Ok(port) = u16::try_from(p.port) else {
                continue;
            };
            let pname = p.name.clone().unwrap_or_default();
            let mut endpoints = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for sl in &my_slices {
                let Some(sp) = sl.ports.iter().flatten().find(|sp| {
                    sp.name.clone().unwrap_or_default() == pname
                        && Proto::from_k8s(sp.protocol.as_deref()) == Some(proto)
                }) else {
                    continue;
                };
                let Some(target) = sp.port.and_then(|p| u16::try_from(p).ok()) else {
                    continue;
                };
                // As kube-proxy reads a slice: the first address of each
                // endpoint, nil conditions as ready/serving and not
                // terminating, an IP:port already seen in another slice
                // kept as first seen.
                for e in sl.endpoints.iter().flatten() {
                    let c = e.conditions.clone().unwrap_or_default();
                    let Some(Ok(ip)) = e.addresses.first().map(|a| a.parse::<Ipv4Addr>()) else {
                        continue;
                    };
                    if !seen.insert((ip, target)) {
                        continue;
                    }
                    endpoints.push(EndpointView {
                        ip,
                        port: target,
                        ready: c.ready.unwrap_or(true),
                        serving: c.serving.unwrap_or(true),
                        terminating: c.terminating.unwrap_or(false),
                        node: e.node_name.clone(),
                    });
                    out.target_ports.insert((proto, target));
                }
            }
            out.ports.push(PortView {
                vip,
                proto,
                port,
                id: format!("{ns}/{name}:{pname}"),
                service: format!("{ns}/{name}"),
                endpoints,
                affinity_seconds: affinity,
                local_only: spec.internal_traffic_policy.as_deref() == Some("Local"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::daemon::state::State;
    use crate::model::parse::parse_documents;

    #[test]
    fn view_from_services_and_slices() {
        let cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        let mut st = State::new(cfg, Store::default());
        st.ensure_system_objects();
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  sessionAffinity: ClientIP\n  ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP}]\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {app: web}}\nspec:\n  containers: [{name: c, image: x, command: [x], ports: [{name: http, containerPort: 8080}]}]\n";
        st.apply(&parse_documents("f", yaml).unwrap(), "default", false)
            .unwrap();
        // Give the pod an IP and readiness, then run the endpoints controller.
        let key = crate::store::Key::new(Kind::Pod, "default", "a");
        let Some(Object::Pod(mut p)) = st.store.get(&key).cloned() else {
            panic!()
        };
        p.status = Some(
            serde_json::from_value(
                serde_json::json!({"podIP": "10.244.0.5", "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}]}),
            )
            .unwrap(),
        );
        st.store.update(Object::Pod(p));
        crate::controller::reconcile(&mut st.store);
        let v = view(&st.store);
        assert!(v.vips.contains(&Ipv4Addr::new(10, 96, 0, 1)));
        let web: Vec<&PortView> = v
            .ports
            .iter()
            .filter(|p| p.service == "default/web")
            .collect();
        assert_eq!(web.len(), 2);
        let http = web.iter().find(|p| p.port == 80).unwrap();
        assert_eq!(http.id, "default/web:http");
        assert_eq!(http.affinity_seconds, Some(10800));
        assert_eq!(
            http.endpoints,
            [EndpointView {
                ip: Ipv4Addr::new(10, 244, 0, 5),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                node: Some("t-node".into()),
            }]
        );
        let dns = web.iter().find(|p| p.port == 53).unwrap();
        assert_eq!(dns.proto, Proto::Udp);
        // The pod declares no UDP port 53 by name, so targetPort 53 (= port) applies.
        assert_eq!(dns.endpoints[0].port, 53);
        assert_eq!(
            v.target_ports,
            [(Proto::Tcp, 8080), (Proto::Udp, 53)].into_iter().collect()
        );
    }

    #[test]
    fn local_traffic_policy_keeps_each_nodes_own_endpoints() {
        let e = |ip: u8, node: &str| EndpointView {
            ip: Ipv4Addr::new(10, 244, 0, ip),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            node: Some(node.into()),
        };
        let port = |local_only| PortView {
            vip: Ipv4Addr::new(10, 96, 0, 5),
            proto: Proto::Tcp,
            port: 80,
            id: "default/web:".into(),
            service: "default/web".into(),
            endpoints: vec![e(1, "n-1"), e(2, "n-2")],
            affinity_seconds: None,
            local_only,
        };
        let v = ServicesView {
            ports: vec![port(true), port(false)],
            ..Default::default()
        };
        let n1 = v.for_node("n-1");
        assert_eq!(n1.ports[0].endpoints, [e(1, "n-1")]);
        assert_eq!(n1.ports[1].endpoints.len(), 2, "Cluster policy: all");
        assert!(v.for_node("n-3").ports[0].endpoints.is_empty());
    }

    #[test]
    fn terminating_endpoints_as_kube_proxy_sees_them() {
        use crate::dataplane::table::{Backend, ServicePort};
        // (publishNotReadyAddresses, pod Ready) for one terminating pod next
        // to a ready one → is the terminating pod still a target for new
        // flows? kube-proxy sends new flows to `ready` endpoints, so only
        // with publishNotReadyAddresses (ready stays true while terminating).
        for (publish, pod_ready, in_rotation) in [
            (false, true, false),
            (true, true, true),
            (true, false, true),
        ] {
            let cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
            let mut st = State::new(cfg, Store::default());
            st.ensure_system_objects();
            let pod = |n: &str| {
                format!(
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {n}, labels: {{app: web}}}}\nspec:\n  nodeName: t-node\n  containers: [{{name: c, image: x, command: [x]}}]\n"
                )
            };
            let yaml = format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  publishNotReadyAddresses: {publish}\n  ports: [{{port: 80}}]\n{}{}",
                pod("a"),
                pod("b")
            );
            st.apply(&parse_documents("f", &yaml).unwrap(), "default", false)
                .unwrap();
            for (name, ip, ready, terminating) in [
                ("a", "10.244.0.5", true, false),
                ("b", "10.244.0.6", pod_ready, true),
            ] {
                let key = crate::store::Key::new(Kind::Pod, "default", name);
                let Some(Object::Pod(mut p)) = st.store.get(&key).cloned() else {
                    panic!()
                };
                p.status = Some(
                    serde_json::from_value(serde_json::json!({"podIP": ip, "phase": "Running",
                        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}))
                    .unwrap(),
                );
                if terminating {
                    p.metadata.deletion_timestamp = Some(crate::model::now_time());
                }
                st.store.update(Object::Pod(p));
            }
            crate::controller::reconcile(&mut st.store);
            let v = view(&st.store);
            let web = v.ports.iter().find(|p| p.service == "default/web").unwrap();
            let sp = ServicePort {
                id: web.id.clone(),
                service: web.service.clone(),
                endpoints: web
                    .endpoints
                    .iter()
                    .map(|e| Backend {
                        ip: e.ip,
                        port: e.port,
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                    })
                    .collect(),
                affinity_timeout: None,
                drop_without_endpoints: false,
            };
            let eligible: Vec<Ipv4Addr> = sp.eligible().map(|b| b.ip).collect();
            assert_eq!(
                eligible.contains(&Ipv4Addr::new(10, 244, 0, 6)),
                in_rotation,
                "publish={publish} ready={pod_ready}: {eligible:?}"
            );
            assert!(eligible.contains(&Ipv4Addr::new(10, 244, 0, 5)));
        }
    }
}
