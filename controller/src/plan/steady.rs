//! No rollout in flight: keep the active color at size, retire the standby on time.

use bluegreen_crd::{Outcome, Phase};
use kube::ResourceExt;

use super::{Action, Planner, Stall};

impl Planner<'_> {
    /// The spec's revision is live (or held back): maintain what is there.
    pub(super) fn steady(&mut self, phase: Phase) {
        self.maintain_active();
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
        let stalled = self.before.condition("Stalled").filter(|c| {
            c.status == "True" && c.reason != "InvalidSpec" && self.before.phase == Some(phase)
        });
        let (reason, message) = match (stalled, rolled_back) {
            // Still the same stall as last time: keep its words (they carry the failure).
            (Some(c), _) => (
                c.reason.clone(),
                self.before
                    .message
                    .clone()
                    .unwrap_or_else(|| c.message.clone()),
            ),
            (None, true) => (
                "RolledBack".to_string(),
                format!(
                    "rolled back to version {}; the spec still asks for revision {}, which will not be deployed again until the spec changes or a retry (`kubectl annotate bgr {} bluegreen.dev/action=retry bluegreen.dev/action-id=<unique id>`)",
                    self.status.active_version.clone().unwrap_or_default(),
                    self.desired_revision,
                    self.release.name_any()
                ),
            ),
            (None, false) => (
                "RevisionBlocked".to_string(),
                format!(
                    "revision {} failed; it will not be deployed again until the spec changes or a retry (`kubectl annotate bgr {} bluegreen.dev/action=retry bluegreen.dev/action-id=<unique id>`)",
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

    /// A `spec.replicas` change is a scale, not a release (invariant 9): resize the active
    /// color in place. Only the scale subresource is written, so the template of the live
    /// revision is never touched.
    pub(super) fn maintain_active(&mut self) {
        let Some(active) = self.active() else { return };
        let Some(rs) = self.obs.replica_set(active.color) else {
            return;
        };
        if rs.revision == active.revision
            && !rs.deleting
            && rs.desired != self.release.spec.replicas
        {
            self.actions.push(Action::ScaleReplicaSet {
                name: rs.name.clone(),
                replicas: self.release.spec.replicas,
            });
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
                        self.actions.push(Action::ScaleReplicaSet {
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
                    self.actions.push(Action::ScaleReplicaSet {
                        name: rs.name.clone(),
                        replicas: spec.standby_replicas,
                    });
                }
            }
        }
    }
}
