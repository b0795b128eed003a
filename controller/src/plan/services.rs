//! The Services a release names: never another release's, the active one's selector kept
//! on the recorded active color, and those the spec stopped naming cleaned up.

use bluegreen_crd::Color;
use kube::ResourceExt;

use super::{ActiveRef, Gravity, Planner, Stall, Write};
use crate::desired;

impl Planner<'_> {
    /// A Service the spec names that another release claims (its release label or its
    /// controller ownerReference): two releases sharing a Service would take its traffic
    /// from each other on every change.
    pub(super) fn foreign_service(&self) -> Option<Stall> {
        let name = self.release.name_any();
        let services = [
            ("service.name", self.obs.active_service.as_ref()),
            ("service.previewName", self.obs.preview_service.as_ref()),
        ];
        services.into_iter().find_map(|(field, svc)| {
            let svc = svc?;
            let owner = svc.claimed_by_another(&name)?;
            Some(Stall {
                reason: "ServiceOwnedByAnotherRelease".into(),
                message: format!(
                    "Service {} (spec.{field}) belongs to release {owner}; the controller will not touch it. Name another Service in spec.{field}, or, if release {owner} no longer exists, remove the label {} from the Service",
                    svc.name,
                    bluegreen_crd::labels::RELEASE
                ),
            })
        })
    }

    /// Points the active Service back at the recorded active color (or creates it under the
    /// name the spec now gives), but only towards a color that can serve (invariant 1).
    pub(super) fn repair_active_selector(
        &mut self,
        world: Option<(Color, String)>,
        active: &ActiveRef,
    ) {
        if self.release.spec.paused {
            return;
        }
        let service = &self.release.spec.service.name;
        let existing = self.obs.active_service.as_ref();
        if existing.is_none() && self.release.spec.service.ports.is_empty() {
            self.report_trouble(Gravity::NeedsPerson, format!(
                "the active Service {service} does not exist and spec.service.ports is empty, so the controller cannot create it; set spec.service.ports or recreate the Service"
            ));
            return;
        }
        let serving = self
            .obs
            .replica_set(active.color)
            .filter(|rs| rs.revision == active.revision && rs.fully_available())
            .cloned();
        let what = match (&world, existing) {
            (Some((color, revision)), _) => format!(
                "the active Service {service} was changed outside the controller to select {color} revision {revision}"
            ),
            (None, Some(_)) => format!(
                "the active Service {service} lost its {} and {} selector keys",
                bluegreen_crd::labels::COLOR,
                bluegreen_crd::labels::REVISION
            ),
            (None, None) => format!("the active Service {service} does not exist"),
        };
        let Some(rs) = serving else {
            self.drift_pending = self.drift_exposes_the_cold_color(world.as_ref());
            self.report_trouble(Gravity::Repair, format!(
                "{what}; it is pointed at the active color {} (version {}) once that is fully available",
                active.color, active.version
            ));
            return;
        };
        let adopted = existing
            .filter(|s| !s.created_by_controller())
            .map(|s| &s.selector);
        self.writes.push(Write::Flip {
            service: Box::new(crate::desired::active_service(
                self.release,
                active.color,
                &active.revision,
                adopted,
            )),
            replica_set: rs.name.clone(),
            replicas: rs.desired,
        });
        let verb = if existing.is_some() {
            "pointed it back at"
        } else {
            "created it selecting"
        };
        // A Service that merely got its new name (a renamed spec.service.name) is routine;
        // anything else is a person or a tool fighting the controller.
        let renamed = existing.is_none() && !self.obs.former_services.is_empty();
        self.event(
            !renamed,
            if existing.is_some() {
                "SelectorRepaired"
            } else {
                "ActiveServiceCreated"
            },
            format!(
                "{what}; {verb} the active color {} (version {}, revision {})",
                active.color, active.version, active.revision
            ),
        );
    }

    /// Whether an unrepaired selector lets customers reach the cold color, so that no rollout
    /// step may touch it: the keys are stripped (the Service's own selector then takes in
    /// both colors), or it selects the cold color at the revision that color runs (the warm
    /// standby, serving customers until it is repaired).
    fn drift_exposes_the_cold_color(&self, world: Option<&(Color, String)>) -> bool {
        let Some(active) = self.active() else {
            return false;
        };
        match world {
            None => self.obs.active_service.is_some(),
            Some((color, revision)) => {
                *color != active.color
                    && self
                        .obs
                        .replica_set(*color)
                        .is_some_and(|rs| &rs.revision == revision)
            }
        }
    }

    /// Services of this release that the spec no longer names (a renamed `service.name` or
    /// `service.previewName`) are cleaned up, as "apply children, then delete orphans": a
    /// preview Service at once (nothing is served through it), a former active Service only
    /// once the Service under the new name selects the active color, so traffic never has
    /// a gap. A Service the controller created is deleted; a user's Service it adopted is
    /// given back without the controller's selector keys and label.
    pub(super) fn retire_former_services(&mut self) {
        let active_moved = self.active().is_some_and(|a| {
            self.obs
                .active_service
                .as_ref()
                .and_then(|s| s.target())
                .is_some_and(|(color, revision)| color == a.color && revision == a.revision)
        });
        for service in &self.obs.former_services {
            let preview = service.role() == Some("preview");
            if !(preview || active_moved) {
                continue;
            }
            let action = if service.created_by_controller() {
                Write::DeleteService {
                    name: service.name.clone(),
                    uid: service.uid.clone(),
                }
            } else {
                Write::ReleaseService {
                    name: service.name.clone(),
                }
            };
            self.writes.push(action);
        }
    }

    /// Points the preview Service at a color+revision when it does not already.
    pub(super) fn point_preview(&mut self, color: Color, revision: &str) {
        let wanted = self.wanted_preview(color, revision);
        let current = self.obs.preview_service.as_ref();
        let up_to_date = current.is_some_and(|svc| {
            let spec = wanted.spec.as_ref().expect("built with a spec");
            Some(&svc.selector) == spec.selector.as_ref()
                && ports_match(&svc.ports, spec.ports.as_deref().unwrap_or_default())
        });
        if !up_to_date {
            self.writes
                .push(Write::ApplyPreviewService(Box::new(wanted)));
        }
    }

    /// The preview Service as it should be (ports from the spec, else the active Service's).
    pub(super) fn wanted_preview(
        &self,
        color: Color,
        revision: &str,
    ) -> k8s_openapi::api::core::v1::Service {
        let fallback = self
            .obs
            .active_service
            .as_ref()
            .map(|s| s.ports.clone())
            .unwrap_or_default();
        desired::preview_service(self.release, color, revision, &fallback)
    }
}

/// Port lists match on what the controller sets (the server fills in the rest).
fn ports_match(
    current: &[k8s_openapi::api::core::v1::ServicePort],
    wanted: &[k8s_openapi::api::core::v1::ServicePort],
) -> bool {
    current.len() == wanted.len()
        && current.iter().zip(wanted).all(|(c, w)| {
            c.port == w.port
                && c.name == w.name
                && c.protocol.as_deref().unwrap_or("TCP") == w.protocol.as_deref().unwrap_or("TCP")
                && (w.target_port.is_none() || c.target_port == w.target_port)
        })
}
