//! Logging: a `tracing` subscriber writing JSON (for log pipelines) or text (for a terminal).
//!
//! JSON lines carry the event's fields at the top level and the fields of the enclosing spans
//! (`release`, `namespace`, `revision` from the reconciler's `#[instrument]` spans), so one log
//! query finds everything that happened to one release.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use crate::config::LogFormat;

/// The standard variable that, when set, replaces the configured level entirely: the usual
/// escape hatch when debugging one module.
const RUST_LOG: &str = "RUST_LOG";

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {directives:?} from {origin}: {reason}")]
    InvalidFilter {
        origin: &'static str,
        directives: String,
        reason: String,
    },
    #[error("a global logger was already installed")]
    AlreadyInitialised(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process-wide subscriber. `level` is an EnvFilter directive list such as
/// `info` or `info,bluegreen_controller=debug`; `RUST_LOG`, when set, overrides it.
pub fn init(level: &str, format: LogFormat) -> Result<(), TelemetryError> {
    let rust_log = std::env::var(RUST_LOG).ok();
    let filter = filter(level, rust_log.as_deref())?;
    let ansi = std::io::stdout().is_terminal();
    tracing_subscriber::registry()
        .with(output_layer(format, std::io::stdout, ansi).with_filter(filter))
        .try_init()
        .map_err(TelemetryError::AlreadyInitialised)
}

/// The filter for `level`, unless `rust_log` is set and non-empty.
fn filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    match rust_log.map(str::trim).filter(|value| !value.is_empty()) {
        // RUST_LOG keeps its usual, lenient meaning (a bare word is a target).
        Some(rust_log) => parse(RUST_LOG, rust_log),
        None => {
            check_bare_directives_are_levels(level)?;
            parse("--log-level", level)
        }
    }
}

fn parse(origin: &'static str, directives: &str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::builder()
        .parse(directives)
        .map_err(|error| TelemetryError::InvalidFilter {
            origin,
            directives: directives.to_owned(),
            reason: error.to_string(),
        })
}

/// EnvFilter reads a bare word as a *target* name, so `--log-level verbose` would silently log
/// nothing but a non-existent module. For the flag, a directive without `=` must be a level;
/// enabling one module takes `module=level`.
fn check_bare_directives_are_levels(level: &str) -> Result<(), TelemetryError> {
    let invalid = |reason: String| TelemetryError::InvalidFilter {
        origin: "--log-level",
        directives: level.to_owned(),
        reason,
    };
    if level.trim().is_empty() {
        return Err(invalid(
            "it is empty; use one of trace, debug, info, warn, error, off".into(),
        ));
    }
    for directive in level.split(',').map(str::trim) {
        let is_bare = !directive.is_empty() && !directive.contains(['=', '[']);
        if is_bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "{directive:?} is not a level; use one of {} or target=level",
                LEVELS.join(", ")
            )));
        }
    }
    Ok(())
}

/// The formatting layer for `format`, writing to `writer` (stdout in production, a buffer in
/// tests).
fn output_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            // `span` holds the innermost span's fields; `spans` keeps the outer ones (the
            // reconcile span with the release) visible inside nested helper spans too.
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn level_strings_become_filters() {
        for level in [
            "info",
            "debug",
            "WARN",
            "info,kube=warn",
            "off",
            "bluegreen_controller=trace",
        ] {
            assert!(filter(level, None).is_ok(), "{level}");
        }
    }

    #[test]
    fn an_invalid_level_is_a_clear_error() {
        let error = filter("verbose", None).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("\"verbose\" is not a level"), "{message}");
        assert!(message.contains("--log-level"), "{message}");

        let error = filter("kube=loud", None).unwrap_err().to_string();
        assert!(error.contains("kube=loud"), "{error}");

        assert!(filter("", None).is_err());
    }

    #[test]
    fn rust_log_overrides_the_level_and_is_checked_too() {
        // An invalid level is ignored when RUST_LOG replaces it.
        assert!(filter("verbose", Some("debug")).is_ok());
        // An empty RUST_LOG is treated as unset.
        assert!(filter("verbose", Some("  ")).is_err());
        let error = filter("info", Some("kube=loud")).unwrap_err().to_string();
        assert!(error.contains("RUST_LOG"), "{error}");
    }

    /// Collects everything the layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_inside_reconcile_span(format: LogFormat) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(output_layer(
            format,
            move || writer.clone(),
            false,
        ));
        tracing::subscriber::with_default(subscriber, || {
            let reconcile = tracing::info_span!(
                "reconcile",
                release = "shop",
                namespace = "prod",
                revision = "abc123"
            );
            let _reconcile = reconcile.enter();
            let helper = tracing::info_span!("apply");
            let _helper = helper.enter();
            tracing::info!(color = "green", "flipped active service");
        });
        captured.text()
    }

    #[test]
    fn json_lines_carry_event_and_span_fields() {
        let output = log_inside_reconcile_span(LogFormat::Json);
        let line: serde_json::Value =
            serde_json::from_str(output.lines().next().expect("one line")).expect("JSON");
        // Event fields are flattened to the top level.
        assert_eq!(line["message"], "flipped active service");
        assert_eq!(line["color"], "green");
        assert_eq!(line["level"], "INFO");
        // The release fields of the outer span survive a nested span.
        let reconcile = &line["spans"][0];
        assert_eq!(reconcile["name"], "reconcile");
        assert_eq!(reconcile["release"], "shop");
        assert_eq!(reconcile["namespace"], "prod");
        assert_eq!(reconcile["revision"], "abc123");
        assert_eq!(line["span"]["name"], "apply");
    }

    #[test]
    fn text_lines_are_readable() {
        let output = log_inside_reconcile_span(LogFormat::Text);
        assert!(output.contains("flipped active service"), "{output}");
        assert!(output.contains("release=\"shop\""), "{output}");
        let line = output.lines().next().expect("one line");
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_err(),
            "{line}"
        );
    }
}
