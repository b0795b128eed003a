//! Exit codes, the contract with CI jobs (`status --watch` gates a pipeline on them).

/// What the process returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done; for `status --watch`, the release is Ready.
    Success = 0,
    /// A failure: the release Failed, was RolledBack or is Stalled; an action was refused;
    /// the cluster was unreachable or the request forbidden.
    Failure = 1,
    /// `--timeout` passed first (or the controller did not answer an action in time).
    Timeout = 2,
    /// The release (or the object to convert) does not exist.
    NotFound = 3,
    /// The command line itself is wrong (unknown flag, missing argument).
    Usage = 64,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
