//! The connection to the cluster, loaded as kubectl loads it: `--kubeconfig`, else every file
//! in `KUBECONFIG` merged (the first to set a value wins), else `~/.kube/config`, else the
//! in-cluster service account; `--context` over current-context; `-n` over the context's
//! namespace. Also turns API errors into messages that name the request that failed.

use std::path::PathBuf;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{args::GlobalArgs, error::CliError};

/// A client, the namespace commands act in, and where it points (for error messages).
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub namespace: String,
    pub context: String,
    pub server: String,
}

/// One API request, to say which one failed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
}

pub const RELEASES: &str = "bluegreenreleases.bluegreen.dev";
pub const REPLICA_SETS: &str = "replicasets.apps";
pub const EVENTS: &str = "events.events.k8s.io";
pub const DEPLOYMENTS: &str = "deployments.apps";
pub const SERVICES: &str = "services";

impl Cluster {
    pub async fn connect(flags: &GlobalArgs) -> Result<Cluster, CliError> {
        let options = KubeConfigOptions {
            context: flags.context.clone(),
            cluster: None,
            user: None,
        };
        let (config, context) = match load_kubeconfig(flags)? {
            Some((kubeconfig, source_desc)) => {
                let context = flags
                    .context
                    .clone()
                    .or_else(|| kubeconfig.current_context.clone())
                    .unwrap_or_default();
                let config = Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| CliError::Kubeconfig {
                        source_desc,
                        message: e.to_string(),
                    })?;
                (config, context)
            }
            None => {
                let config = Config::incluster().map_err(|_| CliError::NoKubeconfig {
                    path: default_path().display().to_string(),
                })?;
                (config, "in-cluster".to_string())
            }
        };
        let namespace = flags
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| CliError::Kubeconfig {
            source_desc: format!("context {context}"),
            message: e.to_string(),
        })?;
        Ok(Cluster {
            client,
            namespace,
            context,
            server: server.trim_end_matches('/').to_string(),
        })
    }

    /// An API error as a one-line, actionable [`CliError`].
    pub fn error(&self, err: kube::Error, request: Request<'_>, namespace: &str) -> CliError {
        match err {
            kube::Error::Api(status) if status.code == 403 => CliError::Forbidden {
                verb: request.verb.into(),
                resource: request.resource.into(),
                namespace: namespace.into(),
                message: status.message.clone(),
            },
            kube::Error::Api(status) => CliError::Api {
                verb: request.verb.into(),
                resource: request.resource.into(),
                code: status.code,
                message: status.message.clone(),
            },
            other => CliError::Unreachable {
                server: self.server.clone(),
                context: self.context.clone(),
                reason: innermost(&other),
            },
        }
    }
}

/// The kubeconfig to use and where it came from; `None` when there is none at all.
fn load_kubeconfig(flags: &GlobalArgs) -> Result<Option<(Kubeconfig, String)>, CliError> {
    let read = |path: &PathBuf| {
        Kubeconfig::read_from(path).map_err(|e| CliError::Kubeconfig {
            source_desc: path.display().to_string(),
            message: innermost(&e),
        })
    };
    if let Some(path) = &flags.kubeconfig {
        return read(path).map(|k| Some((k, path.display().to_string())));
    }
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            // As kubectl: files listed but missing are skipped; the first to set a value wins.
            let mut merged: Option<Kubeconfig> = None;
            for path in paths.iter().filter(|p| p.exists()) {
                let next = read(path)?;
                merged = Some(match merged {
                    None => next,
                    Some(m) => m.merge(next).map_err(|e| CliError::Kubeconfig {
                        source_desc: path.display().to_string(),
                        message: e.to_string(),
                    })?,
                });
            }
            let desc = format!("KUBECONFIG={}", value.to_string_lossy());
            return match merged {
                Some(k) => Ok(Some((k, desc))),
                None => Err(CliError::Kubeconfig {
                    source_desc: desc,
                    message: "none of the files it lists exists".into(),
                }),
            };
        }
    }
    let path = default_path();
    if path.exists() {
        return read(&path).map(|k| Some((k, path.display().to_string())));
    }
    Ok(None)
}

fn default_path() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".kube")
        .join("config")
}

/// The most specific cause in an error chain ("Connection refused (os error 111)").
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
