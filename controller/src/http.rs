//! The probe and metrics HTTP server: `/healthz`, `/readyz`, `/metrics` (DESIGN §6).
//!
//! It runs beside the controller on its own listener so that a scrape or a kubelet probe
//! never waits on reconciliation work.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Whether the controller is ready to do its job (caches synced, leader or standby decided).
///
/// Cloning shares the flag: `main` keeps one handle to flip, the server reads another.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A flag that starts not ready: a pod must not be reported ready before it has synced.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

/// The routes, separate from [`serve`] so they can be exercised without a socket.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves the probes and metrics on `listener` until `shutdown` completes, then finishes the
/// requests in flight and returns.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Liveness: answering at all proves the process and its runtime are alive. It deliberately
/// checks nothing else, so that a slow API server gets the pod marked unready, not restarted.
async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, state.metrics.content_type())],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    /// A server on an ephemeral loopback port, stopped when `stop` is sent or dropped.
    struct TestServer {
        addr: SocketAddr,
        readiness: Readiness,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    async fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let readiness = Readiness::new();
        let metrics = Arc::new(Metrics::new());
        metrics.flipped();
        let state = HttpState {
            metrics,
            readiness: readiness.clone(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            readiness,
            stop,
            task,
        }
    }

    struct Response {
        status: u16,
        head: String,
        body: String,
    }

    /// One HTTP/1.1 request over a raw socket, so the test needs no HTTP client crate.
    async fn get(addr: SocketAddr, path: &str) -> Response {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("write request");
        let mut raw = String::new();
        stream
            .read_to_string(&mut raw)
            .await
            .expect("read response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("status code");
        Response {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    #[tokio::test]
    async fn healthz_answers_ok() {
        let server = start().await;
        let response = get(server.addr, "/healthz").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "ok");
    }

    #[tokio::test]
    async fn readyz_follows_the_readiness_flag() {
        let server = start().await;
        let response = get(server.addr, "/readyz").await;
        assert_eq!(response.status, 503);

        server.readiness.set_ready(true);
        let response = get(server.addr, "/readyz").await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, "ready");

        server.readiness.set_ready(false);
        assert_eq!(get(server.addr, "/readyz").await.status, 503);
    }

    #[tokio::test]
    async fn metrics_are_served_in_text_format() {
        let server = start().await;
        let response = get(server.addr, "/metrics").await;
        assert_eq!(response.status, 200);
        assert!(
            response
                .head
                .contains("content-type: text/plain; version=0.0.4"),
            "{}",
            response.head
        );
        assert!(response.body.contains("bluegreen_flips_total 1"));
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let server = start().await;
        assert_eq!(get(server.addr, "/nope").await.status, 404);
    }

    #[tokio::test]
    async fn shutdown_signal_stops_the_server() {
        let server = start().await;
        assert_eq!(get(server.addr, "/healthz").await.status, 200);
        server.stop.send(()).expect("server still running");
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), server.task)
            .await
            .expect("server stopped within 5s")
            .expect("server task did not panic");
        assert!(finished.is_ok());
        assert!(TcpStream::connect(server.addr).await.is_err());
    }
}
