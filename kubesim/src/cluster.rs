//! The API semantics over the store: get/list/create/update/patch/apply/delete with
//! resourceVersion checks, generation, status/scale subresources, managedFields,
//! schema validation, finalizers and ownerReference garbage collection.
//! HTTP handlers and the simulated controllers both go through here.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::apply::{self, ApplyRequest, Scope};
use crate::convert;
use crate::defaults::{self, IpAllocator};
use crate::error::{ApiError, ApiResult, Cause};
use crate::jsonpath;
use crate::meta;
use crate::patch::{self, PatchType};
use crate::registry::{GroupResource, ResourceDef};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, Store};

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown (pruned) fields are an error.
    pub strict: bool,
}

impl WriteOpts {
    pub fn manager(m: &str) -> Self {
        WriteOpts {
            manager: m.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub precondition_rv: Option<String>,
    pub precondition_uid: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListOpts {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

pub struct ListResult {
    pub items: Vec<Value>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// The simulated API server state.
pub struct Cluster {
    store: Mutex<Store>,
    pub ips: IpAllocator,
}

fn key(def: &ResourceDef, ns: &str, name: &str) -> ObjKey {
    ObjKey {
        gr: def.storage.clone(),
        namespace: if def.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name: name.to_string(),
    }
}

/// List semantics for managedFields and apply: the served version's schema for
/// custom resources, built-in merge keys otherwise.
fn list_keys<'a>(def: &'a ResourceDef, version: &str) -> apply::ListKeys<'a> {
    apply::ListKeys::schema(
        def.crd
            .as_ref()
            .and_then(|m| m.get(version))
            .and_then(|v| v.schema.as_ref()),
    )
}

/// Object content that decides `generation`: everything but metadata and status.
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
        m.remove("apiVersion");
        m.remove("kind");
    }
    c
}

/// Comparison ignoring bookkeeping that changes on every write.
fn content(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(meta) = c.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
    }
    c
}

impl Cluster {
    pub fn new(history: usize) -> Arc<Self> {
        let c = Arc::new(Cluster {
            store: Mutex::new(Store::new(history)),
            ips: IpAllocator::default(),
        });
        let ns = c
            .resolve("", "v1", "namespaces")
            .expect("namespaces is built in");
        for name in ["default", "kube-system", "kube-public"] {
            c.create(
                &ns,
                "v1",
                "",
                json!({"metadata": {"name": name}}),
                &WriteOpts::manager("kube-apiserver"),
            )
            .expect("fresh store accepts namespaces");
        }
        c
    }

    pub fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock is a bug; keep serving what is stored.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.lock().registry.lookup(group, version, plural)
    }

    pub fn def(&self, gr: &GroupResource) -> Option<Arc<ResourceDef>> {
        self.lock().registry.get(gr)
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().current_rv()
    }

    // ----- reads -------------------------------------------------------------------

    pub fn get(&self, def: &ResourceDef, version: &str, ns: &str, name: &str) -> ApiResult<Value> {
        let st = self.lock();
        let k = key(def, ns, name);
        st.get(&k.gr, &k.namespace, name)
            .map(|o| convert::from_storage(def, version, o))
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    /// Raw stored object, for the simulated controllers.
    pub fn get_stored(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Value> {
        self.lock().get(gr, ns, name).cloned()
    }

    pub fn list(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: Option<&str>,
        opts: &ListOpts,
    ) -> ApiResult<ListResult> {
        let st = self.lock();
        let ns = if def.namespaced { ns } else { None };
        // Continue tokens are `<list rv>/<namespace>/<name>`: every page reports the
        // first page's resourceVersion, so a watch started from it misses nothing.
        let (snapshot_rv, after): (u64, Option<(String, String)>) = match &opts.continue_token {
            Some(t) if !t.is_empty() => {
                let malformed =
                    || ApiError::bad_request("continue key is not valid: malformed token");
                let mut parts = t.splitn(3, '/');
                let rv: u64 = parts
                    .next()
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(malformed)?;
                let (a, b) = (
                    parts.next().ok_or_else(malformed)?,
                    parts.next().ok_or_else(malformed)?,
                );
                if rv < st.horizon() {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((a.to_string(), b.to_string())))
            }
            _ => (st.current_rv(), None),
        };
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last: Option<(String, String)> = None;
        // Only events.k8s.io Events change shape when served; other kinds can be
        // filtered on their stored form without a copy.
        let converts = def.storage != def.gr();
        let after_ref = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        for (ons, oname, obj) in st.iter_after(&def.storage, ns, after_ref) {
            if !opts.labels.matches(obj) {
                continue;
            }
            if !opts.fields.is_empty() {
                let ok = if converts {
                    opts.fields
                        .matches(&convert::from_storage(def, version, obj))
                } else {
                    opts.fields.matches(obj)
                };
                if !ok {
                    continue;
                }
            }
            if opts.limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            last = Some((ons.to_string(), oname.to_string()));
            items.push(convert::from_storage(def, version, obj));
        }
        let continue_token = (remaining > 0).then(|| {
            let (a, b) = last.unwrap_or_default();
            format!("{snapshot_rv}/{a}/{b}")
        });
        Ok(ListResult {
            items,
            resource_version: snapshot_rv,
            remaining: (remaining > 0).then_some(remaining),
            continue_token,
        })
    }

    /// Stored objects of `gr` whose ownerReferences name `owner_uid` (indexed, no scan).
    pub fn dependents(&self, owner_uid: &str, gr: &GroupResource) -> Vec<Value> {
        let st = self.lock();
        st.dependents(owner_uid)
            .into_iter()
            .filter(|k| &k.gr == gr)
            .filter_map(|k| st.get(&k.gr, &k.namespace, &k.name).cloned())
            .collect()
    }

    /// Stored objects matching a predicate, for the simulated controllers.
    pub fn scan(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        mut f: impl FnMut(&Value) -> bool,
    ) -> Vec<Value> {
        let st = self.lock();
        st.iter(gr, ns)
            .filter(|(_, _, o)| f(o))
            .map(|(_, _, o)| o.clone())
            .collect()
    }

    // ----- writes ------------------------------------------------------------------

    pub fn create(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        body: Value,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
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
    ) -> ApiResult<Value> {
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
        defaults::apply(def, &mut obj, None, &self.ips);
        self.validate(def, version, &mut obj, opts.strict)?;
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
            return Ok(convert::from_storage(def, version, &obj));
        }
        let stored = st.put(k, obj);
        self.after_write(st, def, &stored);
        Ok(convert::from_storage(def, version, &stored))
    }

    fn validate(
        &self,
        def: &ResourceDef,
        version: &str,
        obj: &mut Value,
        strict: bool,
    ) -> ApiResult<()> {
        let mut causes = Vec::new();
        if let Some(schema) = def
            .crd
            .as_ref()
            .and_then(|m| m.get(version))
            .and_then(|v| v.schema.as_ref())
        {
            let outcome = schema::apply(obj, schema);
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
        }
        if def.group == "apiextensions.k8s.io" {
            causes.extend(defaults::validate_crd(obj));
        }
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
    ) -> ApiResult<Value> {
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
        let Some(old) = st.get(&k.gr, &k.namespace, name).cloned() else {
            if sub == Sub::Main {
                // PUT on a missing object creates it, as for most built-in kinds.
                let mut body = body;
                body["metadata"]["name"] = json!(name);
                return self.create_locked(&mut st, def, version, ns, body, opts, None);
            }
            return Err(ApiError::not_found(&def.group, &def.plural, name));
        };
        let want_rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let have_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !want_rv.is_empty() && want_rv != have_rv {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
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
    ) -> ApiResult<Value> {
        let mut st = self.lock();
        let k = key(def, ns, name);
        let old = st.get(&k.gr, &k.namespace, name).cloned();
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
        let want_rv = served
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let have_rv = old
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !want_rv.is_empty() && want_rv != have_rv {
            return Err(ApiError::conflict(
                &def.group,
                &def.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
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
        old: Option<Value>,
        body: &[u8],
        sub: Sub,
        opts: &WriteOpts,
    ) -> ApiResult<Value> {
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
                live: &empty,
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
        let live = convert::from_storage(def, version, &old);
        let merged = apply::apply(ApplyRequest {
            live: &live,
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
    fn commit(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        version: &str,
        k: ObjKey,
        old: &Value,
        mut new: Value,
        sub: Sub,
        opts: &WriteOpts,
        track: bool,
    ) -> ApiResult<Value> {
        if !new["metadata"].is_object() {
            new["metadata"] = json!({});
        }
        match sub {
            Sub::Status => {
                // Status writes change only status.
                let mut carved = old.clone();
                carved["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                if let Some(mf) = new.pointer("/metadata/managedFields") {
                    carved["metadata"]["managedFields"] = mf.clone();
                }
                new = carved;
            }
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
        defaults::apply(def, &mut new, Some(old), &self.ips);
        self.validate(def, version, &mut new, opts.strict)?;
        if spec_part(&new) != spec_part(old) {
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
        if content(&new) == content(old) {
            // A no-op write changes nothing: no new resourceVersion, no watch event.
            return Ok(convert::from_storage(def, version, old));
        }
        if opts.dry_run {
            return Ok(convert::from_storage(def, version, &new));
        }
        let finalizing = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if finalizing {
            let removed = self.remove_locked(st, def, &k, Propagation::Background);
            return Ok(convert::from_storage(def, version, &removed.unwrap_or(new)));
        }
        let stored = st.put(k, new);
        self.after_write(st, def, &stored);
        Ok(convert::from_storage(def, version, &stored))
    }

    fn after_write(&self, st: &mut Store, def: &ResourceDef, stored: &Value) {
        if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
            st.registry.upsert_crd(stored);
        }
    }

    // ----- delete and garbage collection ---------------------------------------------

    pub fn delete(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Value> {
        let mut st = self.lock();
        let k = key(def, ns, name);
        let Some(obj) = st.get(&k.gr, &k.namespace, name).cloned() else {
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
            return Ok(convert::from_storage(def, version, &obj));
        }
        let has_finalizers = obj
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(convert::from_storage(def, version, &obj));
            }
            let mut marked = obj;
            marked["metadata"]["deletionTimestamp"] = json!(meta::now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            let stored = st.put(k, marked);
            return Ok(convert::from_storage(def, version, &stored));
        }
        let removed = self
            .remove_locked(&mut st, def, &k, opts.propagation)
            .unwrap_or(obj);
        Ok(convert::from_storage(def, version, &removed))
    }

    /// Removes an object and handles its dependents per the propagation policy.
    fn remove_locked(
        &self,
        st: &mut Store,
        def: &ResourceDef,
        k: &ObjKey,
        propagation: Propagation,
    ) -> Option<Value> {
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
            let Some(obj) = st.get(&dep.gr, &dep.namespace, &dep.name).cloned() else {
                continue;
            };
            let Some(ddef) = st.registry.get(&dep.gr) else {
                continue;
            };
            if propagation == Propagation::Orphan {
                let mut o = obj;
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
                    let mut o = obj;
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
    ) -> ApiResult<Vec<Value>> {
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

    // ----- scale subresource -----------------------------------------------------------

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
            let Some(old) = st.get(&k.gr, &k.namespace, name).cloned() else {
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
            let mut new = old.clone();
            jsonpath::set(&mut new, &paths.spec_replicas, json!(replicas));
            self.commit(&mut st, def, version, k, &old, new, Sub::Main, opts, true)?;
        }
        self.get_scale(def, version, ns, name)
    }
}
