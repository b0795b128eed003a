//! Server-side apply and managedFields bookkeeping.
//!
//! Field ownership is tracked as sets of paths in the `fieldsV1` vocabulary
//! (`f:spec`, `f:replicas`, `k:{"name":"app"}`). Associative lists (items owned
//! individually) are those a CRD schema marks `x-kubernetes-list-type: map`, and for
//! built-in kinds those with a patch merge key; all other lists are atomic leaves.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::Cause;
use crate::patch::merge_key;

pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// Which part of the object a write may touch, for field-set purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource: everything except `status` when the kind has a status subresource.
    Main { status_subresource: bool },
    /// The `status` subresource: only `status`.
    Status,
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
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
}

impl<'a> ListKeys<'a> {
    pub fn builtin() -> Self {
        ListKeys { schema: None }
    }

    /// For a CRD version's `openAPIV3Schema` (or built-in keys when `None`).
    pub fn schema(schema: Option<&'a Value>) -> Self {
        ListKeys { schema }
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
        let included = match scope {
            Scope::Status => k == "status",
            Scope::Main { status_subresource } => {
                !(k == "apiVersion" || k == "kind" || (status_subresource && k == "status"))
            }
        };
        if !included {
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
                    && e.fields.iter().any(|q| q.starts_with(parent))
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
        .map(|e| {
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                tree_to_set(f, &mut Vec::new(), &mut fields);
            }
            Entry {
                manager: e
                    .get("manager")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields,
            }
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": set_to_tree(&e.fields),
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

fn tree_to_set(node: &Value, prefix: &mut Path, out: &mut FieldSet) {
    let Some(m) = node.as_object() else { return };
    if (m.is_empty() || m.contains_key(".")) && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
    for (k, c) in m {
        if k == "." {
            continue;
        }
        prefix.push(k.clone());
        tree_to_set(c, prefix, out);
        prefix.pop();
    }
}

fn set_to_tree(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for pe in path {
            cur = cur
                .entry(pe.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("tree nodes are objects");
        }
        // A member that also has children gets the "." marker.
        let _ = cur;
    }
    for path in set {
        let mut cur = &mut root;
        for pe in path {
            cur = cur
                .get_mut(pe)
                .and_then(Value::as_object_mut)
                .expect("inserted above");
        }
        if !cur.is_empty() && !cur.contains_key(".") {
            cur.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
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
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_set = field_set(new, scope, keys);
    let old_set = old.map(|o| field_set(o, scope, keys)).unwrap_or_default();
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p))
        .cloned()
        .collect();
    let removed: Vec<&Path> = old_set.difference(&new_set).collect();
    for e in entries.iter_mut() {
        for p in &removed {
            e.fields.remove(*p);
        }
        if !(e.manager == manager && e.operation == "Update" && same_sub(e, subresource)) {
            for p in &changed {
                e.fields.remove(p);
            }
        }
    }
    if !changed.is_empty() {
        let now = crate::meta::now();
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update" && same_sub(e, subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now;
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now,
                subresource: subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    write_entries(new, &entries);
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
    let mut entries = read_entries(&req.live);
    let applied = field_set(req.config, req.scope, req.keys);
    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Path)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.manager == req.manager || !same_sub(e, req.subresource) {
            continue;
        }
        for p in applied.intersection(&e.fields) {
            let differs = get_path(&req.live, p) != get_path(req.config, p);
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
    let mut out = req.live;
    // Fields this manager applied before but no longer does are removed unless
    // another manager still owns them (or something beneath them).
    if let Some(prev) = entries.iter().find(|e| {
        e.manager == req.manager && e.operation == "Apply" && same_sub(e, req.subresource)
    }) {
        let dropped: Vec<Path> = prev.fields.difference(&applied).cloned().collect();
        for p in dropped {
            let owned_elsewhere = entries.iter().any(|e| {
                !(e.manager == req.manager && e.operation == "Apply")
                    && e.fields.iter().any(|q| q.starts_with(&p))
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
            e.fields = applied;
            e.time = now;
            e.api_version = req.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: req.manager.to_string(),
            operation: "Apply".into(),
            api_version: req.api_version.to_string(),
            time: now,
            subresource: req.subresource.map(str::to_string),
            fields: applied,
        }),
    }
    write_entries(&mut out, &entries);
    Ok(out)
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
        assert!(ctl.fields.contains(&vec![
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
            owned.contains(&vec![
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
