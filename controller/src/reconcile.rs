//! Applies a plan through `kube::Api`: the only place in the controller that writes.
//!
//! One reconcile = read the world from the caches, plan, execute the plan's writes in order,
//! then one status patch (only when the status changed), then — only after that status is
//! stored — remove a consumed action's annotations. Events and metrics follow the writes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bluegreen_crd::{BlueGreenRelease, BlueGreenReleaseStatus, labels};
use json_patch::{PatchOperation, RemoveOperation, TestOperation, jsonptr::PointerBuf};
use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        batch::v1::Job,
        core::v1::{Pod, Service},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        DeleteParams, LogParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
    },
    runtime::{controller::Action as Requeue, reflector::ObjectRef},
};
use serde_json::{Value, json};
use tracing::{debug, info, instrument, warn};

use crate::{
    error::{Error, Result},
    events::EventPublisher,
    metrics::Metrics,
    observe::Caches,
    observe::{self, JobView},
    own_writes::{OwnWrites, Written},
    plan::{self, Occurrence, Plan, Write},
    prometheus::{Prometheus, QUERY_TIMEOUT},
};

/// Lines of a failed smoke test's log kept for the Event and the status message.
const LOG_TAIL_LINES: i64 = 20;

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    pub events: EventPublisher,
    /// Consecutive failures per release, for backoff per error class.
    failures: Mutex<HashMap<ObjectRef<BlueGreenRelease>, u32>>,
    /// Each release's last status write and flip, until the caches show them.
    own_writes: OwnWrites,
    /// False until every cache has its first full list. Planning from a half-filled cache
    /// would take a missing ReplicaSet for a deleted one (and forget a warm standby).
    caches_synced: Arc<AtomicBool>,
    /// Where analysis samples come from.
    prometheus: Prometheus,
}

impl Context {
    pub fn new(
        client: Client,
        caches: Arc<Caches>,
        metrics: Arc<Metrics>,
        events: EventPublisher,
    ) -> Self {
        Context {
            client,
            caches,
            metrics,
            events,
            failures: Mutex::new(HashMap::new()),
            own_writes: OwnWrites::default(),
            caches_synced: Arc::new(AtomicBool::new(true)),
            prometheus: Prometheus::new(None, QUERY_TIMEOUT),
        }
    }

    /// Analysis queries a release's own Prometheus, else this one (`--prometheus-address`).
    pub fn with_prometheus(mut self, default_address: Option<String>) -> Self {
        self.prometheus = Prometheus::new(default_address, QUERY_TIMEOUT);
        self
    }

    /// Holds reconciles back until `synced` is true (the caches have their first list).
    pub fn gated_on(mut self, synced: Arc<AtomicBool>) -> Self {
        self.caches_synced = synced;
        self
    }

    /// Forgets a deleted release: its metric series, its pending own writes, its failure
    /// count. Memory follows the releases that exist.
    pub fn forget(&self, release: &ObjectRef<BlueGreenRelease>) {
        self.metrics.forget_release(
            release.namespace.as_deref().unwrap_or_default(),
            &release.name,
        );
        self.own_writes.forget(release);
        self.failures.lock().expect("failures lock").remove(release);
    }

    /// Entries of per-release bookkeeping: failure counts plus releases with an own write
    /// pending (for tests: it must go to zero as releases go).
    pub fn tracked_releases(&self) -> usize {
        self.failures.lock().expect("failures lock").len() + self.own_writes.len()
    }
}

/// How soon a reconcile that arrived before the caches were filled is tried again.
const UNTIL_SYNCED: Duration = Duration::from_millis(250);
/// How soon a reconcile that found its own last write not yet cached is tried again at the
/// latest (the watch event that brings the write starts it sooner).
const UNTIL_OWN_WRITE_SEEN: Duration = Duration::from_secs(1);

fn key(release: &BlueGreenRelease) -> ObjectRef<BlueGreenRelease> {
    ObjectRef::from_obj(release)
}

/// Reconciles one release.
#[instrument(skip_all, fields(namespace = release.namespace().unwrap_or_default(), release = release.name_any(), revision = tracing::field::Empty))]
pub async fn reconcile(release: Arc<BlueGreenRelease>, ctx: Arc<Context>) -> Result<Requeue> {
    if !ctx.caches_synced.load(Ordering::Acquire) {
        return Ok(Requeue::requeue(UNTIL_SYNCED));
    }
    let _timer = ctx.metrics.reconcile_timer();
    let namespace = release
        .namespace()
        .ok_or(Error::MissingMetadata("metadata.namespace"))?;
    if release.meta().deletion_timestamp.is_some() {
        // Owned children go with the release (garbage collection); only forget it here.
        ctx.forget(&key(&release));
        return Ok(Requeue::await_change());
    }
    let cached_version = release.resource_version().unwrap_or_default();
    if !ctx
        .own_writes
        .caught_up(&key(&release), Written::Release, &cached_version)
    {
        debug!("the cached release does not show the last status write yet; waiting for it");
        return Ok(Requeue::requeue(UNTIL_OWN_WRITE_SEEN));
    }
    let Some((observed, cached_service)) = observe_release(&release, &ctx, &namespace).await?
    else {
        debug!("the cached active Service does not show the last flip yet; waiting for it");
        return Ok(Requeue::requeue(UNTIL_OWN_WRITE_SEEN));
    };
    let plan = plan::plan(&observed);
    // The revision being rolled out, else the live one: what a log reader looks for.
    let revision = plan
        .status
        .rollout
        .as_ref()
        .map(|r| r.revision.as_str())
        .or(plan.status.active_revision.as_deref());
    tracing::Span::current().record("revision", revision.unwrap_or_default());
    let cached = CachedVersions {
        release: cached_version,
        active_service: cached_service,
    };
    write_plan(&ctx, &release, &namespace, &plan, &cached).await?;
    report(&ctx, &release, &plan).await;
    ctx.failures
        .lock()
        .expect("failures lock")
        .remove(&key(&release));
    ctx.metrics.reconcile_ok();
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after),
        None => Requeue::await_change(),
    })
}

/// The resourceVersions a plan was made from: its own writes are waited for against them.
struct CachedVersions {
    release: String,
    active_service: String,
}

fn service_version(observed: &observe::Observed) -> String {
    observed
        .active_service
        .as_ref()
        .map(|s| s.resource_version.clone())
        .unwrap_or_default()
}

/// The release's world for the planner: the caches, the log tails of failed tests, and the
/// Services the spec names that the caches do not hold; with the resourceVersion of the
/// active Service as cached ("" when the cache does not hold it). `None` while the cached
/// active Service does not show the controller's last flip yet.
async fn observe_release(
    release: &BlueGreenRelease,
    ctx: &Context,
    namespace: &str,
) -> Result<Option<(observe::Observed, String)>> {
    let (mut observed, logs_needed) = observe::observe(release, &ctx.caches, Timestamp::now());
    let cached_service = service_version(&observed);
    if !ctx
        .own_writes
        .caught_up(&key(release), Written::ActiveService, &cached_service)
    {
        return Ok(None);
    }
    fetch_log_tails(&ctx.client, namespace, &mut observed.jobs, &logs_needed).await;
    observed.default_prometheus = ctx.prometheus.has_default();
    if let Some(request) = observe::sample_due(release, observed.now) {
        observed.analysis = Some(ctx.prometheus.sample(&request, observed.now).await);
    }
    // The caches hold only Services labelled for this release. A Service the spec names that
    // is not among them is read directly: a user's Service not adopted yet (the flip labels
    // it), or one another release claims, which the planner must see to leave it alone.
    if observed.active_service.is_none() {
        observed.active_service =
            fetch_uncached_service(&ctx.client, namespace, &release.spec.service.name).await?;
    }
    if observed.preview_service.is_none() {
        observed.preview_service =
            fetch_uncached_service(&ctx.client, namespace, &release.preview_service_name()).await?;
    }
    Ok(Some((observed, cached_service)))
}

/// The plan's writes in order, then the status patch (only when it changed), then — only
/// after that status is stored — the consumed request's annotations; each write the caches
/// must show before the next plan is recorded as the release's own.
async fn write_plan(
    ctx: &Context,
    release: &BlueGreenRelease,
    namespace: &str,
    plan: &Plan,
    cached: &CachedVersions,
) -> Result<()> {
    let writer = Writer {
        client: ctx.client.clone(),
        namespace: namespace.to_string(),
    };
    for write in &plan.writes {
        debug!(write = %write.describe(), "writing");
        if let Some(flipped) = writer.execute(write).await? {
            let key = key(release);
            let what = Written::ActiveService;
            ctx.own_writes
                .record(key, what, &cached.active_service, &flipped);
        }
    }
    let mut stored_version = None;
    if release.status.as_ref() != Some(&plan.status) {
        stored_version = writer.patch_status(release, &plan.status).await?;
    }
    if plan.consume_request {
        let consumed_id = plan.status.last_action.as_ref().map(|a| a.id.as_str());
        let consumed = writer.consume_request(release, consumed_id).await?;
        stored_version = consumed.or(stored_version);
    }
    if let Some(stored) = stored_version {
        ctx.own_writes
            .record(key(release), Written::Release, &cached.release, &stored);
    }
    Ok(())
}

/// Decides when to retry a failed reconcile.
pub fn error_policy(release: Arc<BlueGreenRelease>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let failures = {
        let mut map = ctx.failures.lock().expect("failures lock");
        let count = map.entry(key(&release)).or_insert(0);
        *count += 1;
        *count
    };
    ctx.metrics.reconcile_error(error.metric_label());
    let after = error.retry_after(failures);
    if error.is_conflict() {
        debug!(%error, release = release.name_any(), "conflict; retrying");
    } else {
        warn!(%error, release = release.name_any(), failures, retry_in_ms = after.as_millis() as u64, "reconcile failed");
    }
    Requeue::requeue(after)
}

/// Events and metrics for what a successful reconcile did.
async fn report(ctx: &Context, release: &BlueGreenRelease, plan: &Plan) {
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    let status = &plan.status;
    ctx.metrics
        .set_release_phase(&namespace, &name, status.phase.map(|p| p.as_str()));
    if let (Some(color), Some(version)) = (status.active_color, status.active_version.as_deref()) {
        ctx.metrics
            .set_release_info(&namespace, &name, color, version);
    }
    for occurrence in &plan.occurrences {
        match occurrence {
            Occurrence::Flipped => ctx.metrics.flipped(),
            Occurrence::RolledBack => ctx.metrics.rolled_back(),
            Occurrence::RolloutFinished { outcome, seconds } => ctx
                .metrics
                .observe_rollout(*outcome, Duration::from_secs_f64(*seconds)),
            Occurrence::SmokeTest { succeeded } => ctx.metrics.smoke_test_finished(*succeeded),
            Occurrence::AnalysisSample { phase, result } => {
                ctx.metrics.analysis_sample(*phase, result)
            }
            Occurrence::Deployed { outcome } => ctx.metrics.deployed(&namespace, &name, *outcome),
            Occurrence::ChangeFailure { by_verification } => {
                ctx.metrics
                    .change_failed(&namespace, &name, *by_verification)
            }
            Occurrence::LeadTime { seconds } => ctx.metrics.lead_time(&namespace, &name, *seconds),
            Occurrence::Restored { seconds } => ctx.metrics.restored(&namespace, &name, *seconds),
        }
    }
    if !plan.events.is_empty() || plan.status.phase != release.status.as_ref().and_then(|s| s.phase)
    {
        info!(phase = ?status.phase, message = status.message.as_deref().unwrap_or_default(), revision = status.active_revision.as_deref().unwrap_or_default(), "release progressed");
    }
    let reference = release.object_ref(&());
    for planned in &plan.events {
        // An Event is a courtesy: failing to publish one must not fail the reconcile.
        if let Err(error) = ctx.events.publish(planned, &reference).await {
            warn!(%error, reason = planned.reason, "could not publish event");
        }
    }
}

/// A Service the caches do not hold, read from the API server.
async fn fetch_uncached_service(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<observe::ServiceView>> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services
        .get_opt(name)
        .await
        .map_err(|e| Error::api(format!("get Service {name}"), e))?;
    Ok(service.as_ref().map(observe::service_view))
}

/// Reads the last lines of each failed smoke test's pod log into its Job view.
async fn fetch_log_tails(
    client: &Client,
    namespace: &str,
    jobs: &mut [JobView],
    needed: &[(String, String)],
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for (job_name, pod) in needed {
        let params = LogParams {
            tail_lines: Some(LOG_TAIL_LINES),
            ..LogParams::default()
        };
        match pods.logs(pod, &params).await {
            Ok(log) => {
                if let Some(job) = jobs.iter_mut().find(|j| &j.name == job_name) {
                    job.log_tail = Some(log);
                }
            }
            // The failure is reported either way; the log is a bonus.
            Err(error) => warn!(%error, pod, "could not read the smoke test's log"),
        }
    }
}

/// Executes actions against the API server, with the controller's field manager.
pub struct Writer {
    pub client: Client,
    pub namespace: String,
}

impl Writer {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn apply_params() -> PatchParams {
        // Force: the controller is the only rightful owner of the fields it applies (the
        // two selector keys of a user's Service included), so it takes them over.
        PatchParams::apply(labels::FIELD_MANAGER).force()
    }

    fn update_params() -> PatchParams {
        PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }

    /// Executes one action. Returns the resourceVersion the active Service was left at when
    /// the action was the flip: the write the next reconcile must find in the cache.
    pub async fn execute(&self, write: &Write) -> Result<Option<String>> {
        match write {
            Write::ApplyReplicaSet(rs) => self.apply(rs.as_ref()).await.map(drop)?,
            Write::ReplaceReplicaSet {
                old_uid,
                replica_set,
            } => {
                let name = replica_set.name_any();
                self.delete::<ReplicaSet>(&name, old_uid, "ReplicaSet")
                    .await?;
                self.apply(replica_set.as_ref()).await.map(drop)?
            }
            Write::ScaleReplicaSet { name, replicas } => self.scale(name, *replicas).await?,
            Write::ApplyPreviewService(svc) => self.apply(svc.as_ref()).await.map(drop)?,
            Write::Flip {
                service,
                replica_set,
                replicas,
            } => {
                self.check_flip_target(&service.name_any(), replica_set, *replicas)
                    .await?;
                let stored = self.apply(service.as_ref()).await?;
                info!(
                    service = service.name_any(),
                    target = replica_set,
                    "flipped the active Service"
                );
                return Ok(Some(stored));
            }
            Write::CreateJob(job) => self.create_job(job).await?,
            Write::DeleteJob { name, uid } => self.delete::<Job>(name, uid, "Job").await?,
            Write::DeleteService { name, uid } => {
                self.delete::<Service>(name, uid, "Service").await?
            }
            Write::ReleaseService { name } => self.release_service(name).await?,
        }
        Ok(None)
    }

    /// Deletes an object unless it is gone already; `uid` as precondition, so a successor
    /// under the same name is never deleted. Dependents go in the background.
    async fn delete<K>(&self, name: &str, uid: &str, kind: &str) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        ignore_not_found(self.api::<K>().delete(name, &params).await.map(|_| ()))
            .map_err(|e| Error::api(format!("delete {kind} {name}"), e))
    }

    /// Resizes a ReplicaSet through its scale subresource, template untouched.
    async fn scale(&self, name: &str, replicas: i32) -> Result<()> {
        let api: Api<ReplicaSet> = self.api();
        let size = Patch::Merge(json!({"spec": {"replicas": replicas}}));
        api.patch_scale(name, &Self::update_params(), &size)
            .await
            .map_err(|e| Error::api(format!("scale ReplicaSet {name} to {replicas}"), e))?;
        Ok(())
    }

    async fn create_job(&self, job: &Job) -> Result<()> {
        let api: Api<Job> = self.api();
        let params = PostParams {
            field_manager: Some(labels::FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, job).await {
            Ok(_) => Ok(()),
            // Created by a reconcile that died before recording it: same Job, fine.
            Err(kube::Error::Api(status))
                if status.code == 409 && status.reason == "AlreadyExists" =>
            {
                Ok(())
            }
            Err(e) => Err(Error::api(format!("create Job {}", job.name_any()), e)),
        }
    }

    /// Removes our selector keys and label from a user's Service, and only those. Not an
    /// empty apply: the selector is an atomic map that the controller's apply owns whole
    /// (the user's keys with ours), so giving it up would remove the user's keys too.
    async fn release_service(&self, name: &str) -> Result<()> {
        let api: Api<Service> = self.api();
        let ours = json!({
            "metadata": {"labels": {labels::RELEASE: null}},
            "spec": {"selector": {labels::COLOR: null, labels::REVISION: null, labels::RELEASE: null}}
        });
        let params = PatchParams {
            field_manager: Some(labels::FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        ignore_not_found(
            api.patch(name, &params, &Patch::Merge(ours))
                .await
                .map(|_| ()),
        )
        .map_err(|e| Error::api(format!("release Service {name}"), e))
    }

    /// Server-side apply; returns the resourceVersion it stored.
    async fn apply<K>(&self, obj: &K) -> Result<String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + serde::Serialize
            + serde::de::DeserializeOwned
            + Clone
            + std::fmt::Debug,
    {
        let api: Api<K> = self.api();
        let name = obj.name_any();
        let stored = api
            .patch(&name, &Self::apply_params(), &Patch::Apply(obj))
            .await
            .map_err(|e| Error::api(format!("apply {} {name}", K::kind(&())), e))?;
        Ok(stored.resource_version().unwrap_or_default())
    }

    /// Invariant 1: re-read the target ReplicaSet from the API server (not the cache)
    /// immediately before the flip and refuse unless it is fully available at full size.
    async fn check_flip_target(
        &self,
        service: &str,
        replica_set: &str,
        replicas: i32,
    ) -> Result<()> {
        let api: Api<ReplicaSet> = self.api();
        let fresh = api
            .get(replica_set)
            .await
            .map_err(|e| Error::api(format!("get ReplicaSet {replica_set} before the flip"), e))?;
        let view = observe::replica_set_view(&fresh);
        match view {
            Some(view) if view.available_at(replicas) => Ok(()),
            Some(view) => Err(Error::FlipGuard {
                service: service.into(),
                reason: format!(
                    "ReplicaSet {replica_set} is not fully available ({}/{} available, {} current, generation {}/{})",
                    view.available,
                    replicas,
                    view.current,
                    view.observed_generation,
                    view.generation
                ),
            }),
            None => Err(Error::FlipGuard {
                service: service.into(),
                reason: format!("ReplicaSet {replica_set} lost its color labels"),
            }),
        }
    }

    /// One server-side apply of the whole status (the controller owns all of it). Returns
    /// the resourceVersion it stored.
    pub async fn patch_status(
        &self,
        release: &BlueGreenRelease,
        status: &BlueGreenReleaseStatus,
    ) -> Result<Option<String>> {
        let api: Api<BlueGreenRelease> = self.api();
        let name = release.name_any();
        let body = json!({
            "apiVersion": BlueGreenRelease::api_version(&()),
            "kind": BlueGreenRelease::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        let stored = api
            .patch_status(&name, &Self::apply_params(), &Patch::Apply(body))
            .await
            .map_err(|e| Error::api(format!("patch status of {name}"), e))?;
        Ok(stored.resource_version())
    }

    /// Removes the action annotations, but only if they still carry the consumed id: a new
    /// action written in the meantime must not be lost (the JSON patch `test` fails then).
    /// Returns the resourceVersion it stored, if it wrote.
    pub async fn consume_request(
        &self,
        release: &BlueGreenRelease,
        consumed_id: Option<&str>,
    ) -> Result<Option<String>> {
        let api: Api<BlueGreenRelease> = self.api();
        let name = release.name_any();
        let annotations = release.annotations();
        let path = |key: &str| PointerBuf::from_tokens(["metadata", "annotations", key]);
        let test = |key: &str, value: Option<&String>| {
            PatchOperation::Test(TestOperation {
                path: path(key),
                value: value.map_or(Value::Null, |v| Value::from(v.as_str())),
            })
        };
        let remove = |key: &str| PatchOperation::Remove(RemoveOperation { path: path(key) });
        let mut ops = Vec::new();
        match annotations.get(labels::ACTION_ID) {
            Some(id) => {
                if consumed_id.is_some_and(|c| c != id) {
                    return Ok(None);
                }
                ops.push(test(labels::ACTION_ID, Some(id)));
                ops.push(remove(labels::ACTION_ID));
            }
            None => ops.push(test(labels::ACTION, annotations.get(labels::ACTION))),
        }
        if annotations.contains_key(labels::ACTION) {
            ops.push(remove(labels::ACTION));
        }
        let patch = json_patch::Patch(ops);
        match api
            .patch(&name, &Self::update_params(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(stored) => Ok(stored.resource_version()),
            // The annotations changed since we read them: the next reconcile sees the new ones.
            Err(kube::Error::Api(status)) if status.code == 422 || status.code == 409 => Ok(None),
            Err(e) => Err(Error::api(
                format!("remove action annotations of {name}"),
                e,
            )),
        }
    }
}

fn ignore_not_found(
    result: std::result::Result<(), kube::Error>,
) -> std::result::Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other,
    }
}
