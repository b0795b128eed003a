//! Monotonic timestamps of the store events the latency figures are made of.
//!
//! Method: the bench runs kubesim in-process and takes its store's lossless event feed
//! (the one kubesim's simulated controllers run on). A dedicated OS thread blocks on
//! that feed and stamps each relevant event with `Instant::now()` the moment it
//! arrives, so a stamp is "kubesim stored this write" plus a thread wake-up (microseconds),
//! with no HTTP, JSON or tokio scheduling in between. Recorded:
//! - a smoke-test Job whose status gains `Complete=True` (the write by kubesim's Job
//!   controller that satisfies a release's last gate);
//! - a Service whose `bluegreen.dev/color` selector changes (the flip, stored as soon as
//!   kubesim has applied the controller's PATCH);
//! - a release whose `status.phase` changes.
//!
//! kubesim's audit log has no timestamps and does not see the Job controller's writes
//! (they are not API requests), which is why the store, not the audit log, is the clock.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kubesim::Cluster;
use kubesim::StoreEvent;
use serde_json::Value;

const RELEASE_LABEL: &str = "bluegreen.dev/release";
const REVISION_LABEL: &str = "bluegreen.dev/revision";
const COLOR_LABEL: &str = "bluegreen.dev/color";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkKind {
    /// A smoke-test Job of release `name` (revision) completed successfully.
    JobComplete { revision: String },
    /// Service `name` now selects `color` (revision).
    Selector { color: String, revision: String },
    /// Release `name` moved to `phase`.
    Phase(String),
}

#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Instant,
    pub namespace: String,
    /// The release (Job and Phase marks) or the Service (Selector marks).
    pub name: String,
    pub kind: MarkKind,
}

/// The recorded marks; cheap to clone.
#[derive(Clone, Default)]
pub struct Timeline {
    marks: Arc<Mutex<Vec<Mark>>>,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn complete(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        })
}

fn label<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(key))?
        .as_str()
}

fn selector<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    svc.pointer("/spec/selector")
        .and_then(|s| s.get(key))?
        .as_str()
}

/// The mark an event makes, if it is one the figures need.
fn mark_of(event: &StoreEvent) -> Option<Mark> {
    let new = event.object.as_ref();
    let old = event.old.as_deref();
    let (group, resource) = (event.key.gr.group.as_str(), event.key.gr.resource.as_str());
    let (name, kind) = match (group, resource) {
        ("batch", "jobs") => {
            if !complete(new) || old.is_some_and(complete) {
                return None;
            }
            (
                label(new, RELEASE_LABEL)?.to_string(),
                MarkKind::JobComplete {
                    revision: label(new, REVISION_LABEL).unwrap_or_default().into(),
                },
            )
        }
        ("", "services") => {
            let color = selector(new, COLOR_LABEL)?;
            if old.and_then(|o| selector(o, COLOR_LABEL)) == Some(color) {
                return None;
            }
            (
                event.key.name.clone(),
                MarkKind::Selector {
                    color: color.into(),
                    revision: selector(new, REVISION_LABEL).unwrap_or_default().into(),
                },
            )
        }
        ("bluegreen.dev", "bluegreenreleases") => {
            let phase = str_at(new, "/status/phase")?;
            if old.and_then(|o| str_at(o, "/status/phase")) == Some(phase) {
                return None;
            }
            (event.key.name.clone(), MarkKind::Phase(phase.into()))
        }
        _ => return None,
    };
    Some(Mark {
        at: Instant::now(),
        namespace: event.key.namespace.clone(),
        name,
        kind,
    })
}

impl Timeline {
    /// Subscribes to `cluster`'s store; the recording thread ends with the store.
    pub fn start(cluster: &Cluster) -> Timeline {
        let timeline = Timeline::default();
        // The store's lossless feed: the recorder never misses an event.
        let mut events = cluster.lock().feed();
        let recorder = timeline.clone();
        std::thread::Builder::new()
            .name("bench-timeline".into())
            .spawn(move || {
                while let Some(event) = events.blocking_recv() {
                    if let Some(mark) = mark_of(&event) {
                        recorder
                            .marks
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(mark);
                    }
                }
            })
            .expect("spawn the timeline thread");
        timeline
    }

    /// Marks recorded so far; pass to `since` later.
    pub fn position(&self) -> usize {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn since(&self, position: usize) -> Vec<Mark> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks[position.min(marks.len())..].to_vec()
    }
}
