//! A miniature world for planner tests: applies a plan's actions the way the API server and
//! the built-in controllers would, at the level of the planner's views.

use std::collections::BTreeMap;

use bluegreen_crd::{BlueGreenRelease, Color, labels, revision::revision_of, testing::TestRelease};
use k8s_openapi::jiff::Timestamp;

use super::{Plan, Write, plan};
use crate::observe::{
    self, AnalysisSample, EndpointView, JobState, JobView, Observed, PodView, Reading,
    ReplicaSetView, ServiceView,
};

pub const T0: i64 = 1_790_000_000;

/// The shared test release (`TestRelease::web`) as JSON, one smoke test per name.
pub fn release_json(image: &str, tests: &[&str]) -> serde_json::Value {
    TestRelease::web(image, tests).json()
}

pub fn release(image: &str, tests: &[&str]) -> BlueGreenRelease {
    serde_json::from_value(release_json(image, tests)).expect("test release parses")
}

/// A simulated cluster around one release.
#[derive(Clone, Debug)]
pub struct Sim {
    pub release: BlueGreenRelease,
    pub replica_sets: BTreeMap<Color, ReplicaSetView>,
    pub active_service: Option<ServiceView>,
    pub preview_service: Option<ServiceView>,
    /// Services of the release under names the spec no longer gives.
    pub former_services: Vec<ServiceView>,
    pub jobs: Vec<JobView>,
    pub now: i64,
    /// Endpoints of the preview Service lag behind its selector until `sync_endpoints`.
    pub endpoints_lag: bool,
    pub preview_endpoints: Vec<EndpointView>,
    next_uid: u64,
    /// Every plan this world executed, in order.
    pub history: Vec<Plan>,
    /// What Prometheus answers per check name when a sample is due (absent: no data).
    pub readings: BTreeMap<String, Reading>,
}

impl Sim {
    pub fn new(release: BlueGreenRelease) -> Self {
        Sim {
            release,
            replica_sets: BTreeMap::new(),
            active_service: None,
            preview_service: None,
            former_services: Vec::new(),
            jobs: Vec::new(),
            now: T0,
            endpoints_lag: false,
            preview_endpoints: Vec::new(),
            next_uid: 0,
            history: Vec::new(),
            readings: BTreeMap::new(),
        }
    }

    pub fn observed(&self) -> Observed {
        Observed {
            release: self.release.clone(),
            replica_sets: self.replica_sets.values().cloned().collect(),
            active_service: self.active_service.clone(),
            preview_service: self.preview_service.clone(),
            former_services: self.former_services.clone(),
            preview_endpoints: if self.endpoints_lag {
                self.preview_endpoints.clone()
            } else {
                self.endpoints_now()
            },
            pods: self.pods(),
            jobs: self.jobs.clone(),
            now: Timestamp::from_second(self.now).unwrap(),
            analysis: self.analysis_sample(),
            default_prometheus: true,
        }
    }

    /// The sample reconcile would take now (`observe::sample_due`), read from `readings`.
    fn analysis_sample(&self) -> Option<AnalysisSample> {
        let now = Timestamp::from_second(self.now).unwrap();
        let request = observe::sample_due(&self.release, now)?;
        let readings = request
            .queries
            .iter()
            .map(|(name, _)| {
                let reading =
                    self.readings.get(name).cloned().unwrap_or_else(|| {
                        Reading::Inconclusive("the query returned no data".into())
                    });
                (name.clone(), reading)
            })
            .collect();
        Some(AnalysisSample {
            rollout: request.rollout,
            phase: request.phase,
            taken_at: now,
            readings,
        })
    }

    /// Every check of the release's analysis reads `value`.
    pub fn read_all(&mut self, value: f64) {
        let names: Vec<String> = self
            .release
            .spec
            .analysis
            .iter()
            .flat_map(|a| {
                let pre = a.pre_promotion.iter().flat_map(|p| &p.checks);
                let post = a.post_promotion.iter().flat_map(|p| &p.checks);
                pre.chain(post).map(|c| c.name.clone()).collect::<Vec<_>>()
            })
            .collect();
        for name in names {
            self.readings.insert(name, Reading::Value(value));
        }
    }

    /// Plans without executing.
    pub fn plan(&self) -> Plan {
        plan(&self.observed())
    }

    /// Plans and executes everything: the writes, then the status, then annotation removal.
    pub fn reconcile(&mut self) -> Plan {
        let plan = self.plan();
        self.execute(&plan, plan.writes.len(), true);
        plan
    }

    /// Executes the first `writes` actions of a plan, and the status patch only if
    /// `status` (a controller killed between two writes).
    pub fn execute(&mut self, plan: &Plan, writes: usize, status: bool) {
        for action in plan.writes.iter().take(writes) {
            self.apply(action);
        }
        self.after_writes(plan, status);
    }

    /// [`Sim::execute`], calling `check` with the world as it stands right before each
    /// write (property tests assert invariants there); stops at the first error.
    pub fn execute_checked<E>(
        &mut self,
        plan: &Plan,
        writes: usize,
        status: bool,
        mut check: impl FnMut(&Sim, &Write) -> Result<(), E>,
    ) -> Result<(), E> {
        for action in plan.writes.iter().take(writes) {
            check(self, action)?;
            self.apply(action);
        }
        self.after_writes(plan, status);
        Ok(())
    }

    /// The status patch and annotation removal (when `status`), then the endpoints catch up.
    fn after_writes(&mut self, plan: &Plan, status: bool) {
        if status {
            self.release.status = Some(plan.status.clone());
            if plan.consume_request
                && let Some(a) = self.release.metadata.annotations.as_mut()
            {
                a.remove(labels::ACTION);
                a.remove(labels::ACTION_ID);
            }
        }
        self.history.push(plan.clone());
        if !self.endpoints_lag {
            self.preview_endpoints = self.endpoints_now();
        }
    }

    /// [`Sim::run_until_quiet`] until the next plan would not change the status either (an
    /// accepted action changes only the status; the plan after it moves on).
    pub fn quiesce(&mut self) {
        for _ in 0..10 {
            self.run_until_quiet(20);
            if self.plan().status == self.status() {
                return;
            }
        }
        panic!("never quiet: {:#?}", self.release.status);
    }

    /// Reconciles until the planner has nothing to write, settling pods in between.
    pub fn run_until_quiet(&mut self, max: usize) -> Plan {
        for _ in 0..max {
            let plan = self.reconcile();
            self.settle();
            self.finish_jobs(true);
            if plan.writes.is_empty()
                && Some(&plan.status) == self.release.status.as_ref()
                && self.plan().writes.is_empty()
            {
                return plan;
            }
        }
        panic!(
            "no quiet state after {max} reconciles: {:#?}",
            self.release.status
        );
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("uid-{}", self.next_uid)
    }

    pub fn apply(&mut self, action: &Write) {
        match action {
            Write::ApplyReplicaSet(rs) => {
                let mut view = observe::replica_set_view(rs).expect("planned RS is a color view");
                match self.replica_sets.get(&view.color) {
                    Some(existing) => {
                        assert_eq!(
                            existing.revision, view.revision,
                            "apply never changes an RS revision in place"
                        );
                        view = ReplicaSetView {
                            desired: view.desired,
                            generation: existing.generation + 1,
                            ..existing.clone()
                        };
                    }
                    None => {
                        view.uid = self.uid();
                        view.generation = 1;
                    }
                }
                self.replica_sets.insert(view.color, view);
            }
            Write::ReplaceReplicaSet {
                old_uid,
                replica_set,
            } => {
                let mut view =
                    observe::replica_set_view(replica_set).expect("planned RS is a color view");
                let existing = self
                    .replica_sets
                    .get(&view.color)
                    .expect("replace needs an RS");
                assert_eq!(&existing.uid, old_uid, "replace precondition");
                view.uid = self.uid();
                view.generation = 1;
                self.replica_sets.insert(view.color, view);
            }
            Write::ScaleReplicaSet { name, replicas } => {
                let rs = self
                    .replica_sets
                    .values_mut()
                    .find(|rs| &rs.name == name)
                    .expect("scaled RS exists");
                rs.desired = *replicas;
                rs.generation += 1;
                rs.current = rs.current.min(*replicas);
                rs.ready = rs.ready.min(*replicas);
                rs.available = rs.available.min(*replicas);
            }
            Write::ApplyPreviewService(svc) => {
                self.preview_service = Some(observe::service_view(svc));
            }
            Write::Flip { service, .. } => {
                let mut wanted = observe::service_view(service);
                // Server-side apply makes the controller's field manager own what it set.
                wanted.selector_writer = Some(labels::FIELD_MANAGER.into());
                match &mut self.active_service {
                    Some(existing) => {
                        // The selector is an atomic map: an apply replaces it whole.
                        existing.selector = wanted.selector;
                        existing.selector_writer = wanted.selector_writer;
                        existing.labels.extend(wanted.labels);
                        if !wanted.ports.is_empty() {
                            existing.ports = wanted.ports;
                        }
                    }
                    None => self.active_service = Some(wanted),
                }
            }
            Write::CreateJob(job) => {
                let mut view = observe::job_view(job).expect("planned Job is a smoke test");
                assert!(
                    self.jobs.iter().all(|j| j.name != view.name),
                    "duplicate Job {}",
                    view.name
                );
                view.uid = self.uid();
                self.jobs.push(view);
            }
            Write::DeleteJob { name, uid } => {
                self.jobs.retain(|j| !(&j.name == name && &j.uid == uid));
            }
            Write::DeleteService { name, uid } => {
                assert_ne!(
                    name, &self.release.spec.service.name,
                    "the active Service is never deleted"
                );
                self.former_services
                    .retain(|s| !(&s.name == name && &s.uid == uid));
            }
            Write::ReleaseService { name } => {
                // Without the release label it leaves the release's view of the world.
                self.former_services.retain(|s| &s.name != name);
            }
        }
    }

    /// Every ReplicaSet becomes fully available at its desired size.
    pub fn settle(&mut self) {
        for rs in self.replica_sets.values_mut() {
            rs.current = rs.desired;
            rs.ready = rs.desired;
            rs.available = rs.desired;
            rs.observed_generation = rs.generation;
        }
    }

    /// The RS controller has seen the spec, but only `available` pods are ready.
    pub fn set_available(&mut self, color: Color, available: i32) {
        let rs = self.replica_sets.get_mut(&color).expect("RS exists");
        rs.current = rs.desired;
        rs.ready = available;
        rs.available = available;
        rs.observed_generation = rs.generation;
    }

    pub fn finish_jobs(&mut self, succeeded: bool) {
        let now = Timestamp::from_second(self.now).unwrap();
        for job in &mut self.jobs {
            if job.state == JobState::Running {
                job.finished_at = Some(now);
                job.state = if succeeded {
                    JobState::Succeeded
                } else {
                    job.log_tail = Some("GET /health -> 503".into());
                    JobState::Failed {
                        reason: "BackoffLimitExceeded".into(),
                        message: "Job has reached the specified backoff limit".into(),
                    }
                };
            }
        }
    }

    pub fn advance(&mut self, seconds: i64) {
        self.now += seconds;
    }

    pub fn set_image(&mut self, image: &str) {
        let spec = &mut self.release.spec;
        spec.template.spec.as_mut().unwrap().containers[0].image = Some(image.into());
        self.bump_generation();
    }

    pub fn bump_generation(&mut self) {
        let generation = self.release.metadata.generation.unwrap_or(1);
        self.release.metadata.generation = Some(generation + 1);
    }

    pub fn request(&mut self, verb: &str, id: &str) {
        let annotations = self
            .release
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        annotations.insert(labels::ACTION.into(), verb.into());
        annotations.insert(labels::ACTION_ID.into(), id.into());
    }

    pub fn desired_revision(&self) -> String {
        revision_of(&self.release.spec)
    }

    pub fn status(&self) -> bluegreen_crd::BlueGreenReleaseStatus {
        self.release.status.clone().unwrap_or_default()
    }

    /// (color, revision) the active Service selects.
    pub fn active_target(&self) -> Option<(Color, String)> {
        self.active_service.as_ref().and_then(|s| s.target())
    }

    pub fn pods(&self) -> Vec<PodView> {
        self.replica_sets
            .values()
            .flat_map(|rs| {
                (0..rs.current).map(move |i| PodView {
                    name: format!("{}-{}-{i}", rs.name, rs.revision),
                    color: Some(rs.color),
                    revision: Some(rs.revision.clone()),
                    ready: i < rs.ready,
                    deleting: false,
                })
            })
            .collect()
    }

    fn endpoints_now(&self) -> Vec<EndpointView> {
        let Some(target) = self.preview_service.as_ref().and_then(|s| s.target()) else {
            return Vec::new();
        };
        self.pods()
            .into_iter()
            .filter(|p| {
                p.color == Some(target.0) && p.revision.as_deref() == Some(target.1.as_str())
            })
            .map(|p| EndpointView {
                pod: Some(p.name),
                ready: p.ready,
            })
            .collect()
    }
}
