//! Small formatting helpers shared by the tables and describe.

use super::*;

pub(crate) fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

pub(crate) fn opt_str(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("")
}

/// `labels.FormatLabels`: sorted `k=v` joined by commas, `<none>` if empty.
pub(crate) fn format_labels(labels: Option<&BTreeMap<String, String>>) -> String {
    match labels {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `None` for an invalid
/// operator. An empty selector is the empty string.
pub fn selector_string(sel: &LabelSelector) -> Option<String> {
    let mut reqs: Vec<(&str, String)> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        reqs.push((k, format!("{k}={v}")));
    }
    for e in sel.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        let r = match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => return None,
        };
        reqs.push((&e.key, r));
    }
    reqs.sort_by(|a, b| a.0.cmp(b.0));
    Some(reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` if empty, `<error>` if invalid.
pub(crate) fn format_label_selector(sel: &LabelSelector) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

pub(crate) fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(crate) fn protocol(p: &Option<String>) -> &str {
    p.as_deref().unwrap_or("TCP")
}

/// kubectl's `layoutContainerCells`: names and images, comma-joined.
pub(crate) fn container_cells(containers: &[Container]) -> (String, String) {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = containers.iter().map(|c| opt_str(&c.image)).collect();
    (names.join(","), images.join(","))
}

pub(crate) fn pod_template_containers(t: Option<&PodTemplateSpec>) -> &[Container] {
    t.and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}
