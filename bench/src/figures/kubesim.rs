//! kubesim itself ("kubesim must never be the bottleneck"), measured on `kubesim serve`
//! running alone as a child process, so its memory is its own:
//! - creates/s: ConfigMaps (≈256 bytes of data each) created by kube-rs at a fixed
//!   concurrency, until `BENCH_KUBESIM_OBJECTS` are stored;
//! - memory with those objects stored: VmRSS/VmHWM of the process, against its VmRSS
//!   before the first create;
//! - watch fan-out: `BENCH_WATCHERS` kube-rs watch streams on one namespace, then paced
//!   writes; latency is from the moment the writer sends a create to each watcher's
//!   receipt of the ADDED event (so it includes the create's own round trip, reported too).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::{client_for, wait_for};
use crate::process::KubesimProcess;
use crate::report::Row;
use crate::stats::{Samples, fmt_count, fmt_duration, fmt_kib, fmt_p50_p99, fmt_rate};

use super::failed;

const STORE_NS: &str = "default";
const FANOUT_NS: &str = "kube-public";
const PAYLOAD: usize = 256;

pub async fn run(cfg: &BenchConfig) -> Vec<Row> {
    match measure(cfg).await {
        Ok(rows) => rows,
        Err(e) => failed("kubesim", e),
    }
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "kubesim"}},
        "data": {"payload": "x".repeat(PAYLOAD)},
    }))
    .expect("valid ConfigMap")
}

async fn measure(cfg: &BenchConfig) -> BenchResult<Vec<Row>> {
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| e.to_string())?;
    let kubesim = KubesimProcess::spawn(&cfg.kubesim_bin, &cfg.work_dir).await?;
    let client = client_for(&kubesim.url)?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), STORE_NS);
    // Warm the connection and discovery before the baseline.
    cms.list(&ListParams::default().limit(1))
        .await
        .map_err(|e| e.to_string())?;
    let empty = kubesim.memory()?;

    let n = cfg.kubesim_objects;
    let permits = Arc::new(Semaphore::new(cfg.kubesim_concurrency));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    for i in 0..n {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let cms = cms.clone();
        tasks.spawn(async move {
            let r = cms
                .create(&PostParams::default(), &config_map(&format!("cm-{i:06}")))
                .await;
            drop(permit);
            r.map(|_| ()).map_err(|e| e.to_string())
        });
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let create_time = start.elapsed();
    let full = kubesim.memory()?;

    let (fanout, create_rtt) = fanout(&client, cfg).await?;
    let per_object = full.rss_kib.saturating_sub(empty.rss_kib) as f64 * 1024.0 / n.max(1) as f64;
    let label = fmt_count(n as u64);
    Ok(vec![
        Row::new(
            "kubesim creates/s",
            fmt_rate(n as f64 / create_time.as_secs_f64(), "creates"),
        )
        .reference("never the bottleneck")
        .method(format!(
            "{label} ConfigMaps via kube-rs, concurrency {}, kubesim serve alone",
            cfg.kubesim_concurrency
        ))
        .data(json!({"objects": n, "concurrency": cfg.kubesim_concurrency, "seconds": create_time.as_secs_f64()})),
        Row::new(
            format!("kubesim watch fan-out, {} watchers", cfg.watchers),
            fmt_p50_p99(&fanout),
        )
        .reference(format!("create RTT p50 {} included", fmt_duration(create_rtt.p50())))
        .method(format!(
            "writer sends create → watcher receives ADDED, {} writes × {} watchers",
            cfg.fanout_writes, cfg.watchers
        ))
        .data(json!({"latency": fanout.json(), "create_rtt": create_rtt.json(), "watchers": cfg.watchers, "writes": cfg.fanout_writes})),
        Row::new(
            format!("kubesim memory, {label} objects"),
            format!(
                "{} (empty {}, ≈{:.1} KiB/object)",
                fmt_kib(full.rss_kib),
                fmt_kib(empty.rss_kib),
                per_object / 1024.0
            ),
        )
        .reference(format!("{PAYLOAD}-byte ConfigMaps"))
        .method("VmRSS of kubesim serve, /proc/<pid>/status")
        .data(json!({"objects": n, "empty": empty.json(), "full": full.json(), "bytes_per_object": per_object})),
    ])
}

/// Watch fan-out latencies, and the writer's create round trips.
async fn fanout(client: &Client, cfg: &BenchConfig) -> BenchResult<(Samples, Samples)> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), FANOUT_NS);
    let rv = api
        .list(&ListParams::default().limit(1))
        .await
        .map_err(|e| e.to_string())?
        .metadata
        .resource_version
        .unwrap_or_default();
    let writes = cfg.fanout_writes;
    let receipts: Arc<Mutex<Vec<(usize, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(writes * cfg.watchers)));
    let mut watchers = JoinSet::new();
    for _ in 0..cfg.watchers {
        // `watch` returns once the server has answered: the stream is registered.
        let stream = api
            .watch(&WatchParams::default().timeout(290), &rv)
            .await
            .map_err(|e| format!("watch: {e}"))?;
        let receipts = receipts.clone();
        watchers.spawn(async move {
            let mut stream = Box::pin(stream);
            let mut seen = 0;
            while let Some(event) = stream.next().await {
                if let Ok(WatchEvent::Added(cm)) = event {
                    let at = Instant::now();
                    let index = cm
                        .metadata
                        .name
                        .as_deref()
                        .and_then(|n| n.strip_prefix("fan-"))
                        .and_then(|i| i.parse::<usize>().ok());
                    if let Some(i) = index {
                        receipts
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, at));
                        seen += 1;
                        if seen == writes {
                            return;
                        }
                    }
                }
            }
        });
    }
    let mut sent = Vec::with_capacity(writes);
    let mut rtts = Vec::with_capacity(writes);
    for i in 0..writes {
        let t0 = Instant::now();
        sent.push(t0);
        api.create(&PostParams::default(), &config_map(&format!("fan-{i:05}")))
            .await
            .map_err(|e| e.to_string())?;
        rtts.push(t0.elapsed());
        // Paced, so the figure is delivery latency rather than a queue draining.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = writes * cfg.watchers;
    let _ = wait_for(
        "every watcher to receive every write",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let got = receipts.lock().unwrap_or_else(|e| e.into_inner()).len();
            async move {
                if got >= expected {
                    Ok(())
                } else {
                    Err(format!("{got}/{expected}"))
                }
            }
        },
    )
    .await;
    watchers.abort_all();
    let receipts = receipts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if receipts.len() < expected {
        return Err(format!(
            "watch fan-out: {} of {expected} deliveries arrived",
            receipts.len()
        ));
    }
    let latencies = receipts
        .into_iter()
        .map(|(i, at)| at.saturating_duration_since(sent[i]))
        .collect();
    Ok((Samples::new(latencies), Samples::new(rtts)))
}
