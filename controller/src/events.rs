//! Publishes the planner's Events (`events.k8s.io/v1`) on a release.
//!
//! kube-runtime's `Recorder` folds every Event of the same reason on the same object into
//! one series and keeps the first note: `kubectl describe` then said "Promoted (x3) active
//! Service web now selects blue (version 1.0.0 …)" while green 2.0.0 was live. Here only an
//! Event that repeats the same note (same type and reason) joins a series; any new note is an
//! Event of its own, so each one describes what happened that time.

use std::{collections::HashMap, time::Duration};

use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event, events::v1::EventSeries},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::plan::PlannedEvent;

/// A repeat within this long joins the series of the Event it repeats (as kube-runtime's
/// recorder and client-go do); later, it starts a new Event.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The Events API limits a note to 1 kB.
pub const MAX_NOTE: usize = 1000;

/// What makes two Events the same occurrence: the object, its type, reason and note.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Occurrence {
    namespace: String,
    regarding_uid: String,
    warning: bool,
    reason: String,
    note: String,
}

/// The stored Event an occurrence last went to, and how often it happened.
#[derive(Clone, Debug)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Who reports the Events (the controller, and its pod).
#[derive(Clone, Debug)]
pub struct Reporter {
    pub controller: String,
    pub instance: String,
}

pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    published: Mutex<HashMap<Occurrence, Published>>,
}

impl EventPublisher {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        EventPublisher {
            client,
            reporter,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Creates an Event on `regarding`, or counts a repeat of the same note in its series.
    pub async fn publish(
        &self,
        planned: &PlannedEvent,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let note = truncate(&planned.note, MAX_NOTE);
        let occurrence = Occurrence {
            namespace: namespace.clone(),
            regarding_uid: regarding.uid.clone().unwrap_or_default(),
            warning: planned.warning,
            reason: planned.reason.clone(),
            note: note.clone(),
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let mut published = self.published.lock().await;
        let window =
            k8s_openapi::jiff::SignedDuration::try_from(SERIES_WINDOW).expect("a short duration");
        published.retain(|_, p| p.last + window > now);
        if let Some(previous) = published.get_mut(&occurrence) {
            let series = EventSeries {
                count: previous.count + 1,
                last_observed_time: MicroTime(now),
            };
            api.patch(
                &previous.name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "series": series })),
            )
            .await?;
            previous.count = series.count;
            previous.last = now;
            return Ok(());
        }
        let event = self.event(planned, note, regarding, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        api.create(&PostParams::default(), &event).await?;
        published.insert(
            occurrence,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }

    fn event(
        &self,
        planned: &PlannedEvent,
        note: String,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Event {
        let object = regarding
            .name
            .as_deref()
            .unwrap_or(&self.reporter.controller);
        Event {
            metadata: ObjectMeta {
                // Unique per Event, as client-go names them: the object and the time.
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            action: Some("Reconcile".into()),
            reason: Some(planned.reason.clone()),
            note: Some(note),
            type_: Some(if planned.warning { "Warning" } else { "Normal" }.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone()),
            ..Event::default()
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with an ellipsis when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate(&"é".repeat(600), 1000);
        assert!(cut.len() <= 1000 && cut.ends_with("..."), "{}", cut.len());
    }
}
