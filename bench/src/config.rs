//! Counts and paths, each from a `BENCH_*` environment variable with a default sized to
//! finish `make bench` in under ten minutes on a 2-core machine.

use std::path::PathBuf;

use bluegreen_e2e::repo_root;

#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `BENCH_CONCURRENT`: concurrently upgrading releases for the flip latency.
    pub concurrent: Vec<usize>,
    /// `BENCH_IDLE_RELEASES`: idle (Stable) releases for RSS and the restart.
    pub idle_releases: usize,
    /// `BENCH_IDLE_CHECKPOINTS`: smaller counts at which RSS is also read on the way up.
    pub idle_checkpoints: Vec<usize>,
    /// `BENCH_ROLLBACKS`: rollbacks per kind (action, GitOps revert).
    pub rollbacks: usize,
    /// `BENCH_PATCH_SAMPLES`: bare Service PATCH round trips (the physical floor).
    pub patch_samples: usize,
    /// `BENCH_KUBESIM_OBJECTS`: ConfigMaps stored in kubesim for creates/s and memory.
    pub kubesim_objects: usize,
    /// `BENCH_KUBESIM_CONCURRENCY`: concurrent creates against kubesim.
    pub kubesim_concurrency: usize,
    /// `BENCH_WATCHERS`: watch streams for the fan-out latency.
    pub watchers: usize,
    /// `BENCH_FANOUT_WRITES`: writes observed by every watcher.
    pub fanout_writes: usize,
    /// `BENCH_CONTROLLER_CONCURRENCY`: the controller's BLUEGREEN_CONCURRENCY.
    pub controller_concurrency: usize,
    /// `BENCH_CLIENT_CONCURRENCY`: the bench's own concurrent requests (creating releases).
    pub client_concurrency: usize,
    /// `BENCH_CONTROLLER_LOG`: the controller's log level (its log goes to a file).
    pub controller_log: String,
    /// `BENCH_ONLY`: comma-separated figures to run (flip, requests, idle, rollback, kubesim).
    pub only: Option<Vec<String>>,
    /// `BLUEGREEN_CONTROLLER_BIN` [target/release/bluegreen-controller].
    pub controller_bin: PathBuf,
    /// `KUBESIM_BIN` [target/release/kubesim].
    pub kubesim_bin: PathBuf,
    /// Scratch directory for kubeconfigs and controller logs [target/bench].
    pub work_dir: PathBuf,
    /// `BENCH_JSON` [target/bench.json].
    pub json_path: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: usize) -> usize {
    match var(name) {
        Some(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a number")),
        None => default,
    }
}

fn numbers(name: &str, default: &[usize]) -> Vec<usize> {
    match var(name) {
        Some(v) => v
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v}: expected numbers, comma-separated"))
            })
            .collect(),
        None => default.to_vec(),
    }
}

fn target_dir() -> PathBuf {
    var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

impl BenchConfig {
    pub fn from_env() -> Self {
        let target = target_dir();
        let idle_releases = number("BENCH_IDLE_RELEASES", 10_000);
        let mut idle_checkpoints: Vec<usize> = numbers("BENCH_IDLE_CHECKPOINTS", &[1_000])
            .into_iter()
            .filter(|&c| c > 0 && c < idle_releases)
            .collect();
        idle_checkpoints.sort_unstable();
        idle_checkpoints.dedup();
        BenchConfig {
            concurrent: numbers("BENCH_CONCURRENT", &[1, 100, 1_000]),
            idle_releases,
            idle_checkpoints,
            rollbacks: number("BENCH_ROLLBACKS", 50),
            patch_samples: number("BENCH_PATCH_SAMPLES", 500).max(1),
            kubesim_objects: number("BENCH_KUBESIM_OBJECTS", 50_000),
            kubesim_concurrency: number("BENCH_KUBESIM_CONCURRENCY", 16).max(1),
            watchers: number("BENCH_WATCHERS", 100).max(1),
            fanout_writes: number("BENCH_FANOUT_WRITES", 200).max(1),
            controller_concurrency: number("BENCH_CONTROLLER_CONCURRENCY", 64).max(1),
            client_concurrency: number("BENCH_CLIENT_CONCURRENCY", 32).max(1),
            controller_log: var("BENCH_CONTROLLER_LOG").unwrap_or_else(|| "info".into()),
            only: var("BENCH_ONLY").map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            controller_bin: var("BLUEGREEN_CONTROLLER_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("release/bluegreen-controller")),
            kubesim_bin: var("KUBESIM_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("release/kubesim")),
            work_dir: target.join("bench"),
            json_path: var("BENCH_JSON")
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("bench.json")),
        }
    }

    /// Whether a figure (`flip`, `requests`, `idle`, `rollback`, `kubesim`) is selected.
    pub fn runs(&self, figure: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|o| o == figure))
    }

    /// The settings, for the header and the JSON file.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "BENCH_CONCURRENT": self.concurrent,
            "BENCH_IDLE_RELEASES": self.idle_releases,
            "BENCH_IDLE_CHECKPOINTS": self.idle_checkpoints,
            "BENCH_ROLLBACKS": self.rollbacks,
            "BENCH_PATCH_SAMPLES": self.patch_samples,
            "BENCH_KUBESIM_OBJECTS": self.kubesim_objects,
            "BENCH_KUBESIM_CONCURRENCY": self.kubesim_concurrency,
            "BENCH_WATCHERS": self.watchers,
            "BENCH_FANOUT_WRITES": self.fanout_writes,
            "BENCH_CONTROLLER_CONCURRENCY": self.controller_concurrency,
            "BENCH_CLIENT_CONCURRENCY": self.client_concurrency,
            "BENCH_CONTROLLER_LOG": self.controller_log,
            "BENCH_ONLY": self.only,
        })
    }
}
