//! `BlueGreenRelease.status`: what is live, what is being tried, and the audit trail (DESIGN §2).
//!
//! The status is also the controller's memory between reconciles: the in-flight rollout, the
//! standby color and the history. It is written in one patch per reconcile, so a controller
//! killed at any point restarts from a consistent record.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::RolloutStatus;

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
    /// Samples of the analysis of the current (or last) analysed stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::AnalysisStatus>,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,

    /// A revision the controller will not deploy again until the spec changes or a `retry`:
    /// the one that failed, was aborted, or was rolled back from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_revision: Option<String>,

    /// When the release last stalled on a failure or a rollback; cleared when it is Stable
    /// again (the time to restore, `bluegreen_time_to_restore_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<Time>,

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
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "PascalCase")]
#[derive(strum::Display, strum::IntoStaticStr, strum::VariantArray)]
pub enum Phase {
    Pending,
    Deploying,
    Testing,
    AwaitingPromotion,
    Promoting,
    /// After the flip, while post-promotion analysis watches the new active color.
    Verifying,
    Stable,
    Failed,
    RolledBack,
    Paused,
}

impl Phase {
    /// The name as the API stores it (serde and strum both use the variant name).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One of the two colors.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[derive(PartialOrd, Ord, strum::Display, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "lowercase")]
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

    /// The name as labels and the API carry it (`blue`, `green`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A color from a label value; `None` for anything else.
    pub fn parse(s: &str) -> Option<Color> {
        s.parse().ok()
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
#[serde(rename_all = "PascalCase")]
#[derive(strum::Display, strum::IntoStaticStr)]
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
    pub fn condition(&self, type_: impl AsRef<str>) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_.as_ref())
    }
}

/// The condition types of a release: kstatus's three (`Ready`, `Reconciling`, `Stalled`),
/// read by `kubectl wait`, Flux and Argo CD, and three details.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, strum::Display, strum::AsRefStr, strum::VariantArray,
)]
pub enum ConditionType {
    /// True only when Stable and `observedGeneration == generation`.
    Ready,
    /// True while work is in flight.
    Reconciling,
    /// True when the release cannot progress without a person or a spec change.
    Stalled,
    /// The active color is fully available.
    Available,
    /// The smoke tests of the current revision passed (or none were needed).
    SmokeTestsPassed,
    /// The spec's revision is live.
    Promoted,
}
