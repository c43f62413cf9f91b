//! Fault objects (`lab fault`): kept in `/var/lib/lab/<cluster>/faults.json`
//! beside the cluster's state (so they survive a daemon restart), compiled
//! into the NAT's fault rules ([`crate::dataplane::fault`]) whenever they or
//! the cluster change (a blackholed pod is followed by name to its current
//! IP), and — for pod-level link faults — applied to the pod's host-side
//! veth in the node netns by netlink (`--down`; `--bandwidth` as a `tbf`
//! qdisc). Delayed packets wait in a [`Delayer`]: a deadline-ordered queue
//! drained by a thread of its own, so no queue thread ever sleeps.

use super::runtime::{Daemon, PRIVATE, write_atomic};
use crate::api::fault::{FaultObject, FaultSpec, FaultStatus};
use crate::dataplane::fault::{Effect, FaultRule};
use crate::model::{Kind, Object};
use crate::store::Key;
use crate::sys::net::NetnsHandle;
use std::collections::BinaryHeap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{0}")]
    Invalid(String),
    #[error("{kind} {name:?} not found in namespace {namespace:?}")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
    #[error("saving {path}: {source}")]
    Save {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Link(String),
    #[error("encoding the fault objects: {0}")]
    Encode(#[source] serde_json::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cluster's fault objects.
pub struct Faults {
    path: PathBuf,
    items: Mutex<Vec<FaultObject>>,
    /// The rules last given to the NAT.
    applied: Mutex<Option<Vec<FaultRule>>>,
}

/// `svc/NAME` / `pod/NAME` (also `service/…`, `services/…`, `pods/…`).
pub fn split_target(t: &str) -> Result<(Kind, String), FaultError> {
    let bad = || {
        FaultError::Invalid(format!(
            "invalid fault target {t:?}: want svc/NAME, pod/NAME or node/NAME"
        ))
    };
    let (k, name) = t.split_once('/').ok_or_else(bad)?;
    let kind = match k {
        "svc" | "service" | "services" => Kind::Service,
        "po" | "pod" | "pods" => Kind::Pod,
        "no" | "node" | "nodes" => Kind::Node,
        _ => return Err(bad()),
    };
    if name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    Ok((kind, name.to_string()))
}

fn canonical(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Pod => format!("pod/{name}"),
        Kind::Node => format!("node/{name}"),
        _ => format!("svc/{name}"),
    }
}

impl Faults {
    /// Load the saved faults (none if the file is missing; a damaged file
    /// is logged and set aside, never fatal).
    pub fn load(path: PathBuf) -> Faults {
        let items = match std::fs::read(&path) {
            Ok(b) => match serde_json::from_slice::<Vec<FaultObject>>(&b) {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "ignoring damaged faults file");
                    let aside = path.with_extension("json.damaged");
                    if let Err(e) = std::fs::rename(&path, &aside) {
                        tracing::error!(path = %path.display(), to = %aside.display(), error = %e, "setting the damaged faults file aside");
                    }
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            // Unreadable (not missing): start with none, and say so, as the
            // next change overwrites the file.
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot read the faults file; starting with none");
                Vec::new()
            }
        };
        if !items.is_empty() {
            tracing::info!(count = items.len(), "restored fault objects");
        }
        Faults {
            path,
            items: Mutex::new(items),
            applied: Mutex::new(None),
        }
    }

    fn save(&self, items: &[FaultObject]) -> Result<(), FaultError> {
        let bytes = serde_json::to_vec_pretty(items).map_err(FaultError::Encode)?;
        write_atomic(&self.path, &bytes, PRIVATE).map_err(|source| FaultError::Save {
            path: self.path.display().to_string(),
            source,
        })
    }

    pub fn list(&self) -> Vec<FaultObject> {
        lock(&self.items).clone()
    }

    /// The NAT's rules for the current cluster state.
    fn rules(&self, d: &Daemon) -> Vec<FaultRule> {
        let items = self.list();
        let st = d.lock();
        let mut out = Vec::new();
        for f in &items {
            let Ok((Kind::Service, name)) = split_target(&f.target) else {
                continue;
            };
            let service = format!("{}/{name}", f.namespace);
            let ppm = |p: f64| (p * 10_000.0).round() as u32;
            let effect = match &f.fault {
                FaultSpec::Delay {
                    delay_us,
                    jitter_us,
                } => Effect::Delay {
                    base: Duration::from_micros(*delay_us),
                    jitter: Duration::from_micros(*jitter_us),
                },
                FaultSpec::Drop { percent } => Effect::Drop { ppm: ppm(*percent) },
                FaultSpec::Reset { percent } => Effect::Reset { ppm: ppm(*percent) },
                FaultSpec::Bandwidth { bits_per_second } => Effect::Bandwidth {
                    bps: *bits_per_second,
                },
                FaultSpec::Blackhole { pod } => {
                    let ip = st
                        .store
                        .get(&Key::new(Kind::Pod, &f.namespace, pod))
                        .and_then(super::state::pod_ip);
                    match ip {
                        Some(ip) => Effect::Blackhole { ip },
                        None => continue,
                    }
                }
                FaultSpec::Down => continue,
            };
            out.push(FaultRule {
                service,
                port: f.port,
                effect,
            });
        }
        out
    }

    /// Give the NAT the current rules if they changed (after a fault
    /// change, and on every reconcile: a blackholed pod's IP may change).
    pub fn refresh(&self, d: &Daemon) {
        let rules = self.rules(d);
        let mut applied = lock(&self.applied);
        if applied.as_ref() != Some(&rules) {
            for n in &d.nodes {
                n.dataplane.set_faults(rules.clone());
            }
            *applied = Some(rules);
        }
    }

    /// Whether a fault is in effect now, or why not.
    pub fn status(&self, d: &Daemon, f: &FaultObject) -> String {
        let st = d.lock();
        let Ok((kind, name)) = split_target(&f.target) else {
            return "invalid target".into();
        };
        if st.store.get(&Key::new(kind, &f.namespace, &name)).is_none() {
            return format!(
                "{} not found",
                match kind {
                    Kind::Pod => "pod",
                    Kind::Node => "node",
                    _ => "service",
                }
            );
        }
        if let FaultSpec::Blackhole { pod } = &f.fault {
            let ip = st
                .store
                .get(&Key::new(Kind::Pod, &f.namespace, pod))
                .and_then(super::state::pod_ip);
            if ip.is_none() {
                return format!("pod {pod} not found (or has no IP)");
            }
        }
        "active".into()
    }

    pub fn list_status(&self, d: &Daemon, ns: Option<&str>) -> Vec<FaultStatus> {
        self.list()
            .into_iter()
            .filter(|f| ns.is_none_or(|n| f.namespace == n || f.namespace.is_empty()))
            .map(|f| FaultStatus {
                status: self.status(d, &f),
                object: f,
            })
            .collect()
    }

    /// Check a request against the cluster: the target exists, each fault
    /// fits the target's kind.
    fn validate(
        &self,
        d: &Daemon,
        ns: &str,
        kind: Kind,
        name: &str,
        port: Option<u16>,
        faults: &[FaultSpec],
    ) -> Result<(), FaultError> {
        if faults.is_empty() {
            return Err(FaultError::Invalid(
                "no fault given: use --delay, --drop, --reset, --blackhole or --bandwidth (svc/NAME), --down or --bandwidth (pod/NAME)".into(),
            ));
        }
        if kind == Kind::Node {
            return validate_node_fault(d, name, port, faults);
        }
        let st = d.lock();
        let obj = st.store.get(&Key::new(kind, ns, name));
        let Some(obj) = obj else {
            return Err(FaultError::NotFound {
                kind: if kind == Kind::Pod { "pod" } else { "service" },
                name: name.to_string(),
                namespace: ns.to_string(),
            });
        };
        if kind == Kind::Pod {
            if port.is_some() {
                return Err(FaultError::Invalid(
                    "--port applies to a Service's faults, not to a pod's link".into(),
                ));
            }
            for f in faults {
                match f {
                    FaultSpec::Down | FaultSpec::Bandwidth { .. } => {}
                    FaultSpec::Delay { .. } | FaultSpec::Drop { .. } => {
                        return Err(FaultError::Invalid(format!(
                            "{} on a pod's link would need the kernel's netem qdisc, which lab does not use (many kernels, this project's test machine's among them, are built without CONFIG_NET_SCH_NETEM); put it on the Service, where lab's NAT does it in user space: lab fault svc/NAME {}",
                            f.describe(),
                            f.describe()
                        )));
                    }
                    other => {
                        return Err(FaultError::Invalid(format!(
                            "{} is a Service fault: lab fault svc/NAME {}",
                            other.describe(),
                            other.describe()
                        )));
                    }
                }
            }
            if super::state::pod_ip(obj).is_none() {
                return Err(FaultError::Invalid(format!(
                    "pod {name:?} has no IP yet (not started)"
                )));
            }
            return Ok(());
        }
        if let Some(p) = port {
            let has = matches!(obj, Object::Service(s) if s.spec.as_ref().and_then(|s| s.ports.as_ref()).is_some_and(|ps| ps.iter().any(|x| x.port == i32::from(p))));
            if !has {
                return Err(FaultError::Invalid(format!(
                    "service {name:?} has no port {p}"
                )));
            }
        }
        for f in faults {
            match f {
                FaultSpec::Down => {
                    return Err(FaultError::Invalid(
                        "--down takes a pod's link down: lab fault pod/NAME --down".into(),
                    ));
                }
                FaultSpec::Blackhole { pod }
                    if st.store.get(&Key::new(Kind::Pod, ns, pod)).is_none() =>
                {
                    return Err(FaultError::NotFound {
                        kind: "pod",
                        name: pod.clone(),
                        namespace: ns.to_string(),
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Add (or replace, per kind) faults on a target; returns the lines to
    /// print.
    pub async fn set(
        &self,
        d: &Daemon,
        ns: &str,
        target: &str,
        port: Option<u16>,
        faults: Vec<FaultSpec>,
    ) -> Result<Vec<String>, FaultError> {
        let (kind, name) = split_target(target)?;
        // Nodes are cluster-scoped: their faults have no namespace.
        let ns = if kind == Kind::Node { "" } else { ns };
        self.validate(d, ns, kind, &name, port, &faults)?;
        let target = canonical(kind, &name);
        if kind == Kind::Pod {
            for f in &faults {
                self.apply_link(d, ns, &name, f).await?;
            }
        }
        if kind == Kind::Node {
            d.partition(&name, true)
                .await
                .map_err(|e| FaultError::Link(format!("node {name}: {e}")))?;
        }
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut lines = Vec::new();
        {
            let mut items = lock(&self.items);
            for f in faults {
                items.retain(|o| {
                    !(o.namespace == ns
                        && o.target == target
                        && o.port == port
                        && o.fault.slot() == f.slot())
                });
                lines.push(format!(
                    "fault {target}{} {} set",
                    port.map(|p| format!(" --port {p}")).unwrap_or_default(),
                    f.describe()
                ));
                items.push(FaultObject {
                    namespace: ns.to_string(),
                    target: target.clone(),
                    port,
                    fault: f,
                    created,
                });
            }
            self.save(&items)?;
        }
        self.refresh(d);
        Ok(lines)
    }

    /// Remove the faults of a target (or all of a namespace, or all);
    /// pod links are restored.
    pub async fn clear(
        &self,
        d: &Daemon,
        ns: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<String>, FaultError> {
        let target = target
            .map(|t| split_target(t).map(|(k, n)| canonical(k, &n)))
            .transpose()?;
        let removed: Vec<FaultObject> = {
            let mut items = lock(&self.items);
            let (gone, keep): (Vec<_>, Vec<_>) = items.drain(..).partition(|o| {
                ns.is_none_or(|n| o.namespace == n || o.namespace.is_empty())
                    && target.as_ref().is_none_or(|t| &o.target == t)
            });
            *items = keep;
            self.save(&items)?;
            gone
        };
        self.refresh(d);
        let mut lines = Vec::new();
        let mut errors = Vec::new();
        for o in &removed {
            if let Ok((Kind::Pod, name)) = split_target(&o.target)
                && let Err(e) = self.undo_link(d, &o.namespace, &name, &o.fault).await
            {
                errors.push(e.to_string());
            }
            if let Ok((Kind::Node, name)) = split_target(&o.target)
                && let Err(e) = d.partition(&name, false).await
            {
                errors.push(format!("node {name}: {e}"));
            }
            lines.push(format!(
                "fault {}{} {} cleared",
                o.target,
                o.port.map(|p| format!(" --port {p}")).unwrap_or_default(),
                o.fault.describe()
            ));
        }
        if removed.is_empty() {
            lines.push("no faults to clear".into());
        }
        if let Some(e) = errors.into_iter().next() {
            return Err(FaultError::Link(e));
        }
        Ok(lines)
    }

    /// The pod's host-side veth, its IP, its netns and its node's netlink.
    fn veth(
        &self,
        d: &Daemon,
        ns: &str,
        pod: &str,
    ) -> Result<(String, std::net::Ipv4Addr, String, Arc<NetnsHandle>), FaultError> {
        let st = d.lock();
        let obj = st.store.get(&Key::new(Kind::Pod, ns, pod));
        let ip = obj
            .and_then(super::state::pod_ip)
            .ok_or_else(|| FaultError::NotFound {
                kind: "pod",
                name: pod.to_string(),
                namespace: ns.to_string(),
            })?;
        let netns = obj
            .and_then(super::state::pod_netns)
            .map(String::from)
            .ok_or_else(|| FaultError::Link(format!("pod {pod} has no network namespace yet")))?;
        let node = d
            .node_of_ip(ip)
            .map(|n| n.netlink.clone())
            .ok_or_else(|| FaultError::Link(format!("pod {pod}: {ip} is on no node")))?;
        Ok((crate::cluster::host_veth(ip), ip, netns, node))
    }

    /// Run `f` with a netlink handle inside the pod's netns.
    async fn in_pod<F, Fut>(&self, netns: &str, f: F) -> crate::sys::net::Result<()>
    where
        F: FnOnce(NetnsHandle) -> Fut,
        Fut: std::future::Future<Output = crate::sys::net::Result<()>>,
    {
        let h = NetnsHandle::open(netns).await?;
        f(h).await
    }

    async fn apply_link(
        &self,
        d: &Daemon,
        ns: &str,
        pod: &str,
        f: &FaultSpec,
    ) -> Result<(), FaultError> {
        let (veth, _, netns, node) = self.veth(d, ns, pod)?;
        let r = match f {
            FaultSpec::Down => node.set_link_down(&veth).await,
            // Both ways: towards the pod on the host side of its veth, from
            // the pod on its eth0.
            FaultSpec::Bandwidth { bits_per_second } => {
                let bps = *bits_per_second;
                match node.set_tbf(&veth, bps).await {
                    Ok(()) => {
                        self.in_pod(&netns, |h| async move { h.set_tbf("eth0", bps).await })
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            _ => return Ok(()),
        };
        r.map_err(|e| FaultError::Link(format!("pod {pod}: {e}")))
    }

    async fn undo_link(
        &self,
        d: &Daemon,
        ns: &str,
        pod: &str,
        f: &FaultSpec,
    ) -> Result<(), FaultError> {
        // A pod that is gone took its veth with it.
        let Ok((veth, ip, netns, node)) = self.veth(d, ns, pod) else {
            return Ok(());
        };
        let r = match f {
            // Taking a link down removed its routes: put the pod's /32 back.
            FaultSpec::Down => match node.set_link_up(&veth).await {
                Ok(()) => {
                    node.add_route_dev(
                        ipnetwork::Ipv4Network::from(ip),
                        &veth,
                        crate::sys::net::TABLE_MAIN,
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            FaultSpec::Bandwidth { .. } => match node.del_root_qdisc(&veth).await {
                Ok(_) => {
                    self.in_pod(&netns, |h| async move {
                        h.del_root_qdisc("eth0").await.map(|_| ())
                    })
                    .await
                }
                Err(e) => Err(e),
            },
            _ => return Ok(()),
        };
        r.map_err(|e| FaultError::Link(format!("pod {pod}: {e}")))
    }

    /// After a daemon restart: put the pod link faults back (a link that
    /// was recreated meanwhile lost them).
    pub async fn reapply_links(&self, d: &Daemon) {
        for o in self.list() {
            if let Ok((Kind::Node, name)) = split_target(&o.target)
                && let Err(e) = d.partition(&name, true).await
            {
                tracing::warn!(target = %o.target, error = %e, "re-applying a node fault");
            }
            if let Ok((Kind::Pod, name)) = split_target(&o.target)
                && let Err(e) = self.apply_link(d, &o.namespace, &name, &o.fault).await
            {
                tracing::warn!(target = %o.target, error = %e, "re-applying a pod link fault");
            }
        }
    }
}

/// `lab fault node/NAME`: only `--down`, only with a node network.
fn validate_node_fault(
    d: &Daemon,
    name: &str,
    port: Option<u16>,
    faults: &[FaultSpec],
) -> Result<(), FaultError> {
    let Some(node) = d.node(name) else {
        return Err(FaultError::Invalid(format!("node {name:?} not found")));
    };
    if node.uplink.is_none() {
        return Err(FaultError::Invalid(format!(
            "node {name:?} has no node network to cut: a one-node cluster (lab up --nodes N gives several)"
        )));
    }
    if port.is_some() {
        return Err(FaultError::Invalid(
            "--port applies to a Service's faults, not to a node".into(),
        ));
    }
    if let Some(f) = faults.iter().find(|f| !matches!(f, FaultSpec::Down)) {
        return Err(FaultError::Invalid(format!(
            "{} does not apply to a node: lab fault node/NAME --down (and --up to heal it)",
            f.describe()
        )));
    }
    Ok(())
}

/// A packet waiting for its departure time.
#[derive(Clone)]
struct Waiting {
    at: Instant,
    seq: u64,
    queued: Instant,
    pkt: Vec<u8>,
}

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    // Earliest first out of a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// Packets queued at most (then they are dropped and counted).
pub const DELAY_MAX_PACKETS: usize = 65_536;
/// Bytes queued at most.
pub const DELAY_MAX_BYTES: usize = 64 << 20;

#[derive(Default)]
struct DelayQueue {
    heap: BinaryHeap<Waiting>,
    bytes: usize,
    seq: u64,
}

/// Delayed packets, sent by [`Delayer::run`] on a thread of its own through
/// a duplicate of a queue's TUN descriptor.
#[derive(Default)]
pub struct Delayer {
    q: Mutex<DelayQueue>,
    cv: Condvar,
    fd: Mutex<Option<OwnedFd>>,
    pub dropped: AtomicU64,
    pub sent: AtomicU64,
}

impl Delayer {
    /// Queue `pkt` (vnet header + IP) to leave after `wait`; false (and
    /// counted) when the queue is full.
    pub fn push(&self, wait: Duration, pkt: &[u8]) -> bool {
        let now = Instant::now();
        let mut q = lock(&self.q);
        if q.heap.len() >= DELAY_MAX_PACKETS || q.bytes + pkt.len() > DELAY_MAX_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.seq += 1;
        let seq = q.seq;
        q.bytes += pkt.len();
        let earliest = q.heap.peek().map(|w| w.at);
        let at = now + wait;
        q.heap.push(Waiting {
            at,
            seq,
            queued: now,
            pkt: pkt.to_vec(),
        });
        drop(q);
        if earliest.is_none_or(|e| at < e) {
            self.cv.notify_one();
        }
        true
    }

    /// A queue thread offers its TUN descriptor: duplicated once (any
    /// queue's descriptor injects into the same device).
    pub fn offer_fd(&self, fd: BorrowedFd<'_>) {
        let mut slot = lock(&self.fd);
        if slot.is_none() {
            match fd.try_clone_to_owned() {
                Ok(d) => *slot = Some(d),
                Err(e) => tracing::warn!(error = %e, "duplicating the TUN descriptor for delays"),
            }
        }
    }

    pub fn queued(&self) -> usize {
        lock(&self.q).heap.len()
    }

    /// Send packets as they fall due until `stop`. The thread runs at nice
    /// -10: on a loaded machine a late wake-up would lengthen every delay.
    pub fn run(&self, stop: &AtomicBool, capture: &super::capture::Hub) {
        if let Err(e) = crate::sys::process::set_thread_nice(-10) {
            tracing::debug!(error = %e, "raising the delay thread's priority");
        }
        let mut q = lock(&self.q);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut due = Vec::new();
            while q.heap.peek().is_some_and(|w| w.at <= now) {
                if let Some(w) = q.heap.pop() {
                    q.bytes -= w.pkt.len();
                    due.push(w);
                }
            }
            if !due.is_empty() {
                drop(q);
                let mut fd = lock(&self.fd);
                for w in &due {
                    if capture.active() {
                        capture.departed(&w.pkt, now.duration_since(w.queued));
                    }
                    let ok = match fd.as_ref() {
                        Some(f) => match nix::unistd::write(f.as_fd(), &w.pkt) {
                            Ok(_) => true,
                            Err(e) => {
                                // The queue behind it died: the next queue
                                // run offers a new descriptor.
                                if matches!(
                                    e,
                                    nix::errno::Errno::EBADF
                                        | nix::errno::Errno::EBADFD
                                        | nix::errno::Errno::ENODEV
                                ) {
                                    *fd = None;
                                }
                                false
                            }
                        },
                        None => false,
                    };
                    if ok {
                        self.sent.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                drop(fd);
                q = lock(&self.q);
                continue;
            }
            let wait = q
                .heap
                .peek()
                .map(|w| w.at.saturating_duration_since(now))
                .unwrap_or(Duration::from_millis(200))
                .min(Duration::from_millis(200));
            q = self
                .cv
                .wait_timeout(q, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            split_target("svc/web").unwrap(),
            (Kind::Service, "web".into())
        );
        assert_eq!(split_target("pod/a").unwrap(), (Kind::Pod, "a".into()));
        assert!(split_target("deploy/x").is_err());
        assert!(split_target("web").is_err());
        assert!(split_target("svc/").is_err());
    }

    #[test]
    fn delayer_orders_by_deadline_and_bounds_its_queue() {
        let d = Delayer::default();
        assert!(d.push(Duration::from_millis(30), &[2]));
        assert!(d.push(Duration::from_millis(10), &[1]));
        let q = lock(&d.q);
        let order: Vec<u8> = q
            .heap
            .clone()
            .into_sorted_vec()
            .iter()
            .rev()
            .map(|w| w.pkt[0])
            .collect();
        assert_eq!(order, [1, 2]);
        drop(q);
        let big = vec![0u8; DELAY_MAX_BYTES];
        assert!(!d.push(Duration::ZERO, &big));
        assert_eq!(d.dropped.load(Ordering::Relaxed), 1);
    }
}
