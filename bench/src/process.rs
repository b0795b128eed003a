//! Binaries under measurement as child processes: the controller (real binary, pointed at
//! kubesim through a kubeconfig file) and `kubesim serve`. Memory comes from
//! `/proc/<pid>/status`; the controller's figures from its own `/metrics` and `/readyz`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BenchResult;
use super::lab::wait_for;

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: peak resident since the process started.
    pub hwm_kib: u64,
}

impl Memory {
    pub fn of(pid: u32) -> BenchResult<Memory> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |key: &str| -> u64 {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"vm_rss_kib": self.rss_kib, "vm_hwm_kib": self.hwm_kib})
    }
}

/// CPU time a process has used so far (user + system, all threads), from
/// `/proc/<pid>/stat`. Differences of two readings say which side of a measurement did
/// the work: the controller, or the bench process that hosts kubesim.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime(Duration);

/// `/proc/<pid>/stat` counts in USER_HZ, which the Linux ABI fixes at 100.
const USER_HZ: u64 = 100;

impl CpuTime {
    pub fn of(pid: u32) -> BenchResult<CpuTime> {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        // Fields after the parenthesised command name (which may hold spaces): state is
        // field 3, utime 14 and stime 15 of the whole line.
        let after_comm = text
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .ok_or_else(|| format!("{path}: no command name"))?;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |i: usize| -> BenchResult<u64> {
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{path}: field {} unreadable", i + 3))
        };
        let total = ticks(11)? + ticks(12)?;
        Ok(CpuTime(Duration::from_millis(total * 1000 / USER_HZ)))
    }

    pub fn of_self() -> BenchResult<CpuTime> {
        CpuTime::of(std::process::id())
    }

    pub fn since(self, earlier: CpuTime) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> BenchResult<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `GET http://127.0.0.1:{port}{path}` → (status, body). HTTP/1.1, one connection.
pub async fn http_get(port: u16, path: &str) -> BenchResult<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad HTTP response: {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Sum of the samples of `metric` whose label set contains `labels` (e.g. `result="ok"`).
pub fn metric_sum(text: &str, metric: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let name_end = l.find(['{', ' ']).unwrap_or(l.len());
            &l[..name_end] == metric && (labels.is_empty() || l.contains(labels))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The controller binary as a child process. Killed (SIGKILL) on drop.
pub struct Controller {
    child: Child,
    pub metrics_port: u16,
    pub log: PathBuf,
    pub started: Instant,
}

impl Controller {
    /// Starts `bin` watching `namespace` of the cluster in `kubeconfig`.
    pub fn spawn(
        bin: &Path,
        kubeconfig: &Path,
        namespace: &str,
        concurrency: usize,
        log_level: &str,
        log: PathBuf,
    ) -> BenchResult<Controller> {
        if !bin.exists() {
            return Err(format!(
                "{} not found: run `cargo build --release --bins` (make bench does)",
                bin.display()
            ));
        }
        let metrics_port = free_port()?;
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let child = Command::new(bin)
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .env("BLUEGREEN_NAMESPACE", namespace)
            .env("BLUEGREEN_CONCURRENCY", concurrency.to_string())
            .env(
                "BLUEGREEN_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("BLUEGREEN_LOG_LEVEL", log_level)
            .env("BLUEGREEN_LOG_FORMAT", "json")
            .env("POD_NAME", "bluegreen-bench")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        Ok(Controller {
            child,
            metrics_port,
            log,
            started,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory(&self) -> BenchResult<Memory> {
        Memory::of(self.pid())
    }

    /// Fails if the process has exited (with the tail of its log).
    pub fn check_alive(&mut self) -> BenchResult<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                Err(format!(
                    "the controller exited ({status}); log {}: {}",
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits for `/readyz` to answer 200; returns the time since spawn.
    pub async fn wait_ready(&mut self, timeout: Duration) -> BenchResult<Duration> {
        self.wait_probe("/readyz", timeout).await
    }

    /// Waits for `/healthz` to answer 200 (the process serves); returns the time since spawn.
    pub async fn wait_serving(&mut self, timeout: Duration) -> BenchResult<Duration> {
        self.wait_probe("/healthz", timeout).await
    }

    async fn wait_probe(
        &mut self,
        probe: &'static str,
        timeout: Duration,
    ) -> BenchResult<Duration> {
        let port = self.metrics_port;
        wait_for(
            &format!("the controller's {probe}"),
            timeout,
            Duration::from_millis(10),
            || async move {
                match http_get(port, probe).await {
                    Ok((200, _)) => Ok(()),
                    Ok((code, _)) => Err(format!("{probe} answered {code}")),
                    Err(e) => Err(e),
                }
            },
        )
        .await
        .map_err(|e| match self.check_alive() {
            Err(dead) => dead,
            Ok(()) => e,
        })?;
        Ok(self.started.elapsed())
    }

    pub async fn metrics(&self) -> BenchResult<String> {
        match http_get(self.metrics_port, "/metrics").await? {
            (200, body) => Ok(body),
            (code, _) => Err(format!("/metrics answered {code}")),
        }
    }

    /// `bluegreen_reconcile_total` (all results).
    pub async fn reconciles(&self) -> BenchResult<f64> {
        Ok(metric_sum(
            &self.metrics().await?,
            "bluegreen_reconcile_total",
            "",
        ))
    }

    /// SIGKILL, as a crash or an evicted pod.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (graceful).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// `kubesim serve` as a child process (its memory is measured alone). Killed on drop.
pub struct KubesimProcess {
    child: Child,
    pub url: String,
}

impl KubesimProcess {
    pub async fn spawn(bin: &Path, dir: &Path) -> BenchResult<KubesimProcess> {
        if !bin.exists() {
            return Err(format!(
                "{} not found: run `cargo build --release --bins` (make bench does)",
                bin.display()
            ));
        }
        let kubeconfig = dir.join("kubesim-alone.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let log =
            std::fs::File::create(dir.join("kubesim-alone.log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut process = KubesimProcess {
            child,
            url: String::new(),
        };
        let path = kubeconfig.clone();
        let yaml = wait_for(
            "kubesim serve to write its kubeconfig",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let path = path.clone();
                async move {
                    std::fs::read_to_string(&path)
                        .ok()
                        .filter(|y| y.contains("preferences:"))
                        .ok_or_else(|| "not yet".to_string())
                }
            },
        )
        .await?;
        process.url = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .map(|s| s.trim().trim_matches('"').to_string())
            .ok_or("no server in kubesim's kubeconfig")?;
        Ok(process)
    }

    pub fn memory(&self) -> BenchResult<Memory> {
        Memory::of(self.child.id())
    }
}

impl Drop for KubesimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_by_name_and_labels() {
        let text = "# HELP x\nbluegreen_reconcile_total{result=\"ok\"} 7\n\
                    bluegreen_reconcile_total{result=\"error\"} 2\n\
                    bluegreen_reconcile_total_other 100\n";
        assert_eq!(metric_sum(text, "bluegreen_reconcile_total", ""), 9.0);
        assert_eq!(
            metric_sum(text, "bluegreen_reconcile_total", "result=\"ok\""),
            7.0
        );
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
