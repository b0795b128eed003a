//! ReplicaSets, Deployments and Jobs: counts, the selector and its template, and the pod
//! template's spec (`ValidateReplicaSetSpec`, `ValidateDeploymentSpec`, `ValidateJobSpec`).

use serde_json::Value;

use super::names;
use super::pods::{self, RestartPolicies, required};
use crate::error::Cause;
use crate::selector::LabelSelector;

fn non_negative(spec: &Value, field: &str, out: &mut Vec<Cause>) {
    if let Some(n) = spec.get(field).and_then(Value::as_i64)
        && n < 0
    {
        out.push(Cause::new(
            "FieldValueInvalid",
            format!("spec.{field}"),
            format!("Invalid value: {n}: must be greater than or equal to 0"),
        ));
    }
}

/// The selector and the template of a ReplicaSet or Deployment.
fn selected_template(spec: &Value, out: &mut Vec<Cause>) {
    match spec.get("selector") {
        None | Some(Value::Null) => required("spec.selector", out),
        Some(selector) => {
            let empty = selector
                .get("matchLabels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
                && selector
                    .get("matchExpressions")
                    .and_then(Value::as_array)
                    .is_none_or(|m| m.is_empty());
            if empty {
                out.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.selector",
                    format!("Invalid value: {selector}: empty selector is invalid for deployment"),
                ));
            }
            names::labels(
                selector.get("matchLabels"),
                "spec.selector.matchLabels",
                out,
            );
            let labels = spec.pointer("/template/metadata/labels");
            if !empty
                && !LabelSelector::from_object(selector)
                    .matches_labels(labels.and_then(Value::as_object))
            {
                out.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        labels
                            .cloned()
                            .unwrap_or_else(|| Value::Object(Default::default()))
                    ),
                ));
            }
        }
    }
    template(spec, RestartPolicies::AlwaysOnly, out);
}

fn template(spec: &Value, policies: RestartPolicies, out: &mut Vec<Cause>) {
    let meta = spec.pointer("/template/metadata");
    names::labels(
        meta.and_then(|m| m.get("labels")),
        "spec.template.metadata.labels",
        out,
    );
    names::annotations(
        meta.and_then(|m| m.get("annotations")),
        "spec.template.metadata.annotations",
        out,
    );
    match spec.pointer("/template/spec") {
        Some(pod) if pod.is_object() => pods::spec(pod, "spec.template.spec", policies, out),
        _ => required("spec.template.spec.containers", out),
    }
}

pub fn replica_set(obj: &Value, out: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    non_negative(spec, "replicas", out);
    non_negative(spec, "minReadySeconds", out);
    selected_template(spec, out);
}

pub fn deployment(obj: &Value, out: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    for field in [
        "replicas",
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ] {
        non_negative(spec, field, out);
    }
    selected_template(spec, out);
}

pub fn job(obj: &Value, out: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(spec, field, out);
    }
    template(spec, RestartPolicies::Terminating, out);
}

pub fn pod(obj: &Value, out: &mut Vec<Cause>) {
    match obj.get("spec") {
        Some(spec) if spec.is_object() => pods::spec(spec, "spec", RestartPolicies::Any, out),
        _ => required("spec.containers", out),
    }
}
