//! What `status` shows, gathered from the release, its ReplicaSets and its Events at one
//! instant. Pure: the same inputs and `now` give the same view, so the text rendering can be
//! tested against golden output.

use bluegreen_crd::{
    AnalysisStatus, BlueGreenRelease, Color, ConditionType, LastAction, Phase, PromotionMode,
    RolloutStage, SmokeTestPhase,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::{apps::v1::ReplicaSet, events::v1::Event};
use serde::Serialize;

/// How many Events the view keeps (the newest).
pub const EVENTS_SHOWN: usize = 5;

/// What a CI gate makes of the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Ready=True for the current spec generation.
    Ready,
    /// Failed, RolledBack or Stalled for the current spec generation.
    Failed,
    /// Anything else: the controller is still working (or has not seen the spec yet).
    InProgress,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    pub name: String,
    pub namespace: String,
    pub generation: i64,
    pub observed_generation: Option<i64>,
    pub phase: Option<Phase>,
    pub message: Option<String>,
    pub verdict: Verdict,
    pub active: Option<ColorVersion>,
    pub preview: Option<ColorVersion>,
    pub standby: Option<StandbyView>,
    pub progress: Option<Progress>,
    pub smoke_tests: Vec<TestView>,
    /// The analysis of the current (or last) analysed stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,
    pub conditions: Vec<ConditionView>,
    pub last_action: Option<LastAction>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColorVersion {
    pub color: Color,
    pub version: String,
    pub revision: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StandbyView {
    pub color: Color,
    pub version: String,
    pub revision: String,
    /// Seconds until it goes to `standbyReplicas` (negative: overdue); `None` once done.
    pub scales_down_in_seconds: Option<i64>,
    pub scaled_down_at: Option<Timestamp>,
}

/// Pods of the color the controller is working on: the rollout's, else the active one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub color: Color,
    pub ready: i32,
    pub available: i32,
    pub wanted: i32,
    /// Seconds left before the progress deadline fails the rollout (Deploying only).
    pub deadline_in_seconds: Option<i64>,
    /// Seconds left before an Auto promotion (`autoPromoteAfterSeconds`).
    pub promotes_in_seconds: Option<i64>,
    /// Manual mode: tests passed, waiting for `kubectl bluegreen promote`.
    pub awaiting_promotion: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestView {
    pub name: String,
    pub phase: SmokeTestPhase,
    /// Run time so far (running) or in all (finished).
    pub seconds: Option<i64>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Timestamp,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub at: Timestamp,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub note: String,
    pub count: i32,
}

impl StatusView {
    pub fn new(
        release: &BlueGreenRelease,
        replica_sets: &[ReplicaSet],
        events: &[Event],
        now: Timestamp,
    ) -> StatusView {
        let status = release.status.clone().unwrap_or_default();
        let spec = &release.spec;
        let name = release.metadata.name.clone().unwrap_or_default();
        let generation = release.metadata.generation.unwrap_or(0);
        let observed = status.observed_generation == Some(generation);
        let condition_true =
            |t: ConditionType| status.condition(t).is_some_and(|c| c.status == "True");
        let verdict = if !observed {
            Verdict::InProgress
        } else if condition_true(ConditionType::Ready) {
            Verdict::Ready
        } else if matches!(status.phase, Some(Phase::Failed | Phase::RolledBack))
            || condition_true(ConditionType::Stalled)
        {
            Verdict::Failed
        } else {
            Verdict::InProgress
        };
        let pair = |color: Option<Color>, version: &Option<String>, revision: &Option<String>| {
            Some(ColorVersion {
                color: color?,
                version: version.clone().unwrap_or_default(),
                revision: revision.clone().unwrap_or_default(),
            })
        };
        let since = |t: Timestamp| now.duration_since(t).as_secs();
        let standby = status.standby.as_ref().map(|s| StandbyView {
            color: s.color,
            version: s.version.clone(),
            revision: s.revision.clone(),
            scales_down_in_seconds: s
                .scaled_down_at
                .is_none()
                .then(|| i64::from(spec.scale_down_delay_seconds) - since(s.since.0)),
            scaled_down_at: s.scaled_down_at.as_ref().map(|t| t.0),
        });

        let rollout = status.rollout.as_ref();
        let progress_color = rollout.map(|r| r.color).or(status.active_color);
        let progress = progress_color.and_then(|color| {
            let rs = replica_sets
                .iter()
                .find(|rs| rs.metadata.name.as_deref() == Some(&format!("{name}-{color}")))?;
            let rs_status = rs.status.clone().unwrap_or_default();
            let deploying = rollout.is_some_and(|r| r.stage == RolloutStage::Deploying);
            let passed = rollout.and_then(|r| r.stage.tests_passed_at());
            let auto = spec.promotion.mode == PromotionMode::Auto;
            Some(Progress {
                color,
                ready: rs_status.ready_replicas.unwrap_or(0),
                available: rs_status.available_replicas.unwrap_or(0),
                wanted: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                deadline_in_seconds: rollout.filter(|_| deploying).map(|r| {
                    i64::from(spec.progress_deadline_seconds) - since(r.progressing_since.0)
                }),
                promotes_in_seconds: passed
                    .filter(|_| auto && spec.promotion.auto_promote_after_seconds > 0)
                    .map(|t| i64::from(spec.promotion.auto_promote_after_seconds) - since(t.0)),
                awaiting_promotion: status.phase == Some(Phase::AwaitingPromotion),
            })
        });

        let smoke_tests = status
            .smoke_tests
            .iter()
            .map(|t| TestView {
                name: t.name.clone(),
                phase: t.phase,
                seconds: t.started_at.as_ref().map(|start| {
                    let end = t.finished_at.as_ref().map_or(now, |f| f.0);
                    end.duration_since(start.0).as_secs()
                }),
                message: t.message.clone(),
            })
            .collect();
        let conditions = status
            .conditions
            .iter()
            .map(|c| ConditionView {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_transition_time: c.last_transition_time.0,
            })
            .collect();
        StatusView {
            namespace: release.metadata.namespace.clone().unwrap_or_default(),
            generation,
            observed_generation: status.observed_generation,
            phase: status.phase,
            message: status.message.clone(),
            verdict,
            active: pair(
                status.active_color,
                &status.active_version,
                &status.active_revision,
            ),
            preview: pair(
                status.preview_color,
                &status.preview_version,
                &status.preview_revision,
            ),
            standby,
            progress,
            smoke_tests,
            analysis: status.analysis.clone(),
            conditions,
            last_action: status.last_action.clone(),
            events: newest_events(&name, release.metadata.uid.as_deref(), events),
            name,
        }
    }

    /// The phase and what it waits for, in one line (the piped `--watch` log).
    pub fn summary(&self) -> String {
        let phase = self.phase.map_or("Pending", |p| p.as_str());
        match &self.message {
            Some(message) => format!("{phase}: {message}"),
            None => phase.to_string(),
        }
    }
}

/// The release's Events, oldest first, at most [`EVENTS_SHOWN`] of the newest. Events of an
/// earlier release of the same name (another uid) are not this one's.
fn newest_events(name: &str, uid: Option<&str>, events: &[Event]) -> Vec<EventView> {
    let mut views: Vec<EventView> = events
        .iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("BlueGreenRelease")
                    && r.name.as_deref() == Some(name)
                    && (uid.is_none() || r.uid.is_none() || r.uid.as_deref() == uid)
            })
        })
        .filter_map(|e| {
            let at = e
                .series
                .as_ref()
                .map(|s| s.last_observed_time.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.deprecated_last_timestamp.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
            Some(EventView {
                at,
                type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
                reason: e.reason.clone().unwrap_or_default(),
                note: e.note.clone().unwrap_or_default(),
                count: e.series.as_ref().map_or(1, |s| s.count),
            })
        })
        .collect();
    views.sort_by_key(|e| e.at);
    let skip = views.len().saturating_sub(EVENTS_SHOWN);
    views.drain(..skip);
    views
}

/// Seconds as a signed duration, for [`crate::duration::human`].
pub fn secs(seconds: i64) -> SignedDuration {
    SignedDuration::from_secs(seconds)
}
