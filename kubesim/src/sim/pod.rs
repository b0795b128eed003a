//! Kubelet stand-in: pods start Running with an IP, then follow the scripted
//! behaviour in their `kubesim.dev/*` annotations.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Sim, Work, annotation_ms};
use crate::meta;

/// Timed transitions of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ready,
    /// The n-th crash of a crash-looping pod.
    Crash(u32),
    /// A run-to-completion (Job) pod exits.
    Exit,
}

const KUBELET: &str = "kubelet";

fn is_job_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|o| o.get("kind") == Some(&json!("Job"))))
        || matches!(
            pod.pointer("/spec/restartPolicy").and_then(Value::as_str),
            Some("Never" | "OnFailure")
        )
}

fn container_names(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("main")
                    .to_string(),
                c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn condition(t: &str, ok: bool, now: &str) -> Value {
    json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now})
}

/// Sets Ready/ContainersReady, keeping lastTransitionTime when unchanged.
fn set_ready(status: &mut Value, ready: bool) {
    let now = meta::now();
    let conds = status["conditions"].as_array_mut();
    let Some(conds) = conds else { return };
    for c in conds.iter_mut() {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            let want = if ready { "True" } else { "False" };
            if c["status"] != want {
                c["status"] = json!(want);
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
}

impl Sim {
    pub(super) fn start_pod(&self, pod: &Value) {
        let (ns, name, uid) = (
            meta::namespace(pod).to_string(),
            meta::name(pod).to_string(),
            meta::uid(pod).to_string(),
        );
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let ip = self.cluster.ips.pod_ip();
        let now = meta::now();
        let containers = container_names(pod);
        self.update_status(&self.pods, &ns, &name, KUBELET, |p| {
            if p.pointer("/status/podIP").is_some() {
                return;
            }
            p["status"] = json!({
                "phase": "Running",
                "hostIP": "10.0.0.1",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": now,
                "qosClass": "BestEffort",
                "conditions": [
                    condition("PodReadyToStartContainers", true, &now),
                    condition("Initialized", true, &now),
                    condition("Ready", false, &now),
                    condition("ContainersReady", false, &now),
                    condition("PodScheduled", true, &now),
                ],
                "containerStatuses": containers.iter().map(|(n, image)| json!({
                    "name": n, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": now}}, "containerID": format!("kubesim://{}", meta::random_suffix(12)),
                })).collect::<Vec<_>>(),
            });
        });
        // What `kubectl describe pod` shows on a real cluster, minus image pulls.
        self.record(
            pod,
            "Pod",
            "Normal",
            "Scheduled",
            format!("Successfully assigned {ns}/{name} to kubesim-node"),
            "default-scheduler",
        );
        for (c, _) in &containers {
            self.record(
                pod,
                "Pod",
                "Normal",
                "Started",
                format!("Started container {c}"),
                KUBELET,
            );
        }
        let work = |step| Work::Pod {
            ns: ns.clone(),
            name: name.clone(),
            uid: uid.clone(),
            step,
        };
        if is_job_pod(pod) {
            let run = annotation_ms(pod, "kubesim.dev/run-ms").unwrap_or(100);
            self.after(Duration::from_millis(run), work(Step::Exit));
            return;
        }
        if meta::annotation(pod, "kubesim.dev/never-ready") == Some("true") {
            return;
        }
        let ready = annotation_ms(pod, "kubesim.dev/ready-after-ms").unwrap_or(100);
        self.after(Duration::from_millis(ready), work(Step::Ready));
        if let Some(crash) = annotation_ms(pod, "kubesim.dev/crash-after-ms") {
            self.after(
                Duration::from_millis(ready.max(crash)),
                work(Step::Crash(1)),
            );
        }
    }

    pub(super) fn pod_step(&self, ns: &str, name: &str, uid: &str, step: Step) {
        let Some(pod) = self.cluster.get_stored(&self.pods.storage, ns, name) else {
            return;
        };
        if meta::uid(&pod) != uid || pod.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        match step {
            Step::Ready => self.update_status(&self.pods, ns, name, KUBELET, |p| {
                if p.pointer("/status/containerStatuses/0/state/waiting")
                    .is_some()
                {
                    return; // already crashed
                }
                set_ready(&mut p["status"], true);
                for c in p["status"]["containerStatuses"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    c["ready"] = json!(true);
                }
            }),
            Step::Crash(n) => {
                self.record(
                    &pod,
                    "Pod",
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container".to_string(),
                    KUBELET,
                );
                let now = meta::now();
                self.update_status(&self.pods, ns, name, KUBELET, |p| {
                    set_ready(&mut p["status"], false);
                    let pod_name = meta::name(p).to_string();
                    for c in p["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                        c["ready"] = json!(false);
                        c["started"] = json!(false);
                        c["restartCount"] = json!(n);
                        c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}});
                        c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
                            "message": format!("back-off restarting failed container {} in pod {pod_name}", c["name"].as_str().unwrap_or(""))}});
                    }
                });
                // Back-off doubles like the kubelet's, capped so tests see restarts grow.
                let next = Duration::from_millis((500u64 << n.min(5)).min(10_000));
                self.after(
                    next,
                    Work::Pod {
                        ns: ns.into(),
                        name: name.into(),
                        uid: uid.into(),
                        step: Step::Crash(n + 1),
                    },
                );
            }
            Step::Exit => {
                let code: i64 = meta::annotation(&pod, "kubesim.dev/exit-code")
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0);
                let now = meta::now();
                self.update_status(&self.pods, ns, name, KUBELET, |p| {
                    p["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
                    set_ready(&mut p["status"], false);
                    let started = p["status"]["startTime"].clone();
                    for c in p["status"]["containerStatuses"].as_array_mut().into_iter().flatten() {
                        c["ready"] = json!(false);
                        c["started"] = json!(false);
                        c["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                            "startedAt": started.clone(), "finishedAt": now}});
                    }
                });
            }
        }
    }
}

pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// When the pod last became Ready.
pub fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(meta::parse_time)
}
