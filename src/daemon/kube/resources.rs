//! The resource handlers: get, list, watch, create, update, patch, delete,
//! deletecollection, the `scale` and `status` subresources and `pods/log`,
//! on the real API paths. Every write goes through the daemon's own
//! operations ([`crate::daemon::state::State::apply`], `delete`, `scale`),
//! so validation, defaults and allocation are the ones `lab apply` uses.

use super::Kube;
use super::discovery::{self, Info, Res};
use super::patch::{self, PatchType};
use super::select::FieldSelector;
use super::status::{self, KubeError};
use super::table::{self, Include};
use super::watch::Event as WatchEvent;
use crate::daemon::state::{ApplyError, StateError};
use crate::model::labels::Selector;
use crate::model::parse::{Document, decode};
use crate::model::{Kind, Object};
use crate::store::Key;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

type Q = HashMap<String, String>;

/// One listed object, shared with the store (no copy is made to list
/// it): written straight from its typed form, or through the
/// `events.k8s.io/v1` conversion for that group's Events.
#[derive(Clone)]
struct Item {
    obj: Arc<Object>,
    events_v1: bool,
}

impl Item {
    fn new(obj: Arc<Object>, res: Res) -> Item {
        Item {
            obj,
            events_v1: res == Res::EventV1,
        }
    }

    /// The object as Kubernetes JSON (for a field selector, a Table row).
    fn json(&self) -> Value {
        let v = self.obj.to_json();
        if self.events_v1 { event_v1(&v) } else { v }
    }

    /// Append the object's JSON to `out` without building a `Value` (but
    /// for the Events conversion).
    fn write(&self, out: &mut Vec<u8>) {
        let r = if self.events_v1 {
            serde_json::to_writer(&mut *out, &self.json())
        } else {
            self.obj.write_json(&mut *out)
        };
        // Writing typed objects into memory does not fail (no map has a
        // non-string key); an error would leave invalid JSON, so say so.
        if let Err(e) = r {
            tracing::error!(error = %e, "serializing a listed object");
        }
    }

    fn matches(&self, labels: &Option<Selector>, fields: &FieldSelector) -> bool {
        let empty = Default::default();
        let lab = self.obj.meta().labels.as_ref().unwrap_or(&empty);
        labels.as_ref().is_none_or(|s| s.matches(lab))
            && (fields.is_empty() || fields.matches(&self.json()))
    }
}

impl super::paging::Keyed for Item {
    fn key(&self) -> (&str, &str) {
        let m = self.obj.meta();
        (
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or(""),
        )
    }
}

/// Listed objects, in key order.
type Items = Vec<Item>;

/// A request for one resource path, parsed.
pub struct Target {
    pub info: &'static Info,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub fn json_response(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut r = (code, v.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text: String = w
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_control() {
                    c
                } else {
                    ' '
                }
            })
            .collect::<String>()
            .replace('"', "'");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            h.append("Warning", v);
        }
    }
    r
}

/// How often a watch that allows bookmarks gets one (the API server: about
/// once a minute; lab more often, since it is cheap here).
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

fn truthy(q: &Q, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "1" || v == "true")
}

fn dry_run(q: &Q) -> bool {
    q.get("dryRun").is_some_and(|v| v == "All")
}

fn kind_of(t: &Target) -> Result<Kind, KubeError> {
    match t.info.res {
        Res::Obj(Kind::Event) => Err(status::method_not_allowed(
            "events are recorded by lab's controllers, scheduler and kubelet; they are read-only"
                .to_string(),
        )),
        Res::Obj(k) => Ok(k),
        _ => Err(status::method_not_allowed(format!(
            "{} are read-only in lab",
            t.info.plural
        ))),
    }
}

fn key_of(t: &Target, kind: Kind) -> Key {
    Key::new(
        kind,
        t.ns.as_deref().unwrap_or(""),
        t.name.as_deref().unwrap_or(""),
    )
}

fn not_found(t: &Target) -> KubeError {
    status::not_found(t.info.plural, t.info.group, t.name.as_deref().unwrap_or(""))
}

/// Turn one of `State::apply`'s error lines into the API server's status.
fn apply_error(t: &Target, name: &str, e: &ApplyError) -> KubeError {
    let (kind, group) = (t.info.kind, t.info.group);
    let ns = t.ns.as_deref().unwrap_or("");
    let e = match e {
        ApplyError::Manifest(m) => {
            return status::invalid(
                kind,
                group,
                name,
                m.field.as_deref().unwrap_or(""),
                &m.message,
            );
        }
        ApplyError::Object { error, .. } => error,
    };
    match e {
        StateError::NamespaceNotFound(_) => status::not_found("namespaces", "", ns),
        StateError::NamespaceTerminating(_) => status::forbidden(format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.info.plural
        )),
        StateError::BeingDeleted(_) => status::conflict(t.info.plural, group, name),
        StateError::NodeCreate(_) | StateError::SystemNamespace(_) | StateError::NodeDelete(_) => {
            status::forbidden(e)
        }
        StateError::NotWritable(_) => status::method_not_allowed(e),
        StateError::Field { field, message, .. } => {
            status::invalid(kind, group, name, field, message)
        }
        StateError::PodUpdate(_) => status::invalid(
            kind,
            group,
            name,
            "spec",
            crate::daemon::state::POD_UPDATE_FORBIDDEN,
        ),
        StateError::Object { message, .. } => status::invalid(kind, group, name, "", message),
        e => status::invalid(kind, group, name, "", &e.to_string()),
    }
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, KubeError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| status::bad_request(e.to_string()))?;
        serde_saphyr::from_str(text).map_err(|e| status::bad_request(format!("invalid YAML: {e}")))
    } else if ct.contains("protobuf") {
        super::protobuf::decode(body).map_err(|e| match e {
            super::protobuf::Error::Unsupported(field) => status::invalid(
                "",
                "",
                "",
                &field,
                "Forbidden: lab does not read this field in protobuf; send the object as JSON or YAML",
            ),
            e => status::unsupported_media(format!(
                "the protobuf body could not be read by lab: {e}"
            )),
        })
    } else if ct.contains("cbor") {
        Err(status::unsupported_media(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
        )))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

/// Strict decoding of a request object, as `lab apply` does: an unknown or
/// unsupported field is a 422 naming it.
fn check(t: &Target, v: &Value) -> Result<Vec<String>, KubeError> {
    let name = v
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .unwrap_or("");
    let doc = Document {
        source: "request".into(),
        index: 1,
        value: v.clone(),
    };
    match decode(&doc) {
        Ok(d) => Ok(d.warnings),
        Err(e) => Err(status::invalid(
            t.info.kind,
            t.info.group,
            name,
            e.field.as_deref().unwrap_or(""),
            &e.message,
        )),
    }
}

/// Store one object as the API server does: through the daemon's own
/// apply, into the state itself or into a copy of it for `dryRun`. Returns
/// the object as stored and the warnings.
fn store_one(
    state: &mut crate::daemon::state::State,
    t: &Target,
    q: &Q,
    key: &Key,
    name: &str,
    v: Value,
    managed: Value,
) -> Result<(Value, Vec<String>), KubeError> {
    let ns = t.ns.clone().unwrap_or_else(|| "default".into());
    type StrMap = std::collections::BTreeMap<String, String>;
    let meta_map = |k: &str| -> Option<StrMap> {
        v.pointer(&format!("/metadata/{k}"))
            .and_then(|m| serde_json::from_value(m.clone()).ok())
    };
    let (labels, annotations) = (meta_map("labels"), meta_map("annotations"));
    let doc = Document {
        source: "request".into(),
        index: 1,
        value: v,
    };
    let mut scratch;
    let st = if dry_run(q) {
        scratch = state.clone();
        &mut scratch
    } else {
        state
    };
    let version = |st: &crate::daemon::state::State| {
        st.store
            .get(key)
            .and_then(|o| o.meta().resource_version.clone())
    };
    let before = version(st);
    let out = st.apply(&[doc], &ns, true).map_err(|e| match e.first() {
        Some(e) => apply_error(t, name, e),
        None => status::invalid(t.info.kind, t.info.group, name, "", "refused"),
    })?;
    let written = version(st) != before;
    // Every write here carries the whole object (create, PUT, and PATCH or
    // apply after merging), so labels and annotations are exactly the
    // request's, as on the API server — where `lab apply` merges them
    // three-way and records its own last-applied annotation. (lab's own
    // `lab.dev/` annotations stay.) The managed fields, which lab's apply
    // drops from its input as server-owned, are recorded.
    if let Some(mut o) = st.store.get(key).cloned() {
        let m = o.meta_mut();
        m.managed_fields = serde_json::from_value(managed).ok();
        m.labels = labels.filter(|l| !l.is_empty());
        let mut a = annotations.unwrap_or_default();
        for (k, v) in m.annotations.iter().flatten() {
            if k.starts_with("lab.dev/") && !a.contains_key(k) {
                a.insert(k.clone(), v.clone());
            }
        }
        m.annotations = Some(a).filter(|a| !a.is_empty());
        // The apply above gave the object its new version: completing that
        // write is no second one. (An apply that changed nothing, and only
        // labels or managed fields differ: that is the write's version.)
        if written {
            st.store.amend(o);
        } else {
            st.store.update(o);
        }
    }
    let obj = st
        .store
        .get(key)
        .map(|o| o.to_json())
        .unwrap_or(Value::Null);
    Ok((obj, warnings_of(&out)))
}

/// A server-side apply refused: 409 with a cause per conflicting field, or
/// 422.
fn refused(t: &Target, name: &str, e: super::apply::Refused) -> KubeError {
    match e {
        super::apply::Refused::Conflicts(c) => {
            let av = discovery::api_version(t.info);
            let mut err = status::conflict(t.info.plural, t.info.group, name);
            err.message = super::apply::conflict_message(&c, &av);
            let causes: Vec<Value> = c
                .iter()
                .map(|(m, p)| {
                    json!({"reason": "FieldManagerConflict",
                    "message": format!("conflict with {m:?} using {av}"),
                    "field": super::apply::display(p)})
                })
                .collect();
            if let Some(d) = err.details.as_mut() {
                d["causes"] = json!(causes);
            }
            err
        }
        super::apply::Refused::Invalid(m) => {
            status::invalid(t.info.kind, t.info.group, name, "", &m)
        }
    }
}

/// The write's field manager: `fieldManager`, or the client's name from its
/// user agent (`kubectl/v1.32.4 (…)` → `kubectl`), as the API server
/// defaults it.
fn field_manager(q: &Q, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .chars()
        .take(128)
        .collect()
}

/// How a write records its managed fields.
enum Manage {
    /// An `Update` by this manager: it owns what it set or changed.
    Update(String),
    /// Exactly these entries (server-side apply computed them).
    Set(Value),
}

fn warnings_of(out: &crate::api::ApplyOutcome) -> Vec<String> {
    out.warnings
        .iter()
        .map(|w| w.strip_prefix("Warning: ").unwrap_or(w).to_string())
        .collect()
}

impl Kube {
    pub async fn handle(
        self: &Arc<Self>,
        method: &Method,
        t: Target,
        q: &Q,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, KubeError> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let as_table = table::wants_table(accept);
        if t.info.namespaced && t.ns.is_none() && t.name.is_some() {
            return Err(status::path_not_found(
                "a namespaced resource needs a namespace",
            ));
        }
        match (method.as_str(), t.name.is_some(), t.sub.as_deref()) {
            ("GET", false, None) if truthy(q, "watch") => self.watch(&t, q, as_table).await,
            ("GET", false, None) => self.list(&t, q, as_table),
            ("GET", true, None | Some("status")) => self.get(&t, q, as_table),
            ("POST", false, None) => self.create(&t, q, headers, &body).await,
            ("PUT", true, None) => self.update(&t, q, headers, &body).await,
            ("PATCH", true, None) => self.patch(&t, q, headers, &body).await,
            ("DELETE", true, None) => self.delete(&t, q, headers, &body).await,
            ("DELETE", false, None) => self.delete_collection(&t, q).await,
            (m, true, Some("scale")) if t.info.subresources.iter().any(|s| s.0 == "scale") => {
                self.scale(&t, m, q, headers, &body).await
            }
            ("GET", true, Some("log")) if t.info.plural == "pods" => self.log(&t, q).await,
            ("POST", true, Some("eviction")) if t.info.plural == "pods" => {
                self.evict(&t, q, headers, &body).await
            }
            (m, _, sub) => Err(status::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({m} {}{})",
                t.info.plural,
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ))),
        }
    }

    fn selectors(t: &Target, q: &Q) -> Result<(Option<Selector>, FieldSelector), KubeError> {
        let labels = match q.get("labelSelector").filter(|s| !s.is_empty()) {
            Some(s) => Some(Selector::parse(s).map_err(status::bad_request)?),
            None => None,
        };
        let fields = FieldSelector::parse(
            t.info.plural,
            q.get("fieldSelector").map_or("", |s| s.as_str()),
        )
        .map_err(status::bad_request)?;
        Ok((labels, fields))
    }

    /// The stored kind a target lists and the namespace it is limited to.
    fn scope(t: &Target) -> (Kind, Option<&str>) {
        let kind = match t.info.res {
            Res::Obj(kind) => kind,
            Res::EventV1 => Kind::Event,
        };
        (kind, t.ns.as_deref().filter(|_| kind.namespaced()))
    }

    /// The objects of a target (JSON) as they were at resource version
    /// `at` (a `continue` token's), from the store and the watch event log;
    /// `None` when the log no longer reaches back that far.
    fn snapshot_at(&self, t: &Target, at: u64) -> Option<(Items, u64)> {
        let (kind, ns) = Self::scope(t);
        let objects = {
            let st = self.d.lock();
            self.log.sync(&st.store);
            let current = st
                .store
                .list_shared(kind, ns)
                .map(|o| (Key::of(o), o.clone()));
            self.log.at(at, kind, ns, current)?
        };
        let items = objects
            .into_iter()
            .map(|(_, o)| Item::new(o, t.info.res))
            .collect();
        Some((items, at))
    }

    /// The objects of a target, with the resource version they were read at.
    fn snapshot(&self, t: &Target) -> (Items, u64) {
        let (kind, ns) = Self::scope(t);
        let st = self.d.lock();
        self.log.sync(&st.store);
        let items = st
            .store
            .list_shared(kind, ns)
            .map(|o| Item::new(o.clone(), t.info.res))
            .collect();
        (items, st.store.resource_version())
    }

    fn columns(t: &Target) -> Vec<(String, u8)> {
        match t.info.res {
            Res::Obj(k) => table::columns(k),
            Res::EventV1 => table::columns(Kind::Event),
        }
    }

    fn row(&self, v: &Value, obj: Option<&Object>, include: Include) -> Value {
        let ctx = match obj {
            Some(Object::Node(_)) => {
                let st = self.d.lock();
                crate::print::RowCtx::with_pods(&st.store)
            }
            _ => crate::print::RowCtx::default(),
        };
        match obj {
            Some(o) => table::object_row(o, include, SystemTime::now(), &ctx),
            None => table::row(Vec::new(), v, include),
        }
        .tap_object(v, include)
    }

    fn list(&self, t: &Target, q: &Q, as_table: bool) -> Result<Response, KubeError> {
        let (labels, fields) = Self::selectors(t, q)?;
        // A continued list reads at its first page's version, as the API
        // server does; one the event log no longer reaches is 410 Expired,
        // with a token to go on inconsistently, as the API server gives.
        let cont = q.get("continue").filter(|c| !c.is_empty());
        let (items, rv) = match cont {
            Some(token) => {
                let at = super::paging::token_rv(token).map_err(status::bad_request)?;
                match self.snapshot_at(t, at) {
                    Some(s) => s,
                    None => {
                        let now = self.log.synced_rv();
                        let mut e = status::gone(
                            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                        );
                        e.metadata = super::paging::retarget(token, now)
                            .map(|c| Box::new(json!({"continue": c})));
                        return Err(e);
                    }
                }
            }
            None => self.snapshot(t),
        };
        let items: Items = items
            .into_iter()
            .filter(|i| i.matches(&labels, &fields))
            .collect();
        let limit = match q.get("limit").map(|l| l.parse::<i64>()) {
            None => None,
            Some(Ok(n)) if n >= 0 => Some(n as usize),
            Some(_) => return Err(status::bad_request("limit must be a non-negative integer")),
        };
        let page = super::paging::page(items, limit, q.get("continue").map(String::as_str), rv)
            .map_err(status::bad_request)?;
        let items = page.items;
        let mut list_meta = json!({"resourceVersion": rv.to_string()});
        if let Some(next) = &page.next {
            list_meta["continue"] = json!(next);
        }
        if let Some(n) = page.remaining {
            list_meta["remainingItemCount"] = json!(n);
        }
        let rv = rv.to_string();
        if as_table {
            let include = Include::parse(q.get("includeObject").map(|s| s.as_str()));
            let rows = items
                .iter()
                .map(|i| self.row(&i.json(), Some(&*i.obj), include))
                .collect();
            let mut tbl = table::table(&Self::columns(t), rows, &rv, true);
            tbl["metadata"] = list_meta;
            return Ok(json_response(StatusCode::OK, &tbl, &[]));
        }
        // Written object by object: no `Value` of the whole list (nor of
        // each object) is built, so a list of 500 pods costs its text.
        let head = json!({
            "kind": format!("{}List", t.info.kind),
            "apiVersion": discovery::api_version(t.info),
            "metadata": list_meta,
        })
        .to_string();
        let mut out = Vec::with_capacity(head.len() + 2048 * items.len());
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"items\":[");
        for (n, i) in items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            i.write(&mut out);
        }
        out.extend_from_slice(b"]}");
        let mut r = (StatusCode::OK, out).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }

    fn get(&self, t: &Target, q: &Q, as_table: bool) -> Result<Response, KubeError> {
        let (v, obj) = match t.info.res {
            Res::Obj(kind) => {
                let st = self.d.lock();
                let o = st.store.get(&key_of(t, kind)).ok_or_else(|| not_found(t))?;
                (o.to_json(), Some(o.clone()))
            }
            Res::EventV1 => {
                let st = self.d.lock();
                let o = st
                    .store
                    .get(&key_of(t, Kind::Event))
                    .ok_or_else(|| not_found(t))?;
                (event_v1(&o.to_json()), Some(o.clone()))
            }
        };
        if as_table {
            let include = Include::parse(q.get("includeObject").map(|s| s.as_str()));
            let rv = v
                .pointer("/metadata/resourceVersion")
                .and_then(|r| r.as_str())
                .unwrap_or("")
                .to_string();
            let tbl = table::table(
                &Self::columns(t),
                vec![self.row(&v, obj.as_ref(), include)],
                &rv,
                true,
            );
            return Ok(json_response(StatusCode::OK, &tbl, &[]));
        }
        Ok(json_response(StatusCode::OK, &v, &[]))
    }

    /// Fill `apiVersion`/`kind`/namespace of a request object and check
    /// they agree with the path.
    fn normalise(t: &Target, v: &mut Value) -> Result<(), KubeError> {
        if !v.is_object() {
            return Err(status::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let want_av = discovery::api_version(t.info);
        match v.get("kind").and_then(|k| k.as_str()) {
            None | Some("") => v["kind"] = json!(t.info.kind),
            Some(k) if k == t.info.kind => {}
            Some(k) => {
                return Err(status::bad_request(format!(
                    "the API version in the data ({}) does not match the expected API version ({want_av}) or kind {k} is not {}",
                    v.get("apiVersion").and_then(|a| a.as_str()).unwrap_or(""),
                    t.info.kind
                )));
            }
        }
        match v.get("apiVersion").and_then(|k| k.as_str()) {
            None | Some("") => v["apiVersion"] = json!(want_av),
            Some(a) if a == want_av => {}
            Some(a) => {
                return Err(status::bad_request(format!(
                    "the API version in the data ({a}) does not match the expected API version ({want_av})"
                )));
            }
        }
        if !v.get("metadata").is_some_and(|m| m.is_object()) {
            v["metadata"] = json!({});
        }
        if let Some(ns) = &t.ns {
            match v.pointer("/metadata/namespace").and_then(|n| n.as_str()) {
                None | Some("") => v["metadata"]["namespace"] = json!(ns),
                Some(n) if n == ns => {}
                Some(_) => {
                    return Err(status::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
            }
        }
        Ok(())
    }

    async fn create(
        &self,
        t: &Target,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let mut v = parse_body(headers, body)?;
        Self::normalise(t, &mut v)?;
        if v.pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .is_empty()
        {
            match v.pointer("/metadata/generateName").and_then(|n| n.as_str()) {
                Some(g) if !g.is_empty() => {
                    v["metadata"]["name"] = json!(format!(
                        "{g}{}",
                        crate::controller::workload::random_suffix()
                    ));
                }
                _ => {
                    return Err(status::invalid(
                        t.info.kind,
                        t.info.group,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
        check(t, &v)?;
        let key = Key::new(kind, t.ns.as_deref().unwrap_or(""), &name);
        let (obj, warnings) = {
            let mut guard = self.d.lock();
            if guard.store.get(&key).is_some() {
                return Err(status::already_exists(t.info.plural, t.info.group, &name));
            }
            let managed = super::apply::record_update(&field_manager(q, headers), "", None, &v);
            store_one(&mut guard, t, q, &key, &name, v, managed)?
        };
        if !dry_run(q) {
            self.committed().await;
        }
        Ok(json_response(StatusCode::CREATED, &obj, &warnings))
    }

    /// Store a full new version of an existing object (PUT, and PATCH after
    /// the patch is applied). `expect_rv`: the resourceVersion the client
    /// based it on, if any.
    async fn write(
        &self,
        t: &Target,
        q: &Q,
        mut v: Value,
        manage: Manage,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        Self::normalise(t, &mut v)?;
        let name = t.name.clone().unwrap_or_default();
        match v.pointer("/metadata/name").and_then(|n| n.as_str()) {
            Some(n) if n == name => {}
            None | Some("") => v["metadata"]["name"] = json!(name),
            Some(n) => {
                return Err(status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let key = key_of(t, kind);
        let expect_rv = v
            .pointer("/metadata/resourceVersion")
            .and_then(|r| r.as_str())
            .filter(|r| !r.is_empty())
            .map(String::from);
        let checked = check(t, &v);
        let (obj, warnings) = {
            let mut guard = self.d.lock();
            let Some(old) = guard.store.get(&key) else {
                return Err(not_found(t));
            };
            if let Some(rv) = &expect_rv
                && old.meta().resource_version.as_deref() != Some(rv.as_str())
            {
                return Err(status::conflict(t.info.plural, t.info.group, &name));
            }
            checked?;
            // Warnings about fields the server itself filled in (defaults
            // the stored object already has) are not the client's doing.
            let known = check(t, &old.to_json()).unwrap_or_default();
            let managed = match manage {
                Manage::Update(m) => super::apply::record_update(&m, "", Some(&old.to_json()), &v),
                Manage::Set(mf) => mf,
            };
            let (obj, mut warnings) = store_one(&mut guard, t, q, &key, &name, v, managed)?;
            warnings.retain(|w| !known.contains(w));
            (obj, warnings)
        };
        if !dry_run(q) {
            self.committed().await;
        }
        Ok(json_response(StatusCode::OK, &obj, &warnings))
    }

    async fn update(
        &self,
        t: &Target,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let v = parse_body(headers, body)?;
        self.write(t, q, v, Manage::Update(field_manager(q, headers)))
            .await
    }

    async fn patch(
        &self,
        t: &Target,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let pt = PatchType::from_content_type(ct).ok_or_else(|| {
            status::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"
            ))
        })?;
        if pt == PatchType::Apply {
            return self.server_side_apply(t, q, body).await;
        }
        let p: Value = serde_json::from_slice(body)
            .map_err(|e| status::bad_request(format!("the patch is not valid JSON: {e}")))?;
        let old = {
            let st = self.d.lock();
            st.store
                .get(&key_of(t, kind))
                .map(|o| o.to_json())
                .ok_or_else(|| not_found(t))?
        };
        let mut new = patch::apply(pt, &old, &p).map_err(|e| match pt {
            PatchType::Apply => status::unsupported_media(e),
            _ => status::invalid(
                t.info.kind,
                t.info.group,
                t.name.as_deref().unwrap_or(""),
                "",
                &e.to_string(),
            ),
        })?;
        if new == old {
            return Ok(json_response(StatusCode::OK, &old, &[]));
        }
        // A patch that does not name a resourceVersion applies to the
        // current object; one that does must match it.
        if new.pointer("/metadata/resourceVersion") == old.pointer("/metadata/resourceVersion")
            && let Some(m) = new.get_mut("metadata").and_then(|m| m.as_object_mut())
        {
            m.remove("resourceVersion");
        }
        self.write(t, q, new, Manage::Update(field_manager(q, headers)))
            .await
    }

    /// Server-side apply: see [`super::apply`].
    async fn server_side_apply(
        &self,
        t: &Target,
        q: &Q,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let name = t.name.clone().unwrap_or_default();
        let manager = apply_manager(q)?;
        let force = truthy(q, "force");
        let text = std::str::from_utf8(body).map_err(|e| status::bad_request(e.to_string()))?;
        let mut applied: Value = serde_saphyr::from_str(text)
            .map_err(|e| status::bad_request(format!("invalid YAML: {e}")))?;
        Self::normalise(t, &mut applied)?;
        match applied.pointer("/metadata/name").and_then(|n| n.as_str()) {
            Some(n) if n == name => {}
            None | Some("") => applied["metadata"]["name"] = json!(name),
            Some(n) => {
                return Err(status::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let current = {
            let st = self.d.lock();
            st.store.get(&key_of(t, kind)).map(|o| o.to_json())
        };
        let new = super::apply::apply(manager, "", current.as_ref(), &applied, force)
            .map_err(|e| refused(t, &name, e))?;
        let managed = new
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(json!([]));
        if current.is_some() {
            return self.write(t, q, new, Manage::Set(managed)).await;
        }
        // Apply creates what is not there.
        check(t, &new)?;
        let key = key_of(t, kind);
        let (obj, warnings) = {
            let mut guard = self.d.lock();
            if guard.store.get(&key).is_some() {
                return Err(status::conflict(t.info.plural, t.info.group, &name));
            }
            store_one(&mut guard, t, q, &key, &name, new, managed)?
        };
        if !dry_run(q) {
            self.committed().await;
        }
        Ok(json_response(StatusCode::CREATED, &obj, &warnings))
    }

    async fn delete(
        &self,
        t: &Target,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let opts: Value = if body.is_empty() {
            json!({})
        } else {
            parse_body(headers, body)?
        };
        let grace = q
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok())
            .or_else(|| opts.get("gracePeriodSeconds").and_then(|g| g.as_i64()));
        let policy = q
            .get("propagationPolicy")
            .map(String::as_str)
            .or_else(|| opts.get("propagationPolicy").and_then(|p| p.as_str()));
        let orphan = match policy {
            None | Some("Background") | Some("Foreground") => false,
            Some("Orphan") => true,
            Some(p) => {
                return Err(status::bad_request(format!(
                    "unknown propagationPolicy {p:?}"
                )));
            }
        };
        let name = t.name.clone().unwrap_or_default();
        let key = key_of(t, kind);
        let reply = {
            let mut guard = self.d.lock();
            let Some(old) = guard.store.get(&key).cloned() else {
                return Err(not_found(t));
            };
            if let Some(pre) = opts.get("preconditions") {
                let uid = pre.get("uid").and_then(|u| u.as_str());
                let rv = pre.get("resourceVersion").and_then(|u| u.as_str());
                if uid.is_some_and(|u| Some(u) != old.meta().uid.as_deref())
                    || rv.is_some_and(|r| Some(r) != old.meta().resource_version.as_deref())
                {
                    return Err(status::conflict(t.info.plural, t.info.group, &name));
                }
            }
            let mut scratch;
            let st = if dry_run(q) {
                scratch = guard.clone();
                &mut scratch
            } else {
                &mut *guard
            };
            if orphan && let Some(uid) = old.meta().uid.as_deref() {
                st.orphan_dependents(uid);
            }
            st.delete(&key, grace).map_err(status::forbidden)?;
            match st.store.get(&key) {
                // Still there (a pod in its grace period, a namespace
                // emptying): the object as it is now, as the API server.
                Some(o) => o.to_json(),
                None => status::success(
                    t.info.group,
                    t.info.plural,
                    &name,
                    old.meta().uid.as_deref(),
                ),
            }
        };
        if !dry_run(q) {
            self.committed().await;
        }
        Ok(json_response(StatusCode::OK, &reply, &[]))
    }

    async fn delete_collection(&self, t: &Target, q: &Q) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let (labels, fields) = Self::selectors(t, q)?;
        let grace = q
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok());
        let deleted = {
            let mut st = self.d.lock();
            let ns = if kind.namespaced() {
                t.ns.as_deref()
            } else {
                None
            };
            let victims: Vec<(Key, Value)> = st
                .store
                .list_shared(kind, ns)
                .map(|o| Item::new(o.clone(), t.info.res))
                .filter(|i| i.matches(&labels, &fields))
                .map(|i| (Key::of(&i.obj), i.json()))
                .collect();
            let mut items = Vec::new();
            for (k, v) in victims {
                if !dry_run(q) && st.delete(&k, grace).is_ok() {
                    items.push(v);
                }
            }
            items
        };
        self.committed().await;
        let list = json!({"kind": format!("{}List", t.info.kind),
            "apiVersion": discovery::api_version(t.info), "metadata": {}, "items": deleted});
        Ok(json_response(StatusCode::OK, &list, &[]))
    }

    fn scale_of(o: &Object) -> Value {
        let (replicas, current, selector) = match o {
            Object::Deployment(d) => (
                d.spec.replicas.unwrap_or(1),
                d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                crate::print::selector_string(&d.spec.selector),
            ),
            Object::ReplicaSet(r) => (
                r.spec.replicas.unwrap_or(1),
                r.status.as_ref().map_or(0, |s| s.replicas),
                crate::print::selector_string(&r.spec.selector),
            ),
            Object::StatefulSet(s) => (
                s.spec.replicas.unwrap_or(1),
                s.status.as_ref().map_or(0, |s| s.replicas),
                crate::print::selector_string(&s.spec.selector),
            ),
            _ => (0, 0, None),
        };
        let m = o.meta();
        json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": m.name, "namespace": m.namespace, "uid": m.uid,
                "resourceVersion": m.resource_version, "creationTimestamp": m.creation_timestamp},
            "spec": {"replicas": replicas},
            "status": {"replicas": current, "selector": selector.unwrap_or_default()}})
    }

    async fn scale(
        &self,
        t: &Target,
        method: &str,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let key = key_of(t, kind);
        let current = {
            let st = self.d.lock();
            Self::scale_of(st.store.get(&key).ok_or_else(|| not_found(t))?)
        };
        if method == "PATCH"
            && headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(PatchType::from_content_type)
                == Some(PatchType::Apply)
        {
            return self.scale_apply(t, q, body).await;
        }
        let wanted = match method {
            "GET" => return Ok(json_response(StatusCode::OK, &current, &[])),
            "PUT" => parse_body(headers, body)?,
            "PATCH" => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let pt = PatchType::from_content_type(ct).ok_or_else(|| {
                    status::unsupported_media(format!("unknown patch type {ct:?}"))
                })?;
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    status::bad_request(format!("the patch is not valid JSON: {e}"))
                })?;
                patch::apply(pt, &current, &p).map_err(status::bad_request)?
            }
            m => {
                return Err(status::method_not_allowed(format!(
                    "{m} on a scale subresource"
                )));
            }
        };
        let name = t.name.clone().unwrap_or_default();
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(|r| r.as_i64())
            .and_then(|r| i32::try_from(r).ok())
            .ok_or_else(|| {
                status::invalid(
                    "Scale",
                    "autoscaling",
                    &name,
                    "spec.replicas",
                    "Required value",
                )
            })?;
        if replicas < 0 {
            return Err(status::invalid(
                "Scale",
                "autoscaling",
                &name,
                "spec.replicas",
                &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ));
        }
        let out = {
            let mut st = self.d.lock();
            let Some(o) = st.store.get(&key) else {
                return Err(not_found(t));
            };
            if let Some(rv) = wanted
                .pointer("/metadata/resourceVersion")
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty() && method == "PUT")
                && o.meta().resource_version.as_deref() != Some(rv)
            {
                return Err(status::conflict(t.info.plural, t.info.group, &name));
            }
            if !dry_run(q) {
                let before = st.store.get(&key).map(|o| o.to_json());
                let rv_before = st.store.resource_version();
                st.scale(&key, replicas).map_err(status::bad_request)?;
                let written = st.store.resource_version() != rv_before;
                // The scaler owns spec.replicas now, as on the API server:
                // recorded in the same version as the new replicas.
                if let Some(mut o) = st.store.get(&key).cloned() {
                    let mf = super::apply::record_update(
                        &field_manager(q, headers),
                        "scale",
                        before.as_ref(),
                        &o.to_json(),
                    );
                    o.meta_mut().managed_fields = serde_json::from_value(mf).ok();
                    if written {
                        st.store.amend(o);
                    } else {
                        st.store.update(o);
                    }
                }
            }
            let mut s = Self::scale_of(st.store.get(&key).ok_or_else(|| not_found(t))?);
            s["spec"]["replicas"] = json!(replicas);
            s
        };
        if !dry_run(q) {
            self.committed().await;
        }
        Ok(json_response(StatusCode::OK, &out, &[]))
    }

    /// Server-side apply on `/scale` (`kubectl apply --server-side
    /// --subresource=scale`): the body is an `autoscaling/v1` Scale or the
    /// object itself (what kubectl sends), of which only `spec.replicas`
    /// counts; it is applied to the object as the manager's apply of
    /// `spec.replicas` — conflicts with another owner are 409 unless
    /// `force` — and the answer is the Scale.
    async fn scale_apply(&self, t: &Target, q: &Q, body: &Bytes) -> Result<Response, KubeError> {
        let kind = kind_of(t)?;
        let key = key_of(t, kind);
        let name = t.name.clone().unwrap_or_default();
        let manager = apply_manager(q)?;
        let text = std::str::from_utf8(body).map_err(|e| status::bad_request(e.to_string()))?;
        let v: Value = serde_saphyr::from_str(text)
            .map_err(|e| status::bad_request(format!("invalid YAML: {e}")))?;
        let av = discovery::api_version(t.info);
        let got = (
            v.get("apiVersion").and_then(|a| a.as_str()).unwrap_or(""),
            v.get("kind").and_then(|k| k.as_str()).unwrap_or(""),
        );
        if got != ("autoscaling/v1", "Scale") && got != (av.as_str(), t.info.kind) {
            return Err(status::bad_request(format!(
                "the scale subresource applies an autoscaling/v1 Scale or a {av} {}, not {} {}",
                t.info.kind, got.0, got.1
            )));
        }
        if let Some(n) = v.pointer("/metadata/name").and_then(|n| n.as_str())
            && n != name
        {
            return Err(status::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let invalid =
            |field: &str, msg: &str| status::invalid("Scale", "autoscaling", &name, field, msg);
        if let Some(spec) = v.get("spec").and_then(|s| s.as_object())
            && let Some(other) = spec.keys().find(|k| *k != "replicas")
        {
            return Err(invalid(
                &format!("spec.{other}"),
                "Forbidden: only spec.replicas is applied through the scale subresource",
            ));
        }
        let replicas = v
            .pointer("/spec/replicas")
            .and_then(|r| r.as_i64())
            .ok_or_else(|| invalid("spec.replicas", "Required value"))?;
        let replicas = i32::try_from(replicas)
            .ok()
            .filter(|r| *r >= 0)
            .ok_or_else(|| {
                invalid(
                    "spec.replicas",
                    &format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )
            })?;
        let current = {
            let st = self.d.lock();
            st.store
                .get(&key)
                .map(|o| o.to_json())
                .ok_or_else(|| not_found(t))?
        };
        let applied = json!({"apiVersion": av, "kind": t.info.kind,
            "metadata": {"name": name}, "spec": {"replicas": replicas}});
        let new = super::apply::apply(
            manager,
            "scale",
            Some(&current),
            &applied,
            truthy(q, "force"),
        )
        .map_err(|e| refused(t, &name, e))?;
        let managed = new
            .pointer("/metadata/managedFields")
            .cloned()
            .unwrap_or(json!([]));
        let planned =
            Object::from_json(kind, new.clone()).map_err(|e| status::bad_request(e.to_string()))?;
        self.write(t, q, new, Manage::Set(managed)).await?;
        let scale = if dry_run(q) {
            Self::scale_of(&planned)
        } else {
            let st = self.d.lock();
            Self::scale_of(st.store.get(&key).ok_or_else(|| not_found(t))?)
        };
        Ok(json_response(StatusCode::OK, &scale, &[]))
    }

    /// `pods/eviction`: a `policy/v1` Eviction turns into a graceful
    /// delete (lab has no PodDisruptionBudgets to refuse it).
    async fn evict(
        &self,
        t: &Target,
        q: &Q,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response, KubeError> {
        let v: Value = if body.is_empty() {
            json!({})
        } else {
            parse_body(headers, body)?
        };
        if let Some(k) = v.get("kind").and_then(|k| k.as_str())
            && k != "Eviction"
        {
            return Err(status::bad_request(format!(
                "the body must be a policy/v1 Eviction, not {k}"
            )));
        }
        let name = t.name.clone().unwrap_or_default();
        if let Some(n) = v.pointer("/metadata/name").and_then(|n| n.as_str())
            && !n.is_empty()
            && n != name
        {
            return Err(status::bad_request(format!(
                "name in URL does not match name in Eviction object ({n} vs {name})"
            )));
        }
        let grace = v
            .pointer("/deleteOptions/gracePeriodSeconds")
            .and_then(|g| g.as_i64());
        let ns = t.ns.clone().unwrap_or_default();
        {
            let mut guard = self.d.lock();
            let mut scratch;
            let st = if dry_run(q) {
                scratch = guard.clone();
                &mut scratch
            } else {
                &mut *guard
            };
            match st.evict(&ns, &name, grace) {
                Ok(true) => {}
                Ok(false) => return Err(not_found(t)),
                Err(e) => return Err(status::forbidden(e)),
            }
        }
        if !dry_run(q) {
            self.committed().await;
        }
        let ok = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success", "code": 201});
        Ok(json_response(StatusCode::CREATED, &ok, &[]))
    }

    async fn log(&self, t: &Target, q: &Q) -> Result<Response, KubeError> {
        for unsupported in ["sinceSeconds", "sinceTime", "limitBytes"] {
            if q.contains_key(unsupported) {
                return Err(status::bad_request(format!(
                    "{unsupported} is not supported by lab's pods/log"
                )));
            }
        }
        if truthy(q, "timestamps") {
            return Err(status::bad_request(
                "timestamps is not supported by lab's pods/log (log lines carry no time)",
            ));
        }
        let lq = crate::api::LogsQuery {
            namespace: t.ns.clone().unwrap_or_default(),
            pod: t.name.clone().unwrap_or_default(),
            container: q.get("container").filter(|c| !c.is_empty()).cloned(),
            previous: truthy(q, "previous"),
            follow: truthy(q, "follow"),
            tail: match q.get("tailLines") {
                Some(n) => Some(
                    n.parse::<i64>()
                        .map_err(|_| status::bad_request(format!("invalid tailLines {n:?}")))?
                        .max(0) as usize,
                ),
                None => None,
            },
        };
        super::logs::log_response(self.d.clone(), lq)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    not_found(t)
                } else {
                    status::bad_request(e)
                }
            })
    }

    /// `?watch=1`: a chunked stream of `{"type": …, "object": …}` lines.
    async fn watch(
        self: &Arc<Self>,
        t: &Target,
        q: &Q,
        as_table: bool,
    ) -> Result<Response, KubeError> {
        let (labels, fields) = Self::selectors(t, q)?;
        let include = Include::parse(q.get("includeObject").map(|s| s.as_str()));
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(Duration::from_secs(1800), Duration::from_secs);
        let from: Option<u64> = match q.get("resourceVersion").map(|s| s.as_str()) {
            None | Some("") | Some("0") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|_| status::bad_request(format!("invalid resourceVersion {s:?}")))?,
            ),
        };
        // The starting point: the given version, or everything there is now
        // (as ADDED events), as the API server.
        let (initial, mut cursor) = match (from, t.info.res) {
            (Some(rv), _) => {
                {
                    let st = self.d.lock();
                    self.log.sync(&st.store);
                }
                if self.log.since(rv).is_none() {
                    return Err(status::gone(format!(
                        "too old resource version: {rv} ({})",
                        self.log.synced_rv()
                    )));
                }
                (Vec::new(), rv)
            }
            _ => {
                let (items, rv) = self.snapshot(t);
                (items, rv)
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let k = self.clone();
        let res = t.info.res;
        let kind = match res {
            Res::Obj(kind) => kind,
            Res::EventV1 => Kind::Event,
        };
        // BOOKMARK events (progress notifications with only a
        // resourceVersion): periodically when asked, and after the initial
        // events when a client asked for them with sendInitialEvents.
        let bookmarks = truthy(q, "allowWatchBookmarks") && !as_table;
        let initial_end = truthy(q, "sendInitialEvents") && bookmarks;
        let bookmark_kind = t.info.kind;
        let bookmark_api = discovery::api_version(t.info);
        let bookmark = move |rv: u64, end: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            let obj = json!({"kind": bookmark_kind, "apiVersion": bookmark_api, "metadata": meta});
            let mut line = json!({"type": "BOOKMARK", "object": obj}).to_string();
            line.push('\n');
            Bytes::from(line)
        };
        let ns = t.ns.clone();
        let cols = Self::columns(t);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut headers_sent = false;
            let mut encode = |ty: &str, i: &Item| -> Bytes {
                let mut line = Vec::with_capacity(2048);
                line.extend_from_slice(b"{\"type\":");
                if let Err(e) = serde_json::to_writer(&mut line, ty) {
                    tracing::error!(error = %e, "serializing a watch event's type");
                }
                line.extend_from_slice(b",\"object\":");
                if as_table {
                    let v = i.json();
                    let row = k.row(&v, Some(&*i.obj), include);
                    let rv = i.obj.meta().resource_version.as_deref().unwrap_or("");
                    let tbl = table::table(&cols, vec![row], rv, !headers_sent);
                    headers_sent = true;
                    if let Err(e) = serde_json::to_writer(&mut line, &tbl) {
                        tracing::error!(error = %e, "serializing a watch event's table");
                    }
                } else {
                    i.write(&mut line);
                }
                line.extend_from_slice(b"}\n");
                Bytes::from(line)
            };
            for i in &initial {
                if i.matches(&labels, &fields) && tx.send(Ok(encode("ADDED", i))).await.is_err() {
                    return;
                }
            }
            if initial_end && tx.send(Ok(bookmark(cursor, true))).await.is_err() {
                return;
            }
            let mut ticker = tokio::time::interval_at(
                tokio::time::Instant::now() + BOOKMARK_EVERY,
                BOOKMARK_EVERY,
            );
            let mut synced = k.log.synced.subscribe();
            loop {
                let Some(events) = k.log.since(cursor) else {
                    let e = status::gone(format!("too old resource version: {cursor}"));
                    let mut line = json!({"type": "ERROR", "object": e.to_status()}).to_string();
                    line.push('\n');
                    let _ = tx.send(Ok(Bytes::from(line))).await;
                    return;
                };
                for e in events {
                    cursor = cursor.max(e.rv);
                    if !Self::event_matches(&e, kind, ns.as_deref()) {
                        continue;
                    }
                    let item = Item::new(e.object.clone(), res);
                    if !item.matches(&labels, &fields) {
                        continue;
                    }
                    if tx.send(Ok(encode(e.ty.as_str(), &item))).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    r = synced.changed() => if r.is_err() { return },
                    _ = ticker.tick(), if bookmarks => {
                        if tx.send(Ok(bookmark(cursor, false))).await.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = tx.closed() => return,
                }
            }
        });
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(r)
    }

    fn event_matches(e: &WatchEvent, kind: Kind, ns: Option<&str>) -> bool {
        e.key.kind == kind && ns.is_none_or(|n| e.key.namespace == n)
    }
}

/// A core/v1 Event as `events.k8s.io/v1` shows it (the API server's
/// conversion: `regarding`, `note`, `deprecated*`).
fn event_v1(core: &Value) -> Value {
    let g = |k: &str| core.get(k).cloned().unwrap_or(Value::Null);
    let mut v = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": g("metadata"),
        "eventTime": g("eventTime"),
        "reportingController": g("reportingComponent"),
        "reportingInstance": g("reportingInstance"),
        "action": g("action"),
        "reason": g("reason"),
        "regarding": g("involvedObject"),
        "note": g("message"),
        "type": g("type"),
        "deprecatedSource": g("source"),
        "deprecatedFirstTimestamp": g("firstTimestamp"),
        "deprecatedLastTimestamp": g("lastTimestamp"),
        "deprecatedCount": g("count"),
    });
    if let Some(m) = v.as_object_mut() {
        m.retain(|_, x| !x.is_null());
    }
    v
}

trait TapObject {
    fn tap_object(self, v: &Value, include: Include) -> Value;
}

impl TapObject for Value {
    /// Rows of watch events carry the event's object (for DELETED, the last
    /// state), not a re-read one.
    fn tap_object(mut self, v: &Value, include: Include) -> Value {
        match include {
            Include::Object => self["object"] = v.clone(),
            Include::Metadata => {
                self["object"] = json!({"kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": v.get("metadata").cloned().unwrap_or(json!({}))});
            }
            Include::None => {}
        }
        self
    }
}

/// The `fieldManager` a server-side apply must name (422 without one, as
/// on the API server).
fn apply_manager(q: &Q) -> Result<&String, KubeError> {
    q.get("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            status::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                "fieldManager",
                "Required value: is required for apply patch",
            )
        })
}
