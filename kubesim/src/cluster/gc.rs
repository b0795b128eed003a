//! Deletion: preconditions, finalizers, propagation policies and ownerReference
//! garbage collection (indexed by owner uid, recursive), namespace and CRD teardown.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{Cluster, DeleteOpts, ListOpts, Propagation, key};
use crate::convert;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::ResourceDef;
use crate::store::{ObjKey, Store};

impl Cluster {
    pub fn delete(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Arc<Value>> {
        let mut st = self.lock();
        let k = key(def, ns, name);
        let Some(obj) = st.get_shared(&k.gr, &k.namespace, name).cloned() else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        if let Some(rv) = &opts.precondition_rv
            && obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(rv.as_str())
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if let Some(uid) = &opts.precondition_uid
            && meta::uid(&obj) != uid
        {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&obj)
                ),
            ));
        }
        if opts.dry_run {
            return Ok(convert::serve(def, version, &obj));
        }
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(convert::serve(def, version, &obj));
            }
            let mut marked = Value::clone(&obj);
            marked["metadata"]["deletionTimestamp"] = json!(meta::now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let stored = st.put(k, marked);
            return Ok(convert::serve(def, version, &stored));
        }
        let removed = self
            .remove_locked(&mut st, def, &k, opts.propagation)
            .unwrap_or(obj);
        Ok(convert::serve(def, version, &removed))
    }

    /// Removes an object and handles its dependents per the propagation policy.
    pub(super) fn remove_locked(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        k: &ObjKey,
        propagation: Propagation,
    ) -> Option<Arc<Value>> {
        let uid = st
            .get(&k.gr, &k.namespace, &k.name)
            .map(|o| meta::uid(o).to_string())?;
        if propagation == Propagation::Foreground {
            self.collect_dependents(st, &uid, Propagation::Foreground);
        }
        let removed = st.remove(k);
        if def.plural == "namespaces" && def.group.is_empty() {
            self.purge_namespace(st, &k.name);
        }
        if def.group == "apiextensions.k8s.io"
            && def.plural == "customresourcedefinitions"
            && let Some(gr) = st.registry.remove_crd(&k.name)
        {
            st.drop_resource(&gr);
        }
        if propagation != Propagation::Foreground {
            self.collect_dependents(st, &uid, propagation);
        }
        removed
    }

    fn collect_dependents(&self, st: &mut Store, owner_uid: &str, propagation: Propagation) {
        for dep in st.dependents(owner_uid) {
            let Some(obj) = st.get_shared(&dep.gr, &dep.namespace, &dep.name).cloned() else {
                continue;
            };
            let Some(ddef) = st.registry.get(&dep.gr) else {
                continue;
            };
            if propagation == Propagation::Orphan {
                let mut o = Value::clone(&obj);
                if let Some(refs) = o
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                st.put(dep, o);
                continue;
            }
            // Only dependents whose every owner is gone are collected, as the GC does.
            let other_owners_alive = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                .any(|r| self.uid_exists(st, r, &dep.namespace));
            if other_owners_alive {
                continue;
            }
            let has_finalizers = obj
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if has_finalizers {
                if obj.pointer("/metadata/deletionTimestamp").is_none() {
                    let mut o = Value::clone(&obj);
                    o["metadata"]["deletionTimestamp"] = json!(meta::now());
                    st.put(dep, o);
                }
                continue;
            }
            self.remove_locked(st, &ddef, &dep, Propagation::Background);
        }
    }

    fn uid_exists(&self, st: &Store, owner_ref: &Value, ns: &str) -> bool {
        let uid = owner_ref
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = owner_ref
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api_version = owner_ref
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let name = owner_ref
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        st.registry.find_kind(group, kind).into_iter().any(|d| {
            let ns = if d.namespaced { ns } else { "" };
            st.get(&d.storage, ns, name)
                .is_some_and(|o| meta::uid(o) == uid)
        })
    }

    fn purge_namespace(&self, st: &mut Store, ns: &str) {
        let defs: Vec<Arc<ResourceDef>> = st
            .registry
            .all()
            .into_iter()
            .filter(|d| d.namespaced && d.storage == d.gr())
            .collect();
        for d in defs {
            let keys: Vec<ObjKey> = st
                .iter(&d.storage, Some(ns))
                .map(|(_, n, _)| key(&d, ns, n))
                .collect();
            for k in keys {
                st.remove(&k);
            }
        }
    }

    pub fn delete_collection(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: Option<&str>,
        list: &ListOpts,
        opts: &DeleteOpts,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let items = self
            .list(
                def,
                version,
                ns,
                &ListOpts {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )?
            .items;
        let mut out = Vec::new();
        for it in items {
            match self.delete(def, version, meta::namespace(&it), meta::name(&it), opts) {
                Ok(v) => out.push(v),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
