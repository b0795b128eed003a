//! kube-rs against kubesim: CRUD, every patch type, SSA conflicts, optimistic
//! concurrency, custom resources, and watcher/reflector resilience.

mod common;

use std::collections::BTreeMap;

use common::{client, eventually, widget, widget_api};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()},
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap()
}

fn api_code(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn core_crud_and_every_patch_type() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));

    let created = cms
        .create(
            &PostParams::default(),
            &cm("a", &[("app", "x")], &[("k", "1")]),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    cms.create(&PostParams::default(), &cm("b", &[("app", "y")], &[]))
        .await
        .unwrap();
    let dup = cms
        .create(&PostParams::default(), &cm("a", &[], &[]))
        .await
        .unwrap_err();
    assert_eq!(api_code(dup).0, 409);

    let got = cms.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "1");
    let listed = cms
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());
    let listed = cms
        .list(&ListParams::default().labels("app in (x,y),app!=y"))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    let by_field = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 1);

    // merge patch
    let p = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["m"], "2");
    assert_eq!(p.data.as_ref().unwrap()["k"], "1");
    // JSON patch with a passing and a failing `test`
    let ok: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/data/m", "value": "2"}, {"op": "replace", "path": "/data/m", "value": "3"}])).unwrap();
    let p = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(ok))
        .await
        .unwrap();
    assert_eq!(p.data.as_ref().unwrap()["m"], "3");
    let bad: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/data/m", "value": "nope"}, {"op": "remove", "path": "/data/k"}])).unwrap();
    let err = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(bad))
        .await
        .unwrap_err();
    assert_eq!(api_code(err).0, 422);
    assert_eq!(
        cms.get("a").await.unwrap().data.unwrap()["k"],
        "1",
        "failed test op leaves the object alone"
    );

    // strategic merge on a Deployment merges containers by name
    let deploys: Api<Deployment> = Api::default_namespaced(client(&server));
    let d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "one", "image": "x:1"}, {"name": "two", "image": "y:1"}]}}}})).unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let p = deploys
        .patch("d", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "two", "image": "y:2"}]}}}})))
        .await
        .unwrap();
    let cs = p.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1].image.as_deref(), Some("y:2"));
    assert_eq!(
        p.metadata.generation,
        Some(2),
        "spec change bumps generation"
    );
    let p = deploys
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"l": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        p.metadata.generation,
        Some(2),
        "metadata change does not bump generation"
    );

    // server-side apply: create, then update, with managedFields recorded
    let applied = cms
        .patch("ssa", &PatchParams::apply("tester"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1", "y": "2"}})))
        .await
        .unwrap();
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("tester"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let applied = cms
        .patch("ssa", &PatchParams::apply("tester"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1"}})))
        .await
        .unwrap();
    assert_eq!(
        applied.data.unwrap(),
        BTreeMap::from([("x".to_string(), "1".to_string())]),
        "field dropped from the config is removed"
    );

    // delete
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let err = cms.get("a").await.unwrap_err();
    let (code, reason, message) = api_code(err);
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "configmaps \"a\" not found")
    );
}

#[tokio::test]
async fn stale_replace_is_a_conflict() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let first = cms
        .create(&PostParams::default(), &cm("c", &[], &[("v", "1")]))
        .await
        .unwrap();
    let mut fresh = first.clone();
    fresh.data = Some(BTreeMap::from([("v".into(), "2".into())]));
    cms.replace("c", &PostParams::default(), &fresh)
        .await
        .unwrap();
    let mut stale = first.clone();
    stale.data = Some(BTreeMap::from([("v".into(), "3".into())]));
    let (code, reason, _) = api_code(
        cms.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["v"], "2");
    // Without a resourceVersion a replace is unconditional.
    stale.metadata.resource_version = None;
    cms.replace("c", &PostParams::default(), &stale)
        .await
        .unwrap();
    assert_eq!(cms.get("c").await.unwrap().data.unwrap()["v"], "3");
}

/// An apply configuration that names a resourceVersion is a conditional update, as on a
/// real API server; without one it applies unconditionally.
#[tokio::test]
async fn stale_apply_with_a_resource_version_is_a_conflict() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let apply = |rv: Option<&str>, v: &str| {
        let mut cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "l"}, "data": {"holder": v}});
        if let Some(rv) = rv {
            cfg["metadata"]["resourceVersion"] = json!(rv);
        }
        cfg
    };
    let first = cms
        .patch(
            "l",
            &PatchParams::apply("a"),
            &Patch::Apply(&apply(None, "a")),
        )
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    cms.patch(
        "l",
        &PatchParams::apply("a"),
        &Patch::Apply(&apply(Some(&rv), "b")),
    )
    .await
    .expect("the current resourceVersion applies");
    let (code, reason, _) = api_code(
        cms.patch(
            "l",
            &PatchParams::apply("a"),
            &Patch::Apply(&apply(Some(&rv), "c")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(cms.get("l").await.unwrap().data.unwrap()["holder"], "b");
    cms.patch(
        "l",
        &PatchParams::apply("a"),
        &Patch::Apply(&apply(None, "d")),
    )
    .await
    .unwrap();
    assert_eq!(cms.get("l").await.unwrap().data.unwrap()["holder"], "d");
}

#[tokio::test]
async fn ssa_conflict_between_managers_and_force_wins() {
    let server = kubesim::Server::start().await.unwrap();
    let svcs: Api<Service> = Api::default_namespaced(client(&server));
    let helm = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    svcs.patch("web", &PatchParams::apply("helm"), &Patch::Apply(&helm))
        .await
        .unwrap();
    // A second manager adds its own keys to a granular map without conflict and without
    // touching helm's.
    let ctl = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"bluegreen.dev/release": "web"}}});
    let s = svcs
        .patch(
            "web",
            &PatchParams::apply("bluegreen-controller"),
            &Patch::Apply(&ctl),
        )
        .await
        .unwrap();
    let labels = s.metadata.labels.unwrap();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(
        labels.get("bluegreen.dev/release").map(String::as_str),
        Some("web")
    );
    // The selector is an atomic map (as on an API server): applying any other selector
    // is a conflict on the selector as a whole.
    let selector = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"bluegreen.dev/color": "blue"}}});
    let err = svcs
        .patch(
            "web",
            &PatchParams::apply("bluegreen-controller"),
            &Patch::Apply(&selector),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected API error")
    };
    assert_eq!(status.details.unwrap().causes[0].field, ".spec.selector");
    // Changing helm's label is a conflict naming the manager and the field.
    let grab = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"bluegreen.dev/release": "web", "app": "other"}}});
    let err = svcs
        .patch(
            "web",
            &PatchParams::apply("bluegreen-controller"),
            &Patch::Apply(&grab),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected API error")
    };
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("conflict with \"helm\""),
        "{}",
        status.message
    );
    let causes = status.details.unwrap().causes;
    assert_eq!(causes[0].field, ".metadata.labels.app");
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    // force takes ownership.
    let s = svcs
        .patch(
            "web",
            &PatchParams::apply("bluegreen-controller").force(),
            &Patch::Apply(&grab),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.labels.as_ref().unwrap()["app"], "other");
    let owners: Vec<String> = s
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        owners.contains(&"helm".to_string())
            && owners.contains(&"bluegreen-controller".to_string())
    );
    // clusterIP was allocated and survives applies.
    assert!(s.spec.unwrap().cluster_ip.unwrap().starts_with("10.96."));
}

#[tokio::test]
async fn custom_resources_validate_default_and_use_subresources() {
    let server = kubesim::Server::start().await.unwrap();
    let widgets = widget_api(&server, "default").await;
    let w: kube::core::DynamicObject = serde_json::from_value(widget("w1", "1.0")).unwrap();
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["replicas"], 1, "default applied");
    assert_eq!(created.data["spec"]["mode"], "Auto");

    // pruning of unknown fields, kept under preserve-unknown-fields
    let mut w2 = widget("w2", "2.0");
    w2["spec"]["bogus"] = json!(true);
    w2["spec"]["extra"] = json!({"anything": {"goes": 1}});
    w2["spec"]["port"] = json!("http");
    let created = widgets
        .create(&PostParams::default(), &serde_json::from_value(w2).unwrap())
        .await
        .unwrap();
    assert!(created.data["spec"].get("bogus").is_none());
    assert_eq!(created.data["spec"]["extra"]["anything"]["goes"], 1);

    // invalid: bounds, enum, required, type
    let mut bad = widget("bad", "1");
    bad["spec"]["replicas"] = json!(-1);
    bad["spec"]["mode"] = json!("Sometimes");
    let err = widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(s.message.contains("spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"), "{}", s.message);
    assert!(
        s.message
            .contains("spec.mode: Unsupported value: \"Sometimes\""),
        "{}",
        s.message
    );
    let fields: Vec<String> = s
        .details
        .unwrap()
        .causes
        .iter()
        .map(|c| c.field.clone())
        .collect();
    assert!(
        fields.contains(&"spec.replicas".to_string()) && fields.contains(&"spec.mode".to_string())
    );
    let missing = json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "m"}, "spec": {"replicas": "three"}});
    let kube::Error::Api(s) = widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(missing).unwrap(),
        )
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert!(
        s.message.contains("spec.version: Required value"),
        "{}",
        s.message
    );
    assert!(
        s.message
            .contains("spec.replicas in body must be of type integer"),
        "{}",
        s.message
    );

    // status subresource: status writes ignore spec, main writes ignore status
    let st = widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"version": "hacked"}, "status": {"phase": "Stable", "replicas": 1}})))
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Stable");
    assert_eq!(st.data["spec"]["version"], "1.0");
    let gen_before = st.metadata.generation;
    let m = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(m.data["status"]["phase"], "Stable");
    assert_eq!(
        m.metadata.generation, gen_before,
        "no spec change, no generation bump"
    );
    let m = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"version": "1.1"}})),
        )
        .await
        .unwrap();
    assert_eq!(m.metadata.generation, gen_before.map(|g| g + 1));

    // scale subresource
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    let scaled = widgets
        .patch_scale(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["replicas"], 4);

    // SSA on a custom resource; list across namespaces
    let applied = widgets
        .patch("w3", &PatchParams::apply("ci"), &Patch::Apply(json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {"version": "3"}})))
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["replicas"], 1);
    let gvk = kube::core::GroupVersionKind::gvk("test.kubesim.dev", "v1", "Widget");
    let all: Api<kube::core::DynamicObject> = Api::all_with(
        client(&server),
        &kube::core::ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    );
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
    widgets
        .delete("w3", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn pagination_with_limit_and_continue() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    for i in 0..7 {
        cms.create(
            &PostParams::default(),
            &cm(&format!("p{i}"), &[("page", "yes")], &[]),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut rvs = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().labels("page=yes").limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        rvs.push(page.metadata.resource_version.clone().unwrap());
        if pages == 1 {
            // A write between pages: later pages still report the first page's version.
            cms.create(&PostParams::default(), &cm("unrelated", &[], &[]))
                .await
                .unwrap();
        }
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    assert!(rvs.iter().all(|rv| *rv == rvs[0]), "{rvs:?}");
    // A token older than the retained history is 410 Expired, as after compaction.
    server.expire_resource_versions();
    let stale = cms
        .list(
            &ListParams::default()
                .limit(1)
                .continue_token(&format!("{}/default/p0", rvs[0])),
        )
        .await
        .unwrap_err();
    match stale {
        kube::Error::Api(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("{other:?}"),
    }
}

/// Names in a reflector store, sorted.
fn names(reader: &reflector::Store<ConfigMap>) -> Vec<String> {
    let mut v: Vec<String> = reader
        .state()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn watcher_and_reflector_survive_closes_and_expiry() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    cms.create(&PostParams::default(), &cm("w0", &[("team", "a")], &[]))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("other", &[("team", "b")], &[]))
        .await
        .unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().labels("team=a")),
    )
    .default_backoff()
    .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    assert_eq!(names(&reader), vec!["w0"]);

    let want = |expected: Vec<&'static str>| {
        let reader = reader.clone();
        async move {
            let expected: Vec<String> = expected.into_iter().map(String::from).collect();
            eventually(&format!("reflector holds {expected:?}"), || {
                let got = names(&reader);
                let ok = got == expected;
                async move { ok.then_some(()) }
            })
            .await
        }
    };

    cms.create(&PostParams::default(), &cm("w1", &[("team", "a")], &[]))
        .await
        .unwrap();
    want(vec!["w0", "w1"]).await;
    // A label change out of the selector is a DELETED for this watcher.
    cms.patch(
        "w0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
    )
    .await
    .unwrap();
    want(vec!["w1"]).await;

    server.close_watches();
    cms.create(&PostParams::default(), &cm("w2", &[("team", "a")], &[]))
        .await
        .unwrap();
    want(vec!["w1", "w2"]).await;

    // Forced 410: the watcher re-lists and still converges, including a delete it missed.
    server.expire_resource_versions();
    cms.delete("w1", &DeleteParams::default()).await.unwrap();
    cms.create(&PostParams::default(), &cm("w3", &[("team", "a")], &[]))
        .await
        .unwrap();
    want(vec!["w2", "w3"]).await;
    let updated = cms
        .patch(
            "w3",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"x": "1"}})),
        )
        .await
        .unwrap();
    let rv = updated.metadata.resource_version.clone();
    eventually("reflector sees the update", || {
        let r = reader.clone();
        let rv = rv.clone();
        async move {
            r.state()
                .iter()
                .find(|c| c.metadata.name.as_deref() == Some("w3"))
                .filter(|c| c.metadata.resource_version == rv)
                .map(|_| ())
        }
    })
    .await;
    // The watch requests in the audit log show the re-list after the 410.
    let lists = server
        .audit()
        .iter()
        .filter(|e| e.verb == "list" && e.resource == "configmaps")
        .count();
    assert!(
        lists >= 2,
        "expected a re-list after 410, saw {lists} lists"
    );
    task.abort();
}

#[tokio::test]
async fn raw_watch_stream_has_bookmarks_and_in_stream_410() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let c = cms
        .create(&PostParams::default(), &cm("x", &[], &[]))
        .await
        .unwrap();
    let rv = c.metadata.resource_version.unwrap();
    let wp = kube::api::WatchParams::default().timeout(10);
    let mut stream = cms.watch(&wp, &rv).await.unwrap().boxed();
    cms.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "b"}})),
    )
    .await
    .unwrap();
    let mut saw_modified = false;
    let mut saw_bookmark = false;
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            kube::core::WatchEvent::Modified(o) => {
                assert_eq!(o.data.unwrap()["a"], "b");
                saw_modified = true;
            }
            kube::core::WatchEvent::Bookmark(b) => {
                assert!(!b.metadata.resource_version.is_empty());
                saw_bookmark = true;
            }
            other => panic!("unexpected {other:?}"),
        }
        if saw_modified && saw_bookmark {
            break;
        }
    }
    assert!(saw_modified && saw_bookmark);
    server.expire_resource_versions();
    let mut stream = cms.watch(&wp, &rv).await.unwrap().boxed();
    match stream.next().await.unwrap().unwrap() {
        kube::core::WatchEvent::Error(e) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410, got {other:?}"),
    }
    // A version the server never issued (a client from before a restart) is 410 too.
    let mut stream = cms.watch(&wp, "999999").await.unwrap().boxed();
    match stream.next().await.unwrap().unwrap() {
        kube::core::WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410 for a future version, got {other:?}"),
    }
}

/// As the API server's watch cache does: when a change moves an object out of a watch's
/// label selector, that watch gets DELETED carrying the object as it last matched (its old
/// labels), at the new resourceVersion. A client that indexes by label finds what to drop.
#[tokio::test]
async fn an_object_leaving_a_label_selector_is_deleted_with_its_previous_content() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let created = cms
        .create(&PostParams::default(), &cm("x", &[("team", "a")], &[]))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    let wp = kube::api::WatchParams::default()
        .labels("team=a")
        .timeout(10);
    let mut stream = cms.watch(&wp, &rv).await.unwrap().boxed();
    let moved = cms
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}, "data": {"k": "v"}})),
        )
        .await
        .unwrap();
    loop {
        match stream.next().await.unwrap().unwrap() {
            kube::core::WatchEvent::Bookmark(_) => continue,
            kube::core::WatchEvent::Deleted(o) => {
                assert_eq!(
                    o.metadata.labels.unwrap()["team"],
                    "a",
                    "the previous labels"
                );
                assert!(
                    o.data.unwrap_or_default().is_empty(),
                    "the previous content"
                );
                assert_eq!(o.metadata.resource_version, moved.metadata.resource_version);
                break;
            }
            other => panic!("expected DELETED, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn streaming_list_watcher_and_dry_run() {
    let server = kubesim::Server::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    cms.create(&PostParams::default(), &cm("s0", &[("s", "1")], &[]))
        .await
        .unwrap();
    // sendInitialEvents: initial ADDED events, then a bookmark marking their end.
    let (reader, writer) = reflector::store::<ConfigMap>();
    let cfg = watcher::Config::default().labels("s=1").streaming_lists();
    let task = tokio::spawn(
        reflector(writer, watcher(cms.clone(), cfg))
            .applied_objects()
            .for_each(|_| async {}),
    );
    reader.wait_until_ready().await.unwrap();
    assert_eq!(names(&reader), vec!["s0"]);
    cms.create(&PostParams::default(), &cm("s1", &[("s", "1")], &[]))
        .await
        .unwrap();
    eventually("streamed create", || {
        let ok = names(&reader) == vec!["s0", "s1"];
        async move { ok.then_some(()) }
    })
    .await;
    task.abort();

    // dryRun=All validates and answers, but stores nothing.
    let rv_before = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = cms.create(&dry, &cm("dry", &[], &[])).await.unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("dry"));
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    cms.patch("s0", &pp, &Patch::Merge(json!({"data": {"x": "1"}})))
        .await
        .unwrap();
    assert!(cms.get_opt("dry").await.unwrap().is_none());
    assert!(
        !cms.get("s0")
            .await
            .unwrap()
            .data
            .unwrap_or_default()
            .contains_key("x")
    );
    assert_eq!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv_before
    );
}

#[tokio::test]
async fn delete_collection_and_yaml_apply_body() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        cms.create(&PostParams::default(), &cm(name, &[("tier", tier)], &[]))
            .await
            .unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("tier=web"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["c"]);

    // kubectl --server-side sends YAML; the apiserver accepts YAML and JSON alike.
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  greeting: hello\n";
    let req = http::Request::builder()
        .method("PATCH")
        .uri("/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=yaml-client")
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml.as_bytes().to_vec())
        .unwrap();
    let created: ConfigMap = serde_json::from_str(&c.request_text(req).await.unwrap()).unwrap();
    assert_eq!(created.data.unwrap()["greeting"], "hello");
    let mf = created.metadata.managed_fields.unwrap();
    assert_eq!(
        (mf[0].manager.as_deref(), mf[0].operation.as_deref()),
        (Some("yaml-client"), Some("Apply"))
    );
}

#[tokio::test]
async fn cel_rules_when_enabled() {
    let server = kubesim::Server::builder()
        .evaluate_cel(true)
        .start()
        .await
        .unwrap();
    let widgets = widget_api(&server, "default").await;
    let mut manual = widget("m", "1");
    manual["spec"]["mode"] = json!("Manual");
    manual["spec"]["replicas"] = json!(20);
    manual["spec"]["note"] = json!("first");
    let kube::Error::Api(s) = widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(manual.clone()).unwrap(),
        )
        .await
        .unwrap_err()
    else {
        panic!("expected a 422")
    };
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
    assert!(
        s.message.ends_with(
            "is invalid: spec: Invalid value: \"object\": Manual mode allows at most 10 replicas"
        ),
        "{}",
        s.message
    );
    manual["spec"]["replicas"] = json!(3);
    widgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(manual).unwrap(),
        )
        .await
        .unwrap();
    // Transition rules see oldSelf on updates.
    let kube::Error::Api(s) = widgets
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"note": "second"}})),
        )
        .await
        .unwrap_err()
    else {
        panic!("expected a 422")
    };
    assert!(
        s.message
            .contains("spec.note: Invalid value: \"string\": note is immutable"),
        "{}",
        s.message
    );
    widgets
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
}
