//! Rollback latency (DESIGN §7): request → the active Service selecting the warm previous
//! color. A release with one smoke test is upgraded 1.0.0 → 2.0.0 (scaleDownDelaySeconds
//! 3600 keeps the previous color warm), then rolled back repeatedly, alternating colors:
//! - action: `bluegreen.dev/action: rollback` + a fresh `bluegreen.dev/action-id`;
//! - GitOps revert: the spec's image set back to the other version.
//!
//! t0 is taken by the bench just before it sends the request (so the figure includes that
//! PATCH's round trip); t1 is when kubesim stores the active Service with the other color
//! (store timeline). Before the next round the bench waits, reading the store, until the
//! controller has finished recording it (no rollout in progress, action consumed).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::{Lab, wait_for};
use crate::releases::{self, Shape};
use crate::report::Row;
use crate::stats::{Samples, fmt_p50_p99};
use crate::timeline::MarkKind;

use super::{controller_for, failed};

const NS: &str = "bench-rollback";
const SHAPE: Shape = Shape {
    replicas: 1,
    smoke_test: true,
    scale_down_delay_seconds: 3600,
};
const ROUND_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Action,
    Revert,
}

pub async fn run(lab: &Lab, cfg: &BenchConfig) -> Vec<Row> {
    let mut controller = match controller_for(lab, cfg, NS).await {
        Ok(c) => c,
        Err(e) => return failed("rollback latency", e),
    };
    let mut rows = Vec::new();
    for (kind, prefix, figure, method) in [
        (
            Kind::Action,
            "rb-action",
            "rollback latency (action annotation)",
            "bench sends the annotation PATCH → active Service selector stored",
        ),
        (
            Kind::Revert,
            "rb-revert",
            "rollback latency (GitOps revert of the image)",
            "bench sends the spec PATCH → active Service selector stored",
        ),
    ] {
        match measure(lab, cfg, &mut controller, kind, prefix).await {
            Ok((samples, error)) => {
                let mut value = fmt_p50_p99(&samples);
                if let Some(e) = &error {
                    value.push_str(&format!(" [stopped after {}: {e}]", samples.len()));
                }
                rows.push(
                    Row::new(figure, value)
                        .reference("target: ≈ one reconcile + one PATCH")
                        .method(format!("{method}, {} alternating", samples.len()))
                        .data(json!({"latency": samples.json(), "error": error})),
                );
            }
            Err(e) => rows.extend(failed(figure, e)),
        }
    }
    controller.stop();
    rows
}

fn settled(release: &Value, kind: Kind, id: &str, version: &str) -> bool {
    let status = &release["status"];
    let idle = status["rollout"].is_null();
    match kind {
        Kind::Action => {
            idle && status["lastAction"]["id"] == id
                && release["metadata"]["annotations"]
                    .get("bluegreen.dev/action-id")
                    .is_none()
        }
        Kind::Revert => idle && status["activeVersion"] == version && status["phase"] == "Stable",
    }
}

/// The latencies, and the error that ended the rounds early, if any.
async fn measure(
    lab: &Lab,
    cfg: &BenchConfig,
    controller: &mut crate::process::Controller,
    kind: Kind,
    prefix: &str,
) -> BenchResult<(Samples, Option<String>)> {
    let name = releases::name(prefix, 0);
    releases::create_many(&lab.client, NS, prefix, 0..1, "1.0.0", SHAPE, 1).await?;
    wait_stable(lab, controller, &name, "1.0.0").await?;
    releases::set_version(&lab.client, NS, &name, "2.0.0").await?;
    wait_stable(lab, controller, &name, "2.0.0").await?;

    let mut samples = Vec::new();
    let mut error = None;
    for round in 0..cfg.rollbacks {
        match one_round(lab, kind, &name, round).await {
            Ok(latency) => samples.push(latency),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    if samples.is_empty() {
        return Err(error.unwrap_or_else(|| "no rollback measured".into()));
    }
    Ok((Samples::new(samples), error))
}

async fn wait_stable(
    lab: &Lab,
    controller: &mut crate::process::Controller,
    name: &str,
    version: &str,
) -> BenchResult<()> {
    wait_for(
        &format!("{name} Stable on {version}"),
        Duration::from_secs(60),
        Duration::from_millis(10),
        || {
            let alive = controller.check_alive();
            let ok = lab
                .release(NS, name)
                .is_some_and(|r| crate::lab::is_stable_on(&r, version));
            async move {
                alive?;
                if ok { Ok(()) } else { Err("not yet".into()) }
            }
        },
    )
    .await
}

async fn one_round(lab: &Lab, kind: Kind, name: &str, round: usize) -> BenchResult<Duration> {
    let release = lab.release(NS, name).ok_or("release vanished")?;
    let color = release["status"]["activeColor"]
        .as_str()
        .ok_or("no active color")?
        .to_string();
    let version = release["status"]["activeVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target_version = if version == "1.0.0" { "2.0.0" } else { "1.0.0" };
    let id = format!("bench-{round}");
    let position = lab.timeline.position();
    let t0 = Instant::now();
    match kind {
        Kind::Action => releases::request_rollback(&lab.client, NS, name, &id).await?,
        Kind::Revert => releases::set_version(&lab.client, NS, name, target_version).await?,
    }
    let flipped_at = wait_for(
        &format!("rollback {round} of {name} away from {color}"),
        ROUND_TIMEOUT,
        Duration::from_millis(2),
        || {
            let found = lab.timeline.since(position).into_iter().find_map(|m| {
                let flip = m.namespace == NS
                    && m.name == name
                    && matches!(&m.kind, MarkKind::Selector { color: c, .. } if *c != color);
                flip.then_some(m.at)
            });
            let phase = lab
                .release(NS, name)
                .map(|r| format!("{} {}", r["status"]["phase"], r["status"]["message"]))
                .unwrap_or_default();
            async move { found.ok_or(phase) }
        },
    )
    .await?;
    wait_for(
        &format!("rollback {round} of {name} to be recorded"),
        ROUND_TIMEOUT,
        Duration::from_millis(5),
        || {
            let ok = lab
                .release(NS, name)
                .is_some_and(|r| settled(&r, kind, &id, target_version));
            async move { if ok { Ok(()) } else { Err("not yet".into()) } }
        },
    )
    .await?;
    Ok(flipped_at.saturating_duration_since(t0))
}
