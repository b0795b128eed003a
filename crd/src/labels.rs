//! Well-known label and annotation keys under `bluegreen.dev/`.
//!
//! The prefix is reserved: users may not put their own labels under it (validated by CEL and
//! by the controller), because these keys decide which pods receive traffic.

/// Reserved prefix for keys the controller owns.
pub const PREFIX: &str = "bluegreen.dev/";
/// On every object the controller creates or adopts; every watch filters on it.
pub const RELEASE: &str = "bluegreen.dev/release";
/// `blue` or `green`, on ReplicaSets, pods and the Services' selectors.
pub const COLOR: &str = "bluegreen.dev/color";
/// Hash of the application pod template, on ReplicaSets, pods and the Services' selectors.
pub const REVISION: &str = "bluegreen.dev/revision";
/// Which smoke test a Job runs, on smoke-test Jobs.
pub const SMOKE_TEST: &str = "bluegreen.dev/smoke-test";
/// Which Service role (`active` or `preview`) a Service plays.
pub const SERVICE_ROLE: &str = "bluegreen.dev/service-role";

/// On ReplicaSets: the human-facing version, so the version of a color can be recovered
/// from the world after a restart.
pub const VERSION_ANNOTATION: &str = "bluegreen.dev/version";
/// On smoke-test Jobs: the rollout (its id, `RolloutStatus::id`) they belong to.
pub const ROLLOUT_ANNOTATION: &str = "bluegreen.dev/rollout";

/// Kubernetes' label on an EndpointSlice naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Manual action verb (`promote`, `abort`, `retry`, `rollback`).
pub const ACTION: &str = "bluegreen.dev/action";
/// Annotation CI may set on a release: when the commit it deploys was made (RFC 3339); the
/// flip then observes the lead time from commit to live (`bluegreen_lead_time_seconds`).
pub const COMMIT_TIME: &str = "bluegreen.dev/commit-time";
/// Unique id of a manual action; each id is consumed exactly once.
pub const ACTION_ID: &str = "bluegreen.dev/action-id";

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "bluegreen-controller";
