//! Reconcile errors: each carries its context and a bounded metric label, and decides how
//! soon to retry (per error class, never a fixed long requeue).

use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// An API call failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// The flip's fresh availability check failed: the ReplicaSet changed since it was seen.
    #[error("flip of {service} refused: {reason}")]
    FlipGuard { service: String, reason: String },

    /// The release object lacks what every stored object has (name, namespace, uid).
    #[error("release is missing {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action: action.into(),
            source,
        }
    }

    /// HTTP status of an API error, if any.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Api {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// A 409: someone wrote in between (optimistic concurrency, SSA conflict, AlreadyExists
    /// while a deletion finishes). Retried at once, never reported as a failure.
    pub fn is_conflict(&self) -> bool {
        self.status_code() == Some(409)
    }

    /// The class of the error: it decides the retry and labels the error metric.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Api { .. } if self.is_conflict() => ErrorClass::Conflict,
            Error::Api { .. } => match self.status_code() {
                Some(403) => ErrorClass::Forbidden,
                Some(404) => ErrorClass::NotFound,
                Some(422) => ErrorClass::Invalid,
                Some(429) => ErrorClass::Throttled,
                Some(code) if code >= 500 => ErrorClass::ServerError,
                Some(_) => ErrorClass::ApiError,
                None => ErrorClass::Transport,
            },
            Error::FlipGuard { .. } => ErrorClass::FlipGuard,
            Error::MissingMetadata(_) => ErrorClass::MissingMetadata,
        }
    }

    /// Bounded label for `bluegreen_reconcile_errors_total{error}`.
    pub fn metric_label(&self) -> &'static str {
        self.class().into()
    }

    /// How long to wait before the next attempt, given how many attempts failed in a row.
    pub fn retry_after(&self, consecutive_failures: u32) -> Duration {
        let base = match self.class() {
            ErrorClass::Conflict => Duration::from_millis(200),
            ErrorClass::FlipGuard => Duration::from_millis(500),
            ErrorClass::Throttled | ErrorClass::ServerError | ErrorClass::Transport => {
                Duration::from_secs(1)
            }
            ErrorClass::Forbidden
            | ErrorClass::NotFound
            | ErrorClass::Invalid
            | ErrorClass::ApiError
            | ErrorClass::MissingMetadata => Duration::from_secs(5),
        };
        // Exponential per release, capped: a persistent error costs little.
        let factor = 2u32.saturating_pow(consecutive_failures.saturating_sub(1).min(8));
        (base * factor).min(Duration::from_secs(300))
    }
}

/// What kind of trouble a reconcile ran into; a closed set, so the metric label is bounded
/// and every class has a retry policy (the match above is exhaustive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ErrorClass {
    /// 409: someone wrote in between (optimistic concurrency, SSA conflict, AlreadyExists
    /// while a deletion finishes): retried at once.
    Conflict,
    Forbidden,
    NotFound,
    Invalid,
    /// 429: the API server asks for less.
    Throttled,
    ServerError,
    /// Another HTTP status.
    ApiError,
    /// No HTTP status at all: the connection failed.
    Transport,
    /// The flip's fresh availability check refused the write.
    FlipGuard,
    MissingMetadata,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> Error {
        let status = Status {
            code,
            ..Status::failure("m", "r")
        };
        Error::api("patch Service web", kube::Error::Api(status.boxed()))
    }

    #[test]
    fn conflicts_are_retried_quickly() {
        let conflict = api(409);
        assert!(conflict.is_conflict());
        assert_eq!(conflict.metric_label(), "conflict");
        assert_eq!(conflict.retry_after(1), Duration::from_millis(200));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let err = api(500);
        assert_eq!(err.metric_label(), "server_error");
        assert!(err.retry_after(3) > err.retry_after(1));
        assert_eq!(err.retry_after(50), Duration::from_secs(256));
        assert_eq!(api(403).retry_after(100), Duration::from_secs(300));
    }

    #[test]
    fn every_class_has_its_label() {
        use strum::VariantArray;
        let labels: Vec<&str> = ErrorClass::VARIANTS.iter().map(|c| (*c).into()).collect();
        assert_eq!(
            labels,
            [
                "conflict",
                "forbidden",
                "not_found",
                "invalid",
                "throttled",
                "server_error",
                "api_error",
                "transport",
                "flip_guard",
                "missing_metadata"
            ]
        );
    }

    #[test]
    fn labels_are_bounded() {
        for code in [400, 403, 404, 409, 422, 429, 500, 503] {
            assert!(
                [
                    "api_error",
                    "forbidden",
                    "not_found",
                    "conflict",
                    "invalid",
                    "throttled",
                    "server_error"
                ]
                .contains(&api(code).metric_label())
            );
        }
    }
}
