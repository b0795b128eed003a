//! Statuses stored by the version before `status.rollout.stage` still decode, onto the stage
//! that version's fields implied, and are written back with nothing lost.
//!
//! `data/statuses-before-stages.json` was written by that version's own planner (its test kit
//! driven through a release, a manual promotion, rollbacks, a failed test and a pause), one
//! status per phase and rollout shape.

use bluegreen_crd::{
    BlueGreenReleaseStatus, RolloutKind, RolloutStage, RolloutStatus, StageName,
    rollout::StoredRollout,
};
use serde_json::Value;

fn stored() -> Vec<(String, Value)> {
    let file: Value = serde_json::from_str(include_str!("data/statuses-before-stages.json"))
        .expect("the fixture is JSON");
    file["statuses"]
        .as_array()
        .expect("a list of statuses")
        .iter()
        .map(|e| {
            (
                e["shape"].as_str().unwrap().to_string(),
                e["status"].clone(),
            )
        })
        .collect()
}

/// The stage the old fields imply, as the old planner read them.
fn implied(rollout: &Value) -> StageName {
    match (
        rollout["testsPassedAt"].is_string(),
        rollout["availableAt"].is_string(),
    ) {
        (true, _) => StageName::Promoting,
        (false, true) => StageName::Testing,
        (false, false) => StageName::Deploying,
    }
}

#[test]
fn every_phase_the_previous_version_wrote_decodes() {
    let statuses = stored();
    let phases: std::collections::BTreeSet<_> = statuses
        .iter()
        .map(|(_, s)| s["phase"].as_str().unwrap().to_string())
        .collect();
    for phase in [
        "Deploying",
        "Testing",
        "AwaitingPromotion",
        "Promoting",
        "Stable",
        "Failed",
        "RolledBack",
        "Paused",
    ] {
        assert!(phases.contains(phase), "the fixture has no {phase} status");
    }
    for (shape, json) in statuses {
        let status: BlueGreenReleaseStatus = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{shape}: does not decode: {e}"));
        let Some(rollout) = &status.rollout else {
            assert!(json["rollout"].is_null(), "{shape}: the rollout was lost");
            continue;
        };
        let old = &json["rollout"];
        assert_eq!(rollout.stage.name(), implied(old), "{shape}");
        assert_eq!(
            rollout.is_rollback(),
            old["rollback"].as_bool().unwrap(),
            "{shape}"
        );
        assert_eq!(
            rollout.skips_tests(),
            old["skipTests"].as_bool().unwrap(),
            "{shape}"
        );
        if let RolloutStage::Promoting {
            promote_requested, ..
        } = &rollout.stage
        {
            assert_eq!(
                *promote_requested,
                old["promoteRequested"].as_bool().unwrap(),
                "{shape}"
            );
        }
        assert_eq!(
            rollout.stage.tests_passed_at().map(|t| t.0.to_string()),
            old["testsPassedAt"].as_str().map(str::to_string),
            "{shape}"
        );
    }
}

#[test]
fn a_decoded_status_is_written_back_with_its_stage_and_nothing_else_lost() {
    for (shape, json) in stored() {
        let status: BlueGreenReleaseStatus = serde_json::from_value(json.clone()).unwrap();
        let back = serde_json::to_value(&status).unwrap();
        let (Some(old), Some(new)) = (json["rollout"].as_object(), back["rollout"].as_object())
        else {
            assert_eq!(
                back, json,
                "{shape}: a status without a rollout is unchanged"
            );
            continue;
        };
        assert_eq!(
            new.get("stage").and_then(Value::as_str),
            Some(implied(&json["rollout"]).to_string().as_str()),
            "{shape}"
        );
        for (field, value) in old {
            // `availableAt` belongs to the Testing stage; once the tests passed the old
            // version kept it, and the new one has no use for it.
            if field == "availableAt" && new.get("stage") != Some(&Value::from("Testing")) {
                continue;
            }
            assert_eq!(new.get(field), Some(value), "{shape}: rollout.{field}");
        }
        let mut rest = back.clone();
        let mut old_rest = json.clone();
        rest.as_object_mut().unwrap().remove("rollout");
        old_rest.as_object_mut().unwrap().remove("rollout");
        assert_eq!(
            rest, old_rest,
            "{shape}: outside the rollout nothing changes"
        );
    }
}

#[test]
fn every_stage_round_trips() {
    let t = |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().unwrap());
    let stages = [
        RolloutStage::Deploying,
        RolloutStage::Testing {
            available_at: t("2026-01-01T10:01:00Z"),
        },
        RolloutStage::AwaitingPromotion {
            tests_passed_at: t("2026-01-01T10:02:00Z"),
        },
        RolloutStage::Promoting {
            tests_passed_at: t("2026-01-01T10:02:00Z"),
            promote_requested: true,
        },
    ];
    for kind in [
        RolloutKind::Release,
        RolloutKind::Rollback { skip_tests: true },
    ] {
        for stage in stages.clone() {
            let mut rollout = RolloutStatus::start(
                "abc".into(),
                "1.0".into(),
                bluegreen_crd::Color::Green,
                t("2026-01-01T10:00:00Z"),
                kind,
                Some(1),
            );
            rollout.stage = stage;
            let json = serde_json::to_value(&rollout).unwrap();
            let stored: StoredRollout = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(stored.stage, Some(rollout.stage.name()));
            let back: RolloutStatus = serde_json::from_value(json).unwrap();
            assert_eq!(back, rollout);
        }
    }
}
