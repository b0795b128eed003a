//! The analysed stages: `Analyzing` (pre-promotion, on the cold color, before the flip) and
//! `Verifying` (post-promotion, on the new active color, after it).
//!
//! | stage       | leaves when                                           | for                         |
//! |-------------|-------------------------------------------------------|-----------------------------|
//! | `Analyzing` | `prePromotion.samples` passing samples in a row        | `Promoting`                 |
//! | `Analyzing` | a failed sample, or the deadline (inconclusive ones)   | (Failed, active untouched)  |
//! | `Analyzing` | the cold color lost availability                       | `Deploying` (a new round)   |
//! | `Verifying` | the window is over with a passing sample               | (history: Promoted)         |
//! | `Verifying` | `failureLimit + 1` failed, or `failureLimit + 2` inconclusive in a row | a rollback to the warm previous color |
//!
//! Samples arrive as observed world (`Observed::analysis`), taken by reconcile only for a
//! stage the stored status records (`observe::sample_due`). Each sample is counted once: it
//! is newer than the record's last. A sample taken but lost with its status (a crash) is
//! simply taken again.

use std::time::Duration;

use bluegreen_crd::{
    AnalysisCheck, AnalysisPhase, AnalysisResult, AnalysisStatus, CheckStatus, Outcome, Phase,
    RolloutKind, RolloutStage, RolloutStatus, Standby,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::rollout::{Next, Step};
use super::{Occurrence, Planner, Stall, Write};
use crate::observe::{AnalysisSample, Reading, ReplicaSetView};

/// What one sample said about every check of its stage.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Verdict {
    Pass,
    /// A check returned a value outside its bounds: which, and by how much.
    Fail(String),
    /// No check failed, but at least one returned nothing usable.
    Inconclusive(String),
}

impl Verdict {
    pub(super) fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(_) => "fail",
            Verdict::Inconclusive(_) => "inconclusive",
        }
    }
}

/// How a verification ends without passing: the record in history and the words of it.
pub(super) struct Rejection {
    pub outcome: Outcome,
    pub reason: &'static str,
    pub message: String,
}

impl Planner<'_> {
    /// The rollout analyses the stage after its smoke tests: a release (not a rollback)
    /// whose spec has checks for it.
    pub(super) fn analyses(&self, r: &RolloutStatus, phase: AnalysisPhase) -> bool {
        !r.is_rollback()
            && self
                .release
                .spec
                .analysis
                .as_ref()
                .is_some_and(|a| a.checks(phase).is_some())
    }

    /// A fresh analysis record for the stage the rollout enters.
    pub(super) fn start_analysis(&mut self, r: &RolloutStatus, phase: AnalysisPhase) {
        self.status.analysis = Some(AnalysisStatus::start(
            phase,
            r.id(),
            r.revision.clone(),
            self.now(),
        ));
    }

    /// Analyzing: the cold color stays available and its preview endpoints exact, and
    /// enough samples in a row pass before the flip may come.
    pub(super) fn analyzing(
        &mut self,
        r: &mut RolloutStatus,
        rs: &ReplicaSetView,
        tests_passed_at: Time,
    ) -> Next {
        if !rs.available_at(self.stage_size(r)) {
            return Next::Enter(RolloutStage::Deploying);
        }
        let phase = AnalysisPhase::PrePromotion;
        if !self.analyses(r, phase) {
            // The checks were removed from the spec meanwhile: nothing more to wait for.
            return Next::Enter(RolloutStage::Promoting {
                tests_passed_at,
                promote_requested: false,
            });
        }
        self.ensure_analysis(r, phase);
        if !self.preview_endpoints_are_cold_pods(r) {
            // Samples count only while the preview Service sends its traffic to exactly the
            // cold pods (invariant 8's gate, as for the smoke tests); one taken meanwhile is
            // dropped, and taken again.
            self.set_phase(
                Phase::Testing,
                format!(
                    "waiting for the preview Service's endpoints to be exactly the ready pods of version {} before sampling",
                    r.version
                ),
            );
            self.requeue_in(Duration::from_secs(1));
            return Next::Stay(Step::Continue);
        }
        if let Some(Verdict::Fail(detail)) = self.take_sample(r, phase) {
            let message = format!(
                "pre-promotion analysis of version {} on {} failed: {detail}; the active Service was not changed",
                r.version, r.color
            );
            self.end_analysis(AnalysisResult::Failed, &message);
            return Next::Stay(self.wait_for_record(Phase::Testing, message));
        }
        let needed = self
            .release
            .spec
            .analysis
            .as_ref()
            .and_then(|a| a.pre_promotion.as_ref())
            .map_or(1, |p| p.samples);
        let record = self.status.analysis.clone().expect("ensured above");
        if record.consecutive_passed >= needed {
            self.end_analysis(
                AnalysisResult::Passed,
                &format!("{needed} samples in a row passed"),
            );
            // The auto-promote delay counts from the smoke tests, as without analysis.
            return Next::Enter(RolloutStage::Promoting {
                tests_passed_at,
                promote_requested: false,
            });
        }
        self.keep_analyzing(r, &record, needed)
    }

    /// Analyzing goes on until the next sample, within the progress deadline; past it, the
    /// analysis fails (recorded first, like a failed sample: `fail_on_recorded_analysis`).
    fn keep_analyzing(&mut self, r: &RolloutStatus, record: &AnalysisStatus, needed: i32) -> Next {
        let deadline = self.release.spec.progress_deadline_seconds;
        let Some(left) = self.remaining(&r.progressing_since, deadline) else {
            let message = format!(
                "pre-promotion analysis of version {} on {} did not pass within {deadline}s ({} of {needed} samples in a row passed; last: {}); the active Service was not changed",
                r.version,
                r.color,
                record.consecutive_passed,
                record.message.as_deref().unwrap_or("no sample taken"),
            );
            self.end_analysis(AnalysisResult::Failed, &message);
            return Next::Stay(self.wait_for_record(Phase::Testing, message));
        };
        self.requeue_in(left);
        self.requeue_for_next_sample(record);
        self.set_phase(
            Phase::Testing,
            format!(
                "pre-promotion analysis of version {} on {}: {} of {needed} samples in a row passed{}",
                r.version,
                r.color,
                record.consecutive_passed,
                last_said(record)
            ),
        );
        Next::Stay(Step::Continue)
    }

    /// Verifying: the new active color is watched for the window while the previous color
    /// stays at full size; too many failed (or inconclusive) samples flip back to it.
    pub(super) fn verifying(&mut self, r: &RolloutStatus, promoted_at: &Time) -> Step {
        self.hold_previous_color();
        let phase = AnalysisPhase::PostPromotion;
        let Some(post) = self
            .release
            .spec
            .analysis
            .as_ref()
            .and_then(|a| a.post_promotion.clone())
            .filter(|_| self.analyses(r, phase))
        else {
            // Verification was removed from the spec meanwhile: the release is verified.
            self.close_promotion(
                r,
                promoted_at,
                Some("verification removed from the spec".into()),
            );
            return Step::Verified;
        };
        self.ensure_analysis(r, phase);
        let verdict = self.take_sample(r, phase);
        let record = self.status.analysis.clone().expect("ensured above");
        let window = post.window_seconds();
        let over = self.remaining(promoted_at, window).is_none();
        let rejection = why_rejected(&record, verdict.as_ref(), post.failure_limit, over, window);
        if let Some(detail) = rejection {
            let message = format!(
                "post-promotion verification of version {} on {} failed: {detail}",
                r.version, r.color
            );
            self.end_analysis(AnalysisResult::Failed, &message);
            return self.reject_promotion(
                r,
                promoted_at,
                Rejection {
                    outcome: Outcome::RolledBack,
                    reason: "VerificationFailed",
                    message,
                },
            );
        }
        if over {
            self.end_analysis(
                AnalysisResult::Passed,
                &format!("{} of {} samples passed", record.passed, record.samples),
            );
            self.close_promotion(r, promoted_at, None);
            return Step::Verified;
        }
        if let Some(left) = self.remaining(promoted_at, window) {
            self.requeue_in(left);
        }
        self.requeue_for_next_sample(&record);
        self.say_verifying(r, &record, promoted_at, window);
        Step::Continue
    }

    /// The Verifying phase and its progress. The end of the window, not the seconds left: a
    /// message that moves with the clock would be a status write on every reconcile
    /// (invariant 5).
    fn say_verifying(
        &mut self,
        r: &RolloutStatus,
        record: &AnalysisStatus,
        promoted_at: &Time,
        window: i32,
    ) {
        let until = jiff::Timestamp::from_second(promoted_at.0.as_second() + i64::from(window))
            .unwrap_or(promoted_at.0);
        self.set_phase(
            Phase::Verifying,
            format!(
                "verifying version {} on {} until {until}: {} passed, {} failed, {} inconclusive of {} samples{}",
                r.version,
                r.color,
                record.passed,
                record.failed,
                record.inconclusive,
                record.samples,
                last_said(record)
            ),
        );
    }

    /// The previous color is the way back while verifying: at full size, behind preview.
    fn hold_previous_color(&mut self) {
        let Some(standby) = self.status.standby.clone() else {
            return;
        };
        let Some(rs) = self
            .obs
            .replica_set(standby.color)
            .filter(|rs| rs.revision == standby.revision && !rs.deleting)
        else {
            self.status.standby = None;
            return;
        };
        self.point_preview(standby.color, &standby.revision);
        let full = self.release.spec.replicas;
        if rs.desired != full {
            self.writes.push(Write::ScaleReplicaSet {
                name: rs.name.clone(),
                replicas: full,
            });
        }
    }

    /// The verified release ends as promoted: history, and the previous color's scale-down
    /// delay starts now (invariant 7 holds from the end of verification).
    pub(super) fn close_promotion(
        &mut self,
        r: &RolloutStatus,
        promoted_at: &Time,
        reason: Option<String>,
    ) {
        let now = self.now();
        // Both overrides when a person ended both analyses.
        let reason = match (r.reason.clone(), reason) {
            (Some(before), Some(now)) => Some(format!("{before}; {now}")),
            (before, now) => now.or(before),
        };
        self.record_rollout(r, Some(promoted_at.clone()), Outcome::Promoted, reason);
        if let Some(standby) = self.status.standby.as_mut()
            && standby.scaled_down_at.is_none()
        {
            standby.since = now;
        }
        self.status.rollout = None;
        self.rollout_finished(r, Outcome::Promoted);
        self.event(
            false,
            "Verified",
            format!(
                "version {} on {} passed its post-promotion verification",
                r.version, r.color
            ),
        );
    }

    /// A promoted release is taken back (failed verification, abort, rollback during it):
    /// history records it, the revision is blocked, and a rollback to the warm previous
    /// color is recorded; its flip follows once the status holds it (record, then act: a
    /// controller killed after the flip back finds the rollback it finishes).
    pub(super) fn reject_promotion(
        &mut self,
        r: &RolloutStatus,
        promoted_at: &Time,
        rejection: Rejection,
    ) -> Step {
        let now = self.now();
        let Rejection {
            outcome,
            reason,
            message,
        } = rejection;
        let warm = self.status.standby.clone().filter(|s| {
            self.obs
                .replica_set(s.color)
                .is_some_and(|rs| rs.revision == s.revision && !rs.deleting)
        });
        // Without a warm previous color (a first release, or its ReplicaSet gone) nothing is
        // taken back: the version stays live, and is recorded as failed.
        let outcome = if warm.is_some() {
            outcome
        } else {
            Outcome::Failed
        };
        let entry_reason = Some(format!("{reason}: {message}"));
        self.record_rollout(r, Some(promoted_at.clone()), outcome, entry_reason);
        self.rollout_finished(r, outcome);
        self.status.blocked_revision = Some(r.revision.clone());
        self.status.rollout = None;
        self.event(true, reason, message.clone());
        let Some(Standby {
            color,
            version,
            revision,
            ..
        }) = warm
        else {
            let message = format!(
                "{message}; there is no warm previous color to flip back to, so version {} stays live (change the spec, or `kubectl bluegreen retry {}` to accept it)",
                r.version,
                self.release.metadata.name.as_deref().unwrap_or_default()
            );
            self.set_phase(Phase::Failed, message.clone());
            self.stall = Some(Stall {
                reason: reason.into(),
                message,
            });
            return Step::Failed;
        };
        let mut back = RolloutStatus::start(
            revision,
            version.clone(),
            color,
            now,
            RolloutKind::Rollback { skip_tests: true },
            None,
        );
        back.reason = Some(format!("{reason}: {message}"));
        self.status.rollout = Some(back);
        self.wait_for_record(
            Phase::Promoting,
            format!("{message}; flipping back to version {version} on {color}"),
        );
        Step::Failed
    }

    /// The analysis record of this rollout's stage, started when missing (a status that
    /// never recorded its start, or the record of an earlier stage or rollout).
    fn ensure_analysis(&mut self, r: &RolloutStatus, phase: AnalysisPhase) {
        let current = self
            .status
            .analysis
            .as_ref()
            .is_some_and(|a| a.phase == phase && a.rollout == r.id());
        if !current {
            self.start_analysis(r, phase);
        }
    }

    /// The stored status records that this rollout's pre-promotion analysis failed: the
    /// rollout fails now, whatever the cold color looks like (it is scaled down in this
    /// plan). The failed sample is recorded first because it is not in the world: a
    /// controller killed after the scale-down but before the status would otherwise find
    /// the cold color shrunk for no reason it can see, grow it and start over (invariant 6).
    pub(super) fn fail_on_recorded_analysis(&mut self, r: &RolloutStatus) -> bool {
        let Some(message) = self.recorded_failure(r, AnalysisPhase::PrePromotion) else {
            return false;
        };
        self.fail(r, Outcome::Failed, "AnalysisFailed", message);
        true
    }

    /// The stored status records that this rollout's analysis failed: its words.
    fn recorded_failure(&self, r: &RolloutStatus, phase: AnalysisPhase) -> Option<String> {
        self.before
            .analysis
            .as_ref()
            .filter(|a| a.phase == phase && a.rollout == r.id())
            .filter(|a| a.result == AnalysisResult::Failed)
            .map(|a| a.message.clone().unwrap_or_default())
    }

    /// Marks the analysis record with how it ended.
    pub(super) fn end_analysis(&mut self, result: AnalysisResult, message: &str) {
        if let Some(record) = self.status.analysis.as_mut()
            && record.result == AnalysisResult::Running
        {
            record.result = result;
            record.message = Some(message.to_string());
        }
    }

    /// Folds the observed sample into the record; its verdict when it is new.
    fn take_sample(&mut self, r: &RolloutStatus, phase: AnalysisPhase) -> Option<Verdict> {
        let sample = self
            .obs
            .analysis
            .as_ref()
            .filter(|s| s.rollout == r.id() && s.phase == phase)?;
        let checks = self.release.spec.analysis.as_ref()?.checks(phase)?.to_vec();
        let record = self.status.analysis.as_mut()?;
        let taken_at = Time(sample.taken_at);
        let newer = record
            .last_sample_at
            .as_ref()
            .is_none_or(|last| last.0 < taken_at.0);
        if !newer || record.result != AnalysisResult::Running {
            return None;
        }
        let (entries, verdict) = judge_sample(&checks, sample, &record.checks, &taken_at);
        record.checks = entries;
        count_sample(record, &verdict, taken_at);
        self.occurrences.push(Occurrence::AnalysisSample {
            phase,
            result: verdict.label(),
        });
        Some(verdict)
    }

    /// Comes back when the next sample is due.
    fn requeue_for_next_sample(&mut self, record: &AnalysisStatus) {
        let interval = self
            .release
            .spec
            .analysis
            .as_ref()
            .map_or(Duration::from_secs(15), |a| a.interval());
        let seconds = i32::try_from(interval.as_secs()).unwrap_or(i32::MAX);
        match &record.last_sample_at {
            // The first sample is taken once the stage's start is recorded.
            None => self.requeue_in(Duration::from_secs(1)),
            Some(last) => {
                let left = self.remaining(last, seconds).unwrap_or(Duration::ZERO);
                self.requeue_in(left);
            }
        }
    }
}

/// Why verification fails now, if it does: more failed samples than `failure_limit`, more
/// inconclusive ones in a row than `failure_limit + 1` (a silent Prometheus must not pass),
/// or a window over without a single passing sample.
fn why_rejected(
    record: &AnalysisStatus,
    verdict: Option<&Verdict>,
    failure_limit: i32,
    window_over: bool,
    window: i32,
) -> Option<String> {
    match verdict {
        Some(Verdict::Fail(detail)) if record.failed > failure_limit => {
            return Some(format!(
                "{} failed samples (more than failureLimit {failure_limit}); last: {detail}",
                record.failed
            ));
        }
        Some(Verdict::Inconclusive(why)) if record.consecutive_inconclusive > failure_limit + 1 => {
            return Some(format!(
                "{} inconclusive samples in a row (more than failureLimit + 1 = {}); last: {why}",
                record.consecutive_inconclusive,
                failure_limit + 1
            ));
        }
        _ => {}
    }
    (window_over && record.passed == 0).then(|| {
        format!(
            "no sample passed within the {window}s window (last: {})",
            record.message.as_deref().unwrap_or("no sample taken")
        )
    })
}

/// Judges every check of a sample against its bounds: each check's record, updated from
/// `previous`, and the sample's verdict (any failure fails it; else any inconclusive check
/// makes it inconclusive).
fn judge_sample(
    checks: &[AnalysisCheck],
    sample: &AnalysisSample,
    previous: &[CheckStatus],
    taken_at: &Time,
) -> (Vec<CheckStatus>, Verdict) {
    let mut failures = Vec::new();
    let mut unknowns = Vec::new();
    let mut entries = Vec::with_capacity(checks.len());
    for check in checks {
        let mut entry = previous
            .iter()
            .find(|c| c.name == check.name)
            .cloned()
            .unwrap_or_else(|| CheckStatus {
                name: check.name.clone(),
                last_value: None,
                passed: 0,
                failed: 0,
                inconclusive: 0,
                last_sample_at: None,
                message: None,
            });
        entry.last_sample_at = Some(taken_at.clone());
        match judge(check, sample.reading(&check.name)) {
            Judged::Pass(value) => {
                entry.passed += 1;
                entry.last_value = Some(value);
                entry.message = None;
            }
            Judged::Fail(value, detail) => {
                entry.failed += 1;
                entry.last_value = Some(value);
                entry.message = Some(detail.clone());
                failures.push(detail);
            }
            Judged::Inconclusive(why) => {
                entry.inconclusive += 1;
                entry.last_value = None;
                let detail = format!("check '{}' is inconclusive: {why}", check.name);
                entry.message = Some(detail.clone());
                unknowns.push(detail);
            }
        }
        entries.push(entry);
    }
    let verdict = if !failures.is_empty() {
        Verdict::Fail(failures.join("; "))
    } else if !unknowns.is_empty() {
        Verdict::Inconclusive(unknowns.join("; "))
    } else {
        Verdict::Pass
    };
    (entries, verdict)
}

/// Counts a sample in its stage's record: totals, streaks, and what it said.
fn count_sample(record: &mut AnalysisStatus, verdict: &Verdict, taken_at: Time) {
    record.samples += 1;
    record.last_sample_at = Some(taken_at);
    match verdict {
        Verdict::Pass => {
            record.passed += 1;
            record.consecutive_passed += 1;
            record.consecutive_inconclusive = 0;
            record.message = Some("the last sample passed".into());
        }
        Verdict::Fail(detail) => {
            record.failed += 1;
            record.consecutive_passed = 0;
            record.consecutive_inconclusive = 0;
            record.message = Some(format!("the last sample failed: {detail}"));
        }
        Verdict::Inconclusive(detail) => {
            record.inconclusive += 1;
            record.consecutive_passed = 0;
            record.consecutive_inconclusive += 1;
            record.message = Some(format!("the last sample was inconclusive: {detail}"));
        }
    }
}

/// One check's reading against its bounds.
enum Judged {
    Pass(f64),
    Fail(f64, String),
    Inconclusive(String),
}

fn judge(check: &AnalysisCheck, reading: Option<&Reading>) -> Judged {
    match reading {
        None => Judged::Inconclusive("not sampled".into()),
        Some(Reading::Inconclusive(why)) => Judged::Inconclusive(why.clone()),
        Some(Reading::Value(value)) if !value.is_finite() => {
            Judged::Inconclusive(format!("the query returned {value}"))
        }
        Some(Reading::Value(value)) if check.admits(*value) => Judged::Pass(*value),
        Some(Reading::Value(value)) => Judged::Fail(
            *value,
            format!(
                "check '{}' returned {value}, which is not {}",
                check.name,
                check.bounds()
            ),
        ),
    }
}

fn last_said(record: &AnalysisStatus) -> String {
    match (&record.last_sample_at, &record.message) {
        (Some(_), Some(message)) => format!("; {message}"),
        _ => String::new(),
    }
}
