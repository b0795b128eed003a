//! The name and label rules of `k8s.io/apimachinery/pkg/util/validation`, which every API
//! server applies to object names, label keys and values and annotation keys.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::error::Cause;

fn full(re: &str) -> Regex {
    Regex::new(&format!("^(?:{re})$")).expect("a valid pattern")
}

const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| full(DNS1123_LABEL));
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> =
    LazyLock::new(|| full(&format!(r"{DNS1123_LABEL}(\.{DNS1123_LABEL})*")));
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| full("[a-z]([-a-z0-9]*[a-z0-9])?"));
static QUALIFIED_NAME_RE: LazyLock<Regex> =
    LazyLock::new(|| full("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"));
static IANA_SVC_NAME_RE: LazyLock<Regex> = LazyLock::new(|| full("[-a-z0-9]+"));

/// The messages of a failed check (empty: valid).
type Problems = Vec<String>;

pub fn dns1123_label(v: &str) -> Problems {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".into());
    }
    if !DNS1123_LABEL_RE.is_match(v) {
        out.push(format!(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '{DNS1123_LABEL}')"
        ));
    }
    out
}

pub fn dns1123_subdomain(v: &str) -> Problems {
    let mut out = Vec::new();
    if v.len() > 253 {
        out.push("must be no more than 253 characters".into());
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(v) {
        out.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    out
}

pub fn dns1035_label(v: &str) -> Problems {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".into());
    }
    if !DNS1035_LABEL_RE.is_match(v) {
        out.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start \
             with an alphabetic character, and end with an alphanumeric character (e.g. \
             'my-name',  or 'abc-123', regex used for validation is \
             '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    out
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters.
pub fn qualified_name(v: &str) -> Problems {
    let (prefix, name) = match v.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    let mut out = Vec::new();
    match prefix {
        Some("") => out.push("prefix part must be non-empty".into()),
        Some(p) => out.extend(
            dns1123_subdomain(p)
                .into_iter()
                .map(|m| format!("prefix part {m}")),
        ),
        None => {}
    }
    if name.is_empty() {
        out.push("name part must be non-empty".into());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".into());
        }
        if !QUALIFIED_NAME_RE.is_match(name) {
            out.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
                 or '123-abc', regex used for validation is \
                 '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                    .into(),
            );
        }
    }
    out
}

pub fn label_value(v: &str) -> Problems {
    let mut out = Vec::new();
    if v.len() > 63 {
        out.push("must be no more than 63 characters".into());
    }
    if !v.is_empty() && !QUALIFIED_NAME_RE.is_match(v) {
        out.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', \
             '_' or '.', and must start and end with an alphanumeric character (e.g. \
             'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .into(),
        );
    }
    out
}

/// A named port: an IANA service name.
pub fn port_name(v: &str) -> Problems {
    let mut out = Vec::new();
    if v.len() > 15 {
        out.push("must be no more than 15 characters".into());
    }
    if !IANA_SVC_NAME_RE.is_match(v) {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if v.contains("--") {
        out.push("must not contain consecutive hyphens".into());
    }
    if !v.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)".into());
    }
    if v.starts_with('-') || v.ends_with('-') {
        out.push("must not begin or end with a hyphen".into());
    }
    out
}

/// `Invalid value` causes for each problem of `value` at `field`.
pub fn invalid(field: &str, value: &Value, problems: Problems, out: &mut Vec<Cause>) {
    for problem in problems {
        out.push(Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {problem}"),
        ));
    }
}

/// `ValidateLabels`: every key a qualified name, every value a label value; causes on
/// `field` itself, as the API server reports them.
pub fn labels(map: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        invalid(field, &Value::from(k.as_str()), qualified_name(k), out);
        if let Some(v) = v.as_str() {
            invalid(field, &Value::from(v), label_value(v), out);
        }
    }
}

/// The most an object's annotations may hold, keys and values together.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

pub fn annotations(map: Option<&Value>, field: &str, out: &mut Vec<Cause>) {
    let mut total = 0;
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        invalid(
            field,
            &Value::from(k.to_lowercase()),
            qualified_name(&k.to_lowercase()),
            out,
        );
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        out.push(Cause::new(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
        ));
    }
}

/// A name that must be a DNS label and unique in its list (container names, Service port
/// names): `seen` holds the names met so far.
pub fn unique_label(
    field: &str,
    name: &str,
    seen: &mut std::collections::BTreeSet<String>,
    out: &mut Vec<Cause>,
) {
    invalid(field, &Value::from(name), dns1123_label(name), out);
    if !seen.insert(name.to_string()) {
        out.push(Cause::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {name:?}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfcs() {
        assert!(dns1123_subdomain("web-blue.v1").is_empty());
        assert!(!dns1123_subdomain("Bad_Name").is_empty());
        assert!(!dns1123_subdomain(&"a".repeat(254)).is_empty());
        assert!(dns1123_label("web").is_empty());
        assert!(!dns1123_label("web.blue").is_empty());
        assert!(dns1035_label("web-preview").is_empty());
        assert!(!dns1035_label("1web").is_empty());
    }

    #[test]
    fn label_keys_and_values() {
        assert!(qualified_name("bluegreen.dev/color").is_empty());
        assert!(qualified_name("app").is_empty());
        assert!(!qualified_name("/app").is_empty());
        assert!(!qualified_name("Bad_Prefix/app").is_empty());
        assert!(!qualified_name(&"a".repeat(64)).is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("1.4.2").is_empty());
        assert!(!label_value("not a value").is_empty());
        assert!(!label_value(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn port_names_are_iana_service_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("http-alt").is_empty());
        assert!(!port_name("8080").is_empty());
        assert!(!port_name("HTTP").is_empty());
        assert!(!port_name("a--b").is_empty());
        assert!(!port_name("sixteen-chars-xx").is_empty());
    }
}
