//! `kubesim serve --addr 127.0.0.1:0 --kubeconfig PATH`, and `kubesim kubelet …`: the
//! simulated node of the upstream control plane that `scripts/kube.sh` starts.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

// kubesim's work is building and dropping JSON trees; glibc's allocator was a sixth of its
// CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "kubesim", about = "A Kubernetes API simulator on loopback")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API until SIGTERM or SIGINT.
    Serve {
        /// Listen address; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Where to write a kubeconfig for the chosen port.
        #[arg(long, env = "KUBECONFIG_OUT")]
        kubeconfig: Option<PathBuf>,
        /// Events kept for watch resumption.
        #[arg(long, default_value_t = 20_000)]
        watch_history: usize,
        /// Do not evaluate CRD CEL rules (x-kubernetes-validations) at admission; by
        /// default they are, as a real API server does.
        #[arg(long)]
        no_cel: bool,
    },
    /// Be the node of a real control plane: register a Ready Node, play its pods'
    /// `kubesim.dev/*` scripts, serve `containerLogs` over TLS.
    Kubelet {
        /// Admin kubeconfig of the control plane.
        #[arg(long)]
        kubeconfig: PathBuf,
        #[arg(long, default_value = "kubesim-node")]
        node_name: String,
        /// The kubelet endpoint (the Node's InternalIP and kubelet port).
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        tls_cert: PathBuf,
        #[arg(long)]
        tls_key: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kubesim=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            addr,
            kubeconfig,
            watch_history,
            no_cel,
        } => serve(addr, kubeconfig, watch_history, no_cel).await,
        Command::Kubelet {
            kubeconfig,
            node_name,
            addr,
            tls_cert,
            tls_key,
        } => {
            let config = kubesim::KubeletConfig {
                kubeconfig,
                node_name,
                addr,
                tls_cert,
                tls_key,
            };
            tokio::select! {
                result = kubesim::run_kubelet(config) => Ok(result?),
                _ = stopped() => Ok(()),
            }
        }
    }
}

async fn serve(
    addr: SocketAddr,
    kubeconfig: Option<PathBuf>,
    watch_history: usize,
    no_cel: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let server = kubesim::Server::builder()
        .addr(addr)
        .watch_history(watch_history)
        .evaluate_cel(!no_cel)
        .start()
        .await?;
    if let Some(path) = &kubeconfig {
        server.write_kubeconfig(path)?;
    }
    // The address goes to stdout alone, so scripts can read it.
    println!("{}", server.addr());
    stopped().await;
    server.shutdown().await;
    Ok(())
}

/// SIGTERM or SIGINT.
async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
