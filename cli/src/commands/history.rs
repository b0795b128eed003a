//! `history NAME`: the audit trail of `status.history`, newest first.

use bluegreen_crd::HistoryEntry;
use jiff::Timestamp;

use crate::{
    args::HistoryArgs, cluster::Cluster, duration::human, error::CliError, exit::ExitCode, output,
    release, view::status_text::short,
};

pub async fn run(cluster: &Cluster, args: &HistoryArgs) -> Result<ExitCode, CliError> {
    let release = release::get(cluster, &args.name).await?;
    let history = release.status.map(|s| s.history).unwrap_or_default();
    match args.output {
        Some(format) => output::print(&output::encode(&history, format)?),
        None if history.is_empty() => {
            eprintln!("{} has no finished rollout yet.", args.name)
        }
        None => output::print(&render(&history)),
    }
    Ok(ExitCode::Success)
}

/// One line per rollout, times in UTC (they are an audit record, not ages).
pub fn render(history: &[HistoryEntry]) -> String {
    let time = |t: &Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut rows = vec![
        [
            "VERSION", "REVISION", "COLOR", "STARTED", "PROMOTED", "FINISHED", "DURATION",
            "OUTCOME", "REASON",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for h in history {
        rows.push(vec![
            h.version.clone(),
            short(&h.revision).to_string(),
            output::color(h.color),
            time(&h.started_at.0),
            h.promoted_at
                .as_ref()
                .map_or_else(|| "-".into(), |t| time(&t.0)),
            time(&h.finished_at.0),
            human(h.finished_at.0.duration_since(h.started_at.0)),
            format!("{:?}", h.outcome),
            h.reason.clone().unwrap_or_default(),
        ]);
    }
    output::table(&rows)
}
