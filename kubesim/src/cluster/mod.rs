//! The API semantics over the store: get/list/create/update/patch/apply/delete with
//! resourceVersion checks, generation, status/scale subresources, managedFields,
//! schema validation, finalizers and ownerReference garbage collection.
//! HTTP handlers and the simulated controllers both go through here. Reads live
//! here; writes in `write.rs`, deletion and garbage collection in `gc.rs`, the scale
//! subresource in `scale.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::apply;
use crate::convert;
use crate::defaults::IpAllocator;
use crate::error::{ApiError, ApiResult};
use crate::registry::{GroupResource, ResourceDef};
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
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// The simulated API server state.
pub struct Cluster {
    store: Mutex<Store>,
    pub ips: IpAllocator,
    /// Evaluate CRD CEL rules (`x-kubernetes-validations`) at admission.
    evaluate_cel: AtomicBool,
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
    match &def.crd {
        Some(versions) => {
            apply::ListKeys::schema(versions.get(version).and_then(|v| v.schema.as_ref()))
        }
        None => apply::ListKeys::for_builtin(&def.plural),
    }
}

/// Whether two objects agree on every top-level field but `ignored`, compared in place
/// (cloning whole objects to compare them was a tenth of kubesim's CPU under load).
fn same_top_level_except(a: &Value, b: &Value, ignored: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let relevant = |k: &&String| !ignored.contains(&k.as_str());
    a.keys().filter(relevant).count() == b.keys().filter(relevant).count()
        && a.iter()
            .filter(|(k, _)| relevant(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Whether the content that decides `generation` (everything but metadata and status)
/// differs.
fn spec_changed(new: &Value, old: &Value) -> bool {
    !same_top_level_except(new, old, &["metadata", "status", "apiVersion", "kind"])
}

/// Equality ignoring bookkeeping that changes on every write (resourceVersion and
/// managedFields).
fn same_content(a: &Value, b: &Value) -> bool {
    const BOOKKEEPING: &[&str] = &["resourceVersion", "managedFields"];
    same_top_level_except(a, b, &["metadata"])
        && match (a.get("metadata"), b.get("metadata")) {
            (Some(ma), Some(mb)) => same_top_level_except(ma, mb, BOOKKEEPING),
            (ma, mb) => ma == mb,
        }
}

impl Cluster {
    pub fn new(history: usize, watch_buffer: usize) -> Arc<Self> {
        let c = Arc::new(Cluster {
            store: Mutex::new(Store::new(history, watch_buffer)),
            ips: IpAllocator::default(),
            evaluate_cel: AtomicBool::new(false),
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

    /// Turns evaluation of CRD CEL rules at admission on or off (off by default).
    pub fn set_evaluate_cel(&self, on: bool) {
        self.evaluate_cel.store(on, Ordering::Relaxed);
    }

    pub fn evaluates_cel(&self) -> bool {
        self.evaluate_cel.load(Ordering::Relaxed)
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

    pub fn get(
        &self,
        def: &ResourceDef,
        version: &str,
        ns: &str,
        name: &str,
    ) -> ApiResult<Arc<Value>> {
        let st = self.lock();
        let k = key(def, ns, name);
        st.get_shared(&k.gr, &k.namespace, name)
            .map(|o| convert::serve(def, version, o))
            .ok_or_else(|| ApiError::not_found(&def.group, &def.plural, name))
    }

    /// Raw stored object, for the simulated controllers (shared, not copied).
    pub fn get_stored(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock().get_shared(gr, ns, name).cloned()
    }

    /// Reads what `read` takes from a stored object without copying the object (copies of
    /// whole pods were most of kubesim's CPU under load).
    pub fn read_stored<T>(
        &self,
        gr: &GroupResource,
        ns: &str,
        name: &str,
        read: impl FnOnce(&Value) -> T,
    ) -> Option<T> {
        self.lock().get(gr, ns, name).map(read)
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
            items.push(convert::serve(def, version, obj));
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
    pub fn dependents(&self, owner_uid: &str, gr: &GroupResource) -> Vec<Arc<Value>> {
        let st = self.lock();
        st.dependents(owner_uid)
            .into_iter()
            .filter(|k| &k.gr == gr)
            .filter_map(|k| st.get_shared(&k.gr, &k.namespace, &k.name).cloned())
            .collect()
    }

    /// Stored objects matching a predicate, for the simulated controllers.
    pub fn scan(
        &self,
        gr: &GroupResource,
        ns: Option<&str>,
        mut f: impl FnMut(&Value) -> bool,
    ) -> Vec<Arc<Value>> {
        let st = self.lock();
        st.iter(gr, ns)
            .filter(|(_, _, o)| f(o))
            .map(|(_, _, o)| o.clone())
            .collect()
    }
}

mod gc;
mod scale;
mod write;
