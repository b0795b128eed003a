//! A rollout in flight: Deploying → Testing → (AwaitingPromotion) → Promoting → flip.

use std::collections::BTreeSet;

use bluegreen_crd::{
    Color, Outcome, Phase, PromotionMode, RolloutStatus, SmokeTestPhase, SmokeTestStatus,
};
use kube::ResourceExt;

use super::{Action, ActiveRef, Occurrence, Planner, rollout_id};
use crate::desired;
use crate::world::{JobState, ReplicaSetView};

impl Planner<'_> {
    /// Starts a rollout of the desired revision on the cold color.
    pub(super) fn start_rollout(&mut self, active: Option<ActiveRef>) {
        let now = self.now();
        // The first release goes to blue; later ones to the color that is not live.
        let color = active.as_ref().map_or(Color::Blue, |a| a.color.other());
        // Only the recorded previous color is a rollback target. A cold ReplicaSet that merely
        // runs the desired revision may be the leftover of a rollout that was never recorded
        // (killed after creating it) or that was superseded: treating it as a rollback would
        // skip the preview stage and the promotion gate and record `RolledBack` (invariant 6).
        let standby = self.status.standby.as_ref();
        let warm = standby.is_some_and(|s| s.color == color && s.revision == self.desired_revision)
            && self
                .obs
                .replica_set(color)
                .is_some_and(|rs| rs.revision == self.desired_revision && !rs.deleting);
        let rollback = active.is_some() && warm;
        let passed_before = self.status.history.iter().any(|h| {
            h.revision == self.desired_revision
                && matches!(h.outcome, Outcome::Promoted | Outcome::RolledBack)
        });
        let rollout = RolloutStatus {
            revision: self.desired_revision.clone(),
            version: self.desired_version.clone(),
            color,
            started_at: now.clone(),
            progressing_since: now,
            available_at: None,
            tests_passed_at: None,
            rollback,
            skip_tests: rollback && passed_before && !self.release.spec.retest_on_rollback,
            reason: None,
            promote_requested: false,
            test_round: 0,
            preview_replicas: (!rollback).then(|| self.release.spec.effective_preview_replicas()),
        };
        if !rollback {
            // The cold color is about to be replaced: whatever was warm there is gone.
            self.status.standby = None;
        }
        self.status.smoke_tests.clear();
        // Jobs of earlier rollouts have served their purpose (their results are in the
        // history); the new rollout's Jobs are created only once it is recorded. A rollback
        // leaves them for later: nothing may delay its flip.
        if !rollback {
            for job in self.obs.jobs.iter().filter(|j| !j.deleting) {
                self.actions.push(Action::DeleteJob {
                    name: job.name.clone(),
                    uid: job.uid.clone(),
                });
            }
        }
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

    /// Moves the rollout one step; stores it back into the status unless it ended.
    pub(super) fn progress_rollout(&mut self, mut rollout: RolloutStatus) {
        match self.step(&mut rollout) {
            Step::Continue => self.status.rollout = Some(rollout),
            Step::Failed => {}
            Step::Flipped => self.after_flip(),
        }
    }

    /// Once the flip is history: Stable when the spec's revision is live, otherwise held
    /// (a rollback by action leaves the spec asking for the revision rolled back from).
    pub(super) fn after_flip(&mut self) {
        if self.status.active_revision.as_deref() == Some(self.desired_revision.as_str()) {
            self.steady(Phase::Stable);
        } else {
            self.held();
        }
    }

    /// One step of the rollout.
    fn step(&mut self, r: &mut RolloutStatus) -> Step {
        let spec = &self.release.spec;
        let full = spec.replicas;
        let promoting = r.rollback || r.tests_passed_at.is_some();
        let target = if promoting {
            full
        } else {
            self.preview_size(r)
        };

        // 0. A smoke test of this rollout failed: the rollout fails, whatever the cold color
        // looks like now. A controller killed after the failure scaled the cold color down
        // (before its status) would otherwise grow it again, void and redo the round only to
        // fail the same way (invariant 6).
        if r.tests_passed_at.is_none()
            && self.has_failed_job(r)
            && matches!(self.run_smoke_tests(r), TestsOutcome::Failed)
        {
            return Step::Failed;
        }

        // 1. The cold ReplicaSet runs the rollout's revision at the stage's size. The deadline
        // is checked before the write: a rollout that fails here must not first create or
        // grow its ReplicaSet (the failure scales it to zero in the same plan; a controller
        // killed between the two writes would leave it at full size; invariant 6).
        let Some(rs) = self.obs.replica_set(r.color).cloned() else {
            let step = self.wait_for_availability(r, Phase::Deploying, None, target);
            if matches!(step, Step::Continue) {
                let rs =
                    desired::replica_set(self.release, r.color, &r.revision, &r.version, target);
                self.actions.push(Action::ApplyReplicaSet(Box::new(rs)));
                self.point_preview(r.color, &r.revision);
            }
            return step;
        };
        if rs.deleting {
            self.set_phase(
                Phase::Pending,
                format!("waiting for the old ReplicaSet {} to be deleted", rs.name),
            );
            return Step::Continue;
        }
        if rs.revision != r.revision {
            let stale_standby = self.before.standby.as_ref().is_some_and(|s| {
                s.color == r.color && s.revision == r.revision && s.revision != rs.revision
            });
            if stale_standby && self.status.standby.is_none() {
                // The stored status still names a standby on this color at the revision about
                // to be recreated, but its ReplicaSet was replaced meanwhile (by a rollout
                // whose status was lost in a crash). Record that it is gone first: killed
                // between this replace and the status, a controller would take the new
                // ReplicaSet for the warm standby and roll back to it, skipping the preview
                // stage and the promotion gate (invariant 6).
                self.set_phase(
                    Phase::Pending,
                    format!(
                        "the previous color {} is gone; redeploying version {}",
                        r.color, r.version
                    ),
                );
                self.requeue_in(std::time::Duration::from_secs(1));
                return Step::Continue;
            }
            let step = self.wait_for_availability(r, Phase::Deploying, None, target);
            if matches!(step, Step::Continue) {
                let replica_set =
                    desired::replica_set(self.release, r.color, &r.revision, &r.version, target);
                self.actions.push(Action::ReplaceReplicaSet {
                    old_uid: rs.uid.clone(),
                    replica_set: Box::new(replica_set),
                });
                self.point_preview(r.color, &r.revision);
            }
            return step;
        }
        if rs.desired != target {
            let phase = if promoting {
                Phase::Promoting
            } else {
                Phase::Deploying
            };
            let step = self.wait_for_availability(r, phase, None, target);
            if matches!(step, Step::Continue) {
                self.actions.push(Action::ScaleReplicaSet {
                    name: rs.name.clone(),
                    replicas: target,
                });
            }
            return step;
        }

        // 2. The preview Service points at the cold color.
        self.point_preview(r.color, &r.revision);

        // 3. Available at the stage's size, within the deadline.
        if !rs.available_at(target) {
            if r.available_at.is_some() && !promoting {
                // Availability lost while testing: results so far do not count (invariant 8).
                self.void_tests(r);
            }
            let phase = if promoting {
                Phase::Promoting
            } else {
                Phase::Deploying
            };
            return self.wait_for_availability(r, phase, Some(&rs), target);
        }
        if r.available_at.is_none() {
            r.available_at = Some(self.now());
        }

        // 4. Smoke tests.
        if r.tests_passed_at.is_none() {
            let needs_tests = !r.skip_tests && !spec.smoke_tests.is_empty();
            if needs_tests {
                match self.run_smoke_tests(r) {
                    TestsOutcome::Passed => {}
                    TestsOutcome::Waiting => return Step::Continue,
                    TestsOutcome::Failed => return Step::Failed,
                }
            } else {
                self.status.smoke_tests = skipped_tests(
                    spec.smoke_tests.iter().map(|t| t.name.as_str()),
                    r.skip_tests,
                );
            }
            r.tests_passed_at = Some(self.now());
            r.progressing_since = self.now();
            if target != full {
                // Promotion stage: the cold color goes to full size (step 1) once the passed
                // tests and the new deadline are recorded. Killed after a resize but before
                // its status, a controller would judge the resized color against the test
                // stage's size and its old deadline, and fail or shrink it (invariant 6).
                self.set_phase(
                    Phase::Promoting,
                    format!(
                        "smoke tests passed; scaling version {} on {} to {full} pods",
                        r.version, r.color
                    ),
                );
                self.requeue_in(std::time::Duration::from_secs(1));
                return Step::Continue;
            }
        }

        // 5. Promotion gate. A rollback was already asked for by a person or by git.
        if !r.rollback && !r.promote_requested {
            let passed_at = r.tests_passed_at.clone().expect("tests passed above");
            if spec.promotion.mode == PromotionMode::Manual {
                self.set_phase(
                    Phase::AwaitingPromotion,
                    format!(
                        "version {} is ready on {}; to flip, run `kubectl bluegreen promote {}`",
                        r.version,
                        r.color,
                        self.release.name_any(),
                    ),
                );
                return Step::Continue;
            }
            if let Some(left) =
                self.remaining(&passed_at, spec.promotion.auto_promote_after_seconds)
            {
                self.set_phase(
                    Phase::Promoting,
                    format!(
                        "smoke tests passed; promoting version {} in {}s",
                        r.version,
                        left.as_secs()
                    ),
                );
                self.requeue_in(left);
                return Step::Continue;
            }
        }

        // 6. The flip, towards a ReplicaSet seen fully available at full size, and only once
        // the stored status holds this rollout. A controller killed right after the flip
        // finishes the promotion from the stored rollout (`sync_active_from_world`, which
        // also re-reads the tests that passed in the flip's plan). A rollout started and
        // flipped in one plan (a fast rollback) would be taken for someone else's edit of the
        // Service, without history or standby (invariant 6): it is recorded first, at the
        // cost of one status write. A recorded rollout flips at once: the flip is what the
        // latency of a release is measured by.
        if !self
            .before
            .rollout
            .as_ref()
            .is_some_and(|b| same_rollout(b, r))
        {
            self.set_phase(
                Phase::Promoting,
                format!("promoting version {} on {}", r.version, r.color),
            );
            self.requeue_in(std::time::Duration::from_secs(1));
            return Step::Continue;
        }
        let adopted = self
            .obs
            .active_service
            .as_ref()
            .filter(|s| !s.created_by_controller())
            .map(|s| &s.selector);
        self.actions.push(Action::Flip {
            service: Box::new(desired::active_service(
                self.release,
                r.color,
                &r.revision,
                adopted,
            )),
            replica_set: rs.name.clone(),
            replicas: full,
        });
        self.finish_promotion(r);
        Step::Flipped
    }

    /// The cold color's size while it is tested: `spec.previewReplicas` when set, else the
    /// size fixed when the rollout started (a `spec.replicas` change mid-rollout only sets
    /// the size it is promoted at).
    fn preview_size(&self, r: &RolloutStatus) -> i32 {
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

    /// Points the preview Service at a color+revision when it does not already.
    pub(super) fn point_preview(&mut self, color: Color, revision: &str) {
        let wanted = self.wanted_preview(color, revision);
        let current = self.obs.preview_service.as_ref();
        let up_to_date = current.is_some_and(|svc| {
            let spec = wanted.spec.as_ref().expect("built with a spec");
            Some(&svc.selector) == spec.selector.as_ref()
                && ports_match(&svc.ports, spec.ports.as_deref().unwrap_or_default())
        });
        if !up_to_date {
            self.actions
                .push(Action::ApplyPreviewService(Box::new(wanted)));
        }
    }

    /// The preview Service as it should be (ports from the spec, else the active Service's).
    fn wanted_preview(&self, color: Color, revision: &str) -> k8s_openapi::api::core::v1::Service {
        let fallback = self
            .obs
            .active_service
            .as_ref()
            .map(|s| s.ports.clone())
            .unwrap_or_default();
        desired::preview_service(self.release, color, revision, &fallback)
    }

    /// Runs (or follows) the smoke-test Jobs of this rollout.
    fn run_smoke_tests(&mut self, r: &mut RolloutStatus) -> TestsOutcome {
        self.status.phase = Some(bluegreen_crd::Phase::Testing);
        let first_visit = self
            .before
            .rollout
            .as_ref()
            .is_none_or(|b| !same_rollout(b, r));
        if first_visit {
            // Jobs carry the rollout's identity; create them only once that identity is in
            // the stored status, so a crash cannot leave Jobs of an unrecorded rollout.
            self.set_phase(
                Phase::Testing,
                format!("starting smoke tests of version {}", r.version),
            );
            self.requeue_in(std::time::Duration::from_secs(1));
            return TestsOutcome::Waiting;
        }
        // The endpoints gate the start of tests; a failed one fails the rollout regardless.
        if !self.preview_endpoints_are_cold_pods(r) && !self.has_failed_job(r) {
            self.set_phase(
                Phase::Testing,
                format!("waiting for the preview Service's endpoints to be exactly the ready pods of version {}", r.version),
            );
            return TestsOutcome::Waiting;
        }

        let id = rollout_id(r);
        let now = self.now();
        let preview_ports = self
            .wanted_preview(r.color, &r.revision)
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default();
        let url = desired::preview_url(self.release, &preview_ports);
        let mut results = Vec::new();
        // A failed rollout starts no more tests: they would outlive it (its cancellation only
        // sees the Jobs that already exist), and a controller killed after cancelling one
        // would otherwise restart it.
        let failing = self.has_failed_job(r);
        let mut failure = None;
        for test in &self.release.spec.smoke_tests {
            let name = desired::job_name(self.release, &test.name, &r.revision);
            let mut entry = stored_or_pending(&self.status.smoke_tests, &test.name, &name);
            match self.obs.jobs.iter().find(|j| j.name == name) {
                None if failing => {}
                None => {
                    let ctx = desired::JobContext {
                        revision: &r.revision,
                        version: &r.version,
                        color: r.color,
                        rollout: &id,
                        preview_url: &url,
                    };
                    self.actions
                        .push(Action::CreateJob(Box::new(desired::smoke_test_job(
                            self.release,
                            test,
                            &ctx,
                        ))));
                    entry.phase = SmokeTestPhase::Running;
                    entry.started_at = Some(now.clone());
                    entry.finished_at = None;
                    entry.message = None;
                }
                Some(job) if job.rollout != id || job.deleting => {
                    // Left from an earlier attempt (or a voided round) at this revision:
                    // clear it, then rerun; one on its way out is only waited for.
                    if !job.deleting {
                        self.actions.push(Action::DeleteJob {
                            name: job.name.clone(),
                            uid: job.uid.clone(),
                        });
                    }
                    if !failing {
                        entry.phase = SmokeTestPhase::Pending;
                    }
                }
                Some(job) => match &job.state {
                    // About to be cancelled: its entry stays as stored, as it will be found
                    // when a controller killed after the cancellation restarts (the Job is
                    // gone then, the `None if failing` arm).
                    JobState::Running if failing => {}
                    JobState::Running => {
                        entry.phase = SmokeTestPhase::Running;
                        if entry.started_at.is_none() {
                            entry.started_at = Some(now.clone());
                        }
                    }
                    JobState::Succeeded => {
                        if entry.phase != SmokeTestPhase::Succeeded {
                            // A Job first seen finished still started: the status recording
                            // its start was lost when the controller was killed right after
                            // creating it (invariant 6: no lost history).
                            entry.started_at.get_or_insert_with(|| now.clone());
                            entry.phase = SmokeTestPhase::Succeeded;
                            entry.finished_at = Some(finished_time(job, &now));
                            entry.message = None;
                            self.occurrences
                                .push(Occurrence::SmokeTest { succeeded: true });
                        }
                    }
                    JobState::Failed { reason, message } => {
                        let tail = job
                            .log_tail
                            .as_deref()
                            .map(str::trim_end)
                            .filter(|t| !t.is_empty());
                        let detail = match tail {
                            Some(tail) => format!("{reason}: {message}\nlast log lines:\n{tail}"),
                            None => format!("{reason}: {message}"),
                        };
                        entry.phase = SmokeTestPhase::Failed;
                        entry.started_at.get_or_insert_with(|| now.clone());
                        entry.finished_at = Some(finished_time(job, &now));
                        entry.message = Some(detail.clone());
                        self.occurrences
                            .push(Occurrence::SmokeTest { succeeded: false });
                        failure.get_or_insert((test.name.clone(), job.name.clone(), detail));
                    }
                },
            }
            results.push(entry);
        }
        self.status.smoke_tests = results;

        if let Some((test, job, detail)) = failure {
            let snapshot = r.clone();
            self.fail(
                &snapshot,
                Outcome::Failed,
                "SmokeTestFailed",
                format!("smoke test '{test}' (Job {job}) failed; the active Service was not changed. {detail}"),
            );
            return TestsOutcome::Failed;
        }
        if self
            .status
            .smoke_tests
            .iter()
            .all(|t| t.phase == SmokeTestPhase::Succeeded)
        {
            self.event(
                false,
                "SmokeTestsPassed",
                format!("all smoke tests of version {} passed", r.version),
            );
            return TestsOutcome::Passed;
        }
        let running: Vec<_> = self
            .status
            .smoke_tests
            .iter()
            .filter(|t| t.phase != SmokeTestPhase::Succeeded)
            .map(|t| t.name.clone())
            .collect();
        self.set_phase(
            Phase::Testing,
            format!(
                "running smoke tests of version {}: {}",
                r.version,
                running.join(", ")
            ),
        );
        TestsOutcome::Waiting
    }

    /// A smoke-test Job of this rollout has failed.
    fn has_failed_job(&self, r: &RolloutStatus) -> bool {
        let id = rollout_id(r);
        self.obs.jobs.iter().any(|j| {
            j.rollout == id
                && j.revision == r.revision
                && matches!(j.state, JobState::Failed { .. })
                && self
                    .release
                    .spec
                    .smoke_tests
                    .iter()
                    .any(|t| j.name == desired::job_name(self.release, &t.name, &r.revision))
        })
    }

    /// Invariant 8: the preview Service serves exactly the cold revision's ready pods.
    fn preview_endpoints_are_cold_pods(&self, r: &RolloutStatus) -> bool {
        let cold_ready: BTreeSet<&str> = self
            .obs
            .pods
            .iter()
            .filter(|p| {
                p.ready
                    && !p.deleting
                    && p.color == Some(r.color)
                    && p.revision.as_deref() == Some(r.revision.as_str())
            })
            .map(|p| p.name.as_str())
            .collect();
        let endpoints = &self.obs.preview_endpoints;
        let all_cold = endpoints.iter().all(|e| {
            e.pod
                .as_deref()
                .is_some_and(|p| cold_ready.contains(p) || !e.ready && self.is_cold_pod(p, r))
        });
        let ready: BTreeSet<&str> = endpoints
            .iter()
            .filter(|e| e.ready)
            .filter_map(|e| e.pod.as_deref())
            .collect();
        let wanted = usize::try_from(self.preview_size(r)).unwrap_or(0);
        all_cold && !ready.is_empty() && ready == cold_ready && ready.len() >= wanted
    }

    fn is_cold_pod(&self, name: &str, r: &RolloutStatus) -> bool {
        self.obs.pods.iter().any(|p| {
            p.name == name
                && p.color == Some(r.color)
                && p.revision.as_deref() == Some(r.revision.as_str())
        })
    }

    /// Drops test results gathered while the cold color was not fully available.
    fn void_tests(&mut self, r: &mut RolloutStatus) {
        self.cancel_jobs(r);
        // Finished Jobs of this round carry its id; the next round's id differs, so they are
        // cleared and rerun instead of counting (invariant 8).
        r.test_round += 1;
        let now = self.now();
        r.available_at = None;
        r.progressing_since = now;
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
}

/// The same rollout: a rollout's id is its start time, at second precision, so a rollout that
/// supersedes another within the same second has the same id; the revision and color tell
/// them apart (a crash right after such a supersede must not take the stored old rollout
/// for the new one and create its Jobs before it is recorded).
fn same_rollout(a: &RolloutStatus, b: &RolloutStatus) -> bool {
    rollout_id(a) == rollout_id(b) && a.revision == b.revision && a.color == b.color
}

/// Where a rollout stands after a step.
enum Step {
    Continue,
    Failed,
    Flipped,
}

enum TestsOutcome {
    Passed,
    Waiting,
    Failed,
}

/// When a smoke-test Job finished: its own condition's time (not when the controller
/// noticed), else `now`.
pub(super) fn finished_time(
    job: &crate::world::JobView,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    job.finished_at
        .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time)
        .unwrap_or_else(|| now.clone())
}

/// A test's entry as the status has it, or a new `Pending` one for Job `job`.
pub(super) fn stored_or_pending(
    tests: &[SmokeTestStatus],
    name: &str,
    job: &str,
) -> SmokeTestStatus {
    tests
        .iter()
        .find(|t| t.name == name)
        .cloned()
        .unwrap_or_else(|| SmokeTestStatus {
            name: name.into(),
            job: job.into(),
            phase: SmokeTestPhase::Pending,
            started_at: None,
            finished_at: None,
            message: None,
        })
}

pub(super) fn skipped_tests<'a>(
    names: impl Iterator<Item = &'a str>,
    skipped: bool,
) -> Vec<SmokeTestStatus> {
    if !skipped {
        return Vec::new();
    }
    names
        .map(|name| SmokeTestStatus {
            name: name.into(),
            job: String::new(),
            phase: SmokeTestPhase::Skipped,
            started_at: None,
            finished_at: None,
            message: Some("revision already passed its smoke tests".into()),
        })
        .collect()
}

/// Port lists match on what the controller sets (the server fills in the rest).
fn ports_match(
    current: &[k8s_openapi::api::core::v1::ServicePort],
    wanted: &[k8s_openapi::api::core::v1::ServicePort],
) -> bool {
    current.len() == wanted.len()
        && current.iter().zip(wanted).all(|(c, w)| {
            c.port == w.port
                && c.name == w.name
                && c.protocol.as_deref().unwrap_or("TCP") == w.protocol.as_deref().unwrap_or("TCP")
                && (w.target_port.is_none() || c.target_port == w.target_port)
        })
}
