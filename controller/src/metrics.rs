//! Prometheus metrics of the controller (DESIGN §6).
//!
//! [`Metrics`] owns a private [`Registry`] rather than the process-global one, so that tests
//! (and several controllers in one test process) each see only their own series. Share it as
//! `Arc<Metrics>`: every handle inside is already internally reference-counted and atomic.
//!
//! Every label is bounded: phases, outcomes and error kinds are `&'static str`s from closed
//! enums. The one exception is `bluegreen_release_info`, which carries the release name and
//! version on purpose (Grafana release markers); it is kept at exactly one series per live
//! release by replacing the previous label set and removing it when the release is forgotten.

mod delivery;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bluegreen_crd::{AnalysisPhase, Color, Outcome, Phase};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use strum::VariantArray;

/// Reconciles are API round trips: milliseconds normally, seconds when the API server is slow.
const RECONCILE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Rollouts go from about a second (instant pods, no tests) to an hour (slow readiness,
/// long smoke tests, manual promotion).
const ROLLOUT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

const RESULT_OK: &str = "ok";
const RESULT_ERROR: &str = "error";
const SMOKE_SUCCEEDED: &str = "succeeded";
const SMOKE_FAILED: &str = "failed";
/// The results of an analysis sample (the planner's verdict labels).
const ANALYSIS_RESULTS: [&str; 3] = ["pass", "fail", "inconclusive"];

/// Identifies a release across the per-release bookkeeping.
type ReleaseKey = (String, String);

/// What the metrics remember about one release, so that gauges can be decremented exactly.
#[derive(Default)]
struct TrackedRelease {
    /// Phase currently counted in `bluegreen_releases`.
    phase: Option<&'static str>,
    /// Label values of its current `bluegreen_release_info` series.
    info: Option<[String; 4]>,
}

/// All controller metrics and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    reconcile_total: IntCounterVec,
    reconcile_duration: Histogram,
    reconcile_errors: IntCounterVec,
    releases_by_phase: IntGaugeVec,
    rollout_duration: HistogramVec,
    flips: IntCounter,
    rollbacks: IntCounter,
    smoke_tests: IntCounterVec,
    analysis_samples: IntCounterVec,
    delivery: delivery::Delivery,
    release_info: IntGaugeVec,
    /// One lock for phase and info, so `forget_release` removes both consistently.
    tracked: Mutex<HashMap<ReleaseKey, TrackedRelease>>,
}

/// A collector, registered (the names and labels are constants: a failure is a bug).
fn registered<C>(registry: &Registry, collector: prometheus::Result<C>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let collector = collector.expect(VALID_METRIC);
    registry
        .register(Box::new(collector.clone()))
        .expect(VALID_METRIC);
    collector
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(registry, IntCounterVec::new(Opts::new(name, help), labels))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(registry, IntGaugeVec::new(Opts::new(name, help), labels))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric, with the bounded label values pre-initialised to 0
    /// so dashboards and `rate()` see a series before the first event.
    pub fn new() -> Self {
        let registry = Registry::new();
        let r = &registry;
        let reconcile_duration = HistogramOpts::new(
            "bluegreen_reconcile_duration_seconds",
            "Time spent in one reconciliation.",
        )
        .buckets(RECONCILE_BUCKETS.to_vec());
        let rollout_duration = HistogramOpts::new(
            "bluegreen_rollout_duration_seconds",
            "Time from the start of a rollout to its end, by outcome.",
        )
        .buckets(ROLLOUT_BUCKETS.to_vec());
        let metrics = Metrics {
            reconcile_total: counter_vec(
                r,
                "bluegreen_reconcile_total",
                "Reconciliations by result.",
                &["result"],
            ),
            reconcile_duration: registered(r, Histogram::with_opts(reconcile_duration)),
            reconcile_errors: counter_vec(
                r,
                "bluegreen_reconcile_errors_total",
                "Failed reconciliations by error kind.",
                &["error"],
            ),
            releases_by_phase: gauge_vec(
                r,
                "bluegreen_releases",
                "Releases known to the controller by phase.",
                &["phase"],
            ),
            rollout_duration: registered(r, HistogramVec::new(rollout_duration, &["outcome"])),
            flips: registered(
                r,
                IntCounter::new(
                    "bluegreen_flips_total",
                    "Writes that switched an active Service to another color.",
                ),
            ),
            rollbacks: registered(
                r,
                IntCounter::new(
                    "bluegreen_rollbacks_total",
                    "Rollbacks to the warm previous color.",
                ),
            ),
            smoke_tests: counter_vec(
                r,
                "bluegreen_smoke_tests_total",
                "Finished smoke-test Jobs by result.",
                &["result"],
            ),
            analysis_samples: counter_vec(
                r,
                "bluegreen_analysis_samples_total",
                "Analysis samples by stage (PrePromotion, PostPromotion) and result (pass, fail, inconclusive).",
                &["phase", "result"],
            ),
            delivery: delivery::Delivery::new(r),
            release_info: gauge_vec(
                r,
                "bluegreen_release_info",
                "1 per release, labelled with its active color and version (release markers).",
                &["namespace", "release", "color", "version"],
            ),
            tracked: Mutex::new(HashMap::new()),
            registry,
        };
        metrics.preinitialise();
        metrics
    }

    /// Every bounded label value starts at 0.
    fn preinitialise(&self) {
        for result in [RESULT_OK, RESULT_ERROR] {
            self.reconcile_total.with_label_values(&[result]);
        }
        for phase in Phase::VARIANTS {
            self.releases_by_phase
                .with_label_values(&[phase.as_str()])
                .set(0);
        }
        for result in [SMOKE_SUCCEEDED, SMOKE_FAILED] {
            self.smoke_tests.with_label_values(&[result]);
        }
        for phase in [AnalysisPhase::PrePromotion, AnalysisPhase::PostPromotion] {
            for result in ANALYSIS_RESULTS {
                self.analysis_samples
                    .with_label_values(&[phase.into(), result]);
            }
        }
    }

    /// Starts timing one reconciliation; the duration is observed when the guard is dropped,
    /// so early returns and `?` are timed too.
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.reconcile_duration.clone(),
            started: Instant::now(),
        }
    }

    pub fn reconcile_ok(&self) {
        self.reconcile_total.with_label_values(&[RESULT_OK]).inc();
    }

    /// Counts a failed reconciliation; `error` is the error's bounded `metric_label()`.
    pub fn reconcile_error(&self, error: &'static str) {
        self.reconcile_total
            .with_label_values(&[RESULT_ERROR])
            .inc();
        self.reconcile_errors.with_label_values(&[error]).inc();
    }

    /// Records the phase a release is in (`None`: no phase yet), moving it between the
    /// `bluegreen_releases` counts so that their sum is always the number of releases.
    pub fn set_release_phase(&self, namespace: &str, name: &str, phase: Option<&'static str>) {
        let mut tracked = self.lock_tracked();
        let entry = tracked
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        if entry.phase == phase {
            return;
        }
        if let Some(previous) = entry.phase {
            self.releases_by_phase.with_label_values(&[previous]).dec();
        }
        if let Some(current) = phase {
            self.releases_by_phase.with_label_values(&[current]).inc();
        }
        entry.phase = phase;
    }

    /// Publishes the release marker `bluegreen_release_info{…} 1`, replacing the release's
    /// previous series so each release has at most one.
    pub fn set_release_info(&self, namespace: &str, name: &str, color: Color, version: &str) {
        let labels = [
            namespace.to_owned(),
            name.to_owned(),
            color.as_str().to_owned(),
            version.to_owned(),
        ];
        let mut tracked = self.lock_tracked();
        let entry = tracked
            .entry((namespace.to_owned(), name.to_owned()))
            .or_default();
        if entry.info.as_ref() == Some(&labels) {
            return;
        }
        if let Some(previous) = entry.info.take() {
            self.remove_info_series(&previous);
        }
        self.release_info.with_label_values(&labels).set(1);
        entry.info = Some(labels);
    }

    /// Drops everything recorded about a deleted release: its phase count and its info series.
    pub fn forget_release(&self, namespace: &str, name: &str) {
        self.delivery.forget(namespace, name);
        let mut tracked = self.lock_tracked();
        let Some(release) = tracked.remove(&(namespace.to_owned(), name.to_owned())) else {
            return;
        };
        if let Some(phase) = release.phase {
            self.releases_by_phase.with_label_values(&[phase]).dec();
        }
        if let Some(info) = release.info {
            self.remove_info_series(&info);
        }
    }

    /// A deployment ended (the DORA deployment count, by outcome).
    pub fn deployed(&self, namespace: &str, name: &str, outcome: Outcome) {
        self.delivery.deployed(namespace, name, outcome);
    }

    /// A live version was taken back (the DORA change failures).
    pub fn change_failed(&self, namespace: &str, name: &str, by_verification: bool) {
        self.delivery
            .change_failed(namespace, name, by_verification);
    }

    /// Commit to live (the DORA lead time).
    pub fn lead_time(&self, namespace: &str, name: &str, seconds: f64) {
        self.delivery.lead_time(namespace, name, seconds);
    }

    /// Stalled to Stable again (the DORA time to restore).
    pub fn restored(&self, namespace: &str, name: &str, seconds: f64) {
        self.delivery.restored(namespace, name, seconds);
    }

    /// Records how long a finished rollout took, by how it ended.
    pub fn observe_rollout(&self, outcome: Outcome, duration: Duration) {
        self.rollout_duration
            .with_label_values(&[<&str>::from(outcome)])
            .observe(duration.as_secs_f64());
    }

    pub fn flipped(&self) {
        self.flips.inc();
    }

    pub fn rolled_back(&self) {
        self.rollbacks.inc();
    }

    pub fn smoke_test_finished(&self, succeeded: bool) {
        let result = if succeeded {
            SMOKE_SUCCEEDED
        } else {
            SMOKE_FAILED
        };
        self.smoke_tests.with_label_values(&[result]).inc();
    }

    /// One analysis sample, by stage and result (`pass`, `fail`, `inconclusive`).
    pub fn analysis_sample(&self, phase: AnalysisPhase, result: &str) {
        let phase: &'static str = phase.into();
        self.analysis_samples
            .with_label_values(&[phase, result])
            .inc();
    }

    /// All metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Encoding only fails for malformed families (no name, no metric), which the
        // registry's own validation at registration already rules out; log rather than panic
        // inside the scrape handler should that ever change.
        if let Err(error) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::error!(%error, "encoding metrics failed");
        }
        text
    }

    /// The content type matching [`Metrics::encode`].
    pub fn content_type(&self) -> String {
        TextEncoder::new().format_type().to_owned()
    }

    fn remove_info_series(&self, labels: &[String; 4]) {
        // Absent only if someone else removed it; nothing to undo then.
        let _ = self.release_info.remove_label_values(labels);
    }

    /// The map holds plain bookkeeping that is valid after every statement, so a panic in
    /// another thread while holding the lock leaves nothing half-done worth refusing over.
    fn lock_tracked(&self) -> MutexGuard<'_, HashMap<ReleaseKey, TrackedRelease>> {
        self.tracked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Names, help texts and labels above are constants and the registry is private, so
/// construction and registration can only fail through a programming error, which the unit
/// tests catch.
const VALID_METRIC: &str = "metric definitions are static and valid";

/// Observes the duration of one reconciliation into
/// `bluegreen_reconcile_duration_seconds` when dropped.
#[must_use = "the reconcile is timed until this guard is dropped"]
pub struct ReconcileTimer {
    histogram: Histogram,
    started: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `name{labels} value` in the encoded output, if present.
    fn sample(metrics: &Metrics, series: &str) -> Option<f64> {
        metrics.encode().lines().find_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            (head == series).then(|| value.parse().expect("numeric sample"))
        })
    }

    fn phase_count(metrics: &Metrics, phase: &str) -> i64 {
        metrics.releases_by_phase.with_label_values(&[phase]).get()
    }

    fn phase_total(metrics: &Metrics) -> i64 {
        Phase::VARIANTS
            .iter()
            .map(|phase| phase_count(metrics, phase.as_str()))
            .sum()
    }

    #[test]
    fn every_phase_starts_at_zero_and_is_exposed() {
        let metrics = Metrics::new();
        for phase in Phase::VARIANTS {
            let series = format!("bluegreen_releases{{phase=\"{}\"}}", phase.as_str());
            assert_eq!(sample(&metrics, &series), Some(0.0), "{series}");
        }
    }

    #[test]
    fn phase_counts_stay_exact_through_moves_and_forget() {
        let metrics = Metrics::new();
        metrics.set_release_phase("ns", "a", Some("Pending"));
        metrics.set_release_phase("ns", "b", Some("Pending"));
        metrics.set_release_phase("other", "a", Some("Stable"));
        assert_eq!(phase_count(&metrics, "Pending"), 2);
        assert_eq!(phase_count(&metrics, "Stable"), 1);

        metrics.set_release_phase("ns", "a", Some("Deploying"));
        // Repeating the same phase must not count the release twice.
        metrics.set_release_phase("ns", "a", Some("Deploying"));
        assert_eq!(phase_count(&metrics, "Pending"), 1);
        assert_eq!(phase_count(&metrics, "Deploying"), 1);
        assert_eq!(phase_total(&metrics), 3);

        metrics.set_release_phase("ns", "b", None);
        assert_eq!(phase_count(&metrics, "Pending"), 0);
        assert_eq!(phase_total(&metrics), 2);

        metrics.forget_release("ns", "a");
        metrics.forget_release("ns", "a");
        metrics.forget_release("ns", "never-seen");
        assert_eq!(phase_count(&metrics, "Deploying"), 0);
        assert_eq!(phase_count(&metrics, "Stable"), 1);
        assert_eq!(phase_total(&metrics), 1);
    }

    #[test]
    fn release_info_is_replaced_not_duplicated_and_removed_on_forget() {
        let metrics = Metrics::new();
        metrics.set_release_info("ns", "shop", Color::Blue, "v1");
        metrics.set_release_info("ns", "shop", Color::Green, "v2");
        metrics.set_release_info("ns", "cart", Color::Blue, "v7");

        let text = metrics.encode();
        let info_lines: Vec<&str> = text
            .lines()
            .filter(|line| line.starts_with("bluegreen_release_info{"))
            .collect();
        assert_eq!(info_lines.len(), 2, "{info_lines:?}");
        assert_eq!(
            sample(
                &metrics,
                r#"bluegreen_release_info{color="green",namespace="ns",release="shop",version="v2"}"#
            ),
            Some(1.0)
        );
        assert!(!text.contains(r#"version="v1""#));

        metrics.forget_release("ns", "shop");
        let text = metrics.encode();
        assert!(!text.contains(r#"release="shop""#), "{text}");
        assert!(text.contains(r#"release="cart""#));
    }

    #[test]
    fn delivery_metrics_are_per_release_and_forgotten_with_it() {
        let metrics = Metrics::new();
        metrics.deployed("ns", "shop", Outcome::Promoted);
        metrics.deployed("ns", "shop", Outcome::Promoted);
        metrics.deployed("ns", "shop", Outcome::RolledBack);
        metrics.change_failed("ns", "shop", true);
        metrics.lead_time("ns", "shop", 1200.0);
        metrics.restored("ns", "shop", 45.0);
        metrics.deployed("ns", "cart", Outcome::Failed);
        let at = |name: &str| sample(&metrics, name);
        assert_eq!(
            at(r#"bluegreen_deployments_total{namespace="ns",outcome="Promoted",release="shop"}"#),
            Some(2.0)
        );
        assert_eq!(
            at(
                r#"bluegreen_change_failures_total{namespace="ns",reason="VerificationFailed",release="shop"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            at(r#"bluegreen_lead_time_seconds_bucket{namespace="ns",release="shop",le="1800"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"bluegreen_time_to_restore_seconds_sum{namespace="ns",release="shop"}"#),
            Some(45.0)
        );
        metrics.forget_release("ns", "shop");
        let text = metrics.encode();
        assert!(!text.contains(r#"release="shop""#), "{text}");
        assert!(text.contains(
            r#"bluegreen_deployments_total{namespace="ns",outcome="Failed",release="cart"} 1"#
        ));
    }

    #[test]
    fn forget_removes_phase_and_info_together() {
        let metrics = Metrics::new();
        metrics.set_release_phase("ns", "shop", Some("Stable"));
        metrics.set_release_info("ns", "shop", Color::Blue, "v1");
        metrics.forget_release("ns", "shop");
        assert_eq!(phase_total(&metrics), 0);
        assert!(!metrics.encode().contains("bluegreen_release_info{"));
    }

    #[test]
    fn reconcile_results_errors_and_timer_are_recorded() {
        let metrics = Metrics::new();
        metrics.reconcile_ok();
        metrics.reconcile_error("kube_api");
        metrics.reconcile_error("kube_api");
        {
            let _timer = metrics.reconcile_timer();
        }
        assert_eq!(
            sample(&metrics, r#"bluegreen_reconcile_total{result="ok"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&metrics, r#"bluegreen_reconcile_total{result="error"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &metrics,
                r#"bluegreen_reconcile_errors_total{error="kube_api"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&metrics, "bluegreen_reconcile_duration_seconds_count"),
            Some(1.0)
        );
    }

    #[test]
    fn rollout_flip_rollback_and_smoke_test_counters() {
        let metrics = Metrics::new();
        metrics.observe_rollout(Outcome::Promoted, Duration::from_secs(42));
        metrics.observe_rollout(Outcome::RolledBack, Duration::from_secs(3));
        metrics.flipped();
        metrics.flipped();
        metrics.rolled_back();
        metrics.smoke_test_finished(true);
        metrics.smoke_test_finished(false);
        metrics.smoke_test_finished(true);

        assert_eq!(
            sample(
                &metrics,
                r#"bluegreen_rollout_duration_seconds_sum{outcome="Promoted"}"#
            ),
            Some(42.0)
        );
        assert_eq!(
            sample(
                &metrics,
                r#"bluegreen_rollout_duration_seconds_bucket{outcome="RolledBack",le="5"}"#
            ),
            Some(1.0)
        );
        assert_eq!(sample(&metrics, "bluegreen_flips_total"), Some(2.0));
        assert_eq!(sample(&metrics, "bluegreen_rollbacks_total"), Some(1.0));
        assert_eq!(
            sample(
                &metrics,
                r#"bluegreen_smoke_tests_total{result="succeeded"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&metrics, r#"bluegreen_smoke_tests_total{result="failed"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn encode_names_every_metric_in_text_format() {
        let metrics = Metrics::new();
        // Vec metrics without any labelled child are not exposed; give each one a series.
        metrics.reconcile_error("kube_api");
        metrics.observe_rollout(Outcome::Failed, Duration::from_secs(1));
        metrics.set_release_info("ns", "shop", Color::Blue, "v1");
        let text = metrics.encode();
        for name in [
            "bluegreen_reconcile_total",
            "bluegreen_reconcile_duration_seconds",
            "bluegreen_reconcile_errors_total",
            "bluegreen_releases",
            "bluegreen_rollout_duration_seconds",
            "bluegreen_flips_total",
            "bluegreen_rollbacks_total",
            "bluegreen_smoke_tests_total",
            "bluegreen_analysis_samples_total",
            "bluegreen_release_info",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
        }
        assert_eq!(metrics.content_type(), "text/plain; version=0.0.4");
    }
}
