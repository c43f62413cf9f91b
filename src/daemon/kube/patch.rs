//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes strategic merge patch, applied to an object's JSON.
//!
//! Strategic merge patch: maps merge, `null` deletes, and lists merge by
//! their merge key where the Kubernetes type declares `patchStrategy: merge`
//! (`containers`, `env`, `volumes`, `imagePullSecrets` by `name`, container
//! `ports` by `containerPort`, Service `ports` by `port`, `volumeMounts` by
//! `mountPath`, `hostAliases` by `ip`, `ownerReferences` by `uid`,
//! `conditions` by `type`; `finalizers` as a set). lab's kinds use each of
//! these field names with one meaning, so the strategy is chosen by field
//! name instead of from the OpenAPI schema. Every other list is replaced, as
//! the API server does for lists without a patch strategy. The directives
//! kubectl sends are honoured: `$patch: replace|delete|merge`,
//! `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and
//! `$retainKeys`.

use serde_json::{Map, Value};

/// Why a patch could not be applied: names the JSON pointer, operation or
/// list field at fault. The API answers these with 422 Invalid (415 for
/// server-side apply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error(
        "server-side apply is not supported by lab on this subresource (apply the object itself)"
    )]
    ServerSideApply,
    #[error("invalid JSON pointer {0:?}")]
    Pointer(String),
    #[error("path {0:?} does not exist")]
    Missing(String),
    #[error("index {index:?} out of range in {path:?}")]
    Index { index: String, path: String },
    #[error("path {0:?}: parent is not a container")]
    NotContainer(String),
    #[error("cannot remove the whole document")]
    RemoveRoot,
    #[error("a JSON patch must be an array of operations")]
    NotArray,
    #[error("every JSON patch operation needs a \"path\"")]
    NoPath,
    #[error("operation {0:?} needs a \"value\"")]
    NoValue(String),
    #[error("operation {0:?} needs \"from\"")]
    NoFrom(String),
    #[error("test operation failed at {0:?}")]
    TestFailed(String),
    #[error("unknown JSON patch operation {0:?}")]
    UnknownOp(String),
    #[error("unknown patch directive $patch: {0}")]
    UnknownDirective(String),
    #[error("{field}: every item of a strategic merge patch needs its merge key {key:?}")]
    MergeKey { field: String, key: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    /// Server-side apply (`application/apply-patch+yaml`): handled by
    /// [`super::apply`] for objects; not for the `scale` subresource.
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let base = ct.split(';').next().unwrap_or("").trim();
        Some(match base {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }
}

pub fn apply(kind: PatchType, orig: &Value, patch: &Value) -> Result<Value, PatchError> {
    match kind {
        PatchType::Json => json_patch(orig, patch),
        PatchType::Merge => Ok(merge_patch(orig, patch)),
        PatchType::Strategic => strategic(orig, patch),
        PatchType::Apply => Err(PatchError::ServerSideApply),
    }
}

/// RFC 7386.
pub fn merge_patch(orig: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match orig {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, PatchError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PatchError::Pointer(path.to_string()));
    };
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, PatchError> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Missing(path.to_string()))?;
    }
    Ok(cur)
}

fn get_at(doc: &Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split_pointer(path)?;
    let mut cur = doc;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| PatchError::Missing(path.to_string()))?;
    }
    Ok(cur.clone())
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| PatchError::Index {
                        index: last.clone(),
                        path: path.to_string(),
                    })?
            };
            a.insert(i, value);
        }
        _ => return Err(PatchError::NotContainer(path.to_string())),
    }
    Ok(())
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let tokens = split_pointer(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        return Err(PatchError::RemoveRoot);
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| PatchError::Missing(path.to_string())),
        Value::Array(a) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(|| PatchError::Index {
                    index: last.clone(),
                    path: path.to_string(),
                })?;
            Ok(a.remove(i))
        }
        _ => Err(PatchError::Missing(path.to_string())),
    }
}

/// RFC 6902.
pub fn json_patch(orig: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or(PatchError::NotArray)?;
    let mut doc = orig.clone();
    for op in ops {
        let name = op.get("op").and_then(|v| v.as_str()).unwrap_or("");
        let path = op
            .get("path")
            .and_then(|v| v.as_str())
            .ok_or(PatchError::NoPath)?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::NoValue(name.to_string()))
        };
        let from = || {
            op.get("from")
                .and_then(|v| v.as_str())
                .ok_or_else(|| PatchError::NoFrom(name.to_string()))
        };
        match name {
            "add" => add_at(&mut doc, path, value()?)?,
            "remove" => {
                remove_at(&mut doc, path)?;
            }
            "replace" => {
                get_at(&doc, path)?;
                if path.is_empty() {
                    doc = value()?;
                } else {
                    remove_at(&mut doc, path)?;
                    add_at(&mut doc, path, value()?)?;
                }
            }
            "move" => {
                let v = remove_at(&mut doc, from()?)?;
                add_at(&mut doc, path, v)?;
            }
            "copy" => {
                let v = get_at(&doc, from()?)?;
                add_at(&mut doc, path, v)?;
            }
            "test" => {
                if get_at(&doc, path)? != value()? {
                    return Err(PatchError::TestFailed(path.to_string()));
                }
            }
            other => return Err(PatchError::UnknownOp(other.to_string())),
        }
    }
    Ok(doc)
}

/// How a list field merges under a strategic merge patch.
pub enum ListStrategy {
    Replace,
    /// Merge object items by this key.
    Key(&'static str),
    /// A list of scalars merged as a set.
    Set,
}

pub fn list_strategy(field: &str, orig: &[Value], patch: &[Value]) -> ListStrategy {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => ListStrategy::Key("name"),
        "ports" => {
            let has = |items: &[Value]| items.iter().any(|i| i.get("containerPort").is_some());
            if has(orig) || has(patch) {
                ListStrategy::Key("containerPort")
            } else {
                ListStrategy::Key("port")
            }
        }
        "volumeMounts" => ListStrategy::Key("mountPath"),
        "hostAliases" => ListStrategy::Key("ip"),
        "ownerReferences" => ListStrategy::Key("uid"),
        "conditions" => ListStrategy::Key("type"),
        "finalizers" => ListStrategy::Set,
        _ => ListStrategy::Replace,
    }
}

/// Kubernetes strategic merge patch (see the module documentation).
pub fn strategic(orig: &Value, patch: &Value) -> Result<Value, PatchError> {
    Ok(strategic_map(orig, patch)?.unwrap_or(Value::Null))
}

/// `None`: the map is deleted (`$patch: delete`).
fn strategic_map(orig: &Value, patch: &Value) -> Result<Option<Value>, PatchError> {
    let Value::Object(p) = patch else {
        return Ok(Some(patch.clone()));
    };
    match p.get("$patch").and_then(|v| v.as_str()) {
        Some("delete") => return Ok(None),
        Some("replace") => {
            let mut m = p.clone();
            m.remove("$patch");
            return Ok(Some(strip_directives(&Value::Object(m))));
        }
        Some("merge") | None => {}
        Some(other) => return Err(PatchError::UnknownDirective(other.to_string())),
    }
    let mut out = match orig {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    if let Some(keep) = p.get("$retainKeys").and_then(|v| v.as_array()) {
        let keep: Vec<&str> = keep.iter().filter_map(|v| v.as_str()).collect();
        out.retain(|k, _| keep.contains(&k.as_str()) || p.contains_key(k));
    }
    let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            orders.push((field.to_string(), v.as_array().cloned().unwrap_or_default()));
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let gone = v.as_array().cloned().unwrap_or_default();
            if let Some(Value::Array(items)) = out.get_mut(field) {
                items.retain(|i| !gone.contains(i));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let cur = out.get(k).cloned().unwrap_or(Value::Null);
        let merged = match (v, &cur) {
            (Value::Object(_), _) => strategic_map(&cur, v)?,
            (Value::Array(pa), Value::Array(oa)) => Some(strategic_list(k, oa, pa)?),
            (Value::Array(pa), _) => Some(strategic_list(k, &[], pa)?),
            _ => Some(v.clone()),
        };
        match merged {
            Some(m) => {
                out.insert(k.clone(), m);
            }
            None => {
                out.remove(k);
            }
        }
    }
    for (field, order) in orders {
        if let Some(Value::Array(items)) = out.get_mut(&field) {
            reorder(&field, items, &order);
        }
    }
    Ok(Some(Value::Object(out)))
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn strategic_list(field: &str, orig: &[Value], patch: &[Value]) -> Result<Value, PatchError> {
    // A list-level `{"$patch": "replace"}` item replaces the whole list.
    let replace = patch
        .iter()
        .any(|i| i.get("$patch").and_then(|v| v.as_str()) == Some("replace"));
    if replace {
        return Ok(Value::Array(
            patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(strip_directives)
                .collect(),
        ));
    }
    match list_strategy(field, orig, patch) {
        ListStrategy::Replace => Ok(strip_directives(&Value::Array(patch.to_vec()))),
        ListStrategy::Set => {
            let mut out = orig.to_vec();
            for p in patch {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListStrategy::Key(key) => {
            let mut out = orig.to_vec();
            for p in patch {
                let Some(kv) = p.get(key) else {
                    return Err(PatchError::MergeKey {
                        field: field.to_string(),
                        key,
                    });
                };
                let pos = out.iter().position(|o| o.get(key) == Some(kv));
                match (
                    pos,
                    strategic_map(&pos.map_or(Value::Null, |i| out[i].clone()), p)?,
                ) {
                    (Some(i), Some(m)) => out[i] = m,
                    (Some(i), None) => {
                        out.remove(i);
                    }
                    (None, Some(m)) => out.push(m),
                    (None, None) => {}
                }
            }
            Ok(Value::Array(out))
        }
    }
}

/// `$setElementOrder`: items named in `order` come first, in its order.
fn reorder(field: &str, items: &mut [Value], order: &[Value]) {
    let key = match list_strategy(field, items, &[]) {
        ListStrategy::Key(k) => Some(k),
        _ => None,
    };
    let rank = |v: &Value| {
        order
            .iter()
            .position(|o| match key {
                Some(k) => o.get(k).is_some() && o.get(k) == v.get(k),
                None => o == v,
            })
            .unwrap_or(usize::MAX)
    };
    items.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let o = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let p = json!({"a": "z", "c": {"f": null}, "l": [3]});
        assert_eq!(
            merge_patch(&o, &p),
            json!({"a": "z", "c": {"d": "e"}, "l": [3]})
        );
    }

    #[test]
    fn json_patch_ops() {
        let o = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 2]});
        let p = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/metadata/labels/a", "value": "x"},
            {"op": "add", "path": "/l/-", "value": 3},
            {"op": "remove", "path": "/l/0"},
            {"op": "test", "path": "/l/0", "value": 2},
            {"op": "copy", "from": "/l", "path": "/m"},
            {"op": "move", "from": "/m", "path": "/n"}
        ]);
        let r = json_patch(&o, &p).unwrap();
        assert_eq!(
            r,
            json!({"metadata": {"labels": {"a": "x", "b/c": "2"}}, "l": [2, 3], "n": [2, 3]})
        );
        assert!(json_patch(&o, &json!([{"op": "test", "path": "/l/0", "value": 9}])).is_err());
        assert_eq!(
            json_patch(&o, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::Missing("/nope".into()))
        );
        assert!(json_patch(&o, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let o = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y"}]}}}});
        let p = json!({"spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [{"name": "a", "image": "x2", "env": [{"name": "F", "value": "2"}]}]}}}});
        let r = strategic(&o, &p).unwrap();
        assert_eq!(r["spec"]["replicas"], 3);
        let cs = &r["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["name"], "b", "reordered by $setElementOrder");
        assert_eq!(cs[1]["image"], "x2");
        assert_eq!(
            cs[1]["env"],
            json!([{"name": "E", "value": "1"}, {"name": "F", "value": "2"}])
        );
        // Delete an item; replace a list without strategy; null removes.
        let p = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}},
            "replicas": null}});
        let r = strategic(&o, &p).unwrap();
        assert_eq!(
            r["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert!(r["spec"].get("replicas").is_none());
        let o = json!({"args": ["a", "b"], "finalizers": ["x"]});
        let r = strategic(
            &o,
            &json!({"args": ["c"], "finalizers": ["y"],
            "$deleteFromPrimitiveList/finalizers": ["x"]}),
        )
        .unwrap();
        assert_eq!(r, json!({"args": ["c"], "finalizers": ["y"]}));
    }

    #[test]
    fn strategic_ports_and_replace_directive() {
        let svc = json!({"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]});
        let r = strategic(&svc, &json!({"ports": [{"port": 80, "targetPort": 9090}]})).unwrap();
        assert_eq!(r["ports"][0]["targetPort"], 9090);
        assert_eq!(r["ports"].as_array().unwrap().len(), 2);
        let r = strategic(
            &svc,
            &json!({"ports": [{"$patch": "replace"}, {"port": 1}]}),
        )
        .unwrap();
        assert_eq!(r["ports"], json!([{"port": 1}]));
        let r = strategic(
            &json!({"m": {"a": 1, "b": 2}}),
            &json!({"m": {"$patch": "replace", "c": 3}}),
        )
        .unwrap();
        assert_eq!(r, json!({"m": {"c": 3}}));
        let e = strategic(&svc, &json!({"ports": [{"targetPort": 1}]})).unwrap_err();
        assert_eq!(
            e,
            PatchError::MergeKey {
                field: "ports".into(),
                key: "port"
            }
        );
        assert_eq!(
            e.to_string(),
            "ports: every item of a strategic merge patch needs its merge key \"port\""
        );
    }
}
