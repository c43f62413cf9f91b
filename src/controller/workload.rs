//! Deployment → ReplicaSets → Pods, and garbage collection of owned objects.

use super::events;
use crate::model::labels::Selector;
use crate::model::{Deployment, Kind, Object, Pod, ReplicaSet};
use crate::store::{Key, Store};
use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentStatus, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::time::SystemTime;

const HASH_LABEL: &str = "pod-template-hash";
const REVISION: &str = "deployment.kubernetes.io/revision";
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a 32 of the template's JSON, encoded with Kubernetes' safe alphabet
/// (`7c9d8f6b5`-style).
pub fn template_hash(t: &PodTemplateSpec) -> String {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut()
        && let Some(l) = m.labels.as_mut()
    {
        l.remove(HASH_LABEL);
    }
    let bytes = serde_json::to_vec(&t).unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Five random characters of Kubernetes' safe alphabet.
pub fn random_suffix() -> String {
    (0..5)
        .map(|_| ALPHANUMS[rand::random_range(0..ALPHANUMS.len())] as char)
        .collect()
}

fn owner_ref(kind: Kind, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: kind.api_version().into(),
        kind: kind.as_str().into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

pub fn is_terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

pub fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Mark an object for graceful deletion (the runtime finishes it).
pub fn mark_deleted(store: &mut Store, key: &Key, grace: Option<i64>) -> bool {
    let Some(mut obj) = store.get(key).cloned() else {
        return false;
    };
    if is_terminating(obj.meta()) {
        return false;
    }
    if key.kind != Kind::Pod {
        store.remove(key);
        return true;
    }
    let grace = grace.or_else(|| match &obj {
        Object::Pod(p) => p
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds),
        _ => None,
    });
    let meta = obj.meta_mut();
    meta.deletion_timestamp = Some(crate::model::now_time());
    meta.deletion_grace_period_seconds = Some(grace.unwrap_or(30));
    store.update(obj)
}

fn scaled(v: Option<&IntOrString>, total: i32, default_pct: i32, round_up: bool) -> i32 {
    match v {
        Some(IntOrString::Int(n)) => *n,
        Some(IntOrString::String(s)) => {
            let pct = s
                .trim_end_matches('%')
                .parse::<i32>()
                .unwrap_or(default_pct);
            let x = total * pct;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
        None => {
            let x = total * default_pct;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
    }
}

struct RsView {
    key: Key,
    replicas: i32,
    hash: String,
    revision: i64,
    pods: i32,
    ready: i32,
}

fn owned_pods<'a>(
    store: &'a Store,
    ns: &'a str,
    uid: &'a str,
) -> impl Iterator<Item = &'a Pod> + 'a {
    store
        .list(Kind::Pod, Some(ns))
        .filter_map(move |o| match o {
            Object::Pod(p) if controller_uid(&p.metadata) == Some(uid) => Some(&**p),
            _ => None,
        })
}

/// One pass of the Deployment controller over every Deployment.
pub fn deployments(store: &mut Store) {
    for key in store.keys(Kind::Deployment) {
        let Some(Object::Deployment(d)) = store.get(&key).cloned() else {
            continue;
        };
        deployment(store, &d);
    }
}

fn deployment(store: &mut Store, d: &Deployment) {
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    let want = d.spec.replicas.unwrap_or(1);
    let hash = template_hash(&d.spec.template);

    let mut sets: Vec<RsView> = store
        .list(Kind::ReplicaSet, Some(&ns))
        .filter_map(|o| match o {
            Object::ReplicaSet(rs) if controller_uid(&rs.metadata) == Some(uid.as_str()) => {
                Some(rs)
            }
            _ => None,
        })
        .map(|rs| {
            let rs_uid = rs.metadata.uid.clone().unwrap_or_default();
            let pods: Vec<&Pod> = owned_pods(store, &ns, &rs_uid)
                .filter(|p| !is_terminating(&p.metadata))
                .collect();
            RsView {
                key: Key::of(&Object::ReplicaSet(rs.clone())),
                replicas: rs.spec.replicas.unwrap_or(1),
                hash: rs
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(HASH_LABEL))
                    .cloned()
                    .unwrap_or_default(),
                revision: rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION))
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                pods: pods.len() as i32,
                ready: pods.iter().filter(|p| pod_ready(p)).count() as i32,
            }
        })
        .collect();

    // The new ReplicaSet: create it if the template changed.
    if !sets.iter().any(|s| s.hash == hash) {
        let revision = sets.iter().map(|s| s.revision).max().unwrap_or(0) + 1;
        let mut template = d.spec.template.clone();
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{name}-{hash}")),
                namespace: Some(ns.clone()),
                labels: meta.labels.clone(),
                annotations: Some(BTreeMap::from([
                    (REVISION.to_string(), revision.to_string()),
                    (
                        "deployment.kubernetes.io/desired-replicas".to_string(),
                        want.to_string(),
                    ),
                ])),
                owner_references: Some(vec![owner_ref(Kind::Deployment, &d.metadata)]),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                selector,
                template: Some(template),
                min_ready_seconds: None,
            },
            status: None,
        };
        if let Ok(key) = store.create(Object::ReplicaSet(Box::new(rs))) {
            sets.push(RsView {
                key,
                replicas: 0,
                hash: hash.clone(),
                revision,
                pods: 0,
                ready: 0,
            });
        }
    }
    let (new, old): (Vec<&RsView>, Vec<&RsView>) = sets.iter().partition(|s| s.hash == hash);
    let Some(new) = new.first() else { return };
    let mut targets: BTreeMap<Key, i32> =
        sets.iter().map(|s| (s.key.clone(), s.replicas)).collect();

    let recreate = d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let old_pods: i32 = old.iter().map(|s| s.pods).sum();
    if recreate {
        for s in &old {
            targets.insert(s.key.clone(), 0);
        }
        targets.insert(new.key.clone(), if old_pods == 0 { want } else { 0 });
    } else {
        let ru = d
            .spec
            .strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref());
        let mut surge = scaled(ru.and_then(|r| r.max_surge.as_ref()), want, 25, true);
        let unavailable = scaled(ru.and_then(|r| r.max_unavailable.as_ref()), want, 25, false);
        if surge == 0 && unavailable == 0 {
            surge = 1;
        }
        let total: i32 = sets.iter().map(|s| s.replicas.max(s.pods)).sum();
        // Scale the new ReplicaSet up within the surge budget (or down to want).
        let mut new_target = new.replicas;
        if new_target > want {
            new_target = want;
        } else if new_target < want {
            let room = (want + surge - total).max(0);
            new_target = (new_target + room).min(want);
        }
        if old.is_empty() {
            new_target = want;
        }
        targets.insert(new.key.clone(), new_target);
        // Scale old ones down while enough pods stay available.
        let ready: i32 = sets.iter().map(|s| s.ready).sum();
        let min_available = want - unavailable;
        let mut can_remove = (ready - min_available).max(0);
        // Old pods that are not ready can always go.
        let mut olds: Vec<&&RsView> = old.iter().collect();
        olds.sort_by_key(|s| s.revision);
        for s in olds {
            let unready = (s.pods - s.ready).max(0);
            let remove_ready = can_remove.min(s.ready);
            can_remove -= remove_ready;
            let t = (s.replicas.min(s.pods) - unready - remove_ready).max(0);
            let t = if new.ready >= want { 0 } else { t };
            targets.insert(s.key.clone(), t);
        }
    }
    for (key, t) in &targets {
        if let Some(Object::ReplicaSet(mut rs)) = store.get(key).cloned()
            && rs.spec.replicas != Some(*t)
        {
            let from = rs.spec.replicas.unwrap_or(0);
            let (reason, dir) = if *t > from {
                ("ScalingReplicaSet", "up")
            } else {
                ("ScalingReplicaSet", "down")
            };
            let note = events::Note::normal(
                reason,
                format!("Scaled {dir} replica set {} from {from} to {t}", key.name),
            );
            events::record(
                store,
                &Object::Deployment(Box::new(d.clone())),
                note,
                events::DEPLOYMENT_CONTROLLER,
                None,
                SystemTime::now(),
            );
            rs.spec.replicas = Some(*t);
            if *t > 0 || rs.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL)) == Some(&hash)
            {
                rs.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(
                        "deployment.kubernetes.io/desired-replicas".into(),
                        want.to_string(),
                    );
            }
            store.update(Object::ReplicaSet(rs));
        }
    }

    // Status.
    let total_pods: i32 = sets.iter().map(|s| s.pods).sum();
    let ready: i32 = sets.iter().map(|s| s.ready).sum();
    let updated = new.pods;
    let available = ready;
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(total_pods),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((want - available).max(0)).filter(|u| *u > 0),
        ..Default::default()
    };
    let old_conditions = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        let prev = old_conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some(type_));
        let status = if ok { "True" } else { "False" };
        let unchanged = prev.is_some_and(|p| {
            p.status.as_deref() == Some(status) && p.reason.as_deref() == Some(reason)
        });
        DeploymentCondition {
            type_: Some(type_.into()),
            status: Some(status.into()),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: if unchanged {
                prev.and_then(|p| p.last_transition_time.clone())
            } else {
                Some(crate::model::now_time())
            },
            last_update_time: if unchanged {
                prev.and_then(|p| p.last_update_time.clone())
            } else {
                Some(crate::model::now_time())
            },
        }
    };
    let rs_name = &new.key.name;
    status.conditions = Some(vec![
        cond(
            "Available",
            available >= want - scaled(None, want, 25, false),
            if available >= want {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            if available >= want {
                "Deployment has minimum availability.".into()
            } else {
                "Deployment does not have minimum availability.".into()
            },
        ),
        cond(
            "Progressing",
            true,
            if updated == want && ready >= want {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            },
            if updated == want && ready >= want {
                format!("ReplicaSet \"{rs_name}\" has successfully progressed.")
            } else {
                format!("ReplicaSet \"{rs_name}\" is progressing.")
            },
        ),
    ]);
    let mut d2 = d.clone();
    if d2.status.as_ref() != Some(&status) {
        d2.status = Some(status);
        store.update(Object::Deployment(Box::new(d2)));
    }
}

/// One pass of the ReplicaSet controller: create or delete pods.
pub fn replicasets(store: &mut Store) {
    for key in store.keys(Kind::ReplicaSet) {
        let Some(Object::ReplicaSet(rs)) = store.get(&key).cloned() else {
            continue;
        };
        replicaset(store, &rs);
    }
}

fn replicaset(store: &mut Store, rs: &ReplicaSet) {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let want = rs.spec.replicas.unwrap_or(1).max(0) as usize;
    let Ok(selector) = Selector::from_label_selector(&rs.spec.selector) else {
        return;
    };
    let mut pods: Vec<Pod> = owned_pods(store, &ns, &uid)
        .filter(|p| !is_terminating(&p.metadata))
        .cloned()
        .collect();
    if pods.len() < want {
        let Some(template) = &rs.spec.template else {
            return;
        };
        for _ in pods.len()..want {
            let mut meta = template.metadata.clone().unwrap_or_default();
            let pod_name = loop {
                let n = format!("{name}-{}", random_suffix());
                if store.get(&Key::new(Kind::Pod, &ns, &n)).is_none() {
                    break n;
                }
            };
            meta.name = Some(pod_name);
            meta.generate_name = Some(format!("{name}-"));
            meta.namespace = Some(ns.clone());
            meta.owner_references = Some(vec![owner_ref(Kind::ReplicaSet, &rs.metadata)]);
            let pod = Pod {
                metadata: meta,
                spec: template.spec.clone(),
                status: None,
            };
            if selector.matches(&pod.metadata.labels.clone().unwrap_or_default()) {
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                let note = match store.create(Object::Pod(Box::new(pod))) {
                    Ok(_) => {
                        events::Note::normal("SuccessfulCreate", format!("Created pod: {pod_name}"))
                    }
                    Err(_) => events::Note::warning(
                        "FailedCreate",
                        format!("Error creating: pods \"{pod_name}\" already exists"),
                    ),
                };
                let rs_obj = Object::ReplicaSet(Box::new(rs.clone()));
                events::record(
                    store,
                    &rs_obj,
                    note,
                    events::REPLICASET_CONTROLLER,
                    None,
                    SystemTime::now(),
                );
            }
        }
    } else if pods.len() > want {
        // Delete not-ready pods first, then the newest.
        pods.sort_by(|a, b| {
            pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
                b.metadata
                    .creation_timestamp
                    .cmp(&a.metadata.creation_timestamp)
            })
        });
        let rs_obj = Object::ReplicaSet(Box::new(rs.clone()));
        for p in pods.iter().take(pods.len() - want) {
            let pod_name = p.metadata.name.as_deref().unwrap_or("");
            let key = Key::new(Kind::Pod, &ns, pod_name);
            if mark_deleted(store, &key, None) {
                let note =
                    events::Note::normal("SuccessfulDelete", format!("Deleted pod: {pod_name}"));
                events::record(
                    store,
                    &rs_obj,
                    note,
                    events::REPLICASET_CONTROLLER,
                    None,
                    SystemTime::now(),
                );
            }
        }
    }
    let all_owned = owned_pods(store, &ns, &uid).count();
    let pods: Vec<&Pod> = owned_pods(store, &ns, &uid)
        .filter(|p| !is_terminating(&p.metadata))
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count() as i32;
    let status = ReplicaSetStatus {
        replicas: pods.len() as i32,
        fully_labeled_replicas: Some(pods.len() as i32),
        ready_replicas: Some(ready),
        available_replicas: Some(ready),
        terminating_replicas: Some((all_owned - pods.len()) as i32),
        observed_generation: rs.metadata.generation,
        conditions: None,
    };
    if rs.status.as_ref() != Some(&status) {
        let mut rs2 = rs.clone();
        rs2.status = Some(status);
        store.update(Object::ReplicaSet(Box::new(rs2)));
    }
}

/// Delete objects whose controlling owner is gone (Deployment → ReplicaSet →
/// Pod cascade, background propagation).
pub fn garbage_collect(store: &mut Store) {
    for kind in [Kind::ReplicaSet, Kind::Pod] {
        for key in store.keys(kind) {
            let Some(obj) = store.get(&key) else { continue };
            let Some(owner) = obj
                .meta()
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .cloned()
            else {
                continue;
            };
            let Some(owner_kind) = Kind::from_resource(&owner.kind) else {
                continue;
            };
            let owner_alive = store
                .get(&Key::new(owner_kind, &key.namespace, &owner.name))
                .is_some_and(|o| o.meta().uid.as_deref() == Some(owner.uid.as_str()));
            if !owner_alive {
                mark_deleted(store, &key, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    fn deploy(replicas: i32, arg: &str) -> Object {
        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "backend", "namespace": "default"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "backend"}},
                "template": {
                    "metadata": {"labels": {"app": "backend"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/e2e-test-images/agnhost:2.47", "args": [arg]}]}
                }
            }
        });
        Object::from_json(Kind::Deployment, v).unwrap()
    }

    fn run(store: &mut Store) {
        for _ in 0..3 {
            garbage_collect(store);
            deployments(store);
            replicasets(store);
        }
    }

    fn live_pods(store: &Store) -> Vec<Pod> {
        store
            .list(Kind::Pod, Some("default"))
            .filter_map(|o| match o {
                Object::Pod(p) if !is_terminating(&p.metadata) => Some((**p).clone()),
                _ => None,
            })
            .collect()
    }

    fn make_all_ready(store: &mut Store) {
        for key in store.keys(Kind::Pod) {
            let Some(Object::Pod(mut p)) = store.get(&key).cloned() else {
                continue;
            };
            p.status = Some(PodStatus {
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

    /// Stand-in for the runtime: finish terminating pods.
    fn reap(store: &mut Store) {
        for key in store.keys(Kind::Pod) {
            if store.get(&key).is_some_and(|o| is_terminating(o.meta())) {
                store.remove(&key);
            }
        }
    }

    #[test]
    fn deployment_creates_pods_with_kubernetes_names() {
        let mut s = Store::default();
        s.create(deploy(3, "netexec")).unwrap();
        run(&mut s);
        let pods = live_pods(&s);
        assert_eq!(pods.len(), 3);
        let rs = s
            .list(Kind::ReplicaSet, Some("default"))
            .next()
            .unwrap()
            .name()
            .to_string();
        assert!(
            rs.starts_with("backend-") && rs.len() > "backend-".len() + 5,
            "{rs}"
        );
        for p in &pods {
            let n = p.metadata.name.as_deref().unwrap();
            assert!(
                n.starts_with(&format!("{rs}-")) && n.len() == rs.len() + 6,
                "{n}"
            );
            assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "backend");
        }
    }

    #[test]
    fn deleted_pod_is_replaced_and_scale_works() {
        let mut s = Store::default();
        s.create(deploy(3, "netexec")).unwrap();
        run(&mut s);
        let victim = live_pods(&s)[0].metadata.name.clone().unwrap();
        mark_deleted(&mut s, &Key::new(Kind::Pod, "default", &victim), None);
        run(&mut s);
        let pods = live_pods(&s);
        assert_eq!(pods.len(), 3);
        assert!(
            pods.iter()
                .all(|p| p.metadata.name.as_deref() != Some(&victim))
        );
        // Scale down to 1.
        let Some(Object::Deployment(mut d)) = s
            .get(&Key::new(Kind::Deployment, "default", "backend"))
            .cloned()
        else {
            panic!()
        };
        d.spec.replicas = Some(1);
        s.update(Object::Deployment(d));
        run(&mut s);
        assert_eq!(live_pods(&s).len(), 1);
    }

    #[test]
    fn rolling_update_keeps_availability() {
        let mut s = Store::default();
        s.create(deploy(4, "netexec")).unwrap();
        run(&mut s);
        make_all_ready(&mut s);
        run(&mut s);
        let old_hash = live_pods(&s)[0].metadata.labels.as_ref().unwrap()[HASH_LABEL].clone();
        let Some(Object::Deployment(mut d)) = s
            .get(&Key::new(Kind::Deployment, "default", "backend"))
            .cloned()
        else {
            panic!()
        };
        d.spec.template.spec.as_mut().unwrap().containers[0].args = Some(vec!["pause".into()]);
        s.update(Object::Deployment(d));
        for _ in 0..20 {
            run(&mut s);
            let pods = live_pods(&s);
            let ready = pods.iter().filter(|p| pod_ready(p)).count();
            assert!(ready >= 3, "availability dropped to {ready}");
            assert!(pods.len() <= 5, "surge exceeded: {}", pods.len());
            make_all_ready(&mut s);
            reap(&mut s);
        }
        let pods = live_pods(&s);
        assert_eq!(pods.len(), 4);
        assert!(
            pods.iter()
                .all(|p| p.metadata.labels.as_ref().unwrap()[HASH_LABEL] != old_hash)
        );
        assert_eq!(s.list(Kind::ReplicaSet, None).count(), 2);
    }

    #[test]
    fn deleting_a_deployment_cascades() {
        let mut s = Store::default();
        s.create(deploy(2, "netexec")).unwrap();
        run(&mut s);
        s.remove(&Key::new(Kind::Deployment, "default", "backend"));
        run(&mut s);
        assert_eq!(s.list(Kind::ReplicaSet, None).count(), 0);
        assert!(live_pods(&s).is_empty());
    }

    #[test]
    fn template_hash_is_stable_and_sensitive() {
        let Object::Deployment(a) = deploy(1, "x") else {
            panic!()
        };
        let Object::Deployment(b) = deploy(5, "x") else {
            panic!()
        };
        let Object::Deployment(c) = deploy(1, "y") else {
            panic!()
        };
        assert_eq!(
            template_hash(&a.spec.template),
            template_hash(&b.spec.template)
        );
        assert_ne!(
            template_hash(&a.spec.template),
            template_hash(&c.spec.template)
        );
        assert!(
            template_hash(&a.spec.template)
                .bytes()
                .all(|b| ALPHANUMS.contains(&b))
        );
    }
}
