//! Plays every pod bound to the node through its script, and finishes deletions.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, Preconditions},
    runtime::watcher,
};
use serde_json::{Value, json};

use super::{KubeletConfig, KubeletError};
use crate::script::{self, Script};

/// What this process already acted on, by pod uid: a watch repeats objects.
#[derive(Default)]
struct Seen {
    started: HashSet<String>,
    deleted: HashSet<String>,
}

struct Node {
    client: Client,
    logs: PodLogs,
    host_ip: String,
    next_ip: AtomicU32,
    seen: Mutex<Seen>,
}

/// The scripted log of each pod on the node, by (namespace, name), for `containerLogs`.
pub type PodLogs = Arc<Mutex<HashMap<(String, String), String>>>;

pub async fn play(
    client: Client,
    config: &KubeletConfig,
    logs: PodLogs,
) -> Result<(), KubeletError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let node = Arc::new(Node {
        client,
        logs,
        host_ip: config.addr.ip().to_string(),
        // Pod IPs from 10.244.0.0/16, starting where a restarted kubelet is unlikely to
        // have been.
        next_ip: AtomicU32::new(jiff::Timestamp::now().as_second().unsigned_abs() as u32 % 40_000),
        seen: Mutex::default(),
    });
    let selector = format!("spec.nodeName={}", config.node_name);
    let mut events = watcher(pods, watcher::Config::default().fields(&selector)).boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                Arc::clone(&node).observe(pod);
            }
            Ok(_) => {}
            // The watcher re-lists on its own; a hiccup of the API server is logged only.
            Err(e) => tracing::warn!(error = %e, "pod watch"),
        }
    }
    Ok(())
}

impl Node {
    fn observe(self: Arc<Self>, pod: Pod) {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let value = serde_json::to_value(&pod).expect("a Pod is JSON");
        self.logs
            .lock()
            .expect("logs")
            .insert(key, script::log(&value));
        let uid = pod.uid().unwrap_or_default();
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        let started = pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some());
        {
            let mut seen = self.seen.lock().expect("seen");
            if deleting {
                if !seen.deleted.insert(uid) {
                    return;
                }
            } else if started
                || matches!(phase.as_deref(), Some("Succeeded" | "Failed"))
                || !seen.started.insert(uid)
            {
                return;
            }
        }
        tokio::spawn(async move {
            let name = pod.name_any();
            let result = if deleting {
                self.finish_deletion(&pod).await
            } else {
                self.run(pod).await
            };
            if let Err(e) = result {
                tracing::warn!(pod = %name, error = %e, "kubelet");
            }
        });
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }

    fn pod_ip(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed) % 65_000 + 2;
        format!("10.244.{}.{}", n / 256, n % 256)
    }

    /// The containers stopped at once: the pod object goes (a finalizer may keep it).
    async fn finish_deletion(&self, pod: &Pod) -> Result<(), kube::Error> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api(pod).delete(&pod.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn run(&self, pod: Pod) -> Result<(), kube::Error> {
        let value = serde_json::to_value(&pod).expect("a Pod is JSON");
        let mut status = script::started(&value, &self.host_ip, &self.pod_ip());
        self.write(&pod, &status).await?;
        match Script::of(&value) {
            Script::RunToCompletion { run, exit_code } => {
                tokio::time::sleep(run).await;
                script::exited(&mut status, exit_code);
                self.write(&pod, &status).await
            }
            Script::Serve {
                ready_after: None, ..
            } => Ok(()),
            Script::Serve {
                ready_after: Some(ready),
                crash_after,
            } => {
                tokio::time::sleep(ready).await;
                script::ready(&mut status);
                self.write(&pod, &status).await?;
                let Some(crash) = crash_after else {
                    return Ok(());
                };
                tokio::time::sleep(crash.saturating_sub(ready)).await;
                for n in 1.. {
                    script::crashed(&mut status, &pod.name_any(), n);
                    self.write(&pod, &status).await?;
                    tokio::time::sleep(script::crash_backoff(n)).await;
                }
                Ok(())
            }
        }
    }

    /// Writes the pod's whole status. No read first: the Node authorizer learns that a pod
    /// is bound to this node a moment after the binding, so a read (or write) right away
    /// may be refused with 403 — a write is retried briefly, as the kubelet's status
    /// manager does. The uid in the patch keeps it off a new pod of the same name.
    async fn write(&self, pod: &Pod, status: &Value) -> Result<(), kube::Error> {
        let api = self.api(pod);
        let name = pod.name_any();
        let patch = json!({"metadata": {"uid": pod.uid()}, "status": status});
        let mut attempt = 0;
        loop {
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone, or replaced by a pod of the same name: nothing to report.
                Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409 | 422) => return Ok(()),
                Err(kube::Error::Api(s)) if (s.code == 403 || s.code >= 500) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
