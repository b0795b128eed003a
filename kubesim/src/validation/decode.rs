//! A built-in object must decode into its Go type before anything else happens to it: a
//! real API server answers `400 BadRequest` ("cannot be handled as a ReplicaSet") to
//! `replicas: "many"`. The k8s-openapi types stand in for the Go types.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::ResourceDef;

/// Whether an object decodes as one Go type; the decoder's message if not.
type Check = fn(&Value) -> Result<(), String>;

fn check<T: DeserializeOwned>(obj: &Value) -> Result<(), String> {
    T::deserialize(obj).map(drop).map_err(|e| e.to_string())
}

/// The typed check for a built-in resource, or `None` (custom resources, kinds not listed).
fn checker(group: &str, plural: &str) -> Option<Check> {
    use k8s_openapi::api::{
        apps::v1 as apps, batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    };
    Some(match (group, plural) {
        ("", "pods") => check::<core::Pod>,
        ("", "services") => check::<core::Service>,
        ("", "configmaps") => check::<core::ConfigMap>,
        ("", "secrets") => check::<core::Secret>,
        ("", "serviceaccounts") => check::<core::ServiceAccount>,
        ("", "namespaces") => check::<core::Namespace>,
        ("", "nodes") => check::<core::Node>,
        ("", "endpoints") => check::<core::Endpoints>,
        ("apps", "replicasets") => check::<apps::ReplicaSet>,
        ("apps", "deployments") => check::<apps::Deployment>,
        ("batch", "jobs") => check::<batch::Job>,
        ("coordination.k8s.io", "leases") => check::<coordination::Lease>,
        _ => return None,
    })
}

/// `400 BadRequest` when `obj` does not decode as the built-in kind `def`.
pub fn decode(def: &ResourceDef, version: &str, obj: &Value) -> Result<(), ApiError> {
    let Some(check) = checker(&def.group, &def.plural) else {
        return Ok(());
    };
    check(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
            kind = def.kind
        ))
    })
}
