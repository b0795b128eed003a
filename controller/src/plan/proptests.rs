//! Property tests: random release settings and random sequences of events (reconciles,
//! crashes mid-plan, pods becoming available or not, Jobs finishing, the clock, spec changes,
//! manual actions) against the planner, with DESIGN §4's invariants asserted on every step.
//!
//! Every plan is executed through [`Harness::exec`], which checks each write against the
//! world as it stands right before that write (invariants 1, 2, 3, 7 and the crash-safety
//! rule that Jobs belong to a recorded rollout), and each executed plan as a whole (3, no
//! lost history). After every event the world is checked for 4; after every full reconcile a
//! copy of the world must reach a quiet fixpoint within a couple of reconciles (5); at every
//! crash a twin that did not crash must converge to the same end state (6); at every
//! `spec.replicas` change the planner's answer must be a scale, never a release (9).

use std::collections::{BTreeMap, BTreeSet};

use bluegreen_crd::{
    BlueGreenReleaseStatus, Color, Outcome, PromotionMode, RolloutStatus, labels,
    validate::validate,
};
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};

use super::testkit::{Sim, release};
use super::{Occurrence, Plan, Write};
use crate::desired;
use crate::observe::{self, JobState, Reading, ServiceView};

/// `spec.analysis` of a setup: the same check before and after the flip, 10 s apart.
fn analysis((pre, post): (bool, Option<i32>)) -> Option<bluegreen_crd::AnalysisSpec> {
    if !pre && post.is_none() {
        return None;
    }
    let check = serde_json::json!([{"name": "error-rate", "query": "sum(errors)", "max": 0.5}]);
    let mut analysis = serde_json::json!({
        "prometheus": {"address": "http://prometheus:9090"},
        "interval": "10s",
    });
    if pre {
        analysis["prePromotion"] = serde_json::json!({"samples": 2, "checks": check});
    }
    if let Some(limit) = post {
        analysis["postPromotion"] =
            serde_json::json!({"duration": "60s", "failureLimit": limit, "checks": check});
    }
    Some(serde_json::from_value(analysis).expect("a valid analysis"))
}

const IMAGES: [&str; 3] = ["web:1", "web:2", "web:3"];
const TESTS: [&str; 2] = ["smoke", "load"];
const VERBS: [&str; 5] = ["promote", "abort", "retry", "rollback", "dance"];
/// Reconciles after a full one within which an unchanged world must be quiet (invariant 5).
const QUIET_WITHIN: usize = 3;
/// Reconciles (with pods settling and Jobs passing in between) to converge after a crash.
const CONVERGE_WITHIN: usize = 40;

/// `cases` per property; `PROPTEST_CASES` overrides it for a longer soak.
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    Config {
        cases,
        // Failures are turned into example tests in tests.rs, not regression files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The release's settings, fixed for one case (the events change some of them).
#[derive(Clone, Debug)]
struct Setup {
    tests: usize,
    replicas: i32,
    preview_replicas: Option<i32>,
    standby_replicas: i32,
    scale_down_delay: i32,
    progress_deadline: i32,
    auto_promote_after: i32,
    manual: bool,
    retest_on_rollback: bool,
    history_limit: i32,
    /// The active Service exists already (the user's), selecting only `app: web`.
    adopted: bool,
    /// Releases driven to quiet before the events start (0: a fresh release).
    warm: usize,
    /// `spec.analysis`: a pre-promotion gate, post-promotion verification (with its
    /// failureLimit), both or neither.
    analysis: (bool, Option<i32>),
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        (0..=2usize, 1..=4i32, prop::option::of(1..=4i32), 0..=1i32),
        (
            prop_oneof![Just(0), Just(30), Just(300)],
            prop_oneof![Just(60), Just(600)],
            prop_oneof![3 => Just(0), 1 => Just(30)],
        ),
        (
            prop::bool::weighted(0.25),
            prop::bool::weighted(0.25),
            prop_oneof![Just(1), Just(3), Just(10)],
            prop::bool::weighted(0.25),
            0..=2usize,
        ),
        (
            prop::bool::weighted(0.3),
            prop::option::weighted(0.3, 0..=1i32),
        ),
    )
        .prop_map(
            |(
                (tests, replicas, preview_replicas, standby_replicas),
                (scale_down_delay, progress_deadline, auto_promote_after),
                (manual, retest_on_rollback, history_limit, adopted, warm),
                analysis,
            )| Setup {
                tests,
                replicas,
                preview_replicas,
                standby_replicas,
                scale_down_delay,
                progress_deadline,
                auto_promote_after,
                manual,
                retest_on_rollback,
                history_limit,
                adopted,
                warm,
                analysis,
            },
        )
}

#[derive(Clone, Debug)]
enum Event {
    /// Plan and execute everything (writes, status, annotation removal).
    Reconcile,
    /// Plan, execute only the first `at % (writes + 1)` writes and no status: killed.
    Crash {
        at: usize,
    },
    /// Every ReplicaSet becomes fully available at its size.
    Settle,
    /// One color's ReplicaSet has `missing` pods unavailable.
    Partial {
        color: Color,
        missing: i32,
    },
    /// Every running Job finishes.
    FinishJobs {
        ok: bool,
    },
    /// One running Job finishes.
    FinishJob {
        pick: usize,
        ok: bool,
    },
    Advance(i64),
    /// Past the progress deadline (0), the scale-down delay (1) or the auto-promotion (2).
    AdvancePast(usize),
    Image(usize),
    Replicas(i32),
    ToggleMode,
    TogglePaused,
    PreviewReplicas(Option<i32>),
    StandbyReplicas(i32),
    /// A manual action, with a fresh id or the last one used again.
    Write {
        verb: usize,
        fresh: bool,
    },
    EndpointsLag(bool),
    /// What Prometheus answers from now on: a value (0 passes, 1 fails the checks'
    /// bound) or nothing usable.
    Reading(Option<u8>),
    /// Reconcile, settle and pass Jobs until quiet.
    Converge,
    /// A person or a tool breaks what is live (see [`Tamper`]).
    Tamper(Tamper),
}

/// What a person or a tool does to a live release behind the controller's back.
#[derive(Clone, Copy, Debug)]
enum Tamper {
    /// `kubectl delete rs` of the active color (only while the spec still describes it,
    /// so that the controller can rebuild it).
    DeleteActiveReplicaSet,
    /// The active selector moved onto the warm standby.
    SelectorOntoStandby,
    /// The active selector moved to a revision that does not exist.
    SelectorToMissingRevision,
    /// The controller's selector keys removed from the active Service.
    StripSelectorKeys,
}

/// The general mix; `crash` and `scale` weigh crashes and replicas changes.
fn event(crash: u32, scale: u32) -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => Just(Event::Reconcile),
        crash => (0..8usize).prop_map(|at| Event::Crash { at }),
        4 => Just(Event::Settle),
        1 => (prop_oneof![Just(Color::Blue), Just(Color::Green)], 1..=3i32)
            .prop_map(|(color, missing)| Event::Partial { color, missing }),
        2 => prop::bool::weighted(0.75).prop_map(|ok| Event::FinishJobs { ok }),
        1 => (0..2usize, prop::bool::weighted(0.6))
            .prop_map(|(pick, ok)| Event::FinishJob { pick, ok }),
        1 => (1..=20i64).prop_map(Event::Advance),
        2 => (0..3usize).prop_map(Event::AdvancePast),
        3 => (0..IMAGES.len()).prop_map(Event::Image),
        scale => (1..=4i32).prop_map(Event::Replicas),
        1 => Just(Event::ToggleMode),
        1 => Just(Event::TogglePaused),
        1 => prop::option::of(1..=4i32).prop_map(Event::PreviewReplicas),
        1 => (0..=1i32).prop_map(Event::StandbyReplicas),
        3 => (0..VERBS.len(), prop::bool::weighted(0.7))
            .prop_map(|(verb, fresh)| Event::Write { verb, fresh }),
        1 => any::<bool>().prop_map(Event::EndpointsLag),
        2 => prop::option::weighted(0.8, 0..=1u8).prop_map(Event::Reading),
        2 => Just(Event::Converge),
        1 => prop_oneof![
            Just(Tamper::DeleteActiveReplicaSet),
            Just(Tamper::SelectorOntoStandby),
            Just(Tamper::SelectorToMissingRevision),
            Just(Tamper::StripSelectorKeys),
        ]
        .prop_map(Event::Tamper),
    ]
}

/// What the harness remembers about the world's past, to judge the present.
#[derive(Clone, Debug, Default)]
struct Ledger {
    /// The active Service was flipped at least once.
    flipped: bool,
    /// Revisions the active Service was flipped to (each passed its tests, inductively).
    promoted: BTreeSet<String>,
    /// (revision, rollout id) whose smoke tests were all seen Succeeded in the world (the
    /// Jobs may be cleared later, e.g. by a rollout that was never recorded).
    tested: BTreeSet<(String, String)>,
    /// After a flip: the previous color's (color, revision) must stay at full size until.
    /// (the ReplicaSet's uid, so one recreated later at the same revision is not it).
    standby_guard: Option<(String, i64)>,
    /// The active selector as it was when the stored rollout was first recorded (rollout
    /// ids are start times, so two rollouts started in the same second share one).
    selector_at_start: Option<BTreeMap<String, String>>,
    /// (color, revision) the last promotion flipped to: a later flip to the same target is
    /// a repair of the selector, not a promotion.
    live: Option<(Color, String)>,
    /// Someone broke what is live; until the controller repaired it, invariant 4 is not
    /// expected to hold (it must hold again once the release converges).
    tampered: bool,
}

#[derive(Clone, Debug)]
struct Harness {
    sim: Sim,
    ledger: Ledger,
    ids: u32,
    last_id: Option<String>,
}

type Checked = Result<(), TestCaseError>;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

impl Harness {
    fn new(setup: &Setup) -> Self {
        let mut release = release(IMAGES[0], &TESTS[..setup.tests]);
        let spec = &mut release.spec;
        spec.replicas = setup.replicas;
        spec.preview_replicas = setup.preview_replicas;
        spec.standby_replicas = setup.standby_replicas;
        spec.scale_down_delay_seconds = setup.scale_down_delay;
        spec.progress_deadline_seconds = setup.progress_deadline;
        spec.promotion.auto_promote_after_seconds = setup.auto_promote_after;
        spec.promotion.mode = if setup.manual {
            PromotionMode::Manual
        } else {
            PromotionMode::Auto
        };
        spec.retest_on_rollback = setup.retest_on_rollback;
        spec.revision_history_limit = setup.history_limit;
        spec.analysis = analysis(setup.analysis);
        let mut sim = Sim::new(release);
        sim.readings
            .insert("error-rate".into(), Reading::Value(0.0));
        if setup.adopted {
            sim.active_service = Some(ServiceView {
                name: "web-active".into(),
                selector: [("app".to_string(), "web".to_string())].into(),
                ..Default::default()
            });
        }
        Harness {
            sim,
            ledger: Ledger::default(),
            ids: 0,
            last_id: None,
        }
    }

    fn active_selector(&self) -> BTreeMap<String, String> {
        self.sim
            .active_service
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default()
    }

    fn reconcile(&mut self) -> Result<Plan, TestCaseError> {
        let plan = self.sim.plan();
        self.exec(&plan, plan.writes.len(), true)?;
        Ok(plan)
    }

    /// Executes the first `writes` actions of `plan` (and its status when `status`),
    /// checking every write against the world right before it, then the plan as a whole.
    fn exec(&mut self, plan: &Plan, writes: usize, status: bool) -> Checked {
        let stored = self.sim.status();
        let selector_before = self.active_selector();
        let live_before = self.ledger.live.clone();
        let ledger = &mut self.ledger;
        self.sim
            .execute_checked(plan, writes, status, |sim, action| {
                check_write(sim, ledger, &stored, action)
            })?;
        let recorded = stored.active_color.zip(stored.active_revision.clone());
        check_flips_finish_promotions(plan, &[live_before.as_ref(), recorded.as_ref()])?;
        if status {
            check_history_kept(
                &stored,
                &plan.status,
                self.sim.release.spec.revision_history_limit,
            )?;
            self.check_failure_left_active_alone(&stored, plan, live_before.as_ref())?;
            let ended = plan
                .occurrences
                .iter()
                .any(|o| matches!(o, Occurrence::RolloutFinished { .. }));
            let key = |s: &BlueGreenReleaseStatus| s.rollout.as_ref().map(rollout_key);
            if ended || key(&stored) != key(&plan.status) {
                self.ledger.selector_at_start =
                    plan.status.rollout.as_ref().map(|_| selector_before);
            }
        }
        Ok(())
    }

    /// Invariant 3: a rollout that ends before its flip (failed smoke test, deadline, abort,
    /// or superseded by the spec) leaves the active selector as it was when it started.
    fn check_failure_left_active_alone(
        &self,
        stored: &BlueGreenReleaseStatus,
        plan: &Plan,
        live_before: Option<&(Color, String)>,
    ) -> Checked {
        // A flip back onto what was live, or onto what the stored status records as active
        // (a killed controller may have flipped without recording it before a person moved
        // the selector), is a repair of the selector, not a promotion.
        let recorded = stored.active_color.zip(stored.active_revision.clone());
        let flipped = plan.writes.iter().any(|a| match a {
            Write::Flip { service, .. } => {
                let target = observe::service_view(service).target();
                target.as_ref() != live_before && target != recorded
            }
            _ => false,
        });
        for occurrence in &plan.occurrences {
            let Occurrence::RolloutFinished { outcome, .. } = occurrence else {
                continue;
            };
            let failed = matches!(outcome, Outcome::Failed | Outcome::Aborted);
            let superseded = *outcome == Outcome::Superseded && !flipped;
            if !(failed || superseded) {
                continue;
            }
            check!(
                !(failed && flipped),
                "invariant 3: a plan that fails a rollout ({outcome:?}) also flips: {:?}",
                plan.writes
            );
            let Some(rollout) = &stored.rollout else {
                continue;
            };
            let Some(at_start) = &self.ledger.selector_at_start else {
                continue;
            };
            if self.ledger.tampered
                || self.ledger.live.is_some() && self.sim.active_target() == self.ledger.live
            {
                // What the last promotion made live (a selector someone moved mid-rollout
                // put back is a repair): the failed rollout did not reach customers.
                continue;
            }
            check!(
                &self.active_selector() == at_start,
                "invariant 3: rollout of {} ended {outcome:?} but the active selector moved from {at_start:?} to {:?}",
                rollout.version,
                self.active_selector()
            );
        }
        Ok(())
    }

    /// Invariant 4 (unless someone broke it and the controller has not repaired it yet).
    fn check_world(&mut self) -> Checked {
        let result = self.check_active_selects_one_color();
        if self.ledger.tampered {
            if result.is_ok() {
                self.ledger.tampered = false;
            }
            return Ok(());
        }
        result
    }

    /// Invariant 4: once flipped, the active Service selects exactly one color that exists.
    fn check_active_selects_one_color(&self) -> Checked {
        let target = self.sim.active_target();
        if !self.ledger.flipped {
            check!(
                target.is_none(),
                "only a flip writes the active selector, yet it selects {target:?}"
            );
            return Ok(());
        }
        let Some((color, revision)) = target else {
            return Err(TestCaseError::fail(format!(
                "invariant 4: after the first promotion the active Service selects no color: {:?}",
                self.sim.active_service
            )));
        };
        let rs = self.sim.replica_sets.get(&color);
        check!(
            rs.is_some_and(|rs| rs.revision == revision && !rs.deleting),
            "invariant 4: the active Service selects {color}/{revision} but its ReplicaSet is {rs:?}"
        );
        Ok(())
    }

    /// Invariant 5: after a full reconcile, an unchanged world is quiet within a couple of
    /// reconciles, and at that fixpoint the plan has no writes and the same status.
    fn check_quiet(&self) -> Checked {
        let mut copy = self.clone();
        for extra in 0..=QUIET_WITHIN {
            let plan = copy.sim.plan();
            if plan.writes.is_empty() && Some(&plan.status) == copy.sim.release.status.as_ref() {
                check!(
                    !plan.consume_request,
                    "invariant 5: quiet but an action is left"
                );
                let again = copy.sim.plan();
                check!(
                    again == plan,
                    "invariant 5: the same world planned twice differs"
                );
                return Ok(());
            }
            check!(
                extra < QUIET_WITHIN,
                "invariant 5: not quiet {QUIET_WITHIN} reconciles after a full one: writes {:?}, status diff:\n{}",
                plan.writes.iter().map(Write::describe).collect::<Vec<_>>(),
                status_diff(copy.sim.release.status.as_ref(), &plan.status)
            );
            copy.exec(&plan, plan.writes.len(), true)?;
            copy.check_world()?;
        }
        Ok(())
    }

    /// Reconciles with pods settling and Jobs passing in between until nothing is written.
    ///
    /// The first reconcile sees the world as it is (a controller restarted after a crash
    /// sees the world its predecessor left, not one that moved on meanwhile).
    fn converge(&mut self) -> Checked {
        for _ in 0..CONVERGE_WITHIN {
            let plan = self.sim.plan();
            if plan.writes.is_empty()
                && !plan.consume_request
                && Some(&plan.status) == self.sim.release.status.as_ref()
            {
                let world = (self.sim.replica_sets.clone(), self.sim.jobs.clone());
                self.sim.settle();
                self.sim.finish_jobs(true);
                if world == (self.sim.replica_sets.clone(), self.sim.jobs.clone()) {
                    return Ok(());
                }
                continue;
            }
            self.exec(&plan, plan.writes.len(), true)?;
            self.check_world()?;
            self.sim.history.clear();
        }
        Err(TestCaseError::fail(format!(
            "never quiet after {CONVERGE_WITHIN} reconciles: {:#?}",
            self.sim.release.status
        )))
    }

    /// Invariant 6: killed after `at` writes (no status) and restarted, the controller ends
    /// where a controller that was not killed ends: same world, same status (so no history
    /// lost), and no duplicate Job (the Sim refuses to create one).
    fn crash(&mut self, at: usize) -> Checked {
        let plan = self.sim.plan();
        let writes = at % (plan.writes.len() + 1);
        let mut twin = self.clone();
        twin.exec(&plan, plan.writes.len(), true)?;
        self.exec(&plan, writes, false)?;
        self.check_world()?;
        let mut crashed = self.clone();
        twin.converge()?;
        crashed.converge()?;
        let (want, got) = (EndState::of(&twin.sim), EndState::of(&crashed.sim));
        check!(
            want == got,
            "invariant 6: killed after {writes} of {:?} the controller ends elsewhere.\nwithout the crash: {want:#?}\nwith the crash: {got:#?}\nstatus diff:\n{}",
            plan.writes.iter().map(Write::describe).collect::<Vec<_>>(),
            status_diff(Some(&want.status), &got.status)
        );
        Ok(())
    }

    /// Invariant 9: a replicas-only spec change is a scale, not a release.
    fn change_replicas(&mut self, replicas: i32) -> Checked {
        let stored = self.sim.status();
        let revision = self.sim.desired_revision();
        let before = self.sim.plan();
        self.sim.release.spec.replicas = replicas;
        self.sim.bump_generation();
        check!(
            self.sim.desired_revision() == revision,
            "invariant 9: spec.replicas changed the revision"
        );
        let after = self.sim.plan();
        let in_flight = stored.rollout.as_ref();
        let started = creations(&after, in_flight)
            .difference(&creations(&before, in_flight))
            .cloned()
            .collect::<Vec<_>>();
        check!(
            started.is_empty(),
            "invariant 9: changing replicas to {replicas} creates {started:?}"
        );
        if let Some(r) = &after.status.rollout {
            // The rollout in flight, or one the old spec starts (and may finish at once). A
            // new test round of the same rollout is not a new rollout: the new size may find
            // the cold color short of pods it lost before the change (invariant 8).
            let mut known: BTreeSet<_> = [&stored.rollout, &before.status.rollout]
                .into_iter()
                .flatten()
                .map(rollout_start)
                .collect();
            known.extend(
                before
                    .status
                    .history
                    .iter()
                    .map(|h| (h.revision.clone(), h.started_at.0.to_string())),
            );
            check!(
                known.contains(&rollout_start(r)),
                "invariant 9: changing replicas to {replicas} starts rollout {:?}",
                r
            );
        }
        // Directly: the very next reconcile resizes the active color (unless it only
        // records a manual action first, or the release is paused or invalid).
        let release = &self.sim.release;
        let pending = release
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(labels::ACTION));
        if release.spec.paused || pending || validate(release).is_err() {
            return Ok(());
        }
        let (Some(color), Some(revision)) =
            (after.status.active_color, &after.status.active_revision)
        else {
            return Ok(());
        };
        let Some(rs) = self
            .sim
            .replica_sets
            .get(&color)
            .filter(|rs| &rs.revision == revision && !rs.deleting)
        else {
            return Ok(());
        };
        let scale = Write::ScaleReplicaSet {
            name: rs.name.clone(),
            replicas,
        };
        check!(
            rs.desired == replicas || after.writes.contains(&scale),
            "invariant 9: changing replicas to {replicas} does not resize the active color {color} (at {}): {:?}",
            rs.desired,
            after.writes.iter().map(Write::describe).collect::<Vec<_>>()
        );
        Ok(())
    }

    /// The active ReplicaSet was deleted and the spec moved on before it was rebuilt: it
    /// cannot be (the status keeps no template), and the status must say so.
    fn active_cannot_be_rebuilt(&self) -> Result<bool, TestCaseError> {
        let status = self.sim.status();
        let (Some(color), Some(revision)) = (status.active_color, &status.active_revision) else {
            return Ok(false);
        };
        if self.sim.replica_sets.contains_key(&color) || revision == &self.sim.desired_revision() {
            return Ok(false);
        }
        let available = status.condition("Available").map(|c| c.message.clone());
        check!(
            available
                .as_deref()
                .is_some_and(|m| m.contains("cannot be rebuilt")),
            "the active ReplicaSet is gone and the status does not say it cannot be rebuilt: {available:?}"
        );
        Ok(true)
    }

    fn tamper(&mut self, tamper: Tamper) {
        let status = self.sim.status();
        let (Some(color), Some(revision)) = (status.active_color, status.active_revision) else {
            return;
        };
        let set_selector = |sim: &mut Sim, target: Option<(Color, &str)>| {
            let Some(service) = sim.active_service.as_mut() else {
                return;
            };
            let before = service.selector.clone();
            match target {
                Some((color, revision)) => {
                    service
                        .selector
                        .insert(labels::COLOR.into(), color.as_str().into());
                    service
                        .selector
                        .insert(labels::REVISION.into(), revision.into());
                }
                None => {
                    service.selector.remove(labels::COLOR);
                    service.selector.remove(labels::REVISION);
                }
            }
            // An update takes over only the fields it changes (as the API server's managed
            // fields do): rewriting the same selector leaves the controller its owner.
            if service.selector != before {
                service.selector_writer = Some("kubectl-edit".into());
            }
        };
        match tamper {
            Tamper::DeleteActiveReplicaSet => {
                if revision != self.sim.desired_revision() {
                    return;
                }
                self.sim.replica_sets.remove(&color);
            }
            Tamper::SelectorOntoStandby => {
                let Some(standby) = status.standby else {
                    return;
                };
                set_selector(&mut self.sim, Some((standby.color, &standby.revision)));
            }
            Tamper::SelectorToMissingRevision => {
                set_selector(&mut self.sim, Some((color.other(), "deadbeef00")));
            }
            Tamper::StripSelectorKeys => set_selector(&mut self.sim, None),
        }
        self.ledger.tampered = true;
    }

    fn apply(&mut self, event: &Event) -> Checked {
        match event {
            Event::Reconcile => {
                self.reconcile()?;
                self.check_world()?;
                self.check_quiet()?;
            }
            Event::Crash { at } => self.crash(*at)?,
            Event::Settle => self.sim.settle(),
            Event::Partial { color, missing } => {
                if let Some(rs) = self.sim.replica_sets.get(color) {
                    let available = (rs.desired - missing).max(0);
                    self.sim.set_available(*color, available);
                }
            }
            Event::FinishJobs { ok } => self.sim.finish_jobs(*ok),
            Event::FinishJob { pick, ok } => {
                let running: Vec<_> = self
                    .sim
                    .jobs
                    .iter_mut()
                    .filter(|j| j.state == JobState::Running)
                    .collect();
                let count = running.len();
                if let Some(job) = running.into_iter().nth(pick % count.max(1)) {
                    job.state = if *ok {
                        JobState::Succeeded
                    } else {
                        JobState::Failed {
                            reason: "BackoffLimitExceeded".into(),
                            message: "Job has reached the specified backoff limit".into(),
                        }
                    };
                }
            }
            Event::Advance(seconds) => self.sim.advance(*seconds),
            Event::AdvancePast(which) => {
                let spec = &self.sim.release.spec;
                let seconds = match which {
                    0 => spec.progress_deadline_seconds,
                    1 => spec.scale_down_delay_seconds,
                    _ => spec.promotion.auto_promote_after_seconds,
                };
                self.sim.advance(i64::from(seconds) + 1);
            }
            Event::Image(i) => self.sim.set_image(IMAGES[*i]),
            Event::Replicas(replicas) => self.change_replicas(*replicas)?,
            Event::ToggleMode => {
                let promotion = &mut self.sim.release.spec.promotion;
                promotion.mode = match promotion.mode {
                    PromotionMode::Auto => PromotionMode::Manual,
                    PromotionMode::Manual => PromotionMode::Auto,
                };
                self.sim.bump_generation();
            }
            Event::TogglePaused => {
                self.sim.release.spec.paused = !self.sim.release.spec.paused;
                self.sim.bump_generation();
            }
            Event::PreviewReplicas(preview) => {
                self.sim.release.spec.preview_replicas = *preview;
                self.sim.bump_generation();
            }
            Event::StandbyReplicas(standby) => {
                self.sim.release.spec.standby_replicas = *standby;
                self.sim.bump_generation();
            }
            Event::Write { verb, fresh } => {
                let id = match (&self.last_id, fresh) {
                    (Some(id), false) => id.clone(),
                    _ => {
                        self.ids += 1;
                        format!("id-{}", self.ids)
                    }
                };
                self.sim.request(VERBS[*verb], &id);
                self.last_id = Some(id);
            }
            Event::EndpointsLag(lag) => self.sim.endpoints_lag = *lag,
            Event::Reading(reading) => {
                self.sim.readings.insert(
                    "error-rate".into(),
                    match reading {
                        Some(value) => Reading::Value(f64::from(*value)),
                        None => Reading::Inconclusive("the query returned no data".into()),
                    },
                );
            }
            Event::Converge => {
                self.converge()?;
                self.check_quiet()?;
            }
            Event::Tamper(tamper) => self.tamper(*tamper),
        }
        self.sim.history.clear();
        self.check_world()
    }
}

/// Checks one write against the world right before it.
fn check_write(
    sim: &Sim,
    ledger: &mut Ledger,
    stored: &BlueGreenReleaseStatus,
    action: &Write,
) -> Checked {
    let spec = &sim.release.spec;
    let active = sim.active_target();
    let active_rs = active.as_ref().and_then(|(color, revision)| {
        sim.replica_sets
            .get(color)
            .filter(|rs| &rs.revision == revision)
    });
    // Whatever the planner has seen succeed so far counts (it reads the same world).
    for job in &sim.jobs {
        let all_passed = spec.smoke_tests.iter().all(|t| {
            let name = desired::job_name(&sim.release, &t.name, &job.revision);
            sim.jobs.iter().any(|j| {
                j.name == name && j.rollout == job.rollout && j.state == JobState::Succeeded
            })
        });
        if all_passed {
            ledger
                .tested
                .insert((job.revision.clone(), job.rollout.clone()));
        }
    }
    match action {
        Write::Flip {
            service,
            replica_set,
            replicas,
        } => {
            let rs = sim.replica_sets.values().find(|rs| &rs.name == replica_set);
            let Some(rs) = rs else {
                return Err(TestCaseError::fail(format!(
                    "invariant 1: flip towards a missing ReplicaSet {replica_set}"
                )));
            };
            let target = observe::service_view(service).target();
            check!(
                target == Some((rs.color, rs.revision.clone())),
                "the flip selects {target:?}, not its ReplicaSet {}/{}",
                rs.color,
                rs.revision
            );
            if target == ledger.live {
                // A repair of the selector towards what is live: no new promotion. Invariant
                // 1 still holds, at the size the live color runs at.
                check!(
                    rs.fully_available() && *replicas == rs.desired,
                    "invariant 1: selector repaired towards {rs:?} (flip says {replicas})"
                );
                return Ok(());
            }
            // Invariant 1: fully available at spec.replicas at the moment of the flip.
            check!(
                rs.fully_available() && rs.desired == spec.replicas && *replicas == spec.replicas,
                "invariant 1: flip towards {rs:?} (flip says {replicas}, spec.replicas {})",
                spec.replicas
            );
            // Invariant 3: only a revision whose smoke tests all succeeded in the world, in
            // the rollout being promoted, unless it was live before (a rollback; not when
            // retestOnRollback asks for the tests again).
            let revision = &rs.revision;
            // A version taken back during its verification (failed, aborted, rolled back)
            // returns to the color that served until its flip without retesting it, whatever
            // retestOnRollback says: getting off the failing version comes first.
            let taken_back = stored.rollout.as_ref().is_some_and(|r| {
                &r.revision == revision
                    && r.skips_tests()
                    && r.reason.as_deref().is_some_and(|why| {
                        ["VerificationFailed: ", "Aborted: ", "RollbackRequested: "]
                            .iter()
                            .any(|p| why.starts_with(p))
                    })
            });
            let rollback =
                ledger.promoted.contains(revision) && (!spec.retest_on_rollback || taken_back);
            if !rollback && !spec.smoke_tests.is_empty() {
                let rollout = stored.rollout.as_ref().filter(|r| &r.revision == revision);
                let passed =
                    rollout.is_some_and(|r| ledger.tested.contains(&(revision.clone(), r.id())));
                check!(
                    passed,
                    "invariant 3: flip to revision {revision} (rollout {:?}) whose smoke tests did not all succeed: {:?}",
                    rollout.map(RolloutStatus::id),
                    sim.jobs
                );
            }
            // Invariant 7 starts here: the previous color must stay at full size.
            ledger.standby_guard = match active_rs {
                Some(previous) if previous.color != rs.color => Some((
                    previous.uid.clone(),
                    sim.now + i64::from(spec.scale_down_delay_seconds),
                )),
                _ => None,
            };
            ledger.promoted.insert(revision.clone());
            ledger.flipped = true;
            ledger.live = target;
        }
        Write::ReplaceReplicaSet {
            old_uid,
            replica_set,
        } => {
            check!(
                active_rs.is_none_or(|rs| &rs.uid != old_uid),
                "invariant 2: the active ReplicaSet is replaced by {:?}",
                replica_set.metadata.name
            );
        }
        Write::ApplyReplicaSet(rs) => {
            let color = observe::replica_set_view(rs).map(|v| v.color);
            check!(
                active_rs.is_none_or(|a| Some(a.color) != color),
                "invariant 2: the active ReplicaSet is re-applied"
            );
        }
        Write::ScaleReplicaSet { name, replicas } => {
            if active_rs.is_some_and(|rs| &rs.name == name) {
                check!(
                    *replicas == spec.replicas,
                    "invariant 2: the active ReplicaSet {name} is scaled to {replicas}, spec.replicas is {}",
                    spec.replicas
                );
            }
            if let Some((uid, until)) = &ledger.standby_guard {
                let standby = sim
                    .replica_sets
                    .values()
                    .any(|rs| &rs.name == name && &rs.uid == uid);
                check!(
                    !(standby && sim.now < *until && *replicas < spec.replicas),
                    "invariant 7: the previous color {name} is scaled to {replicas} {}s before the scale-down delay ends",
                    until - sim.now
                );
            }
        }
        Write::CreateJob(job) => {
            // Invariant 6: Jobs carry the identity of a rollout already in the stored status.
            let view = observe::job_view(job).expect("a smoke-test Job");
            let recorded = stored.rollout.as_ref();
            check!(
                recorded.is_some_and(|r| r.id() == view.rollout && r.revision == view.revision),
                "Job {} created for rollout {} but the stored rollout is {:?}",
                view.name,
                view.rollout,
                recorded.map(|r| (r.id(), &r.revision))
            );
        }
        Write::DeleteService { name, .. } | Write::ReleaseService { name } => {
            // Invariant 4: the Service that carries traffic is never taken away.
            check!(
                name != &spec.service.name,
                "invariant 4: the active Service {name} is deleted or released"
            );
        }
        Write::ApplyPreviewService(_) | Write::DeleteJob { .. } => {}
    }
    Ok(())
}

/// Invariant 3 (and 4): the active Service is written only by a flip that finishes a
/// promotion in the same plan, or restores the selector of the color already active (a
/// repair may come before the promotion's flip in one plan; the last flip is what is live).
fn check_flips_finish_promotions(plan: &Plan, repairs: &[Option<&(Color, String)>]) -> Checked {
    let targets: Vec<_> = plan
        .writes
        .iter()
        .filter_map(|a| match a {
            Write::Flip { service, .. } => Some(observe::service_view(service).target()),
            _ => None,
        })
        .collect();
    let Some((last, earlier)) = targets.split_last() else {
        return Ok(());
    };
    let status = &plan.status;
    check!(
        last.as_ref().map(|(c, r)| (Some(*c), Some(r)))
            == Some((status.active_color, status.active_revision.as_ref())),
        "a flip to {last:?} that the plan's status does not record as active ({:?}/{:?})",
        status.active_color,
        status.active_revision
    );
    // An earlier flip repairs a hand-moved selector: back to what was live, or to what the
    // stored status records as active (a killed controller may have flipped without
    // recording it, and the person then moved the selector elsewhere).
    for target in earlier {
        check!(
            target.is_some() && repairs.contains(&target.as_ref()),
            "an earlier flip of the plan to {target:?} that is neither a repair towards one of {repairs:?} nor recorded as active"
        );
    }
    Ok(())
}

/// No history entry is ever lost: the new history is new entries followed by the old
/// history, cut at the limit.
fn check_history_kept(
    before: &BlueGreenReleaseStatus,
    after: &BlueGreenReleaseStatus,
    limit: i32,
) -> Checked {
    let (old, new) = (&before.history, &after.history);
    let limit = usize::try_from(limit).unwrap_or(1).max(1);
    let kept = (0..=new.len()).any(|added| {
        let rest = &new[added..];
        old.starts_with(rest) && (rest.len() == old.len() || new.len() == limit)
    });
    check!(
        kept,
        "history lost entries:\nbefore {:#?}\nafter {:#?}",
        old,
        new
    );
    Ok(())
}

/// What a plan creates that would make it a release: ReplicaSets (by name and revision) and
/// Jobs, except those of the rollout already in flight (which may go on at the new size).
fn creations(plan: &Plan, in_flight: Option<&RolloutStatus>) -> BTreeSet<String> {
    let ours = |color: Color, revision: &str| {
        in_flight.is_some_and(|r| r.color == color && r.revision == revision)
    };
    plan.writes
        .iter()
        .filter_map(|a| match a {
            Write::ApplyReplicaSet(rs)
            | Write::ReplaceReplicaSet {
                replica_set: rs, ..
            } => observe::replica_set_view(rs)
                .filter(|v| !ours(v.color, &v.revision))
                .map(|v| format!("ReplicaSet {} {}", v.name, v.revision)),
            Write::CreateJob(job) => observe::job_view(job)
                .filter(|j| {
                    !in_flight.is_some_and(|r| r.id() == j.rollout && r.revision == j.revision)
                })
                .map(|j| format!("Job {}", j.name)),
            _ => None,
        })
        .collect()
}

fn rollout_key(r: &RolloutStatus) -> (String, String) {
    (r.revision.clone(), r.id())
}

/// A rollout whatever its test round: its revision and start.
fn rollout_start(r: &RolloutStatus) -> (String, String) {
    (r.revision.clone(), r.started_at.0.to_string())
}

/// The world and the status a release ends in (uids and generations aside).
#[derive(Debug, PartialEq)]
struct EndState {
    replica_sets: Vec<(Color, String, String, i32)>,
    active: Option<(Color, String)>,
    preview: Option<(Color, String)>,
    jobs: Vec<(String, String, String, JobState)>,
    status: BlueGreenReleaseStatus,
    action_pending: bool,
}

impl EndState {
    fn of(sim: &Sim) -> Self {
        let mut jobs: Vec<_> = sim
            .jobs
            .iter()
            .map(|j| {
                (
                    j.name.clone(),
                    j.revision.clone(),
                    j.rollout.clone(),
                    j.state.clone(),
                )
            })
            .collect();
        jobs.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
        EndState {
            replica_sets: sim
                .replica_sets
                .values()
                .map(|rs| (rs.color, rs.name.clone(), rs.revision.clone(), rs.desired))
                .collect(),
            active: sim.active_target(),
            preview: sim.preview_service.as_ref().and_then(|s| s.target()),
            jobs,
            status: without_transition_times(sim.status()),
            action_pending: sim
                .release
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(labels::ACTION)),
        }
    }
}

/// A condition's `lastTransitionTime` is when this controller saw its status flip; one that
/// was killed never saw the transient states the other went through, so only the
/// conditions' content is part of the end state (pod counts aside, see below).
fn without_transition_times(mut status: BlueGreenReleaseStatus) -> BlueGreenReleaseStatus {
    for condition in &mut status.conditions {
        condition.last_transition_time = Time(Timestamp::UNIX_EPOCH);
        condition.message = without_pod_count(&condition.message);
    }
    status.message = status.message.as_deref().map(without_pod_count);
    for entry in &mut status.history {
        entry.reason = entry.reason.as_deref().map(without_pod_count);
    }
    if let Some(analysis) = status.analysis.as_mut() {
        // Samples are readings of Prometheus, not of the world: one lost with its status is
        // taken again (or, after a flip that outlived its status, not needed). The counts
        // may differ; the stage, the rollout and the verdict may not.
        let kept = bluegreen_crd::AnalysisStatus::start(
            analysis.phase,
            analysis.rollout.clone(),
            analysis.revision.clone(),
            analysis.started_at.clone(),
        );
        *analysis = bluegreen_crd::AnalysisStatus {
            result: analysis.result,
            ..kept
        };
    }
    status
}

/// A deadline failure says how many pods were available when it was seen: one that was
/// killed after scaling the cold color down sees it at zero when it fails again.
fn without_pod_count(text: &str) -> String {
    let Some(end) = text.find(" pods available)") else {
        return text.to_string();
    };
    let Some(open) = text[..end].rfind('(') else {
        return text.to_string();
    };
    match text[open + 1..end].split_once('/') {
        Some((_, of)) => format!("{}(?/{of}{}", &text[..open], &text[end..]),
        None => text.to_string(),
    }
}

/// The top-level status fields that differ, for failure messages.
fn status_diff(before: Option<&BlueGreenReleaseStatus>, after: &BlueGreenReleaseStatus) -> String {
    let as_map = |s: &BlueGreenReleaseStatus| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => Default::default(),
    };
    let old = before.map(as_map).unwrap_or_default();
    let new = as_map(after);
    let keys: BTreeSet<_> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| format!("  {k}: {:?}\n   -> {:?}", old.get(k), new.get(k)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(setup: &Setup, events: &[Event]) -> Checked {
    let mut h = Harness::new(setup);
    for (round, image) in IMAGES.iter().enumerate().take(setup.warm) {
        if round > 0 {
            h.sim.set_image(image);
        }
        h.converge()?;
        h.check_quiet()?;
    }
    for (step, event) in events.iter().enumerate() {
        h.apply(event)
            .map_err(|e| TestCaseError::fail(format!("step {step} ({event:?}): {e}")))?;
    }
    // However the sequence ended, the release converges once the world cooperates, and
    // whatever someone broke is repaired by then.
    h.sim.endpoints_lag = false;
    h.converge()?;
    if !h.sim.release.spec.paused && !h.active_cannot_be_rebuilt()? {
        h.check_active_selects_one_color()?;
    }
    h.check_quiet()
}

proptest! {
    #![proptest_config(config(64))]

    /// Invariants 1, 2, 3, 4, 5, 7 and 9 (and 6 at crashes) on every step of a general mix.
    #[test]
    fn every_step_keeps_the_invariants(setup in setup(), events in prop::collection::vec(event(2, 1), 1..40)) {
        run(&setup, &events)?;
    }

    /// Invariant 6, with crashes between any two writes weighed up.
    #[test]
    fn a_crash_between_any_two_writes_converges_to_the_same_end_state(setup in setup(), events in prop::collection::vec(event(10, 1), 1..30)) {
        run(&setup, &events)?;
    }

    /// Invariant 9, with replicas changes weighed up (at every phase of a rollout).
    #[test]
    fn a_replicas_change_is_always_a_scale(setup in setup(), events in prop::collection::vec(event(2, 8), 1..40)) {
        run(&setup, &events)?;
    }
}

/// Minimal failing inputs the properties once found, replayed on every run.
mod found {
    use super::*;

    fn setup(tests: usize, replicas: i32) -> Setup {
        Setup {
            tests,
            replicas,
            preview_replicas: None,
            standby_replicas: 0,
            scale_down_delay: 0,
            progress_deadline: 60,
            auto_promote_after: 0,
            manual: false,
            retest_on_rollback: false,
            history_limit: 1,
            adopted: false,
            warm: 0,
            analysis: (false, None),
        }
    }

    /// A first release whose Jobs were created by a killed controller (no status recorded
    /// them), then one test fails and the controller is killed again right after cancelling
    /// the other: the cancelled test's entry must not depend on whether the status write of
    /// the failure happened.
    #[test]
    fn killed_after_cancelling_a_test_of_a_failed_rollout() {
        let events = [
            Event::Reconcile,
            Event::Settle,
            Event::Crash { at: 2 },
            Event::FinishJob { pick: 0, ok: false },
            Event::Crash { at: 1 },
        ];
        run(&setup(2, 1), &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The Job was created by a killed controller (no status entry), passes, and the
    /// controller is killed again right after the flip: the restart records the test.
    #[test]
    fn killed_after_a_flip_whose_test_no_status_recorded() {
        let events = [
            Event::Reconcile,
            Event::Settle,
            Event::Crash { at: 0 },
            Event::Crash { at: 1 },
            Event::FinishJob { pick: 0, ok: true },
            Event::Crash { at: 5 },
        ];
        run(&setup(1, 1), &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The cold color loses a pod during tests while a smaller spec.replicas hides it; the
    /// size asked for again finds it short and starts a new test round of the same rollout.
    #[test]
    fn a_replicas_change_that_unmasks_lost_availability_is_a_new_test_round() {
        let events = [
            Event::Reconcile,
            Event::Settle,
            Event::Reconcile,
            Event::Partial {
                color: Color::Blue,
                missing: 1,
            },
            Event::Replicas(1),
            Event::Replicas(4),
        ];
        run(&setup(1, 4), &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A rollback is recorded, the active ReplicaSet is deleted, and the controller is killed
    /// after recreating it but before the rollback's flip: the color it flips away from is
    /// the standby either way (the plan that rebuilds it keeps it as the standby).
    #[test]
    fn killed_after_rebuilding_the_active_color_a_rollback_leaves() {
        let setup = Setup {
            scale_down_delay: 30,
            warm: 2,
            ..setup(0, 1)
        };
        let events = [
            Event::Write {
                verb: 3,
                fresh: false,
            },
            Event::Reconcile,
            Event::Tamper(Tamper::DeleteActiveReplicaSet),
            Event::Crash { at: 1 },
        ];
        run(&setup, &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Killed right after the flip (the status still records the previous color), then the
    /// selector is moved by hand to a revision that does not exist: the restart repairs it
    /// towards the recorded active color and finishes the rollout in the same plan.
    #[test]
    fn a_selector_moved_after_an_unrecorded_flip() {
        let events = [
            Event::Converge,
            Event::Image(1),
            Event::Replicas(3),
            Event::Reconcile,
            Event::Settle,
            Event::Crash { at: 1 },
            Event::Tamper(Tamper::SelectorToMissingRevision),
        ];
        run(&setup(0, 1), &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The active ReplicaSet deleted, the spec moved on (so it cannot be rebuilt), then the
    /// selector moved by hand: the status says what needs a person, not the pending repair.
    #[test]
    fn an_active_color_that_cannot_be_rebuilt_outranks_a_pending_repair() {
        let setup = Setup {
            retest_on_rollback: true,
            warm: 2,
            ..setup(1, 1)
        };
        let events = [
            Event::EndpointsLag(true),
            Event::Tamper(Tamper::DeleteActiveReplicaSet),
            Event::Image(0),
            Event::Converge,
            Event::EndpointsLag(false),
            Event::Reconcile,
            Event::Tamper(Tamper::SelectorOntoStandby),
            Event::Reconcile,
        ];
        run(&setup, &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A rollout back onto the warm standby, the selector moved onto that (still starting)
    /// standby by hand, then an abort: the abort would scale down what customers reach, so
    /// it waits until the selector is repaired.
    #[test]
    fn an_abort_waits_while_a_hand_moved_selector_exposes_the_cold_color() {
        let setup = Setup {
            warm: 2,
            ..setup(0, 2)
        };
        let events = [
            Event::Replicas(1),
            Event::Image(0),
            Event::Reconcile,
            Event::Tamper(Tamper::SelectorOntoStandby),
            Event::Write {
                verb: 1,
                fresh: false,
            },
        ];
        run(&setup, &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Killed right after the flip of a rollback-kind rollout, the selector "moved" by hand
    /// onto what it already selects, then the spec reverted: nothing changed hands, so the
    /// controller's own flip is recognised and the color it left keeps its warm window.
    #[test]
    fn a_hand_edit_that_changes_nothing_is_not_drift() {
        let setup = Setup {
            warm: 2,
            scale_down_delay: 30,
            ..setup(0, 1)
        };
        let events = [
            Event::AdvancePast(0),
            Event::Image(0),
            Event::Reconcile,
            Event::Crash { at: 1 },
            Event::Tamper(Tamper::SelectorOntoStandby),
            Event::Image(1),
        ];
        run(&setup, &events).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A rollback's flip done by a killed controller, then an abort and the selector moved
    /// to a revision that does not exist: the restart puts the selector back on the
    /// recorded active color and aborts in the same plan; the repair is no promotion.
    #[test]
    fn an_abort_beside_a_repair_towards_the_recorded_active_color() {
        let setup = Setup {
            scale_down_delay: 30,
            warm: 2,
            ..setup(0, 1)
        };
        let events = [
            Event::Write {
                verb: 3,
                fresh: false,
            },
            Event::Reconcile,
            Event::Crash { at: 1 },
            Event::Write {
                verb: 1,
                fresh: true,
            },
            Event::Tamper(Tamper::SelectorToMissingRevision),
            Event::Reconcile,
        ];
        run(&setup, &events).unwrap_or_else(|e| panic!("{e}"));
    }
}
