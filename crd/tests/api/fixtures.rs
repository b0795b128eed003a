//! Test objects and the schema as the API server sees it.

use bluegreen_crd::{BlueGreenRelease, crd::crd};
use std::sync::OnceLock;

use serde_json::{Value, json};

/// A small, valid release: the base every invalid case mutates.
pub use crate::invalid_spec_cases::valid;

/// The same release with nothing but the required fields.
pub fn minimal() -> Value {
    json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}
            },
            "service": {"name": "web", "ports": [{"port": 80}]},
            "smokeTests": [{
                "name": "http-get",
                "template": {"spec": {"containers": [{"name": "curl", "image": "curl:8"}]}}
            }]
        }
    })
}

/// Every spec and status field set.
pub fn full() -> Value {
    json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": {"name": "web", "namespace": "shop", "generation": 7},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}, "annotations": {"team": "shop"}},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "registry.example.com/web:1.4.2",
                        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                        "env": [{"name": "MODE", "value": "prod"}]
                    }],
                    "terminationGracePeriodSeconds": 30
                }
            },
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "version": "1.4.2",
            "service": {
                "name": "web",
                "previewName": "web-next",
                "ports": [
                    {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
                ]
            },
            "previewReplicas": 2,
            "minReadySeconds": 5,
            "progressDeadlineSeconds": 900,
            "smokeTests": [{
                "name": "http-get",
                "template": {
                    "metadata": {"labels": {"role": "smoke"}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{"name": "curl", "image": "curlimages/curl:8.10.1", "args": ["-f", "$(BLUEGREEN_PREVIEW_URL)"]}]
                    }
                },
                "timeoutSeconds": 120,
                "backoffLimit": 2
            }],
            "retestOnRollback": true,
            "promotion": {"mode": "Manual", "autoPromoteAfterSeconds": 30},
            "scaleDownDelaySeconds": 60,
            "standbyReplicas": 1,
            "revisionHistoryLimit": 5,
            "paused": true,
            "analysis": {
                "prometheus": {"address": "http://prometheus.monitoring:9090"},
                "interval": "30s",
                "prePromotion": {
                    "samples": 3,
                    "checks": [{
                        "name": "error-rate",
                        "query": "sum(rate(http_requests_total{code=~\"5..\",color=\"{{color}}\"}[1m])) / sum(rate(http_requests_total{color=\"{{color}}\"}[1m]))",
                        "max": 0.01
                    }]
                },
                "postPromotion": {
                    "duration": "5m",
                    "failureLimit": 1,
                    "checks": [{"name": "throughput", "query": "sum(rate(http_requests_total{namespace=\"{{namespace}}\",release=\"{{release}}\",version=\"{{version}}\",revision=\"{{revision}}\"}[1m]))", "min": 0.5, "max": 100000.0}]
                }
            }
        },
        "status": {
            "observedGeneration": 7,
            "phase": "AwaitingPromotion",
            "message": "smoke tests passed; waiting for `kubectl bluegreen promote`",
            "activeColor": "blue",
            "activeVersion": "1.4.1",
            "activeRevision": "0123456789",
            "previewColor": "green",
            "previewVersion": "1.4.2",
            "previewRevision": "abcdef0123",
            "standby": {
                "color": "green",
                "version": "1.4.0",
                "revision": "fedcba9876",
                "since": "2025-01-02T03:04:05Z",
                "scaledDownAt": "2025-01-02T03:09:05Z"
            },
            "rollout": {
                "revision": "abcdef0123",
                "version": "1.4.2",
                "color": "green",
                "startedAt": "2025-01-03T10:00:00Z",
                "progressingSince": "2025-01-03T10:00:30Z",
                "stage": "Promoting",
                "testsPassedAt": "2025-01-03T10:02:00Z",
                "rollback": false,
                "skipTests": false,
                "reason": "spec changed",
                "testRound": 1,
                "promoteRequested": true,
                "previewReplicas": 2
            },
            "analysis": {
                "phase": "PrePromotion",
                "rollout": "2025-01-03T10:00:00Z/1",
                "revision": "abcdef0123",
                "startedAt": "2025-01-03T10:02:00Z",
                "result": "Passed",
                "lastSampleAt": "2025-01-03T10:03:30Z",
                "samples": 4,
                "passed": 3,
                "failed": 0,
                "inconclusive": 1,
                "consecutivePassed": 3,
                "consecutiveInconclusive": 0,
                "message": "3 samples in a row passed",
                "checks": [{
                    "name": "error-rate",
                    "lastValue": 0.002,
                    "passed": 3,
                    "failed": 0,
                    "inconclusive": 1,
                    "lastSampleAt": "2025-01-03T10:03:30Z",
                    "message": "check 'error-rate' is inconclusive: the query returned no data"
                }]
            },
            "smokeTests": [{
                "name": "http-get",
                "job": "web-http-get-abcdef01",
                "phase": "Succeeded",
                "startedAt": "2025-01-03T10:01:05Z",
                "finishedAt": "2025-01-03T10:01:50Z",
                "message": "exit code 0"
            }],
            "history": [{
                "revision": "0123456789",
                "version": "1.4.1",
                "color": "blue",
                "startedAt": "2025-01-01T09:00:00Z",
                "promotedAt": "2025-01-01T09:05:00Z",
                "finishedAt": "2025-01-01T09:10:00Z",
                "outcome": "Promoted",
                "reason": "smoke tests passed"
            }],
            "blockedRevision": "9999999999",
            "failedAt": "2025-01-02T08:00:00Z",
            "lastAction": {
                "verb": "promote",
                "id": "6f1c2a",
                "result": "Accepted",
                "message": "promotion requested",
                "at": "2025-01-03T10:03:00Z"
            },
            "consumedActionIds": ["6f1c2a", "5e0b19"],
            "conditions": [{
                "type": "Ready",
                "status": "False",
                "reason": "AwaitingPromotion",
                "message": "waiting for promotion",
                "observedGeneration": 7,
                "lastTransitionTime": "2025-01-03T10:00:00Z"
            }],
            "replicas": 4,
            "selector": "app=web,bluegreen.dev/color=blue"
        }
    })
}

/// Builds a typed release from JSON, panicking with the serde error.
pub fn release(value: &Value) -> BlueGreenRelease {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("test object does not deserialize: {e}\n{value:#}"))
}

/// The generated `openAPIV3Schema` of `crd()`, as JSON.
pub fn schema() -> Value {
    let crd = crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has an openAPIV3Schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// The schema the API server evaluates root CEL rules against: it adds `apiVersion`, `kind` and
/// the two `metadata` fields CEL may read (`name`, `generateName`, both at most 253
/// characters) to the CRD's own schema. Without them `self.metadata.name` would not resolve
/// locally.
pub fn schema_as_served() -> Value {
    static SERVED: OnceLock<Value> = OnceLock::new();
    SERVED.get_or_init(served).clone()
}

fn served() -> Value {
    let mut schema = schema();
    let properties = schema["properties"]
        .as_object_mut()
        .expect("root schema has properties");
    properties.insert("apiVersion".into(), json!({"type": "string"}));
    properties.insert("kind".into(), json!({"type": "string"}));
    properties.insert(
        "metadata".into(),
        json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 253},
            "generateName": {"type": "string", "maxLength": 253}
        }}),
    );
    schema
}

/// Sets the value at a JSON pointer, creating missing objects on the way.
pub fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut current = object;
    for token in pointer.trim_start_matches('/').split('/') {
        current = match current {
            Value::Array(items) => {
                let index: usize = token.parse().expect("array index");
                &mut items[index]
            }
            Value::Object(map) => map.entry(token.to_string()).or_insert(json!({})),
            other => panic!("cannot descend into {other} at {token} of {pointer}"),
        };
    }
    *current = value;
}
