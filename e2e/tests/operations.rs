//! Running the controller: start-up without the CRD, graceful shutdown, leader election.

use std::time::Duration;

use bluegreen_crd::{BlueGreenRelease, Phase};
use bluegreen_e2e::{Env, eventually, repo_root};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_a_clear_error_and_a_non_zero_exit() {
    let env = Env::start_without_crd("no-crd").await.unwrap();
    if env
        .kubesim_only("a shared real cluster keeps the CRD the other scenarios need")
        .is_none()
    {
        return;
    }
    let mut controller = env.start_controller().unwrap();
    let status = controller
        .wait_exit(Duration::from_secs(30))
        .expect("the controller exits on its own");
    assert!(!status.success());
    let log = controller.log_text();
    assert!(
        log.contains("CRD") && log.contains("kubectl apply -f"),
        "an actionable message: {log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_controller_gracefully() {
    let env = Env::start("sigterm").await.unwrap();
    let mut controller = env.start_controller().unwrap();
    // Ready means the caches are synced; then stop it.
    let releases: Api<BlueGreenRelease> = Api::namespaced(env.client.clone(), &env.namespace);
    env.kubectl(&[
        "apply",
        "-f",
        &repo_root().join("examples/web.yaml").display().to_string(),
    ])
    .unwrap();
    eventually("Stable", Duration::from_secs(60), || async {
        let r = releases.get("web").await.map_err(|e| e.to_string())?;
        Ok((r.status.and_then(|s| s.phase) == Some(Phase::Stable)).then_some(()))
    })
    .await
    .unwrap();
    let status = controller.stop().unwrap();
    assert!(
        status.success(),
        "exit status {status}: {}",
        controller.log_text()
    );
    assert!(controller.log_text().contains("controller stopped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_only_the_lease_holder_acts_and_a_follower_takes_over() {
    let env = Env::start("leader").await.unwrap();
    let election = |id: &'static str| {
        [
            ("BLUEGREEN_LEADER_ELECTION", "true"),
            ("BLUEGREEN_LEASE_NAME", "bluegreen-e2e"),
            ("POD_NAME", id),
        ]
    };
    let mut first = env.start_controller_with(&election("first")).unwrap();
    // The Lease lives where the controller runs (POD_NAMESPACE, set by the harness).
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.controller_namespace());
    eventually("first holds the lease", Duration::from_secs(30), || async {
        let lease = leases
            .get_opt("bluegreen-e2e")
            .await
            .map_err(|e| e.to_string())?;
        let holder = lease.and_then(|l| l.spec).and_then(|s| s.holder_identity);
        Ok((holder.as_deref() == Some("first")).then_some(()))
    })
    .await
    .unwrap();
    let second = env.start_controller_with(&election("second")).unwrap();

    let releases: Api<BlueGreenRelease> = Api::namespaced(env.client.clone(), &env.namespace);
    env.kubectl(&[
        "apply",
        "-f",
        &repo_root().join("examples/web.yaml").display().to_string(),
    ])
    .unwrap();
    let stable = |version: &'static str| {
        let releases = releases.clone();
        async move {
            eventually(
                &format!("Stable on {version}"),
                Duration::from_secs(60),
                || async {
                    let r = releases.get("web").await.map_err(|e| e.to_string())?;
                    let s = r.status.unwrap_or_default();
                    Ok((s.phase == Some(Phase::Stable)
                        && s.active_version.as_deref() == Some(version))
                    .then_some(()))
                },
            )
            .await
            .unwrap()
        }
    };
    stable("1.0.0").await;
    assert!(
        !second.log_text().contains("release progressed"),
        "the follower does not reconcile"
    );

    // The leader dies without releasing the lease; the follower takes over after it expires.
    first.kill().unwrap();
    let patch = r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/example/web:2.0.0"}]"#;
    env.kubectl(&["patch", "bgr", "web", "--type", "json", "-p", patch])
        .unwrap();
    stable("2.0.0").await;
    assert!(
        second.log_text().contains("acquired leadership"),
        "{}",
        second.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_follow_the_release() {
    let env = Env::start("metrics").await.unwrap();
    let controller = env.start_controller().unwrap();
    let addr = controller
        .metrics_addr(Duration::from_secs(20))
        .expect("metrics address in the log");
    assert_eq!(
        bluegreen_e2e::http_get(&addr, "/healthz").await.unwrap().0,
        200
    );
    eventually("ready", Duration::from_secs(30), || async {
        let (code, _) = bluegreen_e2e::http_get(&addr, "/readyz")
            .await
            .map_err(|e| e.to_string())?;
        Ok((code == 200).then_some(()))
    })
    .await
    .unwrap();

    let releases: Api<BlueGreenRelease> = Api::namespaced(env.client.clone(), &env.namespace);
    env.kubectl(&[
        "apply",
        "-f",
        &repo_root().join("examples/web.yaml").display().to_string(),
    ])
    .unwrap();
    let info = eventually("release info series", Duration::from_secs(60), || async {
        let (_, body) = bluegreen_e2e::http_get(&addr, "/metrics")
            .await
            .map_err(|e| e.to_string())?;
        let stable = releases
            .get("web")
            .await
            .map_err(|e| e.to_string())?
            .status
            .and_then(|s| s.phase)
            == Some(Phase::Stable);
        Ok((stable && body.contains("bluegreen_flips_total 1")).then_some(body))
    })
    .await
    .unwrap();
    let series = format!(
        r#"bluegreen_release_info{{color="blue",namespace="{}",release="web",version="1.0.0"}} 1"#,
        env.namespace
    );
    assert!(info.contains(&series), "{info}");
    assert!(info.contains(r#"bluegreen_releases{phase="Stable"} 1"#));
    assert!(info.contains(r#"bluegreen_smoke_tests_total{result="succeeded"} 1"#));
    assert!(info.contains("bluegreen_reconcile_duration_seconds_bucket"));
    assert!(info.contains(r#"bluegreen_rollout_duration_seconds_count{outcome="Promoted"} 1"#));

    env.kubectl(&["delete", "bgr", "web"]).unwrap();
    eventually(
        "series of the deleted release gone",
        Duration::from_secs(30),
        || async {
            let (_, body) = bluegreen_e2e::http_get(&addr, "/metrics")
                .await
                .map_err(|e| e.to_string())?;
            Ok((!body.contains(r#"release="web""#)
                && body.contains(r#"bluegreen_releases{phase="Stable"} 0"#))
            .then_some(()))
        },
    )
    .await
    .unwrap();
}
