//! `kubesim kubelet`: the simulated node of the upstream control plane (`scripts/kube.sh`).
//!
//! The only stand-in left on a real control plane: it registers a Ready Node, plays each
//! pod bound to it through the script of its `kubesim.dev/*` annotations (the same script
//! kubesim plays, see `script`), finishes deletions, and serves the kubelet's
//! `containerLogs` endpoint over TLS so that `kubectl logs` and the controller's log tail go
//! through the real API server. It runs no container.

mod logs;
mod node;
mod pods;

use std::{net::SocketAddr, path::PathBuf};

use kube::{Client, Config, config::KubeConfigOptions, config::Kubeconfig};

/// Where the node lives and how it reaches the API server.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Admin kubeconfig of the control plane.
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// Address the API server reaches the kubelet's endpoints on (the Node's InternalIP
    /// and `daemonEndpoints.kubeletEndpoint.port`).
    pub addr: SocketAddr,
    /// PEM serving certificate and key of the kubelet endpoint.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("kube client: {0}")]
    Client(String),
    #[error("{what}: {source}")]
    Api { what: String, source: kube::Error },
    #[error("TLS setup from {cert} and {key}: {reason}")]
    Tls {
        cert: String,
        key: String,
        reason: String,
    },
    #[error("serving containerLogs on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl KubeletError {
    fn api(what: impl Into<String>, source: kube::Error) -> Self {
        KubeletError::Api {
            what: what.into(),
            source,
        }
    }
}

/// Registers the node, then serves logs and plays pods until the process is stopped.
pub async fn run(config: KubeletConfig) -> Result<(), KubeletError> {
    let client = client(&config).await?;
    let pod_logs = pods::PodLogs::default();
    let serving = logs::serve(&config, pod_logs.clone()).await?;
    node::register(&client, &config).await?;
    tracing::info!(node = %config.node_name, addr = %config.addr, "node registered and Ready");
    tokio::select! {
        result = pods::play(client, &config, pod_logs) => result,
        result = serving => result,
    }
}

async fn client(config: &KubeletConfig) -> Result<Client, KubeletError> {
    let kubeconfig =
        Kubeconfig::read_from(&config.kubeconfig).map_err(|source| KubeletError::Kubeconfig {
            path: config.kubeconfig.display().to_string(),
            source,
        })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| KubeletError::Kubeconfig {
            path: config.kubeconfig.display().to_string(),
            source,
        })?;
    Client::try_from(config).map_err(|e| KubeletError::Client(e.to_string()))
}
