//! Fault injection, driven by `POST /kubesim/v1/faults` or `Server::inject`.
//!
//! The request body is one JSON object with any of these members:
//!
//! ```json
//! {
//!   "failWrite": {"verb": "patch", "resource": "services", "subresource": "status",
//!                 "namespace": "ns", "name": "web", "nth": 1, "count": 1,
//!                 "code": 500, "message": "injected"},
//!   "latencyMs": 50, "verb": "patch", "resource": "services", "namespace": "ns", "name": "web",
//!   "latency": {"ms": 50, "verb": "get", "resource": "pods"},
//!   "closeWatches": true,
//!   "expireResourceVersions": true
//! }
//! ```
//!
//! * `failWrite` fails matching requests with a `Status` of `code` [500]: the `nth`
//!   [1] matching request from now fails, and so do the `count` [1] following ones
//!   (counting the nth). Matchers left out match anything; without `verb` only writes
//!   (create/update/patch/delete/deletecollection) match.
//! * `latencyMs` delays every request matching the top-level `verb`/`resource`/
//!   `subresource`/`namespace`/`name` (all optional) before it is served; `latency`
//!   says the same with its own matcher, so one body can carry both kinds of rule.
//! * `closeWatches` ends every open watch stream cleanly (clients re-watch).
//! * `expireResourceVersions` drops the watch history and closes watches, so every
//!   resumed watch gets an in-stream 410 Expired and must re-list.
//!
//! `DELETE /kubesim/v1/faults` (or `Server::clear_faults`) removes all rules.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which requests a rule applies to. `None` matches anything.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Attributes of a request, matched against rules.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub verb: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

impl RequestInfo {
    fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

impl Matcher {
    fn matches(&self, r: &RequestInfo, writes_only: bool) -> bool {
        let eq = |m: &Option<String>, v: &str| m.as_deref().is_none_or(|m| m == v);
        if self.verb.is_none() && writes_only && !r.is_write() {
            return false;
        }
        eq(&self.verb, &r.verb)
            && eq(&self.resource, &r.resource)
            && eq(&self.subresource, &r.subresource)
            && eq(&self.namespace, &r.namespace)
            && eq(&self.name, &r.name)
    }
}

fn one() -> u64 {
    1
}

fn internal() -> u16 {
    500
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailWrite {
    #[serde(flatten)]
    pub matcher: Matcher,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default = "internal")]
    pub code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A latency rule in its nested form: `{"ms": 50, "verb": "get", ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub ms: u64,
    #[serde(flatten)]
    pub matcher: Matcher,
}

/// The body of `POST /kubesim/v1/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_write: Option<FailWrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub close_watches: bool,
    #[serde(default)]
    pub expire_resource_versions: bool,
}

impl Fault {
    pub fn fail(verb: &str, resource: &str, code: u16) -> Self {
        Fault {
            fail_write: Some(FailWrite {
                matcher: Matcher {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    ..Default::default()
                },
                nth: 1,
                count: 1,
                code,
                message: None,
            }),
            ..Default::default()
        }
    }

    pub fn close_watches() -> Self {
        Fault {
            close_watches: true,
            ..Default::default()
        }
    }

    pub fn expire_resource_versions() -> Self {
        Fault {
            expire_resource_versions: true,
            ..Default::default()
        }
    }
}

#[derive(Debug)]
struct FailRule {
    rule: FailWrite,
    seen: u64,
}

#[derive(Debug)]
struct LatencyRule {
    matcher: Matcher,
    delay: Duration,
}

#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<(Vec<FailRule>, Vec<LatencyRule>)>,
}

/// What to do with one request.
#[derive(Debug, Default)]
pub struct Verdict {
    pub delay: Option<Duration>,
    pub fail: Option<(u16, String)>,
}

impl Faults {
    /// Registers the rule parts of a fault (the one-shot actions are the caller's).
    pub fn add(&self, f: &Fault) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fw) = &f.fail_write {
            g.0.push(FailRule {
                rule: fw.clone(),
                seen: 0,
            });
        }
        if let Some(l) = &f.latency {
            g.1.push(LatencyRule {
                matcher: l.matcher.clone(),
                delay: Duration::from_millis(l.ms),
            });
        }
        if let Some(ms) = f.latency_ms {
            g.1.push(LatencyRule {
                matcher: Matcher {
                    verb: f.verb.clone(),
                    resource: f.resource.clone(),
                    subresource: f.subresource.clone(),
                    namespace: f.namespace.clone(),
                    name: f.name.clone(),
                },
                delay: Duration::from_millis(ms),
            });
        }
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0.clear();
        g.1.clear();
    }

    pub fn check(&self, r: &RequestInfo) -> Verdict {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = Verdict::default();
        for l in &g.1 {
            if l.matcher.matches(r, false) {
                v.delay = Some(v.delay.unwrap_or_default() + l.delay);
            }
        }
        for f in g.0.iter_mut() {
            if !f.rule.matcher.matches(r, true) {
                continue;
            }
            f.seen += 1;
            if f.seen >= f.rule.nth && f.seen < f.rule.nth + f.rule.count && v.fail.is_none() {
                let msg = f.rule.message.clone().unwrap_or_else(|| {
                    format!("kubesim injected fault: {} {}", r.verb, r.resource)
                });
                v.fail = Some((f.rule.code, msg));
            }
        }
        // Spent rules go away so they do not keep counting.
        g.0.retain(|f| f.seen + 1 < f.rule.nth + f.rule.count);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_and_count() {
        let faults = Faults::default();
        let f: Fault = serde_json::from_str(
            r#"{"failWrite":{"verb":"patch","resource":"services","nth":2,"count":2,"code":503}}"#,
        )
        .unwrap();
        faults.add(&f);
        let req = RequestInfo {
            verb: "patch".into(),
            resource: "services".into(),
            ..Default::default()
        };
        let got: Vec<bool> = (0..5).map(|_| faults.check(&req).fail.is_some()).collect();
        assert_eq!(got, vec![false, true, true, false, false]);
        let get = RequestInfo {
            verb: "get".into(),
            resource: "services".into(),
            ..Default::default()
        };
        assert!(faults.check(&get).fail.is_none());
    }

    #[test]
    fn latency_in_both_shapes() {
        let faults = Faults::default();
        let f: Fault = serde_json::from_str(
            r#"{"latencyMs": 5, "verb": "get", "latency": {"ms": 7, "resource": "pods"}}"#,
        )
        .unwrap();
        faults.add(&f);
        let get_pods = RequestInfo {
            verb: "get".into(),
            resource: "pods".into(),
            ..Default::default()
        };
        assert_eq!(
            faults.check(&get_pods).delay,
            Some(Duration::from_millis(12))
        );
        let list_pods = RequestInfo {
            verb: "list".into(),
            resource: "pods".into(),
            ..Default::default()
        };
        assert_eq!(
            faults.check(&list_pods).delay,
            Some(Duration::from_millis(7))
        );
        assert!(
            serde_json::from_str::<Fault>(r#"{"bogus": 1}"#).is_err(),
            "unknown rules are rejected"
        );
    }
}
