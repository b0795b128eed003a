//! The controller's own writes that the caches have not shown yet: a release's status, and
//! its active Service's selector (the planner takes both as the truth).
//!
//! A reconcile plans from the caches. Right after it writes, another watch event (a pod, a
//! Job) can start the next reconcile before the written object's own watch event has
//! reached the cache. Planning from the older status redoes a step already taken; planning
//! from the active Service as it was before a flip "believes the world" and takes the old
//! color for live again. Either way a finished rollout is started once more: its Job is
//! deleted and created again, a stale status is written over the newer one, and the
//! promotion is recorded twice. So a reconcile waits until the caches hold its own last
//! writes, as Kubernetes' own controllers do with their "expectations".

use std::collections::HashMap;

use bluegreen_crd::BlueGreenRelease;
use kube::runtime::reflector::ObjectRef;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A write the cache has not shown by then is not waited for any longer: a watch that
/// lost it (or versions that went backwards, as after an etcd restore) must not stall a
/// release.
const PATIENCE: Duration = Duration::from_secs(10);

/// A release.
pub type ReleaseKey = ObjectRef<BlueGreenRelease>;

/// Which of a release's objects a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Written {
    Release,
    ActiveService,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    /// resourceVersion of the cached release the write was planned from.
    planned_from: String,
    /// resourceVersion the write stored.
    stored: String,
    at: Instant,
}

#[derive(Debug, Default)]
pub struct OwnWrites {
    pending: Mutex<HashMap<(ReleaseKey, Written), Expected>>,
}

impl OwnWrites {
    /// Records that a reconcile that saw `what` at `planned_from` left it at `stored`. A
    /// write that stored nothing new (same resourceVersion) brings no event to wait for.
    pub fn record(&self, key: ReleaseKey, what: Written, planned_from: &str, stored: &str) {
        let mut pending = self.pending.lock().expect("own writes lock");
        let key = (key, what);
        if planned_from == stored || stored.is_empty() {
            pending.remove(&key);
        } else {
            pending.insert(
                key,
                Expected {
                    planned_from: planned_from.to_string(),
                    stored: stored.to_string(),
                    at: Instant::now(),
                },
            );
        }
    }

    /// Whether `what`, cached at `cached`, already shows the last write recorded for it.
    /// resourceVersions are opaque: the cache is behind while it still holds the version
    /// the write was planned from, or — when both read as numbers, as etcd's do — one
    /// older than the stored one (another writer may have come in between). Never behind
    /// for longer than `PATIENCE`.
    pub fn caught_up(&self, key: &ReleaseKey, what: Written, cached: &str) -> bool {
        let mut pending = self.pending.lock().expect("own writes lock");
        let key = (key.clone(), what);
        let Some(written) = pending.get(&key) else {
            return true;
        };
        let older = match (cached.parse::<u64>(), written.stored.parse::<u64>()) {
            (Ok(cached), Ok(stored)) => cached < stored,
            _ => false,
        };
        let behind = (cached == written.planned_from || older) && written.at.elapsed() < PATIENCE;
        if !behind {
            pending.remove(&key);
        }
        !behind
    }

    /// Releases with a write still pending.
    pub fn len(&self) -> usize {
        let pending = self.pending.lock().expect("own writes lock");
        let releases: std::collections::HashSet<_> = pending.keys().map(|(r, _)| r).collect();
        releases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn forget(&self, key: &ReleaseKey) {
        self.pending
            .lock()
            .expect("own writes lock")
            .retain(|(release, _), _| release != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ReleaseKey {
        ObjectRef::new("web").within("ns")
    }

    #[test]
    fn a_reconcile_waits_until_the_cache_shows_the_last_write() {
        let writes = OwnWrites::default();
        let release = Written::Release;
        assert!(
            writes.caught_up(&key(), release, "10"),
            "nothing written yet"
        );
        writes.record(key(), release, "10", "12");
        assert!(
            !writes.caught_up(&key(), release, "10"),
            "the cache still has what was planned from"
        );
        assert!(
            !writes.caught_up(&key(), release, "11"),
            "another writer's version, older than ours"
        );
        assert!(
            writes.caught_up(&key(), Written::ActiveService, "3"),
            "another object"
        );
        assert!(writes.caught_up(&key(), release, "12"));
        assert!(
            writes.caught_up(&key(), release, "10"),
            "caught up once is forgotten"
        );
    }

    #[test]
    fn opaque_versions_wait_only_for_the_planned_one_to_change() {
        // A Service the flip created was planned from no version at all: "".
        let writes = OwnWrites::default();
        writes.record(key(), Written::ActiveService, "", "svc-a");
        assert!(!writes.caught_up(&key(), Written::ActiveService, ""));
        assert!(writes.caught_up(&key(), Written::ActiveService, "svc-b"));
    }

    #[test]
    fn a_write_that_stored_nothing_new_is_not_waited_for() {
        let writes = OwnWrites::default();
        writes.record(key(), Written::Release, "10", "10");
        assert!(writes.caught_up(&key(), Written::Release, "10"));
        writes.record(key(), Written::Release, "10", "12");
        writes.record(key(), Written::ActiveService, "", "7");
        writes.forget(&key());
        assert!(writes.caught_up(&key(), Written::Release, "10"));
        assert!(writes.caught_up(&key(), Written::ActiveService, ""));
    }
}
