//! `get` tables (`-o wide`, `-A`, kinds, labels) and `-o name`.

use super::*;

pub(crate) fn headers(kind: Kind, wide: bool) -> Vec<&'static str> {
    let (base, extra): (&[&str], &[&str]) = match kind {
        Kind::Pod => (
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES", "NETNS"],
        ),
        Kind::Service => (
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        Kind::Endpoints => (&["NAME", "ENDPOINTS", "AGE"], &[]),
        Kind::EndpointSlice => (&["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[]),
        Kind::Deployment => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::ReplicaSet => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::StatefulSet => (&["NAME", "READY", "AGE"], &["CONTAINERS", "IMAGES"]),
        Kind::ConfigMap => (&["NAME", "DATA", "AGE"], &[]),
        Kind::Namespace => (&["NAME", "STATUS", "AGE"], &[]),
        // The API server's event columns: no NAME first (it comes last, wide).
        Kind::Event => (
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
        ),
        Kind::Secret => (&["NAME", "TYPE", "DATA", "AGE"], &[]),
        Kind::Job => (
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        // kubectl's columns, then lab's PODCIDR and PODS.
        Kind::Node => (
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &[
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
                "PODCIDR",
                "PODS",
            ],
        ),
    };
    let mut h = base.to_vec();
    if wide {
        h.extend_from_slice(extra);
    }
    h
}

/// The cells after NAME for one object.
pub(crate) fn row_cells(obj: &Object, wide: bool, now: SystemTime, ctx: &RowCtx) -> Vec<String> {
    match obj {
        Object::Node(n) => node_row(n, wide, now, ctx),
        Object::Pod(p) => pod_row(p, wide, now),
        Object::Service(s) => service_row(s, wide, now),
        Object::Endpoints(e) => vec![
            format_endpoints(e, None),
            since(e.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::EndpointSlice(s) => vec![
            s.address_type.clone(),
            format_discovery_ports(s),
            format_discovery_endpoints(s),
            since(s.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Deployment(d) => deployment_row(d, wide, now),
        Object::ReplicaSet(r) => replicaset_row(r, wide, now),
        Object::StatefulSet(s) => statefulset_row(s, wide, now),
        Object::ConfigMap(c) => vec![
            (c.data.as_ref().map_or(0, |d| d.len())
                + c.binary_data.as_ref().map_or(0, |d| d.len()))
            .to_string(),
            since(c.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Namespace(n) => vec![
            namespace_phase(n),
            since(n.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Event(e) => event_row(e, wide, now),
        Object::Secret(s) => vec![
            s.type_.clone().unwrap_or_default(),
            s.data.as_ref().map_or(0, |d| d.len()).to_string(),
            since(s.metadata.creation_timestamp.as_ref(), now),
        ],
        Object::Job(j) => job_row(j, wide, now),
    }
}

/// Whether a kind's rows start with the object's name (all but events).
pub(crate) fn name_first(kind: Kind) -> bool {
    kind != Kind::Event
}

/// `LAST SEEN`, or `LAST (xN over FIRST)` for a repeated event, as kubectl.
pub(crate) fn event_interval(e: &Event, now: SystemTime) -> String {
    let last = since(
        e.last_timestamp.as_ref().or(e.first_timestamp.as_ref()),
        now,
    );
    match e.count {
        Some(n) if n > 1 => format!(
            "{last} (x{n} over {})",
            since(e.first_timestamp.as_ref(), now)
        ),
        _ => last,
    }
}

/// The API server's event source column: `component, host`.
pub(crate) fn event_source(e: &Event) -> String {
    let s = e.source.as_ref();
    let component = s.and_then(|s| s.component.as_deref()).unwrap_or("");
    match s.and_then(|s| s.host.as_deref()).filter(|h| !h.is_empty()) {
        Some(h) => format!("{component}, {h}"),
        None => component.to_string(),
    }
}

pub(crate) fn event_row(e: &Event, wide: bool, now: SystemTime) -> Vec<String> {
    let io = &e.involved_object;
    let mut cells = vec![
        event_interval(e, now),
        e.type_.clone().unwrap_or_default(),
        e.reason.clone().unwrap_or_default(),
        format!(
            "{}/{}",
            io.kind.as_deref().unwrap_or("").to_ascii_lowercase(),
            io.name.as_deref().unwrap_or("")
        ),
        e.message.clone().unwrap_or_default().trim().to_string(),
    ];
    if wide {
        cells.extend([
            io.field_path.clone().unwrap_or_default(),
            event_source(e),
            since(e.first_timestamp.as_ref(), now),
            e.count.unwrap_or(1).to_string(),
            e.metadata.name.clone().unwrap_or_default(),
        ]);
    }
    cells
}

fn job_condition(j: &Job, type_: &str) -> bool {
    j.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// kubectl 1.32's STATUS of a Job.
pub(crate) fn job_status(j: &Job) -> &'static str {
    if job_condition(j, "Complete") {
        "Complete"
    } else if job_condition(j, "Failed") {
        "Failed"
    } else if j.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if job_condition(j, "Suspended") {
        "Suspended"
    } else if job_condition(j, "FailureTarget") {
        "FailureTarget"
    } else if job_condition(j, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

pub(crate) fn job_row(j: &Job, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = j.spec.clone().unwrap_or_default();
    let status = j.status.clone().unwrap_or_default();
    let succeeded = status.succeeded.unwrap_or(0);
    let completions = match spec.completions {
        Some(c) => format!("{succeeded}/{c}"),
        None => match spec.parallelism.unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let ns = |t: &Time| t.0.as_nanosecond();
    let duration = match (&status.start_time, &status.completion_time) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration_ns(system_ns(now) - ns(start)),
        (Some(start), Some(end)) => human_duration_ns(ns(end) - ns(start)),
    };
    let mut cells = vec![
        job_status(j).to_string(),
        completions,
        duration,
        since(j.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(Some(&spec.template)));
        let selector = spec
            .selector
            .as_ref()
            .map(format_label_selector)
            .unwrap_or_else(|| "<none>".into());
        cells.extend([names, images, selector]);
    }
    cells
}

pub(crate) fn pod_row(pod: &Pod, wide: bool, now: SystemTime) -> Vec<String> {
    let s = pod_summary(pod);
    let restarts = match &s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(t), now)),
        _ => s.restarts.to_string(),
    };
    let mut cells = vec![
        format!("{}/{}", s.ready, s.total),
        s.reason,
        restarts,
        since(pod.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let status = pod.status.as_ref();
        let spec = pod.spec.as_ref();
        let ip = status
            .and_then(|st| st.pod_ips.as_ref())
            .and_then(|ips| ips.first())
            .map(|ip| ip.ip.clone())
            .or_else(|| status.and_then(|st| st.pod_ip.clone()))
            .unwrap_or_default();
        let node = spec.and_then(|s| s.node_name.clone()).unwrap_or_default();
        let nominated = status
            .and_then(|s| s.nominated_node_name.clone())
            .unwrap_or_default();
        let gates = spec
            .and_then(|s| s.readiness_gates.as_deref())
            .unwrap_or(&[]);
        let readiness = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
            let true_count = gates
                .iter()
                .filter(|g| {
                    conditions
                        .iter()
                        .find(|c| c.type_ == g.condition_type)
                        .is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{}/{}", true_count, gates.len())
        };
        let netns = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NETNS_ANNOTATION))
            .map(String::as_str)
            .unwrap_or("");
        cells.extend([
            or_none(&ip).to_string(),
            or_none(&node).to_string(),
            or_none(&nominated).to_string(),
            readiness,
            or_none(netns).to_string(),
        ]);
    }
    cells
}

pub(crate) fn service_type(svc: &Service) -> &str {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("ClusterIP")
}

/// `spec.clusterIPs`, falling back to `spec.clusterIP` for objects that only
/// carry the singular field.
pub(crate) fn cluster_ips(svc: &Service) -> Vec<String> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    match spec.cluster_ips.as_ref() {
        Some(ips) if !ips.is_empty() => ips.clone(),
        _ => spec
            .cluster_ip
            .iter()
            .filter(|ip| !ip.is_empty())
            .cloned()
            .collect(),
    }
}

pub(crate) fn service_external_ip(svc: &Service, wide: bool) -> String {
    let spec = svc.spec.as_ref();
    let external_ips = spec.and_then(|s| s.external_ips.as_deref()).unwrap_or(&[]);
    match service_type(svc) {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".into()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<String> = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    i.ip.clone()
                        .filter(|s| !s.is_empty())
                        .or_else(|| i.hostname.clone().filter(|s| !s.is_empty()))
                })
                .collect();
            lb.sort();
            lb.dedup();
            let mut lb_str = lb.join(",");
            // kubectl clips the load-balancer part to 16 bytes unless wide.
            if !wide && lb_str.len() > 16 {
                let mut end = 13;
                while !lb_str.is_char_boundary(end) {
                    end -= 1;
                }
                lb_str.truncate(end);
                lb_str.push_str("...");
            }
            let mut results: Vec<String> = Vec::new();
            if !lb_str.is_empty() {
                results.extend(lb_str.split(',').map(String::from));
            }
            if !external_ips.is_empty() {
                results.extend(external_ips.iter().cloned());
                return results.join(",");
            }
            if lb_str.is_empty() {
                "<pending>".into()
            } else {
                lb_str
            }
        }
        "ExternalName" => spec
            .and_then(|s| s.external_name.clone())
            .unwrap_or_default(),
        _ => "<unknown>".into(),
    }
}

pub(crate) fn service_ports(svc: &Service) -> String {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let s = ports
        .iter()
        .map(|p| match p.node_port {
            Some(np) if np > 0 => format!("{}:{}/{}", p.port, np, protocol(&p.protocol)),
            _ => format!("{}/{}", p.port, protocol(&p.protocol)),
        })
        .collect::<Vec<_>>()
        .join(",");
    if s.is_empty() { "<none>".into() } else { s }
}

pub(crate) fn service_row(svc: &Service, wide: bool, now: SystemTime) -> Vec<String> {
    let ips = cluster_ips(svc);
    let mut cells = vec![
        service_type(svc).to_string(),
        ips.first().cloned().unwrap_or_else(|| "<none>".into()),
        service_external_ip(svc, wide),
        service_ports(svc),
        since(svc.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        cells.push(format_labels(
            svc.spec.as_ref().and_then(|s| s.selector.as_ref()),
        ));
    }
    cells
}

/// kubectl's `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
/// `port` restricts to subset ports of that name (describe's per-port line).
pub(crate) fn format_endpoints(ep: &Endpoints, port: Option<&str>) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or(&[]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for ss in subsets {
        let addresses = ss.addresses.as_deref().unwrap_or(&[]);
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(a.ip.clone());
            }
            continue;
        }
        for p in ports {
            if port.is_none_or(|name| opt_str(&p.name) == name) {
                count += addresses.len();
                for a in addresses {
                    if list.len() == MAX {
                        more = true;
                        break;
                    }
                    list.push(join_host_port(&a.ip, &p.port.to_string()));
                }
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

pub(crate) fn list_with_more(list: Vec<String>, more: bool, count: usize, max: usize) -> String {
    let ret = list.join(",");
    if more {
        return format!("{ret} + {} more...", count - max);
    }
    if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

pub(crate) fn format_discovery_ports(s: &EndpointSlice) -> String {
    const MAX: usize = 3;
    let (mut list, mut more, mut count) = (Vec::new(), false, 0);
    for p in s.ports.iter().flatten() {
        if list.len() < MAX {
            list.push(match (&p.port, &p.name) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "*".into(),
            });
        } else if list.len() == MAX {
            more = true;
        }
        count += 1;
    }
    list_with_more(list, more, count, MAX)
}

pub(crate) fn format_discovery_endpoints(s: &EndpointSlice) -> String {
    const MAX: usize = 3;
    let (mut list, mut more, mut count) = (Vec::new(), false, 0);
    for e in s.endpoints.iter().flatten() {
        for a in &e.addresses {
            if list.len() < MAX {
                list.push(a.clone());
            } else if list.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    list_with_more(list, more, count, MAX)
}

pub(crate) fn deployment_row(d: &Deployment, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = &d.spec;
    let status = d.status.as_ref();
    let desired = spec.replicas.unwrap_or(1);
    let mut cells = vec![
        format!(
            "{}/{}",
            status.and_then(|s| s.ready_replicas).unwrap_or(0),
            desired
        ),
        status
            .and_then(|s| s.updated_replicas)
            .unwrap_or(0)
            .to_string(),
        status
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            .to_string(),
        since(d.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(Some(&spec.template)));
        let selector = selector_string(&spec.selector).unwrap_or_else(|| "<invalid>".into());
        cells.extend([names, images, selector]);
    }
    cells
}

pub(crate) fn replicaset_row(r: &ReplicaSet, wide: bool, now: SystemTime) -> Vec<String> {
    let spec = &r.spec;
    let status = r.status.as_ref();
    let mut cells = vec![
        spec.replicas.unwrap_or(1).to_string(),
        status.map_or(0, |s| s.replicas).to_string(),
        status
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
            .to_string(),
        since(r.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(spec.template.as_ref()));
        let selector = format_label_selector(&spec.selector);
        cells.extend([names, images, selector]);
    }
    cells
}

/// kubectl's StatefulSet columns: READY is `readyReplicas/replicas`.
pub(crate) fn statefulset_row(s: &StatefulSet, wide: bool, now: SystemTime) -> Vec<String> {
    let mut cells = vec![
        format!(
            "{}/{}",
            s.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            s.spec.replicas.unwrap_or(1)
        ),
        since(s.metadata.creation_timestamp.as_ref(), now),
    ];
    if wide {
        let (names, images) = container_cells(pod_template_containers(Some(&s.spec.template)));
        cells.extend([names, images]);
    }
    cells
}

/// kubectl's node STATUS: the Ready condition (`Ready`, `NotReady`,
/// `Unknown` without one), then `SchedulingDisabled` when cordoned.
pub fn node_status(n: &Node) -> String {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let mut status = vec![match ready {
        Some(c) if c.status == "True" => "Ready".to_string(),
        Some(c) => format!("Not{}", c.type_),
        None => "Unknown".to_string(),
    }];
    if n.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    status.join(",")
}

/// kubectl's ROLES: `node-role.kubernetes.io/<role>` labels and
/// `kubernetes.io/role`, sorted, or `<none>`.
pub fn node_roles(n: &Node) -> String {
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in n.metadata.labels.iter().flatten() {
        if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
            if !r.is_empty() {
                roles.push(r.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.push(v.clone());
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_address(n: &Node, type_: &str) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == type_))
        .map_or_else(|| "<none>".to_string(), |a| a.address.clone())
}

pub(crate) fn node_row(n: &Node, wide: bool, now: SystemTime, ctx: &RowCtx) -> Vec<String> {
    let info = n.status.as_ref().and_then(|s| s.node_info.clone());
    let mut cells = vec![
        node_status(n),
        node_roles(n),
        since(n.metadata.creation_timestamp.as_ref(), now),
        info.as_ref()
            .map(|i| i.kubelet_version.clone())
            .unwrap_or_default(),
    ];
    if wide {
        let unknown = |s: Option<String>| {
            s.filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<unknown>".to_string())
        };
        let spec = n.spec.clone().unwrap_or_default();
        let cidrs = spec
            .pod_cidrs
            .filter(|c| !c.is_empty())
            .map(|c| c.join(","))
            .or(spec.pod_cidr)
            .unwrap_or_else(|| "<none>".into());
        let name = n.metadata.name.clone().unwrap_or_default();
        cells.extend([
            node_address(n, "InternalIP"),
            node_address(n, "ExternalIP"),
            unknown(info.as_ref().map(|i| i.os_image.clone())),
            unknown(info.as_ref().map(|i| i.kernel_version.clone())),
            unknown(info.as_ref().map(|i| i.container_runtime_version.clone())),
            cidrs,
            ctx.node_pods.get(&name).copied().unwrap_or(0).to_string(),
        ]);
    }
    cells
}

pub(crate) fn namespace_phase(n: &Namespace) -> String {
    match n.status.as_ref().and_then(|s| s.phase.clone()) {
        Some(p) => p,
        None if n.metadata.deletion_timestamp.is_some() => "Terminating".into(),
        None => "Active".into(),
    }
}

/// `kubectl get` table for objects of one kind (the caller groups by kind
/// and separates groups with a blank line). Every line ends with `\n`; no
/// objects give an empty string.
#[cfg(test)]
pub fn table(objects: &[&Object], opts: &TableOpts, now: SystemTime) -> String {
    table_ctx(objects, opts, now, &RowCtx::default())
}

/// [`table`] with what some rows need besides their objects.
pub fn table_ctx(objects: &[&Object], opts: &TableOpts, now: SystemTime, ctx: &RowCtx) -> String {
    let Some(first) = objects.first() else {
        return String::new();
    };
    let kind = first.kind();
    let mut text = String::new();
    if !opts.no_headers {
        let mut h: Vec<&str> = Vec::new();
        if opts.all_namespaces && kind.namespaced() {
            h.push("NAMESPACE");
        }
        h.extend(headers(kind, opts.wide));
        if opts.show_labels {
            h.push("LABELS");
        }
        text.push_str(&h.join("\t"));
        text.push('\n');
    }
    for obj in objects {
        let mut cells: Vec<String> = Vec::new();
        if opts.all_namespaces && kind.namespaced() {
            cells.push(obj.namespace().to_string());
        }
        if name_first(kind) {
            cells.push(if opts.show_kind {
                format!("{}/{}", obj.kind().qualified(), obj.name())
            } else {
                obj.name().to_string()
            });
        }
        cells.extend(row_cells(obj, opts.wide, now, ctx));
        if opts.show_labels {
            cells.push(format_labels(obj.meta().labels.as_ref()));
        }
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    tabwrite(&text, 6, 3)
}

/// `-o name`: one `resource.group/name` per line (`pod/client`,
/// `deployment.apps/backend`, `service/backend-service`).
pub fn names(objects: &[&Object]) -> String {
    objects
        .iter()
        .map(|o| format!("{}/{}\n", o.kind().qualified(), o.name()))
        .collect()
}
