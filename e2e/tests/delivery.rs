//! Delivery metrics (DORA) through a real Prometheus scraping the controller: a release
//! lifecycle (promotions with a commit time, a failed deployment, a fix, rollbacks, a retry)
//! and every PromQL query the README documents returns a finite value.

use bluegreen_crd::{Phase, labels};
use bluegreen_e2e::{
    fixture::{Fixture, TIMEOUT, release},
    prometheus::PrometheusServer,
    repo_root,
};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

/// `release(image)` committed an hour ago (the annotation CI sets).
fn committed(image: &str, exit_code: i32) -> Value {
    let mut manifest = release(image, exit_code);
    let commit = Timestamp::now() - SignedDuration::from_hours(1);
    manifest["metadata"]["annotations"] = json!({labels::COMMIT_TIME: commit.to_string()});
    manifest
}

/// Every expression of the README's ```promql blocks (comments and blank lines skipped).
fn documented_queries() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut queries = Vec::new();
    let mut inside = false;
    for line in readme.lines() {
        match line.trim() {
            "```promql" => inside = true,
            "```" => inside = false,
            text if inside && !text.is_empty() && !text.starts_with('#') => {
                queries.push(text.to_string())
            }
            _ => {}
        }
    }
    queries
}

/// Every PromQL expression of the Grafana dashboard (panel targets and annotations), with its
/// variables as Grafana fills them for "All" and a range long enough to hold the test.
fn dashboard_queries() -> Vec<String> {
    let path = repo_root().join("charts/bluegreen-controller/dashboards/bluegreen.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .expect("annotations")
    {
        queries.push(annotation["expr"].as_str().expect("expr").to_string());
    }
    queries
        .into_iter()
        .map(|q| {
            q.replace("$namespace", ".*")
                .replace("$release", ".*")
                .replace("$__rate_interval", "1h")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dora_queries_answer_for_a_release_lifecycle() {
    let queries = documented_queries();
    assert_eq!(queries.len(), 4, "the four DORA figures: {queries:#?}");
    let f = Fixture::start("delivery").await;
    let controller = f.env.start_controller().unwrap();
    let metrics = controller.metrics_addr(TIMEOUT).expect("metrics address");
    let prometheus = PrometheusServer::scraping(f.env.dir.join("prometheus"), &[&metrics])
        .await
        .expect("prometheus");
    let at_least = |query: &'static str, value: f64| {
        let prometheus = &prometheus;
        async move { prometheus.wait_for_value(query, value).await.unwrap() }
    };

    // Each step waits until Prometheus has scraped its effect, so that every counter and
    // histogram is seen to increase (a series first seen at its final value has no rate).
    f.apply(&committed("shop:1", 0));
    f.stable("1").await;
    at_least(
        r#"sum(bluegreen_deployments_total{outcome="Promoted"})"#,
        1.0,
    )
    .await;
    f.apply(&committed("shop:2", 0));
    f.stable("2").await;
    at_least(
        r#"sum(bluegreen_deployments_total{outcome="Promoted"})"#,
        2.0,
    )
    .await;
    at_least("sum(bluegreen_lead_time_seconds_count)", 2.0).await;

    // A failed deployment, then a fix: a restore.
    f.apply(&committed("shop:3", 1));
    f.status_when("Failed", |s| s.phase == Some(Phase::Failed))
        .await;
    f.apply(&committed("shop:4", 0));
    f.stable("4").await;
    at_least("sum(bluegreen_time_to_restore_seconds_count)", 1.0).await;

    // A rollback (a change failure), a retry forward (a second restore, no failure), and a
    // rollback again.
    for (round, id) in [(1.0, "rollback-1"), (2.0, "rollback-2")] {
        f.request("rollback", id).await;
        f.status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
            .await;
        at_least("sum(bluegreen_change_failures_total)", round).await;
        if round == 1.0 {
            f.request("retry", "retry-1").await;
            f.stable("4").await;
            at_least("sum(bluegreen_time_to_restore_seconds_count)", 2.0).await;
        }
    }
    let failures = prometheus
        .query(r#"sum(bluegreen_change_failures_total{reason="Rollback"})"#)
        .await
        .unwrap();
    assert_eq!(
        failures[0]["value"][1], "2",
        "the retry forward is not a failure"
    );

    // Every dashboard panel has data for what happened (the release-marker annotation too: a
    // version went live within the last minute).
    let dashboard = dashboard_queries();
    assert!(dashboard.len() >= 15, "{dashboard:#?}");
    for query in &dashboard {
        let result = prometheus
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(!result.is_empty(), "an empty panel: {query}");
    }

    for query in &queries {
        let result = prometheus
            .query(query)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert!(!result.is_empty(), "no result for {query}");
        for series in &result {
            let value: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
            assert!(value.is_finite() && value > 0.0, "{query}: {series}");
            eprintln!("dora: {query} = {value}");
        }
    }
}
