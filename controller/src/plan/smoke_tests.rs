//! The Testing stage's work: smoke-test Jobs against the preview Service, and their results.

use std::collections::BTreeSet;

use bluegreen_crd::{Phase, RolloutStatus, SmokeTest, SmokeTestPhase, SmokeTestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Occurrence, Planner, Write};
use crate::desired;
use crate::observe::{JobState, JobView};

/// How the smoke tests of a rollout stand.
pub(super) enum TestsOutcome {
    Passed,
    Waiting,
    Failed,
}

/// The first failed test of a round: its name, its Job, and what went wrong.
struct TestFailure {
    test: String,
    job: String,
    detail: String,
}

/// What every test of one round shares.
struct Round<'a> {
    id: String,
    url: String,
    now: Time,
    /// A test of the round failed: no more Jobs start, running ones are about to be cancelled.
    failing: bool,
    rollout: &'a RolloutStatus,
}

impl Planner<'_> {
    /// Runs (or follows) the smoke-test Jobs of this rollout.
    pub(super) fn run_smoke_tests(&mut self, r: &RolloutStatus) -> TestsOutcome {
        self.status.phase = Some(Phase::Testing);
        if !self.rollout_recorded(r) {
            // Jobs carry the rollout's identity; create them only once that identity is in
            // the stored status, so a crash cannot leave Jobs of an unrecorded rollout.
            let message = format!("starting smoke tests of version {}", r.version);
            self.wait_for_record(Phase::Testing, message);
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
        let preview_ports = self
            .wanted_preview(r.color, &r.revision)
            .spec
            .and_then(|s| s.ports)
            .unwrap_or_default();
        let round = Round {
            id: r.id(),
            url: desired::preview_url(self.release, &preview_ports),
            now: self.now(),
            // A failed rollout starts no more tests: they would outlive it (its cancellation
            // only sees the Jobs that already exist), and a controller killed after
            // cancelling one would otherwise restart it.
            failing: self.has_failed_job(r),
            rollout: r,
        };
        let mut results = Vec::with_capacity(self.release.spec.smoke_tests.len());
        let mut failure = None;
        let release = self.release;
        for test in &release.spec.smoke_tests {
            let (entry, failed) = self.follow_test(test, &round);
            if failure.is_none() {
                failure = failed;
            }
            results.push(entry);
        }
        self.status.smoke_tests = results;
        self.tests_outcome(r, failure)
    }

    /// One test of the round: its Job started, followed, or cleared; its status entry.
    fn follow_test(
        &mut self,
        test: &SmokeTest,
        round: &Round<'_>,
    ) -> (SmokeTestStatus, Option<TestFailure>) {
        let r = round.rollout;
        let name = desired::job_name(self.release, &test.name, &r.revision);
        let mut entry = stored_or_pending(&self.status.smoke_tests, &test.name, &name);
        let Some(job) = self.obs.jobs.iter().find(|j| j.name == name) else {
            if !round.failing {
                self.start_test(test, round);
                entry.phase = SmokeTestPhase::Running;
                entry.started_at = Some(round.now.clone());
                entry.finished_at = None;
                entry.message = None;
            }
            return (entry, None);
        };
        if job.rollout != round.id || job.deleting {
            // Left from an earlier attempt (or a voided round) at this revision: clear it,
            // then rerun; one on its way out is only waited for.
            if !job.deleting {
                self.writes.push(Write::DeleteJob {
                    name: job.name.clone(),
                    uid: job.uid.clone(),
                });
            }
            if !round.failing {
                entry.phase = SmokeTestPhase::Pending;
            }
            return (entry, None);
        }
        let now = &round.now;
        match &job.state {
            // About to be cancelled: its entry stays as stored, as it will be found when a
            // controller killed after the cancellation restarts (the Job is gone then).
            JobState::Running if round.failing => {}
            JobState::Running => {
                entry.phase = SmokeTestPhase::Running;
                entry.started_at.get_or_insert_with(|| now.clone());
            }
            JobState::Succeeded => {
                if entry.phase != SmokeTestPhase::Succeeded {
                    // A Job first seen finished still started: the status recording its start
                    // was lost when the controller was killed right after creating it
                    // (invariant 6: no lost history).
                    entry.started_at.get_or_insert_with(|| now.clone());
                    entry.phase = SmokeTestPhase::Succeeded;
                    entry.finished_at = Some(finished_time(job, now));
                    entry.message = None;
                    self.occurrences
                        .push(Occurrence::SmokeTest { succeeded: true });
                }
            }
            JobState::Failed { reason, message } => {
                let detail = failure_detail(job, reason, message);
                entry.phase = SmokeTestPhase::Failed;
                entry.started_at.get_or_insert_with(|| now.clone());
                entry.finished_at = Some(finished_time(job, now));
                entry.message = Some(detail.clone());
                self.occurrences
                    .push(Occurrence::SmokeTest { succeeded: false });
                let failure = TestFailure {
                    test: test.name.clone(),
                    job: job.name.clone(),
                    detail,
                };
                return (entry, Some(failure));
            }
        }
        (entry, None)
    }

    fn start_test(&mut self, test: &SmokeTest, round: &Round<'_>) {
        let r = round.rollout;
        let ctx = desired::JobContext {
            revision: &r.revision,
            version: &r.version,
            color: r.color,
            rollout: &round.id,
            preview_url: &round.url,
        };
        let job = desired::smoke_test_job(self.release, test, &ctx);
        self.writes.push(Write::CreateJob(Box::new(job)));
    }

    /// The round's verdict from the entries just recorded.
    fn tests_outcome(&mut self, r: &RolloutStatus, failure: Option<TestFailure>) -> TestsOutcome {
        if let Some(TestFailure { test, job, detail }) = failure {
            self.fail(
                r,
                bluegreen_crd::Outcome::Failed,
                "SmokeTestFailed",
                format!("smoke test '{test}' (Job {job}) failed; the active Service was not changed. {detail}"),
            );
            return TestsOutcome::Failed;
        }
        let unfinished: Vec<_> = self
            .status
            .smoke_tests
            .iter()
            .filter(|t| t.phase != SmokeTestPhase::Succeeded)
            .map(|t| t.name.clone())
            .collect();
        if unfinished.is_empty() {
            self.event(
                false,
                "SmokeTestsPassed",
                format!("all smoke tests of version {} passed", r.version),
            );
            return TestsOutcome::Passed;
        }
        self.set_phase(
            Phase::Testing,
            format!(
                "running smoke tests of version {}: {}",
                r.version,
                unfinished.join(", ")
            ),
        );
        TestsOutcome::Waiting
    }

    /// A smoke-test Job of this rollout has failed.
    pub(super) fn has_failed_job(&self, r: &RolloutStatus) -> bool {
        let id = r.id();
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
    pub(super) fn preview_endpoints_are_cold_pods(&self, r: &RolloutStatus) -> bool {
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
}

/// A failed Job's reason and message, with its pod's last log lines when there are any.
fn failure_detail(job: &JobView, reason: &str, message: &str) -> String {
    let tail = job
        .log_tail
        .as_deref()
        .map(str::trim_end)
        .filter(|t| !t.is_empty());
    match tail {
        Some(tail) => format!("{reason}: {message}\nlast log lines:\n{tail}"),
        None => format!("{reason}: {message}"),
    }
}

/// When a smoke-test Job finished: its own condition's time (not when the controller
/// noticed), else `now`.
pub(super) fn finished_time(job: &JobView, now: &Time) -> Time {
    job.finished_at.map(Time).unwrap_or_else(|| now.clone())
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

/// The entries of tests a rollback skips (none when `skipped` is false).
pub(super) fn skipped_tests(tests: &[SmokeTest], skipped: bool) -> Vec<SmokeTestStatus> {
    if !skipped {
        return Vec::new();
    }
    tests
        .iter()
        .map(|test| SmokeTestStatus {
            name: test.name.clone(),
            job: String::new(),
            phase: SmokeTestPhase::Skipped,
            started_at: None,
            finished_at: None,
            message: Some("revision already passed its smoke tests".into()),
        })
        .collect()
}
