//! One scenario's cluster, controller-facing APIs and helpers around a release named
//! `shop`: the scenario test files share it.

use std::time::Duration;

use bluegreen_crd::{
    BlueGreenRelease, BlueGreenReleaseStatus, Color, Phase, labels, testing::TestRelease,
};
use k8s_openapi::api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Service};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use crate::{Env, eventually};

/// How long a scenario waits for any one outcome.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The release every scenario drives.
pub const RELEASE: &str = "shop";

/// A release with instant pods and one smoke test whose exit code and log are scripted.
pub fn release(image: &str, test_exit_code: i32) -> Value {
    let exit_code = test_exit_code.to_string();
    TestRelease::new(RELEASE, image)
        .replicas(2)
        .pod_annotation("kubesim.dev/ready-after-ms", "20")
        .set("/spec/scaleDownDelaySeconds", json!(300))
        .smoke_test_annotated(
            "smoke",
            &[
                ("kubesim.dev/run-ms", "20"),
                ("kubesim.dev/exit-code", &exit_code),
                (
                    "kubesim.dev/log",
                    "GET /checkout -> 500\nassertion failed: status == 200",
                ),
            ],
        )
        .json()
}

pub struct Fixture {
    pub env: Env,
    pub releases: Api<BlueGreenRelease>,
    pub services: Api<Service>,
    pub replica_sets: Api<ReplicaSet>,
    pub jobs: Api<Job>,
}

impl Fixture {
    pub async fn start(name: &str) -> Fixture {
        let env = Env::start(name).await.expect("cluster");
        let ns = env.namespace.clone();
        Fixture {
            releases: Api::namespaced(env.client.clone(), &ns),
            services: Api::namespaced(env.client.clone(), &ns),
            replica_sets: Api::namespaced(env.client.clone(), &ns),
            jobs: Api::namespaced(env.client.clone(), &ns),
            env,
        }
    }

    /// `kubectl apply -f -` of one manifest.
    pub fn apply(&self, manifest: &Value) {
        self.env
            .kubectl_with_stdin(&["apply", "-f", "-"], Some(&manifest.to_string()))
            .expect("kubectl apply");
    }

    /// The status of release `name` once `done` holds for it.
    pub async fn status_of_when(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&BlueGreenReleaseStatus) -> bool,
    ) -> BlueGreenReleaseStatus {
        eventually(what, TIMEOUT, || async {
            let release = self.releases.get(name).await.map_err(|e| e.to_string())?;
            let status = release.status.unwrap_or_default();
            if done(&status) {
                Ok(Some(status))
            } else {
                Err(format!("phase {:?}: {:?}", status.phase, status.message))
            }
        })
        .await
        .unwrap()
    }

    /// The status of `shop` once `done` holds for it.
    pub async fn status_when(
        &self,
        what: &str,
        done: impl Fn(&BlueGreenReleaseStatus) -> bool,
    ) -> BlueGreenReleaseStatus {
        self.status_of_when(RELEASE, what, done).await
    }

    pub async fn stable(&self, version: &str) -> BlueGreenReleaseStatus {
        self.status_when(&format!("Stable on {version}"), |s| {
            s.phase == Some(Phase::Stable) && s.active_version.as_deref() == Some(version)
        })
        .await
    }

    /// The (color, revision) the Service `shop` selects.
    pub async fn active_selector(&self) -> (String, String) {
        self.selector_of("shop").await
    }

    /// The (color, revision) a Service selects.
    pub async fn selector_of(&self, service: &str) -> (String, String) {
        let svc = self.services.get(service).await.unwrap();
        let selector = svc.spec.unwrap().selector.unwrap();
        (
            selector[labels::COLOR].clone(),
            selector[labels::REVISION].clone(),
        )
    }

    pub async fn rs_replicas(&self, color: Color) -> i32 {
        let rs = self
            .replica_sets
            .get(&format!("shop-{color}"))
            .await
            .unwrap();
        rs.spec.unwrap().replicas.unwrap_or(1)
    }

    /// Waits until the ReplicaSet of `color` asks for `replicas` pods.
    pub async fn wait_for_replicas(&self, color: Color, replicas: i32) {
        eventually(&format!("{color} at {replicas}"), TIMEOUT, || async {
            let now = self.rs_replicas(color).await;
            if now == replicas {
                Ok(Some(()))
            } else {
                Err(format!("{color} at {now}"))
            }
        })
        .await
        .unwrap();
    }

    /// Creates a Service as a user's tool would (field manager `helm`), before any release
    /// names it.
    pub async fn create_user_service(&self, manifest: Value) -> Service {
        let svc: Service = serde_json::from_value(manifest).expect("a Service manifest");
        let params = PostParams {
            field_manager: Some("helm".into()),
            ..Default::default()
        };
        self.services.create(&params, &svc).await.unwrap()
    }

    /// Asks for `verb` through the action annotations.
    pub async fn request(&self, verb: &str, id: &str) {
        let patch =
            json!({"metadata": {"annotations": {labels::ACTION: verb, labels::ACTION_ID: id}}});
        self.releases
            .patch(RELEASE, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    /// Writes the controller made (its field manager, or any write by its user agent).
    pub fn controller_writes(&self) -> Vec<kubesim::AuditEntry> {
        self.env
            .audit()
            .into_iter()
            .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
            .filter(|e| {
                e.field_manager == labels::FIELD_MANAGER || e.user_agent.contains("bluegreen")
            })
            .collect()
    }
}
