//! What the kubelet would prepare for a pod, as pure functions: the
//! container command lines, environment (incl. Service variables),
//! resolv.conf, /etc/hosts, volumes and probes → a [`ShimSpec`].

use crate::cluster::{CLUSTER_DOMAIN, ClusterConfig, Layout};
use crate::daemon::runtime::POD_READABLE;
use crate::model::images::builtin_image;
use crate::model::validate::probe_port;
use crate::model::{Kind, Object, Pod};
use crate::store::{Key, Store};
use crate::wire::shim::{
    self as proto, ContainerSpec, MountSpec, ProbeHandler, RestartPolicy, Security, ShimSpec,
};
use k8s_openapi::api::core::v1::{Container, Probe, Service};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Files the daemon writes for a pod before starting its shim.
#[derive(Debug, Clone, PartialEq)]
pub struct PodFiles {
    pub resolv_conf: String,
    pub hosts: String,
    /// Directories to create (emptyDir, hostPath DirectoryOrCreate).
    pub dirs: Vec<PathBuf>,
    /// Directories only root may enter (the parent of secret volumes).
    pub private_dirs: Vec<PathBuf>,
    /// Files to write (configMap and secret volumes): path, content, mode.
    pub files: Vec<(PathBuf, Vec<u8>, u32)>,
}

/// A Secret volume's file mode when neither `defaultMode` nor the item's
/// `mode` says otherwise (the API server's default, 0644).
pub const SECRET_DEFAULT_MODE: u32 = 0o644;

/// Why a pod cannot be prepared: names the volume, container, env var,
/// ConfigMap or Secret at fault. The pod is marked Failed with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("pod has no spec")]
    NoSpec,
    /// A probe's port that is no port of its container.
    #[error("container {container:?}: probe port: {source}")]
    ProbePort {
        container: String,
        source: crate::model::validate::ValueError,
    },
    #[error("probe without a handler")]
    ProbeHandler { container: String },
    #[error("container {container:?}: {source}")]
    Capabilities {
        container: String,
        source: crate::sys::security::CapabilityError,
    },
    #[error("hostPath {path} does not exist (volume {volume:?})")]
    HostPathMissing { path: String, volume: String },
    #[error("configmap {configmap:?} has no key {key:?}")]
    ConfigMapVolumeKey {
        configmap: String,
        key: String,
        volume: String,
    },
    #[error("configmap {configmap:?} not found (volume {volume:?})")]
    ConfigMapVolume { configmap: String, volume: String },
    #[error("claim name {claim:?} is not valid (volume {volume:?})")]
    ClaimName { claim: String, volume: String },
    #[error("secret {secret:?} has no key {key:?} (volume {volume:?})")]
    SecretVolumeKey {
        secret: String,
        key: String,
        volume: String,
    },
    #[error("secret {secret:?} not found (volume {volume:?})")]
    SecretVolume { secret: String, volume: String },
    #[error("volume {volume:?} has no supported source")]
    NoVolumeSource { volume: String },
    #[error("configmap {configmap:?} not found (envFrom of container {container:?})")]
    ConfigMapEnvFrom {
        configmap: String,
        container: String,
    },
    #[error("secret {secret:?} not found (envFrom of container {container:?})")]
    SecretEnvFrom { secret: String, container: String },
    #[error("configmap {configmap:?} key {key:?} not found (env {env} of container {container:?})")]
    ConfigMapEnvKey {
        configmap: String,
        key: String,
        env: String,
        container: String,
    },
    #[error("secret {secret:?} not found (env {env} of container {container:?})")]
    SecretEnv {
        secret: String,
        env: String,
        container: String,
    },
    #[error(
        "couldn't find key {key} in Secret {namespace}/{secret} (env {env} of container {container:?})"
    )]
    SecretEnvKey {
        namespace: String,
        secret: String,
        key: String,
        env: String,
        container: String,
    },
    #[error("container {container:?} has nothing to run")]
    NothingToRun { container: String },
    #[error("volume {volume:?} not found")]
    MountVolume { volume: String, container: String },
    #[error("subPath {sub_path:?} must not contain '..'")]
    SubPath { sub_path: String, container: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub spec: ShimSpec,
    pub files: PodFiles,
}

/// Expand `$(VAR)` references as the kubelet does (`$$` escapes; unknown
/// references stay as they are).
pub fn expand(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("$$") {
            out.push('$');
            rest = t;
        } else if let Some(t) = tail.strip_prefix("$(")
            && let Some(end) = t.find(')')
        {
            let name = &t[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &t[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Service environment variables for `services` (docker-link style too),
/// as the kubelet sets them for pods created after the Service.
pub fn service_env(services: &[&Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for s in services {
        let Some(spec) = &s.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        else {
            continue;
        };
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        let name = s
            .metadata
            .name
            .as_deref()
            .unwrap_or("")
            .to_ascii_uppercase()
            .replace('-', "_");
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_ascii_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.clone().unwrap_or_else(|| "TCP".into())
        };
        out.push((
            format!("{name}_PORT"),
            format!(
                "{}://{ip}:{}",
                proto(first).to_ascii_lowercase(),
                first.port
            ),
        ));
        for p in &ports {
            let pr = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, pr);
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", pr.to_ascii_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), pr.to_ascii_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

pub fn resolv_conf(pod: &Pod, cfg: &ClusterConfig, host_resolv: &str) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let (mut servers, mut search, mut options): (Vec<String>, Vec<String>, Vec<String>) =
        match policy {
            "Default" => {
                let mut s = (Vec::new(), Vec::new(), Vec::new());
                for line in host_resolv.lines() {
                    let mut w = line.split_whitespace();
                    match w.next() {
                        Some("nameserver") => s.0.extend(w.map(String::from)),
                        Some("search") | Some("domain") => s.1.extend(w.map(String::from)),
                        Some("options") => s.2.extend(w.map(String::from)),
                        _ => {}
                    }
                }
                s
            }
            "None" => (Vec::new(), Vec::new(), Vec::new()),
            _ => (
                vec![cfg.dns_ip().to_string()],
                vec![
                    format!("{ns}.svc.{CLUSTER_DOMAIN}"),
                    format!("svc.{CLUSTER_DOMAIN}"),
                    CLUSTER_DOMAIN.to_string(),
                ],
                vec!["ndots:5".to_string()],
            ),
        };
    if let Some(c) = &spec.dns_config {
        servers.extend(c.nameservers.clone().unwrap_or_default());
        search.extend(c.searches.clone().unwrap_or_default());
        for o in c.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            options.retain(|x| x.split(':').next() != Some(name.as_str()));
            options.push(match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    // As the kubelet composes it: duplicates dropped (first kept), then at
    // most 3 nameservers, 32 search domains of at most 253 characters, and
    // a search line of at most 2048 characters (domains cut from the end).
    let dedup = |v: Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        v.into_iter()
            .filter(|x| seen.insert(x.clone()))
            .collect::<Vec<_>>()
    };
    let servers = dedup(servers);
    let mut search: Vec<String> = dedup(search)
        .into_iter()
        .take(32)
        .filter(|d| d.len() <= 253)
        .collect();
    while search.join(" ").len() > 2048 {
        search.pop();
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers.iter().take(3) {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

pub fn hosts_file(pod: &Pod, ip: Ipv4Addr) -> String {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host = hostname(pod);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    match pod.spec.as_ref().and_then(|s| s.subdomain.clone()) {
        Some(sub) => out.push_str(&format!(
            "{ip}\t{host}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}\t{host}\n"
        )),
        None => out.push_str(&format!("{ip}\t{host}\n")),
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

fn probe(c: &Container, p: &Probe) -> Result<proto::Probe, PrepareError> {
    let port = |port| {
        probe_port(c, port).map_err(|source| PrepareError::ProbePort {
            container: c.name.clone(),
            source,
        })
    };
    let handler = if let Some(h) = &p.http_get {
        ProbeHandler::HttpGet {
            host: h.host.clone(),
            port: port(&h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        }
    } else if let Some(t) = &p.tcp_socket {
        ProbeHandler::TcpSocket {
            host: t.host.clone(),
            port: port(&t.port)?,
        }
    } else if let Some(e) = &p.exec {
        ProbeHandler::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else {
        return Err(PrepareError::ProbeHandler {
            container: c.name.clone(),
        });
    };
    let n = |v: Option<i32>, d: u32| v.map(|v| v.max(0) as u32).filter(|v| *v > 0).unwrap_or(d);
    Ok(proto::Probe {
        handler,
        initial_delay_seconds: p.initial_delay_seconds.unwrap_or(0).max(0) as u32,
        period_seconds: n(p.period_seconds, 10),
        timeout_seconds: n(p.timeout_seconds, 1),
        success_threshold: n(p.success_threshold, 1),
        failure_threshold: n(p.failure_threshold, 3),
    })
}

fn field_ref(pod: &Pod, ip: Ipv4Addr, node: &str, path: &str) -> Option<String> {
    let m = &pod.metadata;
    Some(match path {
        "metadata.name" => m.name.clone()?,
        "metadata.namespace" => m.namespace.clone()?,
        "metadata.uid" => m.uid.clone()?,
        "spec.nodeName" => node.to_string(),
        "spec.serviceAccountName" => pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => ip.to_string(),
        "status.hostIP" | "status.hostIPs" => pod
            .status
            .as_ref()
            .and_then(|s| s.host_ip.clone())
            .unwrap_or_default(),
        p => {
            let (map, key) = if let Some(k) = p.strip_prefix("metadata.labels['") {
                (m.labels.as_ref(), k)
            } else if let Some(k) = p.strip_prefix("metadata.annotations['") {
                (m.annotations.as_ref(), k)
            } else {
                return None;
            };
            map?.get(key.trim_end_matches("']"))?.clone()
        }
    })
}

fn secret_data<'a>(
    store: &'a Store,
    ns: &str,
    name: &str,
) -> Option<std::borrow::Cow<'a, BTreeMap<String, k8s_openapi::ByteString>>> {
    match store.get(&Key::new(Kind::Secret, ns, name)) {
        Some(Object::Secret(s)) => Some(match &s.data {
            Some(d) => std::borrow::Cow::Borrowed(d),
            None => std::borrow::Cow::Owned(BTreeMap::new()),
        }),
        _ => None,
    }
}

fn config_map<'a>(store: &'a Store, ns: &str, name: &str) -> Option<&'a BTreeMap<String, String>> {
    match store.get(&Key::new(Kind::ConfigMap, ns, name)) {
        Some(Object::ConfigMap(c)) => Some(c.data.as_ref()?),
        _ => None,
    }
}

/// A container's privileges from its and its pod's `securityContext`:
/// the default container capability set changed by `capabilities.add/drop`
/// (`privileged`: all); no_new_privs unless `allowPrivilegeEscalation: true`
/// (or privileged, or CAP_SYS_ADMIN added, as Kubernetes implies it); the
/// default seccomp filter unless privileged or `seccompProfile.type:
/// Unconfined`; `readOnlyRootFilesystem`; `runAsNonRoot`.
pub fn security(
    c: &Container,
    psc: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
) -> Result<Security, PrepareError> {
    let sc = c.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let list = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
    let capabilities = if privileged {
        crate::sys::security::ALL_CAPABILITIES
    } else {
        crate::sys::security::capability_set(
            &list(caps.and_then(|c| c.add.as_ref())),
            &list(caps.and_then(|c| c.drop.as_ref())),
        )
        .map_err(|source| PrepareError::Capabilities {
            container: c.name.clone(),
            source,
        })?
    };
    let sys_admin =
        crate::sys::security::capability("SYS_ADMIN").is_some_and(|n| capabilities & (1 << n) != 0);
    let no_new_privs = match sc.and_then(|s| s.allow_privilege_escalation) {
        Some(allow) => !allow,
        None => !(privileged || sys_admin),
    };
    let profile = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(psc.and_then(|s| s.seccomp_profile.as_ref()))
        .map(|p| p.type_.as_str());
    Ok(Security {
        capabilities,
        privileged,
        no_new_privs: no_new_privs && !privileged,
        seccomp: !privileged && profile != Some("Unconfined"),
        read_only_root: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        run_as_non_root: sc
            .and_then(|s| s.run_as_non_root)
            .or(psc.and_then(|s| s.run_as_non_root))
            .unwrap_or(false),
    })
}

/// Everything needed to start `pod` with address `ip`.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    pod: &Pod,
    ip: Ipv4Addr,
    netns: &str,
    store: &Store,
    cfg: &ClusterConfig,
    layout: &Layout,
    lab_exe: &Path,
    host_resolv: &str,
) -> Result<Prepared, PrepareError> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().ok_or(PrepareError::NoSpec)?;
    let node = spec.node_name.clone().unwrap_or_else(|| layout.node_name());
    let state_dir = layout.pod_state_dir(&uid);

    // Service variables: the namespace's Services, plus default/kubernetes.
    let links = spec.enable_service_links.unwrap_or(true);
    let mut services: Vec<&Service> = Vec::new();
    for o in store.list(Kind::Service, None) {
        let Object::Service(s) = o else { continue };
        let sns = s.metadata.namespace.as_deref().unwrap_or("");
        let is_master = sns == "default" && s.metadata.name.as_deref() == Some("kubernetes");
        if (links && sns == ns) || is_master {
            services.push(s);
        }
    }
    let svc_env = service_env(&services);

    let mut files = PodFiles {
        resolv_conf: resolv_conf(pod, cfg, host_resolv),
        hosts: hosts_file(pod, ip),
        dirs: Vec::new(),
        private_dirs: Vec::new(),
        files: Vec::new(),
    };
    let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
    for v in spec.volumes.iter().flatten() {
        let path = if v.empty_dir.is_some() {
            let p = state_dir.join("volumes/empty-dir").join(&v.name);
            files.dirs.push(p.clone());
            p
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            if matches!(h.type_.as_deref(), Some("DirectoryOrCreate")) {
                files.dirs.push(p.clone());
            } else if matches!(h.type_.as_deref(), Some("Directory") | Some("File")) && !p.exists()
            {
                return Err(PrepareError::HostPathMissing {
                    path: h.path.clone(),
                    volume: v.name.clone(),
                });
            }
            p
        } else if let Some(c) = &v.config_map {
            let p = state_dir.join("volumes/configmap").join(&v.name);
            files.dirs.push(p.clone());
            let cm_name = c.name.clone();
            match config_map(store, &ns, &cm_name) {
                Some(data) => match &c.items {
                    Some(items) => {
                        for it in items {
                            let content = data.get(&it.key).ok_or_else(|| {
                                PrepareError::ConfigMapVolumeKey {
                                    configmap: cm_name.clone(),
                                    key: it.key.clone(),
                                    volume: v.name.clone(),
                                }
                            })?;
                            files.files.push((
                                p.join(&it.path),
                                content.clone().into_bytes(),
                                POD_READABLE,
                            ));
                        }
                    }
                    None => {
                        for (k, val) in data {
                            files
                                .files
                                .push((p.join(k), val.clone().into_bytes(), POD_READABLE));
                        }
                    }
                },
                None if c.optional == Some(true) => {}
                None => {
                    return Err(PrepareError::ConfigMapVolume {
                        configmap: cm_name,
                        volume: v.name.clone(),
                    });
                }
            }
            p
        } else if let Some(c) = &v.persistent_volume_claim {
            let n = &c.claim_name;
            if n.is_empty() || n.contains('/') || n.starts_with('.') {
                return Err(PrepareError::ClaimName {
                    claim: n.clone(),
                    volume: v.name.clone(),
                });
            }
            let p = layout.claim_dir(&ns, n);
            files.dirs.push(p.clone());
            p
        } else if let Some(sv) = &v.secret {
            // On tmpfs (/run), as the kubelet keeps secret volumes off the
            // disk, under a directory only root may enter: the files are
            // readable inside the pod (mode 0644 by default) and by no other
            // user of the host.
            let base = layout.pod_run_dir(&uid).join("volumes");
            if !files.private_dirs.contains(&base) {
                files.private_dirs.push(base.clone());
            }
            let p = base.join("secret").join(&v.name);
            files.dirs.push(p.clone());
            let secret_name = sv.secret_name.clone().unwrap_or_default();
            let optional = sv.optional == Some(true);
            let mode = |m: Option<i32>| {
                m.or(sv.default_mode)
                    .map_or(SECRET_DEFAULT_MODE, |m| (m as u32) & 0o777)
            };
            match secret_data(store, &ns, &secret_name) {
                Some(data) => match &sv.items {
                    Some(items) => {
                        for it in items {
                            match data.get(&it.key) {
                                Some(content) => files.files.push((
                                    p.join(&it.path),
                                    content.0.clone(),
                                    mode(it.mode),
                                )),
                                None if optional => {}
                                None => {
                                    return Err(PrepareError::SecretVolumeKey {
                                        secret: secret_name,
                                        key: it.key.clone(),
                                        volume: v.name.clone(),
                                    });
                                }
                            }
                        }
                    }
                    None => {
                        for (k, val) in data.iter() {
                            files.files.push((p.join(k), val.0.clone(), mode(None)));
                        }
                    }
                },
                None if optional => {}
                None => {
                    return Err(PrepareError::SecretVolume {
                        secret: secret_name,
                        volume: v.name.clone(),
                    });
                }
            }
            p
        } else {
            return Err(PrepareError::NoVolumeSource {
                volume: v.name.clone(),
            });
        };
        volumes.insert(v.name.clone(), path);
    }

    let mut containers = Vec::new();
    for c in &spec.containers {
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
            ("HOSTNAME".into(), hostname(pod)),
        ];
        env.extend(svc_env.iter().cloned());
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                match config_map(store, &ns, &r.name) {
                    Some(data) => {
                        for (k, v) in data {
                            env.push((
                                format!("{}{k}", from.prefix.clone().unwrap_or_default()),
                                v.clone(),
                            ));
                        }
                    }
                    None if r.optional == Some(true) => {}
                    None => {
                        return Err(PrepareError::ConfigMapEnvFrom {
                            configmap: r.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            }
            if let Some(r) = &from.secret_ref {
                match secret_data(store, &ns, &r.name) {
                    Some(data) => {
                        for (k, v) in data.iter() {
                            env.push((
                                format!("{}{k}", from.prefix.clone().unwrap_or_default()),
                                String::from_utf8_lossy(&v.0).into_owned(),
                            ));
                        }
                    }
                    None if r.optional == Some(true) => {}
                    None => {
                        return Err(PrepareError::SecretEnvFrom {
                            secret: r.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            }
        }
        let mut vars: BTreeMap<String, String> = env.iter().cloned().collect();
        for e in c.env.iter().flatten() {
            let value = if let Some(v) = &e.value {
                expand(v, &vars)
            } else if let Some(f) = e.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
                field_ref(pod, ip, &node, &f.field_path).unwrap_or_default()
            } else if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.config_map_key_ref.as_ref())
            {
                match config_map(store, &ns, &r.name).and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(PrepareError::ConfigMapEnvKey {
                            configmap: r.name.clone(),
                            key: r.key.clone(),
                            env: e.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            } else if let Some(r) = e
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                let data = secret_data(store, &ns, &r.name);
                match data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None if data.is_none() => {
                        return Err(PrepareError::SecretEnv {
                            secret: r.name.clone(),
                            env: e.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                    None => {
                        return Err(PrepareError::SecretEnvKey {
                            namespace: ns.clone(),
                            secret: r.name.clone(),
                            key: r.key.clone(),
                            env: e.name.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            } else {
                String::new()
            };
            vars.insert(e.name.clone(), value.clone());
            env.retain(|(k, _)| k != &e.name);
            env.push((e.name.clone(), value));
        }
        let command: Vec<String> = c
            .command
            .iter()
            .flatten()
            .map(|s| expand(s, &vars))
            .collect();
        let args: Vec<String> = c.args.iter().flatten().map(|s| expand(s, &vars)).collect();
        let image = c.image.as_deref().unwrap_or("");
        let exe = lab_exe.to_string_lossy().to_string();
        let argv: Vec<String> = if let Some(b) = builtin_image(image) {
            // `command: [/agnhost]` (or `/dns`) names the image's entry
            // point; any other command runs as given.
            let sub = b.subcommand();
            let entry = |c: &str| c.strip_prefix('/').unwrap_or(c) == sub;
            match command.first() {
                None => [exe, sub.into()].into_iter().chain(args).collect(),
                Some(c) if entry(c) => [exe, sub.into()]
                    .into_iter()
                    .chain(command[1..].iter().cloned())
                    .chain(args)
                    .collect(),
                Some(_) => command.into_iter().chain(args).collect(),
            }
        } else {
            command.into_iter().chain(args).collect()
        };
        if argv.is_empty() {
            return Err(PrepareError::NothingToRun {
                container: c.name.clone(),
            });
        }
        let mut mounts = Vec::new();
        if builtin_image(image).is_some() {
            // A built-in image runs the lab binary itself, which may live
            // where the pod's view hides the host (a checkout under /tmp):
            // bind it in at its own path, read-only, as an image would carry
            // its entry point.
            mounts.push(MountSpec {
                source: lab_exe.to_path_buf(),
                target: lab_exe.to_path_buf(),
                read_only: true,
            });
        }
        for m in c.volume_mounts.iter().flatten() {
            let base = volumes
                .get(&m.name)
                .ok_or_else(|| PrepareError::MountVolume {
                    volume: m.name.clone(),
                    container: c.name.clone(),
                })?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sp) if sp.split('/').any(|x| x == "..") => {
                    return Err(PrepareError::SubPath {
                        sub_path: sp.to_string(),
                        container: c.name.clone(),
                    });
                }
                Some(sp) => base.join(sp),
                None => base.clone(),
            };
            mounts.push(MountSpec {
                source,
                target: PathBuf::from(&m.mount_path),
                read_only: m.read_only.unwrap_or(false),
            });
        }
        let sc = c.security_context.as_ref();
        let psc = spec.security_context.as_ref();
        let uid_of = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        containers.push(ContainerSpec {
            name: c.name.clone(),
            argv,
            env,
            working_dir: c.working_dir.clone().map(PathBuf::from),
            run_as_user: uid_of(
                sc.and_then(|s| s.run_as_user)
                    .or(psc.and_then(|s| s.run_as_user)),
            ),
            run_as_group: uid_of(
                sc.and_then(|s| s.run_as_group)
                    .or(psc.and_then(|s| s.run_as_group)),
            ),
            mounts,
            security: security(c, psc)?,
            readiness_probe: c
                .readiness_probe
                .as_ref()
                .map(|p| probe(c, p))
                .transpose()?,
            liveness_probe: c.liveness_probe.as_ref().map(|p| probe(c, p)).transpose()?,
        });
    }

    let restart_policy = match spec.restart_policy.as_deref() {
        Some("Never") => RestartPolicy::Never,
        Some("OnFailure") => RestartPolicy::OnFailure,
        _ => RestartPolicy::Always,
    };
    let run_dir = layout.pod_run_dir(&uid);
    Ok(Prepared {
        spec: ShimSpec {
            cluster: cfg.name.clone(),
            namespace: ns.clone(),
            pod_name: name.clone(),
            pod_uid: uid.clone(),
            hostname: hostname(pod),
            netns_path: PathBuf::from("/run/netns").join(netns),
            pod_ip: ip,
            run_dir,
            log_dir: layout.pod_log_dir(&ns, &name, &uid),
            resolv_conf: state_dir.join("resolv.conf"),
            hosts: state_dir.join("hosts"),
            hide_paths: [&layout.run_dir, &layout.state_dir, &layout.log_dir]
                .into_iter()
                .map(|d| d.parent().unwrap_or(d).to_path_buf())
                .chain(["/run/netns", "/etc/netns"].map(PathBuf::from))
                .collect(),
            // The agnhost image has its binary at /agnhost; so do pods
            // running it here (`sh -c "/agnhost connect …"`).
            root_files: if spec.containers.iter().any(|c| {
                builtin_image(c.image.as_deref().unwrap_or(""))
                    .is_some_and(|b| b.subcommand() == "agnhost")
            }) {
                vec![("agnhost".into(), lab_exe.to_path_buf())]
            } else {
                Vec::new()
            },
            restart_policy,
            termination_grace_period_seconds: spec
                .termination_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64,
            containers,
            log_rotation: cfg.log_rotation,
        },
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::State;
    use crate::model::parse::parse_documents;

    fn setup(yaml: &str) -> (State, Pod) {
        let cfg = ClusterConfig::new("t", "10.244.0.0/16", "10.96.0.0/12").unwrap();
        let mut st = State::new(cfg, Store::default());
        st.ensure_system_objects();
        let docs = parse_documents("f", yaml).unwrap();
        st.apply(&docs, "default", false).unwrap();
        let pod = st
            .store
            .list(Kind::Pod, None)
            .find_map(|o| match o {
                Object::Pod(p) => Some((**p).clone()),
                _ => None,
            })
            .unwrap();
        (st, pod)
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: backend-service}\nspec:\n  selector: {app: b}\n  ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]\n---\n";
    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: client, labels: {app: c}}\nspec:\n  containers:\n  - name: c\n    image: registry.k8s.io/e2e-test-images/agnhost:2.47\n    args: [netexec, --http-port=$(PORT)]\n    env:\n    - {name: PORT, value: '8080'}\n    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: MSG, value: 'port is $(PORT) and $$(PORT)'}\n";

    fn prep(st: &State, pod: &Pod) -> Prepared {
        let cfg = st.config.clone();
        prepare(
            pod,
            Ipv4Addr::new(10, 244, 0, 9),
            "t-default-client",
            &st.store,
            &cfg,
            &cfg.layout(),
            Path::new("/usr/bin/lab"),
            "nameserver 192.0.2.1\nsearch corp.example\n",
        )
        .unwrap()
    }

    #[test]
    fn agnhost_env_and_expansion() {
        let (st, pod) = setup(&format!("{SVC}{POD}"));
        let p = prep(&st, &pod);
        let c = &p.spec.containers[0];
        assert_eq!(
            c.argv,
            ["/usr/bin/lab", "agnhost", "netexec", "--http-port=8080"]
        );
        let env: BTreeMap<_, _> = c.env.iter().cloned().collect();
        assert_eq!(env["MY_IP"], "10.244.0.9");
        assert_eq!(env["MSG"], "port is 8080 and $(PORT)");
        assert_eq!(env["BACKEND_SERVICE_SERVICE_HOST"], "10.96.0.2");
        assert_eq!(env["BACKEND_SERVICE_SERVICE_PORT"], "80");
        assert_eq!(env["BACKEND_SERVICE_SERVICE_PORT_DNS"], "53");
        assert_eq!(env["BACKEND_SERVICE_PORT"], "tcp://10.96.0.2:80");
        assert_eq!(env["BACKEND_SERVICE_PORT_53_UDP_PROTO"], "udp");
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
        assert_eq!(env["HOSTNAME"], "client");
    }

    #[test]
    fn resolv_conf_duplicates_and_limits_as_kubelet() {
        // ClusterFirst + dnsConfig: the kubelet appends dnsConfig to the
        // cluster's entries, drops duplicates (first kept), keeps 3
        // nameservers and 32 search domains.
        let (st, pod) = setup(&POD.replace(
            "spec:\n",
            "spec:\n  dnsConfig: {nameservers: [10.96.0.10, 1.2.3.4, 1.2.3.4], searches: [svc.cluster.local, x.y, x.y]}\n",
        ));
        let p = prep(&st, &pod);
        assert_eq!(
            p.files.resolv_conf,
            "search default.svc.cluster.local svc.cluster.local cluster.local x.y\nnameserver 10.96.0.10\nnameserver 1.2.3.4\noptions ndots:5\n"
        );
        // dnsPolicy Default: the host's nameserver first, then dnsConfig's;
        // more than 3 distinct ones are cut to 3.
        let (st, pod) = setup(&POD.replace(
            "spec:\n",
            "spec:\n  dnsPolicy: Default\n  dnsConfig: {nameservers: [192.0.2.1, 1.1.1.1, 2.2.2.2]}\n",
        ));
        let mut p = prep(&st, &pod);
        assert_eq!(
            p.files.resolv_conf,
            "search corp.example\nnameserver 192.0.2.1\nnameserver 1.1.1.1\nnameserver 2.2.2.2\n"
        );
        let mut pod = pod;
        pod.spec
            .as_mut()
            .unwrap()
            .dns_config
            .as_mut()
            .unwrap()
            .nameservers = Some(vec!["1.1.1.1".into(), "2.2.2.2".into(), "3.3.3.3".into()]);
        p = prep(&st, &pod);
        assert_eq!(
            p.files.resolv_conf,
            "search corp.example\nnameserver 192.0.2.1\nnameserver 1.1.1.1\nnameserver 2.2.2.2\n"
        );
        let many: Vec<String> = (0..40).map(|i| format!("d{i}.example")).collect();
        let (st, pod) = setup(&POD.replace(
            "spec:\n",
            &format!(
                "spec:\n  dnsPolicy: None\n  dnsConfig: {{nameservers: [1.2.3.4], searches: [{}]}}\n",
                many[..30].join(", ")
            ),
        ));
        let mut pod = pod;
        // 40 domains (past validation's 32, as an old object could hold).
        pod.spec
            .as_mut()
            .unwrap()
            .dns_config
            .as_mut()
            .unwrap()
            .searches = Some(many.clone());
        let p = prep(&st, &pod);
        let line = p.files.resolv_conf.lines().next().unwrap().to_string();
        assert_eq!(line, format!("search {}", many[..32].join(" ")));
    }

    #[test]
    fn resolv_conf_like_kubelet() {
        let (st, pod) = setup(POD);
        let p = prep(&st, &pod);
        assert_eq!(
            p.files.resolv_conf,
            "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert!(
            p.files.hosts.contains("10.244.0.9\tclient\n"),
            "{}",
            p.files.hosts
        );
        let (st, pod) = setup(&POD.replace(
            "spec:\n",
            "spec:\n  dnsPolicy: None\n  dnsConfig: {nameservers: [1.2.3.4], searches: [a.b], options: [{name: ndots, value: '2'}]}\n",
        ));
        let p = prep(&st, &pod);
        assert_eq!(
            p.files.resolv_conf,
            "search a.b\nnameserver 1.2.3.4\noptions ndots:2\n"
        );
        let (st, pod) = setup(&POD.replace("spec:\n", "spec:\n  dnsPolicy: Default\n"));
        assert_eq!(
            prep(&st, &pod).files.resolv_conf,
            "search corp.example\nnameserver 192.0.2.1\n"
        );
    }

    #[test]
    fn volumes_and_host_programs() {
        let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {app.conf: 'x=1', other: 'y'}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostname: web-0\n  subdomain: web\n  volumes:\n  - {name: data, emptyDir: {}}\n  - {name: conf, configMap: {name: cfg, items: [{key: app.conf, path: app.conf}]}}\n  containers:\n  - name: c\n    image: nginx\n    command: [sh, -c]\n    args: ['sleep 1000']\n    securityContext: {runAsUser: 1000}\n    envFrom: [{configMapRef: {name: cfg}, prefix: CFG_}]\n    volumeMounts:\n    - {name: data, mountPath: /data}\n    - {name: conf, mountPath: /etc/app, readOnly: true}\n";
        let (st, pod) = setup(yaml);
        let p = prep(&st, &pod);
        let c = &p.spec.containers[0];
        assert_eq!(c.argv, ["sh", "-c", "sleep 1000"]);
        assert_eq!(c.run_as_user, Some(1000));
        assert!(c.env.contains(&("CFG_other".into(), "y".into())));
        assert_eq!(c.mounts.len(), 2);
        assert!(c.mounts[1].read_only);
        assert_eq!(p.files.files.len(), 1);
        assert_eq!(p.files.files[0].1, b"x=1");
        assert!(
            p.files
                .hosts
                .contains("web-0.web.default.svc.cluster.local\tweb-0"),
            "{}",
            p.files.hosts
        );
        assert_eq!(p.spec.hostname, "web-0");
    }

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {user: app, password: pw}\n---\n";

    fn secret_pod(env: &str, volumes: &str) -> Result<Prepared, PrepareError> {
        let yaml = format!(
            "{SECRET}apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  volumes: {volumes}\n  containers:\n  - name: c\n    image: x\n    command: [sleep, '1']\n{env}"
        );
        let (st, pod) = setup(&yaml);
        let cfg = st.config.clone();
        prepare(
            &pod,
            Ipv4Addr::new(10, 244, 0, 9),
            "t-default-p",
            &st.store,
            &cfg,
            &cfg.layout(),
            Path::new("/usr/bin/lab"),
            "",
        )
    }

    /// Secret env: (env/envFrom, expected variables or the error).
    #[test]
    fn secret_env() {
        type Vars = &'static [(&'static str, &'static str)];
        let cases: &[(&str, Result<Vars, &str>)] = &[
            (
                "    env: [{name: PW, valueFrom: {secretKeyRef: {name: db, key: password}}}]\n",
                Ok(&[("PW", "pw")]),
            ),
            (
                "    envFrom: [{secretRef: {name: db}, prefix: DB_}]\n",
                Ok(&[("DB_password", "pw"), ("DB_user", "app")]),
            ),
            (
                "    env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: nope, optional: true}}}]\n",
                Ok(&[]),
            ),
            (
                "    envFrom: [{secretRef: {name: gone, optional: true}}]\n",
                Ok(&[]),
            ),
            (
                "    env: [{name: X, valueFrom: {secretKeyRef: {name: db, key: nope}}}]\n",
                Err("couldn't find key nope in Secret default/db"),
            ),
            (
                "    env: [{name: X, valueFrom: {secretKeyRef: {name: gone, key: k}}}]\n",
                Err("secret \"gone\" not found"),
            ),
            (
                "    envFrom: [{secretRef: {name: gone}}]\n",
                Err("secret \"gone\" not found"),
            ),
        ];
        for (env, want) in cases {
            let got = secret_pod(env, "[]");
            match want {
                Ok(vars) => {
                    let p = got.unwrap_or_else(|e| panic!("{env}: {e}"));
                    let c = &p.spec.containers[0];
                    let mine: Vec<(&str, &str)> = c
                        .env
                        .iter()
                        .filter(|(k, _)| k == "PW" || k == "X" || k.starts_with("DB_"))
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    assert_eq!(&mine[..], *vars, "{env}");
                }
                Err(msg) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(msg), "{env}: {e}");
                }
            }
        }
    }

    /// Secret volumes: (volumes, files as (path under the volume, content,
    /// mode), or the error).
    #[test]
    fn secret_volumes() {
        type Files = &'static [(&'static str, &'static str, u32)];
        let cases: &[(&str, Result<Files, &str>)] = &[
            (
                "[{name: s, secret: {secretName: db}}]",
                Ok(&[("s/password", "pw", 0o644), ("s/user", "app", 0o644)]),
            ),
            (
                "[{name: s, secret: {secretName: db, defaultMode: 0400}}]",
                Ok(&[("s/password", "pw", 0o400), ("s/user", "app", 0o400)]),
            ),
            (
                "[{name: s, secret: {secretName: db, defaultMode: 0440, items: [{key: password, path: a/pw}, {key: user, path: u, mode: 0600}]}}]",
                Ok(&[("s/a/pw", "pw", 0o440), ("s/u", "app", 0o600)]),
            ),
            (
                "[{name: s, secret: {secretName: gone, optional: true}}]",
                Ok(&[]),
            ),
            (
                "[{name: s, secret: {secretName: db, optional: true, items: [{key: nope, path: x}]}}]",
                Ok(&[]),
            ),
            (
                "[{name: s, secret: {secretName: gone}}]",
                Err("secret \"gone\" not found (volume \"s\")"),
            ),
            (
                "[{name: s, secret: {secretName: db, items: [{key: nope, path: x}]}}]",
                Err("secret \"db\" has no key \"nope\""),
            ),
        ];
        for (vols, want) in cases {
            let got = secret_pod("", vols);
            match want {
                Ok(files) => {
                    let p = got.unwrap_or_else(|e| panic!("{vols}: {e}"));
                    let base = p.spec.run_dir.join("volumes");
                    assert_eq!(p.files.private_dirs, std::slice::from_ref(&base), "{vols}");
                    assert!(p.files.dirs.contains(&base.join("secret/s")), "{vols}");
                    let got: Vec<(String, String, u32)> = p
                        .files
                        .files
                        .iter()
                        .map(|(path, c, m)| {
                            (
                                path.strip_prefix(base.join("secret"))
                                    .unwrap()
                                    .display()
                                    .to_string(),
                                String::from_utf8(c.clone()).unwrap(),
                                *m,
                            )
                        })
                        .collect();
                    let want: Vec<(String, String, u32)> = files
                        .iter()
                        .map(|(p, c, m)| (p.to_string(), c.to_string(), *m))
                        .collect();
                    assert_eq!(got, want, "{vols}");
                }
                Err(msg) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(msg), "{vols}: {e}");
                }
            }
        }
    }

    #[test]
    fn hostname_is_truncated() {
        let long = "a".repeat(70);
        let (_, mut pod) = setup(POD);
        pod.metadata.name = Some(long);
        assert_eq!(hostname(&pod).len(), 63);
    }

    #[test]
    fn security_from_security_context() {
        use crate::sys::security::{ALL_CAPABILITIES, capability, default_capabilities};
        let sec = |sc: &str, psc: &str| {
            let yaml = POD
                .replace("spec:\n", &format!("spec:\n  securityContext: {psc}\n"))
                .replace(
                    "    env:\n",
                    &format!("    securityContext: {sc}\n    env:\n"),
                );
            let (st, pod) = setup(&yaml);
            prep(&st, &pod).spec.containers[0].security.clone()
        };
        let bit = |n: &str| 1u64 << capability(n).unwrap();
        let d = sec("{}", "{}");
        assert_eq!(d.capabilities, default_capabilities());
        assert!(d.no_new_privs && d.seccomp && !d.privileged && !d.read_only_root);
        let p = sec("{privileged: true}", "{}");
        assert_eq!(p.capabilities, ALL_CAPABILITIES);
        assert!(p.privileged && !p.seccomp && !p.no_new_privs);
        let c = sec("{capabilities: {add: [NET_ADMIN], drop: [KILL]}}", "{}");
        assert_eq!(
            c.capabilities,
            (default_capabilities() | bit("NET_ADMIN")) & !bit("KILL")
        );
        assert!(c.no_new_privs);
        // CAP_SYS_ADMIN implies allowPrivilegeEscalation, as in Kubernetes.
        assert!(!sec("{capabilities: {add: [SYS_ADMIN]}}", "{}").no_new_privs);
        assert!(!sec("{allowPrivilegeEscalation: true}", "{}").no_new_privs);
        let u = sec(
            "{readOnlyRootFilesystem: true}",
            "{runAsNonRoot: true, seccompProfile: {type: Unconfined}}",
        );
        assert!(u.read_only_root && u.run_as_non_root && !u.seccomp);
        // The container's seccompProfile wins over the pod's.
        assert!(
            sec(
                "{seccompProfile: {type: RuntimeDefault}}",
                "{seccompProfile: {type: Unconfined}}"
            )
            .seccomp
        );
    }
}
