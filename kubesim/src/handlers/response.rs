//! Building HTTP responses: JSON bodies, Status errors, request bodies.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;

/// The apiserver's default request body limit.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn json(code: u16, v: &(impl Serialize + ?Sized)) -> Response {
    let body = serde_json::to_string(v).unwrap_or_else(|e| {
        // Values and the list shapes below always serialize; say so if one ever does not.
        format!(
            r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":{:?},"code":500}}"#,
            e.to_string()
        )
    });
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A list body whose items are the stored objects themselves, serialized in place rather
/// than copied into a new `Value` first.
#[derive(Serialize)]
pub struct ListBody<'a> {
    pub kind: String,
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub metadata: Value,
    pub items: &'a [Arc<Value>],
}

pub fn error(e: &ApiError) -> Response {
    json(e.code, &e.to_status())
}

pub fn text(s: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], s).into_response()
}

pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())
}

/// Decodes a create/update body: JSON, or YAML when the client says so.
pub fn decode_object(ct: &str, body: &[u8]) -> Result<Value, ApiError> {
    let base = ct.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        "" | "application/json" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "Object 'Kind' is missing or body is not valid JSON: {e}"
            ))
        })?,
        crate::proto::MEDIA_TYPE => crate::proto::decode(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let s = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            serde_saphyr::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a single object"));
    }
    Ok(v)
}
