//! Every way a command can fail, each with a one-line message that says what is wrong and
//! what to do, and the exit code a script can branch on.

use crate::exit::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no kubeconfig found: KUBECONFIG is not set and {path} does not exist; pass --kubeconfig PATH or set KUBECONFIG"
    )]
    NoKubeconfig { path: String },

    #[error("cannot use kubeconfig {source_desc}: {message}")]
    Kubeconfig {
        source_desc: String,
        message: String,
    },

    #[error(
        "cannot reach the cluster at {server} (context {context}): {reason}; check that it is up, or pick another with --context or --kubeconfig"
    )]
    Unreachable {
        server: String,
        context: String,
        reason: String,
    },

    #[error(
        "forbidden: you may not {verb} {resource} in namespace {namespace}; ask a cluster admin for a Role that grants '{verb}' on '{resource}' (the API server said: {message})"
    )]
    Forbidden {
        verb: String,
        resource: String,
        namespace: String,
        message: String,
    },

    #[error("release {name} not found in namespace {namespace}{hint}")]
    ReleaseNotFound {
        name: String,
        namespace: String,
        hint: String,
    },

    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound {
        kind: String,
        name: String,
        namespace: String,
    },

    #[error("the API server refused to {verb} {resource} ({code}): {message}")]
    Api {
        verb: String,
        resource: String,
        code: u16,
        message: String,
    },

    #[error("{verb} refused by the controller: {reason} (nothing was changed)")]
    Refused { verb: String, reason: String },

    #[error(
        "the spec of {name} changed while the {verb} was being sent, so it could act on another revision than the one shown; nothing was done. Run `kubectl bluegreen status {name}` and ask again"
    )]
    SpecRaced { name: String, verb: String },

    #[error(
        "an earlier {verb} (id {id}) on {name} is still waiting for the controller; nothing was done. Wait for it (`kubectl bluegreen status {name}`), then ask again"
    )]
    ActionPending {
        name: String,
        verb: String,
        id: String,
    },

    #[error(
        "the controller did not answer the {verb} (id {id}) within {after}; the request stays on {name} and is carried out once bluegreen-controller runs (is it up? `kubectl get pods -A -l app.kubernetes.io/name=bluegreen-controller`)"
    )]
    NoAnswer {
        name: String,
        verb: String,
        id: String,
        after: String,
    },

    #[error("timed out after {after} waiting for {name} to be Ready; it is {state}")]
    WatchTimeout {
        name: String,
        after: String,
        state: String,
    },

    #[error("release {name} was deleted while it was watched")]
    Deleted { name: String },

    #[error("cannot convert {target}: {reason}")]
    Convert { target: String, reason: String },

    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),

    #[error("cannot encode the output as {format}: {message}")]
    Encode {
        format: &'static str,
        message: String,
    },
}

impl CliError {
    /// The process exit code for this error (see [`ExitCode`]).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::ReleaseNotFound { .. }
            | CliError::NotFound { .. }
            | CliError::Deleted { .. } => ExitCode::NotFound,
            CliError::WatchTimeout { .. } | CliError::NoAnswer { .. } => ExitCode::Timeout,
            _ => ExitCode::Failure,
        }
    }
}
