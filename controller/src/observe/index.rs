//! In-memory caches of the release's children, indexed by release, fed by watches.
//!
//! Every object the controller creates or adopts carries `bluegreen.dev/release=<name>`
//! (DESIGN §3), and every watch is filtered on that label: memory grows with the releases,
//! not with the cluster. Only the planner's view of each object is kept (a ReplicaSet's
//! counts, not its pod template), and views are grouped by release (its namespace and name)
//! so that building one release's snapshot costs only its own objects, even with 10,000
//! releases.

use std::{
    collections::{BTreeMap, HashMap},
    sync::RwLock,
};

use bluegreen_crd::{BlueGreenRelease, labels};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::{
    Resource, ResourceExt,
    runtime::{reflector::ObjectRef, watcher},
};
use tokio::sync::watch;

/// What the controller keeps of an object: the view the planner reads, not the object.
pub trait Summarize: Resource {
    type Summary: Clone + Send + Sync;
    /// `None` for an object the controller has no use for (e.g. a Job that is not a smoke
    /// test): it is not kept.
    fn summarize(&self) -> Option<Self::Summary>;
}

/// The release an object belongs to.
type Key = ObjectRef<BlueGreenRelease>;

/// Summaries grouped by release, then by object name, and where each object
/// is filed.
struct Groups<V> {
    by_release: HashMap<Key, BTreeMap<String, V>>,
    /// (namespace, name) → the release group holding it. A DELETED event (or an object that
    /// stops being of interest) is removed by name, whatever labels the event carries: a
    /// watch may send an object that left its label selector with its new labels.
    homes: HashMap<(String, String), Key>,
}

impl<V> Default for Groups<V> {
    fn default() -> Self {
        Groups {
            by_release: HashMap::new(),
            homes: HashMap::new(),
        }
    }
}

impl<V> Groups<V> {
    fn insert(&mut self, namespace: String, name: String, key: Key, summary: V) {
        let home = (namespace, name);
        if let Some(previous) = self.homes.get(&home)
            && previous != &key
        {
            // A label change moved it between releases.
            let previous = previous.clone();
            self.remove_from_group(&previous, &home.1);
        }
        self.by_release
            .entry(key.clone())
            .or_default()
            .insert(home.1.clone(), summary);
        self.homes.insert(home, key);
    }

    fn remove(&mut self, namespace: &str, name: &str) {
        if let Some(key) = self
            .homes
            .remove(&(namespace.to_string(), name.to_string()))
        {
            self.remove_from_group(&key, name);
        }
    }

    fn remove_from_group(&mut self, key: &Key, name: &str) {
        if let Some(group) = self.by_release.get_mut(key) {
            group.remove(name);
            if group.is_empty() {
                self.by_release.remove(key);
            }
        }
    }
}

/// Summaries of one kind of object, by release, then by name.
pub struct ReleaseIndex<K: Summarize> {
    objects: RwLock<Groups<K::Summary>>,
    /// A re-list in progress; swapped in when it completes, so a re-list never shows a
    /// half-empty world to a reconcile.
    relisting: RwLock<Option<Groups<K::Summary>>>,
    /// Set once the first full list is in: before that, a missing object may merely not
    /// have been listed yet.
    ready: FirstList,
}

/// A watch's own ready signal: set once it has delivered its first full list.
///
/// (The releases' reflector store has one too, `Store::wait_until_ready`, but kube-runtime's
/// `Controller` already waits on it, and that signal wakes only one waiter: a second one,
/// such as a readiness probe, may never wake.)
#[derive(Default)]
pub struct FirstList(watch::Sender<bool>);

impl FirstList {
    pub fn mark(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once marked (at once after that).
    pub async fn wait(&self) {
        let mut listed = self.0.subscribe();
        // The sender lives as long as `self`: the wait ends only when marked.
        let _ = listed.wait_for(|listed| *listed).await;
    }
}

impl<K: Summarize> Default for ReleaseIndex<K> {
    fn default() -> Self {
        ReleaseIndex {
            objects: RwLock::new(Groups::default()),
            relisting: RwLock::new(None),
            ready: FirstList::default(),
        }
    }
}

/// The release an object is labelled for, in the object's namespace.
fn key_of<K: Resource>(obj: &K) -> Option<Key> {
    let release = obj.labels().get(labels::RELEASE)?;
    Some(ObjectRef::new(release).within(&obj.namespace().unwrap_or_default()))
}

impl<K: Summarize> ReleaseIndex<K> {
    /// Applies one watcher event.
    pub fn apply(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(obj) => {
                let mut objects = self.objects.write().expect("cache lock");
                file(&mut objects, obj);
            }
            watcher::Event::Delete(obj) => {
                let namespace = obj.namespace().unwrap_or_default();
                let mut objects = self.objects.write().expect("cache lock");
                objects.remove(&namespace, &obj.name_any());
            }
            watcher::Event::Init => {
                *self.relisting.write().expect("cache lock") = Some(Groups::default());
            }
            watcher::Event::InitApply(obj) => {
                if let Some(buffer) = self.relisting.write().expect("cache lock").as_mut() {
                    file(buffer, obj);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = self.relisting.write().expect("cache lock").take() {
                    *self.objects.write().expect("cache lock") = buffer;
                }
                self.ready.mark();
            }
        }
    }

    /// Resolves once the first full list is in (at once after that).
    pub async fn wait_until_ready(&self) {
        self.ready.wait().await;
    }

    /// The summaries of one release's objects.
    pub fn of_release(&self, release: &ObjectRef<BlueGreenRelease>) -> Vec<K::Summary> {
        let objects = self.objects.read().expect("cache lock");
        objects
            .by_release
            .get(release)
            .map(|group| group.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of cached objects (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.objects.read().expect("cache lock").homes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Watch-fed caches of every kind of child a release has.
#[derive(Default)]
pub struct Caches {
    /// The releases themselves live in kube-runtime's reflector store; this says when their
    /// watch delivered its first full list.
    pub releases_listed: FirstList,
    pub replica_sets: ReleaseIndex<ReplicaSet>,
    pub services: ReleaseIndex<Service>,
    pub endpoint_slices: ReleaseIndex<EndpointSlice>,
    pub pods: ReleaseIndex<Pod>,
    pub jobs: ReleaseIndex<Job>,
}

impl Caches {
    /// Resolves once the releases' watch and every index have their first full list.
    pub async fn wait_until_ready(&self) {
        futures::join!(
            self.releases_listed.wait(),
            self.replica_sets.wait_until_ready(),
            self.services.wait_until_ready(),
            self.endpoint_slices.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.jobs.wait_until_ready(),
        );
    }
}

/// Files an object under its release, or forgets it when it is no longer of interest (its
/// release label or the parts the planner reads are gone).
fn file<K: Summarize>(groups: &mut Groups<K::Summary>, obj: &K) {
    let name = obj.name_any();
    let namespace = obj.namespace().unwrap_or_default();
    match (key_of(obj), obj.summarize()) {
        (Some(key), Some(summary)) => groups.insert(namespace, name, key, summary),
        _ => groups.remove(&namespace, &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, release: &str) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "labels": {
            "bluegreen.dev/release": release, "bluegreen.dev/color": "blue", "bluegreen.dev/revision": "r1"}}}))
        .unwrap()
    }

    fn of(namespace: &str, release: &str) -> ObjectRef<BlueGreenRelease> {
        ObjectRef::new(release).within(namespace)
    }

    fn names(index: &ReleaseIndex<ReplicaSet>, release: &str) -> Vec<String> {
        index
            .of_release(&of("ns", release))
            .into_iter()
            .map(|v| v.name)
            .collect()
    }

    #[test]
    fn groups_by_release_and_follows_events() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("a-blue", "a")));
        index.apply(&watcher::Event::Apply(rs("b-blue", "b")));
        index.apply(&watcher::Event::Apply(rs("a-green", "a")));
        assert_eq!(names(&index, "a"), vec!["a-blue", "a-green"]);
        index.apply(&watcher::Event::Delete(rs("a-blue", "a")));
        assert_eq!(names(&index, "a"), vec!["a-green"]);
        assert!(index.of_release(&of("other", "a")).is_empty());
    }

    #[test]
    fn a_relist_replaces_the_contents_only_when_complete() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("gone", "a")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(rs("kept", "a")));
        assert_eq!(
            names(&index, "a"),
            vec!["gone"],
            "old view until the list is done"
        );
        index.apply(&watcher::Event::InitDone);
        assert_eq!(names(&index, "a"), vec!["kept"]);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_once_the_first_list_is_in() {
        let index = ReleaseIndex::<ReplicaSet>::default();
        let wait =
            tokio::time::timeout(std::time::Duration::from_secs(1), index.wait_until_ready());
        assert!(wait.await.is_err(), "not ready before any list");
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitDone);
        index.wait_until_ready().await;
        index.apply(&watcher::Event::Init);
        index.wait_until_ready().await; // a re-list keeps it ready (the old view serves)
    }

    #[test]
    fn a_relabelled_object_moves_between_releases() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("x", "a")));
        index.apply(&watcher::Event::Apply(rs("x", "b")));
        assert!(index.of_release(&of("ns", "a")).is_empty());
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_deletion_is_found_by_name_whatever_labels_it_carries() {
        // An object that left the watch's label selector may arrive as DELETED with its new
        // labels (no release label at all).
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("x", "a")));
        let mut unlabelled = rs("x", "a");
        unlabelled.metadata.labels = None;
        index.apply(&watcher::Event::Delete(unlabelled));
        assert!(index.is_empty());
        assert!(index.of_release(&of("ns", "a")).is_empty());
    }

    #[test]
    fn an_object_that_stops_being_of_interest_is_forgotten() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("x", "a")));
        let mut colorless = rs("x", "a");
        colorless
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove("bluegreen.dev/color");
        index.apply(&watcher::Event::Apply(colorless));
        assert!(index.is_empty());
    }
}
