//! Kubelet stand-in: pods start Running with an IP, then follow the scripted
//! behaviour in their `kubesim.dev/*` annotations.

use serde_json::Value;

use super::{Sim, Work};
use crate::meta;
use crate::script::{self, Script};

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
        let status = script::started(pod, "10.0.0.1", &ip);
        self.update_status(&self.pods, &ns, &name, KUBELET, |p| {
            if p.pointer("/status/podIP").is_some() {
                return;
            }
            p["status"] = status.clone();
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
        for (c, _) in &script::containers(pod) {
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
        match Script::of(pod) {
            Script::RunToCompletion { run, .. } => self.after(run, work(Step::Exit)),
            Script::Serve {
                ready_after: Some(ready),
                crash_after,
            } => {
                self.after(ready, work(Step::Ready));
                if let Some(crash) = crash_after {
                    self.after(crash, work(Step::Crash(1)));
                }
            }
            Script::Serve {
                ready_after: None, ..
            } => {}
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
                script::ready(&mut p["status"]);
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
                self.update_status(&self.pods, ns, name, KUBELET, |p| {
                    let pod_name = meta::name(p).to_string();
                    script::crashed(&mut p["status"], &pod_name, n);
                });
                self.after(
                    script::crash_backoff(n),
                    Work::Pod {
                        ns: ns.into(),
                        name: name.into(),
                        uid: uid.into(),
                        step: Step::Crash(n + 1),
                    },
                );
            }
            Step::Exit => {
                let Script::RunToCompletion { exit_code, .. } = Script::of(&pod) else {
                    return;
                };
                self.update_status(&self.pods, ns, name, KUBELET, |p| {
                    script::exited(&mut p["status"], exit_code);
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
