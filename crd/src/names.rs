//! The names the controller derives from a release, and the length limits that keep every
//! one of them a valid Kubernetes name (a DNS label: at most 63 characters).

use crate::Color;

/// A DNS label, the limit of Service names (and of the Job names below, which label pods).
pub const MAX_NAME: usize = 63;
/// A release name leaves room for the longest derived suffix, `-preview` (8 characters).
pub const MAX_RELEASE_NAME: usize = MAX_NAME - "-preview".len();
/// How much of the revision a smoke-test Job's name carries.
pub const JOB_REVISION_CHARS: usize = 8;
/// `<release>-<test>` may be this long in a Job name `<release>-<test>-<revision[:8]>`.
pub const MAX_RELEASE_PLUS_TEST: usize = MAX_NAME - 2 - JOB_REVISION_CHARS;

/// A color's ReplicaSet: `<release>-<color>`.
pub fn replica_set(release: &str, color: Color) -> String {
    format!("{release}-{color}")
}

/// A smoke-test Job: `<release>-<test>-<revision[:8]>`.
pub fn smoke_test_job(release: &str, test: &str, revision: &str) -> String {
    let short = &revision[..revision.len().min(JOB_REVISION_CHARS)];
    format!("{release}-{test}-{short}")
}

/// The preview Service when `spec.service.previewName` is not set: `<release>-preview`.
pub fn default_preview_service(release: &str) -> String {
    format!("{release}-preview")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_names_fit() {
        let release = "r".repeat(MAX_RELEASE_NAME);
        assert_eq!(default_preview_service(&release).len(), MAX_NAME);
        assert!(replica_set(&release, Color::Green).len() <= MAX_NAME);
        // Validation bounds the release and the test name together.
        let release = "r".repeat(20);
        let test = "t".repeat(MAX_RELEASE_PLUS_TEST - release.len());
        assert_eq!(
            smoke_test_job(&release, &test, "0123456789abcdef").len(),
            MAX_NAME
        );
    }
}
