//! `spec.analysis` and `status.analysis`: Prometheus checks that gate the flip (pre-promotion,
//! on the cold color after its smoke tests) and watch the new active color after it
//! (post-promotion: phase `Verifying`, rolled back automatically when it fails).
//!
//! A *sample* is one evaluation of every check of a stage at one moment. It passes when every
//! check returned one finite value within its bounds, fails when any check returned a value
//! outside them, and is otherwise *inconclusive* (no data, several series, NaN, an error, an
//! unreachable Prometheus): never a pass.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration as Prometheus and Argo Rollouts write it: `15s`, `5m`, `1h30m`, `500ms`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Most checks per stage (each is one query per sample).
pub const MAX_CHECKS: usize = 10;

/// The template variables a query may use, each written `{{name}}`.
pub const TEMPLATE_VARIABLES: [&str; 5] = ["color", "revision", "version", "release", "namespace"];

/// Prometheus queries that gate and verify a release.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// Where to query; unset takes the controller's `--prometheus-address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
    /// Time between samples (`15s`, `1m`).
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub interval: String,
    /// Checks on the cold color after its smoke tests, before the flip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion: Option<PrePromotionAnalysis>,
    /// Checks on the new active color right after the flip (phase `Verifying`); a failure
    /// flips back to the previous color, which stays at full size meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion: Option<PostPromotionAnalysis>,
}

/// The Prometheus server to query.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^http://[^\s/]+(/\S*)?$"))]
    pub address: Option<String>,
}

/// The gate before the flip.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrePromotionAnalysis {
    /// Consecutive passing samples needed before the flip.
    #[serde(default = "default_samples")]
    #[schemars(range(min = 1, max = 100))]
    pub samples: i32,
    #[schemars(length(min = 1, max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub checks: Vec<AnalysisCheck>,
}

/// The watch after the flip.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PostPromotionAnalysis {
    /// How long to watch the new active color (`5m`).
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"))]
    pub duration: String,
    /// Failed samples tolerated; one more rolls back.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_limit: i32,
    #[schemars(length(min = 1, max = 10))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub checks: Vec<AnalysisCheck>,
}

/// One PromQL query and its bounds. The query must return a single series (an instant
/// vector of one element, or a scalar).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.min) || has(self.max)").message("an analysis check needs min, max or both"))]
pub struct AnalysisCheck {
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// PromQL; `{{color}}`, `{{revision}}`, `{{version}}`, `{{release}}` and `{{namespace}}`
    /// are replaced before it is sent.
    #[schemars(length(min = 1, max = 4096))]
    pub query: String,
    /// The sample passes only when the value is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The sample passes only when the value is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

fn default_interval() -> String {
    "15s".into()
}

fn default_samples() -> i32 {
    4
}

impl AnalysisCheck {
    /// Whether a value is within the bounds.
    pub fn admits(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }

    /// The bounds as a person reads them: `<= 0.01`, `>= 0.9`, `in [1, 5]`.
    pub fn bounds(&self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("in [{min}, {max}]"),
            (Some(min), None) => format!(">= {min}"),
            (None, Some(max)) => format!("<= {max}"),
            (None, None) => "unbounded".into(),
        }
    }
}

/// The values substituted into a query's template variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateValues<'a> {
    pub color: &'a str,
    pub revision: &'a str,
    pub version: &'a str,
    pub release: &'a str,
    pub namespace: &'a str,
}

impl TemplateValues<'_> {
    /// Sample values for validating a query before any rollout exists.
    pub const EXAMPLE: TemplateValues<'static> = TemplateValues {
        color: "blue",
        revision: "0123456789abcdef",
        version: "1.0.0",
        release: "web",
        namespace: "default",
    };

    /// The query with every `{{name}}` replaced; an unknown `{{name}}` is an error.
    pub fn render(&self, query: &str) -> Result<String, String> {
        let mut out = String::with_capacity(query.len());
        let mut rest = query;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| "an opening '{{' has no closing '}}'".to_string())?;
            let value = match after[..end].trim() {
                "color" => self.color,
                "revision" => self.revision,
                "version" => self.version,
                "release" => self.release,
                "namespace" => self.namespace,
                other => {
                    return Err(format!(
                        "unknown template variable '{{{{{other}}}}}'; use one of {}",
                        TEMPLATE_VARIABLES
                            .map(|v| format!("{{{{{v}}}}}"))
                            .join(", ")
                    ));
                }
            };
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Parses a duration written as [`DURATION_PATTERN`] allows.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("'{text}' is not a duration like 15s, 5m, 1h30m or 500ms");
    if text.is_empty() {
        return Err(invalid());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let (unit, millis) = if rest.starts_with("ms") {
            ("ms", 1)
        } else if rest.starts_with('s') {
            ("s", 1_000)
        } else if rest.starts_with('m') {
            ("m", 60_000)
        } else if rest.starts_with('h') {
            ("h", 3_600_000)
        } else {
            return Err(invalid());
        };
        rest = &rest[unit.len()..];
        let part = number.checked_mul(millis).ok_or_else(invalid)?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or_else(invalid)?;
    }
    Ok(total)
}

impl AnalysisSpec {
    /// Time between samples; at least a second (timers are kept at second precision).
    pub fn interval(&self) -> Duration {
        parse_duration(&self.interval)
            .unwrap_or(Duration::from_secs(15))
            .max(Duration::from_secs(1))
    }

    /// The checks of a stage, when the spec has that stage.
    pub fn checks(&self, phase: AnalysisPhase) -> Option<&[AnalysisCheck]> {
        match phase {
            AnalysisPhase::PrePromotion => self.pre_promotion.as_ref().map(|p| &p.checks[..]),
            AnalysisPhase::PostPromotion => self.post_promotion.as_ref().map(|p| &p.checks[..]),
        }
        .filter(|checks| !checks.is_empty())
    }

    pub fn address(&self) -> Option<&str> {
        self.prometheus.as_ref()?.address.as_deref()
    }
}

impl PostPromotionAnalysis {
    /// The verification window, whole seconds (at least one).
    pub fn window_seconds(&self) -> i32 {
        parse_duration(&self.duration)
            .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))
            .unwrap_or(0)
            .max(1)
    }
}

/// The two places analysis runs.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "PascalCase")]
pub enum AnalysisPhase {
    /// On the cold color, after its smoke tests, before the flip.
    PrePromotion,
    /// On the new active color, after the flip (phase `Verifying`).
    PostPromotion,
}

/// What the analysis of a stage came to.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub enum AnalysisResult {
    /// Sampling goes on.
    Running,
    Passed,
    Failed,
    /// Ended as passed by a `promote` action.
    Overridden,
}

/// `status.analysis`: the samples of the analysis of the current (or last) rollout stage.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    pub phase: AnalysisPhase,
    /// The rollout these samples belong to (its id, as stamped on its Jobs).
    pub rollout: String,
    pub revision: String,
    pub started_at: Time,
    pub result: AnalysisResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_at: Option<Time>,
    /// Samples taken: every check evaluated once.
    #[serde(default)]
    pub samples: i32,
    #[serde(default)]
    pub passed: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    /// Passing samples in a row (pre-promotion needs `samples` of them).
    #[serde(default)]
    pub consecutive_passed: i32,
    /// Inconclusive samples in a row (after the flip, more than `failureLimit + 1` fail).
    #[serde(default)]
    pub consecutive_inconclusive: i32,
    /// What the last sample said, or how the analysis ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub checks: Vec<CheckStatus>,
}

/// One check's record in `status.analysis.checks`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub name: String,
    /// The last value returned (absent when the last sample of it was inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    #[serde(default)]
    pub passed: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub inconclusive: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample_at: Option<Time>,
    /// Why the last sample of it was inconclusive or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl AnalysisStatus {
    /// A fresh record for the analysis of a stage of a rollout.
    pub fn start(phase: AnalysisPhase, rollout: String, revision: String, now: Time) -> Self {
        AnalysisStatus {
            phase,
            rollout,
            revision,
            started_at: now,
            result: AnalysisResult::Running,
            last_sample_at: None,
            samples: 0,
            passed: 0,
            failed: 0,
            inconclusive: 0,
            consecutive_passed: 0,
            consecutive_inconclusive: 0,
            message: None,
            checks: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus_writes_them() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "15", "s", "1d", "1.5s", "-1s", "15 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_substitute_every_variable_and_refuse_unknown_ones() {
        let values = TemplateValues {
            color: "green",
            revision: "abc",
            version: "1.2.3",
            release: "web",
            namespace: "shop",
        };
        assert_eq!(
            values.render(r#"up{color="{{color}}",rev="{{ revision }}",v="{{version}}",r="{{release}}",ns="{{namespace}}"}"#),
            Ok(r#"up{color="green",rev="abc",v="1.2.3",r="web",ns="shop"}"#.to_string())
        );
        assert!(
            values
                .render("up{x=\"{{colour}}\"}")
                .unwrap_err()
                .contains("{{colour}}")
        );
        assert!(values.render("up{x=\"{{color\"}").is_err());
    }

    #[test]
    fn bounds_admit_values_inclusively() {
        let check = AnalysisCheck {
            name: "error-rate".into(),
            query: "x".into(),
            min: None,
            max: Some(0.01),
        };
        assert!(check.admits(0.01));
        assert!(check.admits(0.0));
        assert!(!check.admits(0.05));
        assert_eq!(check.bounds(), "<= 0.01");
    }
}
