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
