//! `BlueGreenRelease.status`: what is live, what is being tried, and the audit trail (DESIGN §2).
//!
//! The status is also the controller's memory between reconciles: the in-flight rollout, the
//! standby color and the history. It is written in one patch per reconcile, so a controller
//! killed at any point restarts from a consistent record.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenReleaseStatus {
    /// Generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// What the controller is doing or waiting for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Color the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,

    /// Color the preview Service selects (the cold color under test).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_revision: Option<String>,

    /// The previous color kept warm for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<Standby>,

    /// The rollout in flight, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,

    /// Smoke tests of the current (or last) rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub smoke_tests: Vec<SmokeTestStatus>,

    /// Finished rollouts, newest first, at most `spec.revisionHistoryLimit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,

    /// A revision the controller will not deploy again until the spec changes or a `retry`:
    /// the one that failed, was aborted, or was rolled back from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_revision: Option<String>,

    /// The last manual action consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_action: Option<LastAction>,

    /// Ids of the latest manual actions consumed, newest first (at most
    /// [`CONSUMED_ACTION_IDS`]): an id is consumed once, so one used again is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub consumed_action_ids: Vec<String>,

    /// kstatus conditions: Ready, Reconciling, Stalled, Available, SmokeTestsPassed, Promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Available pods of the active color (scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the active color's pods (scale subresource, for autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// How many consumed action ids the status remembers.
pub const CONSUMED_ACTION_IDS: usize = 20;

/// Release phase (DESIGN §4).
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum Phase {
    Pending,
    Deploying,
    Testing,
    AwaitingPromotion,
    Promoting,
    Verifying,
    Stable,
    Failed,
    RolledBack,
    Paused,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Pending,
        Phase::Deploying,
        Phase::Testing,
        Phase::AwaitingPromotion,
        Phase::Promoting,
        Phase::Verifying,
        Phase::Stable,
        Phase::Failed,
        Phase::RolledBack,
        Phase::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Deploying => "Deploying",
            Phase::Testing => "Testing",
            Phase::AwaitingPromotion => "AwaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Verifying => "Verifying",
            Phase::Stable => "Stable",
            Phase::Failed => "Failed",
            Phase::RolledBack => "RolledBack",
            Phase::Paused => "Paused",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the two colors.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The previous color, kept warm after a flip.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Standby {
    pub color: Color,
    pub version: String,
    pub revision: String,
    /// When it stopped serving traffic; the scale-down delay counts from here.
    pub since: Time,
    /// When it was scaled down to `spec.standbyReplicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_down_at: Option<Time>,
}

/// The rollout in flight: which revision is being stood up on which color, since when.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub revision: String,
    pub version: String,
    pub color: Color,
    /// When the rollout began; also its identity, stamped on its smoke-test Jobs so that a
    /// Job left from an earlier attempt at the same revision is never mistaken for this one's.
    pub started_at: Time,
    /// The progress deadline counts from here (reset when the cold color loses availability).
    pub progressing_since: Time,
    /// When the cold color was first seen fully available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<Time>,
    /// When every smoke test had passed (the auto-promote delay counts from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_passed_at: Option<Time>,
    /// True when this rollout returns to the warm previous color (no redeploy).
    #[serde(default)]
    pub rollback: bool,
    /// Smoke tests are skipped: a rollback to a revision that already passed them.
    #[serde(default)]
    pub skip_tests: bool,
    /// Why this rollout started, when it was not a plain spec change (e.g. a rollback action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Round of smoke tests: bumped when the cold color loses availability during tests, so
    /// results of the voided round (Jobs stamped with the old round) never count.
    #[serde(default)]
    pub test_round: i32,
    /// A promote action was accepted for this rollout (Manual mode).
    #[serde(default)]
    pub promote_requested: bool,
    /// Size of the cold color while it is tested, fixed when the rollout starts unless
    /// `spec.previewReplicas` sets it: a `spec.replicas` change mid-rollout (a person, or an
    /// autoscaler through the scale subresource) sets the size the color is promoted at, and
    /// never reruns the smoke tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replicas: Option<i32>,
}

/// Phase of one smoke test. `Skipped`: the revision already passed its tests (a rollback);
/// `Cancelled`: the rollout ended (another test failed, the deadline passed, an abort)
/// before this test finished, and its Job was deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmokeTestPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

/// Result of one smoke test of the current rollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmokeTestStatus {
    pub name: String,
    pub job: String,
    pub phase: SmokeTestPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a rollout ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Promoted,
    Failed,
    RolledBack,
    Superseded,
    Aborted,
}

/// One finished rollout in the audit trail.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub revision: String,
    pub version: String,
    pub color: Color,
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    pub finished_at: Time,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Whether a manual action was carried out.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionResult {
    Accepted,
    Refused,
}

/// The last manual action the controller consumed; clients wait on its `id`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastAction {
    pub verb: String,
    pub id: String,
    pub result: ActionResult,
    pub message: String,
    pub at: Time,
}

impl BlueGreenReleaseStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
