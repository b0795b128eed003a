//! Just enough Kubernetes protobuf decoding for clients that insist on it.
//!
//! client-go typed clients configured for protobuf (Helm's release storage, which
//! writes Secrets and ConfigMaps, and their DeleteOptions) send bodies as a
//! `runtime.Unknown` envelope behind the magic prefix `k8s\0`. kubesim decodes the
//! few message types those clients send (Secret, ConfigMap, DeleteOptions, and the
//! metadata of Namespace and ServiceAccount for `kubectl create`) into JSON and answers in JSON, which
//! client-go accepts. Other kinds sent as protobuf get 415.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("malformed protobuf body: {what}"))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, ApiError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or_else(|| bad("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(bad("varint too long"))
}

/// Splits a message into (field number, value) pairs in wire order.
fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, ApiError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos)?;
        let (num, wire) = (tag >> 3, tag & 7);
        let f = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Field::Fixed
            }
            2 => {
                let len = varint(buf, &mut pos)? as usize;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or_else(|| bad("truncated field"))?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            5 => {
                pos += 4;
                Field::Fixed
            }
            _ => return Err(bad("unsupported wire type")),
        };
        out.push((num, f));
    }
    Ok(out)
}

fn string(b: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8 string"))
}

/// A `map<string, string|bytes>` entry.
fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ApiError> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = string(x)?,
                2 if bytes_value => v = json!(base64::engine::general_purpose::STANDARD.encode(x)),
                2 => v = json!(string(x)?),
                _ => {}
            }
        }
    }
    Ok((k, v))
}

fn insert_entry(obj: &mut Value, key: &str, b: &[u8], bytes_value: bool) -> Result<(), ApiError> {
    let (k, v) = map_entry(b, bytes_value)?;
    if !obj.get(key).is_some_and(Value::is_object) {
        obj[key] = Value::Object(Map::new());
    }
    obj[key][k] = v;
    Ok(())
}

fn object_meta(b: &[u8]) -> Result<Value, ApiError> {
    let mut m = json!({});
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => m["name"] = json!(string(x)?),
            (2, Field::Bytes(x)) => m["generateName"] = json!(string(x)?),
            (3, Field::Bytes(x)) => m["namespace"] = json!(string(x)?),
            (5, Field::Bytes(x)) => m["uid"] = json!(string(x)?),
            (6, Field::Bytes(x)) => m["resourceVersion"] = json!(string(x)?),
            (11, Field::Bytes(x)) => insert_entry(&mut m, "labels", x, false)?,
            (12, Field::Bytes(x)) => insert_entry(&mut m, "annotations", x, false)?,
            (13, Field::Bytes(x)) => {
                let mut r = json!({});
                for (rn, rf) in fields(x)? {
                    match (rn, rf) {
                        (1, Field::Bytes(y)) => r["kind"] = json!(string(y)?),
                        (3, Field::Bytes(y)) => r["name"] = json!(string(y)?),
                        (4, Field::Bytes(y)) => r["uid"] = json!(string(y)?),
                        (5, Field::Bytes(y)) => r["apiVersion"] = json!(string(y)?),
                        (6, Field::Varint(y)) => r["controller"] = json!(y != 0),
                        (7, Field::Varint(y)) => r["blockOwnerDeletion"] = json!(y != 0),
                        _ => {}
                    }
                }
                if !m["ownerReferences"].is_array() {
                    m["ownerReferences"] = json!([]);
                }
                m["ownerReferences"].as_array_mut().expect("array").push(r);
            }
            (14, Field::Bytes(x)) => {
                if !m["finalizers"].is_array() {
                    m["finalizers"] = json!([]);
                }
                m["finalizers"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!(string(x)?));
            }
            _ => {}
        }
    }
    Ok(m)
}

fn secret(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = json!({"apiVersion": "v1", "kind": "Secret"});
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => o["metadata"] = object_meta(x)?,
            (2, Field::Bytes(x)) => insert_entry(&mut o, "data", x, true)?,
            (3, Field::Bytes(x)) => o["type"] = json!(string(x)?),
            (4, Field::Bytes(x)) => insert_entry(&mut o, "stringData", x, false)?,
            (5, Field::Varint(x)) => o["immutable"] = json!(x != 0),
            _ => {}
        }
    }
    Ok(o)
}

fn config_map(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => o["metadata"] = object_meta(x)?,
            (2, Field::Bytes(x)) => insert_entry(&mut o, "data", x, false)?,
            (3, Field::Bytes(x)) => insert_entry(&mut o, "binaryData", x, true)?,
            (4, Field::Varint(x)) => o["immutable"] = json!(x != 0),
            _ => {}
        }
    }
    Ok(o)
}

fn delete_options(b: &[u8]) -> Result<Value, ApiError> {
    let mut o = json!({"apiVersion": "v1", "kind": "DeleteOptions"});
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Varint(x)) => o["gracePeriodSeconds"] = json!(x as i64),
            (2, Field::Bytes(x)) => {
                for (pn, pf) in fields(x)? {
                    match (pn, pf) {
                        (1, Field::Bytes(y)) => o["preconditions"]["uid"] = json!(string(y)?),
                        (2, Field::Bytes(y)) => {
                            o["preconditions"]["resourceVersion"] = json!(string(y)?)
                        }
                        _ => {}
                    }
                }
            }
            (3, Field::Varint(x)) => o["orphanDependents"] = json!(x != 0),
            (4, Field::Bytes(x)) => o["propagationPolicy"] = json!(string(x)?),
            (5, Field::Bytes(x)) => {
                if !o["dryRun"].is_array() {
                    o["dryRun"] = json!([]);
                }
                o["dryRun"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!(string(x)?));
            }
            _ => {}
        }
    }
    Ok(o)
}

/// Decodes an enveloped protobuf body into the JSON form of its object.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing k8s envelope"))?;
    let (mut api_version, mut kind, mut raw): (String, String, &[u8]) =
        (String::new(), String::new(), &[]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(raw),
        ("v1", "ConfigMap") => config_map(raw),
        (_, "DeleteOptions") => delete_options(raw),
        // Kinds whose interesting content for `kubectl create` is their metadata.
        ("v1", kind @ ("Namespace" | "ServiceAccount")) => {
            let mut o = json!({"apiVersion": "v1", "kind": kind});
            for (n, f) in fields(raw)? {
                if let (1, Field::Bytes(x)) = (n, f) {
                    o["metadata"] = object_meta(x)?;
                }
            }
            Ok(o)
        }
        _ => Err(ApiError::unsupported_media_type(&format!(
            "{MEDIA_TYPE} ({api_version} {kind})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u64, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![((num << 3) | 2) as u8, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn decodes_enveloped_secret() {
        let entry = [field(1, b"release"), field(2, b"\x01\x02")].concat();
        let label = [field(1, b"owner"), field(2, b"helm")].concat();
        let meta = [
            field(1, b"sh.helm.release.v1.demo.v1"),
            field(3, b"default"),
            field(11, &label),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &entry),
            field(3, b"helm.sh/release.v1"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["metadata"]["name"], "sh.helm.release.v1.demo.v1");
        assert_eq!(v["metadata"]["labels"]["owner"], "helm");
        assert_eq!(v["data"]["release"], "AQI=");
        assert_eq!(v["type"], "helm.sh/release.v1");
    }
}
