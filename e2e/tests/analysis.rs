//! Analysis against a real Prometheus server: the pre-promotion gate, verification after
//! the flip with its automatic flip back, a Prometheus outage, a malformed query, and
//! `promote` during verification. The exporter's per-color error ratio is what the test sets;
//! Prometheus scrapes it every second.

use std::time::Instant;

use bluegreen_crd::{AnalysisPhase, AnalysisResult, Color, Outcome, Phase};
use bluegreen_e2e::{
    fixture::{Fixture, TIMEOUT, release},
    http_get,
    prometheus::{ERROR_RATE_QUERY, Exporter, PrometheusServer},
};
use serde_json::{Value, json};

struct Analysed {
    f: Fixture,
    exporter: Exporter,
    prometheus: PrometheusServer,
}

async fn start(name: &str) -> Analysed {
    let f = Fixture::start(name).await;
    let exporter = Exporter::start().await.expect("exporter");
    let prometheus = PrometheusServer::start(f.env.dir.join("prometheus"), &exporter)
        .await
        .expect("prometheus");
    Analysed {
        f,
        exporter,
        prometheus,
    }
}

fn error_rate() -> Value {
    json!([{"name": "error-rate", "query": ERROR_RATE_QUERY, "max": 0.01}])
}

/// `release(image)` with an analysis: a pre-promotion gate of `pre` samples and/or a
/// verification of `window` seconds, one sample a second.
fn analysed(image: &str, address: Option<&str>, pre: Option<i32>, window: Option<i32>) -> Value {
    let mut manifest = release(image, 0);
    let mut analysis = json!({"interval": "1s"});
    if let Some(address) = address {
        analysis["prometheus"] = json!({"address": address});
    }
    if let Some(samples) = pre {
        analysis["prePromotion"] = json!({"samples": samples, "checks": error_rate()});
    }
    if let Some(window) = window {
        analysis["postPromotion"] =
            json!({"duration": format!("{window}s"), "failureLimit": 0, "checks": error_rate()});
    }
    manifest["spec"]["analysis"] = analysis;
    manifest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_gates_the_flip_and_verifies_it() {
    let a = start("analysis-pass").await;
    let f = &a.f;
    // The controller's default Prometheus: the release names none.
    let controller = f
        .env
        .start_controller_with(&[("BLUEGREEN_PROMETHEUS_ADDRESS", &a.prometheus.url())])
        .unwrap();
    f.apply(&analysed("shop:1", None, Some(2), Some(2)));
    f.stable("1").await;
    f.apply(&analysed("shop:2", None, Some(2), Some(6)));
    let gated = f
        .status_when("pre-promotion analysis sampling", |s| {
            s.analysis.as_ref().is_some_and(|a| {
                a.phase == AnalysisPhase::PrePromotion
                    && a.result == AnalysisResult::Running
                    && a.samples >= 1
            })
        })
        .await;
    assert_eq!(
        gated.active_version.as_deref(),
        Some("1"),
        "no flip before the gate passed"
    );
    let verifying = f
        .status_when("Verifying", |s| s.phase == Some(Phase::Verifying))
        .await;
    assert_eq!(verifying.active_color, Some(Color::Green));
    let listed = f.env.kubectl(&["get", "bgr", "shop"]).unwrap();
    assert!(listed.contains("Verifying"), "{listed}");
    let stable = f.stable("2").await;
    let record = stable.analysis.clone().unwrap();
    assert_eq!(record.result, AnalysisResult::Passed, "{record:#?}");
    assert!(record.passed >= 1 && record.failed == 0, "{record:#?}");
    let value = record.checks[0].last_value.expect("a value was read");
    assert!(value.abs() < 1e-9, "no errors were served: {value}");
    let entry = &stable.history[0];
    assert_eq!(entry.outcome, Outcome::Promoted);
    let promoted = entry.promoted_at.as_ref().unwrap().0.as_second();
    assert!(
        entry.finished_at.0.as_second() >= promoted + 6,
        "verified for the window"
    );
    // The previous color's scale-down delay starts when verification passed.
    assert_eq!(stable.standby.as_ref().unwrap().since, entry.finished_at);

    let addr = controller.metrics_addr(TIMEOUT).expect("metrics address");
    let (_, metrics) = http_get(&addr, "/metrics").await.unwrap();
    for phase in ["PrePromotion", "PostPromotion"] {
        let line = format!("bluegreen_analysis_samples_total{{phase=\"{phase}\",result=\"pass\"}}");
        let count: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"));
        assert!(count >= 2.0, "{line} {count}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_promotion_analysis_leaves_the_active_service_untouched() {
    let a = start("analysis-pre-fail").await;
    let f = &a.f;
    let _controller = f.env.start_controller().unwrap();
    let url = a.prometheus.url();
    f.apply(&analysed("shop:1", Some(&url), Some(2), None));
    f.stable("1").await;
    let live = f.active_selector().await;
    // The cold color serves 5% errors before it is even deployed (the exporter's counters).
    a.exporter.set_error_ratio("green", 0.05);
    a.prometheus
        .wait_for_error_rate("green", 0.05)
        .await
        .unwrap();
    f.apply(&analysed("shop:2", Some(&url), Some(2), None));
    let failed = f
        .status_when("Failed", |s| s.phase == Some(Phase::Failed))
        .await;
    assert_eq!(
        f.active_selector().await,
        live,
        "the active Service is untouched"
    );
    let stalled = failed.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "AnalysisFailed");
    assert!(
        stalled.message.contains("check 'error-rate' returned 0.0")
            && stalled.message.contains("which is not <= 0.01"),
        "{}",
        stalled.message
    );
    let read = failed.analysis.as_ref().unwrap().checks[0]
        .last_value
        .unwrap();
    // Around 5% (Prometheus extrapolates rates at the window's edges), above the bound.
    assert!(
        (0.01..0.1).contains(&read) && read > 0.01,
        "the error rate was read: {read}"
    );
    assert_eq!(failed.history[0].outcome, Outcome::Failed);
    f.wait_for_replicas(Color::Green, 0).await;
    let events = f.env.kubectl(&["get", "events"]).unwrap();
    assert!(events.contains("AnalysisFailed"), "{events}");
}

/// Polls until the active Service selects blue again, checking on every poll that blue is
/// at full size. Returns the wall-clock seconds from the start, and from the first poll that
/// saw the failed verification recorded in the status (the flip back follows it).
async fn flip_back_with_blue_warm(f: &Fixture) -> (f64, Option<f64>) {
    let start = Instant::now();
    let mut recorded: Option<Instant> = None;
    loop {
        assert_eq!(
            f.rs_replicas(Color::Blue).await,
            2,
            "blue at full size throughout"
        );
        if f.active_selector().await.0 == "blue" {
            let since_recorded = recorded.map(|at| at.elapsed().as_secs_f64());
            return (start.elapsed().as_secs_f64(), since_recorded);
        }
        if recorded.is_none() {
            let release = f.releases.get("shop").await.unwrap();
            let status = release.status.unwrap_or_default();
            if status
                .analysis
                .is_some_and(|a| a.result == AnalysisResult::Failed)
            {
                recorded = Some(Instant::now());
            }
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "no flip back to blue within {TIMEOUT:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verification_flips_back_with_the_previous_color_warm() {
    let a = start("analysis-verify-fail").await;
    let f = &a.f;
    let _controller = f.env.start_controller().unwrap();
    let url = a.prometheus.url();
    f.apply(&analysed("shop:1", Some(&url), None, Some(1)));
    f.stable("1").await;
    f.apply(&analysed("shop:2", Some(&url), None, Some(120)));
    f.status_when("Verifying on green", |s| {
        s.phase == Some(Phase::Verifying) && s.active_color == Some(Color::Green)
    })
    .await;
    assert_eq!(f.rs_replicas(Color::Blue).await, 2);
    a.exporter.set_error_ratio("green", 0.5);
    let (waited, since_recorded) = flip_back_with_blue_warm(f).await;
    let status = f
        .status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
        .await;
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "VerificationFailed", "{}", stalled.message);
    let failed = &status.history[1];
    assert_eq!(
        (failed.version.as_str(), failed.outcome),
        ("2", Outcome::RolledBack)
    );
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap()
            .starts_with("VerificationFailed: ")
    );
    let record = status.analysis.clone().unwrap();
    assert_eq!(record.result, AnalysisResult::Failed);
    // From the failing sample (its record) to the flip back (the rollback's history entry),
    // at the status's second precision; and as seen from outside.
    let sampled = record.last_sample_at.unwrap().0.as_second();
    let flipped = status.history[0].finished_at.0.as_second();
    assert!(
        flipped - sampled <= 1,
        "the flip back follows the failing sample at once"
    );
    let seen = since_recorded.map_or("not seen".into(), |s| format!("{s:.2} s"));
    eprintln!(
        "analysis: failed sample recorded -> active Service back on blue: {seen} (polled); error ratio set -> flip back: {waited:.1} s (the next 1 s scrape, then the next 1 s sample)"
    );
    assert_eq!(
        status.blocked_revision.as_deref(),
        failed.revision.as_str().into()
    );
    let events = f.env.kubectl(&["get", "events"]).unwrap();
    assert!(events.contains("VerificationFailed"), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_outage_during_verification_rolls_back() {
    let mut a = start("analysis-outage").await;
    let _controller = a.f.env.start_controller().unwrap();
    let url = a.prometheus.url();
    a.f.apply(&analysed("shop:1", Some(&url), None, Some(1)));
    a.f.stable("1").await;
    a.f.apply(&analysed("shop:2", Some(&url), None, Some(120)));
    a.f.status_when("Verifying with a passing sample", |s| {
        s.phase == Some(Phase::Verifying) && s.analysis.as_ref().is_some_and(|r| r.passed >= 1)
    })
    .await;
    a.prometheus.kill();
    let (waited, _) = flip_back_with_blue_warm(&a.f).await;
    eprintln!(
        "analysis: Prometheus stopped -> flip back: {waited:.1} s (two inconclusive samples, 1 s apart)"
    );
    let status =
        a.f.status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
            .await;
    let message = &status.condition("Stalled").unwrap().message;
    assert!(
        message.contains("inconclusive samples in a row"),
        "{message}"
    );
    assert!(
        message.contains(&url),
        "names the unreachable Prometheus: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_query_is_refused_before_anything_is_deployed() {
    let a = start("analysis-malformed").await;
    let f = &a.f;
    let _controller = f.env.start_controller().unwrap();
    let mut manifest = analysed("shop:1", Some(&a.prometheus.url()), Some(1), None);
    manifest["spec"]["analysis"]["prePromotion"]["checks"][0]["query"] =
        json!(r#"sum(rate(http_requests_total{color="{{color}}"}[1m])"#);
    f.apply(&manifest);
    let status = f
        .status_when("Stalled on InvalidSpec", |s| {
            s.condition("Stalled").is_some_and(|c| c.status == "True")
        })
        .await;
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled
            .message
            .contains("spec.analysis.prePromotion.checks[0].query")
            && stalled
                .message
                .contains("check 'error-rate' is not valid PromQL"),
        "{}",
        stalled.message
    );
    let replica_sets = f.replica_sets.list(&Default::default()).await.unwrap();
    assert!(replica_sets.items.is_empty(), "nothing deployed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_during_verification_ends_it_as_passed() {
    let a = start("analysis-promote").await;
    let f = &a.f;
    let _controller = f.env.start_controller().unwrap();
    let url = a.prometheus.url();
    f.apply(&analysed("shop:1", Some(&url), None, Some(1)));
    f.stable("1").await;
    f.apply(&analysed("shop:2", Some(&url), None, Some(600)));
    f.status_when("Verifying", |s| s.phase == Some(Phase::Verifying))
        .await;
    f.request("promote", "promote-verified").await;
    let stable = f.stable("2").await;
    let reason = stable.history[0].reason.clone().unwrap_or_default();
    assert!(reason.starts_with("ManualOverride"), "{reason}");
    assert_eq!(stable.analysis.unwrap().result, AnalysisResult::Overridden);
    assert_eq!(f.active_selector().await.0, "green");
    // The previous color's scale-down delay starts now, not at the flip.
    assert_eq!(stable.standby.unwrap().since, stable.history[0].finished_at);
    assert_eq!(f.rs_replicas(Color::Blue).await, 2);
}
