//! The kubelet's `containerLogs` endpoint, over TLS, as the API server's `pods/log` proxy
//! calls it: `GET /containerLogs/{namespace}/{pod}/{container}?tailLines=N`.
//!
//! The log is what the pod's `kubesim.dev/log` annotation scripts, as the pod watch last
//! showed it. The API server is not authenticated: the endpoint is on loopback and serves
//! nothing but those annotations.

use std::{collections::HashMap, future::Future, sync::Arc};

use axum::{
    Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{KubeletConfig, KubeletError, pods::PodLogs};

/// Binds the endpoint now (so the Node is registered only once it answers) and returns the
/// future that serves it.
pub async fn serve(
    config: &KubeletConfig,
    logs: PodLogs,
) -> Result<impl Future<Output = Result<(), KubeletError>>, KubeletError> {
    let acceptor = TlsAcceptor::from(Arc::new(tls(config)?));
    let addr = config.addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| KubeletError::Serve { addr, source })?;
    let app = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(logs);
    Ok(async move {
        loop {
            let (tcp, _) = listener
                .accept()
                .await
                .map_err(|source| KubeletError::Serve { addr, source })?;
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn tls(config: &KubeletConfig) -> Result<rustls::ServerConfig, KubeletError> {
    let fail = |reason: String| KubeletError::Tls {
        cert: config.tls_cert.display().to_string(),
        key: config.tls_key.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(&config.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key).map_err(|e| fail(e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(e.to_string()))
}

async fn container_logs(
    State(logs): State<PodLogs>,
    Path((namespace, pod, _container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<String, (StatusCode, String)> {
    let log = logs
        .lock()
        .expect("logs")
        .get(&(namespace.clone(), pod.clone()))
        .cloned();
    let Some(log) = log else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not on this node"),
        ));
    };
    let tail = query.get("tailLines").and_then(|n| n.parse::<usize>().ok());
    Ok(tail_lines(&log, tail))
}

/// The last `tail` lines (all when `None`), each ending in a newline as a container's do.
fn tail_lines(log: &str, tail: Option<usize>) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let from = tail.map_or(0, |n| lines.len().saturating_sub(n));
    lines[from..].iter().map(|l| format!("{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::tail_lines;

    #[test]
    fn tail_lines_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\nb\nc", Some(2)), "b\nc\n");
        assert_eq!(tail_lines("a\nb", None), "a\nb\n");
        assert_eq!(tail_lines("", Some(5)), "");
    }
}
