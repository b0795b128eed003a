//! Job controller: one pod at a time, retries up to backoffLimit, activeDeadlineSeconds,
//! and the 1.31+ terminal conditions (SuccessCriteriaMet/Complete, FailureTarget/Failed).

use std::time::Duration;

use serde_json::{Value, json};

use super::pod::is_ready;
use super::{Sim, Work, controller_ref, gr};
use crate::cluster::WriteOpts;
use crate::meta;

const MANAGER: &str = "kube-controller-manager";

fn has_condition(job: &Value, t: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

fn cond(t: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": now, "lastTransitionTime": now})
}

impl Sim {
    pub(super) fn reconcile_job(&self, ns: &str, name: &str) {
        let Some(job) = self.cluster.get_stored(&self.jobs.storage, ns, name) else {
            return;
        };
        if job.pointer("/metadata/deletionTimestamp").is_some()
            || job.pointer("/spec/suspend") == Some(&json!(true))
        {
            return;
        }
        let uid = meta::uid(&job).to_string();
        let pods = self.cluster.dependents(&uid, &gr("", "pods"));
        let phase = |p: &Value| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string()
        };
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count() as i64;
        let active: Vec<&Value> = pods
            .iter()
            .map(|p| &**p)
            .filter(|p| {
                !matches!(phase(p).as_str(), "Succeeded" | "Failed")
                    && p.pointer("/metadata/deletionTimestamp").is_none()
            })
            .collect();
        let finished = has_condition(&job, "Complete") || has_condition(&job, "Failed");
        let now = meta::now();
        let start = job
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| now.clone());
        let completions = job
            .pointer("/spec/completions")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let backoff = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6);
        let deadline = job
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64);
        let elapsed = meta::parse_time(&start)
            .map(|t| jiff::Timestamp::now().as_second() - t.as_second())
            .unwrap_or(0);

        let mut terminal: Option<(Vec<Value>, bool)> = None;
        if !finished {
            if succeeded >= completions {
                terminal = Some((
                    vec![
                        cond(
                            "SuccessCriteriaMet",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                            &now,
                        ),
                        cond(
                            "Complete",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                            &now,
                        ),
                    ],
                    true,
                ));
            } else if failed > backoff {
                terminal = Some((
                    vec![
                        cond(
                            "FailureTarget",
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                            &now,
                        ),
                        cond(
                            "Failed",
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                            &now,
                        ),
                    ],
                    false,
                ));
            } else if deadline.is_some_and(|d| elapsed >= d) {
                terminal = Some((
                    vec![
                        cond(
                            "FailureTarget",
                            "DeadlineExceeded",
                            "Job was active longer than specified deadline",
                            &now,
                        ),
                        cond(
                            "Failed",
                            "DeadlineExceeded",
                            "Job was active longer than specified deadline",
                            &now,
                        ),
                    ],
                    false,
                ));
            }
        }
        let mut active_count = active.len() as i64;
        if finished || terminal.is_some() {
            for p in &active {
                self.delete_quietly(&self.pods, ns, meta::name(p));
            }
            active_count = 0;
        } else if active.is_empty() {
            if self.create_job_pod(&job) {
                active_count = 1;
            }
            if let Some(d) = deadline {
                let left = (d - elapsed).max(0) as u64;
                self.after(
                    Duration::from_millis(left * 1000 + 50),
                    Work::Job {
                        ns: ns.into(),
                        name: name.into(),
                    },
                );
            }
        }
        let ready = active.iter().filter(|p| is_ready(p)).count();
        let events = terminal.as_ref().map(|(_, ok)| *ok);
        self.update_status(&self.jobs, ns, name, MANAGER, |o| {
            let s = &mut o["status"];
            if !s.is_object() {
                *s = json!({});
            }
            s["startTime"] = json!(start);
            s["active"] = json!(active_count);
            s["succeeded"] = json!(succeeded);
            s["failed"] = json!(failed);
            s["ready"] = json!(ready);
            s["terminating"] = json!(0);
            s["uncountedTerminatedPods"] = json!({});
            for k in ["active", "succeeded", "failed"] {
                if s[k] == json!(0) {
                    s.as_object_mut().expect("object").remove(k);
                }
            }
            if let Some((conds, ok)) = &terminal {
                s["conditions"] = json!(conds);
                if *ok {
                    s["completionTime"] = json!(now);
                }
            }
        });
        match events {
            Some(true) => self.record(
                &job,
                "Job",
                "Normal",
                "Completed",
                "Job completed".into(),
                "job-controller",
            ),
            Some(false) => self.record(
                &job,
                "Job",
                "Warning",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".into(),
                "job-controller",
            ),
            None => {}
        }
    }

    fn create_job_pod(&self, job: &Value) -> bool {
        let ns = meta::namespace(job);
        let tmpl = job
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut metadata = tmpl.get("metadata").cloned().unwrap_or_else(|| json!({}));
        metadata["name"] = json!(format!("{}-{}", meta::name(job), meta::random_suffix(5)));
        metadata["namespace"] = json!(ns);
        metadata["ownerReferences"] = json!([controller_ref(job, "batch/v1", "Job")]);
        let mut spec = tmpl.get("spec").cloned().unwrap_or_else(|| json!({}));
        if spec.get("restartPolicy").is_none() {
            spec["restartPolicy"] = json!("Never");
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
        match self
            .cluster
            .create(&self.pods, "v1", ns, pod, &WriteOpts::manager(MANAGER))
        {
            Ok(p) => {
                self.record(
                    job,
                    "Job",
                    "Normal",
                    "SuccessfulCreate",
                    format!("Created pod: {}", meta::name(&p)),
                    "job-controller",
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "creating pod for Job");
                false
            }
        }
    }
}
