//! `kubectl bluegreen`: the kubectl plugin for BlueGreenReleases. kubectl finds the binary
//! `kubectl-bluegreen` on PATH and hands it every argument after `bluegreen`.

pub mod args;
pub mod cluster;
pub mod commands;
pub mod duration;
pub mod error;
pub mod exit;
pub mod output;
pub mod release;
pub mod spinner;
pub mod view;

use std::ffi::OsString;

use clap::Parser;

use crate::{
    args::{Cli, Command},
    cluster::Cluster,
    commands::plan::Verb,
    error::CliError,
    exit::ExitCode,
};

/// Parses `args`, runs the command, prints any error as one line on stderr.
pub async fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Success
            };
        }
    };
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{} {e}", output::error_prefix());
            e.exit_code()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    use commands::*;
    let cluster = match &cli.command {
        Command::Version(a) => return version::version(a),
        Command::Completion(a) => return version::completion(a),
        _ => Cluster::connect(&cli.global).await?,
    };
    match &cli.command {
        Command::Status(a) => status::run(&cluster, a).await,
        Command::List(a) => list::run(&cluster, a).await,
        Command::Promote(a) => action::run(&cluster, Verb::Promote, a).await,
        Command::Abort(a) => action::run(&cluster, Verb::Abort, a).await,
        Command::Retry(a) => action::run(&cluster, Verb::Retry, a).await,
        Command::Rollback(a) => action::run(&cluster, Verb::Rollback, a).await,
        Command::History(a) => history::run(&cluster, a).await,
        Command::Convert(a) => convert::run(&cluster, a).await,
        Command::Version(_) | Command::Completion(_) => unreachable!("answered above"),
    }
}
