//! Which Services select a pod, answered from memory: every Service's equality selector
//! is kept here, and each Service is filed under one pair of its selector, the rarest one
//! when it was filed. A Service selects a pod only if the pod carries all of its pairs, so
//! it is always found under one of the pod's pairs, and filing it under a pair that few
//! Services share (`app=web`, not `bluegreen.dev/color=blue`) keeps the candidates of a
//! pod event to the handful of Services that may really select it.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

type Pair = (String, String);

#[derive(Debug)]
struct Filed {
    selector: Vec<Pair>,
    anchor: Pair,
}

/// Equality selectors of the Services of every namespace.
#[derive(Debug, Default)]
pub struct SelectorIndex {
    /// `(namespace, service)` -> its selector and the pair it is filed under.
    services: HashMap<(String, String), Filed>,
    /// `(namespace, pair)` -> Services filed under that pair.
    filed: HashMap<(String, Pair), BTreeSet<String>>,
    /// `(namespace, pair)` -> how many selectors contain the pair (how rare it is).
    uses: HashMap<(String, Pair), usize>,
}

fn pairs(map: &Map<String, Value>) -> Vec<Pair> {
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn carries(labels: &Map<String, Value>, selector: &[Pair]) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

impl SelectorIndex {
    /// Records a Service's selector (`None` or empty: it selects nothing), replacing
    /// what was recorded before.
    pub fn set(&mut self, ns: &str, name: &str, selector: Option<&Map<String, Value>>) {
        self.remove(ns, name);
        let Some(selector) = selector.filter(|s| !s.is_empty()).map(pairs) else {
            return;
        };
        for p in &selector {
            *self.uses.entry((ns.to_string(), p.clone())).or_default() += 1;
        }
        let anchor = selector
            .iter()
            .min_by_key(|p| self.uses[&(ns.to_string(), (*p).clone())])
            .expect("a selector with pairs")
            .clone();
        self.filed
            .entry((ns.to_string(), anchor.clone()))
            .or_default()
            .insert(name.to_string());
        self.services.insert(
            (ns.to_string(), name.to_string()),
            Filed { selector, anchor },
        );
    }

    pub fn remove(&mut self, ns: &str, name: &str) {
        let Some(old) = self.services.remove(&(ns.to_string(), name.to_string())) else {
            return;
        };
        let anchor = (ns.to_string(), old.anchor);
        if let Some(set) = self.filed.get_mut(&anchor) {
            set.remove(name);
            if set.is_empty() {
                self.filed.remove(&anchor);
            }
        }
        for p in old.selector {
            let k = (ns.to_string(), p);
            if let Some(n) = self.uses.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.uses.remove(&k);
                }
            }
        }
    }

    /// Services of `ns` whose selector matches `labels` (exact, no store read needed).
    pub fn selecting(&self, ns: &str, labels: &Map<String, Value>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (k, v) in labels {
            let key = (
                ns.to_string(),
                (k.clone(), v.as_str().unwrap_or_default().to_string()),
            );
            for name in self.filed.get(&key).into_iter().flatten() {
                let selects = self
                    .services
                    .get(&(ns.to_string(), name.clone()))
                    .is_some_and(|f| carries(labels, &f.selector));
                if selects {
                    out.insert(name.clone());
                }
            }
        }
        out
    }

    pub fn clear(&mut self) {
        self.services.clear();
        self.filed.clear();
        self.uses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn names(s: BTreeSet<String>) -> Vec<String> {
        s.into_iter().collect()
    }

    #[test]
    fn finds_exactly_the_services_whose_selector_the_labels_carry() {
        let mut idx = SelectorIndex::default();
        idx.set("ns", "web", Some(&map(json!({"app": "web"}))));
        idx.set(
            "ns",
            "web-blue",
            Some(&map(json!({"app": "web", "color": "blue"}))),
        );
        idx.set(
            "ns",
            "api-blue",
            Some(&map(json!({"app": "api", "color": "blue"}))),
        );
        idx.set("other", "web", Some(&map(json!({"app": "web"}))));
        idx.set("ns", "headless", None);
        let pod = map(json!({"app": "web", "color": "blue", "pod-template-hash": "x"}));
        assert_eq!(names(idx.selecting("ns", &pod)), vec!["web", "web-blue"]);
        let green = map(json!({"app": "web", "color": "green"}));
        assert_eq!(names(idx.selecting("ns", &green)), vec!["web"]);
        assert!(
            idx.selecting("ns", &map(json!({"color": "blue"})))
                .is_empty()
        );
    }

    #[test]
    fn a_service_sharing_a_common_pair_is_filed_under_its_rare_one() {
        let mut idx = SelectorIndex::default();
        for i in 0..50 {
            idx.set(
                "ns",
                &format!("svc-{i}"),
                Some(&map(json!({"app": format!("app-{i}"), "color": "blue"}))),
            );
        }
        // Only the first Service, filed before `color=blue` was common, may sit there.
        let under_color = idx
            .filed
            .get(&("ns".to_string(), ("color".into(), "blue".into())))
            .map_or(0, BTreeSet::len);
        assert!(
            under_color <= 1,
            "{under_color} Services filed under color=blue"
        );
        let pod = map(json!({"app": "app-7", "color": "blue"}));
        assert_eq!(names(idx.selecting("ns", &pod)), vec!["svc-7"]);
    }

    #[test]
    fn changed_and_removed_selectors_are_forgotten() {
        let mut idx = SelectorIndex::default();
        let blue = map(json!({"app": "web", "color": "blue"}));
        let green = map(json!({"app": "web", "color": "green"}));
        idx.set("ns", "active", Some(&blue));
        idx.set("ns", "active", Some(&green));
        assert!(idx.selecting("ns", &blue).is_empty());
        assert_eq!(names(idx.selecting("ns", &green)), vec!["active"]);
        idx.remove("ns", "active");
        assert!(idx.selecting("ns", &green).is_empty());
        assert!(idx.uses.is_empty() && idx.filed.is_empty());
    }
}
