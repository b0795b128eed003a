//! Analysis samples as observed world: which sample is due (pure, from the stored status),
//! and what one sample read. Reconcile takes a due sample from Prometheus before planning
//! (`crate::prometheus`), so the planner decides from readings, never from a network call.

use bluegreen_crd::{
    AnalysisPhase, AnalysisResult, BlueGreenRelease, RolloutStage, analysis::TemplateValues,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

/// One sample of a stage's checks, taken at `taken_at` (whole seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisSample {
    /// The rollout it was taken for (its id) and the stage's analysis.
    pub rollout: String,
    pub phase: AnalysisPhase,
    pub taken_at: Timestamp,
    /// One reading per check, by name.
    pub readings: Vec<(String, Reading)>,
}

/// What one query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// One series (or a scalar) with this value; NaN and infinities are judged by the
    /// planner (never a pass).
    Value(f64),
    /// No usable value, and why: no data, several series, an error, Prometheus unreachable.
    Inconclusive(String),
}

impl AnalysisSample {
    pub fn reading(&self, check: &str) -> Option<&Reading> {
        self.readings
            .iter()
            .find(|(name, _)| name == check)
            .map(|(_, r)| r)
    }
}

/// A sample to take now: where, and the queries with their template variables filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRequest {
    pub rollout: String,
    pub phase: AnalysisPhase,
    /// `spec.analysis.prometheus.address`; `None` takes the controller's default.
    pub address: Option<String>,
    /// `(check name, query)`, or the check's template error.
    pub queries: Vec<(String, Result<String, String>)>,
}

/// The sample due now, if any: the stored rollout is in an analysed stage whose start is
/// recorded (`status.analysis` of this rollout and stage, still running), and its last sample
/// is at least an interval old. Reading the stored status (not this reconcile's plan) means
/// a sample is only taken for a stage that is recorded, and never twice per interval.
pub fn sample_due(release: &BlueGreenRelease, now: Timestamp) -> Option<SampleRequest> {
    let analysis = release.spec.analysis.as_ref()?;
    let status = release.status.as_ref()?;
    if release.spec.paused {
        return None;
    }
    let rollout = status.rollout.as_ref()?;
    let phase = match rollout.stage {
        RolloutStage::Analyzing { .. } => AnalysisPhase::PrePromotion,
        RolloutStage::Verifying { .. } => AnalysisPhase::PostPromotion,
        _ => return None,
    };
    let checks = analysis.checks(phase)?;
    let record = status.analysis.as_ref()?;
    let id = rollout.id();
    if record.phase != phase || record.rollout != id || record.result != AnalysisResult::Running {
        return None;
    }
    if let Some(last) = &record.last_sample_at {
        let interval = i64::try_from(analysis.interval().as_secs()).unwrap_or(i64::MAX);
        if now.as_second() < last.0.as_second().saturating_add(interval) {
            return None;
        }
    }
    let namespace = release.namespace().unwrap_or_default();
    let name = release.name_any();
    let values = TemplateValues {
        color: rollout.color.as_str(),
        revision: &rollout.revision,
        version: &rollout.version,
        release: &name,
        namespace: &namespace,
    };
    Some(SampleRequest {
        rollout: id,
        phase,
        address: analysis.address().map(str::to_string),
        queries: checks
            .iter()
            .map(|c| (c.name.clone(), values.render(&c.query)))
            .collect(),
    })
}
