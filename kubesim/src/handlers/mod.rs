//! HTTP routing: discovery, OpenAPI stubs, admin endpoints and the resource API.

mod admin;
mod resource;
mod response;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{any, get};
use serde_json::json;
use tokio::sync::watch;

use crate::audit::Audit;
use crate::cluster::Cluster;
use crate::discovery;
use crate::faults::{Fault, Faults};
use response::json;

/// Everything a request handler needs.
pub struct Shared {
    pub cluster: Arc<Cluster>,
    pub audit: Audit,
    pub faults: Faults,
    /// Bumped to end every open watch stream.
    pub close_watches: watch::Sender<u64>,
    pub addr: SocketAddr,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// Applies a fault: one-shot actions now, rules for later requests.
    pub fn inject(&self, f: &Fault) {
        if f.expire_resource_versions {
            self.cluster.lock().expire_history();
        }
        if f.close_watches || f.expire_resource_versions {
            self.close_watches.send_modify(|g| *g += 1);
        }
        self.faults.add(f);
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { json(200, &discovery::version()) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/api", get(api_versions))
        .route("/apis", get(group_list))
        .route("/openapi/v2", get(openapi_v2))
        .route(
            "/openapi/v3",
            get(|| async { json(200, &json!({"paths": {}})) }),
        )
        .route("/kubesim/v1/faults", any(admin::faults))
        .route("/kubesim/v1/audit", any(admin::audit))
        .fallback(resource::dispatch)
        .with_state(state)
}

async fn api_versions(State(app): State<AppState>) -> Response {
    json(200, &discovery::core_versions(&app.addr.to_string()))
}

async fn group_list(State(app): State<AppState>) -> Response {
    let reg = app.cluster.lock().registry.clone();
    json(200, &discovery::group_list(&reg))
}

/// An empty OpenAPI v2 document. kubectl asks for protobuf; an empty protobuf
/// message is a valid, empty `Document`, so client-side validation finds no schema
/// for any kind and skips it (the server validates custom resources itself).
async fn openapi_v2(headers: axum::http::HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("protobuf") {
        let mut r = Response::new(axum::body::Body::empty());
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(
                "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            ),
        );
        return r;
    }
    json(
        200,
        &json!({"swagger": "2.0", "info": {"title": "kubesim", "version": "v1.34.0"}, "paths": {}, "definitions": {}}),
    )
}
