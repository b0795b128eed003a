//! A live release survives people and faults: a deleted active ReplicaSet, a Service another
//! release owns, a selector moved or stripped by hand, a reused action id, a renamed Service,
//! an autoscaler resizing mid-rollout. Each test failed before its fix.

use bluegreen_crd::{ActionResult, Color, Outcome, Phase, SmokeTestPhase, labels};
use k8s_openapi::jiff::Timestamp;

use super::Write;
use super::testkit::{Sim, release};
use crate::observe::ServiceView;

fn phase(sim: &Sim) -> Phase {
    sim.status().phase.expect("phase set")
}

fn condition(sim: &Sim, type_: &str) -> (String, String, String) {
    let c = sim
        .status()
        .condition(type_)
        .cloned()
        .unwrap_or_else(|| panic!("condition {type_} missing"));
    (c.status, c.reason, c.message)
}

fn flips(plan: &super::Plan) -> usize {
    plan.writes
        .iter()
        .filter(|a| matches!(a, Write::Flip { .. }))
        .count()
}

/// Reconciles (pods settling, Jobs passing) until neither the world nor the status moves.
fn quiesce(sim: &mut Sim) {
    for _ in 0..20 {
        let before = sim.release.status.clone();
        let plan = sim.reconcile();
        sim.settle();
        sim.finish_jobs(true);
        if plan.writes.is_empty() && Some(&plan.status) == before.as_ref() {
            return;
        }
    }
    panic!("never quiet: {:#?}", sim.release.status);
}

fn describe(plan: &super::Plan) -> Vec<String> {
    plan.writes.iter().map(Write::describe).collect()
}

fn stable_on_blue(tests: &[&str]) -> Sim {
    let mut sim = Sim::new(release("web:1", tests));
    sim.run_until_quiet(20);
    assert_eq!(phase(&sim), Phase::Stable);
    sim
}

/// Stable on green with blue warm at full size (inside the scale-down delay).
fn upgraded_to_green(tests: &[&str]) -> Sim {
    let mut sim = stable_on_blue(tests);
    sim.set_image("web:2");
    sim.run_until_quiet(20);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    sim
}

// --- 1. A deleted active ReplicaSet ---------------------------------------------------

#[test]
fn a_deleted_active_replica_set_is_recreated_at_once_and_the_release_is_not_ready_meanwhile() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let green = sim.replica_sets.remove(&Color::Green).unwrap();

    let plan = sim.reconcile();
    let recreated = plan.writes.iter().find_map(|a| match a {
        Write::ApplyReplicaSet(rs) => crate::observe::replica_set_view(rs),
        _ => None,
    });
    let recreated = recreated.unwrap_or_else(|| panic!("no recreate: {:?}", describe(&plan)));
    assert_eq!(
        (
            recreated.name.as_str(),
            &recreated.revision,
            recreated.desired
        ),
        ("web-green", &green.revision, 3),
        "the recorded active revision at spec.replicas"
    );
    assert_eq!(flips(&plan), 0, "the Service already selects it");
    assert!(
        plan.events
            .iter()
            .any(|e| e.warning && e.reason == "ActiveReplicaSetRecreated")
    );
    let (ready, reason, _) = condition(&sim, "Ready");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ActiveUnavailable")
    );
    assert_eq!(condition(&sim, "Available").0, "False");
    assert_eq!(condition(&sim, "Reconciling").0, "True");
    assert!(
        sim.status().message.unwrap().contains("recreating"),
        "{:?}",
        sim.status().message
    );
    assert!(
        sim.status().standby.is_some(),
        "blue stays the warm standby"
    );

    sim.settle();
    sim.reconcile();
    assert_eq!(condition(&sim, "Ready").0, "True");
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(
        sim.status().history.len(),
        2,
        "no rollout, no history entry"
    );
}

#[test]
fn a_deleted_active_replica_set_the_spec_no_longer_describes_is_reported_not_guessed() {
    // Rolled back to blue (web:1) while the spec still asks for web:2.
    let mut sim = upgraded_to_green(&[]);
    sim.request("rollback", "rb-1");
    quiesce(&mut sim);
    assert_eq!(phase(&sim), Phase::RolledBack);
    sim.replica_sets.remove(&Color::Blue);

    let plan = sim.reconcile();
    assert!(
        !plan
            .writes
            .iter()
            .any(|a| matches!(a, Write::ApplyReplicaSet(rs) if rs.metadata.name.as_deref() == Some("web-blue"))),
        "web:2's template is not web:1's: {:?}",
        describe(&plan)
    );
    let message = sim.status().message.unwrap();
    assert!(
        message.contains("cannot be rebuilt") && message.contains("version 1"),
        "{message}"
    );
    assert_eq!(condition(&sim, "Ready").0, "False");
    assert!(condition(&sim, "Available").2.contains("cannot be rebuilt"));
}

// --- 2. A Service another release owns -------------------------------------------------

fn foreign(name: &str, owner: &str) -> ServiceView {
    ServiceView {
        name: name.into(),
        uid: "foreign-uid".into(),
        selector: [
            (labels::COLOR.to_string(), "blue".to_string()),
            (labels::REVISION.to_string(), "abc".to_string()),
        ]
        .into(),
        labels: [(labels::RELEASE.to_string(), owner.to_string())].into(),
        owner: Some(owner.into()),
        ..Default::default()
    }
}

#[test]
fn a_service_another_release_owns_is_never_written() {
    let mut sim = Sim::new(release("web:1", &["smoke"]));
    sim.active_service = Some(foreign("web-active", "shop"));
    for _ in 0..3 {
        let plan = sim.reconcile();
        assert!(plan.writes.is_empty(), "{:?}", describe(&plan));
        sim.settle();
    }
    assert_eq!(phase(&sim), Phase::Failed);
    let (stalled, reason, message) = condition(&sim, "Stalled");
    assert_eq!(
        (stalled.as_str(), reason.as_str()),
        ("True", "ServiceOwnedByAnotherRelease")
    );
    assert!(message.contains("release shop"), "{message}");
    assert!(sim.plan().requeue_after.is_some(), "looks again later");

    // Only by its label, too (an adopted Service has no ownerReference).
    let mut sim = Sim::new(release("web:1", &[]));
    let mut labelled = foreign("web-active", "shop");
    labelled.owner = None;
    sim.active_service = Some(labelled);
    assert!(sim.reconcile().writes.is_empty());
    assert_eq!(condition(&sim, "Stalled").1, "ServiceOwnedByAnotherRelease");

    // The preview Service as well.
    let mut sim = Sim::new(release("web:1", &[]));
    sim.preview_service = Some(foreign("web-preview", "shop"));
    assert!(sim.reconcile().writes.is_empty());
    assert!(condition(&sim, "Stalled").2.contains("service.previewName"));
}

#[test]
fn an_action_on_a_release_stalled_on_a_foreign_service_is_refused() {
    let mut sim = Sim::new(release("web:1", &[]));
    sim.active_service = Some(foreign("web-active", "shop"));
    sim.request("rollback", "rb-1");
    let plan = sim.reconcile();
    assert!(plan.consume_request && plan.writes.is_empty());
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Refused
    );
}

// --- 4. A selector moved by hand ------------------------------------------------------

fn move_selector(sim: &mut Sim, color: &str, revision: &str) {
    let selector = &mut sim.active_service.as_mut().unwrap().selector;
    selector.insert(labels::COLOR.into(), color.into());
    selector.insert(labels::REVISION.into(), revision.into());
}

#[test]
fn a_selector_moved_to_a_missing_revision_is_repaired_and_the_standby_kept() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let before = sim.status();
    let green = sim.active_target().unwrap();
    move_selector(&mut sim, "blue", "deadbeef00");

    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1, "{:?}", describe(&plan));
    assert_eq!(sim.active_target(), Some(green.clone()));
    let warning = plan
        .events
        .iter()
        .find(|e| e.warning && e.reason == "SelectorRepaired")
        .expect("a Warning Event");
    assert!(
        warning.note.contains("deadbeef00") && warning.note.contains("green"),
        "{}",
        warning.note
    );
    let after = sim.status();
    assert_eq!(after.standby, before.standby, "the standby record is kept");
    assert_eq!(after.history, before.history, "no history entry");
    assert_eq!(
        (after.active_color, after.active_revision),
        (before.active_color, before.active_revision)
    );

    // The standby still scales down on time, and a rollback still finds it.
    sim.advance(301);
    let plan = sim.reconcile();
    assert!(
        plan.writes.contains(&Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 0
        }),
        "{:?}",
        describe(&plan)
    );
    sim.settle();
    sim.request("rollback", "rb-1");
    sim.reconcile();
    assert_eq!(
        sim.status().last_action.unwrap().result,
        ActionResult::Accepted
    );
}

#[test]
fn a_selector_moved_onto_the_warm_standby_by_hand_is_repaired_without_tests_or_history() {
    let mut sim = upgraded_to_green(&["smoke"]);
    let before = sim.status();
    let standby = before.standby.clone().unwrap();
    move_selector(&mut sim, "blue", &standby.revision);
    let jobs = sim.jobs.len();

    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1);
    assert_eq!(sim.active_target().unwrap().0, Color::Green);
    assert!(
        !plan.writes.iter().any(|a| matches!(a, Write::CreateJob(_))),
        "no smoke tests"
    );
    assert_eq!(sim.jobs.len(), jobs);
    assert_eq!(sim.status().history, before.history);
    assert_eq!(sim.status().standby, before.standby);
    assert!(sim.run_until_quiet(5).writes.is_empty());
}

#[test]
fn a_selector_is_only_repaired_towards_a_color_that_serves() {
    let mut sim = upgraded_to_green(&[]);
    move_selector(&mut sim, "blue", "deadbeef00");
    sim.set_available(Color::Green, 1);
    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 0, "invariant 1");
    assert!(sim.status().message.unwrap().contains("changed outside"));
    sim.settle();
    assert_eq!(flips(&sim.reconcile()), 1);
}

// --- 5. Stripped keys on a Service the controller created --------------------------------

#[test]
fn a_service_the_controller_created_is_restored_whole_even_without_its_labels() {
    let mut sim = stable_on_blue(&[]);
    let service = sim.active_service.as_mut().unwrap();
    service.selector.remove(labels::COLOR);
    service.selector.remove(labels::REVISION);
    service.labels.clear();
    let plan = sim.reconcile();
    let restored = plan.writes.iter().find_map(|a| match a {
        Write::Flip { service, .. } => Some(service.clone()),
        _ => None,
    });
    let restored = restored.expect("a flip restores the keys");
    assert!(
        restored.spec.as_ref().unwrap().ports.is_some(),
        "applied whole (its ownerReference says the controller created it)"
    );
}

// --- 7. An action id used twice ---------------------------------------------------------

#[test]
fn an_action_id_used_again_after_another_action_is_refused() {
    let mut sim = upgraded_to_green(&[]);
    sim.request("rollback", "dup-1");
    quiesce(&mut sim);
    assert_eq!(phase(&sim), Phase::RolledBack);
    sim.request("retry", "r2");
    quiesce(&mut sim);
    assert_eq!(phase(&sim), Phase::Stable);
    let live = sim.active_target();
    let history = sim.status().history;

    sim.request("rollback", "dup-1");
    let plan = sim.reconcile();
    assert!(plan.consume_request);
    let last = sim.status().last_action.unwrap();
    assert_eq!(
        (last.id.as_str(), last.result),
        ("dup-1", ActionResult::Refused)
    );
    assert!(last.message.contains("already used"), "{}", last.message);
    quiesce(&mut sim);
    assert_eq!(sim.active_target(), live, "nothing was done");
    assert_eq!(sim.status().history, history);
    assert_eq!(
        sim.status().consumed_action_ids,
        vec!["dup-1".to_string(), "r2".to_string()]
    );
}

#[test]
fn consumed_action_ids_are_bounded() {
    let mut sim = stable_on_blue(&[]);
    for i in 0..25 {
        sim.request("dance", &format!("id-{i}"));
        sim.reconcile();
    }
    let ids = sim.status().consumed_action_ids;
    assert_eq!(ids.len(), bluegreen_crd::status::CONSUMED_ACTION_IDS);
    assert_eq!(ids[0], "id-24");
}

// --- 8. A renamed Service -----------------------------------------------------------------

fn rename_active(sim: &mut Sim, to: &str) {
    sim.release.spec.service.name = to.into();
    sim.bump_generation();
    let old = sim.active_service.take().unwrap();
    sim.former_services.push(old);
}

#[test]
fn a_renamed_active_service_takes_the_traffic_before_the_old_one_is_deleted() {
    let mut sim = upgraded_to_green(&[]);
    let old = sim.active_service.clone().unwrap();
    rename_active(&mut sim, "web-new");

    let plan = sim.reconcile();
    assert_eq!(flips(&plan), 1, "{:?}", describe(&plan));
    assert!(
        !plan
            .writes
            .iter()
            .any(|a| matches!(a, Write::DeleteService { .. })),
        "the old Service serves until the new one selects the active color"
    );
    let new = sim.active_service.clone().unwrap();
    assert_eq!(new.name, "web-new");
    assert_eq!(new.target().unwrap().0, Color::Green);
    assert!(
        plan.events.iter().all(|e| !e.warning),
        "a rename is routine: {:?}",
        plan.events
    );

    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::DeleteService {
            name: old.name.clone(),
            uid: old.uid.clone()
        }]
    );
    assert!(sim.former_services.is_empty());
    assert!(sim.run_until_quiet(5).writes.is_empty());
    assert_eq!(sim.status().history.len(), 2, "a rename is not a release");
}

#[test]
fn a_renamed_adopted_service_is_given_back_without_the_controllers_keys() {
    let mut sim = Sim::new(release("web:1", &[]));
    sim.active_service = Some(ServiceView {
        name: "web-active".into(),
        uid: "user-svc".into(),
        selector: [("app".to_string(), "web".to_string())].into(),
        ..Default::default()
    });
    sim.run_until_quiet(20);
    assert_eq!(phase(&sim), Phase::Stable);
    rename_active(&mut sim, "web-new");
    sim.reconcile();
    let plan = sim.reconcile();
    assert_eq!(
        plan.writes,
        vec![Write::ReleaseService {
            name: "web-active".into()
        }]
    );
}

#[test]
fn a_renamed_preview_service_is_replaced_at_once() {
    let mut sim = upgraded_to_green(&[]);
    let old = sim.preview_service.take().unwrap();
    sim.former_services.push(old.clone());
    sim.release.spec.service.preview_name = Some("web-next".into());
    sim.bump_generation();
    let plan = sim.reconcile();
    assert!(
        plan.writes.contains(&Write::DeleteService {
            name: old.name.clone(),
            uid: old.uid.clone()
        }),
        "{:?}",
        describe(&plan)
    );
    assert!(
        plan.writes
            .iter()
            .any(|a| matches!(a, Write::ApplyPreviewService(s) if s.metadata.name.as_deref() == Some("web-next")))
    );
}

// --- Behaviour decided in the issue ---------------------------------------------------------

#[test]
fn a_replicas_change_mid_testing_resizes_the_active_color_and_does_not_rerun_the_tests() {
    let mut sim = stable_on_blue(&["smoke"]);
    sim.set_image("web:2");
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    assert_eq!(phase(&sim), Phase::Testing);
    let job = sim.jobs[0].clone();

    // An autoscaler (through the scale subresource) asks for 5.
    sim.release.spec.replicas = 5;
    sim.bump_generation();
    let plan = sim.reconcile();
    assert!(
        plan.writes.contains(&Write::ScaleReplicaSet {
            name: "web-blue".into(),
            replicas: 5
        }),
        "{:?}",
        describe(&plan)
    );
    assert!(
        !plan.writes.iter().any(
            |a| matches!(a, Write::DeleteJob { .. } | Write::CreateJob(_))
                || matches!(a, Write::ScaleReplicaSet { name, .. } if name == "web-green")
        ),
        "the running test goes on against the pods it started on: {:?}",
        describe(&plan)
    );
    sim.settle();
    sim.finish_jobs(true);
    let plan = sim.run_until_quiet(20);
    assert_eq!(phase(&sim), Phase::Stable);
    assert_eq!(sim.jobs, {
        let mut passed = job;
        passed.state = crate::observe::JobState::Succeeded;
        passed.finished_at = sim.jobs[0].finished_at;
        vec![passed]
    });
    assert_eq!(
        sim.replica_sets[&Color::Green].desired,
        5,
        "promoted at the new size"
    );
    let _ = plan;
}

#[test]
fn a_smoke_tests_finish_time_is_when_its_job_finished() {
    let mut sim = stable_on_blue(&["smoke"]);
    sim.release.spec.promotion.mode = bluegreen_crd::PromotionMode::Manual;
    sim.set_image("web:2");
    for _ in 0..3 {
        sim.reconcile();
        sim.settle();
    }
    let finished = sim.now;
    sim.finish_jobs(true);
    sim.advance(40);
    sim.reconcile();
    let test = &sim.status().smoke_tests[0];
    assert_eq!(test.phase, SmokeTestPhase::Succeeded);
    assert_eq!(
        test.finished_at.as_ref().map(|t| t.0),
        Some(Timestamp::from_second(finished).unwrap())
    );
    assert_eq!(phase(&sim), Phase::AwaitingPromotion);
    assert!(
        sim.status()
            .history
            .iter()
            .all(|h| h.outcome == Outcome::Promoted)
    );
}
