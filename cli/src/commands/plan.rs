//! What an action will do, said before it is sent, from the release as last seen. The
//! controller decides; this only predicts, and says so when it expects a refusal.

use bluegreen_crd::{BlueGreenRelease, Phase};

use crate::view::status_text::short;

/// The four verbs of the annotation protocol (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Promote,
    Abort,
    Retry,
    Rollback,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Promote => "promote",
            Verb::Abort => "abort",
            Verb::Retry => "retry",
            Verb::Rollback => "rollback",
        }
    }
}

/// One sentence: what will happen, or why the controller will likely refuse.
pub fn describe(verb: Verb, release: &BlueGreenRelease) -> String {
    let name = release.metadata.name.as_deref().unwrap_or_default();
    let status = release.status.clone().unwrap_or_default();
    let phase = status.phase.map_or("Pending", |p| p.as_str());
    let active = match (&status.active_color, &status.active_version) {
        (Some(c), Some(v)) => format!("{c} (version {v})"),
        _ => "nothing".to_string(),
    };
    let unlikely = |why: String| {
        format!(
            "{verb} {name}: {why}; the controller will most likely refuse it",
            verb = verb.as_str()
        )
    };
    if release.spec.paused {
        return unlikely("the release is paused (spec.paused)".into());
    }
    let rollout = status.rollout.as_ref();
    let verifying = rollout.filter(|r| r.stage.is_flipped());
    let standby = status
        .standby
        .as_ref()
        .map_or("the previous color".to_string(), |s| {
            format!("{} (version {})", s.color, s.version)
        });
    match (verb, verifying) {
        (Verb::Promote, Some(r)) => {
            return format!(
                "promote {name}: the verification of version {} on {} ends as passed (recorded as a manual override); the scale-down delay of {standby} starts then",
                r.version, r.color
            );
        }
        (Verb::Abort | Verb::Rollback, Some(r)) => {
            return format!(
                "{} {name}: version {} is taken back during its verification: the active Service moves from {} back to the warm {standby} in one write, and revision {} is not deployed again until the spec changes or a retry",
                verb.as_str(),
                r.version,
                r.color,
                short(&r.revision)
            );
        }
        _ => {}
    }
    match verb {
        Verb::Promote => {
            match rollout.filter(|r| r.stage.tests_passed_at().is_some() && !r.is_rollback()) {
                Some(r) => format!(
                    "promote {name}: the active Service moves from {active} to {} (version {}) in one write; {active} stays warm for {}s",
                    r.color, r.version, release.spec.scale_down_delay_seconds
                ),
                None => unlikely(format!("nothing awaits promotion (phase {phase})")),
            }
        }
        Verb::Abort => match rollout {
            Some(r) => format!(
                "abort {name}: the rollout of version {} on {} stops, its pods are scaled to 0 and its smoke tests cancelled; the active Service stays on {active}",
                r.version, r.color
            ),
            None => unlikely(format!("no rollout is in progress (phase {phase})")),
        },
        Verb::Retry => match (&status.blocked_revision, rollout) {
            (Some(revision), None) => {
                let version = status
                    .history
                    .iter()
                    .find(|h| h.revision == *revision)
                    .map(|h| format!("version {}, ", h.version))
                    .unwrap_or_default();
                format!(
                    "retry {name}: revision {} ({version}phase {phase}) is deployed again on the cold color, then tested and promoted as the spec says; the active Service stays on {active} until then",
                    short(revision)
                )
            }
            (_, Some(_)) => unlikely("a rollout is in progress".into()),
            (None, None) => unlikely(format!("nothing is blocked to retry (phase {phase})")),
        },
        Verb::Rollback => match (&status.standby, rollout) {
            (Some(standby), None) => format!(
                "rollback {name}: the active Service moves from {active} back to the warm {} (version {}) without a redeploy; the release then stays RolledBack until the spec changes or a retry",
                standby.color, standby.version
            ),
            (_, Some(_)) => unlikely(
                "a rollout is in progress (use abort to stop it; the active color is untouched)"
                    .into(),
            ),
            (None, None) => unlikely("there is no previous color to roll back to".into()),
        },
    }
}

/// True when `phase` shows that a retried revision is on its way (or done).
pub fn moved_on(phase: Option<Phase>) -> bool {
    !matches!(phase, Some(Phase::Failed | Phase::RolledBack))
}
