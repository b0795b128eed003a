//! API requests per uneventful promotion (DESIGN §7): one Stable release (one smoke test,
//! scaleDownDelaySeconds 1) upgraded to a new image, until it is Stable again with the
//! previous color scaled down and the controller quiet. Counted from kubesim's audit log
//! (every API request, by verb; the bench's own write is excluded by its field manager, and
//! the bench waits by reading the store directly, so the window holds only the
//! controller's requests). Watches are counted apart: they are streams, not round trips.
//!
//! The minimum (DESIGN §7): create the cold ReplicaSet, point the preview Service, one Job
//! per test, one flip, one scale-down — 5 object writes — plus coalesced status patches:
//! at least one per phase the release visibly passes through. One read is required too:
//! the flip guard re-reads the target ReplicaSet from the API server (invariant 1).

use std::collections::BTreeMap;
use std::time::Duration;

use kubesim::AuditEntry;
use serde_json::json;

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::{Lab, is_stable_on, wait_for, wait_quiet};
use crate::releases::{self, Shape};
use crate::report::Row;
use crate::timeline::MarkKind;

use super::{controller_for, failed, wait_all_stable};

const NS: &str = "bench-promotion";
const NAME: &str = "promo";
const OBJECT_WRITES_MIN: usize = 5;
const FIGURE: &str = "API requests per uneventful promotion";

pub async fn run(lab: &Lab, cfg: &BenchConfig) -> Vec<Row> {
    match measure(lab, cfg).await {
        Ok(rows) => rows,
        Err(e) => failed(FIGURE, e),
    }
}

fn describe(e: &AuditEntry) -> String {
    let mut resource = e.resource.clone();
    if !e.subresource.is_empty() {
        resource = format!("{resource}/{}", e.subresource);
    }
    let verb = if e.patch_type.is_empty() {
        e.verb.clone()
    } else {
        format!("{}({})", e.verb, e.patch_type)
    };
    let name = if e.name.is_empty() { "*" } else { &e.name };
    let code = if e.code >= 400 {
        format!(" → {}", e.code)
    } else {
        String::new()
    };
    format!("{verb} {resource} {name}{code}")
}

/// Distinct requests in order of first occurrence, with `×n` for repeats.
fn grouped(entries: &[&AuditEntry]) -> Vec<String> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let slot = counts.entry(describe(e)).or_insert((i, 0));
        slot.1 += 1;
    }
    let mut ordered: Vec<(String, (usize, usize))> = counts.into_iter().collect();
    ordered.sort_by_key(|(_, (first, _))| *first);
    ordered
        .into_iter()
        .map(|(d, (_, n))| if n > 1 { format!("{d} ×{n}") } else { d })
        .collect()
}

async fn measure(lab: &Lab, cfg: &BenchConfig) -> BenchResult<Vec<Row>> {
    let mut controller = controller_for(lab, cfg, NS).await?;
    let shape = Shape {
        replicas: 1,
        smoke_test: true,
        scale_down_delay_seconds: 1,
    };
    releases::create_many(&lab.client, NS, NAME, 0..1, "1.0.0", shape, 1).await?;
    let name = releases::name(NAME, 0);
    let timeout = Duration::from_secs(60);
    wait_all_stable(lab, &mut controller, NS, 1, "1.0.0", timeout).await?;
    wait_quiet(lab, NS, Duration::from_secs(2), timeout).await?;

    let seq = lab.server.audit_next_seq();
    let position = lab.timeline.position();
    // Every store write, API request or simulated controller alike: what kubesim did for
    // the promotion beyond answering the controller.
    let mut store_events = lab.server.cluster().lock().feed();
    releases::set_version(&lab.client, NS, &name, "2.0.0").await?;
    // Stable on 2.0.0, and the previous color scaled down after the 1 s delay.
    wait_for(
        "the promotion to finish with the previous color scaled down",
        timeout,
        Duration::from_millis(20),
        || {
            let release = lab.release(NS, &name);
            let standby = release
                .as_ref()
                .and_then(|r| r["status"]["standby"]["color"].as_str().map(String::from));
            let scaled_down = standby.as_ref().is_some_and(|color| {
                lab.stored("apps", "replicasets", NS, &format!("{name}-{color}"))
                    .is_some_and(|rs| rs["spec"]["replicas"] == 0)
            });
            let stable = release.as_ref().is_some_and(|r| is_stable_on(r, "2.0.0"));
            async move {
                if stable && scaled_down {
                    Ok(())
                } else {
                    Err(format!(
                        "stable {stable}, standby scaled down {scaled_down}"
                    ))
                }
            }
        },
    )
    .await?;
    wait_quiet(lab, NS, Duration::from_secs(2), timeout).await?;
    let entries = lab.audit_since(seq);
    controller.stop();
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    while let Ok(ev) = store_events.try_recv() {
        if ev.key.namespace == NS {
            *stored.entry(ev.key.gr.resource.clone()).or_default() += 1;
        }
    }
    let stored_total: usize = stored.values().sum();

    let mine: Vec<&AuditEntry> = entries.iter().filter(|e| e.namespace == NS).collect();
    let writes: Vec<&AuditEntry> = mine.iter().copied().filter(|e| e.is_write()).collect();
    let reads: Vec<&AuditEntry> = mine
        .iter()
        .copied()
        .filter(|e| matches!(e.verb.as_str(), "get" | "list"))
        .collect();
    let watches = mine.iter().filter(|e| e.verb == "watch").count();
    let status_writes = writes
        .iter()
        .filter(|e| e.resource == "bluegreenreleases" && e.subresource == "status")
        .count();
    let event_writes = writes.iter().filter(|e| e.resource == "events").count();
    let object_writes = writes.len() - status_writes - event_writes;
    let phases: Vec<String> = lab
        .timeline
        .since(position)
        .into_iter()
        .filter(|m| m.namespace == NS && m.name == name)
        .filter_map(|m| match m.kind {
            MarkKind::Phase(p) => Some(p),
            _ => None,
        })
        .collect();
    let by_verb = |list: &[&AuditEntry]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for e in list {
            *m.entry(e.verb.clone()).or_default() += 1;
        }
        m
    };
    let data = json!({
        "writes": writes.len(),
        "object_writes": object_writes,
        "status_writes": status_writes,
        "event_writes": event_writes,
        "reads": reads.len(),
        "watches": watches,
        "writes_by_verb": by_verb(&writes),
        "reads_by_verb": by_verb(&reads),
        "phases": phases,
        "minimum": {"object_writes": OBJECT_WRITES_MIN, "status_writes_at_least": phases.len(), "reads": 1},
        "write_list": writes.iter().map(|e| describe(e)).collect::<Vec<_>>(),
        "read_list": reads.iter().map(|e| describe(e)).collect::<Vec<_>>(),
        "store_writes": stored_total,
        "store_writes_by_resource": stored,
    });
    let mut rows = vec![
        Row::new(
            FIGURE,
            format!(
                "{} writes ({object_writes} object, {status_writes} status, {event_writes} Events), {} reads, {watches} watches",
                writes.len(),
                reads.len()
            ),
        )
        .reference(format!(
            "min {OBJECT_WRITES_MIN} object + ≥{} status ({}), 1 read",
            phases.len(),
            phases.join("→")
        ))
        .method("kubesim audit log, upgrade → Stable + scale-down, quiet 2 s")
        .data(data),
    ];
    // The bench's own spec change is the one write in the window that is not the controller's.
    let by_requests = writes.len() + 1;
    rows.push(
        Row::new(
            "  kubesim store writes",
            format!(
                "{stored_total}: {by_requests} from API requests, {} by the simulated cluster",
                stored_total.saturating_sub(by_requests)
            ),
        )
        .method(format!(
            "store events in the namespace over the same window, by resource: {}",
            stored
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    );
    for (i, write) in grouped(&writes).into_iter().enumerate() {
        let row = Row::new("  write", write);
        rows.push(if i == 0 {
            row.method("verb(patch type) resource name, first-seen order")
        } else {
            row
        });
    }
    for read in grouped(&reads) {
        rows.push(Row::new("  read", read));
    }
    Ok(rows)
}
