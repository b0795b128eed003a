//! The delivery (DORA) occurrences a release's transitions produce: one deployment count per
//! rollout of a new revision, a change failure per live version taken back, the lead time at
//! the flip, and the time to restore when a stalled release is Stable again.

use bluegreen_crd::{Color, Outcome, Phase, labels, testing::TestRelease};
use serde_json::json;

use super::Occurrence;
use super::testkit::Sim;
use crate::observe::Reading;

fn occurrences(sim: &Sim, from: usize) -> Vec<Occurrence> {
    sim.history[from..]
        .iter()
        .flat_map(|p| p.occurrences.clone())
        .filter(|o| {
            matches!(
                o,
                Occurrence::Deployed { .. }
                    | Occurrence::ChangeFailure { .. }
                    | Occurrence::LeadTime { .. }
                    | Occurrence::Restored { .. }
            )
        })
        .collect()
}

fn stable_on_blue(release: bluegreen_crd::BlueGreenRelease) -> Sim {
    let mut sim = Sim::new(release);
    sim.quiesce();
    assert_eq!(sim.status().phase, Some(Phase::Stable));
    sim
}

#[test]
fn a_promotion_is_one_deployment_with_its_lead_time() {
    let release = TestRelease::web("web:1", &["smoke"])
        .set(
            "/metadata/annotations",
            json!({labels::COMMIT_TIME: "2026-09-21T13:13:20Z"}),
        )
        .build();
    let sim = stable_on_blue(release);
    let seen = occurrences(&sim, 0);
    assert_eq!(seen.len(), 2, "{seen:?}");
    // An hour before T0, plus the time the rollout took.
    let lead = Occurrence::LeadTime {
        seconds: (sim.now - 1_790_000_000 + 3600) as f64,
    };
    assert!(seen.contains(&lead), "{seen:?}");
    assert!(seen.contains(&Occurrence::Deployed {
        outcome: Outcome::Promoted
    }));
}

#[test]
fn a_commit_time_that_is_not_a_time_is_ignored() {
    let release = TestRelease::web("web:1", &[])
        .set(
            "/metadata/annotations",
            json!({labels::COMMIT_TIME: "yesterday"}),
        )
        .build();
    let sim = stable_on_blue(release);
    assert_eq!(
        occurrences(&sim, 0),
        [Occurrence::Deployed {
            outcome: Outcome::Promoted
        }]
    );
}

#[test]
fn a_failed_deployment_then_a_fix_restores_and_counts_both() {
    let mut sim = stable_on_blue(TestRelease::web("web:1", &["smoke"]).build());
    let from = sim.history.len();
    sim.set_image("web:2");
    sim.reconcile();
    sim.settle();
    quiet_failing(&mut sim);
    assert_eq!(sim.status().phase, Some(Phase::Failed));
    sim.advance(120);
    sim.set_image("web:3");
    sim.quiesce();
    assert_eq!(sim.status().phase, Some(Phase::Stable));
    let seen = occurrences(&sim, from);
    assert_eq!(
        seen,
        [
            Occurrence::Deployed {
                outcome: Outcome::Failed
            },
            Occurrence::Deployed {
                outcome: Outcome::Promoted
            },
            Occurrence::Restored { seconds: 120.0 },
        ]
    );
}

/// Reconciles with the smoke tests failing until the release is quiet.
fn quiet_failing(sim: &mut Sim) {
    for _ in 0..20 {
        let plan = sim.reconcile();
        sim.settle();
        sim.finish_jobs(false);
        if plan.writes.is_empty() && sim.plan().status == sim.status() {
            return;
        }
    }
    panic!("never quiet: {:#?}", sim.status());
}

#[test]
fn a_rollback_is_a_change_failure_not_a_deployment() {
    let mut sim = stable_on_blue(TestRelease::web("web:1", &[]).build());
    sim.set_image("web:2");
    sim.quiesce();
    let from = sim.history.len();
    sim.request("rollback", "r1");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(
        occurrences(&sim, from),
        [Occurrence::ChangeFailure {
            by_verification: false
        }]
    );
    // A retry returns to web:2 (the warm standby now): a redeploy, not another failure; the
    // release is restored.
    let from = sim.history.len();
    sim.advance(30);
    sim.request("retry", "r2");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(
        occurrences(&sim, from),
        [Occurrence::Restored { seconds: 30.0 }]
    );
    // A git revert to web:1 takes web:2 back again: a change failure.
    let from = sim.history.len();
    sim.set_image("web:1");
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(
        occurrences(&sim, from),
        [Occurrence::ChangeFailure {
            by_verification: false
        }]
    );
}

#[test]
fn a_failed_verification_is_one_rolled_back_deployment_and_one_change_failure() {
    let analysis = json!({
        "prometheus": {"address": "http://prometheus:9090"},
        "interval": "10s",
        "postPromotion": {"duration": "60s", "checks": [{"name": "errors", "query": "sum(errors)", "max": 0.01}]}
    });
    let release = TestRelease::web("web:1", &[])
        .set("/spec/analysis", analysis)
        .build();
    let mut sim = Sim::new(release);
    sim.readings.insert("errors".into(), Reading::Value(0.0));
    for _ in 0..8 {
        sim.quiesce();
        sim.advance(10);
    }
    assert_eq!(sim.status().phase, Some(Phase::Stable));
    sim.set_image("web:2");
    sim.quiesce();
    let from = sim.history.len();
    sim.readings.insert("errors".into(), Reading::Value(0.5));
    sim.advance(10);
    sim.quiesce();
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(
        occurrences(&sim, from),
        [
            Occurrence::Deployed {
                outcome: Outcome::RolledBack
            },
            Occurrence::ChangeFailure {
                by_verification: true
            },
        ]
    );
}
