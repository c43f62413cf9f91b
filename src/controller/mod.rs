//! Controllers as pure passes over the [`Store`](crate::store::Store):
//! desired + observed → changes. The daemon runs [`reconcile`] after every
//! change (event-driven), then acts on what the passes decided.

pub mod endpoints;
pub mod events;
pub mod job;
pub mod nodes;
pub mod podstatus;
pub mod scheduler;
pub mod statefulset;
pub mod workload;

use crate::store::Store;

/// Run every controller until nothing changes (bounded).
pub fn reconcile(store: &mut Store) {
    for _ in 0..4 {
        let before = store.resource_version();
        nodes::reconcile(store);
        workload::garbage_collect(store);
        workload::deployments(store);
        workload::replicasets(store);
        statefulset::statefulsets(store);
        job::jobs(store, std::time::SystemTime::now());
        scheduler::schedule(store, std::time::SystemTime::now());
        endpoints::reconcile(store);
        if store.resource_version() == before {
            break;
        }
    }
    events::expire(store, std::time::SystemTime::now());
}
