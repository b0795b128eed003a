//! Controller-added flip latency (DESIGN §7), at N concurrently upgrading releases.
//!
//! N releases (one replica, one smoke test, pods and Jobs instant) are brought to Stable
//! on 1.0.0, then all N are switched to 2.0.0 at once. For each release the store
//! timeline (see `timeline`) gives two instants:
//! - gate: kubesim stores the smoke-test Job's status with `Complete=True` — the write that
//!   satisfies the last gate of the rollout (the cold color is available before its Job is
//!   even created);
//! - flip: kubesim stores the active Service with the new color in its selector, i.e. it
//!   has received and applied the controller's PATCH.
//!
//! flip − gate is what the controller adds: the Job watch event reaching it, queueing,
//! the reconcile (with its re-read of the target ReplicaSet) and the PATCH itself. The ratio
//! is taken to the p50 of a bare PATCH round trip measured in the same run (`floor`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::BenchResult;
use crate::config::BenchConfig;
use crate::lab::Lab;
use crate::process::{Controller, CpuTime};
use crate::releases::{self, Shape};
use crate::report::Row;
use crate::stats::{Samples, fmt_duration, fmt_p50_p99, fmt_rate, ms};
use crate::timeline::{Mark, MarkKind};

use super::{controller_for, failed, wait_all_stable};

const SHAPE: Shape = Shape {
    replicas: 1,
    smoke_test: true,
    // No scale-down write lands among the flips being measured.
    scale_down_delay_seconds: 3600,
};

pub async fn run(lab: &Lab, cfg: &BenchConfig, floor: Option<&Samples>) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in &cfg.concurrent {
        let figure = format!("flip latency, {n} concurrent upgrades");
        match measure(lab, cfg, n).await {
            Ok(m) => rows.extend(m.rows(n, floor)),
            Err(e) => rows.extend(failed(&figure, e)),
        }
    }
    rows
}

struct Measured {
    latencies: Samples,
    /// Releases without a (gate, flip) pair in the timeline (should be 0).
    unmatched: usize,
    first_stable: Duration,
    upgrade_wall: Duration,
    /// CPU used while all N went to Stable and while all N upgraded.
    create_cpu: CpuSplit,
    upgrade_cpu: CpuSplit,
    upgrade_requests: Requests,
}

/// The controller's API requests over the upgrade window, per release: how its work (and
/// so kubesim's) grows with the number of releases upgrading at once. Refused requests
/// (a create of a Job that exists, a delete of one already gone) are counted apart.
#[derive(Debug, Clone, Copy)]
struct Requests {
    per_release: f64,
    status_writes: f64,
    event_writes: f64,
    other_writes: f64,
    reads: f64,
    refused: f64,
}

impl Requests {
    fn count(entries: &[kubesim::AuditEntry], ns: &str, releases: usize) -> Requests {
        let mine: Vec<&kubesim::AuditEntry> = entries
            .iter()
            .filter(|e| e.namespace == ns && e.verb != "watch")
            .collect();
        let writes: Vec<&&kubesim::AuditEntry> = mine.iter().filter(|e| e.is_write()).collect();
        let status = writes.iter().filter(|e| e.subresource == "status").count();
        let events = writes.iter().filter(|e| e.resource == "events").count();
        let refused = mine.iter().filter(|e| e.code >= 400).count();
        let per = |n: usize| n as f64 / releases.max(1) as f64;
        Requests {
            per_release: per(mine.len()),
            status_writes: per(status),
            event_writes: per(events),
            other_writes: per(writes.len() - status - events),
            reads: per(mine.len() - writes.len()),
            refused: per(refused),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:.1}: {:.1} status writes, {:.1} Events, {:.1} other writes, {:.1} reads ({:.1} refused)",
            self.per_release,
            self.status_writes,
            self.event_writes,
            self.other_writes,
            self.reads,
            self.refused
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"per_release": self.per_release, "status_writes": self.status_writes,
               "event_writes": self.event_writes, "other_writes": self.other_writes,
               "reads": self.reads, "refused": self.refused})
    }
}

/// CPU time used over one window by the bench process (kubesim, its simulated
/// controllers and the bench's own client) and by the controller process, and how many
/// cores' worth each used over the window's wall time.
#[derive(Debug, Clone, Copy)]
struct CpuSplit {
    kubesim: Duration,
    controller: Duration,
    wall: Duration,
}

impl CpuSplit {
    fn between(before: (CpuTime, CpuTime), after: (CpuTime, CpuTime), wall: Duration) -> CpuSplit {
        CpuSplit {
            kubesim: after.0.since(before.0),
            controller: after.1.since(before.1),
            wall,
        }
    }

    fn reading(controller: &Controller) -> BenchResult<(CpuTime, CpuTime)> {
        Ok((CpuTime::of_self()?, CpuTime::of(controller.pid())?))
    }

    fn cores(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    fn describe(&self) -> String {
        format!(
            "kubesim {:.1} s ({:.2} cores), controller {:.1} s ({:.2} cores)",
            self.kubesim.as_secs_f64(),
            self.cores(self.kubesim),
            self.controller.as_secs_f64(),
            self.cores(self.controller)
        )
    }

    fn json(&self) -> serde_json::Value {
        json!({"kubesim_s": self.kubesim.as_secs_f64(), "controller_s": self.controller.as_secs_f64(),
               "wall_s": self.wall.as_secs_f64(),
               "kubesim_cores": self.cores(self.kubesim), "controller_cores": self.cores(self.controller)})
    }
}

impl Measured {
    fn rows(&self, n: usize, floor: Option<&Samples>) -> Vec<Row> {
        let floor_p50 = floor.map(|f| f.p50()).filter(|d| !d.is_zero());
        let ratio = floor_p50.map(|f| self.latencies.p50().as_secs_f64() / f.as_secs_f64());
        let mut value = fmt_p50_p99(&self.latencies);
        if let Some(r) = ratio {
            value.push_str(&format!(" ({r:.1}× floor p50)"));
        }
        if self.unmatched > 0 {
            value.push_str(&format!(" [{} unmatched]", self.unmatched));
        }
        let reference = match floor_p50 {
            Some(f) => format!("floor p50 {}; target: small multiple", fmt_duration(f)),
            None => "bare PATCH not measured".into(),
        };
        let mut rows = vec![
            Row::new(format!("flip latency, {n} concurrent upgrades"), value)
                .reference(reference)
                .method("store timeline: Job Complete stored → active Service selector stored")
                .data(json!({
                    "concurrent": n,
                    "latency": self.latencies.json(),
                    "ratio_to_floor_p50": ratio,
                    "unmatched": self.unmatched,
                    "first_stable_s": self.first_stable.as_secs_f64(),
                    "upgrade_wall_s": self.upgrade_wall.as_secs_f64(),
                })),
        ];
        if n > 1 {
            rows.push(
                Row::new(
                    format!("  {n} releases: create → Stable / upgrade → Stable"),
                    format!(
                        "{} ({}) / {} ({})",
                        fmt_duration(self.first_stable),
                        fmt_rate(n as f64 / self.first_stable.as_secs_f64(), "rel"),
                        fmt_duration(self.upgrade_wall),
                        fmt_rate(n as f64 / self.upgrade_wall.as_secs_f64(), "rel"),
                    ),
                )
                .method("wall time, all created / all patched at once, one smoke test each")
                .data(json!({
                    "create_to_stable_ms": ms(self.first_stable),
                    "upgrade_to_stable_ms": ms(self.upgrade_wall),
                })),
            );
            rows.push(
                Row::new(
                    format!("  {n} releases: CPU, create / upgrade"),
                    format!(
                        "{} / {}",
                        self.create_cpu.describe(),
                        self.upgrade_cpu.describe()
                    ),
                )
                .reference("the machine has 2 cores, shared by both")
                .method(
                    "utime+stime of the bench process (kubesim + its simulated controllers + bench client) and of the controller, /proc/<pid>/stat",
                )
                .data(json!({
                    "create": self.create_cpu.json(),
                    "upgrade": self.upgrade_cpu.json(),
                })),
            );
            rows.push(
                Row::new(
                    format!("  {n} releases: controller requests per upgrade"),
                    self.upgrade_requests.describe(),
                )
                .reference("one promotion alone: see API requests per uneventful promotion")
                .method("kubesim audit log over the upgrade window (watches excluded), ÷ releases")
                .data(self.upgrade_requests.json()),
            );
        }
        rows
    }
}

/// Per release: flip instant minus the last gate (Job Complete) instant before it.
fn latencies(marks: &[Mark], first_color: &HashMap<String, String>) -> (Vec<Duration>, usize) {
    let mut gates: HashMap<&str, Instant> = HashMap::new();
    let mut flipped: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    let mut unmatched = 0;
    for mark in marks {
        match &mark.kind {
            MarkKind::JobComplete { .. } => {
                gates.insert(mark.name.as_str(), mark.at);
            }
            MarkKind::Selector { color, .. } => {
                let service = mark.name.as_str();
                // Active Services only (the release's name), and only the flip away from
                // the color it had before the upgrade.
                let Some(before) = first_color.get(service) else {
                    continue;
                };
                if color == before || flipped.insert(service, ()).is_some() {
                    continue;
                }
                match gates.get(service) {
                    Some(gate) => out.push(mark.at.saturating_duration_since(*gate)),
                    None => unmatched += 1,
                }
            }
            MarkKind::Phase(_) => {}
        }
    }
    (out, unmatched)
}

async fn measure(lab: &Lab, cfg: &BenchConfig, n: usize) -> BenchResult<Measured> {
    let ns = format!("bench-flip-{n}");
    let mut controller = controller_for(lab, cfg, &ns).await?;
    let timeout = Duration::from_secs(120) + Duration::from_millis(200 * n as u64);
    let prefix = "r";

    let cpu_start = CpuSplit::reading(&controller)?;
    let start = Instant::now();
    releases::create_many(
        &lab.client,
        &ns,
        prefix,
        0..n,
        "1.0.0",
        SHAPE,
        cfg.client_concurrency,
    )
    .await?;
    wait_all_stable(lab, &mut controller, &ns, n, "1.0.0", timeout).await?;
    let first_stable = start.elapsed();
    let create_cpu = CpuSplit::between(cpu_start, CpuSplit::reading(&controller)?, first_stable);
    // Let trailing status writes settle so the upgrade starts from quiet.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let first_color: HashMap<String, String> = (0..n)
        .filter_map(|i| {
            let name = releases::name(prefix, i);
            let release = lab.release(&ns, &name)?;
            let color = release["status"]["activeColor"].as_str()?.to_string();
            Some((name, color))
        })
        .collect();
    let position = lab.timeline.position();
    let cpu_start = CpuSplit::reading(&controller)?;
    let audit_start = lab.server.audit_next_seq();
    let start = Instant::now();
    releases::set_version_many(
        &lab.client,
        &ns,
        prefix,
        0..n,
        "2.0.0",
        cfg.client_concurrency,
    )
    .await?;
    wait_all_stable(lab, &mut controller, &ns, n, "2.0.0", timeout).await?;
    let upgrade_wall = start.elapsed();
    let upgrade_cpu = CpuSplit::between(cpu_start, CpuSplit::reading(&controller)?, upgrade_wall);
    let upgrade_requests = Requests::count(&lab.audit_since(audit_start), &ns, n);
    // The timeline thread may be a moment behind the store.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let marks: Vec<Mark> = lab
        .timeline
        .since(position)
        .into_iter()
        .filter(|m| m.namespace == ns)
        .collect();
    let (samples, unmatched) = latencies(&marks, &first_color);
    controller.stop();
    if samples.is_empty() {
        return Err(format!(
            "no flip recorded ({} marks, {unmatched} flips without a gate)",
            marks.len()
        ));
    }
    Ok(Measured {
        unmatched: n.saturating_sub(samples.len()),
        latencies: Samples::new(samples),
        first_stable,
        upgrade_wall,
        create_cpu,
        upgrade_cpu,
        upgrade_requests,
    })
}
