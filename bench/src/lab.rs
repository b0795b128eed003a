//! The in-process cluster the controller is measured against: kubesim, a kube-rs client,
//! the CRD, a store timeline, and waits that read stored state directly (no HTTP), so that
//! the bench's own polling never shows up in the audit log or competes with the controller.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client, Config};
use kubesim::GroupResource;
use serde_json::{Value, json};

use super::BenchResult;
use super::timeline::Timeline;

/// Events kept for watch resumption: enough that the controller's watches never see 410
/// (a relist would be a cost of the bench, not of the controller).
const WATCH_HISTORY: usize = 200_000;

pub struct Lab {
    pub server: kubesim::Server,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub timeline: Timeline,
    pub dir: PathBuf,
}

/// A kube-rs client for a kubesim URL.
pub fn client_for(url: &str) -> BenchResult<Client> {
    let uri = url.parse().map_err(|e| format!("kubesim URL {url}: {e}"))?;
    Client::try_from(Config::new(uri)).map_err(|e| format!("kube client: {e}"))
}

pub fn releases_gr() -> GroupResource {
    GroupResource::new("bluegreen.dev", "bluegreenreleases")
}

impl Lab {
    pub async fn start(dir: &Path) -> BenchResult<Lab> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let server = kubesim::Server::builder()
            .watch_history(WATCH_HISTORY)
            .start()
            .await
            .map_err(|e| e.to_string())?;
        let kubeconfig = dir.join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .map_err(|e| e.to_string())?;
        let timeline = Timeline::start(&server.cluster());
        let client = client_for(&server.url())?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        crds.create(&PostParams::default(), &bluegreen_crd::crd::crd())
            .await
            .map_err(|e| format!("installing the CRD: {e}"))?;
        Ok(Lab {
            server,
            client,
            kubeconfig,
            timeline,
            dir: dir.to_path_buf(),
        })
    }

    pub async fn create_namespace(&self, name: &str) -> BenchResult<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))
            .map_err(|e| e.to_string())?;
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(format!("create namespace {name}: {e}")),
        }
    }

    /// A stored object, read without an API request.
    pub fn stored(&self, group: &str, resource: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.server
            .cluster()
            .get_stored(&GroupResource::new(group, resource), ns, name)
    }

    pub fn release(&self, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.server.cluster().get_stored(&releases_gr(), ns, name)
    }

    /// How many releases in `ns` satisfy `pred` (a scan under the store lock; no copies).
    pub fn count_releases(&self, ns: &str, mut pred: impl FnMut(&Value) -> bool) -> usize {
        let mut n = 0;
        self.server
            .cluster()
            .scan(&releases_gr(), Some(ns), |release| {
                if pred(release) {
                    n += 1;
                }
                false
            });
        n
    }

    /// Audit entries (API requests) since `seq`, excluding the bench's own.
    pub fn audit_since(&self, seq: u64) -> Vec<kubesim::AuditEntry> {
        self.server
            .audit_since(seq)
            .into_iter()
            .filter(|e| e.field_manager != super::releases::BENCH_MANAGER)
            .collect()
    }
}

/// `status.phase == Stable`, `Ready=True` and `status.activeVersion == version`.
pub fn is_stable_on(release: &Value, version: &str) -> bool {
    let status = &release["status"];
    status["phase"] == "Stable"
        && status["activeVersion"] == version
        && status["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Polls `probe` every `every` until it yields a value; the error names `what` and the
/// probe's last explanation.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: F,
) -> BenchResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return Ok(v),
            Err(last) if start.elapsed() > timeout => {
                return Err(format!(
                    "timed out after {:.0}s waiting for {what} ({last})",
                    timeout.as_secs_f64()
                ));
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Waits until `ns` has had no API request (other than the bench's) for `quiet`.
pub async fn wait_quiet(
    lab: &Lab,
    ns: &str,
    quiet: Duration,
    timeout: Duration,
) -> BenchResult<()> {
    let start = Instant::now();
    let mut seen = lab.server.audit_next_seq();
    let mut last_change = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let fresh = lab
            .audit_since(seen)
            .iter()
            .filter(|e| e.namespace == ns && e.verb != "watch")
            .count();
        seen = lab.server.audit_next_seq();
        if fresh > 0 {
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("namespace {ns} never went quiet"));
        }
    }
}
