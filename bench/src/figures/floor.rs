//! The physical floor of a flip: one bare PATCH of a Service's selector by a kube-rs
//! client, round trip, against the same in-process kubesim — the same request the
//! controller's flip makes (server-side apply of the selector), with nothing before it.

use std::time::Instant;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::Lab;
use crate::releases::BENCH_MANAGER;
use crate::report::Row;
use crate::stats::{Samples, fmt_p50_p99};

const NS: &str = "bench-floor";

fn body(color: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "floor"},
        "spec": {
            "selector": {"app": "floor", "bluegreen.dev/color": color},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]
        }
    })
}

/// `samples` sequential PATCH round trips (after a few warm-up ones).
pub async fn measure(lab: &Lab, cfg: &BenchConfig) -> BenchResult<Samples> {
    lab.create_namespace(NS).await?;
    let api: Api<Service> = Api::namespaced(lab.client.clone(), NS);
    let params = PatchParams::apply(BENCH_MANAGER).force();
    let mut samples = Vec::with_capacity(cfg.patch_samples);
    for i in 0..cfg.patch_samples + 20 {
        let color = if i % 2 == 0 { "green" } else { "blue" };
        let start = Instant::now();
        api.patch("floor", &params, &Patch::Apply(body(color)))
            .await
            .map_err(|e| format!("PATCH Service floor: {e}"))?;
        if i >= 20 {
            samples.push(start.elapsed());
        }
    }
    Ok(Samples::new(samples))
}

pub fn row(floor: &Samples) -> Row {
    Row::new("bare Service PATCH round trip (floor)", fmt_p50_p99(floor))
        .reference("physical floor of a flip")
        .method(format!(
            "kube-rs SSA PATCH of a selector, {} sequential, idle kubesim",
            floor.len()
        ))
        .data(floor.json())
}
