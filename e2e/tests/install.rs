//! Installing without Helm and with it: deploy/install.yaml is the chart rendered by Helm's
//! library with its default values and `kubectl apply` of it creates every object; the
//! chart's values.schema.json types every value and makes Helm refuse bad ones by name;
//! the chart README lists every value with its default.

use std::collections::BTreeMap;
use std::process::Command;

use bluegreen_e2e::{Env, repo_root};
use serde_json::{Value, json};

fn chart_dir() -> std::path::PathBuf {
    repo_root().join("charts/bluegreen-controller")
}

/// Runs charts/bluegreen-controller/ci/helm.py (Helm's library, from `make tools`) against
/// the test's kubesim; stdout on success.
fn helm_py(env: &Env, args: &[&str]) -> String {
    let python = repo_root().join(".tools/py/bin/python");
    let out = Command::new(&python)
        .arg(chart_dir().join("ci/helm.py"))
        .args(args)
        .env("HOME", &env.dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make tools`)", python.display()));
    assert!(
        out.status.success(),
        "helm.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn install_yaml() -> String {
    std::fs::read_to_string(repo_root().join("deploy/install.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_yaml_is_the_chart_rendered_with_default_values() {
    let env = Env::start_without_crd("install-render").await.unwrap();
    let kubeconfig = env.kubeconfig.display().to_string();
    let rendered = if env.kubesim().is_some() {
        helm_py(&env, &["render", "--kubeconfig", &kubeconfig])
    } else {
        // A shared real cluster: the install scenario below applies the same objects into
        // the same namespace, which a Helm install would then refuse as not its own; the
        // render needs no real cluster, so a throwaway kubesim takes it (the chart is
        // installed into the real API server by scripts/e2e-kube.sh).
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| repo_root().join("target"));
        let kubesim = target.join("debug/kubesim").display().to_string();
        helm_py(&env, &["render", "--kubesim", &kubesim])
    };
    let committed = install_yaml();
    if rendered != committed {
        let line = rendered
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or("its length".to_string(), |i| format!("line {}", i + 1));
        panic!("deploy/install.yaml is stale (differs at {line}): run `make manifests`");
    }
    // What the render holds, so that an empty chart cannot pass as current.
    for kind in [
        "kind: Namespace",
        "kind: CustomResourceDefinition",
        "kind: ServiceAccount",
        "kind: ClusterRole",
        "kind: ClusterRoleBinding",
        "kind: Service",
        "kind: Deployment",
    ] {
        assert!(
            committed.lines().any(|l| l == kind),
            "install.yaml has a {kind}"
        );
    }
    assert!(committed.contains("image: \"ghcr.io/bluegreen-dev/bluegreen-controller:0.1.0\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_of_install_yaml_creates_every_object() {
    let env = Env::start_without_crd("install-apply").await.unwrap();
    let path = repo_root().join("deploy/install.yaml");
    // The harness names its namespace on every kubectl command; a user's plain
    // `kubectl apply -f` takes the objects' own, which this restores.
    let applied = env
        .kubectl(&[
            "apply",
            "-f",
            &path.display().to_string(),
            "--namespace",
            "bluegreen-system",
        ])
        .unwrap();

    let mut objects = 0;
    for document in install_yaml().split("\n---\n") {
        let object: Value = serde_saphyr::from_str(document).unwrap();
        if object.is_null() {
            continue;
        }
        objects += 1;
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap();
        let group = object["apiVersion"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        let resource = if group.is_empty() {
            kind.to_lowercase()
        } else {
            format!("{}.{group}", kind.to_lowercase())
        };
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let got = env
            .kubectl(&["get", &resource, name, "-n", namespace, "-o", "json"])
            .unwrap_or_else(|e| panic!("{kind} {name} was not created: {e}\n{applied}"));
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["kind"], kind);
        assert_eq!(got["metadata"]["name"], name);
    }
    assert!(objects >= 7, "{objects} objects in install.yaml");
    // The CRD serves at once: the kind the controller reconciles exists (asked in the
    // install's own namespace: on a shared cluster other scenarios have releases).
    let none = env
        .kubectl(&["get", "bgr", "-n", "bluegreen-system", "-o", "name"])
        .unwrap();
    assert_eq!(none.trim(), "");
    let deployment = env
        .kubectl(&[
            "get",
            "deployment",
            "bluegreen-controller",
            "-n",
            "bluegreen-system",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].resources.limits.memory}",
        ])
        .unwrap();
    assert_eq!(deployment, "128Mi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_refuses_invalid_values_naming_each_one() {
    let env = Env::start_without_crd("install-schema").await.unwrap();
    let cases = json!({
        "negative replicas": {"replicas": -1},
        "unknown log format": {"logFormat": "xml"},
        "fractional port": {"metrics": {"port": 8080.5}},
        "port given as a name": {"metrics": {"port": "http"}},
        "misspelt key": {"replica": 2},
        "misspelt nested key": {"image": {"repository": "example.org/bg", "tagg": "dev"}},
        "unknown pull policy": {"image": {"pullPolicy": "Sometimes"}},
        "zero concurrency": {"concurrency": 0},
        "memory that is not a quantity": {"resources": {"limits": {"memory": "lots"}}},
        // The control: values the schema must accept, with every optional piece on.
        "valid": {
            "replicas": 3,
            "logFormat": "text",
            "metrics": {"port": 9090},
            "networkPolicy": {"enabled": true, "apiServerCIDRs": ["10.0.0.1/32"]},
            "podDisruptionBudget": {"maxUnavailable": "50%"},
            "resources": {"requests": {"cpu": "100m", "memory": "320Mi"}, "limits": {"memory": "512Mi"}},
        },
    });
    let kubeconfig = env.kubeconfig.display().to_string();
    let outcome: BTreeMap<String, Option<String>> = serde_json::from_str(&helm_py(
        &env,
        &["values", "--kubeconfig", &kubeconfig, &cases.to_string()],
    ))
    .unwrap();
    let expected = [
        ("negative replicas", "'/replicas'"),
        ("unknown log format", "'/logFormat'"),
        ("fractional port", "'/metrics/port'"),
        ("port given as a name", "'/metrics/port'"),
        ("misspelt key", "'replica'"),
        ("misspelt nested key", "'tagg'"),
        ("unknown pull policy", "'/image/pullPolicy'"),
        ("zero concurrency", "'/concurrency'"),
        (
            "memory that is not a quantity",
            "'/resources/limits/memory'",
        ),
    ];
    for (case, named) in expected {
        let error = outcome[case]
            .as_deref()
            .unwrap_or_else(|| panic!("{case}: Helm accepted it"));
        assert!(
            error.contains("values don't meet the specifications of the schema"),
            "{case}: refused by the schema, not by something else: {error}"
        );
        assert!(
            error.contains(named),
            "{case}: the error names {named}: {error}"
        );
    }
    assert_eq!(outcome["valid"], None, "the valid values install");
    assert_eq!(outcome.len(), expected.len() + 1);

    // The valid case's optional pieces, as Helm created them.
    let ns = ["-n", "valid"];
    let get = |args: &[&str]| env.kubectl(&[args, &ns[..]].concat()).unwrap();
    let pdb = get(&[
        "get",
        "pdb",
        "valid-bluegreen-controller",
        "-o",
        "jsonpath={.spec.maxUnavailable}",
    ]);
    assert_eq!(pdb, "50%");
    let policy = get(&[
        "get",
        "networkpolicy",
        "valid-bluegreen-controller",
        "-o",
        "jsonpath={.spec.ingress[0].ports[0].port} {.spec.egress[0].to[0].ipBlock.cidr}",
    ]);
    assert_eq!(policy, "9090 10.0.0.1/32");
    let spread = get(&[
        "get",
        "deployment",
        "valid-bluegreen-controller",
        "-o",
        "jsonpath={.spec.template.spec.topologySpreadConstraints[0].topologyKey}",
    ]);
    assert_eq!(spread, "kubernetes.io/hostname");
}

/// values.yaml's leaves: scalars, lists and empty maps, by dotted path.
fn leaves(value: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                leaves(child, &child_path, out);
            }
        }
        _ => {
            out.insert(path.to_string(), value.clone());
        }
    }
}

fn default_values() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    leaves(&values, "", &mut out);
    out
}

#[test]
fn chart_readme_lists_every_value_with_its_default() {
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let table = readme.split("## Values").nth(1).expect("a Values section");
    let mut listed = BTreeMap::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        let default: Value = serde_json::from_str(cells[1].trim_matches('`'))
            .unwrap_or_else(|e| panic!("{key}: default {} is not JSON: {e}", cells[1]));
        assert!(
            cells.len() >= 3 && !cells[2].trim_end_matches(" |").trim().is_empty(),
            "{key} has a meaning"
        );
        assert!(
            listed.insert(key.to_string(), default).is_none(),
            "{key} twice"
        );
    }
    let values = default_values();
    let missing: Vec<_> = values.keys().filter(|k| !listed.contains_key(*k)).collect();
    let extra: Vec<_> = listed.keys().filter(|k| !values.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "values missing from the README: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "README lists values that do not exist: {extra:?}"
    );
    for (key, default) in &values {
        assert_eq!(&listed[key], default, "README default of {key}");
    }
}

/// The schema node for a dotted path, following `$ref`s into `definitions`.
fn schema_node<'a>(schema: &'a Value, root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.strip_prefix("#/definitions/")?;
            &root["definitions"][name]
        }
        None => schema,
    };
    match path.split_first() {
        None => Some(schema),
        Some((key, rest)) => {
            let child = schema["properties"].get(*key).or_else(|| {
                schema["additionalProperties"]
                    .is_object()
                    .then(|| &schema["additionalProperties"])
            })?;
            schema_node(child, root, rest)
        }
    }
}

#[test]
fn schema_types_every_value_and_refuses_unknown_keys() {
    let text = std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    for (path, default) in default_values() {
        let keys: Vec<&str> = path.split('.').collect();
        let node = schema_node(&schema, &schema, &keys)
            .unwrap_or_else(|| panic!("{path} is not in values.schema.json"));
        assert!(
            node["type"].is_string() || node["oneOf"].is_array(),
            "{path} has a type: {node}"
        );
        if let Some(kind) = node["type"].as_str() {
            let fits = match kind {
                "string" => default.is_string(),
                "integer" => default.is_i64() || default.is_u64(),
                "number" => default.is_number(),
                "boolean" => default.is_boolean(),
                "array" => default.is_array(),
                "object" => default.is_object(),
                other => panic!("{path}: unknown type {other}"),
            };
            assert!(fits, "{path}: default {default} is not a {kind}");
        }
        if node["type"] == "integer" {
            assert!(
                node["minimum"].is_number(),
                "{path}: an integer with a lower bound"
            );
        }
    }
    // Every object of the chart's own making refuses keys it does not know.
    for key in [
        "image",
        "leaderElection",
        "serviceAccount",
        "rbac",
        "metrics",
        "service",
        "serviceMonitor",
        "resources",
        "podDisruptionBudget",
        "networkPolicy",
    ] {
        assert_eq!(
            schema["properties"][key]["additionalProperties"], false,
            "{key} refuses unknown keys"
        );
    }
}
