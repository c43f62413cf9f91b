//! Pod status (phase, conditions, container statuses) from what the shim
//! reports, as the kubelet computes it.

use crate::model::Pod;
use crate::wire::shim::{self as proto, ShimPhase, ShimStatus};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn parse_time(s: &str) -> Option<Time> {
    s.parse::<k8s_openapi::jiff::Timestamp>().ok().map(Time)
}

fn state(s: &proto::ContainerState) -> ContainerState {
    match s {
        proto::ContainerState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: Some(message.clone()).filter(|m| !m.is_empty()),
            }),
            ..Default::default()
        },
        proto::ContainerState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: parse_time(started_at),
            }),
            ..Default::default()
        },
        proto::ContainerState::Terminated {
            exit_code,
            signal,
            reason,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: parse_time(started_at),
                finished_at: parse_time(finished_at),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn condition(old: &Option<PodStatus>, type_: &str, ok: bool, reason: Option<&str>) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let prev = old
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_));
    let since = match prev {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(crate::model::now_time()),
    };
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: since,
        reason: reason.map(String::from),
        ..Default::default()
    }
}

/// Compute the status of `pod` given its IP (once allocated), the shim's
/// report (once running), and an error preventing it from starting.
pub fn compute(
    pod: &Pod,
    ip: Option<&str>,
    shim: Option<&ShimStatus>,
    start_error: Option<&str>,
) -> PodStatus {
    let old = &pod.status;
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let image = |name: &str| {
        containers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.image.clone())
            .unwrap_or_default()
    };
    let statuses: Vec<ContainerStatus> = match shim {
        Some(sh) => sh
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: image(&c.name),
                image_id: String::new(),
                ready: c.ready,
                restart_count: c.restart_count as i32,
                started: Some(c.started),
                container_id: c.pid.map(|p| format!("lab://{}/{p}", sh.shim_pid)),
                state: Some(state(&c.state)),
                last_state: c.last_state.as_ref().map(state),
                ..Default::default()
            })
            .collect(),
        None => containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                ready: false,
                restart_count: 0,
                started: Some(false),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(
                            if start_error.is_some() {
                                "CreateContainerError"
                            } else {
                                "ContainerCreating"
                            }
                            .into(),
                        ),
                        message: start_error.map(String::from),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    };
    let phase = match shim.map(|s| s.phase) {
        None => "Pending",
        Some(ShimPhase::Running) | Some(ShimPhase::Terminating) => "Running",
        Some(ShimPhase::Succeeded) => "Succeeded",
        Some(ShimPhase::Failed) => "Failed",
    };
    let all_ready = !statuses.is_empty() && statuses.iter().all(|c| c.ready);
    let sandbox = shim.is_some();
    let conditions = vec![
        condition(old, "PodReadyToStartContainers", sandbox, None),
        condition(old, "Initialized", true, None),
        condition(
            old,
            "Ready",
            all_ready,
            (!all_ready).then_some("ContainersNotReady"),
        ),
        condition(
            old,
            "ContainersReady",
            all_ready,
            (!all_ready).then_some("ContainersNotReady"),
        ),
        condition(old, "PodScheduled", true, None),
    ];
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        pod_ip: ip.map(String::from),
        pod_ips: ip.map(|ip| vec![PodIP { ip: ip.into() }]),
        // Set once by the runtime when the pod starts on its node.
        host_ip: old.as_ref().and_then(|s| s.host_ip.clone()),
        host_ips: old.as_ref().and_then(|s| s.host_ips.clone()),
        start_time: old
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| Some(crate::model::now_time())),
        container_statuses: Some(statuses),
        message: start_error.map(String::from),
        reason: None,
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Object};
    use proto::ContainerStatus as Cs;

    fn pod() -> Pod {
        let o = Object::from_json(
            Kind::Pod,
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "image": "img", "command": ["x"]}]}}),
        )
        .unwrap();
        match o {
            Object::Pod(p) => *p,
            _ => unreachable!(),
        }
    }

    fn shim(ready: bool, phase: ShimPhase) -> ShimStatus {
        ShimStatus {
            shim_pid: 1,
            started_at: "2026-11-24T10:00:00Z".into(),
            phase,
            containers: vec![Cs {
                name: "c".into(),
                state: proto::ContainerState::Running {
                    started_at: "2026-11-24T10:00:01Z".into(),
                },
                last_state: None,
                restart_count: 2,
                ready,
                started: true,
                pid: Some(2),
            }],
        }
    }

    fn cond(s: &PodStatus, t: &str) -> String {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == t)
            .unwrap()
            .status
            .clone()
    }

    #[test]
    fn pending_then_running_then_ready() {
        let p = pod();
        let s = compute(&p, None, None, None);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        let s = compute(
            &p,
            Some("10.244.0.2"),
            Some(&shim(false, ShimPhase::Running)),
            None,
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "False");
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.2"));
        let s = compute(
            &p,
            Some("10.244.0.2"),
            Some(&shim(true, ShimPhase::Running)),
            None,
        );
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(s.container_statuses.as_ref().unwrap()[0].restart_count, 2);
        let s = compute(
            &p,
            Some("10.244.0.2"),
            Some(&shim(false, ShimPhase::Failed)),
            None,
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
    }

    #[test]
    fn start_error_is_reported() {
        let s = compute(
            &pod(),
            None,
            None,
            Some("no free address left in 10.244.0.0/30"),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert!(s.message.unwrap().contains("no free address"));
    }

    #[test]
    fn the_host_ip_set_at_start_is_kept() {
        let mut p = pod();
        assert_eq!(compute(&p, None, None, None).host_ip, None);
        p.status = Some(PodStatus {
            host_ip: Some("172.18.0.3".into()),
            host_ips: Some(vec![k8s_openapi::api::core::v1::HostIP {
                ip: "172.18.0.3".into(),
            }]),
            ..Default::default()
        });
        let s = compute(&p, Some("10.244.1.2"), None, None);
        assert_eq!(s.host_ip.as_deref(), Some("172.18.0.3"));
        assert_eq!(s.host_ips.unwrap()[0].ip, "172.18.0.3");
    }
}
