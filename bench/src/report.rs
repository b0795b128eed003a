//! The output: a short header with machine facts, one aligned table
//! (figure | value | reference/target | method), and the same as JSON for the README.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use bluegreen_e2e::repo_root;

/// One line of the table; `data` carries the raw numbers for the JSON file.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub reference: String,
    pub method: String,
    pub data: Value,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: impl Into<String>) -> Self {
        Row {
            figure: figure.into(),
            value: value.into(),
            reference: String::new(),
            method: String::new(),
            data: Value::Null,
        }
    }

    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = reference.into();
        self
    }

    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }

    /// A figure that could not be measured: the reason goes in the value column.
    pub fn failed(figure: impl Into<String>, why: &str) -> Self {
        Row::new(figure, format!("NOT MEASURED: {why}"))
    }
}

/// Facts about the machine and the code measured.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_kib: u64,
    pub kernel: String,
    pub commit: String,
    pub date: String,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn proc_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

impl Machine {
    pub fn detect() -> Self {
        let commit = command_output("git", &["rev-parse", "--short=12", "HEAD"])
            .unwrap_or_else(|| "unknown".into());
        let dirty = command_output("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into()),
            memory_kib: proc_field("/proc/meminfo", "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            commit: if dirty {
                format!("{commit} (+ uncommitted changes)")
            } else {
                commit
            },
            date: command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]).unwrap_or_default(),
        }
    }

    pub fn header(&self) -> String {
        format!(
            "bluegreen bench — commit {}, {}\nmachine: {} CPU ({}), {} RAM, Linux {}",
            self.commit,
            self.date,
            self.cpus,
            self.cpu_model,
            super::stats::fmt_kib(self.memory_kib),
            self.kernel
        )
    }

    pub fn json(&self) -> Value {
        json!({
            "cpus": self.cpus,
            "cpu_model": self.cpu_model,
            "memory_kib": self.memory_kib,
            "kernel": self.kernel,
            "commit": self.commit,
            "date": self.date,
        })
    }
}

/// The one table, columns aligned on character counts.
pub fn table(rows: &[Row]) -> String {
    const HEAD: [&str; 4] = ["figure", "value", "reference / target", "method"];
    let cells = |r: &Row| -> [String; 4] {
        [
            r.figure.clone(),
            r.value.clone(),
            r.reference.clone(),
            r.method.clone(),
        ]
    };
    let mut widths = HEAD.map(|h| h.chars().count());
    for row in rows {
        for (w, c) in widths.iter_mut().zip(cells(row)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [String; 4]| -> String {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            out.push_str(c);
            if i < 3 {
                out.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = String::new();
    out.push_str(&line(HEAD.map(String::from)));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for row in rows {
        out.push_str(&line(cells(row)));
        out.push('\n');
    }
    out
}

/// Writes `{"machine", "config", "figures": [...]}`.
pub fn write_json(
    path: &Path,
    machine: &Machine,
    config: Value,
    rows: &[Row],
    wall_seconds: f64,
) -> std::io::Result<()> {
    let figures: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "figure": r.figure,
                "value": r.value,
                "reference": r.reference,
                "method": r.method,
                "data": r.data,
            })
        })
        .collect();
    let doc = json!({
        "machine": machine.json(),
        "config": config,
        "wall_seconds": wall_seconds,
        "figures": figures,
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            Row::new("a", "1").reference("r").method("m"),
            Row::new("longer figure", "22 ms"),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        let bar = lines[0].find('|').unwrap();
        assert!(lines.iter().skip(2).all(|l| l.find('|') == Some(bar)));
    }
}
