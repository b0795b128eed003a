//! Running the plugin the way people do: `kubectl bluegreen ...`, with the binary found by
//! kubectl's plugin discovery on PATH, against the test's kubesim.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use bluegreen_e2e::{Env, kubectl_path};
use regex::Regex;

/// What one command printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// The error line, checked to be exactly one line.
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        lines[0]
    }
}

/// A directory holding only `kubectl-bluegreen` (a link to the binary under test), put first
/// on PATH so that kubectl discovers the plugin as it would in a user's shell.
pub fn plugin_dir(env: &Env) -> PathBuf {
    let dir = env.dir.join("plugins");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_kubectl-bluegreen"),
            dir.join("kubectl-bluegreen"),
        )
        .unwrap();
    }
    dir
}

pub fn path_with(dir: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", dir.display())
}

/// `kubectl bluegreen ARGS` against the env's cluster.
pub fn command(env: &Env, args: &[&str]) -> Command {
    let mut command = Command::new(kubectl_path().unwrap());
    command
        .env("KUBECONFIG", &env.kubeconfig)
        .env("PATH", path_with(&plugin_dir(env)))
        .env("NO_COLOR", "1")
        .arg("bluegreen")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

pub fn bluegreen(env: &Env, args: &[&str]) -> Run {
    Run::from(command(env, args).output().unwrap())
}

pub fn spawn(env: &Env, args: &[&str]) -> Child {
    command(env, args).spawn().unwrap()
}

pub fn finish(child: Child) -> Run {
    Run::from(child.wait_with_output().unwrap())
}

/// Times, ages, ids and revision hashes replaced, column padding collapsed: what stays is
/// what the golden output pins down.
pub fn normalise(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>"),
        (r"(?m)^\d\d:\d\d:\d\d", "<clock>"),
        (r"cli-[0-9a-f]{32}", "<id>"),
        (r"\b[0-9a-f]{8,10}\b", "<rev>"),
        (r"\b\d+[smhd](\d+[smhd])?\b", "<age>"),
        (r" {2,}", "  "),
    ];
    let mut text = text.to_string();
    for (pattern, with) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text
}
