//! The requests a cluster served, from either backend: kubesim's audit endpoint, or the
//! upstream API server's audit log (`scripts/kube.sh` writes it to `DIR/audit.log` under
//! `kube/audit-policy.yaml`), both read as kubesim's [`AuditEntry`].

use std::path::Path;

use kubesim::AuditEntry;
use serde_json::Value;

/// The entries of an API server audit log (JSON lines, one `audit.k8s.io/v1` Event each)
/// about resources in `namespace`, numbered by their line.
pub fn read_log(path: &Path, namespace: &str) -> std::io::Result<Vec<AuditEntry>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .enumerate()
        .filter_map(|(seq, line)| entry(seq as u64, line))
        .filter(|e| e.namespace == namespace)
        .collect())
}

/// How many lines the log holds now: later entries have a higher `seq`.
pub fn log_len(path: &Path) -> std::io::Result<u64> {
    Ok(std::fs::read_to_string(path)?.lines().count() as u64)
}

fn entry(seq: u64, line: &str) -> Option<AuditEntry> {
    let event: Value = serde_json::from_str(line).ok()?;
    let object = event.get("objectRef")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let uri = text(event.get("requestURI"));
    Some(AuditEntry {
        seq,
        verb: text(event.get("verb")),
        group: text(object.get("apiGroup")),
        resource: text(object.get("resource")),
        subresource: text(object.get("subresource")),
        namespace: text(object.get("namespace")),
        name: text(object.get("name")),
        field_manager: query_param(&uri, "fieldManager").unwrap_or_default(),
        // Not in the audit metadata; nothing in the suite needs it from a real server.
        patch_type: String::new(),
        code: event
            .pointer("/responseStatus/code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or_default(),
        user_agent: text(event.get("userAgent")),
    })
}

fn query_param(uri: &str, key: &str) -> Option<String> {
    let (_, query) = uri.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.replace("%2F", "/").replace("%3A", ":"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_event_reads_as_an_entry() {
        let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/ns1/services/shop?fieldManager=bluegreen-controller\u0026force=true","verb":"patch","user":{"username":"system:serviceaccount:bluegreen-system:bluegreen-controller"},"userAgent":"bluegreen-controller/0.1.0","objectRef":{"resource":"services","namespace":"ns1","name":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}"#;
        let e = entry(7, line).unwrap();
        assert_eq!(
            (
                e.seq,
                e.verb.as_str(),
                e.resource.as_str(),
                e.name.as_str(),
                e.code
            ),
            (7, "patch", "services", "shop", 200)
        );
        assert_eq!(e.field_manager, "bluegreen-controller");
        assert_eq!(e.user_agent, "bluegreen-controller/0.1.0");
    }
}
