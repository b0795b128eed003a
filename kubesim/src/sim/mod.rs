//! Simulated built-in controllers, driven by store events (no polling):
//! kubelet-like pod lifecycle, ReplicaSet, Job, and Service endpoints.
//! Timers (readiness, crash, run time, minReadySeconds, deadlines) post work back
//! into the single loop, so all simulated writes are serialized.

mod deployment;
mod endpoints;
mod index;
mod job;
mod pod;
mod replicaset;
mod selectors;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cluster::{Cluster, DeleteOpts, Sub, WriteOpts};
use crate::meta;
use crate::registry::{GroupResource, ResourceDef};
use crate::store::{EventType, StoreEvent};
use index::LabelIndex;
use selectors::SelectorIndex;

/// Work items for the loop.
#[derive(Debug, Clone)]
enum Work {
    Deployment {
        ns: String,
        name: String,
    },
    ReplicaSet {
        ns: String,
        name: String,
    },
    Job {
        ns: String,
        name: String,
    },
    Service {
        ns: String,
        name: String,
    },
    /// A pod timer fired; `uid` guards against a recreated pod of the same name.
    Pod {
        ns: String,
        name: String,
        uid: String,
        step: pod::Step,
    },
}

pub fn spawn(cluster: Arc<Cluster>) -> JoinHandle<()> {
    let events = cluster.lock().feed();
    tokio::spawn(async move {
        let (tx, rx) = mpsc::unbounded_channel();
        let sim = Sim::new(cluster, tx);
        sim.run(events, rx).await;
    })
}

fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

struct Sim {
    cluster: Arc<Cluster>,
    /// Pods by label pair (see `index.rs`), Services by selector (see `selectors.rs`).
    pod_labels: RefCell<LabelIndex>,
    service_selectors: RefCell<SelectorIndex>,
    tx: mpsc::UnboundedSender<Work>,
    pods: Arc<ResourceDef>,
    rs: Arc<ResourceDef>,
    deployments: Arc<ResourceDef>,
    jobs: Arc<ResourceDef>,
    services: Arc<ResourceDef>,
    endpoints: Arc<ResourceDef>,
    slices: Arc<ResourceDef>,
    events: Arc<ResourceDef>,
}

impl Sim {
    fn new(cluster: Arc<Cluster>, tx: mpsc::UnboundedSender<Work>) -> Self {
        let d = |g: &str, v: &str, r: &str| cluster.resolve(g, v, r).expect("built-in kind");
        Sim {
            pods: d("", "v1", "pods"),
            rs: d("apps", "v1", "replicasets"),
            deployments: d("apps", "v1", "deployments"),
            jobs: d("batch", "v1", "jobs"),
            services: d("", "v1", "services"),
            endpoints: d("", "v1", "endpoints"),
            slices: d("discovery.k8s.io", "v1", "endpointslices"),
            events: d("", "v1", "events"),
            cluster,
            tx,
            pod_labels: RefCell::default(),
            service_selectors: RefCell::default(),
        }
    }

    async fn run(
        self,
        mut events: mpsc::UnboundedReceiver<Arc<StoreEvent>>,
        mut rx: mpsc::UnboundedReceiver<Work>,
    ) {
        // What was stored before the feed started; every later event comes in order.
        self.resync();
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(&ev),
                    None => return,
                },
                Some(w) = rx.recv() => self.handle(w),
            }
        }
    }

    fn resync(&self) {
        self.rebuild_indexes();
        for o in self
            .cluster
            .scan(&gr("apps", "deployments"), None, |_| true)
        {
            self.handle(Work::Deployment {
                ns: meta::namespace(&o).into(),
                name: meta::name(&o).into(),
            });
        }
        for o in self
            .cluster
            .scan(&gr("apps", "replicasets"), None, |_| true)
        {
            self.handle(Work::ReplicaSet {
                ns: meta::namespace(&o).into(),
                name: meta::name(&o).into(),
            });
        }
        for o in self.cluster.scan(&gr("batch", "jobs"), None, |_| true) {
            self.handle(Work::Job {
                ns: meta::namespace(&o).into(),
                name: meta::name(&o).into(),
            });
        }
        for o in self.cluster.scan(&gr("", "services"), None, |_| true) {
            self.handle(Work::Service {
                ns: meta::namespace(&o).into(),
                name: meta::name(&o).into(),
            });
        }
        for o in self.cluster.scan(&gr("", "pods"), None, |p| {
            p.pointer("/status/podIP").is_none()
        }) {
            self.start_pod(&o);
        }
    }

    fn rebuild_indexes(&self) {
        let mut pods = self.pod_labels.borrow_mut();
        pods.clear();
        self.cluster.scan(&gr("", "pods"), None, |p| {
            pods.set(meta::namespace(p), meta::name(p), labels(p));
            false
        });
        let mut svcs = self.service_selectors.borrow_mut();
        svcs.clear();
        self.cluster.scan(&gr("", "services"), None, |s| {
            svcs.set(meta::namespace(s), meta::name(s), selector(s));
            false
        });
    }

    fn on_event(&self, ev: &StoreEvent) {
        let k = &ev.key;
        let (ns, name) = (k.namespace.clone(), k.name.clone());
        match (k.gr.group.as_str(), k.gr.resource.as_str()) {
            ("apps", "deployments") if ev.kind != EventType::Deleted => {
                self.handle(Work::Deployment { ns, name })
            }
            ("apps", "replicasets") => {
                // A Deployment follows its ReplicaSets' status.
                self.owner_changed(&ev.object);
                if ev.kind != EventType::Deleted {
                    self.handle(Work::ReplicaSet { ns, name });
                }
            }
            ("batch", "jobs") if ev.kind != EventType::Deleted => {
                self.handle(Work::Job { ns, name })
            }
            ("", "services") => {
                if ev.kind == EventType::Deleted {
                    self.service_selectors.borrow_mut().remove(&ns, &name);
                    self.delete_quietly(&self.endpoints, &ns, &name);
                } else {
                    self.service_selectors
                        .borrow_mut()
                        .set(&ns, &name, selector(&ev.object));
                    self.handle(Work::Service { ns, name });
                }
            }
            ("", "pods") => {
                if ev.kind == EventType::Deleted {
                    self.pod_labels.borrow_mut().remove(&ns, &name);
                } else {
                    self.pod_labels
                        .borrow_mut()
                        .set(&ns, &name, labels(&ev.object));
                }
                if ev.kind == EventType::Added && ev.object.pointer("/status/podIP").is_none() {
                    self.start_pod(&ev.object);
                }
                self.pod_changed(&ev.object, ev.old.as_deref());
            }
            _ => {}
        }
    }

    /// A pod changed: its controller and the Services selecting it (before or now) must
    /// look again.
    fn pod_changed(&self, pod: &Value, old: Option<&Value>) {
        let ns = meta::namespace(pod);
        self.owner_changed(pod);
        let services = {
            let index = self.service_selectors.borrow();
            let mut names = labels(pod).map_or_else(Default::default, |l| index.selecting(ns, l));
            if let Some(before) = old.and_then(labels) {
                names.extend(index.selecting(ns, before));
            }
            names
        };
        for name in services {
            self.handle(Work::Service {
                ns: ns.to_string(),
                name,
            });
        }
    }

    /// Re-reconciles the controller (Deployment, ReplicaSet or Job) owning `obj`.
    fn owner_changed(&self, obj: &Value) {
        let ns = meta::namespace(obj).to_string();
        for r in obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if r.get("controller") != Some(&json!(true)) {
                continue;
            }
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let ns = ns.clone();
            match r.get("kind").and_then(Value::as_str) {
                Some("Deployment") => self.handle(Work::Deployment { ns, name }),
                Some("ReplicaSet") => self.handle(Work::ReplicaSet { ns, name }),
                Some("Job") => self.handle(Work::Job { ns, name }),
                _ => {}
            }
        }
    }

    fn handle(&self, w: Work) {
        match w {
            Work::Deployment { ns, name } => self.reconcile_deployment(&ns, &name),
            Work::ReplicaSet { ns, name } => self.reconcile_replicaset(&ns, &name),
            Work::Job { ns, name } => self.reconcile_job(&ns, &name),
            Work::Service { ns, name } => self.reconcile_endpoints(&ns, &name),
            Work::Pod {
                ns,
                name,
                uid,
                step,
            } => self.pod_step(&ns, &name, &uid, step),
        }
    }

    fn after(&self, delay: Duration, w: Work) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(w);
        });
    }

    /// Writes `status` of a stored object if `f` changed it; retries once on conflict.
    fn update_status(
        &self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        manager: &str,
        f: impl Fn(&mut Value),
    ) {
        for _ in 0..3 {
            let Some(cur) = self.cluster.get_stored(&def.storage, ns, name) else {
                return;
            };
            let mut next = Value::clone(&cur);
            f(&mut next);
            if next.get("status") == cur.get("status") {
                return;
            }
            match self.cluster.update(
                def,
                &def.versions[0],
                ns,
                name,
                next,
                Sub::Status,
                &WriteOpts::manager(manager),
            ) {
                Err(e) if e.code == 409 => continue,
                _ => return,
            }
        }
    }

    fn delete_quietly(&self, def: &ResourceDef, ns: &str, name: &str) {
        let _ = self
            .cluster
            .delete(def, &def.versions[0], ns, name, &DeleteOpts::default());
    }

    /// Records a core/v1 Event about `obj`, like controllers do.
    fn record(
        &self,
        obj: &Value,
        kind: &str,
        typ: &str,
        reason: &str,
        message: String,
        component: &str,
    ) {
        let ns = meta::namespace(obj);
        let now = meta::now();
        let ev = json!({
            "metadata": {"name": format!("{}.{:x}", meta::name(obj), event_stamp()), "namespace": ns},
            "involvedObject": {"kind": kind, "namespace": ns, "name": meta::name(obj), "uid": meta::uid(obj),
                "apiVersion": obj.get("apiVersion").cloned().unwrap_or(Value::Null),
                "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)},
            "reason": reason, "message": message, "type": typ,
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": component, "reportingInstance": "",
        });
        let _ = self
            .cluster
            .create(&self.events, "v1", ns, ev, &WriteOpts::manager(component));
    }
}

fn labels(obj: &Value) -> Option<&serde_json::Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

/// A Service's equality selector; selector-less Services have none.
fn selector(svc: &Value) -> Option<&serde_json::Map<String, Value>> {
    svc.pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
}

/// Event names are `<object>.<hex nanoseconds>` like client-go's recorder, so listing
/// order (by name) is chronological; a counter breaks ties within a nanosecond.
fn event_stamp() -> u128 {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    jiff::Timestamp::now().as_nanosecond().unsigned_abs() + u128::from(n % 1000)
}

fn controller_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": meta::name(owner), "uid": meta::uid(owner),
           "controller": true, "blockOwnerDeletion": true})
}
