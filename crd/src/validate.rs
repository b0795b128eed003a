//! The controller's own check of a spec (DESIGN §2): the CRD's schema and CEL rules, repeated,
//! plus what only the controller can know (derived names).
//!
//! A spec may reach the controller without passing the schema (an older CRD, a server without
//! CEL), and an invalid spec must never touch traffic. Every problem names its field, so the
//! `Stalled/InvalidSpec` message tells a person exactly what to fix.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::analysis::{AnalysisCheck, AnalysisSpec, TemplateValues};
use crate::spec::{MAX_LABEL_VALUE, MAX_SELECTOR_LABELS};
use crate::{BlueGreenRelease, labels};

/// One problem with a spec, named by its field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the problems of a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid spec: {}", join(.0))]
pub struct InvalidSpec(pub Vec<FieldError>);

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

use crate::names::{MAX_NAME, MAX_RELEASE_NAME, MAX_RELEASE_PLUS_TEST};
const MAX_SMOKE_TESTS: usize = 16;
const MAX_SMOKE_TEST_NAME: usize = 40;
const MAX_PORTS: usize = 32;
/// Kubernetes' limit on a port name (an IANA service name).
const MAX_PORT_NAME: usize = 15;

/// Checks a release's spec; `Ok` means the controller may act on it.
pub fn validate(release: &BlueGreenRelease) -> Result<(), InvalidSpec> {
    let mut errors = Errors::default();
    let spec = &release.spec;
    let name = release.metadata.name.as_deref().unwrap_or_default();

    if name.len() > MAX_RELEASE_NAME {
        errors.push("metadata.name", format!("must be at most {MAX_RELEASE_NAME} characters (is {}): Service, ReplicaSet and Job names are derived from it", name.len()));
    }

    check_pod_template(&mut errors, "spec.template", &spec.template);
    let template_labels = spec.template_labels();
    if template_labels.is_empty() {
        errors.push(
            "spec.template.metadata.labels",
            "must not be empty: the selector and both Services match pods by them",
        );
    }
    for key in template_labels
        .keys()
        .filter(|k| k.starts_with(labels::PREFIX))
    {
        errors.push(
            "spec.template.metadata.labels",
            format!(
                "label '{key}' uses the reserved prefix '{}'",
                labels::PREFIX
            ),
        );
    }
    if let Some(selector) = &spec.selector {
        if selector.match_labels.is_empty() {
            errors.push("spec.selector.matchLabels", "must not be empty");
        }
        if selector.match_labels.len() > MAX_SELECTOR_LABELS {
            errors.push(
                "spec.selector.matchLabels",
                format!(
                    "at most {MAX_SELECTOR_LABELS} labels (has {})",
                    selector.match_labels.len()
                ),
            );
        }
        for (key, value) in &selector.match_labels {
            if value.len() > MAX_LABEL_VALUE {
                errors.push(
                    "spec.selector.matchLabels",
                    format!(
                        "the value of '{key}' must be at most {MAX_LABEL_VALUE} characters (is {})",
                        value.len()
                    ),
                );
            } else if key.starts_with(labels::PREFIX) {
                errors.push(
                    "spec.selector.matchLabels",
                    format!(
                        "label '{key}' uses the reserved prefix '{}'",
                        labels::PREFIX
                    ),
                );
            } else if template_labels.get(key) != Some(value) {
                errors.push(
                    "spec.selector.matchLabels",
                    format!("'{key}={value}' is not among spec.template.metadata.labels"),
                );
            }
        }
    }

    if spec.replicas < 1 {
        errors.push(
            "spec.replicas",
            format!("must be at least 1 (is {})", spec.replicas),
        );
    }
    if let Some(preview) = spec.preview_replicas
        && preview < 1
    {
        errors.push(
            "spec.previewReplicas",
            format!("must be at least 1 (is {preview})"),
        );
    }
    if spec.standby_replicas < 0 || spec.standby_replicas > spec.replicas {
        errors.push(
            "spec.standbyReplicas",
            format!(
                "must be between 0 and spec.replicas ({}) (is {})",
                spec.replicas, spec.standby_replicas
            ),
        );
    }
    errors.at_least("spec.minReadySeconds", spec.min_ready_seconds, 0);
    errors.at_least(
        "spec.progressDeadlineSeconds",
        spec.progress_deadline_seconds,
        1,
    );
    errors.at_least(
        "spec.scaleDownDelaySeconds",
        spec.scale_down_delay_seconds,
        0,
    );
    errors.at_least(
        "spec.promotion.autoPromoteAfterSeconds",
        spec.promotion.auto_promote_after_seconds,
        0,
    );
    if !(1..=100).contains(&spec.revision_history_limit) {
        errors.push(
            "spec.revisionHistoryLimit",
            format!(
                "must be between 1 and 100 (is {})",
                spec.revision_history_limit
            ),
        );
    }
    if let Some(version) = &spec.version
        && (version.is_empty() || version.len() > 128)
    {
        errors.push("spec.version", "must be 1 to 128 characters");
    }

    check_services(&mut errors, release);
    check_smoke_tests(&mut errors, release, name);
    if let Some(analysis) = &spec.analysis {
        check_analysis(&mut errors, analysis);
    }

    errors.finish()
}

fn check_services(errors: &mut Errors, release: &BlueGreenRelease) {
    let service = &release.spec.service;
    if !is_dns1035_label(&service.name) {
        errors.push("spec.service.name", format!("'{}' must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63)", service.name));
    }
    let preview = release.preview_service_name();
    if service.preview_name.is_some() {
        if !is_dns1035_label(&preview) {
            errors.push(
                "spec.service.previewName",
                format!("'{preview}' must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63)"),
            );
        }
        if preview == service.name {
            errors.push(
                "spec.service.previewName",
                format!("'{preview}' must differ from spec.service.name"),
            );
        }
    } else {
        // The preview name is derived from the release name; the fix is to name it explicitly.
        if !is_dns1035_label(&preview) {
            errors.push("metadata.name", format!("the preview Service name '{preview}' must be a DNS-1035 label; set spec.service.previewName"));
        }
        if preview == service.name {
            errors.push(
                "spec.service.name",
                format!("'{preview}' is the default preview Service name ('<release>-preview'); choose another name or set spec.service.previewName"),
            );
        }
    }
    if service.ports.len() > MAX_PORTS {
        errors.push(
            "spec.service.ports",
            format!("at most {MAX_PORTS} ports (has {})", service.ports.len()),
        );
    }
    let mut seen_ports = BTreeSet::new();
    let mut seen_names = BTreeSet::new();
    for (i, port) in service.ports.iter().enumerate() {
        let field = format!("spec.service.ports[{i}]");
        if !(1..=65535).contains(&port.port) {
            errors.push(
                format!("{field}.port"),
                format!("must be between 1 and 65535 (is {})", port.port),
            );
        }
        if !seen_ports.insert((port.port, port.protocol)) {
            errors.push(
                format!("{field}.port"),
                format!("port {} is listed twice", port.port),
            );
        }
        match &port.name {
            Some(name) if !is_dns1123_label(name) || name.len() > MAX_PORT_NAME => errors.push(
                format!("{field}.name"),
                format!(
                    "'{name}' must be at most {MAX_PORT_NAME} lowercase letters, digits and '-'"
                ),
            ),
            Some(name) if !seen_names.insert(name.clone()) => errors.push(
                format!("{field}.name"),
                format!("name '{name}' is listed twice"),
            ),
            None if service.ports.len() > 1 => errors.push(
                format!("{field}.name"),
                "is required when there is more than one port",
            ),
            _ => {}
        }
    }
}

fn check_smoke_tests(errors: &mut Errors, release: &BlueGreenRelease, release_name: &str) {
    let tests = &release.spec.smoke_tests;
    if tests.len() > MAX_SMOKE_TESTS {
        errors.push(
            "spec.smokeTests",
            format!("at most {MAX_SMOKE_TESTS} tests (has {})", tests.len()),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, test) in tests.iter().enumerate() {
        let field = format!("spec.smokeTests[{i}]");
        if !is_dns1123_label(&test.name) || test.name.len() > MAX_SMOKE_TEST_NAME {
            errors.push(
                format!("{field}.name"),
                format!(
                    "'{}' must be a DNS label (lowercase letters, digits and '-') of at most {MAX_SMOKE_TEST_NAME} characters",
                    test.name
                ),
            );
        }
        if !seen.insert(test.name.as_str()) {
            errors.push(
                format!("{field}.name"),
                format!(
                    "'{}' is listed twice; smoke test names must be unique",
                    test.name
                ),
            );
        }
        if release_name.len() + test.name.len() > MAX_RELEASE_PLUS_TEST {
            errors.push(format!("{field}.name"), format!("release name plus test name must be at most {MAX_RELEASE_PLUS_TEST} characters: the Job is named '<release>-<test>-<revision[:8]>'"));
        }
        if test.timeout_seconds < 1 {
            errors.push(
                format!("{field}.timeoutSeconds"),
                format!("must be at least 1 (is {})", test.timeout_seconds),
            );
        }
        if !(0..=10).contains(&test.backoff_limit) {
            errors.push(
                format!("{field}.backoffLimit"),
                format!("must be between 0 and 10 (is {})", test.backoff_limit),
            );
        }
        check_pod_template(errors, &format!("{field}.template"), &test.template);
        if let Some(policy) = test
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            && policy == "Always"
        {
            errors.push(
                format!("{field}.template.spec.restartPolicy"),
                "a Job's pods must use Never or OnFailure",
            );
        }
    }
}

/// Every check's query is parsed as PromQL with its template variables filled in, so that a
/// malformed query stops the release before anything is deployed.
fn check_analysis(errors: &mut Errors, analysis: &AnalysisSpec) {
    use crate::analysis::{DURATION_PATTERN, MAX_CHECKS, parse_duration};
    if let Err(message) = parse_duration(&analysis.interval) {
        errors.push(
            "spec.analysis.interval",
            format!("{message} ({DURATION_PATTERN})"),
        );
    } else if analysis.interval() > std::time::Duration::from_secs(3600) {
        errors.push("spec.analysis.interval", "must be at most 1h");
    }
    if let Some(address) = analysis.address()
        && !(address.starts_with("http://") && address.len() > "http://".len())
    {
        errors.push(
            "spec.analysis.prometheus.address",
            format!("'{address}' must be an http:// URL of the Prometheus server (https is not supported yet)"),
        );
    }
    if analysis.pre_promotion.is_none() && analysis.post_promotion.is_none() {
        errors.push(
            "spec.analysis",
            "set prePromotion, postPromotion or both (or remove spec.analysis)",
        );
    }
    if let Some(pre) = &analysis.pre_promotion {
        if !(1..=100).contains(&pre.samples) {
            errors.push(
                "spec.analysis.prePromotion.samples",
                format!("must be between 1 and 100 (is {})", pre.samples),
            );
        }
        check_analysis_checks(
            errors,
            "spec.analysis.prePromotion.checks",
            &pre.checks,
            MAX_CHECKS,
        );
    }
    if let Some(post) = &analysis.post_promotion {
        match parse_duration(&post.duration) {
            Err(message) => errors.push(
                "spec.analysis.postPromotion.duration",
                format!("{message} ({DURATION_PATTERN})"),
            ),
            Ok(d) if d.as_secs() < 1 => errors.push(
                "spec.analysis.postPromotion.duration",
                "must be at least 1s",
            ),
            Ok(_) => {}
        }
        if !(0..=100).contains(&post.failure_limit) {
            errors.push(
                "spec.analysis.postPromotion.failureLimit",
                format!("must be between 0 and 100 (is {})", post.failure_limit),
            );
        }
        check_analysis_checks(
            errors,
            "spec.analysis.postPromotion.checks",
            &post.checks,
            MAX_CHECKS,
        );
    }
}

fn check_analysis_checks(errors: &mut Errors, field: &str, checks: &[AnalysisCheck], max: usize) {
    if checks.is_empty() || checks.len() > max {
        errors.push(
            field,
            format!("must list 1 to {max} checks (has {})", checks.len()),
        );
    }
    let mut names = BTreeSet::new();
    for (i, check) in checks.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if !is_dns1123_label(&check.name) {
            errors.push(
                format!("{at}.name"),
                format!(
                    "'{}' must be a DNS label (lowercase letters, digits, '-')",
                    check.name
                ),
            );
        } else if !names.insert(check.name.as_str()) {
            errors.push(
                format!("{at}.name"),
                format!("'{}' is listed twice", check.name),
            );
        }
        let bounds = [check.min, check.max];
        match bounds {
            [None, None] => errors.push(
                at.clone(),
                format!("check '{}' needs min, max or both", check.name),
            ),
            [Some(min), Some(max)] if min > max => errors.push(
                format!("{at}.min"),
                format!(
                    "check '{}': min {min} is greater than max {max}",
                    check.name
                ),
            ),
            _ => {}
        }
        if bounds.iter().flatten().any(|b| !b.is_finite()) {
            errors.push(
                at.clone(),
                format!("check '{}': bounds must be finite numbers", check.name),
            );
        }
        let rendered = TemplateValues::EXAMPLE.render(&check.query);
        let parsed = rendered.and_then(|query| {
            promql_parser::parser::parse(&query)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        if let Err(problem) = parsed {
            errors.push(
                format!("{at}.query"),
                format!("check '{}' is not valid PromQL: {problem}", check.name),
            );
        }
    }
}

fn check_pod_template(errors: &mut Errors, field: &str, template: &PodTemplateSpec) {
    let containers = template
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    if containers.is_empty() {
        errors.push(
            format!("{field}.spec.containers"),
            "must list at least one container",
        );
    }
    for (i, container) in containers.iter().enumerate() {
        if container.image.as_deref().unwrap_or_default().is_empty() {
            errors.push(format!("{field}.spec.containers[{i}].image"), "must be set");
        }
    }
}

/// A DNS-1123 label: what Kubernetes requires of most object names.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1035 label: what Kubernetes requires of Service names (must start with a letter).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn at_least(&mut self, field: &str, value: i32, min: i32) {
        if value < min {
            self.push(field, format!("must be at least {min} (is {value})"));
        }
    }

    fn finish(self) -> Result<(), InvalidSpec> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(self.0))
        }
    }
}
