//! The request log behind `GET /kubesim/v1/audit`: one entry per API request.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One API request as seen by kubesim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Position in the log, starting at 0; stable across `?since=` reads.
    pub seq: u64,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`.
    pub verb: String,
    pub group: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_manager: String,
    /// For patches: `merge`, `json`, `strategic` or `apply`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub patch_type: String,
    pub code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
}

impl AuditEntry {
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

#[derive(Debug, Default)]
pub struct Audit {
    inner: Mutex<(u64, Vec<AuditEntry>)>,
}

impl Audit {
    pub fn record(&self, mut e: AuditEntry) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        e.seq = g.0;
        g.0 += 1;
        g.1.push(e);
    }

    /// Entries with `seq >= since`.
    pub fn since(&self, since: u64) -> Vec<AuditEntry> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = g.1.partition_point(|e| e.seq < since);
        g.1[start..].to_vec()
    }

    /// The seq the next entry will get; pass it to `since` later to see only newer ones.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// Forgets all entries (sequence numbers keep increasing).
    pub fn clear(&self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clear();
    }
}
