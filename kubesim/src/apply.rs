//! Server-side apply and managedFields bookkeeping.
//!
//! Field ownership is tracked as sets of paths in the `fieldsV1` vocabulary
//! (`f:spec`, `f:replicas`, `k:{"name":"app"}`). Associative lists (items owned
//! individually) are those a CRD schema marks `x-kubernetes-list-type: map`, and for
//! built-in kinds those with a patch merge key; all other lists are atomic leaves.

use serde_json::{Map, Value, json};

use crate::error::Cause;
pub use crate::fields::{FieldSet, FieldsTree, Path};
use crate::patch::merge_key;

/// Which part of the object a write may touch, for field-set purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource: everything except `status` when the kind has a status subresource.
    Main { status_subresource: bool },
    /// The `status` subresource: only `status`.
    Status,
}

impl Scope {
    /// Whether a top-level field of the object is within this scope.
    fn includes(self, key: &str) -> bool {
        match self {
            Scope::Status => key == "status",
            Scope::Main { status_subresource } => {
                !(key == "apiVersion" || key == "kind" || (status_subresource && key == "status"))
            }
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldsTree,
}

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Where list keys come from: a custom resource's structural schema, or the
/// built-in patch merge keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListKeys<'a> {
    schema: Option<&'a Value>,
    /// The built-in kind's plural, for its atomic maps and structs.
    kind: Option<&'a str>,
}

/// Built-in maps and structs that are atomic (`+mapType=atomic`, `+structType=atomic`):
/// owned, applied and replaced whole. A Service's selector is one, so an apply that sets
/// two of its keys takes over (and replaces) the whole selector, as on an API server.
const ATOMIC_BUILTIN: &[(&str, &[&str])] = &[
    ("services", &["spec", "selector"]),
    ("replicationcontrollers", &["spec", "selector"]),
    ("replicasets", &["spec", "selector"]),
    ("deployments", &["spec", "selector"]),
    ("statefulsets", &["spec", "selector"]),
    ("daemonsets", &["spec", "selector"]),
    ("jobs", &["spec", "selector"]),
];

impl<'a> ListKeys<'a> {
    pub fn builtin() -> Self {
        ListKeys {
            schema: None,
            kind: None,
        }
    }

    /// For a CRD version's `openAPIV3Schema` (or built-in keys when `None`).
    pub fn schema(schema: Option<&'a Value>) -> Self {
        ListKeys { schema, kind: None }
    }

    /// Built-in keys of the resource `plural`, with its atomic maps.
    pub fn for_builtin(plural: &'a str) -> Self {
        ListKeys {
            schema: None,
            kind: Some(plural),
        }
    }

    /// Whether the map or struct at `prefix` is atomic.
    fn atomic(&self, prefix: &[String]) -> bool {
        let Some(kind) = self.kind else { return false };
        ATOMIC_BUILTIN.iter().any(|(k, path)| {
            *k == kind
                && prefix.len() == path.len()
                && prefix
                    .iter()
                    .zip(path.iter())
                    .all(|(p, f)| p.strip_prefix("f:") == Some(*f))
        })
    }

    /// Keys of the list at `prefix` (a field path), if it is associative and every
    /// item carries them. An empty key list means a set (items are their own keys).
    fn keys(&self, prefix: &[String], items: &[Value]) -> Option<Vec<String>> {
        let fields: Vec<&str> = prefix.iter().filter_map(|p| p.strip_prefix("f:")).collect();
        let field = *fields.last()?;
        let keys = match self.schema {
            // ObjectMeta is never described by a CRD schema; it has built-in keys.
            Some(schema) if fields.first() != Some(&"metadata") => {
                let mut node = schema;
                for f in &fields {
                    if let Some(items) = node.get("items") {
                        node = items;
                    }
                    node = node
                        .pointer(&format!(
                            "/properties/{}",
                            f.replace('~', "~0").replace('/', "~1")
                        ))
                        .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
                }
                match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("map") => node
                        .get("x-kubernetes-list-map-keys")?
                        .as_array()?
                        .iter()
                        .filter_map(|k| k.as_str().map(str::to_string))
                        .collect::<Vec<_>>(),
                    Some("set") => Vec::new(),
                    _ => return None,
                }
            }
            // ObjectMeta.finalizers is `listType=set`.
            _ if field == "finalizers" => Vec::new(),
            _ => vec![merge_key(field, items)?.to_string()],
        };
        if keys.is_empty() {
            let scalars = items.iter().all(|i| !i.is_object() && !i.is_array());
            return scalars.then_some(keys);
        }
        let complete = !keys.is_empty()
            && items
                .iter()
                .all(|i| keys.iter().all(|k| i.get(k).is_some()));
        complete.then_some(keys)
    }
}

/// The fields an object (or an apply configuration) sets, within `scope`.
pub fn field_set(obj: &Value, scope: Scope, keys: ListKeys<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else { return out };
    for (k, v) in m {
        if !scope.includes(k) {
            continue;
        }
        let mut prefix = vec![format!("f:{k}")];
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if IGNORED_META.contains(&mk.as_str()) {
                        continue;
                    }
                    prefix.push(format!("f:{mk}"));
                    collect(mv, &mut prefix, &mut out, keys);
                    prefix.pop();
                }
            }
            continue;
        }
        collect(v, &mut prefix, &mut out, keys);
    }
    out
}

/// `k:{"port":80,"protocol":"TCP"}` for an item of an associative list, `v:"x"` for
/// an item of a set.
fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    if keys.is_empty() {
        return Some(format!("v:{item}"));
    }
    let mut id = Map::new();
    for k in keys {
        id.insert(k.clone(), item.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(id)))
}

fn same_item(a: &Value, b: &Value, keys: &[String]) -> bool {
    if keys.is_empty() {
        return a == b;
    }
    keys.iter().all(|k| a.get(k) == b.get(k))
}

fn collect(v: &Value, prefix: &mut Path, out: &mut FieldSet, keys: ListKeys<'_>) {
    match v {
        Value::Object(m) if !m.is_empty() && keys.atomic(prefix) => {
            out.insert(prefix.clone());
        }
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                prefix.push(format!("f:{k}"));
                collect(c, prefix, out, keys);
                prefix.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match keys.keys(prefix, items) {
            Some(key) => {
                for item in items {
                    let Some(pe) = item_key(item, &key) else {
                        continue;
                    };
                    prefix.push(pe);
                    out.insert(prefix.clone());
                    if let Some(m) = item.as_object() {
                        for (k, c) in m {
                            prefix.push(format!("f:{k}"));
                            collect(c, prefix, out, keys);
                            prefix.pop();
                        }
                    }
                    prefix.pop();
                }
            }
            None => {
                out.insert(prefix.clone());
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Value at a field path, if present.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for pe in path {
        cur = step(cur, pe)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, pe: &str) -> Option<&'a Value> {
    if let Some(f) = pe.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = pe.strip_prefix("k:") {
        let want: Map<String, Value> = serde_json::from_str(k).ok()?;
        cur.as_array()?
            .iter()
            .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))
    } else if let Some(v) = pe.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        cur.as_array()?.iter().find(|i| **i == want)
    } else {
        None
    }
}

/// After a dropped field is removed, its parent maps that are now empty go too, unless the
/// new configuration or another manager still has something beneath them. Only leaves are
/// tracked in field sets, so this stands in for owning the map itself (`.` in fieldsV1):
/// without it a dropped sub-object would linger as `{}` and get schema defaults but not
/// its required fields.
fn prune_emptied_parents(
    out: &mut Value,
    dropped: &[String],
    applied: &FieldSet,
    entries: &[Entry],
    manager: &str,
) {
    for depth in (1..dropped.len()).rev() {
        let parent = &dropped[..depth];
        let empty = match get_path(out, parent) {
            Some(Value::Object(m)) => m.is_empty(),
            _ => false,
        };
        let still_wanted = applied.iter().any(|q| q.starts_with(parent))
            || entries.iter().any(|e| {
                !(e.manager == manager && e.operation == "Apply")
                    && e.fields.owns_at_or_below(parent)
            });
        if !empty || still_wanted {
            return;
        }
        remove_path(out, parent);
    }
}

/// Removes the field at `path` (a map key or a keyed list item).
pub fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for pe in parents {
        let next = if let Some(f) = pe.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = pe.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut().and_then(|a| {
                a.iter_mut()
                    .find(|i| want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)))
            })
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:")
        && let Ok(want) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|i| !want.iter().all(|(wk, wv)| i.get(wk) == Some(wv)));
    } else if let Some(v) = last.strip_prefix("v:")
        && let Ok(want) = serde_json::from_str::<Value>(v)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|i| *i != want);
    }
}

/// `.spec.containers[name="app"].image`, the way apply conflicts name fields.
pub fn render_path(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Merges an apply configuration into the live object: maps recurse, associative
/// lists merge item-wise, everything else is replaced. `prefix` is the field path.
pub fn merge_applied(live: &mut Value, applied: &Value, prefix: &mut Path, keys: ListKeys<'_>) {
    match (live, applied) {
        (l @ Value::Object(_), a @ Value::Object(_)) if keys.atomic(prefix) => *l = a.clone(),
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                match l.get_mut(k) {
                    Some(lv) => {
                        prefix.push(format!("f:{k}"));
                        merge_applied(lv, av, prefix, keys);
                        prefix.pop();
                    }
                    None => {
                        l.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(l), Value::Array(a)) => match keys.keys(prefix, a) {
            Some(key) => {
                for item in a {
                    match l.iter_mut().find(|i| same_item(i, item, &key)) {
                        Some(li) => {
                            prefix.push("k:".to_string());
                            merge_applied(li, item, prefix, keys);
                            prefix.pop();
                        }
                        None => l.push(item.clone()),
                    }
                }
            }
            None => *l = a.clone(),
        },
        (l, a) => *l = a.clone(),
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| entry(e, e.get("fieldsV1").map(FieldsTree::from_value)))
        .collect()
}

/// Like `read_entries`, but moves the entries out of `obj` instead of copying them (the
/// caller writes new ones back).
fn take_entries(obj: &mut Value) -> Vec<Entry> {
    let Some(Value::Array(list)) = obj.pointer_mut("/metadata/managedFields").map(Value::take)
    else {
        return Vec::new();
    };
    list.into_iter()
        .map(|mut e| {
            let fields = e
                .get_mut("fieldsV1")
                .map(Value::take)
                .map(FieldsTree::from_owned);
            entry(&e, fields)
        })
        .collect()
}

fn entry(e: &Value, fields: Option<FieldsTree>) -> Entry {
    let text = |k: &str| e.get(k).and_then(Value::as_str);
    Entry {
        manager: text("manager").unwrap_or_default().to_string(),
        operation: text("operation").unwrap_or("Update").to_string(),
        api_version: text("apiVersion").unwrap_or_default().to_string(),
        time: text("time").unwrap_or_default().to_string(),
        subresource: text("subresource").map(str::to_string),
        fields: fields.unwrap_or_default(),
    }
}

pub fn write_entries(obj: &mut Value, entries: Vec<Entry>) {
    let arr: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": e.fields.into_value(),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if arr.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(arr));
        }
    }
}

fn same_sub(e: &Entry, sub: Option<&str>) -> bool {
    e.subresource.as_deref() == sub
}

/// Records an Update-style write by `manager`: it takes ownership of every field whose
/// value it changed; fields the write removed leave every manager's set.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    scope: Scope,
    subresource: Option<&str>,
    keys: ListKeys<'_>,
) {
    // The stored entries; `new` usually carries the same ones (a copy of the stored object
    // with changes), and then they are moved out of it rather than copied.
    let managed = "/metadata/managedFields";
    let mut entries = match old {
        Some(old) if new.pointer(managed) == old.pointer(managed) => take_entries(new),
        Some(old) => read_entries(old),
        None => Vec::new(),
    };
    let Changes { changed, removed } = changes(old, new, scope, keys);
    let own =
        |e: &Entry| e.manager == manager && e.operation == "Update" && same_sub(e, subresource);
    for e in entries.iter_mut() {
        for p in &removed {
            e.fields.remove(p);
        }
        if !own(e) {
            for p in &changed {
                e.fields.remove(p);
            }
        }
    }
    if !changed.is_empty() {
        let now = crate::meta::now();
        match entries.iter_mut().find(|e| own(e)) {
            Some(e) => {
                for p in &changed {
                    e.fields.insert(p);
                }
                e.time = now;
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now,
                subresource: subresource.map(str::to_string),
                fields: FieldsTree::from_set(&changed),
            }),
        }
    }
    write_entries(new, entries);
}

/// The fields (within `scope`) a write set to a new value, and those it removed.
#[derive(Debug, Default, PartialEq)]
struct Changes {
    changed: FieldSet,
    removed: FieldSet,
}

/// What `field_set` of both sides would say (`changed`: paths of `new` whose value differs
/// from `old`'s; `removed`: paths of `old` that `new` lacks), found by walking both objects
/// together and skipping every subtree they share, so a small write costs little.
fn changes(old: Option<&Value>, new: &Value, scope: Scope, keys: ListKeys<'_>) -> Changes {
    let empty = Map::new();
    let o = old.and_then(Value::as_object).unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut out = Changes::default();
    for k in union_keys(o, n) {
        if !scope.includes(k) {
            continue;
        }
        if k == "metadata" {
            let om = o.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let nm = n.get(k).and_then(Value::as_object).unwrap_or(&empty);
            for mk in union_keys(om, nm) {
                if !IGNORED_META.contains(&mk) {
                    let mut prefix = vec!["f:metadata".to_string(), format!("f:{mk}")];
                    diff(om.get(mk), nm.get(mk), &mut prefix, keys, &mut out);
                }
            }
            continue;
        }
        diff(
            o.get(k),
            n.get(k),
            &mut vec![format!("f:{k}")],
            keys,
            &mut out,
        );
    }
    out
}

fn union_keys<'a>(
    a: &'a Map<String, Value>,
    b: &'a Map<String, Value>,
) -> impl Iterator<Item = &'a str> {
    a.keys()
        .map(String::as_str)
        .chain(b.keys().map(String::as_str).filter(|k| !a.contains_key(*k)))
}

fn diff(
    old: Option<&Value>,
    new: Option<&Value>,
    prefix: &mut Path,
    keys: ListKeys<'_>,
    out: &mut Changes,
) {
    if old == new {
        return;
    }
    match (old, new) {
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if !o.is_empty() && !n.is_empty() && !keys.atomic(prefix) =>
        {
            for k in union_keys(o, n) {
                prefix.push(format!("f:{k}"));
                diff(o.get(k), n.get(k), prefix, keys, out);
                prefix.pop();
            }
        }
        _ => {
            // Leaves, lists, or a change of shape: the paths of both sides, compared as
            // the whole-object sets would be (lists key their items by their own content).
            let paths = |v: Option<&Value>| {
                let mut set = FieldSet::new();
                if let Some(v) = v {
                    collect(v, &mut prefix.clone(), &mut set, keys);
                }
                set
            };
            let (old_paths, new_paths) = (paths(old), paths(new));
            fn at<'v>(v: Option<&'v Value>, rel: &[String]) -> Option<&'v Value> {
                v.and_then(|v| get_path(v, rel))
            }
            let depth = prefix.len();
            for p in &new_paths {
                if at(old, &p[depth..]) != at(new, &p[depth..]) {
                    out.changed.insert(p.clone());
                }
            }
            out.removed
                .extend(old_paths.difference(&new_paths).cloned());
        }
    }
}

/// Outcome of planning an apply: the merged object, or conflicts.
pub struct ApplyRequest<'a> {
    /// The stored object, taken by value: the result is built in place of it.
    pub live: Value,
    pub config: &'a Value,
    pub manager: &'a str,
    pub api_version: &'a str,
    pub force: bool,
    pub scope: Scope,
    pub subresource: Option<&'a str>,
    pub keys: ListKeys<'a>,
}

/// Server-side apply of `config` onto `live`. Returns the new object (with
/// managedFields updated) or the conflict causes.
pub fn apply(req: ApplyRequest<'_>) -> Result<Value, Vec<Cause>> {
    let mut live = req.live;
    let mut entries = take_entries(&mut live);
    let applied = field_set(req.config, req.scope, req.keys);
    let applied_tree = FieldsTree::from_set(&applied);
    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == req.manager || !same_sub(e, req.subresource) {
            continue;
        }
        for p in applied.iter().filter(|p| e.fields.contains(p)) {
            let differs = get_path(&live, p) != get_path(req.config, p);
            // Only leaves carry values worth comparing; a shared list item is not a conflict.
            if !differs || p.last().is_some_and(|l| l.starts_with("k:")) {
                continue;
            }
            if req.force {
                taken.push((i, p.clone()));
            } else {
                conflicts.push(Cause::new(
                    "FieldManagerConflict",
                    render_path(p),
                    format!("conflict with \"{}\" using {}", e.manager, e.api_version),
                ));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    for (i, p) in taken {
        entries[i].fields.remove(&p);
    }
    let mut out = live;
    // Fields this manager applied before but no longer does are removed unless
    // another manager still owns them (or something beneath them).
    // (A manager re-applying the same fields, the usual case, drops nothing.)
    if let Some(prev) = entries.iter().find(|e| {
        e.manager == req.manager && e.operation == "Apply" && same_sub(e, req.subresource)
    }) && prev.fields != applied_tree
    {
        let dropped: Vec<Path> = prev.fields.paths().difference(&applied).cloned().collect();
        for p in dropped {
            let owned_elsewhere = entries.iter().any(|e| {
                !(e.manager == req.manager && e.operation == "Apply")
                    && e.fields.owns_at_or_below(&p)
            });
            if !owned_elsewhere {
                remove_path(&mut out, &p);
                prune_emptied_parents(&mut out, &p, &applied, &entries, req.manager);
            }
        }
    }
    let mut config = req.config.clone();
    if let Some(m) = config.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in IGNORED_META {
                meta.remove(*k);
            }
        }
        match req.scope {
            Scope::Status => m.retain(|k, _| k == "status" || k == "metadata"),
            Scope::Main {
                status_subresource: true,
            } => {
                m.remove("status");
            }
            Scope::Main { .. } => {}
        }
    }
    merge_applied(&mut out, &config, &mut Vec::new(), req.keys);
    let now = crate::meta::now();
    match entries.iter_mut().find(|e| {
        e.manager == req.manager && e.operation == "Apply" && same_sub(e, req.subresource)
    }) {
        Some(e) => {
            e.fields = applied_tree;
            e.time = now;
            e.api_version = req.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version: req.api_version.to_string(),
            time: now,
            subresource: req.subresource.map(str::to_string),
            fields: applied_tree,
        }),
    }
    write_entries(&mut out, entries);
    Ok(out)
}

#[cfg(test)]
mod atomic_tests {
    use super::*;

    /// A Service's selector is `+mapType=atomic`: the apply of two keys owns the whole map.
    #[test]
    fn a_service_selector_is_owned_and_replaced_whole() {
        let keys = ListKeys::for_builtin("services");
        let applied = json!({"spec": {"selector": {"bluegreen.dev/color": "blue"}}});
        let set = field_set(
            &applied,
            Scope::Main {
                status_subresource: true,
            },
            keys,
        );
        let path: Path = vec!["f:spec".into(), "f:selector".into()];
        assert!(set.contains(&path), "{set:?}");
        let mut live = json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
        merge_applied(&mut live, &applied, &mut Vec::new(), keys);
        assert_eq!(
            live["spec"]["selector"],
            json!({"bluegreen.dev/color": "blue"})
        );
        assert_eq!(live["spec"]["ports"][0]["port"], 80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(live: Value, config: &'a Value, manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            live,
            config,
            manager,
            api_version: "v1",
            force,
            scope: Scope::Main {
                status_subresource: true,
            },
            subresource: None,
            keys: ListKeys::builtin(),
        }
    }

    #[test]
    fn conflicts_force_and_removal() {
        let empty = json!({"metadata": {"name": "s"}});
        let a = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}});
        let live = apply(req(empty.clone(), &a, "helm", false)).unwrap();
        let b = json!({"metadata": {"name": "s"}, "spec": {"selector": {"color": "blue"}}});
        let live = apply(req(live.clone(), &b, "ctl", false)).unwrap();
        assert_eq!(
            live["spec"]["selector"],
            json!({"app": "x", "color": "blue"})
        );
        let c = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "y"}}});
        let err = apply(req(live.clone(), &c, "ctl", false)).unwrap_err();
        assert_eq!(err[0].field, ".spec.selector.app");
        assert!(err[0].message.contains("\"helm\""));
        let live = apply(req(live.clone(), &c, "ctl", true)).unwrap();
        // ctl dropped `color`, which it owned alone: removed. `app` now belongs to ctl.
        assert_eq!(live["spec"]["selector"], json!({"app": "y"}));
        assert_eq!(live["spec"]["ports"][0]["port"], 80);
        let entries = read_entries(&live);
        let ctl = entries.iter().find(|e| e.manager == "ctl").unwrap();
        assert!(ctl.fields.contains(&[
            "f:spec".to_string(),
            "f:selector".to_string(),
            "f:app".to_string()
        ]));
    }
}

#[cfg(test)]
mod schema_keys {
    use super::*;

    #[test]
    fn crd_list_map_keys_make_lists_associative() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                      "items": {"type": "object"}},
            "args": {"type": "array", "items": {"type": "string"}}}}}});
        let keys = ListKeys::schema(Some(&schema));
        let empty = json!({"metadata": {"name": "x"}});
        let a = json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80, "protocol": "TCP", "name": "http"}], "args": ["a"]}});
        let r = |live, config, m| ApplyRequest {
            live,
            config,
            manager: m,
            api_version: "v1",
            force: false,
            scope: Scope::Main {
                status_subresource: true,
            },
            subresource: None,
            keys,
        };
        let live = apply(r(empty.clone(), &a, "one")).unwrap();
        let b = json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 443, "protocol": "TCP"}]}});
        let live = apply(r(live.clone(), &b, "two")).unwrap();
        let ports = live["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2, "items from both managers: {live}");
        let owned = &read_entries(&live)[0].fields;
        assert!(
            owned.contains(&[
                "f:spec".into(),
                "f:ports".into(),
                r#"k:{"port":80,"protocol":"TCP"}"#.into()
            ]),
            "{owned:?}"
        );
        // An atomic list (no list-type) is replaced whole and conflicts as one field.
        let c = json!({"metadata": {"name": "x"}, "spec": {"args": ["b"]}});
        let err = apply(r(live.clone(), &c, "two")).unwrap_err();
        assert_eq!(err[0].field, ".spec.args");
    }
}

#[cfg(test)]
mod sets {
    use super::*;

    #[test]
    fn finalizers_are_a_set_shared_by_managers() {
        let empty = json!({"metadata": {"name": "x"}});
        let r = |live, config, m| ApplyRequest {
            live,
            config,
            manager: m,
            api_version: "v1",
            force: false,
            scope: Scope::Main {
                status_subresource: true,
            },
            subresource: None,
            keys: ListKeys::builtin(),
        };
        let a = json!({"metadata": {"name": "x", "finalizers": ["a.dev/one"]}});
        let live = apply(r(empty.clone(), &a, "one")).unwrap();
        let b = json!({"metadata": {"name": "x", "finalizers": ["b.dev/two"]}});
        let live = apply(r(live.clone(), &b, "two")).unwrap();
        assert_eq!(
            live["metadata"]["finalizers"],
            json!(["a.dev/one", "b.dev/two"])
        );
        // "two" drops its finalizer: only its own item goes.
        let c = json!({"metadata": {"name": "x", "labels": {"k": "v"}}});
        let live = apply(r(live.clone(), &c, "two")).unwrap();
        assert_eq!(live["metadata"]["finalizers"], json!(["a.dev/one"]));
    }
}

#[cfg(test)]
mod change_tracking {
    use super::*;
    use proptest::prelude::*;

    /// The definition `changes` must agree with: the field sets of both whole objects.
    fn whole_object_changes(old: Option<&Value>, new: &Value, scope: Scope) -> Changes {
        let keys = ListKeys::builtin();
        let new_set = field_set(new, scope, keys);
        let old_set = old.map(|o| field_set(o, scope, keys)).unwrap_or_default();
        Changes {
            changed: new_set
                .iter()
                .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
                .cloned()
                .collect(),
            removed: old_set.difference(&new_set).cloned().collect(),
        }
    }

    /// Small values from few keys and scalars, so that old and new often share subtrees,
    /// with keyed lists (`containers` by name, `conditions` by type) and atomic ones.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            (0..3i64).prop_map(Value::from),
            prop::sample::select(vec!["x", "y"]).prop_map(Value::from),
            Just(json!({})),
            Just(json!([])),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let item = (prop::sample::select(vec!["a", "b"]), inner.clone())
                .prop_map(|(name, v)| json!({"name": name, "type": name, "v": v}));
            prop_oneof![
                prop::collection::btree_map(
                    prop::sample::select(vec!["a", "b", "c", "containers", "conditions", "args"])
                        .prop_map(str::to_string),
                    inner.clone(),
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(item, 0..3).prop_map(Value::from),
                prop::collection::vec(inner, 0..3).prop_map(Value::from),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        (value(), value(), value(), value()).prop_map(|(labels, spec, status, extra)| {
            json!({"apiVersion": "v1", "kind": "Thing",
                   "metadata": {"name": "t", "resourceVersion": "1", "labels": labels},
                   "spec": spec, "status": status, "extra": extra})
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_in_place_diff_agrees_with_whole_object_field_sets(
            old in object(), new in object(), first_write in any::<bool>(), status in any::<bool>()
        ) {
            let scope = if status { Scope::Status } else { Scope::Main { status_subresource: true } };
            let old = (!first_write).then_some(&old);
            prop_assert_eq!(
                changes(old, &new, scope, ListKeys::builtin()),
                whole_object_changes(old, &new, scope)
            );
        }
    }

    #[test]
    fn a_status_write_changes_only_what_it_changed() {
        let old = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "a"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        let mut new = old.clone();
        new["status"]["conditions"][0]["status"] = json!("True");
        new["status"].as_object_mut().unwrap().remove("phase");
        let got = changes(Some(&old), &new, Scope::Status, ListKeys::builtin());
        let path = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Path>();
        // The keyed item counts as changed along with its field, as in the whole-object sets.
        let ready = path(&["f:status", "f:conditions", r#"k:{"type":"Ready"}"#]);
        let ready_status = [ready.clone(), path(&["f:status"])].concat();
        assert_eq!(got.changed, [ready, ready_status].into());
        assert_eq!(got.removed, [path(&["f:status", "f:phase"])].into());
    }
}
