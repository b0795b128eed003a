//! The command line: subcommands and the kubectl flags every command shares.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::duration;

/// Watch, promote, abort, retry, roll back and audit BlueGreenReleases.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-bluegreen",
    bin_name = "kubectl bluegreen",
    version,
    about,
    after_help = "Exit codes: 0 success (status --watch: Ready), 1 failure (Failed, RolledBack, Stalled, refused, forbidden, unreachable), 2 timeout, 3 not found, 64 usage."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The kubectl flags, accepted before or after the subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Namespace of the release (default: the kubeconfig context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig context to use (default: current-context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG, which may list several files, or ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a release: colors, phase, progress, smoke tests, conditions, last Events.
    Status(StatusArgs),
    /// List releases with their printer columns and the age of their last flip.
    List(ListArgs),
    /// Flip traffic to the color awaiting promotion (promotion.mode Manual).
    Promote(ActionArgs),
    /// Stop the rollout in flight before its flip; the active color is untouched.
    Abort(ActionArgs),
    /// Deploy again a revision that failed, was aborted or was rolled back from.
    Retry(ActionArgs),
    /// Flip traffic back to the warm previous color.
    Rollback(ActionArgs),
    /// The audit trail from status.history, newest first.
    History(HistoryArgs),
    /// Print a BlueGreenRelease equivalent to a Deployment, and how to move over.
    Convert(ConvertArgs),
    /// Print the plugin's version.
    Version(VersionArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// `-o json|yaml` of the read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Name of the BlueGreenRelease.
    pub name: String,
    /// Redraw on every change; exit 0 when Ready, 1 when Failed/RolledBack/Stalled, 2 on timeout.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How long --watch waits (e.g. 90s, 10m, 1h30m); no limit by default.
    #[arg(long, value_parser = duration::parse, requires = "watch")]
    pub timeout: Option<Duration>,
    /// Output format (default: a readable view).
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List releases in every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// Name of the BlueGreenRelease.
    pub name: String,
    /// Send the request and return without waiting for the controller's answer.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for the controller's answer.
    #[arg(long, value_parser = duration::parse, default_value = "2m")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Name of the BlueGreenRelease.
    pub name: String,
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The Deployment to convert, as deployment/NAME.
    pub target: String,
    /// The Service in front of it, when more than one selects its pods.
    #[arg(long)]
    pub service: Option<String>,
    /// Print only the manifest, as JSON or YAML (default: YAML with the steps as comments).
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh or fish (also elvish, powershell).
    pub shell: Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubectl_flags_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-bluegreen",
            "-n",
            "shop",
            "status",
            "web",
            "--context",
            "prod",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
    }

    #[test]
    fn timeout_needs_watch() {
        assert!(
            Cli::try_parse_from(["kubectl-bluegreen", "status", "web", "--timeout", "1m"]).is_err()
        );
    }
}
