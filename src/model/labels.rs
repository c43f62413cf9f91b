//! Label selectors: kubectl's `-l` syntax and the API's `LabelSelector`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::Eq(k, v) => labels.get(k) == Some(v),
            Requirement::NotEq(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        }
    }
}

/// Why a label selector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// kubectl's `-l` syntax: the selector and the requirement that broke.
    #[error("invalid label selector {selector:?} near {part:?}")]
    Syntax { selector: String, part: String },
    /// An API `LabelSelector`'s `matchExpressions[index].operator`.
    #[error(
        "matchExpressions[{index}].operator: {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
    )]
    Operator { index: usize, operator: String },
}

/// A parsed selector: all requirements must hold. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Requirement>);

impl Selector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From a Service's `spec.selector` (equality only).
    pub fn from_map(m: &Labels) -> Selector {
        Selector(
            m.iter()
                .map(|(k, v)| Requirement::Eq(k.clone(), v.clone()))
                .collect(),
        )
    }

    /// From an API `LabelSelector`.
    pub fn from_label_selector(s: &LabelSelector) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            reqs.push(Requirement::Eq(k.clone(), v.clone()));
        }
        for (i, e) in s.match_expressions.iter().flatten().enumerate() {
            let values = e.values.clone().unwrap_or_default();
            let r = match e.operator.as_str() {
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::NotExists(e.key.clone()),
                op => {
                    return Err(SelectorError::Operator {
                        index: i,
                        operator: op.to_string(),
                    });
                }
            };
            reqs.push(r);
        }
        Ok(Selector(reqs))
    }

    /// Parse kubectl's `-l` syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let bad = || SelectorError::Syntax {
                selector: s.to_string(),
                part: part.to_string(),
            };
            let r = if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(check_key(k.trim()).ok_or_else(bad)?)
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEq(check_key(k.trim()).ok_or_else(bad)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Eq(check_key(k.trim()).ok_or_else(bad)?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Eq(check_key(k.trim()).ok_or_else(bad)?, v.trim().to_string())
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                Requirement::NotIn(
                    check_key(k).ok_or_else(bad)?,
                    parse_set(rest).ok_or_else(bad)?,
                )
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                Requirement::In(
                    check_key(k).ok_or_else(bad)?,
                    parse_set(rest).ok_or_else(bad)?,
                )
            } else {
                Requirement::Exists(check_key(part).ok_or_else(bad)?)
            };
            reqs.push(r);
        }
        Ok(Selector(reqs))
    }
}

impl std::fmt::Display for Requirement {
    /// kubectl's `-l` syntax, which [`Selector::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Eq(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEq(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::NotExists(k) => write!(f, "!{k}"),
        }
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set_op<'a>(part: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let idx = part.find(op)?;
    Some((part[..idx].trim(), part[idx + op.len()..].trim()))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn check_key(k: &str) -> Option<String> {
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| k.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubectl_syntax() {
        let l = labels(&[("app", "backend"), ("tier", "web")]);
        for (sel, want) in [
            ("app=backend", true),
            ("app==backend", true),
            ("app=frontend", false),
            ("app!=frontend", true),
            ("app in (backend, x)", true),
            ("app notin (backend)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=backend,tier=web", true),
            ("app=backend,tier in (db)", false),
            ("", true),
        ] {
            assert_eq!(Selector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
        assert!(Selector::parse("a b").is_err());
        assert!(Selector::parse("x in y").is_err());
    }

    #[test]
    fn label_selector_expressions() {
        let s: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchLabels": {"app": "a"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["x", "y"]}]
        }))
        .unwrap();
        let sel = Selector::from_label_selector(&s).unwrap();
        assert!(sel.matches(&labels(&[("app", "a"), ("env", "y")])));
        assert!(!sel.matches(&labels(&[("app", "a"), ("env", "z")])));
        let bad: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [{"key": "env", "operator": "Like"}]
        }))
        .unwrap();
        assert!(Selector::from_label_selector(&bad).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn key() -> impl Strategy<Value = String> {
            "([a-z0-9]([a-z0-9.-]{0,8}[a-z0-9])?/)?[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,10}[a-zA-Z0-9])?"
        }

        fn value() -> impl Strategy<Value = String> {
            "([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,10}[a-zA-Z0-9])?)?"
        }

        fn nonempty_values() -> impl Strategy<Value = Vec<String>> {
            proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,6}[a-zA-Z0-9])?", 1..4)
        }

        fn requirement() -> impl Strategy<Value = Requirement> {
            prop_oneof![
                (key(), value()).prop_map(|(k, v)| Requirement::Eq(k, v)),
                (key(), value()).prop_map(|(k, v)| Requirement::NotEq(k, v)),
                (key(), nonempty_values()).prop_map(|(k, v)| Requirement::In(k, v)),
                (key(), nonempty_values()).prop_map(|(k, v)| Requirement::NotIn(k, v)),
                key().prop_map(Requirement::Exists),
                key().prop_map(Requirement::NotExists),
            ]
        }

        proptest! {
            /// parse ∘ print is the identity on selectors.
            #[test]
            fn print_then_parse_round_trips(reqs in proptest::collection::vec(requirement(), 0..5)) {
                let sel = Selector(reqs);
                let text = sel.to_string();
                prop_assert_eq!(Selector::parse(&text), Ok(sel), "{}", text);
            }

            /// The parser never panics on arbitrary input.
            #[test]
            fn parse_never_panics(s in "[a-z=!,() .in]{0,30}") {
                let _ = Selector::parse(&s);
            }
        }
    }
}
