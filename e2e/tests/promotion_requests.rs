//! The API requests of one uneventful promotion, counted by the cluster itself — kubesim's
//! audit endpoint, or the upstream API server's audit log — with the definition of `make
//! bench`'s figure (`bench/src/figures/requests.rs`): a Stable release (one smoke test,
//! scaleDownDelaySeconds 1) upgraded to a new image, until it is Stable again with the
//! previous color scaled down and the controller quiet. Watches are streams, not round
//! trips, and are left out. The table goes to stderr and to
//! `target/promotion-requests.<backend>.json`, so the two backends' figures can be set side
//! by side; the test asserts what a promotion must do, not how fast.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bluegreen_crd::Color;
use bluegreen_e2e::fixture::{Fixture, release};
use bluegreen_e2e::repo_root;
use kubesim::AuditEntry;
use serde_json::json;

fn by_controller(e: &AuditEntry) -> bool {
    e.user_agent.contains("bluegreen-controller") && e.verb != "watch"
}

/// Waits until the controller has made no request for `quiet`; its requests since `since`.
async fn quiet_requests(f: &Fixture, since: u64, quiet: Duration) -> Vec<AuditEntry> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    let mut last_change = Instant::now();
    loop {
        let now: Vec<AuditEntry> = f
            .env
            .audit_since(since)
            .into_iter()
            .filter(by_controller)
            .collect();
        if now.len() != seen {
            seen = now.len();
            last_change = Instant::now();
        } else if last_change.elapsed() >= quiet {
            return now;
        }
        assert!(Instant::now() < deadline, "the controller never went quiet");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn describe(e: &AuditEntry) -> String {
    let resource = if e.subresource.is_empty() {
        e.resource.clone()
    } else {
        format!("{}/{}", e.resource, e.subresource)
    };
    format!("{} {resource}", e.verb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uneventful_promotion_costs_a_few_requests() {
    let f = Fixture::start("promotion-requests").await;
    let backend = if f.env.kubesim().is_some() {
        "kubesim"
    } else {
        "upstream"
    };
    let _controller = f.env.start_controller().unwrap();
    let with_delay = |image: &str| {
        let mut r = release(image, 0);
        r["spec"]["scaleDownDelaySeconds"] = json!(1);
        r
    };
    f.apply(&with_delay("registry.example.com/shop:1.0.0"));
    let first = f.stable("1.0.0").await;
    let old_color = first.active_color.unwrap();
    quiet_requests(&f, 0, Duration::from_secs(2)).await;

    let since = f.env.audit_next_seq();
    f.apply(&with_delay("registry.example.com/shop:2.0.0"));
    f.stable("2.0.0").await;
    bluegreen_e2e::eventually(
        "the previous color scaled down",
        Duration::from_secs(60),
        || async {
            match f.rs_replicas(old_color).await {
                0 => Ok(Some(())),
                n => Err(format!("{n} replicas")),
            }
        },
    )
    .await
    .unwrap();
    let requests = quiet_requests(&f, since, Duration::from_secs(3)).await;

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in &requests {
        *counts.entry(describe(e)).or_default() += 1;
    }
    let writes = requests.iter().filter(|e| e.is_write()).count();
    eprintln!(
        "one uneventful promotion on {backend}: {} requests ({writes} writes)",
        requests.len()
    );
    for (what, n) in &counts {
        eprintln!("  {n:>3} × {what}");
    }
    let report = json!({
        "backend": backend,
        "requests": requests.len(),
        "writes": writes,
        "by_request": counts,
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    std::fs::write(
        target.join(format!("promotion-requests.{backend}.json")),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();

    // What a promotion must do, once each: one Job for the one smoke test; the new color
    // written; the active Service flipped; the previous color scaled down — and every
    // request of the controller answered without an error.
    let refused: Vec<String> = requests
        .iter()
        .filter(|e| e.code >= 400)
        .map(|e| format!("{} {} → {}", describe(e), e.name, e.code))
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let jobs_created = requests
        .iter()
        .filter(|e| e.resource == "jobs" && e.verb == "create")
        .count();
    assert_eq!(jobs_created, 1, "{counts:#?}");
    let new_color = old_color.other();
    let rs_writes = |color: Color| {
        requests
            .iter()
            .filter(|e| {
                e.resource == "replicasets" && e.is_write() && e.name.ends_with(color.as_str())
            })
            .count()
    };
    assert!(
        rs_writes(new_color) >= 1,
        "the new color was never written: {counts:#?}"
    );
    assert!(
        rs_writes(old_color) >= 1,
        "the old color was never scaled down: {counts:#?}"
    );
    let service_writes = requests
        .iter()
        .filter(|e| e.resource == "services" && e.is_write())
        .count();
    assert!(
        service_writes >= 2,
        "the preview pointed and the active flipped: {counts:#?}"
    );
}
