//! Controller memory with many idle (Stable) releases, idle API traffic, and the time to
//! reconcile all of them after a restart (DESIGN §7).
//!
//! Releases (one replica, no smoke test) are created through the API and brought to Stable
//! by the controller itself — the honest way to get the objects it would own — which also
//! gives the create → Stable throughput. At each checkpoint (e.g. 1,000 then 10,000), once
//! the namespace is quiet: VmRSS and VmHWM from `/proc/<pid>/status`, then a window with no
//! change at all, counting the controller's API requests (audit log) and reconciles
//! (`bluegreen_reconcile_total`): an idle controller should do neither.
//!
//! Restart: SIGKILL, start the binary again, and time (from the spawn) until `/readyz`
//! answers 200 and until every release has been reconciled: the gauge
//! `bluegreen_releases{phase}` counts a release once a reconcile of this process has
//! recorded its phase, so its sum reaching N means all N were reconciled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::{Lab, is_stable_on, wait_for, wait_quiet};
use crate::process::{Controller, metric_sum};
use crate::releases::{self, Shape};
use crate::report::Row;
use crate::seed::{Template, seed};
use crate::stats::{fmt_count, fmt_duration, fmt_kib, fmt_rate, ms};

use super::{controller_for, failed, wait_all_stable};

const NS: &str = "bench-idle";
const PREFIX: &str = "idle";
const SHAPE: Shape = Shape {
    replicas: 1,
    smoke_test: false,
    scale_down_delay_seconds: 30,
};
const IDLE_WINDOW: Duration = Duration::from_secs(10);
const ARGO: &str = "Argo Rollouts: 11–14 GB at ~11k rollouts";

pub async fn run(lab: &Lab, cfg: &BenchConfig) -> Vec<Row> {
    let mut controller = match controller_for(lab, cfg, NS).await {
        Ok(c) => c,
        Err(e) => return failed("controller RSS, idle releases", e),
    };
    let mut rows = Vec::new();
    // Through the controller up to the last checkpoint (all of it without checkpoints).
    let mut created = 0;
    let mut via_controller = cfg.idle_checkpoints.clone();
    if via_controller.is_empty() {
        via_controller.push(cfg.idle_releases);
    }
    for target in via_controller {
        match grow(lab, cfg, &mut controller, created, target).await {
            Ok(r) => rows.extend(r),
            Err(e) => {
                rows.extend(failed(
                    &format!("controller RSS, {target} idle releases"),
                    e,
                ));
                return rows;
            }
        }
        created = target;
    }
    if created < cfg.idle_releases {
        match seeded(lab, cfg, &mut controller, created, cfg.idle_releases).await {
            Ok((r, new)) => {
                rows.extend(r);
                controller = new;
            }
            Err(e) => {
                let label = fmt_count(cfg.idle_releases as u64);
                rows.extend(failed(&format!("controller RSS, {label} idle releases"), e));
                return rows;
            }
        }
        created = cfg.idle_releases;
    }
    match restart(lab, cfg, &mut controller, created).await {
        Ok((r, new)) => {
            rows.extend(r);
            controller = new;
        }
        Err(e) => rows.extend(failed("restart", e)),
    }
    controller.stop();
    rows
}

/// Stops the controller, clones releases `from..to` from a Stable one, starts a new
/// controller and waits for its full pass; then memory and idle traffic as in `grow`.
async fn seeded(
    lab: &Lab,
    cfg: &BenchConfig,
    controller: &mut Controller,
    from: usize,
    to: usize,
) -> BenchResult<(Vec<Row>, Controller)> {
    let template = Template::capture(lab, NS, &releases::name(PREFIX, 0))?;
    controller.stop();
    let start = Instant::now();
    let names = (from..to).map(|i| releases::name(PREFIX, i)).collect();
    seed(&lab.client, NS, &template, names, cfg.client_concurrency).await?;
    let seeded_in = start.elapsed();
    let mut fresh = Controller::spawn(
        &cfg.controller_bin,
        &lab.kubeconfig,
        NS,
        cfg.controller_concurrency,
        &cfg.controller_log,
        lab.dir.join(format!("controller-{NS}-{to}.log")),
    )?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(20 * to as u64);
    fresh.wait_serving(Duration::from_secs(30)).await?;
    let full_pass = full_pass(&fresh, to, timeout).await?;
    let stable = lab.count_releases(NS, |r| is_stable_on(r, "1.0.0"));
    let mut rows = settled_rows(lab, cfg, &mut fresh, to).await?;
    rows.insert(
        1,
        Row::new(
            format!("  {} releases seeded, controller start", fmt_count((to - from) as u64)),
            format!(
                "seeded {}, full pass {}, {} Stable",
                fmt_duration(seeded_in),
                fmt_duration(full_pass.0),
                fmt_count(stable as u64)
            ),
        )
        .method("clones of a controller-made Stable release (its field manager), then spawn")
        .data(json!({"seeded": to - from, "seed_ms": ms(seeded_in), "full_pass_ms": ms(full_pass.0), "stable": stable})),
    );
    Ok((rows, fresh))
}

/// Time from spawn until every one of `n` releases has been reconciled (Σ
/// `bluegreen_releases` = n), and `bluegreen_reconcile_total` by then.
async fn full_pass(
    controller: &Controller,
    n: usize,
    timeout: Duration,
) -> BenchResult<(Duration, f64)> {
    let port = controller.metrics_port;
    let started = controller.started;
    wait_for(
        &format!("all {n} releases reconciled"),
        timeout,
        Duration::from_millis(200),
        || async move {
            let text = crate::process::http_get(port, "/metrics").await?.1;
            let seen = metric_sum(&text, "bluegreen_releases", "");
            let reconciles = metric_sum(&text, "bluegreen_reconcile_total", "");
            if seen >= n as f64 {
                Ok((started.elapsed(), reconciles))
            } else {
                Err(format!("{seen}/{n} reconciled"))
            }
        },
    )
    .await
}

/// Creates releases `from..to`, waits for Stable and quiet, reads memory and idle traffic.
async fn grow(
    lab: &Lab,
    cfg: &BenchConfig,
    controller: &mut Controller,
    from: usize,
    to: usize,
) -> BenchResult<Vec<Row>> {
    let timeout = Duration::from_secs(60) + Duration::from_millis(40 * (to - from) as u64);
    let start = Instant::now();
    releases::create_many(
        &lab.client,
        NS,
        PREFIX,
        from..to,
        "1.0.0",
        SHAPE,
        cfg.client_concurrency,
    )
    .await?;
    let created_in = start.elapsed();
    wait_all_stable(lab, controller, NS, to, "1.0.0", timeout).await?;
    let to_stable = start.elapsed();
    let n = to - from;
    let mut rows = settled_rows(lab, cfg, controller, to).await?;
    rows.insert(
        1,
        Row::new(
            format!("  {} releases created → Stable", fmt_count(n as u64)),
            format!(
                "{} ({})",
                fmt_duration(to_stable),
                fmt_rate(n as f64 / to_stable.as_secs_f64(), "rel")
            ),
        )
        .method(format!(
            "bench creates at concurrency {} (took {}), no smoke test",
            cfg.client_concurrency,
            fmt_duration(created_in)
        ))
        .data(json!({"created": n, "create_ms": ms(created_in), "to_stable_ms": ms(to_stable)})),
    );
    Ok(rows)
}

/// Once quiet: memory, then an idle window counting API requests and reconciles.
async fn settled_rows(
    lab: &Lab,
    _cfg: &BenchConfig,
    controller: &mut Controller,
    to: usize,
) -> BenchResult<Vec<Row>> {
    let quiet = wait_quiet(lab, NS, Duration::from_secs(3), Duration::from_secs(60)).await;
    let memory = controller.memory()?;

    // The idle window: nothing changes; count what the controller does anyway.
    let seq = lab.server.audit_next_seq();
    let reconciles_before = controller.reconciles().await?;
    tokio::time::sleep(IDLE_WINDOW).await;
    let reconciles = controller.reconciles().await? - reconciles_before;
    let requests: Vec<_> = lab
        .audit_since(seq)
        .into_iter()
        .filter(|e| e.namespace == NS || e.namespace.is_empty())
        .collect();
    let window = IDLE_WINDOW.as_secs_f64();
    let label = fmt_count(to as u64);
    Ok(vec![
        Row::new(
            format!("controller RSS, {label} idle releases"),
            format!(
                "{} (peak VmHWM {})",
                fmt_kib(memory.rss_kib),
                fmt_kib(memory.hwm_kib)
            ),
        )
        .reference(ARGO)
        .method("VmRSS of /proc/<pid>/status once Stable and quiet")
        .data(json!({
            "releases": to,
            "memory": memory.json(),
            "rss_per_release_kib": memory.rss_kib as f64 / to as f64,
        })),
        Row::new(
            format!("  idle traffic at {label} releases"),
            format!(
                "{:.1} API req/s, {:.1} reconciles/s",
                requests.len() as f64 / window,
                reconciles / window
            ),
        )
        .reference("target: 0 (no polling)")
        .method(format!(
            "audit log + bluegreen_reconcile_total over {window:.0} s{}",
            if quiet.is_err() {
                " (namespace never went quiet)"
            } else {
                ""
            }
        ))
        .data(json!({
            "window_s": window,
            "requests": requests.len(),
            "reconciles": reconciles,
            "went_quiet": quiet.is_ok(),
        })),
    ])
}

/// Kills the controller, starts a new one, and times readiness and the full pass.
async fn restart(
    lab: &Lab,
    cfg: &BenchConfig,
    controller: &mut Controller,
    n: usize,
) -> BenchResult<(Vec<Row>, Controller)> {
    controller.kill();
    let seq = lab.server.audit_next_seq();
    let mut fresh = Controller::spawn(
        &cfg.controller_bin,
        &lab.kubeconfig,
        NS,
        cfg.controller_concurrency,
        &cfg.controller_log,
        lab.dir.join(format!("controller-{NS}-restarted.log")),
    )?;
    let timeout = Duration::from_secs(60) + Duration::from_millis(20 * n as u64);
    fresh.wait_serving(Duration::from_secs(30)).await?;
    let port = fresh.metrics_port;
    // Readiness is polled alongside the full pass; `None` if it never came.
    let ready_at: Arc<Mutex<Option<Duration>>> = Arc::default();
    let ready_probe = {
        let ready_at = ready_at.clone();
        let started = fresh.started;
        tokio::spawn(async move {
            loop {
                if let Ok((200, _)) = crate::process::http_get(port, "/readyz").await {
                    *ready_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let (all, reconciles) = full_pass(&fresh, n, timeout).await?;
    let memory_at_all = fresh.memory()?;
    // Give readiness a moment more than the full pass, then stop polling it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    ready_probe.abort();
    let ready = *ready_at.lock().unwrap_or_else(|e| e.into_inner());
    let ready_text = ready.map_or_else(|| "never (/readyz 503)".to_string(), fmt_duration);
    let _ = wait_quiet(lab, NS, Duration::from_secs(2), Duration::from_secs(30)).await;
    let requests = lab.audit_since(seq);
    let count = |pred: &dyn Fn(&str) -> bool| requests.iter().filter(|e| pred(&e.verb)).count();
    let writes = requests.iter().filter(|e| e.is_write()).count();
    let mut by_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for e in requests.iter().filter(|e| e.is_write() || e.verb == "get") {
        let sub = if e.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", e.subresource)
        };
        *by_kind
            .entry(format!("{} {}{sub}", e.verb, e.resource))
            .or_default() += 1;
    }
    let breakdown = by_kind
        .iter()
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let reads = count(&|v| v == "get");
    let lists = count(&|v| v == "list");
    let watches = count(&|v| v == "watch");
    let memory = fresh.memory()?;
    let label = fmt_count(n as u64);
    let rows = vec![
        Row::new(
            format!("restart with {label} idle releases"),
            format!(
                "ready {ready_text}, all {label} reconciled {}",
                fmt_duration(all)
            ),
        )
        .reference("Argo Rollouts flaps at ~10k rollouts with 16 GiB")
        .method("SIGKILL, respawn → /readyz 200; → Σ bluegreen_releases = N")
        .data(json!({
            "releases": n,
            "ready_ms": ready.map(ms),
            "all_reconciled_ms": ms(all),
            "reconciles_by_then": reconciles,
        })),
        Row::new(
            "  restart: API requests",
            format!(
                "{writes} writes, {reads} gets, {lists} lists, {watches} watches{}",
                if breakdown.is_empty() {
                    String::new()
                } else {
                    format!(" ({breakdown})")
                }
            ),
        )
        .reference("target: 0 writes for Stable releases")
        .method("kubesim audit log, spawn → all reconciled + 2 s quiet")
        .data(json!({"writes": writes, "writes_by_kind": by_kind, "gets": reads, "lists": lists, "watches": watches})),
        Row::new(
            format!("  controller RSS after restart, {label}"),
            format!(
                "{} (peak VmHWM {})",
                fmt_kib(memory.rss_kib),
                fmt_kib(memory.hwm_kib)
            ),
        )
        .reference(ARGO)
        .method("VmRSS/VmHWM of the new process after its full pass")
        .data(json!({"memory": memory.json(), "memory_at_full_pass": memory_at_all.json()})),
    ];
    Ok((rows, fresh))
}
