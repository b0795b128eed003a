//! Delivery metrics (the DORA figures), per release, from the controller's own transitions:
//! deployments by outcome, change failures, lead time from commit to live, and time to
//! restore. Labels are the release's namespace and name plus closed enums; a release's
//! series go when it is forgotten.

use bluegreen_crd::Outcome;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::registered;

/// Lead times run from minutes (a commit shipped at once) to a week.
const LEAD_TIME_BUCKETS: &[f64] = &[
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259_200.0, 604_800.0,
];

/// A restore takes from seconds (a revert right away) to days (waiting for a fix).
const RESTORE_BUCKETS: &[f64] = &[
    10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0, 604_800.0,
];

const OUTCOMES: [Outcome; 5] = [
    Outcome::Promoted,
    Outcome::Failed,
    Outcome::RolledBack,
    Outcome::Superseded,
    Outcome::Aborted,
];

/// `reason` of `bluegreen_change_failures_total`.
const BY_VERIFICATION: &str = "VerificationFailed";
const BY_PERSON: &str = "Rollback";

pub(super) struct Delivery {
    deployments: IntCounterVec,
    change_failures: IntCounterVec,
    lead_time: HistogramVec,
    time_to_restore: HistogramVec,
}

impl Delivery {
    pub(super) fn new(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            registered(registry, HistogramVec::new(opts, &["namespace", "release"]))
        };
        Delivery {
            deployments: counter(
                "bluegreen_deployments_total",
                "Deployments (rollouts of a new revision) by how they ended: Promoted, Failed, RolledBack (taken back during verification), Superseded, Aborted.",
                &["namespace", "release", "outcome"],
            ),
            change_failures: counter(
                "bluegreen_change_failures_total",
                "Live versions taken back onto the previous color, by the post-promotion verification (VerificationFailed) or by a person (Rollback: a rollback action, an abort during verification, a git revert).",
                &["namespace", "release", "reason"],
            ),
            lead_time: histogram(
                "bluegreen_lead_time_seconds",
                "Seconds from the commit (annotation bluegreen.dev/commit-time) to the flip that made it live.",
                LEAD_TIME_BUCKETS,
            ),
            time_to_restore: histogram(
                "bluegreen_time_to_restore_seconds",
                "Seconds from a release stalling (Failed or RolledBack) to it being Stable again.",
                RESTORE_BUCKETS,
            ),
        }
    }

    pub(super) fn deployed(&self, namespace: &str, release: &str, outcome: Outcome) {
        self.deployments
            .with_label_values(&[namespace, release, outcome.into()])
            .inc();
    }

    pub(super) fn change_failed(&self, namespace: &str, release: &str, by_verification: bool) {
        let reason = if by_verification {
            BY_VERIFICATION
        } else {
            BY_PERSON
        };
        self.change_failures
            .with_label_values(&[namespace, release, reason])
            .inc();
    }

    pub(super) fn lead_time(&self, namespace: &str, release: &str, seconds: f64) {
        self.lead_time
            .with_label_values(&[namespace, release])
            .observe(seconds);
    }

    pub(super) fn restored(&self, namespace: &str, release: &str, seconds: f64) {
        self.time_to_restore
            .with_label_values(&[namespace, release])
            .observe(seconds);
    }

    /// Removes every series of a deleted release (absent ones are simply not there).
    pub(super) fn forget(&self, namespace: &str, release: &str) {
        for outcome in OUTCOMES {
            let _ = self
                .deployments
                .remove_label_values(&[namespace, release, outcome.into()]);
        }
        for reason in [BY_VERIFICATION, BY_PERSON] {
            let _ = self
                .change_failures
                .remove_label_values(&[namespace, release, reason]);
        }
        let _ = self.lead_time.remove_label_values(&[namespace, release]);
        let _ = self
            .time_to_restore
            .remove_label_values(&[namespace, release]);
    }
}
