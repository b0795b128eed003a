//! Wires the caches, the watches and the kube-runtime `Controller` together.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use bluegreen_crd::{BlueGreenRelease, labels};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::ReplicaSet,
        batch::v1::Job,
        core::v1::{Pod, Service},
        discovery::v1::EndpointSlice,
    },
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    runtime::{
        Controller, WatchStreamExt,
        controller::{self, Config as ControllerConfig},
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tracing::{info, warn};

use crate::{
    cache::{ReleaseIndex, Summarize},
    events::{EventPublisher, Reporter},
    http::Readiness,
    metrics::Metrics,
    reconcile::{Context, error_policy, reconcile},
    snapshot::Caches,
    watches,
};

/// The caches (releases and five kinds of children) that must finish their first list
/// before the controller is ready.
const CACHES: usize = 6;

/// Why the controller could not start.
#[derive(Debug, Error)]
pub enum StartupError {
    #[error(
        "the BlueGreenRelease CRD (bluegreenreleases.bluegreen.dev) is not installed in this cluster; install it with \
         `kubectl apply -f charts/bluegreen-controller/crds/bluegreenreleases.bluegreen.dev.yaml` (or the Helm chart) and start the controller again"
    )]
    CrdMissing,
    #[error("cannot list BlueGreenReleases{scope}: {source}")]
    CannotList {
        scope: String,
        #[source]
        source: kube::Error,
    },
}

/// What the controller watches and how hard it works.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    pub concurrency: u16,
    /// Reporter instance for Events (the pod name).
    pub identity: String,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Fails with a clear message when the CRD is not served (instead of watching forever).
pub async fn check_crd(client: &Client, namespace: Option<&str>) -> Result<(), StartupError> {
    let releases: Api<BlueGreenRelease> = api(client, namespace);
    match releases
        .list_metadata(&ListParams::default().limit(1))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Err(StartupError::CrdMissing),
        Err(source) => Err(StartupError::CannotList {
            scope: namespace
                .map(|ns| format!(" in namespace {ns}"))
                .unwrap_or_default(),
            source,
        }),
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartupError> {
    let namespace = settings.namespace.as_deref();
    check_crd(&client, namespace).await?;

    let caches = Arc::new(Caches::default());
    let synced = Arc::new(AtomicUsize::new(0));
    // The releases' own watch is built here (not by `Controller::new`) so that its first
    // list counts towards readiness like the children's.
    let (store, writer) = reflector::store();
    let releases = {
        let synced = synced.clone();
        let mut first_list = true;
        watches::resilient(
            "BlueGreenRelease",
            watcher(
                api::<BlueGreenRelease>(&client, namespace),
                watcher::Config::default().any_semantic(),
            ),
        )
        .map_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) && first_list {
                first_list = false;
                synced.fetch_add(1, Ordering::AcqRel);
            }
            event.modify(drop_unread_metadata)
        })
        .reflect(writer)
        .applied_objects()
    };
    let controller = Controller::for_stream(releases, store)
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .watches_stream(
            child_stream::<ReplicaSet>(&client, namespace, &caches, |c| &c.replica_sets, &synced),
            release_of,
        )
        .watches_stream(
            child_stream::<Service>(&client, namespace, &caches, |c| &c.services, &synced),
            release_of,
        )
        .watches_stream(
            child_stream::<EndpointSlice>(
                &client,
                namespace,
                &caches,
                |c| &c.endpoint_slices,
                &synced,
            ),
            release_of,
        )
        .watches_stream(
            child_stream::<Pod>(&client, namespace, &caches, |c| &c.pods, &synced),
            release_of,
        )
        .watches_stream(
            child_stream::<Job>(&client, namespace, &caches, |c| &c.jobs, &synced),
            release_of,
        )
        .graceful_shutdown_on(shutdown);

    // Ready once every cache has its first full list: before that, a reconcile could see a
    // half-empty world.
    let caches_synced = Arc::new(AtomicBool::new(false));
    let ready_signal = {
        let synced = synced.clone();
        let caches_synced = caches_synced.clone();
        let readiness = readiness.clone();
        async move {
            while synced.load(Ordering::Acquire) < CACHES {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            info!("caches synced; ready");
            caches_synced.store(true, Ordering::Release);
            readiness.set_ready(true);
        }
    };
    tokio::spawn(ready_signal);

    let reporter = Reporter {
        controller: labels::FIELD_MANAGER.into(),
        instance: settings.identity.clone(),
    };
    let events = EventPublisher::new(client.clone(), reporter);
    let context =
        Arc::new(Context::new(client, caches, metrics.clone(), events).gated_on(caches_synced));
    info!(
        namespace = namespace.unwrap_or("<all>"),
        concurrency = settings.concurrency,
        "controller started"
    );
    controller
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok(_) => {}
                    Err(controller::Error::ReconcilerFailed(..)) => {} // reported by error_policy
                    // A deleted release: its series go with it, so dashboards do not show
                    // releases that no longer exist.
                    Err(controller::Error::ObjectNotFound(reference)) => {
                        metrics.forget_release(
                            reference.namespace.as_deref().unwrap_or_default(),
                            &reference.name,
                        );
                    }
                    Err(other) => warn!(error = %other, "controller stream error"),
                }
            }
        })
        .await;
    readiness.set_ready(false);
    info!("controller stopped");
    Ok(())
}

/// A label-filtered watch of one child kind that keeps its cache current and triggers the
/// owning release on every change.
fn child_stream<K>(
    client: &Client,
    namespace: Option<&str>,
    caches: &Arc<Caches>,
    index_of: fn(&Caches) -> &ReleaseIndex<K>,
    synced: &Arc<AtomicUsize>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Summarize
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let caches = caches.clone();
    let synced = synced.clone();
    let mut first_list = true;
    let config = watcher::Config::default()
        .labels(labels::RELEASE)
        .any_semantic();
    watches::resilient(
        <K as k8s_openapi::Resource>::KIND,
        watcher(api::<K>(client, namespace), config),
    )
    .map_ok(move |event| {
        if index_of(&caches).apply(&event) && first_list {
            first_list = false;
            synced.fetch_add(1, Ordering::AcqRel);
        }
        event
    })
    .touched_objects()
}

/// Drops what the controller never reads from a cached release: managed fields and
/// kubectl's last-applied copy of the spec are often larger than the rest of the object.
fn drop_unread_metadata(release: &mut BlueGreenRelease) {
    release.managed_fields_mut().clear();
    release
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

/// The release an object belongs to, by its `bluegreen.dev/release` label.
fn release_of<K: Resource>(obj: K) -> Option<ObjectRef<BlueGreenRelease>> {
    let release = obj.labels().get(labels::RELEASE)?;
    Some(ObjectRef::new(release).within(&obj.namespace()?))
}
