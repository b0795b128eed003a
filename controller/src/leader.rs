//! Lease-based leader election (DESIGN §8): with more than one replica, only the leader
//! reconciles. A replica that loses the lease exits, so two leaders never act at once; its
//! Deployment restarts it as a follower.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use thiserror::Error;
use tracing::info;

use crate::config::Config;
use crate::controller::StartupError;

/// Seconds a lease is held without renewal; a dead leader is replaced after about this long.
const LEASE_SECONDS: u64 = 15;
/// Renewal happens this many seconds before expiry.
const GRACE_SECONDS: u64 = 5;

#[derive(Debug, Error)]
pub enum LeaderError {
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error("lost the leader Lease {namespace}/{name}; exiting so that only one replica acts")]
    Lost { namespace: String, name: String },
    #[error(transparent)]
    Startup(#[from] StartupError),
}

/// Waits for leadership, then runs `lead` until it ends, leadership is lost, or shutdown.
pub async fn run_as_leader<L, LF, S, SF>(
    client: &Client,
    config: &Config,
    lead: L,
    shutdown: S,
) -> Result<(), LeaderError>
where
    L: FnOnce() -> LF,
    LF: Future<Output = Result<(), StartupError>>,
    S: Fn() -> SF,
    SF: Future<Output = ()>,
{
    let (namespace, name) = (config.lease_namespace.clone(), config.lease_name.clone());
    let lease_error = |source| LeaderError::Lease {
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client.clone(), &name)
        .with_namespace(&namespace)
        .with_identity(&config.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .build()
        .await
        .map_err(lease_error)?;
    let (mut is_leader, task) = manager.watch().await;
    info!(lease = %format!("{namespace}/{name}"), identity = config.identity, "waiting for leadership");
    tokio::select! {
        became = is_leader.wait_for(|leader| *leader) => {
            if became.is_err() {
                return Err(LeaderError::Lost { namespace, name });
            }
        }
        _ = shutdown() => return Ok(()),
    }
    info!("acquired leadership");
    let outcome = tokio::select! {
        result = lead() => result.map_err(LeaderError::from),
        _ = is_leader.wait_for(|leader| !*leader) => Err(LeaderError::Lost { namespace: namespace.clone(), name: name.clone() }),
    };
    // Dropping the receiver asks the manager to release the lease for a quick hand-over.
    drop(is_leader);
    if let Ok(Ok(manager)) = task.await {
        let _ = manager.release().await;
    }
    outcome
}
