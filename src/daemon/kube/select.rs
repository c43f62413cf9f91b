//! Field selectors (`?fieldSelector=metadata.name=x,status.phase!=Running`)
//! over the fields the API server supports for lab's kinds.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// Why a field selector was refused (the API server's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{selector}'; can't understand '{part}'")]
    Syntax { selector: String, part: String },
    #[error("field label not supported: {field}")]
    Unsupported { resource: String, field: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

/// The fields a selector may name for a resource (`metadata.name` and
/// `metadata.namespace` everywhere, as the API server).
fn supported(resource: &str, field: &str) -> bool {
    matches!(field, "metadata.name" | "metadata.namespace")
        || match resource {
            "pods" => matches!(
                field,
                "spec.nodeName"
                    | "spec.restartPolicy"
                    | "spec.schedulerName"
                    | "spec.serviceAccountName"
                    | "status.phase"
                    | "status.podIP"
            ),
            "namespaces" => field == "status.phase",
            "events" => {
                field.starts_with("involvedObject.") || field == "reason" || field == "type"
            }
            _ => false,
        }
}

impl FieldSelector {
    pub fn parse(resource: &str, s: &str) -> Result<FieldSelector, FieldSelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(FieldSelectorError::Syntax {
                    selector: s.to_string(),
                    part: part.to_string(),
                });
            };
            let field = field.trim();
            if !supported(resource, field) {
                return Err(FieldSelectorError::Unsupported {
                    resource: resource.to_string(),
                    field: field.to_string(),
                });
            }
            reqs.push(FieldRequirement {
                field: field.to_string(),
                value: value.trim().to_string(),
                equal,
            });
        }
        Ok(FieldSelector(reqs))
    }

    /// Whether the selector selects nothing out (no requirement).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object (Kubernetes JSON) matches; a missing field is "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let ptr = format!("/{}", r.field.replace('.', "/"));
            let v = obj.pointer(&ptr).and_then(|v| v.as_str()).unwrap_or("");
            (v == r.value) == r.equal
        })
    }

    /// The single `metadata.name=X` a selector pins, if any (kubectl's
    /// `get pod NAME -w` watches that way).
    #[cfg(test)]
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.field == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s = FieldSelector::parse("pods", "metadata.name=a,status.phase!=Pending").unwrap();
        assert!(s.matches(&pod));
        assert_eq!(s.name(), Some("a"));
        assert!(
            !FieldSelector::parse("pods", "spec.nodeName==n2")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("pods", "spec.nodeName=")
                .unwrap()
                .matches(&json!({}))
        );
        let e = FieldSelector::parse("services", "spec.clusterIP=1").unwrap_err();
        assert_eq!(e.to_string(), "field label not supported: spec.clusterIP");
        assert!(FieldSelector::parse("pods", "bogus").is_err());
        assert!(FieldSelector::parse("pods", "").unwrap().matches(&pod));
    }
}
