//! Admission parity: what the API server refuses, and how. Every case of the shared
//! invalid-spec table (`crd/tests/api/invalid_spec_cases.rs`) and a table of invalid built-in
//! objects is sent (as a dry-run create) to the suite's cluster. On kubesim the verdict must
//! be the one the table states; on the upstream control plane the same, and equal to the
//! verdict of a kubesim started beside it — status code, reason, and each cause's reason
//! and field — so kubesim refuses what a real API server refuses, the same way.

#[allow(dead_code)] // the controller's verdicts in the table are the crd tests' business
#[path = "../../crd/tests/api/invalid_spec_cases.rs"]
mod invalid_spec_cases;

use std::collections::BTreeSet;

use bluegreen_e2e::Env;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use invalid_spec_cases::{Admission, CASES};

/// What the API server answered to a create.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused {
        code: u16,
        reason: String,
        /// (cause reason, field) of each cause.
        causes: BTreeSet<(String, String)>,
        message: String,
    },
}

impl Verdict {
    /// Equal on everything but the message (wording may differ; what is refused may not).
    fn same_as(&self, other: &Verdict) -> bool {
        match (self, other) {
            (Verdict::Accepted, Verdict::Accepted) => true,
            (
                Verdict::Refused {
                    code,
                    reason,
                    causes,
                    ..
                },
                Verdict::Refused {
                    code: c,
                    reason: r,
                    causes: cs,
                    ..
                },
            ) => code == c && reason == r && causes == cs,
            _ => false,
        }
    }
}

/// A dry-run create of `object` (its namespace replaced by `namespace`): nothing is stored.
async fn verdict(client: &Client, namespace: &str, plural: &str, object: &Value) -> Verdict {
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", object["apiVersion"].as_str().unwrap()),
    };
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let mut object = object.clone();
    object["metadata"]["namespace"] = json!(namespace);
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    match api.create(&params, &object).await {
        Ok(_) => Verdict::Accepted,
        Err(kube::Error::Api(status)) => Verdict::Refused {
            code: status.code,
            reason: status.reason.clone(),
            causes: status
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| (c.reason.clone(), c.field.clone()))
                .collect(),
            message: status.message.clone(),
        },
        Err(other) => panic!("a create of {} failed without an answer: {other}", gvk.kind),
    }
}

/// The suite's cluster, and on the upstream control plane a kubesim beside it.
struct Backends {
    cluster: Env,
    beside: Option<Env>,
}

impl Backends {
    async fn start(test: &str) -> Backends {
        let cluster = Env::start(test).await.unwrap();
        let beside = match cluster.kubesim() {
            Some(_) => None,
            None => Some(Env::start_on_kubesim(test).await.unwrap()),
        };
        Backends { cluster, beside }
    }

    /// The cluster's verdict, after checking that kubesim (if beside) gives the same one.
    async fn verdict(
        &self,
        name: &str,
        plural: &str,
        object: &Value,
        mismatches: &mut Vec<String>,
    ) -> Verdict {
        let cluster = verdict(
            &self.cluster.client,
            &self.cluster.namespace,
            plural,
            object,
        )
        .await;
        if let Some(sim) = &self.beside {
            let simulated = verdict(&sim.client, &sim.namespace, plural, object).await;
            if !simulated.same_as(&cluster) {
                mismatches.push(format!(
                    "{name}: the API server says {cluster:#?}\n  kubesim says {simulated:#?}"
                ));
            }
        }
        cluster
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_spec_is_refused_on_its_field_as_by_the_api_server() {
    let backends = Backends::start("admission-specs").await;
    let mut failures = Vec::new();
    let base = invalid_spec_cases::valid();
    let accepted = backends
        .verdict("the valid base", "bluegreenreleases", &base, &mut failures)
        .await;
    assert_eq!(accepted, Verdict::Accepted, "the base release is refused");
    for case in CASES {
        let object = invalid_spec_cases::object(case);
        let verdict = backends
            .verdict(case.name, "bluegreenreleases", &object, &mut failures)
            .await;
        let expected = match (&verdict, case.admission) {
            (
                Verdict::Refused {
                    code: 422,
                    reason,
                    causes,
                    message,
                },
                expected,
            ) if reason == "Invalid" => match expected {
                Admission::Schema(path, want) => causes
                    .iter()
                    .any(|(reason, field)| field == path && reason == want),
                Admission::Cel(text) => message.contains(text),
            },
            _ => false,
        };
        if !expected {
            failures.push(format!(
                "{}: expected 422 Invalid for {:?}, got {verdict:#?}",
                case.name, case.admission
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// An invalid built-in object and how the API server refuses it.
struct BuiltIn {
    name: &'static str,
    plural: &'static str,
    object: fn() -> Value,
    code: u16,
    reason: &'static str,
    /// The field of one of the causes (none for a body that does not decode).
    field: Option<&'static str>,
}

fn replica_set(replicas: Value, selector: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-blue"},
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}
            }
        }
    })
}

fn service(ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": ports}
    })
}

fn job(restart_policy: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "web-smoke"},
        "spec": {"template": {"spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "t", "image": "curl:8"}]
        }}}
    })
}

fn config_map(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"a": "b"}
    })
}

const BUILT_INS: &[BuiltIn] = &[
    BuiltIn {
        name: "a valid ReplicaSet",
        plural: "replicasets",
        object: || replica_set(json!(2), json!({"matchLabels": {"app": "web"}})),
        code: 0,
        reason: "",
        field: None,
    },
    BuiltIn {
        name: "ReplicaSet replicas: \"many\"",
        plural: "replicasets",
        object: || replica_set(json!("many"), json!({"matchLabels": {"app": "web"}})),
        code: 400,
        reason: "BadRequest",
        field: None,
    },
    BuiltIn {
        name: "ReplicaSet replicas: -1",
        plural: "replicasets",
        object: || replica_set(json!(-1), json!({"matchLabels": {"app": "web"}})),
        code: 422,
        reason: "Invalid",
        field: Some("spec.replicas"),
    },
    BuiltIn {
        name: "ReplicaSet whose selector does not match its template",
        plural: "replicasets",
        object: || replica_set(json!(1), json!({"matchLabels": {"app": "api"}})),
        code: 422,
        reason: "Invalid",
        field: Some("spec.template.metadata.labels"),
    },
    BuiltIn {
        name: "ReplicaSet with an empty selector",
        plural: "replicasets",
        object: || replica_set(json!(1), json!({})),
        code: 422,
        reason: "Invalid",
        field: Some("spec.selector"),
    },
    BuiltIn {
        name: "ReplicaSet container without an image",
        plural: "replicasets",
        object: || {
            let mut rs = replica_set(json!(1), json!({"matchLabels": {"app": "web"}}));
            rs["spec"]["template"]["spec"]["containers"] = json!([{"name": "web"}]);
            rs
        },
        code: 422,
        reason: "Invalid",
        field: Some("spec.template.spec.containers[0].image"),
    },
    BuiltIn {
        name: "Service port 70000",
        plural: "services",
        object: || service(json!([{"port": 70000}])),
        code: 422,
        reason: "Invalid",
        field: Some("spec.ports[0].port"),
    },
    BuiltIn {
        name: "Service without ports",
        plural: "services",
        object: || service(json!([])),
        code: 422,
        reason: "Invalid",
        field: Some("spec.ports"),
    },
    BuiltIn {
        name: "Service with two unnamed ports",
        plural: "services",
        object: || service(json!([{"port": 80}, {"port": 81}])),
        code: 422,
        reason: "Invalid",
        field: Some("spec.ports[0].name"),
    },
    BuiltIn {
        name: "Job restartPolicy Always",
        plural: "jobs",
        object: || job("Always"),
        code: 422,
        reason: "Invalid",
        field: Some("spec.template.spec.restartPolicy"),
    },
    BuiltIn {
        name: "ConfigMap named Bad_Name",
        plural: "configmaps",
        object: || config_map("Bad_Name", json!({})),
        code: 422,
        reason: "Invalid",
        field: Some("metadata.name"),
    },
    BuiltIn {
        name: "ConfigMap with a label value of spaces",
        plural: "configmaps",
        object: || config_map("ok", json!({"app": "not a value"})),
        code: 422,
        reason: "Invalid",
        field: Some("metadata.labels"),
    },
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_built_in_objects_are_refused_as_by_the_api_server() {
    let backends = Backends::start("admission-builtins").await;
    let mut failures = Vec::new();
    for case in BUILT_INS {
        let verdict = backends
            .verdict(case.name, case.plural, &(case.object)(), &mut failures)
            .await;
        let expected = match &verdict {
            Verdict::Accepted => case.code == 0,
            Verdict::Refused {
                code,
                reason,
                causes,
                ..
            } => {
                *code == case.code
                    && reason == case.reason
                    && case
                        .field
                        .is_none_or(|f| causes.iter().any(|(_, field)| field == f))
            }
        };
        if !expected {
            failures.push(format!(
                "{}: expected {} {} on {:?}, got {verdict:#?}",
                case.name, case.code, case.reason, case.field
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
