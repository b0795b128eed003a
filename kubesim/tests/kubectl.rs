//! kubectl 1.37 (the PyPI wheel) against kubesim: discovery, CRDs, printer columns,
//! describe, scale, wait, cascading delete and events.

mod common;

use common::{Kubectl, client, eventually, fixture, repo_root, widget_crd};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Header columns as kubectl prints them (split on runs of 2+ spaces).
fn header(out: &str) -> Vec<String> {
    let line = out.lines().next().unwrap_or_default();
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().any(|c| c == name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"));
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

const WIDGET: &str = "apiVersion: test.kubesim.dev/v1
kind: Widget
metadata:
  name: w1
spec:
  version: \"2.4.1\"
  replicas: 2
";

#[tokio::test]
async fn kubectl_applies_crds_and_shows_printer_columns() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    let crd_file = k.dir().join("widgets.json");
    std::fs::write(&crd_file, widget_crd().to_string()).unwrap();
    let out = k.ok(&["apply", "-f", crd_file.to_str().unwrap()]).await;
    assert_eq!(
        out.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.test.kubesim.dev created"
    );
    let out = k
        .ok(&["apply", "--server-side", "-f", crd_file.to_str().unwrap()])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");

    let out = k.apply_stdin(&["apply", "-f", "-"], WIDGET).await;
    assert_eq!(out.trim(), "widget.test.kubesim.dev/w1 created");
    // Re-applying the same manifest is a no-op.
    let out = k.apply_stdin(&["apply", "-f", "-"], WIDGET).await;
    assert_eq!(out.trim(), "widget.test.kubesim.dev/w1 unchanged");

    // The header is what a real cluster prints for these columns.
    let out = k.ok(&["get", "wdg"]).await;
    assert_eq!(
        out.lines().next().unwrap(),
        "NAME   ACTIVE   VERSION   PREVIEW   PHASE   READY   AGE"
    );
    let r = row(&out, "w1");
    assert_eq!(r[0..2], ["w1", "2.4.1"]);
    assert!(r[2].ends_with('s'), "age like 3s: {r:?}");
    let wide = k.ok(&["get", "wdg", "-o", "wide"]).await;
    assert_eq!(
        header(&wide),
        cols(&[
            "NAME", "ACTIVE", "VERSION", "PREVIEW", "PHASE", "READY", "AGE", "MESSAGE"
        ])
    );
    let all = k.ok(&["get", "widgets", "-A"]).await;
    assert_eq!(
        header(&all),
        cols(&[
            "NAMESPACE",
            "NAME",
            "ACTIVE",
            "VERSION",
            "PREVIEW",
            "PHASE",
            "READY",
            "AGE"
        ])
    );
    assert_eq!(row(&all, "w1")[0], "default");
    // A category naming one resource type prints that type's table.
    let by_category = k.ok(&["get", "kubesimtest"]).await;
    assert_eq!(header(&by_category), header(&out));
    assert_eq!(row(&by_category, "w1")[0], "w1");
    let yaml = k.ok(&["get", "wdg", "w1", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kind: Widget")
            && yaml.contains("replicas: 2")
            && yaml.contains("mode: Auto"),
        "{yaml}"
    );

    let described = k.ok(&["describe", "wdg", "w1"]).await;
    assert!(
        described.contains("Name:") && described.contains("w1"),
        "{described}"
    );
    assert!(described.contains("Kind:         Widget"), "{described}");

    let out = k.ok(&["scale", "wdg", "w1", "--replicas", "5"]).await;
    assert_eq!(out.trim(), "widget.test.kubesim.dev/w1 scaled");
    assert_eq!(
        k.ok(&["get", "wdg", "w1", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "5"
    );

    // wait --for=condition=Ready returns once a status patch sets the condition.
    let waiter = {
        let args = [
            "wait",
            "--for=condition=Ready",
            "widget/w1",
            "--timeout=30s",
        ];
        let k2 = Kubectl::new(&server);
        tokio::spawn(async move { (k2.run(&args).await, k2) })
    };
    let widgets = common::widget_api_existing(&server, "default");
    widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(json!({"status": {
            "phase": "Stable", "activeColor": "blue", "previewVersion": "2.5.0", "message": "serving 2.4.1",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Stable", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})))
        .await
        .unwrap();
    let (out, _k2) = waiter.await.unwrap();
    assert!(
        out.status.success(),
        "wait failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "widget.test.kubesim.dev/w1 condition met"
    );
    let wide = k.ok(&["get", "wdg", "-o", "wide"]).await;
    assert_eq!(
        row(&wide, "w1")[1..6],
        ["blue", "2.4.1", "2.5.0", "Stable", "True"]
    );
    assert_eq!(*row(&wide, "w1").last().unwrap(), "serving 2.4.1");
}

#[tokio::test]
async fn kubectl_applies_the_project_crd_and_a_release() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    let crd =
        repo_root().join("charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml");
    assert!(
        crd.exists(),
        "the project CRD {} is missing (run `make crds`)",
        crd.display()
    );
    let out = k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    assert!(
        out.contains("bluegreenreleases.bluegreen.dev created"),
        "{out}"
    );
    let out = k
        .ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crd.to_str().unwrap(),
        ])
        .await;
    assert!(out.contains("serverside-applied"), "{out}");

    // Every example release applies; with no examples yet, a fixture shaped like DESIGN §2.
    let mut manifests: Vec<std::path::PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    manifests
        .retain(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains("kind: BlueGreenRelease")));
    if manifests.is_empty() {
        manifests.push(fixture("release.yaml"));
    }
    for m in &manifests {
        let out = k.ok(&["apply", "-f", m.to_str().unwrap()]).await;
        assert!(
            out.contains("bluegreenrelease.bluegreen.dev/"),
            "{}: {out}",
            m.display()
        );
    }
    let out = k.ok(&["get", "bgr", "-A"]).await;
    assert_eq!(
        header(&out),
        cols(&[
            "NAMESPACE",
            "NAME",
            "ACTIVE",
            "VERSION",
            "PREVIEW",
            "PHASE",
            "READY",
            "AGE"
        ])
    );
    let wide = k.ok(&["get", "bgrelease", "-A", "-o", "wide"]).await;
    assert_eq!(
        header(&wide),
        cols(&[
            "NAMESPACE",
            "NAME",
            "ACTIVE",
            "VERSION",
            "PREVIEW",
            "PHASE",
            "READY",
            "AGE",
            "MESSAGE"
        ])
    );
    let by_category = k.ok(&["get", "bluegreen", "-A"]).await;
    assert_eq!(header(&by_category), header(&out));
}

const REPLICASET: &str = "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        kubesim.dev/ready-after-ms: \"20\"
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

#[tokio::test]
async fn kubectl_delete_cascades_and_events_list() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    k.apply_stdin(&["apply", "-f", "-"], REPLICASET).await;
    let pods = eventually("two running pods", || async {
        let out = k.ok(&["get", "pods"]).await;
        (out.lines()
            .filter(|l| l.contains("1/1") && l.contains("Running"))
            .count()
            == 2)
            .then_some(out)
    })
    .await;
    assert_eq!(
        header(&pods),
        cols(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"])
    );
    let rs = k.ok(&["get", "rs"]).await;
    assert_eq!(
        header(&rs),
        cols(&["NAME", "DESIRED", "CURRENT", "READY", "AGE"])
    );
    let events = k.ok(&["get", "events"]).await;
    assert_eq!(
        header(&events),
        cols(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])
    );
    assert!(
        events.contains("SuccessfulCreate") && events.contains("replicaset/web"),
        "{events}"
    );

    // A ConfigMap owned by the ReplicaSet goes with it, as do the pods.
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let uid = k
        .ok(&["get", "rs", "web", "-o", "jsonpath={.metadata.uid}"])
        .await;
    let owned: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "web-config",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": uid}]}})).unwrap();
    cms.create(&PostParams::default(), &owned).await.unwrap();
    let out = k.ok(&["delete", "rs", "web"]).await;
    assert!(out.contains("replicaset.apps \"web\" deleted"), "{out}");
    let left = k
        .run(&["get", "pods,cm/web-config", "--ignore-not-found"])
        .await;
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );

    let svc = k.apply_stdin(&["create", "-f", "-"], "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector: {app: api}\n  ports:\n  - port: 80\n").await;
    assert_eq!(svc.trim(), "service/api created");
    let out = k.ok(&["get", "svc", "api"]).await;
    assert_eq!(
        header(&out),
        cols(&[
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ])
    );
    let r = row(&out, "api");
    assert_eq!(r[1], "ClusterIP");
    assert!(r[2].starts_with("10.96."));
    assert_eq!(r[3..5], ["<none>", "80/TCP"]);
    assert_eq!(
        k.ok(&["auth", "can-i", "delete", "pods"]).await.trim(),
        "yes"
    );
    let out = k.ok(&["create", "namespace", "team-a"]).await;
    assert_eq!(out.trim(), "namespace/team-a created");
    assert!(k.ok(&["get", "ns"]).await.contains("team-a"));
}

#[tokio::test]
async fn kubectl_runs_jobs_and_reads_logs() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\nspec:\n  template:\n    metadata:\n      annotations:\n        kubesim.dev/log: \"GET / 200\\nok\"\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: t\n        image: curl\n";
    k.apply_stdin(&["apply", "-f", "-"], job).await;
    let out = k
        .ok(&[
            "wait",
            "--for=condition=Complete",
            "job/smoke",
            "--timeout=30s",
        ])
        .await;
    assert_eq!(out.trim(), "job.batch/smoke condition met");
    let jobs = k.ok(&["get", "jobs"]).await;
    assert_eq!(
        header(&jobs),
        cols(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"])
    );
    assert_eq!(row(&jobs, "smoke")[1..3], ["Complete", "1/1"]);
    assert_eq!(k.ok(&["logs", "job/smoke"]).await, "GET / 200\nok\n");
    assert_eq!(k.ok(&["logs", "job/smoke", "--tail=1"]).await, "ok\n");
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        kubesim.dev/ready-after-ms: \"20\"
    spec:
      containers:
      - name: web
        image: nginx:1.27
";

#[tokio::test]
async fn kubectl_rolls_out_deployments() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    k.apply_stdin(&["apply", "-f", "-"], DEPLOYMENT).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let deploys = k.ok(&["get", "deploy"]).await;
    assert_eq!(
        header(&deploys),
        cols(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
    );
    assert_eq!(row(&deploys, "web")[1..4], ["3/3", "3", "3"]);

    k.ok(&["set", "image", "deployment/web", "web=nginx:1.28"])
        .await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let images = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await;
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        vec!["nginx:1.28"; 3]
    );
    let rs = k
        .ok(&[
            "get",
            "rs",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.replicas}",
        ])
        .await;
    let mut sizes: Vec<&str> = rs.split_whitespace().collect();
    sizes.sort();
    assert_eq!(sizes, vec!["0", "3"], "old ReplicaSet scaled to zero");

    // `rollout undo` goes back to the first ReplicaSet, which becomes revision 3.
    k.ok(&["rollout", "undo", "deployment/web"]).await;
    let out = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let images = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ])
        .await;
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        vec!["nginx:1.27"; 3]
    );
    assert_eq!(
        k.ok(&["get", "rs", "-l", "app=web", "-o", "name"])
            .await
            .lines()
            .count(),
        2,
        "no third ReplicaSet"
    );
    let history = k.ok(&["rollout", "history", "deployment/web"]).await;
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, vec!["2", "3"], "{history}");
}

#[tokio::test]
async fn recorder_events_show_in_kubectl() {
    use k8s_openapi::api::core::v1::ObjectReference;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&server));
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}})).unwrap();
    let cm = cms.create(&PostParams::default(), &cm).await.unwrap();
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: cm.metadata.name.clone(),
        namespace: cm.metadata.namespace.clone(),
        uid: cm.metadata.uid.clone(),
        ..Default::default()
    };
    // kube-runtime's Recorder writes events.k8s.io/v1 Events (and patches a series on repeats).
    let recorder = Recorder::new(
        client(&server),
        Reporter {
            controller: "bluegreen-controller".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Promoted".into(),
        note: Some("green is live".into()),
        action: "Promote".into(),
        secondary: None,
    };
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events = k.ok(&["get", "events"]).await;
    assert_eq!(
        header(&events),
        cols(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])
    );
    let r = row(&events, "Promoted");
    assert_eq!(
        r[1..],
        ["Normal", "Promoted", "configmap/subject", "green is live"]
    );
    let described = k.ok(&["describe", "configmap", "subject"]).await;
    assert!(
        described.contains("Promoted") && described.contains("green is live"),
        "{described}"
    );
    let v1 = k
        .ok(&[
            "get",
            "events.v1.events.k8s.io",
            "-o",
            "jsonpath={.items[0].regarding.name} {.items[0].note} {.items[0].reportingController}",
        ])
        .await;
    assert_eq!(v1, "subject green is live bluegreen-controller");
}

#[tokio::test]
async fn kubectl_sees_the_project_crd_cel_rules_when_enabled() {
    let server = kubesim::Server::builder()
        .evaluate_cel(true)
        .start()
        .await
        .unwrap();
    let k = Kubectl::new(&server);
    let crd =
        repo_root().join("charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml");
    k.ok(&["apply", "-f", crd.to_str().unwrap()]).await;
    let release = std::fs::read_to_string(fixture("release.yaml")).unwrap();
    k.apply_stdin(&["apply", "-f", "-"], &release).await;
    // A user label under bluegreen.dev/ is refused by the CRD's CEL rules, as on a cluster.
    let reserved = release
        .replace("name: demo\n", "name: reserved\n")
        .replace("app: demo", "bluegreen.dev/app: demo");
    let out = k.run_stdin(&["apply", "-f", "-"], &reserved).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "reserved label accepted");
    assert!(
        err.contains("The BlueGreenRelease \"reserved\" is invalid:")
            && err.contains("bluegreen.dev/"),
        "{err}"
    );
    assert!(k.run(&["get", "bgr", "reserved"]).await.status.code() != Some(0));
}
