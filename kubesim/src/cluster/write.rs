//! Writes: create, replace, patch and server-side apply, all ending in `commit`
//! (subresource carving, immutable metadata, defaults, validation, generation,
//! managedFields, finalizer completion).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    Cluster, Propagation, Sub, WriteOpts, key, list_keys, same_content, same_top_level_except,
    spec_changed,
};
use crate::apply::{self, ApplyRequest, Scope};
use crate::convert;
use crate::defaults;
use crate::error::{ApiError, ApiResult, Cause};
use crate::meta;
use crate::patch::{self, PatchType};
use crate::registry::{GroupResource, ResourceDef};
use crate::schema;
use crate::store::{ObjKey, Store};
use crate::validation;

impl Cluster {
    pub fn create(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        let mut st = self.lock();
        self.create_locked(&mut st, def, version, ns, body, opts, None)
    }

    /// `managed` presets managedFields (create-on-apply); otherwise the creator owns all.
    #[allow(clippy::too_many_arguments)]
    fn create_locked(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        body: Value,
        opts: &WriteOpts,
        managed: Option<Value>,
    ) -> ApiResult<Arc<Value>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let mut obj = convert::to_storage(def, body);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        if obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            match obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(g) if !g.is_empty() => {
                    obj["metadata"]["name"] = json!(format!("{g}{}", meta::random_suffix(5)));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &def.kind_group(),
                        &def.kind,
                        &def.group,
                        "",
                        vec![Cause::new(
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )],
                    ));
                }
            }
        }
        let name = meta::name(&obj).to_string();
        if def.namespaced {
            if ns.is_empty() {
                return Err(ApiError::bad_request(
                    "the namespace of the object must be set for a namespaced resource",
                ));
            }
            if st
                .get(&GroupResource::new("", "namespaces"), "", ns)
                .is_none()
            {
                return Err(ApiError::not_found("", "namespaces", ns));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let k = key(def, ns, &name);
        if st.get(&k.gr, &k.namespace, &name).is_some() {
            return Err(ApiError::already_exists(&def.group, &def.plural, &name));
        }
        {
            let m = obj["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            m.insert("uid".into(), json!(meta::new_uid()));
            m.insert("creationTimestamp".into(), json!(meta::now()));
            m.insert("generation".into(), json!(1));
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("managedFields");
        }
        if def.status && def.crd.is_some() {
            // Custom resources with a status subresource ignore status on create.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        // A body that does not decode as its kind is refused before defaulting touches it.
        validation::decode(def, version, &obj)?;
        defaults::apply(def, &mut obj, None, &self.ips);
        self.validate(def, version, &mut obj, None, opts.strict)?;
        match managed {
            Some(m) => obj["metadata"]["managedFields"] = m,
            None => {
                let manager = if opts.manager.is_empty() {
                    "unknown"
                } else {
                    &opts.manager
                };
                apply::track_update(
                    None,
                    &mut obj,
                    manager,
                    &def.api_version(version),
                    Scope::Main {
                        status_subresource: false,
                    },
                    None,
                    list_keys(def, version),
                );
            }
        }
        if opts.dry_run {
            return Ok(Arc::new(convert::from_storage(def, version, &obj)));
        }
        let stored = st.put(k, obj);
        self.after_write(st, def, &stored);
        Ok(convert::serve(def, version, &stored))
    }

    /// Schema defaulting, pruning and validation, then CEL rules (with `oldSelf` from
    /// `old` on updates) for custom resources; CRD and metadata checks for all.
    fn validate(
        &self,
        def: &ResourceDef,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        strict: bool,
    ) -> ApiResult<()> {
        let mut causes = Vec::new();
        let crd_version = def.crd.as_ref().and_then(|m| m.get(version));
        if let Some(schema) = crd_version.and_then(|v| v.schema.as_ref()) {
            let outcome = schema::apply(obj, schema, old);
            if strict && !outcome.pruned.is_empty() {
                let fields: Vec<String> = outcome
                    .pruned
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    fields.join(", ")
                )));
            }
            causes.extend(outcome.causes);
            // Like the apiserver, rules do not run past a blocking schema failure (it adds a
            // cause saying so), and (validation ratcheting) not again on an update that
            // leaves everything but status and metadata as it was: a status write re-checks
            // nothing of the spec.
            if self.evaluates_cel()
                && !old.is_some_and(|old| same_top_level_except(old, obj, &["status", "metadata"]))
                && let Some(compiled) = crd_version.and_then(|v| v.cel.as_ref())
            {
                crate::cel::after_schema(compiled, obj, old, &mut causes);
            }
        }
        if def.group == "apiextensions.k8s.io" {
            causes.extend(defaults::validate_crd(obj));
        }
        causes.extend(validation::causes(def, obj));
        for (path, v) in [
            ("metadata.labels", obj.pointer("/metadata/labels")),
            ("metadata.annotations", obj.pointer("/metadata/annotations")),
        ] {
            if let Some(m) = v.and_then(Value::as_object) {
                for (k, val) in m {
                    if !val.is_string() {
                        causes.push(Cause::new(
                            "FieldValueTypeInvalid",
                            format!("{path}.{k}"),
                            "Invalid value: must be a string",
                        ));
                    }
                }
            } else if v.is_some_and(|v| !v.is_null()) {
                causes.push(Cause::new(
                    "FieldValueTypeInvalid",
                    path,
                    "Invalid value: must be a map of strings",
                ));
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &def.kind_group(),
                &def.kind,
                &def.group,
                meta::name(obj),
                causes,
            ))
        }
    }

    /// Replace (PUT) of the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        body: Value,
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        if !body.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        let body_name = body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let mut st = self.lock();
        let k = key(def, ns, name);
        let Some(old) = st.get_shared(&k.gr, &k.namespace, name).cloned() else {
            if sub == Sub::Main {
                // PUT on a missing object creates it, as for most built-in kinds.
                let mut body = body;
                body["metadata"]["name"] = json!(name);
                return self.create_locked(&mut st, def, version, ns, body, opts, None);
            }
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        check_resource_version(def, name, &body, &old)?;
        let new = convert::to_storage(def, body);
        self.commit(&mut st, def, version, k, &old, new, sub, opts, true)
    }

    /// PATCH of every type, including server-side apply.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        kind: PatchType,
        body: &[u8],
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        let mut st = self.lock();
        let k = key(def, ns, name);
        let old = st.get_shared(&k.gr, &k.namespace, name).cloned();
        if kind == PatchType::Apply {
            return self.apply_locked(&mut st, def, version, ns, name, k, old, body, sub, opts);
        }
        if kind == PatchType::Strategic && def.crd.is_some() {
            // As on a real apiserver: custom resources have no patch strategies.
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json (not supported for custom resources)",
            ));
        }
        let Some(old) = old else {
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        let mut served = convert::from_storage(def, version, &old);
        patch::apply_patch(&mut served, kind, body)?;
        if !served.is_object() {
            return Err(ApiError::bad_request("the patch produced a non-object"));
        }
        check_resource_version(def, name, &served, &old)?;
        let patched_name = meta::name(&served);
        if patched_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({patched_name}) does not match the name on the URL ({name})"
            )));
        }
        let new = convert::to_storage(def, served);
        self.commit(&mut st, def, version, k, &old, new, sub, opts, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_locked(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        k: ObjKey,
        old: Option<Arc<Value>>,
        body: &[u8],
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult<Arc<Value>> {
        if opts.manager.is_empty() {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("apply body is not UTF-8"))?;
        let mut config: Value = serde_json::from_str(text)
            .or_else(|_| serde_saphyr::from_str(text))
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "apply configuration must be an object",
            ));
        }
        let cfg_name = meta::name(&config);
        // Like a real API server, an apply configuration without a name takes the URL's
        // (kube-lease-manager and controller-rs status patches rely on this).
        if cfg_name.is_empty() {
            if let Some(m) = config.as_object_mut() {
                let meta = m.entry("metadata").or_insert_with(|| serde_json::json!({}));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("name".into(), Value::String(name.to_string()));
                }
            }
        } else if cfg_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({cfg_name}) does not match the name on the URL ({name})"
            )));
        }
        let want_kind = config
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if want_kind != def.kind {
            return Err(ApiError::bad_request(format!(
                "apply configuration kind {want_kind:?} does not match {}",
                def.kind
            )));
        }
        let scope = match sub {
            Sub::Main => Scope::Main {
                status_subresource: def.status,
            },
            Sub::Status => Scope::Status,
        };
        let subresource = (sub == Sub::Status).then_some("status");
        let api_version = def.api_version(version);
        let Some(old) = old else {
            if sub == Sub::Status {
                return Err(ApiError::not_found(&def.group, &def.plural, name));
            }
            // Create-on-apply: start from an empty object that carries the identity.
            let empty =
                json!({"apiVersion": api_version, "kind": def.kind, "metadata": {"name": name}});
            let merged = apply::apply(ApplyRequest {
                live: empty,
                config: &config,
                manager: &opts.manager,
                api_version: &api_version,
                force: opts.force,
                scope,
                subresource,
                keys: list_keys(def, version),
            })
            .map_err(|c| ApiError::apply_conflict(&def.group, &def.plural, name, c))?;
            let managed = merged.pointer("/metadata/managedFields").cloned();
            return self.create_locked(st, def, version, ns, merged, opts, managed);
        };
        // An apply configuration naming a resourceVersion is a conditional update, as on a
        // real API server.
        check_resource_version(def, name, &config, &old)?;
        let live = convert::from_storage(def, version, &old);
        let merged = apply::apply(ApplyRequest {
            live,
            config: &config,
            manager: &opts.manager,
            api_version: &api_version,
            force: opts.force,
            scope,
            subresource,
            keys: list_keys(def, version),
        })
        .map_err(|c| ApiError::apply_conflict(&def.group, &def.plural, name, c))?;
        self.commit(
            st,
            def,
            version,
            k,
            &old,
            convert::to_storage(def, merged),
            sub,
            opts,
            false,
        )
    }

    /// Shared tail of update/patch/apply: subresource carving, immutable metadata,
    /// defaults, validation, generation, managedFields, finalizer completion, store.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn commit(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        version: &str,
        k: ObjKey,
        old: &Arc<Value>,
        mut new: Value,
        sub: Sub,
        opts: &WriteOpts,
        track: bool,
    ) -> ApiResult<Arc<Value>> {
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        match sub {
            // Status writes change only status (and managedFields).
            Sub::Status => keep_only_status_changes(&mut new, old),
            Sub::Main if def.status => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Sub::Main => {}
        }
        {
            let m = new["metadata"]
                .as_object_mut()
                .expect("metadata is an object");
            for f in [
                "uid",
                "creationTimestamp",
                "namespace",
                "name",
                "deletionTimestamp",
                "generation",
            ] {
                match old["metadata"].get(f) {
                    Some(v) => m.insert(f.to_string(), v.clone()),
                    None => m.remove(f),
                };
            }
        }
        validation::decode(def, version, &new)?;
        defaults::apply(def, &mut new, Some(old), &self.ips);
        self.validate(def, version, &mut new, Some(old), opts.strict)?;
        if spec_changed(&new, old) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if track {
            let scope = match sub {
                Sub::Main => Scope::Main {
                    status_subresource: def.status,
                },
                Sub::Status => Scope::Status,
            };
            let subresource = (sub == Sub::Status).then_some("status");
            let manager = if opts.manager.is_empty() {
                "unknown"
            } else {
                &opts.manager
            };
            apply::track_update(
                Some(old),
                &mut new,
                manager,
                &def.api_version(version),
                scope,
                subresource,
                list_keys(def, version),
            );
        }
        if same_content(&new, old) {
            // A no-op write changes nothing: no new resourceVersion, no watch event.
            return Ok(convert::serve(def, version, old));
        }
        if opts.dry_run {
            return Ok(Arc::new(convert::from_storage(def, version, &new)));
        }
        let finalizing = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalizing {
            let removed = self.remove_locked(st, def, &k, Propagation::Background);
            return Ok(match removed {
                Some(removed) => convert::serve(def, version, &removed),
                None => Arc::new(convert::from_storage(def, version, &new)),
            });
        }
        let stored = st.put(k, new);
        self.after_write(st, def, &stored);
        Ok(convert::serve(def, version, &stored))
    }

    fn after_write(&self, st: &mut Store, def: &ResourceDef, stored: &Value) {
        if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
            st.registry.upsert_crd(stored);
        }
    }
}

/// Puts back every field of `old` but `status` and `metadata.managedFields` into `new`
/// (managedFields too when `new` has none),
/// copying only what differs: `new` usually carries the same spec already, and cloning
/// a whole object per status write was a large share of kubesim's CPU.
fn keep_only_status_changes(new: &mut Value, old: &Value) {
    let (Some(n), Some(o)) = (new.as_object_mut(), old.as_object()) else {
        return;
    };
    if !n.contains_key("status") {
        n.insert("status".into(), Value::Null);
    }
    n.retain(|k, _| k == "status" || o.contains_key(k));
    for (k, ov) in o {
        match k.as_str() {
            "status" => {}
            "metadata" => {
                let managed = n
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut("managedFields"))
                    .map(Value::take);
                let nm = n.entry("metadata").or_insert(Value::Null);
                if !same_top_level_except(nm, ov, &["managedFields"]) {
                    *nm = ov.clone();
                }
                // A write without managedFields keeps the stored ones.
                let managed = managed.or_else(|| ov.get("managedFields").cloned());
                if let (Some(m), Some(mf)) = (nm.as_object_mut(), managed) {
                    m.insert("managedFields".into(), mf);
                }
            }
            _ => {
                if n.get(k) != Some(ov) {
                    n.insert(k.clone(), ov.clone());
                }
            }
        }
    }
}

/// Optimistic concurrency: a write naming a resourceVersion must name the stored one.
fn check_resource_version(
    def: &ResourceDef,
    name: &str,
    body: &Value,
    stored: &Value,
) -> ApiResult<()> {
    let rv = |v: &Value| {
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let wanted = rv(body);
    if !wanted.is_empty() && wanted != rv(stored) {
        return Err(ApiError::conflict(
            &def.group,
            &def.plural,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    Ok(())
}
