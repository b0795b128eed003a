//! Defaulting and light validation that the apiserver applies to built-in kinds.

use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use serde_json::{Value, json};

use crate::error::Cause;
use crate::registry::ResourceDef;

/// Hands out ClusterIPs from 10.96.0.0/12 and pod IPs from 10.244.0.0/16.
#[derive(Debug)]
pub struct IpAllocator {
    next_service: AtomicU32,
    next_pod: AtomicU32,
}

impl Default for IpAllocator {
    fn default() -> Self {
        IpAllocator {
            next_service: AtomicU32::new(10),
            next_pod: AtomicU32::new(2),
        }
    }
}

impl IpAllocator {
    pub fn service_ip(&self) -> String {
        let n = self.next_service.fetch_add(1, Ordering::Relaxed);
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    pub fn pod_ip(&self) -> String {
        let n = self.next_pod.fetch_add(1, Ordering::Relaxed);
        format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }
}

/// Applies defaults for built-in kinds. `old` is the stored object on updates.
pub fn apply(def: &ResourceDef, obj: &mut Value, old: Option<&Value>, ips: &IpAllocator) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "services") => service(obj, old, ips),
        ("", "namespaces") => {
            let name = crate::meta::name(obj).to_string();
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        ("", "secrets") => {
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
            // stringData is write-only: merged into base64 data, as the apiserver does.
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                for (k, v) in sd {
                    let enc = base64::engine::general_purpose::STANDARD
                        .encode(v.as_str().unwrap_or_default());
                    obj["data"][k] = json!(enc);
                }
            }
        }
        ("", "pods") => {
            // There is one node, and every pod is scheduled to it at once.
            if old.is_none() && obj.pointer("/spec/nodeName").is_none() {
                obj["spec"]["nodeName"] = json!("kubesim-node");
            }
            if obj.pointer("/spec/restartPolicy").is_none() {
                obj["spec"]["restartPolicy"] = json!("Always");
            }
            if obj.pointer("/status/phase").is_none() {
                obj["status"]["phase"] = json!("Pending");
            }
        }
        ("apps", "deployments" | "replicasets" | "statefulsets")
            if obj.pointer("/spec/replicas").is_none() =>
        {
            obj["spec"]["replicas"] = json!(1);
        }
        ("batch", "jobs") => job(obj, old),
        ("apiextensions.k8s.io", "customresourcedefinitions") => crd(obj, old),
        _ => {}
    }
}

fn service(obj: &mut Value, old: Option<&Value>, ips: &IpAllocator) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        *spec = json!({});
    }
    if spec.get("type").is_none() {
        spec["type"] = json!("ClusterIP");
    }
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    let external = spec["type"] == "ExternalName";
    if spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
        && !external
    {
        // clusterIP is immutable: keep the allocated one across replaces and applies.
        let ip = old
            .and_then(|o| o.pointer("/spec/clusterIP").cloned())
            .unwrap_or_else(|| json!(ips.service_ip()));
        spec["clusterIP"] = ip.clone();
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    for p in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if p.get("protocol").is_none() {
            p["protocol"] = json!("TCP");
        }
        if p.get("targetPort").is_none()
            && let Some(port) = p.get("port").cloned()
        {
            p["targetPort"] = port;
        }
    }
    if obj.get("status").is_none() {
        obj["status"] = json!({"loadBalancer": {}});
    }
}

fn job(obj: &mut Value, old: Option<&Value>) {
    let spec = &mut obj["spec"];
    for (k, v) in [("backoffLimit", 6), ("completions", 1), ("parallelism", 1)] {
        if spec.get(k).is_none() {
            spec[k] = json!(v);
        }
    }
    if spec.get("completionMode").is_none() {
        spec["completionMode"] = json!("NonIndexed");
    }
    if old.is_none() && spec.get("selector").is_none() {
        // The Job controller's selector is generated from the Job's uid.
        let uid = obj
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = crate::meta::name(obj).to_string();
        obj["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
        let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
        labels["batch.kubernetes.io/controller-uid"] = json!(uid);
        labels["controller-uid"] = json!(uid);
        labels["batch.kubernetes.io/job-name"] = json!(name);
        labels["job-name"] = json!(name);
    }
}

fn crd(obj: &mut Value, old: Option<&Value>) {
    let names = obj
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = names.clone();
    if accepted.get("singular").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["singular"] = json!(k.to_lowercase());
    }
    if accepted.get("listKind").is_none()
        && let Some(k) = names.get("kind").and_then(Value::as_str)
    {
        accepted["listKind"] = json!(format!("{k}List"));
    }
    let stored: Vec<Value> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let now = crate::meta::now();
    // Conditions keep their transition times across updates: the CRD stays Established.
    if let Some(conds) = old.and_then(|o| o.pointer("/status/conditions")) {
        obj["status"] =
            json!({"acceptedNames": accepted, "storedVersions": stored, "conditions": conds});
        return;
    }
    obj["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
}

/// Checks a CRD the way apiextensions does for the fields kubesim relies on.
pub fn validate_crd(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let group = obj
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = obj
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() {
        out.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        out.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        out.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    let name = crate::meta::name(obj);
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        out.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count();
    if storage != 1 {
        out.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                json!(
                    versions
                        .iter()
                        .filter_map(|v| v.get("name"))
                        .collect::<Vec<_>>()
                )
            ),
        ));
    }
    out
}
