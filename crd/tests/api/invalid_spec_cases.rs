//! The shared table of invalid releases: each case is a small change to [`valid`] with the
//! verdicts of admission (the API server: structural schema and CEL rules) and of the
//! controller's own `validate()`. Read by the crd API tests (`invalid_specs.rs`: admission
//! evaluated locally, and the controller) and by the e2e admission parity test, which sends
//! every case to kubesim and to the upstream API server (`e2e/tests/admission.rs`, which
//! includes this file by path).

use serde_json::{Value, json};

/// A small, valid release: the base every invalid case mutates.
pub fn valid() -> Value {
    json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "frontend"}},
                "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1.4.2"}]}
            },
            "service": {"name": "web", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
            "smokeTests": [{
                "name": "http-get",
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "curl", "image": "curlimages/curl:8.10.1"}]
                }}
            }]
        }
    })
}

/// How the API server rejects the case.
#[derive(Clone, Copy, Debug)]
pub enum Admission {
    /// A CEL rule fails with a message containing this text.
    Cel(&'static str),
    /// The structural schema rejects the value at this field with a cause of this reason
    /// (the Status cause the API server answers: `FieldValueTooLong`, ...).
    Schema(&'static str, &'static str),
}

/// How the controller rejects the case.
#[derive(Clone, Copy, Debug)]
pub enum Controller {
    /// `validate()` reports this field with a message containing this text.
    Field(&'static str, &'static str),
    /// The object does not even decode into `BlueGreenRelease` (an unknown enum value); the
    /// serde error mentions this text.
    Undecodable(&'static str),
}

pub struct Case {
    pub name: &'static str,
    pub mutate: fn(&mut Value),
    pub admission: Admission,
    pub controller: Controller,
}

pub use Admission::{Cel, Schema};
pub use Controller::{Field, Undecodable};

fn smoke_test(name: &str) -> Value {
    json!({"name": name, "template": {"spec": {"containers": [{"name": "t", "image": "curl:8"}]}}})
}

fn gate(check: Value) -> Value {
    json!({
        "prometheus": {"address": "http://prometheus:9090"},
        "prePromotion": {"checks": [check]}
    })
}

pub const CASES: &[Case] = &[
    // --- spec.analysis ---
    Case {
        name: "an analysis check without bounds",
        mutate: |o| o["spec"]["analysis"] = gate(json!({"name": "errors", "query": "up"})),
        admission: Cel("an analysis check needs min, max or both"),
        controller: Field(
            "spec.analysis.prePromotion.checks[0]",
            "needs min, max or both",
        ),
    },
    Case {
        name: "an analysis interval that is not a duration",
        mutate: |o| {
            o["spec"]["analysis"] = gate(json!({"name": "errors", "query": "up", "max": 1}));
            o["spec"]["analysis"]["interval"] = json!("15 seconds");
        },
        admission: Schema("spec.analysis.interval", "FieldValueInvalid"),
        controller: Field("spec.analysis.interval", "is not a duration like 15s"),
    },
    // --- CEL rules ---
    Case {
        name: "empty template labels",
        mutate: |o| o["spec"]["template"]["metadata"]["labels"] = json!({}),
        admission: Cel("spec.template.metadata.labels must not be empty"),
        controller: Field("spec.template.metadata.labels", "must not be empty"),
    },
    Case {
        name: "no template labels at all",
        mutate: |o| o["spec"]["template"]["metadata"] = json!({}),
        admission: Cel("spec.template.metadata.labels must not be empty"),
        controller: Field("spec.template.metadata.labels", "must not be empty"),
    },
    Case {
        name: "no containers",
        mutate: |o| o["spec"]["template"]["spec"]["containers"] = json!([]),
        admission: Cel("spec.template.spec.containers must list at least one container"),
        controller: Field("spec.template.spec.containers", "at least one container"),
    },
    Case {
        name: "reserved label in the template",
        mutate: |o| {
            o["spec"]["template"]["metadata"]["labels"]["bluegreen.dev/color"] = json!("blue")
        },
        admission: Cel(
            "spec.template.metadata.labels must not use the reserved prefix 'bluegreen.dev/'",
        ),
        controller: Field(
            "spec.template.metadata.labels",
            "'bluegreen.dev/color' uses the reserved prefix",
        ),
    },
    Case {
        name: "reserved label in the selector",
        mutate: |o| {
            o["spec"]["selector"] =
                json!({"matchLabels": {"app": "web", "bluegreen.dev/release": "web"}})
        },
        admission: Cel(
            "spec.selector.matchLabels must not use the reserved prefix 'bluegreen.dev/'",
        ),
        controller: Field(
            "spec.selector.matchLabels",
            "'bluegreen.dev/release' uses the reserved prefix",
        ),
    },
    Case {
        name: "selector value differs from the template label",
        mutate: |o| o["spec"]["selector"] = json!({"matchLabels": {"app": "api"}}),
        admission: Cel("spec.selector.matchLabels must match spec.template.metadata.labels"),
        controller: Field(
            "spec.selector.matchLabels",
            "'app=api' is not among spec.template.metadata.labels",
        ),
    },
    Case {
        name: "selector key missing from the template",
        mutate: |o| {
            o["spec"]["selector"] = json!({"matchLabels": {"app": "web", "track": "stable"}})
        },
        admission: Cel("spec.selector.matchLabels must match spec.template.metadata.labels"),
        controller: Field(
            "spec.selector.matchLabels",
            "'track=stable' is not among spec.template.metadata.labels",
        ),
    },
    Case {
        name: "standbyReplicas > replicas",
        mutate: |o| {
            o["spec"]["replicas"] = json!(2);
            o["spec"]["standbyReplicas"] = json!(3);
        },
        admission: Cel("spec.standbyReplicas must not exceed spec.replicas"),
        controller: Field(
            "spec.standbyReplicas",
            "between 0 and spec.replicas (2) (is 3)",
        ),
    },
    Case {
        name: "standbyReplicas > default replicas",
        mutate: |o| o["spec"]["standbyReplicas"] = json!(2),
        admission: Cel("spec.standbyReplicas must not exceed spec.replicas"),
        controller: Field(
            "spec.standbyReplicas",
            "between 0 and spec.replicas (1) (is 2)",
        ),
    },
    Case {
        name: "duplicate smoke test names",
        mutate: |o| {
            let first = o["spec"]["smokeTests"][0].clone();
            o["spec"]["smokeTests"].as_array_mut().unwrap().push(first);
        },
        admission: Cel("spec.smokeTests names must be unique"),
        controller: Field("spec.smokeTests[1].name", "'http-get' is listed twice"),
    },
    Case {
        name: "previewName equal to service.name",
        mutate: |o| o["spec"]["service"]["previewName"] = json!("web"),
        admission: Cel("spec.service.previewName must differ from spec.service.name"),
        controller: Field(
            "spec.service.previewName",
            "must differ from spec.service.name",
        ),
    },
    Case {
        name: "service.name equal to the default preview name",
        mutate: |o| o["spec"]["service"]["name"] = json!("web-preview"),
        admission: Cel("spec.service.name must differ from the default preview Service name"),
        controller: Field("spec.service.name", "set spec.service.previewName"),
    },
    Case {
        name: "release name longer than 55",
        mutate: |o| o["metadata"]["name"] = json!("a".repeat(56)),
        admission: Cel("metadata.name must be at most 55 characters"),
        controller: Field("metadata.name", "must be at most 55 characters (is 56)"),
    },
    Case {
        name: "release name plus smoke test name longer than 53",
        mutate: |o| {
            o["metadata"]["name"] = json!("r".repeat(30));
            o["spec"]["smokeTests"][0]["name"] = json!("t".repeat(24));
        },
        admission: Cel("metadata.name plus a smoke test name must be at most 53 characters"),
        controller: Field("spec.smokeTests[0].name", "must be at most 53 characters"),
    },
    // --- OpenAPI schema ---
    Case {
        name: "port 0",
        mutate: |o| o["spec"]["service"]["ports"][0]["port"] = json!(0),
        admission: Schema("spec.service.ports[0].port", "FieldValueInvalid"),
        controller: Field("spec.service.ports[0].port", "between 1 and 65535 (is 0)"),
    },
    Case {
        name: "port 70000",
        mutate: |o| o["spec"]["service"]["ports"][0]["port"] = json!(70000),
        admission: Schema("spec.service.ports[0].port", "FieldValueInvalid"),
        controller: Field(
            "spec.service.ports[0].port",
            "between 1 and 65535 (is 70000)",
        ),
    },
    Case {
        name: "duplicate port",
        mutate: |o| {
            o["spec"]["service"]["ports"] = json!([
                {"name": "http", "port": 80},
                {"name": "http-alt", "port": 80, "protocol": "TCP"}
            ])
        },
        admission: Schema("spec.service.ports[1]", "FieldValueDuplicate"),
        controller: Field("spec.service.ports[1].port", "port 80 is listed twice"),
    },
    Case {
        name: "more than 32 ports",
        mutate: |o| {
            o["spec"]["service"]["ports"] = (0..33)
                .map(|i| json!({"name": format!("p{i}"), "port": 8000 + i}))
                .collect()
        },
        admission: Schema("spec.service.ports", "FieldValueTooMany"),
        controller: Field("spec.service.ports", "at most 32 ports (has 33)"),
    },
    Case {
        name: "port name with uppercase",
        mutate: |o| o["spec"]["service"]["ports"][0]["name"] = json!("HTTP"),
        admission: Schema("spec.service.ports[0].name", "FieldValueInvalid"),
        controller: Field("spec.service.ports[0].name", "'HTTP' must be"),
    },
    Case {
        name: "port name longer than 15",
        mutate: |o| o["spec"]["service"]["ports"][0]["name"] = json!("a".repeat(16)),
        admission: Schema("spec.service.ports[0].name", "FieldValueTooLong"),
        controller: Field("spec.service.ports[0].name", "at most 15"),
    },
    Case {
        name: "unknown port protocol",
        mutate: |o| o["spec"]["service"]["ports"][0]["protocol"] = json!("HTTP"),
        admission: Schema("spec.service.ports[0].protocol", "FieldValueNotSupported"),
        controller: Undecodable("HTTP"),
    },
    Case {
        name: "progressDeadlineSeconds 0",
        mutate: |o| o["spec"]["progressDeadlineSeconds"] = json!(0),
        admission: Schema("spec.progressDeadlineSeconds", "FieldValueInvalid"),
        controller: Field("spec.progressDeadlineSeconds", "at least 1 (is 0)"),
    },
    Case {
        name: "scaleDownDelaySeconds -1",
        mutate: |o| o["spec"]["scaleDownDelaySeconds"] = json!(-1),
        admission: Schema("spec.scaleDownDelaySeconds", "FieldValueInvalid"),
        controller: Field("spec.scaleDownDelaySeconds", "at least 0 (is -1)"),
    },
    Case {
        name: "minReadySeconds -1",
        mutate: |o| o["spec"]["minReadySeconds"] = json!(-1),
        admission: Schema("spec.minReadySeconds", "FieldValueInvalid"),
        controller: Field("spec.minReadySeconds", "at least 0 (is -1)"),
    },
    Case {
        name: "autoPromoteAfterSeconds -1",
        mutate: |o| o["spec"]["promotion"] = json!({"autoPromoteAfterSeconds": -1}),
        admission: Schema(
            "spec.promotion.autoPromoteAfterSeconds",
            "FieldValueInvalid",
        ),
        controller: Field(
            "spec.promotion.autoPromoteAfterSeconds",
            "at least 0 (is -1)",
        ),
    },
    Case {
        name: "replicas 0",
        mutate: |o| o["spec"]["replicas"] = json!(0),
        admission: Schema("spec.replicas", "FieldValueInvalid"),
        controller: Field("spec.replicas", "at least 1 (is 0)"),
    },
    Case {
        name: "previewReplicas 0",
        mutate: |o| o["spec"]["previewReplicas"] = json!(0),
        admission: Schema("spec.previewReplicas", "FieldValueInvalid"),
        controller: Field("spec.previewReplicas", "at least 1 (is 0)"),
    },
    Case {
        name: "revisionHistoryLimit 0",
        mutate: |o| o["spec"]["revisionHistoryLimit"] = json!(0),
        admission: Schema("spec.revisionHistoryLimit", "FieldValueInvalid"),
        controller: Field("spec.revisionHistoryLimit", "between 1 and 100 (is 0)"),
    },
    Case {
        name: "revisionHistoryLimit 101",
        mutate: |o| o["spec"]["revisionHistoryLimit"] = json!(101),
        admission: Schema("spec.revisionHistoryLimit", "FieldValueInvalid"),
        controller: Field("spec.revisionHistoryLimit", "between 1 and 100 (is 101)"),
    },
    Case {
        name: "empty version",
        mutate: |o| o["spec"]["version"] = json!(""),
        admission: Schema("spec.version", "FieldValueInvalid"),
        controller: Field("spec.version", "1 to 128 characters"),
    },
    Case {
        name: "version longer than 128",
        mutate: |o| o["spec"]["version"] = json!("v".repeat(129)),
        admission: Schema("spec.version", "FieldValueTooLong"),
        controller: Field("spec.version", "1 to 128 characters"),
    },
    Case {
        name: "unknown promotion mode",
        mutate: |o| o["spec"]["promotion"] = json!({"mode": "Sometimes"}),
        admission: Schema("spec.promotion.mode", "FieldValueNotSupported"),
        controller: Undecodable("Sometimes"),
    },
    Case {
        name: "service name with uppercase and underscore",
        mutate: |o| o["spec"]["service"]["name"] = json!("Web_Svc"),
        admission: Schema("spec.service.name", "FieldValueInvalid"),
        controller: Field("spec.service.name", "'Web_Svc' must be a DNS-1035 label"),
    },
    Case {
        name: "service name starting with a digit",
        mutate: |o| o["spec"]["service"]["name"] = json!("1web"),
        admission: Schema("spec.service.name", "FieldValueInvalid"),
        controller: Field("spec.service.name", "'1web' must be a DNS-1035 label"),
    },
    Case {
        name: "service name longer than 63",
        mutate: |o| o["spec"]["service"]["name"] = json!("s".repeat(64)),
        admission: Schema("spec.service.name", "FieldValueTooLong"),
        controller: Field("spec.service.name", "must be a DNS-1035 label"),
    },
    Case {
        name: "previewName not a DNS-1035 label",
        mutate: |o| o["spec"]["service"]["previewName"] = json!("web-Next"),
        admission: Schema("spec.service.previewName", "FieldValueInvalid"),
        controller: Field(
            "spec.service.previewName",
            "'web-Next' must be a DNS-1035 label",
        ),
    },
    Case {
        name: "empty selector",
        mutate: |o| o["spec"]["selector"] = json!({"matchLabels": {}}),
        admission: Schema("spec.selector.matchLabels", "FieldValueInvalid"),
        controller: Field("spec.selector.matchLabels", "must not be empty"),
    },
    Case {
        name: "selector value longer than a label value may be",
        mutate: |o| {
            let long = "v".repeat(64);
            o["spec"]["template"]["metadata"]["labels"]["app"] = json!(long);
            o["spec"]["selector"] = json!({"matchLabels": {"app": long}});
        },
        admission: Schema("spec.selector.matchLabels.app", "FieldValueTooLong"),
        controller: Field("spec.selector.matchLabels", "at most 63 characters"),
    },
    Case {
        name: "selector with more than 16 labels",
        mutate: |o| {
            let labels: serde_json::Map<String, Value> =
                (0..17).map(|i| (format!("l{i}"), json!("x"))).collect();
            o["spec"]["template"]["metadata"]["labels"] = Value::Object(labels.clone());
            o["spec"]["selector"] = json!({"matchLabels": labels});
        },
        admission: Schema("spec.selector.matchLabels", "FieldValueTooMany"),
        controller: Field("spec.selector.matchLabels", "at most 16 labels (has 17)"),
    },
    Case {
        name: "smoke test name with uppercase",
        mutate: |o| o["spec"]["smokeTests"][0]["name"] = json!("HTTP-get"),
        admission: Schema("spec.smokeTests[0].name", "FieldValueInvalid"),
        controller: Field("spec.smokeTests[0].name", "'HTTP-get' must be a DNS label"),
    },
    Case {
        name: "smoke test name longer than 40",
        mutate: |o| o["spec"]["smokeTests"][0]["name"] = json!("t".repeat(41)),
        admission: Schema("spec.smokeTests[0].name", "FieldValueTooLong"),
        controller: Field("spec.smokeTests[0].name", "at most 40"),
    },
    Case {
        name: "more than 16 smoke tests",
        mutate: |o| {
            o["spec"]["smokeTests"] = (0..17).map(|i| smoke_test(&format!("t{i}"))).collect()
        },
        admission: Schema("spec.smokeTests", "FieldValueTooMany"),
        controller: Field("spec.smokeTests", "at most 16 tests (has 17)"),
    },
    Case {
        name: "smoke test template without containers",
        mutate: |o| o["spec"]["smokeTests"][0]["template"]["spec"]["containers"] = json!([]),
        admission: Schema(
            "spec.smokeTests[0].template.spec.containers",
            "FieldValueInvalid",
        ),
        controller: Field(
            "spec.smokeTests[0].template.spec.containers",
            "at least one container",
        ),
    },
    Case {
        name: "smoke test container without image",
        mutate: |o| {
            o["spec"]["smokeTests"][0]["template"]["spec"]["containers"] = json!([{"name": "t"}])
        },
        admission: Schema(
            "spec.smokeTests[0].template.spec.containers[0].image",
            "FieldValueRequired",
        ),
        controller: Field(
            "spec.smokeTests[0].template.spec.containers[0].image",
            "must be set",
        ),
    },
    Case {
        name: "smoke test restartPolicy Always",
        mutate: |o| {
            o["spec"]["smokeTests"][0]["template"]["spec"]["restartPolicy"] = json!("Always")
        },
        admission: Schema(
            "spec.smokeTests[0].template.spec.restartPolicy",
            "FieldValueNotSupported",
        ),
        controller: Field(
            "spec.smokeTests[0].template.spec.restartPolicy",
            "Never or OnFailure",
        ),
    },
    Case {
        name: "smoke test timeoutSeconds 0",
        mutate: |o| o["spec"]["smokeTests"][0]["timeoutSeconds"] = json!(0),
        admission: Schema("spec.smokeTests[0].timeoutSeconds", "FieldValueInvalid"),
        controller: Field("spec.smokeTests[0].timeoutSeconds", "at least 1 (is 0)"),
    },
    Case {
        name: "smoke test backoffLimit 11",
        mutate: |o| o["spec"]["smokeTests"][0]["backoffLimit"] = json!(11),
        admission: Schema("spec.smokeTests[0].backoffLimit", "FieldValueInvalid"),
        controller: Field(
            "spec.smokeTests[0].backoffLimit",
            "between 0 and 10 (is 11)",
        ),
    },
];

/// The case applied to [`valid`].
pub fn object(case: &Case) -> Value {
    let mut object = valid();
    (case.mutate)(&mut object);
    object
}
