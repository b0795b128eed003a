//! The simulated built-in controllers: ReplicaSet → Pods → readiness, Jobs,
//! Service endpoints, garbage collection and finalizers.

mod common;

use common::{client, eventually};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

fn rs(name: &str, replicas: i32, annotations: Value, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "img:1", "ports": [{"name": "http", "containerPort": 8080}]}]}}}
    }))
    .unwrap()
}

fn status_of(r: &ReplicaSet) -> (i32, i32, i32) {
    let s = r.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

async fn rs_status(api: &Api<ReplicaSet>, name: &str, want: (i32, i32, i32)) -> ReplicaSet {
    eventually(&format!("{name} status {want:?}"), || async {
        let r = api.get(name).await.ok()?;
        (status_of(&r) == want).then_some(r)
    })
    .await
}

async fn owned_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn replicaset_scales_and_reports_readiness() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let rss: Api<ReplicaSet> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c);
    rss.create(
        &PostParams::default(),
        &rs("web", 3, json!({"kubesim.dev/ready-after-ms": "50"}), 0),
    )
    .await
    .unwrap();
    let r = rs_status(&rss, "web", (3, 3, 3)).await;
    let st = r.status.unwrap();
    assert_eq!(st.fully_labeled_replicas, Some(3));
    assert_eq!(st.observed_generation, Some(1));
    let ps = owned_pods(&pods, "web").await;
    assert_eq!(ps.len(), 3);
    for p in &ps {
        let name = p.metadata.name.clone().unwrap();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ReplicaSet", Some(true))
        );
        assert!(
            p.status
                .as_ref()
                .unwrap()
                .pod_ip
                .as_ref()
                .unwrap()
                .starts_with("10.244.")
        );
    }

    rss.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let r = rs_status(&rss, "web", (1, 1, 1)).await;
    assert_eq!(r.status.unwrap().observed_generation, Some(2));
    eventually("pods scaled down to 1", || async {
        (owned_pods(&pods, "web").await.len() == 1).then_some(())
    })
    .await;
    rss.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    rs_status(&rss, "web", (2, 2, 2)).await;

    // minReadySeconds: ready before available.
    rss.create(
        &PostParams::default(),
        &rs("slow", 1, json!({"kubesim.dev/ready-after-ms": "10"}), 1),
    )
    .await
    .unwrap();
    rs_status(&rss, "slow", (1, 1, 0)).await;
    rs_status(&rss, "slow", (1, 1, 1)).await;
}

#[tokio::test]
async fn never_ready_and_crash_looping_pods() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let rss: Api<ReplicaSet> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c);
    rss.create(
        &PostParams::default(),
        &rs("never", 2, json!({"kubesim.dev/never-ready": "true"}), 0),
    )
    .await
    .unwrap();
    rss.create(
        &PostParams::default(),
        &rs(
            "crash",
            1,
            json!({"kubesim.dev/ready-after-ms": "20", "kubesim.dev/crash-after-ms": "300"}),
            0,
        ),
    )
    .await
    .unwrap();

    // The crashing pod is ready first...
    rs_status(&rss, "crash", (1, 1, 1)).await;
    // ...then crash-loops with a growing restart count.
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map(|c| c[0].restart_count)
            .unwrap_or(0)
    };
    let p = eventually("crash loop", || async {
        let ps = owned_pods(&pods, "crash").await;
        ps.into_iter().find(|p| restarts(p) >= 2)
    })
    .await;
    let cs = &p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        cs.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("CrashLoopBackOff")
    );
    assert!(!cs.ready);
    rs_status(&rss, "crash", (1, 0, 0)).await;

    let r = rs_status(&rss, "never", (2, 0, 0)).await;
    assert_eq!(r.status.unwrap().fully_labeled_replicas, Some(2));
    for p in owned_pods(&pods, "never").await {
        assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    }
}

fn job(name: &str, annotations: Value, backoff: i32, deadline: Option<i64>) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff, "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"annotations": annotations},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "curl"}]}}}
    }))
    .unwrap()
}

fn condition(j: &Job, t: &str) -> Option<(String, String)> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn jobs_complete_or_fail_by_exit_code_and_serve_logs() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let jobs: Api<Job> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c);

    jobs.create(
        &PostParams::default(),
        &job(
            "ok",
            json!({"kubesim.dev/run-ms": "50", "kubesim.dev/log": "line1\nline2\nall good"}),
            0,
            None,
        ),
    )
    .await
    .unwrap();
    let done = eventually("job ok completes", || async {
        let j = jobs.get("ok").await.ok()?;
        condition(&j, "Complete").is_some().then_some(j)
    })
    .await;
    assert_eq!(condition(&done, "SuccessCriteriaMet").unwrap().0, "True");
    let st = done.status.unwrap();
    assert_eq!(st.succeeded, Some(1));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let pod = pods
        .list(&ListParams::default().labels("job-name=ok"))
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    let name = pod.metadata.name.unwrap();
    assert_eq!(
        pods.logs(&name, &Default::default()).await.unwrap(),
        "line1\nline2\nall good\n"
    );
    let tail = kube::api::LogParams {
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(pods.logs(&name, &tail).await.unwrap(), "all good\n");

    // exit 1 with backoffLimit 1: two attempts, then Failed.
    jobs.create(
        &PostParams::default(),
        &job(
            "bad",
            json!({"kubesim.dev/run-ms": "20", "kubesim.dev/exit-code": "1"}),
            1,
            None,
        ),
    )
    .await
    .unwrap();
    let failed = eventually("job bad fails", || async {
        let j = jobs.get("bad").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    assert_eq!(
        condition(&failed, "Failed").unwrap(),
        ("True".into(), "BackoffLimitExceeded".into())
    );
    assert_eq!(condition(&failed, "FailureTarget").unwrap().0, "True");
    assert_eq!(failed.status.unwrap().failed, Some(2));
    assert_eq!(
        pods.list(&ListParams::default().labels("job-name=bad"))
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // activeDeadlineSeconds stops a long-running Job.
    jobs.create(
        &PostParams::default(),
        &job("slow", json!({"kubesim.dev/run-ms": "60000"}), 0, Some(1)),
    )
    .await
    .unwrap();
    let j = eventually("deadline", || async {
        let j = jobs.get("slow").await.ok()?;
        condition(&j, "Failed").is_some().then_some(j)
    })
    .await;
    assert_eq!(condition(&j, "Failed").unwrap().1, "DeadlineExceeded");
}

#[tokio::test]
async fn endpoints_follow_readiness_and_selector_changes() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let rss: Api<ReplicaSet> = Api::default_namespaced(c.clone());
    let svcs: Api<Service> = Api::default_namespaced(c.clone());
    let eps: Api<Endpoints> = Api::default_namespaced(c.clone());
    let slices: Api<EndpointSlice> = Api::default_namespaced(c);
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "front"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})).unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    rss.create(
        &PostParams::default(),
        &rs("web", 2, json!({"kubesim.dev/ready-after-ms": "400"}), 0),
    )
    .await
    .unwrap();

    let addrs = |e: &Endpoints| {
        let s = e.subsets.clone().unwrap_or_default();
        let ready = s
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .count();
        let not_ready = s
            .iter()
            .flat_map(|s| s.not_ready_addresses.clone().unwrap_or_default())
            .count();
        (ready, not_ready)
    };
    eventually("not-ready endpoints first", || async {
        (addrs(&eps.get("front").await.ok()?) == (0, 2)).then_some(())
    })
    .await;
    let e = eventually("ready endpoints", || async {
        let e = eps.get("front").await.ok()?;
        (addrs(&e) == (2, 0)).then_some(e)
    })
    .await;
    assert_eq!(
        e.subsets.unwrap()[0].ports.as_ref().unwrap()[0].port,
        8080,
        "named targetPort resolved"
    );
    let sl = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=front"))
        .await
        .unwrap()
        .items;
    assert_eq!(sl.len(), 1);
    assert_eq!(sl[0].endpoints.len(), 2);
    assert!(
        sl[0]
            .endpoints
            .iter()
            .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
    );

    svcs.patch(
        "front",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"selector": {"app": "nothing"}}})),
    )
    .await
    .unwrap();
    eventually("endpoints emptied after selector change", || async {
        (addrs(&eps.get("front").await.ok()?) == (0, 0)).then_some(())
    })
    .await;
    svcs.patch(
        "front",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"selector": {"app": "web"}}})),
    )
    .await
    .unwrap();
    eventually("endpoints back", || async {
        (addrs(&eps.get("front").await.ok()?) == (2, 0)).then_some(())
    })
    .await;
    rss.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually("endpoints follow scale-down", || async {
        (addrs(&eps.get("front").await.ok()?) == (1, 0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_an_owner_removes_dependents_and_finalizers_hold_objects() {
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let rss: Api<ReplicaSet> = Api::default_namespaced(c.clone());
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(c);
    rss.create(&PostParams::default(), &rs("gc", 2, json!({}), 0))
        .await
        .unwrap();
    rs_status(&rss, "gc", (2, 2, 2)).await;
    // A ConfigMap owned by one of the pods: collected recursively.
    let pod = owned_pods(&pods, "gc").await.remove(0);
    let owned: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owned", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name.unwrap(), "uid": pod.metadata.uid.unwrap()}]}})).unwrap();
    cms.create(&PostParams::default(), &owned).await.unwrap();
    rss.delete("gc", &DeleteParams::background()).await.unwrap();
    eventually("pods collected", || async {
        owned_pods(&pods, "gc").await.is_empty().then_some(())
    })
    .await;
    eventually("grandchild collected", || async {
        cms.get_opt("owned").await.unwrap().is_none().then_some(())
    })
    .await;

    // Orphan keeps the pods and strips their ownerReference.
    rss.create(&PostParams::default(), &rs("orphan", 1, json!({}), 0))
        .await
        .unwrap();
    rs_status(&rss, "orphan", (1, 1, 1)).await;
    rss.delete("orphan", &DeleteParams::orphan()).await.unwrap();
    let left = owned_pods(&pods, "orphan").await;
    assert_eq!(left.len(), 1);
    assert!(
        left[0]
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|r| r.is_empty())
    );

    // Finalizers: delete marks, removal of the last finalizer deletes.
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["kubesim.dev/test"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let marked = cms.get("held").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_objects() {
    use k8s_openapi::api::core::v1::Namespace;
    let server = kubesim::Server::start().await.unwrap();
    let c = client(&server);
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "doomed"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let rss: Api<ReplicaSet> = Api::namespaced(c, "doomed");
    rss.create(&PostParams::default(), &rs("app", 1, json!({}), 0))
        .await
        .unwrap();
    rs_status(&rss, "app", (1, 1, 1)).await;

    namespaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert!(namespaces.get_opt("doomed").await.unwrap().is_none());
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        rss.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = cms.create(&PostParams::default(), &cm).await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 404),
        "no creates in a missing namespace"
    );
}
