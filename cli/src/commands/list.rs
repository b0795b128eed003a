//! `list [-A]`: the printer columns of `kubectl get bgr`, plus the age of the last flip.

use bluegreen_crd::BlueGreenRelease;
use jiff::Timestamp;
use kube::Api;
use serde::Serialize;

use crate::{
    args::ListArgs,
    cluster::{Cluster, RELEASES, Request},
    duration::human,
    error::CliError,
    exit::ExitCode,
    output,
};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub active: Option<String>,
    pub version: Option<String>,
    pub preview: Option<String>,
    pub phase: Option<String>,
    pub ready: Option<String>,
    pub last_flip: Option<Timestamp>,
    pub created: Option<Timestamp>,
}

pub async fn run(cluster: &Cluster, args: &ListArgs) -> Result<ExitCode, CliError> {
    let api: Api<BlueGreenRelease> = if args.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let scope = if args.all_namespaces {
        "all namespaces".to_string()
    } else {
        cluster.namespace.clone()
    };
    let list = api.list(&Default::default()).await.map_err(|e| {
        cluster.error(
            e,
            Request {
                verb: "list",
                resource: RELEASES,
            },
            &scope,
        )
    })?;
    let mut rows: Vec<Row> = list.items.iter().map(row).collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    match args.output {
        Some(format) => output::print(&output::encode(&rows, format)?),
        None if rows.is_empty() => eprintln!("No releases found in {scope}."),
        None => output::print(&render(&rows, args.all_namespaces, Timestamp::now())),
    }
    Ok(ExitCode::Success)
}

pub fn row(release: &BlueGreenRelease) -> Row {
    let status = release.status.clone().unwrap_or_default();
    // The last flip: when the previous color stopped serving, else the first promotion.
    let last_flip = status.standby.as_ref().map(|s| s.since.0).max(
        status
            .history
            .iter()
            .filter_map(|h| h.promoted_at.as_ref().map(|t| t.0))
            .max(),
    );
    Row {
        namespace: release.metadata.namespace.clone().unwrap_or_default(),
        name: release.metadata.name.clone().unwrap_or_default(),
        active: status.active_color.map(|c| c.to_string()),
        version: status.active_version.clone(),
        preview: status.preview_version.clone(),
        phase: status.phase.map(|p| p.to_string()),
        ready: status
            .condition(bluegreen_crd::ConditionType::Ready)
            .map(|c| c.status.clone()),
        last_flip,
        created: release.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

pub fn render(rows: &[Row], namespaces: bool, now: Timestamp) -> String {
    let age =
        |t: Option<Timestamp>| t.map_or_else(|| "<none>".into(), |t| human(now.duration_since(t)));
    let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "<none>".into());
    let mut table = vec![];
    let mut header: Vec<String> = [
        "NAME",
        "ACTIVE",
        "VERSION",
        "PREVIEW",
        "PHASE",
        "READY",
        "LAST FLIP",
        "AGE",
    ]
    .map(String::from)
    .to_vec();
    if namespaces {
        header.insert(0, "NAMESPACE".into());
    }
    table.push(header);
    for r in rows {
        let mut cells = vec![
            r.name.clone(),
            text(&r.active),
            text(&r.version),
            r.preview.clone().unwrap_or_default(),
            text(&r.phase),
            text(&r.ready),
            age(r.last_flip),
            age(r.created),
        ];
        if namespaces {
            cells.insert(0, r.namespace.clone());
        }
        table.push(cells);
    }
    output::table(&table)
}
