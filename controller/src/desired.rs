//! The objects the controller wants to exist, built from the spec (pure).
//!
//! Every object is built whole, the same way each time, and applied with server-side apply:
//! the controller's field manager then owns exactly these fields, and applying an unchanged
//! object is a no-op on the server.

use std::collections::BTreeMap;

use bluegreen_crd::{BlueGreenRelease, Color, SmokeTest, labels, names, spec::Protocol};
use k8s_openapi::{
    api::{
        apps::v1::{ReplicaSet, ReplicaSetSpec},
        batch::v1::{Job, JobSpec},
        core::v1::{EnvVar, PodTemplateSpec, Service, ServicePort, ServiceSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
};
use kube::{Resource, ResourceExt};

use bluegreen_crd::labels::{ROLLOUT_ANNOTATION, VERSION_ANNOTATION};

/// Name of a color's ReplicaSet (`names::replica_set`).
pub fn replica_set_name(release: &BlueGreenRelease, color: Color) -> String {
    names::replica_set(&release.name_any(), color)
}

/// Name of a smoke-test Job (`names::smoke_test_job`).
pub fn job_name(release: &BlueGreenRelease, test: &str, revision: &str) -> String {
    names::smoke_test_job(&release.name_any(), test, revision)
}

/// Labels that identify one color at one revision (on RS, pods, and both Services' selectors).
pub fn color_labels(
    release: &BlueGreenRelease,
    color: Color,
    revision: &str,
) -> BTreeMap<String, String> {
    let mut selector = release.spec.effective_selector();
    selector.insert(labels::RELEASE.into(), release.name_any());
    selector.insert(labels::COLOR.into(), color.as_str().into());
    selector.insert(labels::REVISION.into(), revision.into());
    selector
}

/// The label selector string of one color at one revision (for `status.selector`).
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    kube::core::Selector::from_iter(selector.clone()).to_string()
}

fn owner(release: &BlueGreenRelease) -> OwnerReference {
    release
        .controller_owner_ref(&())
        .expect("a stored release has a name and uid")
}

fn release_label(release: &BlueGreenRelease) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::RELEASE.to_string(), release.name_any())])
}

/// The ReplicaSet of `color` running the spec's template at `replicas`.
pub fn replica_set(
    release: &BlueGreenRelease,
    color: Color,
    revision: &str,
    version: &str,
    replicas: i32,
) -> ReplicaSet {
    let pod_labels = color_labels(release, color, revision);
    let mut template = release.spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .extend(pod_labels.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(replica_set_name(release, color)),
            namespace: release.namespace(),
            labels: Some(pod_labels.clone()),
            annotations: Some(BTreeMap::from([(
                VERSION_ANNOTATION.to_string(),
                version.to_string(),
            )])),
            owner_references: Some(vec![owner(release)]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: Some(release.spec.min_ready_seconds),
            selector: LabelSelector {
                match_labels: Some(pod_labels),
                match_expressions: None,
            },
            template: Some(template),
        }),
        status: None,
    }
}

fn service_ports(release: &BlueGreenRelease, fallback: &[ServicePort]) -> Vec<ServicePort> {
    if release.spec.service.ports.is_empty() {
        return fallback.to_vec();
    }
    release
        .spec
        .service
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            target_port: p.target_port.clone(),
            protocol: Some(
                match p.protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP",
                    Protocol::Sctp => "SCTP",
                }
                .into(),
            ),
            ..Default::default()
        })
        .collect()
}

/// The preview Service, created and owned by the controller, selecting one color+revision.
/// Without `spec.service.ports` it copies the active Service's ports (`fallback_ports`).
pub fn preview_service(
    release: &BlueGreenRelease,
    color: Color,
    revision: &str,
    fallback_ports: &[ServicePort],
) -> Service {
    let mut service_labels = release_label(release);
    service_labels.insert(labels::SERVICE_ROLE.into(), "preview".into());
    Service {
        metadata: ObjectMeta {
            name: Some(release.preview_service_name()),
            namespace: release.namespace(),
            labels: Some(service_labels),
            owner_references: Some(vec![owner(release)]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(color_labels(release, color, revision)),
            ports: Some(service_ports(release, fallback_ports)),
            ..Default::default()
        }),
        status: None,
    }
}

/// The active Service selecting one color+revision.
///
/// `adopted`: the Service existed before the controller (its selector as it is now); only
/// its selector and the release label are applied, so no other field of the user's Service
/// is touched. A Service's selector is an atomic map (`+mapType=atomic`): an apply owns and
/// replaces it whole, so the user's own keys are applied with ours, unchanged. Otherwise
/// the controller created it from `spec.service.ports` and applies it whole (applying fewer
/// fields than before would make server-side apply remove the missing ones).
pub fn active_service(
    release: &BlueGreenRelease,
    color: Color,
    revision: &str,
    adopted: Option<&BTreeMap<String, String>>,
) -> Service {
    let mut selector = BTreeMap::new();
    selector.insert(labels::COLOR.to_string(), color.as_str().to_string());
    selector.insert(labels::REVISION.to_string(), revision.to_string());
    let mut service_labels = release_label(release);
    let (ports, owner_references) = if let Some(existing) = adopted {
        for (key, value) in existing {
            if !key.starts_with(labels::PREFIX) {
                selector.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        (None, None)
    } else {
        service_labels.insert(labels::SERVICE_ROLE.into(), "active".into());
        selector.extend(color_labels(release, color, revision));
        (
            Some(service_ports(release, &[])),
            Some(vec![owner(release)]),
        )
    };
    Service {
        metadata: ObjectMeta {
            name: Some(release.spec.service.name.clone()),
            namespace: release.namespace(),
            labels: Some(service_labels),
            owner_references,
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports,
            ..Default::default()
        }),
        status: None,
    }
}

/// URL of the preview Service as seen from a pod in the cluster.
pub fn preview_url(release: &BlueGreenRelease, ports: &[ServicePort]) -> String {
    let host = format!(
        "{}.{}.svc",
        release.preview_service_name(),
        release.namespace().unwrap_or_default()
    );
    match ports.first().map(|p| p.port) {
        Some(80) | None => format!("http://{host}"),
        Some(port) => format!("http://{host}:{port}"),
    }
}

/// What a smoke-test Job needs to know about the rollout it tests.
pub struct JobContext<'a> {
    pub revision: &'a str,
    pub version: &'a str,
    pub color: Color,
    /// The rollout's identity (its start time), stamped on the Job.
    pub rollout: &'a str,
    pub preview_url: &'a str,
}

/// The Job of one smoke test, with the preview's coordinates injected into every container.
pub fn smoke_test_job(release: &BlueGreenRelease, test: &SmokeTest, ctx: &JobContext<'_>) -> Job {
    let mut job_labels = release_label(release);
    job_labels.insert(labels::SMOKE_TEST.into(), test.name.clone());
    job_labels.insert(labels::REVISION.into(), ctx.revision.into());
    let env = [
        ("BLUEGREEN_PREVIEW_URL", ctx.preview_url),
        ("BLUEGREEN_RELEASE", &release.name_any()),
        ("BLUEGREEN_VERSION", ctx.version),
        ("BLUEGREEN_COLOR", ctx.color.as_str()),
    ]
    .map(|(name, value)| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    });

    let mut template: PodTemplateSpec = test.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(Default::default)
        .extend(job_labels.clone());
    let pod_spec = template.spec.get_or_insert_with(Default::default);
    pod_spec
        .restart_policy
        .get_or_insert_with(|| "Never".into());
    for container in pod_spec
        .containers
        .iter_mut()
        .chain(pod_spec.init_containers.iter_mut().flatten())
    {
        let vars = container.env.get_or_insert_with(Vec::new);
        vars.retain(|v| !env.iter().any(|e| e.name == v.name));
        vars.extend(env.iter().cloned());
    }
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(release, &test.name, ctx.revision)),
            namespace: release.namespace(),
            labels: Some(job_labels),
            annotations: Some(BTreeMap::from([(
                ROLLOUT_ANNOTATION.to_string(),
                ctx.rollout.to_string(),
            )])),
            owner_references: Some(vec![owner(release)]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            template,
            backoff_limit: Some(test.backoff_limit),
            active_deadline_seconds: Some(i64::from(test.timeout_seconds)),
            ..Default::default()
        }),
        status: None,
    }
}
