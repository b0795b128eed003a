//! `bluegreen-controller`: the binary. Flags and env in `config`, the loop in `controller`.

use std::{process::ExitCode, sync::Arc};

use bluegreen_controller::{
    config::Config,
    controller::{self, Settings},
    http::{self, HttpState, Readiness},
    leader,
    metrics::Metrics,
    telemetry,
};
use clap::Parser;
use tokio::sync::watch;
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = telemetry::init(&config.log_level, config.log_format) {
        eprintln!("bluegreen-controller: {err}");
        return ExitCode::from(2);
    }
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            eprintln!("bluegreen-controller: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    let mut client_config = kube::Config::infer().await.map_err(|e| {
        format!("cannot find Kubernetes credentials (in-cluster config or KUBECONFIG): {e}")
    })?;
    // Named in the API server's audit log and metrics as itself, not as an anonymous client.
    client_config.headers.push((
        ::http::header::USER_AGENT,
        ::http::HeaderValue::from_static(concat!(
            "bluegreen-controller/",
            env!("CARGO_PKG_VERSION")
        )),
    ));
    let client = kube::Client::try_from(client_config)
        .map_err(|e| format!("cannot build a Kubernetes client: {e}"))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown signal received");
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let metrics = Arc::new(Metrics::new());
    let readiness = Readiness::new();
    let listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} for metrics and probes: {e}",
                config.metrics_addr
            )
        })?;
    // The bound address (the configured one may say port 0).
    let bound = listener.local_addr().map_or(config.metrics_addr, |a| a);
    info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let state = HttpState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let server = tokio::spawn(http::serve(listener, state, stopped()));

    let settings = Settings {
        namespace: config.watch_namespace().map(str::to_string),
        concurrency: u16::try_from(config.concurrency.get()).unwrap_or(u16::MAX),
        identity: config.identity.clone(),
        prometheus_address: Some(config.prometheus_address.clone()).filter(|a| !a.is_empty()),
    };
    if config.leader_election {
        // A follower is a healthy standby: ready, so that a rolling update of the
        // Deployment is not blocked waiting for it to lead.
        readiness.set_ready(true);
        let lead = || controller::run(client.clone(), settings, metrics, readiness, stopped());
        leader::run_as_leader(&client, &config, lead, &stopped)
            .await
            .map_err(|e| e.to_string())?;
    } else {
        controller::run(client, settings, metrics, readiness, stopped())
            .await
            .map_err(|e| e.to_string())?;
    }
    let _ = server.await;
    Ok(())
}

/// SIGTERM (Kubernetes stopping the pod) or SIGINT (a person at a terminal).
async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
