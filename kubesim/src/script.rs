//! What a pod's `kubesim.dev/*` annotations script, and the pod statuses that play it out.
//!
//! Shared by kubesim's own kubelet stand-in (`sim::pod`) and by `kubesim kubelet`, the
//! simulated node of the upstream control plane, so a scenario behaves the same on both.

use std::time::Duration;

use serde_json::{Value, json};

use crate::meta;

/// What a pod does once it is bound to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// A run-to-completion (Job) pod: runs for `run`, then exits with `exit_code`.
    RunToCompletion { run: Duration, exit_code: i64 },
    /// A serving pod: Ready after `ready_after` (never, when `None`), and crash-looping
    /// from `crash_after` on, when set.
    Serve {
        ready_after: Option<Duration>,
        crash_after: Option<Duration>,
    },
}

/// Defaults, as kubesim documents them: pods are ready and Jobs finish after 100 ms.
const DEFAULT_MS: u64 = 100;

impl Script {
    pub fn of(pod: &Value) -> Script {
        if is_job_pod(pod) {
            return Script::RunToCompletion {
                run: Duration::from_millis(
                    annotation_ms(pod, "kubesim.dev/run-ms").unwrap_or(DEFAULT_MS),
                ),
                exit_code: meta::annotation(pod, "kubesim.dev/exit-code")
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap_or(0),
            };
        }
        let ready = annotation_ms(pod, "kubesim.dev/ready-after-ms").unwrap_or(DEFAULT_MS);
        let never = meta::annotation(pod, "kubesim.dev/never-ready") == Some("true");
        Script::Serve {
            ready_after: (!never).then(|| Duration::from_millis(ready)),
            crash_after: annotation_ms(pod, "kubesim.dev/crash-after-ms")
                .map(|crash| Duration::from_millis(ready.max(crash))),
        }
    }
}

/// The log a pod's containers print (`pods/log`, the kubelet's `containerLogs`).
pub fn log(pod: &Value) -> String {
    meta::annotation(pod, "kubesim.dev/log")
        .unwrap_or_default()
        .to_string()
}

/// The back-off before the n-th restart of a crash-looping pod: doubling like the
/// kubelet's, capped so tests see restarts grow.
pub fn crash_backoff(n: u32) -> Duration {
    Duration::from_millis((500u64 << n.min(5)).min(10_000))
}

pub fn annotation_ms(obj: &Value, key: &str) -> Option<u64> {
    meta::annotation(obj, key).and_then(|v| v.trim().parse().ok())
}

fn is_job_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|o| o.get("kind") == Some(&json!("Job"))))
        || matches!(
            pod.pointer("/spec/restartPolicy").and_then(Value::as_str),
            Some("Never" | "OnFailure")
        )
}

/// (name, image) of each container.
pub fn containers(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let field = |key: &str, default: &str| {
                c.get(key)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string()
            };
            (field("name", "main"), field("image", ""))
        })
        .collect()
}

fn condition(t: &str, ok: bool, now: &str) -> Value {
    json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now})
}

/// The status of a pod whose containers just started: Running with an IP, not yet Ready.
pub fn started(pod: &Value, host_ip: &str, pod_ip: &str) -> Value {
    let now = meta::now();
    json!({
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "qosClass": "BestEffort",
        "conditions": [
            condition("PodReadyToStartContainers", true, &now),
            condition("Initialized", true, &now),
            condition("Ready", false, &now),
            condition("ContainersReady", false, &now),
            condition("PodScheduled", true, &now),
        ],
        "containerStatuses": containers(pod).iter().map(|(n, image)| json!({
            "name": n, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": now}}, "containerID": format!("kubesim://{}", meta::random_suffix(12)),
        })).collect::<Vec<_>>(),
    })
}

/// Sets Ready/ContainersReady, keeping lastTransitionTime when unchanged.
fn set_ready(status: &mut Value, ready: bool) {
    let now = meta::now();
    let Some(conds) = status["conditions"].as_array_mut() else {
        return;
    };
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

fn container_statuses(status: &mut Value) -> impl Iterator<Item = &mut Value> {
    status["containerStatuses"]
        .as_array_mut()
        .into_iter()
        .flatten()
}

/// The containers passed their readiness: Ready, unless the pod already crashed.
pub fn ready(status: &mut Value) {
    if status
        .pointer("/containerStatuses/0/state/waiting")
        .is_some()
    {
        return;
    }
    set_ready(status, true);
    for c in container_statuses(status) {
        c["ready"] = json!(true);
    }
}

/// The n-th crash of a crash-looping pod.
pub fn crashed(status: &mut Value, pod_name: &str, n: u32) {
    let now = meta::now();
    set_ready(status, false);
    for c in container_statuses(status) {
        c["ready"] = json!(false);
        c["started"] = json!(false);
        c["restartCount"] = json!(n);
        c["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}});
        c["state"] = json!({"waiting": {"reason": "CrashLoopBackOff",
            "message": format!("back-off restarting failed container {} in pod {pod_name}", c["name"].as_str().unwrap_or(""))}});
    }
}

/// A run-to-completion pod exited with `code`.
pub fn exited(status: &mut Value, code: i64) {
    let now = meta::now();
    status["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
    set_ready(status, false);
    let started = status["startTime"].clone();
    for c in container_statuses(status) {
        c["ready"] = json!(false);
        c["started"] = json!(false);
        c["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": started.clone(), "finishedAt": now}});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_script_a_serving_pod() {
        let pod = json!({"metadata": {"annotations": {
            "kubesim.dev/ready-after-ms": "250", "kubesim.dev/crash-after-ms": "100"}}});
        assert_eq!(
            Script::of(&pod),
            Script::Serve {
                ready_after: Some(Duration::from_millis(250)),
                crash_after: Some(Duration::from_millis(250)),
            }
        );
        let never = json!({"metadata": {"annotations": {"kubesim.dev/never-ready": "true"}}});
        assert!(matches!(
            Script::of(&never),
            Script::Serve {
                ready_after: None,
                ..
            }
        ));
    }

    #[test]
    fn a_job_pod_runs_then_exits_with_its_code() {
        let pod = json!({
            "metadata": {"annotations": {"kubesim.dev/exit-code": "3", "kubesim.dev/run-ms": "5"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "curl"}]}
        });
        assert_eq!(
            Script::of(&pod),
            Script::RunToCompletion {
                run: Duration::from_millis(5),
                exit_code: 3
            }
        );
        let mut status = started(&pod, "127.0.0.1", "10.244.0.9");
        assert_eq!(status["podIPs"][0]["ip"], "10.244.0.9");
        exited(&mut status, 3);
        assert_eq!(status["phase"], "Failed");
        assert_eq!(
            status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
    }

    #[test]
    fn a_crashed_pod_does_not_turn_ready() {
        let pod = json!({"spec": {"containers": [{"name": "web"}]}});
        let mut status = started(&pod, "127.0.0.1", "10.244.0.2");
        crashed(&mut status, "web-1", 1);
        ready(&mut status);
        assert_eq!(status["containerStatuses"][0]["ready"], false);
    }
}
