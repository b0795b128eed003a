//! Seeding many idle releases fast, for the 10,000-release figures: going through the
//! controller costs minutes at that scale, so releases beyond the first checkpoint are
//! cloned from one the controller itself brought to Stable.
//!
//! Faithful by construction: the template's stored spec, status, ReplicaSets and Services
//! (exactly what the controller wrote) are copied through the API with the release name and
//! revision substituted (the revision recomputed with `bluegreen_crd::revision::revision_of`,
//! checked against the template's own), ownerReferences pointed at the new release's uid,
//! and every write made with the controller's field manager, as it would have made them.
//! kubesim's simulated controllers then create the pods, Endpoints and EndpointSlices. The
//! controller is stopped meanwhile; when it starts it finds N Stable releases — and any
//! write it then makes shows up in the restart figure.

use std::sync::Arc;

use bluegreen_crd::{BlueGreenRelease, BlueGreenReleaseSpec, labels, revision::revision_of};
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kubesim::GroupResource;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::BenchResult;
use super::lab::Lab;

/// What the controller stored for one Stable release.
#[derive(Clone)]
pub struct Template {
    name: String,
    revision: String,
    spec: Value,
    status: Value,
    replica_sets: Vec<Arc<Value>>,
    services: Vec<Arc<Value>>,
}

fn owned_by(lab: &Lab, group: &str, resource: &str, ns: &str, release: &str) -> Vec<Arc<Value>> {
    lab.server
        .cluster()
        .scan(&GroupResource::new(group, resource), Some(ns), |o| {
            o["metadata"]["labels"][labels::RELEASE] == release
        })
}

fn revision(spec: &Value) -> BenchResult<String> {
    let spec: BlueGreenReleaseSpec =
        serde_json::from_value(spec.clone()).map_err(|e| format!("stored spec: {e}"))?;
    Ok(revision_of(&spec))
}

impl Template {
    /// Captures release `name` of `ns`, which must be Stable.
    pub fn capture(lab: &Lab, ns: &str, name: &str) -> BenchResult<Template> {
        let release = lab.release(ns, name).ok_or("template release missing")?;
        let active = release["status"]["activeRevision"]
            .as_str()
            .ok_or("template has no active revision")?
            .to_string();
        let computed = revision(&release["spec"])?;
        if computed != active {
            return Err(format!(
                "revision_of(spec) = {computed} but the controller recorded {active}: cannot clone"
            ));
        }
        Ok(Template {
            name: name.into(),
            revision: active,
            spec: release["spec"].clone(),
            status: release["status"].clone(),
            replica_sets: owned_by(lab, "apps", "replicasets", ns, name),
            services: owned_by(lab, "", "services", ns, name),
        })
    }

    /// `value` with the template's name and revision replaced.
    fn substitute(&self, value: &Value, name: &str, revision: &str) -> Value {
        let text = value
            .to_string()
            .replace(&self.name, name)
            .replace(&self.revision, revision);
        serde_json::from_str(&text).expect("substitution keeps JSON valid")
    }
}

/// A child object as a create body: server-assigned fields dropped, owner set to `uid`.
fn child_body(stored: &Value, owner_uid: &str) -> Value {
    let mut body = stored.clone();
    if let Some(meta) = body["metadata"].as_object_mut() {
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(field);
        }
        if let Some(owners) = meta
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
        {
            for owner in owners {
                owner["uid"] = json!(owner_uid);
            }
        }
    }
    if let Some(obj) = body.as_object_mut() {
        obj.remove("status");
    }
    if let Some(spec) = body["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    body
}

async fn clone_one(
    client: Client,
    ns: String,
    template: Arc<Template>,
    name: String,
) -> BenchResult<()> {
    // The spec does not contain its own revision: substitute the name, then compute it.
    let spec = template.substitute(&template.spec, &name, &template.revision);
    let rev = revision(&spec)?;
    let params = PostParams {
        field_manager: Some(labels::FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let releases: Api<BlueGreenRelease> = Api::namespaced(client.clone(), &ns);
    let release: BlueGreenRelease = serde_json::from_value(json!({
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenRelease",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .map_err(|e| e.to_string())?;
    let created = releases
        .create(&params, &release)
        .await
        .map_err(|e| format!("seed {name}: {e}"))?;
    let uid = created.metadata.uid.unwrap_or_default();
    let status = template.substitute(&template.status, &name, &rev);
    releases
        .patch_status(
            &name,
            &PatchParams::apply(labels::FIELD_MANAGER).force(),
            &Patch::Apply(json!({
                "apiVersion": "bluegreen.dev/v1alpha1",
                "kind": "BlueGreenRelease",
                "metadata": {"name": name},
                "status": status,
            })),
        )
        .await
        .map_err(|e| format!("seed status of {name}: {e}"))?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    for rs in &template.replica_sets {
        let body = child_body(&template.substitute(rs, &name, &rev), &uid);
        let rs: ReplicaSet = serde_json::from_value(body).map_err(|e| e.to_string())?;
        replica_sets
            .create(&params, &rs)
            .await
            .map_err(|e| format!("seed a ReplicaSet of {name}: {e}"))?;
    }
    let services: Api<Service> = Api::namespaced(client, &ns);
    for svc in &template.services {
        let body = child_body(&template.substitute(svc, &name, &rev), &uid);
        let svc: Service = serde_json::from_value(body).map_err(|e| e.to_string())?;
        services
            .create(&params, &svc)
            .await
            .map_err(|e| format!("seed a Service of {name}: {e}"))?;
    }
    Ok(())
}

/// Clones `template` as `names`, `concurrency` at a time.
pub async fn seed(
    client: &Client,
    ns: &str,
    template: &Template,
    names: Vec<String>,
    concurrency: usize,
) -> BenchResult<()> {
    let template = Arc::new(template.clone());
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for name in names {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let fut = clone_one(client.clone(), ns.to_string(), template.clone(), name);
        tasks.spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        });
        while let Some(done) = tasks.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(())
}
