//! The object store: one map per resource and namespace, one resourceVersion counter,
//! a bounded event history for watch resumption and a broadcast channel for fan-out.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::registry::{GroupResource, Registry};

/// Identity of a stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub gr: GroupResource,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change. `old` lets label-filtered watches turn a MODIFIED that leaves the
/// selector into DELETED, as the apiserver does.
#[derive(Debug)]
pub struct StoreEvent {
    pub rv: u64,
    pub kind: EventType,
    pub key: ObjKey,
    pub object: Arc<Value>,
    pub old: Option<Arc<Value>>,
    /// `object` as JSON, written by the first watcher that sends it as stored: every
    /// other watcher of the resource sends the same text instead of serializing again.
    json: OnceLock<String>,
}

impl StoreEvent {
    fn new(
        rv: u64,
        kind: EventType,
        key: ObjKey,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) -> Self {
        StoreEvent {
            rv,
            kind,
            key,
            object,
            old,
            json: OnceLock::new(),
        }
    }

    /// The object as JSON text, serialized once for all watchers.
    pub fn object_json(&self) -> &str {
        self.json.get_or_init(|| self.object.to_string())
    }
}

/// Default number of events kept for watch resumption.
pub const DEFAULT_HISTORY: usize = 20_000;
/// Default number of events a watch stream may fall behind the store before it catches up
/// from the history. The ring keeps every event it holds alive (with the object versions
/// they carry), so it is kept small; the history is the one long record.
pub const DEFAULT_WATCH_BUFFER: usize = 4_096;

/// Objects are shared, not copied: a read, a watch event and the simulated controllers
/// all hold the same allocation (copies of stored JSON were most of kubesim's CPU).
type Namespaced = BTreeMap<String, BTreeMap<String, Arc<Value>>>;

pub struct Store {
    rv: u64,
    objects: HashMap<GroupResource, Namespaced>,
    /// owner uid -> dependents, so garbage collection never scans the store.
    owners: HashMap<String, BTreeSet<ObjKey>>,
    history: VecDeque<Arc<StoreEvent>>,
    history_cap: usize,
    /// A watch may resume from any rv >= horizon; older ones get 410 Expired.
    horizon: u64,
    /// Watch streams: a bounded ring; a stream that falls behind it catches up from the
    /// history.
    tx: broadcast::Sender<Arc<StoreEvent>>,
    /// In-process consumers that must see every event in order (the simulated controllers,
    /// the bench's clocks): unbounded, so they never lag. A closed one is dropped.
    feeds: Vec<mpsc::UnboundedSender<Arc<StoreEvent>>>,
    pub registry: Registry,
}

impl Store {
    pub fn new(history_cap: usize, watch_buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(watch_buffer.max(1));
        Store {
            rv: 1,
            objects: HashMap::new(),
            owners: HashMap::new(),
            history: VecDeque::new(),
            history_cap,
            horizon: 1,
            tx,
            feeds: Vec::new(),
            registry: Registry::with_builtins(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// Events for a watch stream, which may lag (see `tx`).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.tx.subscribe()
    }

    /// Every event from now on, none ever dropped (see `feeds`).
    pub fn feed(&mut self) -> mpsc::UnboundedReceiver<Arc<StoreEvent>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.feeds.push(tx);
        rx
    }

    pub fn get(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(gr, ns, name).map(|o| &**o)
    }

    /// The stored object itself (a reference count, not a copy).
    pub fn get_shared(&self, gr: &GroupResource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects.get(gr)?.get(ns)?.get(name)
    }

    /// Objects of a resource, in one namespace or all, ordered by (namespace, name).
    pub fn iter<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a str, &'a Arc<Value>)> + 'a> {
        let Some(by_ns) = self.objects.get(gr) else {
            return Box::new(std::iter::empty());
        };
        match ns {
            Some(ns) => match by_ns.get(ns) {
                Some(m) => Box::new(m.iter().map(move |(n, v)| (ns, n.as_str(), v))),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                by_ns
                    .iter()
                    .flat_map(|(ns, m)| m.iter().map(move |(n, v)| (ns.as_str(), n.as_str(), v))),
            ),
        }
    }

    /// Like `iter`, starting strictly after `(namespace, name)`: continue tokens seek
    /// in the ordered maps instead of skipping from the start.
    pub fn iter_after<'a>(
        &'a self,
        gr: &GroupResource,
        ns: Option<&'a str>,
        after: Option<(&'a str, &'a str)>,
    ) -> Box<dyn Iterator<Item = (&'a str, &'a str, &'a Arc<Value>)> + 'a> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let Some((after_ns, after_name)) = after else {
            return self.iter(gr, ns);
        };
        let Some(by_ns) = self.objects.get(gr) else {
            return Box::new(std::iter::empty());
        };
        let names_after = move |ns: &'a str, m: &'a BTreeMap<String, Arc<Value>>| {
            let start = if ns == after_ns {
                Excluded(after_name.to_string())
            } else {
                Unbounded
            };
            m.range((start, Unbounded))
                .map(move |(n, v)| (ns, n.as_str(), v))
        };
        match ns {
            Some(ns) => match by_ns.get(ns) {
                Some(m) => Box::new(names_after(ns, m)),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(
                by_ns
                    .range::<str, _>((Included(after_ns), Unbounded))
                    .flat_map(move |(ns, m)| names_after(ns.as_str(), m)),
            ),
        }
    }

    pub fn count(&self, gr: &GroupResource) -> usize {
        self.objects
            .get(gr)
            .map(|m| m.values().map(BTreeMap::len).sum())
            .unwrap_or(0)
    }

    /// Dependents recorded through `metadata.ownerReferences[].uid`.
    pub fn dependents(&self, owner_uid: &str) -> Vec<ObjKey> {
        self.owners
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores `obj` under a fresh resourceVersion and emits an ADDED or MODIFIED event.
    /// The store, the event and the caller share the one stored object.
    pub fn put(&mut self, key: ObjKey, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let obj = Arc::new(obj);
        let slot = self
            .objects
            .entry(key.gr.clone())
            .or_default()
            .entry(key.namespace.clone())
            .or_default();
        let old = slot.insert(key.name.clone(), obj.clone());
        if let Some(old) = &old {
            self.unindex_owners(&key, old);
        }
        self.index_owners(&key, &obj);
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.emit(StoreEvent::new(rv, kind, key, obj.clone(), old));
        obj
    }

    /// Removes an object and emits DELETED carrying the deletion's resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Arc<Value>> {
        let by_ns = self.objects.get_mut(&key.gr)?;
        let m = by_ns.get_mut(&key.namespace)?;
        let obj = m.remove(&key.name)?;
        if m.is_empty() {
            by_ns.remove(&key.namespace);
        }
        self.unindex_owners(key, &obj);
        self.rv += 1;
        // Watch history may share the object: the DELETED copy is a new value.
        let mut obj = Arc::unwrap_or_clone(obj);
        obj["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
        let obj = Arc::new(obj);
        self.emit(StoreEvent::new(
            self.rv,
            EventType::Deleted,
            key.clone(),
            obj.clone(),
            None,
        ));
        Some(obj)
    }

    /// Drops a whole resource's storage (its CRD was deleted), with DELETED events.
    pub fn drop_resource(&mut self, gr: &GroupResource) {
        let keys: Vec<ObjKey> = self
            .iter(gr, None)
            .map(|(ns, n, _)| ObjKey {
                gr: gr.clone(),
                namespace: ns.to_string(),
                name: n.to_string(),
            })
            .collect();
        for k in keys {
            self.remove(&k);
        }
    }

    /// Events after `rv` still in history, or `None` when `rv` is older than the horizon.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<StoreEvent>>> {
        if rv < self.horizon {
            return None;
        }
        // History is sorted by rv: binary search the first event after `rv`.
        let start = self.history.partition_point(|e| e.rv <= rv);
        Some(self.history.iter().skip(start).cloned().collect())
    }

    /// Forgets all history and moves the horizon past the current version, so that
    /// every resumed watch gets 410 Expired while a fresh list+watch works.
    pub fn expire_history(&mut self) {
        self.history.clear();
        self.rv += 1;
        self.horizon = self.rv;
    }

    fn emit(&mut self, ev: StoreEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.horizon = old.rv;
            }
        }
        self.feeds.retain(|feed| feed.send(ev.clone()).is_ok());
        // No receivers is fine: nobody watches yet.
        let _ = self.tx.send(ev);
    }

    fn owner_uids(obj: &Value) -> impl Iterator<Item = &str> {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("uid").and_then(Value::as_str))
    }

    fn index_owners(&mut self, key: &ObjKey, obj: &Value) {
        let uids: Vec<String> = Self::owner_uids(obj).map(str::to_string).collect();
        for uid in uids {
            self.owners.entry(uid).or_default().insert(key.clone());
        }
    }

    fn unindex_owners(&mut self, key: &ObjKey, obj: &Value) {
        let uids: Vec<String> = Self::owner_uids(obj).map(str::to_string).collect();
        for uid in uids {
            if let Some(set) = self.owners.get_mut(&uid) {
                set.remove(key);
                if set.is_empty() {
                    self.owners.remove(&uid);
                }
            }
        }
    }
}
