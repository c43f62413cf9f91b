//! The daemon process: node namespace, reconcile loop, pod lifecycle
//! (network, files, shim), persistence and shutdown.

use super::lifecycle;
use super::podspec;
use super::state::{NETNS_ANNOTATION, State};
use crate::cluster::{ClusterConfig, Layout};
use crate::controller::{self, events, podstatus, workload::is_terminating};
use crate::model::{Kind, Object, Pod};
use crate::store::{Key, Store};
use crate::sys::lock::FileLock;
use crate::sys::netns;
use crate::wire::shim::{ShimCommand, ShimSpec, ShimStatus};
use k8s_openapi::api::core::v1::PodStatus;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

/// What the daemon needs to start a command in a pod's container
/// (`pods/exec`), attach to it or forward its ports.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub shim_pid: u32,
    pub container: String,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub run_as_user: Option<u32>,
    pub run_as_group: Option<u32>,
    /// The container's process in the pod's PID namespace (its mount
    /// namespace holds the container's volume mounts).
    pub container_pid: Option<u32>,
    /// The container's privileges: an exec'd command runs with the same.
    pub security: crate::sys::security::Security,
}

/// Why a pod's container cannot be exec'd into, attached to or logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodTargetError {
    #[error("pods {0:?} not found")]
    PodNotFound(String),
    #[error("pod {0:?} is not running")]
    NotRunning(String),
    #[error("pod {0:?} has no spec")]
    NoSpec(String),
    #[error("pod {0:?} has no containers")]
    NoContainers(String),
    #[error("pod {0:?} has no shim")]
    NoShim(String),
    #[error("container {container} is not valid for pod {pod}")]
    NoSuchContainer { pod: String, container: String },
    #[error("a container name must be specified for pod {pod}, choose one of: [{}]", choices.join(" "))]
    ContainerRequired { pod: String, choices: Vec<String> },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
}

impl PodTargetError {
    /// The pod is not there (a 404). Everything else is a 400, as the API
    /// server answers: an unknown container (`container X is not valid for
    /// pod Y`) and a missing earlier instance (the kubelet's `previous
    /// terminated container "X" in pod "Y" not found`) included.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PodTargetError::PodNotFound(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RtPhase {
    Starting,
    Running,
    Stopping,
    Failed { error: String, retry_at: Instant },
}

#[derive(Debug)]
pub struct PodRuntime {
    pub key: Key,
    pub phase: RtPhase,
    pub ip: Option<Ipv4Addr>,
    pub netns: String,
    pub shim_pid: Option<u32>,
    pub spec: Option<ShimSpec>,
    pub cmd: Option<mpsc::UnboundedSender<ShimCommand>>,
    /// What the shim last reported (posted again when a cut-off node's
    /// kubelet is back in touch).
    pub last_status: Option<ShimStatus>,
}

pub struct Daemon {
    pub cfg: ClusterConfig,
    pub layout: Layout,
    pub state: Mutex<State>,
    pub changed: Notify,
    pub rv: watch::Sender<u64>,
    pub pods: Mutex<HashMap<String, PodRuntime>>,
    pub lab_exe: PathBuf,
    pub started_at: String,
    pub shutting_down: watch::Sender<bool>,
    /// The Kubernetes API's watch event log, once the API serves: synced
    /// by each reconcile pass too (before and after the controllers), so a
    /// watcher sees every pass's changes in order even when later changes
    /// to the same objects come before the next publish.
    pub watch_log: std::sync::OnceLock<Arc<super::kube::watch::EventLog>>,
    /// Held (shared) by each pod start while it creates the pod's network,
    /// files and shim; the shutdown takes it exclusively before tearing
    /// down, so no start creates anything after the teardown looked.
    creating: tokio::sync::RwLock<()>,
    /// The nodes: each with its network namespace, Service proxy (TUN +
    /// NAT) and Services routes and reply rules. Never empty.
    pub nodes: Vec<Arc<super::nodes::NodeRt>>,
    /// Nodes cut off the node network, and what the node lifecycle
    /// controller did about them (src/daemon/nodes.rs).
    pub(crate) partitions: Mutex<HashMap<String, super::nodes::Partition>>,
    /// Pod sandboxes on the machine (netns, network, files, shim).
    lifecycle: lifecycle::Lifecycle,
    /// Injected faults (`lab fault`), saved beside the state.
    pub faults: super::faults::Faults,
    /// Serialises saves; the resource version last saved.
    persist_lock: tokio::sync::Mutex<Option<u64>>,
    host_resolv: String,
    /// Histograms and DNS reports for `/metrics`.
    pub metrics: Arc<super::metrics::Metrics>,
    /// The versions of the Services and EndpointSlices (the store's
    /// [`kind_version`](crate::store::Store::kind_version)) the proxies were
    /// last given a view of, and that view's reply-rule ports: a pass that
    /// finds them unchanged builds no view (nothing else goes into it).
    proxied: Mutex<Option<((u64, u64), ReplyPorts)>>,
}

/// The (protocol, targetPort) pairs that get a reply rule.
type ReplyPorts = BTreeSet<(super::services::Proto, u16)>;

/// Write a file atomically (temp file in the same directory, then rename)
/// with `mode`, creating its directory if needed: 0700 for [`PRIVATE`]
/// files (state, config and pid files hold object data no other user may
/// read), 0755 otherwise (files a pod reads through a bind mount stay
/// readable to containers running as another user, as the kubelet's are).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    create_parent(path, mode)?;
    crate::sys::process::write_atomic(path, data, mode)
}

/// [`write_atomic`] without the sync to disk (see
/// [`crate::sys::process::write_replace`]), for files rewritten before use.
pub fn write_atomic_unsynced(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    create_parent(path, mode)?;
    crate::sys::process::write_replace(path, data, mode)
}

fn create_parent(path: &Path, mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(if mode == PRIVATE { 0o700 } else { 0o755 })
            .create(dir)?;
    }
    Ok(())
}

/// Files with object data (state, config, flows) are root's alone.
pub const PRIVATE: u32 = 0o600;
/// Files a pod's containers read (resolv.conf, hosts, volume files), as the
/// kubelet writes them.
pub const POD_READABLE: u32 = 0o644;

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
}

impl Daemon {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Arc<super::nodes::NodeRt>> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The node whose pod range holds `ip`.
    pub fn node_of_ip(&self, ip: Ipv4Addr) -> Option<&Arc<super::nodes::NodeRt>> {
        self.nodes.iter().find(|n| n.spec.pod_cidr.contains(ip))
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn pods_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodRuntime>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn notify(&self) {
        self.metrics.changed();
        self.changed.notify_one();
    }

    /// Save the desired state (atomically, mode 0600) as it is now, unless
    /// a save since the caller's last change already covered it. Only this
    /// daemon writes it (it holds the cluster's daemon lock), one save at a
    /// time, and never an older version over a newer one. Saves group:
    /// callers that queue behind a running save are covered by the next
    /// one, which snapshots the store when it starts (500 pods starting at
    /// once cost a handful of saves, not 500). The snapshot and the synced
    /// write run on a blocking thread, off the async workers. Returns the
    /// version on disk.
    pub async fn save(self: &Arc<Self>) -> Option<u64> {
        let want = self.lock().store.resource_version();
        let mut saved = self.persist_lock.lock().await;
        // `lab down` removes the state; nothing may write it back.
        if saved.is_some_and(|s| s >= want) || *self.shutting_down.borrow() {
            return *saved;
        }
        let d = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let (rv, bytes) = {
                let st = d.lock();
                (st.store.resource_version(), st.store.to_snapshot())
            };
            let path = d.layout.state_file();
            let bytes = bytes.map_err(|e| (path.clone(), std::io::Error::other(e)))?;
            write_atomic(&path, &bytes, PRIVATE)
                .map(|()| rv)
                .map_err(|e| (path, e))
        })
        .await;
        match done {
            Ok(Ok(rv)) => *saved = Some(rv),
            Ok(Err((path, e))) => tracing::error!(
                path = %path.display(),
                error = %e,
                "saving state"
            ),
            Err(e) => tracing::error!(error = %e, "saving state: the writer thread failed"),
        }
        *saved
    }

    /// Save, then tell watchers (`lab wait`, the Kubernetes API's watch
    /// log, the DNS pods, `Kube::committed`) that version
    /// `rv` — the one this reconcile pass acted on (controllers run, data
    /// plane programmed) — is out: a client never sees a version a crash
    /// could lose, as an API server acknowledges only what its store
    /// committed. (A failed save is logged and `rv` published anyway, as
    /// before: a full disk must not hang every client.)
    async fn save_and_publish(self: &Arc<Self>, rv: u64) {
        self.save().await;
        self.rv.send_if_modified(|cur| {
            let newer = rv > *cur;
            if newer {
                *cur = rv;
            }
            newer
        });
    }

    pub fn exec_target(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<ExecTarget, PodTargetError> {
        let (uid, statuses) = {
            let st = self.lock();
            match st.store.get(&Key::new(Kind::Pod, ns, pod)) {
                Some(Object::Pod(p)) => (
                    p.metadata.uid.clone().unwrap_or_default(),
                    p.status
                        .as_ref()
                        .and_then(|s| s.container_statuses.clone())
                        .unwrap_or_default(),
                ),
                _ => return Err(PodTargetError::PodNotFound(pod.to_string())),
            }
        };
        let pods = self.pods_lock();
        let rt = pods
            .get(&uid)
            .filter(|r| r.phase == RtPhase::Running)
            .ok_or_else(|| PodTargetError::NotRunning(pod.to_string()))?;
        let spec = rt
            .spec
            .as_ref()
            .ok_or_else(|| PodTargetError::NoSpec(pod.to_string()))?;
        let c = match container {
            Some(c) => spec
                .containers
                .iter()
                .find(|x| x.name == c)
                .ok_or_else(|| PodTargetError::NoSuchContainer {
                    pod: pod.to_string(),
                    container: c.to_string(),
                })?,
            None => spec
                .containers
                .first()
                .ok_or_else(|| PodTargetError::NoContainers(pod.to_string()))?,
        };
        Ok(ExecTarget {
            shim_pid: rt
                .shim_pid
                .ok_or_else(|| PodTargetError::NoShim(pod.to_string()))?,
            container: c.name.clone(),
            env: c.env.clone(),
            working_dir: c
                .working_dir
                .as_ref()
                .map(|p| p.to_string_lossy().to_string()),
            run_as_user: c.run_as_user,
            run_as_group: c.run_as_group,
            container_pid: statuses
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.container_id.as_deref())
                .and_then(|id| id.rsplit('/').next())
                .and_then(|p| p.parse().ok()),
            security: c.security.clone(),
        })
    }

    /// Log file of a pod's container (`previous`: the one before the last restart).
    pub fn log_path(
        &self,
        ns: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<PathBuf, PodTargetError> {
        let st = self.lock();
        let Some(Object::Pod(p)) = st.store.get(&Key::new(Kind::Pod, ns, pod)) else {
            return Err(PodTargetError::PodNotFound(pod.to_string()));
        };
        let containers: Vec<String> = p
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        let c = match container {
            Some(c) if containers.iter().any(|x| x == c) => c.to_string(),
            Some(c) => {
                return Err(PodTargetError::NoSuchContainer {
                    pod: pod.to_string(),
                    container: c.to_string(),
                });
            }
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                return Err(PodTargetError::ContainerRequired {
                    pod: pod.to_string(),
                    choices: containers,
                });
            }
        };
        let restarts = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|x| x.name == c))
            .map(|x| x.restart_count)
            .unwrap_or(0);
        if previous && restarts == 0 {
            return Err(PodTargetError::NoPrevious {
                pod: pod.to_string(),
                container: c,
            });
        }
        let n = if previous { restarts - 1 } else { restarts };
        let uid = p.metadata.uid.clone().unwrap_or_default();
        Ok(self
            .layout
            .pod_log_dir(ns, pod, &uid)
            .join(&c)
            .join(format!("{n}.log")))
    }

    /// One reconcile pass: controllers, then start/stop pods as needed.
    async fn reconcile(self: &Arc<Self>) {
        let trigger = self.metrics.take_change();
        let (to_start, to_stop, rv, view) = {
            let mut st = self.lock();
            let log = self.watch_log.get();
            if let Some(log) = log {
                log.sync(&st.store);
            }
            st.finish_namespaces();
            self.node_lifecycle(&mut st);
            st.reconcile_controllers();
            if let Some(log) = log {
                log.sync(&st.store);
            }
            let mut pods = self.pods_lock();
            let now = Instant::now();
            let mut to_start = Vec::new();
            let mut to_stop = Vec::new();
            // The kubelets of this cluster's nodes start only the pods the
            // scheduler bound to one of them.
            // A node cut off the node network: its kubelet neither starts
            // nor stops anything until it is back (its pods are frozen).
            let partitioned = self.partitioned();
            let nodes: Vec<String> = self
                .cfg
                .node_specs()
                .into_iter()
                .map(|n| n.name)
                .filter(|n| !partitioned.contains(n))
                .collect();
            let mut frozen = std::collections::HashSet::new();
            let live: Vec<(Key, String, bool, Option<Ipv4Addr>, String)> = st
                .store
                .list(Kind::Pod, None)
                .filter(|o| {
                    let node = match o {
                        Object::Pod(p) => controller::nodes::pod_node(p),
                        _ => None,
                    };
                    if node.is_some_and(|n| partitioned.iter().any(|x| x == n)) {
                        frozen.insert(o.meta().uid.clone().unwrap_or_default());
                    }
                    node.is_some_and(|n| nodes.iter().any(|x| x == n))
                })
                .map(|o| {
                    let netns = o
                        .meta()
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(NETNS_ANNOTATION))
                        .cloned()
                        .unwrap_or_default();
                    (
                        Key::of(o),
                        o.meta().uid.clone().unwrap_or_default(),
                        is_terminating(o.meta()),
                        super::state::pod_ip(o),
                        netns,
                    )
                })
                .collect();
            for (key, uid, terminating, ip, netns) in &live {
                match pods.get_mut(uid) {
                    None if !terminating => {
                        pods.insert(
                            uid.clone(),
                            PodRuntime {
                                key: key.clone(),
                                phase: RtPhase::Starting,
                                ip: None,
                                netns: String::new(),
                                shim_pid: None,
                                spec: None,
                                cmd: None,
                                last_status: None,
                            },
                        );
                        to_start.push(key.clone());
                    }
                    None => {
                        // Terminating with no runtime (e.g. after a daemon
                        // restart): tear down whatever it left.
                        pods.insert(
                            uid.clone(),
                            PodRuntime {
                                key: key.clone(),
                                phase: RtPhase::Stopping,
                                ip: *ip,
                                netns: netns.clone(),
                                shim_pid: None,
                                spec: None,
                                cmd: None,
                                last_status: None,
                            },
                        );
                        to_stop.push(uid.clone());
                    }
                    Some(rt) => match &rt.phase {
                        RtPhase::Failed { retry_at, .. } if *terminating || *retry_at <= now => {
                            if *terminating {
                                rt.phase = RtPhase::Stopping;
                                to_stop.push(uid.clone());
                            } else {
                                rt.phase = RtPhase::Starting;
                                to_start.push(key.clone());
                            }
                        }
                        // A starting pod is stopped once its start finished.
                        RtPhase::Running if *terminating => {
                            rt.phase = RtPhase::Stopping;
                            to_stop.push(uid.clone());
                        }
                        _ => {}
                    },
                }
            }
            // Runtimes whose pod vanished from the store (e.g. removed
            // namespace): stop them too.
            let uids: std::collections::HashSet<&String> =
                live.iter().map(|(_, u, ..)| u).collect();
            for (uid, rt) in pods.iter_mut() {
                if !uids.contains(uid)
                    && !frozen.contains(uid)
                    && matches!(rt.phase, RtPhase::Running | RtPhase::Failed { .. })
                {
                    rt.phase = RtPhase::Stopping;
                    to_stop.push(uid.clone());
                }
            }
            // The Services view only when a Service or EndpointSlice
            // changed since the proxies were given the last one.
            let versions = (
                st.store.kind_version(Kind::Service),
                st.store.kind_version(Kind::EndpointSlice),
            );
            let mut proxied = self.proxied.lock().unwrap_or_else(|e| e.into_inner());
            let view = match &*proxied {
                Some((v, ports)) if *v == versions => Err(ports.clone()),
                _ => {
                    let view = super::services::view(&st.store);
                    *proxied = Some((versions, view.target_ports.clone()));
                    Ok(view)
                }
            };
            (to_start, to_stop, st.store.resource_version(), view)
        };
        let target_ports = match &view {
            Ok(v) => &v.target_ports,
            Err(ports) => ports,
        };
        // Retried every pass until installed (a no-op once it is).
        for n in &self.nodes {
            n.routing.sync(target_ports).await;
        }
        if let Ok(view) = view {
            let mut programmed = false;
            // Each node's proxy its own view; the last takes the view
            // itself (no copy with one node).
            let (last, others) = self.nodes.split_last().expect("at least one node");
            for n in others {
                programmed |= n.dataplane.update(&self.cfg, view.for_node(n.name()));
            }
            programmed |= last
                .dataplane
                .update(&self.cfg, view.into_node(last.name()));
            if programmed {
                self.metrics.programmed(trigger);
            }
        }
        self.faults.refresh(self);
        if *self.rv.borrow() != rv {
            // Off the reconcile loop: the next pass need not wait for the
            // disk, and passes that come while a save runs share the next.
            let d = self.clone();
            tokio::spawn(async move { d.save_and_publish(rv).await });
        }
        for key in to_start {
            let d = self.clone();
            let span = tracing::info_span!("pod", ns = %key.namespace, name = %key.name);
            tokio::spawn(async move { d.start_pod(key).await }.instrument(span));
        }
        for uid in to_stop {
            let d = self.clone();
            let span = tracing::info_span!("pod", %uid, stopping = true);
            tokio::spawn(async move { d.stop_pod(uid).await }.instrument(span));
        }
    }

    /// Record what the kubelet would about `pod` (its new status against `old`).
    fn kubelet_events(&self, st: &mut State, pod: &Pod, old: Option<&PodStatus>) {
        let Some(new) = pod.status.as_ref() else {
            return;
        };
        let notes = events::kubelet_notes(pod, old, new);
        if notes.is_empty() {
            return;
        }
        let obj = Object::Pod(Box::new(pod.clone()));
        for note in notes {
            self.kubelet_event(st, &obj, note);
        }
    }

    fn kubelet_event(&self, st: &mut State, obj: &Object, note: events::Note) {
        // The kubelet of the pod's node.
        let host = match obj {
            Object::Pod(p) => controller::nodes::pod_node(p).map(str::to_string),
            _ => None,
        }
        .unwrap_or_else(|| self.layout.node_name());
        events::record(
            &mut st.store,
            obj,
            note,
            events::KUBELET,
            Some(&host),
            SystemTime::now(),
        );
    }

    fn set_failed(&self, uid: &str, key: &Key, error: String) {
        tracing::warn!(pod = %key, %error, "pod failed");
        if let Some(rt) = self.pods_lock().get_mut(uid) {
            rt.phase = RtPhase::Failed {
                error: error.clone(),
                retry_at: Instant::now() + Duration::from_secs(2),
            };
        }
        let mut st = self.lock();
        if let Some(Object::Pod(mut p)) = st.store.get(key).cloned() {
            let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
            let old = p.status.clone();
            p.status = Some(podstatus::compute(&p, ip.as_deref(), None, Some(&error)));
            self.kubelet_events(&mut st, &p, old.as_ref());
            st.store.update(Object::Pod(p));
        }
        drop(st);
        self.notify();
    }

    /// The network namespace name for a pod starting afresh:
    /// `<cluster>-<ns>-<pod>`, unless that name is already another pod's
    /// (namespace `a-b`, pod `c` and namespace `a`, pod `b-c` give the same
    /// one), a node's, or present on the machine (another cluster's, or
    /// left over): then with the pod's uid appended, so no two pods ever
    /// share a namespace.
    fn free_netns_name(&self, store: &Store, key: &Key, uid: &str) -> String {
        let base = self.layout.pod_netns(&key.namespace, &key.name, uid);
        let other_pods = store.list(Kind::Pod, None).any(|o| {
            o.meta().uid.as_deref() != Some(uid)
                && o.meta()
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NETNS_ANNOTATION))
                    == Some(&base)
        });
        let infra = self.nodes.iter().any(|n| n.name() == base) || self.layout.net_netns() == base;
        if other_pods || infra || netns::exists(&base) {
            let short = &uid[..uid.len().min(8)];
            tracing::info!(netns = %base, uid = short, "netns name taken; the pod's uid appended");
            format!("{base}-{short}")
        } else {
            base
        }
    }

    async fn start_pod(self: Arc<Self>, key: Key) {
        // 1. Allocate the address and record the netns name (saved before
        //    anything is created, so a crash leaves nothing unrecorded).
        let prepared = {
            let mut st = self.lock();
            let Some(Object::Pod(mut pod)) = st.store.get(&key).cloned() else {
                return;
            };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            // A fresh start (no address yet): timed until Ready. A pod
            // re-adopted after a restart keeps its address and is not.
            let started = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_ref())
                .is_some();
            if !started {
                self.metrics.pod_starting(&uid);
            }
            // Bound by the scheduler (the runtime starts only bound pods).
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let ip = match pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|s| s.parse().ok())
            {
                Some(ip) => ip,
                None => match st.allocate_pod_ip(&key.namespace, &key.name, &node) {
                    Ok(ip) => ip,
                    Err(e) => {
                        drop(st);
                        self.set_failed(&uid, &key, format!("cannot start pod: {e}"));
                        return;
                    }
                },
            };
            let recorded = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(NETNS_ANNOTATION))
                .filter(|n| !n.is_empty())
                .cloned();
            let netns = match recorded {
                // Re-adopted after a restart: the namespace it runs in.
                Some(n) if started => n,
                _ => self.free_netns_name(&st.store, &key, &uid),
            };
            pod.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(NETNS_ANNOTATION.into(), netns.clone());
            let mut status = pod.status.clone().unwrap_or_default();
            status.pod_ip = Some(ip.to_string());
            status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP {
                ip: ip.to_string(),
            }]);
            // The node's InternalIP, as the kubelet reports it (a one-node
            // cluster's node has no address: its Node lists none either).
            if let Some(host) = self
                .nodes
                .iter()
                .find(|n| n.name() == node)
                .and_then(|n| n.spec.ip)
            {
                status.host_ip = Some(host.to_string());
                status.host_ips = Some(vec![k8s_openapi::api::core::v1::HostIP {
                    ip: host.to_string(),
                }]);
            }
            pod.status = Some(status);
            let prepared = podspec::prepare(
                &pod,
                ip,
                &netns,
                &st.store,
                &self.cfg,
                &self.layout,
                &self.lab_exe,
                &self.host_resolv,
            );
            st.store.update(Object::Pod(pod));
            if let Some(rt) = self.pods_lock().get_mut(&uid) {
                rt.ip = Some(ip);
                rt.netns = netns.clone();
            }
            (uid, ip, netns, prepared)
        };
        let (uid, ip, netns, prepared) = prepared;
        self.save().await;
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => return self.set_failed(&uid, &key, e.to_string()),
        };
        // 2. Network, files and shim — unless the cluster is going down
        //    (its teardown waits for starts under way, then removes them).
        let creating = self.creating.read().await;
        if *self.shutting_down.borrow() {
            return;
        }
        let up = self.bring_up(&uid, ip, &netns, &prepared).await;
        drop(creating);
        match up {
            Ok(spec) => self.watch_shim(uid, key, spec).await,
            Err(e) => self.set_failed(&uid, &key, e.to_string()),
        }
    }

    /// Create the pod's network, files and shim; or re-adopt a shim that
    /// is still running (after a daemon restart). Returns the spec it runs.
    async fn bring_up(
        &self,
        uid: &str,
        ip: Ipv4Addr,
        netns: &str,
        prepared: &podspec::Prepared,
    ) -> Result<ShimSpec, lifecycle::StartError> {
        let up = self.lifecycle.bring_up(prepared, netns, ip).await?;
        if let Some(rt) = self.pods_lock().get_mut(uid) {
            rt.shim_pid = Some(up.shim_pid);
        }
        Ok(up.spec)
    }

    /// Follow a shim's status stream until it ends.
    async fn watch_shim(self: Arc<Self>, uid: String, key: Key, spec: ShimSpec) {
        let sock = spec.run_dir.join("shim.sock");
        let mut stream = None;
        for _ in 0..100 {
            match tokio::net::UnixStream::connect(&sock).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let Some(stream) = stream else {
            return self.set_failed(
                &uid,
                &key,
                format!("the pod's shim does not answer on {}", sock.display()),
            );
        };
        let (rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<ShimCommand>();
        {
            let mut pods = self.pods_lock();
            if let Some(rt) = pods.get_mut(&uid) {
                rt.cmd = Some(tx);
                rt.spec = Some(spec.clone());
                if rt.phase == RtPhase::Starting {
                    rt.phase = RtPhase::Running;
                }
            }
        }
        self.notify();
        let writer = tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                let mut line = serde_json::to_vec(&cmd).unwrap_or_default();
                line.push(b'\n');
                if wr.write_all(&line).await.is_err() {
                    break;
                }
            }
        });
        // A small buffer: one per pod, and status lines are short (a longer
        // line still reads whole); the default 8 KiB made 4 MB with 500 pods.
        let mut lines = BufReader::with_capacity(1024, rd).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(status) = serde_json::from_str::<ShimStatus>(&line) else {
                tracing::warn!(pod = %key, "bad status line from the shim");
                continue;
            };
            let mut st = self.lock();
            if let Some(rt) = self.pods_lock().get_mut(&uid) {
                rt.last_status = Some(status.clone());
            }
            if let Some(Object::Pod(mut p)) = st.store.get(&key).cloned()
                && p.metadata.uid.as_deref() == Some(uid.as_str())
                // A cut-off node's kubelet cannot post; it reports the last
                // status when it is back.
                && !controller::nodes::pod_node(&p).is_some_and(|n| self.is_partitioned(n))
            {
                let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                let old = p.status.clone();
                p.status = Some(podstatus::compute(&p, ip.as_deref(), Some(&status), None));
                self.kubelet_events(&mut st, &p, old.as_ref());
                if controller::workload::pod_ready(&p) {
                    self.metrics.pod_ready(&uid);
                }
                if st.store.update(Object::Pod(p)) {
                    drop(st);
                    self.notify();
                }
            }
        }
        writer.abort();
        // The shim is gone. If the pod is not being stopped, start it again.
        let restart = {
            let mut pods = self.pods_lock();
            match pods.get_mut(&uid) {
                Some(rt) if rt.phase == RtPhase::Running && !*self.shutting_down.borrow() => {
                    rt.phase = RtPhase::Failed {
                        error: "the pod's shim exited".into(),
                        retry_at: Instant::now() + Duration::from_millis(500),
                    };
                    true
                }
                _ => false,
            }
        };
        if restart {
            tracing::warn!(pod = %key, "the shim exited; restarting the pod sandbox");
            self.notify();
        }
    }

    /// Graceful stop: SIGTERM through the shim, SIGKILL after the grace
    /// period, then remove network, files and the object.
    async fn stop_pod(self: Arc<Self>, uid: String) {
        // Lock order: state before pods, never the other way round.
        let Some(key) = self.pods_lock().get(&uid).map(|rt| rt.key.clone()) else {
            return;
        };
        self.metrics.pod_gone(&uid);
        let grace = {
            let mut st = self.lock();
            let pod = st.store.get(&key).cloned();
            if let Some(Object::Pod(p)) = &pod
                && p.metadata.uid.as_deref() == Some(uid.as_str())
            {
                for note in events::killing_notes(p) {
                    self.kubelet_event(&mut st, &Object::Pod(p.clone()), note);
                }
            }
            pod.and_then(|o| o.meta().deletion_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64
        };
        self.teardown_pod(&uid, grace, true).await;
        let mut st = self.lock();
        if st
            .store
            .get(&key)
            .is_some_and(|o| o.meta().uid.as_deref() == Some(uid.as_str()))
            && let Some(o) = st.store.remove(&key)
            && let Some(ip) = super::state::pod_ip(&o)
        {
            st.pod_ipam.release(ip);
            st.remember_ip(&o, ip);
        }
        drop(st);
        self.pods_lock().remove(&uid);
        self.notify();
    }

    async fn teardown_pod(&self, uid: &str, grace: u64, remove_network: bool) {
        let (cmd, pid, ip, netns) = {
            let pods = self.pods_lock();
            let Some(rt) = pods.get(uid) else { return };
            (rt.cmd.clone(), rt.shim_pid, rt.ip, rt.netns.clone())
        };
        let stop_sent = cmd.is_some_and(|c| {
            c.send(ShimCommand::Stop {
                grace_seconds: grace,
            })
            .is_ok()
        });
        let t = lifecycle::Teardown {
            shim_pid: pid,
            stop_sent,
            grace: Duration::from_secs(grace),
            remove_network,
        };
        let dirs = [self.layout.pod_run_dir(uid), self.layout.pod_state_dir(uid)];
        self.lifecycle.teardown(t, ip, &netns, &dirs).await;
    }

    /// Stop every pod and remove everything the cluster made.
    pub async fn shutdown(self: &Arc<Self>) {
        self.shutting_down.send_replace(true);
        // Starts under way finish creating first (new ones see the flag).
        let _no_starts = self.creating.write().await;
        let uids: Vec<String> = self.pods_lock().keys().cloned().collect();
        let mut tasks = Vec::new();
        for uid in uids {
            let d = self.clone();
            tasks.push(tokio::spawn(
                async move { d.teardown_pod(&uid, 2, false).await },
            ));
        }
        for t in tasks {
            let _ = t.await;
        }
        // Pods recorded in state but without a runtime (e.g. failed).
        let recorded: Vec<String> = self
            .lock()
            .store
            .list(Kind::Pod, None)
            .filter_map(|o| {
                o.meta()
                    .annotations
                    .as_ref()?
                    .get(NETNS_ANNOTATION)
                    .cloned()
            })
            .collect();
        for ns in recorded {
            remove_pod_netns(&ns);
        }
        // A save that was under way when the shutdown began ends first.
        let _saves_done = self.persist_lock.lock().await;
        remove_cluster_files(&self.layout);
    }
}

/// Delete a pod's named netns and its `/etc/netns` directory; errors are
/// logged (teardown goes on).
fn remove_pod_netns(ns: &str) {
    if let Err(e) = lifecycle::delete_pod_netns(ns) {
        tracing::warn!(netns = ns, error = %e, "deleting netns");
    }
}

/// Remove the nodes' namespaces and every directory of the cluster.
pub fn remove_cluster_files(layout: &Layout) {
    for ns in super::nodes::namespaces(layout) {
        if let Err(e) = netns::delete(&ns) {
            tracing::warn!(netns = ns, error = %e, "deleting node netns");
        }
    }
    for d in [&layout.state_dir, &layout.log_dir, &layout.run_dir] {
        if let Err(e) = std::fs::remove_dir_all(d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %d.display(), error = %e, "removing the cluster's files");
        }
    }
}

/// SIGKILL a shim `lab down` found; the note says whether it worked (one
/// that exited meanwhile is gone all the same).
fn kill_shim(pid: i32, what: &str) -> String {
    use nix::sys::signal::{Signal, kill};
    match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) => format!("killed {what} {pid}"),
        Err(nix::errno::Errno::ESRCH) => format!("{what} {pid} had already exited"),
        Err(e) => {
            tracing::warn!(pid, error = %e, "killing a {what}");
            format!("could not kill {what} {pid}: {e}")
        }
    }
}

/// `lab down` without a live daemon (after a crash): kill every shim, delete
/// every recorded namespace, remove the files.
pub fn cleanup_offline(layout: &Layout) -> Vec<String> {
    let mut notes = Vec::new();
    // Shims whose pid file is gone (a pod that was still starting when the
    // cluster went down): find them by their command line.
    let marker = format!("shim --spec {}/pods/", layout.run_dir.display());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(&marker)
        {
            notes.push(kill_shim(pid, "leftover pod shim"));
        }
    }
    let pods_dir = layout.run_dir.join("pods");
    for entry in std::fs::read_dir(&pods_dir).into_iter().flatten().flatten() {
        if let Some(pid) = crate::shim::is_alive(&entry.path()) {
            notes.push(kill_shim(pid as i32, "pod shim"));
        }
    }
    if let Ok(bytes) = std::fs::read(layout.state_file())
        && let Ok(store) = Store::from_snapshot(&bytes)
    {
        for o in store.list(Kind::Pod, None) {
            if let Some(ns) = o
                .meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(NETNS_ANNOTATION))
            {
                if netns::exists(ns) {
                    notes.push(format!("deleted netns {ns}"));
                }
                remove_pod_netns(ns);
            }
        }
    }
    let node_dirs = std::fs::read_dir(layout.run_dir.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    for dir in std::iter::once(layout.run_dir.clone()).chain(node_dirs) {
        if let Some(n) = super::tunhold::stop_offline(&dir, &layout.cluster) {
            notes.push(n);
        }
    }
    remove_cluster_files(layout);
    notes
}

/// Kill a daemon recorded in the pid file if it is a lab daemon of this
/// cluster.
pub fn daemon_pid(layout: &Layout) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(layout.daemon_pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).to_string())
        .collect();
    let is_ours = args.iter().any(|a| a == "daemon") && args.iter().any(|a| a == &layout.cluster);
    (is_ours && pid_alive(pid)).then_some(pid)
}

/// Pods whose containers had started but whose shim is gone (the machine
/// rebooted, or shims were killed while no daemon ran) will be created anew:
/// their saved status must not keep claiming Running and Ready until the new
/// shim reports — that would keep them in their Services' endpoints and let
/// `lab up` call them ready. Done before the API listens, so no client ever
/// sees the stale status.
fn forget_dead_containers(state: &mut State, layout: &Layout) {
    let stale: Vec<Box<k8s_openapi::api::core::v1::Pod>> = state
        .store
        .list(Kind::Pod, None)
        .filter_map(|o| match o {
            Object::Pod(p) => Some(p),
            _ => None,
        })
        .filter(|p| {
            let had_run = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.started == Some(true)));
            let uid = p.metadata.uid.as_deref().unwrap_or_default();
            had_run && !uid.is_empty() && crate::shim::is_alive(&layout.pod_run_dir(uid)).is_none()
        })
        .cloned()
        .collect();
    for mut p in stale {
        tracing::info!(
            ns = p.metadata.namespace.as_deref().unwrap_or_default(),
            name = p.metadata.name.as_deref().unwrap_or_default(),
            "the pod's shim is gone; creating it anew"
        );
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
        p.status = Some(podstatus::compute(&p, ip.as_deref(), None, None));
        state.store.update(Object::Pod(p));
    }
}

/// Run the daemon until shutdown. `ready`: the pipe on which `lab up`
/// waits to hear that the API serves (see [`crate::sys::ready`]).
pub async fn run(cfg: ClusterConfig, ready: Option<std::fs::File>) -> anyhow::Result<()> {
    let started = Instant::now();
    let layout = cfg.layout();
    std::fs::create_dir_all(&layout.run_dir)?;
    // First of all: be the only daemon of this cluster. Another one keeps
    // everything it has (socket, pid file, state, TUN); this one touches
    // nothing and says who holds the lock.
    let Some(_daemon_lock) = FileLock::try_exclusive(&layout.daemon_lock())? else {
        let holder = std::fs::read_to_string(layout.daemon_pid()).unwrap_or_default();
        anyhow::bail!(
            "a daemon for cluster {:?} is already running (pid {})",
            cfg.name,
            holder.trim()
        );
    };
    for d in [&layout.run_dir, &layout.state_dir, &layout.log_dir] {
        crate::sys::process::create_private_dir(d)?;
    }
    write_atomic(
        &layout.daemon_pid(),
        std::process::id().to_string().as_bytes(),
        POD_READABLE,
    )?;
    // The config, written only when it changed (a synced write to disk
    // costs milliseconds in a restart).
    let config = serde_json::to_vec_pretty(&cfg)?;
    let unchanged = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(layout.config_file())
            .is_ok_and(|m| m.permissions().mode() & 0o777 == PRIVATE)
            && std::fs::read(layout.config_file()).ok().as_deref() == Some(config.as_slice())
    };
    if !unchanged {
        write_atomic(&layout.config_file(), &config, PRIVATE)?;
    }

    // State.
    let store = match std::fs::read(layout.state_file()) {
        Ok(bytes) => Store::from_snapshot(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", layout.state_file().display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::default(),
        // Unreadable (not missing): starting empty would overwrite the
        // saved cluster at the first save.
        Err(e) => anyhow::bail!("reading {}: {e}", layout.state_file().display()),
    };
    let mut state = State::new(cfg.clone(), store);
    state.ensure_system_objects();
    forget_dead_containers(&mut state, &layout);

    // The Services data plane first: after a restart, packets wait in the
    // TUN holder's queues until this daemon reads them, so it takes the
    // queues over and installs the saved Services before anything else
    // (the node's routes, rules and sysctls are still in place; they are
    // checked right after).
    let lab_exe = std::env::current_exe()?;
    let planes = super::nodes::start_dataplanes(
        &cfg,
        &layout,
        &lab_exe,
        &super::services::view(&state.store),
    )?;
    tracing::info!(
        after_ms = started.elapsed().as_millis() as u64,
        nodes = planes.len(),
        "Services data plane serving"
    );
    let nodes = super::nodes::setup(&cfg, &layout, planes).await?;
    let rv = state.store.resource_version();
    let faults = super::faults::Faults::load(layout.state_dir.join("faults.json"));
    let lifecycle = lifecycle::Lifecycle::new(Arc::new(lifecycle::HostSys {
        nodes: nodes
            .iter()
            .map(|n| (n.spec.pod_cidr, n.netlink.clone()))
            .collect(),
        lab_exe: lab_exe.clone(),
    }));
    let daemon = Arc::new(Daemon {
        cfg: cfg.clone(),
        layout: layout.clone(),
        state: Mutex::new(state),
        changed: Notify::new(),
        rv: watch::channel(rv).0,
        pods: Mutex::new(HashMap::new()),
        lab_exe,
        started_at: crate::model::now_time().0.to_string(),
        shutting_down: watch::channel(false).0,
        watch_log: std::sync::OnceLock::new(),
        creating: tokio::sync::RwLock::new(()),
        nodes,
        partitions: Mutex::new(HashMap::new()),
        lifecycle,
        faults,
        persist_lock: tokio::sync::Mutex::new(None),
        host_resolv: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        metrics: Arc::default(),
        proxied: Mutex::new(None),
    });
    daemon.save().await;
    // Put back routes, rules and the TUN's link state when someone deletes
    // them (src/daemon/repair.rs); ends when the daemon shuts down.
    let repairs: Vec<_> = daemon
        .nodes
        .iter()
        .map(|n| super::repair::spawn(daemon.clone(), n.clone()))
        .collect();

    // The Kubernetes API (HTTPS on 127.0.0.1; src/api/kube), before the
    // socket API: `lab up` returns once that answers, and the kubeconfig
    // must exist by then.
    let (stop_tx, mut stop_rx) = mpsc::channel::<()>(1);
    let (kube, kube_server) = crate::daemon::kube::start(daemon.clone(), stop_tx).await?;
    let app = crate::daemon::kube::router(kube);

    // The same API on the admin Unix socket (mode 0600: root only; the
    // `lab` CLI's way in, no certificate needed).
    let _ = std::fs::remove_file(layout.api_socket());
    let listener = tokio::net::UnixListener::bind(layout.api_socket())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(layout.api_socket(), std::fs::Permissions::from_mode(0o600))?;
    }
    let server = tokio::spawn(crate::daemon::kube::serve_unix(listener, app.clone()));
    // The read-only socket (get/list/watch, for the DNS pods), alone in its
    // directory so that directory can be mounted into the DNS pods (a
    // socket file itself would go stale when a new daemon re-creates it).
    std::fs::create_dir_all(layout.read_only_api_dir())?;
    let _ = std::fs::remove_file(layout.read_only_api_socket());
    let ro_listener = tokio::net::UnixListener::bind(layout.read_only_api_socket())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            layout.read_only_api_socket(),
            std::fs::Permissions::from_mode(0o600),
        )?;
    }
    let ro_server = tokio::spawn(crate::daemon::kube::serve_unix(
        ro_listener,
        crate::daemon::kube::read_only(app),
    ));

    // Reconcile loop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    daemon.reconcile().await;
    // Ready once the API serves and the first pass has acted on the state
    // (the system pods exist): `lab up` then lists the pods and waits for
    // them; a list taken before that pass could find none and call an
    // empty cluster ready.
    crate::sys::ready::signal(ready);
    daemon.faults.reapply_links(&daemon).await;
    let mut graceful = false;
    // Changes since memory was last given back (see below).
    let mut busy = false;
    loop {
        tokio::select! {
            _ = daemon.changed.notified() => busy = true,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                // Quiet for half a second after a burst: return what the
                // burst's buffers left free to the system.
                if std::mem::take(&mut busy) {
                    crate::sys::process::release_free_memory();
                }
            }
            _ = stop_rx.recv() => { graceful = true; break; }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        daemon.reconcile().await;
    }
    if graceful {
        tracing::info!("shutting down the cluster");
        daemon.shutdown().await;
        for n in &daemon.nodes {
            n.dataplane.stop();
        }
    } else {
        // SIGTERM/SIGINT: leave pods and the TUN running (a new daemon
        // re-adopts them and restores the flow table).
        let t0 = Instant::now();
        for n in &daemon.nodes {
            n.dataplane.shutdown();
        }
        let handed_over = t0.elapsed();
        daemon.save().await;
        for f in [
            layout.api_socket(),
            layout.read_only_api_socket(),
            layout.daemon_pid(),
        ] {
            if let Err(e) = std::fs::remove_file(&f)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %f.display(), error = %e, "removing at shutdown");
            }
        }
        tracing::info!(
            dataplane_us = handed_over.as_micros() as u64,
            total_us = t0.elapsed().as_micros() as u64,
            "stopped for a restart (pods and the TUN holder keep running)"
        );
    }
    server.abort();
    ro_server.abort();
    kube_server.abort();
    for r in repairs {
        r.abort();
    }
    Ok(())
}
