//! The first proof of the whole product: kubesim, the unmodified controller binary (only a
//! kubeconfig), and kubectl. The example release goes Stable on blue, then through an
//! upgrade with a passing smoke test to green; the active Service's selector is checked at
//! every step.

use std::time::Duration;

use bluegreen_crd::{BlueGreenRelease, Color, Outcome, Phase, labels};
use bluegreen_e2e::{Env, eventually, repo_root};
use k8s_openapi::api::{batch::v1::Job, core::v1::Service};
use kube::Api;

const TIMEOUT: Duration = Duration::from_secs(60);

/// (color, revision) the Service selects.
async fn selected(services: &Api<Service>, name: &str) -> Option<(String, String)> {
    let svc = services.get_opt(name).await.ok()??;
    let selector = svc.spec?.selector?;
    Some((
        selector.get(labels::COLOR)?.clone(),
        selector.get(labels::REVISION)?.clone(),
    ))
}

async fn wait_stable(releases: &Api<BlueGreenRelease>, version: &str) -> BlueGreenRelease {
    eventually(
        &format!("release web Stable with version {version}"),
        TIMEOUT,
        || async {
            let release = releases.get("web").await.map_err(|e| e.to_string())?;
            let status = release.status.clone().unwrap_or_default();
            let ready = status
                .condition("Ready")
                .is_some_and(|c| c.status == "True");
            if status.phase == Some(Phase::Stable)
                && ready
                && status.active_version.as_deref() == Some(version)
            {
                Ok(Some(release))
            } else {
                Err(format!(
                    "phase {:?}, message {:?}",
                    status.phase, status.message
                ))
            }
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_release_goes_stable_on_blue_then_upgrades_to_green() {
    let env = Env::start("first-proof").await.expect("cluster");
    let controller = env.start_controller().expect("controller binary");
    let releases: Api<BlueGreenRelease> = Api::namespaced(env.client.clone(), &env.namespace);
    let services: Api<Service> = Api::namespaced(env.client.clone(), &env.namespace);

    let example = repo_root().join("examples/web.yaml");
    env.kubectl(&["apply", "-f", &example.display().to_string()])
        .expect("kubectl apply example");

    // First release: blue.
    let release = wait_stable(&releases, "1.0.0").await;
    let status = release.status.unwrap();
    let blue_revision = status.active_revision.clone().unwrap();
    assert_eq!(status.active_color, Some(Color::Blue));
    assert_eq!(
        selected(&services, "web").await,
        Some(("blue".into(), blue_revision.clone()))
    );
    let table = env.kubectl(&["get", "bgr", "web"]).unwrap();
    assert!(table.lines().next().unwrap().split_whitespace().eq([
        "NAME", "ACTIVE", "VERSION", "PREVIEW", "PHASE", "READY", "AGE"
    ]));
    let row: Vec<_> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["web", "blue", "1.0.0"], "{table}");
    assert!(row.contains(&"Stable") && row.contains(&"True"), "{table}");

    // Upgrade: a new image. Until the flip, the active Service keeps selecting blue.
    let patch = r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/example/web:1.1.0"}]"#;
    env.kubectl(&["patch", "bgr", "web", "--type", "json", "-p", patch])
        .expect("kubectl patch");
    let seen_phases = std::sync::Mutex::new(Vec::new());
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), &env.namespace);
    let release = eventually("upgrade to 1.1.0", TIMEOUT, || {
        let (releases, services, jobs, blue_revision) =
            (&releases, &services, &jobs, &blue_revision);
        let seen = &seen_phases;
        async move {
            // The Service first: whatever it selects, the world must already justify it.
            let target = selected(services, "web").await;
            let release = releases.get("web").await.map_err(|e| e.to_string())?;
            let status = release.status.clone().unwrap_or_default();
            if let Some(phase) = status.phase {
                let mut seen = seen.lock().unwrap();
                if seen.last() != Some(&phase) {
                    seen.push(phase);
                }
            }
            match &target {
                Some((color, revision)) if color == "blue" && revision == blue_revision => {
                    Err(format!("phase {:?}: {:?}", status.phase, status.message))
                }
                Some((color, revision)) if color == "green" => {
                    // Green may only be selected once its smoke test has passed.
                    let job = jobs
                        .get(&format!("web-smoke-{}", &revision[..8]))
                        .await
                        .map_err(|e| e.to_string())?;
                    let complete = job
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Complete" && c.status == "True");
                    assert!(
                        complete,
                        "the active Service selected green before its smoke test passed"
                    );
                    Ok((status.phase == Some(Phase::Stable)).then_some(release))
                }
                other => panic!(
                    "the active Service selected {other:?} (phase {:?})",
                    status.phase
                ),
            }
        }
    })
    .await
    .unwrap();
    let seen_phases = seen_phases.into_inner().unwrap();
    assert!(
        seen_phases.contains(&Phase::Testing),
        "went through Testing: {seen_phases:?}"
    );

    let status = release.status.unwrap();
    let green_revision = status.active_revision.clone().unwrap();
    assert_ne!(green_revision, blue_revision);
    assert_eq!(
        selected(&services, "web").await,
        Some(("green".into(), green_revision))
    );
    assert_eq!(
        selected(&services, "web-preview").await,
        Some(("blue".into(), blue_revision)),
        "preview follows the cold color"
    );
    assert_eq!(status.standby.as_ref().map(|s| s.color), Some(Color::Blue));
    assert_eq!(status.history.len(), 2);
    assert!(
        status
            .history
            .iter()
            .all(|h| h.outcome == Outcome::Promoted)
    );
    assert!(
        status
            .smoke_tests
            .iter()
            .all(|t| t.phase == bluegreen_crd::SmokeTestPhase::Succeeded)
    );
    assert_eq!(
        wait_stable(&releases, "1.1.0")
            .await
            .status
            .unwrap()
            .active_color,
        Some(Color::Green)
    );

    let events = env.kubectl(&["get", "events"]).unwrap();
    assert!(events.contains("Promoted"), "{events}");
    drop(controller);
}
