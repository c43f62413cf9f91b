//! The scheduler (kube-scheduler's default profile, the parts lab honours):
//! every pod without `spec.nodeName` that is not being deleted is bound to
//! a node, or left Pending with `PodScheduled=False` and the reason worded
//! as kube-scheduler words it.
//!
//! Filters, in the default profile's order (a node fails on the first):
//! NodeUnschedulable (`spec.unschedulable` unless tolerated), NodeName,
//! TaintToleration (`NoSchedule`/`NoExecute` taints, and a node whose Ready
//! condition is not True counts as tainted `not-ready`/`unreachable`, as
//! the node lifecycle controller taints it), NodeAffinity (`nodeSelector`
//! and required node affinity), PodTopologySpread (`DoNotSchedule`
//! constraints), InterPodAffinity (required pod anti-affinity, both the
//! pod's own and the existing pods').
//!
//! Score (lowest wins), in order: preferred node affinity (more weight
//! first), preferred pod anti-affinity (less matching weight first),
//! spreading (the pod's `ScheduleAnyway` constraints' skew, or without
//! any, the pods of the same controller on the node, as Kubernetes' default
//! spreading constraint), the node's non-terminated pods (least first),
//! then node order.
//!
//! Pure: a pass over the [`Store`]; the reconcile loop calls [`schedule`]
//! whenever anything changed, so a Pending pod is retried when nodes or
//! pods change.

use super::events::{self, Note};
use super::nodes::{self, UNSCHEDULABLE_TAINT};
use super::workload::{controller_uid, is_terminating};
use crate::model::labels::{Labels, Requirement, Selector};
use crate::model::{Kind, Node, Object, Pod};
use crate::store::Store;
use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, PodCondition, PodStatus, Taint,
    Toleration, TopologySpreadConstraint,
};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Why a node was filtered out; the text is kube-scheduler's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    Unschedulable,
    NodeName,
    Taint { key: String, value: String },
    NodeAffinity,
    SpreadMissingLabel,
    Spread,
    AntiAffinity,
    ExistingAntiAffinity,
}

impl Reason {
    pub fn text(&self) -> String {
        match self {
            Reason::Unschedulable => "node(s) were unschedulable".into(),
            Reason::NodeName => "node(s) didn't match the requested node name".into(),
            Reason::Taint { key, value } => {
                format!("node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => "node(s) didn't match Pod's node affinity/selector".into(),
            Reason::SpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into()
            }
            Reason::Spread => "node(s) didn't match pod topology spread constraints".into(),
            Reason::AntiAffinity => "node(s) didn't match pod anti-affinity rules".into(),
            Reason::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules".into()
            }
        }
    }

    /// Whether evicting other pods could help (kube-scheduler's
    /// `Unschedulable` vs `UnschedulableAndUnresolvable`).
    fn resolvable(&self) -> bool {
        matches!(
            self,
            Reason::Spread | Reason::AntiAffinity | Reason::ExistingAntiAffinity
        )
    }
}

/// The `FailedScheduling` message for `n` nodes that all failed.
pub fn fit_error(n: usize, reasons: &[Reason]) -> String {
    if n == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for r in reasons {
        *hist.entry(r.text()).or_default() += 1;
    }
    let mut parts: Vec<String> = hist.iter().map(|(t, c)| format!("{c} {t}")).collect();
    parts.sort();
    let unresolvable = reasons.iter().filter(|r| !r.resolvable()).count();
    let resolvable = reasons.len() - unresolvable;
    let mut pre = Vec::new();
    if unresolvable > 0 {
        pre.push(format!(
            "{unresolvable} Preemption is not helpful for scheduling"
        ));
    }
    if resolvable > 0 {
        pre.push(format!(
            "{resolvable} No preemption victims found for incoming pod"
        ));
    }
    pre.sort();
    format!(
        "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {}.",
        parts.join(", "),
        pre.join(", ")
    )
}

fn labels_of(n: &Node) -> Labels {
    n.metadata.labels.clone().unwrap_or_default()
}

fn node_name(n: &Node) -> &str {
    n.metadata.name.as_deref().unwrap_or("")
}

/// Whether `tolerations` tolerate `taint` (the API's `ToleratesTaint`).
pub fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("Equal");
        let key_ok = key.is_empty() && op == "Exists" || key == taint.key;
        let value_ok = match op {
            "Exists" => true,
            _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        };
        effect_ok && key_ok && value_ok
    })
}

/// The taints the scheduler sees on a node: its own, plus the one the node
/// lifecycle controller puts on a node whose Ready condition is False
/// (`not-ready`) or Unknown (`unreachable`), if it is not there yet.
pub fn effective_taints(n: &Node) -> Vec<Taint> {
    let mut taints = n
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let implied = match nodes::ready_status(n) {
        "True" => None,
        "False" => Some("node.kubernetes.io/not-ready"),
        _ => Some("node.kubernetes.io/unreachable"),
    };
    if let Some(key) = implied
        && !taints.iter().any(|t| t.key == key)
    {
        taints.push(Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        });
    }
    taints
}

fn node_requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// One node selector term: all its expressions and fields must hold (an
/// empty term matches nothing, as the API defines).
pub fn term_matches(term: &NodeSelectorTerm, n: &Node) -> bool {
    let labels = labels_of(n);
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| node_requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && node_requirement_matches(r, Some(node_name(n))))
}

/// NodeAffinity's filter: `nodeSelector` and the required node affinity
/// (any of its terms).
pub fn node_affinity_matches(pod: &Pod, n: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = labels_of(n);
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(r) => r.node_selector_terms.iter().any(|t| term_matches(t, n)),
        None => true,
    }
}

fn preferred_node_affinity(pod: &Pod, n: &Node) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map_or(0, |prefs| {
            prefs
                .iter()
                .filter(|p| term_matches(&p.preference, n))
                .map(|p| i64::from(p.weight))
                .sum()
        })
}

/// A pod already on a node, as the filters count it.
struct Placed {
    namespace: String,
    labels: Labels,
    node: String,
    controller: Option<String>,
    /// Its required anti-affinity terms (for the incoming pod's symmetry check).
    anti: Vec<PodAffinityTerm>,
}

fn pod_labels(p: &Pod) -> Labels {
    p.metadata.labels.clone().unwrap_or_default()
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn required_anti(p: &Pod) -> Vec<PodAffinityTerm> {
    p.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .clone()
        })
        .unwrap_or_default()
}

/// Whether an affinity term of a pod in `own_ns` selects a pod.
fn term_selects(term: &PodAffinityTerm, own_ns: &str, ns: &str, labels: &Labels) -> bool {
    let in_ns = match term.namespaces.as_deref() {
        Some(list) if !list.is_empty() => list.iter().any(|n| n == ns),
        _ => own_ns == ns,
    };
    in_ns
        && term
            .label_selector
            .as_ref()
            .and_then(|s| Selector::from_label_selector(s).ok())
            .is_some_and(|s| s.matches(labels))
}

/// A spread constraint's selector, with `matchLabelKeys` merged in.
fn spread_selector(c: &TopologySpreadConstraint, pod: &Pod) -> Option<Selector> {
    let mut sel = Selector::from_label_selector(c.label_selector.as_ref()?).ok()?;
    let labels = pod_labels(pod);
    for k in c.match_label_keys.iter().flatten() {
        if let Some(v) = labels.get(k) {
            sel.0.push(Requirement::Eq(k.clone(), v.clone()));
        }
    }
    Some(sel)
}

/// A feasible node's score key (lower is better): -preferred node affinity,
/// preferred anti-affinity weight, spread, pods on the node, node order.
type Score = (i64, i64, i64, usize, usize);

/// Everything the filters and scores need, built once per pass and kept
/// current as pods are bound.
struct World {
    nodes: Vec<Node>,
    placed: Vec<Placed>,
}

impl World {
    fn pods_on(&self, node: &str) -> usize {
        self.placed.iter().filter(|p| p.node == node).count()
    }

    fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| node_name(n) == name)
    }

    /// Matching pods per topology domain, over the nodes that count as
    /// domains for `pod` (those passing its node affinity, as the default
    /// `nodeAffinityPolicy: Honor`) and that have the key.
    fn domain_counts(&self, pod: &Pod, key: &str, sel: &Selector) -> BTreeMap<String, usize> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for n in &self.nodes {
            if !node_affinity_matches(pod, n) {
                continue;
            }
            if let Some(v) = labels_of(n).get(key) {
                counts.entry(v.clone()).or_default();
            }
        }
        for p in &self.placed {
            if p.namespace != ns || !sel.matches(&p.labels) {
                continue;
            }
            let Some(v) = self
                .node(&p.node)
                .and_then(|n| labels_of(n).get(key).cloned())
            else {
                continue;
            };
            if let Some(c) = counts.get_mut(&v) {
                *c += 1;
            }
        }
        counts
    }

    /// PodTopologySpread's filter for one `DoNotSchedule` constraint.
    fn spread_ok(&self, pod: &Pod, c: &TopologySpreadConstraint, n: &Node) -> Result<(), Reason> {
        let Some(value) = labels_of(n).get(&c.topology_key).cloned() else {
            return Err(Reason::SpreadMissingLabel);
        };
        let Some(sel) = spread_selector(c, pod) else {
            return Ok(());
        };
        let counts = self.domain_counts(pod, &c.topology_key, &sel);
        let min_domains = c.min_domains.unwrap_or(1).max(1) as usize;
        let global_min = if counts.len() < min_domains {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        let self_match = usize::from(sel.matches(&pod_labels(pod)));
        let here = counts.get(&value).copied().unwrap_or(0);
        let skew = (here + self_match) as i64 - global_min as i64;
        if skew > i64::from(c.max_skew) {
            Err(Reason::Spread)
        } else {
            Ok(())
        }
    }

    /// The domain value of `key` for the node a placed pod is on.
    fn domain_of(&self, node: &str, key: &str) -> Option<String> {
        self.node(node).and_then(|n| labels_of(n).get(key).cloned())
    }

    /// InterPodAffinity's filter (anti-affinity): the pod's own required
    /// terms, and the existing pods' terms against the pod.
    fn anti_affinity_ok(&self, pod: &Pod, n: &Node) -> Result<(), Reason> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let labels = labels_of(n);
        for term in required_anti(pod) {
            let Some(value) = labels.get(&term.topology_key) else {
                continue;
            };
            let clash = self.placed.iter().any(|p| {
                term_selects(&term, ns, &p.namespace, &p.labels)
                    && self.domain_of(&p.node, &term.topology_key).as_ref() == Some(value)
            });
            if clash {
                return Err(Reason::AntiAffinity);
            }
        }
        let mine = pod_labels(pod);
        for p in &self.placed {
            for term in &p.anti {
                if term_selects(term, &p.namespace, ns, &mine)
                    && let Some(value) = labels.get(&term.topology_key)
                    && self.domain_of(&p.node, &term.topology_key).as_ref() == Some(value)
                {
                    return Err(Reason::ExistingAntiAffinity);
                }
            }
        }
        Ok(())
    }

    /// Run the filters for one node; the first failing one names the reason.
    fn filter(&self, pod: &Pod, n: &Node) -> Result<(), Reason> {
        let spec = pod.spec.clone().unwrap_or_default();
        let tolerations = spec.tolerations.clone().unwrap_or_default();
        let unschedulable_taint = Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            value: None,
            time_added: None,
        };
        if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
            && !tolerates(&tolerations, &unschedulable_taint)
        {
            return Err(Reason::Unschedulable);
        }
        if let Some(want) = &spec.node_name
            && want != node_name(n)
        {
            return Err(Reason::NodeName);
        }
        for t in effective_taints(n) {
            if (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerates(&tolerations, &t)
            {
                return Err(Reason::Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                });
            }
        }
        if !node_affinity_matches(pod, n) {
            return Err(Reason::NodeAffinity);
        }
        for c in spec.topology_spread_constraints.iter().flatten() {
            if c.when_unsatisfiable == "DoNotSchedule" {
                self.spread_ok(pod, c, n)?;
            }
        }
        self.anti_affinity_ok(pod, n)
    }

    /// The score key of a feasible node (lower is better).
    fn score(&self, pod: &Pod, n: &Node, index: usize) -> Score {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = node_name(n);
        let affinity = -preferred_node_affinity(pod, n);
        let labels = labels_of(n);
        let anti: i64 = pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map_or(0, |prefs| {
                prefs
                    .iter()
                    .filter(|w| {
                        let t = &w.pod_affinity_term;
                        labels.get(&t.topology_key).is_some_and(|value| {
                            self.placed.iter().any(|p| {
                                term_selects(t, ns, &p.namespace, &p.labels)
                                    && self.domain_of(&p.node, &t.topology_key).as_ref()
                                        == Some(value)
                            })
                        })
                    })
                    .map(|w| i64::from(w.weight))
                    .sum()
            });
        let anyway: Vec<&TopologySpreadConstraint> = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.when_unsatisfiable == "ScheduleAnyway")
            .collect();
        let spread = if anyway.is_empty() {
            // Kubernetes' default constraint spreads a controller's pods.
            let owner = controller_uid(&pod.metadata).map(str::to_string);
            match owner {
                Some(o) => self
                    .placed
                    .iter()
                    .filter(|p| p.node == name && p.controller.as_deref() == Some(o.as_str()))
                    .count() as i64,
                None => 0,
            }
        } else {
            anyway
                .iter()
                .filter_map(|c| {
                    let value = labels.get(&c.topology_key)?;
                    let sel = spread_selector(c, pod)?;
                    let counts = self.domain_counts(pod, &c.topology_key, &sel);
                    counts.get(value).map(|x| *x as i64)
                })
                .sum()
        };
        (affinity, anti, spread, self.pods_on(name), index)
    }
}

/// The outcome of scheduling one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Bind(String),
    Unschedulable(String),
}

fn decide(world: &World, pod: &Pod) -> Decision {
    let mut reasons = Vec::new();
    let mut best: Option<(Score, String)> = None;
    for (i, n) in world.nodes.iter().enumerate() {
        match world.filter(pod, n) {
            Ok(()) => {
                let s = world.score(pod, n, i);
                if best.as_ref().is_none_or(|(b, _)| s < *b) {
                    best = Some((s, node_name(n).to_string()));
                }
            }
            Err(r) => reasons.push(r),
        }
    }
    match best {
        Some((_, name)) => Decision::Bind(name),
        None => Decision::Unschedulable(fit_error(world.nodes.len(), &reasons)),
    }
}

fn placed(p: &Pod) -> Option<Placed> {
    let node = p.spec.as_ref()?.node_name.clone()?;
    if finished(p) {
        return None;
    }
    Some(Placed {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        labels: pod_labels(p),
        node,
        controller: controller_uid(&p.metadata).map(str::to_string),
        anti: required_anti(p),
    })
}

fn set_scheduled(p: &mut Pod, ok: bool, message: Option<String>) -> bool {
    let status = p.status.get_or_insert_with(PodStatus::default);
    if status.phase.is_none() {
        status.phase = Some("Pending".into());
    }
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let want_status = if ok { "True" } else { "False" };
    let reason = (!ok).then(|| "Unschedulable".to_string());
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == "PodScheduled") {
        if c.status == want_status && c.reason == reason && c.message == message {
            return false;
        }
        if c.status != want_status {
            c.last_transition_time = Some(crate::model::now_time());
        }
        c.status = want_status.into();
        c.reason = reason;
        c.message = message;
        return true;
    }
    conditions.push(PodCondition {
        type_: "PodScheduled".into(),
        status: want_status.into(),
        reason,
        message,
        last_transition_time: Some(crate::model::now_time()),
        ..Default::default()
    });
    true
}

/// One pass: bind every schedulable pending pod (oldest first), record why
/// the others cannot be (once per new reason, not on every pass).
pub fn schedule(store: &mut Store, now: SystemTime) {
    // A pod no kubelet has (never bound, or bound to a node that does not
    // exist) goes at once when deleted, as the API server deletes it.
    let node_names: Vec<String> = store.keys(Kind::Node).into_iter().map(|k| k.name).collect();
    let orphans: Vec<crate::store::Key> = store
        .list(Kind::Pod, None)
        .filter(|o| {
            is_terminating(o.meta())
                && matches!(o, Object::Pod(p) if p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_none_or(|n| !node_names.contains(n)))
        })
        .map(crate::store::Key::of)
        .collect();
    for k in orphans {
        store.remove(&k);
    }
    let mut pending: Vec<Pod> = store
        .list(Kind::Pod, None)
        .filter_map(|o| match o {
            Object::Pod(p)
                if p.spec.as_ref().is_some_and(|s| s.node_name.is_none())
                    && !is_terminating(&p.metadata) =>
            {
                Some((**p).clone())
            }
            _ => None,
        })
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort_by(|a, b| {
        let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        t(a).cmp(&t(b))
            .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let mut world = World {
        nodes: nodes::nodes(store),
        placed: store
            .list(Kind::Pod, None)
            .filter_map(|o| match o {
                Object::Pod(p) => placed(p),
                _ => None,
            })
            .collect(),
    };
    for mut pod in pending {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        match decide(&world, &pod) {
            Decision::Bind(node) => {
                if let Some(s) = pod.spec.as_mut() {
                    s.node_name = Some(node.clone());
                }
                set_scheduled(&mut pod, true, None);
                if let Some(p) = placed(&pod) {
                    world.placed.push(p);
                }
                let obj = Object::Pod(Box::new(pod));
                store.update(obj.clone());
                events::record(
                    store,
                    &obj,
                    Note::normal(
                        "Scheduled",
                        format!("Successfully assigned {ns}/{name} to {node}"),
                    ),
                    events::SCHEDULER,
                    None,
                    now,
                );
            }
            Decision::Unschedulable(message) => {
                if set_scheduled(&mut pod, false, Some(message.clone())) {
                    let obj = Object::Pod(Box::new(pod));
                    store.update(obj.clone());
                    events::record(
                        store,
                        &obj,
                        Note::warning("FailedScheduling", message),
                        events::SCHEDULER,
                        None,
                        now,
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::controller::nodes::{HostInfo, ensure};
    use crate::store::Key;
    use serde_json::{Value, json};

    fn cluster(n: u32) -> Store {
        let mut cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        cfg.topology.nodes = n;
        let mut s = Store::default();
        ensure(
            &mut s,
            &cfg.node_specs(),
            &HostInfo::default(),
            SystemTime::now(),
        );
        s
    }

    fn add_pod(s: &mut Store, name: &str, labels: Value, spec: Value) {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "x", "command": ["x"]}]);
        let v = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec});
        s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
    }

    fn pod(s: &Store, name: &str) -> Pod {
        match s.get(&Key::new(Kind::Pod, "default", name)) {
            Some(Object::Pod(p)) => (**p).clone(),
            _ => panic!("no pod {name}"),
        }
    }

    fn node_of(s: &Store, name: &str) -> Option<String> {
        pod(s, name).spec.unwrap().node_name
    }

    fn scheduled(s: &Store, name: &str) -> PodCondition {
        pod(s, name)
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")
            .unwrap()
    }

    fn edit_node(s: &mut Store, name: &str, f: impl FnOnce(&mut Node)) {
        let Some(Object::Node(mut n)) = s.get(&Key::new(Kind::Node, "", name)).cloned() else {
            panic!("no node {name}")
        };
        f(&mut n);
        s.update(Object::Node(n));
    }

    fn label(s: &mut Store, node: &str, k: &str, v: &str) {
        edit_node(s, node, |n| {
            n.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(k.into(), v.into());
        });
    }

    fn events(s: &Store, reason: &str) -> Vec<crate::model::Event> {
        s.list(Kind::Event, Some("default"))
            .filter_map(|o| match o {
                Object::Event(e) if e.reason.as_deref() == Some(reason) => Some((**e).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn binds_least_loaded_first_with_event_and_condition() {
        let mut s = cluster(3);
        for i in 0..6 {
            add_pod(&mut s, &format!("p{i}"), json!({"app": "a"}), json!({}));
        }
        schedule(&mut s, SystemTime::now());
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            *per.entry(node_of(&s, &format!("p{i}")).unwrap())
                .or_default() += 1;
        }
        assert_eq!(
            per.values().copied().collect::<Vec<_>>(),
            [2, 2, 2],
            "{per:?}"
        );
        // The first goes to the first node (ties: node order).
        assert_eq!(node_of(&s, "p0").as_deref(), Some("t-node-1"));
        let c = scheduled(&s, "p0");
        assert_eq!(c.status, "True");
        let ev = events(&s, "Scheduled");
        assert_eq!(ev.len(), 6);
        assert!(
            ev.iter()
                .any(|e| e.message.as_deref()
                    == Some("Successfully assigned default/p0 to t-node-1")),
            "{ev:?}"
        );
        assert_eq!(
            ev[0].source.as_ref().unwrap().component.as_deref(),
            Some("default-scheduler")
        );
        // Nothing left to do: a second pass changes nothing.
        let rv = s.resource_version();
        schedule(&mut s, SystemTime::now());
        assert_eq!(s.resource_version(), rv);
    }

    #[test]
    fn node_name_and_selector() {
        let mut s = cluster(3);
        label(&mut s, "t-node-3", "disk", "ssd");
        add_pod(
            &mut s,
            "sel",
            json!({}),
            json!({"nodeSelector": {"disk": "ssd"}}),
        );
        add_pod(
            &mut s,
            "host",
            json!({}),
            json!({"nodeSelector": {"kubernetes.io/hostname": "t-node-2"}}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "sel").as_deref(), Some("t-node-3"));
        assert_eq!(node_of(&s, "host").as_deref(), Some("t-node-2"));
    }

    #[test]
    fn impossible_selector_stays_pending_with_the_schedulers_words_once() {
        let mut s = cluster(3);
        edit_node(&mut s, "t-node-1", |n| {
            n.spec.as_mut().unwrap().unschedulable = Some(true)
        });
        crate::controller::nodes::reconcile(&mut s);
        add_pod(
            &mut s,
            "p",
            json!({}),
            json!({"nodeSelector": {"disk": "nvme"}}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "p"), None);
        let c = scheduled(&s, "p");
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("Unschedulable"));
        let want = "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        assert_eq!(c.message.as_deref(), Some(want));
        assert_eq!(
            pod(&s, "p").status.unwrap().phase.as_deref(),
            Some("Pending")
        );
        let rv = s.resource_version();
        for _ in 0..3 {
            schedule(&mut s, SystemTime::now());
        }
        assert_eq!(
            s.resource_version(),
            rv,
            "no store change while nothing changes"
        );
        let ev = events(&s, "FailedScheduling");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].count, Some(1));
        assert_eq!(ev[0].type_.as_deref(), Some("Warning"));
        assert_eq!(ev[0].message.as_deref(), Some(want));
        // Retried when a node changes: labelling one makes it fit.
        label(&mut s, "t-node-2", "disk", "nvme");
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "p").as_deref(), Some("t-node-2"));
        assert_eq!(scheduled(&s, "p").status, "True");
    }

    #[test]
    fn cordoned_and_tainted_nodes_unless_tolerated() {
        let mut s = cluster(2);
        edit_node(&mut s, "t-node-1", |n| {
            n.spec.as_mut().unwrap().unschedulable = Some(true)
        });
        edit_node(&mut s, "t-node-2", |n| {
            n.spec.as_mut().unwrap().taints = Some(vec![Taint {
                key: "dedicated".into(),
                value: Some("db".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }])
        });
        crate::controller::nodes::reconcile(&mut s);
        add_pod(&mut s, "plain", json!({}), json!({}));
        add_pod(
            &mut s,
            "tol",
            json!({}),
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        );
        add_pod(
            &mut s,
            "all",
            json!({}),
            json!({"nodeSelector": {"kubernetes.io/hostname": "t-node-1"}, "tolerations": [{"operator": "Exists"}]}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "plain"), None);
        assert_eq!(
            scheduled(&s, "plain").message.as_deref(),
            Some(
                "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
            )
        );
        assert_eq!(node_of(&s, "tol").as_deref(), Some("t-node-2"));
        // Tolerating everything (the unschedulable taint too) lands on a cordoned node.
        assert_eq!(node_of(&s, "all").as_deref(), Some("t-node-1"));
        // PreferNoSchedule does not filter.
        let t = Taint {
            key: "k".into(),
            value: None,
            effect: "PreferNoSchedule".into(),
            time_added: None,
        };
        assert!(!tolerates(&[], &t));
    }

    #[test]
    fn not_ready_nodes_count_as_tainted() {
        let mut s = cluster(2);
        edit_node(&mut s, "t-node-1", |n| {
            nodes::set_ready(
                n,
                "Unknown",
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
                SystemTime::now(),
            );
        });
        edit_node(&mut s, "t-node-2", |n| {
            nodes::set_ready(n, "False", "KubeletNotReady", "down", SystemTime::now());
        });
        add_pod(&mut s, "p", json!({}), json!({}));
        schedule(&mut s, SystemTime::now());
        assert_eq!(
            scheduled(&s, "p").message.as_deref(),
            Some(
                "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
            )
        );
    }

    #[test]
    fn required_node_affinity_operators_and_fields() {
        let mut s = cluster(3);
        label(&mut s, "t-node-1", "gen", "3");
        label(&mut s, "t-node-2", "gen", "5");
        label(&mut s, "t-node-3", "gen", "7");
        label(&mut s, "t-node-3", "zone", "b");
        let aff = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        add_pod(
            &mut s,
            "gt",
            json!({}),
            aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}, {"key": "gen", "operator": "Lt", "values": ["6"]}]}]),
            ),
        );
        add_pod(
            &mut s,
            "notin",
            json!({}),
            aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "NotIn", "values": ["3", "5"]}]}]),
            ),
        );
        add_pod(
            &mut s,
            "dne",
            json!({}),
            aff(
                json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}, {"key": "gen", "operator": "In", "values": ["3"]}]}]),
            ),
        );
        add_pod(
            &mut s,
            "exists",
            json!({}),
            aff(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])),
        );
        add_pod(
            &mut s,
            "field",
            json!({}),
            aff(
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["t-node-2"]}]}]),
            ),
        );
        // Terms are ORed.
        add_pod(
            &mut s,
            "or",
            json!({}),
            aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "In", "values": ["9"]}]}, {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["t-node-1"]}]}]),
            ),
        );
        add_pod(
            &mut s,
            "none",
            json!({}),
            aff(
                json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["100"]}]}]),
            ),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "gt").as_deref(), Some("t-node-2"));
        assert_eq!(node_of(&s, "notin").as_deref(), Some("t-node-3"));
        assert_eq!(node_of(&s, "dne").as_deref(), Some("t-node-1"));
        assert_eq!(node_of(&s, "exists").as_deref(), Some("t-node-3"));
        assert_eq!(node_of(&s, "field").as_deref(), Some("t-node-2"));
        assert_eq!(node_of(&s, "or").as_deref(), Some("t-node-1"));
        assert_eq!(node_of(&s, "none"), None);
        assert!(
            scheduled(&s, "none")
                .message
                .unwrap()
                .contains("3 node(s) didn't match Pod's node affinity/selector")
        );
    }

    #[test]
    fn node_name_is_a_filter_for_pods_created_with_it_unbound() {
        // A pod that names a node is bound by the API (no scheduling); the
        // NodeName filter still words a mismatch for completeness.
        assert_eq!(
            fit_error(2, &[Reason::NodeName, Reason::NodeName]),
            "0/2 nodes are available: 2 node(s) didn't match the requested node name. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        assert_eq!(fit_error(0, &[]), "no nodes available to schedule pods");
    }

    #[test]
    fn topology_spread_do_not_schedule() {
        let mut s = cluster(3);
        let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}],
            "nodeSelector": {"pool": "a"}});
        // Only nodes 1 and 2 are in pool a; node 1 already has two web pods.
        label(&mut s, "t-node-1", "pool", "a");
        label(&mut s, "t-node-2", "pool", "a");
        add_pod(
            &mut s,
            "old1",
            json!({"app": "web"}),
            json!({"nodeName": "t-node-1"}),
        );
        add_pod(
            &mut s,
            "old2",
            json!({"app": "web"}),
            json!({"nodeName": "t-node-1"}),
        );
        add_pod(&mut s, "new1", json!({"app": "web"}), spread.clone());
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "new1").as_deref(), Some("t-node-2"));
        // 2/1: the next must go to node 2 as well (node 1 would make skew 2);
        // then 2/2, and a fifth may go to either.
        add_pod(&mut s, "new2", json!({"app": "web"}), spread.clone());
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "new2").as_deref(), Some("t-node-2"));
        // Make node 2 unschedulable: node 1 alone would be skew 3-... → unschedulable.
        edit_node(&mut s, "t-node-2", |n| {
            n.spec.as_mut().unwrap().unschedulable = Some(true)
        });
        add_pod(&mut s, "new3", json!({"app": "web"}), spread.clone());
        add_pod(&mut s, "new4", json!({"app": "web"}), spread);
        schedule(&mut s, SystemTime::now());
        // 3 on node 1 vs 2 on node 2: skew 1, allowed; then 4 vs 2: not.
        assert_eq!(node_of(&s, "new3").as_deref(), Some("t-node-1"));
        assert_eq!(node_of(&s, "new4"), None);
        assert_eq!(
            scheduled(&s, "new4").message.as_deref(),
            Some(
                "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't match pod topology spread constraints, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling."
            )
        );
    }

    #[test]
    fn spread_missing_label_and_schedule_anyway() {
        let mut s = cluster(2);
        label(&mut s, "t-node-2", "zone", "z1");
        add_pod(
            &mut s,
            "z",
            json!({"app": "z"}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "z"}}}]}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "z").as_deref(), Some("t-node-2"));
        // ScheduleAnyway only scores: node 1 has the fewest matching pods.
        let mut s = cluster(2);
        add_pod(
            &mut s,
            "a1",
            json!({"app": "a"}),
            json!({"nodeName": "t-node-1"}),
        );
        add_pod(
            &mut s,
            "o1",
            json!({"app": "o"}),
            json!({"nodeName": "t-node-2"}),
        );
        add_pod(
            &mut s,
            "o2",
            json!({"app": "o"}),
            json!({"nodeName": "t-node-2"}),
        );
        add_pod(
            &mut s,
            "a2",
            json!({"app": "a"}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "a"}}}]}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "a2").as_deref(), Some("t-node-2"));
    }

    #[test]
    fn preferred_node_affinity_wins_over_load() {
        let mut s = cluster(2);
        label(&mut s, "t-node-2", "disk", "ssd");
        add_pod(&mut s, "x", json!({}), json!({"nodeName": "t-node-2"}));
        add_pod(
            &mut s,
            "p",
            json!({}),
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
        );
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "p").as_deref(), Some("t-node-2"));
    }

    #[test]
    fn pod_anti_affinity_on_hostname() {
        let mut s = cluster(2);
        let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "dns"}}}]}}});
        for i in 0..3 {
            add_pod(
                &mut s,
                &format!("d{i}"),
                json!({"app": "dns"}),
                anti.clone(),
            );
        }
        schedule(&mut s, SystemTime::now());
        let a = node_of(&s, "d0").unwrap();
        let b = node_of(&s, "d1").unwrap();
        assert_ne!(a, b);
        assert_eq!(node_of(&s, "d2"), None);
        assert_eq!(
            scheduled(&s, "d2").message.as_deref(),
            Some(
                "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
            )
        );
        // The existing pods' anti-affinity keeps a matching newcomer off them.
        add_pod(&mut s, "plain", json!({"app": "dns"}), json!({}));
        schedule(&mut s, SystemTime::now());
        assert_eq!(node_of(&s, "plain"), None);
        assert!(
            scheduled(&s, "plain")
                .message
                .unwrap()
                .contains("2 node(s) didn't satisfy existing pods anti-affinity rules")
        );
    }

    #[test]
    fn a_controllers_pods_spread_before_load_counts() {
        // Two replicas of one ReplicaSet go to different nodes even when
        // another pod makes node 2 busier.
        let mut s = cluster(2);
        add_pod(&mut s, "other", json!({}), json!({"nodeName": "t-node-2"}));
        for i in 0..2 {
            let v = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("r{i}"), "namespace": "default",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": "x", "command": ["x"]}]}});
            s.create(Object::from_json(Kind::Pod, v).unwrap()).unwrap();
        }
        schedule(&mut s, SystemTime::now());
        assert_ne!(node_of(&s, "r0"), node_of(&s, "r1"));
    }

    #[test]
    fn deleted_pods_without_a_kubelet_go_at_once() {
        let mut s = cluster(1);
        add_pod(&mut s, "p", json!({}), json!({"nodeSelector": {"x": "y"}}));
        schedule(&mut s, SystemTime::now());
        let mut p = pod(&s, "p");
        p.metadata.deletion_timestamp = Some(crate::model::now_time());
        s.update(Object::Pod(Box::new(p)));
        schedule(&mut s, SystemTime::now());
        assert!(s.get(&Key::new(Kind::Pod, "default", "p")).is_none());
    }
}
