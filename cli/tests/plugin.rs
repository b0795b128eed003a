//! `kubectl bluegreen` end to end: kubesim, the real controller binary, real kubectl finding
//! the plugin on PATH. Each test checks output and exit codes, and that refused or bad
//! requests change nothing.

mod common;

use std::time::Duration;

use bluegreen_crd::{ActionResult, Phase, labels};
use bluegreen_e2e::{
    eventually,
    fixture::{Fixture, RELEASE, TIMEOUT, release},
};
use common::{bluegreen, finish, normalise, spawn};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Endpoints;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

fn manual(image: &str) -> Value {
    let mut r = release(image, 0);
    r["spec"]["promotion"] = json!({"mode": "Manual"});
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_discovers_the_plugin_and_it_answers_without_a_cluster() {
    let f = Fixture::start("cli-discovery").await;
    let list = std::process::Command::new(bluegreen_e2e::kubectl_path().unwrap())
        .args(["plugin", "list", "--name-only"])
        .env("PATH", common::path_with(&common::plugin_dir(&f.env)))
        .output()
        .unwrap();
    // kubectl exits 1 when a directory on PATH is missing; what it lists still counts.
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("kubectl-bluegreen"), "{list}");

    let version = bluegreen(&f.env, &["version"]);
    assert_eq!(version.code, 0, "{version:?}");
    assert_eq!(
        version.stdout,
        format!(
            "kubectl-bluegreen {} (API bluegreen.dev/v1alpha1)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let json: Value =
        serde_json::from_str(&bluegreen(&f.env, &["version", "-o", "json"]).stdout).unwrap();
    assert_eq!(json["apiVersion"], "bluegreen.dev/v1alpha1");
    for shell in ["bash", "zsh", "fish"] {
        let script = bluegreen(&f.env, &["completion", shell]);
        assert_eq!(script.code, 0, "{script:?}");
        assert!(
            script.stdout.contains("kubectl-bluegreen") && script.stdout.contains("rollback"),
            "{shell}: {}",
            script.stdout
        );
    }
    let usage = bluegreen(&f.env, &["promote"]);
    assert_eq!(usage.code, 64, "a usage error: {usage:?}");
    assert!(usage.stderr.contains("NAME"), "{usage:?}");
    let help = bluegreen(&f.env, &["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{help:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_gates_ci_on_ready_failed_and_timeout() {
    let f = Fixture::start("cli-watch").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    let ready = bluegreen(&f.env, &["status", RELEASE, "--watch", "--timeout", "60s"]);
    assert_eq!(ready.code, 0, "{ready:#?}");
    assert!(
        ready
            .stdout
            .starts_with("watching release shop in namespace default (timeout 60s)\n"),
        "{}",
        ready.stdout
    );
    assert!(
        ready.stdout.contains("Phase:       Stable"),
        "{}",
        ready.stdout
    );
    assert_eq!(ready.stderr, "shop is Ready: version 1 on blue\n");

    // The plain view, once: every section, times normalised.
    let view = bluegreen(&f.env, &["status", RELEASE]);
    assert_eq!(view.code, 0);
    let text = normalise(&view.stdout);
    for line in [
        "Name:  shop\n",
        "Namespace:  default\n",
        "Phase:  Stable\n",
        "Active:  blue  version 1  revision <rev>\n",
        "Progress:  blue 2/2 pods ready, 2 available\n",
        "Smoke tests: smoke  Succeeded  <age>\n",
        "Conditions:  Ready  True  Stable  <age>",
        "Events:  <age>  Normal",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let json: Value =
        serde_json::from_str(&bluegreen(&f.env, &["status", RELEASE, "-o", "json"]).stdout)
            .unwrap();
    assert_eq!(json["verdict"], "Ready");
    assert_eq!(json["active"]["color"], "blue");
    let yaml = bluegreen(&f.env, &["status", RELEASE, "-o", "yaml"]);
    assert!(yaml.stdout.contains("verdict: Ready"), "{}", yaml.stdout);

    // A failing smoke test: exit 1, the reason on stderr.
    f.apply(&release("shop:2", 1));
    let failed = bluegreen(&f.env, &["status", RELEASE, "-w", "--timeout", "60s"]);
    assert_eq!(failed.code, 1, "{failed:#?}");
    assert!(
        failed.stdout.contains("Phase:       Failed"),
        "{}",
        failed.stdout
    );
    assert!(
        failed.stderr.starts_with("shop is Failed: "),
        "{}",
        failed.stderr
    );

    // Pods that never become ready: the deadline is far, the timeout is not.
    let mut stuck = release("shop:3", 0);
    stuck["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubesim.dev/never-ready": "true"});
    f.apply(&stuck);
    let timeout = bluegreen(&f.env, &["status", RELEASE, "--watch", "--timeout", "2s"]);
    assert_eq!(timeout.code, 2, "{timeout:#?}");
    assert!(
        timeout
            .error_line()
            .starts_with("error: timed out after 2s waiting for shop to be Ready; it is "),
        "{timeout:#?}"
    );
    assert!(timeout.stdout.contains("deadline in"), "{}", timeout.stdout);

    let missing = bluegreen(&f.env, &["status", "nope", "--watch"]);
    assert_eq!(missing.code, 3, "{missing:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_history_show_the_audit_trail() {
    let f = Fixture::start("cli-list").await;
    let _controller = f.env.start_controller().unwrap();
    let empty = bluegreen(&f.env, &["list"]);
    assert_eq!(empty.code, 0);
    assert_eq!(empty.stderr, "No releases found in default.\n");
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&release("shop:2", 0));
    f.stable("2").await;

    let list = bluegreen(&f.env, &["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    assert_eq!(
        normalise(&list.stdout),
        "NAME  ACTIVE  VERSION  PREVIEW  PHASE  READY  LAST FLIP  AGE\n\
         shop  green  2  1  Stable  True  <age>  <age>\n"
    );
    let all = bluegreen(&f.env, &["list", "-A"]);
    assert!(
        normalise(&all.stdout).starts_with("NAMESPACE  NAME  ACTIVE"),
        "{}",
        all.stdout
    );
    let rows: Value =
        serde_json::from_str(&bluegreen(&f.env, &["list", "-o", "json"]).stdout).unwrap();
    assert_eq!(rows[0]["name"], "shop");
    assert_eq!(rows[0]["version"], "2");

    let history = bluegreen(&f.env, &["history", RELEASE]);
    assert_eq!(history.code, 0, "{history:?}");
    assert_eq!(
        normalise(&history.stdout),
        "VERSION  REVISION  COLOR  STARTED  PROMOTED  FINISHED  DURATION  OUTCOME  REASON\n\
         2  <rev>  green  <time>  <time>  <time>  <age>  Promoted\n\
         1  <rev>  blue  <time>  <time>  <time>  <age>  Promoted\n"
    );
    let yaml = bluegreen(&f.env, &["history", RELEASE, "-o", "yaml"]);
    assert!(yaml.stdout.contains("outcome: Promoted"), "{}", yaml.stdout);
    let json: Value =
        serde_json::from_str(&bluegreen(&f.env, &["history", RELEASE, "-o", "json"]).stdout)
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["version"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_say_what_will_happen_and_wait_for_the_answer() {
    let f = Fixture::start("cli-actions").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&manual("shop:2"));
    f.status_when("AwaitingPromotion", |s| {
        s.phase == Some(Phase::AwaitingPromotion)
    })
    .await;

    let promote = bluegreen(&f.env, &["promote", RELEASE]);
    assert_eq!(promote.code, 0, "{promote:#?}");
    assert_eq!(
        promote.stdout,
        "promote shop: the active Service moves from blue (version 1) to green (version 2) in one write; blue (version 1) stays warm for 300s\n\
         Accepted promote: promoting version 2 on green\n\
         follow it with `kubectl bluegreen status shop --watch`\n"
    );
    f.stable("2").await;
    assert_eq!(f.active_selector().await.0, "green");

    let rollback = bluegreen(&f.env, &["rollback", RELEASE]);
    assert_eq!(rollback.code, 0, "{rollback:#?}");
    assert!(
        rollback.stdout.starts_with("rollback shop: the active Service moves from green (version 2) back to the warm blue (version 1)"),
        "{}",
        rollback.stdout
    );
    assert!(
        rollback.stdout.contains("Accepted rollback: "),
        "{}",
        rollback.stdout
    );
    f.status_when("RolledBack", |s| s.phase == Some(Phase::RolledBack))
        .await;
    assert_eq!(f.active_selector().await.0, "blue");

    // retry returns once the release has left RolledBack, so a watch right after it gates
    // on the new rollout, not on the old failure.
    let retry = bluegreen(&f.env, &["retry", RELEASE]);
    assert_eq!(retry.code, 0, "{retry:#?}");
    assert!(
        retry.stdout.contains("Accepted retry: "),
        "{}",
        retry.stdout
    );
    let phase = f.releases.get(RELEASE).await.unwrap().status.unwrap().phase;
    assert_ne!(phase, Some(Phase::RolledBack));

    // The retried revision is the warm green: it goes back live without a rollout.
    f.stable("2").await;
    assert_eq!(f.active_selector().await.0, "green");

    // abort while a rollout awaits promotion; --no-wait returns at once.
    f.apply(&manual("shop:3"));
    f.status_when("AwaitingPromotion of 3", |s| {
        s.phase == Some(Phase::AwaitingPromotion) && s.preview_version.as_deref() == Some("3")
    })
    .await;
    let abort = bluegreen(&f.env, &["abort", RELEASE, "--no-wait"]);
    assert_eq!(abort.code, 0, "{abort:#?}");
    assert!(
        abort.stdout.contains("sent abort (id cli-"),
        "{}",
        abort.stdout
    );
    let status = f
        .status_when("abort answered", |s| {
            s.last_action.as_ref().is_some_and(|a| a.verb == "abort")
        })
        .await;
    assert_eq!(status.last_action.unwrap().result, ActionResult::Accepted);
    assert_eq!(
        f.active_selector().await.0,
        "green",
        "abort never moves traffic"
    );
}

/// Phase, active selector and history length: what a refused action must leave alone.
async fn snapshot(f: &Fixture) -> (Option<Phase>, (String, String), usize) {
    let status = f.releases.get(RELEASE).await.unwrap().status.unwrap();
    (
        status.phase,
        f.active_selector().await,
        status.history.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_non_zero_with_the_controllers_reason_and_change_nothing() {
    let f = Fixture::start("cli-refusals").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    let before = snapshot(&f).await;
    let cases = [
        ("promote", "nothing awaits promotion (phase Stable)"),
        ("rollback", "there is no previous color to roll back to"),
        ("abort", "no rollout in progress (phase Stable)"),
        ("retry", "nothing to retry (phase Stable)"),
    ];
    for (verb, reason) in cases {
        let run = bluegreen(&f.env, &[verb, RELEASE]);
        assert_eq!(run.code, 1, "{verb}: {run:#?}");
        assert!(
            run.stdout
                .contains("the controller will most likely refuse it"),
            "{verb} says so first: {}",
            run.stdout
        );
        assert_eq!(
            run.error_line(),
            format!("error: {verb} refused by the controller: {reason} (nothing was changed)")
        );
        assert_eq!(snapshot(&f).await, before, "{verb} changed nothing");
    }

    // A paused release refuses everything.
    f.env
        .kubectl(&[
            "patch",
            "bgr",
            RELEASE,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ])
        .unwrap();
    f.status_when("Paused", |s| s.phase == Some(Phase::Paused))
        .await;
    let paused = bluegreen(&f.env, &["rollback", RELEASE]);
    assert_eq!(paused.code, 1);
    assert!(
        paused
            .error_line()
            .contains("the release is paused (spec.paused); unpause it first"),
        "{paused:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_actionable_line_and_changes_nothing() {
    let f = Fixture::start("cli-bad-input").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    let sim = f.env.kubesim().unwrap();
    let writes_by_plugin = |since: u64| -> Vec<String> {
        sim.audit_since(since)
            .into_iter()
            .filter(|e| e.resource == "bluegreenreleases" && e.verb == "patch")
            .filter(|e| {
                !e.user_agent.contains("bluegreen-controller")
                    && e.field_manager != labels::FIELD_MANAGER
            })
            .map(|e| format!("{} {}", e.verb, e.name))
            .collect()
    };

    // Unknown release.
    let since = sim.audit_next_seq();
    let unknown = bluegreen(&f.env, &["promote", "nope"]);
    assert_eq!(unknown.code, 3, "{unknown:#?}");
    assert_eq!(
        unknown.error_line(),
        "error: release nope not found in namespace default; see `kubectl bluegreen list -A`"
    );
    // Wrong namespace: the message says where it is.
    f.env.kubectl(&["create", "namespace", "other"]).unwrap();
    let wrong = bluegreen(&f.env, &["-n", "other", "rollback", RELEASE]);
    assert_eq!(wrong.code, 3, "{wrong:#?}");
    assert_eq!(
        wrong.error_line(),
        "error: release shop not found in namespace other; it exists in namespace default: add -n default"
    );
    let history = bluegreen(&f.env, &["history", "nope"]);
    assert_eq!(history.code, 3);
    assert_eq!(writes_by_plugin(since), Vec::<String>::new());

    // RBAC: a 403 names the verb and the resource.
    sim.inject(kubesim::Fault::fail("get", "bluegreenreleases", 403));
    let denied = bluegreen(&f.env, &["status", RELEASE]);
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert!(
        denied.error_line().starts_with("error: forbidden: you may not get bluegreenreleases.bluegreen.dev in namespace default; ask a cluster admin for a Role that grants 'get' on 'bluegreenreleases.bluegreen.dev'"),
        "{denied:#?}"
    );
    sim.inject(kubesim::Fault::fail("patch", "bluegreenreleases", 403));
    let denied = bluegreen(&f.env, &["rollback", RELEASE]);
    assert_eq!(denied.code, 1, "{denied:#?}");
    assert!(
        denied.error_line().starts_with("error: forbidden: you may not patch bluegreenreleases.bluegreen.dev in namespace default"),
        "{denied:#?}"
    );
    sim.clear_faults();
    let annotations = f
        .releases
        .get(RELEASE)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(!annotations.contains_key(labels::ACTION), "{annotations:?}");

    // No cluster: a kubeconfig pointing at a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let kubeconfig = f.env.dir.join("nothing-there.kubeconfig");
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&f.env.kubeconfig).unwrap().replace(
            &sim.url().trim_start_matches("http://").to_string(),
            &format!("127.0.0.1:{port}"),
        ),
    )
    .unwrap();
    let kc = kubeconfig.display().to_string();
    let unreachable = bluegreen(&f.env, &["--kubeconfig", &kc, "status", RELEASE]);
    assert_eq!(unreachable.code, 1, "{unreachable:#?}");
    let line = unreachable.error_line();
    assert!(
        line.starts_with(&format!(
            "error: cannot reach the cluster at http://127.0.0.1:{port} (context kubesim): "
        )) && line.ends_with("check that it is up, or pick another with --context or --kubeconfig"),
        "{line}"
    );
    let no_file = bluegreen(&f.env, &["--kubeconfig", "/nonexistent/kubeconfig", "list"]);
    assert_eq!(no_file.code, 1);
    assert!(
        no_file
            .error_line()
            .starts_with("error: cannot use kubeconfig /nonexistent/kubeconfig: "),
        "{no_file:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_loads_as_kubectl_does() {
    let f = Fixture::start("cli-kubeconfig").await;
    f.apply(&release("shop:1", 0));
    f.env.kubectl(&["create", "namespace", "team"]).unwrap();
    // A first file with only a context (namespace team) on the second file's cluster and user.
    let first = f.env.dir.join("team.kubeconfig");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\ncurrent-context: team\ncontexts:\n- name: team\n  context: {cluster: kubesim, user: kubesim, namespace: team}\n",
    )
    .unwrap();
    let joined = format!("{}:{}", first.display(), f.env.kubeconfig.display());
    let run = |args: &[&str]| {
        let output = common::command(&f.env, args)
            .env("KUBECONFIG", &joined)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = run(&["list"]);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(0), "No releases found in team.\n"),
        "the context's namespace"
    );
    let (code, stdout, _) = run(&["list", "--context", "kubesim"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("shop"),
        "--context picks the other context: {stdout}"
    );
    let (code, stdout, _) = run(&["list", "-n", "default"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("shop"),
        "-n wins over the context: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_raced_by_a_spec_change_is_not_sent() {
    let f = Fixture::start("cli-race").await;
    let _controller = f.env.start_controller().unwrap();
    f.apply(&release("shop:1", 0));
    f.stable("1").await;
    f.apply(&manual("shop:2"));
    f.status_when("AwaitingPromotion", |s| {
        s.phase == Some(Phase::AwaitingPromotion)
    })
    .await;
    let sim = f.env.kubesim().unwrap();
    let last_action = f
        .releases
        .get(RELEASE)
        .await
        .unwrap()
        .status
        .unwrap()
        .last_action;

    // The plugin's patch is held back long enough for a spec change (an update, so not
    // held) to land between its read and its write.
    let body: kubesim::Fault = serde_json::from_value(json!({
        "latency": {"ms": 1500, "verb": "patch", "resource": "bluegreenreleases", "subresource": ""}
    }))
    .unwrap();
    sim.inject(body);
    let since = sim.audit_next_seq();
    let child = spawn(&f.env, &["promote", RELEASE]);
    eventually("the plugin read the release", TIMEOUT, || async {
        Ok(sim
            .audit_since(since)
            .iter()
            .any(|e| e.verb == "get" && e.resource == "bluegreenreleases" && e.name == RELEASE)
            .then_some(()))
    })
    .await
    .unwrap();
    let mut changed = f.releases.get(RELEASE).await.unwrap();
    changed.spec.template.spec.as_mut().unwrap().containers[0].image = Some("shop:3".into());
    f.releases
        .replace(RELEASE, &Default::default(), &changed)
        .await
        .unwrap();
    let run = finish(child);
    sim.clear_faults();
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(
        run.error_line(),
        "error: the spec of shop changed while the promote was being sent, so it could act on another revision than the one shown; nothing was done. Run `kubectl bluegreen status shop` and ask again"
    );
    let now = f.releases.get(RELEASE).await.unwrap();
    assert!(
        !now.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(labels::ACTION),
        "no action was sent"
    );
    assert_eq!(now.status.unwrap().last_action, last_action);
    assert_eq!(f.active_selector().await.0, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_moves_a_deployment_over_without_downtime() {
    let f = Fixture::start("cli-convert").await;
    let _controller = f.env.start_controller().unwrap();
    // Made by kubectl's own generators, sent as JSON (kubesim reads protobuf bodies only for
    // the kinds Helm sends that way).
    let deployment = f
        .env
        .kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=ghcr.io/example/web:1.0.0",
            "--replicas=2",
            "--port=8080",
            "--dry-run=client",
            "-o",
            "json",
        ])
        .unwrap();
    let service = f
        .env
        .kubectl(&[
            "create",
            "service",
            "clusterip",
            "web",
            "--tcp=80:8080",
            "--dry-run=client",
            "-o",
            "json",
        ])
        .unwrap();
    for manifest in [deployment, service] {
        f.env
            .kubectl_with_stdin(&["apply", "-f", "-"], Some(&manifest))
            .unwrap();
    }
    let endpoints: Api<Endpoints> = Api::namespaced(f.env.client.clone(), &f.env.namespace);
    let ready = |e: &Endpoints| -> Vec<String> {
        e.subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .map(|a| {
                a.target_ref
                    .as_ref()
                    .and_then(|t| t.name.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    eventually("the Deployment serves", TIMEOUT, || async {
        let e = endpoints.get_opt("web").await.map_err(|e| e.to_string())?;
        Ok(e.filter(|e| ready(e).len() == 2).map(|_| ()))
    })
    .await
    .unwrap();

    let convert = bluegreen(&f.env, &["convert", "deployment/web"]);
    assert_eq!(convert.code, 0, "{convert:#?}");
    assert!(
        convert.stdout.starts_with(
            "# BlueGreenRelease web, equivalent to deployment/web and the Service web"
        ),
        "{}",
        convert.stdout
    );
    assert!(
        convert
            .stdout
            .contains("kubectl bluegreen status web -n default --watch --timeout 10m")
    );
    let json: Value =
        serde_json::from_str(&bluegreen(&f.env, &["convert", "deploy/web", "-o", "json"]).stdout)
            .unwrap();
    assert_eq!(json["spec"]["service"]["name"], "web");
    assert_eq!(json["spec"]["replicas"], 2);
    assert_eq!(
        json["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/example/web:1.0.0"
    );

    // Every state of the Service's endpoints from here on is recorded.
    let mut stream = watcher::watcher(
        endpoints.clone(),
        watcher::Config::default().fields("metadata.name=web"),
    )
    .applied_objects()
    .boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let monitor = tokio::spawn(async move {
        while let Some(Ok(e)) = stream.next().await {
            let _ = tx.send(ready(&e));
        }
    });

    // Step 1: apply the printed output as it is (comments and all).
    f.env
        .kubectl_with_stdin(&["apply", "-f", "-"], Some(&convert.stdout))
        .unwrap();
    // Step 2: the CI gate.
    let gate = bluegreen(&f.env, &["status", "web", "--watch", "--timeout", "60s"]);
    assert_eq!(gate.code, 0, "{gate:#?}");
    // Step 3: delete the Deployment, and wait for its pods to be gone.
    f.env.kubectl(&["delete", "deployment", "web"]).unwrap();
    eventually("only blue pods behind the Service", TIMEOUT, || async {
        let e = endpoints.get("web").await.map_err(|e| e.to_string())?;
        let pods = ready(&e);
        Ok((pods.len() == 2 && pods.iter().all(|p| p.starts_with("web-blue-"))).then_some(()))
    })
    .await
    .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(f.env.client.clone(), &f.env.namespace);
    eventually("the Deployment's pods are gone", TIMEOUT, || async {
        let list = pods
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(list
            .items
            .iter()
            .all(|p| {
                // Pods of the Deployment have no color label (nor Job pods: there are none).
                p.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(labels::COLOR))
            })
            .then_some(()))
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    monitor.abort();
    let mut seen = vec![];
    while let Ok(state) = rx.try_recv() {
        seen.push(state);
    }
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|pods| !pods.is_empty()),
        "the Service always had ready endpoints: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|pods| pods.iter().any(|p| p.starts_with("web-blue-")))
    );
}
