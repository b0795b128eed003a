//! `ValidatePodSpec`, for the fields kubesim's users write: containers (name, image, ports)
//! and the restart policy, in a Pod or in the template of a workload.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::{self, invalid};
use crate::error::Cause;

/// The restart policies a pod spec may have where it appears.
#[derive(Clone, Copy)]
pub enum RestartPolicies {
    /// A Pod: any of the three.
    Any,
    /// The template of a ReplicaSet or Deployment: pods that never end.
    AlwaysOnly,
    /// The template of a Job: pods that end.
    Terminating,
}

impl RestartPolicies {
    fn allowed(self) -> &'static [&'static str] {
        match self {
            RestartPolicies::Any => &["Always", "OnFailure", "Never"],
            RestartPolicies::AlwaysOnly => &["Always"],
            RestartPolicies::Terminating => &["OnFailure", "Never"],
        }
    }
}

fn not_supported(field: &str, value: &Value, allowed: &[&str], out: &mut Vec<Cause>) {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    out.push(Cause::new(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ),
    ));
}

pub fn required(field: &str, out: &mut Vec<Cause>) {
    out.push(Cause::new("FieldValueRequired", field, "Required value"));
}

/// Validates the pod spec `spec` found at `path` (e.g. `spec.template.spec`).
pub fn spec(spec: &Value, path: &str, policies: RestartPolicies, out: &mut Vec<Cause>) {
    let containers = spec.get("containers").and_then(Value::as_array);
    match containers {
        Some(list) if !list.is_empty() => {
            containers_at(list, &format!("{path}.containers"), out);
        }
        _ => required(&format!("{path}.containers"), out),
    }
    if let Some(list) = spec.get("initContainers").and_then(Value::as_array) {
        containers_at(list, &format!("{path}.initContainers"), out);
    }
    match spec.get("restartPolicy") {
        Some(Value::String(p)) if policies.allowed().contains(&p.as_str()) => {}
        // The API server defaults a missing policy to Always before validating.
        None | Some(Value::Null) if policies.allowed().contains(&"Always") => {}
        // A Job's template: the apiserver calls any other policy a missing one (its
        // `validateJobPodTemplateSpec`), seen on a v1.34 kube-apiserver.
        _ if matches!(policies, RestartPolicies::Terminating) => out.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.restartPolicy"),
            "Required value: valid values: \"OnFailure\", \"Never\"",
        )),
        other => not_supported(
            &format!("{path}.restartPolicy"),
            other.unwrap_or(&Value::from("Always")),
            policies.allowed(),
            out,
        ),
    }
}

fn containers_at(list: &[Value], path: &str, out: &mut Vec<Cause>) {
    let mut seen = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match c.get("name").and_then(Value::as_str).unwrap_or_default() {
            "" => required(&format!("{at}.name"), out),
            name => {
                names::unique_label(&format!("{at}.name"), name, &mut seen, out);
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            required(&format!("{at}.image"), out);
        }
        for (j, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let port_at = format!("{at}.ports[{j}]");
            match p.get("containerPort").and_then(Value::as_i64) {
                Some(n) if (1..=65535).contains(&n) => {}
                Some(n) => out.push(Cause::new(
                    "FieldValueInvalid",
                    format!("{port_at}.containerPort"),
                    format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                )),
                None => required(&format!("{port_at}.containerPort"), out),
            }
            if let Some(name) = p.get("name").and_then(Value::as_str) {
                invalid(
                    &format!("{port_at}.name"),
                    &Value::from(name),
                    names::port_name(name),
                    out,
                );
            }
        }
    }
}
