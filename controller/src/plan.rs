//! The pure planner: observed world in, next writes out (no I/O, no async, no clock).
//!
//! The planner decides from three things only: the spec (what the user wants), the status
//! (the controller's memory: the rollout in flight, the standby color, the history), and the
//! world (ReplicaSets, Services, endpoints, Jobs). Whatever it writes is idempotent, and the
//! world is checked before the status is trusted, so a controller killed between any two
//! writes picks up where it left off (invariant 6).
//!
//! Reading order: [`plan`] and [`Planner::run`] here (what is decided first: an invalid
//! spec, someone else's Service, a person's request, a pause), then `rollout.rs` (the
//! rollout as a state machine: its stage table is at the top), `smoke_tests.rs` (the Testing
//! stage's Jobs), `steady.rs` (no rollout: keep the active color at size, retire the
//! standby), `services.rs` (the two Services, drift, renamed Services), `requests.rs`
//! (promote, abort, retry, rollback), and `conditions.rs` (what the status derives).
//!
//! # Invariants
//! Code and tests cite these as "invariant N" (DESIGN §4); each has tests in `tests.rs`,
//! `proptests.rs` or `survival_tests.rs` that assert it, not only the happy path.
//! 1. The active Service only ever selects a color whose ReplicaSet was fully available at
//!    the moment of the flip.
//! 2. The active color is never scaled down or deleted while active.
//! 3. A failed smoke test, deadline or analysis before the flip never changes the active
//!    Service.
//! 4. After the first promotion, the active Service always selects exactly one color.
//! 5. Reconciling an unchanged world issues no writes (no hot loops, no status churn).
//! 6. A controller killed between any two writes and restarted converges to the same end
//!    state, with no duplicate Jobs and no lost history.
//! 7. The previous color stays at full size for `scaleDownDelaySeconds` after a flip.
//! 8. Smoke tests start only when the preview Service's endpoints are exactly the cold
//!    revision's ready pods, and a test that passes while the cold color lost availability
//!    does not count.
//! 9. A `spec.replicas` change is a scale, not a release: it resizes the active color
//!    directly and never starts a rollout.
//!
//! Rules of thumb that keep them by construction:
//! - the active color's ReplicaSet is only ever *scaled*, never replaced or deleted, and only
//!   to `spec.replicas`;
//! - the active Service is written by exactly one write, [`Write::Flip`], whose target is a
//!   ReplicaSet the planner saw fully available at full size (reconcile re-checks it just
//!   before the write);
//! - "record, then act" ([`Planner::wait_for_record`]): a write whose meaning depends on a
//!   fact this plan decided waits until the status holds that fact;
//! - nothing that depends on the clock is written unless a transition happens, so an
//!   unchanged world plans no writes.

mod analysis;
mod conditions;
mod requests;
mod rollout;
mod services;
mod smoke_tests;
mod steady;

#[cfg(test)]
mod analysis_tests;
#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod survival_tests;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bluegreen_crd::{
    BlueGreenRelease, BlueGreenReleaseStatus, Color, HistoryEntry, Outcome, Phase, RolloutStatus,
    SmokeTestPhase, revision::revision_of, validate::validate,
};
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::Time,
};
use kube::ResourceExt;

use crate::observe::Observed;
pub use crate::observe::whole_seconds;

/// A write to the world, executed by reconcile in order, before the status patch.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Create (or re-apply) a color's ReplicaSet whole, by server-side apply.
    ApplyReplicaSet(Box<ReplicaSet>),
    /// The cold color runs another revision: delete its ReplicaSet (precondition: `old_uid`)
    /// and create the new one. A ReplicaSet never rolls its pods, and its selector (which
    /// includes the revision) is immutable, so replacing is the only way.
    ReplaceReplicaSet {
        old_uid: String,
        replica_set: Box<ReplicaSet>,
    },
    /// Resize a ReplicaSet through its scale subresource, template untouched.
    ScaleReplicaSet { name: String, replicas: i32 },
    /// Apply the preview Service (or re-point it).
    ApplyPreviewService(Box<Service>),
    /// Point the active Service at a color+revision in one write (both selector keys).
    /// Reconcile first re-reads `replica_set` and refuses the write unless it is fully
    /// available at `replicas` (invariant 1).
    Flip {
        service: Box<Service>,
        replica_set: String,
        replicas: i32,
    },
    /// Start a smoke test.
    CreateJob(Box<Job>),
    /// Cancel or clear a smoke-test Job (`uid` as precondition).
    DeleteJob { name: String, uid: String },
    /// Delete a Service the controller created that the spec no longer names (a renamed
    /// `service.name` or `service.previewName`), `uid` as precondition.
    DeleteService { name: String, uid: String },
    /// Give back a user's Service the spec no longer names: the controller's selector keys
    /// and release label are removed (server-side apply of nothing), the rest is the user's.
    ReleaseService { name: String },
}

impl Write {
    /// Short name for logs and the audit of a reconcile.
    pub fn describe(&self) -> String {
        match self {
            Write::ApplyReplicaSet(rs) => format!("apply ReplicaSet {}", rs.name_any()),
            Write::ReplaceReplicaSet { replica_set, .. } => {
                format!("replace ReplicaSet {}", replica_set.name_any())
            }
            Write::ScaleReplicaSet { name, replicas } => {
                format!("scale ReplicaSet {name} to {replicas}")
            }
            Write::ApplyPreviewService(svc) => format!("apply preview Service {}", svc.name_any()),
            Write::Flip { service, .. } => format!("flip Service {}", service.name_any()),
            Write::CreateJob(job) => format!("create Job {}", job.name_any()),
            Write::DeleteJob { name, .. } => format!("delete Job {name}"),
            Write::DeleteService { name, .. } => format!("delete Service {name}"),
            Write::ReleaseService { name } => format!("release Service {name}"),
        }
    }
}

/// Something worth an Event on the release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// Something worth a metric, reported once the plan's writes succeeded.
#[derive(Clone, Debug, PartialEq)]
pub enum Occurrence {
    Flipped,
    RolledBack,
    RolloutFinished {
        outcome: Outcome,
        seconds: f64,
    },
    SmokeTest {
        succeeded: bool,
    },
    AnalysisSample {
        phase: bluegreen_crd::AnalysisPhase,
        result: &'static str,
    },
    /// A deployment (a rollout of kind Release) ended: the DORA deployment count.
    Deployed {
        outcome: Outcome,
    },
    /// A live version was taken back (a flip back to the previous color): a change failure,
    /// by the automatic verification or by a person (a rollback action, an abort during
    /// verification, a git revert).
    ChangeFailure {
        by_verification: bool,
    },
    /// A release went live: seconds from its commit (`bluegreen.dev/commit-time`).
    LeadTime {
        seconds: f64,
    },
    /// A failed or rolled-back release is Stable again: seconds since that failure.
    Restored {
        seconds: f64,
    },
}

/// What to do for one release, now.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    /// The full status after this reconcile; patched only when it differs from the observed.
    pub status: BlueGreenReleaseStatus,
    /// Remove the action annotations (after the status recording them is written).
    pub consume_request: bool,
    pub events: Vec<PlannedEvent>,
    pub occurrences: Vec<Occurrence>,
    /// When a clock-driven step is due (deadline, delay); `None` waits for a watch event.
    pub requeue_after: Option<Duration>,
}

/// Plans the next step for one release.
pub fn plan(observed: &Observed) -> Plan {
    let mut planner = Planner::new(observed);
    planner.run();
    planner.finish()
}

/// How grave a trouble of the active color is, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Gravity {
    /// Pods not (yet) available: a scale, or what a repair leaves until pods start.
    Symptom,
    /// The controller is putting something back (a selector, a deleted ReplicaSet).
    Repair,
    /// Only a person can fix it.
    NeedsPerson,
}

/// Why the release cannot progress without a person or a spec change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stall {
    reason: String,
    message: String,
}

/// The color currently behind the active Service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ActiveRef {
    color: Color,
    revision: String,
    version: String,
}

struct Planner<'a> {
    obs: &'a Observed,
    release: &'a BlueGreenRelease,
    /// The status as observed (the controller's memory at the start of this reconcile).
    before: BlueGreenReleaseStatus,
    status: BlueGreenReleaseStatus,
    desired_revision: String,
    desired_version: String,
    writes: Vec<Write>,
    events: Vec<PlannedEvent>,
    occurrences: Vec<Occurrence>,
    consume_request: bool,
    requeue: Option<Duration>,
    stall: Option<Stall>,
    /// What keeps the active color from serving (its ReplicaSet deleted, its Service
    /// pointed elsewhere): said in the status, and the release is not Ready meanwhile.
    active_trouble: Option<(Gravity, String)>,
    /// The active Service selects something other than the recorded active color and could
    /// not be put back yet: no rollout step is taken until it is (a rollout could replace
    /// the pods the Service sends customers to now, or expose untested ones).
    drift_pending: bool,
}

/// How often a release stalled on a Service another release owns looks again (that
/// release's deletion or a relabelled Service brings no event of this release).
const FOREIGN_SERVICE_RECHECK: Duration = Duration::from_secs(30);

/// How soon a plan that waits for its status to be recorded comes back (the shortest
/// requeue: timers are stored at second precision).
const RECORD_THEN_ACT: Duration = Duration::from_secs(1);

impl<'a> Planner<'a> {
    fn new(obs: &'a Observed) -> Self {
        let release = &obs.release;
        let before = release.status.clone().unwrap_or_default();
        Planner {
            obs,
            release,
            status: before.clone(),
            before,
            desired_revision: revision_of(&release.spec),
            desired_version: release.spec.effective_version(),
            writes: Vec::new(),
            events: Vec::new(),
            occurrences: Vec::new(),
            consume_request: false,
            requeue: None,
            stall: None,
            active_trouble: None,
            drift_pending: false,
        }
    }

    fn run(&mut self) {
        if let Err(invalid) = validate(self.release) {
            // An invalid spec never touches the world: only the status says what to fix.
            let message = invalid.to_string();
            self.refuse_pending_request("the spec is invalid; fix it first");
            self.set_phase(Phase::Failed, message.clone());
            self.stall = Some(Stall {
                reason: "InvalidSpec".into(),
                message,
            });
            return;
        }
        if let Some(stall) = self.foreign_service() {
            // Another release's traffic: never written, whatever this release wants.
            self.refuse_pending_request(&stall.message);
            self.set_phase(Phase::Failed, stall.message.clone());
            self.stall = Some(stall);
            self.requeue_in(FOREIGN_SERVICE_RECHECK);
            return;
        }
        self.sync_active_from_world();
        if self.handle_request() {
            return;
        }
        if self.release.spec.paused {
            self.set_phase(
                Phase::Paused,
                "paused: observing only (spec.paused is true)".into(),
            );
            return;
        }
        self.decide();
        self.retire_former_services();
    }

    /// The main decision once the spec is valid, actions are handled and not paused.
    fn decide(&mut self) {
        if self.drift_pending {
            self.maintain_active();
            let phase = self.status.phase.unwrap_or(Phase::Pending);
            let abort_waits = self
                .pending_request()
                .is_some_and(|(verb, _)| verb == "abort");
            let waiting = if abort_waits {
                "waiting for the active Service to be repaired before going on; the requested abort runs then"
            } else {
                "waiting for the active Service to be repaired before going on"
            };
            self.set_phase(phase, waiting.into());
            return;
        }
        if let Some(rollout) = self.status.rollout.clone() {
            if self.rollout_still_wanted(&rollout) {
                // A replicas change resizes the active color at once, even mid-rollout (a
                // manual promotion may wait for days); the rollout only sizes the cold color
                // (invariant 9).
                self.maintain_active();
                self.progress_rollout(rollout);
                return;
            }
            self.supersede(&rollout);
        }
        let active = self.active();
        if active
            .as_ref()
            .is_some_and(|a| a.revision == self.desired_revision)
        {
            if self.status.blocked_revision.as_deref() == Some(self.desired_revision.as_str()) {
                // Live but blocked: it failed its verification with nothing to flip back
                // to. It serves, and is not Ready until the spec changes or a retry.
                self.held();
            } else {
                self.steady(Phase::Stable);
            }
            return;
        }
        if self.status.blocked_revision.as_deref() == Some(self.desired_revision.as_str()) {
            self.held();
            return;
        }
        if let Some(stall) = self
            .missing_service_ports()
            .or_else(|| self.missing_prometheus())
        {
            self.set_phase(Phase::Failed, stall.message.clone());
            self.stall = Some(stall);
            return;
        }
        // As above: the active color is resized in the same plan that starts a rollout.
        self.maintain_active();
        self.start_rollout(active);
    }

    /// A rollout stays wanted while the spec asks for its revision, or, for a rollback
    /// requested by action, while the spec still asks for the revision rolled back from.
    fn rollout_still_wanted(&self, rollout: &RolloutStatus) -> bool {
        rollout.revision == self.desired_revision
            || (rollout.is_rollback()
                && rollout.reason.is_some()
                && self.status.blocked_revision.as_deref() == Some(self.desired_revision.as_str()))
    }

    /// The active Service must exist to copy ports from, or the spec must list them.
    fn missing_service_ports(&self) -> Option<Stall> {
        if self.release.spec.service.ports.is_empty() && self.obs.active_service.is_none() {
            return Some(Stall {
                reason: "InvalidSpec".into(),
                message: format!(
                    "spec.service.ports: required because Service '{}' does not exist yet and the controller must create it",
                    self.release.spec.service.name
                ),
            });
        }
        None
    }

    /// Analysis needs a Prometheus: the spec's, or the controller's default. Checked before
    /// a rollout starts, so that nothing is deployed for checks that could never pass.
    fn missing_prometheus(&self) -> Option<Stall> {
        let analysis = self.release.spec.analysis.as_ref()?;
        let has_checks = analysis.pre_promotion.is_some() || analysis.post_promotion.is_some();
        (has_checks && analysis.address().is_none() && !self.obs.default_prometheus).then(|| Stall {
            reason: "InvalidSpec".into(),
            message: "spec.analysis.prometheus.address: required because the controller has no default Prometheus (--prometheus-address, BLUEGREEN_PROMETHEUS_ADDRESS, chart value prometheus.address)".into(),
        })
    }

    /// The active color as the status remembers it (already reconciled with the world).
    fn active(&self) -> Option<ActiveRef> {
        Some(ActiveRef {
            color: self.status.active_color?,
            revision: self.status.active_revision.clone()?,
            version: self.status.active_version.clone().unwrap_or_default(),
        })
    }

    /// The status says what is live; the active Service's selector must agree. It may show
    /// the flip of the rollout in flight (the controller died right after it, before the
    /// status): that promotion is finished. Any other difference is drift — a person or a
    /// tool moved or stripped the selector keys — and the selector is put back on the
    /// recorded active color, which keeps its standby and history. Only a status that
    /// never recorded anything live believes the Service.
    fn sync_active_from_world(&mut self) {
        let remembered = self.active();
        let world = self.obs.active_service.as_ref().and_then(|s| s.target());
        match (world, remembered) {
            (Some((color, revision)), Some(active))
                if active.color == color && active.revision == revision => {}
            (Some((color, revision)), _) if self.shows_own_flip_of_rollout(color, &revision) => {
                // Killed after the flip, before the status: the promotion is done. The
                // flip's plan may also have seen the last tests pass: read them again.
                let rollout = self.status.rollout.clone().expect("matched above");
                self.record_finished_tests(&rollout);
                // So did the sample that passed the pre-promotion analysis, if any.
                if self
                    .status
                    .analysis
                    .as_ref()
                    .is_some_and(|a| a.rollout == rollout.id())
                {
                    self.end_analysis(
                        bluegreen_crd::AnalysisResult::Passed,
                        "passed (the flip shows it; its last sample was lost with the status)",
                    );
                }
                self.finish_promotion(&rollout);
            }
            (Some((color, revision)), None) => {
                // Nothing recorded yet (e.g. a release recreated over a Service that still
                // selects one of its colors): the Service is all there is to go by.
                let version = self
                    .obs
                    .replica_set(color)
                    .filter(|rs| rs.revision == revision)
                    .map(|rs| rs.version.clone())
                    .unwrap_or_default();
                self.status.active_color = Some(color);
                self.status.active_revision = Some(revision);
                self.status.active_version = Some(version);
            }
            (world, Some(active)) => self.repair_active_selector(world, &active),
            (None, None) => {}
        }
    }

    /// The active Service selects the rollout in flight, and the controller's own field
    /// manager set that: the flip happened and its status write was lost. A person who moves
    /// the selector onto the cold color has their own manager own it, and that is drift
    /// (it must not count as a promotion that skipped the tests).
    fn shows_own_flip_of_rollout(&self, color: Color, revision: &str) -> bool {
        self.status
            .rollout
            .as_ref()
            .is_some_and(|r| r.color == color && r.revision == revision)
            && self
                .obs
                .active_service
                .as_ref()
                .is_some_and(|s| s.selector_set_by_controller())
    }

    /// Marks the smoke tests whose Jobs of this rollout succeeded, for a flip whose own status
    /// write was lost.
    fn record_finished_tests(&mut self, rollout: &RolloutStatus) {
        if rollout.skips_tests() {
            let tests = &self.release.spec.smoke_tests;
            self.status.smoke_tests = smoke_tests::skipped_tests(tests, true);
            return;
        }
        let id = rollout.id();
        let now = self.now();
        // One entry per test of the spec, as `run_smoke_tests` builds them: a status that
        // never recorded a test (its Job was created by a controller killed before its status
        // write) gets the entry from the Job (invariant 6: no lost history).
        let mut entries = Vec::with_capacity(self.release.spec.smoke_tests.len());
        for test in &self.release.spec.smoke_tests {
            let job = crate::desired::job_name(self.release, &test.name, &rollout.revision);
            let mut entry =
                smoke_tests::stored_or_pending(&self.status.smoke_tests, &test.name, &job);
            let succeeded = self.obs.jobs.iter().find(|j| {
                j.name == job && j.rollout == id && j.state == crate::observe::JobState::Succeeded
            });
            if let Some(succeeded) = succeeded
                && entry.phase != SmokeTestPhase::Succeeded
            {
                entry.phase = SmokeTestPhase::Succeeded;
                entry.started_at.get_or_insert_with(|| now.clone());
                entry.finished_at = Some(smoke_tests::finished_time(succeeded, &now));
                entry.message = None;
            }
            entries.push(entry);
        }
        self.status.smoke_tests = entries;
    }

    /// Records a finished flip: the previous color becomes the warm standby; the rollout
    /// is history, or goes on to be verified (post-promotion analysis) before it is.
    fn finish_promotion(&mut self, rollout: &RolloutStatus) {
        let now = self.now();
        let previous = self.active().filter(|a| a.color != rollout.color);
        // Judged before this flip's own history entry.
        let change_failure = self.change_failure(rollout);
        let outcome = if rollout.is_rollback() {
            Outcome::RolledBack
        } else {
            Outcome::Promoted
        };
        let verifies = self.analyses(rollout, bluegreen_crd::AnalysisPhase::PostPromotion);
        if verifies {
            let mut verifying = rollout.clone();
            // Set from the flip alone, so that a flip whose status was lost records the same.
            verifying.progressing_since = now.clone();
            verifying.stage = bluegreen_crd::RolloutStage::Verifying {
                tests_passed_at: rollout
                    .stage
                    .tests_passed_at()
                    .cloned()
                    .unwrap_or(now.clone()),
                promoted_at: now.clone(),
            };
            self.start_analysis(&verifying, bluegreen_crd::AnalysisPhase::PostPromotion);
            self.status.rollout = Some(verifying);
        } else {
            self.record_rollout(rollout, Some(now.clone()), outcome, rollout.reason.clone());
            self.status.rollout = None;
            self.rollout_finished(rollout, outcome);
        }
        self.status.active_color = Some(rollout.color);
        self.status.active_revision = Some(rollout.revision.clone());
        self.status.active_version = Some(rollout.version.clone());
        self.status.standby = previous.map(|p| bluegreen_crd::Standby {
            color: p.color,
            version: p.version,
            revision: p.revision,
            since: now.clone(),
            scaled_down_at: None,
        });
        self.occurrences.push(Occurrence::Flipped);
        if rollout.is_rollback() {
            self.occurrences.push(Occurrence::RolledBack);
            if let Some(by_verification) = change_failure {
                self.occurrences
                    .push(Occurrence::ChangeFailure { by_verification });
            }
        } else if let Some(seconds) = self.lead_time() {
            self.occurrences.push(Occurrence::LeadTime { seconds });
        }
        self.event(
            false,
            if rollout.is_rollback() {
                "RolledBack"
            } else {
                "Promoted"
            },
            format!(
                "active Service {} now selects {} (version {}, revision {})",
                self.release.spec.service.name, rollout.color, rollout.version, rollout.revision
            ),
        );
    }

    /// A rollout that ends before its flip (failure, abort, supersede).
    fn end_rollout_before_flip(
        &mut self,
        rollout: &RolloutStatus,
        outcome: Outcome,
        reason: &str,
        message: &str,
    ) {
        let now = self.now();
        self.cancel_jobs(rollout);
        self.mark_unfinished_tests_cancelled(reason, &now);
        self.record_rollout(rollout, None, outcome, Some(format!("{reason}: {message}")));
        self.status.rollout = None;
        self.rollout_finished(rollout, outcome);
    }

    /// Whether a flip back to the warm previous color takes back a change (and whether the
    /// verification did): a version taken back during its verification, or one that was
    /// promoted after the version the flip returns to (a rollback action, a git revert). Not
    /// a change failure: forward to a newer version that is warm (a `retry` after a rollback).
    fn change_failure(&self, rollout: &RolloutStatus) -> Option<bool> {
        if !rollout.is_rollback() {
            return None;
        }
        let reason = rollout.reason.as_deref().unwrap_or_default();
        if reason.starts_with("VerificationFailed: ") {
            return Some(true);
        }
        if reason.starts_with("Aborted: ") || reason.starts_with("RollbackRequested: ") {
            return Some(false);
        }
        let active = self.active()?;
        let promoted = |revision: &str| {
            self.status
                .history
                .iter()
                .position(|h| h.revision == revision && h.outcome == Outcome::Promoted)
        };
        let newer = match (promoted(&active.revision), promoted(&rollout.revision)) {
            (Some(active), Some(target)) => active < target,
            (Some(_), None) => true,
            (None, _) => false,
        };
        newer.then_some(false)
    }

    /// A rollout ended: its duration, and for a deployment (kind Release) the DORA count.
    fn rollout_finished(&mut self, rollout: &RolloutStatus, outcome: Outcome) {
        self.occurrences.push(Occurrence::RolloutFinished {
            outcome,
            seconds: self.seconds_since(&rollout.started_at),
        });
        if !rollout.is_rollback() {
            self.occurrences.push(Occurrence::Deployed { outcome });
        }
    }

    /// Seconds from the commit CI recorded (`bluegreen.dev/commit-time`, RFC 3339) to now;
    /// `None` without the annotation, or with one that is not a time before now.
    fn lead_time(&self) -> Option<f64> {
        let annotation = self
            .release
            .annotations()
            .get(bluegreen_crd::labels::COMMIT_TIME)?;
        let committed: k8s_openapi::jiff::Timestamp = annotation.trim().parse().ok()?;
        let seconds = (self.obs.now.as_millisecond() - committed.as_millisecond()) as f64 / 1000.0;
        (seconds >= 0.0).then_some(seconds)
    }

    /// The DORA time to restore: a release that stalls on a failure or a rollback records
    /// when (`status.failedAt`, kept across restarts); once it is Stable again, the seconds
    /// since then are a restore, whatever came between (a fix, a git revert, a retry).
    fn note_restore(&mut self) {
        let stalled_on_failure =
            self.stall.as_ref().is_some_and(|s| {
                !matches!(
                    s.reason.as_str(),
                    "InvalidSpec" | "ServiceOwnedByAnotherRelease"
                )
            }) && matches!(self.status.phase, Some(Phase::Failed | Phase::RolledBack));
        if stalled_on_failure && self.status.failed_at.is_none() {
            self.status.failed_at = Some(self.now());
        }
        if self.status.phase == Some(Phase::Stable)
            && let Some(since) = self.status.failed_at.take()
        {
            let seconds = self.seconds_since(&since);
            self.occurrences.push(Occurrence::Restored { seconds });
        }
    }

    /// Supersede: the spec moved on mid-rollout. Jobs are cancelled; the cold ReplicaSet is
    /// left for the next rollout to replace (or scaled to zero when the spec went back to
    /// the active revision); the active color is never touched.
    fn supersede(&mut self, rollout: &RolloutStatus) {
        if let bluegreen_crd::RolloutStage::Verifying { promoted_at, .. } = &rollout.stage {
            // Live already: the newer spec cuts its verification short, and it is history
            // as promoted. The next rollout starts from it like from any live revision.
            self.end_analysis(
                bluegreen_crd::AnalysisResult::Overridden,
                "cut short by a spec change",
            );
            let reason = format!(
                "Superseded: verification cut short; the spec now asks for revision {}",
                self.desired_revision
            );
            self.close_promotion(rollout, &promoted_at.clone(), Some(reason));
            return;
        }
        self.end_rollout_before_flip(
            rollout,
            Outcome::Superseded,
            "Superseded",
            &format!("the spec now asks for revision {}", self.desired_revision),
        );
        self.event(
            false,
            "Superseded",
            format!(
                "rollout of version {} superseded by a spec change",
                rollout.version
            ),
        );
        let back_to_active = self
            .active()
            .is_some_and(|a| a.revision == self.desired_revision);
        if back_to_active && !rollout.is_rollback() {
            self.scale_cold_down(rollout, 0);
        }
        self.status.smoke_tests.clear();
    }

    /// Fails the rollout in flight: active untouched, cold scaled to zero, revision blocked.
    fn fail(&mut self, rollout: &RolloutStatus, outcome: Outcome, reason: &str, message: String) {
        self.end_rollout_before_flip(rollout, outcome, reason, &message);
        if rollout.is_rollback() {
            // The target was the warm standby: put it back as it was.
            let size = if self
                .status
                .standby
                .as_ref()
                .is_some_and(|s| s.scaled_down_at.is_some())
            {
                self.release.spec.standby_replicas
            } else {
                self.release.spec.replicas
            };
            self.scale_cold_down(rollout, size);
        } else {
            self.scale_cold_down(rollout, 0);
        }
        self.status.blocked_revision = Some(self.desired_revision.clone());
        self.event(true, reason, message.clone());
        self.set_phase(Phase::Failed, message.clone());
        self.stall = Some(Stall {
            reason: reason.into(),
            message,
        });
    }

    fn scale_cold_down(&mut self, rollout: &RolloutStatus, replicas: i32) {
        if let Some(rs) = self.obs.replica_set(rollout.color)
            && rs.revision == rollout.revision
            && !rs.deleting
            && rs.desired != replicas
        {
            self.writes.push(Write::ScaleReplicaSet {
                name: rs.name.clone(),
                replicas,
            });
        }
    }

    /// Deletes the rollout's Jobs that are still running (finished ones stay for their logs).
    fn cancel_jobs(&mut self, rollout: &RolloutStatus) {
        let rollout_id = rollout.id();
        for job in &self.obs.jobs {
            if job.rollout == rollout_id
                && !job.deleting
                && job.state == crate::observe::JobState::Running
            {
                self.writes.push(Write::DeleteJob {
                    name: job.name.clone(),
                    uid: job.uid.clone(),
                });
            }
        }
    }

    /// Tests that had not finished when their rollout ended are `Cancelled`, not left
    /// `Running` behind a deleted Job. Their entries are kept as the stored status had them
    /// (see `run_smoke_tests`), so a controller killed after deleting a Job and before its
    /// status write records the same entry on restart (invariant 6).
    fn mark_unfinished_tests_cancelled(&mut self, reason: &str, now: &Time) {
        for entry in &mut self.status.smoke_tests {
            if matches!(
                entry.phase,
                SmokeTestPhase::Pending | SmokeTestPhase::Running
            ) {
                entry.phase = SmokeTestPhase::Cancelled;
                entry.finished_at = Some(now.clone());
                entry.message = Some(format!("cancelled before it finished: {reason}"));
            }
        }
    }

    /// A rollout's entry in the history, finished now.
    fn record_rollout(
        &mut self,
        rollout: &RolloutStatus,
        promoted_at: Option<Time>,
        outcome: Outcome,
        reason: Option<String>,
    ) {
        self.push_history(HistoryEntry {
            revision: rollout.revision.clone(),
            version: rollout.version.clone(),
            color: rollout.color,
            started_at: rollout.started_at.clone(),
            promoted_at,
            finished_at: self.now(),
            outcome,
            reason,
        });
    }

    fn push_history(&mut self, entry: HistoryEntry) {
        self.status.history.insert(0, entry);
        let limit = usize::try_from(self.release.spec.revision_history_limit)
            .unwrap_or(1)
            .max(1);
        self.status.history.truncate(limit);
    }

    fn set_phase(&mut self, phase: Phase, message: String) {
        self.status.phase = Some(phase);
        self.status.message = Some(message);
    }

    /// What keeps the active color from serving as it should. The gravest report wins (the
    /// one that needs a person, then a repair under way, then its symptoms); among equals,
    /// the first.
    fn report_trouble(&mut self, gravity: Gravity, trouble: String) {
        if self
            .active_trouble
            .as_ref()
            .is_none_or(|(g, _)| gravity > *g)
        {
            self.active_trouble = Some((gravity, trouble));
        }
    }

    fn event(&mut self, warning: bool, reason: &str, note: String) {
        self.events.push(PlannedEvent {
            warning,
            reason: reason.into(),
            note,
        });
    }

    /// "Record, then act". Some writes mean something only together with a fact this plan
    /// has just decided: a smoke-test Job carries the identity of its rollout, a resize the
    /// deadline of a new stage, a flip the rollout it finishes. Were the controller killed
    /// after such a write and before the status patch that records the fact, its successor
    /// would misread the world (a Job of no rollout, a color too big for its stage, a flip
    /// nobody asked for: invariant 6). So the plan stops short of the write: the status patch
    /// of this plan records the fact, and the write follows on the next reconcile, which
    /// comes at once (the requeue) or with the watch event of the status patch.
    fn wait_for_record(&mut self, phase: Phase, message: String) -> rollout::Step {
        self.set_phase(phase, message);
        self.requeue_in(RECORD_THEN_ACT);
        rollout::Step::Continue
    }

    fn requeue_in(&mut self, after: Duration) {
        // At least a second: timers are stored at second precision.
        let after = after.max(Duration::from_secs(1));
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }

    fn now(&self) -> Time {
        Time(self.obs.now)
    }

    fn seconds_since(&self, then: &Time) -> f64 {
        (self.obs.now.as_millisecond() - then.0.as_millisecond()).max(0) as f64 / 1000.0
    }

    /// Seconds left until `since + seconds`, or `None` when that moment has passed.
    fn remaining(&self, since: &Time, seconds: i32) -> Option<Duration> {
        let due = since.0.as_second() + i64::from(seconds);
        let left = due - self.obs.now.as_second();
        (left > 0).then(|| Duration::from_secs(left as u64))
    }

    fn finish(mut self) -> Plan {
        self.note_restore();
        conditions::update(&mut self);
        Plan {
            writes: self.writes,
            status: self.status,
            consume_request: self.consume_request,
            events: self.events,
            occurrences: self.occurrences,
            requeue_after: self.requeue,
        }
    }
}
