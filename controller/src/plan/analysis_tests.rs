//! Analysis: the pre-promotion gate (`Analyzing`) and post-promotion verification
//! (`Verifying`), every transition of the table in `analysis.rs`, actions during them, and a
//! crash between any two writes of a verification that fails.

use bluegreen_crd::{
    AnalysisPhase, AnalysisResult, Color, Outcome, Phase, RolloutStage, testing::TestRelease,
};
use serde_json::json;

use super::testkit::Sim;
use super::{Occurrence, Write};
use crate::observe::Reading;

const INTERVAL: i64 = 10;
const WINDOW: i64 = 60;

fn check(name: &str) -> serde_json::Value {
    json!({"name": name, "query": "sum(rate(errors{color=\"{{color}}\"}[1m]))", "max": 0.01})
}

/// A release with a pre-promotion gate (`samples` in a row) and/or post-promotion
/// verification (`failure_limit`), 10 s apart.
fn release(pre: Option<i32>, post: Option<i32>) -> bluegreen_crd::BlueGreenRelease {
    let mut analysis = json!({
        "prometheus": {"address": "http://prometheus:9090"},
        "interval": format!("{INTERVAL}s"),
    });
    if let Some(samples) = pre {
        analysis["prePromotion"] = json!({"samples": samples, "checks": [check("error-rate")]});
    }
    if let Some(limit) = post {
        analysis["postPromotion"] = json!({
            "duration": format!("{WINDOW}s"),
            "failureLimit": limit,
            "checks": [check("error-rate")]
        });
    }
    TestRelease::web("web:1", &["smoke"])
        .set("/spec/analysis", analysis)
        .set("/spec/scaleDownDelaySeconds", json!(30))
        .build()
}

fn phase(sim: &Sim) -> Phase {
    sim.status().phase.expect("phase set")
}

fn stage(sim: &Sim) -> Option<RolloutStage> {
    sim.status().rollout.map(|r| r.stage)
}

fn flips(sim: &Sim) -> Vec<Color> {
    sim.history
        .iter()
        .flat_map(|p| &p.writes)
        .filter_map(|w| match w {
            Write::Flip { service, .. } => service
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(bluegreen_crd::labels::COLOR))
                .and_then(|c| Color::parse(c)),
            _ => None,
        })
        .collect()
}

/// Stable on blue (the first release is analysed too: it reads healthy), then web:2 on
/// green up to its first analysed stage.
fn upgrading(pre: Option<i32>, post: Option<i32>) -> Sim {
    let mut sim = Sim::new(release(pre, post));
    sim.read_all(0.0);
    settle_analysis(&mut sim);
    assert_eq!(phase(&sim), Phase::Stable, "{:#?}", sim.status());
    sim.set_image("web:2");
    sim.quiesce();
    sim
}

/// Takes samples, one interval apart, until the release leaves its analysed stages.
fn settle_analysis(sim: &mut Sim) {
    for _ in 0..30 {
        sim.quiesce();
        if !matches!(
            stage(sim),
            Some(RolloutStage::Analyzing { .. } | RolloutStage::Verifying { .. })
        ) && sim.status().rollout.is_none()
        {
            return;
        }
        sim.advance(INTERVAL);
    }
    panic!("analysis never ended: {:#?}", sim.status());
}

/// One interval later, one sample.
fn sample(sim: &mut Sim) {
    sim.advance(INTERVAL);
    sim.quiesce();
}

#[test]
fn the_flip_waits_for_enough_passing_samples_in_a_row() {
    let mut sim = upgrading(Some(4), None);
    assert!(matches!(stage(&sim), Some(RolloutStage::Analyzing { .. })));
    assert_eq!(phase(&sim), Phase::Testing);
    // The first sample came once the stage was recorded, then one per interval.
    sample(&mut sim);
    let record = sim.status().analysis.unwrap();
    assert_eq!(record.phase, AnalysisPhase::PrePromotion);
    assert_eq!(
        (record.samples, record.consecutive_passed),
        (2, 2),
        "{record:#?}"
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    // An inconclusive sample breaks the streak; it is never a pass.
    sim.readings.insert(
        "error-rate".into(),
        Reading::Inconclusive("the query returned no data".into()),
    );
    sample(&mut sim);
    let record = sim.status().analysis.unwrap();
    assert_eq!(record.consecutive_passed, 0);
    assert_eq!(record.checks[0].last_value, None);
    assert!(sim.status().message.unwrap().contains("no data"));
    sim.readings
        .insert("error-rate".into(), Reading::Value(0.001));
    for _ in 0..3 {
        sample(&mut sim);
        assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    }
    sample(&mut sim);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(phase(&sim), Phase::Stable);
    let record = sim.status().analysis.unwrap();
    assert_eq!(record.result, AnalysisResult::Passed);
    assert_eq!(record.checks[0].last_value, Some(0.001));
}

#[test]
fn a_failed_pre_promotion_sample_fails_the_rollout_and_leaves_the_active_service_alone() {
    let mut sim = upgrading(Some(4), None);
    sim.readings
        .insert("error-rate".into(), Reading::Value(0.05));
    sample(&mut sim);
    let status = sim.status();
    assert_eq!(phase(&sim), Phase::Failed);
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(sim.replica_sets[&Color::Green].desired, 0);
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "AnalysisFailed");
    assert!(
        stalled
            .message
            .contains("'error-rate' returned 0.05, which is not <= 0.01")
    );
    assert_eq!(status.history[0].outcome, Outcome::Failed);
    let events: Vec<_> = sim.history.iter().flat_map(|p| &p.events).collect();
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "AnalysisFailed")
    );
    assert_eq!(status.blocked_revision, Some(sim.desired_revision()));
}

#[test]
fn inconclusive_samples_before_the_flip_count_against_the_deadline() {
    let mut sim = upgrading(Some(2), None);
    sim.readings.insert(
        "error-rate".into(),
        Reading::Inconclusive(
            "Prometheus at http://prometheus:9090 did not answer within 5s".into(),
        ),
    );
    for _ in 0..70 {
        sample(&mut sim);
        if phase(&sim) == Phase::Failed {
            break;
        }
    }
    assert_eq!(phase(&sim), Phase::Failed);
    let message = sim.status().condition("Stalled").unwrap().message.clone();
    assert!(message.contains("did not pass within 600s"), "{message}");
    assert!(message.contains("did not answer"), "{message}");
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn verification_holds_the_previous_color_at_full_size_then_passes_and_starts_its_delay() {
    let mut sim = upgrading(None, Some(0));
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(phase(&sim), Phase::Verifying);
    assert!(matches!(stage(&sim), Some(RolloutStage::Verifying { .. })));
    assert_eq!(sim.status().condition("Ready").unwrap().status, "False");
    assert_eq!(
        sim.status().condition("Reconciling").unwrap().status,
        "True"
    );
    // The preview fields and Service describe the way back, the previous color.
    assert_eq!(sim.status().preview_color, Some(Color::Blue));
    let promoted_at = sim.now;
    for _ in 0..(WINDOW / INTERVAL) {
        assert_eq!(phase(&sim), Phase::Verifying);
        let full = sim.release.spec.replicas;
        assert_eq!(
            sim.replica_sets[&Color::Blue].desired,
            full,
            "blue kept warm"
        );
        sample(&mut sim);
    }
    assert_eq!(phase(&sim), Phase::Stable);
    let status = sim.status();
    assert_eq!(status.history[0].outcome, Outcome::Promoted);
    assert_eq!(
        status.history[0]
            .promoted_at
            .as_ref()
            .unwrap()
            .0
            .as_second(),
        promoted_at
    );
    assert!(status.history[0].finished_at.0.as_second() >= promoted_at + WINDOW);
    // The scale-down delay counts from the end of verification (invariant 7).
    let standby = status.standby.unwrap();
    assert_eq!(standby.since, status.history[0].finished_at);
    sim.advance(29);
    sim.quiesce();
    assert_eq!(
        sim.replica_sets[&Color::Blue].desired,
        sim.release.spec.replicas
    );
    sim.advance(2);
    sim.quiesce();
    assert_eq!(sim.replica_sets[&Color::Blue].desired, 0);
}

#[test]
fn failed_samples_beyond_the_limit_flip_back_to_the_previous_color() {
    let mut sim = upgrading(None, Some(1));
    sim.readings
        .insert("error-rate".into(), Reading::Value(0.2));
    sample(&mut sim);
    assert_eq!(phase(&sim), Phase::Verifying, "one failure is tolerated");
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    sample(&mut sim);
    assert_eq!(sim.active_target().unwrap().0, Color::Blue, "flipped back");
    assert_eq!(flips(&sim).last(), Some(&Color::Blue));
    let status = sim.status();
    assert_eq!(phase(&sim), Phase::RolledBack);
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "VerificationFailed")
    );
    assert!(
        stalled.message.contains("2 failed samples"),
        "{}",
        stalled.message
    );
    assert_eq!(status.history[1].outcome, Outcome::RolledBack);
    assert!(
        status.history[1]
            .reason
            .as_ref()
            .unwrap()
            .starts_with("VerificationFailed: ")
    );
    assert!(status.history[1].promoted_at.is_some());
    assert_eq!(status.history[0].outcome, Outcome::RolledBack);
    assert_eq!(status.blocked_revision, Some(sim.desired_revision()));
    assert_eq!(status.analysis.unwrap().result, AnalysisResult::Failed);
    let events: Vec<_> = sim.history.iter().flat_map(|p| &p.events).collect();
    assert!(
        events
            .iter()
            .any(|e| e.warning && e.reason == "VerificationFailed")
    );
    // Held: the failed revision is not redeployed, and nothing moves on its own.
    sim.advance(600);
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(phase(&sim), Phase::RolledBack);
    // `retry` lets it go out again.
    sim.request("retry", "r1");
    sim.read_all(0.0);
    settle_analysis(&mut sim);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(phase(&sim), Phase::Stable);
}

#[test]
fn a_prometheus_outage_during_verification_rolls_back() {
    let mut sim = upgrading(None, Some(0));
    sim.readings.insert(
        "error-rate".into(),
        Reading::Inconclusive("Prometheus at http://prometheus:9090: connection refused".into()),
    );
    sample(&mut sim);
    assert_eq!(
        sim.active_target().unwrap().0,
        Color::Green,
        "one inconclusive"
    );
    assert!(sim.status().message.unwrap().contains("connection refused"));
    sample(&mut sim);
    assert_eq!(
        sim.active_target().unwrap().0,
        Color::Blue,
        "limit + 2 in a row"
    );
    let message = sim.status().condition("Stalled").unwrap().message.clone();
    assert!(
        message.contains("inconclusive samples in a row"),
        "{message}"
    );
}

#[test]
fn the_flip_back_waits_for_the_previous_color_to_be_fully_available() {
    let mut sim = upgrading(None, Some(0));
    sim.set_available(Color::Blue, 0);
    sim.readings
        .insert("error-rate".into(), Reading::Value(1.0));
    sim.advance(INTERVAL);
    for _ in 0..3 {
        let plan = sim.reconcile();
        assert!(!plan.writes.iter().any(|w| matches!(w, Write::Flip { .. })));
    }
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    sim.settle();
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn promote_during_analysis_or_verification_ends_it_as_passed() {
    let mut sim = upgrading(Some(10), Some(0));
    assert!(matches!(stage(&sim), Some(RolloutStage::Analyzing { .. })));
    sim.request("promote", "p1");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(phase(&sim), Phase::Verifying);
    sim.request("promote", "p2");
    sim.quiesce();
    let status = sim.status();
    assert_eq!(phase(&sim), Phase::Stable, "{:#?}", status.last_action);
    assert_eq!(status.history[0].outcome, Outcome::Promoted);
    let reason = status.history[0].reason.clone().unwrap();
    assert_eq!(
        reason,
        "ManualOverride: pre-promotion analysis ended by promote (action p1); ManualOverride: post-promotion verification ended by promote (action p2)"
    );
    assert_eq!(status.analysis.unwrap().result, AnalysisResult::Overridden);
    assert_eq!(
        status.last_action.unwrap().result,
        bluegreen_crd::ActionResult::Accepted
    );
}

#[test]
fn abort_during_verification_rolls_back() {
    let mut sim = upgrading(None, Some(0));
    sim.request("abort", "a1");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    let status = sim.status();
    assert_eq!(status.history[1].outcome, Outcome::Aborted);
    assert!(status.history[1].promoted_at.is_some());
    assert_eq!(phase(&sim), Phase::RolledBack);
}

#[test]
fn a_spec_change_during_verification_records_the_promotion_and_starts_over() {
    let mut sim = upgrading(None, Some(0));
    sim.set_image("web:3");
    sim.quiesce();
    let status = sim.status();
    let entry = status
        .history
        .iter()
        .find(|h| h.version == "2")
        .expect("web:2 in history");
    assert_eq!(entry.outcome, Outcome::Promoted);
    assert!(entry.reason.as_ref().unwrap().starts_with("Superseded"));
    // web:3 goes through the cold color (blue); green stays live meanwhile.
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(phase(&sim), Phase::Verifying);
    assert_eq!(sim.status().rollout.unwrap().version, "3");
}

#[test]
fn a_rollback_is_not_verified() {
    let mut sim = upgrading(None, Some(0));
    sim.read_all(0.0);
    settle_analysis(&mut sim);
    sim.request("rollback", "b1");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(phase(&sim), Phase::RolledBack);
    assert!(sim.status().rollout.is_none());
}

#[test]
fn samples_are_counted_once_and_an_unchanged_world_is_quiet() {
    let mut sim = upgrading(None, Some(5));
    let plans_before = sim.history.len();
    sim.read_all(0.0);
    sample(&mut sim);
    let record = sim.status().analysis.unwrap();
    // A reconcile of the same moment (a watch event) takes no sample and writes nothing;
    // nor does one later within the interval (no message moves with the clock).
    for _ in 0..2 {
        let plan = sim.plan();
        assert!(plan.writes.is_empty());
        assert_eq!(Some(&plan.status), sim.release.status.as_ref());
        assert_eq!(sim.status().analysis.unwrap(), record);
        sim.advance(INTERVAL - 1);
    }
    let samples: usize = sim.history[plans_before..]
        .iter()
        .flat_map(|p| &p.occurrences)
        .filter(|o| {
            matches!(
                o,
                Occurrence::AnalysisSample {
                    phase: AnalysisPhase::PostPromotion,
                    ..
                }
            )
        })
        .count();
    // The first sample came with the flip's recorded stage (in `upgrading`), the second now.
    assert_eq!(samples as i32 + 1, record.samples);
}

#[test]
fn no_prometheus_anywhere_stops_the_release_before_it_deploys() {
    let mut release = release(Some(1), None);
    release.spec.analysis.as_mut().unwrap().prometheus = None;
    let mut sim = Sim::new(release);
    let mut observed = sim.observed();
    observed.default_prometheus = false;
    let plan = super::plan(&observed);
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    let stalled = plan.status.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(stalled.message.contains("--prometheus-address"));
    // With the controller's default it goes ahead.
    sim.reconcile();
    assert!(!sim.replica_sets.is_empty());
}

/// Invariant 6: killed between any two writes (or before the status) of every plan from
/// `base` to its end, the controller converges to the same end: the same live color, phase
/// and history, no flip onto `never` after `base`, and no write `forbidden` says it must not.
fn crash_anywhere_converges(base: Sim, never: Color, forbidden: fn(&Write) -> bool) {
    let reference = {
        let mut sim = base.clone();
        sim.quiesce();
        sim
    };
    let plans = reference.history.len() - base.history.len();
    for crash_in in 0..plans {
        let mut sim = base.clone();
        for _ in 0..crash_in {
            sim.reconcile();
            sim.settle();
        }
        let plan = sim.plan();
        for writes in 0..=plan.writes.len() {
            let mut crashed = sim.clone();
            crashed.execute(&plan, writes, false);
            crashed.settle();
            crashed.quiesce();
            let at = format!("crash in plan {crash_in} after {writes} writes");
            let (end, want) = (crashed.status(), reference.status());
            assert_eq!(crashed.active_target(), reference.active_target(), "{at}");
            assert_eq!(end.phase, want.phase, "{at}");
            let outcomes = |s: &bluegreen_crd::BlueGreenReleaseStatus| {
                s.history
                    .iter()
                    .map(|h| (h.version.clone(), h.outcome, h.reason.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(outcomes(&end), outcomes(&want), "{at}");
            let onto_never = flips(&crashed)
                .iter()
                .skip(flips(&base).len())
                .filter(|c| **c == never)
                .count();
            assert_eq!(onto_never, 0, "{at}: a flip onto {never}");
            let written: Vec<_> = crashed.history[base.history.len()..]
                .iter()
                .flat_map(|p| &p.writes)
                .chain(&plan.writes[..writes])
                .filter(|w| forbidden(w))
                .map(Write::describe)
                .collect();
            assert!(written.is_empty(), "{at}: {written:?}");
            let sizes = |sim: &Sim| {
                sim.replica_sets
                    .values()
                    .map(|rs| (rs.color, rs.desired))
                    .collect::<Vec<_>>()
            };
            assert_eq!(sizes(&crashed), sizes(&reference), "{at}");
        }
    }
}

/// During Verifying: flipped back once, history complete, never again onto the failed color.
#[test]
fn a_crash_between_any_two_writes_of_a_failing_verification_converges() {
    let mut base = upgrading(None, Some(0));
    base.readings
        .insert("error-rate".into(), Reading::Value(0.5));
    base.advance(INTERVAL);
    // The way back stays at full size until the flip back.
    crash_anywhere_converges(
        base,
        Color::Green,
        |w| matches!(w, Write::ScaleReplicaSet { name, .. } if name.ends_with("-blue")),
    );
}

/// During Analyzing: failed once, the cold color scaled down and never grown again (the
/// failed sample is recorded before the scale-down), and no flip at all.
#[test]
fn a_crash_between_any_two_writes_of_a_failing_pre_promotion_analysis_converges() {
    let mut base = upgrading(Some(3), None);
    base.readings
        .insert("error-rate".into(), Reading::Value(0.5));
    base.advance(INTERVAL);
    crash_anywhere_converges(
        base.clone(),
        Color::Green,
        |w| matches!(w, Write::ScaleReplicaSet { name, replicas } if name.ends_with("-green") && *replicas > 0),
    );
    let mut sim = base;
    sim.quiesce();
    assert_eq!(phase(&sim), Phase::Failed);
}

/// Invariant 8's gate holds for samples too: with no smoke tests, the first samples wait for
/// the preview Service's endpoints to be exactly the cold pods.
#[test]
fn samples_count_only_once_the_preview_endpoints_are_the_cold_pods() {
    let mut release = release(Some(1), None);
    release.spec.smoke_tests.clear();
    let mut sim = Sim::new(release);
    sim.read_all(0.0);
    settle_analysis(&mut sim);
    assert_eq!(phase(&sim), Phase::Stable);
    sim.endpoints_lag = true;
    sim.set_image("web:2");
    for _ in 0..5 {
        sim.reconcile();
        sim.settle();
        sim.advance(INTERVAL);
    }
    let status = sim.status();
    assert!(
        matches!(stage(&sim), Some(RolloutStage::Analyzing { .. })),
        "{status:#?}"
    );
    assert_eq!(status.analysis.unwrap().samples, 0);
    assert!(status.message.unwrap().contains("before sampling"));
    sim.endpoints_lag = false;
    settle_analysis(&mut sim);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
}

/// A first release has no previous color: a failed verification leaves it live, Failed and
/// Stalled until a retry (or a spec change) accepts or replaces it.
#[test]
fn a_failed_verification_with_nothing_to_flip_back_to_stays_live_and_failed() {
    let mut sim = Sim::new(release(None, Some(0)));
    sim.readings
        .insert("error-rate".into(), Reading::Value(0.3));
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    for _ in 0..3 {
        sample(&mut sim);
    }
    let status = sim.status();
    assert_eq!(phase(&sim), Phase::Failed, "{status:#?}");
    assert_eq!(
        sim.active_target().unwrap().0,
        Color::Blue,
        "nothing else to serve"
    );
    let stalled = status.condition("Stalled").unwrap();
    assert_eq!(stalled.reason, "VerificationFailed");
    assert!(
        stalled.message.contains("no warm previous color"),
        "{}",
        stalled.message
    );
    assert_eq!(status.history[0].outcome, Outcome::Failed);
    assert!(status.history[0].promoted_at.is_some());
    assert_eq!(status.condition("Ready").unwrap().status, "False");
    sim.request("retry", "accept");
    sim.quiesce();
    assert_eq!(phase(&sim), Phase::Stable);
}
