//! Helm's library (helm-sdkpy) lints, installs, upgrades and uninstalls a chart on
//! kubesim; kubectl sees what it created.

mod common;

use common::{Kubectl, eventually, fixture, python_path};
use serde_json::Value;

/// Runs one helm-sdkpy action through the fixture script; returns its JSON report.
async fn helm(k: &Kubectl, action: &str) -> Value {
    let out = tokio::process::Command::new(python_path())
        .arg(fixture("helm_install.py"))
        .args([
            action,
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
        "helm-sdkpy {action} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("json report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_lints_installs_upgrades_and_uninstalls_a_chart() {
    let server = kubesim::Server::start().await.unwrap();
    let k = Kubectl::new(&server);

    let report = helm(&k, "install").await;
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
    // Helm's release Secret went through the protobuf path.
    assert!(
        server
            .audit()
            .iter()
            .any(|e| e.resource == "secrets" && e.verb == "create" && e.code == 201)
    );

    let report = helm(&k, "upgrade").await;
    assert_eq!(report["status"], "deployed");
    assert_eq!(report["history"], serde_json::json!([1, 2]));
    assert_eq!(
        k.ok(&[
            "get",
            "configmap",
            "demo-config",
            "-o",
            "jsonpath={.data.greeting}"
        ])
        .await,
        "upgraded"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "rs",
            "demo",
            "-o",
            "jsonpath={.status.readyReplicas}"
        ])
        .await,
        "3"
    );

    let report = helm(&k, "uninstall").await;
    assert_eq!(report["status"], "uninstalled");
    eventually("chart objects gone", || async {
        let left = k
            .ok(&[
                "get",
                "rs,svc,cm,sa,role,rolebinding,secret",
                "-l",
                "app.kubernetes.io/instance=demo",
                "-o",
                "name",
            ])
            .await;
        let pods = k.ok(&["get", "pods", "-o", "name"]).await;
        (left.trim().is_empty() && pods.trim().is_empty()).then_some(())
    })
    .await;
}
