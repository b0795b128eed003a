//! What a real API server refuses in built-in objects, and how: a body that does not decode
//! into the kind's type (`400 BadRequest`), then the field rules of the kinds kubesim's
//! users write (`422 Invalid` with one cause per field, as upstream's `Validate*`
//! functions report them). Custom resources are checked by their schema and CEL rules
//! (`schema`, `cel`); names, labels and annotations are checked for every object.

mod decode;
mod names;
mod pods;
mod services;
mod workloads;

use serde_json::Value;

use crate::error::Cause;
use crate::registry::ResourceDef;

pub use decode::decode;

/// How an object's name is checked, by kind (`ValidateObjectMeta`'s name function).
fn name_rule(def: &ResourceDef) -> Option<fn(&str) -> Vec<String>> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "services") => Some(names::dns1035_label),
        ("", "namespaces") => Some(names::dns1123_label),
        ("", "pods" | "configmaps" | "secrets" | "serviceaccounts" | "nodes")
        | ("apps", _)
        | ("batch", _)
        | ("coordination.k8s.io", "leases") => Some(names::dns1123_subdomain),
        // Custom resources: DNS subdomains, as the API server's customresource strategy.
        _ if def.crd.is_some() => Some(names::dns1123_subdomain),
        // RBAC objects ("system:controller:..."), events and the rest: path segments.
        _ => None,
    }
}

/// The causes for which the API server refuses `obj` (already defaulted); empty: valid.
pub fn causes(def: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let meta = obj.get("metadata");
    if let (Some(rule), Some(name)) = (
        name_rule(def),
        meta.and_then(|m| m.get("name")).and_then(Value::as_str),
    ) && !name.is_empty()
    {
        names::invalid("metadata.name", &Value::from(name), rule(name), &mut out);
    }
    names::labels(
        meta.and_then(|m| m.get("labels")),
        "metadata.labels",
        &mut out,
    );
    names::annotations(
        meta.and_then(|m| m.get("annotations")),
        "metadata.annotations",
        &mut out,
    );
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => workloads::pod(obj, &mut out),
        ("", "services") => services::service(obj, &mut out),
        ("apps", "replicasets") => workloads::replica_set(obj, &mut out),
        ("apps", "deployments") => workloads::deployment(obj, &mut out),
        ("batch", "jobs") => workloads::job(obj, &mut out),
        _ => {}
    }
    out
}
