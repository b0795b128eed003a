//! `status NAME [--watch] [--timeout D]`: the readable view, and the CI gate.

use std::{collections::BTreeMap, time::Duration};

use bluegreen_crd::{BlueGreenRelease, labels};
use futures::{StreamExt, stream::BoxStream};
use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, events::v1::Event};
use kube::{
    Api,
    api::ListParams,
    core::Selector,
    runtime::{WatchStreamExt, watcher},
};

use crate::{
    args::StatusArgs,
    cluster::{Cluster, RELEASES, Request},
    duration::human_std,
    error::CliError,
    exit::ExitCode,
    output, release,
    spinner::Spinner,
    view::{
        status::{StatusView, Verdict},
        status_text::render,
    },
};

pub async fn run(cluster: &Cluster, args: &StatusArgs) -> Result<ExitCode, CliError> {
    let release = release::get(cluster, &args.name).await?;
    if args.watch {
        return watch(cluster, args, release).await;
    }
    let replica_sets = replica_sets(cluster, &args.name).await;
    let events = events(cluster, &args.name).await;
    let view = StatusView::new(&release, &replica_sets, &events, Timestamp::now());
    match args.output {
        Some(format) => output::print(&output::encode(&view, format)?),
        None => output::print(&render(&view, Timestamp::now())),
    }
    Ok(ExitCode::Success)
}

/// The release's Events (best effort: listing Events may be denied).
async fn events(cluster: &Cluster, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let params = ListParams::default().fields(&format!("regarding.name={name}"));
    events
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// The release's objects: those labelled with its name.
fn of_release(name: &str) -> Selector {
    Selector::from_iter([(labels::RELEASE.to_string(), name.to_string())])
}

/// The release's ReplicaSets (best effort: the view only loses its pod counts without them).
async fn replica_sets(cluster: &Cluster, name: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let params = ListParams::default().labels_from(&of_release(name));
    api.list(&params).await.map(|l| l.items).unwrap_or_default()
}

/// Redraws on every change of the release or its ReplicaSets (watches, no polling) until the
/// release is Ready (0), Failed/RolledBack/Stalled (1), gone (3) or the timeout passes (2).
async fn watch(
    cluster: &Cluster,
    args: &StatusArgs,
    mut release: BlueGreenRelease,
) -> Result<ExitCode, CliError> {
    let name = args.name.clone();
    let terminal = console::Term::stdout();
    let interactive = terminal.is_term() && args.output.is_none();
    let mut releases: BoxStream<'_, _> = watcher::watch_object(release::api(cluster), &name)
        .default_backoff()
        .boxed();
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let rs_config = watcher::Config::default().labels_from(&of_release(&name));
    let mut rs_events: BoxStream<'_, _> = watcher::watcher(rs_api, rs_config)
        .default_backoff()
        .boxed();
    let mut replica_sets: BTreeMap<String, ReplicaSet> = replica_sets(cluster, &name)
        .await
        .into_iter()
        .map(|rs| (rs.metadata.name.clone().unwrap_or_default(), rs))
        .collect();
    let timeout = async {
        match args.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    // In a terminal the view is redrawn each second from what was seen, so countdowns move.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let spinner = Spinner::start(format!("watching {name}"));
    if !interactive && args.output.is_none() {
        let limit = args.timeout.map_or_else(
            || "no timeout".to_string(),
            |t| format!("timeout {}", human_std(t)),
        );
        println!(
            "watching release {name} in namespace {} ({limit})",
            cluster.namespace
        );
    }
    let mut last_summary = String::new();
    let mut events = events(cluster, &name).await;
    let mut view = StatusView::new(&release, &rs_list(&replica_sets), &events, Timestamp::now());
    loop {
        if interactive {
            let _ = terminal.clear_screen();
            spinner.suspend(|| output::print(&render(&view, Timestamp::now())));
        } else if view.summary() != last_summary {
            last_summary = view.summary();
            match args.output {
                Some(format) => output::print(&output::encode(&view, format)?),
                None => println!("{}  {last_summary}", Timestamp::now().strftime("%H:%M:%S")),
            }
        }
        match view.verdict {
            Verdict::Ready | Verdict::Failed => {
                drop(spinner);
                return Ok(finish(&view, interactive, args));
            }
            Verdict::InProgress => {}
        }
        let mut refresh = true;
        tokio::select! {
            _ = &mut timeout => {
                drop(spinner);
                if !interactive && args.output.is_none() {
                    output::print(&render(&view, Timestamp::now()));
                }
                return Err(CliError::WatchTimeout {
                    name,
                    after: args.timeout.map(human_std).unwrap_or_default(),
                    state: view.summary(),
                });
            }
            Some(event) = releases.next() => match event {
                Ok(Some(next)) => release = next,
                Ok(None) => return Err(CliError::Deleted { name }),
                Err(e) => forbidden(cluster, e, RELEASES)?,
            },
            Some(event) = rs_events.next() => match event {
                Ok(watcher::Event::Apply(rs) | watcher::Event::InitApply(rs)) => {
                    replica_sets.insert(rs.metadata.name.clone().unwrap_or_default(), rs);
                }
                Ok(watcher::Event::Delete(rs)) => {
                    replica_sets.remove(rs.metadata.name.as_deref().unwrap_or_default());
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => refresh = false,
                // Pod counts are a nicety: a denied ReplicaSet watch leaves them out.
                Err(_) => refresh = false,
            },
            _ = tick.tick(), if interactive => refresh = false,
        }
        if refresh {
            events = self::events(cluster, &name).await;
        }
        view = StatusView::new(&release, &rs_list(&replica_sets), &events, Timestamp::now());
    }
}

fn rs_list(map: &BTreeMap<String, ReplicaSet>) -> Vec<ReplicaSet> {
    map.values().cloned().collect()
}

/// A watch error: fatal when access is denied, otherwise retried by the watcher's backoff.
fn forbidden(cluster: &Cluster, err: watcher::Error, resource: &str) -> Result<(), CliError> {
    let inner = match err {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => e,
        watcher::Error::WatchError(status) => kube::Error::Api(status),
        _ => return Ok(()),
    };
    match &inner {
        kube::Error::Api(status) if status.code == 403 => {
            let verb = "watch";
            Err(cluster.error(inner, Request { verb, resource }, &cluster.namespace))
        }
        _ => Ok(()),
    }
}

/// The last word of a watch, and its exit code.
fn finish(view: &StatusView, interactive: bool, args: &StatusArgs) -> ExitCode {
    if !interactive && args.output.is_none() {
        output::print(&render(view, Timestamp::now()));
    }
    match view.verdict {
        Verdict::Ready => {
            let live = view
                .active
                .as_ref()
                .map(|a| format!(": version {} on {}", a.version, a.color))
                .unwrap_or_default();
            eprintln!("{} is Ready{live}", view.name);
            ExitCode::Success
        }
        _ => {
            eprintln!("{} is {}", view.name, view.summary());
            ExitCode::Failure
        }
    }
}
