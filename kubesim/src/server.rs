//! The server handle: start on loopback, hand out kubeconfigs, control faults and
//! read the audit log, shut down on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::audit::{Audit, AuditEntry};
use crate::cluster::Cluster;
use crate::faults::{Fault, Faults};
use crate::handlers::{self, Shared};
use crate::store::{DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
}

/// Options for a server; `Server::builder()`.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    addr: SocketAddr,
    history: usize,
    watch_buffer: usize,
    simulate: bool,
    cel: bool,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: DEFAULT_HISTORY,
            watch_buffer: DEFAULT_WATCH_BUFFER,
            simulate: true,
            cel: true,
        }
    }
}

impl ServerBuilder {
    /// Listen address; port 0 picks a free port.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// How many events are kept for watch resumption before 410 Expired.
    pub fn watch_history(mut self, events: usize) -> Self {
        self.history = events.max(1);
        self
    }

    /// How many events a watch stream may fall behind before it catches up from the
    /// history (it re-lists only when it is behind the history too).
    pub fn watch_buffer(mut self, events: usize) -> Self {
        self.watch_buffer = events.max(1);
        self
    }

    /// Run the simulated built-in controllers (ReplicaSet, Job, Endpoints, pods) [true].
    pub fn simulate_controllers(mut self, on: bool) -> Self {
        self.simulate = on;
        self
    }

    /// Evaluate CRD `x-kubernetes-validations` CEL rules at admission, as a real
    /// apiserver does [false: tests written against kubesim expect CEL-invalid specs
    /// to reach the controller].
    pub fn evaluate_cel(mut self, on: bool) -> Self {
        self.cel = on;
        self
    }

    pub async fn start(self) -> Result<Server, ServerError> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: self.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: self.addr,
            source,
        })?;
        let cluster = Cluster::new(self.history, self.watch_buffer);
        cluster.set_evaluate_cel(self.cel);
        let (close_watches, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            cluster: cluster.clone(),
            audit: Audit::default(),
            faults: Faults::default(),
            close_watches,
            addr,
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = handlers::router(shared.clone());
        let serve = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        });
        let sim = self.simulate.then(|| crate::sim::spawn(cluster));
        tracing::info!(%addr, "kubesim serving");
        Ok(Server {
            addr,
            shared,
            stop: Some(stop_tx),
            serve: Some(serve),
            sim,
        })
    }
}

/// A running kubesim. Dropping it stops the server.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    serve: Option<JoinHandle<()>>,
    sim: Option<JoinHandle<()>>,
}

/// What a kube-rs (or other) client needs to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// A complete kubeconfig document for the server.
    pub kubeconfig_yaml: String,
    pub default_namespace: String,
}

impl Server {
    pub async fn start() -> Result<Server, ServerError> {
        Self::builder().start().await
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kubeconfig_yaml(&self) -> String {
        crate::kubeconfig::render(self.addr)
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), ServerError> {
        let path = path.as_ref();
        let err = |source| ServerError::Kubeconfig {
            path: path.display().to_string(),
            source,
        };
        // Write then rename, so a reader polling for the file never sees half of it.
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, self.kubeconfig_yaml()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// For `kube::Config::new(cfg.url.parse()?)` or `Kubeconfig::from_yaml(&cfg.kubeconfig_yaml)`.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            url: self.url(),
            kubeconfig_yaml: self.kubeconfig_yaml(),
            default_namespace: "default".into(),
        }
    }

    /// Direct access to the simulated cluster state (no HTTP, not audited).
    pub fn cluster(&self) -> Arc<Cluster> {
        self.shared.cluster.clone()
    }

    /// Every API request so far (since the last `clear_audit`).
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.shared.audit.since(0)
    }

    /// Requests with `seq >= since`; pair with `audit_next_seq()` taken earlier.
    pub fn audit_since(&self, since: u64) -> Vec<AuditEntry> {
        self.shared.audit.since(since)
    }

    pub fn audit_next_seq(&self) -> u64 {
        self.shared.audit.next_seq()
    }

    pub fn clear_audit(&self) {
        self.shared.audit.clear()
    }

    pub fn audit_log(&self) -> &Audit {
        &self.shared.audit
    }

    /// Same semantics as `POST /kubesim/v1/faults` (see `faults` module docs).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(&fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    pub fn close_watches(&self) {
        self.inject(Fault::close_watches());
    }

    pub fn expire_resource_versions(&self) {
        self.inject(Fault::expire_resource_versions());
    }

    /// Stops accepting requests, ends watches and waits (briefly) for the server task.
    pub async fn shutdown(mut self) {
        self.stop_now();
        if let Some(h) = self.serve.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
    }

    fn stop_now(&mut self) {
        self.shared.close_watches.send_modify(|g| *g += 1);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.sim.take() {
            h.abort();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
        if let Some(h) = self.serve.take() {
            h.abort();
        }
    }
}
