//! Reading releases, with a not-found message that says where to look instead.

use bluegreen_crd::BlueGreenRelease;
use kube::{Api, api::ListParams};

use crate::{
    cluster::{Cluster, RELEASES, Request},
    error::CliError,
};

pub fn api(cluster: &Cluster) -> Api<BlueGreenRelease> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

/// The release `name` in the command's namespace.
pub async fn get(cluster: &Cluster, name: &str) -> Result<BlueGreenRelease, CliError> {
    match api(cluster).get_opt(name).await {
        Ok(Some(release)) => Ok(release),
        Ok(None) => Err(not_found(cluster, name).await),
        Err(e) => Err(cluster.error(
            e,
            Request {
                verb: "get",
                resource: RELEASES,
            },
            &cluster.namespace,
        )),
    }
}

/// "not found", with the namespaces where a release of that name does exist (best effort:
/// the user may not be allowed to list cluster-wide), or a hint that the CRD is missing.
pub async fn not_found(cluster: &Cluster, name: &str) -> CliError {
    let all: Api<BlueGreenRelease> = Api::all(cluster.client.clone());
    let params = ListParams::default().fields(&format!("metadata.name={name}"));
    let hint = match all.list(&params).await {
        Ok(list) => {
            let elsewhere: Vec<String> = list
                .items
                .iter()
                .filter_map(|r| r.metadata.namespace.clone())
                .filter(|ns| *ns != cluster.namespace)
                .collect();
            match elsewhere.first() {
                Some(ns) => format!(
                    "; it exists in namespace {}: add -n {ns}",
                    elsewhere.join(", ")
                ),
                None => "; see `kubectl bluegreen list -A`".to_string(),
            }
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            "; the BlueGreenRelease CRD is not installed in this cluster (kubectl apply -f charts/bluegreen-controller/crds/)".to_string()
        }
        Err(_) => "; see `kubectl bluegreen list -A`".to_string(),
    };
    CliError::ReleaseNotFound {
        name: name.into(),
        namespace: cluster.namespace.clone(),
        hint,
    }
}
