//! No rollout in flight: keep the active color at size, retire the standby on time.

use bluegreen_crd::{ConditionType, Outcome, Phase};
use kube::ResourceExt;

use super::{Gravity, Planner, Stall, Write};
use crate::desired;

impl Planner<'_> {
    /// The spec's revision is live (or held back): maintain what is there.
    pub(super) fn steady(&mut self, phase: Phase) {
        self.maintain_active();
        self.live(phase);
    }

    /// The standby retired on time and the phase said, the active color maintained already
    /// in this plan (a verification that just passed: its rollout's plan did that).
    pub(super) fn live(&mut self, phase: Phase) {
        self.maintain_standby();
        if let Some(active) = self.active() {
            let message = match phase {
                Phase::Stable => format!("version {} is live on {}", active.version, active.color),
                _ => self.status.message.clone().unwrap_or_default(),
            };
            self.set_phase(phase, message);
        }
    }

    /// The spec asks for a revision that failed, was aborted or was rolled back from: stay
    /// put until the spec changes or a `retry`, but keep maintaining what is live.
    pub(super) fn held(&mut self) {
        let latest = self.status.history.first();
        let rolled_back = latest.is_some_and(|h| {
            h.outcome == Outcome::RolledBack
                && Some(&h.revision) == self.status.active_revision.as_ref()
        });
        let phase = if rolled_back {
            Phase::RolledBack
        } else {
            Phase::Failed
        };
        let stalled = self.before.condition(ConditionType::Stalled).filter(|c| {
            c.status == "True" && c.reason != "InvalidSpec" && self.before.phase == Some(phase)
        });
        let (reason, message) = match (stalled, rolled_back) {
            // Still the same stall as last time: keep its words (they carry the failure).
            // The condition's, not `status.message`, which an outage of the active color
            // may have taken over for a while.
            (Some(c), _) => (c.reason.clone(), c.message.clone()),
            (None, true) if verification_failure(latest).is_some() => (
                "VerificationFailed".to_string(),
                format!(
                    "{}; the spec still asks for revision {}, which will not be deployed again until the spec changes or a retry (`kubectl bluegreen retry {}`)",
                    verification_failure(latest).unwrap_or_default(),
                    self.desired_revision,
                    self.release.name_any()
                ),
            ),
            (None, true) => (
                "RolledBack".to_string(),
                format!(
                    "rolled back to version {}; the spec still asks for revision {}, which will not be deployed again until the spec changes or a retry (`kubectl bluegreen retry {}`)",
                    self.status.active_version.clone().unwrap_or_default(),
                    self.desired_revision,
                    self.release.name_any()
                ),
            ),
            (None, false) => (
                "RevisionBlocked".to_string(),
                format!(
                    "revision {} failed; it will not be deployed again until the spec changes or a retry (`kubectl bluegreen retry {}`)",
                    self.desired_revision,
                    self.release.name_any()
                ),
            ),
        };
        self.maintain_active();
        self.maintain_standby();
        self.set_phase(phase, message.clone());
        self.stall = Some(Stall { reason, message });
    }

    /// The active color serves at `spec.replicas`. A `spec.replicas` change is a scale, not
    /// a release (invariant 9): only the scale subresource is written, so the template of the
    /// live revision is never touched. A deleted active ReplicaSet is recreated at once from
    /// the spec when the spec still describes the live revision; otherwise it cannot be
    /// rebuilt (the status keeps no template), and the status says what to do.
    pub(super) fn maintain_active(&mut self) {
        let Some(active) = self.active() else { return };
        let replicas = self.release.spec.replicas;
        match self.obs.replica_set(active.color) {
            Some(rs) if rs.deleting => {
                self.report_trouble(Gravity::Repair, format!(
                    "the ReplicaSet {} of the active color {} is being deleted; it is recreated once it is gone",
                    rs.name, active.color
                ));
            }
            Some(rs) => {
                if rs.revision == active.revision && rs.desired != replicas {
                    self.writes.push(Write::ScaleReplicaSet {
                        name: rs.name.clone(),
                        replicas,
                    });
                }
                if rs.revision == active.revision && !rs.fully_available() {
                    // Pods lost, a rebuilt ReplicaSet still starting, or a scale-up: the
                    // release is not Ready until they serve, and the status says why.
                    self.report_trouble(
                        Gravity::Symptom,
                        if rs.available < rs.desired {
                            format!(
                                "{} of {} pods of the active color {} (version {}) are available",
                                rs.available, rs.desired, active.color, active.version
                            )
                        } else {
                            format!(
                                "the active color {} (version {}) is being scaled to {} pods",
                                active.color, active.version, rs.desired
                            )
                        },
                    );
                }
            }
            None if active.revision == self.desired_revision => {
                let rs = desired::replica_set(
                    self.release,
                    active.color,
                    &active.revision,
                    &active.version,
                    replicas,
                );
                let name = rs.name_any();
                self.writes.push(Write::ApplyReplicaSet(Box::new(rs)));
                self.event(
                    true,
                    "ActiveReplicaSetRecreated",
                    format!(
                        "the ReplicaSet {name} of the active color {} (version {}) was deleted; recreated it with {replicas} pods",
                        active.color, active.version
                    ),
                );
                self.report_trouble(Gravity::Repair, format!(
                    "recreating the deleted ReplicaSet {name} of the active color {} (version {})",
                    active.color, active.version
                ));
            }
            None => {
                self.report_trouble(Gravity::NeedsPerson, format!(
                    "the ReplicaSet of the active color {} is gone and cannot be rebuilt: it ran version {} (revision {}) and the spec now describes revision {}; set the spec back to version {} (e.g. revert it in git) to rebuild it",
                    active.color,
                    active.version,
                    active.revision,
                    self.desired_revision,
                    active.version
                ));
            }
        }
    }

    /// The previous color stays at full size for `scaleDownDelaySeconds` after the flip
    /// (invariant 7), then goes to `standbyReplicas`. The preview Service follows it.
    fn maintain_standby(&mut self) {
        let Some(mut standby) = self.status.standby.clone() else {
            return;
        };
        let Some(rs) = self
            .obs
            .replica_set(standby.color)
            .filter(|rs| rs.revision == standby.revision && !rs.deleting)
            .cloned()
        else {
            if self.recreates_replica_set(standby.color, &standby.revision) {
                // The active color was deleted and is being rebuilt in this very plan, which
                // also flips away from it (a rollback): it is the standby once it exists.
                self.point_preview(standby.color, &standby.revision);
                return;
            }
            // Its ReplicaSet is gone or runs something else: nothing is warm any more.
            self.status.standby = None;
            return;
        };
        self.point_preview(standby.color, &standby.revision);
        let spec = &self.release.spec;
        match &standby.scaled_down_at {
            None => match self.remaining(&standby.since, spec.scale_down_delay_seconds) {
                Some(left) => self.requeue_in(left),
                None => {
                    if rs.desired != spec.standby_replicas {
                        self.writes.push(Write::ScaleReplicaSet {
                            name: rs.name.clone(),
                            replicas: spec.standby_replicas,
                        });
                    }
                    standby.scaled_down_at = Some(self.now());
                    self.event(
                        false,
                        "ScaledDown",
                        format!(
                            "previous color {} (version {}) scaled to {} standby replicas",
                            standby.color, standby.version, spec.standby_replicas
                        ),
                    );
                    self.status.standby = Some(standby);
                }
            },
            Some(_) => {
                if rs.desired != spec.standby_replicas {
                    self.writes.push(Write::ScaleReplicaSet {
                        name: rs.name.clone(),
                        replicas: spec.standby_replicas,
                    });
                }
            }
        }
    }

    /// This plan applies the ReplicaSet of `color` at `revision`.
    fn recreates_replica_set(&self, color: bluegreen_crd::Color, revision: &str) -> bool {
        self.writes.iter().any(|action| match action {
            Write::ApplyReplicaSet(rs) => crate::observe::replica_set_view(rs)
                .is_some_and(|view| view.color == color && view.revision == revision),
            _ => false,
        })
    }
}

/// The words of a failed verification, when the newest history entry is its flip back.
fn verification_failure(entry: Option<&bluegreen_crd::HistoryEntry>) -> Option<&str> {
    entry?
        .reason
        .as_deref()?
        .strip_prefix("VerificationFailed: ")
}
