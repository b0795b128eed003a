//! `reconcile` against a mock API server (tower-test).
//!
//! A small in-memory [`Cluster`] holds the release and its children. Each test step fills
//! the caches from it, runs one `reconcile` in a task and answers every request it makes
//! from a fake API server loop that records `(method, path, query, content type, body)`.
//! The recorded writes are then applied back to the cluster (`absorb`), the built-in
//! controllers are simulated (`settle`: ReplicaSets become available, pods and the preview
//! Service's EndpointSlice follow), and the next step runs. Assertions are semantic:
//! method, resource and name, field manager, patch type, and the fields a patch sets.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bluegreen_controller::{
    error::Error,
    events::{EventPublisher, Reporter},
    metrics::Metrics,
    observe::{self, Caches},
    plan,
    reconcile::{Context, error_policy, reconcile},
};
use bluegreen_crd::{
    BlueGreenRelease, BlueGreenReleaseStatus, Color, Outcome, Phase, labels, revision::revision_of,
};
use http::{Request, Response};
use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet, batch::v1::Job, core::v1::Pod, core::v1::Service,
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Client, ResourceExt,
    client::Body,
    runtime::{controller::Action as Requeue, watcher::Event},
};
use serde_json::{Value, json};

const NS: &str = "shop";
const ACTIVE: &str = "web-active";
const PREVIEW: &str = "web-preview";
const FAILED_LOG: &str = "GET /health -> 503\nsmoke test failed: expected 200";

/// The release the planner tests use too (namespace `NS`, active Service `ACTIVE`).
fn release(image: &str, tests: &[&str]) -> BlueGreenRelease {
    bluegreen_crd::testing::TestRelease::web(image, tests).build()
}

// ---------------------------------------------------------------------------------------
// Recorded requests

/// One request the controller made, as the fake API server saw it.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    content_type: String,
    body: Value,
    /// The HTTP status the fake server answered with.
    code: u16,
}

impl Req {
    async fn read(request: Request<Body>) -> Req {
        let (parts, body) = request.into_parts();
        let bytes = body.collect_bytes().await.expect("request body");
        let query = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Req {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query,
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            code: 0,
        }
    }

    /// Path segments after `namespaces/<ns>/`: resource, name, subresource.
    fn part(&self, i: usize) -> Option<&str> {
        let segments: Vec<&str> = self.path.split('/').collect();
        let at = segments
            .iter()
            .position(|s| *s == "namespaces")
            .expect("namespaced request");
        assert_eq!(
            segments[at + 1],
            NS,
            "request outside the release's namespace: {}",
            self.path
        );
        segments.get(at + 2 + i).copied()
    }

    fn resource(&self) -> &str {
        self.part(0).unwrap_or_default()
    }

    fn name(&self) -> Option<&str> {
        self.part(1)
    }

    fn sub(&self) -> Option<&str> {
        self.part(2)
    }

    fn is_write(&self) -> bool {
        self.method != "GET"
    }

    fn is(&self, method: &str, resource: &str, name: &str) -> bool {
        self.method == method && self.resource() == resource && self.name() == Some(name)
    }

    fn touches(&self, resource: &str, name: &str) -> bool {
        self.resource() == resource && self.name() == Some(name)
    }

    fn patch_type(&self) -> &str {
        match self.content_type.as_str() {
            "application/apply-patch+yaml" => "apply",
            "application/merge-patch+json" => "merge",
            "application/json-patch+json" => "json",
            "application/strategic-merge-patch+json" => "strategic",
            other => panic!("not a patch: {other} ({})", self.describe()),
        }
    }

    fn field_manager(&self) -> Option<&str> {
        self.query.get("fieldManager").map(String::as_str)
    }

    fn describe(&self) -> String {
        let name = [self.name(), self.sub()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
        format!(
            "{} {}/{} -> {}",
            self.method,
            self.resource(),
            name,
            self.code
        )
    }

    /// A server-side apply by the controller's field manager, taking over conflicts.
    fn assert_apply(&self) {
        assert_eq!(self.method, "PATCH", "{}", self.describe());
        assert_eq!(self.patch_type(), "apply", "{}", self.describe());
        assert_eq!(
            self.field_manager(),
            Some(labels::FIELD_MANAGER),
            "{}",
            self.describe()
        );
        assert_eq!(
            self.query.get("force").map(String::as_str),
            Some("true"),
            "{}",
            self.describe()
        );
    }

    fn labels(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.body["metadata"]["labels"].clone()).unwrap_or_default()
    }

    fn selector(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.body["spec"]["selector"].clone()).unwrap_or_default()
    }

    fn status(&self) -> BlueGreenReleaseStatus {
        serde_json::from_value(self.body["status"].clone()).expect("status body")
    }
}

/// What one reconcile did.
struct Run {
    result: Result<Requeue, Error>,
    reqs: Vec<Req>,
    ctx: Arc<Context>,
}

impl Run {
    fn ok(&self) -> &Requeue {
        match &self.result {
            Ok(requeue) => requeue,
            Err(error) => panic!("reconcile failed: {error}; requests: {:#?}", self.trace()),
        }
    }

    fn trace(&self) -> Vec<String> {
        self.reqs.iter().map(Req::describe).collect()
    }

    fn writes(&self) -> Vec<&Req> {
        self.reqs.iter().filter(|r| r.is_write()).collect()
    }

    /// Writes other than Events.
    fn changes(&self) -> Vec<&Req> {
        self.writes()
            .into_iter()
            .filter(|r| r.resource() != "events")
            .collect()
    }

    fn position(&self, what: impl Fn(&Req) -> bool) -> Option<usize> {
        self.reqs.iter().position(what)
    }

    fn find(&self, what: impl Fn(&Req) -> bool) -> &Req {
        self.reqs
            .iter()
            .find(|r| what(r))
            .unwrap_or_else(|| panic!("no such request in {:#?}", self.trace()))
    }

    fn status_patches(&self) -> Vec<&Req> {
        self.reqs
            .iter()
            .filter(|r| r.method == "PATCH" && r.sub() == Some("status"))
            .collect()
    }

    /// The single status patch of this reconcile (SSA on the status subresource).
    fn status(&self) -> BlueGreenReleaseStatus {
        let patches = self.status_patches();
        assert_eq!(
            patches.len(),
            1,
            "one status patch per reconcile: {:#?}",
            self.trace()
        );
        patches[0].assert_apply();
        assert_eq!(patches[0].resource(), "bluegreenreleases");
        patches[0].status()
    }

    /// Events published, as (type, reason, note).
    fn events(&self) -> Vec<(String, String, String)> {
        self.reqs
            .iter()
            .filter(|r| r.resource() == "events")
            .map(|r| {
                assert_eq!(r.method, "POST");
                assert!(r.path.starts_with("/apis/events.k8s.io/v1/"), "{}", r.path);
                assert_eq!(r.body["regarding"]["name"], "web");
                let text = |field: &str| r.body[field].as_str().unwrap_or_default().to_string();
                (text("type"), text("reason"), text("note"))
            })
            .collect()
    }

    fn assert_untouched(&self, resource: &str, name: &str) {
        let touched: Vec<_> = self
            .writes()
            .into_iter()
            .filter(|r| r.touches(resource, name))
            .map(Req::describe)
            .collect();
        assert!(
            touched.is_empty(),
            "{resource}/{name} must not be written: {touched:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The cluster around one release

#[derive(Clone)]
struct Cluster {
    release: BlueGreenRelease,
    replica_sets: BTreeMap<String, ReplicaSet>,
    services: BTreeMap<String, Service>,
    jobs: BTreeMap<String, Job>,
    job_pods: Vec<Pod>,
    logs: BTreeMap<String, String>,
    next_uid: u32,
}

fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("well-formed test object")
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializable")
}

fn not_found(what: &str) -> (u16, String) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("{what} not found"), "reason": "NotFound", "code": 404});
    (404, status.to_string())
}

fn conflict(what: &str) -> (u16, String) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("Apply failed with 1 conflict: conflict with \"kubectl\": {what}"), "reason": "Conflict", "code": 409});
    (409, status.to_string())
}

impl Cluster {
    fn new(release: BlueGreenRelease) -> Self {
        Cluster {
            release,
            replica_sets: BTreeMap::new(),
            services: BTreeMap::new(),
            jobs: BTreeMap::new(),
            job_pods: Vec::new(),
            logs: BTreeMap::new(),
            next_uid: 0,
        }
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    fn status(&self) -> BlueGreenReleaseStatus {
        self.release.status.clone().unwrap_or_default()
    }

    fn revision(&self) -> String {
        revision_of(&self.release.spec)
    }

    fn set_image(&mut self, image: &str) {
        self.release.spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        let generation = self.release.metadata.generation.unwrap_or(1);
        self.release.metadata.generation = Some(generation + 1);
    }

    fn rs_replicas(&self, name: &str) -> i32 {
        self.replica_sets[name]
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
    }

    /// The application pods the ReplicaSets run (per `status.replicas`, ready per
    /// `status.readyReplicas`), named after their revision.
    fn app_pods(&self) -> Vec<Pod> {
        let mut pods = Vec::new();
        for rs in self.replica_sets.values() {
            let status = rs.status.clone().unwrap_or_default();
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.clone())
                .unwrap_or_default();
            let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
            let revision = labels.get(labels::REVISION).cloned().unwrap_or_default();
            for i in 0..status.replicas {
                let ready = if i < status.ready_replicas.unwrap_or(0) {
                    "True"
                } else {
                    "False"
                };
                pods.push(from(json!({
                    "metadata": {"name": format!("{}-{revision}-{i}", rs.name_any()), "namespace": NS, "labels": labels,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.name_any(), "uid": rs.uid()}]},
                    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}
                })));
            }
        }
        pods
    }

    /// The EndpointSlice of the preview Service: the pods its selector matches.
    fn preview_slice(&self, pods: &[Pod]) -> Option<EndpointSlice> {
        let service = self.services.get(PREVIEW)?;
        let selector = service.spec.as_ref()?.selector.clone().unwrap_or_default();
        let endpoints: Vec<Value> = pods
            .iter()
            .filter(|p| selector.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
            .map(|p| {
                let ready = p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": p.name_any(), "namespace": NS}})
            })
            .collect();
        let mut slice_labels = service.labels().clone();
        slice_labels.insert("kubernetes.io/service-name".into(), PREVIEW.into());
        Some(from(json!({
            "metadata": {"name": format!("{PREVIEW}-x1y2z"), "namespace": NS, "labels": slice_labels},
            "addressType": "IPv4",
            "endpoints": endpoints,
        })))
    }

    /// Caches as the label-filtered watches would fill them.
    fn caches(&self) -> Arc<Caches> {
        let caches = Caches::default();
        for rs in self.replica_sets.values() {
            caches.replica_sets.apply(&Event::Apply(rs.clone()));
        }
        for svc in self.services.values() {
            caches.services.apply(&Event::Apply(svc.clone()));
        }
        let pods = self.app_pods();
        if let Some(slice) = self.preview_slice(&pods) {
            caches.endpoint_slices.apply(&Event::Apply(slice));
        }
        for pod in pods.iter().chain(&self.job_pods) {
            caches.pods.apply(&Event::Apply(pod.clone()));
        }
        for job in self.jobs.values() {
            caches.jobs.apply(&Event::Apply(job.clone()));
        }
        Arc::new(caches)
    }

    /// The release after a JSON patch (`test` ops included); `None` when a test fails.
    fn json_patched_release(&self, req: &Req) -> Option<BlueGreenRelease> {
        let ops: json_patch::Patch = from(req.body.clone());
        let mut doc = serde_json::to_value(&self.release).unwrap();
        json_patch::patch(&mut doc, &ops.0).ok()?;
        Some(from(doc))
    }

    /// How the API server answers a request, given this world.
    fn answer(&self, req: &Req) -> (u16, String) {
        let name = req.name().unwrap_or_default();
        match (req.method.as_str(), req.resource(), req.sub()) {
            ("GET", "replicasets", None) => self.replica_sets.get(name).map_or_else(|| not_found(name), |rs| (200, to_json(rs))),
            ("GET", "pods", Some("log")) => self.logs.get(name).map_or_else(|| not_found(name), |log| (200, log.clone())),
            ("PATCH", "replicasets", Some("scale")) => {
                let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": NS},
                    "spec": {"replicas": req.body["spec"]["replicas"]}});
                (200, scale.to_string())
            }
            ("PATCH", "bluegreenreleases", Some("status")) => {
                let mut stored = serde_json::to_value(&self.release).unwrap();
                stored["status"] = req.body["status"].clone();
                (200, stored.to_string())
            }
            ("PATCH", "bluegreenreleases", None) => match self.json_patched_release(req) {
                Some(patched) => (200, to_json(&patched)),
                None => (422, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422}).to_string()),
            },
            // Server-side apply: the stored object is what was applied (close enough).
            ("PATCH", "replicasets" | "services", None) => (200, req.body.to_string()),
            ("POST", "jobs", None) => {
                let mut job = req.body.clone();
                job["metadata"]["uid"] = json!("job-uid");
                (201, job.to_string())
            }
            ("POST", "events", None) => (201, req.body.to_string()),
            ("DELETE", "replicasets", None) => self.replica_sets.get(name).map_or_else(|| not_found(name), |rs| (200, to_json(rs))),
            ("DELETE", "jobs", None) => self.jobs.get(name).map_or_else(|| not_found(name), |job| (200, to_json(job))),
            _ => not_found(&req.path),
        }
    }

    /// Applies the successful writes of a reconcile to the world, as the API server would.
    fn absorb(&mut self, run: &Run) {
        for req in run.writes().into_iter().filter(|r| r.code < 300) {
            let name = req.name().unwrap_or_default().to_string();
            match (req.method.as_str(), req.resource(), req.sub()) {
                ("PATCH", "replicasets", None) => {
                    let mut rs: ReplicaSet = from(req.body.clone());
                    match self.replica_sets.get(&name) {
                        Some(old) => {
                            rs.metadata.uid = old.metadata.uid.clone();
                            rs.metadata.generation = old.metadata.generation.map(|g| g + 1);
                            rs.status = old.status.clone();
                        }
                        None => {
                            rs.metadata.uid = Some(self.uid());
                            rs.metadata.generation = Some(1);
                        }
                    }
                    self.replica_sets.insert(name, rs);
                }
                ("PATCH", "replicasets", Some("scale")) => {
                    let rs = self.replica_sets.get_mut(&name).expect("scaled RS exists");
                    rs.spec.as_mut().unwrap().replicas =
                        Some(req.body["spec"]["replicas"].as_i64().unwrap() as i32);
                    rs.metadata.generation = rs.metadata.generation.map(|g| g + 1);
                }
                ("DELETE", "replicasets", None) => {
                    self.replica_sets.remove(&name);
                }
                ("PATCH", "services", None) => {
                    let applied: Service = from(req.body.clone());
                    match self.services.get_mut(&name) {
                        // Apply merges the fields the controller owns into the user's object.
                        Some(existing) => {
                            existing.labels_mut().extend(applied.labels().clone());
                            let (spec, wanted) = (
                                existing.spec.get_or_insert_with(Default::default),
                                applied.spec.unwrap_or_default(),
                            );
                            spec.selector
                                .get_or_insert_with(Default::default)
                                .extend(wanted.selector.unwrap_or_default());
                            if wanted.ports.is_some() {
                                spec.ports = wanted.ports;
                            }
                        }
                        None => {
                            self.services.insert(name, applied);
                        }
                    }
                }
                ("POST", "jobs", None) => {
                    let mut job: Job = from(req.body.clone());
                    job.metadata.uid = Some(self.uid());
                    self.jobs.insert(job.name_any(), job);
                }
                ("DELETE", "jobs", None) => {
                    self.jobs.remove(&name);
                }
                ("PATCH", "bluegreenreleases", Some("status")) => {
                    self.release.status = Some(req.status())
                }
                ("PATCH", "bluegreenreleases", None) => {
                    self.release = self
                        .json_patched_release(req)
                        .expect("the JSON patch applies");
                }
                ("POST", "events", None) => {}
                _ => panic!("unexpected write {}", req.describe()),
            }
        }
    }

    /// The ReplicaSet controller catches up: every ReplicaSet is fully available.
    fn settle(&mut self) {
        for rs in self.replica_sets.values_mut() {
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            rs.status = Some(from(
                json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas, "observedGeneration": rs.metadata.generation}),
            ));
        }
    }

    /// Every running smoke-test Job finishes. A failed one leaves its pod (owned by the Job)
    /// and that pod's log.
    fn finish_jobs(&mut self, succeeded: bool) {
        let running: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in running {
            let job = self.jobs.get_mut(&name).unwrap();
            let condition = if succeeded {
                json!({"type": "Complete", "status": "True"})
            } else {
                json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"})
            };
            job.status = Some(from(json!({"conditions": [condition]})));
            if !succeeded {
                let pod = format!("{name}-abcde");
                self.job_pods.push(from(json!({
                    "metadata": {"name": pod, "namespace": NS, "creationTimestamp": "2026-01-01T00:00:00Z",
                        "labels": {labels::RELEASE: "web", "job-name": name},
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.uid(), "controller": true}]},
                    "status": {"phase": "Failed"}
                })));
                self.logs.insert(pod, FAILED_LOG.into());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Driving reconciles

type Override<'a> = &'a dyn Fn(&Req) -> Option<(u16, String)>;

/// Runs one reconcile against the fake API server answering from `cluster` (or `fail` first).
async fn reconcile_with(cluster: &Cluster, fail: Override<'_>) -> Run {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let reporter = Reporter {
        controller: labels::FIELD_MANAGER.into(),
        instance: "test".into(),
    };
    let events = EventPublisher::new(client.clone(), reporter);
    let ctx = Arc::new(Context::new(
        client,
        cluster.caches(),
        Arc::new(Metrics::new()),
        events,
    ));
    let mut task = tokio::spawn(reconcile(Arc::new(cluster.release.clone()), ctx.clone()));
    let mut reqs = Vec::new();
    let served = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            tokio::select! {
                biased;
                done = &mut task => break done.expect("reconcile panicked"),
                next = handle.next_request() => {
                    let (request, respond) = next.expect("the client is alive while reconcile runs");
                    let mut req = Req::read(request).await;
                    let (code, body) = fail(&req).unwrap_or_else(|| cluster.answer(&req));
                    req.code = code;
                    respond.send_response(Response::builder().status(code).body(Body::from(body.into_bytes())).unwrap());
                    reqs.push(req);
                }
            }
        }
    })
    .await;
    match served {
        Ok(result) => Run { result, reqs, ctx },
        Err(_) => panic!(
            "reconcile hung; requests so far: {:#?}",
            reqs.iter().map(Req::describe).collect::<Vec<_>>()
        ),
    }
}

async fn reconcile_once(cluster: &Cluster) -> Run {
    reconcile_with(cluster, &|_| None).await
}

/// Reconciles (absorbing the writes each time) until a reconcile does what `done` looks for:
/// the planner may take a reconcile or two to record a step in the status before acting on
/// it, and these tests do not depend on how many. Every run before the last must succeed.
async fn drive_until(
    cluster: &mut Cluster,
    fail: Override<'_>,
    done: impl Fn(&Run) -> bool,
) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for _ in 0..4 {
        let run = reconcile_with(cluster, fail).await;
        cluster.absorb(&run);
        let finished = done(&run);
        runs.push(run);
        if finished {
            return runs;
        }
        runs.last().unwrap().ok();
    }
    panic!(
        "not reached after 4 reconciles: {:#?}",
        runs.iter().map(Run::trace).collect::<Vec<_>>()
    );
}

fn has(run: &Run, method: &str, resource: &str, name: &str) -> bool {
    run.reqs.iter().any(|r| r.is(method, resource, name))
}

/// Reconcile, absorb, settle and finish Jobs until a reconcile writes nothing.
async fn run_until_quiet(cluster: &mut Cluster) {
    for _ in 0..10 {
        let run = reconcile_once(cluster).await;
        run.ok();
        cluster.absorb(&run);
        cluster.settle();
        cluster.finish_jobs(true);
        if run.writes().is_empty() {
            return;
        }
    }
    panic!("no quiet state: {:#?}", cluster.release.status);
}

/// Version 1.0 live on blue, reached through the controller itself.
async fn stable_on_blue(tests: &[&str]) -> Cluster {
    let mut cluster = Cluster::new(release("registry.example/web:1.0", tests));
    run_until_quiet(&mut cluster).await;
    let status = cluster.status();
    assert_eq!(
        (status.phase, status.active_color),
        (Some(Phase::Stable), Some(Color::Blue))
    );
    cluster
}

/// Version 2.0 live on green, 1.0 on blue as the warm standby (inside scaleDownDelaySeconds).
async fn stable_on_green(tests: &[&str]) -> Cluster {
    let mut cluster = stable_on_blue(tests).await;
    cluster.set_image("registry.example/web:2.0");
    run_until_quiet(&mut cluster).await;
    let status = cluster.status();
    assert_eq!(
        (status.phase, status.active_color),
        (Some(Phase::Stable), Some(Color::Green))
    );
    assert_eq!(
        status
            .standby
            .as_ref()
            .map(|s| (s.color, s.scaled_down_at.is_none())),
        Some((Color::Blue, true))
    );
    assert_eq!(
        cluster.rs_replicas("web-blue"),
        3,
        "warm standby at full size"
    );
    cluster
}

/// The requeue `action` is at most `max` from now (and not "await change").
fn requeues_within(action: &Requeue, max: Duration) -> bool {
    (1..=max.as_millis() as u64).any(|ms| *action == Requeue::requeue(Duration::from_millis(ms)))
}

fn env_of(job: &Value) -> BTreeMap<String, String> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env injected")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn keys(map: &BTreeMap<String, String>) -> Vec<&str> {
    map.keys().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------
// Scenarios

/// First release: blue is created at the preview size with the preview Service, tested by a
/// Job once blue serves the preview, scaled to full size, re-read, and flipped to. The
/// active Service is a user's (adopted): the flip applies exactly the two selector keys.
#[tokio::test]
async fn first_release_deploys_tests_and_flips_to_blue() {
    let mut release = release("registry.example/web:1.0", &["smoke"]);
    release.spec.preview_replicas = Some(2);
    let mut cluster = Cluster::new(release);
    // The user's Service (e.g. from Helm), already carrying the release label.
    cluster.services.insert(
        ACTIVE.into(),
        from(json!({"metadata": {"name": ACTIVE, "namespace": NS, "labels": {labels::RELEASE: "web", "helm.sh/chart": "web-1"}},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})),
    );
    let revision = cluster.revision();

    // 1. Nothing exists: create blue at the preview size and the preview Service.
    let run = reconcile_once(&cluster).await;
    run.ok();
    let changes = run.changes();
    assert_eq!(
        changes.len(),
        3,
        "RS, preview Service, status: {:#?}",
        run.trace()
    );
    let rs = run.find(|r| r.is("PATCH", "replicasets", "web-blue"));
    rs.assert_apply();
    assert_eq!(rs.body["spec"]["replicas"], 2, "preview size");
    let rs_labels = rs.labels();
    assert_eq!(
        rs_labels.get(labels::COLOR).map(String::as_str),
        Some("blue")
    );
    assert_eq!(rs_labels.get(labels::REVISION), Some(&revision));
    assert_eq!(
        rs_labels.get(labels::RELEASE).map(String::as_str),
        Some("web")
    );
    let owner = &rs.body["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["name"].as_str(),
            owner["uid"].as_str()
        ),
        (Some("BlueGreenRelease"), Some("web"), Some("release-uid"))
    );
    assert_eq!(owner["controller"], true);
    assert_eq!(
        rs.body["spec"]["template"]["metadata"]["labels"][labels::REVISION],
        json!(revision),
        "pods carry the revision"
    );
    let preview = run.find(|r| r.is("PATCH", "services", PREVIEW));
    preview.assert_apply();
    assert_eq!(
        preview.selector().get(labels::COLOR).map(String::as_str),
        Some("blue")
    );
    assert_eq!(preview.selector().get(labels::REVISION), Some(&revision));
    let status = run.status();
    assert_eq!(status.phase, Some(Phase::Deploying));
    assert_eq!(status.rollout.as_ref().map(|r| r.color), Some(Color::Blue));
    run.assert_untouched("services", ACTIVE);
    assert!(
        run.events()
            .iter()
            .any(|(t, reason, _)| t == "Normal" && reason == "RolloutStarted")
    );
    cluster.absorb(&run);

    // 2. Blue is available and is exactly what the preview Service serves: start the test.
    cluster.settle();
    let runs = drive_until(&mut cluster, &|_| None, |run| {
        run.reqs
            .iter()
            .any(|r| r.method == "POST" && r.resource() == "jobs")
    })
    .await;
    let run = runs.last().unwrap();
    run.ok();
    let job = run.find(|r| r.method == "POST" && r.resource() == "jobs");
    assert_eq!(job.field_manager(), Some(labels::FIELD_MANAGER));
    assert_eq!(
        job.body["metadata"]["name"],
        json!(format!("web-smoke-{}", &revision[..8]))
    );
    assert_eq!(
        job.body["metadata"]["ownerReferences"][0]["uid"],
        "release-uid"
    );
    let env = env_of(&job.body);
    assert_eq!(
        env.get("BLUEGREEN_PREVIEW_URL").map(String::as_str),
        Some("http://web-preview.shop.svc")
    );
    assert_eq!(
        env.get("BLUEGREEN_RELEASE").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        env.get("BLUEGREEN_VERSION").map(String::as_str),
        Some("1.0")
    );
    assert_eq!(env.get("BLUEGREEN_COLOR").map(String::as_str), Some("blue"));
    assert_eq!(
        run.changes().len(),
        2,
        "the Job and the status: {:#?}",
        run.trace()
    );
    assert_eq!(run.status().phase, Some(Phase::Testing));

    // 3. The test passed: blue goes to full size (scale subresource) before any flip.
    cluster.finish_jobs(true);
    let runs = drive_until(&mut cluster, &|_| None, |run| {
        has(run, "PATCH", "replicasets", "web-blue")
    })
    .await;
    let run = runs.last().unwrap();
    run.ok();
    for earlier in &runs {
        earlier.assert_untouched("services", ACTIVE);
    }
    let scale = run.find(|r| r.is("PATCH", "replicasets", "web-blue"));
    assert_eq!(
        (scale.sub(), scale.patch_type(), scale.field_manager()),
        (Some("scale"), "merge", Some(labels::FIELD_MANAGER))
    );
    assert_eq!(scale.body, json!({"spec": {"replicas": 3}}));
    run.assert_untouched("services", ACTIVE);
    assert_eq!(run.status().phase, Some(Phase::Promoting));

    // 4. Blue is available at full size: re-read it, then flip in one apply.
    cluster.settle();
    let runs = drive_until(&mut cluster, &|_| None, |run| {
        has(run, "PATCH", "services", ACTIVE)
    })
    .await;
    let run = runs.last().unwrap();
    run.ok();
    let get = run
        .position(|r| r.is("GET", "replicasets", "web-blue"))
        .expect("fresh read before the flip");
    let flip = run
        .position(|r| r.is("PATCH", "services", ACTIVE))
        .expect("flip");
    assert!(get < flip, "{:#?}", run.trace());
    let flip = &run.reqs[flip];
    flip.assert_apply();
    assert_eq!(
        keys(&flip.selector()),
        vec!["app", labels::COLOR, labels::REVISION],
        "an adopted Service gets the two keys beside its own (the selector is atomic)"
    );
    assert_eq!(flip.selector()[labels::COLOR], "blue");
    assert_eq!(flip.selector()[labels::REVISION], revision);
    assert_eq!(
        flip.labels().get(labels::RELEASE).map(String::as_str),
        Some("web")
    );
    assert!(
        flip.body["spec"].get("ports").is_none()
            && flip.body["metadata"].get("ownerReferences").is_none(),
        "nothing else of the user's Service: {}",
        flip.body
    );
    assert_eq!(
        run.writes()
            .iter()
            .filter(|r| r.touches("services", ACTIVE))
            .count(),
        1
    );
    let status = run.status();
    assert_eq!(status.phase, Some(Phase::Stable));
    assert_eq!(
        (status.active_color, status.active_revision.as_ref()),
        (Some(Color::Blue), Some(&revision))
    );
    let latest = &status.history[0];
    assert_eq!(
        (latest.outcome, latest.color, latest.version.as_str()),
        (Outcome::Promoted, Color::Blue, "1.0")
    );
    assert!(
        run.events()
            .iter()
            .any(|(_, reason, _)| reason == "Promoted")
    );
    assert_eq!(
        cluster.services[ACTIVE]
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()["app"],
        "web",
        "the user's key stays"
    );
}

/// Upgrade from blue to green: the stale green ReplicaSet is replaced (uid precondition),
/// blue and the active Service are untouched until the flip, and blue keeps its size for
/// scaleDownDelaySeconds, then goes to standbyReplicas.
#[tokio::test]
async fn upgrade_replaces_green_flips_and_keeps_blue_warm() {
    let mut cluster = stable_on_blue(&[]).await;
    // Left from an earlier failed rollout: green at another revision, scaled to zero.
    let mut stale = cluster.replica_sets["web-blue"].clone();
    stale.metadata.name = Some("web-green".into());
    stale.metadata.uid = Some("stale-green-uid".into());
    stale
        .labels_mut()
        .insert(labels::COLOR.into(), "green".into());
    stale
        .labels_mut()
        .insert(labels::REVISION.into(), "0123456789".into());
    stale.spec.as_mut().unwrap().replicas = Some(0);
    cluster.replica_sets.insert("web-green".into(), stale);
    cluster.settle();
    let old_revision = cluster.revision();
    cluster.set_image("registry.example/web:2.0");
    let revision = cluster.revision();

    // 1. Replace green: delete with the old uid as precondition, then apply the new one.
    let run = reconcile_once(&cluster).await;
    run.ok();
    let delete = run
        .position(|r| r.is("DELETE", "replicasets", "web-green"))
        .expect("delete the stale green");
    let apply = run
        .position(|r| r.is("PATCH", "replicasets", "web-green"))
        .expect("apply the new green");
    assert!(delete < apply, "{:#?}", run.trace());
    let delete = &run.reqs[delete];
    assert_eq!(delete.body["preconditions"]["uid"], "stale-green-uid");
    assert_eq!(delete.body["propagationPolicy"], "Background");
    let apply = &run.reqs[apply];
    apply.assert_apply();
    assert_eq!(apply.labels().get(labels::REVISION), Some(&revision));
    assert_eq!(apply.body["spec"]["replicas"], 3);
    assert_eq!(
        apply.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/web:2.0"
    );
    let preview = run.find(|r| r.is("PATCH", "services", PREVIEW));
    assert_eq!(
        preview.selector().get(labels::COLOR).map(String::as_str),
        Some("green")
    );
    assert_eq!(run.status().phase, Some(Phase::Deploying));
    run.assert_untouched("replicasets", "web-blue");
    run.assert_untouched("services", ACTIVE);
    cluster.absorb(&run);

    // 2. Green is available and needs no tests: re-read it and flip.
    cluster.settle();
    let runs = drive_until(&mut cluster, &|_| None, |run| {
        has(run, "PATCH", "services", ACTIVE)
    })
    .await;
    for earlier in &runs {
        earlier.assert_untouched("replicasets", "web-blue");
    }
    let run = runs.last().unwrap();
    run.ok();
    let get = run
        .position(|r| r.is("GET", "replicasets", "web-green"))
        .expect("fresh read");
    let flip = run
        .position(|r| r.is("PATCH", "services", ACTIVE))
        .expect("flip");
    assert!(get < flip);
    let flip = &run.reqs[flip];
    flip.assert_apply();
    // The controller created this Service: it applies it whole, selector included.
    assert_eq!(flip.selector()[labels::COLOR], "green");
    assert_eq!(flip.selector()[labels::REVISION], revision);
    assert_eq!(flip.selector()["app"], "web");
    assert_eq!(
        flip.body["metadata"]["ownerReferences"][0]["uid"],
        "release-uid"
    );
    run.assert_untouched("replicasets", "web-blue");
    let status = run.status();
    assert_eq!(
        (status.phase, status.active_color),
        (Some(Phase::Stable), Some(Color::Green))
    );
    assert_eq!(status.history[0].outcome, Outcome::Promoted);
    let standby = status.standby.clone().expect("blue is the standby");
    assert_eq!(
        (standby.color, standby.revision.as_str()),
        (Color::Blue, old_revision.as_str())
    );

    // 3. Inside scaleDownDelaySeconds: nothing to write; come back when the delay is over.
    let run = reconcile_once(&cluster).await;
    assert!(run.writes().is_empty(), "{:#?}", run.trace());
    assert!(
        requeues_within(run.ok(), Duration::from_secs(300)),
        "{:?}",
        run.ok()
    );
    assert!(
        !requeues_within(run.ok(), Duration::from_secs(290)),
        "{:?}",
        run.ok()
    );

    // 4. The delay is over: blue goes to standbyReplicas (0) through its scale subresource.
    let mut status = cluster.status();
    let since = &mut status.standby.as_mut().unwrap().since;
    *since = Time(since.0.checked_sub(SignedDuration::from_secs(301)).unwrap());
    cluster.release.status = Some(status);
    let run = reconcile_once(&cluster).await;
    run.ok();
    let scale = run.find(|r| r.is("PATCH", "replicasets", "web-blue"));
    assert_eq!((scale.sub(), scale.patch_type()), (Some("scale"), "merge"));
    assert_eq!(scale.body["spec"]["replicas"], 0);
    run.assert_untouched("services", ACTIVE);
    run.assert_untouched("replicasets", "web-green");
    assert!(run.status().standby.unwrap().scaled_down_at.is_some());
}

/// A failed smoke test: the log tail is read and recorded, green goes to zero, the active
/// Service is never written, and a Warning Event says why.
#[tokio::test]
async fn failed_smoke_test_scales_green_to_zero_and_reports_the_log() {
    let mut cluster = stable_on_blue(&["smoke"]).await;
    cluster.set_image("registry.example/web:2.0");
    // Deploy green, then (once it is available) start its smoke test.
    let deploy = reconcile_once(&cluster).await;
    deploy.ok();
    cluster.absorb(&deploy);
    cluster.settle();
    let mut runs = drive_until(&mut cluster, &|_| None, |run| {
        run.reqs
            .iter()
            .any(|r| r.method == "POST" && r.resource() == "jobs")
    })
    .await;
    runs.push(deploy);
    cluster.finish_jobs(false);
    let pod = cluster.job_pods[0].name_any();

    let run = reconcile_once(&cluster).await;
    runs.push(run);
    let run = runs.last().unwrap();
    run.ok();
    let log = run.find(|r| r.method == "GET" && r.touches("pods", &pod) && r.sub() == Some("log"));
    assert_eq!(log.query.get("tailLines").map(String::as_str), Some("20"));
    let status = run.status();
    assert_eq!(status.phase, Some(Phase::Failed));
    let message = status.message.clone().unwrap_or_default();
    assert!(
        message.contains("smoke test failed: expected 200"),
        "{message}"
    );
    assert_eq!(status.history[0].outcome, Outcome::Failed);
    assert_eq!(status.active_color, Some(Color::Blue));
    let scale = run.find(|r| r.is("PATCH", "replicasets", "web-green"));
    assert_eq!(
        (scale.sub(), scale.patch_type(), scale.field_manager()),
        (Some("scale"), "merge", Some(labels::FIELD_MANAGER))
    );
    assert_eq!(scale.body, json!({"spec": {"replicas": 0}}));
    let warnings: Vec<_> = run
        .events()
        .into_iter()
        .filter(|(t, _, _)| t == "Warning")
        .collect();
    assert!(!warnings.is_empty(), "{:?}", run.events());
    assert!(
        warnings
            .iter()
            .any(|(_, reason, note)| reason == "SmokeTestFailed"
                && note.contains("GET /health -> 503")),
        "{warnings:?}"
    );
    for run in &runs {
        run.assert_untouched("services", ACTIVE);
        run.assert_untouched("replicasets", "web-blue");
    }
}

/// Fast rollback: the spec goes back to blue's template while blue is still warm: no new
/// ReplicaSet, no Job, one fresh read of blue and the flip. (The planner first records the
/// rollback in the status, so that a controller killed right after the flip still knows
/// what happened; the flip follows on the next reconcile.)
#[tokio::test]
async fn reverting_the_spec_flips_back_to_the_warm_standby() {
    let mut cluster = stable_on_green(&["smoke"]).await;
    cluster.set_image("registry.example/web:1.0");
    let blue_revision = cluster.revision();
    assert_eq!(
        cluster.replica_sets["web-blue"].labels()[labels::REVISION],
        blue_revision
    );

    let mut runs = Vec::new();
    while runs.len() < 3
        && !cluster.status().phase.is_some_and(|p| {
            p == Phase::Stable && cluster.status().active_color == Some(Color::Blue)
        })
    {
        let run = reconcile_once(&cluster).await;
        run.ok();
        cluster.absorb(&run);
        runs.push(run);
    }
    let reqs: Vec<&Req> = runs.iter().flat_map(|r| &r.reqs).collect();
    let trace: Vec<String> = reqs.iter().map(|r| r.describe()).collect();
    assert!(
        !reqs
            .iter()
            .any(|r| r.is_write() && r.resource() == "replicasets"),
        "no RS create, replace or scale: {trace:#?}"
    );
    assert!(
        !reqs.iter().any(|r| r.resource() == "jobs"),
        "no Job: {trace:#?}"
    );
    let gets: Vec<_> = reqs.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(gets.len(), 1, "{trace:#?}");
    assert!(gets[0].is("GET", "replicasets", "web-blue"));
    let get = reqs.iter().position(|r| r.method == "GET").unwrap();
    let flips: Vec<_> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is("PATCH", "services", ACTIVE))
        .collect();
    assert_eq!(flips.len(), 1, "{trace:#?}");
    let (flip_at, flip) = flips[0];
    assert!(get < flip_at);
    flip.assert_apply();
    assert_eq!(flip.selector()[labels::COLOR], "blue");
    assert_eq!(flip.selector()[labels::REVISION], blue_revision);
    let first = runs[0].status();
    assert!(
        first
            .rollout
            .as_ref()
            .is_some_and(|r| r.skips_tests() && r.color == Color::Blue),
        "{first:#?}"
    );
    let status = runs.last().unwrap().status();
    assert_eq!(status.history[0].outcome, Outcome::RolledBack);
    assert_eq!(
        (status.phase, status.active_color),
        (Some(Phase::Stable), Some(Color::Blue))
    );
    assert_eq!(status.standby.map(|s| s.color), Some(Color::Green));
    for run in &runs {
        run.status();
    }
}

/// Reconciling an unchanged world issues no writes (invariant 5), whether or not a standby
/// is waiting out its delay.
#[tokio::test]
async fn an_unchanged_world_issues_no_writes() {
    for cluster in [
        stable_on_blue(&["smoke"]).await,
        stable_on_green(&["smoke"]).await,
    ] {
        // The premise: the stored status is exactly what the planner computes now.
        let (observed, _) = observe::observe(&cluster.release, &cluster.caches(), Timestamp::now());
        let plan = plan::plan(&observed);
        assert!(plan.writes.is_empty());
        assert_eq!(Some(&plan.status), cluster.release.status.as_ref());

        let run = reconcile_once(&cluster).await;
        run.ok();
        assert!(run.writes().is_empty(), "{:#?}", run.trace());
        assert!(
            run.reqs.iter().all(|r| r.method == "GET"),
            "{:#?}",
            run.trace()
        );
    }
}

/// A manual action is recorded in the status first, and only then are its annotations
/// removed, by a JSON patch that tests the id it consumed.
#[tokio::test]
async fn an_action_is_recorded_before_its_annotations_are_removed() {
    let mut cluster = stable_on_green(&[]).await;
    let annotations = cluster.release.annotations_mut();
    annotations.insert(labels::ACTION.into(), "rollback".into());
    annotations.insert(labels::ACTION_ID.into(), "x".into());

    let run = reconcile_once(&cluster).await;
    run.ok();
    let status_at = run
        .position(|r| r.method == "PATCH" && r.sub() == Some("status"))
        .expect("status patch");
    let consume_at = run
        .position(|r| {
            r.method == "PATCH" && r.resource() == "bluegreenreleases" && r.sub().is_none()
        })
        .expect("annotation removal");
    assert!(status_at < consume_at, "{:#?}", run.trace());
    let last = run.status().last_action.expect("lastAction recorded");
    assert_eq!(
        (last.verb.as_str(), last.id.as_str(), last.result),
        ("rollback", "x", bluegreen_crd::ActionResult::Accepted)
    );
    let consume = &run.reqs[consume_at];
    assert_eq!(
        (consume.patch_type(), consume.field_manager()),
        ("json", Some(labels::FIELD_MANAGER))
    );
    let ops = consume.body.as_array().expect("JSON patch ops");
    assert!(ops.contains(&json!({"op": "test", "path": "/metadata/annotations/bluegreen.dev~1action-id", "value": "x"})), "{ops:?}");
    assert!(ops.contains(
        &json!({"op": "remove", "path": "/metadata/annotations/bluegreen.dev~1action-id"})
    ));
    assert!(
        ops.contains(
            &json!({"op": "remove", "path": "/metadata/annotations/bluegreen.dev~1action"})
        )
    );
    let test_at = ops.iter().position(|op| op["op"] == "test").unwrap();
    assert!(
        ops.iter().skip(test_at).any(|op| op["op"] == "remove"),
        "the test guards the removals"
    );
    assert_eq!(
        run.changes().len(),
        2,
        "accepting only records the intent: {:#?}",
        run.trace()
    );
    cluster.absorb(&run);
    assert!(!cluster.release.annotations().contains_key(labels::ACTION));

    // The next reconciles carry the rollback out.
    let runs = drive_until(&mut cluster, &|_| None, |run| {
        has(run, "PATCH", "services", ACTIVE)
    })
    .await;
    let run = runs.last().unwrap();
    run.ok();
    let flip = run.find(|r| r.is("PATCH", "services", ACTIVE));
    assert_eq!(flip.selector()[labels::COLOR], "blue");
    let status = run.status();
    assert_eq!(
        (status.phase, status.history[0].outcome),
        (Some(Phase::RolledBack), Outcome::RolledBack)
    );
    assert!(
        run.position(|r| r.resource() == "bluegreenreleases" && r.sub().is_none())
            .is_none(),
        "consumed once"
    );
}

/// A 409 on the flip fails the reconcile as a conflict (retried within a second), and the
/// status does not record a flip that did not happen.
#[tokio::test]
async fn a_conflict_on_the_flip_is_retried_quickly() {
    let mut cluster = stable_on_blue(&[]).await;
    cluster.set_image("registry.example/web:2.0");
    let run = reconcile_once(&cluster).await;
    run.ok();
    cluster.absorb(&run);
    cluster.settle();

    let fail = |r: &Req| {
        r.is("PATCH", "services", ACTIVE)
            .then(|| conflict(".spec.selector"))
    };
    let runs = drive_until(&mut cluster, &fail, |run| run.result.is_err()).await;
    let run = runs.last().unwrap();
    assert!(has(run, "PATCH", "services", ACTIVE), "{:#?}", run.trace());
    let error = run.result.as_ref().expect_err("the flip failed");
    assert!(error.is_conflict(), "{error}");
    assert!(
        run.status_patches().is_empty(),
        "no status after a failed write: {:#?}",
        run.trace()
    );
    let requeue = error_policy(Arc::new(cluster.release.clone()), error, run.ctx.clone());
    assert!(
        requeues_within(&requeue, Duration::from_secs(1)),
        "{requeue:?}"
    );
}

/// A release's bookkeeping (its failure count, its own writes not cached yet) goes with it:
/// the controller's memory follows the releases that exist.
#[tokio::test]
async fn a_deleted_release_is_forgotten() {
    let mut cluster = stable_on_blue(&[]).await;
    cluster.set_image("registry.example/web:2.0");
    let fail = |r: &Req| (r.method == "PATCH").then(|| conflict("anything"));
    let failed = reconcile_with(&cluster, &fail).await;
    let error = failed.result.as_ref().expect_err("the write failed");
    error_policy(Arc::new(cluster.release.clone()), error, failed.ctx.clone());
    assert!(failed.ctx.tracked_releases() > 0, "the failure is counted");
    failed
        .ctx
        .forget(&kube::runtime::reflector::ObjectRef::from_obj(
            &cluster.release,
        ));
    assert_eq!(failed.ctx.tracked_releases(), 0);
}

/// Invariant 1: the flip re-reads the ReplicaSet; if it is no longer fully available (the
/// cache was stale), the active Service is not written.
#[tokio::test]
async fn the_flip_is_refused_when_the_fresh_replica_set_is_not_available() {
    let mut cluster = stable_on_blue(&[]).await;
    cluster.set_image("registry.example/web:2.0");
    let run = reconcile_once(&cluster).await;
    run.ok();
    cluster.absorb(&run);
    cluster.settle();
    let mut degraded = cluster.replica_sets["web-green"].clone();
    degraded.status.as_mut().unwrap().available_replicas = Some(1);

    let fail = |r: &Req| {
        r.is("GET", "replicasets", "web-green")
            .then(|| (200, to_json(&degraded)))
    };
    let runs = drive_until(&mut cluster, &fail, |run| run.result.is_err()).await;
    for run in &runs {
        run.assert_untouched("services", ACTIVE);
    }
    let run = runs.last().unwrap();
    let error = run.result.as_ref().expect_err("the flip is refused");
    assert!(matches!(error, Error::FlipGuard { .. }), "{error}");
    run.assert_untouched("services", ACTIVE);
    assert!(run.status_patches().is_empty());
    let requeue = error_policy(Arc::new(cluster.release.clone()), error, run.ctx.clone());
    assert!(
        requeues_within(&requeue, Duration::from_secs(1)),
        "{requeue:?}"
    );
}
