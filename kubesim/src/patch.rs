//! PATCH bodies: RFC 7386 merge, RFC 6902 JSON patch (via `json-patch`) and a
//! good-enough strategic merge that merges object lists by their patch merge keys.

use serde_json::Value;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// The key that identifies items of a list field in strategic merge and server-side
/// apply, as declared by `patchMergeKey` on the built-in Go types.
pub fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                Some("containerPort")
            } else {
                Some("port")
            }
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        _ => None,
    }
}

/// Applies a non-apply patch to `target`.
pub fn apply_patch(target: &mut Value, kind: PatchType, body: &[u8]) -> Result<(), ApiError> {
    match kind {
        PatchType::Merge => {
            let p: Value = parse_json(body)?;
            json_patch::merge(target, &p);
        }
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding json patch: {e}")))?;
            // A failed `test` op or a bad path is a 422 on a real apiserver.
            json_patch::patch(target, &p).map_err(|e| {
                ApiError::injected(
                    422,
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?;
        }
        PatchType::Strategic => {
            let p: Value = parse_json(body)?;
            if !p.is_object() {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            }
            strategic_merge(target, &p);
        }
        // Server-side apply merges by field ownership (apply.rs), not as a patch.
        PatchType::Apply => {
            return Err(ApiError::bad_request("apply patches are not plain patches"));
        }
    }
    Ok(())
}

pub fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Strategic merge: maps merge recursively, `null` deletes, lists with a known merge
/// key merge item-wise (with `$patch: delete` on items), other lists are replaced.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    for (k, pv) in p {
        if k.starts_with('$') {
            continue;
        }
        if pv.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), pv) {
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                if let Some(key) = merge_key(k, pl) {
                    merge_list(tl, pl, key);
                } else if k == "finalizers" {
                    for item in pl {
                        if !tl.contains(item) {
                            tl.push(item.clone());
                        }
                    }
                } else {
                    *tl = pl.clone();
                }
            }
            (Some(tv @ Value::Object(_)), Value::Object(_)) => strategic_merge(tv, pv),
            _ => {
                let mut fresh = pv.clone();
                strip_directives(&mut fresh);
                t.insert(k.clone(), fresh);
            }
        }
    }
}

fn merge_list(target: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key);
        let pos = id.and_then(|id| target.iter().position(|t| t.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                target.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut target[i], item),
            (None, false) => {
                let mut fresh = item.clone();
                strip_directives(&mut fresh);
                target.push(fresh);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}], "args": ["1"]}});
        let p = json!({"spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}], "args": ["2"]}});
        strategic_merge(&mut t, &p);
        assert_eq!(t["spec"]["containers"][0]["image"], "x:1");
        assert_eq!(t["spec"]["containers"][1]["image"], "y:2");
        assert_eq!(t["spec"]["containers"][2]["name"], "c");
        assert_eq!(t["spec"]["args"], json!(["2"]));
    }
}
