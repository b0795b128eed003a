//! CRD `x-kubernetes-validations` (CEL) rules, evaluated with `kube-cel` the way the
//! apiserver does at admission: after defaulting, with `oldSelf` on updates.

use kube_cel::{CompiledSchema, ErrorKind};
use serde_json::Value;

use crate::error::Cause;

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        Some(Value::Object(_)) => "object",
        Some(Value::Array(_)) => "array",
        Some(Value::String(_)) => "string",
        Some(Value::Number(n)) if n.is_f64() => "number",
        Some(Value::Number(_)) => "integer",
        Some(Value::Bool(_)) => "boolean",
        _ => "null",
    }
}

fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.get(name)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

/// The rules' causes added to the structural schema's, as the apiserver adds them: not run
/// past a blocking schema failure (a value of the wrong type, size or enum), which one more
/// cause reports instead.
pub fn after_schema(
    compiled: &CompiledSchema,
    obj: &Value,
    old: Option<&Value>,
    causes: &mut Vec<Cause>,
) {
    if crate::schema::blocks_cel(causes) {
        causes.push(crate::schema::cel_not_checked());
    } else {
        causes.extend(self::causes(compiled, obj, old));
    }
}

/// Causes for every rule that evaluated to false. Rules kube-cel cannot evaluate
/// (unsupported functions, runtime errors) are skipped rather than rejecting
/// objects a real apiserver would accept.
pub fn causes(compiled: &CompiledSchema, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let Err(errors) = kube_cel::validate_compiled(compiled, obj, old) else {
        return Vec::new();
    };
    errors
        .as_slice()
        .iter()
        .filter(|e| matches!(e.kind, ErrorKind::ValidationFailure))
        .map(|e| {
            let reason = e
                .reason
                .clone()
                .unwrap_or_else(|| "FieldValueInvalid".into());
            let message = match reason.as_str() {
                "FieldValueRequired" => format!("Required value: {}", e.message),
                "FieldValueForbidden" => format!("Forbidden: {}", e.message),
                "FieldValueDuplicate" => format!("Duplicate value: {}", e.message),
                _ => format!(
                    "Invalid value: {:?}: {}",
                    type_name(at(obj, &e.field_path)),
                    e.message
                ),
            };
            // A root-level rule has no path; the apiserver prints a nil field.Path as <nil>.
            let field = if e.field_path.is_empty() {
                "<nil>".to_string()
            } else {
                e.field_path.clone()
            };
            Cause::new(&reason, field, message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failing_rules_become_field_causes() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "self.min <= self.max", "message": "min must not exceed max"}],
            "properties": {"min": {"type": "integer"}, "max": {"type": "integer"},
                "name": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "name is immutable"}]}}}}});
        let compiled = kube_cel::compile_schema(&schema);
        assert!(causes(&compiled, &json!({"spec": {"min": 1, "max": 2}}), None).is_empty());
        let bad = causes(&compiled, &json!({"spec": {"min": 3, "max": 2}}), None);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].field, "spec");
        assert_eq!(
            bad[0].message,
            "Invalid value: \"object\": min must not exceed max"
        );
        let old = json!({"spec": {"min": 1, "max": 2, "name": "a"}});
        let changed = causes(
            &compiled,
            &json!({"spec": {"min": 1, "max": 2, "name": "b"}}),
            Some(&old),
        );
        assert_eq!(changed[0].field, "spec.name");
    }
}
