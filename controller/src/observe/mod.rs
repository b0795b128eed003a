//! The observed world: what the controller knows of the cluster, in one place.
//!
//! - [`index`]: per-release indexes of the children (ReplicaSets, Services, EndpointSlices,
//!   pods, Jobs), fed by label-filtered watches, each with its own ready signal;
//! - [`views`]: the condensed views of those objects that the planner reasons about (a
//!   ReplicaSet's counts, not its pod template);
//! - [`snapshot`]: one release's [`Observed`] world, read from the indexes;
//! - [`analysis`]: which analysis sample is due, and what a sample read.
//!
//! Nothing here imports the planner: the planner reads this world, never the other way round.

pub mod analysis;
pub mod index;
pub mod snapshot;
pub mod views;

pub use analysis::{AnalysisSample, Reading, SampleRequest, sample_due};
pub use index::{Caches, ReleaseIndex, Summarize};
pub use snapshot::observe;
pub use views::{
    EndpointView, JobState, JobView, Observed, PodSummary, PodView, ReplicaSetView, ServiceView,
    SliceSummary, endpoint_views, job_view, pod_view, replica_set_view, service_view,
    whole_seconds,
};
