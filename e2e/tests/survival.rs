//! A live release survives people and faults: each scenario breaks a Stable (or rolling)
//! release the way an operator or the cluster might, then checks from the outside that
//! traffic stays on a tested color and the controller puts things back.

use std::time::{Duration, Instant};

use bluegreen_crd::{ActionResult, Color, Phase, labels};
use bluegreen_e2e::{
    eventually,
    fixture::{Fixture, TIMEOUT, release},
};
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

/// A release on `image` whose pods take `ready_ms` to become ready.
fn slow_pods(image: &str, ready_ms: u64) -> serde_json::Value {
    let mut r = release(image, 0);
    r["spec"]["template"]["metadata"]["annotations"]["kubesim.dev/ready-after-ms"] =
        json!(ready_ms.to_string());
    r
}

/// The notes of the release's Events with `reason`, oldest first.
async fn event_notes(f: &Fixture, reason: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(f.env.client.clone(), &f.env.namespace);
    let mut found: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("shop"))
        .collect();
    found.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    found.into_iter().filter_map(|e| e.note).collect()
}

/// The notes once there are at least `count`: an Event is published after the status
/// write that it explains.
async fn event_notes_at_least(f: &Fixture, reason: &str, count: usize) -> Vec<String> {
    eventually(&format!("{count} {reason} Events"), TIMEOUT, || async {
        let notes = event_notes(f, reason).await;
        Ok((notes.len() >= count).then_some(notes))
    })
    .await
    .unwrap()
}

async fn patch_service(f: &Fixture, name: &str, patch: serde_json::Value) {
    f.services
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
}

/// Defect 1: `kubectl delete rs shop-blue` on a Stable release used to leave the Service
/// without endpoints for good while the release said Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_active_replica_set_is_recreated_and_the_release_is_not_ready_meanwhile() {
    let f = Fixture::start("deleted-active").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&slow_pods("shop:1", 3000));
    f.stable("1").await;
    let old_uid = f.replica_sets.get("shop-blue").await.unwrap().uid();

    f.env.kubectl(&["delete", "rs", "shop-blue"]).unwrap();
    let repairing = f
        .status_when("not Ready while blue is rebuilt", |s| {
            s.condition("Ready")
                .is_some_and(|c| c.status == "False" && c.reason == "ActiveUnavailable")
        })
        .await;
    // Seen while it is gone, or once rebuilt while its pods start.
    assert!(
        repairing.message.as_deref().is_some_and(|m| {
            m.contains("recreating the deleted ReplicaSet shop-blue")
                || m.contains("pods of the active color blue (version 1) are available")
        }),
        "{:?}",
        repairing.message
    );
    let rebuilt = f.replica_sets.get("shop-blue").await.unwrap();
    assert_ne!(rebuilt.uid(), old_uid, "a new ReplicaSet");
    assert_eq!(rebuilt.spec.as_ref().unwrap().replicas, Some(2));

    let status = f
        .status_when("Ready again", |s| {
            s.condition("Ready").is_some_and(|c| c.status == "True")
        })
        .await;
    assert_eq!(status.phase, Some(Phase::Stable));
    assert_eq!(status.history.len(), 1, "a repair is not a release");
    assert_eq!(f.active_selector().await.0, "blue");
    let notes = event_notes_at_least(&f, "ActiveReplicaSetRecreated", 1).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
}

/// Defect 2: a second release naming the Service of the first used to flip its traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_another_release_is_never_written() {
    let f = Fixture::start("foreign-service").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    let live = f.active_selector().await;
    let sim = &f.env;
    let since = sim.audit_next_seq();

    let mut thief = release("thief:1", 0);
    thief["metadata"]["name"] = json!("thief");
    thief["spec"]["template"]["metadata"]["labels"]["app"] = json!("thief");
    f.apply(&thief);
    let status = f
        .status_of_when("thief", "thief stalls", |s| {
            s.condition("Stalled")
                .is_some_and(|c| c.status == "True" && c.reason == "ServiceOwnedByAnotherRelease")
        })
        .await;
    let stalled = status.condition("Stalled").unwrap();
    assert!(
        stalled.message.contains("shop"),
        "names the owner: {}",
        stalled.message
    );
    assert_eq!(status.phase, Some(Phase::Failed));

    // Any edit of either release leaves shop's traffic where it is.
    f.env
        .kubectl(&["scale", "bgr", "shop", "--replicas=3"])
        .unwrap();
    f.env
        .kubectl(&["scale", "bgr", "thief", "--replicas=3"])
        .unwrap();
    f.wait_for_replicas(Color::Blue, 3).await;
    assert_eq!(f.active_selector().await, live);
    let service_writes: Vec<_> = sim
        .audit_since(since)
        .into_iter()
        .filter(|e| e.field_manager == labels::FIELD_MANAGER && e.resource == "services")
        .filter(|e| matches!(e.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .map(|e| format!("{} {}", e.verb, e.name))
        .collect();
    assert!(
        service_writes.is_empty(),
        "nobody wrote a Service: {service_writes:?}"
    );
    let shop = f.releases.get("shop").await.unwrap().status.unwrap();
    assert_eq!(shop.history.len(), 1, "no takeover, no new Promoted entry");
}

/// Defect 3: one expired resource version used to leave every release unreconciled for a
/// minute (the controller's shared trigger backoff grew on the 410).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_during_testing_delays_nothing() {
    let f = Fixture::start("expired-watch").await;
    let Some(sim) = f
        .env
        .kubesim_only("a 410 on every watch is a kubesim fault; an API server expires versions on its own schedule")
    else {
        return;
    };
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    let mut slow = release("shop:2", 0);
    slow["spec"]["smokeTests"][0]["template"]["metadata"]["annotations"]["kubesim.dev/run-ms"] =
        json!("1000");
    f.apply(&slow);
    f.status_when("Testing", |s| {
        s.phase == Some(Phase::Testing) && s.smoke_tests.iter().any(|t| !t.job.is_empty())
    })
    .await;
    let expired = Instant::now();
    sim.expire_resource_versions();
    // The Job ends about a second later; before the fix the release finished 61–79 s after.
    // A bound far above the time it takes and far below the old delay keeps this from
    // being a speed assertion.
    eventually(
        "Stable on 2 soon after the 410",
        Duration::from_secs(20),
        || async {
            let status = f
                .releases
                .get("shop")
                .await
                .map_err(|e| e.to_string())?
                .status;
            Ok(status
                .filter(|s| {
                    s.phase == Some(Phase::Stable) && s.active_version.as_deref() == Some("2")
                })
                .map(|_| ()))
        },
    )
    .await
    .unwrap();
    eprintln!(
        "expired watch → release Stable in {:.1} s",
        expired.elapsed().as_secs_f64()
    );
}

/// Defect 4: a selector moved by hand to a revision that does not exist, or onto the warm
/// standby, used to cost the standby (and with it the rollback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_moved_selector_is_repaired_and_the_standby_kept() {
    let f = Fixture::start("selector-drift").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    let blue = f.stable("1").await;
    f.apply(&release("shop:2", 0));
    let green = f.stable("2").await;
    let live = f.active_selector().await;
    let jobs_before = f
        .jobs
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();

    for (color, revision) in [
        ("blue", "deadbeef00".to_string()),
        ("blue", blue.active_revision.clone().unwrap()),
    ] {
        patch_service(
            &f,
            "shop",
            json!({"spec": {"selector": {labels::COLOR: color, labels::REVISION: revision}}}),
        )
        .await;
        eventually("selector repaired", TIMEOUT, || async {
            Ok((f.active_selector().await == live).then_some(()))
        })
        .await
        .unwrap();
        let status = f.stable("2").await;
        assert_eq!(status.standby, green.standby, "the standby record is kept");
        assert_eq!(status.history, green.history, "a repair is not a release");
    }
    let notes = event_notes_at_least(&f, "SelectorRepaired", 2).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].contains("deadbeef00"), "{notes:?}");
    assert_eq!(
        f.jobs
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        jobs_before,
        "no smoke test reran"
    );
    assert_eq!(f.rs_replicas(Color::Blue).await, 2, "blue stays warm");

    f.request("rollback", "after-drift").await;
    f.status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
        .await;
    assert_eq!(
        f.active_selector().await,
        ("blue".to_string(), blue.active_revision.unwrap())
    );
}

/// Defect 5: our selector keys and label stripped (or the Service replaced with the user's
/// original manifest) used to leave the Service selecting both colors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_replaced_with_the_original_manifest_is_restored() {
    let f = Fixture::start("service-replaced").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&release("shop:2", 0));
    f.stable("2").await;
    let live = f.active_selector().await;

    let current = f.services.get("shop").await.unwrap();
    let original = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "shop", "resourceVersion": current.resource_version()},
        "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 8080}]}
    });
    f.env
        .kubectl_with_stdin(&["replace", "-f", "-"], Some(&original.to_string()))
        .unwrap();
    eventually("our keys and label restored", TIMEOUT, || async {
        let svc = f.services.get("shop").await.map_err(|e| e.to_string())?;
        let selector = svc
            .spec
            .clone()
            .and_then(|s| s.selector)
            .unwrap_or_default();
        let ours = selector.get(labels::COLOR) == Some(&live.0)
            && selector.get(labels::REVISION) == Some(&live.1)
            && selector.get(labels::RELEASE).map(String::as_str) == Some("shop")
            && svc.labels().get(labels::RELEASE).map(String::as_str) == Some("shop");
        Ok(ours.then_some(()))
    })
    .await
    .unwrap();
    let svc = f.services.get("shop").await.unwrap();
    let ports = svc.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(ports.len(), 1, "the ports stay: {ports:?}");
    assert!(
        svc.metadata.owner_references.is_some(),
        "a Service the controller created is applied whole again"
    );
    let status = f.stable("2").await;
    assert_eq!(status.history.len(), 2, "a repair is not a release");
}

/// Defect 6: every Promoted Event used to repeat the note of the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_describes_what_happened_that_time() {
    let f = Fixture::start("event-notes").await;
    let _controller = f.env.start_controller().unwrap();
    for version in ["1", "2", "3"] {
        f.apply(&release(&format!("shop:{version}"), 0));
        f.stable(version).await;
    }
    let notes = event_notes_at_least(&f, "Promoted", 3).await;
    assert_eq!(notes.len(), 3, "{notes:?}");
    for (note, (color, version)) in notes
        .iter()
        .zip([("blue", "1"), ("green", "2"), ("blue", "3")])
    {
        assert!(
            note.contains(&format!("selects {color} (version {version}")),
            "{notes:?}"
        );
    }
    let described = f.env.kubectl(&["describe", "bgr", "shop"]).unwrap();
    assert!(
        described.contains("selects blue (version 3"),
        "kubectl describe shows the latest promotion:\n{described}"
    );
}

/// Defect 7: an action id used before used to run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_id_is_consumed_once() {
    let f = Fixture::start("action-once").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&release("shop:2", 0));
    f.stable("2").await;

    f.request("rollback", "dup-1").await;
    f.status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
        .await;
    f.request("retry", "r2").await;
    f.status_when("retried onto 2", |s| {
        s.phase == Some(Phase::Stable)
            && s.active_version.as_deref() == Some("2")
            && s.last_action.as_ref().is_some_and(|a| a.id == "r2")
    })
    .await;
    let live = f.active_selector().await;

    f.request("rollback", "dup-1").await;
    let status = f
        .status_when("dup-1 refused", |s| {
            s.last_action.as_ref().is_some_and(|a| a.id == "dup-1")
        })
        .await;
    let action = status.last_action.unwrap();
    assert_eq!(action.result, ActionResult::Refused, "{action:?}");
    assert!(
        action.message.contains("already used"),
        "{}",
        action.message
    );
    assert_eq!(f.active_selector().await, live);
    assert!(status.consumed_action_ids.contains(&"r2".to_string()));
    let by_dup = status
        .history
        .iter()
        .filter(|h| h.reason.as_deref().is_some_and(|r| r.contains("dup-1")))
        .count();
    assert_eq!(by_dup, 1, "{:?}", status.history);
}

/// Defect 8: renaming `service.name` used to leave the old Service behind, still selecting
/// the old revision. A Service the controller created is deleted after the flip onto the
/// new name; an adopted one is handed back without our keys. (The preview Service is named
/// after the release unless `service.previewName` says otherwise.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_the_service_retires_the_old_one() {
    let f = Fixture::start("service-rename").await;
    f.create_user_service(json!({
        "metadata": {"name": "legacy", "labels": {"owner": "helm"}},
        "spec": {"selector": {"app": "shop"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .await;
    let _controller = f.env.start_controller().unwrap();
    let named = |service: &str| {
        let mut r = release("shop:1", 0);
        r["spec"]["service"]["name"] = json!(service);
        r
    };
    let storefront = || {
        let mut r = named("storefront");
        r["spec"]["service"]["previewName"] = json!("storefront-preview");
        r
    };

    // Adopted "legacy" → created "shop": legacy is handed back.
    f.apply(&named("legacy"));
    f.stable("1").await;
    let live = f.selector_of("legacy").await;
    f.apply(&named("shop"));
    eventually("legacy handed back", TIMEOUT, || async {
        let svc = f.services.get("legacy").await.map_err(|e| e.to_string())?;
        let selector = svc
            .spec
            .clone()
            .and_then(|s| s.selector)
            .unwrap_or_default();
        let handed_back = !selector.contains_key(labels::COLOR)
            && !selector.contains_key(labels::REVISION)
            && !selector.contains_key(labels::RELEASE)
            && !svc.labels().contains_key(labels::RELEASE);
        Ok(handed_back.then_some(svc))
    })
    .await
    .map(|svc| {
        assert_eq!(svc.labels()["owner"], "helm", "the user's fields stay");
        assert_eq!(svc.spec.unwrap().selector.unwrap()["app"], "shop");
    })
    .unwrap();
    assert_eq!(f.selector_of("shop").await, live);

    // Created "shop" → "storefront" (and its preview Service renamed too): shop is deleted
    // once storefront selects blue, the old preview Service at once.
    f.apply(&storefront());
    eventually("shop deleted", TIMEOUT, || async {
        Ok(f.services
            .get_opt("shop")
            .await
            .map_err(|e| e.to_string())?
            .is_none()
            .then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(f.selector_of("storefront").await, live);
    let status = f.stable("1").await;
    assert_eq!(status.history.len(), 1, "a rename is not a release");
    assert!(
        f.services.get_opt("shop-preview").await.unwrap().is_none(),
        "old preview deleted"
    );
}
