//! In-memory label index of pods, so that an Endpoints reconcile does not scan every
//! pod of its namespace. Fed by the same store events that drive the controllers.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

type Pair = String;

/// `(namespace, "key=value") -> names`, plus each name's current pairs.
#[derive(Debug, Default)]
pub struct LabelIndex {
    by_pair: HashMap<(String, Pair), BTreeSet<String>>,
    pairs_of: HashMap<(String, String), Vec<Pair>>,
}

fn pairs(labels: Option<&Map<String, Value>>) -> Vec<Pair> {
    labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect()
}

impl LabelIndex {
    /// Records `name`'s label (or selector) map, replacing what was recorded before.
    pub fn set(&mut self, ns: &str, name: &str, labels: Option<&Map<String, Value>>) {
        self.remove(ns, name);
        let ps = pairs(labels);
        for p in &ps {
            self.by_pair
                .entry((ns.to_string(), p.clone()))
                .or_default()
                .insert(name.to_string());
        }
        if !ps.is_empty() {
            self.pairs_of.insert((ns.to_string(), name.to_string()), ps);
        }
    }

    pub fn remove(&mut self, ns: &str, name: &str) {
        let Some(old) = self.pairs_of.remove(&(ns.to_string(), name.to_string())) else {
            return;
        };
        for p in old {
            let k = (ns.to_string(), p);
            if let Some(set) = self.by_pair.get_mut(&k) {
                set.remove(name);
                if set.is_empty() {
                    self.by_pair.remove(&k);
                }
            }
        }
    }

    /// Names carrying every pair of `selector` (exact for equality selectors).
    pub fn all_of(&self, ns: &str, selector: &Map<String, Value>) -> BTreeSet<String> {
        let mut sets: Vec<&BTreeSet<String>> = Vec::new();
        for p in pairs(Some(selector)) {
            match self.by_pair.get(&(ns.to_string(), p)) {
                Some(set) => sets.push(set),
                None => return BTreeSet::new(),
            }
        }
        sets.sort_by_key(|s| s.len());
        let Some((first, rest)) = sets.split_first() else {
            return BTreeSet::new();
        };
        first
            .iter()
            .filter(|n| rest.iter().all(|s| s.contains(*n)))
            .cloned()
            .collect()
    }

    pub fn clear(&mut self) {
        self.by_pair.clear();
        self.pairs_of.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indexes_and_intersects() {
        let mut idx = LabelIndex::default();
        let l = |v: Value| v.as_object().cloned().unwrap();
        idx.set("ns", "a", Some(&l(json!({"app": "web", "color": "blue"}))));
        idx.set("ns", "b", Some(&l(json!({"app": "web", "color": "green"}))));
        idx.set("other", "c", Some(&l(json!({"app": "web"}))));
        let sel = l(json!({"app": "web", "color": "blue"}));
        assert_eq!(
            idx.all_of("ns", &sel).into_iter().collect::<Vec<_>>(),
            vec!["a"]
        );
        idx.set("ns", "a", Some(&l(json!({"app": "api"}))));
        assert!(idx.all_of("ns", &sel).is_empty());
        assert_eq!(
            idx.all_of("ns", &l(json!({"app": "web"})))
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        idx.remove("ns", "b");
        assert!(idx.all_of("ns", &l(json!({"color": "green"}))).is_empty());
    }
}
