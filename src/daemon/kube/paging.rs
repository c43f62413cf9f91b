//! List paging (`?limit=N&continue=TOKEN`), as the API server pages: items in
//! key order (namespace, then name), at most `limit` per page, a `continue`
//! token naming where the next page starts, and `remainingItemCount`.
//!
//! Every page lists at the first page's resource version, as the API
//! server's: the token carries it, and the handler rebuilds the list as it
//! was then from the watch event log ([`super::watch::EventLog::at`]); a
//! version the log no longer reaches is 410 Expired. The token is the API
//! server's shape: base64 of
//! `{"v":"meta.k8s.io/v1","rv":N,"start":"<ns>/<name>\u0000"}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// One page of `items` (already in key order).
#[derive(Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The token for the next page, if there is one.
    pub next: Option<String>,
    pub remaining: Option<usize>,
}

/// What a list is paged by: an item's (namespace, name), the store's order.
pub trait Keyed {
    fn key(&self) -> (&str, &str);
}

/// An object as Kubernetes JSON (with anything beside it).
impl<T> Keyed for (Value, T) {
    fn key(&self) -> (&str, &str) {
        let m = self.0.get("metadata");
        let s = |k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|x| x.as_str())
                .unwrap_or("")
        };
        (s("namespace"), s("name"))
    }
}

/// A `continue` token this server did not make (or one damaged on the way).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("continue key is not valid: the token is malformed")]
pub struct BadContinueToken;

/// The resource version a `continue` token lists at (that of its first
/// page).
pub fn token_rv(token: &str) -> Result<u64, BadContinueToken> {
    let bytes = STANDARD.decode(token).map_err(|_| BadContinueToken)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| BadContinueToken)?;
    v.get("rv").and_then(|x| x.as_u64()).ok_or(BadContinueToken)
}

/// Where a token says the page starts (exclusive of nothing: the key it
/// names is the first candidate).
fn decode(token: &str) -> Result<(String, String), BadContinueToken> {
    let bad = || BadContinueToken;
    let bytes = STANDARD.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.get("v").and_then(|x| x.as_str()) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let start = v.get("start").and_then(|x| x.as_str()).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// The same token at another resource version (the API server's way on
/// after a 410: the rest of the list, read now).
pub fn retarget(token: &str, rv: u64) -> Option<String> {
    let bytes = STANDARD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some(encode(rv, v.get("start")?.as_str()?))
}

fn encode(rv: u64, start: &str) -> String {
    STANDARD.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

/// Cut `items` (in key order) to one page.
pub fn page<T: Keyed>(
    items: Vec<T>,
    limit: Option<usize>,
    cont: Option<&str>,
    rv: u64,
) -> Result<Page<T>, BadContinueToken> {
    let start = cont.filter(|c| !c.is_empty()).map(decode).transpose()?;
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| {
            start
                .as_ref()
                .is_none_or(|(ns, name)| i.key() >= (ns.as_str(), name.as_str()))
        })
        .collect();
    let Some(limit) = limit.filter(|l| *l > 0 && *l < rest.len()) else {
        return Ok(Page {
            items: rest,
            next: None,
            remaining: None,
        });
    };
    let tail = rest.split_off(limit);
    // The next page starts just after the last key served.
    let next = {
        let (ns, name) = rest[limit - 1].key();
        encode(rv, &format!("{ns}/{name}\u{0}"))
    };
    Ok(Page {
        items: rest,
        next: Some(next),
        remaining: Some(tail.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(names: &[&str]) -> Vec<(Value, ())> {
        names
            .iter()
            .map(|n| (json!({"metadata": {"namespace": "default", "name": n}}), ()))
            .collect()
    }

    fn names(p: &Page<(Value, ())>) -> Vec<String> {
        p.items
            .iter()
            .map(|(v, _)| v["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn pages_walk_every_item_once() {
        let all = ["a", "b", "c", "d", "e"];
        let p1 = page(items(&all), Some(2), None, 7).unwrap();
        assert_eq!(names(&p1), ["a", "b"]);
        assert_eq!(p1.remaining, Some(3));
        let p2 = page(items(&all), Some(2), p1.next.as_deref(), 7).unwrap();
        assert_eq!(names(&p2), ["c", "d"]);
        let p3 = page(items(&all), Some(2), p2.next.as_deref(), 7).unwrap();
        assert_eq!(names(&p3), ["e"]);
        assert_eq!((p3.next, p3.remaining), (None, None));
        // No limit, or one at least as large as the list: everything.
        assert_eq!(names(&page(items(&all), None, None, 7).unwrap()).len(), 5);
        assert_eq!(page(items(&all), Some(5), None, 7).unwrap().next, None);
        // An item deleted between pages is simply not there; the walk goes on.
        let p2b = page(items(&["a", "b", "d", "e"]), Some(2), p1.next.as_deref(), 8).unwrap();
        assert_eq!(names(&p2b), ["d", "e"]);
    }

    #[test]
    fn all_namespaces_page_in_store_order() {
        // ("a", _) < ("a-b", _) in the store, though "a/" > "a-b/" as text.
        let v = vec![
            (json!({"metadata": {"namespace": "a", "name": "x"}}), ()),
            (json!({"metadata": {"namespace": "a-b", "name": "x"}}), ()),
            (json!({"metadata": {"namespace": "a-b", "name": "y"}}), ()),
        ];
        let p1 = page(v.clone(), Some(1), None, 1).unwrap();
        let p2 = page(v.clone(), Some(1), p1.next.as_deref(), 1).unwrap();
        let p3 = page(v, Some(1), p2.next.as_deref(), 1).unwrap();
        let ns = |p: &Page<(Value, ())>| p.items[0].0["metadata"]["namespace"].clone();
        assert_eq!(
            (ns(&p1), ns(&p2), ns(&p3)),
            (json!("a"), json!("a-b"), json!("a-b"))
        );
        assert_eq!(p3.items[0].0["metadata"]["name"], "y");
    }

    #[test]
    fn bad_tokens_are_refused() {
        let wrong_version = STANDARD.encode("{\"v\":\"x\",\"start\":\"a/b\"}");
        let no_slash = STANDARD.encode("{\"v\":\"meta.k8s.io/v1\",\"start\":\"ab\"}");
        for t in ["!!", "e30=", &wrong_version, &no_slash] {
            assert!(page(items(&["a"]), Some(1), Some(t), 1).is_err(), "{t}");
        }
    }
}
