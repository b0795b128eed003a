//! 50,000 stored objects: paginated and selected lists, gets and watches still work.
//! (Correctness at size; timings belong to `make bench`.)

mod common;

use std::sync::Arc;

use common::client;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kubesim::{Cluster, WriteOpts};
use serde_json::json;

const OBJECTS: usize = 50_000;
const NAMESPACES: usize = 5;

fn fill(cluster: &Arc<Cluster>) {
    let ns_def = cluster.resolve("", "v1", "namespaces").unwrap();
    let cm_def = cluster.resolve("", "v1", "configmaps").unwrap();
    let opts = WriteOpts::manager("fill");
    for n in 0..NAMESPACES {
        cluster
            .create(
                &ns_def,
                "v1",
                "",
                json!({"metadata": {"name": format!("ns{n}")}}),
                &opts,
            )
            .unwrap();
    }
    for i in 0..OBJECTS {
        let obj = json!({"metadata": {"name": format!("cm-{i:05}"), "labels": {"shard": (i % 10).to_string()}}, "data": {"i": i.to_string()}});
        cluster
            .create(&cm_def, "v1", &format!("ns{}", i % NAMESPACES), obj, &opts)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_objects_list_get_and_watch() {
    let server = kubesim::Server::start().await.unwrap();
    let cluster = server.cluster();
    tokio::task::spawn_blocking(move || fill(&cluster))
        .await
        .unwrap();
    let c = client(&server);
    let all: Api<ConfigMap> = Api::all(c.clone());

    let mut seen = 0;
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(10_000);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        // Metadata-only pages, as kube-runtime's metadata watchers read them.
        let page = all.list_metadata(&lp).await.unwrap();
        assert!(
            page.items
                .iter()
                .all(|m| m.metadata.resource_version.is_some())
        );
        seen += page.items.len();
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(seen, OBJECTS);

    let ns2: Api<ConfigMap> = Api::namespaced(c.clone(), "ns2");
    let shard = ns2
        .list(&ListParams::default().labels("shard=2"))
        .await
        .unwrap();
    // i % 10 == 2 implies i % 5 == 2: every shard-2 object lives in ns2.
    assert_eq!(shard.items.len(), OBJECTS / 10);
    assert_eq!(ns2.get("cm-00002").await.unwrap().data.unwrap()["i"], "2");

    // A watch from the current version sees only what happens next.
    let rv = shard.metadata.resource_version.unwrap();
    let mut stream = ns2
        .watch(&WatchParams::default().labels("shard=new"), &rv)
        .await
        .unwrap()
        .boxed();
    let fresh: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "fresh", "labels": {"shard": "new"}}}))
            .unwrap();
    ns2.create(&PostParams::default(), &fresh).await.unwrap();
    loop {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(cm) => {
                assert_eq!(cm.metadata.name.as_deref(), Some("fresh"));
                break;
            }
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}
