//! A real Prometheus server (Debian's `prometheus`, installed by `make tools`) scraping a
//! small exporter whose per-color request and error counters the test sets, every second.
//! The analysis scenarios query it through the controller, as a cluster's Prometheus would
//! be queried.

use std::{
    collections::BTreeMap,
    net::TcpListener as StdListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{HarnessError, eventually, http_get};

/// Requests each color serves between two scrapes.
const REQUESTS_PER_SCRAPE: u64 = 100;

/// The error-rate check the scenarios gate on: 5xx over all requests of the color, over a
/// window a few scrapes long (the README's example uses `[1m]`).
pub const ERROR_RATE_QUERY: &str = r#"sum(rate(http_requests_total{code=~"5..",color="{{color}}"}[5s])) / sum(rate(http_requests_total{color="{{color}}"}[5s]))"#;

#[derive(Default)]
struct Counters {
    /// Share of each color's requests that fail (0 unless set).
    error_ratio: BTreeMap<String, f64>,
    /// (requests, errors) served so far per color.
    served: BTreeMap<String, (u64, u64)>,
}

/// The exporter: `/metrics` with `http_requests_total{color,code}`. Each scrape counts one
/// more batch of requests per color, with the color's error ratio set by the test.
pub struct Exporter {
    pub addr: String,
    counters: Arc<Mutex<Counters>>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    pub async fn start() -> std::io::Result<Exporter> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let counters = Arc::new(Mutex::new(Counters::default()));
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 2048];
                    let _ = stream.read(&mut request).await;
                    let body = scrape(&counters);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Ok(Exporter {
            addr,
            counters,
            task,
        })
    }

    /// From the next scrape on, this share of `color`'s requests fails.
    pub fn set_error_ratio(&self, color: &str, ratio: f64) {
        let mut counters = self.counters.lock().expect("counters lock");
        counters.error_ratio.insert(color.to_string(), ratio);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn scrape(counters: &Mutex<Counters>) -> String {
    let mut counters = counters.lock().expect("counters lock");
    let mut body = String::from("# TYPE http_requests_total counter\n");
    for color in ["blue", "green"] {
        let ratio = counters.error_ratio.get(color).copied().unwrap_or(0.0);
        let errors = (REQUESTS_PER_SCRAPE as f64 * ratio).round() as u64;
        let served = counters.served.entry(color.to_string()).or_default();
        served.0 += REQUESTS_PER_SCRAPE;
        served.1 += errors;
        let (requests, failed) = *served;
        body.push_str(&format!(
            "http_requests_total{{color=\"{color}\",code=\"200\"}} {}\nhttp_requests_total{{color=\"{color}\",code=\"500\"}} {failed}\n",
            requests - failed
        ));
    }
    body
}

/// A Prometheus server scraping its targets every second; killed on drop.
pub struct PrometheusServer {
    pub addr: String,
    child: Option<Child>,
    _dir: PathBuf,
}

impl PrometheusServer {
    /// Starts Prometheus scraping the exporter, and waits until the error rates read.
    pub async fn start(
        dir: PathBuf,
        exporter: &Exporter,
    ) -> Result<PrometheusServer, HarnessError> {
        let server = Self::scraping(dir, &[exporter.addr.as_str()]).await?;
        // Until the error rate of both colors reads (0 errors so far): `rate` needs two
        // scrapes in its window, and a first release verified before then would read "no
        // data" and fail.
        for color in ["blue", "green"] {
            server.wait_for_error_rate(color, 0.0).await?;
        }
        Ok(server)
    }

    /// Starts Prometheus (`$BLUEGREEN_PROMETHEUS`, else `prometheus` on PATH) under `dir`,
    /// scraping `targets` (`host:port`, path `/metrics`) every second, and waits until it
    /// answers queries.
    pub async fn scraping(
        dir: PathBuf,
        targets: &[&str],
    ) -> Result<PrometheusServer, HarnessError> {
        std::fs::create_dir_all(&dir)?;
        let port = StdListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )?;
        let program = std::env::var("BLUEGREEN_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        let child = Command::new(&program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                HarnessError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot start {program} (Debian package prometheus; `make tools` installs it): {e}"),
                ))
            })?;
        let server = PrometheusServer {
            addr: addr.clone(),
            child: Some(child),
            _dir: dir,
        };
        eventually("Prometheus answers", Duration::from_secs(60), || async {
            let (code, _) = http_get(&addr, "/-/ready")
                .await
                .map_err(|e| e.to_string())?;
            Ok((code == 200).then_some(()))
        })
        .await?;
        Ok(server)
    }

    /// The result of an instant query (`data.result`), or the error Prometheus answered.
    pub async fn query(&self, query: &str) -> Result<Vec<serde_json::Value>, String> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let (code, body) = http_get(&self.addr, &path)
            .await
            .map_err(|e| e.to_string())?;
        let answer: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{code}: {e}: {body}"))?;
        if answer["status"] != "success" {
            return Err(format!("{code}: {body}"));
        }
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Waits until `query` returns a first series whose value is at least `value`.
    pub async fn wait_for_value(&self, query: &str, value: f64) -> Result<(), HarnessError> {
        let what = format!("Prometheus reads {query} >= {value}");
        eventually(&what, Duration::from_secs(60), || async {
            let result = self.query(query).await?;
            let read = result
                .first()
                .and_then(|r| r["value"][1].as_str())
                .and_then(|v| v.parse::<f64>().ok());
            match read {
                Some(v) if v >= value => Ok(Some(())),
                other => Err(format!("read {other:?}")),
            }
        })
        .await
    }

    /// `http://…`: what a release's `spec.analysis.prometheus.address` names.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until Prometheus reads `color`'s error rate at `ratio` (the rate window has
    /// filled with the exporter's new counts).
    pub async fn wait_for_error_rate(&self, color: &str, ratio: f64) -> Result<(), HarnessError> {
        let query = ERROR_RATE_QUERY.replace("{{color}}", color);
        let path = format!("/api/v1/query?query={}", percent_encode(&query));
        eventually(
            &format!("Prometheus reads {color} at {ratio}"),
            Duration::from_secs(60),
            || async {
                let (_, body) = http_get(&self.addr, &path)
                    .await
                    .map_err(|e| e.to_string())?;
                let answer: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let value = answer["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| body.clone())?;
                // Rates are extrapolated at the window's edges: close, not exact.
                Ok(((value - ratio).abs() < 0.005).then_some(()))
            },
        )
        .await
    }

    /// Stops the server at once (an outage).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A query string value, percent-encoded (unreserved characters kept).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
