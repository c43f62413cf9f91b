//! Server-side printing: `meta.k8s.io/v1` `Table`s with the columns of
//! lab's printer (`crate::print`), so `kubectl get` (and `-o wide`,
//! whose extra columns are the priority-1 ones) looks as on a real cluster.

use crate::model::{Kind, Object};
use crate::print;
use serde_json::{Value, json};
use std::time::SystemTime;

/// What a row carries besides its cells (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

pub fn columns(kind: Kind) -> Vec<(String, u8)> {
    let base = print::headers(kind, false).len();
    print::headers(kind, true)
        .into_iter()
        .enumerate()
        .map(|(i, h)| (h.to_string(), u8::from(i >= base)))
        .collect()
}

fn column_defs(cols: &[(String, u8)]) -> Value {
    Value::Array(
        cols.iter()
            .map(|(name, prio)| {
                let mut c = json!({"name": name, "type": "string", "format": "",
                    "description": "", "priority": prio});
                if name == "NAME" {
                    c["format"] = json!("name");
                }
                c
            })
            .collect(),
    )
}

fn row_object(obj: &Value, include: Include) -> Option<Value> {
    match include {
        Include::None => None,
        Include::Object => Some(obj.clone()),
        Include::Metadata => Some(json!({"kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})),
    }
}

/// One row: the object's cells (NAME first) and what `include` asks for.
pub fn row(cells: Vec<String>, obj: &Value, include: Include) -> Value {
    let mut r = json!({"cells": cells});
    if let Some(o) = row_object(obj, include) {
        r["object"] = o;
    }
    r
}

pub fn object_row(obj: &Object, include: Include, now: SystemTime, ctx: &print::RowCtx) -> Value {
    let mut cells = Vec::new();
    if print::name_first(obj.kind()) {
        cells.push(obj.name().to_string());
    }
    cells.extend(print::row_cells(obj, true, now, ctx));
    row(cells, &obj.to_json(), include)
}

/// A `Table` of rows; `headers`: include the column definitions (a watch
/// sends them with its first event only, as the API server).
pub fn table(cols: &[(String, u8)], rows: Vec<Value>, rv: &str, headers: bool) -> Value {
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": if headers { column_defs(cols) } else { json!([]) },
        "rows": rows,
    })
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        let first = first.replace(' ', "");
        first.contains("as=Table") && first.contains("g=meta.k8s.io")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_columns_and_accept() {
        let cols = columns(Kind::Pod);
        assert_eq!(cols[0], ("NAME".to_string(), 0));
        assert!(cols.iter().any(|(n, p)| n == "IP" && *p == 1));
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        let t = table(&cols, vec![], "5", true);
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
    }
}
