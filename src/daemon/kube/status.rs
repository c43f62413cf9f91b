//! `Status` objects: how the Kubernetes API server reports errors (and
//! successful deletions), with its reasons and codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Value>>,
    /// The Status's `metadata` (a 410 for a too-old `continue` token
    /// carries a fresh one there).
    pub metadata: Option<Box<Value>>,
}

impl KubeError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> KubeError {
        KubeError {
            code,
            reason,
            message: message.into(),
            details: None,
            metadata: None,
        }
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = (**d).clone();
        }
        if let Some(m) = &self.metadata {
            v["metadata"] = (**m).clone();
        }
        v
    }
}

impl IntoResponse for KubeError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (code, self.to_status().to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}

fn details(group: &str, kind: &str, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": kind});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d
}

/// `<resource>[.group] "name"` as the API server writes it in messages.
fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

pub fn not_found(resource: &str, group: &str, name: &str) -> KubeError {
    KubeError {
        details: Some(Box::new(details(group, resource, name))),
        ..KubeError::new(
            404,
            "NotFound",
            format!("{} {name:?} not found", qualified(resource, group)),
        )
    }
}

pub fn already_exists(resource: &str, group: &str, name: &str) -> KubeError {
    KubeError {
        details: Some(Box::new(details(group, resource, name))),
        ..KubeError::new(
            409,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(resource, group)),
        )
    }
}

pub fn conflict(resource: &str, group: &str, name: &str) -> KubeError {
    KubeError {
        details: Some(Box::new(details(group, resource, name))),
        ..KubeError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
                qualified(resource, group)
            ),
        )
    }
}

/// 422 Invalid with one cause naming the field (`field` may be empty).
pub fn invalid(kind: &str, group: &str, name: &str, field: &str, message: &str) -> KubeError {
    let mut d = details(group, kind, name);
    let cause_reason = if message.contains("unknown field") {
        "FieldValueInvalid"
    } else if message.contains("Forbidden") {
        "FieldValueForbidden"
    } else if message.contains("Required") || message.contains("required") {
        "FieldValueRequired"
    } else {
        "FieldValueInvalid"
    };
    let text = if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    };
    // kubectl prints `<field>: <message>` from the cause, as the API
    // server's causes carry the field and message apart.
    d["causes"] = json!([{"reason": cause_reason, "message": message, "field": field}]);
    KubeError {
        details: Some(Box::new(d)),
        ..KubeError::new(
            422,
            "Invalid",
            format!("{kind} {name:?} is invalid: {text}"),
        )
    }
}

/// 400 Bad Request. The message is any error's text (a selector's, a
/// patch's), so a typed error maps straight to it.
pub fn bad_request(message: impl std::fmt::Display) -> KubeError {
    KubeError::new(400, "BadRequest", message.to_string())
}

pub fn forbidden(message: impl std::fmt::Display) -> KubeError {
    KubeError::new(403, "Forbidden", message.to_string())
}

pub fn method_not_allowed(message: impl std::fmt::Display) -> KubeError {
    KubeError::new(405, "MethodNotAllowed", message.to_string())
}

pub fn unsupported_media(message: impl std::fmt::Display) -> KubeError {
    KubeError::new(415, "UnsupportedMediaType", message.to_string())
}

pub fn gone(message: impl std::fmt::Display) -> KubeError {
    KubeError::new(410, "Expired", message.to_string())
}

pub fn unauthorized() -> KubeError {
    KubeError::new(401, "Unauthorized", "Unauthorized")
}

pub fn path_not_found(path: &str) -> KubeError {
    KubeError::new(
        404,
        "NotFound",
        format!("the server could not find the requested resource ({path})"),
    )
}

/// The `Status` a successful deletion answers with (for kinds that go at
/// once).
pub fn success(group: &str, kind: &str, name: &str, uid: Option<&str>) -> Value {
    let mut d = details(group, kind, name);
    if let Some(u) = uid {
        d["uid"] = json!(u);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_look_like_the_api_servers() {
        let e = not_found("deployments", "apps", "web");
        assert_eq!(e.code, 404);
        assert_eq!(e.message, "deployments.apps \"web\" not found");
        let s = e.to_status();
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["group"], "apps");
        let e = invalid("Pod", "", "p", "spec.foo", "unknown field");
        assert_eq!(e.code, 422);
        assert_eq!(e.to_status()["details"]["causes"][0]["field"], "spec.foo");
        assert_eq!(conflict("pods", "", "p").code, 409);
    }
}
