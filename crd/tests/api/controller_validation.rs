//! `validate()` beyond the shared table: what only the controller checks, and several problems
//! reported at once.

use bluegreen_crd::validate::{FieldError, validate};
use serde_json::{Value, json};

use crate::fixtures::{full, release, valid};

/// An edit of the valid release.
type Mutation = fn(&mut Value);

fn errors(object: &Value) -> Vec<FieldError> {
    match validate(&release(object)) {
        Ok(()) => Vec::new(),
        Err(invalid) => invalid.0,
    }
}

#[test]
fn valid_releases_pass() {
    assert_eq!(errors(&valid()), []);
    assert_eq!(errors(&full()), []);
}

/// The examples a newcomer applies are valid, the README's analysis example among them.
#[test]
fn the_examples_are_valid() {
    for example in [
        include_str!("../../../examples/web.yaml"),
        include_str!("../../../examples/web-with-analysis.yaml"),
    ] {
        let object: Value = serde_saphyr::from_str(example).expect("an example parses");
        assert_eq!(errors(&object), [], "{object}");
    }
}

/// The queries of an analysis are PromQL, checked with their template variables filled in:
/// a malformed one (which the API server cannot see) stops the release, naming the check.
#[test]
fn analysis_queries_are_parsed_as_promql() {
    let with_query = |query: &str| {
        let mut object = valid();
        object["spec"]["analysis"] = json!({
            "postPromotion": {"duration": "1m", "checks": [{"name": "error-rate", "query": query, "max": 0.01}]}
        });
        errors(&object)
    };
    assert_eq!(
        with_query(
            r#"sum(rate(errors{color="{{color}}"}[1m])) / sum(rate(requests{color="{{color}}"}[1m]))"#
        ),
        []
    );
    let broken = with_query(r#"sum(rate(errors{color="{{color}}"}[1m])"#);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(
        broken[0].field,
        "spec.analysis.postPromotion.checks[0].query"
    );
    assert!(
        broken[0]
            .message
            .contains("check 'error-rate' is not valid PromQL"),
        "{}",
        broken[0].message
    );
    let unknown = with_query(r#"up{color="{{colour}}"}"#);
    assert!(
        unknown[0]
            .message
            .contains("unknown template variable '{{colour}}'"),
        "{unknown:?}"
    );
    let mut object = valid();
    object["spec"]["analysis"] = json!({"interval": "15s"});
    assert_eq!(errors(&object)[0].field, "spec.analysis");
    object["spec"]["analysis"] = json!({
        "prometheus": {"address": "https://prometheus:9090"},
        "prePromotion": {"checks": [
            {"name": "a", "query": "up", "min": 2, "max": 1},
            {"name": "a", "query": "up", "max": 1}
        ]}
    });
    let problems: Vec<String> = errors(&object).iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("https is not supported"));
    assert!(problems[1].contains("min 2 is greater than max 1"));
    assert!(problems[2].contains("'a' is listed twice"));
}

#[test]
fn controller_only_checks() {
    let cases: &[(&str, Mutation, &str, &str)] = &[
        (
            "container without image",
            |o| o["spec"]["template"]["spec"]["containers"] = json!([{"name": "web"}]),
            "spec.template.spec.containers[0].image",
            "must be set",
        ),
        (
            "container with an empty image",
            |o| o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(""),
            "spec.template.spec.containers[0].image",
            "must be set",
        ),
        (
            "two ports without names",
            |o| o["spec"]["service"]["ports"] = json!([{"port": 80}, {"port": 443}]),
            "spec.service.ports[1].name",
            "is required when there is more than one port",
        ),
        (
            "duplicate port names",
            |o| {
                o["spec"]["service"]["ports"] =
                    json!([{"name": "http", "port": 80}, {"name": "http", "port": 8080}])
            },
            "spec.service.ports[1].name",
            "name 'http' is listed twice",
        ),
        (
            "same port with two protocols is fine only with distinct names",
            |o| {
                o["spec"]["service"]["ports"] =
                    json!([{"port": 53, "protocol": "UDP"}, {"port": 53}])
            },
            "spec.service.ports[1].name",
            "is required when there is more than one port",
        ),
        (
            "release name starting with a digit gives an invalid preview name",
            |o| o["metadata"]["name"] = json!("1web"),
            "metadata.name",
            "the preview Service name '1web-preview' must be a DNS-1035 label; set spec.service.previewName",
        ),
    ];
    for (what, mutate, field, message) in cases {
        let mut object = valid();
        mutate(&mut object);
        let errors = errors(&object);
        assert!(
            errors
                .iter()
                .any(|e| e.field == *field && e.message.contains(message)),
            "{what}: expected {field}: ...{message}..., got {errors:#?}"
        );
    }
}

#[test]
fn a_preview_name_fixes_a_release_name_starting_with_a_digit() {
    let mut object = valid();
    object["metadata"]["name"] = json!("1web");
    object["spec"]["service"]["previewName"] = json!("web-preview");
    assert_eq!(errors(&object), []);
}

#[test]
fn several_problems_are_all_reported() {
    let mut object = valid();
    object["metadata"]["name"] = json!("a".repeat(56));
    object["spec"]["replicas"] = json!(0);
    object["spec"]["revisionHistoryLimit"] = json!(101);
    object["spec"]["service"]["ports"] = json!([{"port": 0}, {"port": 80}]);
    object["spec"]["smokeTests"][0]["template"]["spec"]["restartPolicy"] = json!("Always");
    object["spec"]["template"]["metadata"]["labels"]["bluegreen.dev/color"] = json!("blue");

    let fields: Vec<String> = errors(&object).into_iter().map(|e| e.field).collect();
    for expected in [
        "metadata.name",
        "spec.replicas",
        "spec.revisionHistoryLimit",
        "spec.service.ports[0].port",
        "spec.service.ports[1].name",
        "spec.smokeTests[0].name",
        "spec.smokeTests[0].template.spec.restartPolicy",
        "spec.template.metadata.labels",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing from {fields:#?}"
        );
    }
}

#[test]
fn the_error_reads_as_one_actionable_message() {
    let mut object = valid();
    object["spec"]["replicas"] = json!(0);
    object["spec"]["service"]["ports"][0]["port"] = json!(70000);
    let invalid = validate(&release(&object)).expect_err("invalid");
    assert_eq!(
        invalid.to_string(),
        "invalid spec: spec.replicas: must be at least 1 (is 0); \
         spec.service.ports[0].port: must be between 1 and 65535 (is 70000)"
    );
}
