//! Planner tests: every phase transition, failure path, manual action and clock step.

use std::time::Duration;

use bluegreen_crd::{ActionResult, Color, Outcome, Phase, PromotionMode, SmokeTestPhase, labels};

use super::Write;
use super::testkit::{Sim, release};
use crate::observe::{JobState, ServiceView};

fn phase(sim: &Sim) -> Phase {
    sim.status().phase.expect("phase set")
}

fn condition(sim: &Sim, type_: &str) -> (String, String) {
    let c = sim
        .status()
        .condition(type_)
        .cloned()
        .unwrap_or_else(|| panic!("condition {type_} missing"));
    (c.status, c.reason)
}

fn flips(plan: &super::Plan) -> usize {
    plan.writes
        .iter()
        .filter(|a| matches!(a, Write::Flip { .. }))
        .count()
}

/// Drives a fresh release to Stable on blue (tests pass).
fn stable_on_blue(tests: &[&str]) -> Sim {
    let mut sim = Sim::new(release("web:1", tests));
    sim.run_until_quiet(20);
    assert_eq!(phase(&sim), Phase::Stable);
    sim
}

/// Starts an upgrade and drives it until its smoke test runs.
fn upgrade_until_testing(sim: &mut Sim, image: &str) {
    sim.set_image(image);
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
}

/// Stable on blue with one smoke test, upgrading to web:2 with the test running.
fn testing_web_2() -> Sim {
    let mut sim = stable_on_blue(&["smoke"]);
    upgrade_until_testing(&mut sim, "web:2");
    sim
}

/// Drives an upgrade to web:2 to Stable on green.
fn upgraded_to_green(tests: &[&str]) -> Sim {
    let mut sim = stable_on_blue(tests);
    sim.set_image("web:2");
    sim.run_until_quiet(20);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    sim
}

#[test]
fn first_release_goes_to_blue_through_every_phase() {
    let mut sim = Sim::new(release("web:1", &["smoke"]));

    let plan = sim.reconcile();
    assert_eq!(phase(&sim), Phase::Deploying);
    assert!(
        matches!(&plan.writes[0], Write::ApplyReplicaSet(rs) if rs.metadata.name.as_deref() == Some("web-blue"))
    );
    assert!(
        matches!(&plan.writes[1], Write::ApplyPreviewService(svc) if svc.metadata.name.as_deref() == Some("web-preview"))
    );
    assert!(
        sim.active_service.is_none(),
        "nothing is live before the flip"
    );

    sim.settle();
    let plan = sim.reconcile(); // RS available and the rollout already recorded: tests start
    assert_eq!(phase(&sim), Phase::Testing);
    assert_eq!(
        sim.jobs.len(),
        1,
        "one Job per smoke test: {:?}",
        plan.writes
    );
    assert_eq!(
        sim.jobs[0].name,
        format!("web-smoke-{}", &sim.desired_revision()[..8])
    );
    assert_eq!(sim.status().smoke_tests[0].phase, SmokeTestPhase::Running);
    assert!(
        sim.active_service.is_none(),
        "tests running: still nothing live"
    );
    assert!(
        sim.plan().writes.is_empty(),
        "a running test is waited for, not recreated"
    );

    sim.finish_jobs(true);
    let plan = sim.reconcile();
    assert_eq!(
        flips(&plan),
        1,
        "a recorded rollout flips as soon as its tests pass"
    );
    assert_eq!(sim.status().smoke_tests[0].phase, SmokeTestPhase::Succeeded);
    assert_eq!(
        sim.active_target(),
        Some((Color::Blue, sim.desired_revision()))
    );
    assert_eq!(phase(&sim), Phase::Stable);
    let status = sim.status();
    assert_eq!(status.active_color, Some(Color::Blue));
    assert_eq!(status.active_version.as_deref(), Some("1"));
    assert_eq!(status.history[0].outcome, Outcome::Promoted);
    assert!(status.standby.is_none());
    assert_eq!(condition(&sim, "Ready").0, "True");
    assert_eq!(condition(&sim, "Stalled").0, "False");
    assert_eq!(condition(&sim, "Reconciling").0, "False");
    assert_eq!(condition(&sim, "Promoted").0, "True");
    assert_eq!(condition(&sim, "SmokeTestsPassed").0, "True");
}

#[test]
fn jobs_are_created_only_once_the_rollout_is_recorded() {
    // The cold color is already available when the rollout starts (e.g. a controller that
    // died before recording it): the Jobs wait one reconcile for the rollout's identity.
    let mut sim = Sim::new(release("web:1", &["smoke"]));
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false);
    sim.settle();
    sim.reconcile();
    assert!(sim.jobs.is_empty());
    assert_eq!(phase(&sim), Phase::Testing);
    sim.reconcile();
    assert_eq!(sim.jobs.len(), 1);
}

#[test]
fn first_release_creates_the_active_service_with_ports_and_both_keys() {
    let sim = stable_on_blue(&[]);
    let svc = sim.active_service.clone().unwrap();
    assert_eq!(
        svc.selector.get(labels::COLOR).map(String::as_str),
        Some("blue")
    );
    assert_eq!(
        svc.selector.get(labels::REVISION),
        Some(&sim.desired_revision())
    );
    assert_eq!(svc.selector.get("app").map(String::as_str), Some("web"));
    assert_eq!(svc.ports[0].port, 80);
    assert!(svc.created_by_controller());
}

#[test]
/// The selector is an atomic map (an apply owns and replaces it whole, as a real API server
/// showed): the flip applies the user's keys unchanged with the two of ours.
fn an_adopted_service_gets_the_two_selector_keys_beside_its_own() {
    let mut sim = Sim::new(release("web:1", &[]));
    sim.active_service = Some(ServiceView {
        name: "web-active".into(),
        selector: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    });
    let mut flip = None;
    for _ in 0..10 {
        let plan = sim.reconcile();
        sim.settle();
        flip = flip.or(plan
            .writes
            .into_iter()
            .find(|a| matches!(a, Write::Flip { .. })));
    }
    let Some(Write::Flip { service, .. }) = flip else {
        panic!("no flip")
    };
    let spec = service.spec.unwrap();
    assert_eq!(
        spec.selector.unwrap().keys().cloned().collect::<Vec<_>>(),
        vec!["app", labels::COLOR, labels::REVISION]
    );
    assert!(spec.ports.is_none(), "the user's ports are not ours");
    assert!(
        service.metadata.owner_references.is_none(),
        "an adopted Service is not garbage-collected with the release"
    );
    assert_eq!(
        service
            .metadata
            .labels
            .unwrap()
            .get(labels::RELEASE)
            .map(String::as_str),
        Some("web")
    );
}

#[test]
fn uneventful_upgrade_flips_to_green_and_keeps_blue_warm_then_scales_it_down() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let status = sim.status();
    let standby = status.standby.clone().expect("blue is the standby");
    assert_eq!(standby.color, Color::Blue);
    assert_eq!(
        sim.replica_sets[&Color::Blue].desired,
        3,
        "previous color stays at full size"
    );
    assert_eq!(status.history.len(), 2);
    assert_eq!(
        status.preview_color,
        Some(Color::Blue),
        "preview follows the cold color"
    );
    assert_eq!(
        sim.preview_service.as_ref().unwrap().target().unwrap().0,
        Color::Blue
    );

    // Inside the scale-down window: nothing to do, a timer for the rest of it.
    sim.advance(100);
    let plan = sim.plan();
    assert!(plan.writes.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(200)));

    sim.advance(200);
    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 0
        }]
    );
    assert!(sim.status().standby.unwrap().scaled_down_at.is_some());
    assert!(sim.plan().writes.is_empty(), "scaled down once");
}

#[test]
fn standby_replicas_are_kept_after_the_window() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.standby_replicas = 1;
    sim.set_image("web:2");
    sim.run_until_quiet(20);
    sim.advance(301);
    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 1
        }]
    );
}

#[test]
fn progress_deadline_fails_without_touching_the_active_service() {
    let mut sim = stable_on_blue(&[]);
    let live = sim.active_target();
    sim.set_image("web:2");
    let plan = sim.reconcile();
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
    sim.set_available(Color::Green, 1);
    sim.advance(599);
    sim.reconcile();
    assert_eq!(phase(&sim), Phase::Deploying);
    sim.advance(1);
    let plan = sim.reconcile();
    assert_eq!(phase(&sim), Phase::Failed);
    assert!(plan.writes.contains(&Write::ScaleReplicaSet {
        name: "web-green".into(),
        replicas: 0
    }));
    assert_eq!(sim.active_target(), live);
    assert_eq!(
        condition(&sim, "Stalled"),
        ("True".into(), "ProgressDeadlineExceeded".into())
    );
    assert_eq!(condition(&sim, "Ready").0, "False");
    assert_eq!(sim.status().history[0].outcome, Outcome::Failed);
    assert!(
        sim.status().message.unwrap().contains("1/3")
            || sim.status().message.unwrap().contains("/3")
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.reason == "ProgressDeadlineExceeded")
    );

    // Not retried on its own, however long we wait.
    sim.settle();
    sim.advance(10_000);
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    assert_eq!(phase(&sim), Phase::Failed);
}

#[test]
fn failed_smoke_test_reports_the_log_tail_and_never_flips() {
    let mut sim = stable_on_blue(&["smoke"]);
    let live = sim.active_target();
    upgrade_until_testing(&mut sim, "web:2");
    assert_eq!(
        sim.jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .count(),
        1
    );
    sim.finish_jobs(false);
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0);
    assert_eq!(sim.active_target(), live);
    assert_eq!(phase(&sim), Phase::Failed);
    let message = sim.status().message.unwrap();
    assert!(
        message.contains("GET /health -> 503"),
        "log tail in the message: {message}"
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.reason == "SmokeTestFailed" && e.note.contains("503"))
    );
    assert_eq!(sim.status().smoke_tests[0].phase, SmokeTestPhase::Failed);
    assert_eq!(
        condition(&sim, "SmokeTestsPassed"),
        ("False".into(), "Failed".into())
    );
    assert_eq!(sim.status().blocked_revision, Some(sim.desired_revision()));
}

#[test]
fn retry_redeploys_a_failed_revision_and_clears_old_jobs() {
    let mut sim = testing_web_2();
    sim.finish_jobs(false);
    sim.reconcile();
    assert_eq!(phase(&sim), Phase::Failed);

    sim.advance(5);
    sim.request("retry", "r-1");
    let plan = sim.reconcile();
    assert_eq!(
        plan.status.last_action.as_ref().unwrap().result,
        ActionResult::Accepted
    );
    assert!(plan.consume_request);
    assert!(
        sim.release
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .get(labels::ACTION)
            .is_none()
    );
    assert!(sim.status().blocked_revision.is_none());

    // The failed Job of the earlier attempt is deleted, then a fresh one runs and passes.
    let mut deleted = false;
    for _ in 0..8 {
        let plan = sim.reconcile();
        deleted |= plan
            .writes
            .iter()
            .any(|a| matches!(a, Write::DeleteJob { .. }));
        sim.settle();
        if sim.jobs.iter().any(|j| j.state == JobState::Running) {
            break;
        }
    }
    assert!(deleted, "the stale Job was cleared");
    sim.finish_jobs(true);
    sim.run_until_quiet(10);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
}

#[test]
fn a_new_rollout_clears_the_jobs_of_earlier_rollouts() {
    let mut sim = upgraded_to_green(&["smoke"]);
    assert_eq!(sim.jobs.len(), 1, "only the last rollout's Jobs are kept");
    sim.set_image("web:3");
    let plan = sim.reconcile();
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::DeleteJob { .. }))
    );
    assert!(sim.jobs.is_empty());
}

#[test]
fn manual_promotion_waits_for_promote_and_refuses_it_otherwise() {
    let mut sim = stable_on_blue(&[]);
    sim.request("promote", "too-early");
    sim.reconcile();
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused
    );
    assert_eq!(
        phase(&sim),
        Phase::Stable,
        "a refused action changes nothing else"
    );

    sim.release.spec.promotion.mode = PromotionMode::Manual;
    sim.set_image("web:2");
    for _ in 0..5 {
        sim.reconcile();
        sim.settle();
    }
    assert_eq!(phase(&sim), Phase::AwaitingPromotion);
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(condition(&sim, "Reconciling").0, "False");
    assert_eq!(condition(&sim, "Stalled").0, "False");
    assert!(sim.plan().writes.is_empty(), "waiting is quiet");

    sim.request("promote", "p-1");
    let plan = sim.reconcile();
    assert_eq!(
        flips(&plan),
        0,
        "the accepted action is recorded before it takes effect"
    );
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Accepted
    );
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
}

#[test]
fn auto_promotion_waits_for_its_delay() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.promotion.auto_promote_after_seconds = 60;
    sim.set_image("web:2");
    let mut plan = sim.reconcile();
    for _ in 0..4 {
        sim.settle();
        plan = sim.reconcile();
    }
    assert_eq!(phase(&sim), Phase::Promoting);
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(60)));
    sim.advance(59);
    assert_eq!(flips(&sim.reconcile()), 0);
    sim.advance(1);
    assert_eq!(flips(&sim.reconcile()), 1);
}

#[test]
fn preview_replicas_are_scaled_to_full_size_before_the_flip() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.preview_replicas = Some(1);
    sim.set_image("web:2");
    sim.reconcile();
    assert_eq!(sim.replica_sets[&Color::Green].desired, 1);
    sim.settle();
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty(), "tests passed: recorded first");
    let plan = sim.reconcile();
    assert!(plan.writes.contains(&Write::ScaleReplicaSet {
        name: "web-green".into(),
        replicas: 3
    }));
    assert_eq!(flips(&plan), 0, "not at full size yet");
    sim.set_available(Color::Green, 2);
    assert_eq!(flips(&sim.reconcile()), 0, "2/3 is not fully available");
    sim.settle();
    let plan = sim.reconcile();
    assert!(matches!(
        &plan.writes[..],
        [.., Write::Flip { replicas: 3, .. }, _] | [.., Write::Flip { replicas: 3, .. }]
    ));
}

#[test]
fn abort_cancels_tests_scales_the_cold_color_down_and_blocks_the_revision() {
    let mut sim = testing_web_2();
    assert_eq!(
        sim.jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .count(),
        1
    );
    sim.request("abort", "a-1");
    let plan = sim.reconcile();
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::DeleteJob { .. }))
    );
    assert!(plan.writes.contains(&Write::ScaleReplicaSet {
        name: "web-green".into(),
        replicas: 0
    }));
    assert_eq!(phase(&sim), Phase::Failed);
    assert_eq!(sim.status().history[0].outcome, Outcome::Aborted);
    assert_eq!(
        condition(&sim, "Stalled"),
        ("True".into(), "Aborted".into())
    );
    let test = &sim.status().smoke_tests[0];
    assert_eq!(test.phase, SmokeTestPhase::Cancelled, "{test:?}");
    assert!(test.finished_at.is_some());
    assert_eq!(
        condition(&sim, "SmokeTestsPassed"),
        ("False".into(), "Cancelled".into()),
        "a test cut short has not passed"
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);

    sim.request("abort", "a-2");
    sim.reconcile();
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused,
        "nothing left to abort"
    );
}

#[test]
fn a_spec_change_mid_rollout_supersedes_it() {
    let mut sim = testing_web_2();
    let old_job = sim
        .jobs
        .iter()
        .find(|j| j.state == JobState::Running)
        .unwrap()
        .name
        .clone();
    sim.set_image("web:3");
    let plan = sim.reconcile();
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::DeleteJob { name, .. } if *name == old_job))
    );
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::ReplaceReplicaSet { .. }))
    );
    assert_eq!(flips(&plan), 0);
    let status = sim.status();
    assert_eq!(status.history[0].outcome, Outcome::Superseded);
    assert_eq!(status.rollout.as_ref().unwrap().version, "3");
    assert_eq!(
        sim.active_target().unwrap().0,
        Color::Blue,
        "the active color is never touched"
    );
    sim.run_until_quiet(20);
    assert_eq!(sim.status().active_version.as_deref(), Some("3"));
}

#[test]
fn reverting_mid_rollout_returns_to_stable_and_scales_the_cold_color_down() {
    let mut sim = testing_web_2();
    sim.set_image("web:1");
    let plan = sim.reconcile();
    assert!(plan.writes.contains(&Write::ScaleReplicaSet {
        name: "web-green".into(),
        replicas: 0
    }));
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.status().history[0].outcome, Outcome::Superseded);
}

#[test]
fn git_revert_is_a_fast_rollback_to_the_warm_standby() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let jobs_before = sim.jobs.len();
    sim.set_image("web:1");
    let plan = sim.reconcile();
    assert!(
        plan.writes.is_empty(),
        "standby at full size: nothing to write before the flip but the status: {:?}",
        plan.writes
    );
    assert_eq!(phase(&sim), Phase::Promoting);
    assert!(sim.status().rollout.unwrap().is_rollback());
    let plan = sim.reconcile();
    assert!(!plan.writes.iter().any(|a| matches!(
        a,
        Write::ApplyReplicaSet(_) | Write::ReplaceReplicaSet { .. }
    )));
    assert_eq!(
        flips(&plan),
        1,
        "standby at full size: flip once the rollback is recorded, tests skipped"
    );
    assert_eq!(
        sim.jobs.len(),
        jobs_before,
        "no smoke tests for a revision that passed them"
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.status().history[0].outcome, Outcome::RolledBack);
    assert!(plan.occurrences.contains(&super::Occurrence::RolledBack));
    assert_eq!(
        sim.status().standby.unwrap().color,
        Color::Green,
        "the rolled-back-from color stays warm"
    );
}

#[test]
fn fast_rollback_from_a_scaled_down_standby_scales_it_up_first() {
    let mut sim = upgraded_to_green(&["smoke"]);
    sim.advance(301);
    sim.reconcile();
    assert_eq!(sim.replica_sets[&Color::Blue].desired, 0);
    sim.set_image("web:1");
    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 3
        }]
    );
    sim.settle();
    let plan = sim.reconcile();
    assert_eq!(
        flips(&plan),
        1,
        "the rollback was recorded with the scale: flip at once"
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn retest_on_rollback_runs_the_tests_again() {
    let mut sim = upgraded_to_green(&["smoke"]);
    sim.release.spec.retest_on_rollback = true;
    sim.set_image("web:1");
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0);
    assert_eq!(phase(&sim), Phase::Testing);
}

#[test]
fn rollback_action_flips_back_and_holds_in_rolled_back() {
    let mut sim = upgraded_to_green(&["smoke"]);
    sim.request("rollback", "rb-1");
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0, "recorded first");
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Accepted
    );
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1, "the recorded rollback flips at once");
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
    assert_eq!(phase(&sim), Phase::RolledBack);
    assert_eq!(
        condition(&sim, "Stalled"),
        ("True".into(), "RolledBack".into())
    );
    assert_eq!(condition(&sim, "Ready").0, "False");
    assert_eq!(sim.status().history[0].outcome, Outcome::RolledBack);

    // The spec still asks for web:2; nothing is redeployed on its own.
    sim.advance(30);
    assert!(sim.reconcile().writes.is_empty());
    assert_eq!(phase(&sim), Phase::RolledBack);

    // A git revert to web:1 now matches the live revision: Stable without any rollout.
    let mut reverted = sim.clone();
    reverted.set_image("web:1");
    let plan = reverted.reconcile();
    assert!(
        plan.writes
            .iter()
            .all(|a| !matches!(a, Write::Flip { .. } | Write::ApplyReplicaSet(_)))
    );
    assert_eq!(phase(&reverted), Phase::Stable);

    // Or a retry redeploys web:2 — from the warm green color, without tests (the rollout
    // is recorded before its flip).
    sim.request("retry", "rt-1");
    sim.reconcile();
    assert_eq!(flips(&sim.reconcile()), 0);
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert_eq!(phase(&sim), Phase::Stable);
}

#[test]
fn rollback_is_refused_without_a_previous_color_or_during_a_rollout() {
    let mut sim = stable_on_blue(&[]);
    sim.request("rollback", "rb-1");
    sim.reconcile();
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused
    );

    sim.set_image("web:2");
    sim.reconcile();
    sim.request("rollback", "rb-2");
    sim.reconcile();
    let last = sim.status().last_action.unwrap();
    assert_eq!(
        (last.id.as_str(), last.result),
        ("rb-2", ActionResult::Refused)
    );
    assert!(last.message.contains("abort"));
}

#[test]
fn each_action_id_is_consumed_exactly_once() {
    let mut sim = stable_on_blue(&[]);
    sim.request("dance", "d-1");
    let plan = sim.reconcile();
    assert!(plan.consume_request);
    let last = sim.status().last_action.unwrap();
    assert_eq!(last.result, ActionResult::Refused);
    assert!(last.message.contains("unknown action"));

    // The controller died after the status write, before removing the annotations:
    // the same id is seen again and only removed.
    sim.request("rollback", "d-1");
    let plan = sim.reconcile();
    assert!(plan.consume_request);
    assert_eq!(
        plan.status.last_action,
        Some(last),
        "an id is never processed twice"
    );

    sim.request("promote", "");
    sim.reconcile();
    assert!(
        sim.status()
            .last_action
            .unwrap()
            .message
            .contains("action-id")
    );
}

#[test]
fn paused_observes_only_and_refuses_actions() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.paused = true;
    sim.set_image("web:2");
    sim.request("rollback", "x");
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty());
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused
    );
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty());
    assert_eq!(phase(&sim), Phase::Paused);
    sim.release.spec.paused = false;
    sim.reconcile();
    assert_eq!(phase(&sim), Phase::Deploying);
}

#[test]
fn a_replicas_change_is_a_scale_not_a_release() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let revision = sim.desired_revision();
    sim.release.spec.replicas = 5;
    sim.bump_generation();
    assert_eq!(sim.desired_revision(), revision);
    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::ScaleReplicaSet {
            name: "web-green".into(),
            replicas: 5
        }]
    );
    assert_eq!(phase(&sim), Phase::Stable);
    assert!(sim.status().rollout.is_none());
}

#[test]
fn an_invalid_spec_writes_nothing_but_the_status() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.service.preview_name = Some("web-active".into());
    sim.set_image("web:2");
    sim.request("abort", "a");
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty());
    assert_eq!(
        condition(&sim, "Stalled"),
        ("True".into(), "InvalidSpec".into())
    );
    assert!(
        sim.status()
            .message
            .unwrap()
            .contains("spec.service.previewName")
    );
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn missing_ports_for_a_service_that_does_not_exist_is_invalid() {
    let mut sim = Sim::new(release("web:1", &[]));
    sim.release.spec.service.ports.clear();
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty());
    assert_eq!(
        condition(&sim, "Stalled"),
        ("True".into(), "InvalidSpec".into())
    );
    assert!(sim.status().message.unwrap().contains("spec.service.ports"));
}

#[test]
fn smoke_tests_wait_until_preview_endpoints_are_exactly_the_cold_pods() {
    let mut sim = stable_on_blue(&["smoke"]);
    sim.set_image("web:2");
    sim.endpoints_lag = true; // preview endpoints still list the old (blue) pods
    sim.preview_endpoints = sim
        .pods()
        .into_iter()
        .filter(|p| p.color == Some(Color::Blue))
        .map(|p| crate::observe::EndpointView {
            pod: Some(p.name),
            ready: true,
        })
        .collect();
    for _ in 0..4 {
        sim.reconcile();
        sim.settle();
    }
    assert!(
        sim.jobs.iter().all(|j| j.state != JobState::Running),
        "no test against old pods"
    );
    assert!(sim.status().message.unwrap().contains("endpoints"));
    sim.endpoints_lag = false;
    sim.reconcile();
    assert_eq!(
        sim.jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .count(),
        1
    );
}

#[test]
fn tests_passed_while_the_cold_color_lost_availability_do_not_count() {
    let mut sim = testing_web_2();
    sim.set_available(Color::Green, 2);
    sim.finish_jobs(true);
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0);
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "ColdColorUnavailable")
    );
    assert!(sim.status().smoke_tests.is_empty());
    let voided = sim
        .jobs
        .iter()
        .find(|j| j.state == JobState::Succeeded && j.revision == sim.desired_revision())
        .unwrap()
        .uid
        .clone();

    // Available again: the passed Job of the voided round does not count; it is replaced by
    // a fresh run, and only that run's success allows the flip.
    sim.settle();
    let mut deleted = false;
    for _ in 0..4 {
        let plan = sim.reconcile();
        assert_eq!(flips(&plan), 0, "no flip on the voided round's result");
        deleted |= plan
            .writes
            .iter()
            .any(|a| matches!(a, Write::DeleteJob { uid, .. } if *uid == voided));
        if sim.jobs.iter().any(|j| j.state == JobState::Running) {
            break;
        }
    }
    assert!(deleted, "the voided round's Job was cleared");
    assert!(
        sim.jobs.iter().any(|j| j.state == JobState::Running),
        "the test reruns"
    );
    sim.finish_jobs(true);
    sim.run_until_quiet(20);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
}

#[test]
fn killed_after_the_flip_finishes_the_promotion_without_flipping_again() {
    let mut sim = stable_on_blue(&[]);
    sim.set_image("web:2");
    sim.reconcile();
    sim.settle();
    let plan = sim.plan(); // no tests, the rollout recorded: the flip
    assert_eq!(flips(&plan), 1);
    let flip_at = plan
        .writes
        .iter()
        .position(|a| matches!(a, Write::Flip { .. }))
        .unwrap();
    sim.execute(&plan, flip_at + 1, false); // the Service moved, the status did not
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.status().history[0].outcome, Outcome::Promoted);
    assert_eq!(sim.status().standby.unwrap().color, Color::Blue);
}

#[test]
fn a_lost_active_selector_is_restored() {
    let mut sim = stable_on_blue(&[]);
    sim.active_service
        .as_mut()
        .unwrap()
        .selector
        .remove(labels::COLOR);
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1);
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn history_is_newest_first_and_bounded() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.revision_history_limit = 3;
    for i in 2..8 {
        sim.set_image(&format!("web:{i}"));
        sim.run_until_quiet(20);
    }
    let history = sim.status().history;
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].version, "7");
    assert_eq!(history[2].version, "5");
}

/// Reconciles until the planner neither writes nor changes the status.
fn quiesce(sim: &mut Sim) {
    for _ in 0..10 {
        let before = sim.release.status.clone();
        let plan = sim.reconcile();
        if plan.writes.is_empty() && Some(&plan.status) == before.as_ref() {
            return;
        }
    }
    panic!("never quiet: {:#?}", sim.release.status);
}

#[test]
fn an_unchanged_world_plans_no_writes_in_any_phase() {
    let mut sim = Sim::new(release("web:1", &["smoke"]));
    let mut phases = Vec::new();
    for step in 0..9 {
        quiesce(&mut sim);
        let again = sim.plan();
        assert!(again.writes.is_empty(), "step {step}: {:?}", again.writes);
        assert_eq!(
            Some(&again.status),
            sim.release.status.as_ref(),
            "step {step}: status churn"
        );
        phases.push(phase(&sim));
        match step % 3 {
            0 => sim.settle(),
            1 => sim.finish_jobs(true),
            _ => sim.set_image(&format!("web:{step}")),
        }
    }
    for expected in [Phase::Deploying, Phase::Testing, Phase::Stable] {
        assert!(phases.contains(&expected), "{expected} visited: {phases:?}");
    }
}

#[test]
fn condition_transition_times_move_only_on_flips() {
    let mut sim = stable_on_blue(&[]);
    let before = sim
        .status()
        .condition("Ready")
        .unwrap()
        .last_transition_time
        .clone();
    sim.advance(100);
    sim.reconcile();
    assert_eq!(
        sim.status()
            .condition("Ready")
            .unwrap()
            .last_transition_time,
        before
    );
    sim.set_image("web:2");
    sim.reconcile();
    let after = sim.status().condition("Ready").unwrap().clone();
    assert_eq!(after.status, "False");
    assert_ne!(after.last_transition_time, before);
    assert_eq!(after.observed_generation, Some(2));
}

#[test]
fn phase_transitions_emit_events() {
    let mut sim = Sim::new(release("web:1", &[]));
    let plan = sim.reconcile();
    assert!(plan.events.iter().any(|e| e.reason == "Deploying"));
    assert!(plan.events.iter().any(|e| e.reason == "RolloutStarted"));
    sim.settle();
    let plan = sim.reconcile();
    assert!(plan.events.iter().any(|e| e.reason == "Promoted"));
    assert!(plan.events.iter().any(|e| e.reason == "Stable"));
}

// Found by the property tests (proptests.rs); each reproduces one planner fix.

#[test]
fn a_replicas_change_mid_rollout_resizes_the_active_color_at_once() {
    let mut sim = stable_on_blue(&["smoke"]);
    sim.release.spec.promotion.mode = PromotionMode::Manual;
    sim.set_image("web:2");
    for _ in 0..4 {
        sim.reconcile();
        sim.settle();
    }
    sim.finish_jobs(true);
    sim.reconcile();
    assert_eq!(phase(&sim), Phase::AwaitingPromotion);
    sim.release.spec.replicas = 5;
    sim.bump_generation();
    let plan = sim.reconcile();
    assert!(
        plan.writes.contains(&Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 5
        }),
        "{:?}",
        plan.writes
    );
    assert_eq!(sim.status().rollout.unwrap().version, "2");
}

#[test]
fn a_cold_replica_set_left_by_a_killed_controller_is_not_a_rollback() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.promotion.mode = PromotionMode::Manual;
    sim.set_image("web:2");
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false); // web-green created, rollout not recorded
    sim.settle();
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    let status = sim.status();
    assert!(!status.rollout.as_ref().unwrap().is_rollback());
    assert_eq!(
        phase(&sim),
        Phase::AwaitingPromotion,
        "the promotion gate holds"
    );
    assert_eq!(sim.active_target().unwrap().0, Color::Blue);
}

#[test]
fn killed_right_after_a_fast_rollback_flip_keeps_its_history_and_standby() {
    let mut sim = upgraded_to_green(&["smoke"]);
    sim.set_image("web:1");
    sim.reconcile(); // the rollback is recorded before its flip
    let plan = sim.plan();
    let flip_at = plan
        .writes
        .iter()
        .position(|a| matches!(a, Write::Flip { .. }))
        .expect("flips once recorded");
    sim.execute(&plan, flip_at + 1, false);
    sim.reconcile();
    let status = sim.status();
    assert_eq!(status.history[0].outcome, Outcome::RolledBack);
    assert_eq!(status.standby.unwrap().color, Color::Green);
    assert_eq!(status.smoke_tests[0].phase, SmokeTestPhase::Skipped);
}

#[test]
fn a_rollout_past_its_deadline_does_not_grow_its_cold_color_before_failing() {
    let mut sim = stable_on_blue(&[]);
    sim.release.spec.preview_replicas = Some(1);
    sim.release.spec.promotion.auto_promote_after_seconds = 60;
    sim.set_image("web:2");
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    assert_eq!(phase(&sim), Phase::Promoting);
    sim.release.spec.replicas = 4; // the cold color must grow to 4 before the flip
    sim.bump_generation();
    sim.advance(601);
    let plan = sim.reconcile();
    assert_eq!(phase(&sim), Phase::Failed);
    assert!(
        !plan.writes.iter().any(|a| matches!(a,
            Write::ScaleReplicaSet { name, replicas } if name == "web-green" && *replicas != 0)),
        "{:?}",
        plan.writes
    );
}

#[test]
fn killed_after_a_failure_scaled_the_cold_color_down_fails_again_without_growing_it() {
    let mut sim = testing_web_2();
    sim.finish_jobs(false);
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false); // scaled to 0, failure not recorded
    assert_eq!(sim.replica_sets[&Color::Green].desired, 0);
    let plan = sim.reconcile();
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    assert_eq!(phase(&sim), Phase::Failed);
    assert_eq!(sim.status().history[0].outcome, Outcome::Failed);
}

#[test]
fn a_failing_plan_starts_no_more_smoke_tests() {
    let mut sim = stable_on_blue(&["smoke", "load"]);
    sim.set_image("web:2");
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    assert_eq!(sim.jobs.len(), 2);
    // "smoke" fails while "load" is cancelled, and the controller dies right after.
    let smoke = sim.jobs.iter_mut().find(|j| j.test == "smoke").unwrap();
    smoke.state = JobState::Failed {
        reason: "BackoffLimitExceeded".into(),
        message: "failed".into(),
    };
    let plan = sim.plan();
    let cancel = plan
        .writes
        .iter()
        .position(|a| matches!(a, Write::DeleteJob { .. }))
        .unwrap();
    sim.execute(&plan, cancel + 1, false);
    let plan = sim.reconcile();
    assert!(
        !plan.writes.iter().any(|a| matches!(a, Write::CreateJob(_))),
        "{:?}",
        plan.writes
    );
    assert_eq!(phase(&sim), Phase::Failed);
}

#[test]
fn a_replica_set_recreated_at_the_standby_revision_is_not_taken_for_the_standby() {
    let mut sim = upgraded_to_green(&[]);
    sim.release.spec.promotion.mode = PromotionMode::Manual;
    sim.set_image("web:3");
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false); // web-blue replaced, status lost
    assert_ne!(
        sim.replica_sets[&Color::Blue].revision,
        sim.status().standby.unwrap().revision
    );
    sim.set_image("web:1"); // back to the standby's revision, which no longer runs
    let plan = sim.reconcile();
    assert!(
        !plan
            .writes
            .iter()
            .any(|a| matches!(a, Write::ReplaceReplicaSet { .. })),
        "the stale standby is recorded as gone first: {:?}",
        plan.writes
    );
    assert!(sim.status().standby.is_none());
    let plan = sim.plan();
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::ReplaceReplicaSet { .. }))
    );
    sim.execute(&plan, plan.writes.len(), false); // killed again right after
    sim.settle();
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    assert!(!sim.status().rollout.unwrap().is_rollback());
    assert_eq!(phase(&sim), Phase::AwaitingPromotion);
}

#[test]
fn a_smoke_test_first_seen_finished_still_has_a_start_time() {
    let mut sim = Sim::new(release("web:1", &["smoke"]));
    sim.reconcile();
    sim.settle();
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false); // Job created, status lost
    sim.finish_jobs(true);
    sim.reconcile();
    assert!(sim.status().smoke_tests[0].started_at.is_some());
}

#[test]
fn a_rollout_superseded_within_the_same_second_gets_its_jobs_only_once_recorded() {
    let mut sim = Sim::new(release("web:1", &["smoke"]));
    sim.release.spec.promotion.auto_promote_after_seconds = 30;
    sim.run_until_quiet(20); // waits to promote web:1, rollout started at T0
    sim.set_image("web:2"); // same second: the new rollout has the same start time
    let plan = sim.plan();
    sim.execute(&plan, plan.writes.len(), false);
    sim.settle();
    let plan = sim.reconcile();
    assert!(
        !plan.writes.iter().any(|a| matches!(a, Write::CreateJob(_))),
        "{:?}",
        plan.writes
    );
}

#[test]
fn killed_after_growing_the_cold_color_for_promotion_does_not_fail_it() {
    let mut sim = stable_on_blue(&["smoke"]);
    sim.release.spec.preview_replicas = Some(1);
    sim.set_image("web:2");
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    sim.advance(601); // the tests took longer than the progress deadline
    sim.finish_jobs(true);
    sim.reconcile(); // passed: recorded, with a fresh deadline for the promotion stage
    let plan = sim.plan();
    assert!(plan.writes.contains(&Write::ScaleReplicaSet {
        name: "web-green".into(),
        replicas: 3
    }));
    sim.execute(&plan, plan.writes.len(), false); // killed after the resize
    sim.reconcile();
    assert_eq!(phase(&sim), Phase::Promoting);
    sim.settle();
    sim.run_until_quiet(10);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
}
