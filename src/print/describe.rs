//! `describe`, as kubectl's describers lay it out.

use super::*;

/// kubectl's describe `PrefixWriter` over a tabwriter (min width 0, padding 2):
/// text accumulates until a flush, which aligns it.
#[derive(Default)]
pub(crate) struct Desc {
    pub(crate) pending: String,
    pub(crate) out: String,
}

impl Desc {
    pub(crate) fn w(&mut self, level: usize, s: &str) {
        for _ in 0..level {
            self.pending.push_str("  ");
        }
        self.pending.push_str(s);
    }

    fn flush(&mut self) {
        self.out.push_str(&tabwrite(&self.pending, 0, 2));
        self.pending.clear();
    }

    pub(crate) fn finish(mut self) -> String {
        self.flush();
        self.out
    }
}

macro_rules! w {
    ($d:expr, $level:expr, $($arg:tt)*) => {
        $d.w($level, &format!($($arg)*))
    };
}

/// `kubectl describe` for one object.
pub fn describe(obj: &Object, related: &Related, now: SystemTime) -> String {
    let mut d = Desc::default();
    match obj {
        Object::Pod(p) => describe_pod(&mut d, p, related, now),
        Object::Service(s) => describe_service(&mut d, s, related),
        Object::Deployment(dep) => describe_deployment(&mut d, dep, related),
        Object::ReplicaSet(r) => describe_replicaset(&mut d, r, related),
        Object::StatefulSet(s) => describe_statefulset(&mut d, s, related),
        Object::Endpoints(e) => describe_endpoints(&mut d, e, related),
        Object::EndpointSlice(s) => describe_endpointslice(&mut d, s, related),
        Object::ConfigMap(c) => describe_configmap(&mut d, c, related),
        Object::Namespace(n) => describe_namespace(&mut d, n),
        Object::Event(e) => describe_event(&mut d, e, now),
        Object::Secret(s) => describe_secret(&mut d, s, related),
        Object::Job(j) => describe_job(&mut d, j, related),
        Object::Node(n) => describe_node(&mut d, n, related, now),
    }
    d.finish()
}

pub(crate) fn name_namespace(d: &mut Desc, meta: &ObjectMeta) {
    w!(d, 0, "Name:\t{}\n", opt_str(&meta.name));
    w!(d, 0, "Namespace:\t{}\n", opt_str(&meta.namespace));
}

/// `printLabelsMultilineWithIndent`.
pub(crate) fn labels_multiline(
    d: &mut Desc,
    title: &str,
    labels: Option<&BTreeMap<String, String>>,
) {
    w!(d, 0, "{title}:\t");
    match labels {
        Some(m) if !m.is_empty() => {
            for (i, (k, v)) in m.iter().enumerate() {
                if i != 0 {
                    d.w(0, "\t");
                }
                w!(d, 0, "{k}={v}\n");
            }
        }
        _ => d.w(0, "<none>\n"),
    }
}

/// `printAnnotationsMultiline` (skips kubectl's last-applied-configuration,
/// breaks long or multi-line values).
pub(crate) fn annotations_multiline(
    d: &mut Desc,
    title: &str,
    annotations: Option<&BTreeMap<String, String>>,
) {
    const MAX_LEN: usize = 140;
    w!(d, 0, "{title}:\t");
    let entries: Vec<(&String, &String)> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .collect();
    if entries.is_empty() {
        d.w(0, "<none>\n");
        return;
    }
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i != 0 {
            d.w(0, "\t");
        }
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + key.len() + 2 > MAX_LEN || value.contains('\n') {
            w!(d, 0, "{key}:\n");
            for s in value.split('\n') {
                w!(d, 0, "\t  {}\n", shorten(s, MAX_LEN - 2));
            }
        } else {
            w!(d, 0, "{key}: {value}\n");
        }
    }
}

pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

/// `describe event`: the fields, as kubectl's generic describer lists them.
fn describe_event(d: &mut Desc, e: &Event, now: SystemTime) {
    name_namespace(d, &e.metadata);
    let io = &e.involved_object;
    w!(d, 0, "Type:\t{}\n", opt_str(&e.type_));
    w!(d, 0, "Reason:\t{}\n", opt_str(&e.reason));
    w!(d, 0, "Message:\t{}\n", opt_str(&e.message));
    w!(d, 0, "Involved Object:\n");
    w!(d, 1, "Kind:\t{}\n", opt_str(&io.kind));
    w!(d, 1, "Name:\t{}\n", opt_str(&io.name));
    w!(d, 1, "Namespace:\t{}\n", opt_str(&io.namespace));
    if let Some(f) = &io.field_path {
        w!(d, 1, "Field Path:\t{f}\n");
    }
    w!(d, 0, "Source:\t{}\n", event_source(e));
    w!(d, 0, "Count:\t{}\n", e.count.unwrap_or(1));
    w!(
        d,
        0,
        "First Timestamp:\t{}\n",
        rfc1123z_opt(e.first_timestamp.as_ref())
    );
    w!(
        d,
        0,
        "Last Timestamp:\t{}\n",
        rfc1123z_opt(e.last_timestamp.as_ref())
    );
    w!(d, 0, "Age:\t{}\n", event_interval(e, now));
}

/// kubectl describe's event lines for one object (oldest first):
/// `Type\tReason\tAge\tFrom\tMessage`.
pub fn event_lines(events: &[Event], now: SystemTime) -> Vec<String> {
    let mut evs: Vec<&Event> = events.iter().collect();
    evs.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .or(e.first_timestamp.as_ref())
            .map(|t| t.0.as_second())
    });
    evs.into_iter()
        .map(|e| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                event_interval(e, now),
                event_source(e).split(',').next().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect()
}

pub(crate) fn describe_events(d: &mut Desc, events: &[String]) {
    if events.is_empty() {
        d.w(0, "Events:\t<none>\n");
        return;
    }
    d.flush();
    let tabular = events.iter().all(|e| e.matches('\t').count() == 4);
    if tabular {
        d.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
        d.w(1, "----\t------\t----\t----\t-------\n");
    } else {
        d.w(0, "Events:\n");
    }
    for e in events {
        w!(d, 1, "{}\n", e.trim_end_matches('\n'));
    }
}

pub(crate) fn controlled_by(meta: &ObjectMeta) -> Option<String> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| format!("{}/{}", o.kind, o.name))
}

pub(crate) fn describe_pod(d: &mut Desc, pod: &Pod, related: &Related, now: SystemTime) {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    name_namespace(d, meta);
    // The API server's priority admission sets 0 when nothing else applies.
    w!(
        d,
        0,
        "Priority:\t{}\n",
        spec.and_then(|s| s.priority).unwrap_or(0)
    );
    if let Some(pc) = spec
        .and_then(|s| s.priority_class_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Priority Class Name:\t{pc}\n");
    }
    if let Some(rc) = spec
        .and_then(|s| s.runtime_class_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Runtime Class Name:\t{rc}\n");
    }
    if let Some(sa) = spec
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Service Account:\t{sa}\n");
    }
    match spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        None => d.w(0, "Node:\t<none>\n"),
        Some(node) => {
            let host_ip = status.and_then(|s| s.host_ip.as_deref()).unwrap_or("");
            w!(d, 0, "Node:\t{node}/{host_ip}\n");
        }
    }
    if let Some(t) = status.and_then(|s| s.start_time.as_ref()) {
        w!(d, 0, "Start Time:\t{}\n", rfc1123z(t));
    }
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if let Some(t) = meta
        .deletion_timestamp
        .as_ref()
        .filter(|_| phase != "Failed" && phase != "Succeeded")
    {
        w!(
            d,
            0,
            "Status:\tTerminating (lasts {})\n",
            since(Some(t), now)
        );
        let grace = meta
            .deletion_grace_period_seconds
            .or_else(|| spec.and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        w!(d, 0, "Termination Grace Period:\t{grace}s\n");
    } else {
        w!(d, 0, "Status:\t{phase}\n");
    }
    if let Some(r) = status
        .and_then(|s| s.reason.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Reason:\t{r}\n");
    }
    if let Some(m) = status
        .and_then(|s| s.message.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "Message:\t{m}\n");
    }
    w!(
        d,
        0,
        "IP:\t{}\n",
        status.and_then(|s| s.pod_ip.as_deref()).unwrap_or("")
    );
    let pod_ips: Vec<&str> = match status.and_then(|s| s.pod_ips.as_deref()) {
        Some(ips) if !ips.is_empty() => ips.iter().map(|i| i.ip.as_str()).collect(),
        // Objects that carry only the singular field.
        _ => status
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|s| !s.is_empty())
            .into_iter()
            .collect(),
    };
    if pod_ips.is_empty() {
        d.w(0, "IPs:\t<none>\n");
    } else {
        d.w(0, "IPs:\n");
        for ip in pod_ips {
            w!(d, 1, "IP:\t{ip}\n");
        }
    }
    if let Some(c) = controlled_by(meta) {
        w!(d, 0, "Controlled By:\t{c}\n");
    }
    if let Some(n) = status
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "NominatedNodeName:\t{n}\n");
    }
    let empty_spec = PodSpec::default();
    let spec_ref = spec.unwrap_or(&empty_spec);
    if let Some(init) = spec_ref
        .init_containers
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        let st = status
            .and_then(|s| s.init_container_statuses.as_deref())
            .unwrap_or(&[]);
        describe_containers(d, "Init Containers", init, Some(st), Some(pod), "");
    }
    let st = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    describe_containers(
        d,
        "Containers",
        &spec_ref.containers,
        Some(st),
        Some(pod),
        "",
    );
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    if let Some(gates) = spec_ref
        .readiness_gates
        .as_deref()
        .filter(|g| !g.is_empty())
    {
        d.w(0, "Readiness Gates:\n  Type\tStatus\n");
        for g in gates {
            let status = conditions
                .iter()
                .find(|c| c.type_ == g.condition_type)
                .map_or("<none>", |c| c.status.as_str());
            w!(d, 1, "{} \t{} \n", g.condition_type, status);
        }
    }
    if !conditions.is_empty() {
        d.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conditions {
            w!(d, 1, "{} \t{} \n", c.type_, c.status);
        }
    }
    describe_volumes(d, spec_ref.volumes.as_deref().unwrap_or(&[]), "");
    let qos = status
        .and_then(|s| s.qos_class.clone())
        .unwrap_or_else(|| qos_class(spec_ref));
    w!(d, 0, "QoS Class:\t{qos}\n");
    labels_multiline(d, "Node-Selectors", spec_ref.node_selector.as_ref());
    tolerations_multiline(
        d,
        "Tolerations",
        spec_ref.tolerations.as_deref().unwrap_or(&[]),
    );
    describe_events(d, &related.events);
}

/// kubelet's QoS classification (`qos.GetPodQOS`), from cpu and memory.
pub(crate) fn qos_class(spec: &PodSpec) -> String {
    let all: Vec<&Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .collect();
    let compute = |m: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        m.map(|m| {
            m.iter()
                .filter(|(k, q)| (k.as_str() == "cpu" || k.as_str() == "memory") && !is_zero(&q.0))
                .map(|(k, q)| (k.clone(), q.0.clone()))
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default()
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let r = c.resources.as_ref();
        let requests = compute(r.and_then(|r| r.requests.as_ref()));
        let limits = compute(r.and_then(|r| r.limits.as_ref()));
        if !requests.is_empty() || !limits.is_empty() {
            any = true;
        }
        if limits.len() != 2 || requests.iter().any(|(k, v)| limits.get(k) != Some(v)) {
            guaranteed = false;
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

pub(crate) fn is_zero(q: &str) -> bool {
    q.trim_start_matches(['+', '-'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .all(|c| c == '0' || c == '.')
}

pub(crate) fn tolerations_multiline(d: &mut Desc, title: &str, tolerations: &[Toleration]) {
    w!(d, 0, "{title}:\t");
    if tolerations.is_empty() {
        d.w(0, "<none>\n");
        return;
    }
    let mut sorted: Vec<&Toleration> = tolerations.iter().collect();
    sorted.sort_by(|a, b| opt_str(&a.key).cmp(opt_str(&b.key)));
    for (i, t) in sorted.into_iter().enumerate() {
        if i != 0 {
            d.w(0, "\t");
        }
        let mut s = opt_str(&t.key).to_string();
        let value = opt_str(&t.value);
        if !value.is_empty() {
            s.push('=');
            s.push_str(value);
        }
        let effect = opt_str(&t.effect);
        if !effect.is_empty() {
            s.push(':');
            s.push_str(effect);
        }
        if t.operator.as_deref() == Some("Exists") && value.is_empty() {
            if !opt_str(&t.key).is_empty() || !effect.is_empty() {
                s.push_str(" op=Exists");
            } else {
                s.push_str("op=Exists");
            }
        }
        if let Some(secs) = t.toleration_seconds {
            s.push_str(&format!(" for {secs}s"));
        }
        w!(d, 0, "{s}\n");
    }
}

/// `describeContainers`; `statuses` is `None` for pod templates.
pub(crate) fn describe_containers(
    d: &mut Desc,
    label: &str,
    containers: &[Container],
    statuses: Option<&[ContainerStatus]>,
    pod: Option<&Pod>,
    space: &str,
) {
    let none = if containers.is_empty() { " <none>" } else { "" };
    w!(d, 0, "{space}{label}:{none}\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for c in containers {
        let status = statuses.and_then(|s| s.iter().find(|st| st.name == c.name));
        w!(d, 1, "{name_indent}{}:\n", c.name);
        if let Some(st) = status {
            w!(d, 2, "Container ID:\t{}\n", opt_str(&st.container_id));
        }
        w!(d, 2, "Image:\t{}\n", opt_str(&c.image));
        if let Some(st) = status {
            w!(d, 2, "Image ID:\t{}\n", st.image_id);
        }
        let ports = c.ports.as_deref().unwrap_or(&[]);
        let port_string = ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, protocol(&p.protocol)))
            .collect::<Vec<_>>()
            .join(", ");
        if port_string.contains(',') {
            w!(d, 2, "Ports:\t{port_string}\n");
        } else {
            w!(d, 2, "Port:\t{}\n", or_none(&port_string));
        }
        let host_ports = ports
            .iter()
            .map(|p| format!("{}/{}", p.host_port.unwrap_or(0), protocol(&p.protocol)))
            .collect::<Vec<_>>()
            .join(", ");
        if host_ports.contains(',') {
            w!(d, 2, "Host Ports:\t{host_ports}\n");
        } else {
            w!(d, 2, "Host Port:\t{}\n", or_none(&host_ports));
        }
        for (title, list) in [("Command", &c.command), ("Args", &c.args)] {
            if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
                w!(d, 2, "{title}:\n");
                for item in list {
                    for s in item.split('\n') {
                        w!(d, 3, "{s}\n");
                    }
                }
            }
        }
        if let Some(st) = status {
            describe_state(d, "State", st.state.as_ref());
            if let Some(last) = st.last_state.as_ref().filter(|s| s.terminated.is_some()) {
                describe_state(d, "Last State", Some(last));
            }
            w!(
                d,
                2,
                "Ready:\t{}\n",
                if st.ready { "True" } else { "False" }
            );
            w!(d, 2, "Restart Count:\t{}\n", st.restart_count);
        }
        if let Some(r) = c.resources.as_ref() {
            describe_resources(d, r);
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                w!(d, 2, "{title}:\t{}\n", describe_probe(p));
            }
        }
        if let Some(env_from) = c.env_from.as_deref().filter(|e| !e.is_empty()) {
            d.w(2, "Environment Variables from:\n");
            for e in env_from {
                let (from, name, optional) = if let Some(r) = &e.config_map_ref {
                    ("ConfigMap", r.name.as_str(), r.optional.unwrap_or(false))
                } else if let Some(r) = &e.secret_ref {
                    ("Secret", r.name.as_str(), r.optional.unwrap_or(false))
                } else {
                    ("", "", false)
                };
                match e.prefix.as_deref().filter(|p| !p.is_empty()) {
                    None => w!(d, 3, "{name}\t{from}\tOptional: {optional}\n"),
                    Some(p) => w!(
                        d,
                        3,
                        "{name}\t{from} with prefix '{p}'\tOptional: {optional}\n"
                    ),
                }
            }
        }
        describe_env(d, c, pod);
        let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
        if mounts.is_empty() {
            d.w(2, "Mounts:\t<none>\n");
        } else {
            d.w(2, "Mounts:\n");
            let mut sorted: Vec<_> = mounts.iter().collect();
            sorted.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
            for m in sorted {
                let mut flags = vec![if m.read_only == Some(true) {
                    "ro".to_string()
                } else {
                    "rw".to_string()
                }];
                if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    flags.push(format!("path={sp:?}"));
                }
                w!(
                    d,
                    3,
                    "{} from {} ({})\n",
                    m.mount_path,
                    m.name,
                    flags.join(",")
                );
            }
        }
    }
}

pub(crate) fn describe_state(d: &mut Desc, name: &str, state: Option<&ContainerState>) {
    let state = state.cloned().unwrap_or_default();
    if let Some(r) = &state.running {
        w!(d, 2, "{name}:\tRunning\n");
        w!(d, 3, "Started:\t{}\n", rfc1123z_opt(r.started_at.as_ref()));
    } else if let Some(wt) = &state.waiting {
        w!(d, 2, "{name}:\tWaiting\n");
        if let Some(r) = wt.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Reason:\t{r}\n");
        }
    } else if let Some(t) = &state.terminated {
        w!(d, 2, "{name}:\tTerminated\n");
        if let Some(r) = t.reason.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Reason:\t{r}\n");
        }
        if let Some(m) = t.message.as_deref().filter(|s| !s.is_empty()) {
            w!(d, 3, "Message:\t{m}\n");
        }
        w!(d, 3, "Exit Code:\t{}\n", t.exit_code);
        if let Some(sig) = t.signal.filter(|s| *s > 0) {
            w!(d, 3, "Signal:\t{sig}\n");
        }
        w!(d, 3, "Started:\t{}\n", rfc1123z_opt(t.started_at.as_ref()));
        w!(
            d,
            3,
            "Finished:\t{}\n",
            rfc1123z_opt(t.finished_at.as_ref())
        );
    } else {
        w!(d, 2, "{name}:\tWaiting\n");
    }
}

pub(crate) fn describe_resources(d: &mut Desc, r: &ResourceRequirements) {
    for (title, m) in [("Limits", &r.limits), ("Requests", &r.requests)] {
        if let Some(m) = m.as_ref().filter(|m| !m.is_empty()) {
            w!(d, 2, "{title}:\n");
            for (k, q) in m {
                w!(d, 3, "{k}:\t{}\n", q.0);
            }
        }
    }
}

/// kubectl's `DescribeProbe`, with the API server's defaults for unset fields.
pub(crate) fn describe_probe(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    if let Some(e) = &p.exec {
        return format!(
            "exec [{}] {attrs}",
            e.command.as_deref().unwrap_or(&[]).join(" ")
        );
    }
    if let Some(h) = &p.http_get {
        let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
        let port = int_or_string(&h.port);
        let host = opt_str(&h.host);
        let authority = if port.is_empty() {
            host.to_string()
        } else {
            join_host_port(host, &port)
        };
        let path = opt_str(&h.path);
        let slash = if !path.is_empty() && !path.starts_with('/') && !authority.is_empty() {
            "/"
        } else {
            ""
        };
        return format!("http-get {scheme}://{authority}{slash}{path} {attrs}");
    }
    if let Some(t) = &p.tcp_socket {
        return format!(
            "tcp-socket {}:{} {attrs}",
            opt_str(&t.host),
            int_or_string(&t.port)
        );
    }
    if let Some(g) = &p.grpc {
        return format!("grpc <pod>:{} {} {attrs}", g.port, opt_str(&g.service));
    }
    format!("unknown {attrs}")
}

pub(crate) fn describe_env(d: &mut Desc, c: &Container, pod: Option<&Pod>) {
    let env = c.env.as_deref().unwrap_or(&[]);
    if env.is_empty() {
        d.w(2, "Environment:\t<none>\n");
        return;
    }
    d.w(2, "Environment:\n");
    for e in env {
        let Some(from) = &e.value_from else {
            for (i, s) in opt_str(&e.value).split('\n').enumerate() {
                if i == 0 {
                    w!(d, 3, "{}:\t{s}\n", e.name);
                } else {
                    w!(d, 3, "\t{s}\n");
                }
            }
            continue;
        };
        if let Some(f) = &from.field_ref {
            let value = pod.map(|p| resolve_field(p, e)).unwrap_or_default();
            let api = f.api_version.as_deref().unwrap_or("v1");
            w!(d, 3, "{}:\t{value} ({api}:{})\n", e.name, f.field_path);
        } else if let Some(r) = &from.resource_field_ref {
            let value = resource_field_value(c, &r.resource);
            w!(d, 3, "{}:\t{value} ({})\n", e.name, r.resource);
        } else if let Some(s) = &from.secret_key_ref {
            w!(
                d,
                3,
                "{}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                e.name,
                s.key,
                s.name,
                s.optional.unwrap_or(false)
            );
        } else if let Some(s) = &from.config_map_key_ref {
            w!(
                d,
                3,
                "{}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                e.name,
                s.key,
                s.name,
                s.optional.unwrap_or(false)
            );
        }
    }
}

/// The downward-API value of a `fieldRef` env var, as kubectl resolves it.
pub(crate) fn resolve_field(pod: &Pod, e: &EnvVar) -> String {
    let Some(path) = e
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
    else {
        return String::new();
    };
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let subscript = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = subscript("metadata.labels") {
        return meta
            .labels
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    if let Some(k) = subscript("metadata.annotations") {
        return meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(&k))
            .cloned()
            .unwrap_or_default();
    }
    match path {
        "metadata.name" => opt_str(&meta.name).into(),
        "metadata.namespace" => opt_str(&meta.namespace).into(),
        "metadata.uid" => opt_str(&meta.uid).into(),
        "spec.nodeName" => spec
            .map(|s| opt_str(&s.node_name).to_string())
            .unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .map(|s| opt_str(&s.service_account_name).to_string())
            .unwrap_or_default(),
        "status.hostIP" => status
            .map(|s| opt_str(&s.host_ip).to_string())
            .unwrap_or_default(),
        "status.podIP" => status
            .map(|s| opt_str(&s.pod_ip).to_string())
            .unwrap_or_default(),
        "status.podIPs" => status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| {
                ips.iter()
                    .map(|i| i.ip.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

pub(crate) fn resource_field_value(c: &Container, resource: &str) -> String {
    let r = c.resources.as_ref();
    let lookup =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| { m.and_then(|m| m.get(k)).map(|q| q.0.clone()) };
    let value = match resource.split_once('.') {
        Some(("limits", k)) => lookup(r.and_then(|r| r.limits.as_ref()), k),
        Some(("requests", k)) => lookup(r.and_then(|r| r.requests.as_ref()), k),
        _ => None,
    };
    match value {
        Some(v) => v,
        None if resource == "limits.cpu" || resource == "limits.memory" => {
            "node allocatable".into()
        }
        None => "0".into(),
    }
}

pub(crate) fn describe_volumes(d: &mut Desc, volumes: &[Volume], space: &str) {
    if volumes.is_empty() {
        w!(d, 0, "{space}Volumes:\t<none>\n");
        return;
    }
    w!(d, 0, "{space}Volumes:\n");
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in volumes {
        w!(d, 1, "{name_indent}{}:\n", v.name);
        if let Some(h) = &v.host_path {
            w!(
                d,
                2,
                "Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n",
                h.path,
                h.type_.as_deref().unwrap_or("<none>")
            );
        } else if let Some(e) = &v.empty_dir {
            let size = e
                .size_limit
                .as_ref()
                .map(|q| q.0.clone())
                .filter(|q| !is_zero(q))
                .unwrap_or_else(|| "<unset>".into());
            w!(
                d,
                2,
                "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n",
                opt_str(&e.medium)
            );
        } else if let Some(s) = &v.secret {
            w!(
                d,
                2,
                "Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n",
                opt_str(&s.secret_name),
                s.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.config_map {
            w!(
                d,
                2,
                "Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n",
                c.name,
                c.optional.unwrap_or(false)
            );
        } else if let Some(c) = &v.persistent_volume_claim {
            w!(
                d,
                2,
                "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n",
                c.claim_name,
                c.read_only.unwrap_or(false)
            );
        } else if let Some(da) = &v.downward_api {
            d.w(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n");
            for item in da.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    w!(d, 3, "{} -> {}\n", f.field_path, item.path);
                }
                if let Some(r) = &item.resource_field_ref {
                    w!(d, 3, "{} -> {}\n", r.resource, item.path);
                }
            }
        } else if let Some(p) = &v.projected {
            d.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            for s in p.sources.iter().flatten() {
                if let Some(sec) = &s.secret {
                    w!(
                        d,
                        2,
                        "SecretName:\t{}\n    Optional:\t{}\n",
                        sec.name,
                        sec.optional.unwrap_or(false)
                    );
                } else if s.downward_api.is_some() {
                    d.w(2, "DownwardAPI:\ttrue\n");
                } else if let Some(cm) = &s.config_map {
                    w!(
                        d,
                        2,
                        "ConfigMapName:\t{}\n    Optional:\t{}\n",
                        cm.name,
                        cm.optional.unwrap_or(false)
                    );
                } else if let Some(t) = &s.service_account_token {
                    w!(
                        d,
                        2,
                        "TokenExpirationSeconds:\t{}\n",
                        t.expiration_seconds.unwrap_or(3607)
                    );
                }
            }
        } else {
            d.w(1, "<unknown>\n");
        }
    }
}

/// kubectl's `DescribePodTemplate`.
pub(crate) fn describe_pod_template(d: &mut Desc, template: Option<&PodTemplateSpec>) {
    d.w(0, "Pod Template:\n");
    let Some(t) = template else {
        d.w(1, "<unset>");
        return;
    };
    let meta = t.metadata.clone().unwrap_or_default();
    labels_multiline(d, "  Labels", meta.labels.as_ref());
    if meta.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        annotations_multiline(d, "  Annotations", meta.annotations.as_ref());
    }
    let spec = t.spec.clone().unwrap_or_default();
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 1, "Service Account:\t{sa}\n");
    }
    if let Some(init) = spec.init_containers.as_deref().filter(|c| !c.is_empty()) {
        describe_containers(d, "Init Containers", init, None, None, "  ");
    }
    describe_containers(d, "Containers", &spec.containers, None, None, "  ");
    describe_volumes(d, spec.volumes.as_deref().unwrap_or(&[]), "  ");
    if let Some(pc) = spec
        .priority_class_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 1, "Priority Class Name:\t{pc}\n");
    }
    labels_multiline(d, "  Node-Selectors", spec.node_selector.as_ref());
    tolerations_multiline(
        d,
        "  Tolerations",
        spec.tolerations.as_deref().unwrap_or(&[]),
    );
}

pub(crate) fn describe_service(d: &mut Desc, svc: &Service, related: &Related) {
    let meta = &svc.metadata;
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_type = service_type(svc);
    name_namespace(d, meta);
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "Selector:\t{}\n",
        format_labels(spec.selector.as_ref())
    );
    w!(d, 0, "Type:\t{svc_type}\n");
    // The API server defaults the IP family fields of every non-ExternalName
    // Service; lab is IPv4 single-stack.
    let defaulted = svc_type != "ExternalName";
    match spec.ip_family_policy.as_deref() {
        Some(p) => w!(d, 0, "IP Family Policy:\t{p}\n"),
        None if defaulted => d.w(0, "IP Family Policy:\tSingleStack\n"),
        None => {}
    }
    match spec.ip_families.as_deref() {
        Some(f) if !f.is_empty() => w!(d, 0, "IP Families:\t{}\n", f.join(",")),
        _ if defaulted => d.w(0, "IP Families:\tIPv4\n"),
        _ => d.w(0, "IP Families:\t<none>\n"),
    }
    let ips = cluster_ips(svc);
    let cluster_ip = spec
        .cluster_ip
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| ips.first().cloned())
        .unwrap_or_default();
    w!(d, 0, "IP:\t{cluster_ip}\n");
    if ips.is_empty() {
        d.w(0, "IPs:\t<none>\n");
    } else {
        w!(d, 0, "IPs:\t{}\n", ips.join(","));
    }
    if let Some(e) = spec.external_ips.as_deref().filter(|e| !e.is_empty()) {
        w!(d, 0, "External IPs:\t{}\n", e.join(","));
    }
    if let Some(ip) = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty()) {
        w!(d, 0, "Desired LoadBalancer IP:\t{ip}\n");
    }
    if let Some(n) = spec.external_name.as_deref().filter(|s| !s.is_empty()) {
        w!(d, 0, "External Name:\t{n}\n");
    }
    let empty = Endpoints::default();
    let endpoints = related.endpoints.as_ref().unwrap_or(&empty);
    for p in spec.ports.iter().flatten() {
        let name = opt_str(&p.name);
        let shown = or_unset(name);
        let proto = protocol(&p.protocol);
        w!(d, 0, "Port:\t{shown}\t{}/{proto}\n", p.port);
        let target = p
            .target_port
            .as_ref()
            .map_or_else(|| p.port.to_string(), int_or_string);
        w!(d, 0, "TargetPort:\t{target}/{proto}\n");
        if let Some(ap) = &p.app_protocol {
            w!(d, 0, "AppProtocol:\t{ap}\n");
        }
        if let Some(np) = p.node_port.filter(|n| *n != 0) {
            w!(d, 0, "NodePort:\t{shown}\t{np}/{proto}\n");
        }
        w!(
            d,
            0,
            "Endpoints:\t{}\n",
            format_endpoints(endpoints, Some(name))
        );
    }
    w!(
        d,
        0,
        "Session Affinity:\t{}\n",
        spec.session_affinity.as_deref().unwrap_or("None")
    );
    if let Some(t) = spec
        .external_traffic_policy
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        w!(d, 0, "External Traffic Policy:\t{t}\n");
    }
    match spec.internal_traffic_policy.as_deref() {
        Some(t) => w!(d, 0, "Internal Traffic Policy:\t{t}\n"),
        None if defaulted => d.w(0, "Internal Traffic Policy:\tCluster\n"),
        None => {}
    }
    if let Some(n) = spec.health_check_node_port.filter(|n| *n != 0) {
        w!(d, 0, "HealthCheck NodePort:\t{n}\n");
    }
    if let Some(r) = spec
        .load_balancer_source_ranges
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        w!(d, 0, "LoadBalancer Source Ranges:\t{}\n", r.join(","));
    }
    if let Some(t) = &spec.traffic_distribution {
        w!(d, 0, "Traffic Distribution:\t{t}\n");
    }
    if let Some(counters) = &related.counters {
        if counters.is_empty() {
            d.w(0, "Counters:\t<none>\n");
        } else {
            d.w(0, "Counters:\n");
            for (k, v) in counters {
                w!(d, 1, "{k}:\t{v}\n");
            }
        }
    }
    describe_events(d, &related.events);
}

pub(crate) fn or_unset(s: &str) -> &str {
    if s.is_empty() { "<unset>" } else { s }
}

pub(crate) fn describe_deployment(d: &mut Desc, dep: &Deployment, related: &Related) {
    let meta = &dep.metadata;
    let spec = &dep.spec;
    let status = dep.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    w!(
        d,
        0,
        "CreationTimestamp:\t{}\n",
        rfc1123z_opt(meta.creation_timestamp.as_ref())
    );
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "Selector:\t{}\n",
        selector_string(&spec.selector).unwrap_or_else(|| "<invalid>".into())
    );
    w!(
        d,
        0,
        "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
        spec.replicas.unwrap_or(1),
        status.updated_replicas.unwrap_or(0),
        status.replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
        status.unavailable_replicas.unwrap_or(0)
    );
    let strategy = spec.strategy.clone().unwrap_or_default();
    let strategy_type = strategy.type_.as_deref().unwrap_or("RollingUpdate");
    w!(d, 0, "StrategyType:\t{strategy_type}\n");
    w!(
        d,
        0,
        "MinReadySeconds:\t{}\n",
        spec.min_ready_seconds.unwrap_or(0)
    );
    if strategy_type == "RollingUpdate" {
        // Defaulted by the API server when the manifest leaves it out.
        let ru = strategy.rolling_update.clone().unwrap_or_default();
        let pct = |v: &Option<IntOrString>| v.as_ref().map_or_else(|| "25%".into(), int_or_string);
        w!(
            d,
            0,
            "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
            pct(&ru.max_unavailable),
            pct(&ru.max_surge)
        );
    }
    describe_pod_template(d, Some(&spec.template));
    if let Some(conds) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        d.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        d.w(1, "----\t------\t------\n");
        for c in conds {
            w!(
                d,
                1,
                "{} \t{}\t{}\n",
                opt_str(&c.type_),
                opt_str(&c.status),
                opt_str(&c.reason)
            );
        }
    }
    let (old, new) = split_replicasets(&spec.template, &related.replicasets);
    if !old.is_empty() || !new.is_empty() {
        w!(d, 0, "OldReplicaSets:\t{}\n", replicasets_by_labels(&old));
        w!(d, 0, "NewReplicaSet:\t{}\n", replicasets_by_labels(&new));
    }
    describe_events(d, &related.events);
}

/// The Deployment's new ReplicaSet is the one whose template equals the
/// Deployment's (ignoring `pod-template-hash`); failing that, the one with
/// the highest `deployment.kubernetes.io/revision`. All others are old.
pub(crate) fn split_replicasets<'a>(
    template: &PodTemplateSpec,
    rss: &'a [ReplicaSet],
) -> (Vec<&'a ReplicaSet>, Vec<&'a ReplicaSet>) {
    fn strip(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(m) = t.metadata.as_mut()
            && let Some(l) = m.labels.as_mut()
        {
            l.remove("pod-template-hash");
            if l.is_empty() {
                m.labels = None;
            }
        }
        t
    }
    let want = strip(template);
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse::<i64>().ok())
    };
    let new_index = rss
        .iter()
        .position(|rs| rs.spec.template.as_ref().is_some_and(|t| strip(t) == want))
        .or_else(|| {
            rss.iter()
                .enumerate()
                .filter_map(|(i, rs)| revision(rs).map(|r| (r, i)))
                .max()
                .map(|(_, i)| i)
        });
    let mut old = Vec::new();
    let mut new = Vec::new();
    for (i, rs) in rss.iter().enumerate() {
        if Some(i) == new_index {
            new.push(rs);
        } else {
            old.push(rs);
        }
    }
    (old, new)
}

pub(crate) fn replicasets_by_labels(rss: &[&ReplicaSet]) -> String {
    let list = rss
        .iter()
        .map(|rs| {
            format!(
                "{} ({}/{} replicas created)",
                opt_str(&rs.metadata.name),
                rs.status.as_ref().map_or(0, |s| s.replicas),
                rs.spec.replicas.unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if list.is_empty() {
        "<none>".into()
    } else {
        list
    }
}

/// kubectl's StatefulSet describer (pods counted from the status: ready
/// ones as Running, the rest as Waiting, as for ReplicaSets).
pub(crate) fn describe_statefulset(d: &mut Desc, s: &StatefulSet, related: &Related) {
    let meta = &s.metadata;
    let spec = &s.spec;
    let status = s.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    w!(
        d,
        0,
        "CreationTimestamp:\t{}\n",
        rfc1123z_opt(meta.creation_timestamp.as_ref())
    );
    w!(
        d,
        0,
        "Selector:\t{}\n",
        format_label_selector(&spec.selector)
    );
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "Replicas:\t{} desired | {} total\n",
        spec.replicas.unwrap_or(1),
        status.replicas
    );
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    w!(
        d,
        0,
        "Update Strategy:\t{}\n",
        strategy.type_.as_deref().unwrap_or("RollingUpdate")
    );
    if let Some(p) = strategy.rolling_update.as_ref().and_then(|r| r.partition) {
        w!(d, 1, "Partition:\t{p}\n");
    }
    let ready = status.ready_replicas.unwrap_or(0);
    w!(
        d,
        0,
        "Pods Status:\t{} Running / {} Waiting / 0 Succeeded / 0 Failed\n",
        ready,
        (status.replicas - ready).max(0)
    );
    describe_pod_template(d, Some(&spec.template));
    match spec.volume_claim_templates.as_deref() {
        Some(claims) if !claims.is_empty() => {
            d.w(0, "Volume Claims:\n");
            for c in claims {
                let cs = c.spec.clone().unwrap_or_default();
                w!(d, 1, "Name:\t{}\n", opt_str(&c.metadata.name));
                w!(
                    d,
                    1,
                    "StorageClass:\t{}\n",
                    cs.storage_class_name.as_deref().unwrap_or("")
                );
                for (title, m) in [
                    ("Labels", c.metadata.labels.as_ref()),
                    ("Annotations", c.metadata.annotations.as_ref()),
                ] {
                    w!(d, 1, "{title}:\t");
                    match m {
                        Some(m) if !m.is_empty() => {
                            for (i, (k, v)) in m.iter().enumerate() {
                                if i != 0 {
                                    d.w(1, "\t");
                                }
                                w!(d, 0, "{k}={v}\n");
                            }
                        }
                        _ => d.w(0, "<none>\n"),
                    }
                }
                let capacity = cs
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .map_or_else(|| "<default>".to_string(), |q| q.0.clone());
                w!(d, 1, "Capacity:\t{capacity}\n");
                w!(
                    d,
                    1,
                    "Access Modes:\t[{}]\n",
                    cs.access_modes.unwrap_or_default().join(" ")
                );
            }
        }
        _ => d.w(0, "Volume Claims:\t<none>\n"),
    }
    describe_events(d, &related.events);
}

pub(crate) fn describe_replicaset(d: &mut Desc, rs: &ReplicaSet, related: &Related) {
    let meta = &rs.metadata;
    let spec = &rs.spec;
    let status = rs.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    w!(
        d,
        0,
        "Selector:\t{}\n",
        format_label_selector(&spec.selector)
    );
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    if let Some(c) = controlled_by(meta) {
        w!(d, 0, "Controlled By:\t{c}\n");
    }
    w!(
        d,
        0,
        "Replicas:\t{} current / {} desired\n",
        status.replicas,
        spec.replicas.unwrap_or(1)
    );
    // kubectl counts the pods by phase; from the ReplicaSet alone, ready
    // pods are the running ones and the rest are still waiting.
    let ready = status.ready_replicas.unwrap_or(0);
    w!(
        d,
        0,
        "Pods Status:\t{} Running / {} Waiting / 0 Succeeded / 0 Failed\n",
        ready,
        (status.replicas - ready).max(0)
    );
    describe_pod_template(d, spec.template.as_ref());
    if let Some(conds) = status.conditions.as_deref().filter(|c| !c.is_empty()) {
        d.w(0, "Conditions:\n  Type\tStatus\tReason\n");
        d.w(1, "----\t------\t------\n");
        for c in conds {
            w!(
                d,
                1,
                "{} \t{}\t{}\n",
                opt_str(&c.type_),
                opt_str(&c.status),
                opt_str(&c.reason)
            );
        }
    }
    describe_events(d, &related.events);
}

pub(crate) fn describe_endpoints(d: &mut Desc, ep: &Endpoints, related: &Related) {
    name_namespace(d, &ep.metadata);
    labels_multiline(d, "Labels", ep.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", ep.metadata.annotations.as_ref());
    d.w(0, "Subsets:\n");
    for ss in ep.subsets.iter().flatten() {
        let join = |a: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
            let s = a
                .iter()
                .flatten()
                .map(|a| a.ip.as_str())
                .collect::<Vec<_>>()
                .join(",");
            if s.is_empty() {
                "<none>".to_string()
            } else {
                s
            }
        };
        w!(d, 1, "Addresses:\t{}\n", join(&ss.addresses));
        w!(
            d,
            1,
            "NotReadyAddresses:\t{}\n",
            join(&ss.not_ready_addresses)
        );
        if let Some(ports) = ss.ports.as_deref().filter(|p| !p.is_empty()) {
            d.w(1, "Ports:\n");
            d.w(2, "Name\tPort\tProtocol\n");
            d.w(2, "----\t----\t--------\n");
            for p in ports {
                w!(
                    d,
                    2,
                    "{}\t{}\t{}\n",
                    or_unset(opt_str(&p.name)),
                    p.port,
                    protocol(&p.protocol)
                );
            }
        }
        d.w(0, "\n");
    }
    describe_events(d, &related.events);
}

pub(crate) fn describe_endpointslice(d: &mut Desc, s: &EndpointSlice, related: &Related) {
    name_namespace(d, &s.metadata);
    labels_multiline(d, "Labels", s.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", s.metadata.annotations.as_ref());
    w!(d, 0, "AddressType:\t{}\n", s.address_type);
    match s.ports.as_deref() {
        None | Some([]) => d.w(0, "Ports: <unset>\n"),
        Some(ports) => {
            d.w(0, "Ports:\n");
            d.w(1, "Name\tPort\tProtocol\n");
            d.w(1, "----\t----\t--------\n");
            for p in ports {
                let port = p
                    .port
                    .map_or_else(|| "<unset>".to_string(), |n| n.to_string());
                w!(
                    d,
                    1,
                    "{}\t{port}\t{}\n",
                    or_unset(opt_str(&p.name)),
                    protocol(&p.protocol)
                );
            }
        }
    }
    match s.endpoints.as_deref() {
        None | Some([]) => d.w(0, "Endpoints: <none>\n"),
        Some(endpoints) => {
            d.w(0, "Endpoints:\n");
            for e in endpoints {
                w!(d, 1, "- Addresses:\t{}\n", or_none(&e.addresses.join(", ")));
                d.w(2, "Conditions:\n");
                let ready = e
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .map_or_else(|| "<unset>".to_string(), |r| r.to_string());
                w!(d, 3, "Ready:\t{ready}\n");
                w!(
                    d,
                    2,
                    "Hostname:\t{}\n",
                    e.hostname.as_deref().unwrap_or("<unset>")
                );
                if let Some(t) = &e.target_ref {
                    w!(
                        d,
                        2,
                        "TargetRef:\t{}/{}\n",
                        opt_str(&t.kind),
                        opt_str(&t.name)
                    );
                }
                w!(
                    d,
                    2,
                    "NodeName:\t{}\n",
                    e.node_name.as_deref().unwrap_or("<unset>")
                );
                w!(d, 2, "Zone:\t{}\n", e.zone.as_deref().unwrap_or("<unset>"));
            }
        }
    }
    describe_events(d, &related.events);
}

pub(crate) fn describe_configmap(d: &mut Desc, cm: &ConfigMap, related: &Related) {
    name_namespace(d, &cm.metadata);
    labels_multiline(d, "Labels", cm.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", cm.metadata.annotations.as_ref());
    d.w(0, "\nData\n====\n");
    for (k, v) in cm.data.iter().flatten() {
        w!(d, 0, "{k}:\n----\n");
        w!(d, 0, "{v}\n");
        d.w(0, "\n");
    }
    d.w(0, "\nBinaryData\n====\n");
    for (k, v) in cm.binary_data.iter().flatten() {
        w!(d, 0, "{k}: {} bytes\n", v.0.len());
    }
    d.w(0, "\n");
    describe_events(d, &related.events);
}

pub(crate) fn describe_namespace(d: &mut Desc, ns: &Namespace) {
    let meta = &ns.metadata;
    w!(d, 0, "Name:\t{}\n", opt_str(&meta.name));
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(d, 0, "Status:\t{}\n", namespace_phase(ns));
    if let Some(conds) = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .filter(|c| !c.is_empty())
    {
        d.w(0, "Conditions:\n");
        d.w(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n");
        d.w(1, "----\t------\t------------------\t------\t-------\n");
        for c in conds {
            w!(
                d,
                1,
                "{}\t{}\t{}\t{}\t{}\n",
                c.type_,
                c.status,
                rfc1123z_opt(c.last_transition_time.as_ref()),
                opt_str(&c.reason),
                opt_str(&c.message)
            );
        }
    }
    // lab has neither ResourceQuotas nor LimitRanges.
    d.w(0, "\nNo resource quota.\n");
    d.w(0, "\nNo LimitRange resource.\n");
}

/// kubectl's Secret describer: sizes only, never a value.
pub(crate) fn describe_secret(d: &mut Desc, s: &Secret, related: &Related) {
    name_namespace(d, &s.metadata);
    labels_multiline(d, "Labels", s.metadata.labels.as_ref());
    annotations_multiline(d, "Annotations", s.metadata.annotations.as_ref());
    w!(d, 0, "\nType:\t{}\n", opt_str(&s.type_));
    d.w(0, "\nData\n====\n");
    for (k, v) in s.data.iter().flatten() {
        w!(d, 0, "{k}:\t{} bytes\n", v.0.len());
    }
    // kubectl prints no events for a Secret.
    let _ = related;
}

/// kubectl's Job describer.
pub(crate) fn describe_job(d: &mut Desc, j: &Job, related: &Related) {
    let meta = &j.metadata;
    let spec = j.spec.clone().unwrap_or_default();
    let status = j.status.clone().unwrap_or_default();
    name_namespace(d, meta);
    let selector = spec
        .selector
        .as_ref()
        .map(format_label_selector)
        .unwrap_or_default();
    w!(d, 0, "Selector:\t{selector}\n");
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    if let Some(c) = controlled_by(meta) {
        w!(d, 0, "Controlled By:\t{c}\n");
    }
    if let Some(p) = spec.parallelism {
        w!(d, 0, "Parallelism:\t{p}\n");
    }
    match spec.completions {
        Some(c) => w!(d, 0, "Completions:\t{c}\n"),
        None => d.w(0, "Completions:\t<unset>\n"),
    }
    if let Some(m) = &spec.completion_mode {
        w!(d, 0, "Completion Mode:\t{m}\n");
    }
    if let Some(s) = spec.suspend {
        w!(d, 0, "Suspend:\t{s}\n");
    }
    if let Some(b) = spec.backoff_limit {
        w!(d, 0, "Backoff Limit:\t{b}\n");
    }
    if let Some(t) = spec.ttl_seconds_after_finished {
        w!(d, 0, "TTL Seconds After Finished:\t{t}\n");
    }
    if let Some(t) = &status.start_time {
        w!(d, 0, "Start Time:\t{}\n", rfc1123z(t));
    }
    if let Some(t) = &status.completion_time {
        w!(d, 0, "Completed At:\t{}\n", rfc1123z(t));
    }
    if let (Some(a), Some(b)) = (&status.start_time, &status.completion_time) {
        w!(
            d,
            0,
            "Duration:\t{}\n",
            human_duration_ns(b.0.as_nanosecond() - a.0.as_nanosecond())
        );
    }
    if let Some(a) = spec.active_deadline_seconds {
        w!(d, 0, "Active Deadline Seconds:\t{a}s\n");
    }
    let (active, succeeded, failed) = (
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0),
    );
    match status.ready {
        None => w!(
            d,
            0,
            "Pods Statuses:\t{active} Active / {succeeded} Succeeded / {failed} Failed\n"
        ),
        Some(r) => w!(
            d,
            0,
            "Pods Statuses:\t{active} Active ({r} Ready) / {succeeded} Succeeded / {failed} Failed\n"
        ),
    }
    describe_pod_template(d, Some(&spec.template));
    describe_events(d, &related.events);
}

/// kubectl's node describer (without the Lease and resource sections: lab
/// tracks no requests, limits or leases).
pub(crate) fn describe_node(d: &mut Desc, n: &Node, related: &Related, now: SystemTime) {
    let meta = &n.metadata;
    let spec = n.spec.clone().unwrap_or_default();
    let status = n.status.clone().unwrap_or_default();
    w!(d, 0, "Name:\t{}\n", opt_str(&meta.name));
    w!(d, 0, "Roles:\t{}\n", node_roles(n));
    labels_multiline(d, "Labels", meta.labels.as_ref());
    annotations_multiline(d, "Annotations", meta.annotations.as_ref());
    w!(
        d,
        0,
        "CreationTimestamp:\t{}\n",
        rfc1123z_opt(meta.creation_timestamp.as_ref())
    );
    let taints = spec.taints.clone().unwrap_or_default();
    if taints.is_empty() {
        d.w(0, "Taints:\t<none>\n");
    } else {
        for (i, t) in taints.iter().enumerate() {
            let text = match t.value.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!("{}={v}:{}", t.key, t.effect),
                None => format!("{}:{}", t.key, t.effect),
            };
            if i == 0 {
                w!(d, 0, "Taints:\t{text}\n");
            } else {
                w!(d, 0, "\t{text}\n");
            }
        }
    }
    w!(
        d,
        0,
        "Unschedulable:\t{}\n",
        spec.unschedulable.unwrap_or(false)
    );
    let conds = status.conditions.clone().unwrap_or_default();
    if !conds.is_empty() {
        d.w(0, "Conditions:\n");
        d.w(
            1,
            "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        d.w(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in &conds {
            w!(
                d,
                1,
                "{} \t{} \t{} \t{} \t{} \t{}\n",
                c.type_,
                c.status,
                rfc1123z_opt(c.last_heartbeat_time.as_ref()),
                rfc1123z_opt(c.last_transition_time.as_ref()),
                opt_str(&c.reason),
                opt_str(&c.message)
            );
        }
    }
    let addrs = status.addresses.clone().unwrap_or_default();
    if !addrs.is_empty() {
        d.w(0, "Addresses:\n");
        for a in &addrs {
            w!(d, 1, "{}:\t{}\n", a.type_, a.address);
        }
    }
    for (title, res) in [
        ("Capacity", status.capacity.as_ref()),
        ("Allocatable", status.allocatable.as_ref()),
    ] {
        if let Some(r) = res.filter(|r| !r.is_empty()) {
            w!(d, 0, "{title}:\n");
            for (k, v) in r {
                w!(d, 1, "{k}:\t{}\n", v.0);
            }
        }
    }
    if let Some(i) = &status.node_info {
        d.w(0, "System Info:\n");
        for (k, v) in [
            ("Machine ID", &i.machine_id),
            ("System UUID", &i.system_uuid),
            ("Boot ID", &i.boot_id),
            ("Kernel Version", &i.kernel_version),
            ("OS Image", &i.os_image),
            ("Operating System", &i.operating_system),
            ("Architecture", &i.architecture),
            ("Container Runtime Version", &i.container_runtime_version),
            ("Kubelet Version", &i.kubelet_version),
            ("Kube-Proxy Version", &i.kube_proxy_version),
        ] {
            w!(d, 1, "{k}:\t{v}\n");
        }
    }
    if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        w!(d, 0, "PodCIDR:\t{c}\n");
    }
    if let Some(c) = spec.pod_cidrs.as_ref().filter(|c| !c.is_empty()) {
        w!(d, 0, "PodCIDRs:\t{}\n", c.join(","));
    }
    let mut pods: Vec<&Pod> = related.pods.iter().filter(|p| !pod_terminated(p)).collect();
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    w!(d, 0, "Non-terminated Pods:\t({} in total)\n", pods.len());
    if !pods.is_empty() {
        d.w(1, "Namespace\tName\tAge\n");
        d.w(1, "---------\t----\t---\n");
        for p in pods {
            w!(
                d,
                1,
                "{}\t{}\t{}\n",
                opt_str(&p.metadata.namespace),
                opt_str(&p.metadata.name),
                since(p.metadata.creation_timestamp.as_ref(), now)
            );
        }
    }
    describe_events(d, &related.events);
}
