//! The StatefulSet controller: pods with stable names `<set>-<ordinal>`,
//! created in order, removed from the highest ordinal down, updated in
//! reverse ordinal order — as Kubernetes' `stateful_set_control.go` does.
//!
//! [`plan`] is the pure decision (replicas + observed pods → steps), tested
//! table-driven below; [`statefulsets`] applies it to the store and writes
//! the status. Revisions are named `<set>-<template hash>` and stamped on
//! pods as `controller-revision-hash`, as Kubernetes does; lab keeps no
//! ControllerRevision objects: the template of the current (old) revision,
//! needed only to re-create a deleted pod below the partition, is read back
//! from a pod still at that revision.

use super::workload::{is_terminating, mark_deleted, pod_ready, template_hash};
use crate::model::{Kind, Object, Pod, StatefulSet};
use crate::store::{Key, Store};
use k8s_openapi::api::apps::v1::StatefulSetStatus;
use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, PodTemplateSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What the controller needs to know of a StatefulSet's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub replicas: i32,
    /// `spec.ordinals.start`.
    pub start: i32,
    /// `podManagementPolicy: Parallel` (else OrderedReady).
    pub parallel: bool,
    /// `updateStrategy.type: RollingUpdate` (else OnDelete).
    pub rolling: bool,
    /// `updateStrategy.rollingUpdate.partition`.
    pub partition: i32,
}

/// One existing pod of the set, by ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replica {
    pub terminating: bool,
    /// Running and Ready.
    pub healthy: bool,
    /// Phase Failed or Succeeded: replaced.
    pub failed: bool,
    /// At the update revision.
    pub updated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create the pod of this ordinal, from the update revision's template
    /// (`update`) or the current one's (below the partition).
    Create { ordinal: i32, update: bool },
    /// Delete the pod of this ordinal (scale down, rolling update, failed).
    Delete(i32),
}

/// One pass of the controller's decision, in Kubernetes' order: replicas
/// in ascending ordinal order (create the missing; OrderedReady waits for
/// each to be Running and Ready before the next), then condemned pods
/// (ordinals beyond the range) from the highest down (OrderedReady: one
/// at a time, after every replica is healthy), then the rolling update
/// from the highest ordinal down to the partition, one pod at a time,
/// each waiting for the one above it to be healthy again.
pub fn plan(spec: &Spec, pods: &BTreeMap<i32, Replica>) -> Vec<Step> {
    let ordered = !spec.parallel;
    let end = spec.start + spec.replicas.max(0);
    let mut steps = Vec::new();
    for ordinal in spec.start..end {
        match pods.get(&ordinal) {
            None => {
                steps.push(Step::Create {
                    ordinal,
                    update: !(spec.rolling && ordinal < spec.partition),
                });
                if ordered {
                    return steps;
                }
            }
            Some(p) if p.failed && !p.terminating => {
                steps.push(Step::Delete(ordinal));
                if ordered {
                    return steps;
                }
            }
            Some(p) if ordered && (p.terminating || !p.healthy) => return steps,
            Some(_) => {}
        }
    }
    let condemned: Vec<(i32, &Replica)> = pods
        .iter()
        .rev()
        .filter(|(o, _)| **o < spec.start || **o >= end)
        .map(|(o, p)| (*o, p))
        .collect();
    for (ordinal, p) in &condemned {
        if p.terminating {
            if ordered {
                return steps;
            }
            continue;
        }
        steps.push(Step::Delete(*ordinal));
        if ordered {
            return steps;
        }
    }
    if !spec.rolling || (ordered && !steps.is_empty()) {
        return steps;
    }
    let low = spec.start.max(spec.partition);
    for ordinal in (low..end).rev() {
        let Some(p) = pods.get(&ordinal) else {
            return steps;
        };
        if !p.updated && !p.terminating {
            steps.push(Step::Delete(ordinal));
            return steps;
        }
        if !p.healthy || p.terminating {
            return steps;
        }
    }
    steps
}

fn owner_ref(s: &StatefulSet) -> OwnerReference {
    OwnerReference {
        api_version: Kind::StatefulSet.api_version().into(),
        kind: Kind::StatefulSet.as_str().into(),
        name: s.metadata.name.clone().unwrap_or_default(),
        uid: s.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The revision name of a template: `<set>-<hash>`.
pub fn revision_name(set: &str, t: &PodTemplateSpec) -> String {
    format!("{set}-{}", template_hash(t))
}

/// The ordinal of a pod of set `set` (`db-3` → 3), if its name is one.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty() || (rest.len() > 1 && rest.starts_with('0')) {
        return None;
    }
    rest.parse::<i32>().ok().filter(|n| *n >= 0)
}

/// The claim name of a volume claim template for one ordinal, as
/// Kubernetes names PVCs: `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The pod of `ordinal` made from `template` at `revision`
/// (Kubernetes' `newStatefulSetPod`).
pub fn new_pod(s: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let set = s.metadata.name.clone().unwrap_or_default();
    let name = format!("{set}-{ordinal}");
    let mut meta = template.metadata.clone().unwrap_or_default();
    meta.name = Some(name.clone());
    meta.generate_name = None;
    meta.namespace = s.metadata.namespace.clone();
    meta.owner_references = Some(vec![owner_ref(s)]);
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name);
    spec.subdomain = s.spec.service_name.clone().filter(|n| !n.is_empty());
    for c in s.spec.volume_claim_templates.iter().flatten() {
        let Some(t) = c.metadata.name.as_deref() else {
            continue;
        };
        let vols = spec.volumes.get_or_insert_with(Vec::new);
        vols.retain(|v| v.name != t);
        vols.push(Volume {
            name: t.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(t, &set, ordinal),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    Pod {
        metadata: meta,
        spec: Some(spec),
        status: None,
    }
}

/// The template a pod was made from (the inverse of [`new_pod`]): used to
/// re-create a pod at the current revision while an update is partitioned.
fn template_of(pod: &Pod) -> PodTemplateSpec {
    let mut meta = ObjectMeta {
        labels: pod.metadata.labels.clone(),
        annotations: pod.metadata.annotations.clone(),
        ..Default::default()
    };
    if let Some(l) = meta.labels.as_mut() {
        for k in [POD_NAME_LABEL, POD_INDEX_LABEL, REVISION_LABEL] {
            l.remove(k);
        }
    }
    if let Some(a) = meta.annotations.as_mut() {
        a.retain(|k, _| !k.starts_with("lab.dev/"));
        if a.is_empty() {
            meta.annotations = None;
        }
    }
    let mut spec = pod.spec.clone().unwrap_or_default();
    spec.hostname = None;
    spec.subdomain = None;
    spec.node_name = None;
    PodTemplateSpec {
        metadata: Some(meta),
        spec: Some(spec),
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// One pass over every StatefulSet.
pub fn statefulsets(store: &mut Store) {
    for key in store.keys(Kind::StatefulSet) {
        let Some(Object::StatefulSet(s)) = store.get(&key).cloned() else {
            continue;
        };
        if is_terminating(&s.metadata) {
            continue;
        }
        statefulset(store, &s);
    }
}

fn owned(store: &Store, ns: &str, uid: &str, set: &str) -> BTreeMap<i32, Pod> {
    store
        .list(Kind::Pod, Some(ns))
        .filter_map(|o| match o {
            Object::Pod(p)
                if p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true) && r.uid == uid) =>
            {
                let ord = ordinal_of(set, p.metadata.name.as_deref()?)?;
                Some((ord, (**p).clone()))
            }
            _ => None,
        })
        .collect()
}

fn revision_of(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

fn statefulset(store: &mut Store, s: &StatefulSet) {
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let uid = s.metadata.uid.clone().unwrap_or_default();
    let set = s.metadata.name.clone().unwrap_or_default();
    let update_revision = revision_name(&set, &s.spec.template);
    let current_revision = s
        .status
        .as_ref()
        .and_then(|st| st.current_revision.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.clone());
    let rolling = s
        .spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate";
    let spec = Spec {
        replicas: s.spec.replicas.unwrap_or(1),
        start: s.spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        parallel: s.spec.pod_management_policy.as_deref() == Some("Parallel"),
        rolling,
        partition: s
            .spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0),
    };

    let pods = owned(store, &ns, &uid, &set);
    let view: BTreeMap<i32, Replica> = pods
        .iter()
        .map(|(o, p)| {
            (
                *o,
                Replica {
                    terminating: is_terminating(&p.metadata),
                    healthy: phase(p) == "Running" && pod_ready(p),
                    failed: matches!(phase(p), "Failed" | "Succeeded"),
                    updated: revision_of(p) == update_revision,
                },
            )
        })
        .collect();
    for step in plan(&spec, &view) {
        match step {
            Step::Create { ordinal, update } => {
                let current = (!update && current_revision != update_revision)
                    .then(|| {
                        pods.values()
                            .find(|p| revision_of(p) == current_revision)
                            .map(template_of)
                    })
                    .flatten();
                let pod = match &current {
                    Some(t) => new_pod(s, t, &current_revision, ordinal),
                    None => new_pod(s, &s.spec.template, &update_revision, ordinal),
                };
                if let Err(e) = store.create(Object::Pod(Box::new(pod))) {
                    // Kubernetes retries with back-off and records an event;
                    // this pass runs on every change, so say it quietly.
                    tracing::debug!(pod = %e.name(), set = %set, "a pod of that name exists and is not the set's");
                }
            }
            Step::Delete(ordinal) => {
                let key = Key::new(Kind::Pod, &ns, &format!("{set}-{ordinal}"));
                mark_deleted(store, &key, None);
            }
        }
    }

    // Status (Kubernetes' computeReplicaStatus + completeRollingUpdate).
    let pods = owned(store, &ns, &uid, &set);
    let mut st = StatefulSetStatus {
        observed_generation: s.metadata.generation,
        current_revision: Some(current_revision.clone()),
        update_revision: Some(update_revision.clone()),
        collision_count: Some(0),
        ..Default::default()
    };
    let (mut ready, mut current, mut updated) = (0, 0, 0);
    for p in pods.values() {
        if !phase(p).is_empty() {
            st.replicas += 1;
        }
        if phase(p) == "Running" && pod_ready(p) {
            ready += 1;
        }
        if !phase(p).is_empty() && !is_terminating(&p.metadata) {
            if revision_of(p) == current_revision {
                current += 1;
            }
            if revision_of(p) == update_revision {
                updated += 1;
            }
        }
    }
    if rolling && updated == st.replicas && ready == st.replicas && st.replicas == spec.replicas {
        current = updated;
        st.current_revision = Some(update_revision.clone());
    }
    st.ready_replicas = Some(ready);
    st.available_replicas = Some(ready);
    st.current_replicas = Some(current);
    st.updated_replicas = Some(updated);
    if s.status.as_ref() != Some(&st) {
        let mut s2 = s.clone();
        s2.status = Some(st);
        store.update(Object::StatefulSet(Box::new(s2)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    const R: Replica = Replica {
        terminating: false,
        healthy: true,
        failed: false,
        updated: true,
    };
    const UNREADY: Replica = Replica {
        healthy: false,
        ..R
    };
    const GOING: Replica = Replica {
        terminating: true,
        healthy: false,
        ..R
    };
    const OLD: Replica = Replica {
        updated: false,
        ..R
    };
    const FAILED: Replica = Replica {
        failed: true,
        healthy: false,
        ..R
    };

    fn spec(replicas: i32) -> Spec {
        Spec {
            replicas,
            start: 0,
            parallel: false,
            rolling: true,
            partition: 0,
        }
    }
    fn pods(list: &[(i32, Replica)]) -> BTreeMap<i32, Replica> {
        list.iter().copied().collect()
    }
    fn create(ordinal: i32) -> Step {
        Step::Create {
            ordinal,
            update: true,
        }
    }

    /// Each case: what Kubernetes' StatefulSet controller does in one sync.
    #[test]
    fn plan_follows_kubernetes() {
        let parallel = Spec {
            parallel: true,
            ..spec(3)
        };
        let on_delete = Spec {
            rolling: false,
            ..spec(3)
        };
        let partitioned = Spec {
            partition: 2,
            ..spec(4)
        };
        let from_five = Spec {
            start: 5,
            ..spec(2)
        };
        type Case = (&'static str, Spec, BTreeMap<i32, Replica>, Vec<Step>);
        let cases: Vec<Case> = vec![
            (
                "OrderedReady creates only the first",
                spec(3),
                pods(&[]),
                vec![create(0)],
            ),
            (
                "OrderedReady waits for 0 to be Running+Ready",
                spec(3),
                pods(&[(0, UNREADY)]),
                vec![],
            ),
            ("then creates 1", spec(3), pods(&[(0, R)]), vec![create(1)]),
            ("then 2", spec(3), pods(&[(0, R), (1, R)]), vec![create(2)]),
            ("steady", spec(3), pods(&[(0, R), (1, R), (2, R)]), vec![]),
            (
                "a deleted db-0 comes back as db-0",
                spec(3),
                pods(&[(1, R), (2, R)]),
                vec![create(0)],
            ),
            (
                "a terminating db-0 is waited for, not replaced",
                spec(3),
                pods(&[(0, GOING), (1, R), (2, R)]),
                vec![],
            ),
            (
                "Parallel creates all at once",
                parallel,
                pods(&[]),
                vec![create(0), create(1), create(2)],
            ),
            (
                "Parallel does not wait for unready pods",
                parallel,
                pods(&[(0, UNREADY)]),
                vec![create(1), create(2)],
            ),
            (
                "scale down removes the highest ordinal first",
                spec(1),
                pods(&[(0, R), (1, R), (2, R)]),
                vec![Step::Delete(2)],
            ),
            (
                "one at a time: wait for 2 to be gone",
                spec(1),
                pods(&[(0, R), (1, R), (2, GOING)]),
                vec![],
            ),
            (
                "then 1",
                spec(1),
                pods(&[(0, R), (1, R)]),
                vec![Step::Delete(1)],
            ),
            (
                "OrderedReady scale down waits for unhealthy replicas",
                spec(1),
                pods(&[(0, UNREADY), (1, R)]),
                vec![],
            ),
            (
                "Parallel scale down removes all condemned at once",
                Spec {
                    parallel: true,
                    ..spec(1)
                },
                pods(&[(0, R), (1, R), (2, R)]),
                vec![Step::Delete(2), Step::Delete(1)],
            ),
            (
                "rolling update starts at the highest ordinal",
                spec(3),
                pods(&[(0, OLD), (1, OLD), (2, OLD)]),
                vec![Step::Delete(2)],
            ),
            (
                "the updated pod is re-created at the update revision",
                spec(3),
                pods(&[(0, OLD), (1, OLD)]),
                vec![create(2)],
            ),
            (
                "waits for the updated pod to be Ready",
                spec(3),
                pods(&[(0, OLD), (1, OLD), (2, UNREADY)]),
                vec![],
            ),
            (
                "then the next lower ordinal",
                spec(3),
                pods(&[(0, OLD), (1, OLD), (2, R)]),
                vec![Step::Delete(1)],
            ),
            (
                "partition: ordinals below it stay",
                partitioned,
                pods(&[(0, OLD), (1, OLD), (2, R), (3, R)]),
                vec![],
            ),
            (
                "partition: a deleted pod below it comes back at the current revision",
                partitioned,
                pods(&[(1, OLD), (2, R), (3, R)]),
                vec![Step::Create {
                    ordinal: 0,
                    update: false,
                }],
            ),
            (
                "OnDelete never deletes for an update",
                on_delete,
                pods(&[(0, OLD), (1, OLD), (2, OLD)]),
                vec![],
            ),
            (
                "OnDelete re-creates at the update revision",
                on_delete,
                pods(&[(0, OLD), (2, OLD)]),
                vec![create(1)],
            ),
            (
                "a failed pod is deleted to be re-created",
                spec(2),
                pods(&[(0, FAILED), (1, R)]),
                vec![Step::Delete(0)],
            ),
            (
                "ordinals.start shifts the range",
                from_five,
                pods(&[(5, R)]),
                vec![create(6)],
            ),
            (
                "ordinals.start: pods below the range are condemned",
                from_five,
                pods(&[(0, R), (5, R), (6, R)]),
                vec![Step::Delete(0)],
            ),
            (
                "scale to zero",
                spec(0),
                pods(&[(0, R)]),
                vec![Step::Delete(0)],
            ),
        ];
        for (name, spec, pods, want) in cases {
            assert_eq!(plan(&spec, &pods), want, "{name}");
        }
    }

    #[test]
    fn ordinals_parse_strictly() {
        assert_eq!(ordinal_of("db", "db-0"), Some(0));
        assert_eq!(ordinal_of("db", "db-12"), Some(12));
        for bad in ["db-", "db-01", "db-x", "db0", "dbx-1", "db--1", "db-1-2"] {
            assert_eq!(ordinal_of("db", bad), None, "{bad}");
        }
        assert_eq!(ordinal_of("db-1", "db-1-2"), Some(2));
    }

    fn sts(replicas: i32, arg: &str) -> Object {
        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {
                    "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": [arg],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]
            }
        });
        Object::from_json(Kind::StatefulSet, v).unwrap()
    }

    /// Stand-in for the runtime: pods start Running and Ready, terminating
    /// ones are removed.
    fn kubelet(store: &mut Store) {
        for key in store.keys(Kind::Pod) {
            let Some(Object::Pod(mut p)) = store.get(&key).cloned() else {
                continue;
            };
            if is_terminating(&p.metadata) {
                store.remove(&key);
                continue;
            }
            p.status = Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
            store.update(Object::Pod(p));
        }
    }

    fn names(store: &Store) -> Vec<String> {
        store
            .list(Kind::Pod, Some("default"))
            .map(|o| o.name().to_string())
            .collect()
    }

    fn get(store: &Store) -> StatefulSet {
        match store.get(&Key::new(Kind::StatefulSet, "default", "db")) {
            Some(Object::StatefulSet(s)) => (**s).clone(),
            _ => panic!("no statefulset"),
        }
    }

    #[test]
    fn pods_get_identity_and_claims() {
        let mut s = Store::default();
        s.create(sts(3, "pause")).unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            statefulsets(&mut s);
            seen.push(names(&s));
            kubelet(&mut s);
        }
        assert_eq!(seen[0], ["db-0"]);
        assert_eq!(seen[1], ["db-0", "db-1"]);
        assert_eq!(seen[2], ["db-0", "db-1", "db-2"]);
        let Some(Object::Pod(p)) = s.get(&Key::new(Kind::Pod, "default", "db-1")) else {
            panic!()
        };
        let l = p.metadata.labels.as_ref().unwrap();
        assert_eq!(l[POD_NAME_LABEL], "db-1");
        assert_eq!(l[POD_INDEX_LABEL], "1");
        assert_eq!(l["app"], "db");
        assert!(l[REVISION_LABEL].starts_with("db-"), "{l:?}");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("db-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let v = spec.volumes.as_ref().unwrap();
        assert_eq!(
            v[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "data-db-1"
        );
        let st = get(&s).status.unwrap();
        assert_eq!(
            (
                st.replicas,
                st.ready_replicas,
                st.current_replicas,
                st.updated_replicas
            ),
            (3, Some(3), Some(3), Some(3))
        );
        assert_eq!(st.current_revision, st.update_revision);
        assert_eq!(
            st.current_revision.as_deref(),
            Some(l[REVISION_LABEL].as_str())
        );
    }

    #[test]
    fn rolling_update_goes_in_reverse_order_and_completes() {
        let mut s = Store::default();
        s.create(sts(3, "pause")).unwrap();
        for _ in 0..5 {
            statefulsets(&mut s);
            kubelet(&mut s);
        }
        let old = get(&s).status.unwrap().current_revision.unwrap();
        let mut d = get(&s);
        d.spec.template.spec.as_mut().unwrap().containers[0].args = Some(vec!["netexec".into()]);
        s.update(Object::StatefulSet(Box::new(d)));
        let mut deleted = Vec::new();
        for _ in 0..12 {
            statefulsets(&mut s);
            for o in s.list(Kind::Pod, None) {
                if is_terminating(o.meta()) {
                    deleted.push(o.name().to_string());
                }
            }
            kubelet(&mut s);
        }
        assert_eq!(deleted, ["db-2", "db-1", "db-0"]);
        let st = get(&s).status.unwrap();
        assert_ne!(st.current_revision.as_deref(), Some(old.as_str()));
        assert_eq!(st.current_revision, st.update_revision);
        assert_eq!(st.updated_replicas, Some(3));
    }

    #[test]
    fn partitioned_pod_comes_back_at_the_old_revision() {
        let mut s = Store::default();
        s.create(sts(3, "pause")).unwrap();
        for _ in 0..5 {
            statefulsets(&mut s);
            kubelet(&mut s);
        }
        let old = get(&s).status.unwrap().current_revision.unwrap();
        let mut d = get(&s);
        d.spec.template.spec.as_mut().unwrap().containers[0].args = Some(vec!["netexec".into()]);
        d.spec.update_strategy = Some(k8s_openapi::api::apps::v1::StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(
                k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
                    partition: Some(2),
                    max_unavailable: None,
                },
            ),
        });
        s.update(Object::StatefulSet(Box::new(d)));
        for _ in 0..6 {
            statefulsets(&mut s);
            kubelet(&mut s);
        }
        mark_deleted(&mut s, &Key::new(Kind::Pod, "default", "db-0"), None);
        for _ in 0..3 {
            statefulsets(&mut s);
            kubelet(&mut s);
        }
        let rev = |n: &str| match s.get(&Key::new(Kind::Pod, "default", n)) {
            Some(Object::Pod(p)) => revision_of(p).to_string(),
            _ => panic!("{n} missing"),
        };
        assert_eq!(rev("db-0"), old);
        assert_eq!(rev("db-1"), old);
        assert_ne!(rev("db-2"), old);
        let Some(Object::Pod(p)) = s.get(&Key::new(Kind::Pod, "default", "db-0")) else {
            panic!()
        };
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].args.as_deref(),
            Some(&["pause".to_string()][..])
        );
        let st = get(&s).status.unwrap();
        assert_eq!(st.current_revision.as_deref(), Some(old.as_str()));
        assert_eq!(
            (st.current_replicas, st.updated_replicas),
            (Some(2), Some(1))
        );
    }

    #[test]
    fn deleting_the_set_cascades() {
        let mut s = Store::default();
        s.create(sts(2, "pause")).unwrap();
        for _ in 0..3 {
            statefulsets(&mut s);
            kubelet(&mut s);
        }
        s.remove(&Key::new(Kind::StatefulSet, "default", "db"));
        super::super::workload::garbage_collect(&mut s);
        kubelet(&mut s);
        assert!(names(&s).is_empty());
    }
}
