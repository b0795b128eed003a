//! `BlueGreenRelease.spec`: what the user wants live (DESIGN §2).
//!
//! Defaults live in the schema (`#[serde(default = ...)]` becomes an OpenAPI `default`), so the
//! API server fills them in and `kubectl get -o yaml` shows what the controller will do. Rules
//! the API server can check are CEL `x-kubernetes-validations`; the controller repeats them in
//! [`crate::validate`] because a spec may arrive through a server without CEL.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::PodTemplateSpec, apimachinery::pkg::util::intstr::IntOrString};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::BlueGreenReleaseStatus;

/// A blue-green release of one application: the version you want live, and how to prove it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "bluegreen.dev",
    version = "v1alpha1",
    kind = "BlueGreenRelease",
    plural = "bluegreenreleases",
    singular = "bluegreenrelease",
    namespaced,
    status = "BlueGreenReleaseStatus",
    derive = "PartialEq",
    shortname = "bgrelease",
    shortname = "bgr",
    category = "bluegreen",
    doc = "A blue-green release: the controller stands spec.template up on the cold color, \
           smoke-tests it through the preview Service, flips the active Service, and keeps the \
           previous color warm for an instant rollback.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.activeColor", description = "Color receiving traffic"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.activeVersion", description = "Version receiving traffic"),
    printcolumn(name = "Preview", type_ = "string", json_path = ".status.previewVersion", description = "Version on the cold color"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase", description = "Release phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status", description = "Ready condition"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Message", type_ = "string", json_path = ".status.message", priority = 1, description = "What the controller is doing or waiting for"),
    validation = Rule::new("size(self.metadata.name) <= 55").message("metadata.name must be at most 55 characters: the controller derives '<name>-preview', '<name>-green' and Job names from it"),
    validation = Rule::new("!has(self.spec.smokeTests) || self.spec.smokeTests.all(t, size(self.metadata.name) + size(t.name) <= 53)").message("metadata.name plus a smoke test name must be at most 53 characters: the Job is named '<release>-<test>-<revision[:8]>' and Job names are limited to 63"),
    validation = Rule::new("has(self.spec.service.previewName) || self.spec.service.name != self.metadata.name + '-preview'").message("spec.service.name must differ from the default preview Service name '<release>-preview'; set spec.service.previewName"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.template.metadata) && has(self.template.metadata.labels) && size(self.template.metadata.labels) > 0").message("spec.template.metadata.labels must not be empty: the selector and both Services match pods by them").field_path(".template.metadata.labels"),
    validation = Rule::new("has(self.template.spec) && size(self.template.spec.containers) > 0").message("spec.template.spec.containers must list at least one container").field_path(".template.spec.containers"),
    validation = Rule::new("!has(self.template.metadata) || !has(self.template.metadata.labels) || self.template.metadata.labels.all(k, !k.startsWith('bluegreen.dev/'))").message("spec.template.metadata.labels must not use the reserved prefix 'bluegreen.dev/'").field_path(".template.metadata.labels"),
    validation = Rule::new("!has(self.selector) || self.selector.matchLabels.all(k, !k.startsWith('bluegreen.dev/'))").message("spec.selector.matchLabels must not use the reserved prefix 'bluegreen.dev/'").field_path(".selector.matchLabels"),
    validation = Rule::new("!has(self.selector) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])").message("spec.selector.matchLabels must match spec.template.metadata.labels").field_path(".selector.matchLabels"),
    validation = Rule::new("self.standbyReplicas <= self.replicas").message("spec.standbyReplicas must not exceed spec.replicas").field_path(".standbyReplicas"),
)]
pub struct BlueGreenReleaseSpec {
    /// Pod template of the application, as in a Deployment.
    pub template: PodTemplateSpec,

    /// Pods per color while it serves traffic. A change is a scale, never a release.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Label selector shared by both colors; defaults to the labels of `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SelectorSpec>,

    /// Human-facing version shown everywhere; defaults to the tag of the first container's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub version: Option<String>,

    /// The active Service (created if missing) and the preview Service.
    pub service: ServiceSpec,

    /// Size of the cold color while it is tested; defaults to `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub preview_replicas: Option<i32>,

    /// Seconds a new pod must be ready before it counts as available.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,

    /// A cold color not available within this many seconds fails the release.
    #[serde(default = "default_progress_deadline_seconds")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,

    /// Jobs run against the preview Service; all must succeed before the flip.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.name == t.name))").message("spec.smokeTests names must be unique"))]
    pub smoke_tests: Vec<SmokeTest>,

    /// Rerun smoke tests when rolling back to a revision that already passed them.
    #[serde(default)]
    pub retest_on_rollback: bool,

    /// When the flip happens once tests pass.
    #[serde(default)]
    pub promotion: Promotion,

    /// How long the previous color stays at full size after a flip (instant-rollback window).
    #[serde(default = "default_scale_down_delay_seconds")]
    #[schemars(range(min = 0))]
    pub scale_down_delay_seconds: i32,

    /// Size the previous color keeps after the scale-down delay.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub standby_replicas: i32,

    /// Entries kept in `status.history`.
    #[serde(default = "default_revision_history_limit")]
    #[schemars(range(min = 1, max = 100))]
    pub revision_history_limit: i32,

    /// Stop acting; observe only.
    #[serde(default)]
    pub paused: bool,

    /// Prometheus checks before the flip (a gate) and after it (verification, rolled back
    /// automatically when it fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::AnalysisSpec>,
}

/// Equality-based selector: Services select by equality only, so set-based expressions
/// would be meaningless here.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SelectorSpec {
    /// Labels every pod of the application carries; must be a subset of the template labels.
    #[schemars(schema_with = "match_labels_schema")]
    pub match_labels: BTreeMap<String, String>,
}

/// Most labels a selector may have.
pub const MAX_SELECTOR_LABELS: usize = 16;
/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: usize = 63;

/// Schema of `selector.matchLabels`: non-empty, and bounded.
///
/// The bounds are what keeps the CEL rule comparing each entry with the template labels inside
/// the API server's cost budget: unbounded, it is estimated at ~10^11 (393,215 possible
/// entries, each a comparison of strings up to 3 MiB) and the API server refuses the whole CRD.
/// 63 is Kubernetes' own limit on a label value, so no valid selector is lost.
fn match_labels_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": MAX_SELECTOR_LABELS,
        "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE}
    })
}

/// The Services in front of the two colors.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.previewName) || self.previewName != self.name").message("spec.service.previewName must differ from spec.service.name").field_path(".previewName"))]
pub struct ServiceSpec {
    /// The active Service. Created from `ports` if missing; otherwise only its selector keys
    /// `bluegreen.dev/color` and `bluegreen.dev/revision` are managed.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Service that always points at the cold color; defaults to `<release>-preview`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub preview_name: Option<String>,

    /// Ports of the Services the controller creates.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["port", "protocol"]))]
    pub ports: Vec<ServicePortSpec>,
}

/// A port of a Service the controller creates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortSpec {
    /// Port name; required by Kubernetes when there is more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Port the Service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Container port (number or name); defaults to `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    /// TCP, UDP or SCTP.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
}

/// Transport protocol of a Service port.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

/// A smoke test: a Job run against the preview Service; it must succeed before the flip.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SmokeTest {
    /// Test name, part of the Job name.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Pod template of the test Job. `BLUEGREEN_PREVIEW_URL`, `BLUEGREEN_RELEASE`,
    /// `BLUEGREEN_VERSION` and `BLUEGREEN_COLOR` are injected into every container.
    #[schemars(schema_with = "loose_pod_template_schema")]
    pub template: PodTemplateSpec,
    /// Seconds the test may run before it counts as failed.
    #[serde(default = "default_smoke_test_timeout_seconds")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: i32,
    /// Retries of the test pod before the Job fails.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: i32,
}

/// When and how the flip happens.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// `Auto` flips once tests pass; `Manual` waits for a `promote` action (annotation).
    #[serde(default)]
    pub mode: PromotionMode,
    /// Delay after tests pass before an `Auto` flip.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub auto_promote_after_seconds: i32,
}

/// Promotion mode.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PromotionMode {
    #[default]
    Auto,
    Manual,
}

/// Schema of a smoke test's pod template: containers are checked, the rest is kept as given.
///
/// A second fully typed PodTemplateSpec would double the CRD (past the 200 KiB budget of
/// DESIGN §8); the API server still validates the template in full when the Job is created,
/// and the controller reads it into the typed `PodTemplateSpec`.
fn loose_pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "required": ["spec"],
        "properties": {
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "required": ["containers"],
                "properties": {
                    "containers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "required": ["name", "image"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "image": {"type": "string", "minLength": 1}
                            }
                        }
                    },
                    "restartPolicy": {"type": "string", "enum": ["Never", "OnFailure"]}
                }
            }
        }
    })
}

fn default_replicas() -> i32 {
    1
}
fn default_progress_deadline_seconds() -> i32 {
    600
}
fn default_scale_down_delay_seconds() -> i32 {
    300
}
fn default_revision_history_limit() -> i32 {
    10
}
fn default_smoke_test_timeout_seconds() -> i32 {
    300
}
fn default_protocol() -> Protocol {
    Protocol::Tcp
}

impl BlueGreenReleaseSpec {
    /// Size of the cold color while it is tested.
    pub fn effective_preview_replicas(&self) -> i32 {
        self.preview_replicas.unwrap_or(self.replicas)
    }

    /// The selector both colors share: `spec.selector` or the template labels.
    pub fn effective_selector(&self) -> BTreeMap<String, String> {
        match &self.selector {
            Some(selector) => selector.match_labels.clone(),
            None => self.template_labels(),
        }
    }

    /// Labels of the application pod template.
    pub fn template_labels(&self) -> BTreeMap<String, String> {
        self.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }

    /// The version shown everywhere: `spec.version`, else the tag of the first image.
    pub fn effective_version(&self) -> String {
        if let Some(version) = &self.version {
            return version.clone();
        }
        let image = self
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        image_tag(&image).to_string()
    }
}

impl BlueGreenRelease {
    /// Name of the preview Service.
    pub fn preview_service_name(&self) -> String {
        self.spec.service.preview_name.clone().unwrap_or_else(|| {
            crate::names::default_preview_service(self.metadata.name.as_deref().unwrap_or_default())
        })
    }
}

/// The tag (or digest) of an image reference; `latest` when it has neither.
fn image_tag(image: &str) -> &str {
    if let Some((_, digest)) = image.split_once('@') {
        return digest;
    }
    // A ':' after the last '/' separates the tag; one before it is a registry port.
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => "latest",
    }
}

#[cfg(test)]
mod tests {
    use super::image_tag;

    #[test]
    fn image_tags() {
        assert_eq!(image_tag("nginx:1.27"), "1.27");
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("registry:5000/team/web"), "latest");
        assert_eq!(image_tag("registry:5000/team/web:abc123"), "abc123");
        assert_eq!(image_tag("web@sha256:deadbeef"), "sha256:deadbeef");
    }
}
