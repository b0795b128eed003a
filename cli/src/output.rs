//! Writing results: JSON or YAML for scripts; colors only when stdout is a terminal (the
//! `console` crate also honours NO_COLOR and CLICOLOR_FORCE).

use bluegreen_crd::{ActionResult, Color, Phase};
use console::style;
use serde::Serialize;

use crate::{args::Format, error::CliError};

/// `value` as JSON (pretty) or YAML, with a trailing newline.
pub fn encode<T: Serialize>(value: &T, format: Format) -> Result<String, CliError> {
    let encoded = match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Yaml => serde_saphyr::to_string(value).map_err(|e| e.to_string()),
    };
    encoded.map_err(|message| CliError::Encode {
        format: format.name(),
        message,
    })
}

/// Prints `text` to stdout as is (a view already ends with a newline).
pub fn print(text: &str) {
    print!("{text}");
}

pub fn phase(phase: Option<Phase>) -> String {
    let Some(phase) = phase else {
        return style("Pending").dim().to_string();
    };
    let s = style(phase.as_str());
    match phase {
        Phase::Stable => s.green(),
        Phase::Failed | Phase::RolledBack => s.red(),
        Phase::AwaitingPromotion | Phase::Paused => s.yellow(),
        _ => s.cyan(),
    }
    .to_string()
}

pub fn color(color: Color) -> String {
    let s = style(color.as_str());
    match color {
        Color::Blue => s.blue().bold(),
        Color::Green => s.green().bold(),
    }
    .to_string()
}

pub fn result(result: ActionResult) -> String {
    match result {
        ActionResult::Accepted => style("Accepted").green().to_string(),
        ActionResult::Refused => style("Refused").red().to_string(),
    }
}

pub fn condition_status(status: &str) -> String {
    match status {
        "True" => style(status).green().to_string(),
        "False" => style(status).red().to_string(),
        _ => style(status).yellow().to_string(),
    }
}

pub fn dim(text: &str) -> String {
    style(text).dim().to_string()
}

pub fn bold(text: &str) -> String {
    style(text).bold().to_string()
}

pub fn error_prefix() -> String {
    console::style("error:")
        .for_stderr()
        .red()
        .bold()
        .to_string()
}

/// Width of `text` on screen, ignoring color codes: tables pad by it.
pub fn width(text: &str) -> usize {
    console::measure_text_width(text)
}

/// Left-aligned columns separated by three spaces, as `kubectl get` prints them.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| width(cell))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - width(cell) + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![
            vec!["NAME".to_string(), "PHASE".into()],
            vec!["web-frontend".to_string(), "Stable".into()],
        ];
        assert_eq!(
            table(&rows),
            "NAME           PHASE\nweb-frontend   Stable\n"
        );
    }
}
