//! Version conversion between served and stored shapes. Only `events.k8s.io/v1`
//! Events need real conversion (they share storage with core v1 Events, so that
//! `kubectl get events` shows what controllers record through either API).

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

/// Served shape -> stored shape.
pub fn to_storage(def: &ResourceDef, mut obj: Value) -> Value {
    if is_events_v1(def) {
        let Value::Object(mut src) = obj else {
            return obj;
        };
        let mut out = Map::new();
        for k in [
            "metadata",
            "reason",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingInstance",
        ] {
            mv(&mut src, &mut out, k, k);
        }
        mv(&mut src, &mut out, "regarding", "involvedObject");
        mv(&mut src, &mut out, "note", "message");
        mv(
            &mut src,
            &mut out,
            "reportingController",
            "reportingComponent",
        );
        mv(
            &mut src,
            &mut out,
            "deprecatedFirstTimestamp",
            "firstTimestamp",
        );
        mv(
            &mut src,
            &mut out,
            "deprecatedLastTimestamp",
            "lastTimestamp",
        );
        mv(&mut src, &mut out, "deprecatedCount", "count");
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

/// Stored shape -> the shape of `version` of `def`.
pub fn from_storage(def: &ResourceDef, version: &str, obj: &Value) -> Value {
    if is_events_v1(def) {
        let Value::Object(mut src) = obj.clone() else {
            return obj.clone();
        };
        let mut out = Map::new();
        for k in [
            "metadata",
            "reason",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingInstance",
        ] {
            mv(&mut src, &mut out, k, k);
        }
        mv(&mut src, &mut out, "involvedObject", "regarding");
        mv(&mut src, &mut out, "message", "note");
        mv(
            &mut src,
            &mut out,
            "reportingComponent",
            "reportingController",
        );
        mv(
            &mut src,
            &mut out,
            "firstTimestamp",
            "deprecatedFirstTimestamp",
        );
        mv(
            &mut src,
            &mut out,
            "lastTimestamp",
            "deprecatedLastTimestamp",
        );
        mv(&mut src, &mut out, "count", "deprecatedCount");
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
