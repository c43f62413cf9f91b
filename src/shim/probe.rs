//! Probe state machines (readiness and liveness), pure: the caller runs the
//! probe and passes the clock in. Times are offsets from any fixed origin.

use crate::wire::shim::Probe;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Readiness,
    Liveness,
}

/// A probe's timing with Kubernetes defaults for zero values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let or = |v: u32, d: u32| if v == 0 { d } else { v };
        Timing {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.into()),
            period: Duration::from_secs(or(p.period_seconds, 10).into()),
            timeout: Duration::from_secs(or(p.timeout_seconds, 1).into()),
            success_threshold: or(p.success_threshold, 1),
            failure_threshold: or(p.failure_threshold, 3),
        }
    }
}

/// What a finished probe changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The result flipped to success (readiness: now ready).
    Succeeded,
    /// The result flipped to failure (readiness: not ready; liveness: kill).
    Failed,
}

/// The first retry of a readiness probe that has never succeeded; each
/// further one waits twice as long, up to the probe's period.
pub const STARTUP_RETRY: Duration = Duration::from_millis(20);

/// One probe of one run of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeState {
    pub kind: ProbeKind,
    pub timing: Timing,
    next_at: Duration,
    in_flight: bool,
    successes: u32,
    failures: u32,
    /// Readiness starts failed (not ready), liveness starts succeeded.
    result: bool,
    /// When the probe in flight (or the last one) began.
    began: Duration,
    /// A readiness probe has succeeded once in this run of the container.
    settled: bool,
    /// Early retries so far (see [`STARTUP_RETRY`]).
    retries: u32,
}

impl ProbeState {
    /// A probe for a container started at `started`.
    pub fn new(kind: ProbeKind, timing: Timing, started: Duration) -> ProbeState {
        ProbeState {
            kind,
            timing,
            next_at: started + timing.initial_delay,
            in_flight: false,
            successes: 0,
            failures: 0,
            result: kind == ProbeKind::Liveness,
            began: started,
            settled: false,
            retries: 0,
        }
    }

    pub fn result(&self) -> bool {
        self.result
    }

    /// When the probe should next run (`None` while one is running).
    pub fn next_deadline(&self) -> Option<Duration> {
        (!self.in_flight).then_some(self.next_at)
    }

    pub fn is_due(&self, now: Duration) -> bool {
        !self.in_flight && now >= self.next_at
    }

    /// The caller starts a probe now; it must finish within `timing.timeout`.
    pub fn begin(&mut self, now: Duration) {
        self.in_flight = true;
        self.began = now;
        self.next_at = now + self.timing.period;
    }

    /// A probe started with [`begin`](Self::begin) finished.
    ///
    /// A readiness probe that has not yet succeeded in this run of the
    /// container and fails is tried again soon — after [`STARTUP_RETRY`],
    /// doubling each time up to its period — instead of a whole period
    /// later: a server that takes a few milliseconds to listen is then
    /// Ready a few milliseconds after it does, not up to `periodSeconds`
    /// later. The kubelet does the like: while a started container is not
    /// yet ready, every pod status sync triggers an extra readiness probe
    /// run. Nothing changes once the probe has succeeded, nor for liveness.
    pub fn finish(&mut self, ok: bool) -> Option<Transition> {
        self.in_flight = false;
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.result && self.successes >= self.timing.success_threshold {
                self.result = true;
                self.settled = true;
                return Some(Transition::Succeeded);
            }
        } else {
            if self.kind == ProbeKind::Readiness && !self.settled {
                let retry = STARTUP_RETRY
                    .saturating_mul(1u32 << self.retries.min(16))
                    .min(self.timing.period);
                self.retries = self.retries.saturating_add(1);
                self.next_at = self.next_at.min(self.began + retry);
            }
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.result && self.failures >= self.timing.failure_threshold {
                self.result = false;
                return Some(Transition::Failed);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::shim::ProbeHandler;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    fn probe(initial: u32, period: u32, success: u32, failure: u32) -> Probe {
        Probe {
            handler: ProbeHandler::Exec {
                command: vec!["true".into()],
            },
            initial_delay_seconds: initial,
            period_seconds: period,
            timeout_seconds: 0,
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    /// Drive a probe on a fake clock: at every due time, run it with the
    /// next scripted result; record (time, transition).
    fn drive(p: &mut ProbeState, results: &[bool]) -> Vec<(u64, Option<Transition>)> {
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        let mut it = results.iter();
        while let Some(&ok) = it.clone().next() {
            if p.is_due(now) {
                it.next();
                p.begin(now);
                out.push((now.as_secs(), p.finish(ok)));
            }
            now += Duration::from_millis(500);
        }
        out
    }

    #[test]
    fn zero_values_get_kubernetes_defaults() {
        let t = Timing::of(&probe(0, 0, 0, 0));
        assert_eq!(t.period, s(10));
        assert_eq!(t.timeout, s(1));
        assert_eq!(t.success_threshold, 1);
        assert_eq!(t.failure_threshold, 3);
        assert_eq!(t.initial_delay, s(0));
    }

    #[test]
    fn readiness_waits_for_initial_delay_and_success_threshold() {
        let mut p = ProbeState::new(ProbeKind::Readiness, Timing::of(&probe(5, 2, 2, 3)), s(0));
        assert!(!p.result());
        assert!(!p.is_due(s(4)));
        assert_eq!(p.next_deadline(), Some(s(5)));
        let got = drive(&mut p, &[true, true, true]);
        assert_eq!(
            got,
            [(5, None), (7, Some(Transition::Succeeded)), (9, None)]
        );
        assert!(p.result());
    }

    #[test]
    fn readiness_drops_after_failure_threshold_and_recovers() {
        let mut p = ProbeState::new(ProbeKind::Readiness, Timing::of(&probe(0, 1, 1, 2)), s(0));
        let got = drive(&mut p, &[true, false, true, false, false, false, true]);
        let t: Vec<_> = got.iter().map(|g| g.1).collect();
        assert_eq!(
            t,
            [
                Some(Transition::Succeeded),
                None,
                None,
                None,
                Some(Transition::Failed),
                None,
                Some(Transition::Succeeded)
            ]
        );
        // Period 1 s from time 0.
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn liveness_starts_alive_and_fails_after_threshold() {
        let mut p = ProbeState::new(ProbeKind::Liveness, Timing::of(&probe(1, 3, 1, 3)), s(10));
        assert!(p.result());
        assert!(!p.is_due(s(10)));
        assert!(p.is_due(s(11)));
        p.begin(s(11));
        assert_eq!(p.next_deadline(), None, "no deadline while in flight");
        assert!(!p.is_due(s(20)));
        assert_eq!(p.finish(false), None);
        assert_eq!(p.next_deadline(), Some(s(14)));
        p.begin(s(14));
        assert_eq!(p.finish(false), None);
        p.begin(s(17));
        assert_eq!(p.finish(false), Some(Transition::Failed));
        assert!(!p.result());
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut p = ProbeState::new(ProbeKind::Liveness, Timing::of(&probe(0, 1, 1, 2)), s(0));
        let got = drive(&mut p, &[false, true, false, true, false, false]);
        let t: Vec<_> = got.iter().map(|g| g.1).collect();
        assert_eq!(t, [None, None, None, None, None, Some(Transition::Failed)]);
    }

    #[test]
    fn readiness_retries_soon_until_it_first_succeeds() {
        let mut p = ProbeState::new(ProbeKind::Readiness, Timing::of(&probe(0, 1, 1, 3)), s(0));
        let mut at = Vec::new();
        let mut now = Duration::ZERO;
        // Fails 7 times (the server is not listening yet), then succeeds.
        for ok in [false, false, false, false, false, false, false, true, false] {
            now = p.next_deadline().unwrap();
            at.push(now.as_millis());
            p.begin(now);
            p.finish(ok);
        }
        // 20, 40, 80, ... ms apart, capped at the 1 s period; once it has
        // succeeded, a failure waits the whole period again.
        assert_eq!(at, [0, 20, 60, 140, 300, 620, 1260, 2260, 3260]);
        assert_eq!(p.next_deadline(), Some(now + s(1)));
        assert!(p.result(), "one failure is below the failure threshold");
        // Liveness probes keep their period from the start.
        let mut l = ProbeState::new(ProbeKind::Liveness, Timing::of(&probe(0, 1, 1, 3)), s(0));
        l.begin(s(0));
        l.finish(false);
        assert_eq!(l.next_deadline(), Some(s(1)));
    }

    #[test]
    fn a_slow_probe_runs_again_at_once_when_overdue() {
        let mut p = ProbeState::new(ProbeKind::Readiness, Timing::of(&probe(0, 1, 1, 3)), s(0));
        p.begin(s(0));
        // Finished 1.5 s later (past its next slot): due immediately.
        p.finish(true);
        assert!(p.is_due(Duration::from_millis(1500)));
    }
}
