//! Watch streams: newline-delimited JSON events from a resourceVersion, with
//! bookmarks, timeouts, forced closes and in-stream 410 Expired errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::cluster::Cluster;
use crate::convert;
use crate::error::ApiError;
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, StoreEvent};
use crate::table;

/// Query parameters of a watch request.
#[derive(Debug, Clone, Default)]
pub struct WatchParams {
    pub resource_version: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    /// `Some(includeObject)` when the client asked for Table rows.
    pub table: Option<String>,
    /// Objects as `PartialObjectMetadata` (metadata watches).
    pub metadata_only: bool,
}

/// First bookmark soon after the start, then periodically, so clients learn progress.
const FIRST_BOOKMARK: Duration = Duration::from_millis(100);
const BOOKMARK_EVERY: Duration = Duration::from_secs(3);

struct Filter {
    def: Arc<ResourceDef>,
    version: String,
    namespace: Option<String>,
    params: WatchParams,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        if !self.params.labels.matches(obj) {
            return false;
        }
        if self.params.fields.is_empty() {
            return true;
        }
        // As in lists: only events.k8s.io Events change shape when served.
        if self.def.storage == self.def.gr() {
            self.params.fields.matches(obj)
        } else {
            self.params
                .fields
                .matches(&convert::from_storage(&self.def, &self.version, obj))
        }
    }

    /// Maps a store event to what this watcher sees (label moves become ADDED/DELETED).
    fn translate(&self, ev: &StoreEvent) -> Option<Seen> {
        if ev.key.gr != self.def.storage {
            return None;
        }
        if let Some(ns) = &self.namespace
            && &ev.key.namespace != ns
        {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
        let seen = match (ev.kind, before, now) {
            (EventType::Modified, true, true) => Seen::Stored(EventType::Modified),
            (EventType::Modified, false, true) => Seen::Stored(EventType::Added),
            // As the API server's watch cache does: the object as this watcher last saw it
            // (the new one no longer matches its selector), at the event's resourceVersion.
            (EventType::Modified, true, false) => Seen::PreviousAsDeleted,
            (EventType::Modified, false, false) => return None,
            (k, _, true) => Seen::Stored(k),
            (_, _, false) => return None,
        };
        Some(seen)
    }

    /// Whether this watcher sends objects exactly as stored (no conversion, no Table
    /// rows, no metadata-only view), so that the shared JSON of an event can be sent.
    fn sends_as_stored(&self, obj: &Value) -> bool {
        self.params.table.is_none()
            && !self.params.metadata_only
            && convert::is_served_shape(&self.def, &self.version, obj)
    }

    fn line(&self, kind: &str, obj: &Value) -> String {
        if self.sends_as_stored(obj) {
            return event_line(kind, &obj.to_string());
        }
        let served = convert::from_storage(&self.def, &self.version, obj);
        let object = match &self.params.table {
            Some(include) => {
                let rv = served
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null);
                table::build(
                    &self.def,
                    &self.version,
                    &[served],
                    include,
                    json!({"resourceVersion": rv}),
                )
            }
            None if self.params.metadata_only => crate::meta::partial(&served),
            None => served,
        };
        let mut s = json!({"type": kind, "object": object}).to_string();
        s.push('\n');
        s
    }

    /// The line for a store event; the event's JSON is shared with other watchers.
    fn event_line(&self, seen: Seen, ev: &StoreEvent) -> String {
        match seen {
            Seen::Stored(kind) if self.sends_as_stored(&ev.object) => {
                event_line(kind.as_str(), ev.object_json())
            }
            Seen::Stored(kind) => self.line(kind.as_str(), &ev.object),
            Seen::PreviousAsDeleted => {
                let mut previous = ev.old.as_deref().cloned().unwrap_or(Value::Null);
                if let Some(meta) = previous.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(ev.rv.to_string()));
                }
                self.line(EventType::Deleted.as_str(), &previous)
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> String {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let mut s = json!({"type": "BOOKMARK", "object": {
            "kind": self.def.kind, "apiVersion": self.def.api_version(&self.version), "metadata": meta}})
        .to_string();
        s.push('\n');
        s
    }
}

/// What one watcher is sent for a store event.
#[derive(Clone, Copy)]
enum Seen {
    /// The stored object, as this kind of event.
    Stored(EventType),
    /// DELETED with the previous object: a change moved it out of the watcher's selector.
    PreviousAsDeleted,
}

/// `{"type":…,"object":…}` around an already serialized object.
fn event_line(kind: &str, object_json: &str) -> String {
    let mut s = String::with_capacity(object_json.len() + 32);
    s.push_str(r#"{"type":""#);
    s.push_str(kind);
    s.push_str(r#"","object":"#);
    s.push_str(object_json);
    s.push_str("}\n");
    s
}

fn expired_line(rv: &str, horizon: u64) -> String {
    let status = ApiError::gone(format!("too old resource version: {rv} ({horizon})")).to_status();
    let mut s = json!({"type": "ERROR", "object": status}).to_string();
    s.push('\n');
    s
}

/// Starts a watch. Errors that a real apiserver reports before streaming (bad
/// resourceVersion syntax) come back as `Err`; expiry is reported in-stream.
pub fn start(
    cluster: Arc<Cluster>,
    def: Arc<ResourceDef>,
    version: &str,
    namespace: Option<String>,
    params: WatchParams,
    mut closer: watch::Receiver<u64>,
) -> Result<ReceiverStream<Result<String, Infallible>>, ApiError> {
    let filter = Filter {
        namespace: if def.namespaced { namespace } else { None },
        def,
        version: version.to_string(),
        params,
    };
    let rv_param = filter.params.resource_version.clone().unwrap_or_default();
    let requested: Option<u64> = match rv_param.as_str() {
        "" | "0" => None,
        s => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(256);
    let mut initial: Vec<String> = Vec::new();
    let (mut events, start_rv) = {
        let st = cluster.lock();
        let events = st.subscribe();
        let current = st.current_rv();
        match requested {
            // A version from the future (e.g. from before a kubesim restart) cannot be
            // resumed either: 410 makes the client re-list instead of waiting forever.
            Some(n) if !filter.params.send_initial_events => {
                match st.events_since(n).filter(|_| n <= current) {
                    Some(backlog) => {
                        initial.extend(
                            backlog
                                .iter()
                                .filter_map(|e| Some(filter.event_line(filter.translate(e)?, e))),
                        );
                    }
                    None => {
                        let line = expired_line(&rv_param, st.horizon());
                        drop(st);
                        let _ = tx.try_send(Ok(line));
                        return Ok(ReceiverStream::new(rx));
                    }
                }
            }
            _ => {
                for (_, _, obj) in st.iter(&filter.def.storage, filter.namespace.as_deref()) {
                    if filter.matches(obj) {
                        initial.push(filter.line("ADDED", obj));
                    }
                }
            }
        }
        (events, current)
    };
    closer.mark_unchanged();
    tokio::spawn(async move {
        if filter.params.send_initial_events {
            initial.push(filter.bookmark(start_rv, true));
        }
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let mut progress = start_rv;
        let deadline = filter
            .params
            .timeout
            .map(|t| tokio::time::Instant::now() + t);
        let mut next_bookmark = tokio::time::Instant::now() + FIRST_BOOKMARK;
        loop {
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let bookmark = async {
                if filter.params.bookmarks {
                    tokio::time::sleep_until(next_bookmark).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= progress {
                            continue;
                        }
                        progress = ev.rv;
                        if let Some(seen) = filter.translate(&ev)
                            && tx.send(Ok(filter.event_line(seen, &ev))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // This watcher fell behind the broadcast ring: it catches up from
                        // the store's history, as a client resuming from its last version
                        // would. Only a gap beyond the history makes it re-list.
                        let backlog = cluster.lock().events_since(progress);
                        let Some(backlog) = backlog else {
                            let _ = tx.send(Ok(expired_line(&progress.to_string(), progress))).await;
                            return;
                        };
                        for ev in backlog {
                            progress = ev.rv;
                            if let Some(seen) = filter.translate(&ev)
                                && tx.send(Ok(filter.event_line(seen, &ev))).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = bookmark => {
                    next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    if tx.send(Ok(filter.bookmark(progress, false))).await.is_err() {
                        return;
                    }
                }
                _ = timeout => return,
                _ = closer.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    /// A watch stream that falls behind the store's event ring (its client reads slowly)
    /// catches up from the history: every event arrives once, in order, and no 410.
    #[tokio::test]
    async fn a_watch_that_falls_behind_catches_up_from_history() {
        let server = crate::Server::builder()
            .watch_buffer(8)
            .start()
            .await
            .unwrap();
        let cluster = server.cluster();
        let def = cluster.resolve("", "v1", "configmaps").unwrap();
        let from = cluster.lock().current_rv();
        let params = WatchParams {
            resource_version: Some(from.to_string()),
            ..Default::default()
        };
        let (_close, closer) = tokio::sync::watch::channel(0u64);
        let mut stream = start(
            cluster.clone(),
            def.clone(),
            "v1",
            Some("default".into()),
            params,
            closer,
        )
        .unwrap();
        // Nobody reads: the stream's own buffer fills, and the ring (8) runs far ahead of it.
        const WRITES: usize = 1_000;
        for i in 0..WRITES {
            let body =
                json!({"metadata": {"name": format!("cm-{i}")}, "data": {"i": i.to_string()}});
            cluster
                .create(
                    &def,
                    "v1",
                    "default",
                    body,
                    &crate::cluster::WriteOpts::manager("test"),
                )
                .unwrap();
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut names = Vec::new();
        while names.len() < WRITES {
            let line = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                .await
                .expect("the stream keeps delivering")
                .expect("the stream stays open")
                .unwrap();
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            match event["type"].as_str().unwrap() {
                "ADDED" => names.push(
                    event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                ),
                "BOOKMARK" => {}
                other => panic!("unexpected {other} event: {line}"),
            }
        }
        let expected: Vec<String> = (0..WRITES).map(|i| format!("cm-{i}")).collect();
        assert_eq!(names, expected);
    }
}
