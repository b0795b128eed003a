//! The bluegreen controller: carries a `BlueGreenRelease` through a blue-green rollout.
//!
//! `observe` holds what the watches brought and condenses one release's world into what the
//! planner reads, `plan` decides (pure), `reconcile` writes (the only module that does),
//! `prometheus` takes the analysis samples reconcile hands the planner,
//! `desired` builds the objects to apply.

pub mod config;
pub mod controller;
pub mod desired;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod own_writes;
pub mod plan;
pub mod prometheus;
pub mod reconcile;
pub mod telemetry;
pub mod watches;
