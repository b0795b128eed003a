//! The fields one manager owns, kept in the `fieldsV1` tree form that managedFields store.
//!
//! A path (`["f:spec", "f:ports", "k:{\"port\":80}"]`) is owned when its node exists and
//! is a member: an empty map, or a map carrying the `"."` marker (a member with children).
//! Working on the tree itself means a write parses and re-serializes nothing for the
//! managers it does not affect (parsing every entry into a set of paths and back, on every
//! write, was a fifth of kubesim's CPU under load).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field path in the fieldsV1 vocabulary (`f:name`, `k:{...}`, `v:...`).
pub type Path = Vec<String>;
/// A set of field paths, for the fields one request sets or changes.
pub type FieldSet = BTreeSet<Path>;

const MEMBER: &str = ".";

/// One manager's fields, as the fieldsV1 tree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldsTree(Map<String, Value>);

impl FieldsTree {
    /// Reads a `fieldsV1` value (anything but a map owns nothing).
    pub fn from_value(v: &Value) -> Self {
        FieldsTree(v.as_object().cloned().unwrap_or_default())
    }

    /// Takes a `fieldsV1` value over without copying it.
    pub fn from_owned(v: Value) -> Self {
        match v {
            Value::Object(m) => FieldsTree(m),
            _ => FieldsTree::default(),
        }
    }

    pub fn from_set(set: &FieldSet) -> Self {
        let mut t = FieldsTree::default();
        for p in set {
            t.insert(p);
        }
        t
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn node(&self, path: &[String]) -> Option<&Map<String, Value>> {
        let mut cur = &self.0;
        for pe in path {
            cur = cur.get(pe)?.as_object()?;
        }
        Some(cur)
    }

    /// Whether `path` itself is owned.
    pub fn contains(&self, path: &[String]) -> bool {
        !path.is_empty()
            && self
                .node(path)
                .is_some_and(|n| n.is_empty() || n.contains_key(MEMBER))
    }

    /// Whether `path` or anything beneath it is owned.
    pub fn owns_at_or_below(&self, path: &[String]) -> bool {
        self.node(path).is_some()
    }

    pub fn insert(&mut self, path: &[String]) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut cur = &mut self.0;
        for pe in parents {
            let existed = cur.contains_key(pe);
            let child = cur
                .entry(pe.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(child) = child.as_object_mut() else {
                return;
            };
            // An owned leaf that gains children keeps its ownership as the marker.
            if existed && child.is_empty() {
                child.insert(MEMBER.into(), Value::Object(Map::new()));
            }
            cur = child;
        }
        match cur.get_mut(last).and_then(Value::as_object_mut) {
            Some(node) if !node.is_empty() => {
                node.insert(MEMBER.into(), Value::Object(Map::new()));
            }
            Some(_) => {}
            None => {
                cur.insert(last.clone(), Value::Object(Map::new()));
            }
        }
    }

    /// Stops owning `path` (what is owned beneath it stays owned).
    pub fn remove(&mut self, path: &[String]) {
        if !self.contains(path) {
            return;
        }
        let has_children = self
            .node(path)
            .is_some_and(|n| n.keys().any(|k| k != MEMBER));
        if has_children {
            if let Some(n) = node_mut(&mut self.0, path) {
                n.remove(MEMBER);
            }
            return;
        }
        // Remove the leaf, then every ancestor it leaves empty: an empty map would read
        // as owned. (An owned ancestor carries the marker, so it is never empty.)
        for depth in (0..path.len()).rev() {
            let Some(parent) = node_mut(&mut self.0, &path[..depth]) else {
                return;
            };
            parent.remove(&path[depth]);
            if !parent.is_empty() {
                return;
            }
        }
    }

    /// Every owned path.
    pub fn paths(&self) -> FieldSet {
        let mut out = FieldSet::new();
        collect_members(&self.0, &mut Vec::new(), &mut out);
        out
    }
}

fn node_mut<'a>(
    root: &'a mut Map<String, Value>,
    path: &[String],
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = root;
    for pe in path {
        cur = cur.get_mut(pe)?.as_object_mut()?;
    }
    Some(cur)
}

fn collect_members(node: &Map<String, Value>, prefix: &mut Path, out: &mut FieldSet) {
    if (node.is_empty() || node.contains_key(MEMBER)) && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, c) in node {
        if k == MEMBER {
            continue;
        }
        if let Some(c) = c.as_object() {
            prefix.push(k.clone());
            collect_members(c, prefix, out);
            prefix.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Path {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_tree_holds_exactly_the_paths_put_in() {
        let set: FieldSet = [
            p(&["f:spec", "f:replicas"]),
            p(&["f:spec", "f:ports", r#"k:{"port":80}"#]),
            p(&["f:spec", "f:ports", r#"k:{"port":80}"#, "f:name"]),
            p(&["f:metadata", "f:labels", "f:app"]),
        ]
        .into_iter()
        .collect();
        let t = FieldsTree::from_set(&set);
        assert_eq!(t.paths(), set);
        assert_eq!(
            t.clone().into_value()["f:spec"]["f:ports"][r#"k:{"port":80}"#],
            json!({".": {}, "f:name": {}})
        );
        assert!(t.contains(&p(&["f:spec", "f:replicas"])));
        assert!(!t.contains(&p(&["f:spec"])));
        assert!(t.owns_at_or_below(&p(&["f:spec"])));
        assert!(!t.owns_at_or_below(&p(&["f:status"])));
        // The order of insertion does not matter: a leaf that gains children keeps "."
        let mut other = FieldsTree::default();
        for path in set.iter().rev() {
            other.insert(path);
        }
        assert_eq!(other, t);
    }

    #[test]
    fn removing_keeps_what_is_beneath_and_prunes_what_is_emptied() {
        let item = p(&["f:spec", "f:ports", r#"k:{"port":80}"#]);
        let name = p(&["f:spec", "f:ports", r#"k:{"port":80}"#, "f:name"]);
        let replicas = p(&["f:spec", "f:replicas"]);
        let mut t = FieldsTree::from_set(&[item.clone(), name.clone(), replicas.clone()].into());
        t.remove(&item);
        assert_eq!(t.paths(), [name.clone(), replicas.clone()].into());
        t.remove(&name);
        assert_eq!(t.paths(), [replicas.clone()].into());
        assert!(!t.owns_at_or_below(&p(&["f:spec", "f:ports"])));
        t.remove(&p(&["f:spec", "f:absent"]));
        t.remove(&replicas);
        assert!(t.is_empty());
    }

    #[test]
    fn reads_what_the_api_server_writes() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:selector": {}}});
        let t = FieldsTree::from_value(&v);
        assert_eq!(
            t.paths(),
            [
                p(&["f:metadata", "f:labels"]),
                p(&["f:metadata", "f:labels", "f:app"]),
                p(&["f:spec", "f:selector"]),
            ]
            .into()
        );
        assert_eq!(t.clone().into_value(), v);
    }
}
