//! Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl's
//! `create` generators send that way (`kubectl create secret|configmap|
//! namespace`): decoded into the same JSON every other write is, so strict
//! validation and the daemon's apply stay the only path. Answers are JSON
//! (kubectl accepts both).
//!
//! The envelope is the 4-byte magic `k8s\0` and a `runtime.Unknown`
//! (1: typeMeta {1: apiVersion, 2: kind}, 2: raw object, 3: contentEncoding,
//! 4: contentType). Field numbers of the objects are those of
//! `k8s.io/api/core/v1/generated.proto`.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// One field of a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], i: &mut usize) -> Result<u64, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or("truncated varint")?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order.
fn fields(b: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, ty) = (key >> 3, key & 7);
        let w = match ty {
            0 => Wire::Varint(varint(b, &mut i)?),
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).map_err(|_| "length too large")?;
                let end = i.checked_add(len).filter(|e| *e <= b.len());
                let end = end.ok_or("truncated field")?;
                let v = &b[i..end];
                i = end;
                Wire::Bytes(v)
            }
            1 => {
                i += 8;
                Wire::Fixed
            }
            5 => {
                i += 4;
                Wire::Fixed
            }
            t => return Err(format!("unsupported wire type {t}")),
        };
        if i > b.len() {
            return Err("truncated field".into());
        }
        out.push((num, w));
    }
    Ok(out)
}

fn text(w: Wire<'_>, what: &str) -> Result<String, String> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8")),
        _ => Err(format!("{what}: wrong wire type")),
    }
}

fn bytes<'a>(w: Wire<'a>, what: &str) -> Result<&'a [u8], String> {
    match w {
        Wire::Bytes(b) => Ok(b),
        _ => Err(format!("{what}: wrong wire type")),
    }
}

/// A map entry (1: key, 2: value).
fn entry(w: Wire<'_>, what: &str) -> Result<(String, Vec<u8>), String> {
    let mut k = String::new();
    let mut v = Vec::new();
    for (n, f) in fields(bytes(w, what)?)? {
        match n {
            1 => k = text(f, what)?,
            2 => v = bytes(f, what)?.to_vec(),
            _ => {}
        }
    }
    Ok((k, v))
}

fn string_map(m: &mut Map<String, Value>, key: &str, w: Wire<'_>) -> Result<(), String> {
    let (k, v) = entry(w, key)?;
    let v = String::from_utf8(v).map_err(|_| format!("{key}.{k} is not UTF-8"))?;
    m.entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(|o| o.insert(k, Value::String(v)));
    Ok(())
}

fn bytes_map(m: &mut Map<String, Value>, key: &str, w: Wire<'_>) -> Result<(), String> {
    let (k, v) = entry(w, key)?;
    // ByteString serializes as base64, as the JSON form of `[]byte`.
    let b64 = serde_json::to_value(k8s_openapi::ByteString(v)).unwrap_or(Value::Null);
    m.entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(|o| o.insert(k, b64));
    Ok(())
}

/// ObjectMeta: the fields a client sets; server-set ones are ignored as
/// in JSON; anything else (ownerReferences, …) is refused.
fn metadata(b: &[u8]) -> Result<Value, String> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        match n {
            1 => {
                m.insert("name".into(), text(f, "metadata.name")?.into());
            }
            2 => {
                m.insert(
                    "generateName".into(),
                    text(f, "metadata.generateName")?.into(),
                );
            }
            3 => {
                m.insert("namespace".into(), text(f, "metadata.namespace")?.into());
            }
            6 => {
                m.insert(
                    "resourceVersion".into(),
                    text(f, "metadata.resourceVersion")?.into(),
                );
            }
            4 | 5 | 7 | 8 | 9 | 10 | 17 => {}
            11 => string_map(&mut m, "labels", f)?,
            12 => string_map(&mut m, "annotations", f)?,
            14 => {
                let list = m.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(a) = list.as_array_mut() {
                    a.push(text(f, "metadata.finalizers")?.into());
                }
            }
            n => {
                return Err(format!(
                    "metadata field {n} is not supported in protobuf by lab"
                ));
            }
        }
    }
    m.retain(|_, v| v.as_str() != Some(""));
    Ok(Value::Object(m))
}

fn boolean(w: Wire<'_>) -> Value {
    Value::Bool(matches!(w, Wire::Varint(v) if v != 0))
}

fn object(kind: &str, raw: &[u8]) -> Result<Value, String> {
    let mut o = Map::new();
    for (n, f) in fields(raw)? {
        match (kind, n) {
            (_, 1) => {
                o.insert("metadata".into(), metadata(bytes(f, "metadata")?)?);
            }
            ("Secret", 2) => bytes_map(&mut o, "data", f)?,
            ("Secret", 3) => {
                let t = text(f, "type")?;
                if !t.is_empty() {
                    o.insert("type".into(), t.into());
                }
            }
            ("Secret", 4) => string_map(&mut o, "stringData", f)?,
            ("Secret", 5) => {
                o.insert("immutable".into(), boolean(f));
            }
            ("ConfigMap", 2) => string_map(&mut o, "data", f)?,
            ("ConfigMap", 3) => bytes_map(&mut o, "binaryData", f)?,
            ("ConfigMap", 4) => {
                o.insert("immutable".into(), boolean(f));
            }
            // Namespace spec (finalizers) and status are the server's.
            ("Namespace", 2 | 3) => {}
            (k, n) => return Err(format!("{k} field {n} is not supported in protobuf by lab")),
        }
    }
    Ok(Value::Object(o))
}

/// Decode a protobuf request body into the object's JSON (with
/// `apiVersion` and `kind`). Only the kinds kubectl's generators send are
/// understood; others get a message saying to send JSON.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("not a Kubernetes protobuf message (no k8s magic)")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, f) in fields(rest)? {
        match n {
            1 => {
                for (m, g) in fields(bytes(f, "typeMeta")?)? {
                    match m {
                        1 => api_version = text(g, "apiVersion")?,
                        2 => kind = text(g, "kind")?,
                        _ => {}
                    }
                }
            }
            2 => raw = Some(bytes(f, "raw")?),
            3 => {
                let enc = text(f, "contentEncoding")?;
                if !enc.is_empty() {
                    return Err(format!("content encoding {enc:?} is not supported"));
                }
            }
            _ => {}
        }
    }
    if api_version != "v1" || !matches!(kind.as_str(), "Secret" | "ConfigMap" | "Namespace") {
        return Err(format!(
            "lab reads protobuf only for v1 Secret, ConfigMap and Namespace (got {api_version} {kind}); send JSON"
        ));
    }
    let mut v = object(&kind, raw.unwrap_or_default())?;
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kubectl 1.32 sends for
    /// `kubectl create secret generic x --from-literal=a=b` (from its -v=9 log).
    const KUBECTL_SECRET: &[u8] = &[
        0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0c, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x06, 0x53, 0x65, 0x63,
        0x72, 0x65, 0x74, 0x12, 0x1d, 0x0a, 0x11, 0x0a, 0x01, 0x78, 0x12, 0x00, 0x1a, 0x00, 0x22,
        0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x06, 0x0a, 0x01, 0x61, 0x12,
        0x01, 0x62, 0x1a, 0x00, 0x1a, 0x00, 0x22, 0x00,
    ];

    fn msg(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, b) in fields {
            out.push((n << 3) | 2);
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
        out
    }

    #[test]
    fn kubectls_secret_decodes() {
        let v = decode(KUBECTL_SECRET).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
                "data": {"a": "Yg=="}})
        );
    }

    #[test]
    fn config_maps_with_labels_and_secrets_with_types() {
        let label = msg(&[(1, b"app"), (2, b"web")]);
        let meta = msg(&[(1, b"c"), (3, b"team"), (11, &label)]);
        let data = msg(&[(1, b"k"), (2, b"v")]);
        let raw = msg(&[(1, &meta), (2, &data)]);
        let tm = msg(&[(1, b"v1"), (2, b"ConfigMap")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &raw)])].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "team", "labels": {"app": "web"}},
                "data": {"k": "v"}})
        );
        let raw = msg(&[(1, &msg(&[(1, b"t")])), (3, b"kubernetes.io/tls")]);
        let tm = msg(&[(1, b"v1"), (2, b"Secret")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &raw)])].concat();
        assert_eq!(decode(&body).unwrap()["type"], "kubernetes.io/tls");
    }

    #[test]
    fn garbage_and_other_kinds_are_errors_not_panics() {
        assert!(decode(b"{}").is_err());
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"k8s\0\x0a\x05ab").is_err());
        let tm = msg(&[(1, b"apps/v1"), (2, b"Deployment")]);
        let e = decode(&[MAGIC, &msg(&[(1, &tm)])].concat()).unwrap_err();
        assert!(e.contains("send JSON"), "{e}");
        // Every truncation of a valid message is handled.
        for n in 0..KUBECTL_SECRET.len() {
            let _ = decode(&KUBECTL_SECRET[..n]);
        }
        // An owner reference (metadata field 13) is refused, not dropped.
        let meta = msg(&[(1, b"x"), (13, b"")]);
        let tm = msg(&[(1, b"v1"), (2, b"Secret")]);
        let body = [MAGIC, &msg(&[(1, &tm), (2, &msg(&[(1, &meta)]))])].concat();
        assert!(decode(&body).unwrap_err().contains("metadata field 13"));
    }
}
