//! Server-side `meta.k8s.io/v1 Table` output: CRD printer columns, and the columns
//! kubectl users expect for built-in kinds.

use serde_json::{Value, json};

use crate::jsonpath;
use crate::meta::{age, parse_time};
use crate::registry::ResourceDef;

/// Whether the client asked for a Table (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.iter().any(|p| *p == "v=v1" || *p == "v=v1beta1")
    })
}

struct Col {
    name: &'static str,
    typ: &'static str,
    format: &'static str,
    priority: i64,
}

const fn col(name: &'static str, typ: &'static str) -> Col {
    Col {
        name,
        typ,
        format: "",
        priority: 0,
    }
}

const fn wide(name: &'static str, typ: &'static str) -> Col {
    Col {
        name,
        typ,
        format: "",
        priority: 1,
    }
}

const NAME: Col = Col {
    name: "Name",
    typ: "string",
    format: "name",
    priority: 0,
};
const AGE: Col = col("Age", "string");

fn s(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(x)) => json!(x),
        Some(Value::Null) | None => json!("<none>"),
        Some(other) => json!(other.to_string()),
    }
}

fn int(v: Option<&Value>) -> Value {
    json!(v.and_then(Value::as_i64).unwrap_or(0))
}

fn obj_age(o: &Value) -> Value {
    json!(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .and_then(age)
            .unwrap_or_else(|| "<unknown>".into())
    )
}

fn containers_images_selector(o: &Value, template: &str) -> [Value; 3] {
    let cs = o
        .pointer(&format!("{template}/spec/containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    let sel = o
        .pointer("/spec/selector")
        .map(|s| crate::selector::LabelSelector::from_object(s).to_query());
    [
        json!(names.join(",")),
        json!(images.join(",")),
        json!(sel.unwrap_or_else(|| "<none>".into())),
    ]
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = o
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    let ready = statuses
        .iter()
        .filter(|c| c.get("ready") == Some(&json!(true)))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
        .sum();
    let waiting = statuses
        .iter()
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
        .map(str::to_string);
    let terminated = statuses
        .iter()
        .find_map(|c| {
            c.pointer("/state/terminated/reason")
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".to_string()
    } else {
        waiting.or(terminated).unwrap_or_else(|| {
            o.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string()
        })
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        obj_age(o),
        s(o.pointer("/status/podIP")),
        s(o.pointer("/spec/nodeName")),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn service_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| crate::selector::LabelSelector::from_map(m).to_query())
        .unwrap_or_else(|| "<none>".into());
    vec![
        s(o.pointer("/spec/type").or(Some(&json!("ClusterIP")))),
        s(o.pointer("/spec/clusterIP")),
        json!("<none>"),
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        }),
        obj_age(o),
        json!(selector),
    ]
}

fn job_cells(o: &Value) -> Vec<Value> {
    let conds = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if o.pointer("/spec/suspend") == Some(&json!(true)) {
        "Suspended"
    } else {
        "Running"
    };
    let completions = o
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let succeeded = o
        .pointer("/status/succeeded")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let start = o
        .pointer("/status/startTime")
        .and_then(Value::as_str)
        .and_then(parse_time);
    let end = o
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .unwrap_or_else(jiff::Timestamp::now);
    let duration = start
        .map(|s| crate::meta::human_duration(end.as_second() - s.as_second()))
        .unwrap_or_default();
    let mut cells = vec![
        json!(status),
        json!(format!("{succeeded}/{completions}")),
        json!(duration),
        obj_age(o),
    ];
    cells.extend(containers_images_selector(o, "/spec/template"));
    cells
}

fn event_cells(o: &Value) -> Vec<Value> {
    let last = o
        .get("lastTimestamp")
        .and_then(Value::as_str)
        .or_else(|| o.get("eventTime").and_then(Value::as_str))
        .or_else(|| {
            o.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        })
        .and_then(age)
        .unwrap_or_else(|| "<unknown>".into());
    let kind = o
        .pointer("/involvedObject/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let name = o
        .pointer("/involvedObject/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    vec![
        json!(last),
        s(o.get("type")),
        s(o.get("reason")),
        json!(format!("{kind}/{name}")),
        s(o.get("message")),
    ]
}

/// Columns (after NAME) and the cell function for a built-in kind.
type Cells = fn(&Value) -> Vec<Value>;

fn builtin_columns(def: &ResourceDef) -> (Vec<Col>, Cells) {
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => (
            vec![
                col("Ready", "string"),
                col("Status", "string"),
                col("Restarts", "string"),
                AGE,
                wide("IP", "string"),
                wide("Node", "string"),
                wide("Nominated Node", "string"),
                wide("Readiness Gates", "string"),
            ],
            pod_cells,
        ),
        ("", "services") => (
            vec![
                col("Type", "string"),
                col("Cluster-IP", "string"),
                col("External-IP", "string"),
                col("Port(s)", "string"),
                AGE,
                wide("Selector", "string"),
            ],
            service_cells,
        ),
        ("", "namespaces") => (vec![col("Status", "string"), AGE], |o| {
            vec![s(o.pointer("/status/phase")), obj_age(o)]
        }),
        ("", "configmaps") => (vec![col("Data", "integer"), AGE], |o| {
            let n = o
                .get("data")
                .and_then(Value::as_object)
                .map(|m| m.len())
                .unwrap_or(0)
                + o.get("binaryData")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0);
            vec![json!(n), obj_age(o)]
        }),
        ("", "secrets") => (
            vec![col("Type", "string"), col("Data", "integer"), AGE],
            |o| {
                let n = o
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0);
                vec![
                    s(o.get("type").or(Some(&json!("Opaque")))),
                    json!(n),
                    obj_age(o),
                ]
            },
        ),
        ("", "endpoints") => (vec![col("Endpoints", "string"), AGE], |o| {
            let mut eps = Vec::new();
            for sub in o
                .get("subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for a in sub
                    .get("addresses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for p in sub
                        .get("ports")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        eps.push(format!(
                            "{}:{}",
                            a["ip"].as_str().unwrap_or_default(),
                            p["port"]
                        ));
                    }
                }
            }
            vec![
                json!(if eps.is_empty() {
                    "<none>".to_string()
                } else {
                    eps.join(",")
                }),
                obj_age(o),
            ]
        }),
        ("", "events") => (
            vec![
                col("Last Seen", "string"),
                col("Type", "string"),
                col("Reason", "string"),
                col("Object", "string"),
                col("Message", "string"),
            ],
            event_cells,
        ),
        ("apps", "deployments") => (
            vec![
                col("Ready", "string"),
                col("Up-to-date", "integer"),
                col("Available", "integer"),
                AGE,
                wide("Containers", "string"),
                wide("Images", "string"),
                wide("Selector", "string"),
            ],
            |o| {
                let mut c = vec![
                    json!(format!(
                        "{}/{}",
                        o.pointer("/status/readyReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    )),
                    int(o.pointer("/status/updatedReplicas")),
                    int(o.pointer("/status/availableReplicas")),
                    obj_age(o),
                ];
                c.extend(containers_images_selector(o, "/spec/template"));
                c
            },
        ),
        ("apps", "replicasets") => (
            vec![
                col("Desired", "integer"),
                col("Current", "integer"),
                col("Ready", "integer"),
                AGE,
                wide("Containers", "string"),
                wide("Images", "string"),
                wide("Selector", "string"),
            ],
            |o| {
                let mut c = vec![
                    json!(
                        o.pointer("/spec/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(1)
                    ),
                    int(o.pointer("/status/replicas")),
                    int(o.pointer("/status/readyReplicas")),
                    obj_age(o),
                ];
                c.extend(containers_images_selector(o, "/spec/template"));
                c
            },
        ),
        ("batch", "jobs") => (
            vec![
                col("Status", "string"),
                col("Completions", "string"),
                col("Duration", "string"),
                AGE,
                wide("Containers", "string"),
                wide("Images", "string"),
                wide("Selector", "string"),
            ],
            job_cells,
        ),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            (vec![col("Created At", "date")], |o| {
                vec![s(o.pointer("/metadata/creationTimestamp"))]
            })
        }
        _ => (vec![AGE], |o| vec![obj_age(o)]),
    }
}

fn definition(c: &Col) -> Value {
    json!({"name": c.name, "type": c.typ, "format": c.format, "description": "", "priority": c.priority})
}

/// Renders a cell for a CRD printer column of the given type, as the apiextensions
/// table convertor does (`date` becomes an age).
fn crd_cell(obj: &Value, column: &Value) -> Value {
    let path = column
        .get("jsonPath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let typ = column
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let Some(v) = jsonpath::first(obj, path) else {
        return Value::Null;
    };
    match typ {
        "date" => v
            .as_str()
            .and_then(age)
            .map(Value::String)
            .unwrap_or(Value::Null),
        "string" => match v {
            Value::String(x) => json!(x),
            other => json!(other.to_string()),
        },
        _ => v.clone(),
    }
}

fn row_object(obj: &Value, include: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Builds the Table for `objects` (already converted to the requested version).
pub fn build(
    def: &ResourceDef,
    version: &str,
    objects: &[impl std::borrow::Borrow<Value>],
    include: &str,
    list_meta: Value,
) -> Value {
    let objects: Vec<&Value> = objects.iter().map(std::borrow::Borrow::borrow).collect();
    // Events are the one built-in table without a leading Name column.
    let name_first = !(def.group.is_empty() && def.plural == "events");
    let mut defs = if name_first {
        vec![definition(&NAME)]
    } else {
        vec![]
    };
    let crd_cols = def
        .crd
        .as_ref()
        .and_then(|m| m.get(version))
        .map(|v| v.printer_columns.clone());
    let rows: Vec<Value> = match crd_cols {
        Some(cols) if !cols.is_empty() => {
            for c in &cols {
                defs.push(json!({
                    "name": c.get("name").cloned().unwrap_or(json!("")),
                    "type": c.get("type").cloned().unwrap_or(json!("string")),
                    "format": c.get("format").cloned().unwrap_or(json!("")),
                    "description": c.get("description").cloned().unwrap_or(json!("")),
                    "priority": c.get("priority").cloned().unwrap_or(json!(0)),
                }));
            }
            objects
                .iter()
                .map(|o| {
                    let mut cells = vec![json!(crate::meta::name(o))];
                    cells.extend(cols.iter().map(|c| crd_cell(o, c)));
                    json!({"cells": cells, "object": row_object(o, include)})
                })
                .collect()
        }
        Some(_) => {
            defs.push(definition(&AGE));
            objects
                .iter()
                .map(|o| json!({"cells": [crate::meta::name(o), obj_age(o)], "object": row_object(o, include)}))
                .collect()
        }
        None => {
            let (cols, cells) = builtin_columns(def);
            defs.extend(cols.iter().map(definition));
            objects
                .iter()
                .map(|o| {
                    let mut c = if name_first {
                        vec![json!(crate::meta::name(o))]
                    } else {
                        vec![]
                    };
                    c.extend(cells(o));
                    json!({"cells": c, "object": row_object(o, include)})
                })
                .collect()
        }
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::wants_table;

    #[test]
    fn detects_table_accept() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
