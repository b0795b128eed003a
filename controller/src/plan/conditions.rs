//! The derived parts of the status: kstatus conditions, preview fields, scale fields.
//!
//! Conditions follow kstatus so that `kubectl wait --for=condition=Ready`, Flux and Argo CD
//! read health without custom code. `lastTransitionTime` moves only when a condition's status
//! flips, so an unchanged world writes an unchanged status (invariant 5).

use bluegreen_crd::{ConditionType, Phase, SmokeTestPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::Planner;
use crate::desired;

pub(super) fn update(p: &mut Planner<'_>) {
    let generation = p.release.metadata.generation;
    p.status.observed_generation = generation;
    derive_preview(p);
    derive_scale(p);

    let phase = p.status.phase.unwrap_or(Phase::Pending);
    if let (Some((_, trouble)), Phase::Stable | Phase::Failed | Phase::RolledBack) =
        (&p.active_trouble, phase)
    {
        // Nothing is in flight: trouble with what serves outranks "version … is live" or
        // the words of a past failure (the Stalled condition keeps those). A rollout keeps
        // its progress message; the Available condition says it.
        p.status.message = Some(trouble.clone());
    }
    let message = p.status.message.clone().unwrap_or_default();
    let available = active_available(p);
    kstatus_conditions(p, phase, &message, available);
    detail_conditions(p, available);

    // One Event per phase transition, unless this reconcile already explained it with an
    // Event of the same reason (e.g. RolledBack, with the details of the flip).
    let explained = p.events.iter().any(|e| e.reason == phase.as_str());
    if p.before.phase != p.status.phase && !explained {
        p.event(phase == Phase::Failed, phase.as_str(), message);
    }
}

/// Ready, Reconciling and Stalled: what `kubectl wait`, Flux and Argo CD read.
fn kstatus_conditions(p: &mut Planner<'_>, phase: Phase, message: &str, available: bool) {
    // A Stable release whose active color does not serve (its ReplicaSet deleted and being
    // recreated, pods lost) is being repaired, not ready.
    let repairing = phase == Phase::Stable && !available;
    let in_flight = repairing
        || matches!(
            phase,
            Phase::Pending
                | Phase::Deploying
                | Phase::Testing
                | Phase::Promoting
                | Phase::Verifying
        );

    let ready = phase == Phase::Stable && available;
    let ready_reason = match (ready, repairing) {
        (true, _) => "Stable",
        (false, true) => "ActiveUnavailable",
        (false, false) => phase.as_str(),
    };
    set(p, ConditionType::Ready, ready, ready_reason, message);
    let reconciling_reason = if repairing {
        "ActiveUnavailable"
    } else {
        phase.as_str()
    };
    set(
        p,
        ConditionType::Reconciling,
        in_flight,
        reconciling_reason,
        message,
    );
    match p.stall.clone() {
        Some(stall) => set(
            p,
            ConditionType::Stalled,
            true,
            &stall.reason,
            &stall.message,
        ),
        None => set(
            p,
            ConditionType::Stalled,
            false,
            "Progressing",
            "the controller can make progress",
        ),
    }
}

/// Available, SmokeTestsPassed and Promoted: the details behind the verdict.
fn detail_conditions(p: &mut Planner<'_>, available: bool) {
    let (reason, msg) = match (p.status.active_color, available) {
        (None, _) => ("NoActiveColor", "nothing is live yet".to_string()),
        (Some(color), true) => (
            "ActiveAvailable",
            format!("all pods of the active color {color} are available"),
        ),
        (Some(color), false) => (
            "ActiveUnavailable",
            p.active_trouble
                .clone()
                .map(|(_, trouble)| trouble)
                .unwrap_or_else(|| format!("the active color {color} is not fully available")),
        ),
    };
    set(p, ConditionType::Available, available, reason, &msg);

    let (passed, reason, msg) = smoke_tests_condition(p);
    set(p, ConditionType::SmokeTestsPassed, passed, reason, &msg);

    let promoted = p.status.active_revision.as_deref() == Some(p.desired_revision.as_str());
    let msg = if promoted {
        format!("revision {} is live", p.desired_revision)
    } else {
        format!("revision {} is not live yet", p.desired_revision)
    };
    set(
        p,
        ConditionType::Promoted,
        promoted,
        if promoted { "Promoted" } else { "NotPromoted" },
        &msg,
    );
}

/// The preview fields describe the cold color: the rollout's (until its flip), else the warm
/// standby's.
fn derive_preview(p: &mut Planner<'_>) {
    let before_flip = p.status.rollout.as_ref().filter(|r| !r.stage.is_flipped());
    let (color, version, revision) = match (before_flip, &p.status.standby) {
        (Some(r), _) => (
            Some(r.color),
            Some(r.version.clone()),
            Some(r.revision.clone()),
        ),
        (None, Some(s)) => (
            Some(s.color),
            Some(s.version.clone()),
            Some(s.revision.clone()),
        ),
        (None, None) => (None, None, None),
    };
    p.status.preview_color = color;
    p.status.preview_version = version;
    p.status.preview_revision = revision;
}

/// `status.replicas` and `status.selector` back the scale subresource (autoscalers).
fn derive_scale(p: &mut Planner<'_>) {
    let Some(active) = p.active() else {
        p.status.replicas = 0;
        p.status.selector = None;
        return;
    };
    p.status.replicas = p
        .obs
        .replica_set(active.color)
        .filter(|rs| rs.revision == active.revision)
        .map_or(0, |rs| rs.available);
    p.status.selector = Some(desired::selector_string(&desired::color_labels(
        p.release,
        active.color,
        &active.revision,
    )));
}

fn active_available(p: &Planner<'_>) -> bool {
    p.active().is_some_and(|a| {
        p.obs
            .replica_set(a.color)
            .is_some_and(|rs| rs.revision == a.revision && rs.fully_available())
    })
}

fn smoke_tests_condition(p: &Planner<'_>) -> (bool, &'static str, String) {
    let tests = &p.status.smoke_tests;
    if let Some(failed) = tests.iter().find(|t| t.phase == SmokeTestPhase::Failed) {
        return (
            false,
            "Failed",
            format!("smoke test '{}' failed", failed.name),
        );
    }
    if let Some(cancelled) = tests.iter().find(|t| t.phase == SmokeTestPhase::Cancelled) {
        return (
            false,
            "Cancelled",
            format!(
                "smoke test '{}' was cancelled before it finished",
                cancelled.name
            ),
        );
    }
    if let Some(r) = &p.status.rollout
        && r.stage.tests_passed_at().is_none()
    {
        return (
            false,
            "Running",
            format!("smoke tests of version {} have not passed yet", r.version),
        );
    }
    if tests.iter().any(|t| t.phase == SmokeTestPhase::Skipped) {
        return (
            true,
            "Skipped",
            "the revision already passed its smoke tests".into(),
        );
    }
    if tests.is_empty() {
        return (
            true,
            "NoneRequired",
            "no smoke tests ran for the current revision".into(),
        );
    }
    (true, "Passed", "all smoke tests passed".into())
}

/// Sets a condition, keeping `lastTransitionTime` unless its status flips.
fn set(p: &mut Planner<'_>, type_: ConditionType, status: bool, reason: &str, message: &str) {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = p.before.condition(type_);
    let last_transition_time = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => p.now(),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: p.release.metadata.generation,
        last_transition_time,
    };
    match p
        .status
        .conditions
        .iter_mut()
        .find(|c| c.type_ == type_.as_ref())
    {
        Some(existing) => *existing = condition,
        None => p.status.conditions.push(condition),
    }
}
