//! Legacy discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{g}/{v}`) and
//! `/version`. Aggregated discovery is not served: clients fall back to these.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceDef};

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-kubesim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-08-27T00:00:00Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "34",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "33",
    })
}

pub fn core_versions(server: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    })
}

pub fn group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .by_group_version()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| group(reg, g, versions.keys()))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group<'a>(reg: &Registry, g: &str, versions: impl Iterator<Item = &'a String>) -> Value {
    let mut vs: Vec<&String> = versions.collect();
    vs.sort_by_key(|v| std::cmp::Reverse(crate::registry::version_priority(v)));
    let preferred = reg.preferred_version(g).unwrap_or_else(|| vs[0].clone());
    json!({
        "name": g,
        "versions": vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect::<Vec<_>>(),
        "preferredVersion": {"groupVersion": format!("{g}/{preferred}"), "version": preferred},
    })
}

/// `/apis/{g}` (APIGroup), if the group exists.
pub fn api_group(reg: &Registry, g: &str) -> Option<Value> {
    let all = reg.by_group_version();
    let versions = all.get(g)?;
    let mut v = group(reg, g, versions.keys());
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

const ALL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_entries(def: &ResourceDef) -> Vec<Value> {
    // Access reviews are create-only, as on a real apiserver.
    let verbs: &[&str] = if def.group == "authorization.k8s.io" {
        &["create"]
    } else {
        &ALL_VERBS
    };
    let mut out = vec![json!({
        "name": def.plural,
        "singularName": def.singular,
        "namespaced": def.namespaced,
        "kind": def.kind,
        "verbs": verbs,
        "shortNames": def.short_names,
        "categories": def.categories,
        "storageVersionHash": "",
    })];
    if def.short_names.is_empty() {
        out[0].as_object_mut().expect("object").remove("shortNames");
    }
    if def.categories.is_empty() {
        out[0].as_object_mut().expect("object").remove("categories");
    }
    if def.status {
        out.push(json!({"name": format!("{}/status", def.plural), "singularName": "", "namespaced": def.namespaced,
            "kind": def.kind, "verbs": ["get", "patch", "update"]}));
    }
    if def.scale.is_some() {
        out.push(json!({"name": format!("{}/scale", def.plural), "singularName": "", "namespaced": def.namespaced,
            "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
    }
    if def.log {
        out.push(json!({"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
    }
    out
}

/// `/api/v1` or `/apis/{g}/{v}` (APIResourceList), if served.
pub fn resource_list(reg: &Registry, g: &str, v: &str) -> Option<Value> {
    let all = reg.by_group_version();
    let defs = all.get(g)?.get(v)?;
    let gv = if g.is_empty() {
        v.to_string()
    } else {
        format!("{g}/{v}")
    };
    let resources: Vec<Value> = defs.iter().flat_map(|d| resource_entries(d)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}
