//! One module per figure. Each returns its table rows; a figure that fails returns a row
//! saying so instead of aborting the others.

pub mod flip;
pub mod floor;
pub mod idle;
pub mod kubesim;
pub mod requests;
pub mod rollback;

use std::time::{Duration, Instant};

use super::BenchResult;
use super::config::BenchConfig;
use super::lab::{Lab, is_stable_on, wait_for};
use super::process::Controller;

/// How long a fresh controller (empty or small namespace) gets to report ready before the
/// bench goes on without it (and says so on stderr).
const READY_GRACE: Duration = Duration::from_secs(5);

/// Creates `ns` and starts a controller watching only it; returns once it serves and is
/// ready (or `READY_GRACE` has passed: readiness is reported, not required).
pub async fn controller_for(lab: &Lab, cfg: &BenchConfig, ns: &str) -> BenchResult<Controller> {
    lab.create_namespace(ns).await?;
    let mut controller = Controller::spawn(
        &cfg.controller_bin,
        &lab.kubeconfig,
        ns,
        cfg.controller_concurrency,
        &cfg.controller_log,
        lab.dir.join(format!("controller-{ns}.log")),
    )?;
    controller.wait_serving(Duration::from_secs(30)).await?;
    if let Err(e) = controller.wait_ready(READY_GRACE).await {
        controller.check_alive()?;
        eprintln!("bench: controller for {ns} not ready, going on: {e}");
    }
    Ok(controller)
}

/// Waits until `count` releases of `ns` are Stable on `version`; returns the time waited.
pub async fn wait_all_stable(
    lab: &Lab,
    controller: &mut Controller,
    ns: &str,
    count: usize,
    version: &str,
    timeout: Duration,
) -> BenchResult<Duration> {
    let start = Instant::now();
    let every = if count > 100 {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(5)
    };
    wait_for(
        &format!("{count} releases in {ns} Stable on {version}"),
        timeout,
        every,
        || {
            let alive = controller.check_alive();
            let stable = lab.count_releases(ns, |r| is_stable_on(r, version));
            async move {
                alive?;
                if stable >= count {
                    Ok(())
                } else {
                    Err(format!("{stable}/{count} Stable"))
                }
            }
        },
    )
    .await?;
    Ok(start.elapsed())
}

/// Rows for a figure that could not be measured.
pub fn failed(figure: &str, error: String) -> Vec<super::report::Row> {
    eprintln!("bench: {figure}: {error}");
    vec![super::report::Row::failed(figure, &error)]
}
