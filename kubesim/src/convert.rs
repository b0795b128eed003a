//! Version conversion between served and stored shapes. Only `events.k8s.io/v1`
//! Events need real conversion (they share storage with core v1 Events, so that
//! `kubectl get events` shows what controllers record through either API).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::registry::ResourceDef;

fn is_events_v1(def: &ResourceDef) -> bool {
    def.group == "events.k8s.io"
}

fn mv(from: &mut Map<String, Value>, to: &mut Map<String, Value>, a: &str, b: &str) {
    if let Some(v) = from.remove(a) {
        to.insert(b.to_string(), v);
    }
}

/// events.k8s.io/v1 field -> core/v1 (storage) field; every other field keeps its name.
/// One table serves both directions so the two conversions cannot drift apart.
const EVENTS_V1_TO_CORE: &[(&str, &str)] = &[
    ("metadata", "metadata"),
    ("reason", "reason"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("action", "action"),
    ("related", "related"),
    ("reportingInstance", "reportingInstance"),
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Served shape -> stored shape.
pub fn to_storage(def: &ResourceDef, mut obj: Value) -> Value {
    if is_events_v1(def) {
        let Value::Object(mut src) = obj else {
            return obj;
        };
        let mut out = Map::new();
        for (v1, core) in EVENTS_V1_TO_CORE {
            mv(&mut src, &mut out, v1, core);
        }
        let source = src.remove("deprecatedSource").unwrap_or_else(
            || json!({"component": out.get("reportingComponent").cloned().unwrap_or(Value::Null)}),
        );
        out.insert("source".into(), source);
        out.insert("apiVersion".into(), json!("v1"));
        out.insert("kind".into(), json!("Event"));
        return Value::Object(out);
    }
    obj["apiVersion"] = json!(def.api_version(&def.versions[0]));
    obj["kind"] = json!(def.kind);
    obj
}

/// Whether a stored object already has the shape `version` of `def` serves (true but
/// for events.k8s.io Events and for another served version of a custom resource).
pub fn is_served_shape(def: &ResourceDef, version: &str, obj: &Value) -> bool {
    if is_events_v1(def) {
        return false;
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let matches_version = match api_version.and_then(|a| a.rsplit_once('/')) {
        Some((group, v)) => group == def.group && v == version,
        None => def.group.is_empty() && api_version == Some(version),
    };
    matches_version && obj.get("kind").and_then(Value::as_str) == Some(def.kind.as_str())
}

/// The stored object as `version` of `def` serves it: the stored allocation itself when
/// its shape already is that version's (the usual case), a converted copy otherwise.
pub fn serve(def: &ResourceDef, version: &str, stored: &Arc<Value>) -> Arc<Value> {
    if is_served_shape(def, version, stored) {
        stored.clone()
    } else {
        Arc::new(from_storage(def, version, stored))
    }
}

/// Stored shape -> the shape of `version` of `def`.
pub fn from_storage(def: &ResourceDef, version: &str, obj: &Value) -> Value {
    if is_events_v1(def) {
        let Value::Object(mut src) = obj.clone() else {
            return obj.clone();
        };
        let mut out = Map::new();
        for (v1, core) in EVENTS_V1_TO_CORE {
            mv(&mut src, &mut out, core, v1);
        }
        mv(&mut src, &mut out, "source", "deprecatedSource");
        if !out.contains_key("eventTime") {
            out.insert("eventTime".into(), Value::Null);
        }
        out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
        out.insert("kind".into(), json!("Event"));
        return Value::Object(out);
    }
    let mut out = obj.clone();
    out["apiVersion"] = json!(def.api_version(version));
    out["kind"] = json!(def.kind);
    out
}
