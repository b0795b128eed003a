//! The one client of Prometheus: takes a due analysis sample (every check's query once, at
//! the same moment) with a timeout, and condenses each answer into a [`Reading`].
//!
//! Anything but one finite series is inconclusive, with a reason a person can act on (no
//! data, several series, an error from Prometheus, no answer in time, no address): the
//! planner never counts it as a pass.

use std::{collections::HashMap, str::FromStr, sync::Mutex, time::Duration};

use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;
use prometheus_http_query::{Client, response::Data};

use crate::observe::{AnalysisSample, Reading, SampleRequest};

/// How long one query may take before its reading is inconclusive.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most clients kept (one per Prometheus address in use).
const MAX_CLIENTS: usize = 64;

/// Queries Prometheus for analysis samples.
pub struct Prometheus {
    /// `--prometheus-address`: for releases whose spec names none.
    default_address: Option<String>,
    timeout: Duration,
    clients: Mutex<HashMap<String, Client>>,
}

impl Prometheus {
    pub fn new(default_address: Option<String>, timeout: Duration) -> Self {
        Prometheus {
            default_address: default_address.filter(|a| !a.is_empty()),
            timeout,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn has_default(&self) -> bool {
        self.default_address.is_some()
    }

    /// Takes the sample: every check's query, concurrently, each bounded by the timeout.
    pub async fn sample(&self, request: &SampleRequest, taken_at: Timestamp) -> AnalysisSample {
        let address = request
            .address
            .as_deref()
            .or(self.default_address.as_deref());
        let client = address.map(|a| self.client(a));
        let at = taken_at.as_second();
        let readings = join_all(request.queries.iter().map(|(name, query)| {
            let client = client.clone();
            async move {
                let reading = match (client, query) {
                    (_, Err(problem)) => Reading::Inconclusive(problem.clone()),
                    (None, _) => Reading::Inconclusive(
                        "no Prometheus address: set spec.analysis.prometheus.address or the controller's --prometheus-address".into(),
                    ),
                    (Some(Err(problem)), _) => Reading::Inconclusive(problem),
                    (Some(Ok((client, address))), Ok(query)) => {
                        self.read(&client, &address, query, at).await
                    }
                };
                (name.clone(), reading)
            }
        }))
        .await;
        AnalysisSample {
            rollout: request.rollout.clone(),
            phase: request.phase,
            taken_at,
            readings,
        }
    }

    /// One query at one instant.
    async fn read(&self, client: &Client, address: &str, query: &str, at: i64) -> Reading {
        let answer = tokio::time::timeout(self.timeout, client.query(query).at(at).get()).await;
        match answer {
            Err(_) => Reading::Inconclusive(format!(
                "Prometheus at {address} did not answer within {}s",
                self.timeout.as_secs()
            )),
            Ok(Err(error)) => Reading::Inconclusive(format!("Prometheus at {address}: {error}")),
            Ok(Ok(result)) => match result.data() {
                Data::Scalar(sample) => Reading::Value(sample.value()),
                Data::Vector(series) => match series.as_slice() {
                    [] => Reading::Inconclusive("the query returned no data".into()),
                    [one] => Reading::Value(one.sample().value()),
                    many => Reading::Inconclusive(format!(
                        "the query returned {} series; it must return one (aggregate it, e.g. with sum())",
                        many.len()
                    )),
                },
                Data::Matrix(_) => Reading::Inconclusive(
                    "the query returned a range vector; it must return one value at one instant"
                        .into(),
                ),
            },
        }
    }

    fn client(&self, address: &str) -> Result<(Client, String), String> {
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(client) = clients.get(address) {
            return Ok((client.clone(), address.to_string()));
        }
        let client = Client::from_str(address)
            .map_err(|e| format!("Prometheus address '{address}' is not usable: {e}"))?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(address.to_string(), client.clone());
        Ok((client, address.to_string()))
    }
}
