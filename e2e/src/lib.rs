//! Harness for scenario tests: a cluster (in-process kubesim, or the cluster in $KUBECONFIG
//! when `BLUEGREEN_E2E_CLUSTER=1`), the unmodified controller binary, and real `kubectl`.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use kube::{Client, Config, config::Kubeconfig};

pub mod audit;
pub mod fixture;
pub mod prometheus;

/// The repository root (this crate lives in `<root>/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e has a parent")
        .to_path_buf()
}

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "{what} not found at {path}: run `make tools` (kubectl) or `cargo build --bins` (controller) first"
    )]
    Missing { what: &'static str, path: String },
    #[error("`kubectl {args}` failed ({status}): {stderr}")]
    Kubectl {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("kubesim: {0}")]
    Kubesim(#[from] kubesim::ServerError),
    #[error("kube client: {0}")]
    Client(String),
    #[error("timed out after {secs}s waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
}

/// Where the cluster comes from.
enum Backend {
    Sim {
        server: kubesim::Server,
        runtime: Option<tokio::runtime::Runtime>,
    },
    Real,
}

/// A cluster for one test, with its own scratch directory and namespace.
pub struct Env {
    backend: Backend,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub client: Client,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Env {
    /// Starts kubesim (or uses $KUBECONFIG with `BLUEGREEN_E2E_CLUSTER=1`) and installs the CRD.
    pub async fn start(test: &str) -> Result<Env, HarnessError> {
        let env = Self::start_without_crd(test).await?;
        env.install_crd()?;
        Ok(env)
    }

    fn install_crd(&self) -> Result<(), HarnessError> {
        self.kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &crd_path().display().to_string(),
        ])?;
        // A real API server serves a new CRD's resources only once it is Established.
        self.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/bluegreenreleases.bluegreen.dev",
        ])?;
        Ok(())
    }

    /// Like [`Env::start`], but the CRD is not installed.
    pub async fn start_without_crd(test: &str) -> Result<Env, HarnessError> {
        let real = std::env::var("BLUEGREEN_E2E_CLUSTER").is_ok_and(|v| v == "1");
        Self::start_on(test, real).await
    }

    /// A kubesim of the test's own with the CRD installed, whatever the suite's backend: for
    /// comparing kubesim's answers with the real API server's.
    pub async fn start_on_kubesim(test: &str) -> Result<Env, HarnessError> {
        let env = Self::start_on(test, false).await?;
        env.install_crd()?;
        Ok(env)
    }

    async fn start_on(test: &str, real: bool) -> Result<Env, HarnessError> {
        let unique = format!(
            "{}-{}-{}",
            test,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("bluegreen-e2e-{unique}"));
        std::fs::create_dir_all(&dir)?;
        let (backend, kubeconfig, namespace) = if real {
            let path = std::env::var("KUBECONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|_| home_kubeconfig());
            (
                Backend::Real,
                path,
                format!("bg-e2e-{}", unique.replace('_', "-")),
            )
        } else {
            // kubesim gets a runtime of its own: a test that blocks its thread (kubectl is a
            // blocking child process) must never starve the API server it is talking to.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kubesim")
                .enable_all()
                .build()?;
            let server = runtime
                .spawn(kubesim::Server::start())
                .await
                .map_err(|e| HarnessError::Client(e.to_string()))??;
            let path = dir.join("kubeconfig");
            server.write_kubeconfig(&path)?;
            (
                Backend::Sim {
                    server,
                    runtime: Some(runtime),
                },
                path,
                "default".to_string(),
            )
        };
        let yaml = std::fs::read_to_string(&kubeconfig)?;
        let kc = Kubeconfig::from_yaml(&yaml).map_err(|e| HarnessError::Client(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| HarnessError::Client(e.to_string()))?;
        let client = Client::try_from(config).map_err(|e| HarnessError::Client(e.to_string()))?;
        let env = Env {
            backend,
            dir,
            kubeconfig,
            namespace,
            client,
        };
        if real {
            env.kubectl(&["create", "namespace", &env.namespace])?;
        }
        Ok(env)
    }

    /// kubesim, for what only it can do (inject faults, run without the CRD); on the real
    /// control plane the scenario says so and ends here. Marked at each use, so what is
    /// not proven on a real API server stays visible.
    pub fn kubesim_only(&self, why: &str) -> Option<&kubesim::Server> {
        let sim = self.kubesim();
        if sim.is_none() {
            eprintln!("kubesim only ({why}): not run on this cluster");
        }
        sim
    }

    /// The in-process kubesim, when the test runs on it.
    pub fn kubesim(&self) -> Option<&kubesim::Server> {
        match &self.backend {
            Backend::Sim { server, .. } => Some(server),
            Backend::Real => None,
        }
    }

    /// The kubeconfig the controller runs with: on the upstream control plane of
    /// `make e2e-kube`, a token of the chart's ServiceAccount
    /// (`BLUEGREEN_CONTROLLER_KUBECONFIG`), so RBAC is enforced by a real authorizer;
    /// otherwise the test's own.
    pub fn controller_kubeconfig(&self) -> PathBuf {
        match (
            &self.backend,
            std::env::var("BLUEGREEN_CONTROLLER_KUBECONFIG"),
        ) {
            (Backend::Real, Ok(path)) => PathBuf::from(path),
            _ => self.kubeconfig.clone(),
        }
    }

    /// The namespace the controller runs in (`POD_NAMESPACE`: where its Lease lives): the
    /// chart's on the upstream control plane (`BLUEGREEN_CONTROLLER_NAMESPACE`).
    pub fn controller_namespace(&self) -> String {
        match (
            &self.backend,
            std::env::var("BLUEGREEN_CONTROLLER_NAMESPACE"),
        ) {
            (Backend::Real, Ok(ns)) => ns,
            _ => "default".to_string(),
        }
    }

    /// The real API server's audit log (`BLUEGREEN_KUBE_AUDIT_LOG`, set by `make e2e-kube`).
    fn audit_log(&self) -> PathBuf {
        std::env::var("BLUEGREEN_KUBE_AUDIT_LOG")
            .map(PathBuf::from)
            .expect("on a real cluster the request log is its audit log: set BLUEGREEN_KUBE_AUDIT_LOG (make e2e-kube does)")
    }

    /// Every request the cluster served about this test's namespace (all of kubesim's).
    pub fn audit(&self) -> Vec<kubesim::AuditEntry> {
        self.audit_since(0)
    }

    /// Where the next request will appear in [`Env::audit_since`].
    pub fn audit_next_seq(&self) -> u64 {
        match &self.backend {
            Backend::Sim { server, .. } => server.audit_next_seq(),
            Backend::Real => audit::log_len(&self.audit_log()).expect("the audit log"),
        }
    }

    /// The requests served since `since` (from [`Env::audit_next_seq`]).
    pub fn audit_since(&self, since: u64) -> Vec<kubesim::AuditEntry> {
        match &self.backend {
            Backend::Sim { server, .. } => server.audit_since(since),
            Backend::Real => audit::read_log(&self.audit_log(), &self.namespace)
                .expect("the audit log")
                .into_iter()
                .filter(|e| e.seq >= since)
                .collect(),
        }
    }

    /// Runs kubectl against this cluster in the test's namespace; stdout on success.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, HarnessError> {
        self.kubectl_with_stdin(args, None)
    }

    pub fn kubectl_with_stdin(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, HarnessError> {
        self.kubectl_program(&kubectl_path()?, args, stdin)
    }

    /// Runs the kubectl binary at `program` (another version) like [`Env::kubectl`].
    pub fn kubectl_program(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, HarnessError> {
        let mut command = Command::new(program);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn()?;
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        if !output.status.success() {
            return Err(HarnessError::Kubectl {
                args: args.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts the controller binary against this cluster, watching the test's namespace.
    pub fn start_controller(&self) -> Result<ControllerProcess, HarnessError> {
        ControllerProcess::spawn(self, &[])
    }

    /// Starts the controller binary with extra environment variables (flags).
    pub fn start_controller_with(
        &self,
        env: &[(&str, &str)],
    ) -> Result<ControllerProcess, HarnessError> {
        ControllerProcess::spawn(self, env)
    }

    /// Starts the controller as `program args...` instead of the built binary: the binary
    /// taken out of the release image, or a container runtime running that image. The
    /// program gets the same environment as [`Env::start_controller`] gives the binary.
    pub fn start_controller_command(
        &self,
        program: &Path,
        args: &[&str],
    ) -> Result<ControllerProcess, HarnessError> {
        ControllerProcess::spawn_command(self, program, args, &[])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        match &mut self.backend {
            Backend::Real => {
                let _ = self.kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
            }
            // Dropped from inside the test's runtime: a runtime may only be shut down in
            // the background there.
            Backend::Sim { runtime, .. } => {
                if let Some(runtime) = runtime.take() {
                    runtime.shutdown_background();
                }
            }
        }
    }
}

fn home_kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".kube/config")
}

/// The project's generated CRD.
pub fn crd_path() -> PathBuf {
    repo_root().join("charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml")
}

/// kubectl 1.32, the oldest client the project supports, built from its Go modules on first
/// use (`scripts/kube.sh old-kubectl`, cached outside the clone).
pub fn old_kubectl_path() -> Result<PathBuf, HarnessError> {
    let output = Command::new(repo_root().join("scripts/kube.sh"))
        .arg("old-kubectl")
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(HarnessError::Missing {
            what: "kubectl 1.32 (scripts/kube.sh old-kubectl failed; it needs Go)",
            path: "~/.cache/bluegreen".into(),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// kubectl 1.37 from the PyPI wheel (`make tools`), or `BLUEGREEN_KUBECTL`.
pub fn kubectl_path() -> Result<PathBuf, HarnessError> {
    let path = std::env::var("BLUEGREEN_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".tools/py/bin/kubectl"));
    if path.exists() {
        Ok(path)
    } else {
        Err(HarnessError::Missing {
            what: "kubectl",
            path: path.display().to_string(),
        })
    }
}

/// The controller binary (`cargo build --bins`), or `BLUEGREEN_CONTROLLER_BIN`.
pub fn controller_path() -> Result<PathBuf, HarnessError> {
    let path = std::env::var("BLUEGREEN_CONTROLLER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| repo_root().join("target"));
            target.join("debug/bluegreen-controller")
        });
    if path.exists() {
        Ok(path)
    } else {
        Err(HarnessError::Missing {
            what: "bluegreen-controller binary",
            path: path.display().to_string(),
        })
    }
}

/// The controller binary running as a child process; SIGTERM on drop.
pub struct ControllerProcess {
    child: Child,
    pub log: PathBuf,
}

impl ControllerProcess {
    fn spawn(env: &Env, extra: &[(&str, &str)]) -> Result<Self, HarnessError> {
        Self::spawn_command(env, &controller_path()?, &[], extra)
    }

    fn spawn_command(
        env: &Env,
        program: &Path,
        args: &[&str],
        extra: &[(&str, &str)],
    ) -> Result<Self, HarnessError> {
        let log = env.dir.join(format!(
            "controller-{}.log",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(program)
            .args(args)
            .env("KUBECONFIG", env.controller_kubeconfig())
            .env("POD_NAMESPACE", env.controller_namespace())
            .env("BLUEGREEN_NAMESPACE", &env.namespace)
            .env("BLUEGREEN_METRICS_ADDR", "127.0.0.1:0")
            .env("BLUEGREEN_LOG_LEVEL", "info")
            .env("BLUEGREEN_LOG_FORMAT", "json")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()?;
        Ok(ControllerProcess { child, log })
    }

    /// Stops the controller with SIGTERM (graceful) and waits for it.
    pub fn stop(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait()
    }

    /// Kills the controller without warning (a crash).
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The address of the controller's metrics and probe server, from its start-up log.
    pub fn metrics_addr(&self, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let addr = self
                .log_text()
                .lines()
                .find(|l| l.contains("serving /metrics"))
                .and_then(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).ok()?;
                    value.get("addr")?.as_str().map(str::to_string)
                });
            if addr.is_some() {
                return addr;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop();
        }
    }
}

/// A plain HTTP GET on loopback: (status code, body). For the controller's probes and metrics.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Polls `probe` until it returns `Ok(Some(value))`, failing after `timeout`. The probe's
/// `Ok(None)`/`Err` text is kept to explain a timeout.
pub async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if start.elapsed() > timeout {
            return Err(HarnessError::Timeout {
                what: what.into(),
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
