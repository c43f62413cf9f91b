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
//! sync that noticed it. The log holds the last [`CAPACITY`] events, and no
//! more than [`MAX_BYTES`] of their objects (JSON-encoded size); a watch from
//! an older version gets 410 Gone, and the client lists again (as from the
//! API server's watch cache, which also keeps a bounded window of history).
//!
//! Objects are kept typed and shared: the last-seen map and the newest event
//! of an object hold the store's own `Arc` (no copy of the store), and only
//! superseded versions cost memory of their own. They are turned into JSON
//! only when a watcher reads them: a `serde_json::Value` tree of every
//! object and of every version in the log took several times the memory of
//! the store itself (tens of MB with 500 pods).

use crate::model::Object;
use crate::store::{Key, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

pub const CAPACITY: usize = 4096;
/// The most bytes of object versions the log holds (their JSON size): with
/// hundreds of pods changing at once, 4096 versions of pods took tens of MB.
pub const MAX_BYTES: usize = 4 << 20;

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
    /// `object`'s JSON size, what it counts against [`MAX_BYTES`].
    bytes: usize,
}

impl Event {
    fn new(
        rv: u64,
        ty: EventType,
        key: Key,
        object: Arc<Object>,
        prev: Option<Arc<Object>>,
    ) -> Event {
        let bytes = json_size(&object);
        Event {
            rv,
            ty,
            key,
            object,
            prev,
            bytes,
        }
    }
}

/// The length of `o`'s JSON, counted without writing it anywhere.
fn json_size(o: &Object) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail, and objects always encode.
    let _ = serde_json::to_writer(&mut c, o);
    c.0
}

#[derive(Default)]
struct Inner {
    seen: HashMap<Key, (String, Arc<Object>)>,
    events: VecDeque<Event>,
    /// The sum of the events' `bytes`.
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
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
        EventLog::with_limits(store, CAPACITY, MAX_BYTES)
    }

    /// A log holding at most `max_events` events and `max_bytes` of their
    /// objects' JSON (the newest event is kept whatever its size).
    pub fn with_limits(store: &Store, max_events: usize, max_bytes: usize) -> EventLog {
        let mut inner = Inner {
            max_events,
            max_bytes,
            ..Inner::default()
        };
        for kind in crate::model::Kind::ALL {
            for o in store.list_shared(kind, None) {
                let rv = o.meta().resource_version.clone().unwrap_or_default();
                inner.seen.insert(Key::of(o), (rv, o.clone()));
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
            for o in store.list_shared(kind, None) {
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
                        new_events.push(Event::new(
                            rv.parse().unwrap_or(now),
                            EventType::Deleted,
                            key.clone(),
                            deleted_at(old, rv.clone()),
                            Some(old.clone()),
                        ));
                        EventType::Added
                    }
                    Some(_) => EventType::Modified,
                    None => EventType::Added,
                };
                let v = o.clone();
                let prev = match ty {
                    EventType::Modified => inner.seen.get(&key).map(|(_, old)| old.clone()),
                    _ => None,
                };
                inner.seen.insert(key.clone(), (rv.clone(), v.clone()));
                present.insert(key.clone());
                new_events.push(Event::new(rv.parse().unwrap_or(0), ty, key, v, prev));
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
                new_events.push(Event::new(
                    now,
                    EventType::Deleted,
                    key,
                    deleted_at(&v, now.to_string()),
                    Some(v),
                ));
            }
        }
        new_events.sort_by_key(|e| e.rv);
        inner.bytes += new_events.iter().map(|e| e.bytes).sum::<usize>();
        inner.events.extend(new_events);
        while inner.events.len() > inner.max_events
            || (inner.bytes > inner.max_bytes && inner.events.len() > 1)
        {
            if let Some(e) = inner.events.pop_front() {
                inner.bytes -= e.bytes;
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
    fn the_log_holds_no_more_bytes_than_its_bound() {
        let mut store = Store::default();
        store.create(ns("a")).unwrap();
        let one = json_size(store.get(&Key::new(Kind::Namespace, "", "a")).unwrap());
        // Room for about ten versions of a namespace with a label.
        let max = 10 * (one + 40);
        let log = EventLog::with_limits(&store, CAPACITY, max);
        let start = store.resource_version();
        let mut rvs = Vec::new();
        for i in 0..100 {
            let mut a = store
                .get(&Key::new(Kind::Namespace, "", "a"))
                .unwrap()
                .clone();
            a.meta_mut().labels = Some([("x".to_string(), format!("{i:040}"))].into());
            store.update(a);
            log.sync(&store);
            rvs.push(store.resource_version());
            let inner = log.lock();
            assert!(inner.bytes <= max, "{} > {max} after {i}", inner.bytes);
            assert_eq!(
                inner.bytes,
                inner.events.iter().map(|e| e.bytes).sum::<usize>()
            );
            assert!(!inner.events.is_empty());
        }
        let held = log.lock().events.len();
        assert!((5..=10).contains(&held), "{held} events held");
        // Too old now: 410, for a watch and for a list at that version.
        assert!(log.since(start).is_none());
        assert!(names_at(&log, &store, start).is_none());
        // Recent versions still replay and list consistently.
        let recent = rvs[rvs.len() - 3];
        assert_eq!(log.since(recent).unwrap().len(), 2);
        let label = format!("{:040}", 97);
        assert_eq!(
            names_at(&log, &store, recent).unwrap(),
            [("a".to_string(), label)]
        );
        // The count bound holds too.
        let log = EventLog::with_limits(&store, 3, usize::MAX);
        for i in 0..10 {
            store.create(ns(&format!("n{i}"))).unwrap();
            log.sync(&store);
        }
        assert_eq!(log.lock().events.len(), 3);
        assert_eq!(log.since(store.resource_version() - 3).unwrap().len(), 3);
        assert!(log.since(store.resource_version() - 4).is_none());
    }

    #[test]
    fn the_log_shares_the_stores_objects() {
        let mut store = Store::default();
        store.create(ns("a")).unwrap();
        let key = Key::new(Kind::Namespace, "", "a");
        let log = EventLog::new(&store);
        let start = store.resource_version();
        let mut a = store.get(&key).unwrap().clone();
        a.meta_mut().labels = Some([("x".to_string(), "y".to_string())].into());
        store.update(a);
        log.sync(&store);
        let ev = log.since(start).unwrap();
        assert!(Arc::ptr_eq(&ev[0].object, store.get_shared(&key).unwrap()));
        assert!(Arc::ptr_eq(
            &log.lock().seen[&key].1,
            store.get_shared(&key).unwrap()
        ));
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
