//! `make bench` (DESIGN §7): the controller binary against an in-process kubesim with
//! instant pods and Jobs, and kubesim on its own. Measurement only: nothing here asserts a
//! timing; every figure lands in one table (and `target/bench.json`).
//!
//! One responsibility per module:
//! - [`config`]: counts and paths from `BENCH_*` environment variables;
//! - [`stats`]: percentiles and number formatting;
//! - [`report`]: the table, the machine header and the JSON file;
//! - [`lab`]: the in-process kubesim, a client, the CRD, waits on stored state;
//! - [`timeline`]: monotonic timestamps of store events (Job completions, selector flips);
//! - [`process`]: the controller (and kubesim) binaries as child processes: RSS, metrics;
//! - [`releases`]: BlueGreenRelease manifests and bulk creation;
//! - [`seed`]: cloning a Stable release (for 10,000 idle releases within the time budget);
//! - [`figures`]: one module per figure of DESIGN §7 (and kubesim's own figures).

pub mod config;
pub mod figures;
pub mod lab;
pub mod process;
pub mod releases;
pub mod report;
pub mod seed;
pub mod stats;
pub mod timeline;

/// What a figure fails with: the bench prints it in the table instead of a value.
pub type BenchResult<T> = Result<T, String>;
