//! In-memory caches of the release's children, indexed by release, fed by watches.
//!
//! Every object the controller creates or adopts carries `bluegreen.dev/release=<name>`
//! (DESIGN §3), and every watch is filtered on that label: memory grows with the releases,
//! not with the cluster. Objects are grouped by (namespace, release) so that building one
//! release's snapshot costs only its own objects, even with 10,000 releases.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, RwLock},
};

use bluegreen_crd::labels;
use kube::{Resource, ResourceExt, runtime::watcher};

type Key = (String, String);
/// Objects grouped by (namespace, release), then by name.
type Groups<K> = HashMap<Key, BTreeMap<String, Arc<K>>>;

/// Objects of one kind, by (namespace, release), then by name.
pub struct ReleaseIndex<K> {
    objects: RwLock<Groups<K>>,
    /// Objects of a re-list in progress; swapped in when it completes, so a re-list never
    /// shows a half-empty world to a reconcile.
    relisting: RwLock<Option<Groups<K>>>,
}

impl<K> Default for ReleaseIndex<K> {
    fn default() -> Self {
        ReleaseIndex {
            objects: RwLock::new(HashMap::new()),
            relisting: RwLock::new(None),
        }
    }
}

fn key_of<K: Resource>(obj: &K) -> Option<(Key, String)> {
    let release = obj.labels().get(labels::RELEASE)?.clone();
    Some((
        (obj.namespace().unwrap_or_default(), release),
        obj.name_any(),
    ))
}

impl<K: Resource + Clone> ReleaseIndex<K> {
    /// Applies one watcher event. Returns true when a (re-)list just completed.
    pub fn apply(&self, event: &watcher::Event<K>) -> bool {
        match event {
            watcher::Event::Apply(obj) => {
                if let Some((key, name)) = key_of(obj) {
                    let mut objects = self.objects.write().expect("cache lock");
                    // A label change can move an object between releases: drop the old entry.
                    remove_everywhere(
                        &mut objects,
                        &obj.namespace().unwrap_or_default(),
                        &name,
                        &key,
                    );
                    objects
                        .entry(key)
                        .or_default()
                        .insert(name, Arc::new(obj.clone()));
                }
                false
            }
            watcher::Event::Delete(obj) => {
                if let Some((key, name)) = key_of(obj) {
                    let mut objects = self.objects.write().expect("cache lock");
                    if let Some(group) = objects.get_mut(&key) {
                        group.remove(&name);
                        if group.is_empty() {
                            objects.remove(&key);
                        }
                    }
                }
                false
            }
            watcher::Event::Init => {
                *self.relisting.write().expect("cache lock") = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(obj) => {
                if let (Some((key, name)), Some(buffer)) = (
                    key_of(obj),
                    self.relisting.write().expect("cache lock").as_mut(),
                ) {
                    buffer
                        .entry(key)
                        .or_default()
                        .insert(name, Arc::new(obj.clone()));
                }
                false
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = self.relisting.write().expect("cache lock").take() {
                    *self.objects.write().expect("cache lock") = buffer;
                }
                true
            }
        }
    }

    /// The objects of one release.
    pub fn of_release(&self, namespace: &str, release: &str) -> Vec<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects
            .get(&(namespace.to_string(), release.to_string()))
            .map(|group| group.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of cached objects (for tests and the benchmark).
    pub fn len(&self) -> usize {
        self.objects
            .read()
            .expect("cache lock")
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes `name` from any group of `namespace` other than `keep`. Label changes are rare,
/// so this only looks when the object is not already where it belongs.
fn remove_everywhere<K>(objects: &mut Groups<K>, namespace: &str, name: &str, keep: &Key) {
    if objects.get(keep).is_some_and(|g| g.contains_key(name)) {
        return;
    }
    objects.retain(|key, group| {
        if key.0 == namespace && key != keep {
            group.remove(name);
        }
        !group.is_empty()
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use serde_json::json;

    fn rs(name: &str, release: &str) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "labels": {"bluegreen.dev/release": release}}})).unwrap()
    }

    #[test]
    fn groups_by_release_and_follows_events() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("a-blue", "a")));
        index.apply(&watcher::Event::Apply(rs("b-blue", "b")));
        index.apply(&watcher::Event::Apply(rs("a-green", "a")));
        assert_eq!(index.of_release("ns", "a").len(), 2);
        index.apply(&watcher::Event::Delete(rs("a-blue", "a")));
        assert_eq!(index.of_release("ns", "a").len(), 1);
        assert!(index.of_release("other", "a").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_contents_only_when_complete() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("gone", "a")));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(rs("kept", "a")));
        assert_eq!(
            index.of_release("ns", "a")[0].name_any(),
            "gone",
            "old view until the list is done"
        );
        assert!(index.apply(&watcher::Event::InitDone));
        let names: Vec<_> = index
            .of_release("ns", "a")
            .iter()
            .map(|o| o.name_any())
            .collect();
        assert_eq!(names, vec!["kept"]);
    }

    #[test]
    fn a_relabelled_object_moves_between_releases() {
        let index = ReleaseIndex::default();
        index.apply(&watcher::Event::Apply(rs("x", "a")));
        index.apply(&watcher::Event::Apply(rs("x", "b")));
        assert!(index.of_release("ns", "a").is_empty());
        assert_eq!(index.len(), 1);
    }
}
