//! Deployment controller: one ReplicaSet per pod-template hash; the new one is
//! scaled to `spec.replicas`, old ones to zero once the new one is available (at
//! once for `Recreate`). Status and conditions as `kubectl rollout status` and
//! Helm's readiness checks read them.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::{Sim, controller_ref, gr};
use crate::cluster::{Sub, WriteOpts};
use crate::meta;

const MANAGER: &str = "kube-controller-manager";

/// A stable short hash of the pod template, like `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    let mut h = DefaultHasher::new();
    template.to_string().hash(&mut h);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn revision(rs: &Value) -> u64 {
    meta::annotation(rs, "deployment.kubernetes.io/revision")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A ReplicaSet's pod template without the label the controller added to it.
fn template_of(rs: &Value) -> Value {
    let mut t = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    t
}

/// A template without empty maps, lists and nulls: typed clients (`kubectl rollout
/// undo`) add `resources: {}` and the like, which a real apiserver's defaulting hides.
fn comparable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), comparable(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(comparable).collect()),
        other => other.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn int(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

impl Sim {
    pub(super) fn reconcile_deployment(&self, ns: &str, name: &str) {
        let Some(d) = self.cluster.get_stored(&self.deployments.storage, ns, name) else {
            return;
        };
        if d.pointer("/metadata/deletionTimestamp").is_some()
            || d.pointer("/spec/paused") == Some(&json!(true))
        {
            return;
        }
        let desired = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let template = d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = template_hash(&template);
        let owned = self
            .cluster
            .dependents(meta::uid(&d), &gr("apps", "replicasets"));
        // A ReplicaSet that already runs this template (e.g. after `rollout undo`) is
        // reused, as the deployment controller does.
        let hashed = format!("{name}-{hash}");
        let existing = owned.iter().find(|r| {
            meta::name(r) == hashed || comparable(&template_of(r)) == comparable(&template)
        });
        let new_name = existing.map_or(hashed.clone(), |r| meta::name(r).to_string());
        let opts = WriteOpts::manager(MANAGER);
        let new_rs = match existing {
            Some(r) => {
                let mut next = Value::clone(r);
                next["spec"]["replicas"] = json!(desired);
                // A reused ReplicaSet becomes the newest revision again.
                let newest = revision(r)
                    > owned
                        .iter()
                        .filter(|o| meta::name(o) != new_name)
                        .map(|r| revision(r))
                        .max()
                        .unwrap_or(0);
                if !newest {
                    let max = owned.iter().map(|r| revision(r)).max().unwrap_or(0);
                    next["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                        json!((max + 1).to_string());
                }
                if next != **r {
                    let _ =
                        self.cluster
                            .update(&self.rs, "v1", ns, &new_name, next, Sub::Main, &opts);
                }
                r.clone()
            }
            None => {
                let mut tmpl = template.clone();
                tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut selector = d
                    .pointer("/spec/selector")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                selector["matchLabels"]["pod-template-hash"] = json!(hash);
                // Revisions count up across the Deployment's ReplicaSets (rollout history).
                let revision = owned.iter().map(|r| revision(r)).max().unwrap_or(0) + 1;
                let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": new_name, "namespace": ns, "labels": tmpl["metadata"]["labels"].clone(),
                        "annotations": {"deployment.kubernetes.io/revision": revision.to_string()},
                        "ownerReferences": [controller_ref(&d, "apps/v1", "Deployment")]},
                    "spec": {"replicas": desired, "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                        "selector": selector, "template": tmpl}});
                match self.cluster.create(&self.rs, "v1", ns, rs, &opts) {
                    Ok(r) => {
                        self.record(
                            &d,
                            "Deployment",
                            "Normal",
                            "ScalingReplicaSet",
                            format!("Scaled up replica set {new_name} from 0 to {desired}"),
                            "deployment-controller",
                        );
                        r
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "creating ReplicaSet for Deployment");
                        return;
                    }
                }
            }
        };
        let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let new_available = int(&new_rs, "/status/availableReplicas") >= desired;
        let old: Vec<&Value> = owned
            .iter()
            .map(|r| &**r)
            .filter(|r| meta::name(r) != new_name)
            .collect();
        for r in &old {
            if (recreate || new_available) && int(r, "/spec/replicas") != 0 {
                let mut next = (*r).clone();
                next["spec"]["replicas"] = json!(0);
                let _ =
                    self.cluster
                        .update(&self.rs, "v1", ns, meta::name(r), next, Sub::Main, &opts);
            }
        }
        let all: Vec<&Value> = old
            .iter()
            .copied()
            .chain(std::iter::once(&*new_rs))
            .collect();
        let sum = |ptr: &str| all.iter().map(|r| int(r, ptr)).sum::<i64>();
        let (replicas, ready, available) = (
            sum("/status/replicas"),
            sum("/status/readyReplicas"),
            sum("/status/availableReplicas"),
        );
        let updated = int(&new_rs, "/status/replicas");
        let now = meta::now();
        let cond = |t: &str, ok: bool, reason: &str, message: String| {
            json!({"type": t, "status": if ok { "True" } else { "False" }, "reason": reason, "message": message,
                   "lastUpdateTime": now, "lastTransitionTime": now})
        };
        let available_ok = available >= desired;
        let conditions = json!([
            cond(
                "Available",
                available_ok,
                if available_ok {
                    "MinimumReplicasAvailable"
                } else {
                    "MinimumReplicasUnavailable"
                },
                format!(
                    "Deployment {}.",
                    if available_ok {
                        "has minimum availability"
                    } else {
                        "does not have minimum availability"
                    }
                )
            ),
            cond(
                "Progressing",
                true,
                if new_available {
                    "NewReplicaSetAvailable"
                } else {
                    "ReplicaSetUpdated"
                },
                format!(
                    "ReplicaSet \"{new_name}\" {}.",
                    if new_available {
                        "has successfully progressed"
                    } else {
                        "is progressing"
                    }
                )
            ),
        ]);
        let generation = d
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        self.update_status(&self.deployments, ns, name, MANAGER, |o| {
            let mut s = json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": updated,
                "readyReplicas": ready, "availableReplicas": available});
            if desired > available {
                s["unavailableReplicas"] = json!(desired - available);
            }
            // Keep transition times when a condition's status did not change.
            let old_conds = o.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut conds = conditions.clone();
            for c in conds.as_array_mut().into_iter().flatten() {
                if let Some(prev) = old_conds.iter().find(|p| p["type"] == c["type"]) {
                    if prev["status"] == c["status"] && prev["reason"] == c["reason"] {
                        *c = prev.clone();
                    } else if prev["status"] == c["status"] {
                        c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
                    }
                }
            }
            s["conditions"] = conds;
            if let Some(m) = s.as_object_mut() {
                m.retain(|_, v| v != &json!(0));
            }
            o["status"] = s;
        });
    }
}
