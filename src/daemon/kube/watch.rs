//! The watch event log: what changed in the store, as ADDED / MODIFIED /
//! DELETED events with resource versions, for `?watch=1`.
//!
//! The store keeps only current objects; the log derives events by diffing
//! the store against what it saw last (object resourceVersions), under the
//! daemon's state lock. It syncs whenever the daemon publishes a new
//! resource version and before every list, so a list's `resourceVersion` is
//! always a point the log has recorded, and a watch started from it misses
//! and repeats nothing. Several changes to one object between two syncs
//! come out as one event (the latest state), as from a watch cache that
//! compacted them. A deletion carries the store's resource version at the
//! sync that noticed it. The log holds the last [`CAPACITY`] events; a watch
//! from an older version gets 410 Gone, and the client lists again.
//!
//! Objects are kept typed (shared between the last-seen map and the events),
//! and turned into JSON only when a watcher reads them: a `serde_json::Value`
//! tree of every object and of every version in the log took several times
//! the memory of the store itself (tens of MB with 500 pods).

use crate::model::Object;
use crate::store::{Key, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub ty: EventType,
    pub key: Key,
    pub object: Arc<Object>,
    /// The object as the log saw it before this change (none for ADDED):
    /// what a list at an older version showed, for consistent paging.
    pub prev: Option<Arc<Object>>,
}

#[derive(Default)]
struct Inner {
    seen: HashMap<Key, (String, Arc<Object>)>,
    events: VecDeque<Event>,
    /// Events cover resource versions in `(base, synced]`.
    base: u64,
    synced: u64,
}

pub struct EventLog {
    inner: Mutex<Inner>,
    /// The last synced resource version (watchers wait on it).
    pub synced: watch::Sender<u64>,
}

/// `o` as deleted at resource version `rv` (what a watcher is sent).
fn deleted_at(o: &Object, rv: String) -> Arc<Object> {
    let mut gone = o.clone();
    gone.meta_mut().resource_version = Some(rv);
    Arc::new(gone)
}

impl EventLog {
    pub fn new(store: &Store) -> EventLog {
        let mut inner = Inner::default();
        for kind in crate::model::Kind::ALL {
            for o in store.list(kind, None) {
                let rv = o.meta().resource_version.clone().unwrap_or_default();
                inner.seen.insert(Key::of(o), (rv, Arc::new(o.clone())));
            }
        }
        inner.base = store.resource_version();
        inner.synced = store.resource_version();
        EventLog {
            synced: watch::channel(inner.synced).0,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record what changed since the last sync. Call with the state lock
    /// held (the store must not change meanwhile).
    pub fn sync(&self, store: &Store) {
        let now = store.resource_version();
        let mut inner = self.lock();
        if now == inner.synced {
            return;
        }
        let mut new_events = Vec::new();
        let mut present = std::collections::HashSet::new();
        for kind in crate::model::Kind::ALL {
            for o in store.list(kind, None) {
                let key = Key::of(o);
                let rv = o.meta().resource_version.clone().unwrap_or_default();
                let ty = match inner.seen.get(&key) {
                    Some((old, _)) if *old == rv => {
                        present.insert(key);
                        continue;
                    }
                    // Deleted and created again under the same name (a
                    // StatefulSet's `db-0`) between two syncs: a watcher
                    // sees the old one go and the new one come, as from
                    // the API server, not one object changing its uid.
                    Some((_, old)) if old.meta().uid != o.meta().uid => {
                        new_events.push(Event {
                            rv: rv.parse().unwrap_or(now),
                            ty: EventType::Deleted,
                            key: key.clone(),
                            object: deleted_at(old, rv.clone()),
                            prev: Some(old.clone()),
                        });
                        EventType::Added
                    }
                    Some(_) => EventType::Modified,
                    None => EventType::Added,
                };
                let v = Arc::new(o.clone());
                let prev = match ty {
                    EventType::Modified => inner.seen.get(&key).map(|(_, old)| old.clone()),
                    _ => None,
                };
                inner.seen.insert(key.clone(), (rv.clone(), v.clone()));
                present.insert(key.clone());
                new_events.push(Event {
                    rv: rv.parse().unwrap_or(0),
                    ty,
                    key,
                    object: v,
                    prev,
                });
            }
        }
        let gone: Vec<Key> = inner
            .seen
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some((_, v)) = inner.seen.remove(&key) {
                new_events.push(Event {
                    rv: now,
                    ty: EventType::Deleted,
                    key,
                    object: deleted_at(&v, now.to_string()),
                    prev: Some(v),
                });
            }
        }
        new_events.sort_by_key(|e| e.rv);
        inner.events.extend(new_events);
        while inner.events.len() > CAPACITY {
            if let Some(e) = inner.events.pop_front() {
                inner.base = inner.base.max(e.rv);
            }
        }
        inner.synced = now;
        drop(inner);
        self.synced.send_replace(now);
    }

    /// Events after `rv`, or `None` when `rv` is older than the log holds.
    pub fn since(&self, rv: u64) -> Option<Vec<Event>> {
        let inner = self.lock();
        if rv < inner.base {
            return None;
        }
        Some(inner.events.iter().filter(|e| e.rv > rv).cloned().collect())
    }

    /// The objects of `kind` (in `ns`, if given) as they were at `rv`, in
    /// key order: `current` (the store's objects now, the log synced to
    /// now) with every change after `rv` undone, latest first. `None` when
    /// `rv` is older than the log holds (the API server's 410 Expired) or
    /// newer than it has seen.
    pub fn at(
        &self,
        rv: u64,
        kind: crate::model::Kind,
        ns: Option<&str>,
        current: impl IntoIterator<Item = (Key, Arc<Object>)>,
    ) -> Option<Vec<(Key, Arc<Object>)>> {
        let inner = self.lock();
        if rv < inner.base || rv > inner.synced {
            return None;
        }
        let mut objects: std::collections::BTreeMap<Key, Arc<Object>> =
            current.into_iter().collect();
        for e in inner.events.iter().rev().take_while(|e| e.rv > rv) {
            if e.key.kind != kind || ns.is_some_and(|n| e.key.namespace != n) {
                continue;
            }
            match &e.prev {
                Some(p) => objects.insert(e.key.clone(), p.clone()),
                None => objects.remove(&e.key),
            };
        }
        Some(objects.into_iter().collect())
    }

    pub fn synced_rv(&self) -> u64 {
        self.lock().synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Object};

    fn ns(name: &str) -> Object {
        crate::daemon::state::namespace(name)
    }

    #[test]
    fn diffs_become_events_and_old_versions_expire() {
        let mut store = Store::default();
        store.create(ns("a")).unwrap();
        let log = EventLog::new(&store);
        let start = store.resource_version();
        store.create(ns("b")).unwrap();
        let mut a = store
            .get(&Key::new(Kind::Namespace, "", "a"))
            .unwrap()
            .clone();
        a.meta_mut().labels = Some([("x".to_string(), "y".to_string())].into());
        store.update(a);
        log.sync(&store);
        let mid = store.resource_version();
        store.remove(&Key::new(Kind::Namespace, "", "b"));
        log.sync(&store);
        let ev = log.since(start).unwrap();
        let summary: Vec<(EventType, &str)> =
            ev.iter().map(|e| (e.ty, e.key.name.as_str())).collect();
        assert_eq!(
            summary,
            [
                (EventType::Added, "b"),
                (EventType::Modified, "a"),
                (EventType::Deleted, "b")
            ]
        );
        assert!(ev.windows(2).all(|w| w[0].rv <= w[1].rv));
        assert_eq!(log.since(mid).unwrap().len(), 1);
        assert_eq!(log.synced_rv(), store.resource_version());
        assert!(log.since(start - 1).is_none(), "older than the log: 410");
    }

    fn names_at(log: &EventLog, store: &Store, rv: u64) -> Option<Vec<(String, String)>> {
        let current = store
            .list(Kind::Namespace, None)
            .map(|o| (Key::of(o), Arc::new(o.clone())));
        log.at(rv, Kind::Namespace, None, current).map(|v| {
            v.into_iter()
                .map(|(k, o)| {
                    let label = o
                        .meta()
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("x").cloned())
                        .unwrap_or_default();
                    (k.name, label)
                })
                .collect()
        })
    }

    #[test]
    fn lists_at_an_older_version_undo_later_changes() {
        let mut store = Store::default();
        store.create(ns("a")).unwrap();
        store.create(ns("b")).unwrap();
        let log = EventLog::new(&store);
        let start = store.resource_version();
        let s = |n: &str, l: &str| (n.to_string(), l.to_string());
        // b deleted, c created, a changed twice, d created then deleted,
        // all after `start`, over several syncs.
        store.remove(&Key::new(Kind::Namespace, "", "b"));
        log.sync(&store);
        store.create(ns("c")).unwrap();
        store.create(ns("d")).unwrap();
        let mut a = store
            .get(&Key::new(Kind::Namespace, "", "a"))
            .unwrap()
            .clone();
        a.meta_mut().labels = Some([("x".to_string(), "1".to_string())].into());
        store.update(a.clone());
        log.sync(&store);
        let mid = store.resource_version();
        a.meta_mut().labels = Some([("x".to_string(), "2".to_string())].into());
        store.update(a);
        store.remove(&Key::new(Kind::Namespace, "", "d"));
        log.sync(&store);
        assert_eq!(
            names_at(&log, &store, start).unwrap(),
            [s("a", ""), s("b", "")]
        );
        assert_eq!(
            names_at(&log, &store, mid).unwrap(),
            [s("a", "1"), s("c", ""), s("d", "")]
        );
        let now = store.resource_version();
        assert_eq!(
            names_at(&log, &store, now).unwrap(),
            [s("a", "2"), s("c", "")]
        );
        assert!(names_at(&log, &store, start - 1).is_none(), "too old: 410");
        assert!(names_at(&log, &store, now + 1).is_none(), "not seen yet");
    }

    #[test]
    fn a_name_re_created_between_syncs_is_deleted_then_added() {
        let mut store = Store::default();
        store.create(ns("a")).unwrap();
        let log = EventLog::new(&store);
        let start = store.resource_version();
        let old_uid = store
            .get(&Key::new(Kind::Namespace, "", "a"))
            .and_then(|o| o.meta().uid.clone());
        store.remove(&Key::new(Kind::Namespace, "", "a"));
        store.create(ns("a")).unwrap();
        log.sync(&store);
        let ev = log.since(start).unwrap();
        let summary: Vec<(EventType, Option<&str>)> = ev
            .iter()
            .map(|e| (e.ty, e.object.meta().uid.as_deref()))
            .collect();
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert_eq!(summary[0], (EventType::Deleted, old_uid.as_deref()));
        assert_eq!(summary[1].0, EventType::Added);
        assert_ne!(summary[1].1, old_uid.as_deref());
    }
}
