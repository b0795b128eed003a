//! Helm's library (helm-sdkpy) lints and installs a chart into kubesim; kubectl then
//! sees what it created.

mod common;

use common::{Kubectl, fixture, python_path};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_lints_and_installs_a_chart() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);
    let out = tokio::process::Command::new(python_path())
        .arg(fixture("helm_install.py"))
        .args([
            k.kubeconfig().to_str().unwrap(),
            fixture("testchart").to_str().unwrap(),
            "demo",
            "default",
        ])
        .env("HOME", k.dir())
        .output()
        .await
        .expect("run python (run `make tools`)");
    assert!(
        out.status.success(),
        "helm-sdkpy failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["lint"]["charts"], 1);
    assert!(report["lint"]["errors"].is_null(), "{report}");
    assert_eq!(report["install"]["status"], "deployed");
    assert_eq!(report["status"], "deployed");

    // What Helm created, as kubectl sees it.
    let cm = k
        .ok(&[
            "get",
            "configmap",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}",
        ])
        .await;
    assert_eq!(cm, "hi from test");
    let secrets = k
        .ok(&["get", "secrets", "-l", "owner=helm", "-o", "name"])
        .await;
    assert_eq!(secrets.trim(), "secret/sh.helm.release.v1.demo.v1");
    let rs = k
        .ok(&[
            "get",
            "rs",
            "demo",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ])
        .await;
    assert_eq!(rs, "2", "helm waited for the ReplicaSet to be ready");
    let ep = k
        .ok(&[
            "get",
            "endpoints",
            "demo",
            "-o",
            "jsonpath={.subsets[0].ports[0].port}",
        ])
        .await;
    assert_eq!(ep, "8080");
    for obj in [
        "serviceaccount/demo",
        "role.rbac.authorization.k8s.io/demo",
        "rolebinding.rbac.authorization.k8s.io/demo",
        "service/demo",
    ] {
        let got = k.ok(&["get", obj, "-o", "name"]).await;
        assert_eq!(got.trim(), obj);
    }
    let managed = k
        .ok(&[
            "get",
            "configmap",
            "demo-config",
            "-o",
            "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
        ])
        .await;
    assert_eq!(managed, "Helm");
    // Helm's release Secret went through the protobuf path and is readable as JSON.
    let audit = server.audit();
    assert!(
        audit
            .iter()
            .any(|e| e.resource == "secrets" && e.verb == "create" && e.code == 201)
    );
}
