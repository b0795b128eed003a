//! The oldest and the newest kubectl the project supports — 1.32 (built from its Go modules)
//! and 1.37 (the PyPI wheel) — driving a release end to end on the suite's cluster: version
//! negotiation, client-side and server-side apply, the printer columns, `wait`, `logs` of a
//! smoke test (through the API server to the kubelet on the upstream control plane), the
//! plugin's annotations, and a cascading delete.

use std::path::Path;

use bluegreen_e2e::fixture::{Fixture, RELEASE, release};
use bluegreen_e2e::{kubectl_path, old_kubectl_path};
use serde_json::Value;

/// Header columns as kubectl prints them (split on runs of 2+ spaces).
fn header(table: &str) -> Vec<String> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

async fn drive_a_release_with(kubectl: &Path, minor: &str) {
    let f = Fixture::start(&format!("kubectl-1-{minor}")).await;
    let run = |args: &[&str], stdin: Option<&str>| {
        f.env
            .kubectl_program(kubectl, args, stdin)
            .unwrap_or_else(|e| panic!("kubectl 1.{minor}: {e}"))
    };

    let version: Value = serde_json::from_str(&run(&["version", "-o", "json"], None)).unwrap();
    assert_eq!(version["clientVersion"]["minor"], minor, "{version}");
    assert!(
        version["serverVersion"]["gitVersion"].is_string(),
        "no server version: {version}"
    );

    let _controller = f.env.start_controller().unwrap();
    let v1 = release("registry.example.com/shop:1.0.0", 0);
    run(&["apply", "-f", "-"], Some(&v1.to_string()));
    run(
        &[
            "wait",
            "--for=jsonpath={.status.phase}=Stable",
            "--timeout=60s",
            &format!("bgr/{RELEASE}"),
        ],
        None,
    );
    let table = run(&["get", "bgr", RELEASE], None);
    assert_eq!(
        header(&table),
        [
            "NAME", "ACTIVE", "VERSION", "PREVIEW", "PHASE", "READY", "AGE"
        ],
        "{table}"
    );
    assert!(table.contains("Stable"), "{table}");

    // Server-side apply of the next version, as GitOps tools and `kubectl apply
    // --server-side` do, then the smoke test's log through `kubectl logs`.
    let v2 = release("registry.example.com/shop:2.0.0", 0);
    run(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&v2.to_string()),
    );
    f.stable("2.0.0").await;
    let jobs = run(
        &["get", "jobs", "-o", "jsonpath={.items[*].metadata.name}"],
        None,
    );
    let job = jobs
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("kubectl 1.{minor}: no smoke-test Job is kept"));
    let log = run(&["logs", &format!("job/{job}")], None);
    assert!(
        log.contains("GET /checkout"),
        "kubectl 1.{minor} logs: {log:?}"
    );

    // The plugin's protocol is plain annotations: any kubectl can roll back.
    run(
        &[
            "annotate",
            "bgr",
            RELEASE,
            "bluegreen.dev/action=rollback",
            &format!("bluegreen.dev/action-id=kubectl-1-{minor}"),
        ],
        None,
    );
    run(
        &[
            "wait",
            "--for=jsonpath={.status.phase}=RolledBack",
            "--timeout=60s",
            &format!("bgr/{RELEASE}"),
        ],
        None,
    );

    run(
        &["delete", "bgr", RELEASE, "--wait=true", "--timeout=60s"],
        None,
    );
    let left = run(&["get", "bgr", "-o", "name"], None);
    assert!(
        left.trim().is_empty(),
        "kubectl 1.{minor}: still there: {left}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_32_drives_a_release() {
    drive_a_release_with(&old_kubectl_path().unwrap(), "32").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_37_drives_a_release() {
    drive_a_release_with(&kubectl_path().unwrap(), "37").await;
}
