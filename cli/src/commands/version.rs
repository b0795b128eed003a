//! `version` and `completion SHELL`: no cluster needed.

use clap::CommandFactory;
use serde::Serialize;

use crate::{
    args::{Cli, CompletionArgs, VersionArgs},
    error::CliError,
    exit::ExitCode,
    output,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Version {
    plugin: &'static str,
    version: &'static str,
    api_version: &'static str,
}

const VERSION: Version = Version {
    plugin: "kubectl-bluegreen",
    version: env!("CARGO_PKG_VERSION"),
    api_version: "bluegreen.dev/v1alpha1",
};

pub fn version(args: &VersionArgs) -> Result<ExitCode, CliError> {
    match args.output {
        Some(format) => output::print(&output::encode(&VERSION, format)?),
        None => println!(
            "{} {} (API {})",
            VERSION.plugin, VERSION.version, VERSION.api_version
        ),
    }
    Ok(ExitCode::Success)
}

pub fn completion(args: &CompletionArgs) -> Result<ExitCode, CliError> {
    let mut command = Cli::command();
    clap_complete::generate(
        args.shell,
        &mut command,
        "kubectl-bluegreen",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::Success)
}
