//! BlueGreenRelease manifests with instant pods and Jobs (kubesim annotations), and the
//! bench's own writes: bulk creation and image changes with bounded concurrency.

use std::sync::Arc;

use bluegreen_crd::BlueGreenRelease;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::BenchResult;

/// Field manager of every bench write; the request counts leave these out.
pub const BENCH_MANAGER: &str = "bluegreen-bench";

pub const IMAGE: &str = "registry.example/bench-app";

/// The shape of a benchmark release.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub replicas: i32,
    pub smoke_test: bool,
    pub scale_down_delay_seconds: i32,
}

/// `<IMAGE>:<version>`.
pub fn image(version: &str) -> String {
    format!("{IMAGE}:{version}")
}

/// A release named `name` whose Service is `name` (preview `name-preview`), running
/// `version`; pods are ready at once and the smoke test (if any) succeeds at once.
pub fn manifest(name: &str, version: &str, shape: Shape) -> Value {
    let mut spec = json!({
        "replicas": shape.replicas,
        "template": {
            "metadata": {
                "labels": {"app": name},
                "annotations": {"kubesim.dev/ready-after-ms": "0"}
            },
            "spec": {"containers": [{
                "name": "app",
                "image": image(version),
                "ports": [{"containerPort": 8080}]
            }]}
        },
        "service": {"name": name, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        "promotion": {"mode": "Auto"},
        "scaleDownDelaySeconds": shape.scale_down_delay_seconds,
    });
    if shape.smoke_test {
        spec["smokeTests"] = json!([{
            "name": "smoke",
            "timeoutSeconds": 120,
            "template": {
                "metadata": {"annotations": {"kubesim.dev/run-ms": "0"}},
                "spec": {"containers": [{
                    "name": "curl",
                    "image": "curlimages/curl:8.10.1",
                    "command": ["sh", "-c", "curl -fsS \"$BLUEGREEN_PREVIEW_URL/\""]
                }]}
            }
        }]);
    }
    json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// `r-00042`: sortable names.
pub fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}")
}

fn api(client: &Client, ns: &str) -> Api<BlueGreenRelease> {
    Api::namespaced(client.clone(), ns)
}

/// Runs `op(i)` for every `i` in `range` with at most `concurrency` in flight.
async fn bounded<F, Fut>(
    range: std::ops::Range<usize>,
    concurrency: usize,
    op: F,
) -> BenchResult<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for i in range {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let fut = op(i);
        tasks.spawn(async move {
            let result = fut.await;
            drop(permit);
            result
        });
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Creates releases `prefix-{i}` for `i` in `range`.
pub async fn create_many(
    client: &Client,
    ns: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
    version: &str,
    shape: Shape,
    concurrency: usize,
) -> BenchResult<()> {
    let api = api(client, ns);
    let params = PostParams {
        field_manager: Some(BENCH_MANAGER.into()),
        ..PostParams::default()
    };
    bounded(range, concurrency, |i| {
        let (api, params) = (api.clone(), params.clone());
        let name = name(prefix, i);
        let body = manifest(&name, version, shape);
        async move {
            let release: BlueGreenRelease =
                serde_json::from_value(body).map_err(|e| e.to_string())?;
            api.create(&params, &release)
                .await
                .map(|_| ())
                .map_err(|e| format!("create release {name}: {e}"))
        }
    })
    .await
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(BENCH_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Sets the application image of one release (a GitOps change of the spec).
pub async fn set_version(client: &Client, ns: &str, name: &str, version: &str) -> BenchResult<()> {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "app", "image": image(version), "ports": [{"containerPort": 8080}]
    }]}}}});
    api(client, ns)
        .patch(name, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("set the image of {name}: {e}"))
}

/// Sets the image of releases `prefix-{i}` for `i` in `range`, concurrently.
pub async fn set_version_many(
    client: &Client,
    ns: &str,
    prefix: &str,
    range: std::ops::Range<usize>,
    version: &str,
    concurrency: usize,
) -> BenchResult<()> {
    bounded(range, concurrency, |i| {
        let (client, ns, version) = (client.clone(), ns.to_string(), version.to_string());
        let name = name(prefix, i);
        async move { set_version(&client, &ns, &name, &version).await }
    })
    .await
}

/// Asks for a rollback through the action annotations.
pub async fn request_rollback(client: &Client, ns: &str, name: &str, id: &str) -> BenchResult<()> {
    let patch = json!({"metadata": {"annotations": {
        "bluegreen.dev/action": "rollback",
        "bluegreen.dev/action-id": id,
    }}});
    api(client, ns)
        .patch(name, &merge_params(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| format!("request a rollback of {name}: {e}"))
}
