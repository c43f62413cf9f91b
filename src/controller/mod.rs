//! Controllers as pure passes over the [`Store`](crate::store::Store):
//! desired + observed → changes. The daemon runs [`Controllers::reconcile`]
//! after every change (event-driven) and on a half-second tick, then acts on
//! what the passes decided.

pub mod endpoints;
pub mod events;
pub mod job;
pub mod nodes;
pub mod podstatus;
pub mod scheduler;
pub mod statefulset;
pub mod workload;

use crate::store::Store;

/// Run every controller until nothing changes (bounded), each looking at
/// everything.
#[cfg(test)]
pub fn reconcile(store: &mut Store) {
    Controllers::default().reconcile(store);
}

/// The controllers with what they keep between passes: a long-lived value
/// (the daemon's) makes each pass look only at what changed since the last
/// one where a controller knows how (the endpoints controllers).
#[derive(Debug, Clone, Default)]
pub struct Controllers {
    endpoints: endpoints::Controller,
}

impl Controllers {
    /// Run every controller until nothing changes (bounded).
    pub fn reconcile(&mut self, store: &mut Store) {
        for _ in 0..4 {
            let before = store.resource_version();
            nodes::reconcile(store);
            workload::garbage_collect(store);
            workload::deployments(store);
            workload::replicasets(store);
            statefulset::statefulsets(store);
            job::jobs(store, std::time::SystemTime::now());
            scheduler::schedule(store, std::time::SystemTime::now());
            self.endpoints.reconcile(store);
            if store.resource_version() == before {
                break;
            }
        }
        events::expire(store, std::time::SystemTime::now());
    }
}
