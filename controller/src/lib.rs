//! The bluegreen controller: carries a `BlueGreenRelease` through a blue-green rollout.
//!
//! `plan` decides (pure), `reconcile` writes (the only module that does), `world` condenses
//! what the caches hold into what the planner reads, `desired` builds the objects to apply.

pub mod cache;
pub mod config;
pub mod controller;
pub mod desired;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod own_writes;
pub mod plan;
pub mod reconcile;
pub mod snapshot;
pub mod telemetry;
pub mod watches;
pub mod world;
