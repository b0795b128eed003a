//! Failure, abort, rollback, crash/restart and bad-input scenarios: the controller binary
//! against kubesim, the invariants of DESIGN §4 checked from the outside.

use std::time::Duration;

use bluegreen_crd::{
    ActionResult, BlueGreenRelease, Color, Outcome, Phase, SmokeTestPhase, labels,
};
use bluegreen_e2e::{
    eventually,
    fixture::{Fixture, TIMEOUT, release},
};
use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_smoke_test_never_reaches_customers() {
    let f = Fixture::start("failed-test").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    let blue = f.stable("1").await;
    let live = f.active_selector().await;

    // A second, long test is running when the first fails: it is cancelled.
    let mut failing = release("shop:2", 1);
    failing["spec"]["smokeTests"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "name": "load",
            "template": {
                "metadata": {"annotations": {"kubesim.dev/run-ms": "600000"}},
                "spec": {"containers": [{"name": "t", "image": "k6:1"}]}
            }
        }));
    f.apply(&failing);
    let status = f
        .status_when("Failed", |s| s.phase == Some(Phase::Failed))
        .await;
    assert_eq!(
        f.active_selector().await,
        live,
        "the active Service is untouched"
    );
    let tests: Vec<_> = status
        .smoke_tests
        .iter()
        .map(|t| (t.name.as_str(), t.phase))
        .collect();
    assert_eq!(
        tests,
        [
            ("smoke", SmokeTestPhase::Failed),
            ("load", SmokeTestPhase::Cancelled)
        ]
    );
    eventually("the cancelled test's Job deleted", TIMEOUT, || async {
        let jobs = f
            .jobs
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(jobs
            .items
            .iter()
            .all(|j| {
                !j.metadata
                    .name
                    .as_deref()
                    .unwrap_or("")
                    .starts_with("shop-load-")
            })
            .then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(status.active_revision, blue.active_revision);
    let message = status.message.clone().unwrap();
    assert!(
        message.contains("assertion failed: status == 200"),
        "log tail in the message: {message}"
    );
    assert_eq!(status.history[0].outcome, Outcome::Failed);
    assert_eq!(
        status.condition("Stalled").unwrap().reason,
        "SmokeTestFailed"
    );
    f.wait_for_replicas(Color::Green, 0).await;
    assert_eq!(
        f.rs_replicas(Color::Blue).await,
        2,
        "the active color keeps its size"
    );
    let events = f.env.kubectl(&["get", "events"]).unwrap();
    assert!(events.contains("SmokeTestFailed"), "{events}");

    // Not retried on its own; a retry action runs it again (and it fails again).
    f.request("retry", "retry-1").await;
    let status = f
        .status_when("retry consumed", |s| {
            s.last_action.as_ref().is_some_and(|a| a.id == "retry-1")
        })
        .await;
    assert_eq!(status.last_action.unwrap().result, ActionResult::Accepted);
    f.status_when("failed again", |s| {
        s.phase == Some(Phase::Failed) && s.history.len() >= 3
    })
    .await;
    assert_eq!(f.active_selector().await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_one_more_write_and_a_git_revert_settles_it() {
    let f = Fixture::start("rollback").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    let blue = f.stable("1").await;
    f.apply(&release("shop:2", 0));
    f.stable("2").await;
    assert_eq!(f.active_selector().await.0, "green");
    assert_eq!(
        f.rs_replicas(Color::Blue).await,
        2,
        "previous color stays warm at full size"
    );

    let sim = &f.env;
    let before = sim.audit_next_seq();
    f.request("rollback", "rb-1").await;
    let status = f
        .status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
        .await;
    assert_eq!(
        f.active_selector().await,
        ("blue".to_string(), blue.active_revision.clone().unwrap())
    );
    assert_eq!(status.condition("Ready").unwrap().status, "False");
    assert_eq!(status.condition("Stalled").unwrap().reason, "RolledBack");
    let writes: Vec<_> = sim
        .audit_since(before)
        .into_iter()
        .filter(|e| {
            e.field_manager == labels::FIELD_MANAGER
                && matches!(e.verb.as_str(), "create" | "patch" | "delete")
        })
        .filter(|e| e.resource != "events" && e.subresource != "status")
        .map(|e| format!("{} {} {}", e.verb, e.resource, e.name))
        .collect();
    assert!(
        writes
            .iter()
            .all(|w| !w.contains("replicasets") && !w.contains("jobs")),
        "no redeploy, no tests: {writes:?}"
    );
    assert!(
        writes.contains(&"patch services shop".to_string()),
        "{writes:?}"
    );

    // A git revert to shop:1 matches what is live: Stable, with no rollout at all.
    f.apply(&release("shop:1", 0));
    let status = f.stable("1").await;
    assert_eq!(status.condition("Ready").unwrap().status, "True");
    assert_eq!(f.active_selector().await.0, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_a_rollout_and_leaves_the_active_color_alone() {
    let f = Fixture::start("abort").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    let live = f.active_selector().await;
    f.env
        .kubectl(&[
            "patch",
            "bgr",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"promotion":{"mode":"Manual"}}}"#,
        ])
        .unwrap();
    f.apply(&{
        let mut r = release("shop:2", 0);
        r["spec"]["promotion"] = json!({"mode": "Manual"});
        r
    });
    f.status_when("AwaitingPromotion", |s| {
        s.phase == Some(Phase::AwaitingPromotion)
    })
    .await;
    assert_eq!(f.active_selector().await, live);
    f.request("abort", "abort-1").await;
    let status = f
        .status_when("Failed by abort", |s| s.phase == Some(Phase::Failed))
        .await;
    assert_eq!(status.history[0].outcome, Outcome::Aborted);
    assert_eq!(f.active_selector().await, live);
    f.request("promote", "late-promote").await;
    let status = f
        .status_when("promote refused", |s| {
            s.last_action
                .as_ref()
                .is_some_and(|a| a.id == "late-promote")
        })
        .await;
    assert_eq!(status.last_action.unwrap().result, ActionResult::Refused);
    assert_eq!(f.active_selector().await, live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_rollout_converges_without_duplicates() {
    let f = Fixture::start("crash").await;
    let mut controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;

    // Slow smoke test so the kill lands while it runs.
    let mut slow = release("shop:2", 0);
    slow["spec"]["smokeTests"][0]["template"]["metadata"]["annotations"]["kubesim.dev/run-ms"] =
        json!("1500");
    f.apply(&slow);
    f.status_when("Testing", |s| {
        s.phase == Some(Phase::Testing) && s.smoke_tests.iter().any(|t| !t.job.is_empty())
    })
    .await;
    controller.kill().unwrap();

    let _restarted = f.env.start_controller().unwrap();
    let status = f.stable("2").await;
    assert_eq!(
        status.history.len(),
        2,
        "no lost history: {:?}",
        status.history
    );
    let jobs = f.jobs.list(&Default::default()).await.unwrap();
    let job_writes: Vec<String> = f
        .controller_writes()
        .into_iter()
        .filter(|e| e.resource == "jobs")
        .map(|e| format!("{} {} → {}", e.verb, e.name, e.code))
        .collect();
    // A create refused with 409 AlreadyExists (sent while the Job cache had not shown the
    // Job yet) duplicates nothing: only the creates that made a Job count.
    let creates = f
        .controller_writes()
        .into_iter()
        .filter(|e| e.verb == "create" && e.resource == "jobs" && e.code < 400)
        .count();
    assert_eq!(
        creates,
        2,
        "one Job per rollout, none duplicated (jobs now: {}; Job writes: {job_writes:?})",
        jobs.items.len()
    );
    assert_eq!(f.active_selector().await.0, "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicas_change_is_a_scale_not_a_release() {
    let f = Fixture::start("scale").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    let stable = f.stable("1").await;
    let sim = &f.env;
    let before = sim.audit_next_seq();
    f.env
        .kubectl(&["scale", "bgr", "shop", "--replicas=4"])
        .unwrap();
    f.wait_for_replicas(Color::Blue, 4).await;
    let status = f.stable("1").await;
    assert_eq!(status.active_revision, stable.active_revision);
    assert_eq!(status.history.len(), 1, "no new rollout");
    let rollout_writes: Vec<_> = sim
        .audit_since(before)
        .into_iter()
        .filter(|e| e.field_manager == labels::FIELD_MANAGER)
        .filter(|e| {
            (e.resource == "replicasets" && e.subresource.is_empty())
                || e.resource == "jobs"
                || (e.resource == "services" && e.verb != "get")
        })
        .map(|e| format!("{} {} {}", e.verb, e.resource, e.name))
        .collect();
    assert!(
        rollout_writes.is_empty(),
        "a scale touches only the scale subresource: {rollout_writes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_service_is_adopted_without_touching_its_other_fields() {
    let f = Fixture::start("adopt").await;
    f.create_user_service(json!({
        "metadata": {"name": "shop", "annotations": {"team": "payments"}, "labels": {"owner": "helm"}},
        "spec": {"selector": {"app": "shop"}, "ports": [{"name": "web", "port": 8443, "targetPort": 8443}], "sessionAffinity": "ClientIP"}
    }))
    .await;
    let _controller = f.env.start_controller().unwrap();
    let mut manifest = release("shop:1", 0);
    manifest["spec"]["service"] = json!({"name": "shop"});
    f.apply(&manifest);
    f.stable("1").await;
    let svc = f.services.get("shop").await.unwrap();
    let spec = svc.spec.clone().unwrap();
    assert_eq!(spec.ports.unwrap()[0].port, 8443, "ports are the user's");
    assert_eq!(spec.session_affinity.as_deref(), Some("ClientIP"));
    assert_eq!(svc.metadata.annotations.unwrap()["team"], "payments");
    assert_eq!(svc.metadata.labels.as_ref().unwrap()["owner"], "helm");
    assert_eq!(svc.metadata.labels.unwrap()[labels::RELEASE], "shop");
    let selector = spec.selector.unwrap();
    assert_eq!(selector["app"], "shop");
    assert_eq!(selector[labels::COLOR], "blue");
    assert!(
        svc.metadata.owner_references.is_none(),
        "an adopted Service is not deleted with the release"
    );
    // The preview Service copied the user's ports.
    let preview = f.services.get("shop-preview").await.unwrap();
    assert_eq!(preview.spec.unwrap().ports.unwrap()[0].port, 8443);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_or_stalled_and_nothing_is_created() {
    let f = Fixture::start("invalid").await;
    let _controller = f.env.start_controller().unwrap();

    // The schema rejects it at admission: nothing is stored.
    let mut bad_port = release("shop:1", 0);
    bad_port["spec"]["service"]["ports"][0]["port"] = json!(70000);
    let err = f
        .env
        .kubectl_with_stdin(&["apply", "-f", "-"], Some(&bad_port.to_string()))
        .unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
    assert!(f.releases.get_opt("shop").await.unwrap().is_none());

    // A CEL rule rejects it at admission, as on a real cluster.
    let mut mismatch = release("shop:1", 0);
    mismatch["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    let err = f
        .env
        .kubectl_with_stdin(&["apply", "-f", "-"], Some(&mismatch.to_string()))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("spec.selector.matchLabels must match spec.template.metadata.labels"),
        "{err}"
    );
    assert!(f.releases.get_opt("shop").await.unwrap().is_none());

    // What only the controller checks (a container without an image): InvalidSpec, and
    // nothing is created.
    let mut no_image = release("shop:1", 0);
    no_image["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    f.apply(&no_image);
    let status = f
        .status_when("InvalidSpec", |s| {
            s.condition("Stalled")
                .is_some_and(|c| c.reason == "InvalidSpec")
        })
        .await;
    assert!(
        status
            .message
            .unwrap()
            .contains("spec.template.spec.containers[0].image")
    );
    assert!(
        f.replica_sets
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "nothing created for an invalid spec"
    );
    assert!(f.services.get_opt("shop").await.unwrap().is_none());

    // Fixing the spec starts the release.
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_writes_nothing_for_settled_releases() {
    let f = Fixture::start("restart-quiet").await;
    let mut controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&release("shop:2", 0));
    let before = f.stable("2").await;
    assert!(before.standby.is_some());
    controller.kill().unwrap();

    let sim = &f.env;
    let since = sim.audit_next_seq();
    let restarted = f.env.start_controller().unwrap();
    let addr = restarted
        .metrics_addr(Duration::from_secs(20))
        .expect("metrics address");
    eventually(
        "the new process reconciled the release",
        TIMEOUT,
        || async {
            let (_, body) = bluegreen_e2e::http_get(&addr, "/metrics")
                .await
                .map_err(|e| e.to_string())?;
            Ok(body
                .contains(r#"bluegreen_releases{phase="Stable"} 1"#)
                .then_some(()))
        },
    )
    .await
    .unwrap();
    let writes: Vec<_> = sim
        .audit_since(since)
        .into_iter()
        .filter(|e| {
            e.field_manager == labels::FIELD_MANAGER
                && matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete")
        })
        .map(|e| format!("{} {} {} {}", e.verb, e.resource, e.subresource, e.name))
        .collect();
    assert!(
        writes.is_empty(),
        "a restart is read-only for a settled release: {writes:?}"
    );
    let after = f.releases.get("shop").await.unwrap().status.unwrap();
    assert_eq!(
        after.standby, before.standby,
        "the warm standby is remembered"
    );
}

/// Many releases upgraded at once: every rollout runs its smoke test exactly once and
/// writes its status in step with the phases. A reconcile started by a child's event before
/// the release cache showed the last status write used to plan from that older status: the
/// rollout started again under a new start time, its Job was deleted and created again, and
/// the status was written over the newer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upgrades_run_each_smoke_test_once() {
    const RELEASES: usize = 20;
    let f = Fixture::start("concurrent").await;
    let _controller = f.env.start_controller().unwrap();
    let named = |i: usize, image: &str| {
        let mut r = release(image, 0);
        let name = format!("shop-{i}");
        r["metadata"]["name"] = json!(name);
        r["spec"]["template"]["metadata"]["labels"]["app"] = json!(name);
        r["spec"]["service"]["name"] = json!(name);
        r["spec"]["replicas"] = json!(1);
        r
    };
    let stable_on = |version: &'static str| {
        let releases = f.releases.clone();
        async move {
            eventually(
                &format!("{RELEASES} releases Stable on {version}"),
                TIMEOUT,
                || {
                    let releases = releases.clone();
                    async move {
                        let list = releases
                            .list(&Default::default())
                            .await
                            .map_err(|e| e.to_string())?;
                        let (stable, waiting): (Vec<_>, Vec<_>) =
                            list.items.iter().partition(|r| {
                                r.status.as_ref().is_some_and(|s| {
                                    s.phase == Some(Phase::Stable)
                                        && s.active_version.as_deref() == Some(version)
                                })
                            });
                        if stable.len() == RELEASES {
                            return Ok(Some(()));
                        }
                        // Said on a timeout: which releases are where.
                        let waiting: Vec<String> = waiting
                            .iter()
                            .map(|r| {
                                let s = r.status.clone().unwrap_or_default();
                                format!("{}: {:?} {:?}", r.name_any(), s.phase, s.message)
                            })
                            .collect();
                        Err(format!("{} stable; {}", stable.len(), waiting.join("; ")))
                    }
                },
            )
            .await
            .unwrap();
        }
    };
    let create = |manifest: Value| {
        let releases = f.releases.clone();
        async move {
            let release: BlueGreenRelease = serde_json::from_value(manifest).unwrap();
            releases
                .create(&PostParams::default(), &release)
                .await
                .unwrap();
        }
    };
    futures::future::join_all((0..RELEASES).map(|i| create(named(i, "shop:1")))).await;
    stable_on("1").await;

    let sim = &f.env;
    let since = sim.audit_next_seq();
    let upgrade = |i: usize| {
        let releases = f.releases.clone();
        async move {
            let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "shop", "image": "shop:2"}]}}}});
            releases
                .patch(
                    &format!("shop-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await
                .unwrap();
        }
    };
    futures::future::join_all((0..RELEASES).map(upgrade)).await;
    stable_on("2").await;

    let ours: Vec<kubesim::AuditEntry> = sim
        .audit_since(since)
        .into_iter()
        .filter(|e| e.field_manager == labels::FIELD_MANAGER && e.code < 400)
        .collect();
    let job_creates = ours
        .iter()
        .filter(|e| e.verb == "create" && e.resource == "jobs")
        .count();
    assert_eq!(
        job_creates, RELEASES,
        "one smoke-test Job per upgrade, none recreated"
    );
    for r in f.releases.list(&Default::default()).await.unwrap().items {
        let status = r.status.unwrap();
        let outcomes: Vec<Outcome> = status.history.iter().map(|h| h.outcome).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Promoted, Outcome::Promoted],
            "{}: no rollout started twice or superseded by itself: {:?}",
            r.metadata.name.unwrap_or_default(),
            status.history
        );
    }
}
