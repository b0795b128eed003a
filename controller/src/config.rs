//! Command-line flags and their environment variables.
//!
//! Every flag can also come from the environment so that the Helm chart can set it with
//! `env:` and the downward API (pod name and namespace) without templating arguments.

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use clap::{Parser, ValueEnum};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    #[default]
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Configuration of the controller process.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "bluegreen-controller",
    version,
    about = "Blue-green release controller"
)]
pub struct Config {
    /// Watch only this namespace; empty or unset watches all namespaces.
    /// Kept as given; read it through [`Config::watch_namespace`], which maps empty to `None`.
    #[arg(long, env = "BLUEGREEN_NAMESPACE", default_value = "")]
    pub namespace: String,

    /// How many releases are reconciled at the same time.
    #[arg(long, env = "BLUEGREEN_CONCURRENCY", default_value = "16")]
    pub concurrency: NonZeroUsize,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "BLUEGREEN_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Log filter in `tracing` EnvFilter syntax (e.g. `info,bluegreen_controller=debug`);
    /// RUST_LOG, when set, takes precedence.
    #[arg(long, env = "BLUEGREEN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log output format.
    #[arg(long, env = "BLUEGREEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Reconcile only while holding the Lease; required when running more than one replica.
    #[arg(
        long,
        env = "BLUEGREEN_LEADER_ELECTION",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub leader_election: bool,

    /// Name of the Lease used for leader election.
    #[arg(
        long,
        env = "BLUEGREEN_LEASE_NAME",
        default_value = "bluegreen-controller"
    )]
    pub lease_name: String,

    /// Namespace of the Lease; in a pod, its own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// This replica's identity as a Lease holder; in a pod, its own name.
    #[arg(long, env = "POD_NAME", default_value_t = default_identity())]
    pub identity: String,

    /// Prometheus for analysis (`http://prometheus.monitoring:9090`), used by releases whose
    /// `spec.analysis.prometheus.address` is unset; empty: none.
    #[arg(long, env = "BLUEGREEN_PROMETHEUS_ADDRESS", default_value = "")]
    pub prometheus_address: String,
}

impl Config {
    /// The namespace to watch, or `None` for all namespaces.
    pub fn watch_namespace(&self) -> Option<&str> {
        Some(self.namespace.trim()).filter(|namespace| !namespace.is_empty())
    }
}

/// Outside a pod (no POD_NAME): the host name, which is the pod name in a pod anyway, or a
/// random id so that two local replicas never claim to be the same Lease holder.
fn default_identity() -> String {
    hostname().unwrap_or_else(random_identity)
}

fn hostname() -> Option<String> {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_kernel = || std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    from_env
        .or_else(from_kernel)
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

fn random_identity() -> String {
    format!("bluegreen-controller-{}", uuid::Uuid::new_v4().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The environment is process-wide and tests run in parallel, so tests pass every flag
    // they assert on and rely on env only where no other test touches that variable.

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("bluegreen-controller").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_chart_and_design() {
        let config = parse(&[]).expect("no flags is valid");
        let values: serde_json::Value = serde_saphyr::from_str(include_str!(
            "../../charts/bluegreen-controller/values.yaml"
        ))
        .expect("the chart's values.yaml parses");
        // Only the flags whose variables the test environment cannot have set.
        assert_eq!(
            config.concurrency.get() as u64,
            values["concurrency"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(config.metrics_addr.port()),
            values["metrics"]["port"].as_u64().unwrap()
        );
        assert!(config.metrics_addr.ip().is_unspecified());
        assert_eq!(config.log_level, values["logLevel"].as_str().unwrap());
        let format = LogFormat::from_str(values["logFormat"].as_str().unwrap(), false).unwrap();
        assert_eq!(config.log_format, format);
        assert_eq!(
            config.leader_election,
            values["leaderElection"]["enabled"].as_bool().unwrap()
        );
        // The chart passes its full name when `leaderElection.leaseName` is empty; the
        // binary's own default is that full name for a release named like the chart.
        assert_eq!(values["leaderElection"]["leaseName"], "");
        assert_eq!(config.lease_name, "bluegreen-controller");
        assert_eq!(config.prometheus_address, values["prometheus"]["address"]);
        assert!(!config.identity.is_empty());
    }

    #[test]
    fn every_flag_parses() {
        let config = parse(&[
            "--namespace",
            "shop",
            "--concurrency",
            "4",
            "--metrics-addr",
            "127.0.0.1:9090",
            "--log-level",
            "debug,kube=info",
            "--log-format",
            "text",
            "--leader-election",
            "--lease-name",
            "bg-lease",
            "--lease-namespace",
            "ops",
            "--identity",
            "pod-1",
        ])
        .expect("valid flags");
        assert_eq!(config.watch_namespace(), Some("shop"));
        assert_eq!(config.concurrency.get(), 4);
        assert_eq!(config.metrics_addr, "127.0.0.1:9090".parse().unwrap());
        assert_eq!(config.log_level, "debug,kube=info");
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.leader_election);
        assert_eq!(config.lease_name, "bg-lease");
        assert_eq!(config.lease_namespace, "ops");
        assert_eq!(config.identity, "pod-1");
    }

    #[test]
    fn empty_namespace_means_all_namespaces() {
        let config = parse(&["--namespace", ""]).unwrap();
        assert_eq!(config.watch_namespace(), None);
        let config = parse(&["--namespace", "  "]).unwrap();
        assert_eq!(config.watch_namespace(), None);
    }

    #[test]
    fn leader_election_takes_an_explicit_value_as_from_env() {
        // The chart sets BLUEGREEN_LEADER_ELECTION=true/false; the flag form must accept both.
        assert!(parse(&["--leader-election=true"]).unwrap().leader_election);
        assert!(!parse(&["--leader-election=false"]).unwrap().leader_election);
    }

    #[test]
    fn concurrency_must_be_at_least_one() {
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--concurrency", "-3"]).is_err());
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(parse(&["--metrics-addr", "not-an-address"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
        assert!(parse(&["--no-such-flag"]).is_err());
    }

    #[test]
    fn random_identities_differ() {
        assert_ne!(random_identity(), random_identity());
    }
}
