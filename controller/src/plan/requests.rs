//! Manual actions: `bluegreen.dev/action` + `bluegreen.dev/action-id` annotations.
//!
//! Each id is consumed exactly once: the outcome is recorded in `status.lastAction` and only
//! after that status is written are the annotations removed (reconcile orders the two). An
//! annotation whose id is already recorded was consumed before a crash: it is only removed.
//! Accepting an action changes only the status (the intent); its effects follow from the
//! next reconcile, so nothing is done twice if the controller dies in between.

use bluegreen_crd::{
    ActionResult, AnalysisResult, LastAction, Outcome, RolloutKind, RolloutStage, RolloutStatus,
    labels, status::CONSUMED_ACTION_IDS,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::Planner;
use super::analysis::Rejection;

/// The verbs a person (or the kubectl plugin) can ask for.
const VERBS: &str = "promote, abort, retry or rollback";

impl Planner<'_> {
    /// The pending action, if its id was not consumed yet.
    pub(super) fn pending_request(&self) -> Option<(String, String)> {
        let annotations = self.release.metadata.annotations.as_ref()?;
        let verb = annotations.get(labels::ACTION)?.trim().to_string();
        let id = annotations
            .get(labels::ACTION_ID)
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Some((verb, id))
    }

    /// The id of the last action recorded: consumed before a crash kept its annotations from
    /// being removed. Only the annotations are removed then, nothing is recorded again.
    fn already_consumed(&self, id: &str) -> bool {
        !id.is_empty() && self.status.last_action.as_ref().is_some_and(|a| a.id == id)
    }

    /// An id an earlier action used: each id is consumed once, so it is refused.
    fn used_before(&self, id: &str) -> bool {
        self.status
            .consumed_action_ids
            .iter()
            .any(|used| used == id)
    }

    /// Handles a pending action. Returns true when this reconcile should stop here (the
    /// outcome must be written before anything else happens).
    pub(super) fn handle_request(&mut self) -> bool {
        let Some((verb, id)) = self.pending_request() else {
            return false;
        };
        if verb == "abort" && self.drift_pending && !self.already_consumed(&id) {
            // The hand-moved selector sends customers to the cold color that an abort would
            // scale down (invariant 2): the abort waits, unconsumed, until it is repaired.
            return false;
        }
        self.consume_request = true;
        if self.already_consumed(&id) {
            return false;
        }
        let release = self.release.name_any();
        let decision = if id.is_empty() {
            Err(format!(
                "annotation {} is missing; every action needs a unique id (`kubectl bluegreen {verb} {release}` adds one)",
                labels::ACTION_ID
            ))
        } else if self.used_before(&id) {
            Err(format!(
                "action id '{id}' was already used by an earlier action, and each id is consumed once; nothing was done. Ask again with a new id (`kubectl bluegreen {verb} {release}` makes one)"
            ))
        } else if self.release.spec.paused {
            Err("the release is paused (spec.paused); unpause it first".to_string())
        } else {
            match verb.as_str() {
                "promote" => self.accept_promote(&id),
                "abort" => self.accept_abort(&id),
                "retry" => self.accept_retry(),
                "rollback" => self.accept_rollback(&id),
                other => Err(format!("unknown action '{other}'; use {VERBS}")),
            }
        };
        let (result, message) = match decision {
            Ok(message) => (ActionResult::Accepted, message),
            Err(message) => (ActionResult::Refused, message),
        };
        self.record_request(&verb, &id, result, message);
        // An accepted abort already changed the phase; everything else is written first
        // and takes effect on the next reconcile.
        true
    }

    /// Refuses a pending action without looking at it (e.g. the spec is invalid).
    pub(super) fn refuse_pending_request(&mut self, why: &str) {
        let Some((verb, id)) = self.pending_request() else {
            return;
        };
        self.consume_request = true;
        if !self.already_consumed(&id) {
            self.record_request(&verb, &id, ActionResult::Refused, why.to_string());
        }
    }

    fn record_request(&mut self, verb: &str, id: &str, result: ActionResult, message: String) {
        let refused = result == ActionResult::Refused;
        self.event(
            refused,
            if refused {
                "ActionRefused"
            } else {
                "ActionAccepted"
            },
            format!("{verb} ({id}): {message}"),
        );
        self.status.last_action = Some(LastAction {
            verb: verb.into(),
            id: id.into(),
            result,
            message,
            at: self.now(),
        });
        if !id.is_empty() {
            let used = &mut self.status.consumed_action_ids;
            used.retain(|u| u != id);
            used.insert(0, id.to_string());
            used.truncate(CONSUMED_ACTION_IDS);
        }
    }

    fn accept_promote(&mut self, id: &str) -> Result<String, String> {
        if let Some(r) = self.status.rollout.clone() {
            match &r.stage {
                RolloutStage::Verifying { promoted_at, .. } => {
                    // A person vouches for the live version: verification ends as passed.
                    self.end_analysis(
                        AnalysisResult::Overridden,
                        &format!("ended by promote (action {id})"),
                    );
                    let reason = format!(
                        "ManualOverride: post-promotion verification ended by promote (action {id})"
                    );
                    self.close_promotion(&r, &promoted_at.clone(), Some(reason));
                    return Ok(format!(
                        "verification of version {} ended as passed",
                        r.version
                    ));
                }
                RolloutStage::Analyzing { .. } => {
                    self.end_analysis(
                        AnalysisResult::Overridden,
                        &format!("ended by promote (action {id})"),
                    );
                    let rollout = self.status.rollout.as_mut().expect("matched above");
                    rollout.reason.get_or_insert(format!(
                        "ManualOverride: pre-promotion analysis ended by promote (action {id})"
                    ));
                    // The promotion has a deadline of its own, as after passing tests.
                    rollout.progressing_since = Time(self.obs.now);
                }
                _ => {}
            }
        }
        let awaiting = self.status.rollout.as_mut().filter(|r| !r.is_rollback());
        let passed = awaiting.and_then(|r| Some((r.stage.tests_passed_at()?.clone(), r)));
        match passed {
            Some((tests_passed_at, rollout)) => {
                rollout.stage = RolloutStage::Promoting {
                    tests_passed_at,
                    promote_requested: true,
                };
                Ok(format!(
                    "promoting version {} on {}",
                    rollout.version, rollout.color
                ))
            }
            None => Err(format!(
                "nothing awaits promotion (phase {})",
                self.phase_name()
            )),
        }
    }

    fn accept_abort(&mut self, id: &str) -> Result<String, String> {
        let Some(rollout) = self.status.rollout.clone() else {
            return Err(format!(
                "no rollout in progress (phase {})",
                self.phase_name()
            ));
        };
        if let RolloutStage::Verifying { promoted_at, .. } = &rollout.stage {
            return Ok(self.take_back(
                &rollout,
                &promoted_at.clone(),
                Outcome::Aborted,
                "Aborted",
                id,
            ));
        }
        // Aborting only scales the cold color down and cancels Jobs: safe to repeat.
        self.fail(
            &rollout,
            Outcome::Aborted,
            "Aborted",
            format!(
                "rollout of version {} aborted (action {id}); the active Service was not changed",
                rollout.version
            ),
        );
        Ok(format!(
            "aborted the rollout of version {}",
            rollout.version
        ))
    }

    fn accept_retry(&mut self) -> Result<String, String> {
        if self.status.rollout.is_some() {
            return Err("a rollout is in progress".into());
        }
        match self.status.blocked_revision.take() {
            Some(revision) => Ok(format!("revision {revision} may be deployed again")),
            None => Err(format!("nothing to retry (phase {})", self.phase_name())),
        }
    }

    fn accept_rollback(&mut self, id: &str) -> Result<String, String> {
        if let Some(rollout) = self.status.rollout.clone()
            && let RolloutStage::Verifying { promoted_at, .. } = &rollout.stage
        {
            return Ok(self.take_back(
                &rollout,
                &promoted_at.clone(),
                Outcome::RolledBack,
                "RollbackRequested",
                id,
            ));
        }
        if self.status.rollout.is_some() {
            return Err(format!(
                "a rollout is in progress; use `kubectl bluegreen abort {}` to stop it (the active color is untouched)",
                self.release.name_any()
            ));
        }
        let (Some(active), Some(standby)) = (self.active(), self.status.standby.clone()) else {
            return Err("there is no previous color to roll back to".into());
        };
        let warm = self
            .obs
            .replica_set(standby.color)
            .is_some_and(|rs| rs.revision == standby.revision && !rs.deleting);
        if !warm {
            return Err(format!(
                "the previous color {} no longer runs version {}",
                standby.color, standby.version
            ));
        }
        let skip_tests = self
            .status
            .history
            .iter()
            .any(|h| h.revision == standby.revision)
            && !self.release.spec.retest_on_rollback;
        let mut rollout = RolloutStatus::start(
            standby.revision.clone(),
            standby.version.clone(),
            standby.color,
            self.now(),
            RolloutKind::Rollback { skip_tests },
            None,
        );
        rollout.reason = Some(format!("rollback requested (action {id})"));
        self.status.rollout = Some(rollout);
        // The spec still asks for what it asked; do not redeploy that on our own.
        self.status.blocked_revision = Some(self.desired_revision.clone());
        self.status.smoke_tests.clear();
        Ok(format!(
            "rolling back from version {} to version {} on {}",
            active.version, standby.version, standby.color
        ))
    }

    /// An abort or a rollback while the new version is being verified: it is taken back
    /// onto the warm previous color.
    fn take_back(
        &mut self,
        rollout: &RolloutStatus,
        promoted_at: &Time,
        outcome: Outcome,
        reason: &'static str,
        id: &str,
    ) -> String {
        let message = format!(
            "version {} was taken back during its verification (action {id})",
            rollout.version
        );
        self.end_analysis(AnalysisResult::Overridden, &message);
        self.reject_promotion(
            rollout,
            promoted_at,
            Rejection {
                outcome,
                reason,
                message: message.clone(),
            },
        );
        match &self.status.rollout {
            Some(back) => format!(
                "{message}; flipping back to version {} on {}",
                back.version, back.color
            ),
            None => format!("{message}; there is no warm previous color to flip back to"),
        }
    }

    fn phase_name(&self) -> &'static str {
        self.status.phase.map_or("none", |p| p.as_str())
    }
}
