//! `/openapi/v3`: one document per group version, generated from the
//! served resource table ([`super::discovery::RESOURCES`]). It describes
//! the *operations* (paths, verbs, the `fieldValidation` query parameter,
//! the patch media types), which is what kubectl reads to learn that the
//! server validates fields itself (`kubectl apply --validate=strict`, the
//! default). It carries no object schemas: `kubectl explain` has nothing to
//! show, and kubectl computes strategic merge patches from its built-in
//! types (as it does for any server whose OpenAPI lacks them).
//! `/openapi/v2` is not served (404); kubectl falls back as above.

use super::discovery::{self, Info};
use super::status::{self, KubeError};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut v = vec![("", "v1")];
    v.extend(discovery::GROUPS.iter().copied());
    v
}

/// A stable hash of a document (kubectl caches by it).
fn hash(v: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

fn op(i: &Info, verb: &str, patch: bool) -> Value {
    let mut params = vec![
        json!({"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
        json!({"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
        json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}),
    ];
    if !patch {
        params.truncate(0);
    }
    let mut o = json!({
        "operationId": format!("{verb}{}", i.kind),
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": i.group, "version": i.version, "kind": i.kind},
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
    });
    if patch {
        o["requestBody"] = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
        }});
    }
    o
}

/// The OpenAPI v3 document of one group version.
pub fn document(group: &str, version: &str) -> Option<Value> {
    if !group_versions().contains(&(group, version)) {
        return None;
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for i in discovery::RESOURCES
        .iter()
        .filter(|i| i.group == group && i.version == version)
    {
        let (coll, item) = if i.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", i.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", i.plural),
            )
        } else {
            (
                format!("{base}/{}", i.plural),
                format!("{base}/{}/{{name}}", i.plural),
            )
        };
        let can = |v: &str| i.verbs.contains(&v);
        let mut c = Map::new();
        if can("list") {
            c.insert("get".into(), op(i, "list", false));
        }
        if can("create") {
            c.insert("post".into(), op(i, "post", true));
        }
        if can("deletecollection") {
            c.insert("delete".into(), op(i, "deletecollection", false));
        }
        let mut it = Map::new();
        if can("get") {
            it.insert("get".into(), op(i, "get", false));
        }
        if can("update") {
            it.insert("put".into(), op(i, "put", true));
        }
        if can("patch") {
            it.insert("patch".into(), op(i, "patch", true));
        }
        if can("delete") {
            it.insert("delete".into(), op(i, "delete", false));
        }
        paths.insert(coll, Value::Object(c));
        paths.insert(item, Value::Object(it));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (lab)", "version": "v1.32.0-lab"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

pub fn root() -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions() {
        if let Some(doc) = document(g, v) {
            let p = gv_path(g, v);
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

pub fn serve(
    path: &str,
    _q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") && !accept.contains("json") {
        return Err(KubeError::new(
            406,
            "NotAcceptable",
            "only application/json is served",
        ));
    }
    let doc = match path.strip_prefix("/openapi/v3") {
        Some("") => Some(root()),
        Some(rest) => {
            let rest = rest.trim_start_matches('/');
            let segs: Vec<&str> = rest.split('/').collect();
            match segs.as_slice() {
                ["api", v] => document("", v),
                ["apis", g, v] => document(g, v),
                _ => None,
            }
        }
        None => None,
    };
    let doc = doc.ok_or_else(|| status::path_not_found(path))?;
    Ok(super::resources::json_response(StatusCode::OK, &doc, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_name_patch_with_field_validation() {
        let r = root();
        let url = r["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="));
        let d = document("apps", "v1").unwrap();
        let p = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            p["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation")
        );
        assert!(document("batch", "v1").is_none());
    }
}
