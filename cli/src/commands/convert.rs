//! `convert deployment/NAME`: a BlueGreenRelease equivalent to a Deployment and the Service
//! in front of it, and the steps that move over without a moment without endpoints.
//!
//! Why it is safe: the release's pods carry the Deployment's template labels, so while they
//! come up the user's Service selects both; the controller adds its color and revision keys
//! to the Service's selector only once the new color is fully available, and from then on
//! the Deployment can go.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::Api;
use serde_json::{Map, Value, json};

use crate::{
    args::{ConvertArgs, Format},
    cluster::{Cluster, DEPLOYMENTS, Request, SERVICES},
    error::CliError,
    exit::ExitCode,
    output,
};

/// The label a Deployment's ReplicaSets add to their pods; not part of the user's template.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

pub async fn run(cluster: &Cluster, args: &ConvertArgs) -> Result<ExitCode, CliError> {
    let name = deployment_name(&args.target)?;
    let ns = &cluster.namespace;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), ns);
    let deployment = deployments
        .get_opt(&name)
        .await
        .map_err(|e| {
            cluster.error(
                e,
                Request {
                    verb: "get",
                    resource: DEPLOYMENTS,
                },
                ns,
            )
        })?
        .ok_or_else(|| CliError::NotFound {
            kind: "deployment".into(),
            name: name.clone(),
            namespace: ns.clone(),
        })?;
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), ns);
    let services = services
        .list(&Default::default())
        .await
        .map_err(|e| {
            cluster.error(
                e,
                Request {
                    verb: "list",
                    resource: SERVICES,
                },
                ns,
            )
        })?
        .items;
    let conversion =
        convert(&deployment, &services, args.service.as_deref()).map_err(|reason| {
            CliError::Convert {
                target: args.target.clone(),
                reason,
            }
        })?;
    match args.output {
        Some(format) => output::print(&output::encode(&conversion.manifest, format)?),
        None => {
            output::print(&conversion.steps(ns));
            println!("---");
            output::print(&output::encode(&conversion.manifest, Format::Yaml)?);
        }
    }
    Ok(ExitCode::Success)
}

fn deployment_name(target: &str) -> Result<String, CliError> {
    let bad = || CliError::Convert {
        target: target.into(),
        reason: "name it as deployment/NAME".into(),
    };
    let (kind, name) = target.split_once('/').ok_or_else(bad)?;
    match kind {
        "deployment" | "deployments" | "deploy" | "deployment.apps" | "deployments.apps"
            if !name.is_empty() =>
        {
            Ok(name.to_string())
        }
        _ => Err(bad()),
    }
}

/// A converted Deployment.
#[derive(Debug)]
pub struct Conversion {
    pub name: String,
    pub service: String,
    pub replicas: i32,
    pub manifest: Value,
}

/// The release for `deployment` and the Service that selects its pods (`service` names it
/// when several do).
pub fn convert(
    deployment: &Deployment,
    services: &[Service],
    service: Option<&str>,
) -> Result<Conversion, String> {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let spec = deployment.spec.as_ref().ok_or("it has no spec")?;
    if spec
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err("its selector uses matchExpressions; a release selects pods by label equality, as Services do".into());
    }
    let mut template = serde_json::to_value(&spec.template).map_err(|e| e.to_string())?;
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let labels: Map<String, Value> = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if labels.is_empty() {
        return Err("its pod template has no labels".into());
    }
    let selecting: Vec<&Service> = services
        .iter()
        .filter(|s| selects(s, &labels))
        .filter(|s| service.is_none_or(|want| s.metadata.name.as_deref() == Some(want)))
        .collect();
    let svc = match selecting.as_slice() {
        [one] => *one,
        [] => {
            return Err(match service {
                Some(want) => format!("Service {want} does not select its pods"),
                None => "no Service selects its pods; create one (kubectl expose deployment NAME --port PORT) or write the release by hand".into(),
            });
        }
        several => {
            let names: Vec<&str> = several
                .iter()
                .filter_map(|s| s.metadata.name.as_deref())
                .collect();
            return Err(format!(
                "several Services select its pods ({}); pick one with --service",
                names.join(", ")
            ));
        }
    };
    let service_name = svc.metadata.name.clone().unwrap_or_default();
    let ports: Vec<Value> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let mut port = json!({"port": p.port});
            if let Some(n) = p.name {
                port["name"] = json!(n);
            }
            if let Some(t) = p.target_port {
                port["targetPort"] = json!(t);
            }
            if let Some(proto) = p.protocol {
                port["protocol"] = json!(proto);
            }
            port
        })
        .collect();
    let replicas = spec.replicas.unwrap_or(1);
    let mut release_spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": spec.selector.match_labels.clone().unwrap_or_default()},
        "template": template,
        "service": {"name": service_name, "ports": ports},
    });
    if spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
    {
        release_spec.as_object_mut().map(|s| s.remove("selector"));
    }
    if let Some(seconds) = spec.min_ready_seconds.filter(|s| *s > 0) {
        release_spec["minReadySeconds"] = json!(seconds);
    }
    if let Some(seconds) = spec.progress_deadline_seconds {
        release_spec["progressDeadlineSeconds"] = json!(seconds);
    }
    if service_name == format!("{name}-preview") {
        release_spec["service"]["previewName"] = json!(format!("{name}-bg-preview"));
    }
    let mut metadata = json!({"name": name});
    if let Some(ns) = &deployment.metadata.namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(labels) = deployment
        .metadata
        .labels
        .as_ref()
        .filter(|l| !l.is_empty())
    {
        metadata["labels"] = json!(labels);
    }
    let manifest = json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": metadata,
        "spec": release_spec,
    });
    Ok(Conversion {
        name,
        service: service_name,
        replicas,
        manifest,
    })
}

/// A Service selects the pods when its (non-empty) selector is a subset of their labels.
fn selects(service: &Service, labels: &Map<String, Value>) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

impl Conversion {
    /// The move, as YAML comments above the manifest (the output stays valid YAML).
    pub fn steps(&self, namespace: &str) -> String {
        let Conversion {
            name,
            service,
            replicas,
            ..
        } = self;
        format!(
            "# BlueGreenRelease {name}, equivalent to deployment/{name} and the Service {service} that selects its pods.
# Save this output as {name}-bluegreen.yaml, then move over without downtime:
#   1. kubectl apply -n {namespace} -f {name}-bluegreen.yaml
#      The controller stands {name}-blue up beside the Deployment ({replicas} pods of the same template).
#      Meanwhile Service {service} serves from the Deployment's pods (and from {name}-blue's once ready);
#      only once {name}-blue is fully available does its selector get bluegreen.dev/color=blue and
#      bluegreen.dev/revision, in one write.
#   2. kubectl bluegreen status {name} -n {namespace} --watch --timeout 10m
#      Exits 0 once the release is Ready: Service {service} now selects only {name}-blue.
#   3. kubectl delete deployment {name} -n {namespace}
#      Its pods no longer receive traffic, so removing them cuts nothing off.
#   If the Deployment comes from git (Helm, Argo CD, Flux), replace it there by the release after
#   step 2, so that it is not recreated. Add smoke tests under spec.smokeTests before the next version.
"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1.0"}]}
                }
            }
        }))
        .unwrap()
    }

    fn service(name: &str, selector: Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_and_its_service_become_one_release() {
        let services = [
            service("web", json!({"app": "web"})),
            service("api", json!({"app": "api"})),
        ];
        let c = convert(&deployment(), &services, None).unwrap();
        assert_eq!(c.service, "web");
        assert_eq!(
            c.manifest,
            json!({
                "apiVersion": "bluegreen.dev/v1alpha1",
                "kind": "BlueGreenRelease",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "progressDeadlineSeconds": 600,
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "web:1.0"}]}
                    },
                    "service": {"name": "web", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
                }
            })
        );
        let release: bluegreen_crd::BlueGreenRelease =
            serde_json::from_value(c.manifest).expect("a valid BlueGreenRelease");
        assert!(bluegreen_crd::validate::validate(&release).is_ok());
    }

    #[test]
    fn no_or_several_services_are_explained() {
        let none = convert(
            &deployment(),
            &[service("api", json!({"app": "api"}))],
            None,
        );
        assert!(none.unwrap_err().contains("no Service selects its pods"));
        let two = [
            service("web", json!({"app": "web"})),
            service("web-internal", json!({"app": "web"})),
        ];
        let err = convert(&deployment(), &two, None).unwrap_err();
        assert!(err.contains("--service"), "{err}");
        assert_eq!(
            convert(&deployment(), &two, Some("web-internal"))
                .unwrap()
                .service,
            "web-internal"
        );
    }

    #[test]
    fn targets_name_a_deployment() {
        assert_eq!(deployment_name("deployment/web").unwrap(), "web");
        assert_eq!(deployment_name("deploy/web").unwrap(), "web");
        assert!(deployment_name("web").is_err());
        assert!(deployment_name("service/web").is_err());
    }
}
