//! Structural-schema handling for custom resources: defaulting, pruning and validation
//! against `openAPIV3Schema`, with error messages shaped like the apiserver's.
//! CEL rules (`x-kubernetes-validations`) are evaluated apart, in `cel.rs`.

use serde_json::{Map, Value};

use crate::error::Cause;

/// Defaults, prunes and validates `obj` in place; returns the causes of any violation.
/// On an update (`old` given), a top-level field the update leaves as it was is neither
/// defaulted, pruned nor validated again: it was when it was written (the apiserver's
/// validation ratcheting, on by default since 1.30, skips unchanged values at every depth).
/// This keeps a status write from walking the whole spec and its schema.
pub fn apply(obj: &mut Value, schema: &Value, old: Option<&Value>) -> Outcome {
    let mut pruned = Vec::new();
    let unchanged: Vec<String> = match (obj.as_object(), old.and_then(Value::as_object)) {
        (Some(map), Some(old)) => map
            .iter()
            .filter(|(k, v)| old.get(*k) == Some(*v))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    };
    default_and_prune_root(obj, schema, &unchanged, &mut pruned);
    let mut causes = Vec::new();
    match (obj.as_object(), old.and_then(Value::as_object)) {
        (Some(map), Some(old)) => {
            let ratchet = Ratchet {
                old,
                known_unchanged: &unchanged,
            };
            validate_object(map, schema, &At::Root, true, Some(ratchet), &mut causes)
        }
        _ => validate(obj, schema, &At::Root, true, &mut causes),
    }
    Outcome { causes, pruned }
}

/// What schema processing found: validation failures, and the unknown fields it
/// pruned (an error under `fieldValidation=Strict`).
#[derive(Debug, Default)]
pub struct Outcome {
    pub causes: Vec<Cause>,
    pub pruned: Vec<String>,
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Fields the apiserver keeps on any object regardless of schema.
fn is_meta_field(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata")
}

/// The stored object an update is validated against: its top-level fields left as they
/// were are not validated again. `known_unchanged` were found equal before defaulting and
/// need no second comparison (a status write would otherwise compare the spec twice).
#[derive(Clone, Copy)]
struct Ratchet<'a> {
    old: &'a Map<String, Value>,
    known_unchanged: &'a [String],
}

impl Ratchet<'_> {
    fn unchanged(&self, key: &str, value: &Value) -> bool {
        self.known_unchanged.iter().any(|k| k == key) || self.old.get(key) == Some(value)
    }
}

/// `default_and_prune` of the whole object, leaving the top-level fields in `skip` alone.
fn default_and_prune_root(obj: &mut Value, s: &Value, skip: &[String], pruned: &mut Vec<String>) {
    if skip.is_empty() {
        return default_and_prune(obj, s, true, &At::Root, pruned);
    }
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    // Set the skipped fields aside, so that the walk sees only the rest (a default the walk
    // fills in for a field set aside is overwritten when it comes back).
    let kept: Vec<(String, Value)> = skip
        .iter()
        .filter_map(|k| map.remove(k).map(|v| (k.clone(), v)))
        .collect();
    default_and_prune(obj, s, true, &At::Root, pruned);
    if let Some(map) = obj.as_object_mut() {
        map.extend(kept);
    }
}

fn default_and_prune(
    v: &mut Value,
    s: &Value,
    root: bool,
    path: &At<'_>,
    pruned: &mut Vec<String>,
) {
    match v {
        Value::Object(map) => {
            let keeps_meta = root || flag(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, ps) in props {
                    if !map.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            let additional = s.get("additionalProperties");
            let preserve = flag(s, "x-kubernetes-preserve-unknown-fields")
                || additional.is_some_and(|a| a.as_bool() == Some(true));
            if !preserve && !flag(s, "x-kubernetes-int-or-string") {
                let additional_schema = additional.filter(|a| a.is_object());
                map.retain(|k, _| {
                    let known = (keeps_meta && is_meta_field(k))
                        || props.is_some_and(|p| p.contains_key(k))
                        || additional_schema.is_some();
                    if !known {
                        pruned.push(At::Key(path, k).to_string());
                    }
                    known
                });
            }
            for (k, child) in map.iter_mut() {
                if keeps_meta && is_meta_field(k) {
                    continue;
                }
                let at = At::Key(path, k);
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    default_and_prune(child, ps, false, &at, pruned);
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    default_and_prune(child, a, false, &at, pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter_mut().enumerate() {
                    default_and_prune(it, is, false, &At::Index(path, i), pruned);
                }
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Where a value sits in the object (`spec.ports[0].name`), rendered only when a message
/// names it: building the string for every node visited was most of validation's cost.
#[derive(Clone, Copy)]
enum At<'a> {
    Root,
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(At::Root, k) => f.write_str(k),
            At::Key(parent, k) => write!(f, "{parent}.{k}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn invalid(out: &mut Vec<Cause>, path: &At<'_>, value: &Value, detail: String) {
    out.push(Cause::new(
        "FieldValueInvalid",
        path.to_string(),
        format!("Invalid value: {}: {detail}", render(value)),
    ));
}

fn validate(v: &Value, s: &Value, path: &At<'_>, root: bool, out: &mut Vec<Cause>) {
    if v.is_null() {
        if !flag(s, "nullable") && s.get("type").is_some() {
            let t = s["type"].as_str().unwrap_or_default();
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path.to_string(),
                format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if flag(s, "x-kubernetes-int-or-string") {
        if !(v.is_string() || type_ok(v, "integer")) {
            out.push(Cause::new(
                "FieldValueTypeInvalid",
                path.to_string(),
                format!(
                    "Invalid value: {:?}: {path} in body must be of type int-or-string: {:?}",
                    type_name(v),
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_ok(v, t)
    {
        out.push(Cause::new(
            "FieldValueTypeInvalid",
            path.to_string(),
            format!(
                "Invalid value: {:?}: {path} in body must be of type {t}: {:?}",
                type_name(v),
                type_name(v)
            ),
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        out.push(Cause::new(
            "FieldValueNotSupported",
            path.to_string(),
            format!(
                "Unsupported value: {}: supported values: {}",
                render(v),
                list.join(", ")
            ),
        ));
    }
    match v {
        Value::String(st) => validate_string(v, st, s, path, out),
        Value::Number(n) => validate_number(v, n.as_f64().unwrap_or(0.0), s, path, out),
        Value::Array(items) => {
            validate_count(items.len(), s, ["minItems", "maxItems"], "items", path, out);
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    validate(it, is, &At::Index(path, i), false, out);
                }
            }
            validate_list_type(items, s, path, out);
        }
        Value::Object(map) => validate_object(map, s, path, root, None, out),
        _ => {}
    }
}

/// `x-kubernetes-list-type: set | map`: an item repeated (a set), or two items with the
/// same key fields (a map), is a duplicate, reported at the later item with the key as the
/// apiserver prints it (`{"port":80,"protocol":"TCP"}`).
fn validate_list_type(items: &[Value], s: &Value, path: &At<'_>, out: &mut Vec<Cause>) {
    let keys_of = |item: &Value| -> Option<Value> {
        match s.get("x-kubernetes-list-type").and_then(Value::as_str)? {
            "set" => Some(item.clone()),
            "map" => {
                let names = s.get("x-kubernetes-list-map-keys")?.as_array()?;
                let item_schema = s.get("items");
                // Sorted keys, as the apiserver renders the key map.
                let key: std::collections::BTreeMap<&str, Value> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .filter_map(|k| {
                        let given = item.get(k).cloned();
                        let default = item_schema
                            .and_then(|is| is.pointer(&format!("/properties/{k}/default")))
                            .cloned();
                        given.or(default).map(|v| (k, v))
                    })
                    .collect();
                serde_json::to_value(key).ok()
            }
            _ => None,
        }
    };
    let mut seen: Vec<Value> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(key) = keys_of(item) else { return };
        if seen.contains(&key) {
            out.push(Cause::new(
                "FieldValueDuplicate",
                At::Index(path, i).to_string(),
                format!("Duplicate value: {}", render(&key)),
            ));
        } else {
            seen.push(key);
        }
    }
}

/// Schema failures the apiserver does not run CEL rules past (its `hasBlockingErr`): the
/// rules could read a value of the wrong shape or size. It says so with one more cause.
pub fn blocks_cel(causes: &[Cause]) -> bool {
    causes.iter().any(|c| {
        matches!(
            c.reason.as_str(),
            "FieldValueNotSupported"
                | "FieldValueRequired"
                | "FieldValueTooLong"
                | "FieldValueTooMany"
                | "FieldValueTypeInvalid"
        )
    })
}

/// The cause the apiserver adds when `blocks_cel` held.
pub fn cel_not_checked() -> Cause {
    Cause::new(
        "FieldValueInvalid",
        "<nil>",
        "Invalid value: null: some validation rules were not checked because the object was \
         invalid; correct the existing errors to complete validation",
    )
}

/// `minItems`/`maxItems` of a list, `minProperties`/`maxProperties` of an object, with the
/// apiserver's messages (it says "items" for too many of either).
fn validate_count(
    n: usize,
    s: &Value,
    [min_key, max_key]: [&str; 2],
    unit: &str,
    path: &At<'_>,
    out: &mut Vec<Cause>,
) {
    let n = n as u64;
    if let Some(min) = s.get(min_key).and_then(Value::as_u64)
        && n < min
    {
        invalid(
            out,
            path,
            &Value::from(n),
            format!("{path} in body should have at least {min} {unit}"),
        );
    }
    if let Some(max) = s.get(max_key).and_then(Value::as_u64)
        && n > max
    {
        out.push(Cause::new(
            "FieldValueTooMany",
            path.to_string(),
            format!("Too many: {n}: must have at most {max} items"),
        ));
    }
}

fn validate_string(v: &Value, st: &str, s: &Value, path: &At<'_>, out: &mut Vec<Cause>) {
    let len = st.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        out.push(Cause::new(
            "FieldValueTooLong",
            path.to_string(),
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        invalid(
            out,
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        );
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && let Some(re) = compiled(p)
        && !re.is_match(st)
    {
        invalid(out, path, v, format!("{path} in body should match '{p}'"));
    }
}

/// A schema `pattern`, compiled once per process: patterns come from CRD schemas (few and
/// fixed), and compiling one on every validated string showed in profiles. `None` for a
/// pattern the regex crate does not accept (it is not enforced, as before).
fn compiled(pattern: &str) -> Option<regex::Regex> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<String, Option<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

/// Bounds print as the schema wrote them: `0`, not `0.0`.
fn bound(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

fn validate_number(v: &Value, x: f64, s: &Value, path: &At<'_>, out: &mut Vec<Cause>) {
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        if flag(s, "exclusiveMinimum") {
            if x <= min {
                invalid(
                    out,
                    path,
                    v,
                    format!(
                        "{path} in body should be greater than {}",
                        bound(&s["minimum"])
                    ),
                );
            }
        } else if x < min {
            invalid(
                out,
                path,
                v,
                format!(
                    "{path} in body should be greater than or equal to {}",
                    bound(&s["minimum"])
                ),
            );
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        if flag(s, "exclusiveMaximum") {
            if x >= max {
                invalid(
                    out,
                    path,
                    v,
                    format!(
                        "{path} in body should be less than {}",
                        bound(&s["maximum"])
                    ),
                );
            }
        } else if x > max {
            invalid(
                out,
                path,
                v,
                format!(
                    "{path} in body should be less than or equal to {}",
                    bound(&s["maximum"])
                ),
            );
        }
    }
}

fn validate_object(
    map: &Map<String, Value>,
    s: &Value,
    path: &At<'_>,
    root: bool,
    ratchet: Option<Ratchet<'_>>,
    out: &mut Vec<Cause>,
) {
    for req in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(k) = req.as_str()
            && !map.contains_key(k)
        {
            out.push(Cause::new(
                "FieldValueRequired",
                At::Key(path, k).to_string(),
                "Required value",
            ));
        }
    }
    validate_count(
        map.len(),
        s,
        ["minProperties", "maxProperties"],
        "properties",
        path,
        out,
    );
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    let embedded = root || flag(s, "x-kubernetes-embedded-resource");
    for (k, cv) in map {
        // ObjectMeta is validated by the apiserver's own rules, not the schema.
        if embedded && is_meta_field(k) {
            continue;
        }
        if ratchet.is_some_and(|r| r.unchanged(k, cv)) {
            continue;
        }
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            validate(cv, ps, &At::Key(path, k), false, out);
        } else if let Some(a) = additional {
            validate(cv, a, &At::Key(path, k), false, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "maxLength": 5},
                "replicas": {"type": "integer", "minimum": 0, "default": 1},
                "mode": {"type": "string", "enum": ["Auto", "Manual"]},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}
        }})
    }

    #[test]
    fn defaults_prunes_and_reports() {
        let mut obj = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"name": "abc", "junk": 1, "free": {"any": {"thing": 1}}}});
        let outcome = apply(&mut obj, &schema(), None);
        assert!(outcome.causes.is_empty());
        assert_eq!(outcome.pruned, vec!["spec.junk".to_string()]);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(obj["spec"].get("junk").is_none());
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);

        let mut bad = json!({"spec": {"replicas": -1, "mode": "X", "name": "toolong"}});
        let causes = apply(&mut bad, &schema(), None).causes;
        let msgs: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(msgs.contains(&"spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0".to_string()), "{msgs:?}");
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("spec.mode: Unsupported value: \"X\"")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.starts_with("spec.name: Too long")),
            "{msgs:?}"
        );
        let mut missing = json!({"spec": {}});
        let causes = apply(&mut missing, &schema(), None).causes;
        assert_eq!(causes[0].field, "spec.name");
        assert_eq!(causes[0].message, "Required value");
    }
}
