//! A pod's STATUS, READY and RESTARTS columns, as kubectl computes them.

use super::*;

pub(crate) struct PodSummary {
    pub(crate) ready: usize,
    pub(crate) total: usize,
    pub(crate) reason: String,
    pub(crate) restarts: i64,
    pub(crate) last_restart: Option<Time>,
}

pub(crate) fn later(acc: &mut Option<Time>, t: Option<&Time>) {
    if let Some(t) = t
        && acc.as_ref().is_none_or(|a| a.0 < t.0)
    {
        *acc = Some(t.clone());
    }
}

pub(crate) fn last_finished(cs: &ContainerStatus) -> Option<&Time> {
    cs.last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
}

/// kubectl's `printPod` status logic.
pub(crate) fn pod_summary(pod: &Pod) -> PodSummary {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or(&[]);
    let init_containers = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[]);
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let init_statuses = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[]);
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);

    let restartable = |name: &str| {
        init_containers
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    };

    let total = containers.len()
        + init_containers
            .iter()
            .filter(|c| restartable(&c.name))
            .count();
    let mut ready = 0usize;
    // An object without status has not been looked at yet: the API server
    // would have set phase Pending.
    let phase = match status {
        None => "Pending".to_string(),
        Some(s) => s
            .phase
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "Pending".to_string()),
    };
    let status_reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
    let mut reason = if status_reason.is_empty() {
        phase.clone()
    } else {
        status_reason.to_string()
    };
    for c in conditions {
        if c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated") {
            reason = "SchedulingGated".into();
        }
    }

    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut last_restart: Option<Time> = None;
    let mut last_restartable_restart: Option<Time> = None;
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        restarts += i64::from(cs.restart_count);
        later(&mut last_restart, last_finished(cs));
        let is_restartable = restartable(&cs.name);
        if is_restartable {
            restartable_restarts += i64::from(cs.restart_count);
            later(&mut last_restartable_restart, last_finished(cs));
        }
        let state = cs.state.as_ref();
        let terminated = state.and_then(|s| s.terminated.as_ref());
        let waiting = state.and_then(|s| s.waiting.as_ref());
        if terminated.is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_restartable && cs.started == Some(true) {
            if cs.ready {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = opt_str(&t.reason);
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if t.signal.unwrap_or(0) != 0 {
                format!("Init:Signal:{}", t.signal.unwrap_or(0))
            } else {
                format!("Init:ExitCode:{}", t.exit_code)
            };
        } else if let Some(r) = waiting
            .map(|w| opt_str(&w.reason))
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{r}");
        } else {
            reason = format!("Init:{}/{}", i, init_containers.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == "True");
    if !initializing || initialized {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for cs in statuses.iter().rev() {
            restarts += i64::from(cs.restart_count);
            later(&mut last_restart, last_finished(cs));
            let state = cs.state.as_ref();
            let terminated = state.and_then(|s| s.terminated.as_ref());
            let waiting_reason = state
                .and_then(|s| s.waiting.as_ref())
                .map(|w| opt_str(&w.reason))
                .unwrap_or("");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let r = opt_str(&t.reason);
                reason = if !r.is_empty() {
                    r.to_string()
                } else if t.signal.unwrap_or(0) != 0 {
                    format!("Signal:{}", t.signal.unwrap_or(0))
                } else {
                    format!("ExitCode:{}", t.exit_code)
                };
            } else if cs.ready && state.is_some_and(|s| s.running.is_some()) {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status_reason == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }

    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

/// The STATUS column of `kubectl get pods`: `Running`, `ContainerCreating`,
/// `CrashLoopBackOff`, `Completed`, `Error`, `Init:0/1`, `Terminating`, …
#[cfg(test)]
pub fn pod_status_reason(pod: &Pod) -> String {
    pod_summary(pod).reason
}
