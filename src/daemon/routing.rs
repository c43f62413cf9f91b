//! The node namespace's kernel state for Services, over rtnetlink: the
//! fixed routes and rules of the data path, and one reply rule per
//! (protocol, targetPort) in use, kept in sync with the Services.

use crate::proto::Proto;
use crate::sys::net::{self, NetError, NetnsHandle};
use ipnetwork::Ipv4Network;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) struct ServiceRouting {
    node: Arc<NetnsHandle>,
    dev: String,
    /// The pairs last installed; `None` until the first sync.
    installed: tokio::sync::Mutex<Option<BTreeSet<(Proto, u16)>>>,
    rules: AtomicUsize,
}

impl ServiceRouting {
    /// Install the fixed routes and rules for `dev` (which must exist).
    pub(crate) async fn setup(
        node: Arc<NetnsHandle>,
        service_cidr: Ipv4Network,
        dev: &str,
    ) -> Result<Self, NetError> {
        net::setup_service_routing(&node, service_cidr, dev).await?;
        Ok(ServiceRouting {
            node,
            dev: dev.to_string(),
            installed: tokio::sync::Mutex::new(None),
            rules: AtomicUsize::new(0),
        })
    }

    /// Make the reply rules exactly `want`. Costs nothing when `want` is
    /// what was installed last; errors are logged (the next change retries).
    pub(crate) async fn sync(&self, want: &BTreeSet<(Proto, u16)>) {
        let mut installed = self.installed.lock().await;
        if installed.as_ref() == Some(want) {
            return;
        }
        match net::sync_port_rules(&self.node, want).await {
            Ok(n) => {
                self.rules.store(n, Ordering::Relaxed);
                *installed = Some(want.clone());
            }
            Err(e) => {
                tracing::error!(netns = self.node.name(), error = %e, "syncing policy rules");
                *installed = None;
            }
        }
    }

    /// Policy rules of the data path: the fixed ones plus one per pair.
    pub(crate) fn rule_count(&self) -> usize {
        self.rules.load(Ordering::Relaxed) + net::fixed_rules(&self.dev).len()
    }
}
