//! The structural-schema checks the API server makes before CEL runs, for the keywords our
//! CRD uses: `type`, `nullable`, `enum`, `minimum`/`maximum`, `minLength`/`maxLength`,
//! `pattern`, `minItems`/`maxItems`, `minProperties`/`maxProperties`, `required` and the
//! key uniqueness of `x-kubernetes-list-type: map`.
//!
//! kube-cel evaluates CEL rules only, and no JSON-schema validator is in the dependency tree,
//! so this is a deliberately small walker. Anything it does not implement (formats, pruning of
//! unknown fields) it ignores rather than guesses, and its own tests below keep it honest.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;

/// One schema violation: where, which keyword, and what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub path: String,
    pub keyword: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]: {}", self.path, self.keyword, self.detail)
    }
}

/// Checks `value` against `schema`; the empty list means the API server's schema pass accepts it.
pub fn check(schema: &Value, value: &Value) -> Vec<Violation> {
    let mut violations = Vec::new();
    walk(schema, value, "", &mut violations);
    violations
}

fn walk(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut fail = |keyword: &'static str, detail: String| {
        out.push(Violation {
            path: path.to_string(),
            keyword,
            detail,
        })
    };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            fail("nullable", "null is not allowed".into());
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        fail("enum", format!("{value} is not one of {allowed:?}"));
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        _ if int_or_string => value.is_i64() || value.is_string(),
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("schema type {other} not handled by the test checker"),
    };
    if !type_ok {
        fail("type", format!("{value} is not of type {}", schema["type"]));
        return;
    }
    let bound = |keyword: &str| schema.get(keyword).and_then(Value::as_f64);
    let count = |keyword: &str| schema.get(keyword).and_then(Value::as_u64);

    match value {
        Value::Number(n) => {
            let n = n.as_f64().expect("a number");
            if let Some(min) = bound("minimum")
                && n < min
            {
                fail("minimum", format!("{n} is less than {min}"));
            }
            if let Some(max) = bound("maximum")
                && n > max
            {
                fail("maximum", format!("{n} is greater than {max}"));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = count("minLength")
                && len < min
            {
                fail("minLength", format!("'{s}' is shorter than {min}"));
            }
            if let Some(max) = count("maxLength")
                && len > max
            {
                fail("maxLength", format!("'{s}' is longer than {max}"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let re = Regex::new(pattern).expect("schema pattern compiles");
                if !re.is_match(s) {
                    fail("pattern", format!("'{s}' does not match {pattern}"));
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = count("minItems")
                && len < min
            {
                fail("minItems", format!("{len} items, fewer than {min}"));
            }
            if let Some(max) = count("maxItems")
                && len > max
            {
                fail("maxItems", format!("{len} items, more than {max}"));
            }
            if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
                let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .expect("a map list names its keys")
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    // The API server compares keys after defaulting (protocol defaults to TCP).
                    let key: Vec<String> = keys.iter().map(|k| item[k].to_string()).collect();
                    if !seen.insert(key.clone()) {
                        out.push(Violation {
                            path: format!("{path}[{i}]"),
                            keyword: "x-kubernetes-list-map-keys",
                            detail: format!("duplicate entry for key {keys:?} = {key:?}"),
                        });
                    }
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let len = map.len() as u64;
            if let Some(min) = count("minProperties")
                && len < min
            {
                fail("minProperties", format!("{len} entries, fewer than {min}"));
            }
            if let Some(max) = count("maxProperties")
                && len > max
            {
                fail("maxProperties", format!("{len} entries, more than {max}"));
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(required) {
                    fail("required", format!("'{required}' is required"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if let Some(child_schema) = properties.and_then(|p| p.get(key)) {
                    walk(child_schema, child, &child_path, out);
                } else if let Some(child_schema) = additional {
                    walk(child_schema, child, &child_path, out);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod self_tests {
    use super::*;
    use serde_json::json;

    fn keywords(schema: Value, value: Value) -> Vec<&'static str> {
        check(&schema, &value)
            .into_iter()
            .map(|v| v.keyword)
            .collect()
    }

    #[test]
    fn each_keyword_rejects_and_accepts() {
        let cases: &[(Value, Value, Value, &str)] = &[
            (
                json!({"type": "integer", "minimum": 1.0}),
                json!(1),
                json!(0),
                "minimum",
            ),
            (
                json!({"type": "integer", "maximum": 9.0}),
                json!(9),
                json!(10),
                "maximum",
            ),
            (
                json!({"type": "string", "enum": ["A"]}),
                json!("A"),
                json!("B"),
                "enum",
            ),
            (
                json!({"type": "string", "minLength": 1}),
                json!("a"),
                json!(""),
                "minLength",
            ),
            (
                json!({"type": "string", "maxLength": 2}),
                json!("ab"),
                json!("abc"),
                "maxLength",
            ),
            (
                json!({"type": "string", "pattern": "^[a-z]+$"}),
                json!("ab"),
                json!("aB"),
                "pattern",
            ),
            (
                json!({"type": "array", "minItems": 1}),
                json!([1]),
                json!([]),
                "minItems",
            ),
            (
                json!({"type": "array", "maxItems": 1}),
                json!([1]),
                json!([1, 2]),
                "maxItems",
            ),
            (
                json!({"type": "object", "minProperties": 1}),
                json!({"a": 1}),
                json!({}),
                "minProperties",
            ),
            (
                json!({"type": "object", "maxProperties": 1}),
                json!({"a": 1}),
                json!({"a": 1, "b": 2}),
                "maxProperties",
            ),
            (
                json!({"type": "object", "required": ["a"]}),
                json!({"a": 1}),
                json!({"b": 1}),
                "required",
            ),
            (json!({"type": "string"}), json!("a"), json!(1), "type"),
            (
                json!({"type": "string"}),
                json!("a"),
                json!(null),
                "nullable",
            ),
            (
                json!({"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["n"]}),
                json!([{"n": "a"}, {"n": "b"}]),
                json!([{"n": "a"}, {"n": "a"}]),
                "x-kubernetes-list-map-keys",
            ),
        ];
        for (schema, good, bad, keyword) in cases {
            assert_eq!(
                keywords(schema.clone(), good.clone()),
                Vec::<&str>::new(),
                "{keyword} accepts {good}"
            );
            assert_eq!(
                keywords(schema.clone(), bad.clone()),
                vec![*keyword],
                "{keyword} rejects {bad}"
            );
        }
    }

    #[test]
    fn recurses_with_paths() {
        let schema = json!({"type": "object", "properties": {
            "ports": {"type": "array", "items": {"type": "object", "properties": {
                "port": {"type": "integer", "maximum": 65535.0}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}}
        }});
        let value = json!({"ports": [{"port": 1}, {"port": 70000}], "labels": {"a": "long"}});
        let mut paths: Vec<String> = check(&schema, &value).into_iter().map(|v| v.path).collect();
        paths.sort();
        assert_eq!(paths, ["labels.a", "ports[1].port"]);
    }
}
