//! The table of kinds the simulator serves: built-ins plus whatever CRDs are stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

/// Storage identity of a resource: group and plural. Versions of one resource share storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// Where `scale` reads and writes replicas for a kind (JSON paths like `.spec.replicas`).
#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// Per-version data of a custom resource.
#[derive(Debug, Clone, Default)]
pub struct CrdVersion {
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    /// The schema's `x-kubernetes-validations` rules, compiled once per CRD write.
    pub cel: Option<Arc<kube_cel::CompiledSchema>>,
}

/// One served resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, preferred (storage) first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    pub log: bool,
    /// Where objects live; differs from (group, plural) only for events.k8s.io events,
    /// which share storage with core events as on a real apiserver.
    pub storage: GroupResource,
    /// Present for custom resources: schema and printer columns per version.
    pub crd: Option<HashMap<String, CrdVersion>>,
}

impl ResourceDef {
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// `Kind.group` as used in Invalid messages (`BlueGreenRelease.bluegreen.dev`).
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    scale: bool,
    all: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status,
        scale: false,
        all: false,
    }
}

const fn all(mut x: Builtin) -> Builtin {
    x.all = true;
    x
}

const fn scaled(mut x: Builtin) -> Builtin {
    x.scale = true;
    x
}

/// Built-in kinds touched by the controller, its chart, Helm and kubectl.
const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, &["ns"], true),
    all(b("", "v1", "pods", "Pod", true, &["po"], true)),
    all(b("", "v1", "services", "Service", true, &["svc"], true)),
    b("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
    b("", "v1", "secrets", "Secret", true, &[], false),
    b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        false,
    ),
    b("", "v1", "events", "Event", true, &["ev"], false),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
    ),
    b("", "v1", "nodes", "Node", false, &["no"], true),
    all(scaled(b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        true,
    ))),
    all(scaled(b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        true,
    ))),
    all(scaled(b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        true,
    ))),
    all(b(
        "apps",
        "v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        true,
    )),
    all(b("batch", "v1", "jobs", "Job", true, &[], true)),
    all(b("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true)),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        false,
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        false,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        &[],
        false,
    ),
    b(
        "events.k8s.io",
        "v1",
        "events",
        "Event",
        true,
        &["ev"],
        false,
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        true,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
    ),
    b(
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        &[],
        false,
    ),
    b(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        &[],
        false,
    ),
    all(b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        true,
    )),
    // Access reviews are answered (always allowed), never stored.
    b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        false,
        &[],
        false,
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        false,
        &[],
        false,
    ),
    b(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        false,
        &[],
        false,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
    ),
];

fn builtin_def(x: &Builtin) -> ResourceDef {
    let storage = if x.group == "events.k8s.io" {
        GroupResource::new("", "events")
    } else {
        GroupResource::new(x.group, x.plural)
    };
    ResourceDef {
        group: x.group.to_string(),
        versions: vec![x.version.to_string()],
        plural: x.plural.to_string(),
        singular: x.kind.to_lowercase(),
        kind: x.kind.to_string(),
        namespaced: x.namespaced,
        short_names: x.short.iter().map(|s| s.to_string()).collect(),
        categories: if x.all {
            vec!["all".to_string()]
        } else {
            vec![]
        },
        status: x.status,
        scale: x.scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: Some(".spec.selector".into()),
        }),
        log: x.plural == "pods",
        storage,
        crd: None,
    }
}

/// Builds a `ResourceDef` from a stored CustomResourceDefinition object.
/// Returns `None` when the CRD has no served version.
pub fn crd_def(crd: &Value) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions = Vec::new();
    let mut per_version = HashMap::new();
    let mut status = false;
    let mut scale = None;
    for v in spec.get("versions")?.as_array()? {
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let name = v.get("name")?.as_str()?.to_string();
        let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        if storage {
            versions.insert(0, name.clone());
        } else {
            versions.push(name.clone());
        }
        if let Some(sub) = v.get("subresources") {
            if storage || !status {
                status = sub.get("status").is_some();
            }
            if let Some(sc) = sub.get("scale") {
                scale = Some(ScalePaths {
                    spec_replicas: sc
                        .get("specReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".spec.replicas")
                        .to_string(),
                    status_replicas: sc
                        .get("statusReplicasPath")
                        .and_then(Value::as_str)
                        .unwrap_or(".status.replicas")
                        .to_string(),
                    label_selector: sc
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
            }
        }
        per_version.insert(
            name,
            CrdVersion {
                cel: v
                    .pointer("/schema/openAPIV3Schema")
                    .filter(|s| s.to_string().contains("x-kubernetes-validations"))
                    .map(|s| Arc::new(kube_cel::compile_schema(s))),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            },
        );
    }
    if versions.is_empty() {
        return None;
    }
    Some(ResourceDef {
        storage: GroupResource::new(&group, &plural),
        group,
        versions,
        plural,
        singular,
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: strs(names.get("shortNames")),
        categories: strs(names.get("categories")),
        status,
        scale,
        log: false,
        crd: Some(per_version),
    })
}

/// All served resources. Cheap to clone (Arc'd defs); rebuilt on CRD changes.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_gr: HashMap<GroupResource, Arc<ResourceDef>>,
    /// CRD object name -> the resource it serves, to drop it when the CRD goes.
    crd_names: HashMap<String, GroupResource>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Registry::default();
        for x in BUILTINS {
            let def = builtin_def(x);
            r.by_gr.insert(def.gr(), Arc::new(def));
        }
        r
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.by_gr
            .get(&GroupResource::new(group, plural))
            .filter(|d| d.serves(version))
            .cloned()
    }

    pub fn get(&self, gr: &GroupResource) -> Option<Arc<ResourceDef>> {
        self.by_gr.get(gr).cloned()
    }

    /// Registers (or refreshes) the resource served by a CRD object.
    pub fn upsert_crd(&mut self, crd: &Value) {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(old) = self.crd_names.remove(&name) {
            self.by_gr.remove(&old);
        }
        if let Some(def) = crd_def(crd) {
            self.crd_names.insert(name, def.gr());
            self.by_gr.insert(def.gr(), Arc::new(def));
        }
    }

    pub fn remove_crd(&mut self, crd_name: &str) -> Option<GroupResource> {
        let gr = self.crd_names.remove(crd_name)?;
        self.by_gr.remove(&gr);
        Some(gr)
    }

    pub fn find_kind(&self, group: &str, kind: &str) -> Vec<Arc<ResourceDef>> {
        self.by_gr
            .values()
            .filter(|d| d.group == group && d.kind == kind)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.by_gr.values().cloned().collect()
    }

    /// Group -> versions -> resources, sorted, for discovery documents.
    pub fn by_group_version(&self) -> BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceDef>>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceDef>>>> = BTreeMap::new();
        for def in self.by_gr.values() {
            for v in &def.versions {
                out.entry(def.group.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default()
                    .push(def.clone());
            }
        }
        for versions in out.values_mut() {
            for defs in versions.values_mut() {
                defs.sort_by(|a, b| a.plural.cmp(&b.plural));
            }
        }
        out
    }

    /// Preferred version of a group: the first listed version of its resources.
    pub fn preferred_version(&self, group: &str) -> Option<String> {
        let mut best: Option<&str> = None;
        for def in self.by_gr.values().filter(|d| d.group == group) {
            let v = def.versions[0].as_str();
            // Prefer GA over beta over alpha, as kube-aggregator's ordering does.
            if best.is_none_or(|b| version_priority(v) > version_priority(b)) {
                best = Some(v);
            }
        }
        best.map(str::to_string)
    }
}

/// Kubernetes version ordering: v1 > v1beta1 > v1alpha1, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}
