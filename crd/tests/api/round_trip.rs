//! Serialization round trips and schema defaults (DESIGN §2, "defaults in brackets").

use std::collections::BTreeSet;

use bluegreen_crd::{BlueGreenRelease, PromotionMode, spec::Protocol};
use serde_json::{Value, json};

use crate::admission::{admit, defaulted};
use crate::fixtures::{full, minimal, release, schema, set};

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .expect("an object schema")
        .keys()
        .cloned()
        .collect()
}

fn field_names(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn full_example_sets_every_field() {
    let schema = schema();
    let full = full();
    let nested = [
        ("spec", "/properties/spec", "/spec"),
        (
            "spec.service",
            "/properties/spec/properties/service",
            "/spec/service",
        ),
        (
            "spec.service.ports[]",
            "/properties/spec/properties/service/properties/ports/items",
            "/spec/service/ports/0",
        ),
        (
            "spec.smokeTests[]",
            "/properties/spec/properties/smokeTests/items",
            "/spec/smokeTests/0",
        ),
        (
            "spec.promotion",
            "/properties/spec/properties/promotion",
            "/spec/promotion",
        ),
        ("status", "/properties/status", "/status"),
        (
            "status.standby",
            "/properties/status/properties/standby",
            "/status/standby",
        ),
        (
            "status.rollout",
            "/properties/status/properties/rollout",
            "/status/rollout",
        ),
        (
            "spec.analysis",
            "/properties/spec/properties/analysis",
            "/spec/analysis",
        ),
        (
            "spec.analysis.prePromotion",
            "/properties/spec/properties/analysis/properties/prePromotion",
            "/spec/analysis/prePromotion",
        ),
        (
            "spec.analysis.postPromotion",
            "/properties/spec/properties/analysis/properties/postPromotion",
            "/spec/analysis/postPromotion",
        ),
        (
            "status.analysis",
            "/properties/status/properties/analysis",
            "/status/analysis",
        ),
        (
            "status.analysis.checks[]",
            "/properties/status/properties/analysis/properties/checks/items",
            "/status/analysis/checks/0",
        ),
        (
            "status.smokeTests[]",
            "/properties/status/properties/smokeTests/items",
            "/status/smokeTests/0",
        ),
        (
            "status.history[]",
            "/properties/status/properties/history/items",
            "/status/history/0",
        ),
        (
            "status.lastAction",
            "/properties/status/properties/lastAction",
            "/status/lastAction",
        ),
        (
            "status.conditions[]",
            "/properties/status/properties/conditions/items",
            "/status/conditions/0",
        ),
    ];
    for (what, schema_pointer, value_pointer) in nested {
        let declared = property_names(schema.pointer(schema_pointer).expect(schema_pointer));
        let mut used = field_names(full.pointer(value_pointer).expect(value_pointer));
        if what == "status.rollout" {
            // A rollout is at one stage, and each stage stores only its own data: the
            // example is Promoting; `availableAt` is the Testing stage's, `promotedAt` the
            // Verifying stage's
            // (stored_statuses.rs round-trips every stage).
            used.insert("availableAt".into());
            used.insert("promotedAt".into());
        }
        assert_eq!(
            used, declared,
            "the full example must set every field of {what}"
        );
    }
}

#[test]
fn full_example_round_trips() {
    let json = full();
    let typed = release(&json);
    let back = serde_json::to_value(&typed).expect("release serializes");
    assert_eq!(back, json, "serializing loses, renames or adds a field");
    let again: BlueGreenRelease =
        serde_json::from_value(back).expect("serialized release deserializes");
    assert_eq!(again, typed);
}

#[test]
fn full_example_is_admitted() {
    let admission = admit(&full());
    assert!(admission.accepted(), "{admission:#?}");
}

#[test]
fn minimal_object_gets_the_documented_defaults() {
    let defaulted = defaulted(&minimal());
    let r = release(&defaulted);
    let spec = &r.spec;
    assert_eq!(spec.replicas, 1);
    assert_eq!(spec.progress_deadline_seconds, 600);
    assert_eq!(spec.scale_down_delay_seconds, 300);
    assert_eq!(spec.standby_replicas, 0);
    assert_eq!(spec.revision_history_limit, 10);
    assert_eq!(spec.promotion.mode, PromotionMode::Auto);
    assert_eq!(spec.promotion.auto_promote_after_seconds, 0);
    assert_eq!(spec.smoke_tests[0].timeout_seconds, 300);
    assert_eq!(spec.smoke_tests[0].backoff_limit, 0);
    assert_eq!(spec.min_ready_seconds, 0);
    assert!(!spec.paused);
    assert!(!spec.retest_on_rollback);
    assert_eq!(spec.service.ports[0].protocol, Protocol::Tcp);
    // Optional fields stay unset: their defaults are derived, not stored.
    assert_eq!(spec.selector, None);
    assert_eq!(spec.version, None);
    assert_eq!(spec.preview_replicas, None);
    assert_eq!(spec.service.preview_name, None);

    // The defaults are in the stored object, where `kubectl get -o yaml` shows them.
    let stored = &defaulted["spec"];
    for (field, value) in [
        ("replicas", json!(1)),
        ("progressDeadlineSeconds", json!(600)),
        ("scaleDownDelaySeconds", json!(300)),
        ("standbyReplicas", json!(0)),
        ("revisionHistoryLimit", json!(10)),
        ("minReadySeconds", json!(0)),
        ("paused", json!(false)),
        (
            "promotion",
            json!({"mode": "Auto", "autoPromoteAfterSeconds": 0}),
        ),
    ] {
        assert_eq!(stored[field], value, "default of spec.{field}");
    }
    assert_eq!(stored["smokeTests"][0]["timeoutSeconds"], json!(300));
    assert_eq!(stored["smokeTests"][0]["backoffLimit"], json!(0));
    assert_eq!(stored["service"]["ports"][0]["protocol"], json!("TCP"));
}

#[test]
fn partial_promotion_is_defaulted_field_by_field() {
    let mut object = minimal();
    set(&mut object, "/spec/promotion", json!({"mode": "Manual"}));
    let r = release(&defaulted(&object));
    assert_eq!(r.spec.promotion.mode, PromotionMode::Manual);
    assert_eq!(r.spec.promotion.auto_promote_after_seconds, 0);
}

#[test]
fn serde_defaults_agree_with_schema_defaults() {
    // The controller may read an object the API server never defaulted (an older CRD);
    // it must see the same values the schema would have filled in.
    assert_eq!(release(&minimal()), release(&defaulted(&minimal())));
}

#[test]
fn minimal_object_is_admitted() {
    let admission = admit(&minimal());
    assert!(admission.accepted(), "{admission:#?}");
}
