//! Crash-loop back-off as the kubelet does it: the first restart is
//! immediate, then 10 s, doubling up to 5 minutes; a container that ran for
//! 10 minutes before exiting starts over. Pure: time is passed in.

use std::time::Duration;

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Back-off state of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    /// The delay used for the previous restart; `None` before the first.
    last: Option<Duration>,
}

impl Backoff {
    /// The container exited after running for `ran_for`: how long to wait
    /// before starting it again.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.last = None;
        }
        let d = match self.last {
            None => Duration::ZERO,
            Some(d) if d.is_zero() => INITIAL,
            Some(d) => (d * 2).min(MAX),
        };
        self.last = Some(d);
        d
    }
}

/// A duration the way Go prints it for whole seconds: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// The kubelet's CrashLoopBackOff message.
pub fn message(delay: Duration, container: &str, pod: &str, namespace: &str, uid: &str) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
        go_duration(delay)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn immediate_then_doubling_up_to_five_minutes() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..9).map(|_| b.next_delay(secs(1)).as_secs()).collect();
        assert_eq!(got, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        // A fake clock: the container starts after each delay, runs for
        // `run` and exits.
        let mut b = Backoff::default();
        let mut now = Duration::ZERO;
        let mut delays = Vec::new();
        for run in [1, 1, 1, 600, 1, 599, 1] {
            let started = now;
            now += secs(run);
            let d = b.next_delay(now - started);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, [0, 10, 20, 0, 10, 20, 40]);
    }

    #[test]
    fn go_style_durations_and_message() {
        assert_eq!(go_duration(secs(10)), "10s");
        assert_eq!(go_duration(secs(80)), "1m20s");
        assert_eq!(go_duration(secs(300)), "5m0s");
        assert_eq!(go_duration(secs(3661)), "1h1m1s");
        assert_eq!(
            message(secs(20), "app", "web-1", "default", "u-1"),
            "back-off 20s restarting failed container=app pod=web-1_default(u-1)"
        );
    }
}
