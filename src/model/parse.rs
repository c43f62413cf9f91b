//! Manifests: YAML/JSON documents → typed objects, strictly.
//!
//! Every field of a document must be known to the Kubernetes API schema (a
//! typo is an error, as with kubectl's strict validation); then
//! [`super::validate`] sorts the known fields into honoured, accepted with a
//! warning, and rejected.

use super::{Kind, Object};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One document of a manifest file, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// File name, `-` for standard input.
    pub source: String,
    /// 1-based position in the source (items of a `List` count separately).
    pub index: usize,
    pub value: serde_json::Value,
}

/// Why a manifest was rejected: names the file, document, object and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ManifestError {
    /// File name, `-` for standard input.
    pub file: String,
    pub index: usize,
    /// `Kind/name` when known.
    pub object: Option<String>,
    /// Dotted path such as `spec.template.spec.containers[0].image`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.index > 0 {
            write!(f, ": document {}", self.index)?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A decoded object with the warnings its accepted-but-meaningless fields
/// produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub object: Object,
    pub warnings: Vec<String>,
}

/// The largest object `lab apply` accepts, encoded as JSON: the API
/// server's limit on one request (kubectl sends one object per request).
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

/// The most YAML documents one file given to `lab apply` may hold (the
/// parser's default guard against separator storms is 1024).
pub const MAX_DOCUMENTS: usize = 10_000;

/// Split a YAML (or JSON) text into documents. `kind: List` documents are
/// expanded into their items. Empty documents are skipped.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>, ManifestError> {
    let err = |message: String| ManifestError {
        file: source.to_string(),
        index: 0,
        object: None,
        field: None,
        message,
    };
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    // Enough for MAX_DOCUMENTS small objects (the defaults are 250 000
    // nodes and a million events).
    budget.max_nodes = 5_000_000;
    budget.max_events = 10_000_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // `defaultMode: 0400` is octal (256) in Kubernetes manifests: kubectl
    // and the API server read YAML 1.1 numbers.
    options.legacy_octal_numbers = true;
    let values: Vec<serde_json::Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| {
            // The budget error may come wrapped (with a snippet): go by its text.
            let text = e.to_string();
            if text.contains("budget breached: Documents") {
                err(format!(
                    "too many documents: lab apply reads at most {MAX_DOCUMENTS} documents from one file (split it into several files)"
                ))
            } else if text.contains("budget breached") {
                err(format!(
                    "the file is too large or too deeply nested to read: {}",
                    text.lines().next().unwrap_or_default()
                ))
            } else {
                err(format!("invalid YAML: {text}"))
            }
        })?;
    let mut docs = Vec::new();
    for value in values {
        if value.is_null() {
            continue;
        }
        let is_list = value.get("kind").and_then(|k| k.as_str()) == Some("List");
        if is_list {
            let items = value
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            for item in items {
                docs.push(Document {
                    source: source.to_string(),
                    index: docs.len() + 1,
                    value: item,
                });
            }
        } else {
            docs.push(Document {
                source: source.to_string(),
                index: docs.len() + 1,
                value,
            });
        }
    }
    Ok(docs)
}

/// Render a serde_ignored path as `a.b[0].c`.
fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match p {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let head = ignored_path(parent);
            if head.is_empty() {
                key.clone()
            } else {
                format!("{head}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Turn serde_path_to_error's `a.b[0].c` into our form (it already is; but the
/// root is `.`).
fn error_path(p: &serde_path_to_error::Path) -> Option<String> {
    let s = p.to_string();
    (s != "." && !s.is_empty()).then_some(s)
}

fn strict<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, (Option<String>, String)> {
    let mut unknown = Vec::new();
    let mut on_unknown = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    let typed = result.map_err(|e| (error_path(e.path()), e.into_inner().to_string()))?;
    // `status` of a manifest is ignored as by kubectl; everything else unknown is an error.
    if let Some(field) = unknown
        .into_iter()
        .find(|f| f != "status" && !f.starts_with("status."))
    {
        return Err((Some(field), "unknown field (lab, like kubectl's strict validation, rejects fields the API does not define)".into()));
    }
    Ok(typed)
}

/// Decode and validate one document.
pub fn decode(doc: &Document) -> Result<Decoded, ManifestError> {
    let err = |object: Option<String>, field: Option<String>, message: String| ManifestError {
        file: doc.source.clone(),
        index: doc.index,
        object,
        field,
        message,
    };
    let Some(map) = doc.value.as_object() else {
        return Err(err(
            None,
            None,
            "a manifest document must be a mapping".into(),
        ));
    };
    let api_version = map.get("apiVersion").and_then(|v| v.as_str());
    let kind_str = map.get("kind").and_then(|v| v.as_str());
    let (Some(api_version), Some(kind_str)) = (api_version, kind_str) else {
        let field = if api_version.is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(err(
            None,
            Some(field.into()),
            "required field is missing".into(),
        ));
    };
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("");
    let label = if name.is_empty() {
        kind_str.to_string()
    } else {
        format!("{kind_str}/{name}")
    };
    let kind = Kind::from_manifest(api_version, kind_str)
        .map_err(|e| err(None, Some("kind".into()), e.to_string()))?;
    let size = serde_json::to_vec(&doc.value).map_or(0, |v| v.len());
    if size > MAX_OBJECT_BYTES {
        return Err(err(
            Some(label),
            None,
            format!(
                "Request entity too large: the object is {size} bytes; the limit is {MAX_OBJECT_BYTES} bytes (3 MiB) per object"
            ),
        ));
    }
    let value = doc.value.clone();
    let object = match kind {
        Kind::Namespace => strict(value).map(Object::Namespace),
        Kind::Pod => strict(value).map(Object::Pod),
        Kind::Service => strict(value).map(Object::Service),
        Kind::ConfigMap => strict(value).map(Object::ConfigMap),
        Kind::Deployment => strict(value).map(Object::Deployment),
        Kind::ReplicaSet => strict(value).map(Object::ReplicaSet),
        Kind::StatefulSet => strict(value).map(Object::StatefulSet),
        Kind::Endpoints => strict(value).map(Object::Endpoints),
        Kind::EndpointSlice => strict(value).map(Object::EndpointSlice),
        Kind::Event => Err((
            Some("kind".to_string()),
            "Events are recorded by the cluster (controllers, scheduler, kubelet); lab does not accept them in manifests".to_string(),
        )),
        Kind::Secret => strict(value).map(Object::Secret),
        Kind::Job => strict(value).map(Object::Job),
        Kind::Node => strict(value).map(Object::Node),
    }
    .map_err(|(field, message)| err(Some(label.clone()), field, message))?;
    let mut object = object;
    super::validate::normalize(&mut object);
    let warnings = super::validate::validate(&object)
        .map_err(|e| err(Some(label.clone()), Some(e.field), e.message))?;
    Ok(Decoded {
        object,
        warnings: warnings
            .into_iter()
            .map(|w| format!("{label}: {w}"))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> Result<Decoded, ManifestError> {
        let docs = parse_documents("t.yaml", yaml)?;
        assert_eq!(docs.len(), 1);
        decode(&docs[0])
    }

    #[test]
    fn multi_document_and_lists() {
        let docs = parse_documents(
            "f.yaml",
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n",
        )
        .unwrap();
        let names: Vec<_> = docs
            .iter()
            .map(|d| d.value["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(docs[2].index, 3);
    }

    #[test]
    fn typo_is_named_with_its_path() {
        let e = one(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '1']\n    imagePullPolicyy: Always\n",
        )
        .unwrap_err();
        assert_eq!(
            e.field.as_deref(),
            Some("spec.containers[0].imagePullPolicyy")
        );
        assert_eq!(e.object.as_deref(), Some("Pod/p"));
        let text = e.to_string();
        assert!(
            text.starts_with("t.yaml: document 1 (Pod/p): spec.containers[0].imagePullPolicyy"),
            "{text}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let e = one("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: eighty\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("spec.ports[0].port"), "{e}");
    }

    #[test]
    fn bad_yaml_and_missing_kind() {
        let e = parse_documents("x.yaml", "a: [1, 2\n").unwrap_err();
        assert!(e.message.contains("invalid YAML"), "{e}");
        let e = one("apiVersion: v1\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("kind"));
        let e = one("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: a}\n").unwrap_err();
        assert!(e.message.contains("CronJob"));
    }

    #[test]
    fn status_is_ignored() {
        let d = one("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nstatus: {phase: Active, bogus: 1}\n").unwrap();
        assert_eq!(d.object.name(), "a");
    }

    #[test]
    fn document_and_object_limits() {
        let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n";
        // Over the parser's default of 1024 documents.
        assert_eq!(parse_documents("f", &doc.repeat(2000)).unwrap().len(), 2000);
        let e = parse_documents("f", &doc.repeat(MAX_DOCUMENTS + 1)).unwrap_err();
        assert!(
            e.message.contains("too many documents") && e.message.contains("10000"),
            "{e}"
        );
        let big = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{v: '{}'}}\n",
            "x".repeat(MAX_OBJECT_BYTES)
        );
        let docs = parse_documents("f", &big).unwrap();
        let e = decode(&docs[0]).unwrap_err();
        assert_eq!(e.object.as_deref(), Some("ConfigMap/big"));
        assert!(
            e.message.contains("too large") && e.message.contains("3145728"),
            "{e}"
        );
    }
}
