//! Server-side apply (`PATCH` with `application/apply-patch+yaml`) and the
//! `metadata.managedFields` every write through the API records.
//!
//! What is implemented, and how it differs from the API server's
//! structured-merge-diff:
//! - A field set is the set of leaf paths of an object: map keys (`f:`),
//!   items of the lists Kubernetes merges by key (`k:{"name":"web"}`, the
//!   merge keys of [`super::patch::list_strategy`]: one key per list, where
//!   the API server keys container and Service ports by port *and*
//!   protocol), values of set lists (`v:`); every other list is atomic (one
//!   leaf). `apiVersion`, `kind`, `metadata.name|namespace|uid|
//!   resourceVersion|generation|creationTimestamp|managedFields`, the
//!   last-applied annotation and `status` are nobody's.
//! - Apply: fields the manager applied are its (operation `Apply`); a field
//!   it applies with a value different from the object's that another
//!   manager owns is a conflict (409, the API server's message and
//!   `FieldManagerConflict` causes); `force=true` takes those fields from
//!   the other managers. Fields the manager applied before and no longer
//!   does are removed from the object unless another manager owns them.
//!   The applied object is merged into the current one as a strategic merge
//!   (maps merge, keyed lists merge by key, other lists are replaced).
//! - Other writes (create, update, JSON/merge/strategic patches) record an
//!   `Update` entry for their `fieldManager` (or the client's user agent
//!   name, as the API server defaults it) owning the fields they set or
//!   changed, taken from the other managers.
//! - Not modelled: ownership of fields that a write removes, per-version
//!   conversion of field sets, `Update` entries for lab's own controllers
//!   (scale, status and the objects controllers make carry none).

use super::patch::{ListStrategy, list_strategy};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One step of a field path.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

const ITEM: &str = ".";

fn ignored(path: &[String]) -> bool {
    match path {
        [top] => matches!(top.as_str(), "f:apiVersion" | "f:kind"),
        [top, ..] if top == "f:status" => true,
        [m, f, ..] if m == "f:metadata" => matches!(
            f.as_str(),
            "f:name"
                | "f:namespace"
                | "f:uid"
                | "f:resourceVersion"
                | "f:generation"
                | "f:creationTimestamp"
                | "f:managedFields"
                | "f:selfLink"
                | "f:deletionTimestamp"
                | "f:deletionGracePeriodSeconds"
        ),
        _ => false,
    }
}

fn last_applied(path: &[String]) -> bool {
    path.len() >= 3
        && path[0] == "f:metadata"
        && path[1] == "f:annotations"
        && path[2] == format!("f:{}", crate::model::applied::LAST_APPLIED)
}

/// The leaf paths of an object.
pub fn fields_of(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk(v, "", &mut Vec::new(), &mut out);
    out.retain(|p| !ignored(p) && !last_applied(p));
    out
}

fn walk(v: &Value, field: &str, path: &mut Path, out: &mut FieldSet) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                path.push(format!("f:{k}"));
                walk(x, k, path, out);
                path.pop();
            }
        }
        Value::Array(items) if !path.is_empty() => match list_strategy(field, items, &[]) {
            ListStrategy::Key(key) if items.iter().all(|i| i.get(key).is_some()) => {
                for i in items {
                    path.push(format!("k:{}", json!({key: i[key]})));
                    path.push(ITEM.into());
                    out.insert(path.clone());
                    path.pop();
                    walk_item(i, path, out);
                    path.pop();
                }
            }
            ListStrategy::Set => {
                for i in items {
                    path.push(format!("v:{i}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            _ => {
                out.insert(path.clone());
            }
        },
        _ if !path.is_empty() => {
            out.insert(path.clone());
        }
        _ => {}
    }
}

fn walk_item(item: &Value, path: &mut Path, out: &mut FieldSet) {
    if let Value::Object(m) = item {
        for (k, x) in m {
            path.push(format!("f:{k}"));
            walk(x, k, path, out);
            path.pop();
        }
    }
}

/// The value at a path (`None`: absent).
pub fn get<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for step in path {
        if step == ITEM {
            continue;
        }
        cur = if let Some(k) = step.strip_prefix("f:") {
            cur.get(k)?
        } else if let Some(k) = step.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur.as_array()?
                .iter()
                .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))?
        } else if let Some(x) = step.strip_prefix("v:") {
            let want: Value = serde_json::from_str(x).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Remove the field at a path (an item marker removes the item).
fn remove(v: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|s| *s != ITEM).collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for step in parents {
        let next = if let Some(k) = step.strip_prefix("f:") {
            cur.get_mut(k)
        } else if let Some(k) = step.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(k) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(k);
        }
    } else if let Some(k) = last.strip_prefix("k:") {
        if let (Ok(want), Some(a)) = (
            serde_json::from_str::<Map<String, Value>>(k),
            cur.as_array_mut(),
        ) {
            a.retain(|i| !want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)));
        }
    } else if let Some(x) = last.strip_prefix("v:")
        && let (Ok(want), Some(a)) = (serde_json::from_str::<Value>(x), cur.as_array_mut())
    {
        a.retain(|i| *i != want);
    }
}

/// A path as the API server prints it in conflicts:
/// `.spec.template.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for step in path {
        if let Some(k) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(k);
        } else if let Some(k) = step.strip_prefix("k:") {
            let m: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(x) = step.strip_prefix("v:") {
            s.push_str(&format!("[{x}]"));
        }
    }
    s
}

/// `fieldsV1`: the nested map form of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut cur = &mut root;
        for step in p {
            cur = cur
                .entry(step.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("built as objects");
        }
    }
    Value::Object(root)
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn go(v: &Value, path: &mut Path, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, x) in m {
                    path.push(k.clone());
                    go(x, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    go(v, &mut Vec::new(), &mut out);
    out
}

/// Whose entry: (manager, operation, subresource — empty for the object
/// itself, `scale` for a write through `/scale`), as the API server tells
/// managers apart.
pub type Owner = (String, String, String);

/// The managers of an object: their fields, with the apiVersion and time
/// of each entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Managers(pub BTreeMap<Owner, (FieldSet, String, String)>);

impl Managers {
    pub fn of(obj: &Value) -> Managers {
        let mut m = BTreeMap::new();
        for e in obj
            .pointer("/metadata/managedFields")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
        {
            let s = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
            let set = from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null));
            m.insert(
                (s("manager"), s("operation"), s("subresource")),
                (set, s("apiVersion"), s("time")),
            );
        }
        Managers(m)
    }

    pub fn to_json(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .filter(|(_, (set, _, _))| !set.is_empty())
                .map(|((manager, op, sub), (set, av, time))| {
                    let mut e = json!({"manager": manager, "operation": op, "apiVersion": av,
                        "time": time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(set)});
                    if !sub.is_empty() {
                        e["subresource"] = json!(sub);
                    }
                    e
                })
                .collect(),
        )
    }

    /// Give `fields` to `owner`, taking them from everyone else.
    fn take(&mut self, owner: &Owner, fields: &FieldSet, api_version: &str) {
        for (o, (set, _, _)) in self.0.iter_mut() {
            if o != owner {
                set.retain(|p| !fields.contains(p));
            }
        }
        let e = self
            .0
            .entry(owner.clone())
            .or_insert_with(|| (FieldSet::new(), String::new(), String::new()));
        e.0.extend(fields.iter().cloned());
        e.1 = api_version.to_string();
        e.2 = now();
        self.0.retain(|_, (set, _, _)| !set.is_empty());
    }
}

fn now() -> String {
    serde_json::to_value(crate::model::now_time())
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The managed fields after a non-apply write by `manager` (through
/// `subresource`, empty for the object itself): it owns what it set or
/// changed.
pub fn record_update(manager: &str, subresource: &str, old: Option<&Value>, new: &Value) -> Value {
    let mut managers = old.map(Managers::of).unwrap_or_default();
    let old_fields = old.map(fields_of).unwrap_or_default();
    let changed: FieldSet = fields_of(new)
        .into_iter()
        .filter(|p| !old_fields.contains(p) || old.and_then(|o| get(o, p)) != get(new, p))
        .collect();
    let av = new.get("apiVersion").and_then(|a| a.as_str()).unwrap_or("");
    if !changed.is_empty() {
        let owner = (
            manager.to_string(),
            "Update".to_string(),
            subresource.to_string(),
        );
        managers.take(&owner, &changed, av);
    }
    managers.to_json()
}

/// Why an apply was refused.
#[derive(Debug)]
pub enum Refused {
    /// Fields owned by other managers, as (manager, path).
    Conflicts(Vec<(String, Path)>),
    /// The applied object cannot be merged (a keyed list item without its key).
    Invalid(String),
}

/// A server-side apply by `manager` (through `subresource`, empty for the
/// object itself) of `applied` onto `current` (absent: the object is
/// created). Returns the new object (with its managed fields) or why not.
pub fn apply(
    manager: &str,
    subresource: &str,
    current: Option<&Value>,
    applied: &Value,
    force: bool,
) -> Result<Value, Refused> {
    let mine = fields_of(applied);
    let cur = current.cloned().unwrap_or_else(|| json!({}));
    let mut managers = Managers::of(&cur);
    let key: Owner = (
        manager.to_string(),
        "Apply".to_string(),
        subresource.to_string(),
    );
    let av = applied
        .get("apiVersion")
        .and_then(|a| a.as_str())
        .unwrap_or("");
    // Conflicts: a field applied with another value than the object has,
    // owned by someone else.
    let mut conflicts = Vec::new();
    for p in &mine {
        if p.last().is_some_and(|s| s == ITEM) {
            continue;
        }
        let (have, want) = (get(&cur, p), get(applied, p));
        if have.is_none() || have == want {
            continue;
        }
        for (owner, (set, _, _)) in &managers.0 {
            if *owner != key && set.contains(p) {
                conflicts.push((owner.0.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Refused::Conflicts(conflicts));
    }
    // Fields this manager applied before and no longer does go, unless
    // someone else owns them (or something under them).
    let before = managers
        .0
        .get(&key)
        .map(|e| e.0.clone())
        .unwrap_or_default();
    let others: FieldSet = managers
        .0
        .iter()
        .filter(|(k, _)| **k != key)
        .flat_map(|(_, (set, _, _))| set.iter().cloned())
        .collect();
    let mut obj = cur;
    let mut gone: Vec<&Path> = before.difference(&mine).collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        let prefix: Vec<&String> = p.iter().filter(|s| *s != ITEM).collect();
        let held = others.iter().any(|o| {
            let o: Vec<&String> = o.iter().filter(|s| *s != ITEM).collect();
            o.starts_with(&prefix)
        });
        let still_applied = mine.iter().any(|m| {
            let m: Vec<&String> = m.iter().filter(|s| *s != ITEM).collect();
            m.starts_with(&prefix)
        });
        if !held && !still_applied {
            remove(&mut obj, p);
        }
    }
    let mut obj =
        super::patch::strategic(&obj, applied).map_err(|e| Refused::Invalid(e.to_string()))?;
    // Forced conflicts: those fields leave their other owners. Fields
    // applied with the value they had stay shared.
    for (k, (set, _, _)) in managers.0.iter_mut() {
        if *k != key {
            set.retain(|p| !conflicts.iter().any(|(_, c)| c == p));
        }
    }
    managers.0.insert(key, (mine, av.to_string(), now()));
    managers.0.retain(|_, (set, _, _)| !set.is_empty());
    obj["metadata"]["managedFields"] = managers.to_json();
    Ok(obj)
}

/// The API server's 409 message for apply conflicts.
pub fn conflict_message(conflicts: &[(String, Path)], api_version: &str) -> String {
    let n = conflicts.len();
    let mut by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (m, p) in conflicts {
        by.entry(m).or_default().push(display(p));
    }
    if n == 1 {
        let (m, p) = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with {m:?} using {api_version}: {}",
            display(p)
        );
    }
    let mut s = format!("Apply failed with {n} conflicts: ");
    let parts: Vec<String> = by
        .iter()
        .map(|(m, paths)| {
            let mut t = format!("conflicts with {m:?} using {api_version}:");
            for p in paths {
                t.push_str(&format!("\n- {p}"));
            }
            t
        })
        .collect();
    s.push_str(&parts.join("\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn field_sets_key_list_items_and_round_trip() {
        let f = fields_of(&dep(2, "a"));
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Path>();
        assert!(f.contains(&p(&["f:spec", "f:replicas"])));
        assert!(f.contains(&p(&[
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            r#"k:{"name":"web"}"#,
            "f:image"
        ])));
        assert!(
            !f.iter()
                .any(|x| x[0] == "f:kind" || x.get(1).is_some_and(|s| s == "f:name"))
        );
        assert_eq!(from_fields_v1(&to_fields_v1(&f)), f);
        assert_eq!(
            display(&p(&[
                "f:spec",
                "f:containers",
                r#"k:{"name":"web"}"#,
                "f:image"
            ])),
            r#".spec.containers[name="web"].image"#
        );
    }

    #[test]
    fn apply_owns_conflicts_forces_and_removes() {
        // kubectl create (an Update by kubectl-create), then an apply that
        // changes replicas: a conflict, unless forced.
        let mut created = dep(1, "a");
        created["metadata"]["managedFields"] = record_update("kubectl-create", "", None, &created);
        let Err(Refused::Conflicts(e)) = apply("me", "", Some(&created), &dep(3, "a"), false)
        else {
            panic!("a conflict")
        };
        assert_eq!(e.len(), 1);
        assert_eq!(display(&e[0].1), ".spec.replicas");
        assert_eq!(
            conflict_message(&e, "apps/v1"),
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using apps/v1: .spec.replicas"
        );
        // The same values: no conflict, shared ownership.
        let same = apply("me", "", Some(&created), &dep(1, "a"), false).unwrap();
        let m = Managers::of(&same);
        let p: Path = vec!["f:spec".into(), "f:replicas".into()];
        assert!(
            m.0[&("me".into(), "Apply".into(), String::new())]
                .0
                .contains(&p)
        );
        assert!(
            m.0[&("kubectl-create".into(), "Update".into(), String::new())]
                .0
                .contains(&p)
        );
        // Forced: the field is the applier's alone.
        let forced = apply("me", "", Some(&created), &dep(3, "a"), true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        let m = Managers::of(&forced);
        assert!(
            !m.0[&("kubectl-create".into(), "Update".into(), String::new())]
                .0
                .contains(&p)
        );
        // A field the applier drops goes, if nobody else owns it.
        let mut first = apply("me", "", None, &dep(2, "a"), false).unwrap();
        first["metadata"]["labels"]["extra"] = json!("x");
        let mut again = dep(2, "a");
        again["metadata"]["labels"]["extra"] = json!("x");
        let with = apply("me", "", Some(&first), &again, false).unwrap();
        let without = apply("me", "", Some(&with), &dep(2, "a"), false).unwrap();
        assert!(
            without["metadata"]["labels"].get("extra").is_none(),
            "{without}"
        );
        assert_eq!(without["metadata"]["labels"]["app"], "web");
    }
}
