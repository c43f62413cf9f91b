//! The data plane repairs itself, as kube-proxy re-syncs its rules: a
//! watcher on the node namespace's rtnetlink groups (links, IPv4 routes,
//! IPv4 rules) wakes a task that compares the kernel's state with what the
//! Services data path needs and puts back whatever someone deleted — the
//! service-CIDR route, table 100's default route, the fixed and per-port
//! policy rules, the TUN's up flag. A deleted TUN is re-created by the data
//! plane's supervised queues ([`super::dataplane`]), whose re-attach wakes
//! this task too. A full check also runs every [`RESYNC_EVERY`], in case an
//! event was lost. Checks only read until they find something missing, so
//! the events of our own repairs end in one quiet check.

use super::dataplane::TUN_NAME;
use super::nodes::NodeRt;
use super::routing::Missing;
use super::runtime::Daemon;
use crate::sys::netwatch::{self, NetEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The safety net: a full check this often even without events.
pub(crate) const RESYNC_EVERY: Duration = Duration::from_secs(10);
/// Events arriving together (a flush, a pod's veth and routes) are handled
/// by one check this long after the first.
const SETTLE: Duration = Duration::from_millis(20);
/// After a failed check (or while the TUN is missing), check again after
/// this, doubling up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Whether an event may mean the data path lost something.
fn relevant(ev: &NetEvent) -> bool {
    match ev {
        // Veths of pods come and go; only the TUN's own link matters.
        NetEvent::Link { name, .. } => name == TUN_NAME,
        NetEvent::Route { .. } | NetEvent::Rule { .. } | NetEvent::Overflow => true,
    }
}

/// Start the watcher and the repair task; both end when the daemon starts
/// shutting down (a `lab down` removes all of this on purpose).
pub(crate) fn spawn(daemon: Arc<Daemon>, node: Arc<NodeRt>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { run(daemon, node).await })
}

async fn run(daemon: Arc<Daemon>, node: Arc<NodeRt>) {
    let wake = Arc::new(Notify::new());
    let netns = node.routing.netns().to_string();
    let start_watch = |logged: bool| {
        let w = wake.clone();
        match netwatch::watch(&netns, move |ev| {
            if relevant(&ev) {
                w.notify_one();
            }
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                if !logged {
                    tracing::error!(netns, error = %e, every = ?RESYNC_EVERY,
                        "cannot listen for route, rule and link changes; checking periodically (and retrying)");
                }
                None
            }
        }
    };
    let mut watcher = start_watch(false);
    let mut shutting = daemon.shutting_down.subscribe();
    let mut retry: Option<Duration> = None;
    // The last failure logged (each distinct one once; repeats at powers of two).
    let mut last_err: Option<String> = None;
    let mut repeats = 0u64;
    let mut tun_gone_logged = false;
    loop {
        let wait = retry.unwrap_or(RESYNC_EVERY);
        tokio::select! {
            _ = wake.notified() => tokio::time::sleep(SETTLE).await,
            _ = node.dataplane.tun_reattached.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            r = shutting.changed() => if r.is_err() { break },
        }
        let stopping = *daemon.shutting_down.borrow();
        if stopping {
            break;
        }
        // A watcher that could not start or whose socket failed: again (the
        // check below covers what it may have missed).
        if watcher.as_ref().is_none_or(netwatch::NetWatch::ended) {
            watcher = start_watch(true);
        }
        match node.routing.repair().await {
            Ok(gone) if gone == [Missing::Tun] || gone.first() == Some(&Missing::Tun) => {
                if !tun_gone_logged {
                    tracing::warn!(
                        netns,
                        dev = TUN_NAME,
                        "the Services TUN is gone; the data plane re-creates it"
                    );
                    tun_gone_logged = true;
                }
                retry = Some(next_retry(retry));
            }
            Ok(gone) => {
                if !gone.is_empty() {
                    let what: Vec<String> = gone.iter().map(ToString::to_string).collect();
                    node.routing.count_repair(&what.join(", "));
                    tracing::warn!(netns, repaired = %what.join(", "),
                        "Services data path: put back what was missing");
                }
                if last_err.take().is_some() {
                    tracing::info!(netns, "Services data path checks succeed again");
                }
                repeats = 0;
                tun_gone_logged = false;
                retry = None;
            }
            Err(e) => {
                let msg = e.to_string();
                if last_err.as_deref() == Some(msg.as_str()) {
                    repeats += 1;
                    if repeats.is_power_of_two() {
                        tracing::warn!(netns, error = %msg, repeats, "repairing the Services data path still fails");
                    }
                } else {
                    tracing::error!(netns, error = %msg, "repairing the Services data path; retrying with backoff");
                    last_err = Some(msg);
                    repeats = 0;
                }
                retry = Some(next_retry(retry));
            }
        }
    }
    drop(watcher);
}

fn next_retry(r: Option<Duration>) -> Duration {
    match r {
        None => RETRY_MIN,
        Some(d) => (d * 2).min(RETRY_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tuns_link_and_every_route_or_rule_change_wake_it() {
        let link = |name: &str| NetEvent::Link {
            name: name.into(),
            up: true,
            deleted: true,
        };
        assert!(relevant(&link(TUN_NAME)));
        assert!(!relevant(&link("lxc1234")));
        assert!(relevant(&NetEvent::Route { deleted: true }));
        assert!(relevant(&NetEvent::Route { deleted: false }));
        assert!(relevant(&NetEvent::Rule { deleted: true }));
        assert!(relevant(&NetEvent::Overflow));
    }

    #[test]
    fn retries_back_off_to_a_bound() {
        let mut r = None;
        let mut seen = Vec::new();
        for _ in 0..10 {
            let d = next_retry(r);
            seen.push(d);
            r = Some(d);
        }
        assert_eq!(seen[0], RETRY_MIN);
        assert_eq!(seen[1], RETRY_MIN * 2);
        assert_eq!(*seen.last().unwrap(), RETRY_MAX);
    }
}
