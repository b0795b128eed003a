//! `/kubesim/v1/...`: fault injection and the audit log.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;

use super::AppState;
use super::response::{error, json, read_body};
use crate::error::ApiError;
use crate::faults::Fault;

pub async fn faults(
    State(app): State<AppState>,
    method: Method,
    _h: HeaderMap,
    body: Body,
) -> Response {
    match method {
        Method::POST => {
            let bytes = match read_body(body).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match serde_json::from_slice::<Fault>(&bytes) {
                Ok(f) => {
                    app.inject(&f);
                    json(200, &json!({"status": "ok"}))
                }
                Err(e) => error(&ApiError::bad_request(format!("invalid fault: {e}"))),
            }
        }
        Method::DELETE => {
            app.faults.clear();
            json(200, &json!({"status": "ok"}))
        }
        _ => error(&ApiError::method_not_allowed("use POST or DELETE")),
    }
}

pub async fn audit(
    State(app): State<AppState>,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match method {
        Method::GET => {
            let since = q.get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            let items = app.audit.since(since);
            json(
                200,
                &json!({"items": items, "nextSeq": app.audit.next_seq()}),
            )
        }
        Method::DELETE => {
            app.audit.clear();
            json(200, &json!({"status": "ok"}))
        }
        _ => error(&ApiError::method_not_allowed("use GET or DELETE")),
    }
}
