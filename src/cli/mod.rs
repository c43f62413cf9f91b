//! The `lab` command line: kubectl's grammar over the daemon's API.

mod exec;
pub mod flows;
mod node;
mod observe;
pub mod portforward;
pub mod up;

use crate::print;

use crate::api::client::{Client, ClientError};
use crate::api::*;
use crate::cluster::{
    DEFAULT_CLUSTER, DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR, Layout, validate_name,
};
use crate::model::parse::{Document, parse_documents};
use crate::model::{Kind, Object};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

#[derive(Parser, Debug)]
#[command(
    name = "lab",
    version,
    about = "A real Kubernetes-style cluster network on one Linux machine: pods as network namespaces, ClusterIP Services, cluster DNS",
    long_about = None,
    after_help = "Start with `sudo lab up`, then `sudo lab get pods -o wide`.\nEvery command takes --cluster (or LAB_CLUSTER) to pick a cluster."
)]
pub struct Cli {
    /// Which cluster (several can run side by side).
    #[arg(long, global = true, env = "LAB_CLUSTER", default_value = DEFAULT_CLUSTER)]
    pub cluster: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct NsArgs {
    /// Namespace (default: "default").
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
}

impl NsArgs {
    fn ns(&self) -> String {
        self.namespace.clone().unwrap_or_else(|| "default".into())
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the cluster daemon and apply the sample app (or -f files).
    Up(up::UpArgs),
    /// Stop the cluster and remove everything it made.
    Down,
    /// Create or update objects from manifests (files, directories or - for stdin).
    ///
    /// All documents are applied together or not at all. Limits, as the API
    /// server's: 3 MiB per object (as JSON), 1 MiB of data per ConfigMap;
    /// and lab's: 10000 documents per file, 64 MiB per `lab apply`.
    Apply {
        /// A file, a directory of .yaml/.yml/.json files, or - for stdin (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        #[command(flatten)]
        ns: NsArgs,
    },
    /// Delete objects by TYPE NAME, TYPE/NAME, -f FILE or -l SELECTOR.
    Delete {
        /// TYPE [NAME…] or TYPE/NAME…
        args: Vec<String>,
        /// Delete the objects these manifests name.
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// Delete every object of TYPE matching this label selector.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        #[command(flatten)]
        ns: NsArgs,
        /// Seconds to wait before SIGKILL (default: the pod's terminationGracePeriodSeconds).
        #[arg(long = "grace-period")]
        grace_period: Option<i64>,
        /// Immediate deletion (grace period 0).
        #[arg(long)]
        force: bool,
        /// Grace period 1.
        #[arg(long)]
        now: bool,
        /// Succeed when the object does not exist.
        #[arg(long = "ignore-not-found")]
        ignore_not_found: bool,
        /// Wait until deleted pods are gone (default true, as kubectl).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
        wait: bool,
    },
    /// List objects: lab get TYPE[,TYPE…] [NAME…] [-o wide|json|yaml|name].
    Get {
        /// TYPE[,TYPE…] [NAME…] or TYPE/NAME…
        #[arg(required = true)]
        args: Vec<String>,
        #[command(flatten)]
        ns: NsArgs,
        /// List across all namespaces.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// Label selector (`app=web,tier!=db`, `env in (a,b)`).
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// wide, json, yaml or name.
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        /// Add a LABELS column.
        #[arg(long = "show-labels")]
        show_labels: bool,
        /// Omit the header line.
        #[arg(long = "no-headers")]
        no_headers: bool,
    },
    /// Show details of an object.
    Describe {
        /// TYPE NAME or TYPE/NAME
        #[arg(required = true)]
        args: Vec<String>,
        #[command(flatten)]
        ns: NsArgs,
    },
    /// Run a command in a pod's container, through the API's pods/exec as kubectl exec does.
    Exec {
        pod: String,
        /// Container whose environment to use (default: the first).
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        /// Pass stdin to the command (without it the command's stdin is
        /// empty, as with kubectl).
        #[arg(short = 'i', long = "stdin")]
        stdin: bool,
        /// Allocate a TTY (with -i): the command runs on a pty of its own,
        /// as a session leader with it as its controlling terminal.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        #[command(flatten)]
        ns: NsArgs,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Print a container's logs.
    Logs {
        /// POD, pod/POD, or deploy/NAME / rs/NAME (one of its pods).
        pod: String,
        /// Container name (required when the pod has several).
        #[arg(short = 'c', long = "container")]
        container: Option<String>,
        /// Keep printing what the container writes.
        #[arg(short = 'f', long = "follow")]
        follow: bool,
        /// The log of the container's previous run (before its last restart).
        #[arg(short = 'p', long = "previous")]
        previous: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
        #[command(flatten)]
        ns: NsArgs,
    },
    /// Forward local ports to a pod: pod/NAME, svc/NAME or deploy/NAME [LOCAL:]REMOTE…
    ///
    /// Listens on the host's 127.0.0.1 (--address) and makes each connection
    /// inside the pod's network namespace. A Service forwards to one of its
    /// ready pods at its targetPort. Ends on Ctrl-C, or when the pod goes away.
    PortForward(portforward::PortForwardArgs),
    /// Set the replicas of a Deployment, ReplicaSet or StatefulSet.
    Scale {
        /// deployment/NAME, or TYPE NAME
        #[arg(required = true)]
        args: Vec<String>,
        #[arg(long, required = true)]
        replicas: i32,
        #[command(flatten)]
        ns: NsArgs,
    },
    /// Wait for a condition: --for=condition=Ready (Available, Complete, Failed…) or --for=delete.
    Wait {
        /// pod/NAME… (or TYPE NAME…)
        args: Vec<String>,
        /// condition=Ready (any condition type: complete, failed…) or delete.
        #[arg(long = "for", required = true)]
        for_: String,
        /// Wait for every object matching this label selector.
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
        /// Wait for every object of TYPE in the namespace.
        #[arg(long, conflicts_with = "selector")]
        all: bool,
        /// Give up after this long (30s, 2m, …).
        #[arg(long, default_value = "30s")]
        timeout: String,
        #[command(flatten)]
        ns: NsArgs,
        /// Across all namespaces.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
    },
    /// Show the cluster: daemon, CIDRs, counts, data plane.
    Status,
    /// Node maintenance: lab node cordon|uncordon|drain NAME.
    Node(node::NodeArgs),
    /// Capture packets as pcapng: svc0 (before and after lab's NAT), svc/NAME or pod/NAME.
    Capture(observe::CaptureArgs),
    /// Inject faults: lab fault svc/NAME --delay 100ms | --drop 10% | --reset 5% | --blackhole pod/NAME | --bandwidth 1mbit; pod/NAME --down; lab fault list; lab fault clear [TARGET].
    Fault(observe::FaultArgs),
    /// The NAT's live flows: client pod → Service (VIP:port) → backend pod,
    /// with state, age, idle time, packets and bytes each way, and recent
    /// rejected attempts. `-w` streams new, changed and ended flows (as
    /// `conntrack -E` does).
    Flows {
        /// Only flows whose Service, client or backend pod is in this
        /// namespace (and the namespace of --service / --pod; default: all
        /// flows).
        #[arg(short = 'n', long = "namespace")]
        namespace: Option<String>,
        /// Only flows to this Service.
        #[arg(long)]
        service: Option<String>,
        /// Only flows from or to this pod.
        #[arg(long)]
        pod: Option<String>,
        /// Only this node's Service proxy (clusters of several nodes: each
        /// node's proxy holds the flows of the clients on it).
        #[arg(long)]
        node: Option<String>,
        /// Stream flow events as they happen.
        #[arg(short = 'w', long = "watch")]
        watch: bool,
        /// wide or json (with -w: one JSON event per line).
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
    },
    /// Live rates: `lab top svc` (connections, packets and bytes per second,
    /// active flows and rejects per Service, from the NAT's counters).
    Top {
        /// svc (services)
        resource: String,
        #[command(flatten)]
        ns: NsArgs,
        /// Every namespace.
        #[arg(short = 'A', long = "all-namespaces")]
        all_namespaces: bool,
        /// Time between samples (1s, 500ms, …).
        #[arg(long, default_value = "1s")]
        interval: String,
        /// Print this many rate tables, then exit (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Print the cluster's kubeconfig (for kubectl and client libraries).
    Kubeconfig,
    /// Run the cluster daemon in the foreground (used by `lab up`).
    #[command(hide = true)]
    Daemon {
        #[arg(long, default_value = DEFAULT_POD_CIDR)]
        pod_cidr: String,
        #[arg(long, default_value = DEFAULT_SERVICE_CIDR)]
        service_cidr: String,
        /// The Kubernetes API's port on 127.0.0.1 (default: a free one).
        #[arg(long)]
        api_port: Option<u16>,
        /// Rotate container logs at this size (default 10Mi).
        #[arg(long)]
        container_log_max_size: Option<String>,
        /// Log files kept per container (default 5).
        #[arg(long)]
        container_log_max_files: Option<u32>,
        #[command(flatten)]
        node: up::NodeArgs,
    },
    /// A pod's init process (started by the daemon).
    #[command(hide = true)]
    Shim {
        #[arg(long)]
        spec: PathBuf,
    },
    /// Keeps one queue of the cluster's TUN `svc0` open while no daemon
    /// runs, so packets wait instead of being dropped (started by the daemon).
    #[command(hide = true)]
    TunHolder {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        queues: usize,
    },
    /// The built-in agnhost image (netexec, serve-hostname, connect, pause).
    #[command(hide = true, disable_help_flag = true)]
    Agnhost {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the manifest field lists (honoured, warned, rejected) as Markdown.
    #[command(hide = true)]
    Fields,
    /// The cluster DNS server (what the `coredns` pods of kube-system run;
    /// image `lab.dev/dns`).
    #[command(hide = true)]
    Dns(crate::dns::DnsArgs),
}

pub fn fail(lines: &[String]) -> i32 {
    for l in lines {
        if l.starts_with("error") || l.starts_with("Error") {
            eprintln!("{l}");
        } else {
            eprintln!("error: {l}");
        }
    }
    1
}

fn client(cluster: &str) -> Client {
    Client::new(&Layout::new(cluster).api_socket(), cluster)
}

/// Entry point of the binary: returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().collect();
    // `lab agnhost …` and `/agnhost …`-style invocations skip clap entirely.
    if argv.get(1).map(String::as_str) == Some("agnhost") {
        return crate::agnhost::main(&argv[2..]);
    }
    // Called as `/agnhost …` (the path pods of the agnhost image have, as in
    // the real image).
    if argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "agnhost")
    {
        return crate::agnhost::main(&argv[1..]);
    }
    let cli = Cli::parse();
    if let Err(e) = validate_name(&cli.cluster) {
        return fail(&[e.to_string()]);
    }
    if !matches!(
        cli.command,
        Command::Daemon { .. }
            | Command::Shim { .. }
            | Command::TunHolder { .. }
            | Command::Dns(_)
            | Command::Agnhost { .. }
    ) {
        // A user command piped into `head` ends quietly, as other CLIs do,
        // instead of panicking on a broken pipe.
        crate::sys::process::default_sigpipe();
    }
    match cli.command {
        Command::Shim { spec } => {
            crate::logging::init("info");
            crate::shim::run(&spec)
        }
        Command::Agnhost { args } => crate::agnhost::main(&args),
        Command::TunHolder { run_dir, queues } => crate::daemon::tunhold::main(&run_dir, queues),
        Command::Dns(args) => {
            // hickory logs every query at info: that would grow the DNS
            // pods' logs without bound.
            crate::logging::init("info,hickory_server=warn");
            crate::dns::main(&args)
        }
        Command::Fields => {
            print!("{}", fields_markdown());
            0
        }
        Command::Daemon {
            pod_cidr,
            service_cidr,
            api_port,
            container_log_max_size,
            container_log_max_files,
            node,
        } => up::daemon_main(
            &cli.cluster,
            &pod_cidr,
            &service_cidr,
            api_port,
            container_log_max_size.as_deref(),
            container_log_max_files,
            &node,
        ),
        Command::Kubeconfig => up::print_kubeconfig(&cli.cluster),
        Command::Exec {
            pod,
            container,
            ns,
            command,
            stdin,
            tty,
        } => exec::run(
            &cli.cluster,
            exec::Request {
                namespace: ns.ns(),
                pod: pod
                    .trim_start_matches("pod/")
                    .trim_start_matches("pods/")
                    .to_string(),
                container,
                command,
                stdin,
                tty,
            },
        ),
        command => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&[e.to_string()]),
            };
            match rt.block_on(run(&cli.cluster, command)) {
                Ok(code) => code,
                Err(e) => fail(&e.lines()),
            }
        }
    }
}

async fn run(cluster: &str, command: Command) -> Result<i32, ClientError> {
    let c = client(cluster);
    match command {
        Command::Up(args) => up::up(cluster, args).await,
        Command::Down => up::down(cluster).await,
        Command::Apply { files, ns } => {
            let docs = read_documents(&files).map_err(|e| ClientError::Api(e.clone(), vec![e]))?;
            let out: crate::api::ApplyOutcome = c
                .post(
                    APPLIES,
                    &ApplyRequest {
                        documents: docs,
                        namespace: ns.ns(),
                        explicit_namespace: ns.namespace.is_some(),
                    },
                )
                .await?;
            for w in &out.warnings {
                eprintln!("{w}");
            }
            for l in &out.results {
                println!("{l}");
            }
            Ok(0)
        }
        Command::Delete {
            args,
            files,
            selector,
            ns,
            grace_period,
            force,
            now,
            ignore_not_found,
            wait,
        } => {
            let documents = if files.is_empty() {
                Vec::new()
            } else {
                read_documents(&files).map_err(|e| ClientError::Api(e.clone(), vec![e]))?
            };
            let targets = if args.is_empty() {
                Vec::new()
            } else {
                parse_targets(&args, selector.is_some()).map_err(|e| ClientError::Api(e, vec![]))?
            };
            if targets.is_empty() && documents.is_empty() {
                return Err(ClientError::Api(
                    "resource(s) were provided, but no name was specified: use TYPE NAME, TYPE/NAME, -f FILE or -l SELECTOR".into(),
                    vec![],
                ));
            }
            let grace = if force {
                Some(0)
            } else if now {
                Some(1)
            } else {
                grace_period
            };
            let lines = delete(
                &c,
                &ns.ns(),
                &targets,
                &documents,
                selector.as_deref(),
                grace,
                ignore_not_found,
                wait,
            )
            .await?;
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        Command::Get {
            args,
            ns,
            all_namespaces,
            selector,
            output,
            show_labels,
            no_headers,
        } => {
            get(
                &c,
                &args,
                &ns,
                all_namespaces,
                selector,
                output.as_deref(),
                show_labels,
                no_headers,
            )
            .await
        }
        Command::Describe { args, ns } => describe(&c, &args, &ns).await,
        Command::Logs {
            pod,
            container,
            follow,
            previous,
            tail,
            ns,
        } => {
            let pod = logs_pod(&c, &ns.ns(), &pod).await?;
            // `pods/log`, as kubectl reads it.
            let q = serde_json::json!({
                "container": container,
                "previous": previous.then_some(true),
                "follow": follow.then_some(true),
                "tailLines": tail.filter(|t| *t >= 0),
            });
            let path = format!(
                "{}/log?{}",
                crate::api::client::resource_path(Kind::Pod, Some(&ns.ns()), Some(&pod)),
                crate::api::client::query_string(&q)
            );
            let mut out = std::io::stdout();
            c.stream(&path, &mut out).await?;
            Ok(0)
        }
        Command::PortForward(args) => portforward::run(&c, args).await,
        Command::Scale { args, replicas, ns } => {
            let t = parse_targets(&args, false).map_err(|e| ClientError::Api(e, vec![]))?;
            for t in t {
                println!("{}", scale(&c, &ns.ns(), &t, replicas).await?);
            }
            Ok(0)
        }
        Command::Wait {
            args,
            for_,
            selector,
            all,
            timeout,
            ns,
            all_namespaces,
        } => {
            // `--all` is the empty selector: everything of TYPE.
            let selector = selector.or(all.then(String::new));
            wait(&c, &args, &for_, selector, &timeout, &ns, all_namespaces).await
        }
        Command::Status => status(&c).await,
        Command::Node(a) => node::run(&c, a).await,
        Command::Capture(a) => observe::capture(&c, a).await,
        Command::Fault(a) => observe::fault(&c, a).await,
        Command::Flows {
            namespace,
            service,
            pod,
            node,
            watch,
            output,
        } => {
            let output = flows::FlowsOutput::parse(output.as_deref())
                .map_err(|e| ClientError::Api(e, Vec::new()))?;
            let q = crate::api::flows::FlowsQuery {
                namespace,
                service,
                pod,
                node,
            };
            flows::flows(&c, q, watch, output).await
        }
        Command::Top {
            resource,
            ns,
            all_namespaces,
            interval,
            count,
        } => {
            if !matches!(resource.as_str(), "svc" | "service" | "services") {
                return Err(ClientError::Api(
                    format!("lab top shows services only (lab top svc), not {resource:?}"),
                    Vec::new(),
                ));
            }
            let interval = crate::duration::parse(&interval).map_err(|e| {
                ClientError::Api(format!("invalid --interval {interval:?}: {e}"), Vec::new())
            })?;
            let namespace = (!all_namespaces).then(|| ns.ns());
            flows::top_svc(&c, namespace, interval, count).await
        }
        Command::Daemon { .. }
        | Command::Shim { .. }
        | Command::TunHolder { .. }
        | Command::Agnhost { .. }
        | Command::Dns(_)
        | Command::Fields
        | Command::Kubeconfig
        | Command::Exec { .. } => Ok(0),
    }
}

/// Read manifests from files, directories (their .yaml/.yml/.json files, sorted) or `-`.
pub fn read_documents(files: &[String]) -> Result<Vec<Document>, String> {
    let mut docs = Vec::new();
    for f in files {
        let mut paths = Vec::new();
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("reading stdin: {e}"))?;
            docs.extend(parse_documents("-", &text).map_err(|e| e.to_string())?);
            continue;
        }
        let p = Path::new(f);
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{f}: {e}"))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yaml") | Some("yml") | Some("json")
                    )
                })
                .collect();
            entries.sort();
            paths.extend(entries);
        } else {
            paths.push(p.to_path_buf());
        }
        for path in paths {
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            docs.extend(
                parse_documents(&path.display().to_string(), &text).map_err(|e| e.to_string())?,
            );
        }
    }
    if docs.is_empty() {
        return Err("no objects passed to apply".into());
    }
    Ok(docs)
}

/// `TYPE NAME…`, `TYPE/NAME…`, or `TYPE` alone (with a selector).
pub fn parse_targets(args: &[String], allow_bare_type: bool) -> Result<Vec<Target>, String> {
    let mut out = Vec::new();
    if args.iter().all(|a| a.contains('/')) {
        for a in args {
            let (r, n) = a.split_once('/').unwrap_or((a, ""));
            check_resource(r)?;
            out.push(Target {
                resource: r.to_string(),
                name: n.to_string(),
            });
        }
        return Ok(out);
    }
    let (first, rest) = args
        .split_first()
        .ok_or("you must specify the type of resource")?;
    for r in first.split(',') {
        check_resource(r)?;
        if rest.is_empty() {
            if !allow_bare_type {
                return Err(format!(
                    "resource(s) were provided, but no name was specified for {r:?}"
                ));
            }
            out.push(Target {
                resource: r.to_string(),
                name: String::new(),
            });
        }
        for n in rest {
            out.push(Target {
                resource: r.to_string(),
                name: n.clone(),
            });
        }
    }
    Ok(out)
}

fn check_resource(r: &str) -> Result<(), String> {
    if r == "all" || Kind::from_resource(r).is_some() {
        Ok(())
    } else {
        Err(format!("the server doesn't have a resource type {r:?}"))
    }
}

fn to_objects(items: Vec<serde_json::Value>) -> Vec<Object> {
    items
        .into_iter()
        .filter_map(|v| {
            let kind =
                Kind::from_manifest(v.get("apiVersion")?.as_str()?, v.get("kind")?.as_str()?)
                    .ok()?;
            Object::from_json(kind, v).ok()
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn get(
    c: &Client,
    args: &[String],
    ns: &NsArgs,
    all_namespaces: bool,
    selector: Option<String>,
    output: Option<&str>,
    show_labels: bool,
    no_headers: bool,
) -> Result<i32, ClientError> {
    let targets = parse_targets(args, true).map_err(|e| ClientError::Api(e, vec![]))?;
    let mut objects: Vec<Object> = Vec::new();
    let mut multi_kind = targets
        .iter()
        .map(|t| t.resource.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len()
        > 1;
    let mut named = false;
    for t in &targets {
        if t.resource == "all" {
            multi_kind = true;
        }
        let q = ListQuery {
            resources: t.resource.clone(),
            namespace: Some(ns.ns()),
            all_namespaces,
            name: Some(t.name.clone()).filter(|n| !n.is_empty()),
            selector: selector.clone(),
        };
        named |= q.name.is_some();
        let list: ObjectList = c.objects(&q).await?;
        objects.extend(to_objects(list.items));
    }
    match output {
        Some("json") | Some("yaml") => {
            let value = if named && objects.len() == 1 {
                objects[0].to_json()
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": objects.iter().map(Object::to_json).collect::<Vec<_>>(),
                    "metadata": {"resourceVersion": ""},
                })
            };
            if output == Some("json") {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!("{}", serde_saphyr::to_string(&value).unwrap_or_default());
            }
        }
        Some("name") => {
            let refs: Vec<&Object> = objects.iter().collect();
            print!("{}", print::names(&refs));
        }
        Some("wide") | None => {
            if objects.is_empty() {
                if all_namespaces {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {} namespace.", ns.ns());
                }
                return Ok(0);
            }
            let opts = print::TableOpts {
                wide: output == Some("wide"),
                all_namespaces,
                show_kind: multi_kind,
                no_headers,
                show_labels,
            };
            let mut ctx = print::RowCtx::default();
            if opts.wide && objects.iter().any(|o| o.kind() == Kind::Node) {
                let q = ListQuery {
                    resources: "pods".into(),
                    all_namespaces: true,
                    ..Default::default()
                };
                let list: ObjectList = c.objects(&q).await?;
                let pods: Vec<crate::model::Pod> = to_objects(list.items)
                    .into_iter()
                    .filter_map(|o| match o {
                        Object::Pod(p) => Some(*p),
                        _ => None,
                    })
                    .collect();
                ctx = print::RowCtx::from_pods(&pods);
            }
            let mut first = true;
            let order: Vec<Kind> = Kind::GET_ALL
                .iter()
                .chain(Kind::ALL.iter())
                .copied()
                .collect();
            let mut seen = std::collections::HashSet::new();
            for kind in order
                .into_iter()
                .filter(|k| seen.insert(*k) && objects.iter().any(|o| o.kind() == *k))
            {
                let group: Vec<&Object> = objects.iter().filter(|o| o.kind() == kind).collect();
                if !first {
                    println!();
                }
                first = false;
                print!(
                    "{}",
                    print::table_ctx(&group, &opts, SystemTime::now(), &ctx)
                );
            }
        }
        Some(o) => {
            return Err(ClientError::Api(
                format!(
                    "unable to match a printer suitable for the output format {o:?}, allowed formats are: json,name,wide,yaml"
                ),
                vec![],
            ));
        }
    }
    Ok(0)
}

async fn describe(c: &Client, args: &[String], ns: &NsArgs) -> Result<i32, ClientError> {
    let targets = parse_targets(args, true).map_err(|e| ClientError::Api(e, vec![]))?;
    for t in targets {
        let q = ListQuery {
            resources: t.resource.clone(),
            namespace: Some(ns.ns()),
            name: Some(t.name.clone()).filter(|n| !n.is_empty()),
            ..Default::default()
        };
        let list: ObjectList = c.objects(&q).await?;
        for obj in to_objects(list.items) {
            let mut related = print::Related::default();
            match &obj {
                Object::Service(_) => {
                    let q = ListQuery {
                        resources: "endpoints".into(),
                        namespace: Some(obj.namespace().to_string()),
                        name: Some(obj.name().to_string()),
                        ..Default::default()
                    };
                    if let Ok(l) = c.objects(&q).await
                        && let Some(Object::Endpoints(e)) = to_objects(l.items).into_iter().next()
                    {
                        related.endpoints = Some(e);
                    }
                    if let Ok(s) = c.get::<StatusReply, _>(STATUS, &()).await {
                        let key = format!("{}/{}", obj.namespace(), obj.name());
                        let counters = s
                            .service_counters
                            .get(&key)
                            .and_then(|v| v.as_object())
                            .map(|m| {
                                m.iter()
                                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                                    .collect()
                            })
                            .unwrap_or_else(|| {
                                ["flows", "packets", "bytes", "rejects", "drops"]
                                    .iter()
                                    .map(|k| (k.to_string(), 0))
                                    .collect()
                            });
                        related.counters = Some(counters);
                    }
                }
                Object::Deployment(_) => {
                    let q = ListQuery {
                        resources: "replicasets".into(),
                        namespace: Some(obj.namespace().to_string()),
                        ..Default::default()
                    };
                    if let Ok(l) = c.objects(&q).await {
                        let uid = obj.meta().uid.clone().unwrap_or_default();
                        related.replicasets = to_objects(l.items)
                            .into_iter()
                            .filter_map(|o| match o {
                                Object::ReplicaSet(r)
                                    if r.metadata
                                        .owner_references
                                        .iter()
                                        .flatten()
                                        .any(|o| o.uid == uid) =>
                                {
                                    Some(*r)
                                }
                                _ => None,
                            })
                            .collect();
                    }
                }
                Object::Node(_) => {
                    related.pods = pods_of_node(c, obj.name()).await;
                }
                _ => {}
            }
            if obj.kind() != Kind::Event {
                related.events = object_events(c, &obj).await;
            }
            println!("{}", print::describe(&obj, &related, SystemTime::now()));
        }
    }
    Ok(0)
}

/// The pods bound to a node (every namespace).
async fn pods_of_node(c: &Client, node: &str) -> Vec<crate::model::Pod> {
    let q = ListQuery {
        resources: "pods".into(),
        all_namespaces: true,
        ..Default::default()
    };
    let Ok(l) = c.objects(&q).await else {
        return Vec::new();
    };
    to_objects(l.items)
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p)
                if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node) =>
            {
                Some(*p)
            }
            _ => None,
        })
        .collect()
}

/// The events about `obj`, as `describe` lists them (kubectl selects them by
/// the object's uid too).
async fn object_events(c: &Client, obj: &Object) -> Vec<String> {
    let ns = match obj.kind() {
        Kind::Namespace | Kind::Node => "default".to_string(),
        _ => obj.namespace().to_string(),
    };
    let q = ListQuery {
        resources: "events".into(),
        namespace: Some(ns),
        ..Default::default()
    };
    let Ok(l) = c.objects(&q).await else {
        return Vec::new();
    };
    let uid = obj.meta().uid.clone();
    let events: Vec<crate::model::Event> = to_objects(l.items)
        .into_iter()
        .filter_map(|o| match o {
            Object::Event(e) if e.involved_object.uid == uid => Some(*e),
            _ => None,
        })
        .collect();
    print::event_lines(&events, SystemTime::now())
}

/// A duration flag as kubectl reads one (Go syntax: `30s`, `1m30s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::duration::parse(s.trim()).map_err(|e| e.to_string())
}

/// `--for=condition=TYPE`: a `status.conditions` entry of that type (case
/// insensitive, as kubectl) whose status is True.
fn condition_met(o: &Object, cond: &str) -> bool {
    let want = cond.to_ascii_lowercase();
    o.to_json()
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|c| {
            c.iter().any(|c| {
                c.get("type")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| t.to_ascii_lowercase() == want)
                    && c.get("status").and_then(|s| s.as_str()) == Some("True")
            })
        })
}

/// The pod `lab logs` reads: `NAME`, `pod/NAME`, or as kubectl does for
/// `deploy/NAME` and `rs/NAME`, one of the workload's pods (a running one
/// if there is one), announced on stderr.
async fn logs_pod(c: &Client, ns: &str, arg: &str) -> Result<String, ClientError> {
    let Some((kind, name)) = arg.split_once('/') else {
        return Ok(arg.to_string());
    };
    let resource = match kind {
        "pod" | "pods" | "po" => return Ok(name.to_string()),
        "deploy" | "deployment" | "deployments" => "deployments",
        "rs" | "replicaset" | "replicasets" => "replicasets",
        "sts" | "statefulset" | "statefulsets" => "statefulsets",
        "job" | "jobs" => "jobs",
        _ => {
            return Err(ClientError::Api(
                format!(
                    "cannot get logs of {kind:?}: use pod/NAME, deploy/NAME, rs/NAME, sts/NAME or job/NAME"
                ),
                vec![],
            ));
        }
    };
    let list: ObjectList = c
        .objects(&ListQuery {
            resources: resource.into(),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            ..Default::default()
        })
        .await?;
    let labels = list
        .items
        .first()
        .and_then(|o| o.pointer("/spec/selector"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .and_then(|sel| print::selector_string(&sel))
        .unwrap_or_default();
    if labels.is_empty() {
        return Err(ClientError::Api(
            format!("{arg} has no spec.selector to find its pods by"),
            vec![],
        ));
    }
    let pods: ObjectList = c
        .objects(&ListQuery {
            resources: "pods".into(),
            namespace: Some(ns.to_string()),
            selector: Some(labels),
            ..Default::default()
        })
        .await?;
    let running = |p: &&serde_json::Value| {
        p.pointer("/status/phase").and_then(|v| v.as_str()) == Some("Running")
            && p.pointer("/metadata/deletionTimestamp").is_none()
    };
    let chosen = pods
        .items
        .iter()
        .find(running)
        .or(pods.items.first())
        .and_then(|p| p.pointer("/metadata/name"))
        .and_then(|v| v.as_str())
        .map(String::from)
        .ok_or_else(|| ClientError::Api(format!("no pods found for {arg}"), vec![]))?;
    if pods.items.len() > 1 {
        eprintln!("Found {} pods, using pod/{chosen}", pods.items.len());
    }
    Ok(chosen)
}

async fn wait(
    c: &Client,
    args: &[String],
    for_: &str,
    selector: Option<String>,
    timeout: &str,
    ns: &NsArgs,
    all_namespaces: bool,
) -> Result<i32, ClientError> {
    let timeout = parse_duration(timeout).map_err(|e| ClientError::Api(e, vec![]))?;
    let delete = for_ == "delete";
    let cond = match for_.strip_prefix("condition=") {
        Some(c) => c.split('=').next().unwrap_or(c).to_string(),
        None if delete => String::new(),
        None => {
            return Err(ClientError::Api(
                format!(
                    "unrecognized condition: {for_:?} (use --for=condition=Ready or --for=delete)"
                ),
                vec![],
            ));
        }
    };
    let targets = if args.is_empty() {
        vec![Target {
            resource: "pods".into(),
            name: String::new(),
        }]
    } else {
        parse_targets(args, selector.is_some()).map_err(|e| ClientError::Api(e, vec![]))?
    };
    let deadline = Instant::now() + timeout;
    let mut done: std::collections::BTreeSet<String> = Default::default();
    loop {
        let mut pending = Vec::new();
        // The oldest version among this round's lists: the store has not
        // changed since unless the watch below returns a newer one.
        let mut seen = u64::MAX;
        for t in &targets {
            let q = ListQuery {
                resources: t.resource.clone(),
                namespace: Some(ns.ns()),
                all_namespaces,
                name: None,
                selector: selector.clone(),
            };
            let list: ObjectList = c.objects(&q).await?;
            seen = seen.min(list.resource_version);
            let objs = to_objects(list.items);
            let matching: Vec<&Object> = objs
                .iter()
                .filter(|o| t.name.is_empty() || o.name() == t.name)
                .collect();
            if delete {
                if !matching.is_empty() {
                    pending.extend(
                        matching
                            .iter()
                            .map(|o| format!("{}/{}", o.kind().qualified(), o.name())),
                    );
                } else if !t.name.is_empty() && done.insert(t.name.clone()) {
                    println!(
                        "{}/{} condition met",
                        Kind::from_resource(&t.resource).map_or("pod", |k| k.qualified()),
                        t.name
                    );
                }
                continue;
            }
            if matching.is_empty() {
                pending.push(if t.name.is_empty() {
                    "no matching resources found".into()
                } else {
                    t.name.clone()
                });
            }
            for o in matching {
                let label = format!("{}/{}", o.kind().qualified(), o.name());
                if condition_met(o, &cond) {
                    if done.insert(label.clone()) {
                        println!("{label} condition met");
                    }
                } else {
                    pending.push(label);
                }
            }
        }
        if pending.is_empty() {
            return Ok(0);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Api(
                format!(
                    "timed out waiting for the condition on {}",
                    pending.join(", ")
                ),
                vec![],
            ));
        }
        // Sleep until the store changes (or the time is up), then look again.
        let kinds: Vec<Kind> = targets
            .iter()
            .filter_map(|t| Kind::from_resource(&t.resource))
            .collect();
        let ns = ns.ns();
        c.wait_change(
            &kinds,
            (!all_namespaces).then_some(ns.as_str()),
            seen,
            left.min(Duration::from_secs(300)),
        )
        .await?;
    }
}

/// `lab status`'s and the DNS pods' path on the API.
pub const STATUS: &str = crate::api::STATUS;
/// `lab apply`'s path: every document at once, all or nothing.
pub const APPLIES: &str = crate::api::APPLIES;

/// `lab delete`: a Kubernetes DELETE per object (`gracePeriodSeconds`,
/// background propagation), the objects named by TYPE NAME, by a selector
/// (listed first) or by manifests. Returns kubectl's lines; with `wait`,
/// returns once the deleted pods are gone (by uid, as kubectl waits: a
/// StatefulSet's pod comes back under the same name at once).
#[allow(clippy::too_many_arguments)]
async fn delete(
    c: &Client,
    ns: &str,
    targets: &[Target],
    documents: &[crate::model::parse::Document],
    selector: Option<&str>,
    grace: Option<i64>,
    ignore_not_found: bool,
    wait: bool,
) -> Result<Vec<String>, ClientError> {
    let api = |e: String| ClientError::Api(e, Vec::new());
    // (kind, namespace, name)
    let mut keys: Vec<(Kind, String, String)> = Vec::new();
    for t in targets {
        let kind = Kind::from_resource(&t.resource).ok_or_else(|| {
            api(format!(
                "the server doesn't have a resource type {:?}",
                t.resource
            ))
        })?;
        if let Some(sel) = selector {
            let list = c
                .objects(&ListQuery {
                    resources: t.resource.clone(),
                    namespace: Some(ns.to_string()),
                    selector: Some(sel.to_string()),
                    ..Default::default()
                })
                .await?;
            for o in to_objects(list.items) {
                keys.push((kind, o.namespace().to_string(), o.name().to_string()));
            }
        } else {
            keys.push((kind, ns.to_string(), t.name.clone()));
        }
    }
    for doc in documents {
        let dec = crate::model::parse::decode(doc).map_err(|e| api(e.to_string()))?;
        let kind = dec.object.kind();
        let ns = match dec.object.meta().namespace.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => ns.to_string(),
        };
        keys.push((kind, ns, dec.object.name().to_string()));
    }
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut pods = Vec::new();
    for (kind, ns, name) in &keys {
        let mut path = crate::api::client::resource_path(*kind, Some(ns), Some(name));
        path.push_str("?propagationPolicy=Background");
        if let Some(g) = grace {
            path.push_str(&format!("&gracePeriodSeconds={g}"));
        }
        let r: Result<serde_json::Value, _> = c
            .send_json(
                hyper::Method::DELETE,
                &path,
                "application/json",
                &serde_json::json!({}),
            )
            .await;
        match r {
            Ok(v) => {
                lines.push(format!("{}/{name} deleted", kind.qualified()));
                // The object while it is still there (a pod in its grace
                // period): wait for that one, by uid.
                if *kind == Kind::Pod && v.get("kind").and_then(|k| k.as_str()) == Some("Pod") {
                    let uid = v
                        .pointer("/metadata/uid")
                        .and_then(|u| u.as_str())
                        .map(String::from);
                    pods.push((ns.clone(), name.clone(), uid));
                }
            }
            Err(ClientError::NotFound(_)) if ignore_not_found => {}
            Err(ClientError::NotFound(_)) => {
                errors.push(format!("{} {name:?} not found", kind.plural()))
            }
            Err(ClientError::Api(e, _)) => errors.push(e),
            Err(e) => return Err(e),
        }
    }
    if wait {
        let deadline = Instant::now() + Duration::from_secs(120);
        for (ns, name, uid) in pods {
            let path = crate::api::client::resource_path(Kind::Pod, Some(&ns), Some(&name));
            while Instant::now() < deadline {
                match c.get_path::<serde_json::Value>(&path).await {
                    Ok(v)
                        if v.pointer("/metadata/uid").and_then(|u| u.as_str())
                            == uid.as_deref() => {}
                    Ok(_) | Err(ClientError::NotFound(_)) => break,
                    Err(e) => return Err(e),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    if !errors.is_empty() {
        let mut all = lines.clone();
        all.extend(
            errors
                .iter()
                .map(|e| format!("Error from server (NotFound): {e}")),
        );
        return Err(ClientError::Api(errors[0].clone(), all));
    }
    Ok(lines)
}

/// `lab scale`: a merge patch of the `scale` subresource's
/// `spec.replicas`, as `kubectl scale` sends it.
async fn scale(c: &Client, ns: &str, t: &Target, replicas: i32) -> Result<String, ClientError> {
    let api = |e: String| ClientError::Api(e, Vec::new());
    let kind = Kind::from_resource(&t.resource).ok_or_else(|| {
        api(format!(
            "the server doesn't have a resource type {:?}",
            t.resource
        ))
    })?;
    if replicas < 0 {
        return Err(api("--replicas must be >= 0".into()));
    }
    let label = format!("{}/{}", kind.qualified(), t.name);
    if !matches!(
        kind,
        Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
    ) {
        return Err(api(format!(
            "{label} cannot be scaled (only deployments, replicasets and statefulsets)"
        )));
    }
    let path = format!(
        "{}/scale",
        crate::api::client::resource_path(kind, Some(ns), Some(&t.name))
    );
    let r: Result<serde_json::Value, _> = c
        .send_json(
            hyper::Method::PATCH,
            &path,
            "application/merge-patch+json",
            &serde_json::json!({"spec": {"replicas": replicas}}),
        )
        .await;
    match r {
        Ok(_) => Ok(format!("{label} scaled")),
        Err(ClientError::NotFound(_)) => {
            Err(api(format!("{} {:?} not found", kind.plural(), t.name)))
        }
        Err(e) => Err(e),
    }
}

async fn status(c: &Client) -> Result<i32, ClientError> {
    let s: StatusReply = c.get(STATUS, &()).await?;
    println!("Cluster:       {}", s.cluster);
    println!(
        "Daemon:        pid {} (since {})",
        s.daemon_pid, s.started_at
    );
    println!("Node netns:    {}", s.node_netns);
    println!("Pod CIDR:      {}", s.pod_cidr);
    println!("Service CIDR:  {}", s.service_cidr);
    println!(
        "DNS address:   {} (kube-system/kube-dns, UDP and TCP 53)",
        s.dns_ip
    );
    println!("Pods:          {} ({} ready)", s.pods, s.pods_ready);
    println!("Services:      {}", s.services);
    println!(
        "Objects:       {} (resourceVersion {})",
        s.objects, s.resource_version
    );
    for (k, v) in &s.dataplane {
        match v {
            serde_json::Value::String(t) => println!("{:<15}{t}", format!("{k}:")),
            serde_json::Value::Object(m) => {
                let parts: Vec<String> = m
                    .iter()
                    .filter(|(_, v)| v.as_u64() != Some(0))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                println!("{:<15}{}", format!("{k}:"), parts.join(" "));
            }
            v => println!("{:<15}{v}", format!("{k}:")),
        }
    }
    Ok(0)
}

/// The three field lists as Markdown (docs/manifest-fields.md).
pub fn fields_markdown() -> String {
    use crate::model::validate::*;
    let mut out = String::from(
        "# Manifest fields\n\nGenerated by `lab fields`. A field in a manifest is **honoured** if it lies in an honoured subtree, **accepted with a warning** if it lies in a warned subtree (it means nothing on one machine), and **rejected** otherwise — a typo or an unsupported field fails the whole `lab apply`, naming file, document and field. `metadata.name`, `namespace`, `labels`, `annotations` and `generateName` are honoured for every kind; server-set metadata (`uid`, `resourceVersion`, `creationTimestamp`, …) and `status` are ignored so that `lab get -o yaml` output can be re-applied.\n\n`[]` means every item of a list.\n",
    );
    let section = |out: &mut String, title: &str, h: &[&str], w: &[&str]| {
        out.push_str(&format!("\n## {title}\n\n### Honoured\n\n"));
        for f in h {
            out.push_str(&format!("- `{f}`\n"));
        }
        out.push_str("\n### Accepted with a warning\n\n");
        if w.is_empty() {
            out.push_str("(none)\n");
        }
        for f in w {
            out.push_str(&format!("- `{f}`\n"));
        }
    };
    section(
        &mut out,
        "Pod `spec` (also Deployment/ReplicaSet/StatefulSet/Job `spec.template.spec`)",
        POD_HONOURED,
        POD_WARNED,
    );
    section(&mut out, "Service `spec`", SERVICE_HONOURED, SERVICE_WARNED);
    section(
        &mut out,
        "Deployment `spec`",
        DEPLOYMENT_HONOURED,
        DEPLOYMENT_WARNED,
    );
    section(
        &mut out,
        "ReplicaSet `spec`",
        REPLICASET_HONOURED,
        REPLICASET_WARNED,
    );
    section(
        &mut out,
        "StatefulSet `spec`",
        STATEFULSET_HONOURED,
        STATEFULSET_WARNED,
    );
    section(&mut out, "Job `spec`", JOB_HONOURED, JOB_WARNED);
    section(
        &mut out,
        "Node `spec` (existing nodes only: nodes are registered by lab, never created or deleted; `podCIDR(s)` cannot change)",
        NODE_HONOURED,
        NODE_WARNED,
    );
    out.push_str("\nA Job's `spec.template.spec.restartPolicy` must be `OnFailure` or `Never`; `completionMode` must be `NonIndexed` and `suspend` false; `selector` is generated (giving one is refused, as without `manualSelector`).\n");
    out.push_str("\n## Secret\n\nHonoured: `data` (base64), `stringData` (merged into `data` on write), `type` (`Opaque`, `kubernetes.io/basic-auth`, `kubernetes.io/tls`, or a custom type, treated as Opaque), `immutable`.\n");
    out.push_str("\n## ConfigMap\n\nHonoured: `data`, `immutable`. (`binaryData` is rejected.)\n\n## Endpoints\n\nHonoured: `subsets` (for Services without a selector).\n\n## Rejected, with a clear message\n\nEverything else the Kubernetes API defines, for example: `hostNetwork`, `initContainers`, `lifecycle`, `startupProbe`, volume types other than `emptyDir`/`configMap`/`secret`/`hostPath`/`persistentVolumeClaim`, StatefulSet `updateStrategy.rollingUpdate.maxUnavailable` and `persistentVolumeClaimRetentionPolicy` `Delete`, a volume claim template with `volumeMode: Block`, Service `type: NodePort`/`LoadBalancer`, SCTP ports, `hostPort`, kinds other than Namespace, Pod, Service, ConfigMap, Secret, Endpoints, Deployment, ReplicaSet, StatefulSet, Job (and Node, for an existing node); Secret types `kubernetes.io/service-account-token`, `dockercfg`, `dockerconfigjson`, `ssh-auth`, bootstrap tokens; an image other than the built-in `registry.k8s.io/e2e-test-images/agnhost` and `lab.dev/dns` without a `command`.\n");
    out.push_str("\n## Checked as the API server checks them\n\nWith the API server's messages (`spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.99\"}: may not change once set`, …):\n\n- Service `externalName`: required for `type: ExternalName`, a lowercase RFC 1123 subdomain (a trailing dot is allowed); an ExternalName Service has no `clusterIP`, `clusterIPs`, `ipFamilies` or `ipFamilyPolicy`.\n- Service `clusterIPs`: its first value must match `clusterIP`, and it must be empty when `clusterIP` is not specified (lab is single-stack IPv4: one address).\n- Service updates: `clusterIP` may not change once set, except when the Service changes to or from `type: ExternalName` (the address is released, or a new one allocated); an update that leaves `clusterIP`/`clusterIPs` out keeps them; ports, selector, `sessionAffinity` and `publishNotReadyAddresses` may change.\n- Pod `dnsConfig`: at most 3 `nameservers` (valid IPs), at most 32 `searches` (RFC 1123 subdomains, 2048 characters in all), every `options[]` named; `dnsPolicy: None` needs `dnsConfig` with a nameserver.\n- Scheduling: `nodeSelector` keys and values are label keys and values; tolerations' `operator` is `Equal` (with a key) or `Exists` (no value), `effect` one of `NoSchedule`, `PreferNoSchedule`, `NoExecute`; node selector requirements use `In`/`NotIn` (with values), `Exists`/`DoesNotExist` (without), `Gt`/`Lt` (one integer); `matchFields` only `metadata.name` with one value; weights 1-100; `topologySpreadConstraints` need `maxSkew` > 0, a `topologyKey`, `whenUnsatisfiable` `DoNotSchedule` or `ScheduleAnyway` (`minDomains` only with `DoNotSchedule`), and no two with the same key and `whenUnsatisfiable`.\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_targets(&["pods".into(), "a".into(), "b".into()], false).unwrap();
        assert_eq!(t.len(), 2);
        let t = parse_targets(&["deploy/web".into(), "svc/x".into()], false).unwrap();
        assert_eq!(
            (t[0].resource.as_str(), t[1].name.as_str()),
            ("deploy", "x")
        );
        assert!(parse_targets(&["pods".into()], false).is_err());
        assert!(parse_targets(&["pods".into()], true).is_ok());
        assert!(parse_targets(&["bogus".into(), "a".into()], false).is_err());
        let t = parse_targets(&["pods,svc".into()], true).unwrap();
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn published_field_lists_are_current() {
        assert_eq!(
            fields_markdown(),
            include_str!("../../docs/manifest-fields.md"),
            "docs/manifest-fields.md is stale: regenerate it with `lab fields > docs/manifest-fields.md`"
        );
    }

    #[test]
    fn clap_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
