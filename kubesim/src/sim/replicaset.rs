//! ReplicaSet controller: keeps `spec.replicas` pods from the template and reports
//! replicas, fullyLabeled, ready and available (honouring minReadySeconds).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::pod::{is_ready, ready_since};
use super::{Sim, Work, controller_ref, gr};
use crate::cluster::WriteOpts;
use crate::meta;
use crate::selector::LabelSelector;

const MANAGER: &str = "kube-controller-manager";

impl Sim {
    pub(super) fn reconcile_replicaset(&self, ns: &str, name: &str) {
        let Some(rs) = self.cluster.get_stored(&self.rs.storage, ns, name) else {
            return;
        };
        if rs.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let uid = meta::uid(&rs).to_string();
        let mut pods: Vec<Arc<Value>> = self
            .cluster
            .dependents(&uid, &gr("", "pods"))
            .into_iter()
            .filter(|p| {
                p.pointer("/metadata/deletionTimestamp").is_none()
                    && !matches!(
                        p.pointer("/status/phase").and_then(Value::as_str),
                        Some("Succeeded" | "Failed")
                    )
            })
            .collect();
        let desired = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        if pods.len() < desired {
            for _ in pods.len()..desired {
                if let Some(p) = self.create_rs_pod(&rs) {
                    pods.push(p);
                }
            }
        } else if pods.len() > desired {
            // Delete not-ready pods first, then the newest, as the ReplicaSet controller does.
            pods.sort_by(|a, b| {
                is_ready(a).cmp(&is_ready(b)).then_with(|| {
                    let t = |p: &Value| {
                        p.pointer("/metadata/creationTimestamp")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    };
                    t(b).cmp(&t(a))
                })
            });
            let extra: Vec<Arc<Value>> = pods.drain(..pods.len() - desired).collect();
            for p in extra {
                self.delete_quietly(&self.pods, ns, meta::name(&p));
            }
        }
        let template_labels = rs
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let fully = LabelSelector::from_map(&template_labels);
        let min_ready = rs
            .pointer("/spec/minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let now = jiff::Timestamp::now();
        let mut available = 0;
        let mut recheck: Option<i64> = None;
        for p in pods.iter().filter(|p| is_ready(p)) {
            let since = ready_since(p)
                .map(|t| now.as_second() - t.as_second())
                .unwrap_or(0);
            if since >= min_ready {
                available += 1;
            } else {
                let wait = min_ready - since;
                recheck = Some(recheck.map_or(wait, |r| r.min(wait)));
            }
        }
        if let Some(secs) = recheck {
            // Wake up when the next pod crosses minReadySeconds.
            self.after(
                Duration::from_millis(secs as u64 * 1000 + 50),
                Work::ReplicaSet {
                    ns: ns.into(),
                    name: name.into(),
                },
            );
        }
        let status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": pods.iter().filter(|p| fully.matches(p)).count(),
            "readyReplicas": pods.iter().filter(|p| is_ready(p)).count(),
            "availableReplicas": available,
            "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
        });
        self.update_status(&self.rs, ns, name, MANAGER, |o| {
            let mut s = status.clone();
            // Omit zero counters like the real controller's omitempty fields.
            if let Some(m) = s.as_object_mut() {
                m.retain(|k, v| k == "replicas" || k == "observedGeneration" || v != &json!(0));
            }
            if let Some(conds) = o.pointer("/status/conditions") {
                s["conditions"] = conds.clone();
            }
            o["status"] = s;
        });
    }

    fn create_rs_pod(&self, rs: &Value) -> Option<Arc<Value>> {
        let ns = meta::namespace(rs);
        let tmpl = rs
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut metadata = tmpl.get("metadata").cloned().unwrap_or_else(|| json!({}));
        metadata["name"] = json!(format!("{}-{}", meta::name(rs), meta::random_suffix(5)));
        metadata["namespace"] = json!(ns);
        metadata["ownerReferences"] = json!([controller_ref(rs, "apps/v1", "ReplicaSet")]);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": tmpl.get("spec").cloned().unwrap_or_else(|| json!({}))});
        match self
            .cluster
            .create(&self.pods, "v1", ns, pod, &WriteOpts::manager(MANAGER))
        {
            Ok(p) => {
                self.record(
                    rs,
                    "ReplicaSet",
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", meta::name(&p)),
                    "replicaset-controller",
                );
                Some(p)
            }
            Err(e) => {
                tracing::warn!(error = %e, "creating pod for ReplicaSet");
                None
            }
        }
    }
}
