//! Wires the caches, the watches and the kube-runtime `Controller` together.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bluegreen_crd::{BlueGreenRelease, labels};
use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::NamespaceResourceScope;
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
    events::{EventPublisher, Reporter},
    http::Readiness,
    metrics::Metrics,
    observe::{Caches, ReleaseIndex, Summarize},
    reconcile::{Context, error_policy, reconcile},
    watches,
};

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
    /// Default Prometheus for analysis (`--prometheus-address`).
    pub prometheus_address: Option<String>,
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
    let caches_synced = Arc::new(AtomicBool::new(false));
    let reporter = Reporter {
        controller: labels::FIELD_MANAGER.into(),
        instance: settings.identity.clone(),
    };
    let events = EventPublisher::new(client.clone(), reporter);
    let context = Arc::new(
        Context::new(client.clone(), caches.clone(), metrics, events)
            .gated_on(caches_synced.clone())
            .with_prometheus(settings.prometheus_address.clone()),
    );
    let (store, writer) = reflector::store();
    spawn_ready_signal(caches.clone(), caches_synced, readiness.clone());
    let releases = release_stream(&client, namespace, writer, context.clone(), caches.clone());
    let replica_sets = child_stream(&client, namespace, &caches, |c| &c.replica_sets);
    let services = child_stream(&client, namespace, &caches, |c| &c.services);
    let endpoint_slices = child_stream(&client, namespace, &caches, |c| &c.endpoint_slices);
    let pods = child_stream(&client, namespace, &caches, |c| &c.pods);
    let jobs = child_stream(&client, namespace, &caches, |c| &c.jobs);
    let controller = Controller::for_stream(releases, store)
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .watches_stream(replica_sets, release_of)
        .watches_stream(services, release_of)
        .watches_stream(endpoint_slices, release_of)
        .watches_stream(pods, release_of)
        .watches_stream(jobs, release_of)
        .graceful_shutdown_on(shutdown);
    info!(
        namespace = namespace.unwrap_or("<all>"),
        concurrency = settings.concurrency,
        "controller started"
    );
    controller
        .run(reconcile, error_policy, context.clone())
        .for_each(|result| {
            match result {
                Ok(_) => {}
                Err(controller::Error::ReconcilerFailed(..)) => {} // reported by error_policy
                // A release deleted while a trigger for it was queued.
                Err(controller::Error::ObjectNotFound(reference)) => {
                    let mut release = ObjectRef::<BlueGreenRelease>::new(&reference.name);
                    release.namespace = reference.namespace.clone();
                    context.forget(&release);
                }
                Err(other) => warn!(error = %other, "controller stream error"),
            }
            future::ready(())
        })
        .await;
    readiness.set_ready(false);
    info!("controller stopped");
    Ok(())
}

/// Ready once the releases' watch and every child index have their first full list: before
/// that, a reconcile could see a half-empty world (and take a ReplicaSet not listed yet for a
/// deleted one). `synced` opens the reconciles' gate; `readiness` answers `/readyz`.
fn spawn_ready_signal(caches: Arc<Caches>, synced: Arc<AtomicBool>, readiness: Readiness) {
    tokio::spawn(async move {
        caches.wait_until_ready().await;
        info!("caches synced; ready");
        synced.store(true, Ordering::Release);
        readiness.set_ready(true);
    });
}

/// The releases' own watch, built here (not by `Controller::new`) so that a deleted release
/// is forgotten as its deletion arrives, and what the controller never reads is dropped
/// before it is stored.
fn release_stream(
    client: &Client,
    namespace: Option<&str>,
    writer: reflector::store::Writer<BlueGreenRelease>,
    context: Arc<Context>,
    caches: Arc<Caches>,
) -> impl futures::Stream<Item = Result<BlueGreenRelease, watcher::Error>> + Send + 'static {
    watches::resilient(
        "BlueGreenRelease",
        watcher(
            api::<BlueGreenRelease>(client, namespace),
            watcher::Config::default().any_semantic(),
        ),
    )
    .map_ok(move |event| {
        match &event {
            watcher::Event::Delete(release) => context.forget(&ObjectRef::from_obj(release)),
            watcher::Event::InitDone => caches.releases_listed.mark(),
            _ => {}
        }
        event.modify(drop_unread_metadata)
    })
    .reflect(writer)
    .applied_objects()
}

/// A label-filtered watch of one child kind that keeps its index current and triggers the
/// owning release on every change.
fn child_stream<K>(
    client: &Client,
    namespace: Option<&str>,
    caches: &Arc<Caches>,
    index_of: fn(&Caches) -> &ReleaseIndex<K>,
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
    let config = watcher::Config::default()
        .labels(labels::RELEASE)
        .any_semantic();
    watches::resilient(
        <K as k8s_openapi::Resource>::KIND,
        watcher(api::<K>(client, namespace), config),
    )
    .map_ok(move |event| {
        index_of(&caches).apply(&event);
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
