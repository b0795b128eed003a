//! The committed CRD (`make crds`) is exactly what the code generates, and it fits client-side
//! `kubectl apply` (DESIGN §8).

use std::collections::BTreeSet;
use std::path::PathBuf;

use bluegreen_crd::crd::{MAX_CRD_BYTES, crd, crd_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml")
}

fn committed() -> String {
    let path = committed_path();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run `make crds`", path.display()))
}

#[test]
fn committed_yaml_is_up_to_date() {
    let committed = committed();
    let generated = crd_yaml();
    if committed != generated {
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (c, g))| c != g)
            .map(|(i, (c, g))| format!("line {}:\n  committed: {c}\n  generated: {g}", i + 1))
            .unwrap_or_else(|| {
                format!(
                    "lengths differ: committed {} bytes, generated {} bytes",
                    committed.len(),
                    generated.len()
                )
            });
        panic!(
            "{} is stale; run `make crds` and commit the result.\nFirst difference at {first_difference}",
            committed_path().display()
        );
    }
}

#[test]
fn fits_client_side_apply() {
    assert_eq!(MAX_CRD_BYTES, 200 * 1024, "DESIGN §8 budget");
    let yaml = committed();
    assert!(
        yaml.len() < MAX_CRD_BYTES,
        "CRD YAML is {} bytes, over the {MAX_CRD_BYTES}-byte budget",
        yaml.len()
    );
    // Client-side apply stores the object as compact JSON in the last-applied annotation.
    let compact = serde_json::to_string(&crd()).expect("CRD serializes");
    assert!(
        compact.len() < MAX_CRD_BYTES,
        "last-applied JSON is {} bytes, over the {MAX_CRD_BYTES}-byte budget",
        compact.len()
    );
}

#[test]
fn committed_yaml_parses_back_to_the_crd() {
    let parsed: CustomResourceDefinition =
        serde_saphyr::from_str(&committed()).expect("committed YAML is a CustomResourceDefinition");
    if parsed != crd() {
        let parsed = serde_json::to_value(&parsed).expect("serializes");
        let generated = serde_json::to_value(crd()).expect("serializes");
        panic!(
            "committed YAML parses to a different CRD (first difference at {}); run `make crds`",
            first_difference(&parsed, &generated, "")
        );
    }
}

/// JSON pointer of the first place two values differ (a full CRD is too big to print).
fn first_difference(a: &Value, b: &Value, at: &str) -> String {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .find(|k| a.get(*k) != b.get(*k))
                .map(|k| match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, &format!("{at}/{k}")),
                    _ => format!("{at}/{k}"),
                })
                .unwrap_or_else(|| at.to_string())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .map(|i| first_difference(&a[i], &b[i], &format!("{at}/{i}")))
            .unwrap_or_else(|| at.to_string()),
        _ => at.to_string(),
    }
}
