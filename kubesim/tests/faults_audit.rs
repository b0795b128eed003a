//! Fault injection and the audit log, over HTTP and through the library handle.

mod common;

use std::time::{Duration, Instant};

use common::client;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

async fn admin(c: &kube::Client, method: &str, path: &str, body: Value) -> Value {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    serde_json::from_str(&c.request_text(req).await.unwrap()).unwrap()
}

fn svc(name: &str) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}))
        .unwrap()
}

#[tokio::test]
async fn fail_nth_write_over_http_then_clear() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let svcs: Api<Service> = Api::default_namespaced(c.clone());
    svcs.create(&PostParams::default(), &svc("y"))
        .await
        .unwrap();
    // 500 rather than 503: kube-rs retries 503s by itself.
    admin(&c, "POST", "/kubesim/v1/faults", json!({"failWrite": {"verb": "patch", "resource": "services", "namespace": "default", "name": "y", "nth": 2, "code": 500, "count": 1}})).await;
    let patch = |v: &'static str| {
        let svcs = svcs.clone();
        async move {
            svcs.patch(
                "y",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"v": v}}})),
            )
            .await
        }
    };
    patch("1").await.expect("first patch passes");
    match patch("2").await.unwrap_err() {
        kube::Error::Api(s) => assert_eq!(s.code, 500),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        svcs.get("y").await.unwrap().metadata.labels.unwrap()["v"],
        "1",
        "failed write changed nothing"
    );
    patch("3").await.expect("count exhausted");
    // Reads never match a rule without a verb... and a cleared rule matches nothing.
    admin(
        &c,
        "POST",
        "/kubesim/v1/faults",
        json!({"failWrite": {"resource": "services"}}),
    )
    .await;
    svcs.get("y").await.unwrap();
    admin(&c, "DELETE", "/kubesim/v1/faults", json!({})).await;
    patch("4").await.unwrap();
}

#[tokio::test]
async fn latency_and_library_controls() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "slow"}})).unwrap();
    server.inject(
        serde_json::from_value(
            json!({"latencyMs": 300, "verb": "create", "resource": "configmaps"}),
        )
        .unwrap(),
    );
    let t = Instant::now();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    server.clear_faults();
    server.inject(kubesim::Fault::fail("delete", "configmaps", 500));
    assert!(cms.delete("slow", &Default::default()).await.is_err());
    cms.delete("slow", &Default::default()).await.unwrap();
}

#[tokio::test]
async fn audit_lists_every_request_with_since_and_reset() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let svcs: Api<Service> = Api::default_namespaced(c.clone());
    let start = server.audit_next_seq();
    svcs.create(&PostParams::default(), &svc("a"))
        .await
        .unwrap();
    svcs.patch("a", &PatchParams::apply("bluegreen-controller"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"selector": {"c": "blue"}}}))).await.unwrap();
    svcs.get("a").await.unwrap();
    let _ = svcs.get("missing").await;
    let entries = server.audit_since(start);
    let summary: Vec<(String, String, String, u16)> = entries
        .iter()
        .map(|e| (e.verb.clone(), e.resource.clone(), e.name.clone(), e.code))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("create".into(), "services".into(), "".into(), 201),
            ("patch".into(), "services".into(), "a".into(), 200),
            ("get".into(), "services".into(), "a".into(), 200),
            ("get".into(), "services".into(), "missing".into(), 404),
        ]
    );
    assert_eq!(entries[1].field_manager, "bluegreen-controller");
    assert_eq!(entries[1].patch_type, "apply");
    assert_eq!(entries.iter().filter(|e| e.is_write()).count(), 2);

    // Over HTTP, with ?since= and a reset.
    let since = entries[2].seq;
    let got = admin(
        &c,
        "GET",
        &format!("/kubesim/v1/audit?since={since}"),
        json!({}),
    )
    .await;
    let items = got["items"].as_array().unwrap();
    assert_eq!(items[0]["verb"], "get");
    assert_eq!(items[0]["namespace"], "default");
    admin(&c, "DELETE", "/kubesim/v1/audit", json!({})).await;
    assert!(
        server.audit().iter().all(|e| e.seq > since + 2),
        "reset forgets earlier entries"
    );
}
