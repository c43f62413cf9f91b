//! `lab up`, `lab down` and the daemon entry point.

use super::{NsArgs, client, read_documents};
use crate::api::client::ClientError;
use crate::api::{ApplyRequest, ListQuery, ObjectList, StatusReply, WatchQuery, WatchReply};
use crate::cluster::{ClusterConfig, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, Layout};
use crate::daemon::runtime::{cleanup_offline, daemon_pid};
use crate::model::parse::parse_documents;
use crate::sys::lock::FileLock;
use crate::sys::ready::{Readiness, ReadyPipe};
use clap::Args;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The sample app applied by `lab up` (compiled in).
pub const SAMPLE_APP: &str = include_str!("../../lab/sample-app.yaml");

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Pod address range.
    #[arg(long, default_value = DEFAULT_POD_CIDR)]
    pub pod_cidr: String,
    /// Service (ClusterIP) range.
    #[arg(long, default_value = DEFAULT_SERVICE_CIDR)]
    pub service_cidr: String,
    /// Apply these manifests instead of the sample app.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Start with only the system namespaces and objects.
    #[arg(long)]
    pub empty: bool,
    /// Run the daemon attached to this terminal.
    #[arg(long)]
    pub foreground: bool,
    /// How long to wait for pods to become Ready (and, at least 15 s, for a
    /// new daemon to answer: slow machines and emulated VMs need longer).
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// More detail in the daemon's log (`-v`: debug, `-vv`: trace; or set
    /// RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Port of the Kubernetes API on 127.0.0.1 (default: a free port, kept
    /// across restarts).
    #[arg(long)]
    pub api_port: Option<u16>,
    /// Merge the cluster's kubeconfig into the invoking user's ~/.kube/config
    /// (SUDO_USER's) and make it the current context.
    #[arg(long)]
    pub write_kubeconfig: bool,
    /// Rotate a container's log when it reaches this size (the kubelet's
    /// containerLogMaxSize; default 10Mi, kept across restarts).
    #[arg(long, value_name = "SIZE")]
    pub container_log_max_size: Option<String>,
    /// Log files kept per container, the live one included (the kubelet's
    /// containerLogMaxFiles; default 5).
    #[arg(long, value_name = "N")]
    pub container_log_max_files: Option<u32>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// The node flags of `lab up` (and of the daemon it starts).
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Nodes in the cluster: each a network namespace with its own pod
    /// subnet and Service proxy, joined by a node network.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// The node network's range (several nodes).
    #[arg(long, default_value = crate::cluster::DEFAULT_NODE_CIDR)]
    pub node_cidr: String,
    /// Prefix length of each node's pod subnet (several nodes).
    #[arg(long, default_value_t = crate::cluster::DEFAULT_NODE_CIDR_MASK_SIZE)]
    pub node_cidr_mask_size: u8,
    /// A node whose kubelet stops posting status turns NotReady after this
    /// long (Kubernetes: 40s).
    #[arg(long, default_value = "10s")]
    pub node_monitor_grace_period: String,
    /// Pods of a NotReady node are evicted after this long (Kubernetes: 5m).
    #[arg(long, default_value = "30s")]
    pub pod_eviction_timeout: String,
}

impl NodeArgs {
    /// Apply these flags to `cfg`.
    pub fn apply(&self, cfg: ClusterConfig) -> Result<ClusterConfig, String> {
        let mut cfg = cfg
            .with_nodes(self.nodes, &self.node_cidr, self.node_cidr_mask_size)
            .map_err(|e| e.to_string())?;
        let secs = |flag: &str, v: &str| {
            super::parse_duration(v)
                .map(|d| d.as_secs().max(1))
                .map_err(|e| format!("--{flag}: {e}"))
        };
        cfg.topology.node_monitor_grace_secs =
            secs("node-monitor-grace-period", &self.node_monitor_grace_period)?;
        cfg.topology.pod_eviction_secs = secs("pod-eviction-timeout", &self.pod_eviction_timeout)?;
        Ok(cfg)
    }

    /// The daemon's arguments for `cfg`'s topology.
    pub fn for_daemon(cfg: &ClusterConfig) -> Vec<String> {
        let t = &cfg.topology;
        vec![
            "--nodes".into(),
            t.nodes.to_string(),
            "--node-cidr".into(),
            t.node_cidr.to_string(),
            "--node-cidr-mask-size".into(),
            t.node_cidr_mask_size.to_string(),
            "--node-monitor-grace-period".into(),
            format!("{}s", t.node_monitor_grace_secs),
            "--pod-eviction-timeout".into(),
            format!("{}s", t.pod_eviction_secs),
        ]
    }
}

fn err(s: impl Into<String>) -> ClientError {
    let s = s.into();
    ClientError::Api(s, Vec::new())
}

/// `lab daemon`: the daemon process itself.
pub fn daemon_main(
    cluster: &str,
    pod_cidr: &str,
    service_cidr: &str,
    api_port: Option<u16>,
    log_max_size: Option<&str>,
    log_max_files: Option<u32>,
    node: &NodeArgs,
) -> i32 {
    let mut cfg =
        match ClusterConfig::new(cluster, pod_cidr, service_cidr).and_then(|c| node.apply(c)) {
            Ok(c) => c,
            Err(e) => return super::fail(&[e]),
        };
    cfg.api_port = api_port;
    cfg.log_rotation =
        match crate::cluster::log_rotation(cfg.log_rotation, log_max_size, log_max_files) {
            Ok(r) => r,
            Err(e) => return super::fail(&[e]),
        };
    // Before any thread exists (the runtime's): the environment is changed.
    let ready = crate::sys::ready::take_from_env();
    crate::sys::process::limit_malloc_arenas();
    crate::logging::init("info");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail(&[e.to_string()]),
    };
    let result = rt.block_on(crate::daemon::runtime::run(cfg, ready));
    // Everything that matters is saved by now; don't let a blocking task
    // still running hold the exit up (dropping the runtime would wait for
    // it, and a restart's next daemon waits for this one's lock).
    rt.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("daemon failed: {e:#}");
            super::fail(&[format!("{e:#}")])
        }
    }
}

fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub async fn up(cluster: &str, args: UpArgs) -> Result<i32, ClientError> {
    let t0 = Instant::now();
    if !nix::unistd::geteuid().is_root() {
        return Err(err(
            "lab up needs root (network namespaces, veths, mounts): run `sudo lab up`",
        ));
    }
    let layout = Layout::new(cluster);
    let c = client(cluster);
    // One `lab up` at a time starts the daemon; a concurrent one waits
    // here until that daemon serves, then finds it running.
    let up_lock = layout.up_lock();
    let starting = tokio::task::spawn_blocking(move || FileLock::exclusive(&up_lock))
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(format!("{}: {e}", layout.up_lock().display())))?;
    if let Some(pid) = daemon_pid(&layout)
        && c.get::<StatusReply, _>("/v1/status", &()).await.is_ok()
    {
        println!("cluster {cluster:?} is already running (daemon pid {pid}); nothing to do");
        if args.write_kubeconfig {
            kubeconfig_note(cluster, &layout, true);
        }
        return Ok(0);
    }
    // An earlier run's saved config wins (its pods keep their addresses).
    let mut cfg = ClusterConfig::new(cluster, &args.pod_cidr, &args.service_cidr)
        .and_then(|c| args.node.apply(c))
        .map_err(err)?;
    let timeout = super::parse_duration(&args.timeout).map_err(err)?;
    let api_wait = timeout.max(Duration::from_secs(15));
    let fresh = !layout.state_file().exists();
    if !fresh && let Ok(bytes) = std::fs::read(layout.config_file()) {
        let saved: ClusterConfig = serde_json::from_slice(&bytes)
            .map_err(|e| err(format!("{}: {e}", layout.config_file().display())))?;
        let asked_default =
            args.pod_cidr == DEFAULT_POD_CIDR && args.service_cidr == DEFAULT_SERVICE_CIDR;
        if !asked_default
            && (saved.pod_cidr != cfg.pod_cidr || saved.service_cidr != cfg.service_cidr)
        {
            return Err(err(format!(
                "cluster {cluster:?} already exists with --pod-cidr {} --service-cidr {}; run `lab down` first to change them",
                saved.pod_cidr, saved.service_cidr
            )));
        }
        if args.node.nodes != 1 && saved.topology.nodes != cfg.topology.nodes {
            return Err(err(format!(
                "cluster {cluster:?} already exists with --nodes {}; run `lab down` first to change it",
                saved.topology.nodes
            )));
        }
        cfg = saved;
    }
    if args.api_port.is_some() {
        cfg.api_port = args.api_port;
    }
    cfg.log_rotation = crate::cluster::log_rotation(
        cfg.log_rotation,
        args.container_log_max_size.as_deref(),
        args.container_log_max_files,
    )
    .map_err(err)?;
    if cfg.api_port.is_none() {
        // A free port now, saved with the cluster by the daemon.
        let l = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| err(format!("finding a free port for the Kubernetes API: {e}")))?;
        cfg.api_port = l.local_addr().ok().map(|a| a.port());
    }
    let docs = if args.empty || !fresh {
        Vec::new()
    } else if args.files.is_empty() {
        parse_documents("lab/sample-app.yaml", SAMPLE_APP).map_err(|e| err(e.to_string()))?
    } else {
        read_documents(&args.files).map_err(err)?
    };
    std::fs::create_dir_all(&layout.log_dir)
        .map_err(|e| err(format!("{}: {e}", layout.log_dir.display())))?;
    let exe = std::env::current_exe().map_err(|e| err(e.to_string()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--cluster",
        cluster,
        "daemon",
        "--pod-cidr",
        &cfg.pod_cidr.to_string(),
        "--service-cidr",
        &cfg.service_cidr.to_string(),
    ]);
    if let Some(p) = cfg.api_port {
        cmd.args(["--api-port", &p.to_string()]);
    }
    cmd.args(NodeArgs::for_daemon(&cfg));
    cmd.args([
        "--container-log-max-size",
        &cfg.log_rotation.max_bytes.to_string(),
        "--container-log-max-files",
        &cfg.log_rotation.max_files.to_string(),
    ]);
    cmd.stdin(Stdio::null());
    if let Some(filter) = crate::logging::verbosity_filter(args.verbose) {
        cmd.env("LAB_LOG", filter);
    }
    let ready = ReadyPipe::new().map_err(|e| err(format!("pipe: {e}")))?;
    ready.pass_to(&mut cmd);
    let mut child = if args.foreground {
        cmd.spawn()
            .map_err(|e| err(format!("starting the daemon: {e}")))?
    } else {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(layout.daemon_log())
            .map_err(|e| err(format!("{}: {e}", layout.daemon_log().display())))?;
        let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
        cmd.stdout(log).stderr(log2);
        // SAFETY-free: process_group puts the daemon in its own group; setsid
        // detaches it from the terminal.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        cmd.spawn()
            .map_err(|e| err(format!("starting the daemon: {e}")))?
    };
    // Wait for the daemon to say its API serves (or to die trying).
    drop(cmd);
    let readiness = tokio::task::spawn_blocking(move || ready.wait(api_wait))
        .await
        .map_err(|e| err(e.to_string()))?
        .map_err(|e| err(format!("waiting for the daemon: {e}")))?;
    match readiness {
        Readiness::Ready => drop(starting),
        Readiness::Gone => {
            let st = child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(err(format!(
                "the daemon exited ({st}); its log {}:\n{}",
                layout.daemon_log().display(),
                tail(&layout.daemon_log(), 15)
            )));
        }
        Readiness::TimedOut => {
            return Err(err(format!(
                "the daemon did not answer within {} s; see {}",
                api_wait.as_secs(),
                layout.daemon_log().display()
            )));
        }
    }
    if fresh {
        println!(
            "cluster {cluster:?} created (pods {}, services {})",
            cfg.pod_cidr, cfg.service_cidr
        );
    } else {
        println!("cluster {cluster:?} restarted: existing pods re-adopted");
    }
    if !docs.is_empty() {
        let out: crate::api::ApplyOutcome = c
            .post(
                "/v1/apply",
                &ApplyRequest {
                    documents: docs,
                    namespace: "default".into(),
                    explicit_namespace: false,
                },
            )
            .await?;
        for w in &out.warnings {
            eprintln!("{w}");
        }
        for l in &out.results {
            println!("{l}");
        }
    }
    // Wait for every pod to be Ready.
    let deadline = Instant::now() + timeout;
    loop {
        let list: ObjectList = c
            .get(
                "/v1/objects",
                &ListQuery {
                    resources: "pods".into(),
                    all_namespaces: true,
                    ..Default::default()
                },
            )
            .await?;
        let objs = super::to_objects(list.items);
        let not_ready: Vec<String> = objs
            .iter()
            .filter(|o| match o {
                crate::model::Object::Pod(p) => !crate::controller::workload::pod_ready(p),
                _ => false,
            })
            .map(|o| o.name().to_string())
            .collect();
        if not_ready.is_empty() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!(
                "warning: pods not Ready after {}: {}",
                crate::duration::Go(timeout),
                not_ready.join(", ")
            );
            break;
        }
        // Sleep until the store changes, then look again.
        let _: WatchReply = c
            .get(
                "/v1/watch",
                &WatchQuery {
                    since: list.resource_version,
                    timeout_ms: left.as_millis().clamp(1, 300_000) as u64,
                    resources: None,
                },
            )
            .await?;
    }
    let elapsed = t0.elapsed();
    println!("ready in {:.2}s\n", elapsed.as_secs_f64());
    let ns = NsArgs { namespace: None };
    super::get(
        &c,
        &["pods".into()],
        &ns,
        false,
        None,
        Some("wide"),
        false,
        false,
    )
    .await?;
    println!();
    super::get(
        &c,
        &["services".into()],
        &ns,
        false,
        None,
        None,
        false,
        false,
    )
    .await?;
    print_tour(cluster, &c).await;
    kubeconfig_note(cluster, &layout, args.write_kubeconfig);
    if args.foreground {
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }
    Ok(0)
}

async fn print_tour(cluster: &str, c: &crate::api::client::Client) {
    let flag = if cluster == crate::cluster::DEFAULT_CLUSTER {
        String::new()
    } else {
        format!(" --cluster {cluster}")
    };
    let list: Result<ObjectList, _> = c
        .get(
            "/v1/objects",
            &ListQuery {
                resources: "pods".into(),
                selector: Some("app=backend".into()),
                ..Default::default()
            },
        )
        .await;
    let backend_ip = list.ok().and_then(|l| {
        l.items.iter().find_map(|p| {
            p.pointer("/status/podIP")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
    });
    let Some(ip) = backend_ip else { return };
    // Show it working: the client pod reaches the backends by Service name
    // (cluster DNS → ClusterIP → a live backend).
    let exe = std::env::current_exe().unwrap_or_else(|_| "lab".into());
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(["--cluster", cluster, "exec", "client", "--", "sh", "-c"])
        .arg("for i in 1 2 3; do curl -s -m 5 http://backend-service/hostname; echo; done")
        .stdin(std::process::Stdio::null());
    println!("\nFrom pod client: curl http://backend-service/hostname (3 times):");
    match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
        Ok(Ok(out)) => {
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                println!("  {l}");
            }
            if !out.status.success() {
                let e = String::from_utf8_lossy(&out.stderr);
                println!("  (failed: {})", e.trim());
            }
        }
        Ok(Err(e)) => println!("  (could not run lab exec: {e})"),
        Err(_) => println!("  (no answer within 20 s)"),
    }
    println!("\nTry it:");
    println!(
        "  sudo lab{flag} exec client -- curl -s http://backend-service/hostname   # by Service name: DNS + ClusterIP"
    );
    println!(
        "  sudo lab{flag} exec client -- dig +short backend-service.default.svc.cluster.local"
    );
    println!(
        "  sudo lab{flag} exec client -- curl -s http://{ip}:8080/clientip         # one backend pod, by IP"
    );
    println!(
        "  sudo lab{flag} delete pod <a backend pod>                            # its Deployment replaces it"
    );
    println!("  sudo lab{flag} get pods -o wide");
    println!(
        "  sudo lab{flag} down                                                 # removes everything"
    );
}

/// Tell the user how to reach the Kubernetes API (and merge the
/// kubeconfig into theirs when asked).
fn kubeconfig_note(cluster: &str, layout: &Layout, write: bool) {
    let path = layout.kubeconfig();
    let ctx = crate::daemon::kube::kubeconfig::context_name(cluster);
    if write {
        match std::fs::read_to_string(&path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                crate::daemon::kube::kubeconfig::merge_into_user(cluster, &text)
                    .map_err(|e| e.to_string())
            }) {
            Ok(p) => println!(
                "\nkubectl: context {ctx:?} written to {} and made current: kubectl get pods",
                p.display()
            ),
            Err(e) => eprintln!("warning: could not write the kubeconfig: {e}"),
        }
    } else {
        println!(
            "\nkubectl: sudo KUBECONFIG={} kubectl get pods   (or `lab up --write-kubeconfig` for ~/.kube/config)",
            path.display()
        );
    }
}

/// `lab kubeconfig`: print the cluster's kubeconfig, like `kind get kubeconfig`.
pub fn print_kubeconfig(cluster: &str) -> i32 {
    let path = Layout::new(cluster).kubeconfig();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => super::fail(&[format!(
            "{}: permission denied (it holds the cluster's admin key): run `sudo lab kubeconfig`",
            path.display()
        )]),
        Err(_) => super::fail(&[format!(
            "cluster {cluster:?} has no kubeconfig ({} is missing): is it up? run `sudo lab up`",
            path.display()
        )]),
    }
}

pub async fn down(cluster: &str) -> Result<i32, ClientError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(err("lab down needs root: run `sudo lab down`"));
    }
    match crate::daemon::kube::kubeconfig::remove_from_user(cluster) {
        Ok(Some(p)) => println!(
            "removed context {:?} from {}",
            crate::daemon::kube::kubeconfig::context_name(cluster),
            p.display()
        ),
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}"),
    }
    let layout = Layout::new(cluster);
    let c = client(cluster);
    let pid = daemon_pid(&layout);
    let mut live = false;
    if let Some(pid) = pid
        && c.post::<crate::api::Lines, _>("/v1/shutdown", &())
            .await
            .is_ok()
    {
        live = true;
        if !crate::sys::pidfd::wait_exit(pid, Duration::from_secs(60)).await {
            eprintln!("warning: the daemon (pid {pid}) did not exit within 60 s");
        }
    } else if let Some(pid) = pid {
        // A daemon that does not answer: stop it, then clean up offline.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let existed = layout.state_dir.exists() || layout.run_dir.exists();
    let notes = cleanup_offline(&layout);
    for n in notes {
        println!("{n}");
    }
    if live || existed {
        println!("cluster {cluster:?} deleted");
    } else {
        println!("cluster {cluster:?} is not running; nothing to clean up");
    }
    Ok(0)
}
