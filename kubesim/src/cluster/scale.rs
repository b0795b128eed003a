//! The `scale` subresource (autoscaling/v1 Scale) over each kind's replica paths.

use serde_json::{Value, json};

use super::{Cluster, Sub, WriteOpts, key};
use crate::error::{ApiError, ApiResult, Cause};
use crate::jsonpath;
use crate::registry::ResourceDef;
use crate::selector::LabelSelector;

impl Cluster {
    pub fn get_scale(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
    ) -> ApiResult<Value> {
        let paths = def
            .scale
            .as_ref()
            .ok_or_else(|| ApiError::not_found_path(&format!("{}/scale", def.plural)))?;
        let obj = self.get(def, version, ns, name)?;
        let spec = jsonpath::first(&obj, &paths.spec_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let status = jsonpath::first(&obj, &paths.status_replicas)
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let selector = paths
            .label_selector
            .as_ref()
            .and_then(|p| jsonpath::first(&obj, p))
            .map(|s| match s {
                Value::String(x) => x.clone(),
                other => LabelSelector::from_object(other).to_query(),
            });
        let mut status_obj = json!({"replicas": status});
        if let Some(s) = selector {
            status_obj["selector"] = json!(s);
        }
        let m = &obj["metadata"];
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {"name": m["name"], "namespace": m.get("namespace").cloned().unwrap_or(Value::Null), "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
            "spec": {"replicas": spec},
            "status": status_obj,
        }))
    }

    /// Writes a Scale: `patch` is applied to the current Scale (or replaces it for PUT).
    pub fn update_scale(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        new_scale: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
        let paths = def
            .scale
            .clone()
            .ok_or_else(|| ApiError::not_found_path(&format!("{}/scale", def.plural)))?;
        let replicas = new_scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                ApiError::invalid(
                    "Scale.autoscaling",
                    "Scale",
                    "autoscaling",
                    name,
                    vec![Cause::new(
                        "FieldValueRequired",
                        "spec.replicas",
                        "Required value",
                    )],
                )
            })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                "Scale.autoscaling",
                "Scale",
                "autoscaling",
                name,
                vec![Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                )],
            ));
        }
        {
            let mut st = self.lock();
            let k = key(def, ns, name);
            let Some(old) = st.get_shared(&k.gr, &k.namespace, name).cloned() else {
                return Err(ApiError::not_found(&def.group, &def.plural, name));
            };
            let want_rv = new_scale
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !want_rv.is_empty()
                && old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    != Some(want_rv)
            {
                return Err(ApiError::conflict(
                    &def.group,
                    &def.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            let mut new = Value::clone(&old);
            jsonpath::set(&mut new, &paths.spec_replicas, json!(replicas));
            self.commit(&mut st, def, version, k, &old, new, Sub::Main, opts, true)?;
        }
        self.get_scale(def, version, ns, name)
    }
}
