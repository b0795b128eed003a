//! The observed world of one release, as plain views the planner can reason about.
//!
//! Reconcile reads the release's ReplicaSets, Services, EndpointSlices, pods and Jobs from
//! label-filtered caches and condenses each into a view here. Keeping the conversion pure
//! (objects in, views out) lets the planner and its property tests build worlds directly.

use std::collections::BTreeMap;

use bluegreen_crd::{BlueGreenRelease, Color, ConditionType, labels};

use kube::ResourceExt;

use super::index::Summarize;
use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        batch::v1::Job,
        core::v1::{Pod, Service},
        discovery::v1::EndpointSlice,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::Timestamp,
};

use bluegreen_crd::labels::{ROLLOUT_ANNOTATION, SERVICE_NAME_LABEL, VERSION_ANNOTATION};

/// Everything the planner may look at for one release.
#[derive(Clone, Debug)]
pub struct Observed {
    pub release: BlueGreenRelease,
    pub replica_sets: Vec<ReplicaSetView>,
    pub active_service: Option<ServiceView>,
    pub preview_service: Option<ServiceView>,
    /// The release's other Services: ones the spec named before (a renamed `service.name`
    /// or `service.previewName`).
    pub former_services: Vec<ServiceView>,
    /// Endpoints behind the preview Service, from its EndpointSlices.
    pub preview_endpoints: Vec<EndpointView>,
    pub pods: Vec<PodView>,
    pub jobs: Vec<JobView>,
    /// The clock, whole seconds (status times are stored at second precision, and a stable
    /// clock keeps an unchanged world from producing a changed status).
    pub now: Timestamp,
    /// The analysis sample reconcile took for this plan, when one was due.
    pub analysis: Option<super::analysis::AnalysisSample>,
    /// The controller has a default Prometheus (`--prometheus-address`) for releases whose
    /// `spec.analysis` names none.
    pub default_prometheus: bool,
}

/// A time truncated to whole seconds (see [`Observed::now`]): status times are stored at
/// second precision, so a finer one would make an unchanged world look changed.
pub fn whole_seconds(time: Timestamp) -> Timestamp {
    Timestamp::from_second(time.as_second()).expect("a time from the API is in range")
}

impl Observed {
    pub fn replica_set(&self, color: Color) -> Option<&ReplicaSetView> {
        self.replica_sets.iter().find(|rs| rs.color == color)
    }
}

/// One color's ReplicaSet.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplicaSetView {
    pub name: String,
    pub uid: String,
    pub color: Color,
    pub revision: String,
    pub version: String,
    /// `spec.replicas`: the size the controller asked for.
    pub desired: i32,
    /// `status.replicas`: pods that exist (an old pod still terminating counts).
    pub current: i32,
    pub ready: i32,
    pub available: i32,
    pub generation: i64,
    pub observed_generation: i64,
    pub deleting: bool,
}

impl ReplicaSetView {
    /// Fully available at its own desired size: the RS controller has seen the latest spec,
    /// every pod is available, and no surplus pod is still around.
    pub fn fully_available(&self) -> bool {
        !self.deleting
            && self.desired > 0
            && self.observed_generation >= self.generation
            && self.available >= self.desired
            && self.current == self.desired
    }

    /// Fully available at `size` pods.
    pub fn available_at(&self, size: i32) -> bool {
        self.desired == size && self.fully_available()
    }
}

/// A Service the release uses.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServiceView {
    pub name: String,
    pub uid: String,
    /// Lets a reconcile tell whether the cache shows the controller's own last flip.
    pub resource_version: String,
    pub selector: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub ports: Vec<k8s_openapi::api::core::v1::ServicePort>,
    /// The BlueGreenRelease named by the Service's controller ownerReference, if any.
    pub owner: Option<String>,
    /// The field manager that owns the selector's color key (from `managedFields`), when
    /// the server reports it: tells the controller's own flip from a person's edit.
    pub selector_writer: Option<String>,
    /// The controller's field manager owns `spec.ports`: it applied the Service whole, so
    /// it created it, even if a person then stripped its ownerReference and labels (e.g. a
    /// `kubectl replace` with the original manifest).
    pub ports_owned_by_controller: bool,
}

impl ServiceView {
    /// The (color, revision) this Service selects, when it selects one.
    pub fn target(&self) -> Option<(Color, String)> {
        let color = Color::parse(self.selector.get(labels::COLOR)?)?;
        let revision = self.selector.get(labels::REVISION)?.clone();
        Some((color, revision))
    }

    /// Created by the controller (full ownership) rather than adopted from the user
    /// (where only the selector keys are ours). Any one mark is enough: a person who strips
    /// the labels of a Service the controller created leaves its ownerReference, or at least
    /// the controller's ownership of the ports, and the controller then applies it whole
    /// again (applying only the selector keys would make server-side apply drop the ports
    /// it owns).
    pub fn created_by_controller(&self) -> bool {
        self.owner.is_some()
            || self.labels.contains_key(labels::SERVICE_ROLE)
            || self.ports_owned_by_controller
    }

    /// The release that claims this Service, by its release label or its controller
    /// ownerReference, when that is not `release`: such a Service is never written.
    pub fn claimed_by_another(&self, release: &str) -> Option<&str> {
        let label = self.labels.get(labels::RELEASE).map(String::as_str);
        [label, self.owner.as_deref()]
            .into_iter()
            .flatten()
            .find(|claimant| *claimant != release)
    }

    /// Whether the selector was last set by the controller's own flip (or nobody can tell:
    /// a server that reports no managed fields).
    pub fn selector_set_by_controller(&self) -> bool {
        self.selector_writer
            .as_deref()
            .is_none_or(|w| w == labels::FIELD_MANAGER)
    }

    /// The role label (`active` or `preview`) of a Service the controller created.
    pub fn role(&self) -> Option<&str> {
        self.labels.get(labels::SERVICE_ROLE).map(String::as_str)
    }
}

/// One endpoint of the preview Service.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointView {
    pub pod: Option<String>,
    pub ready: bool,
}

/// One pod of the release (application pods of either color).
#[derive(Clone, Debug, PartialEq)]
pub struct PodView {
    pub name: String,
    pub color: Option<Color>,
    pub revision: Option<String>,
    pub ready: bool,
    pub deleting: bool,
}

/// How a smoke-test Job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed { reason: String, message: String },
}

/// One smoke-test Job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    pub name: String,
    pub uid: String,
    pub test: String,
    pub revision: String,
    /// The rollout (its start time, RFC 3339) the Job was created for.
    pub rollout: String,
    pub state: JobState,
    pub deleting: bool,
    /// Tail of the failed pod's log, fetched by reconcile for failed Jobs.
    pub log_tail: Option<String>,
    /// When the Job finished (its Complete or Failed condition), whole seconds.
    pub finished_at: Option<Timestamp>,
}

/// What the caches keep of a pod: its view, and what links a smoke-test pod to its Job.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSummary {
    pub view: PodView,
    /// UID of the Job that owns it, for a smoke-test pod.
    pub job_uid: Option<String>,
    pub created: Option<Timestamp>,
}

/// What the caches keep of an EndpointSlice: its Service and endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceSummary {
    pub service: String,
    pub endpoints: Vec<EndpointView>,
}

/// An annotation's value, empty when it is not set.
fn annotation(meta: &ObjectMeta, key: &str) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
        .unwrap_or_default()
}

impl Summarize for ReplicaSet {
    type Summary = ReplicaSetView;
    fn summarize(&self) -> Option<ReplicaSetView> {
        replica_set_view(self)
    }
}

impl Summarize for Service {
    type Summary = ServiceView;
    fn summarize(&self) -> Option<ServiceView> {
        Some(service_view(self))
    }
}

impl Summarize for EndpointSlice {
    type Summary = SliceSummary;
    fn summarize(&self) -> Option<SliceSummary> {
        let service = self.labels().get(SERVICE_NAME_LABEL)?;
        let endpoints = endpoint_views([self]);
        Some(SliceSummary {
            service: service.clone(),
            endpoints,
        })
    }
}

impl Summarize for Pod {
    type Summary = PodSummary;
    fn summarize(&self) -> Option<PodSummary> {
        let owners = self.owner_references();
        let job_uid = owners
            .iter()
            .find(|o| o.kind == "Job")
            .map(|o| o.uid.clone());
        Some(PodSummary {
            view: pod_view(self),
            job_uid,
            created: self.metadata.creation_timestamp.as_ref().map(|t| t.0),
        })
    }
}

impl Summarize for Job {
    type Summary = JobView;
    fn summarize(&self) -> Option<JobView> {
        job_view(self)
    }
}

/// The release's ReplicaSet view, or `None` for an object that is not one of its colors.
pub fn replica_set_view(rs: &ReplicaSet) -> Option<ReplicaSetView> {
    let meta = &rs.metadata;
    let labels = meta.labels.as_ref()?;
    let color = Color::parse(labels.get(labels::COLOR)?)?;
    let revision = labels.get(labels::REVISION)?.clone();
    let status = rs.status.as_ref();
    Some(ReplicaSetView {
        name: meta.name.clone()?,
        uid: meta.uid.clone().unwrap_or_default(),
        color,
        revision,
        version: annotation(meta, VERSION_ANNOTATION),
        desired: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.map(|s| s.replicas).unwrap_or(0),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        generation: meta.generation.unwrap_or(0),
        observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
        deleting: meta.deletion_timestamp.is_some(),
    })
}

pub fn service_view(svc: &Service) -> ServiceView {
    let spec = svc.spec.as_ref();
    let owner = svc
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "BlueGreenRelease")
        .map(|o| o.name.clone());
    ServiceView {
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        owner,
        selector_writer: selector_writer(svc),
        ports_owned_by_controller: owns(svc, labels::FIELD_MANAGER, "/f:spec/f:ports"),
        resource_version: svc.metadata.resource_version.clone().unwrap_or_default(),
        selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        ports: spec.and_then(|s| s.ports.clone()).unwrap_or_default(),
    }
}

/// The manager whose `managedFields` entry holds the selector's color key: on an API
/// server, whoever owns the selector itself (it is an atomic map, owned whole, so the
/// entry lists `f:selector` with nothing below it); a server that tracks its keys one by
/// one names the owner of `f:bluegreen.dev/color`.
fn selector_writer(svc: &Service) -> Option<String> {
    let key = format!("f:{}", labels::COLOR);
    let owners = || {
        svc.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|entry| {
                let selector = entry.fields_v1.as_ref()?.0.pointer("/f:spec/f:selector")?;
                Some((entry.manager.clone()?, selector))
            })
    };
    let of_the_key = owners().find(|(_, selector)| selector.get(&key).is_some());
    let of_the_map =
        || owners().find(|(_, selector)| selector.as_object().is_some_and(|m| m.is_empty()));
    of_the_key.or_else(of_the_map).map(|(manager, _)| manager)
}

/// Whether `manager`'s `managedFields` entry holds the field at `pointer`.
fn owns(svc: &Service, manager: &str, pointer: &str) -> bool {
    svc.metadata.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() == Some(manager)
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer(pointer).is_some())
    })
}

/// Endpoints of a set of EndpointSlices (all slices of one Service).
pub fn endpoint_views<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<EndpointView> {
    slices
        .into_iter()
        .flat_map(|slice| slice.endpoints.iter())
        .map(|ep| EndpointView {
            pod: ep
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref().unwrap_or("Pod") == "Pod")
                .and_then(|r| r.name.clone()),
            // Per the EndpointSlice API, an unknown ready state is to be read as ready.
            ready: ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect()
}

pub fn pod_view(pod: &Pod) -> PodView {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == ConditionType::Ready.as_ref() && c.status == "True")
        });
    PodView {
        name: pod.metadata.name.clone().unwrap_or_default(),
        color: labels.get(labels::COLOR).and_then(|c| Color::parse(c)),
        revision: labels.get(labels::REVISION).cloned(),
        ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
    }
}

/// The release's smoke-test Job view, or `None` for a Job that is not a smoke test.
pub fn job_view(job: &Job) -> Option<JobView> {
    let meta = &job.metadata;
    let labels = meta.labels.as_ref()?;
    let test = labels.get(labels::SMOKE_TEST)?.clone();
    let revision = labels.get(labels::REVISION).cloned().unwrap_or_default();
    let status = job.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|conds| {
                conds
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == "True")
            })
    };
    let finished = condition("Failed").or_else(|| condition("Complete"));
    let finished_at = finished
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
        .or_else(|| status.and_then(|s| s.completion_time.as_ref()).map(|t| t.0))
        .map(whole_seconds);
    let state = if let Some(failed) = condition("Failed") {
        JobState::Failed {
            reason: failed.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: failed.message.clone().unwrap_or_default(),
        }
    } else if condition("Complete").is_some() {
        JobState::Succeeded
    } else {
        JobState::Running
    };
    Some(JobView {
        state,
        test,
        revision,
        rollout: annotation(meta, ROLLOUT_ANNOTATION),
        name: meta.name.clone()?,
        uid: meta.uid.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        log_tail: None,
        finished_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replica_set_view_reads_labels_and_status() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-blue", "uid": "u1", "generation": 2,
                "labels": {"bluegreen.dev/color": "blue", "bluegreen.dev/revision": "abc"},
                "annotations": {"bluegreen.dev/version": "1.2"}},
            "spec": {"replicas": 3, "selector": {}},
            "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 2, "observedGeneration": 2}
        }))
        .unwrap();
        let view = replica_set_view(&rs).unwrap();
        assert_eq!(
            (view.color, view.revision.as_str(), view.version.as_str()),
            (Color::Blue, "abc", "1.2")
        );
        assert_eq!(
            (view.desired, view.current, view.ready, view.available),
            (3, 3, 3, 2)
        );
        assert!(!view.fully_available(), "one pod is not yet available");
    }

    /// A Service the controller created, then `kubectl replace`d with the user's original
    /// manifest: ownerReference and labels are gone, but the controller still owns the
    /// ports it applied, so it is applied whole again (only the selector keys would make
    /// server-side apply drop those ports).
    #[test]
    fn a_service_whose_ports_the_controller_owns_was_created_by_it() {
        let svc = |manager: &str| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": "web", "managedFields": [
                    {"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}}}}}},
                    {"manager": "kubectl-replace", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:selector": {"f:app": {}}}}}
                ]},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
            }))
            .unwrap()
        };
        assert!(service_view(&svc(labels::FIELD_MANAGER)).created_by_controller());
        assert!(!service_view(&svc("helm")).created_by_controller());
    }

    #[test]
    fn replica_set_without_color_is_not_a_view() {
        let rs: ReplicaSet =
            serde_json::from_value(json!({"metadata": {"name": "x", "labels": {}}})).unwrap();
        assert!(replica_set_view(&rs).is_none());
    }

    #[test]
    fn stale_observed_generation_is_not_available() {
        let view = ReplicaSetView {
            name: "r".into(),
            uid: "u".into(),
            color: Color::Green,
            revision: "r1".into(),
            version: "v".into(),
            desired: 2,
            current: 2,
            ready: 2,
            available: 2,
            generation: 3,
            observed_generation: 2,
            deleting: false,
        };
        assert!(!view.fully_available());
        assert!(
            ReplicaSetView {
                observed_generation: 3,
                ..view.clone()
            }
            .available_at(2)
        );
        assert!(
            !ReplicaSetView {
                observed_generation: 3,
                current: 3,
                ..view
            }
            .fully_available()
        );
    }

    #[test]
    fn job_view_reads_conditions() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "web-smoke-abc", "labels": {"bluegreen.dev/smoke-test": "smoke", "bluegreen.dev/revision": "abc"},
                "annotations": {"bluegreen.dev/rollout": "2026-01-01T00:00:00Z"}},
            "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}
        }))
        .unwrap();
        let view = job_view(&job).unwrap();
        assert_eq!(view.test, "smoke");
        assert!(
            matches!(view.state, JobState::Failed { ref reason, .. } if reason == "BackoffLimitExceeded")
        );
    }

    #[test]
    fn endpoint_views_default_ready_when_unknown() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "s"}, "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": "p1"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "p2"}}
            ]
        }))
        .unwrap();
        let views = endpoint_views([&slice]);
        assert_eq!(
            views,
            vec![
                EndpointView {
                    pod: Some("p1".into()),
                    ready: true
                },
                EndpointView {
                    pod: Some("p2".into()),
                    ready: false
                },
            ]
        );
    }
}
