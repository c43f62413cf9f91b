//! The object store: every object of the cluster keyed by kind, namespace
//! and name, with resource versions and uids. Pure data; the daemon persists
//! it with [`Store::to_snapshot`] / [`Store::from_snapshot`].

use crate::model::{Kind, Object};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Key {
        Key {
            kind,
            namespace: if kind.namespaced() {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub fn of(obj: &Object) -> Key {
        Key::new(obj.kind(), obj.namespace(), obj.name())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.qualified(), self.name)
        } else {
            write!(
                f,
                "{}/{} -n {}",
                self.kind.qualified(),
                self.name,
                self.namespace
            )
        }
    }
}

/// Objects are held behind `Arc`s: the watch event log shares the current
/// version of each object with the store instead of keeping a copy of its
/// own, and a copy of the store (a dry run) copies pointers, not objects.
#[derive(Debug, Clone, Default)]
pub struct Store {
    objects: BTreeMap<Key, Arc<Object>>,
    resource_version: u64,
    /// Per kind (`Kind as usize`), the resource version of its last change
    /// (0: none since this store was made or loaded).
    kind_versions: [u64; Kind::ALL.len()],
    /// The most recent changes, oldest first: (resource version, key), at
    /// most [`JOURNAL_MAX`]. What a watch cache keeps: a reader that fell
    /// further behind must list again.
    journal: VecDeque<(u64, Key)>,
}

/// How many changes [`Store::changes_since`] can replay.
pub const JOURNAL_MAX: usize = 1 << 14;

/// Why the saved state cannot be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("encoding the state: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("saved state is not valid: {0}")]
    Decode(#[source] serde_json::Error),
    #[error("saved {kind} {name:?} is not valid: {source}")]
    Object {
        kind: Kind,
        name: String,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
struct Snapshot {
    resource_version: u64,
    objects: Vec<(Kind, serde_json::Value)>,
}

/// A fresh uid (random, in the UUID v4 text form Kubernetes uses).
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    let v = format!("4{}", &h(6..8)[1..]);
    let var = format!("{:x}{}", 8 | (b[8] & 3), &h(8..10)[1..]);
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), v, var, h(10..16))
}

impl Store {
    pub fn get(&self, key: &Key) -> Option<&Object> {
        self.objects.get(key).map(|o| &**o)
    }

    /// The stored object itself, shared.
    #[cfg(test)]
    pub fn get_shared(&self, key: &Key) -> Option<&Arc<Object>> {
        self.objects.get(key)
    }

    /// Objects of `kind`, in one namespace or all (`None`). Keys sort by
    /// kind, then namespace, then name: this walks only that range.
    pub fn list<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Object> + 'a {
        self.list_prefix_inner(kind, namespace, "").map(|o| &**o)
    }

    /// [`Store::list`], the objects shared (for the watch event log).
    pub fn list_shared<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        self.list_prefix_inner(kind, namespace, "")
    }

    /// Objects of `kind` in `namespace` whose names start with `prefix`.
    pub fn list_prefix<'a>(
        &'a self,
        kind: Kind,
        namespace: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Object> + 'a {
        self.list_prefix_inner(kind, Some(namespace), prefix)
            .map(|o| &**o)
    }

    fn list_prefix_inner<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Object>> + 'a {
        let start = Key {
            kind,
            namespace: namespace.unwrap_or("").to_string(),
            name: prefix.to_string(),
        };
        self.objects
            .range(start..)
            .take_while(move |(k, _)| {
                k.kind == kind
                    && namespace.is_none_or(|ns| k.namespace == ns && k.name.starts_with(prefix))
            })
            .map(|(_, o)| o)
    }

    /// The keys of every object of `kind` (walks only that kind's range).
    pub fn keys(&self, kind: Kind) -> Vec<Key> {
        self.list(kind, None).map(Key::of).collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The resource version of the last change to an object of `kind`: 0
    /// when none was made since this store was created, the loaded version
    /// for a loaded store (at most that) until one is made.
    pub fn kind_version(&self, kind: Kind) -> u64 {
        self.kind_versions[kind as usize]
    }

    /// The keys changed (created, updated or removed) after resource
    /// version `rv`, oldest first, one entry per change; `None` when the
    /// journal no longer reaches back that far (the caller must look at
    /// everything, as a watcher with a too old resource version relists).
    pub fn changes_since(&self, rv: u64) -> Option<impl Iterator<Item = &Key> + '_> {
        if rv > self.resource_version {
            return None;
        }
        let missed = self.resource_version - rv;
        let kept = self.journal.len() as u64;
        if missed > kept {
            return None;
        }
        let skip = (kept - missed) as usize;
        Some(self.journal.range(skip..).map(|(_, k)| k))
    }

    fn bump(&mut self, key: &Key) -> String {
        self.resource_version += 1;
        self.kind_versions[key.kind as usize] = self.resource_version;
        if self.journal.len() == JOURNAL_MAX {
            self.journal.pop_front();
        }
        self.journal.push_back((self.resource_version, key.clone()));
        self.resource_version.to_string()
    }

    /// Insert a new object: sets uid, resourceVersion, creationTimestamp and
    /// generation. Replaces nothing: returns the object back if the key exists.
    pub fn create(&mut self, mut obj: Object) -> Result<Key, Box<Object>> {
        let key = Key::of(&obj);
        if self.objects.contains_key(&key) {
            return Err(Box::new(obj));
        }
        let rv = self.bump(&key);
        let meta = obj.meta_mut();
        if meta.uid.as_deref().is_none_or(str::is_empty) {
            meta.uid = Some(new_uid());
        }
        meta.resource_version = Some(rv);
        meta.creation_timestamp = Some(crate::model::now_time());
        meta.generation = Some(1);
        if !key.kind.namespaced() {
            meta.namespace = None;
        }
        self.objects.insert(key.clone(), Arc::new(obj));
        Ok(key)
    }

    /// Store a changed version of an existing object. Bumps resourceVersion
    /// only if something changed; returns whether it did.
    pub fn update(&mut self, mut obj: Object) -> bool {
        let key = Key::of(&obj);
        let Some(old) = self.objects.get(&key) else {
            return false;
        };
        // Compare ignoring resourceVersion.
        obj.meta_mut().resource_version = old.meta().resource_version.clone();
        if **old == obj {
            return false;
        }
        let rv = self.bump(&key);
        obj.meta_mut().resource_version = Some(rv);
        self.objects.insert(key, Arc::new(obj));
        true
    }

    /// Complete a write made in the same critical section: replace the
    /// object, keeping the version that write gave it (no one can have
    /// seen the object in between). One API write — the object with its
    /// managed fields and exact labels — is then one new version, as on
    /// the API server. Returns false if there is no such object.
    pub fn amend(&mut self, mut obj: Object) -> bool {
        let key = Key::of(&obj);
        let Some(old) = self.objects.get(&key) else {
            return false;
        };
        obj.meta_mut().resource_version = old.meta().resource_version.clone();
        self.objects.insert(key, Arc::new(obj));
        true
    }

    pub fn remove(&mut self, key: &Key) -> Option<Object> {
        let o = self.objects.remove(key)?;
        self.bump(key);
        Some(Arc::try_unwrap(o).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// The saved form: the [`Snapshot`] layout, written straight from the
    /// typed objects (the same JSON as through [`Object::to_json`], without
    /// building a `serde_json::Value` tree of the whole store per save).
    pub fn to_snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        #[derive(Serialize)]
        struct SnapshotRef<'a> {
            resource_version: u64,
            objects: Vec<(Kind, &'a Object)>,
        }
        let snap = SnapshotRef {
            resource_version: self.resource_version,
            objects: self.objects.values().map(|o| (o.kind(), &**o)).collect(),
        };
        serde_json::to_vec(&snap).map_err(SnapshotError::Encode)
    }

    pub fn from_snapshot(bytes: &[u8]) -> Result<Store, SnapshotError> {
        let snap: Snapshot = serde_json::from_slice(bytes).map_err(SnapshotError::Decode)?;
        // Changes before the load count as made at the loaded version (the
        // kinds' own versions are not saved).
        let mut store = Store {
            resource_version: snap.resource_version,
            kind_versions: [snap.resource_version; Kind::ALL.len()],
            ..Store::default()
        };
        for (kind, v) in snap.objects {
            let name = {
                let s = |k: &str| v.pointer(k).and_then(|x| x.as_str()).unwrap_or("");
                match s("/metadata/namespace") {
                    "" => s("/metadata/name").to_string(),
                    ns => format!("{ns}/{}", s("/metadata/name")),
                }
            };
            let obj = Object::from_json(kind, v).map_err(|source| SnapshotError::Object {
                kind,
                name,
                source,
            })?;
            store.objects.insert(Key::of(&obj), Arc::new(obj));
        }
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Namespace;

    fn ns(name: &str) -> Object {
        Object::Namespace(Namespace {
            metadata: crate::model::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn amend_completes_a_write_without_a_new_version() {
        let mut s = Store::default();
        let k = s.create(ns("a")).unwrap();
        let rv = s.resource_version();
        let mut o = s.get(&k).unwrap().clone();
        o.meta_mut().labels = Some([("x".to_string(), "y".to_string())].into());
        assert!(s.amend(o));
        assert_eq!(s.resource_version(), rv);
        let got = s.get(&k).unwrap().meta();
        assert_eq!(got.resource_version, Some(rv.to_string()));
        assert!(got.labels.as_ref().is_some_and(|l| l["x"] == "y"));
        assert!(!s.amend(ns("nope")));
    }

    #[test]
    fn create_update_remove_and_snapshot() {
        let mut s = Store::default();
        let k = s.create(ns("a")).unwrap();
        assert!(s.create(ns("a")).is_err());
        let uid = s.get(&k).unwrap().meta().uid.clone().unwrap();
        assert_eq!(uid.len(), 36);
        let rv = s.resource_version();
        let same = s.get(&k).unwrap().clone();
        assert!(!s.update(same.clone()));
        assert_eq!(s.resource_version(), rv);
        let mut changed = same;
        changed.meta_mut().labels = Some([("x".to_string(), "y".to_string())].into());
        assert!(s.update(changed));
        assert_eq!(
            s.get(&k).unwrap().meta().resource_version.as_deref(),
            Some(&*(rv + 1).to_string())
        );
        // Written straight from the typed objects, the snapshot is the same
        // JSON as through `Value`s.
        let via_values = serde_json::to_vec(&serde_json::json!({
            "resource_version": s.resource_version(),
            "objects": s.objects.values().map(|o| (o.kind(), o.to_json())).collect::<Vec<_>>(),
        }))
        .unwrap();
        assert_eq!(s.to_snapshot().unwrap(), via_values);
        let restored = Store::from_snapshot(&s.to_snapshot().unwrap()).unwrap();
        assert_eq!(restored.get(&k), s.get(&k));
        assert_eq!(restored.resource_version(), s.resource_version());
        assert!(s.remove(&k).is_some());
        assert!(s.is_empty());
        assert!(Store::from_snapshot(b"{garbage").is_err());
        // A saved object that no longer decodes is named.
        let bad = br#"{"resource_version": 3, "objects": [["Pod", {"metadata": {"namespace": "default", "name": "p"}, "spec": {"containers": 7}}]]}"#;
        let e = Store::from_snapshot(bad).unwrap_err();
        assert!(
            matches!(&e, SnapshotError::Object { kind: Kind::Pod, name, .. } if name == "default/p"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("saved Pod \"default/p\" is not valid: "),
            "{e}"
        );
    }

    #[test]
    fn lists_walk_only_their_kind_namespace_and_prefix() {
        let mut s = Store::default();
        for n in ["a", "b", "c"] {
            s.create(ns(n)).unwrap();
        }
        let cm = |ns: &str, name: &str| {
            Object::ConfigMap(crate::model::ConfigMap {
                metadata: crate::model::ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            })
        };
        for (n, name) in [("a", "x.1"), ("a", "x.2"), ("a", "y"), ("b", "x.3")] {
            s.create(cm(n, name)).unwrap();
        }
        let names = |it: Vec<&Object>| it.iter().map(|o| o.name().to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(s.list(Kind::Namespace, None).collect()),
            ["a", "b", "c"]
        );
        assert_eq!(
            names(s.list(Kind::Namespace, Some("a")).collect()),
            Vec::<String>::new()
        );
        assert_eq!(
            names(s.list(Kind::ConfigMap, None).collect()),
            ["x.1", "x.2", "y", "x.3"]
        );
        assert_eq!(
            names(s.list(Kind::ConfigMap, Some("a")).collect()),
            ["x.1", "x.2", "y"]
        );
        assert_eq!(
            names(s.list(Kind::ConfigMap, Some("c")).collect()),
            Vec::<String>::new()
        );
        assert_eq!(
            names(s.list_prefix(Kind::ConfigMap, "a", "x.").collect()),
            ["x.1", "x.2"]
        );
        assert_eq!(
            names(s.list(Kind::Pod, None).collect()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_journal_replays_changes_per_key_and_kind_versions_move() {
        let mut s = Store::default();
        assert_eq!(s.kind_version(Kind::Namespace), 0);
        let a = s.create(ns("a")).unwrap();
        let rv = s.resource_version();
        assert_eq!(s.kind_version(Kind::Namespace), rv);
        assert_eq!(s.kind_version(Kind::Pod), 0);
        let b = s.create(ns("b")).unwrap();
        // An update that changes nothing is no change.
        assert!(!s.update(s.get(&b).unwrap().clone()));
        s.remove(&a);
        let got: Vec<&Key> = s.changes_since(rv).unwrap().collect();
        assert_eq!(got, [&b, &a]);
        assert_eq!(s.changes_since(s.resource_version()).unwrap().count(), 0);
        assert_eq!(s.changes_since(0).unwrap().count(), 3);
        assert!(s.changes_since(s.resource_version() + 1).is_none());
        // Past the journal's reach: the reader must look at everything.
        for i in 0..JOURNAL_MAX {
            s.create(ns(&format!("n{i}"))).unwrap();
        }
        assert!(s.changes_since(rv).is_none());
        let recent = s.resource_version() - JOURNAL_MAX as u64;
        assert_eq!(s.changes_since(recent).unwrap().count(), JOURNAL_MAX);
        assert!(s.changes_since(recent - 1).is_none());
        // A loaded store starts with no journal.
        let loaded = Store::from_snapshot(&s.to_snapshot().unwrap()).unwrap();
        assert!(loaded.changes_since(rv).is_none());
        assert_eq!(loaded.kind_version(Kind::Pod), loaded.resource_version());
        assert_eq!(
            loaded
                .changes_since(loaded.resource_version())
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn uids_are_unique() {
        let a: std::collections::HashSet<_> = (0..1000).map(|_| new_uid()).collect();
        assert_eq!(a.len(), 1000);
    }
}
