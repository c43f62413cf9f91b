//! The pod's state machine, pure: containers, restarts with back-off,
//! probes, phase. The shim's event loop feeds it what happened (a container
//! started, exited, a probe finished) with the time, and carries out the
//! [`Action`]s it returns.

use super::backoff::{self, Backoff};
use super::probe::{ProbeKind, ProbeState, Timing, Transition};
use crate::sys::process::Exit;
use crate::wire::shim::{
    ContainerState, ContainerStatus, RestartPolicy, ShimPhase, ShimSpec, ShimStatus,
};
use std::time::Duration;

/// The current time twice: monotonic (offset from the shim's start) for
/// decisions, wall clock (RFC 3339) for reports.
#[derive(Debug, Clone)]
pub struct Now {
    pub mono: Duration,
    pub wall: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start container `.0` (its `restart_count` names its log file).
    Start(usize),
    /// Run a probe of a container's current run (`run` identifies the run).
    Probe {
        container: usize,
        kind: ProbeKind,
        run: u64,
    },
    /// Liveness failed: kill the container (SIGKILL).
    Kill { container: usize, pid: i32 },
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub state: ContainerState,
    pub last_state: Option<ContainerState>,
    pub restart_count: u32,
    /// PID (in the pod's PID namespace) of the running process.
    pub pid: Option<i32>,
    /// Incremented at every start; probe results of older runs are ignored.
    pub run: u64,
    ever_started: bool,
    started_mono: Duration,
    backoff: Backoff,
    restart_at: Option<Duration>,
    /// Terminated and will not run again.
    done: bool,
    readiness_timing: Option<Timing>,
    liveness_timing: Option<Timing>,
    readiness: Option<ProbeState>,
    liveness: Option<ProbeState>,
}

impl Container {
    pub fn ready(&self) -> bool {
        self.pid.is_some() && self.readiness.as_ref().is_none_or(ProbeState::result)
    }

    fn probes_mut(&mut self) -> impl Iterator<Item = &mut ProbeState> {
        self.readiness.iter_mut().chain(self.liveness.iter_mut())
    }

    fn exit_code(&self) -> Option<i32> {
        match &self.state {
            ContainerState::Terminated { exit_code, .. } => Some(*exit_code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub containers: Vec<Container>,
    policy: RestartPolicy,
    stopping: bool,
    pod_name: String,
    namespace: String,
    pod_uid: String,
}

impl Pod {
    /// Every container waiting to be created, due at time zero.
    pub fn new(spec: &ShimSpec) -> Pod {
        let containers = spec
            .containers
            .iter()
            .map(|c| Container {
                name: c.name.clone(),
                state: ContainerState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                },
                last_state: None,
                restart_count: 0,
                pid: None,
                run: 0,
                ever_started: false,
                started_mono: Duration::ZERO,
                backoff: Backoff::default(),
                restart_at: Some(Duration::ZERO),
                done: false,
                readiness_timing: c.readiness_probe.as_ref().map(Timing::of),
                liveness_timing: c.liveness_probe.as_ref().map(Timing::of),
                readiness: None,
                liveness: None,
            })
            .collect();
        Pod {
            containers,
            policy: spec.restart_policy,
            stopping: false,
            pod_name: spec.pod_name.clone(),
            namespace: spec.namespace.clone(),
            pod_uid: spec.pod_uid.clone(),
        }
    }

    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// What is due at `now`: container starts (in spec order), then probes.
    pub fn due(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopping {
            return out;
        }
        for (i, c) in self.containers.iter_mut().enumerate() {
            if c.restart_at.is_some_and(|t| t <= now) {
                c.restart_at = None;
                if c.ever_started {
                    c.restart_count += 1;
                }
                c.ever_started = true;
                out.push(Action::Start(i));
            }
        }
        for (i, c) in self.containers.iter_mut().enumerate() {
            if c.pid.is_none() {
                continue;
            }
            let run = c.run;
            for p in c.probes_mut() {
                if p.is_due(now) {
                    p.begin(now);
                    out.push(Action::Probe {
                        container: i,
                        kind: p.kind,
                        run,
                    });
                }
            }
        }
        out
    }

    /// The next time [`due`](Self::due) has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        if self.stopping {
            return None;
        }
        self.containers
            .iter()
            .flat_map(|c| {
                let probes = c
                    .readiness
                    .iter()
                    .chain(c.liveness.iter())
                    .filter_map(ProbeState::next_deadline);
                c.restart_at
                    .into_iter()
                    .chain(probes.filter(|_| c.pid.is_some()))
            })
            .min()
    }

    /// Container `i` was started as process `pid`.
    pub fn started(&mut self, i: usize, pid: i32, now: &Now) {
        let c = &mut self.containers[i];
        c.run += 1;
        c.pid = Some(pid);
        c.started_mono = now.mono;
        if matches!(c.state, ContainerState::Terminated { .. }) {
            c.last_state = Some(c.state.clone());
        }
        c.state = ContainerState::Running {
            started_at: now.wall.clone(),
        };
        c.readiness = c
            .readiness_timing
            .map(|t| ProbeState::new(ProbeKind::Readiness, t, now.mono));
        c.liveness = c
            .liveness_timing
            .map(|t| ProbeState::new(ProbeKind::Liveness, t, now.mono));
    }

    /// Container `i` could not be started (no such program, bad mount, …):
    /// terminated with `StartError`, exit code 128.
    pub fn start_failed(&mut self, i: usize, now: &Now) {
        let c = &mut self.containers[i];
        c.run += 1;
        c.started_mono = now.mono;
        if matches!(c.state, ContainerState::Terminated { .. }) {
            c.last_state = Some(c.state.clone());
        }
        let wall = now.wall.clone();
        self.terminated(i, 128, None, "StartError", wall, now);
    }

    /// The process of container `i` ended.
    pub fn exited(&mut self, i: usize, exit: Exit, now: &Now) {
        let started_at = match &self.containers[i].state {
            ContainerState::Running { started_at } => started_at.clone(),
            _ => now.wall.clone(),
        };
        let (code, signal) = match exit {
            Exit::Code(c) => (c, None),
            Exit::Signal(s) => (128 + s, Some(s)),
        };
        let reason = if code == 0 { "Completed" } else { "Error" };
        self.terminated(i, code, signal, reason, started_at, now);
    }

    fn terminated(
        &mut self,
        i: usize,
        code: i32,
        signal: Option<i32>,
        reason: &str,
        started_at: String,
        now: &Now,
    ) {
        let stopping = self.stopping;
        let policy = self.policy;
        let (pod, ns, uid) = (&self.pod_name, &self.namespace, &self.pod_uid);
        let c = &mut self.containers[i];
        c.pid = None;
        c.readiness = None;
        c.liveness = None;
        let term = ContainerState::Terminated {
            exit_code: code,
            signal,
            reason: reason.into(),
            started_at,
            finished_at: now.wall.clone(),
        };
        let restart = !stopping
            && match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => code != 0,
                RestartPolicy::Never => false,
            };
        if !restart {
            c.state = term;
            c.done = true;
            return;
        }
        let delay = c
            .backoff
            .next_delay(now.mono.saturating_sub(c.started_mono));
        c.restart_at = Some(now.mono + delay);
        if delay.is_zero() {
            c.state = term;
        } else {
            c.last_state = Some(term);
            c.state = ContainerState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: backoff::message(delay, &c.name, pod, ns, uid),
            };
        }
    }

    /// A probe of run `run` of container `i` finished.
    pub fn probe_finished(
        &mut self,
        i: usize,
        kind: ProbeKind,
        run: u64,
        ok: bool,
    ) -> Option<Action> {
        let c = self.containers.get_mut(i)?;
        if c.run != run || c.pid.is_none() {
            return None;
        }
        let p = match kind {
            ProbeKind::Readiness => c.readiness.as_mut()?,
            ProbeKind::Liveness => c.liveness.as_mut()?,
        };
        match (kind, p.finish(ok)) {
            (ProbeKind::Liveness, Some(Transition::Failed)) if !self.stopping => {
                Some(Action::Kill {
                    container: i,
                    pid: c.pid?,
                })
            }
            _ => None,
        }
    }

    /// Stop: nothing restarts or is probed any more. Returns the PIDs of
    /// running containers.
    pub fn begin_stop(&mut self) -> Vec<i32> {
        self.stopping = true;
        for c in &mut self.containers {
            c.restart_at = None;
            if c.pid.is_none() {
                c.done = true;
            }
        }
        self.containers.iter().filter_map(|c| c.pid).collect()
    }

    pub fn phase(&self) -> ShimPhase {
        if self.stopping {
            ShimPhase::Terminating
        } else if !self.containers.iter().all(|c| c.done) {
            ShimPhase::Running
        } else if self.containers.iter().all(|c| c.exit_code() == Some(0)) {
            ShimPhase::Succeeded
        } else {
            ShimPhase::Failed
        }
    }

    pub fn status(&self, shim_pid: u32, started_at: &str) -> ShimStatus {
        ShimStatus {
            shim_pid,
            started_at: started_at.to_string(),
            phase: self.phase(),
            containers: self
                .containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    state: c.state.clone(),
                    last_state: c.last_state.clone(),
                    restart_count: c.restart_count,
                    ready: c.ready(),
                    started: c.pid.is_some(),
                    pid: c.pid.and_then(|p| u32::try_from(p).ok()),
                })
                .collect(),
        }
    }

    /// Which container (if any) runs as `pid`.
    pub fn container_of(&self, pid: i32) -> Option<usize> {
        self.containers.iter().position(|c| c.pid == Some(pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::shim::{ContainerSpec, Probe, ProbeHandler};
    use std::path::PathBuf;

    fn spec(policy: RestartPolicy, n: usize) -> ShimSpec {
        ShimSpec {
            cluster: "c".into(),
            namespace: "default".into(),
            pod_name: "p".into(),
            pod_uid: "u".into(),
            hostname: "p".into(),
            netns_path: PathBuf::new(),
            pod_ip: "10.244.0.2".parse().unwrap(),
            run_dir: PathBuf::new(),
            log_dir: PathBuf::new(),
            resolv_conf: PathBuf::new(),
            hosts: PathBuf::new(),
            hide_paths: vec![],
            root_files: vec![],
            restart_policy: policy,
            termination_grace_period_seconds: 30,
            log_rotation: Default::default(),
            containers: (0..n)
                .map(|i| ContainerSpec {
                    name: format!("c{i}"),
                    argv: vec!["true".into()],
                    env: vec![],
                    working_dir: None,
                    run_as_user: None,
                    run_as_group: None,
                    mounts: vec![],
                    security: Default::default(),
                    readiness_probe: None,
                    liveness_probe: None,
                })
                .collect(),
        }
    }

    fn at(s: u64) -> Now {
        Now {
            mono: Duration::from_secs(s),
            wall: format!("t{s}"),
        }
    }

    fn reason(s: &ContainerState) -> &str {
        match s {
            ContainerState::Waiting { reason, .. } | ContainerState::Terminated { reason, .. } => {
                reason
            }
            ContainerState::Running { .. } => "Running",
        }
    }

    #[test]
    fn starts_every_container_in_order_at_once() {
        let mut p = Pod::new(&spec(RestartPolicy::Always, 3));
        assert_eq!(
            p.due(Duration::ZERO),
            [Action::Start(0), Action::Start(1), Action::Start(2)]
        );
        assert!(p.due(Duration::ZERO).is_empty());
        assert_eq!(p.phase(), ShimPhase::Running);
        assert_eq!(reason(&p.containers[0].state), "ContainerCreating");
    }

    #[test]
    fn always_restarts_with_crash_loop_back_off() {
        let mut p = Pod::new(&spec(RestartPolicy::Always, 1));
        p.due(Duration::ZERO);
        p.started(0, 10, &at(0));
        assert!(p.containers[0].ready());
        p.exited(0, Exit::Code(1), &at(1));
        // First restart immediate.
        assert_eq!(p.due(Duration::from_secs(1)), [Action::Start(0)]);
        assert_eq!(p.containers[0].restart_count, 1);
        p.started(0, 11, &at(1));
        assert_eq!(
            reason(p.containers[0].last_state.as_ref().unwrap()),
            "Error"
        );
        p.exited(0, Exit::Code(1), &at(2));
        let c = &p.containers[0];
        match &c.state {
            ContainerState::Waiting { reason, message } => {
                assert_eq!(reason, "CrashLoopBackOff");
                assert_eq!(
                    message,
                    "back-off 10s restarting failed container=c0 pod=p_default(u)"
                );
            }
            s => panic!("{s:?}"),
        }
        assert!(!c.ready());
        assert_eq!(p.next_deadline(), Some(Duration::from_secs(12)));
        assert!(p.due(Duration::from_secs(11)).is_empty());
        assert_eq!(p.due(Duration::from_secs(12)), [Action::Start(0)]);
        assert_eq!(p.containers[0].restart_count, 2);
        p.started(0, 12, &at(12));
        p.exited(0, Exit::Code(0), &at(13));
        assert!(
            matches!(&p.containers[0].state, ContainerState::Waiting { message, .. } if message.starts_with("back-off 20s"))
        );
        assert_eq!(p.phase(), ShimPhase::Running);
    }

    #[test]
    fn on_failure_stops_after_success() {
        let mut p = Pod::new(&spec(RestartPolicy::OnFailure, 1));
        p.due(Duration::ZERO);
        p.started(0, 10, &at(0));
        p.exited(0, Exit::Signal(9), &at(1));
        match &p.containers[0].state {
            ContainerState::Terminated {
                exit_code, signal, ..
            } => assert_eq!((*exit_code, *signal), (137, Some(9))),
            s => panic!("{s:?}"),
        }
        assert_eq!(p.due(Duration::from_secs(1)), [Action::Start(0)]);
        p.started(0, 11, &at(1));
        p.exited(0, Exit::Code(0), &at(2));
        assert_eq!(reason(&p.containers[0].state), "Completed");
        assert_eq!(p.phase(), ShimPhase::Succeeded);
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn never_fails_when_one_container_fails() {
        let mut p = Pod::new(&spec(RestartPolicy::Never, 2));
        p.due(Duration::ZERO);
        p.started(0, 10, &at(0));
        p.start_failed(1, &at(0));
        assert_eq!(reason(&p.containers[1].state), "StartError");
        assert_eq!(p.phase(), ShimPhase::Running);
        p.exited(0, Exit::Code(0), &at(3));
        assert_eq!(p.phase(), ShimPhase::Failed);
        assert!(p.due(Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn start_error_is_restarted_under_always() {
        let mut p = Pod::new(&spec(RestartPolicy::Always, 1));
        p.due(Duration::ZERO);
        p.start_failed(0, &at(0));
        assert_eq!(p.due(Duration::ZERO), [Action::Start(0)]);
        p.start_failed(0, &at(0));
        assert_eq!(reason(&p.containers[0].state), "CrashLoopBackOff");
        assert_eq!(
            reason(p.containers[0].last_state.as_ref().unwrap()),
            "StartError"
        );
    }

    #[test]
    fn probes_drive_readiness_and_liveness_kills() {
        let mut s = spec(RestartPolicy::Always, 1);
        let probe = |f| Probe {
            handler: ProbeHandler::TcpSocket {
                host: None,
                port: 80,
            },
            initial_delay_seconds: 0,
            period_seconds: 1,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: f,
        };
        s.containers[0].readiness_probe = Some(probe(1));
        s.containers[0].liveness_probe = Some(probe(2));
        let mut p = Pod::new(&s);
        p.due(Duration::ZERO);
        p.started(0, 10, &at(5));
        assert!(
            !p.containers[0].ready(),
            "not ready before the readiness probe passes"
        );
        let run = p.containers[0].run;
        let acts = p.due(Duration::from_secs(5));
        assert_eq!(
            acts,
            [
                Action::Probe {
                    container: 0,
                    kind: ProbeKind::Readiness,
                    run
                },
                Action::Probe {
                    container: 0,
                    kind: ProbeKind::Liveness,
                    run
                }
            ]
        );
        assert_eq!(p.probe_finished(0, ProbeKind::Readiness, run, true), None);
        assert!(p.containers[0].ready());
        assert_eq!(p.probe_finished(0, ProbeKind::Liveness, run, false), None);
        // A result from an older run is ignored.
        assert_eq!(
            p.probe_finished(0, ProbeKind::Readiness, run - 1, false),
            None
        );
        assert_eq!(p.next_deadline(), Some(Duration::from_secs(6)));
        p.due(Duration::from_secs(6));
        assert_eq!(p.probe_finished(0, ProbeKind::Readiness, run, false), None);
        assert!(!p.containers[0].ready());
        assert_eq!(
            p.probe_finished(0, ProbeKind::Liveness, run, false),
            Some(Action::Kill {
                container: 0,
                pid: 10
            })
        );
        p.exited(0, Exit::Signal(9), &at(6));
        assert_eq!(p.due(Duration::from_secs(6)), [Action::Start(0)]);
    }

    #[test]
    fn stop_cancels_restarts_and_reports_terminating() {
        let mut p = Pod::new(&spec(RestartPolicy::Always, 2));
        p.due(Duration::ZERO);
        p.started(0, 10, &at(0));
        p.started(1, 11, &at(0));
        p.exited(1, Exit::Code(1), &at(1));
        assert_eq!(p.begin_stop(), [10]);
        assert_eq!(p.phase(), ShimPhase::Terminating);
        p.exited(0, Exit::Signal(15), &at(2));
        assert!(p.due(Duration::from_secs(100)).is_empty());
        assert_eq!(p.next_deadline(), None);
        assert_eq!(reason(&p.containers[0].state), "Error");
        assert_eq!(p.phase(), ShimPhase::Terminating);
    }
}
