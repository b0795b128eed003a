//! Revision identity: a short, stable hash of the application pod template.
//!
//! The hash is what both Services select on (with the color), so that pods of a replaced
//! revision can never receive preview or active traffic. It must be stable across controller
//! restarts and versions: it hashes the template's canonical JSON (serde_json maps are
//! ordered), never a Rust `Hash` that could change between builds.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use sha2::{Digest, Sha256};

/// Length of the hex revision; 10 hex digits (40 bits) makes collisions between the
/// handful of revisions of one release practically impossible.
pub const REVISION_LEN: usize = 10;

/// The revision of a pod template, e.g. `5f2c9a1b3e`.
pub fn revision_of(template: &PodTemplateSpec) -> String {
    let canonical = serde_json::to_vec(template).expect("a PodTemplateSpec always serializes");
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

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn same_template_same_revision() {
        assert_eq!(
            revision_of(&template("web:1")),
            revision_of(&template("web:1"))
        );
        assert_eq!(revision_of(&template("web:1")).len(), REVISION_LEN);
    }

    #[test]
    fn different_template_different_revision() {
        assert_ne!(
            revision_of(&template("web:1")),
            revision_of(&template("web:2"))
        );
    }

    #[test]
    fn revision_is_a_valid_label_value() {
        let rev = revision_of(&template("web:1"));
        assert!(rev.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
