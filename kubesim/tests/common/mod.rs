//! Shared helpers for kubesim's integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

/// Polls `f` until it returns `Some`, for at most `DEADLINE`; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    const DEADLINE: Duration = Duration::from_secs(20);
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tool(env: &str, default: PathBuf) -> PathBuf {
    let p = std::env::var_os(env).map(PathBuf::from).unwrap_or(default);
    assert!(
        p.exists(),
        "{} not found (set {env} or run `make tools` at the repository root)",
        p.display()
    );
    p
}

pub fn kubectl_path() -> PathBuf {
    tool(
        "BLUEGREEN_KUBECTL",
        repo_root().join(".tools/py/bin/kubectl"),
    )
}

pub fn python_path() -> PathBuf {
    let venv = std::env::var_os("BLUEGREEN_TOOLS_PY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/py"));
    tool("BLUEGREEN_PYTHON", venv.join("bin/python"))
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let p = std::env::temp_dir().join(format!("kubesim-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// kubectl pointed at a server, with its own HOME (discovery cache) and kubeconfig.
pub struct Kubectl {
    dir: TempDir,
    bin: PathBuf,
}

impl Kubectl {
    pub fn new(server: &kubesim::Server) -> Self {
        let bin = kubectl_path();
        let dir = TempDir::new();
        server
            .write_kubeconfig(dir.path().join("kubeconfig"))
            .expect("write kubeconfig");
        Kubectl { dir, bin }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("KUBECTL_EXTERNAL_DIFF")
            .output()
            .await
            .expect("run kubectl")
    }

    /// Runs kubectl, asserts success and returns stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs kubectl with `input` on stdin.
    pub async fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.as_bytes())
            .await
            .expect("write manifest");
        drop(stdin);
        child.wait_with_output().await.expect("kubectl output")
    }

    /// Runs kubectl with a manifest on stdin, asserts success and returns stdout.
    pub async fn apply_stdin(&self, args: &[&str], manifest: &str) -> String {
        let out = self.run_stdin(args, manifest).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

pub fn client(server: &kubesim::Server) -> kube::Client {
    let config = kube::Config::new(server.url().parse().expect("server url"));
    kube::Client::try_from(config).expect("kube client")
}

/// A small namespaced CRD with status and scale subresources, defaults, bounds,
/// an enum, printer columns shaped like DESIGN §2 and a wide MESSAGE column.
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.kubesim.dev"},
        "spec": {
            "group": "test.kubesim.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                      "shortNames": ["wdg"], "categories": ["kubesimtest"]},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Active", "type": "string", "jsonPath": ".status.activeColor"},
                    {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
                    {"name": "Preview", "type": "string", "jsonPath": ".status.previewVersion"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    {"name": "Message", "type": "string", "priority": 1, "jsonPath": ".status.message"}
                ],
                "schema": {"openAPIV3Schema": widget_schema()}
            }]
        }
    })
}

fn widget_schema() -> Value {
    let status = json!({
        "type": "object",
        "properties": {
            "replicas": {"type": "integer"},
            "selector": {"type": "string"},
            "activeColor": {"type": "string"},
            "previewVersion": {"type": "string"},
            "phase": {"type": "string"},
            "message": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "conditions": {"type": "array", "items": {"type": "object",
                "required": ["type", "status"],
                "properties": {"type": {"type": "string"}, "status": {"type": "string"},
                               "reason": {"type": "string"}, "message": {"type": "string"},
                               "lastTransitionTime": {"type": "string", "format": "date-time"}}},
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
        }
    });
    let spec = json!({
        "type": "object",
        "required": ["version"],
        "x-kubernetes-validations": [{"rule": "self.mode != 'Manual' || self.replicas <= 10",
                                      "message": "Manual mode allows at most 10 replicas"}],
        "properties": {
            "version": {"type": "string", "minLength": 1, "maxLength": 63},
            "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 100, "default": 1},
            "mode": {"type": "string", "enum": ["Auto", "Manual"], "default": "Auto"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "port": {"x-kubernetes-int-or-string": true},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "note": {"type": "string", "nullable": true,
                     "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "note is immutable"}]},
            "tags": {"type": "array", "maxItems": 3, "items": {"type": "string"}}
        }
    });
    json!({"type": "object", "properties": {"spec": spec, "status": status}})
}

pub fn widget(name: &str, version: &str) -> Value {
    json!({"apiVersion": "test.kubesim.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"version": version}})
}

/// `kube::Api` for the Widget CRD, after the CRD is created and served.
pub async fn widget_api(
    server: &kubesim::Server,
    ns: &str,
) -> kube::Api<kube::core::DynamicObject> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let client = client(server);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).expect("crd");
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("create CRD");
    let gvk = kube::core::GroupVersionKind::gvk("test.kubesim.dev", "v1", "Widget");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "widgets");
    Api::namespaced_with(client, ns, &ar)
}

/// `kube::Api` for Widgets when the CRD already exists.
pub fn widget_api_existing(
    server: &kubesim::Server,
    ns: &str,
) -> kube::Api<kube::core::DynamicObject> {
    let gvk = kube::core::GroupVersionKind::gvk("test.kubesim.dev", "v1", "Widget");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "widgets");
    kube::Api::namespaced_with(client(server), ns, &ar)
}
