//! The CEL rules of the generated CRD: they compile, use only variables a CRD rule may use, and
//! stay inside the API server's cost budget, which it checks when the CRD is applied. A rule
//! over budget makes the whole CRD unapplyable, and no local evaluation would notice.

use kube::core::cel::{CompiledSchema, ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::Value;

use crate::fixtures::schema_as_served;

/// Every compiled rule with the schema node it sits on, as `(path, rule, node)`.
fn rules<'a>(
    node: &'a CompiledSchema,
    path: &str,
    out: &mut Vec<(String, String, &'a CompiledSchema)>,
) {
    for compiled in node.validations.iter().flatten() {
        out.push((path.to_string(), compiled.rule.rule.clone(), node));
    }
    let mut children: Vec<_> = node.properties.iter().collect();
    children.sort_by_key(|(name, _)| name.as_str());
    for (name, child) in children {
        rules(child, &format!("{path}.{name}"), out);
    }
    if let Some(items) = &node.items {
        rules(items, &format!("{path}[]"), out);
    }
    if let Some(additional) = &node.additional_properties {
        rules(additional, &format!("{path}{{}}"), out);
    }
}

fn all_errors(node: &CompiledSchema, out: &mut Vec<String>) {
    out.extend(node.compilation_errors().iter().map(ToString::to_string));
    node.properties.values().for_each(|c| all_errors(c, out));
    node.items.iter().for_each(|c| all_errors(c, out));
    node.additional_properties
        .iter()
        .for_each(|c| all_errors(c, out));
}

#[test]
fn every_rule_compiles() {
    let compiled = compile_schema(&schema_as_served());
    let mut errors = Vec::new();
    all_errors(&compiled, &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");

    let mut found = Vec::new();
    rules(&compiled, "", &mut found);
    let mut places: Vec<&str> = found.iter().map(|(path, _, _)| path.as_str()).collect();
    places.dedup();
    assert_eq!(
        places,
        [
            "",
            ".spec",
            ".spec.analysis.postPromotion.checks[]",
            ".spec.analysis.prePromotion.checks[]",
            ".spec.service",
            ".spec.smokeTests"
        ]
    );
    assert_eq!(
        found.len(),
        13,
        "a rule was added or lost: {found:#?}",
        found = found.iter().map(|(p, r, _)| (p, r)).collect::<Vec<_>>()
    );
}

/// Whether the variable a scope warning names is the iteration variable of a macro in `rule`.
fn binds_own_variable(rule: &str, message: &str) -> bool {
    let Some(variable) = message.split('\'').nth(1) else {
        return false;
    };
    ["all", "exists", "exists_one", "map", "filter"]
        .iter()
        .any(|m| rule.contains(&format!(".{m}({variable},")))
}

#[test]
fn every_rule_is_in_scope_and_within_kube_cels_cost_estimate() {
    let compiled = compile_schema(&schema_as_served());
    let mut found = Vec::new();
    rules(&compiled, "", &mut found);
    let mut problems = Vec::new();
    for (path, rule, node) in &found {
        for warning in analyze_rule(rule, node, ScopeContext::CrdValidation) {
            // kube-cel 0.8 counts a macro's own iteration variable (`k` in `m.all(k, ...)`)
            // as a free variable; those are bound by the rule, so they are not a scope error.
            if warning.kind == WarningKind::WrongScope && binds_own_variable(rule, &warning.message)
            {
                continue;
            }
            problems.push(format!("{path}: {rule}: {warning:?}"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

// kube-cel's estimate is a coarse heuristic (it does not price string comparisons by length),
// so the rules that iterate are also priced here the way the API server prices them:
// k8s.io/apiserver/pkg/cel/common/schemas.go sizes unbounded collections and strings from the
// 3 MiB request limit, and cel-go's checker/cost.go charges a string comparison 0.1 per
// character of the shorter side and startsWith 0.1 per character of the prefix.

/// Request size limit the estimator assumes for unbounded data.
const MAX_REQUEST_BYTES: u64 = 3 * 1024 * 1024;
/// Per-expression limit of the static estimate (`StaticEstimatedCostLimit`).
const STATIC_ESTIMATED_COST_LIMIT: u64 = 10_000_000;
/// Generous fixed cost of one loop iteration: variable reads, field selections, `&&`, `!`,
/// `in`, the loop condition (about 7 for our rules).
const ITERATION_OVERHEAD: u64 = 12;

/// Worst-case entries of a map of strings or a list, as the estimator assumes them.
fn cardinality(schema: &Value) -> u64 {
    if let Some(max) = schema
        .get("maxItems")
        .or(schema.get("maxProperties"))
        .and_then(Value::as_u64)
    {
        return max;
    }
    // A string entry is at least `""` (2 bytes); a map entry adds its key, colon and comma.
    match schema["type"].as_str() {
        Some("object") => (MAX_REQUEST_BYTES - 2) / (2 + 6),
        _ => (MAX_REQUEST_BYTES - 2) / (2 + 1),
    }
}

/// Worst-case length of a string.
fn max_length(schema: &Value) -> u64 {
    schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(MAX_REQUEST_BYTES - 2)
}

/// Cost of traversing a string of this length (cel-go's StringTraversalCostFactor).
fn traversal(length: u64) -> u64 {
    length.div_ceil(10)
}

#[test]
fn iterating_rules_fit_the_api_server_cost_budget() {
    let schema = schema_as_served();
    let at = |pointer: &str| {
        schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("no {pointer}"))
            .clone()
    };
    let spec = "/properties/spec/properties";
    let match_labels = at(&format!("{spec}/selector/properties/matchLabels"));
    let template_labels = at(&format!(
        "{spec}/template/properties/metadata/properties/labels"
    ));
    let smoke_tests = at(&format!("{spec}/smokeTests"));
    let smoke_test_name = at(&format!("{spec}/smokeTests/items/properties/name"));
    let reserved_prefix = "bluegreen.dev/".len() as u64;

    let estimates = [
        (
            "template labels avoid the reserved prefix",
            cardinality(&template_labels) * (ITERATION_OVERHEAD + traversal(reserved_prefix)),
        ),
        (
            "selector avoids the reserved prefix",
            cardinality(&match_labels) * (ITERATION_OVERHEAD + traversal(reserved_prefix)),
        ),
        (
            // labels[k] == matchLabels[k]: priced by the shorter of the two values.
            "selector matches the template labels",
            cardinality(&match_labels)
                * (ITERATION_OVERHEAD
                    + traversal(
                        max_length(&match_labels["additionalProperties"])
                            .min(max_length(&template_labels["additionalProperties"])),
                    )),
        ),
        (
            "smoke test names are unique",
            cardinality(&smoke_tests)
                * (ITERATION_OVERHEAD
                    + cardinality(&smoke_tests)
                        * (ITERATION_OVERHEAD + traversal(max_length(&smoke_test_name)))),
        ),
        (
            "release plus smoke test names fit a Job name",
            cardinality(&smoke_tests) * ITERATION_OVERHEAD,
        ),
    ];
    let over: Vec<_> = estimates
        .iter()
        .filter(|(_, cost)| *cost > STATIC_ESTIMATED_COST_LIMIT)
        .collect();
    assert!(
        over.is_empty(),
        "the API server would refuse the CRD; bound the inputs (maxProperties, maxItems, maxLength): {over:#?}"
    );
}

#[test]
fn the_cost_model_flags_an_unbounded_comparison() {
    // Keeps the model above honest: a map of unbounded strings compared entry by entry, which
    // is what spec.selector.matchLabels was before it was bounded, is far over budget.
    let unbounded =
        serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}});
    let cost = cardinality(&unbounded)
        * (ITERATION_OVERHEAD + traversal(max_length(&unbounded["additionalProperties"])));
    assert!(cost > 1_000 * STATIC_ESTIMATED_COST_LIMIT, "{cost}");
}
