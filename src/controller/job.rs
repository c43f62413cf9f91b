//! The Job controller (`batch/v1`), as a pure pass over the store with the
//! time passed in: pods named `<job>-<random>` with the labels, owner
//! reference and tracking finalizer Kubernetes gives them; `completions`,
//! `parallelism`, `backoffLimit` (with the controller's exponential delay
//! between failed pods), `activeDeadlineSeconds`, `ttlSecondsAfterFinished`;
//! status counts and the conditions of Kubernetes 1.32 (`SuccessCriteriaMet`
//! then `Complete`, `FailureTarget` then `Failed`, the terminal one once no
//! pod of the Job is running).

use super::workload::{is_terminating, mark_deleted, pod_ready, random_suffix};
use crate::model::{Job, Kind, Object, Pod};
use crate::store::{Key, Store};
use k8s_openapi::api::batch::v1::{JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Labels the API server puts on a Job's pod template (and so its pods).
pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID: &str = "controller-uid";
pub const LEGACY_JOB_NAME: &str = "job-name";
/// The finalizer a Job's pods carry until the controller has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// The delay before a failed pod is replaced: 10 s, doubled per failure,
/// at most 6 minutes (the job controller's `DefaultJobPodFailureBackOff`
/// and `MaxJobPodFailureBackOff`).
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(360);

fn time(t: SystemTime) -> Time {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap_or_default())
}

fn system(t: &Time) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.0.as_second().max(0) as u64)
}

fn has(status: &JobStatus, type_: &str) -> Option<JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
        .cloned()
}

fn condition(type_: &str, reason: &str, message: &str, now: SystemTime) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn finished(p: &Pod) -> bool {
    matches!(phase(p), "Succeeded" | "Failed")
}

/// When a failed pod's last container stopped (its creation if unknown).
fn failed_at(p: &Pod) -> Option<SystemTime> {
    let ended = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(system)
        .max();
    ended.or_else(|| p.metadata.creation_timestamp.as_ref().map(system))
}

/// The delay before the next pod after `failures` failed ones.
pub fn backoff(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    let shift = (failures - 1).min(10) as u32;
    (BACKOFF_BASE * 2u32.pow(shift)).min(BACKOFF_MAX)
}

/// One pass of the Job controller over every Job.
pub fn jobs(store: &mut Store, now: SystemTime) {
    for key in store.keys(Kind::Job) {
        let Some(Object::Job(j)) = store.get(&key).cloned() else {
            continue;
        };
        job(store, &key, &j, now);
    }
}

fn owned(store: &Store, ns: &str, uid: &str) -> Vec<Pod> {
    store
        .list(Kind::Pod, Some(ns))
        .filter_map(|o| match o {
            Object::Pod(p)
                if p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true) && r.uid == uid) =>
            {
                Some((**p).clone())
            }
            _ => None,
        })
        .collect()
}

fn pod_key(p: &Pod) -> Key {
    Key::new(
        Kind::Pod,
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or(""),
    )
}

fn job(store: &mut Store, key: &Key, j: &Job, now: SystemTime) {
    let ns = key.namespace.clone();
    let uid = j.metadata.uid.clone().unwrap_or_default();
    let spec = j.spec.clone().unwrap_or_default();
    let mut status = j.status.clone().unwrap_or_default();
    let old_status = j.status.clone();
    let pods = owned(store, &ns, &uid);

    // Count pods that finished (or were deleted unfinished: a failure) and
    // release them, as the controller does with its tracking finalizer.
    let (mut succeeded, mut failed) = (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0));
    for p in &pods {
        let tracked = p
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == TRACKING_FINALIZER);
        if !tracked || !(finished(p) || is_terminating(&p.metadata)) {
            continue;
        }
        match phase(p) {
            "Succeeded" => succeeded += 1,
            _ => failed += 1,
        }
        let mut p2 = p.clone();
        if let Some(f) = p2.metadata.finalizers.as_mut() {
            f.retain(|f| f != TRACKING_FINALIZER);
        }
        if p2.metadata.finalizers.as_ref().is_some_and(Vec::is_empty) {
            p2.metadata.finalizers = None;
        }
        store.update(Object::Pod(Box::new(p2)));
    }
    status.succeeded = Some(succeeded).filter(|n| *n > 0);
    status.failed = Some(failed).filter(|n| *n > 0);

    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| !finished(p) && !is_terminating(&p.metadata))
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| is_terminating(&p.metadata) && !finished(p))
        .count() as i32;
    let done = has(&status, "Complete").or_else(|| has(&status, "Failed"));

    if let Some(cond) = done {
        // Finished: nothing runs any more; the TTL controller's part.
        for p in &running {
            mark_deleted(store, &pod_key(p), None);
        }
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let end = status
                .completion_time
                .as_ref()
                .or(cond.last_transition_time.as_ref())
                .map(system)
                .unwrap_or(now);
            if now >= end + Duration::from_secs(ttl.max(0) as u64) {
                store.remove(key);
                return;
            }
        }
        status.active = None;
        status.ready = Some(0);
        status.terminating = Some(terminating);
        save(store, j, old_status, status);
        return;
    }

    let start = status.start_time.clone().unwrap_or_else(|| time(now));
    status.start_time = Some(start.clone());
    let active = running.len() as i32;
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6).max(0);
    let on_failure = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        == Some("OnFailure");

    // Failure: the deadline, or too many failures (for OnFailure, the
    // restarts of the running pods count).
    let restarts: i32 = if on_failure {
        running
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let past_restarts = on_failure
        && if backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= backoff_limit
        };
    let mut conditions = status.conditions.clone().unwrap_or_default();
    let failure = has(&status, "FailureTarget").or_else(|| {
        let deadline = spec
            .active_deadline_seconds
            .map(|s| system(&start) + Duration::from_secs(s.max(0) as u64));
        if deadline.is_some_and(|d| now >= d) {
            Some(condition(
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                now,
            ))
        } else if failed > backoff_limit || past_restarts {
            Some(condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            ))
        } else {
            None
        }
    });
    let success = has(&status, "SuccessCriteriaMet").or_else(|| {
        let met = match spec.completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active == 0,
        };
        met.then(|| {
            condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            )
        })
    });

    if let Some(target) = failure.or(success) {
        if !conditions.iter().any(|c| c.type_ == target.type_) {
            conditions.push(target.clone());
        }
        for p in &running {
            mark_deleted(store, &pod_key(p), None);
        }
        let left = owned(store, &ns, &uid)
            .iter()
            .filter(|p| !finished(p))
            .count();
        if left == 0 {
            let terminal = if target.type_ == "FailureTarget" {
                "Failed"
            } else {
                status.completion_time = Some(time(now));
                "Complete"
            };
            let mut c = target.clone();
            c.type_ = terminal.into();
            c.last_probe_time = Some(time(now));
            c.last_transition_time = Some(time(now));
            conditions.push(c);
        }
        status.conditions = Some(conditions);
        status.active = None;
        status.ready = Some(0);
        status.terminating = Some(left as i32);
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
        save(store, j, old_status, status);
        return;
    }

    // Pods to start (or, if parallelism went down, to stop).
    let wanted = match spec.completions {
        Some(c) => parallelism.min((c - succeeded).max(0)),
        None if succeeded > 0 => 0,
        None => parallelism,
    };
    let mut active_now = active;
    if wanted > active {
        let last_failure = pods
            .iter()
            .filter(|p| phase(p) == "Failed")
            .filter_map(failed_at)
            .max();
        let ready_at = last_failure.map(|t| t + backoff(failed));
        if ready_at.is_none_or(|t| now >= t) {
            for _ in active..wanted {
                if create_pod(store, j, &ns).is_some() {
                    active_now += 1;
                }
            }
        }
    } else if active > wanted {
        let mut extra: Vec<&&Pod> = running.iter().collect();
        extra.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        });
        for p in extra.into_iter().take((active - wanted) as usize) {
            mark_deleted(store, &pod_key(p), None);
            active_now -= 1;
        }
    }
    status.active = Some(active_now).filter(|n| *n > 0);
    status.ready = Some(running.iter().filter(|p| pod_ready(p)).count() as i32);
    status.terminating = Some(terminating);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    if !conditions.is_empty() {
        status.conditions = Some(conditions);
    }
    save(store, j, old_status, status);
}

fn save(store: &mut Store, j: &Job, old: Option<JobStatus>, status: JobStatus) {
    if old.as_ref() != Some(&status) {
        let mut j2 = j.clone();
        j2.status = Some(status);
        store.update(Object::Job(Box::new(j2)));
    }
}

/// A pod from the Job's template: `<job>-<random>`, the template's labels
/// (the API server added `job-name` and `controller-uid` to them), the Job
/// as controlling owner, the tracking finalizer.
fn create_pod(store: &mut Store, j: &Job, ns: &str) -> Option<Key> {
    let name = j.metadata.name.clone().unwrap_or_default();
    let template = j.spec.as_ref()?.template.clone();
    let mut meta: ObjectMeta = template.metadata.unwrap_or_default();
    let pod_name = loop {
        let n = format!("{name}-{}", random_suffix());
        if store.get(&Key::new(Kind::Pod, ns, &n)).is_none() {
            break n;
        }
    };
    meta.name = Some(pod_name);
    meta.generate_name = Some(format!("{name}-"));
    meta.namespace = Some(ns.to_string());
    meta.finalizers = Some(vec![TRACKING_FINALIZER.into()]);
    meta.owner_references = Some(vec![OwnerReference {
        api_version: Kind::Job.api_version().into(),
        kind: Kind::Job.as_str().into(),
        name,
        uid: j.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    store
        .create(Object::Pod(Box::new(Pod {
            metadata: meta,
            spec: template.spec,
            status: None,
        })))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::workload::garbage_collect;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodStatus,
    };

    const T0: u64 = 1_800_000_000;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + s)
    }

    /// A Job as the API server stores it (defaults, selector, labels).
    fn new_job(store: &mut Store, extra: serde_json::Value, restart: &str) -> Key {
        let mut spec = serde_json::json!({
            "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
            "selector": {"matchLabels": {CONTROLLER_UID: "u1"}},
            "template": {
                "metadata": {"labels": {CONTROLLER_UID: "u1", JOB_NAME: "t", LEGACY_CONTROLLER_UID: "u1", LEGACY_JOB_NAME: "t"}},
                "spec": {"restartPolicy": restart,
                    "containers": [{"name": "c", "image": "curl", "command": ["curl", "web"]}]}
            }
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        if spec.get("completions").is_none() && extra.get("parallelism").is_none() {
            spec["completions"] = 1.into();
        }
        let v = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "t", "namespace": "default", "uid": "u1"}, "spec": spec});
        store
            .create(Object::from_json(Kind::Job, v).unwrap())
            .unwrap()
    }

    fn get(store: &Store, key: &Key) -> Job {
        match store.get(key) {
            Some(Object::Job(j)) => (**j).clone(),
            _ => panic!("no job"),
        }
    }

    fn pods(store: &Store) -> Vec<Pod> {
        store
            .list(Kind::Pod, Some("default"))
            .filter_map(|o| match o {
                Object::Pod(p) => Some((**p).clone()),
                _ => None,
            })
            .collect()
    }

    fn live(store: &Store) -> Vec<Pod> {
        pods(store)
            .into_iter()
            .filter(|p| !finished(p) && !is_terminating(&p.metadata))
            .collect()
    }

    /// The kubelet's part: a pod's container ends with `code` at `t`.
    fn finish(store: &mut Store, p: &Pod, code: i32, t: SystemTime) {
        let mut p = p.clone();
        p.status = Some(PodStatus {
            phase: Some(if code == 0 { "Succeeded" } else { "Failed" }.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "c".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        finished_at: Some(time(t)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
        store.update(Object::Pod(Box::new(p)));
    }

    /// The runtime's part: terminating pods go away.
    fn reap(store: &mut Store) {
        for k in store.keys(Kind::Pod) {
            if store.get(&k).is_some_and(|o| is_terminating(o.meta())) {
                store.remove(&k);
            }
        }
    }

    fn cond_types(j: &Job) -> Vec<String> {
        j.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .map(|c| format!("{}:{}", c.type_, c.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn a_job_runs_one_pod_named_and_labelled_as_kubernetes_does() {
        let mut s = Store::default();
        let k = new_job(&mut s, serde_json::json!({}), "Never");
        jobs(&mut s, at(0));
        let ps = pods(&s);
        assert_eq!(ps.len(), 1);
        let p = &ps[0];
        let name = p.metadata.name.clone().unwrap();
        assert!(name.starts_with("t-") && name.len() == 7, "{name}");
        let l = p.metadata.labels.clone().unwrap();
        assert_eq!(l[JOB_NAME], "t");
        assert_eq!(l[LEGACY_JOB_NAME], "t");
        assert_eq!(l[CONTROLLER_UID], "u1");
        assert_eq!(l[LEGACY_CONTROLLER_UID], "u1");
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("Job", "u1", Some(true))
        );
        assert_eq!(
            p.metadata.finalizers.as_deref(),
            Some(&[TRACKING_FINALIZER.to_string()][..])
        );
        let st = get(&s, &k).status.unwrap();
        assert_eq!(st.active, Some(1));
        assert_eq!(st.start_time, Some(time(at(0))));
        // Re-running changes nothing.
        let rv = s.resource_version();
        jobs(&mut s, at(1));
        assert_eq!(s.resource_version(), rv);
    }

    /// Table: completions × parallelism → pods running at each step, until
    /// Complete, every pod succeeding.
    #[test]
    fn completions_and_parallelism() {
        struct Case {
            completions: Option<i32>,
            parallelism: i32,
            /// Pods running before each round of successes.
            rounds: &'static [usize],
            succeeded: i32,
        }
        let cases = [
            // The default: one pod.
            Case {
                completions: Some(1),
                parallelism: 1,
                rounds: &[1],
                succeeded: 1,
            },
            // Three completions, one at a time.
            Case {
                completions: Some(3),
                parallelism: 1,
                rounds: &[1, 1, 1],
                succeeded: 3,
            },
            // Five completions, two at a time: 2, 2, then the last one.
            Case {
                completions: Some(5),
                parallelism: 2,
                rounds: &[2, 2, 1],
                succeeded: 5,
            },
            // Parallelism above completions runs only what is needed.
            Case {
                completions: Some(2),
                parallelism: 4,
                rounds: &[2],
                succeeded: 2,
            },
            // A work queue (no completions): all run, the first success ends it.
            Case {
                completions: None,
                parallelism: 3,
                rounds: &[3],
                succeeded: 3,
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let mut s = Store::default();
            let mut extra = serde_json::json!({"parallelism": c.parallelism});
            if let Some(n) = c.completions {
                extra["completions"] = n.into();
            }
            let k = new_job(&mut s, extra, "Never");
            let mut t = 0;
            for (r, want) in c.rounds.iter().enumerate() {
                jobs(&mut s, at(t));
                let running = live(&s);
                assert_eq!(running.len(), *want, "case {i} round {r}");
                assert!(
                    !cond_types(&get(&s, &k))
                        .iter()
                        .any(|c| c.starts_with("Complete"))
                );
                t += 5;
                for p in &running {
                    finish(&mut s, p, 0, at(t));
                }
            }
            jobs(&mut s, at(t + 1));
            let j = get(&s, &k);
            assert_eq!(
                cond_types(&j),
                [
                    "SuccessCriteriaMet:CompletionsReached",
                    "Complete:CompletionsReached"
                ],
                "case {i}"
            );
            let st = j.status.unwrap();
            assert_eq!(st.succeeded, Some(c.succeeded), "case {i}");
            assert_eq!(st.active, None, "case {i}");
            assert_eq!(st.completion_time, Some(time(at(t + 1))), "case {i}");
            assert!(live(&s).is_empty(), "case {i}");
            // Counted pods lose the tracking finalizer.
            assert!(pods(&s).iter().all(|p| p.metadata.finalizers.is_none()));
        }
    }

    /// Table: restartPolicy Never, backoffLimit → pods tried before Failed,
    /// with the controller's delay between them.
    #[test]
    fn backoff_limit_with_never() {
        for (limit, tries) in [(0, 1), (1, 2), (2, 3)] {
            let mut s = Store::default();
            let k = new_job(&mut s, serde_json::json!({"backoffLimit": limit}), "Never");
            let mut t = 0;
            for failed_so_far in 1..=tries {
                jobs(&mut s, at(t));
                let running = live(&s);
                assert_eq!(running.len(), 1, "limit {limit}: try {failed_so_far}");
                finish(&mut s, &running[0], 1, at(t + 1));
                // Before the delay is over no new pod starts.
                jobs(&mut s, at(t + 2));
                if failed_so_far <= limit {
                    assert!(live(&s).is_empty(), "limit {limit}: replaced too early");
                }
                t += 1 + backoff(failed_so_far).as_secs();
            }
            jobs(&mut s, at(t));
            let j = get(&s, &k);
            assert_eq!(
                cond_types(&j),
                [
                    "FailureTarget:BackoffLimitExceeded",
                    "Failed:BackoffLimitExceeded"
                ],
                "limit {limit}"
            );
            assert_eq!(j.status.as_ref().unwrap().failed, Some(tries));
            assert_eq!(j.status.as_ref().unwrap().completion_time, None);
            assert_eq!(pods(&s).len() as i32, tries);
            assert!(live(&s).is_empty());
        }
    }

    #[test]
    fn backoff_doubles_up_to_six_minutes() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(4), Duration::from_secs(80));
        assert_eq!(backoff(6), Duration::from_secs(320));
        assert_eq!(backoff(7), BACKOFF_MAX);
        assert_eq!(backoff(100), BACKOFF_MAX);
    }

    #[test]
    fn on_failure_counts_container_restarts() {
        let mut s = Store::default();
        let k = new_job(&mut s, serde_json::json!({"backoffLimit": 2}), "OnFailure");
        jobs(&mut s, at(0));
        let mut p = live(&s).remove(0);
        for (restarts, failed) in [(1, false), (2, true)] {
            p.status = Some(PodStatus {
                phase: Some("Running".into()),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            });
            s.update(Object::Pod(Box::new(p.clone())));
            jobs(&mut s, at(5));
            let c = cond_types(&get(&s, &k));
            assert_eq!(
                c.contains(&"FailureTarget:BackoffLimitExceeded".to_string()),
                failed,
                "{restarts} restarts: {c:?}"
            );
        }
        // The running pod is deleted; Failed comes once it is gone.
        assert!(
            !cond_types(&get(&s, &k))
                .iter()
                .any(|c| c.starts_with("Failed"))
        );
        reap(&mut s);
        jobs(&mut s, at(6));
        assert!(cond_types(&get(&s, &k)).contains(&"Failed:BackoffLimitExceeded".to_string()));
    }

    #[test]
    fn active_deadline_fails_the_job_and_stops_its_pods() {
        let mut s = Store::default();
        let k = new_job(
            &mut s,
            serde_json::json!({"activeDeadlineSeconds": 30, "parallelism": 2, "completions": 4}),
            "Never",
        );
        jobs(&mut s, at(0));
        assert_eq!(live(&s).len(), 2);
        jobs(&mut s, at(29));
        assert!(cond_types(&get(&s, &k)).is_empty());
        jobs(&mut s, at(30));
        assert_eq!(cond_types(&get(&s, &k)), ["FailureTarget:DeadlineExceeded"]);
        assert!(live(&s).is_empty(), "running pods are deleted");
        reap(&mut s);
        jobs(&mut s, at(31));
        assert_eq!(
            cond_types(&get(&s, &k)),
            ["FailureTarget:DeadlineExceeded", "Failed:DeadlineExceeded"]
        );
    }

    #[test]
    fn ttl_deletes_a_finished_job_and_its_pods_go_with_it() {
        let mut s = Store::default();
        let k = new_job(
            &mut s,
            serde_json::json!({"ttlSecondsAfterFinished": 10}),
            "Never",
        );
        jobs(&mut s, at(0));
        let p = live(&s).remove(0);
        finish(&mut s, &p, 0, at(1));
        jobs(&mut s, at(2));
        assert!(cond_types(&get(&s, &k)).contains(&"Complete:CompletionsReached".into()));
        jobs(&mut s, at(11));
        assert!(s.get(&k).is_some());
        jobs(&mut s, at(12));
        assert!(s.get(&k).is_none());
        garbage_collect(&mut s);
        assert!(pods(&s).iter().all(|p| is_terminating(&p.metadata)));
    }

    #[test]
    fn a_deleted_running_pod_counts_as_failed_and_is_replaced() {
        let mut s = Store::default();
        let k = new_job(&mut s, serde_json::json!({}), "Never");
        jobs(&mut s, at(0));
        let p = live(&s).remove(0);
        mark_deleted(&mut s, &pod_key(&p), None);
        jobs(&mut s, at(1));
        assert_eq!(get(&s, &k).status.unwrap().failed, Some(1));
        // A deleted pod is not a failed container: no delay.
        jobs(&mut s, at(2));
        assert_eq!(live(&s).len(), 1);
    }

    #[test]
    fn lowering_parallelism_stops_the_newest_pods() {
        let mut s = Store::default();
        let k = new_job(
            &mut s,
            serde_json::json!({"parallelism": 3, "completions": 6}),
            "Never",
        );
        jobs(&mut s, at(0));
        assert_eq!(live(&s).len(), 3);
        let mut j = get(&s, &k);
        j.spec.as_mut().unwrap().parallelism = Some(1);
        s.update(Object::Job(Box::new(j)));
        jobs(&mut s, at(1));
        assert_eq!(live(&s).len(), 1);
    }
}
