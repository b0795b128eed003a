//! `ValidateService`, for its type, ports and selector.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::{self, invalid};
use super::pods::required;
use crate::error::Cause;

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn not_supported(field: &str, value: &Value, allowed: &[&str], out: &mut Vec<Cause>) {
    let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    out.push(Cause::new(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ),
    ));
}

fn port_number(field: &str, value: i64, out: &mut Vec<Cause>) {
    if !(1..=65535).contains(&value) {
        out.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: must be between 1 and 65535, inclusive"),
        ));
    }
}

pub fn service(obj: &Value, out: &mut Vec<Cause>) {
    let spec = &obj["spec"];
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if !TYPES.contains(&kind) {
        not_supported("spec.type", &spec["type"], TYPES, out);
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.is_empty() && kind != "ExternalName" && !headless {
        required("spec.ports", out);
    }
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        match p.get("name").and_then(Value::as_str).unwrap_or_default() {
            "" if ports.len() > 1 => required(&format!("{at}.name"), out),
            "" => {}
            name => {
                names::unique_label(&format!("{at}.name"), name, &mut seen, out);
            }
        }
        match p.get("port").and_then(Value::as_i64) {
            Some(n) => port_number(&format!("{at}.port"), n, out),
            None => required(&format!("{at}.port"), out),
        }
        if let Some(protocol) = p.get("protocol").and_then(Value::as_str)
            && !PROTOCOLS.contains(&protocol)
        {
            not_supported(&format!("{at}.protocol"), &p["protocol"], PROTOCOLS, out);
        }
        match p.get("targetPort") {
            Some(Value::Number(n)) => {
                port_number(&format!("{at}.targetPort"), n.as_i64().unwrap_or(0), out)
            }
            Some(Value::String(name)) => invalid(
                &format!("{at}.targetPort"),
                &Value::from(name.as_str()),
                names::port_name(name),
                out,
            ),
            _ => {}
        }
    }
    names::labels(spec.get("selector"), "spec.selector", out);
}
