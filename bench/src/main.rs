//! `make bench`: the performance figures of DESIGN §7, printed as one table and written to
//! `target/bench.json`. Measurement only — nothing asserts a timing. Counts come from
//! `BENCH_*` environment variables (see `bluegreen_bench::config`); progress goes to
//! stderr, the table to stdout.

use std::time::Instant;

use bluegreen_bench::config::BenchConfig;
use bluegreen_bench::figures::{self, floor};
use bluegreen_bench::lab::Lab;
use bluegreen_bench::report::{self, Machine, Row};

// The same allocator as the kubesim binary: the bench hosts kubesim in-process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn progress(message: &str, since: Instant) {
    eprintln!("[bench {:>6.1}s] {message}", since.elapsed().as_secs_f64());
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let cfg = BenchConfig::from_env();
    let machine = Machine::detect();
    eprintln!("{}", machine.header());
    eprintln!("settings: {}", cfg.describe());
    let mut rows: Vec<Row> = Vec::new();

    // kubesim alone first, before the in-process cluster takes any CPU.
    if cfg.runs("kubesim") {
        progress("kubesim alone: creates, memory, watch fan-out", started);
        rows.extend(figures::kubesim::run(&cfg).await);
    }

    progress("starting in-process kubesim", started);
    let lab = match Lab::start(&cfg.work_dir).await {
        Ok(lab) => lab,
        Err(e) => {
            eprintln!("bench: cannot start kubesim: {e}");
            std::process::exit(1);
        }
    };

    let mut floor_samples = None;
    if cfg.runs("flip") || cfg.runs("floor") {
        progress("bare PATCH round trips (floor)", started);
        match floor::measure(&lab, &cfg).await {
            Ok(samples) => {
                rows.push(floor::row(&samples));
                floor_samples = Some(samples);
            }
            Err(e) => rows.extend(figures::failed("bare Service PATCH round trip", e)),
        }
    }
    if cfg.runs("requests") {
        progress("API requests per uneventful promotion", started);
        rows.extend(figures::requests::run(&lab, &cfg).await);
    }
    if cfg.runs("rollback") {
        progress("rollback latency", started);
        rows.extend(figures::rollback::run(&lab, &cfg).await);
    }
    if cfg.runs("flip") {
        progress(
            &format!("flip latency at {:?} concurrent upgrades", cfg.concurrent),
            started,
        );
        rows.extend(figures::flip::run(&lab, &cfg, floor_samples.as_ref()).await);
    }
    if cfg.runs("idle") {
        progress(
            &format!(
                "idle releases {:?} → {}, then a restart",
                cfg.idle_checkpoints, cfg.idle_releases
            ),
            started,
        );
        rows.extend(figures::idle::run(&lab, &cfg).await);
    }
    let wall = started.elapsed().as_secs_f64();
    progress("done", started);

    println!("{}", machine.header());
    println!(
        "controller {} (BLUEGREEN_CONCURRENCY={}); pods and Jobs instant; bench wall time {wall:.0} s",
        cfg.controller_bin.display(),
        cfg.controller_concurrency
    );
    println!();
    print!("{}", report::table(&rows));
    match report::write_json(&cfg.json_path, &machine, cfg.describe(), &rows, wall) {
        Ok(()) => println!("\n(written to {})", cfg.json_path.display()),
        Err(e) => eprintln!("bench: cannot write {}: {e}", cfg.json_path.display()),
    }
    drop(lab);
}
