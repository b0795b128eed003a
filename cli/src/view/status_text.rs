//! The readable `status` view, in the style of `kubectl describe`.

use jiff::Timestamp;

use super::status::{StatusView, secs};
use crate::{duration::human, output};

const LABEL: usize = 13;

/// The view as text; `now` turns timestamps into ages.
pub fn render(view: &StatusView, now: Timestamp) -> String {
    let mut lines = Lines::default();
    lines.field("Name", &output::bold(&view.name));
    lines.field("Namespace", &view.namespace);
    let mut phase = output::phase(view.phase);
    if view.observed_generation != Some(view.generation) {
        phase.push_str(&output::dim(&format!(
            " (spec generation {} not yet observed by the controller)",
            view.generation
        )));
    }
    lines.field("Phase", &phase);
    if let Some(message) = &view.message {
        lines.field("Message", message);
    }
    let color_line = |c: &super::status::ColorVersion| {
        format!(
            "{}  version {}  {}",
            output::color(c.color),
            c.version,
            output::dim(&format!("revision {}", short(&c.revision)))
        )
    };
    lines.field(
        "Active",
        &view
            .active
            .as_ref()
            .map_or_else(|| "none yet".into(), color_line),
    );
    if let Some(preview) = &view.preview {
        lines.field("Preview", &color_line(preview));
    }
    if let Some(standby) = &view.standby {
        let when = match standby.scales_down_in_seconds {
            Some(left) if left > 0 => format!("warm, scales down in {}", human(secs(left))),
            Some(_) => "warm, scaling down".to_string(),
            None => "scaled down".to_string(),
        };
        lines.field(
            "Standby",
            &format!(
                "{}  version {}  ({when})",
                output::color(standby.color),
                standby.version
            ),
        );
    }
    if let Some(p) = &view.progress {
        let mut text = format!(
            "{} {}/{} pods ready, {} available",
            output::color(p.color),
            p.ready,
            p.wanted,
            p.available
        );
        if let Some(left) = p.deadline_in_seconds {
            text.push_str(&if left > 0 {
                format!(" · deadline in {}", human(secs(left)))
            } else {
                " · deadline passed".to_string()
            });
        }
        if let Some(left) = p.promotes_in_seconds.filter(|s| *s > 0) {
            text.push_str(&format!(" · promotes in {}", human(secs(left))));
        }
        if p.awaiting_promotion {
            text.push_str(&format!(
                " · awaiting `kubectl bluegreen promote {}`",
                view.name
            ));
        }
        lines.field("Progress", &text);
    }
    if !view.smoke_tests.is_empty() {
        let rows: Vec<Vec<String>> = view
            .smoke_tests
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    format!("{:?}", t.phase),
                    t.seconds.map_or_else(|| "-".into(), |s| human(secs(s))),
                ]
            })
            .collect();
        lines.block("Smoke tests", &output::table(&rows));
    }
    if let Some(a) = &view.analysis {
        let mut rows: Vec<Vec<String>> = vec![vec![
            format!("{} {:?}", a.phase, a.result),
            format!(
                "{} samples: {} passed, {} failed, {} inconclusive",
                a.samples, a.passed, a.failed, a.inconclusive
            ),
        ]];
        rows.extend(a.checks.iter().map(|c| {
            vec![
                c.name.clone(),
                format!(
                    "last {} ({} passed, {} failed, {} inconclusive)",
                    c.last_value.map_or_else(|| "-".into(), |v| v.to_string()),
                    c.passed,
                    c.failed,
                    c.inconclusive
                ),
            ]
        }));
        lines.block("Analysis", &output::table(&rows));
    }
    if !view.conditions.is_empty() {
        let rows: Vec<Vec<String>> = view
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    output::condition_status(&c.status),
                    c.reason.clone(),
                    human(now.duration_since(c.last_transition_time)),
                    c.message.clone(),
                ]
            })
            .collect();
        lines.block("Conditions", &output::table(&rows));
    }
    if let Some(a) = &view.last_action {
        lines.field(
            "Last action",
            &format!(
                "{} {} {} ago (id {}): {}",
                a.verb,
                output::result(a.result),
                human(now.duration_since(a.at.0)),
                a.id,
                a.message
            ),
        );
    }
    if view.events.is_empty() {
        lines.field("Events", "none");
    } else {
        let rows: Vec<Vec<String>> = view
            .events
            .iter()
            .map(|e| {
                let mut age = human(now.duration_since(e.at));
                if e.count > 1 {
                    age = format!("{age} (x{})", e.count);
                }
                vec![age, e.type_.clone(), e.reason.clone(), e.note.clone()]
            })
            .collect();
        lines.block("Events", &output::table(&rows));
    }
    lines.0
}

/// A revision hash as people quote it.
pub fn short(revision: &str) -> &str {
    revision.get(..8).unwrap_or(revision)
}

#[derive(Default)]
struct Lines(String);

impl Lines {
    fn field(&mut self, label: &str, value: &str) {
        let label = format!("{label}:");
        self.0.push_str(&format!("{label:<LABEL$}{value}\n"));
    }

    /// A multi-line value (a table), indented under its label.
    fn block(&mut self, label: &str, table: &str) {
        for (i, line) in table.lines().enumerate() {
            let head = if i == 0 {
                format!("{label}:")
            } else {
                String::new()
            };
            self.0.push_str(&format!("{head:<LABEL$}{line}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use bluegreen_crd::BlueGreenRelease;
    use k8s_openapi::api::{apps::v1::ReplicaSet, events::v1::Event};
    use serde_json::json;

    use super::*;
    use crate::view::status::{StatusView, Verdict};

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A release mid-rollout: green under test, blue live, a warm standby from before.
    fn testing() -> (BlueGreenRelease, Vec<ReplicaSet>, Vec<Event>) {
        let release = serde_json::from_value(json!({
            "apiVersion": "bluegreen.dev/v1alpha1",
            "kind": "BlueGreenRelease",
            "metadata": {"name": "web", "namespace": "shop", "generation": 4},
            "spec": {
                "replicas": 3,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1.2.0"}]}},
                "service": {"name": "web"},
                "progressDeadlineSeconds": 600,
                "scaleDownDelaySeconds": 300
            },
            "status": {
                "observedGeneration": 4,
                "phase": "Testing",
                "message": "running smoke tests of version 1.2.0: smoke, load",
                "activeColor": "blue", "activeVersion": "1.1.0", "activeRevision": "e9487526aa",
                "previewColor": "green", "previewVersion": "1.2.0", "previewRevision": "b7a04cb6bb",
                "rollout": {
                    "revision": "b7a04cb6bb", "version": "1.2.0", "color": "green",
                    "startedAt": "2026-05-01T12:00:00Z", "progressingSince": "2026-05-01T12:00:00Z",
                    "availableAt": "2026-05-01T12:00:40Z"
                },
                "smokeTests": [
                    {"name": "smoke", "job": "web-smoke-b7a04cb6", "phase": "Succeeded",
                     "startedAt": "2026-05-01T12:00:41Z", "finishedAt": "2026-05-01T12:00:53Z"},
                    {"name": "load", "job": "web-load-b7a04cb6", "phase": "Running",
                     "startedAt": "2026-05-01T12:00:41Z"}
                ],
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "Reconciling", "message": "rollout of version 1.2.0 in progress",
                     "lastTransitionTime": "2026-05-01T12:00:00Z", "observedGeneration": 4},
                    {"type": "Stalled", "status": "False", "reason": "Progressing", "message": "the controller can make progress",
                     "lastTransitionTime": "2026-04-30T09:00:00Z", "observedGeneration": 4}
                ],
                "lastAction": {"verb": "retry", "id": "cli-1", "result": "Accepted",
                               "message": "revision b7a04cb6bb may be deployed again", "at": "2026-05-01T11:59:59Z"},
                "replicas": 3
            }
        }))
        .unwrap();
        let rs = serde_json::from_value(json!({
            "metadata": {"name": "web-green"},
            "spec": {"replicas": 3, "selector": {}},
            "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3}
        }))
        .unwrap();
        let event = serde_json::from_value(json!({
            "metadata": {"name": "web.1"},
            "eventTime": "2026-05-01T12:00:41.000000Z",
            "reason": "Testing", "type": "Normal",
            "note": "running smoke tests of version 1.2.0: smoke, load",
            "regarding": {"kind": "BlueGreenRelease", "name": "web"}
        }))
        .unwrap();
        (release, vec![rs], vec![event])
    }

    #[test]
    fn the_view_of_a_rollout_under_test() {
        console::set_colors_enabled(false);
        let (release, rs, events) = testing();
        let now = at("2026-05-01T12:01:00Z");
        let view = StatusView::new(&release, &rs, &events, now);
        assert_eq!(view.verdict, Verdict::InProgress);
        assert_eq!(
            render(&view, now),
            "\
Name:        web
Namespace:   shop
Phase:       Testing
Message:     running smoke tests of version 1.2.0: smoke, load
Active:      blue  version 1.1.0  revision e9487526
Preview:     green  version 1.2.0  revision b7a04cb6
Progress:    green 3/3 pods ready, 3 available
Smoke tests: smoke   Succeeded   12s
             load    Running     19s
Conditions:  Ready     False   Reconciling   60s   rollout of version 1.2.0 in progress
             Stalled   False   Progressing   27h   the controller can make progress
Last action: retry Accepted 61s ago (id cli-1): revision b7a04cb6bb may be deployed again
Events:      19s   Normal   Testing   running smoke tests of version 1.2.0: smoke, load
"
        );
    }

    #[test]
    fn verification_shows_its_samples_and_checks() {
        console::set_colors_enabled(false);
        let (mut release, rs, _) = testing();
        let status = release.status.as_mut().unwrap();
        status.smoke_tests.clear();
        status.conditions.clear();
        status.last_action = None;
        status.analysis = Some(
            serde_json::from_value(json!({
                "phase": "PostPromotion", "rollout": "2026-05-01T12:00:00Z",
                "revision": "b7a04cb6bb", "startedAt": "2026-05-01T12:00:55Z",
                "result": "Running", "lastSampleAt": "2026-05-01T12:00:58Z",
                "samples": 3, "passed": 2, "failed": 1, "inconclusive": 0,
                "checks": [{"name": "error-rate", "lastValue": 0.002, "passed": 2, "failed": 1,
                            "inconclusive": 0}]
            }))
            .unwrap(),
        );
        let now = at("2026-05-01T12:01:00Z");
        let text = render(&StatusView::new(&release, &rs, &[], now), now);
        assert!(
            text.contains(
                "Analysis:    PostPromotion Running   3 samples: 2 passed, 1 failed, 0 inconclusive\n             error-rate              last 0.002 (2 passed, 1 failed, 0 inconclusive)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_deploying_color_shows_its_deadline_and_a_stale_spec_is_said() {
        console::set_colors_enabled(false);
        let (mut release, mut rs, _) = testing();
        release.metadata.generation = Some(5);
        let status = release.status.as_mut().unwrap();
        status.rollout.as_mut().unwrap().stage = bluegreen_crd::RolloutStage::Deploying;
        status.smoke_tests.clear();
        rs[0].status.as_mut().unwrap().ready_replicas = Some(1);
        let now = at("2026-05-01T12:01:00Z");
        let view = StatusView::new(&release, &rs, &[], now);
        assert_eq!(view.verdict, Verdict::InProgress);
        let text = render(&view, now);
        assert!(
            text.contains(
                "Phase:       Testing (spec generation 5 not yet observed by the controller)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("Progress:    green 1/3 pods ready, 3 available · deadline in 9m0s\n"),
            "{text}"
        );
        assert!(text.ends_with("Events:      none\n"), "{text}");
    }

    #[test]
    fn verdicts_for_the_ci_gate() {
        let (mut release, rs, _) = testing();
        let now = at("2026-05-01T12:01:00Z");
        let status = release.status.as_mut().unwrap();
        status.phase = Some(bluegreen_crd::Phase::Failed);
        assert_eq!(
            StatusView::new(&release, &rs, &[], now).verdict,
            Verdict::Failed
        );
        let status = release.status.as_mut().unwrap();
        status.phase = Some(bluegreen_crd::Phase::Stable);
        status.conditions[0].status = "True".into();
        assert_eq!(
            StatusView::new(&release, &rs, &[], now).verdict,
            Verdict::Ready
        );
        release.metadata.generation = Some(5);
        assert_eq!(
            StatusView::new(&release, &rs, &[], now).verdict,
            Verdict::InProgress,
            "Ready for an older spec does not count"
        );
    }
}
