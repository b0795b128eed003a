//! A rollout in flight, as a state machine: one function per [`RolloutStage`], and
//! [`Planner::transition`] between them.
//!
//! | stage               | leaves when                                   | for                          |
//! |---------------------|-----------------------------------------------|------------------------------|
//! | `Deploying`         | the cold color is available at its test size  | `Testing`, or `Promoting` when no test is needed |
//! | `Testing`           | every smoke test passed                       | `Analyzing` with pre-promotion checks, else `Promoting` |
//! | `Testing`           | the cold color lost availability              | `Deploying` (a new test round) |
//! | `Analyzing`         | enough passing samples in a row               | `Promoting` (table in `analysis.rs`) |
//! | `Promoting`         | Manual mode and nobody asked yet              | `AwaitingPromotion`          |
//! | `AwaitingPromotion` | a promote action, or the mode is Auto again   | `Promoting`                  |
//! | `Promoting`         | available at full size, delay over: the flip  | `Verifying` with post-promotion checks, else (history) |
//! | `Verifying`         | the window passed, or failed: a rollback      | (history; table in `analysis.rs`) |
//!
//! Every stage first goes through the same gates ([`Planner::step`]): a failed smoke test
//! ends the rollout, the cold ReplicaSet runs the rollout's revision at the stage's size,
//! the preview Service points at it; the deadline is checked before any write that would
//! grow the cold color.

use bluegreen_crd::{
    Color, Outcome, Phase, PromotionMode, RolloutKind, RolloutStage, RolloutStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::smoke_tests::{TestsOutcome, skipped_tests};
use super::{ActiveRef, Planner, Write};
use crate::desired;
use crate::observe::ReplicaSetView;

/// Where a rollout stands after a step.
pub(super) enum Step {
    Continue,
    /// The rollout ended without a flip of its own (failed, or replaced in the status by a
    /// rollback that follows it).
    Failed,
    Flipped,
    /// The flipped rollout passed its verification; the active color was maintained in
    /// this plan already.
    Verified,
}

/// What a stage decided: stay (with the step's result), or go to another stage.
pub(super) enum Next {
    Stay(Step),
    Enter(RolloutStage),
}

impl Planner<'_> {
    /// Starts a rollout of the desired revision on the cold color.
    pub(super) fn start_rollout(&mut self, active: Option<ActiveRef>) {
        // The first release goes to blue; later ones to the color that is not live.
        let color = active.as_ref().map_or(Color::Blue, |a| a.color.other());
        let rollback = active.is_some() && self.standby_is_warm_at(color, &self.desired_revision);
        let kind = if rollback {
            RolloutKind::Rollback {
                skip_tests: self.passed_before(&self.desired_revision)
                    && !self.release.spec.retest_on_rollback,
            }
        } else {
            RolloutKind::Release
        };
        let rollout = RolloutStatus::start(
            self.desired_revision.clone(),
            self.desired_version.clone(),
            color,
            self.now(),
            kind,
            (!rollback).then(|| self.release.spec.effective_preview_replicas()),
        );
        if !rollback {
            // The cold color is about to be replaced: whatever was warm there is gone.
            self.status.standby = None;
            // Jobs of earlier rollouts have served their purpose (their results are in the
            // history); the new rollout's Jobs are created only once it is recorded. A
            // rollback leaves them for later: nothing may delay its flip.
            for job in self.obs.jobs.iter().filter(|j| !j.deleting) {
                self.writes.push(Write::DeleteJob {
                    name: job.name.clone(),
                    uid: job.uid.clone(),
                });
            }
        }
        self.status.smoke_tests.clear();
        let how = if rollback {
            "fast rollback to the warm"
        } else {
            "rollout on"
        };
        self.event(
            false,
            "RolloutStarted",
            format!(
                "{how} {color} color: version {} (revision {})",
                rollout.version, rollout.revision
            ),
        );
        self.progress_rollout(rollout);
    }

    /// Only the recorded previous color is a rollback target. A cold ReplicaSet that merely
    /// runs the desired revision may be the leftover of a rollout that was never recorded
    /// (killed after creating it) or that was superseded: treating it as a rollback would skip
    /// the preview stage and the promotion gate and record `RolledBack` (invariant 6).
    fn standby_is_warm_at(&self, color: Color, revision: &str) -> bool {
        let recorded = matches!(&self.status.standby,
            Some(standby) if standby.color == color && standby.revision == revision);
        let running = self.obs.replica_set(color);
        recorded && running.is_some_and(|rs| rs.revision == revision && !rs.deleting)
    }

    /// The revision went live before, so it passed its smoke tests then.
    pub(super) fn passed_before(&self, revision: &str) -> bool {
        self.status.history.iter().any(|h| {
            h.revision == revision && matches!(h.outcome, Outcome::Promoted | Outcome::RolledBack)
        })
    }

    /// Moves the rollout one step; stores it back into the status unless it ended.
    pub(super) fn progress_rollout(&mut self, mut rollout: RolloutStatus) {
        match self.step(&mut rollout) {
            Step::Continue => self.status.rollout = Some(rollout),
            Step::Failed => {}
            Step::Flipped => self.after_flip(),
            Step::Verified => self.live(Phase::Stable),
        }
    }

    /// Once the flip is history: Stable when the spec's revision is live, otherwise held
    /// (a rollback by action leaves the spec asking for the revision rolled back from).
    pub(super) fn after_flip(&mut self) {
        if let Some(verifying) = self.status.rollout.clone().filter(|r| r.stage.is_flipped()) {
            self.progress_rollout(verifying);
            return;
        }
        if self.status.active_revision.as_deref() == Some(self.desired_revision.as_str()) {
            self.steady(Phase::Stable);
        } else {
            self.held();
        }
    }

    /// One step of the rollout: the gates every stage shares, then the stages, as far as the
    /// world allows in this plan.
    fn step(&mut self, r: &mut RolloutStatus) -> Step {
        if let RolloutStage::Verifying { promoted_at, .. } = &r.stage {
            // After the flip the rollout's color is the active one: none of the cold
            // color's gates apply.
            let promoted_at = promoted_at.clone();
            return self.verifying(r, &promoted_at);
        }
        // A smoke test of this rollout failed: the rollout fails, whatever the cold color
        // looks like now. A controller killed after the failure scaled the cold color down
        // (before its status) would otherwise grow it again, void and redo the round only to
        // fail the same way (invariant 6).
        if r.stage.tests_passed_at().is_none()
            && self.has_failed_job(r)
            && matches!(self.run_smoke_tests(r), TestsOutcome::Failed)
        {
            return Step::Failed;
        }
        // So did its pre-promotion analysis (recorded before it acts: `analysis.rs`).
        if matches!(r.stage, RolloutStage::Analyzing { .. }) && self.fail_on_recorded_analysis(r) {
            return Step::Failed;
        }
        let rs = match self.cold_color_in_place(r) {
            Ok(rs) => rs,
            Err(step) => return step,
        };
        self.point_preview(r.color, &r.revision);
        loop {
            let next = match r.stage.clone() {
                RolloutStage::Deploying => self.deploying(r, &rs),
                RolloutStage::Testing { .. } => self.testing(r, &rs),
                RolloutStage::Analyzing { tests_passed_at } => {
                    self.analyzing(r, &rs, tests_passed_at)
                }
                RolloutStage::AwaitingPromotion { tests_passed_at } => {
                    self.awaiting_promotion(r, &rs, tests_passed_at)
                }
                RolloutStage::Promoting {
                    tests_passed_at,
                    promote_requested,
                } => self.promoting(r, &rs, tests_passed_at, promote_requested),
                RolloutStage::Verifying { .. } => unreachable!("handled before the cold gates"),
            };
            match next {
                Next::Stay(step) => return step,
                Next::Enter(stage) => {
                    if let Some(step) = self.transition(r, stage) {
                        return step;
                    }
                }
            }
        }
    }

    /// Moves the rollout into `stage`. Returns the step to end this plan with when the new
    /// stage must be recorded before it acts; `None` goes on with the new stage at once.
    fn transition(&mut self, r: &mut RolloutStatus, stage: RolloutStage) -> Option<Step> {
        let size_before = self.stage_size(r);
        let from = std::mem::replace(&mut r.stage, stage);
        match (&from, &r.stage) {
            (
                RolloutStage::Testing { .. } | RolloutStage::Analyzing { .. },
                RolloutStage::Deploying,
            ) => {
                // Availability lost while testing: results so far do not count (invariant 8).
                self.void_tests(r);
                self.status.analysis = None;
                None
            }
            (_, RolloutStage::Analyzing { .. }) => {
                // The analysis has a deadline of its own; its first sample is taken once
                // this stage is recorded (`observe::sample_due` reads the stored status).
                r.progressing_since = self.now();
                self.start_analysis(r, bluegreen_crd::AnalysisPhase::PrePromotion);
                None
            }
            (
                RolloutStage::Deploying
                | RolloutStage::Testing { .. }
                | RolloutStage::Analyzing { .. },
                RolloutStage::Promoting { .. },
            ) => {
                // Tests passed: the promotion has a deadline of its own.
                r.progressing_since = self.now();
                let full = self.release.spec.replicas;
                // The cold color goes to full size once the passed tests and the new deadline
                // are recorded. Killed after a resize but before its status, a controller
                // would judge the resized color against the test stage's size and its old
                // deadline, and fail or shrink it (invariant 6).
                let resize = self.stage_size(r) != size_before;
                resize.then(|| {
                    self.wait_for_record(
                        Phase::Promoting,
                        format!(
                            "smoke tests passed; scaling version {} on {} to {full} pods",
                            r.version, r.color
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// Deploying: the cold color must become available at its test size.
    fn deploying(&mut self, r: &mut RolloutStatus, rs: &ReplicaSetView) -> Next {
        let target = self.stage_size(r);
        if !rs.available_at(target) {
            let phase = self.waiting_phase(r);
            return Next::Stay(self.wait_for_availability(r, phase, Some(rs), target));
        }
        let now = self.now();
        let needs_tests = !r.skips_tests() && !self.release.spec.smoke_tests.is_empty();
        if needs_tests {
            return Next::Enter(RolloutStage::Testing { available_at: now });
        }
        self.status.smoke_tests = skipped_tests(&self.release.spec.smoke_tests, r.skips_tests());
        Next::Enter(self.after_tests(r, now))
    }

    /// The stage after the smoke tests: pre-promotion analysis when the spec has it.
    fn after_tests(&self, r: &RolloutStatus, tests_passed_at: Time) -> RolloutStage {
        if self.analyses(r, bluegreen_crd::AnalysisPhase::PrePromotion) {
            RolloutStage::Analyzing { tests_passed_at }
        } else {
            RolloutStage::Promoting {
                tests_passed_at,
                promote_requested: false,
            }
        }
    }

    /// Testing: the smoke tests run while the cold color stays available.
    fn testing(&mut self, r: &mut RolloutStatus, rs: &ReplicaSetView) -> Next {
        if !rs.available_at(self.stage_size(r)) {
            return Next::Enter(RolloutStage::Deploying);
        }
        match self.run_smoke_tests(r) {
            TestsOutcome::Passed => Next::Enter(self.after_tests(r, self.now())),
            TestsOutcome::Waiting => Next::Stay(Step::Continue),
            TestsOutcome::Failed => Next::Stay(Step::Failed),
        }
    }

    /// AwaitingPromotion: full size and available, waiting for a person.
    fn awaiting_promotion(
        &mut self,
        r: &mut RolloutStatus,
        rs: &ReplicaSetView,
        tests_passed_at: Time,
    ) -> Next {
        let full = self.release.spec.replicas;
        if !rs.available_at(full) {
            return Next::Stay(self.wait_for_availability(r, Phase::Promoting, Some(rs), full));
        }
        if self.release.spec.promotion.mode != PromotionMode::Manual {
            return Next::Enter(RolloutStage::Promoting {
                tests_passed_at,
                promote_requested: false,
            });
        }
        self.set_phase(
            Phase::AwaitingPromotion,
            format!(
                "version {} is ready on {}; to flip, run `kubectl bluegreen promote {}`",
                r.version,
                r.color,
                self.release.name_any(),
            ),
        );
        Next::Stay(Step::Continue)
    }

    /// Promoting: full size and available, then the promotion gate, then the flip.
    fn promoting(
        &mut self,
        r: &mut RolloutStatus,
        rs: &ReplicaSetView,
        tests_passed_at: Time,
        promote_requested: bool,
    ) -> Next {
        let spec = &self.release.spec;
        let full = spec.replicas;
        if !rs.available_at(full) {
            return Next::Stay(self.wait_for_availability(r, Phase::Promoting, Some(rs), full));
        }
        // A rollback was already asked for, by a person or by git; so was a promotion.
        if !r.is_rollback() && !promote_requested {
            if spec.promotion.mode == PromotionMode::Manual {
                return Next::Enter(RolloutStage::AwaitingPromotion { tests_passed_at });
            }
            let delay = spec.promotion.auto_promote_after_seconds;
            if let Some(left) = self.remaining(&tests_passed_at, delay) {
                self.set_phase(
                    Phase::Promoting,
                    format!(
                        "smoke tests passed; promoting version {} in {}s",
                        r.version,
                        left.as_secs()
                    ),
                );
                self.requeue_in(left);
                return Next::Stay(Step::Continue);
            }
        }
        // The flip, only once the stored status holds this rollout. A controller killed right
        // after the flip finishes the promotion from the stored rollout
        // (`sync_active_from_world`, which also re-reads the tests that passed in the flip's
        // plan). A rollout started and flipped in one plan (a fast rollback) would be taken
        // for someone else's edit of the Service, without history or standby (invariant 6).
        // A recorded rollout flips at once: the flip is what the latency of a release is
        // measured by.
        if !self.rollout_recorded(r) {
            let message = format!("promoting version {} on {}", r.version, r.color);
            return Next::Stay(self.wait_for_record(Phase::Promoting, message));
        }
        self.flip(r, rs);
        Next::Stay(Step::Flipped)
    }

    /// Points the active Service at the cold color, which was seen fully available at full
    /// size (reconcile re-checks it just before the write: invariant 1).
    fn flip(&mut self, r: &RolloutStatus, rs: &ReplicaSetView) {
        let adopted = self
            .obs
            .active_service
            .as_ref()
            .filter(|s| !s.created_by_controller())
            .map(|s| &s.selector);
        self.writes.push(Write::Flip {
            service: Box::new(desired::active_service(
                self.release,
                r.color,
                &r.revision,
                adopted,
            )),
            replica_set: rs.name.clone(),
            replicas: self.release.spec.replicas,
        });
        self.finish_promotion(r);
    }

    /// The cold ReplicaSet runs the rollout's revision at the stage's size; until it does,
    /// the step that writes it. The deadline is checked before the write: a rollout that
    /// fails here must not first create or grow its ReplicaSet (the failure scales it to zero
    /// in the same plan; a controller killed between the two writes would leave it at full
    /// size; invariant 6).
    fn cold_color_in_place(&mut self, r: &mut RolloutStatus) -> Result<ReplicaSetView, Step> {
        let target = self.stage_size(r);
        let Some(rs) = self.obs.replica_set(r.color).cloned() else {
            let step = self.wait_for_availability(r, Phase::Deploying, None, target);
            if matches!(step, Step::Continue) {
                let rs =
                    desired::replica_set(self.release, r.color, &r.revision, &r.version, target);
                self.writes.push(Write::ApplyReplicaSet(Box::new(rs)));
                self.point_preview(r.color, &r.revision);
            }
            return Err(step);
        };
        if rs.deleting {
            self.set_phase(
                Phase::Pending,
                format!("waiting for the old ReplicaSet {} to be deleted", rs.name),
            );
            return Err(Step::Continue);
        }
        if rs.revision != r.revision {
            return Err(self.replace_cold_replica_set(r, &rs, target));
        }
        if rs.desired != target {
            let phase = self.waiting_phase(r);
            let step = self.wait_for_availability(r, phase, None, target);
            if matches!(step, Step::Continue) {
                self.writes.push(Write::ScaleReplicaSet {
                    name: rs.name.clone(),
                    replicas: target,
                });
            }
            return Err(step);
        }
        Ok(rs)
    }

    /// The cold color runs another revision: its ReplicaSet is replaced by the rollout's.
    fn replace_cold_replica_set(
        &mut self,
        r: &mut RolloutStatus,
        rs: &ReplicaSetView,
        target: i32,
    ) -> Step {
        let stale_standby = self.before.standby.as_ref().is_some_and(|s| {
            s.color == r.color && s.revision == r.revision && s.revision != rs.revision
        });
        if stale_standby && self.status.standby.is_none() {
            // The stored status still names a standby on this color at the revision about to
            // be recreated, but its ReplicaSet was replaced meanwhile (by a rollout whose
            // status was lost in a crash). Record that it is gone first: killed between this
            // replace and the status, a controller would take the new ReplicaSet for the warm
            // standby and roll back to it, skipping the preview stage and the promotion gate
            // (invariant 6).
            let message = format!(
                "the previous color {} is gone; redeploying version {}",
                r.color, r.version
            );
            return self.wait_for_record(Phase::Pending, message);
        }
        let step = self.wait_for_availability(r, Phase::Deploying, None, target);
        if matches!(step, Step::Continue) {
            let replica_set =
                desired::replica_set(self.release, r.color, &r.revision, &r.version, target);
            self.writes.push(Write::ReplaceReplicaSet {
                old_uid: rs.uid.clone(),
                replica_set: Box::new(replica_set),
            });
            self.point_preview(r.color, &r.revision);
        }
        step
    }

    /// The size of the cold color in the rollout's stage: its test size until the tests
    /// passed, full size after them and for a rollback throughout.
    pub(super) fn stage_size(&self, r: &RolloutStatus) -> i32 {
        if serves_next(r) {
            self.release.spec.replicas
        } else {
            self.preview_size(r)
        }
    }

    /// The phase shown while the cold color is resized or awaited: growing to serve
    /// (a rollback, or after the tests) is promoting; anything before the tests, deploying.
    fn waiting_phase(&self, r: &RolloutStatus) -> Phase {
        if serves_next(r) {
            Phase::Promoting
        } else {
            Phase::Deploying
        }
    }

    /// The cold color's size while it is tested: `spec.previewReplicas` when set, else the
    /// size fixed when the rollout started (a `spec.replicas` change mid-rollout only sets
    /// the size it is promoted at).
    pub(super) fn preview_size(&self, r: &RolloutStatus) -> i32 {
        let spec = &self.release.spec;
        spec.preview_replicas
            .or(r.preview_replicas)
            .unwrap_or(spec.replicas)
    }

    /// Waits for the cold ReplicaSet, failing the rollout once the progress deadline passes.
    fn wait_for_availability(
        &mut self,
        r: &mut RolloutStatus,
        phase: Phase,
        rs: Option<&ReplicaSetView>,
        target: i32,
    ) -> Step {
        let deadline = self.release.spec.progress_deadline_seconds;
        match self.remaining(&r.progressing_since, deadline) {
            Some(left) => {
                let progress = rs.map_or(String::new(), |rs| {
                    format!(" ({}/{} available)", rs.available.min(target), target)
                });
                self.set_phase(
                    phase,
                    format!(
                        "waiting for {} pods of version {} on {}{progress}",
                        target, r.version, r.color
                    ),
                );
                self.requeue_in(left);
                Step::Continue
            }
            None => {
                let available = rs.map_or(0, |rs| rs.available);
                let snapshot = r.clone();
                self.fail(
                    &snapshot,
                    Outcome::Failed,
                    "ProgressDeadlineExceeded",
                    format!(
                        "the {} color was not available within {deadline}s ({available}/{target} pods available); the active Service was not changed",
                        r.color
                    ),
                );
                Step::Failed
            }
        }
    }

    /// Drops test results gathered while the cold color was not fully available.
    fn void_tests(&mut self, r: &mut RolloutStatus) {
        self.cancel_jobs(r);
        // Finished Jobs of this round carry its id; the next round's id differs, so they are
        // cleared and rerun instead of counting (invariant 8).
        r.test_round += 1;
        r.progressing_since = self.now();
        self.status.smoke_tests.clear();
        self.event(
            true,
            "ColdColorUnavailable",
            format!(
                "the {} color lost availability during smoke tests; tests will rerun",
                r.color
            ),
        );
    }

    /// The stored status (this reconcile's starting point) holds this rollout.
    pub(super) fn rollout_recorded(&self, r: &RolloutStatus) -> bool {
        self.before
            .rollout
            .as_ref()
            .is_some_and(|b| same_rollout(b, r))
    }
}

/// The cold color is being readied to serve: a rollback throughout, any rollout once its
/// tests passed and its pre-promotion analysis (if any) is over. It is then at full size,
/// and waiting for it is promoting.
fn serves_next(r: &RolloutStatus) -> bool {
    r.is_rollback()
        || matches!(
            r.stage,
            RolloutStage::AwaitingPromotion { .. }
                | RolloutStage::Promoting { .. }
                | RolloutStage::Verifying { .. }
        )
}

/// The same rollout: a rollout's id is its start time, at second precision, so a rollout that
/// supersedes another within the same second has the same id; the revision and color tell
/// them apart (a crash right after such a supersede must not take the stored old rollout
/// for the new one and create its Jobs before it is recorded).
fn same_rollout(a: &RolloutStatus, b: &RolloutStatus) -> bool {
    a.id() == b.id() && a.revision == b.revision && a.color == b.color
}
