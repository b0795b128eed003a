//! Revision identity: a short, stable hash of the application pod template and selector.
//!
//! The hash is what both Services select on (with the color), so that pods of a replaced
//! revision can never receive preview or active traffic. The selector is part of it because a
//! ReplicaSet's selector is immutable: a new selector needs a new ReplicaSet, i.e. a rollout. It must be stable across controller
//! restarts and versions: it hashes the template's canonical JSON (serde_json maps are
//! ordered), never a Rust `Hash` that could change between builds.

use sha2::{Digest, Sha256};

use crate::BlueGreenReleaseSpec;

/// Length of the hex revision; 10 hex digits (40 bits) makes collisions between the
/// handful of revisions of one release practically impossible.
pub const REVISION_LEN: usize = 10;

/// The revision of a spec's pod template and selector, e.g. `5f2c9a1b3e`.
pub fn revision_of(spec: &BlueGreenReleaseSpec) -> String {
    let identity = serde_json::json!({
        "template": spec.template,
        "selector": spec.effective_selector(),
    });
    let canonical = serde_json::to_vec(&identity).expect("a pod template always serializes");
    let digest = Sha256::digest(&canonical);
    let mut hex = String::with_capacity(REVISION_LEN);
    for byte in digest.iter().take(REVISION_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(image: &str, selector: Option<serde_json::Value>) -> BlueGreenReleaseSpec {
        let mut spec = json!({
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            },
            "service": {"name": "web"}
        });
        if let Some(selector) = selector {
            spec["selector"] = selector;
        }
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn same_template_same_revision() {
        assert_eq!(
            revision_of(&spec("web:1", None)),
            revision_of(&spec("web:1", None))
        );
        assert_eq!(revision_of(&spec("web:1", None)).len(), REVISION_LEN);
    }

    #[test]
    fn different_template_different_revision() {
        assert_ne!(
            revision_of(&spec("web:1", None)),
            revision_of(&spec("web:2", None))
        );
    }

    #[test]
    fn different_selector_different_revision() {
        let narrow = spec("web:1", Some(json!({"matchLabels": {"app": "web"}})));
        assert_ne!(revision_of(&spec("web:1", None)), revision_of(&narrow));
    }

    #[test]
    fn revision_is_a_valid_label_value() {
        let rev = revision_of(&spec("web:1", None));
        assert!(rev.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
