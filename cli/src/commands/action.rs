//! `promote`, `abort`, `retry`, `rollback NAME`: the annotation protocol of DESIGN §4, as a
//! command that says what will happen, sends it, and waits for the controller's answer.
//!
//! The request is a JSON patch that first tests `metadata.generation`: if the spec changed
//! since the release was read (a git sync, an HPA-free edit), the patch fails whole and
//! nothing is sent, because the action could hit another revision than the one shown.

use std::time::Duration;

use bluegreen_crd::{ActionResult, BlueGreenRelease, labels};
use futures::StreamExt;
use json_patch::{AddOperation, PatchOperation, TestOperation, jsonptr::PointerBuf};
use kube::{
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

use super::plan::{self, Verb};
use crate::{
    args::ActionArgs,
    cluster::{Cluster, RELEASES, Request},
    duration::human_std,
    error::CliError,
    exit::ExitCode,
    output, release,
    spinner::Spinner,
};

pub async fn run(cluster: &Cluster, verb: Verb, args: &ActionArgs) -> Result<ExitCode, CliError> {
    let name = &args.name;
    let current = release::get(cluster, name).await?;
    if let Some((pending_verb, pending_id)) = pending(&current) {
        return Err(CliError::ActionPending {
            name: name.clone(),
            verb: pending_verb,
            id: pending_id,
        });
    }
    println!("{}", plan::describe(verb, &current));
    let id = new_id();
    let generation = current.metadata.generation.unwrap_or(0);
    send(cluster, verb, &current, &id).await?;
    if args.no_wait {
        println!(
            "sent {} (id {id}); the answer will be in status.lastAction: `kubectl bluegreen status {name}`",
            verb.as_str()
        );
        return Ok(ExitCode::Success);
    }
    let history_before = current.status.as_ref().map_or(0, |s| s.history.len());
    let answered = wait(cluster, verb, args, &id, history_before).await?;
    let status = answered.status.clone().unwrap_or_default();
    let Some(answer) = status.last_action.filter(|a| a.id == id) else {
        unreachable!("wait returns the release once it carries the answer");
    };
    if answered.metadata.generation.unwrap_or(0) != generation {
        eprintln!(
            "note: the spec of {name} changed (generation {generation} -> {}) before the controller answered; it acted on the new spec",
            answered.metadata.generation.unwrap_or(0)
        );
    }
    match answer.result {
        ActionResult::Accepted => {
            println!(
                "{} {}: {}",
                output::result(answer.result),
                verb.as_str(),
                answer.message
            );
            println!("follow it with `kubectl bluegreen status {name} --watch`");
            Ok(ExitCode::Success)
        }
        ActionResult::Refused => Err(CliError::Refused {
            verb: verb.as_str().into(),
            reason: answer.message,
        }),
    }
}

/// An action that is on the release and not answered yet.
fn pending(release: &BlueGreenRelease) -> Option<(String, String)> {
    let annotations = release.metadata.annotations.as_ref()?;
    let verb = annotations.get(labels::ACTION)?.clone();
    let id = annotations
        .get(labels::ACTION_ID)
        .cloned()
        .unwrap_or_default();
    let answered = release
        .status
        .as_ref()
        .and_then(|s| s.last_action.as_ref())
        .is_some_and(|a| !id.is_empty() && a.id == id);
    (!answered).then_some((verb, id))
}

/// Unique across people, machines and retries of the same command.
fn new_id() -> String {
    format!("cli-{}", uuid::Uuid::new_v4().simple())
}

/// The JSON patch: test the generation read, then add both annotations.
fn patch_body(release: &BlueGreenRelease, verb: Verb, id: &str) -> json_patch::Patch {
    let generation = release.metadata.generation.unwrap_or(0);
    let mut ops = vec![PatchOperation::Test(TestOperation {
        path: PointerBuf::from_tokens(["metadata", "generation"]),
        value: json!(generation),
    })];
    let add = |tokens: &[&str], value: Value| {
        PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(tokens.iter().copied()),
            value,
        })
    };
    if release.metadata.annotations.is_some() {
        for (key, value) in [(labels::ACTION, verb.as_str()), (labels::ACTION_ID, id)] {
            ops.push(add(&["metadata", "annotations", key], json!(value)));
        }
    } else {
        let both = json!({labels::ACTION: verb.as_str(), labels::ACTION_ID: id});
        ops.push(add(&["metadata", "annotations"], both));
    }
    json_patch::Patch(ops)
}

async fn send(
    cluster: &Cluster,
    verb: Verb,
    current: &BlueGreenRelease,
    id: &str,
) -> Result<(), CliError> {
    let name = current.metadata.name.clone().unwrap_or_default();
    let body = patch_body(current, verb, id);
    let api = release::api(cluster);
    let params = PatchParams::default();
    match api.patch(&name, &params, &Patch::<()>::Json(body)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if matches!(status.code, 409 | 422) => {
            // The test op failed: find out what changed.
            let now = release::get(cluster, &name).await?;
            if now.metadata.generation != current.metadata.generation {
                return Err(CliError::SpecRaced {
                    name,
                    verb: verb.as_str().into(),
                });
            }
            if let Some((verb, id)) = pending(&now) {
                return Err(CliError::ActionPending { name, verb, id });
            }
            Err(cluster.error(
                kube::Error::Api(status),
                Request {
                    verb: "patch",
                    resource: RELEASES,
                },
                &cluster.namespace,
            ))
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            Err(release::not_found(cluster, &name).await)
        }
        Err(e) => Err(cluster.error(
            e,
            Request {
                verb: "patch",
                resource: RELEASES,
            },
            &cluster.namespace,
        )),
    }
}

/// Watches the release until `status.lastAction` carries `id`. An accepted retry also waits
/// (within the same timeout) until the release has left Failed/RolledBack, so that a
/// `status --watch` right after it does not read the old failure.
async fn wait(
    cluster: &Cluster,
    verb: Verb,
    args: &ActionArgs,
    id: &str,
    history_before: usize,
) -> Result<BlueGreenRelease, CliError> {
    let spinner = Spinner::start(format!(
        "waiting for the controller to answer {} ({id})",
        verb.as_str()
    ));
    let mut stream = watcher::watch_object(release::api(cluster), &args.name)
        .default_backoff()
        .boxed();
    let mut answered: Option<BlueGreenRelease> = None;
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_) => break,
        };
        let release = match next {
            Ok(Some(release)) => release,
            Ok(None) => {
                return Err(CliError::Deleted {
                    name: args.name.clone(),
                });
            }
            Err(_) => continue,
        };
        let status = release.status.clone().unwrap_or_default();
        let answer = status.last_action.as_ref().filter(|a| a.id == id);
        if answered.is_none() {
            match answer {
                Some(a) if verb == Verb::Retry && a.result == ActionResult::Accepted => {
                    spinner.set_message("retry accepted; waiting for the rollout to start");
                    answered = Some(release.clone());
                }
                Some(_) => return Ok(release),
                None => continue,
            }
        }
        if plan::moved_on(status.phase) || status.history.len() > history_before {
            return Ok(release);
        }
    }
    drop(spinner);
    match answered {
        Some(release) => Ok(release),
        None => Err(CliError::NoAnswer {
            name: args.name.clone(),
            verb: verb.as_str().into(),
            id: id.into(),
            after: human_std(Duration::from_secs(args.timeout.as_secs().max(1))),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(annotations: Option<Value>) -> BlueGreenRelease {
        let mut manifest = json!({
            "apiVersion": "bluegreen.dev/v1alpha1",
            "kind": "BlueGreenRelease",
            "metadata": {"name": "web", "generation": 3},
            "spec": {
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
                "service": {"name": "web"}
            }
        });
        if let Some(a) = annotations {
            manifest["metadata"]["annotations"] = a;
        }
        serde_json::from_value(manifest).unwrap()
    }

    #[test]
    fn the_patch_tests_the_generation_and_keeps_other_annotations() {
        let body = serde_json::to_value(patch_body(
            &release(Some(json!({"team": "shop"}))),
            Verb::Promote,
            "id-1",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/metadata/generation", "value": 3},
                {"op": "add", "path": "/metadata/annotations/bluegreen.dev~1action", "value": "promote"},
                {"op": "add", "path": "/metadata/annotations/bluegreen.dev~1action-id", "value": "id-1"}
            ])
        );
        let body = serde_json::to_value(patch_body(&release(None), Verb::Abort, "id-2")).unwrap();
        assert_eq!(
            body[1],
            json!({"op": "add", "path": "/metadata/annotations", "value": {"bluegreen.dev/action": "abort", "bluegreen.dev/action-id": "id-2"}})
        );
    }

    #[test]
    fn an_unanswered_action_is_pending() {
        let r = release(Some(
            json!({"bluegreen.dev/action": "promote", "bluegreen.dev/action-id": "x"}),
        ));
        assert_eq!(pending(&r), Some(("promote".into(), "x".into())));
        assert_eq!(pending(&release(None)), None);
    }

    #[test]
    fn ids_are_unique() {
        assert_ne!(new_id(), new_id());
    }
}
