//! Malformed requests get the apiserver's `Status` errors and change nothing.

mod common;

use common::widget_api;
use serde_json::{Value, json};

/// Sends a raw HTTP/1.1 request (no client-side decoding, so the exact `Status`
/// body is visible); returns (code, reason, body JSON).
async fn raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: kubesim\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) and close before reading all of an over-large body.
    let _ = s.write_all(&body).await;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    (
        code,
        v["reason"].as_str().unwrap_or_default().to_string(),
        v,
    )
}

/// The cluster-wide resourceVersion: any write would move it.
async fn revision(c: std::net::SocketAddr) -> String {
    let (_, _, list) = raw(c, "GET", "/api/v1/configmaps", "application/json", vec![]).await;
    list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (what, method, path, content type, body, expected code, expected reason)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn malformed_requests_answer_status_and_change_nothing() {
    let server = kubesim::Server::start().await.unwrap();
    let c = server.addr();
    let widgets = widget_api(&server, "default").await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "1"}});
    raw(
        c,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        cm.to_string().into_bytes(),
    )
    .await;
    let kept: kube::core::DynamicObject =
        serde_json::from_value(common::widget("kept", "1")).unwrap();
    widgets.create(&Default::default(), &kept).await.unwrap();
    let before = revision(c).await;
    let cms = "/api/v1/namespaces/default/configmaps";

    let cases: Vec<Case> = vec![
        ("malformed JSON", "POST", cms, "application/json", b"{\"metadata\": {".to_vec(), 400, "BadRequest"),
        ("malformed YAML", "POST", cms, "application/yaml", b"metadata: [unclosed".to_vec(), 400, "BadRequest"),
        ("JSON that is not an object", "POST", cms, "application/json", b"[1,2]".to_vec(), 400, "BadRequest"),
        ("unknown resource", "GET", "/api/v1/namespaces/default/gadgets", "application/json", vec![], 404, "NotFound"),
        ("unknown group", "POST", "/apis/nope.example.com/v1/namespaces/default/things", "application/json", b"{}".to_vec(), 404, "NotFound"),
        ("namespace mismatch", "POST", cms, "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("kind mismatch", "POST", cms, "application/json",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("missing name", "POST", cms, "application/json", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}).to_string().into_bytes(), 422, "Invalid"),
        ("missing namespace", "POST", "/api/v1/namespaces/nowhere/configmaps", "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string().into_bytes(), 404, "NotFound"),
        ("over-large body", "POST", cms, "application/json", vec![b' '; 4 * 1024 * 1024], 413, "RequestEntityTooLarge"),
        ("unsupported patch type", "PATCH", "/api/v1/namespaces/default/configmaps/keep", "text/plain", b"{}".to_vec(), 415, "UnsupportedMediaType"),
        ("unsupported body type", "POST", cms, "application/cbor", b"\xa0".to_vec(), 415, "UnsupportedMediaType"),
        ("protobuf of an unsupported kind", "POST", "/apis/apps/v1/namespaces/default/deployments", "application/vnd.kubernetes.protobuf", b"k8s\0\x0a\x15\x0a\x07apps/v1\x12\x0aDeployment".to_vec(), 415, "UnsupportedMediaType"),
        ("POST to a named object", "POST", "/api/v1/namespaces/default/configmaps/keep", "application/json", cm.to_string().into_bytes(), 405, "MethodNotAllowed"),
        ("apply without fieldManager", "PATCH", "/api/v1/namespaces/default/configmaps/keep", "application/apply-patch+yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata:\n  a: changed\n".to_vec(), 400, "BadRequest"),
        ("JSON patch on a missing path", "PATCH", "/api/v1/namespaces/default/configmaps/keep", "application/json-patch+json",
            br#"[{"op": "replace", "path": "/data/missing/deep", "value": 1}]"#.to_vec(), 422, ""),
        ("failed JSON patch test", "PATCH", "/api/v1/namespaces/default/configmaps/keep", "application/json-patch+json",
            br#"[{"op": "test", "path": "/data/a", "value": "2"}, {"op": "replace", "path": "/data/a", "value": "3"}]"#.to_vec(), 422, ""),
        ("stale resourceVersion", "PUT", "/api/v1/namespaces/default/configmaps/keep", "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep", "resourceVersion": "1"}, "data": {"a": "2"}}).to_string().into_bytes(), 409, "Conflict"),
        ("name mismatch on PUT", "PUT", "/api/v1/namespaces/default/configmaps/keep", "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}).to_string().into_bytes(), 400, "BadRequest"),
        ("bad label selector", "GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b", "application/json", vec![], 400, "BadRequest"),
        ("unknown subresource", "GET", "/api/v1/namespaces/default/configmaps/keep/scale", "application/json", vec![], 404, "NotFound"),
        ("custom resource failing its schema", "POST", "/apis/test.kubesim.dev/v1/namespaces/default/widgets", "application/json",
            json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"version": "", "tags": ["a", "b", "c", "d"]}}).to_string().into_bytes(), 422, "Invalid"),
        ("strategic merge on a custom resource", "PATCH", "/apis/test.kubesim.dev/v1/namespaces/default/widgets/kept", "application/strategic-merge-patch+json",
            br#"{"spec": {"version": "9"}}"#.to_vec(), 415, "UnsupportedMediaType"),
        ("unknown field under fieldValidation=Strict", "POST", "/apis/test.kubesim.dev/v1/namespaces/default/widgets?fieldValidation=Strict", "application/json",
            json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "strict"}, "spec": {"version": "1", "bogus": true}}).to_string().into_bytes(), 400, "BadRequest"),
        // Upstream fails to decode this (400 BadRequest), before any validation runs.
        ("labels that are not strings", "POST", cms, "application/json",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"a": 1}}}).to_string().into_bytes(), 400, "BadRequest"),
    ];
    for (what, method, path, ct, body, code, reason) in cases {
        let (got, got_reason, status) = raw(c, method, path, ct, body).await;
        assert_eq!(got, code, "{what}: {status}");
        if !reason.is_empty() {
            assert_eq!(got_reason, reason, "{what}: {status}");
        }
        assert_eq!(status["kind"], "Status", "{what}");
        assert_eq!(status["status"], "Failure", "{what}");
        assert!(
            !status["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: empty message"
        );
        assert_eq!(revision(c).await, before, "{what} changed the store");
    }
    let (_, _, kept) = raw(
        c,
        "GET",
        "/api/v1/namespaces/default/configmaps/keep",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(kept["data"], json!({"a": "1"}));
}

#[tokio::test]
async fn invalid_custom_resource_reports_field_causes() {
    let server = kubesim::Server::start().await.unwrap();
    let c = server.addr();
    widget_api(&server, "default").await;
    let body = json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"version": "1", "replicas": -1, "tags": ["a", "b", "c", "d"], "note": null}});
    let (code, reason, status) = raw(
        c,
        "POST",
        "/apis/test.kubesim.dev/v1/namespaces/default/widgets",
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(status["details"]["kind"], "Widget");
    assert_eq!(status["details"]["group"], "test.kubesim.dev");
    assert_eq!(status["details"]["name"], "w");
    let causes = status["details"]["causes"].as_array().unwrap();
    let find = |f: &str| {
        causes
            .iter()
            .find(|c| c["field"] == f)
            .unwrap_or_else(|| panic!("no cause for {f}: {status}"))
    };
    assert_eq!(
        find("spec.replicas")["message"],
        "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
    );
    assert_eq!(find("spec.replicas")["reason"], "FieldValueInvalid");
    assert_eq!(find("spec.tags")["reason"], "FieldValueTooMany");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Widget.test.kubesim.dev \"w\" is invalid: ["),
        "{status}"
    );
}

/// Validation ratcheting (coarse): once a CRD's schema tightens, objects stored under the
/// old schema still take status and metadata writes; a change to the field that no longer
/// validates is refused.
#[tokio::test]
async fn unchanged_fields_are_not_revalidated_after_a_schema_tightens() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let server = kubesim::Server::start().await.unwrap();
    let widgets = widget_api(&server, "default").await;
    let w: kube::core::DynamicObject =
        serde_json::from_value(common::widget("w", "123456")).unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(common::client(&server));
    let tighten = json!([{"op": "replace",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/version/maxLength",
        "value": 3}]);
    crds.patch(
        "widgets.test.kubesim.dev",
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(tighten).unwrap()),
    )
    .await
    .unwrap();
    let merge = |v: Value| Patch::Merge(v);
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &merge(json!({"status": {"phase": "Stable"}})),
        )
        .await
        .expect("a status write does not re-validate the unchanged spec");
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .expect("a label write does not re-validate the unchanged spec");
    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &merge(json!({"spec": {"version": "1234567"}})),
        )
        .await
        .expect_err("a changed spec is validated against the tightened schema");
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 422, "{s:?}"),
        other => panic!("expected 422 Invalid, got {other}"),
    }
    let stored = widgets.get("w").await.unwrap();
    assert_eq!(stored.data["spec"]["version"], "123456");
    assert_eq!(stored.data["status"]["phase"], "Stable");
    // A changed spec is defaulted again: a removed field with a default comes back.
    let fixed = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &merge(json!({"spec": {"version": "123", "replicas": null}})),
        )
        .await
        .expect("a spec that fits the tightened schema");
    assert_eq!(fixed.data["spec"]["version"], "123");
    assert_eq!(fixed.data["spec"]["replicas"], 1, "{:?}", fixed.data);
}
