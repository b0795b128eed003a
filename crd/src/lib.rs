//! The `bluegreen.dev/v1alpha1` `BlueGreenRelease` API: types, defaults, validation and the
//! generated CustomResourceDefinition.
//!
//! Everything the controller, the CLI and the tests agree on about the API lives here, so that
//! the schema the API server enforces and the checks the controller repeats cannot drift apart.

pub mod analysis;
pub mod crd;
pub mod labels;
pub mod names;
pub mod revision;
pub mod rollout;
pub mod spec;
pub mod status;
#[cfg(feature = "testing")]
pub mod testing;
pub mod validate;

pub use analysis::{
    AnalysisCheck, AnalysisPhase, AnalysisResult, AnalysisSpec, AnalysisStatus, CheckStatus,
};
pub use rollout::{RolloutKind, RolloutStage, RolloutStatus, StageName};
pub use spec::{
    BlueGreenRelease, BlueGreenReleaseSpec, Promotion, PromotionMode, SelectorSpec,
    ServicePortSpec, ServiceSpec, SmokeTest,
};
pub use status::{
    ActionResult, BlueGreenReleaseStatus, Color, ConditionType, HistoryEntry, LastAction, Outcome,
    Phase, SmokeTestPhase, SmokeTestStatus, Standby,
};
