//! `status.rollout`: the rollout in flight, as a state machine.
//!
//! A rollout is one revision stood up on the cold color. Where it stands is one
//! [`RolloutStage`]; what it is (a new release, or a return to the warm previous color) is
//! its [`RolloutKind`]. The planner has one function per stage and one transition function
//! (`controller/src/plan/rollout.rs`).
//!
//! On the wire the stage is the field `stage` beside the data of that stage, flat in
//! `status.rollout` (`availableAt` while Testing, `testsPassedAt` after the tests,
//! `promotedAt` while Verifying). A
//! status written before `stage` existed holds the same data fields without it; it decodes
//! to the stage those fields imply ([`StoredRollout`]), so a controller upgraded mid-rollout
//! carries on where the old one stood.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Color;

/// Where a rollout stands. Stages follow one another in this order; losing the cold color's
/// availability while Testing or Analyzing goes back to Deploying (a new test round).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStage {
    /// The cold ReplicaSet is created (or replaced, or resized) at its test size and must be
    /// available before the progress deadline. Phase `Deploying`.
    Deploying,
    /// The cold color was fully available at `available_at`; the smoke-test Jobs of the
    /// current round run against the preview Service. Phase `Testing`.
    Testing { available_at: Time },
    /// Every smoke test passed at `tests_passed_at`; pre-promotion analysis samples the cold
    /// color (still at its test size) until enough samples in a row pass. Phase `Testing`.
    Analyzing { tests_passed_at: Time },
    /// Every smoke test passed at `tests_passed_at` (or none were needed); the cold color
    /// is at full size, and `spec.promotion.mode` is Manual: a person decides. Phase
    /// `AwaitingPromotion`.
    AwaitingPromotion { tests_passed_at: Time },
    /// Every smoke test passed at `tests_passed_at`; the cold color grows to full size, and
    /// the active Service flips onto it once it is available there (after the auto-promote
    /// delay, unless a person asked: `promote_requested`). Phase `Promoting`.
    Promoting {
        tests_passed_at: Time,
        promote_requested: bool,
    },
    /// The active Service flipped onto the rollout's color at `promoted_at`; post-promotion
    /// analysis watches it while the previous color stays at full size. A failure flips
    /// back. Phase `Verifying`.
    Verifying {
        tests_passed_at: Time,
        promoted_at: Time,
    },
}

impl RolloutStage {
    /// When the smoke tests passed, once they have.
    pub fn tests_passed_at(&self) -> Option<&Time> {
        match self {
            RolloutStage::Deploying | RolloutStage::Testing { .. } => None,
            RolloutStage::Analyzing { tests_passed_at }
            | RolloutStage::AwaitingPromotion { tests_passed_at }
            | RolloutStage::Promoting {
                tests_passed_at, ..
            }
            | RolloutStage::Verifying {
                tests_passed_at, ..
            } => Some(tests_passed_at),
        }
    }

    /// The name stored in `status.rollout.stage`.
    pub fn name(&self) -> StageName {
        match self {
            RolloutStage::Deploying => StageName::Deploying,
            RolloutStage::Testing { .. } => StageName::Testing,
            RolloutStage::Analyzing { .. } => StageName::Analyzing,
            RolloutStage::AwaitingPromotion { .. } => StageName::AwaitingPromotion,
            RolloutStage::Promoting { .. } => StageName::Promoting,
            RolloutStage::Verifying { .. } => StageName::Verifying,
        }
    }

    /// After the flip: the rollout's color is the active one.
    pub fn is_flipped(&self) -> bool {
        matches!(self, RolloutStage::Verifying { .. })
    }
}

/// The names of the stages, as `status.rollout.stage` stores them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, strum::Display)]
pub enum StageName {
    Deploying,
    Testing,
    Analyzing,
    AwaitingPromotion,
    Promoting,
    Verifying,
}

/// What a rollout is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutKind {
    /// A revision is stood up on the cold color, tested on the preview Service, promoted.
    Release,
    /// Back to the warm previous color, without redeploying it (a rollback action, or a spec
    /// reverted to the previous revision). It goes to full size at once and is never gated
    /// by the promotion mode; `skip_tests` when the revision already passed its tests.
    Rollback { skip_tests: bool },
}

/// The rollout in flight: which revision is being stood up on which color, since when, and
/// where it stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(from = "StoredRollout", into = "StoredRollout")]
pub struct RolloutStatus {
    pub revision: String,
    pub version: String,
    pub color: Color,
    /// When the rollout began; also its identity, stamped on its smoke-test Jobs so that a
    /// Job left from an earlier attempt at the same revision is never mistaken for this one's.
    pub started_at: Time,
    /// The progress deadline counts from here (reset when the tests pass and when the cold
    /// color loses availability).
    pub progressing_since: Time,
    pub kind: RolloutKind,
    pub stage: RolloutStage,
    /// Why this rollout started, when it was not a plain spec change (e.g. a rollback action).
    pub reason: Option<String>,
    /// Round of smoke tests: bumped when the cold color loses availability during tests, so
    /// results of the voided round (Jobs stamped with the old round) never count.
    pub test_round: i32,
    /// Size of the cold color while it is tested, fixed when the rollout starts unless
    /// `spec.previewReplicas` sets it (a `spec.replicas` change mid-rollout sets the size the
    /// color is promoted at, and never reruns the smoke tests). `None` for a rollback.
    pub preview_replicas: Option<i32>,
}

impl RolloutStatus {
    /// A rollout that starts now, at the first stage.
    pub fn start(
        revision: String,
        version: String,
        color: Color,
        now: Time,
        kind: RolloutKind,
        preview_replicas: Option<i32>,
    ) -> Self {
        RolloutStatus {
            revision,
            version,
            color,
            started_at: now.clone(),
            progressing_since: now,
            kind,
            stage: RolloutStage::Deploying,
            reason: None,
            test_round: 0,
            preview_replicas,
        }
    }

    /// The identity stamped on the rollout's smoke-test Jobs (`labels::ROLLOUT_ANNOTATION`):
    /// its start, and the test round after the first, so that a Job of an earlier attempt at
    /// the same revision, or of a voided round, never counts for this one.
    pub fn id(&self) -> String {
        match self.test_round {
            0 => self.started_at.0.to_string(),
            round => format!("{}/{round}", self.started_at.0),
        }
    }

    pub fn is_rollback(&self) -> bool {
        matches!(self.kind, RolloutKind::Rollback { .. })
    }

    pub fn skips_tests(&self) -> bool {
        matches!(self.kind, RolloutKind::Rollback { skip_tests: true })
    }
}

impl JsonSchema for RolloutStatus {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RolloutStatus".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        StoredRollout::json_schema(generator)
    }
}

/// `status.rollout` as stored: the stage's name beside the data of every stage, each set
/// only while it applies. `stage` is absent from a status written before it existed; the
/// stage is then the one its data fields imply, as that controller decided it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredRollout {
    pub revision: String,
    pub version: String,
    pub color: Color,
    /// When the rollout began; also its identity, stamped on its smoke-test Jobs so that a
    /// Job left from an earlier attempt at the same revision is never mistaken for this one's.
    pub started_at: Time,
    /// The progress deadline counts from here (reset when the tests pass and when the cold
    /// color loses availability).
    pub progressing_since: Time,
    /// Where the rollout stands: Deploying, Testing, Analyzing, AwaitingPromotion, Promoting
    /// or Verifying (absent
    /// in a status written before stages were recorded: read from the fields below then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
    /// Testing: when the cold color was first seen fully available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<Time>,
    /// Analyzing, AwaitingPromotion, Promoting and Verifying: when every smoke test had passed
    /// (the auto-promote delay counts from here, or from the end of pre-promotion analysis).
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
    /// Verifying: when the active Service flipped onto this rollout's color.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    /// Promoting: a promote action was accepted for this rollout.
    #[serde(default)]
    pub promote_requested: bool,
    /// Size of the cold color while it is tested, fixed when the rollout starts unless
    /// `spec.previewReplicas` sets it: a `spec.replicas` change mid-rollout (a person, or an
    /// autoscaler through the scale subresource) sets the size the color is promoted at, and
    /// never reruns the smoke tests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replicas: Option<i32>,
}

impl StoredRollout {
    /// The stage this record is at. A record without `stage` is read as the controller that
    /// wrote it decided: tests passed → past the tests; available → testing; else deploying.
    /// A stage whose timestamp is missing (a hand-edited status) takes the time the rollout
    /// last made progress, which only shortens a wait, never skips a gate.
    fn decode_stage(&self) -> RolloutStage {
        let stage = self
            .stage
            .unwrap_or(match (&self.tests_passed_at, &self.available_at) {
                (Some(_), _) => StageName::Promoting,
                (None, Some(_)) => StageName::Testing,
                (None, None) => StageName::Deploying,
            });
        let or_progress = |t: &Option<Time>| t.clone().unwrap_or(self.progressing_since.clone());
        match stage {
            StageName::Deploying => RolloutStage::Deploying,
            StageName::Testing => RolloutStage::Testing {
                available_at: or_progress(&self.available_at),
            },
            StageName::Analyzing => RolloutStage::Analyzing {
                tests_passed_at: or_progress(&self.tests_passed_at),
            },
            StageName::AwaitingPromotion => RolloutStage::AwaitingPromotion {
                tests_passed_at: or_progress(&self.tests_passed_at),
            },
            StageName::Promoting => RolloutStage::Promoting {
                tests_passed_at: or_progress(&self.tests_passed_at),
                promote_requested: self.promote_requested,
            },
            StageName::Verifying => RolloutStage::Verifying {
                tests_passed_at: or_progress(&self.tests_passed_at),
                promoted_at: or_progress(&self.promoted_at),
            },
        }
    }
}

impl From<StoredRollout> for RolloutStatus {
    fn from(stored: StoredRollout) -> Self {
        let stage = stored.decode_stage();
        let kind = if stored.rollback {
            RolloutKind::Rollback {
                skip_tests: stored.skip_tests,
            }
        } else {
            RolloutKind::Release
        };
        RolloutStatus {
            revision: stored.revision,
            version: stored.version,
            color: stored.color,
            started_at: stored.started_at,
            progressing_since: stored.progressing_since,
            kind,
            stage,
            reason: stored.reason,
            test_round: stored.test_round,
            preview_replicas: stored.preview_replicas,
        }
    }
}

impl From<RolloutStatus> for StoredRollout {
    fn from(rollout: RolloutStatus) -> Self {
        let available_at = match &rollout.stage {
            RolloutStage::Testing { available_at } => Some(available_at.clone()),
            _ => None,
        };
        let promote_requested = matches!(
            rollout.stage,
            RolloutStage::Promoting {
                promote_requested: true,
                ..
            }
        );
        let promoted_at = match &rollout.stage {
            RolloutStage::Verifying { promoted_at, .. } => Some(promoted_at.clone()),
            _ => None,
        };
        let tests_passed_at = rollout.stage.tests_passed_at().cloned();
        let (rollback, skip_tests) = match rollout.kind {
            RolloutKind::Release => (false, false),
            RolloutKind::Rollback { skip_tests } => (true, skip_tests),
        };
        StoredRollout {
            stage: Some(rollout.stage.name()),
            revision: rollout.revision,
            version: rollout.version,
            color: rollout.color,
            started_at: rollout.started_at,
            progressing_since: rollout.progressing_since,
            available_at,
            tests_passed_at,
            rollback,
            skip_tests,
            reason: rollout.reason,
            test_round: rollout.test_round,
            promote_requested,
            promoted_at,
            preview_replicas: rollout.preview_replicas,
        }
    }
}
