//! The three endpoints controllers of kube-controller-manager, as pure
//! passes over the store:
//!
//! - the **EndpointSlice controller**: a Service with a selector + its pods →
//!   EndpointSlices named `<service>-<5 random>` (generateName), labelled with
//!   the Service's labels plus `kubernetes.io/service-name`,
//!   `endpointslice.kubernetes.io/managed-by` and (headless)
//!   `service.kubernetes.io/headless`; one slice per distinct resolved port
//!   set, at most 100 endpoints each; an empty placeholder when there is
//!   nothing to list. Conditions: `serving` = pod Ready, `terminating` =
//!   deletionTimestamp set, `ready` = publishNotReadyAddresses || (serving
//!   && !terminating).
//! - the **Endpoints controller**: the v1 `Endpoints` object, subsets packed
//!   as `RepackSubsets` packs them (ports offering the same addresses share a
//!   subset; not-ready addresses in `notReadyAddresses`; addresses sorted).
//!   Terminating pods leave it at once unless publishNotReadyAddresses.
//! - the **EndpointSlice mirroring controller**: a selector-less Service's
//!   hand-written Endpoints → EndpointSlices managed by
//!   `endpointslicemirroring-controller.k8s.io`, owned by the Endpoints.
//!
//! As in Kubernetes, none of them touches an `ExternalName` Service, and the
//! first two leave a Service whose selector was removed alone (its last
//! objects stay until the Service is deleted).

use super::workload::{is_terminating, pod_ready, random_suffix};
use crate::model::labels::Selector;
use crate::model::{EndpointSlice, Endpoints, Kind, Object, Pod, Service};
use crate::store::{Key, Store};
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort as SlicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const SLICE_CONTROLLER: &str = "endpointslice-controller.k8s.io";
pub const MIRROR_CONTROLLER: &str = "endpointslicemirroring-controller.k8s.io";
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";
const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const EP_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
const EP_CONTROLLER: &str = "endpoint-controller";
/// `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// `--mirroring-max-endpoints-per-subset` default.
const MAX_MIRRORED_PER_SUBSET: usize = 1000;
/// `maxNameLength - randomLength` of the API server's name generator.
const MAX_GENERATED_BASE: usize = 63 - 5;

/// Resolve a Service port's targetPort against one pod (`FindPort`): a
/// number as is, a name looked up in the containers' (and restartable init
/// containers') ports with the same protocol. `None` when not found.
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
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers.iter().chain(sidecars).find_map(|c| {
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

/// `ShouldPodBeInEndpoints`: not terminal, has an IP, and (unless
/// `include_terminating`) not terminating.
fn should_be_in_endpoints(p: &Pod, include_terminating: bool) -> bool {
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) || pod_ip(p).is_none() {
        return false;
    }
    include_terminating || !is_terminating(&p.metadata)
}

/// `IsServiceIPSet`: a ClusterIP that is neither empty nor `None`.
fn service_ip_set(spec: &ServiceSpec) -> bool {
    spec.cluster_ip
        .as_deref()
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

fn headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

/// `ShouldSetHostname`: the pod names a hostname and its subdomain is the
/// Service (same namespace, which the selector already guarantees).
fn hostname_for(pod: &Pod, svc_name: &str) -> Option<String> {
    let s = pod.spec.as_ref()?;
    let h = s.hostname.clone().filter(|h| !h.is_empty())?;
    (s.subdomain.as_deref() == Some(svc_name)).then_some(h)
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

/// The selector of a Service, `None` when it has none. An empty map counts
/// as none: the API server stores `selector: {}` as no selector.
fn selector(spec: &ServiceSpec) -> Option<Selector> {
    spec.selector
        .as_ref()
        .filter(|s| !s.is_empty())
        .map(Selector::from_map)
}

/// A slice port as the controllers key it (order-independent).
type PortKey = Vec<(String, i32, String, String)>;

fn port_key(ports: &[SlicePort]) -> PortKey {
    let mut k: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    k.sort();
    k
}

/// Run the three controllers for every Service and Endpoints object (a
/// fresh [`Controller`]: a full pass), with the generated-name suffixes
/// drawn from `suffix`.
#[cfg(test)]
pub fn reconcile_with(store: &mut Store, suffix: &mut dyn FnMut() -> String) {
    Controller::default().reconcile_with(store, suffix);
}

/// (namespace, name).
type NsName = (String, String);

/// What the controllers last saw of one EndpointSlice: the Service it is
/// labelled for (`""` without the label) and its controller owner's name.
#[derive(Debug, Clone)]
struct SliceRef {
    service: String,
    owner: Option<String>,
}

/// The three controllers with what they remember between passes, so that a
/// pass looks only at the Services whose inputs changed since the last one
/// (as the real controllers queue a Service when an informer reports a
/// change to it, its Endpoints, its slices or a pod it selects or selected).
///
/// The unit of work is a name in a namespace: the Service of that name, the
/// Endpoints of that name, the slices labelled for it and the slices it owns.
/// A pass replays the store's journal since the last pass
/// ([`Store::changes_since`]) to find the names touched; when the journal no
/// longer reaches back that far (or on the first pass) every name is.
/// The controllers' own writes come back in the next pass's replay (and are
/// then found to need nothing), so the pass converges as the full one does.
#[derive(Debug, Clone, Default)]
pub struct Controller {
    /// The store version this memory reflects (`None`: nothing yet).
    seen: Option<u64>,
    /// Per namespace, the selector of each Service the slice and Endpoints
    /// controllers manage (a selector, not ExternalName): which Services a
    /// changed pod concerns.
    selectors: HashMap<String, BTreeMap<String, Selector>>,
    /// Each pod's labels when last seen: a pod whose labels changed
    /// concerns the Services it matched before as well.
    pod_labels: HashMap<NsName, BTreeMap<String, String>>,
    /// Each slice (namespace, slice name) as last seen.
    slices: HashMap<NsName, SliceRef>,
    /// (namespace, service label) → slice names.
    by_service: HashMap<NsName, BTreeSet<String>>,
    /// (namespace, controller owner's name) → slice names.
    by_owner: HashMap<NsName, BTreeSet<String>>,
}

impl Controller {
    /// One pass with random generated names.
    pub fn reconcile(&mut self, store: &mut Store) {
        self.reconcile_with(store, &mut random_suffix);
    }

    /// One pass: nothing at all when nothing the controllers read changed
    /// since the last pass; otherwise the names touched since then.
    pub fn reconcile_with(&mut self, store: &mut Store, suffix: &mut dyn FnMut() -> String) {
        let rv = store.resource_version();
        if self.seen == Some(rv) {
            return;
        }
        let relevant = |k: &&Key| {
            matches!(
                k.kind,
                Kind::Service | Kind::Endpoints | Kind::EndpointSlice | Kind::Pod
            )
        };
        let replay: Option<BTreeSet<Key>> = self
            .seen
            .and_then(|seen| store.changes_since(seen))
            .map(|keys| keys.filter(relevant).cloned().collect());
        let mut names = BTreeSet::new();
        match replay {
            Some(keys) => {
                // Services first: a changed pod is matched against the
                // selectors as they are now (a Service whose selector
                // changed is in the set anyway).
                let (svcs, rest): (Vec<Key>, Vec<Key>) =
                    keys.into_iter().partition(|k| k.kind == Kind::Service);
                for k in svcs.iter().chain(&rest) {
                    self.observe(store, k, &mut names);
                }
            }
            None => self.rebuild(store, &mut names),
        }
        self.seen = Some(rv);
        if !names.is_empty() {
            self.sync(store, &names, suffix);
        }
    }

    /// Forget everything and look at every object: every name is touched.
    fn rebuild(&mut self, store: &Store, names: &mut BTreeSet<NsName>) {
        *self = Controller::default();
        for kind in [
            Kind::Service,
            Kind::Endpoints,
            Kind::EndpointSlice,
            Kind::Pod,
        ] {
            for o in store.list(kind, None) {
                self.observe(store, &Key::of(o), names);
            }
        }
    }

    /// Bring the memory of `key` up to the store and add the names it
    /// concerns, before and after the change.
    fn observe(&mut self, store: &Store, key: &Key, names: &mut BTreeSet<NsName>) {
        let ns = &key.namespace;
        let nn = (ns.clone(), key.name.clone());
        match key.kind {
            Kind::Service => {
                let sel = match store.get(key) {
                    Some(Object::Service(s)) => {
                        let spec = s.spec.clone().unwrap_or_default();
                        if spec.type_.as_deref() == Some("ExternalName") {
                            None
                        } else {
                            selector(&spec)
                        }
                    }
                    _ => None,
                };
                let m = self.selectors.entry(ns.clone()).or_default();
                match sel {
                    Some(sel) => {
                        m.insert(key.name.clone(), sel);
                    }
                    None => {
                        m.remove(&key.name);
                    }
                }
                names.insert(nn);
            }
            Kind::Endpoints => {
                names.insert(nn);
            }
            Kind::EndpointSlice => {
                if let Some(old) = self.slices.remove(&nn) {
                    let svc = (ns.clone(), old.service);
                    remove_from(&mut self.by_service, &svc, &key.name);
                    names.insert(svc);
                    if let Some(owner) = old.owner {
                        let owner = (ns.clone(), owner);
                        remove_from(&mut self.by_owner, &owner, &key.name);
                        names.insert(owner);
                    }
                }
                if let Some(Object::EndpointSlice(s)) = store.get(key) {
                    let new = SliceRef {
                        service: s
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(SERVICE_NAME_LABEL))
                            .cloned()
                            .unwrap_or_default(),
                        owner: controller_owner(&s.metadata).map(|r| r.name.clone()),
                    };
                    let svc = (ns.clone(), new.service.clone());
                    self.by_service
                        .entry(svc.clone())
                        .or_default()
                        .insert(key.name.clone());
                    names.insert(svc);
                    if let Some(owner) = &new.owner {
                        let owner = (ns.clone(), owner.clone());
                        self.by_owner
                            .entry(owner.clone())
                            .or_default()
                            .insert(key.name.clone());
                        names.insert(owner);
                    }
                    self.slices.insert(nn, new);
                }
            }
            Kind::Pod => {
                let old = self.pod_labels.remove(&nn);
                let new = match store.get(key) {
                    Some(Object::Pod(p)) => Some(p.metadata.labels.clone().unwrap_or_default()),
                    _ => None,
                };
                if let Some(sels) = self.selectors.get(ns) {
                    for (svc, sel) in sels {
                        if old.iter().chain(&new).any(|l| sel.matches(l)) {
                            names.insert((ns.clone(), svc.clone()));
                        }
                    }
                }
                if let Some(new) = new {
                    self.pod_labels.insert(nn, new);
                }
            }
            _ => {}
        }
    }

    /// The three controllers for `names` only, in the order of a full pass:
    /// the slice and Endpoints controllers for each Service with a
    /// selector, then mirroring, then garbage.
    fn sync(
        &self,
        store: &mut Store,
        names: &BTreeSet<NsName>,
        suffix: &mut dyn FnMut() -> String,
    ) {
        let index = self.slice_index(store, names);
        for (ns, name) in names {
            let Some(Object::Service(svc)) = store.get(&Key::new(Kind::Service, ns, name)) else {
                continue;
            };
            let svc = (**svc).clone();
            let spec = svc.spec.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                continue;
            }
            let Some(sel) = selector(&spec) else { continue };
            let no_labels = BTreeMap::new();
            let pods: Vec<Pod> = store
                .list(Kind::Pod, Some(ns))
                .filter_map(|o| match o {
                    Object::Pod(p) => Some(p),
                    _ => None,
                })
                .filter(|p| sel.matches(p.metadata.labels.as_ref().unwrap_or(&no_labels)))
                .map(|p| (**p).clone())
                .collect();
            put(store, Object::Endpoints(endpoints_object(&svc, &pods)));
            let desired = desired_slices(&svc, &pods);
            sync_slices(store, &index, svc_slice_owner(&svc), desired, suffix);
        }
        self.mirror(store, &index, names, suffix);
        self.collect_garbage(store, names);
    }

    /// The controller-managed slices labelled for `names`, by namespace,
    /// service and controller (taken once per pass: a pass only rewrites
    /// each service's own slices).
    fn slice_index(
        &self,
        store: &Store,
        names: &BTreeSet<NsName>,
    ) -> HashMap<SliceKey, Vec<EndpointSlice>> {
        let mut out: HashMap<SliceKey, Vec<EndpointSlice>> = HashMap::new();
        for nn in names {
            for sname in self.by_service.get(nn).into_iter().flatten() {
                let Some(Object::EndpointSlice(s)) =
                    store.get(&Key::new(Kind::EndpointSlice, &nn.0, sname))
                else {
                    continue;
                };
                let Some(l) = s.metadata.labels.as_ref() else {
                    continue;
                };
                if let (Some(svc), Some(by)) = (l.get(SERVICE_NAME_LABEL), l.get(MANAGED_BY)) {
                    out.entry((nn.0.clone(), svc.clone(), by.clone()))
                        .or_default()
                        .push(s.clone());
                }
            }
        }
        out
    }
}
/// Where a controller's slices come from: the owner reference, the labels
/// every slice gets, and the generateName prefix.
struct SliceOwner {
    namespace: String,
    service: String,
    controller: &'static str,
    owner: OwnerReference,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
}

fn controller_ref(kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `setEndpointSliceLabels`: the Service's labels without the reserved
/// keys, the headless label when the Service has no ClusterIP, then the
/// service-name and managed-by labels.
fn svc_slice_owner(svc: &Service) -> SliceOwner {
    let spec = svc.spec.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| ![SERVICE_NAME_LABEL, MANAGED_BY, HEADLESS_LABEL].contains(&k.as_str()))
        .collect();
    if !service_ip_set(&spec) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY.into(), SLICE_CONTROLLER.into());
    SliceOwner {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        service: name,
        controller: SLICE_CONTROLLER,
        owner: controller_ref("Service", &svc.metadata),
        labels,
        annotations: None,
    }
}

/// `podToEndpoint`.
fn pod_endpoint(pod: &Pod, svc: &Service) -> Endpoint {
    let spec = svc.spec.clone().unwrap_or_default();
    let serving = pod_ready(pod);
    let terminating = is_terminating(&pod.metadata);
    let ready = spec.publish_not_ready_addresses == Some(true) || (serving && !terminating);
    let name = svc.metadata.name.as_deref().unwrap_or_default();
    Endpoint {
        addresses: pod_ip(pod)
            .map(|ip| vec![ip.to_string()])
            .unwrap_or_default(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname_for(pod, name),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    }
}

/// `getEndpointPorts`: the Service's ports resolved against one pod, in the
/// Service's order; a port the pod does not offer is left out.
fn pod_ports(pod: &Pod, spec: &ServiceSpec) -> Vec<SlicePort> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let n = resolve_target_port(pod, p.target_port.as_ref(), p.port, &proto)?;
            Some(SlicePort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(n),
                protocol: Some(proto),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The EndpointSlice controller's desired slices: pods grouped by resolved
/// port set (first-seen order), each group cut into slices of at most
/// [`MAX_ENDPOINTS_PER_SLICE`]; a placeholder (no ports, no endpoints) when
/// there is nothing at all.
fn desired_slices(svc: &Service, pods: &[Pod]) -> Vec<(Vec<SlicePort>, Vec<Endpoint>)> {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut groups: Vec<(PortKey, Vec<SlicePort>, Vec<Endpoint>)> = Vec::new();
    for pod in pods.iter().filter(|p| should_be_in_endpoints(p, true)) {
        let ports = pod_ports(pod, &spec);
        let key = port_key(&ports);
        let ep = pod_endpoint(pod, svc);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.2.push(ep),
            None => groups.push((key, ports, vec![ep])),
        }
    }
    let mut out = Vec::new();
    for (_, ports, eps) in groups {
        for chunk in eps.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    if out.is_empty() {
        out.push((Vec::new(), Vec::new()));
    }
    out
}

/// A generated name: `<base><5 random>`, the base cut to 58 characters,
/// retried until it is free in the namespace.
fn generate_name(
    store: &Store,
    ns: &str,
    base: &str,
    taken: &BTreeSet<String>,
    suffix: &mut dyn FnMut() -> String,
) -> String {
    let base: String = base.chars().take(MAX_GENERATED_BASE).collect();
    loop {
        let n = format!("{base}{}", suffix());
        if !taken.contains(&n) && store.get(&Key::new(Kind::EndpointSlice, ns, &n)).is_none() {
            return n;
        }
    }
}

/// `getEndpointSlicePrefix`: `<name>-` unless that is no valid name prefix.
fn slice_prefix(name: &str) -> String {
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_string()
    }
}

/// (namespace, service, managing controller).
type SliceKey = (String, String, String);

/// Make the slices `owner` manages equal `desired`: a desired slice keeps
/// the name of an existing slice with the same ports, else recycles the
/// name of one that would be deleted (as the controllers turn a delete +
/// create into an update), else gets a generated name; existing slices
/// left over are deleted.
fn sync_slices(
    store: &mut Store,
    index: &HashMap<SliceKey, Vec<EndpointSlice>>,
    owner: SliceOwner,
    desired: Vec<(Vec<SlicePort>, Vec<Endpoint>)>,
    suffix: &mut dyn FnMut() -> String,
) {
    let (existing, foreign): (Vec<EndpointSlice>, Vec<EndpointSlice>) = index
        .get(&(
            owner.namespace.clone(),
            owner.service.clone(),
            owner.controller.to_string(),
        ))
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .partition(|s| {
            s.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == owner.owner.uid && r.kind == owner.owner.kind)
        });
    // Slices of an earlier object of the same name (`ownedBy` fails) go.
    for s in foreign {
        let name = s.metadata.name.unwrap_or_default();
        store.remove(&Key::new(Kind::EndpointSlice, &owner.namespace, &name));
    }
    let mut unused: Vec<(String, PortKey)> = existing
        .iter()
        .map(|s| {
            (
                s.metadata.name.clone().unwrap_or_default(),
                port_key(s.ports.as_deref().unwrap_or_default()),
            )
        })
        .collect();
    let mut names: Vec<Option<String>> = desired
        .iter()
        .map(|(ports, _)| {
            let key = port_key(ports);
            let i = unused.iter().position(|(_, k)| *k == key)?;
            Some(unused.remove(i).0)
        })
        .collect();
    let mut taken: BTreeSet<String> = names.iter().flatten().cloned().collect();
    for n in names.iter_mut().filter(|n| n.is_none()) {
        *n = Some(if unused.is_empty() {
            generate_name(
                store,
                &owner.namespace,
                &slice_prefix(&owner.service),
                &taken,
                suffix,
            )
        } else {
            unused.remove(0).0
        });
        taken.extend(n.clone());
    }
    for (name, _) in unused {
        store.remove(&Key::new(Kind::EndpointSlice, &owner.namespace, &name));
    }
    for (name, (ports, endpoints)) in names.into_iter().flatten().zip(desired) {
        put(
            store,
            Object::EndpointSlice(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(name),
                    namespace: Some(owner.namespace.clone()),
                    labels: Some(owner.labels.clone()),
                    annotations: owner.annotations.clone(),
                    owner_references: Some(vec![owner.owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: Some(endpoints),
                ports: Some(ports),
            }),
        );
    }
}

/// The Endpoints controller's object for a Service with a selector.
fn endpoints_object(svc: &Service, pods: &[Pod]) -> Endpoints {
    let spec = svc.spec.clone().unwrap_or_default();
    let name = svc.metadata.name.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    // Per endpoint port: address key (ip, uid) → ready. `Port -1` stands for
    // "no ports" (a headless Service without ports).
    type EpPortKey = (String, i32, String, String);
    let mut by_port: BTreeMap<EpPortKey, BTreeMap<(String, String), bool>> = BTreeMap::new();
    let mut addrs: BTreeMap<(String, String), EndpointAddress> = BTreeMap::new();
    for pod in pods.iter().filter(|p| should_be_in_endpoints(p, publish)) {
        let Some(ip) = pod_ip(pod) else { continue };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let akey = (ip.to_string(), uid);
        let ready = publish || pod_ready(pod);
        let mut add = |port: EpPortKey| {
            addrs
                .entry(akey.clone())
                .or_insert_with(|| EndpointAddress {
                    ip: ip.to_string(),
                    hostname: hostname_for(pod, &name),
                    node_name: Some(
                        pod.spec
                            .as_ref()
                            .and_then(|s| s.node_name.clone())
                            .unwrap_or_default(),
                    ),
                    target_ref: Some(target_ref(pod)),
                });
            // Not ready trumps ready.
            let e = by_port
                .entry(port)
                .or_default()
                .entry(akey.clone())
                .or_insert(ready);
            *e = *e && ready;
        };
        if spec.ports.as_ref().is_none_or(Vec::is_empty) {
            if headless(&spec) {
                add((String::new(), -1, String::new(), String::new()));
            }
            continue;
        }
        for p in spec.ports.iter().flatten() {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            if let Some(n) = resolve_target_port(pod, p.target_port.as_ref(), p.port, &proto) {
                add((
                    p.name.clone().unwrap_or_default(),
                    n,
                    proto,
                    p.app_protocol.clone().unwrap_or_default(),
                ));
            }
        }
    }
    // Ports offering exactly the same (address, ready) set share a subset.
    type AddressSet = Vec<((String, String), bool)>;
    let mut groups: BTreeMap<AddressSet, Vec<EpPortKey>> = BTreeMap::new();
    for (port, set) in by_port {
        groups
            .entry(set.into_iter().collect())
            .or_default()
            .push(port);
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(set, ports)| {
            // Addresses sorted by IP text, then target UID (LessEndpointAddress).
            let pick = |want: bool| {
                let v: Vec<EndpointAddress> = set
                    .iter()
                    .filter(|(_, r)| *r == want)
                    .filter_map(|(k, _)| addrs.get(k).cloned())
                    .collect();
                Some(v).filter(|v| !v.is_empty())
            };
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .filter(|p| p.1 > 0)
                .map(|(n, port, proto, app)| EndpointPort {
                    name: Some(n).filter(|n| !n.is_empty()),
                    port,
                    protocol: Some(proto),
                    app_protocol: Some(app).filter(|a| !a.is_empty()),
                })
                .collect();
            EndpointSubset {
                addresses: pick(true),
                not_ready_addresses: pick(false),
                ports: Some(ports).filter(|p| !p.is_empty()),
            }
        })
        .collect();
    subsets.sort_by_key(|s| {
        s.ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
            .collect::<Vec<_>>()
    });
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if !service_ip_set(&spec) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(EP_MANAGED_BY.into(), EP_CONTROLLER.into());
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            ..Default::default()
        },
        subsets: Some(subsets).filter(|s| !s.is_empty()),
    }
}

impl Controller {
    /// The mirroring controller, for the Endpoints objects of `names`:
    /// mirror one when its Service exists without a selector and it carries
    /// neither the skip-mirror label nor a leader-election annotation;
    /// otherwise delete its mirrors.
    fn mirror(
        &self,
        store: &mut Store,
        index: &HashMap<SliceKey, Vec<EndpointSlice>>,
        names: &BTreeSet<NsName>,
        suffix: &mut dyn FnMut() -> String,
    ) {
        let mut mirrored = BTreeSet::new();
        for (ns, name) in names {
            let Some(Object::Endpoints(eps)) = store.get(&Key::new(Kind::Endpoints, ns, name))
            else {
                continue;
            };
            // Only Endpoints of selector-less Services are candidates
            // (checked before cloning: most Endpoints are the Endpoints
            // controller's).
            let selectorless = matches!(
                store.get(&Key::new(Kind::Service, ns, name)),
                Some(Object::Service(s)) if s
                    .spec
                    .as_ref()
                    .and_then(|sp| sp.selector.as_ref())
                    .is_none_or(|m| m.is_empty())
            );
            if !selectorless {
                continue;
            }
            let eps = eps.clone();
            let skip = eps
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get(SKIP_MIRROR).map(String::as_str) == Some("true"))
                || eps
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
            if skip {
                continue;
            }
            mirrored.insert((ns.clone(), name.clone()));
            let mut labels = eps.metadata.labels.clone().unwrap_or_default();
            labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
            labels.insert(MANAGED_BY.into(), MIRROR_CONTROLLER.into());
            let annotations: BTreeMap<String, String> = eps
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| k != TRIGGER_TIME && k != LAST_APPLIED)
                .collect();
            let owner = SliceOwner {
                namespace: ns.clone(),
                service: name.clone(),
                controller: MIRROR_CONTROLLER,
                owner: controller_ref("Endpoints", &eps.metadata),
                labels,
                annotations: Some(annotations).filter(|a| !a.is_empty()),
            };
            sync_slices(store, index, owner, mirrored_slices(&eps), suffix);
        }
        // Mirrors of Endpoints that are gone or no longer to be mirrored
        // (a mirror without the service-name label counts as one for "").
        for nn in names.iter().filter(|nn| !mirrored.contains(*nn)) {
            for sname in self.by_service.get(nn).into_iter().flatten() {
                let key = Key::new(Kind::EndpointSlice, &nn.0, sname);
                let Some(Object::EndpointSlice(s)) = store.get(&key) else {
                    continue;
                };
                let l = s.metadata.labels.as_ref();
                let label = |k: &str| l.and_then(|l| l.get(k)).map(String::as_str);
                if label(MANAGED_BY) == Some(MIRROR_CONTROLLER)
                    && label(SERVICE_NAME_LABEL).unwrap_or_default() == nn.1
                {
                    store.remove(&key);
                }
            }
        }
    }

    /// What the garbage collector and the Endpoints controller remove for
    /// `names`: slices owned by one of them (by uid) that is gone, and the
    /// controller-made Endpoints of a Service that is gone.
    fn collect_garbage(&self, store: &mut Store, names: &BTreeSet<NsName>) {
        for nn in names {
            for sname in self.by_owner.get(nn).into_iter().flatten() {
                let key = Key::new(Kind::EndpointSlice, &nn.0, sname);
                let Some(owner) = store
                    .get(&key)
                    .and_then(|o| controller_owner(o.meta()).cloned())
                else {
                    continue;
                };
                let kind = match owner.kind.as_str() {
                    "Service" => Kind::Service,
                    "Endpoints" => Kind::Endpoints,
                    _ => continue,
                };
                let alive = store
                    .get(&Key::new(kind, &key.namespace, &owner.name))
                    .is_some_and(|o| o.meta().uid.as_deref() == Some(owner.uid.as_str()));
                if !alive {
                    store.remove(&key);
                }
            }
            let key = Key::new(Kind::Endpoints, &nn.0, &nn.1);
            let svc_exists = store.get(&Key::new(Kind::Service, &nn.0, &nn.1)).is_some();
            let controller_made = store.get(&key).is_some_and(|o| {
                o.meta().labels.as_ref().is_some_and(|l| {
                    l.get(EP_MANAGED_BY).map(String::as_str) == Some(EP_CONTROLLER)
                })
            });
            if controller_made && !svc_exists {
                store.remove(&key);
            }
        }
    }
}

/// The first owner reference marked as the controller.
fn controller_owner(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

fn remove_from(map: &mut HashMap<NsName, BTreeSet<String>>, key: &NsName, item: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(item);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The mirroring controller's desired slices: subsets with the same ports
/// share one slice; each subset contributes at most 1000 addresses; invalid
/// IPs and duplicates are skipped; only the `ready` condition is set.
fn mirrored_slices(eps: &Endpoints) -> Vec<(Vec<SlicePort>, Vec<Endpoint>)> {
    let mut out: Vec<(PortKey, Vec<SlicePort>, Vec<Endpoint>)> = Vec::new();
    for subset in eps.subsets.iter().flatten() {
        let ports: Vec<SlicePort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| SlicePort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let key = port_key(&ports);
        let i = match out.iter().position(|g| g.0 == key) {
            Some(i) => i,
            None => {
                out.push((key, ports, Vec::new()));
                out.len() - 1
            }
        };
        let mut added = 0;
        for (list, ready) in [
            (&subset.addresses, true),
            (&subset.not_ready_addresses, false),
        ] {
            for a in list.iter().flatten() {
                if added >= MAX_MIRRORED_PER_SUBSET {
                    break;
                }
                let Ok(ip) = a.ip.parse::<std::net::IpAddr>() else {
                    continue;
                };
                added += 1;
                let ep = Endpoint {
                    addresses: vec![ip.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: None,
                        terminating: None,
                    }),
                    hostname: a.hostname.clone().filter(|h| !h.is_empty()),
                    node_name: a.node_name.clone(),
                    target_ref: a.target_ref.clone(),
                    ..Default::default()
                };
                if !out[i].2.contains(&ep) {
                    out[i].2.push(ep);
                }
            }
        }
    }
    out.into_iter()
        .filter(|g| !g.2.is_empty())
        .map(|(_, p, e)| (p, e))
        .collect()
}

/// Create or update, keeping what the store assigned (uid, creation time,
/// generation) and annotations others set.
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
            if meta.annotations.is_none() && key.kind == Kind::Endpoints {
                meta.annotations = m.annotations;
            }
            store.update(obj);
        }
    }
}

#[cfg(test)]
mod tests;
