//! What `kubectl apply` keeps on an object so that the next apply can tell
//! the user's fields from the server's: the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, written
//! exactly as kubectl writes it (so a `kubectl apply` of what `lab apply`
//! applied finds nothing to change), and the three-way merge of labels and
//! annotations it allows (keys the last apply set and this one drops are
//! removed; keys someone else set — the server, a controller — stay).

use serde_json::Value;
use std::collections::BTreeMap;

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The annotation's value for an applied document: the object as given,
/// with `metadata.namespace` filled in for namespaced kinds, its own
/// annotation removed (an empty `annotations` map left, as kubectl leaves
/// it), keys sorted, compact JSON escaped as Go's `encoding/json` escapes
/// it, and a trailing newline.
pub fn last_applied(doc: &Value, namespace: Option<&str>) -> String {
    let mut v = doc.clone();
    if let Some(obj) = v.as_object_mut() {
        let meta = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            if let Some(ns) = namespace
                && meta
                    .get("namespace")
                    .is_none_or(|n| n.as_str().is_none_or(str::is_empty))
            {
                meta.insert("namespace".into(), Value::String(ns.to_string()));
            }
            let ann = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            match ann.as_object_mut() {
                Some(a) => {
                    a.remove(LAST_APPLIED);
                }
                None => *ann = Value::Object(Default::default()),
            }
        }
    }
    let mut s = go_json(&sorted(v));
    s.push('\n');
    s
}

/// The value with every object's keys in sorted order (Go marshals maps so).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        v => v,
    }
}

/// Compact JSON with Go's HTML-safe escapes (`<`, `>`, `&`, U+2028, U+2029).
fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// The keys of `metadata.<field>` in a last-applied annotation's value.
pub fn applied_keys(last_applied: Option<&str>, field: &str) -> Vec<String> {
    last_applied
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| {
            v.pointer(&format!("/metadata/{field}"))?
                .as_object()
                .map(|m| m.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// Three-way merge of a string map (labels, annotations): start from what
/// the object has, drop the keys the previous apply set (`previously`) that
/// this one (`new`) no longer has, then set everything `new` has. `None`
/// when the result is empty and the object had none.
pub fn merge_map(
    current: Option<&BTreeMap<String, String>>,
    previously: &[String],
    new: Option<&BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let mut out = current.cloned().unwrap_or_default();
    let new_map = new.cloned().unwrap_or_default();
    for k in previously {
        if !new_map.contains_key(k) {
            out.remove(k);
        }
    }
    out.extend(new_map);
    if out.is_empty() && current.is_none() && new.is_none() {
        None
    } else {
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_kubectl_writes_it() {
        // What kubectl 1.3x stored for this manifest (observed against lab's
        // API): sorted keys, the namespace filled in, empty annotations.
        let doc: Value = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"client","labels":{"app":"client"}},"spec":{"containers":[{"name":"client","image":"registry.k8s.io/e2e-test-images/agnhost:2.47","args":["netexec","--http-port=8080","--udp-port=8081"]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            last_applied(&doc, Some("default")),
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"labels\":{\"app\":\"client\"},\"name\":\"client\",\"namespace\":\"default\"},\"spec\":{\"containers\":[{\"args\":[\"netexec\",\"--http-port=8080\",\"--udp-port=8081\"],\"image\":\"registry.k8s.io/e2e-test-images/agnhost:2.47\",\"name\":\"client\"}]}}\n"
        );
        // Its own annotation is not part of it; others are; HTML-safe escapes.
        let doc: Value = serde_json::from_str(&format!(
            r#"{{"kind":"Namespace","metadata":{{"name":"x","annotations":{{"{LAST_APPLIED}":"old","note":"a<b & c>d"}}}}}}"#
        ))
        .unwrap();
        assert_eq!(
            last_applied(&doc, None),
            "{\"kind\":\"Namespace\",\"metadata\":{\"annotations\":{\"note\":\"a\\u003cb \\u0026 c\\u003ed\"},\"name\":\"x\"}}\n"
        );
    }

    #[test]
    fn three_way_merge_keeps_what_others_set() {
        let m = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let current = m(&[
            ("lab.dev/netns", "c-default-p"),
            ("team", "a"),
            ("old", "1"),
        ]);
        let prev = vec!["team".to_string(), "old".to_string()];
        let new = m(&[("team", "b")]);
        assert_eq!(
            merge_map(Some(&current), &prev, Some(&new)),
            Some(m(&[("lab.dev/netns", "c-default-p"), ("team", "b")]))
        );
        // Without a previous apply nothing is removed.
        assert_eq!(merge_map(Some(&current), &[], None), Some(current.clone()));
        assert_eq!(merge_map(None, &[], None), None);
        let la = r#"{"metadata":{"annotations":{},"labels":{"app":"x","tier":"y"}}}"#.to_string();
        assert_eq!(applied_keys(Some(&la), "labels"), ["app", "tier"]);
        assert!(applied_keys(Some(&la), "annotations").is_empty());
        assert!(applied_keys(Some("not json"), "labels").is_empty());
        assert!(applied_keys(None, "labels").is_empty());
    }
}
