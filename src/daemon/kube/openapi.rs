//! `/openapi/v3`: one document per group version. The *operations*
//! (paths, verbs, the `fieldValidation` query parameter, the patch media
//! types) are generated from the served resource table
//! ([`super::discovery::RESOURCES`]); that is what kubectl reads to learn
//! that the server validates fields itself (`kubectl apply
//! --validate=strict`, the default). The *schemas* come from k8s-openapi's
//! types (its `schemars` feature: the Kubernetes OpenAPI definitions
//! compiled into the crate), under their Kubernetes names
//! (`io.k8s.api.core.v1.Pod`) with `x-kubernetes-group-version-kind`, so
//! `kubectl explain` works. The patch operations do not list the strategic
//! merge media type, so kubectl computes strategic merge patches from its
//! compiled-in types, as it does for any server whose OpenAPI lacks patch
//! metadata. `/openapi/v2` is not served (404): every kind, read-only ones
//! included, has a PATCH operation with `fieldValidation`, so kubectl never
//! falls back to it for client-side validation.

use super::discovery::{self, Info, Res};
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
        // Every kind gets its PATCH operation with `fieldValidation`, the
        // writable ones and the read-only ones alike: kubectl decides per
        // kind whether the server validates fields by looking for exactly
        // that, and otherwise falls back to validating against
        // `/openapi/v2` (which lab does not serve). A read-only kind's
        // operation says that lab answers 405, as it does.
        if can("patch") {
            it.insert("patch".into(), op(i, "patch", true));
        } else {
            let mut o = op(i, "patch", true);
            o["responses"] = json!({"405": {"description": format!(
                "MethodNotAllowed: {} are read-only in lab", i.plural)}});
            it.insert("patch".into(), o);
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
        "components": {"schemas": schemas(group, version)},
    }))
}

/// The schemas of a group version's kinds and everything they refer to.
fn schemas(group: &str, version: &str) -> Map<String, Value> {
    use crate::model::Kind;
    use k8s_openapi::api;
    use k8s_openapi::schemars::generate::SchemaSettings;
    let mut g = SchemaSettings::openapi3().into_generator();
    let mut named = Vec::new();
    for i in discovery::RESOURCES
        .iter()
        .filter(|i| i.group == group && i.version == version)
    {
        let name = match i.res {
            Res::Obj(Kind::Namespace) => {
                g.subschema_for::<api::core::v1::Namespace>();
                "io.k8s.api.core.v1.Namespace"
            }
            Res::Obj(Kind::Pod) => {
                g.subschema_for::<api::core::v1::Pod>();
                "io.k8s.api.core.v1.Pod"
            }
            Res::Obj(Kind::Service) => {
                g.subschema_for::<api::core::v1::Service>();
                "io.k8s.api.core.v1.Service"
            }
            Res::Obj(Kind::ConfigMap) => {
                g.subschema_for::<api::core::v1::ConfigMap>();
                "io.k8s.api.core.v1.ConfigMap"
            }
            Res::Obj(Kind::Endpoints) => {
                g.subschema_for::<api::core::v1::Endpoints>();
                "io.k8s.api.core.v1.Endpoints"
            }
            Res::Obj(Kind::EndpointSlice) => {
                g.subschema_for::<api::discovery::v1::EndpointSlice>();
                "io.k8s.api.discovery.v1.EndpointSlice"
            }
            Res::Obj(Kind::Deployment) => {
                g.subschema_for::<api::apps::v1::Deployment>();
                "io.k8s.api.apps.v1.Deployment"
            }
            Res::Obj(Kind::ReplicaSet) => {
                g.subschema_for::<api::apps::v1::ReplicaSet>();
                "io.k8s.api.apps.v1.ReplicaSet"
            }
            Res::Obj(Kind::StatefulSet) => {
                g.subschema_for::<api::apps::v1::StatefulSet>();
                "io.k8s.api.apps.v1.StatefulSet"
            }
            Res::Obj(Kind::Secret) => {
                g.subschema_for::<api::core::v1::Secret>();
                "io.k8s.api.core.v1.Secret"
            }
            Res::Obj(Kind::Job) => {
                g.subschema_for::<api::batch::v1::Job>();
                "io.k8s.api.batch.v1.Job"
            }
            Res::Obj(Kind::Node) => {
                g.subschema_for::<api::core::v1::Node>();
                "io.k8s.api.core.v1.Node"
            }
            Res::Obj(Kind::Event) => {
                g.subschema_for::<api::core::v1::Event>();
                "io.k8s.api.core.v1.Event"
            }
            Res::EventV1 => {
                g.subschema_for::<api::events::v1::Event>();
                "io.k8s.api.events.v1.Event"
            }
        };
        named.push((name, i));
    }
    let mut defs = g.take_definitions(true);
    for (name, i) in named {
        if let Some(Value::Object(schema)) = defs.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": i.group, "version": i.version, "kind": i.kind}]),
            );
        }
    }
    defs
}

/// Every document, made once (the schemas take a moment to generate).
fn documents() -> &'static HashMap<String, Value> {
    static DOCS: std::sync::OnceLock<HashMap<String, Value>> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .filter_map(|(g, v)| Some((gv_path(g, v), document(g, v)?)))
            .collect()
    })
}

pub fn root() -> Value {
    let mut paths = Map::new();
    for (p, doc) in documents() {
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(doc))}),
        );
    }
    json!({"paths": paths})
}

pub fn serve(
    path: &str,
    _q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let doc = match path.strip_prefix("/openapi/v3") {
        Some("") => Some(root()),
        Some(rest) => documents().get(rest.trim_start_matches('/')).cloned(),
        None => None,
    };
    let doc = doc.ok_or_else(|| status::path_not_found(path))?;
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
        // Read-only kinds too have a PATCH naming fieldValidation (kubectl's
        // test for server-side validation), answered 405.
        let ev = &document("", "v1").unwrap()["paths"]["/api/v1/namespaces/{namespace}/events/{name}"]
            ["patch"];
        assert_eq!(ev["x-kubernetes-group-version-kind"]["kind"], "Event");
        assert!(ev["responses"]["405"].is_object());
        assert!(
            ev["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == "fieldValidation")
        );
        assert!(
            document("rbac.authorization.k8s.io", "v1").is_none()
                && document("batch", "v1").is_some()
        );
        // Schemas under their Kubernetes names, tagged with their kind, and
        // everything they refer to.
        let s = &d["components"]["schemas"];
        assert_eq!(
            s["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(s.get("io.k8s.api.apps.v1.DeploymentSpec").is_some());
        assert!(s.get("io.k8s.api.core.v1.PodSpec").is_some());
        let p = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "StatefulSet");
        assert!(s.get("io.k8s.api.apps.v1.StatefulSetSpec").is_some());
        assert!(s.get("io.k8s.api.core.v1.PersistentVolumeClaim").is_some());
    }
}
