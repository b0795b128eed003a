//! Endpoints and EndpointSlice controllers: the pods a Service selects, ready ones
//! as ready addresses.

use serde_json::{Value, json};

use super::pod::is_ready;
use super::{Sim, controller_ref};
use crate::cluster::{Sub, WriteOpts};
use crate::meta;
use crate::selector::LabelSelector;

const MANAGER: &str = "endpoint-controller";

/// Resolves a Service port's targetPort against a pod (named ports look up containers).
fn target_port(port: &Value, pod: Option<&Value>) -> Value {
    match port.get("targetPort") {
        Some(Value::String(name)) => pod
            .and_then(|p| p.pointer("/spec/containers"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| {
                c.get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .find(|cp| cp.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|cp| cp.get("containerPort").cloned())
            .unwrap_or_else(|| port.get("port").cloned().unwrap_or(Value::Null)),
        Some(n) => n.clone(),
        None => port.get("port").cloned().unwrap_or(Value::Null),
    }
}

/// The parts of a pod its endpoints are made of (a trimmed copy): name, uid, IP, readiness,
/// and the containers' named ports for `targetPort` names.
fn endpoint_source(pod: &Value) -> Value {
    let ports: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| json!({"ports": c.get("ports").cloned().unwrap_or(json!([]))}))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "metadata": {"name": meta::name(pod), "uid": meta::uid(pod)},
        "spec": {"containers": ports},
        "status": {"podIP": pod.pointer("/status/podIP").cloned().unwrap_or(Value::Null),
                   "conditions": pod.pointer("/status/conditions").cloned().unwrap_or(json!([]))},
    })
}

impl Sim {
    pub(super) fn reconcile_endpoints(&self, ns: &str, name: &str) {
        let Some(svc) = self.cluster.get_stored(&self.services.storage, ns, name) else {
            return;
        };
        let Some(sel_map) = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|s| !s.is_empty())
        else {
            return; // selector-less Services have user-managed endpoints
        };
        let sel = LabelSelector::from_map(sel_map);
        // The label index narrows the pods to those carrying every selector pair.
        let names = self.pod_labels.borrow().all_of(ns, sel_map);
        // Only what an endpoint needs is read from each pod (under the store lock, no copy).
        let pods: Vec<Value> = names
            .iter()
            .filter_map(|n| {
                self.cluster.read_stored(&self.pods.storage, ns, n, |p| {
                    let serving = sel.matches(p)
                        && p.pointer("/status/podIP").is_some()
                        && p.pointer("/metadata/deletionTimestamp").is_none()
                        && !matches!(
                            p.pointer("/status/phase").and_then(Value::as_str),
                            Some("Succeeded" | "Failed")
                        );
                    serving.then(|| endpoint_source(p))
                })
            })
            .flatten()
            .collect();
        let svc_ports: Vec<Value> = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ports: Vec<Value> = svc_ports
            .iter()
            .map(|p| {
                let mut e = json!({"port": target_port(p, pods.first()), "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
                if let Some(n) = p.get("name") {
                    e["name"] = n.clone();
                }
                e
            })
            .collect();
        let address = |p: &Value| {
            json!({"ip": p.pointer("/status/podIP").cloned().unwrap_or(Value::Null), "nodeName": "kubesim-node",
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta::name(p), "uid": meta::uid(p)}})
        };
        let ready: Vec<Value> = pods.iter().filter(|p| is_ready(p)).map(address).collect();
        let not_ready: Vec<Value> = pods.iter().filter(|p| !is_ready(p)).map(address).collect();
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        let subsets = if pods.is_empty() {
            json!([])
        } else {
            json!([subset])
        };
        let labels = svc
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let desired = json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets});
        self.upsert(&self.endpoints, ns, name, desired, &["subsets"]);

        let slice_name = format!(
            "{name}-{}",
            &meta::uid(&svc).replace('-', "")[..5.min(meta::uid(&svc).len())]
        );
        let endpoints: Vec<Value> = pods
            .iter()
            .map(|p| json!({
                "addresses": [p.pointer("/status/podIP").cloned().unwrap_or(Value::Null)],
                "conditions": {"ready": is_ready(p), "serving": is_ready(p), "terminating": false},
                "nodeName": "kubesim-node",
                "targetRef": {"kind": "Pod", "namespace": ns, "name": meta::name(p), "uid": meta::uid(p)},
            }))
            .collect();
        let mut slice_labels = svc
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        slice_labels["kubernetes.io/service-name"] = json!(name);
        slice_labels["endpointslice.kubernetes.io/managed-by"] =
            json!("endpointslice-controller.k8s.io");
        let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": ns, "labels": slice_labels,
                         "ownerReferences": [controller_ref(&svc, "v1", "Service")]},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports});
        self.upsert(
            &self.slices,
            ns,
            &slice_name,
            slice,
            &["endpoints", "ports"],
        );
    }

    /// Creates `desired` or updates the listed top-level fields (and labels) when they differ.
    fn upsert(
        &self,
        def: &crate::registry::ResourceDef,
        ns: &str,
        name: &str,
        desired: Value,
        fields: &[&str],
    ) {
        let opts = WriteOpts::manager(MANAGER);
        match self.cluster.get_stored(&def.storage, ns, name) {
            None => {
                let _ = self
                    .cluster
                    .create(def, &def.versions[0], ns, desired, &opts);
            }
            Some(cur) => {
                // Most pod events leave a Service's endpoints as they are: compare first,
                // copy the stored object only to change it.
                let labels = "/metadata/labels";
                let same = fields.iter().all(|f| cur.get(*f) == desired.get(*f))
                    && cur.pointer(labels) == desired.pointer(labels);
                if !same {
                    let mut next = Value::clone(&cur);
                    for f in fields {
                        next[*f] = desired[*f].clone();
                    }
                    next["metadata"]["labels"] = desired["metadata"]["labels"].clone();
                    let _ = self.cluster.update(
                        def,
                        &def.versions[0],
                        ns,
                        name,
                        next,
                        Sub::Main,
                        &opts,
                    );
                }
            }
        }
    }
}
