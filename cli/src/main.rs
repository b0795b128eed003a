//! The `kubectl-bluegreen` binary.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    kubectl_bluegreen::run(std::env::args_os()).await.into()
}
