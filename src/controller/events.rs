//! Events, recorded as Kubernetes components record them (`core/v1`
//! Event): the object they are about, a reason and a message, the component
//! that saw it. A repeat of the same event (same object, type, reason,
//! message and source) bumps `count` and `lastTimestamp` instead of adding
//! one, as client-go's event correlator does. Events live an hour (the API
//! server's default `--event-ttl`) and at most [`MAX_EVENTS`] are kept.
//!
//! Pure: functions over the [`Store`]; the daemon and the controllers call
//! [`record`] where the component they stand in for would.

use crate::model::{Event, Kind, Object, ObjectMeta};
use crate::store::{Key, Store};
use k8s_openapi::api::core::v1::{EventSource, ObjectReference, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an event is kept after it last happened.
pub const TTL: Duration = Duration::from_secs(3600);
/// Events kept at most (the oldest go first).
pub const MAX_EVENTS: usize = 2000;

pub const DEPLOYMENT_CONTROLLER: &str = "deployment-controller";
pub const REPLICASET_CONTROLLER: &str = "replicaset-controller";
pub const SCHEDULER: &str = "default-scheduler";
pub const KUBELET: &str = "kubelet";

/// What happened: `Normal` or `Warning`, a CamelCase reason, a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    /// `spec.containers{NAME}` for a container's events.
    pub field_path: Option<String>,
}

impl Note {
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
            field_path: None,
        }
    }

    pub fn warning(reason: &'static str, message: impl Into<String>) -> Note {
        Note {
            warning: true,
            ..Note::normal(reason, message)
        }
    }

    fn container(mut self, name: &str) -> Note {
        self.field_path = Some(format!("spec.containers{{{name}}}"));
        self
    }

    fn type_(&self) -> &'static str {
        if self.warning { "Warning" } else { "Normal" }
    }
}

/// A reference to `obj` as events carry it.
fn reference(obj: &Object, field_path: Option<String>) -> ObjectReference {
    let m = obj.meta();
    ObjectReference {
        api_version: Some(obj.kind().api_version().to_string()),
        kind: Some(obj.kind().as_str().to_string()),
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        resource_version: m.resource_version.clone(),
        field_path,
    }
}

fn nanos(now: SystemTime) -> u128 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

fn time(now: SystemTime) -> Time {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

fn same(e: &Event, r: &ObjectReference, note: &Note, component: &str) -> bool {
    let io = &e.involved_object;
    io.uid == r.uid
        && io.kind == r.kind
        && io.name == r.name
        && io.field_path == r.field_path
        && e.reason.as_deref() == Some(note.reason)
        && e.message.as_deref() == Some(note.message.as_str())
        && e.type_.as_deref() == Some(note.type_())
        && e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(component)
}

/// Record `note` about `obj`, seen by `component` (on `host`, for the
/// kubelet). Returns the event's key.
pub fn record(
    store: &mut Store,
    obj: &Object,
    note: Note,
    component: &str,
    host: Option<&str>,
    now: SystemTime,
) -> Option<Key> {
    let r = reference(obj, note.field_path.clone());
    let ns = match obj.kind() {
        // Events about cluster-scoped objects live in `default`.
        Kind::Namespace | Kind::Node => "default".to_string(),
        _ => obj.namespace().to_string(),
    };
    let prefix = format!("{}.", obj.name());
    let existing = store
        .list_prefix(Kind::Event, &ns, &prefix)
        .find_map(|o| match o {
            Object::Event(e) if same(e, &r, &note, component) => Some(e.clone()),
            _ => None,
        });
    if let Some(mut e) = existing {
        e.count = Some(e.count.unwrap_or(1) + 1);
        e.last_timestamp = Some(time(now));
        let key = Key::of(&Object::Event(e.clone()));
        store.update(Object::Event(e));
        return Some(key);
    }
    let mut n = nanos(now);
    loop {
        let name = format!("{}{:x}", prefix, n);
        if store.get(&Key::new(Kind::Event, &ns, &name)).is_some() {
            n += 1;
            continue;
        }
        let e = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: r,
            reason: Some(note.reason.to_string()),
            message: Some(note.message.clone()),
            type_: Some(note.type_().to_string()),
            source: Some(EventSource {
                component: Some(component.to_string()),
                host: host.map(str::to_string),
            }),
            first_timestamp: Some(time(now)),
            last_timestamp: Some(time(now)),
            count: Some(1),
            reporting_component: Some(component.to_string()),
            reporting_instance: Some(host.unwrap_or(component).to_string()),
            ..Default::default()
        };
        return store.create(Object::Event(Box::new(e))).ok();
    }
}

/// When an event last happened (seconds since the epoch).
fn last_seen(e: &Event) -> i64 {
    e.last_timestamp
        .as_ref()
        .or(e.first_timestamp.as_ref())
        .or(e.metadata.creation_timestamp.as_ref())
        .map_or(0, |t| t.0.as_second())
}

/// Drop events older than [`TTL`], then the oldest beyond [`MAX_EVENTS`].
pub fn expire(store: &mut Store, now: SystemTime) {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut all: Vec<(i64, Key)> = store
        .list(Kind::Event, None)
        .filter_map(|o| match o {
            Object::Event(e) => Some((last_seen(e), Key::of(o))),
            _ => None,
        })
        .collect();
    if all.is_empty() {
        return;
    }
    all.sort();
    let excess = all.len().saturating_sub(MAX_EVENTS);
    for (i, (seen, key)) in all.iter().enumerate() {
        if i < excess || now - seen > TTL.as_secs() as i64 {
            store.remove(key);
        } else {
            break;
        }
    }
}

/// What the kubelet reports when a pod's status moves from `old` to `new`:
/// Pulled, Created and Started for each container (re)start, BackOff when
/// a restart is held back, Unhealthy when a running container's readiness
/// probe starts failing, Failed when a container cannot be started.
pub fn kubelet_notes(
    pod: &crate::model::Pod,
    old: Option<&PodStatus>,
    new: &PodStatus,
) -> Vec<Note> {
    let mut out = Vec::new();
    let spec = pod.spec.as_ref();
    let olds = old
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    for c in new.container_statuses.as_deref().unwrap_or(&[]) {
        let was = olds.iter().find(|o| o.name == c.name);
        let state = c.state.as_ref();
        let was_state = was.and_then(|w| w.state.as_ref());
        let started_at = state
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref());
        let was_started_at = was_state
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref());
        // A container may start and exit between two status reports: its
        // start then shows only in the terminated state or the last state.
        let last_start = |c: &k8s_openapi::api::core::v1::ContainerStatus| {
            let s = c.state.as_ref();
            s.and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.clone())
                .or_else(|| {
                    s.and_then(|s| s.terminated.as_ref())
                        .and_then(|t| t.started_at.clone())
                })
                .or_else(|| {
                    c.last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .and_then(|t| t.started_at.clone())
                })
        };
        let started_now = last_start(c);
        let started_before = was.and_then(last_start);
        let image = spec
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .and_then(|x| x.image.clone())
            .unwrap_or_else(|| c.image.clone());
        if started_now.is_some()
            && (started_now != started_before
                || was.map(|w| w.restart_count) != Some(c.restart_count))
        {
            out.push(
                Note::normal(
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                )
                .container(&c.name),
            );
            out.push(
                Note::normal("Created", format!("Created container: {}", c.name))
                    .container(&c.name),
            );
            out.push(
                Note::normal("Started", format!("Started container {}", c.name)).container(&c.name),
            );
        }
        let waiting = state.and_then(|s| s.waiting.as_ref());
        let was_waiting = was_state.and_then(|s| s.waiting.as_ref());
        if let Some(w) = waiting {
            let reason = w.reason.as_deref().unwrap_or("");
            let changed = was_waiting.map(|x| x.reason.as_deref()) != Some(w.reason.as_deref())
                || was.map(|x| x.restart_count) != Some(c.restart_count);
            if changed && reason == "CrashLoopBackOff" {
                out.push(
                    Note::warning(
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}_{}({})",
                            c.name,
                            pod.metadata.name.as_deref().unwrap_or(""),
                            pod.metadata.namespace.as_deref().unwrap_or(""),
                            pod.metadata.uid.as_deref().unwrap_or("")
                        ),
                    )
                    .container(&c.name),
                );
            }
            if changed && matches!(reason, "CreateContainerError" | "RunContainerError") {
                let msg = w.message.clone().unwrap_or_else(|| reason.to_string());
                out.push(Note::warning("Failed", format!("Error: {msg}")).container(&c.name));
            }
        }
        let has_readiness = spec
            .and_then(|s| s.containers.iter().find(|x| x.name == c.name))
            .is_some_and(|x| x.readiness_probe.is_some());
        if has_readiness
            && started_at.is_some()
            && was_started_at == started_at
            && was.is_some_and(|w| w.ready)
            && !c.ready
        {
            out.push(Note::warning("Unhealthy", "Readiness probe failed").container(&c.name));
        }
    }
    out
}

/// The kubelet's Killing event for each container of a pod being stopped.
pub fn killing_notes(pod: &crate::model::Pod) -> Vec<Note> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            Note::normal("Killing", format!("Stopping container {}", c.name)).container(&c.name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Pod;
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus,
        PodSpec, Probe,
    };

    fn pod() -> Object {
        Object::Pod(Box::new(Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("lab.dev/agnhost".into()),
                    readiness_probe: Some(Probe::default()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }))
    }

    fn events(s: &Store) -> Vec<Event> {
        s.list(Kind::Event, None)
            .filter_map(|o| match o {
                Object::Event(e) => Some((**e).clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn repeats_are_counted_and_old_events_expire() {
        let mut s = Store::default();
        let p = pod();
        s.create(p.clone()).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let k1 = record(
            &mut s,
            &p,
            Note::warning("BackOff", "b"),
            KUBELET,
            Some("n"),
            t0,
        )
        .unwrap();
        let k2 = record(
            &mut s,
            &p,
            Note::warning("BackOff", "b"),
            KUBELET,
            Some("n"),
            t0 + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(k1, k2);
        assert!(k1.name.starts_with("web."));
        record(
            &mut s,
            &p,
            Note::normal("Started", "x"),
            KUBELET,
            Some("n"),
            t0,
        )
        .unwrap();
        let ev = events(&s);
        assert_eq!(ev.len(), 2);
        let b = ev
            .iter()
            .find(|e| e.reason.as_deref() == Some("BackOff"))
            .unwrap();
        assert_eq!(b.count, Some(2));
        assert_eq!(b.type_.as_deref(), Some("Warning"));
        assert_eq!(b.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(b.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(
            b.last_timestamp.as_ref().unwrap().0.as_second()
                - b.first_timestamp.as_ref().unwrap().0.as_second(),
            5
        );
        // An hour after the last time: the BackOff (seen later) outlives Started.
        expire(&mut s, t0 + TTL + Duration::from_secs(2));
        let ev = events(&s);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason.as_deref(), Some("BackOff"));
        expire(&mut s, t0 + TTL + Duration::from_secs(10));
        assert!(events(&s).is_empty());
    }

    #[test]
    fn at_most_max_events_are_kept() {
        let mut s = Store::default();
        let p = pod();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for i in 0..MAX_EVENTS + 10 {
            let note = Note::normal("Started", format!("n{i}"));
            record(
                &mut s,
                &p,
                note,
                KUBELET,
                None,
                t0 + Duration::from_secs(i as u64),
            )
            .unwrap();
        }
        expire(&mut s, t0 + Duration::from_secs(MAX_EVENTS as u64 + 10));
        let ev = events(&s);
        assert_eq!(ev.len(), MAX_EVENTS);
        assert!(!ev.iter().any(|e| e.message.as_deref() == Some("n0")));
    }

    fn status(
        restarts: i32,
        running: Option<&str>,
        waiting: Option<&str>,
        ready: bool,
    ) -> PodStatus {
        PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                name: "app".into(),
                image: "lab.dev/agnhost".into(),
                restart_count: restarts,
                ready,
                state: Some(ContainerState {
                    running: running.map(|t| ContainerStateRunning {
                        started_at: Some(Time(t.parse().unwrap())),
                    }),
                    waiting: waiting.map(|r| ContainerStateWaiting {
                        reason: Some(r.into()),
                        message: Some("boom".into()),
                    }),
                    terminated: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn kubelet_notes_follow_container_transitions() {
        let Object::Pod(p) = pod() else {
            unreachable!()
        };
        let reasons = |old: Option<&PodStatus>, new: &PodStatus| -> Vec<&'static str> {
            kubelet_notes(&p, old, new)
                .iter()
                .map(|n| n.reason)
                .collect()
        };
        let t1 = "2026-01-01T00:00:00Z";
        let t2 = "2026-01-01T00:00:09Z";
        let pending = status(0, None, Some("ContainerCreating"), false);
        let running = status(0, Some(t1), None, false);
        let ready = status(0, Some(t1), None, true);
        assert!(reasons(None, &pending).is_empty());
        assert_eq!(
            reasons(Some(&pending), &running),
            ["Pulled", "Created", "Started"]
        );
        assert!(reasons(Some(&running), &ready).is_empty());
        assert_eq!(reasons(Some(&ready), &running), ["Unhealthy"]);
        let backoff = status(1, None, Some("CrashLoopBackOff"), false);
        assert_eq!(reasons(Some(&running), &backoff), ["BackOff"]);
        assert!(reasons(Some(&backoff), &backoff).is_empty());
        assert_eq!(
            reasons(Some(&backoff), &status(1, Some(t2), None, false)),
            ["Pulled", "Created", "Started"]
        );
        // A run seen only afterwards, in the last state (it started and
        // exited between two reports): still Pulled, Created, Started.
        let mut quick = status(1, None, Some("CrashLoopBackOff"), false);
        if let Some(cs) = quick.container_statuses.as_mut() {
            cs[0].last_state = Some(ContainerState {
                terminated: Some(k8s_openapi::api::core::v1::ContainerStateTerminated {
                    started_at: Some(Time(t1.parse().unwrap())),
                    exit_code: 3,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        assert_eq!(
            reasons(Some(&pending), &quick),
            ["Pulled", "Created", "Started", "BackOff"]
        );
        assert!(reasons(Some(&quick), &quick).is_empty());
        let failed = status(0, None, Some("CreateContainerError"), false);
        let notes = kubelet_notes(&p, Some(&pending), &failed);
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].reason, notes[0].message.as_str()),
            ("Failed", "Error: boom")
        );
        assert_eq!(notes[0].field_path.as_deref(), Some("spec.containers{app}"));
    }
}
