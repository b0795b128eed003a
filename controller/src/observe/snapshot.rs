//! Builds the planner's [`Observed`] world for one release from the caches (reads only).

use bluegreen_crd::{BlueGreenRelease, RolloutStatus, SmokeTestPhase};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;

use super::index::Caches;
use super::views::{JobState, Observed, PodSummary, whole_seconds};

/// The world of one release, as the caches hold it. Failed smoke-test Jobs that still need
/// their log tail are listed in the second value (pod name per Job name).
pub fn observe(
    release: &BlueGreenRelease,
    caches: &Caches,
    now: Timestamp,
) -> (Observed, Vec<(String, String)>) {
    let key = ObjectRef::from_obj(release);
    let services = caches.services.of_release(&key);
    let find_service = |wanted: &str| services.iter().find(|s| s.name == wanted).cloned();
    let active_service = find_service(&release.spec.service.name);
    let preview_name = release.preview_service_name();
    let preview_service = find_service(&preview_name);
    let former_services = services
        .iter()
        .filter(|s| s.name != release.spec.service.name && s.name != preview_name)
        .cloned()
        .collect();
    let preview_endpoints = caches
        .endpoint_slices
        .of_release(&key)
        .into_iter()
        .filter(|slice| slice.service == preview_name)
        .flat_map(|slice| slice.endpoints)
        .collect();
    let pods = caches.pods.of_release(&key);

    let mut jobs = caches.jobs.of_release(&key);
    let status = release.status.clone().unwrap_or_default();
    let current_rollout = status.rollout.as_ref().map(RolloutStatus::id);
    let mut logs_needed = Vec::new();
    for job in &mut jobs {
        let already_recorded = status
            .smoke_tests
            .iter()
            .any(|t| t.job == job.name && t.phase == SmokeTestPhase::Failed);
        let is_current = current_rollout.as_deref() == Some(job.rollout.as_str());
        if matches!(job.state, JobState::Failed { .. })
            && is_current
            && !already_recorded
            && let Some(pod) = newest_pod_of_job(&pods, &job.uid)
        {
            logs_needed.push((job.name.clone(), pod));
        }
    }

    let observed = Observed {
        release: release.clone(),
        replica_sets: caches.replica_sets.of_release(&key),
        active_service,
        preview_service,
        former_services,
        preview_endpoints,
        pods: pods
            .into_iter()
            .filter(|p| p.job_uid.is_none())
            .map(|p| p.view)
            .collect(),
        jobs,
        now: whole_seconds(now),
        analysis: None,
        default_prometheus: false,
    };
    (observed, logs_needed)
}

/// The most recently created pod of a Job (the attempt whose log explains the failure).
fn newest_pod_of_job(pods: &[PodSummary], job_uid: &str) -> Option<String> {
    pods.iter()
        .filter(|p| p.job_uid.as_deref() == Some(job_uid))
        .max_by_key(|p| p.created)
        .map(|p| p.view.name.clone())
}
