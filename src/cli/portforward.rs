//! `lab port-forward pod/NAME|svc/NAME|deploy/NAME [LOCAL:]REMOTE…`: a
//! listener on the host's loopback whose connections are made, one by one,
//! inside the pod's network namespace (to `127.0.0.1:REMOTE` there, as the
//! kubelet dials localhost in the sandbox). A Service forwards to one of
//! its ready pods and its `targetPort`, a Deployment to one of its ready
//! pods, as kubectl does; named ports are resolved against the pod's
//! containers. It ends on Ctrl-C, or with an error when the pod goes away
//! (its connections are closed then).

use super::NsArgs;
use crate::api::client::{Client, ClientError};
use crate::api::{ListQuery, ObjectList};
use clap::Args;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct PortForwardArgs {
    /// pod/NAME (or NAME), svc/NAME or deploy/NAME.
    pub target: String,
    /// [LOCAL:]REMOTE… REMOTE is a port number or a container port's name
    /// (for a Service: its port, forwarded to its targetPort); LOCAL 0 or
    /// empty (`:8080`) picks a free port.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on, comma-separated (`localhost` is 127.0.0.1
    /// and ::1).
    #[arg(long = "address", default_value = "127.0.0.1", value_delimiter = ',')]
    pub address: Vec<String>,
    #[command(flatten)]
    pub ns: NsArgs,
}

fn api(msg: impl Into<String>) -> ClientError {
    let m = msg.into();
    ClientError::Api(m.clone(), vec![m])
}

/// One `[LOCAL:]REMOTE` as given.
#[derive(Debug, Clone, PartialEq)]
pub struct PortSpec {
    /// `None`: same as the remote port; `Some(0)`: a free one.
    pub local: Option<u16>,
    pub remote: String,
}

pub fn parse_port_spec(s: &str) -> Result<PortSpec, String> {
    let (local, remote) = match s.split_once(':') {
        Some((l, r)) => {
            let l = if l.is_empty() {
                0
            } else {
                l.parse::<u16>()
                    .map_err(|_| format!("invalid local port {l:?} in {s:?}"))?
            };
            (Some(l), r)
        }
        None => (None, s),
    };
    if remote.is_empty() {
        return Err(format!("{s:?}: the remote port is missing"));
    }
    if let Ok(n) = remote.parse::<u32>() {
        if n == 0 || n > 65535 {
            return Err(format!("{s:?}: remote port must be between 1 and 65535"));
        }
    } else if !remote
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "{s:?}: the remote port is neither a number nor a port name"
        ));
    }
    Ok(PortSpec {
        local,
        remote: remote.to_string(),
    })
}

fn is_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn is_running(p: &Value) -> bool {
    p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && p.pointer("/metadata/deletionTimestamp").is_none()
}

/// The pod kubectl would pick among a workload's or Service's pods: a
/// running, ready one first, then any running one.
pub fn pick_pod(pods: &[Value]) -> Option<&Value> {
    pods.iter()
        .find(|p| is_running(p) && is_ready(p))
        .or_else(|| pods.iter().find(|p| is_running(p)))
}

/// A container port of `pod` by name (TCP).
fn container_port(pod: &Value, name: &str) -> Option<u16> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["name"] == name && p["protocol"].as_str().unwrap_or("TCP") == "TCP")
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// (local, remote) for each spec: for a Service, REMOTE is its port and the
/// pod's port is the targetPort (a name resolved in `pod`); otherwise REMOTE
/// is the pod's port (number or container port name).
pub fn resolve_ports(
    specs: &[PortSpec],
    service: Option<&Value>,
    pod: &Value,
) -> Result<Vec<(u16, u16)>, String> {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = Vec::new();
    for s in specs {
        let given: Option<u16> = s.remote.parse().ok();
        let remote = match service {
            Some(svc) => {
                let svc_name = svc
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let ports = svc
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let sp = ports
                    .iter()
                    .find(|p| match given {
                        Some(n) => p["port"].as_u64() == Some(u64::from(n)),
                        None => p["name"] == s.remote.as_str(),
                    })
                    .ok_or_else(|| {
                        format!(
                            "Service {svc_name} does not have a service port {}",
                            s.remote
                        )
                    })?;
                match &sp["targetPort"] {
                    Value::Number(n) => n
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| format!("invalid targetPort {n}"))?,
                    Value::String(name) => match name.parse::<u16>() {
                        Ok(n) => n,
                        Err(_) => container_port(pod, name).ok_or_else(|| {
                            format!("pod {pod_name} has no container port named {name:?} (the targetPort of Service {svc_name})")
                        })?,
                    },
                    _ => sp["port"]
                        .as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or("service port without a number")?,
                }
            }
            None => match given {
                Some(n) => n,
                None => container_port(pod, &s.remote).ok_or_else(|| {
                    format!("pod {pod_name} has no container port named {:?}", s.remote)
                })?,
            },
        };
        let local = match s.local {
            Some(l) => l,
            None => given.unwrap_or(remote),
        };
        out.push((local, remote));
    }
    Ok(out)
}

async fn get_one(c: &Client, resource: &str, ns: &str, name: &str) -> Result<Value, ClientError> {
    let list: ObjectList = c
        .objects(&ListQuery {
            resources: resource.into(),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
            ..Default::default()
        })
        .await?;
    list.items
        .into_iter()
        .next()
        .ok_or_else(|| api(format!("{resource} {name:?} not found")))
}

async fn pods_for(c: &Client, ns: &str, owner: &Value, what: &str) -> Result<Value, ClientError> {
    let selector = owner
        .pointer("/spec/selector")
        .and_then(|s| {
            // A Service's selector is a plain map; a workload's is a
            // LabelSelector.
            let sel = if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                s.clone()
            } else {
                serde_json::json!({ "matchLabels": s })
            };
            serde_json::from_value(sel).ok()
        })
        .and_then(|sel| crate::print::selector_string(&sel))
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(api(format!("{what} has no selector to find its pods by")));
    }
    let pods: ObjectList = c
        .objects(&ListQuery {
            resources: "pods".into(),
            namespace: Some(ns.to_string()),
            selector: Some(selector),
            ..Default::default()
        })
        .await?;
    pick_pod(&pods.items)
        .cloned()
        .ok_or_else(|| api(format!("no running pods found for {what}")))
}

fn listen_addrs(addresses: &[String]) -> Result<Vec<std::net::IpAddr>, ClientError> {
    let mut out = Vec::new();
    for a in addresses {
        match a.as_str() {
            "localhost" => {
                out.push(std::net::Ipv4Addr::LOCALHOST.into());
                out.push(std::net::Ipv6Addr::LOCALHOST.into());
            }
            other => out.push(
                other
                    .parse()
                    .map_err(|_| api(format!("{other:?} is not an IP address or localhost")))?,
            ),
        }
    }
    Ok(out)
}

pub async fn run(c: &Client, a: PortForwardArgs) -> Result<i32, ClientError> {
    let ns = a.ns.ns();
    let specs = a
        .ports
        .iter()
        .map(|p| parse_port_spec(p).map_err(api))
        .collect::<Result<Vec<_>, _>>()?;
    let (kind, name) = a
        .target
        .split_once('/')
        .unwrap_or(("pod", a.target.as_str()));
    let (service, pod) = match kind {
        "pod" | "pods" | "po" => (None, get_one(c, "pods", &ns, name).await?),
        "svc" | "service" | "services" => {
            let svc = get_one(c, "services", &ns, name).await?;
            let pod = pods_for(c, &ns, &svc, &a.target).await?;
            (Some(svc), pod)
        }
        "deploy" | "deployment" | "deployments" | "rs" | "replicaset" | "replicasets" => {
            let res = if kind.starts_with('r') {
                "replicasets"
            } else {
                "deployments"
            };
            let d = get_one(c, res, &ns, name).await?;
            (None, pods_for(c, &ns, &d, &a.target).await?)
        }
        other => {
            return Err(api(format!(
                "cannot port-forward to {other:?}: use pod/NAME, svc/NAME or deploy/NAME"
            )));
        }
    };
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !is_running(&pod) {
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        return Err(api(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let uid = pod.pointer("/metadata/uid").cloned();
    let netns = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::daemon::state::NETNS_ANNOTATION))
        .and_then(Value::as_str)
        .ok_or_else(|| api(format!("pod {pod_name} has no network namespace yet")))?
        .to_string();
    let ports = resolve_ports(&specs, service.as_ref(), &pod).map_err(api)?;
    let thread = Arc::new(
        crate::sys::netns::NetnsThread::spawn_async(&netns)
            .await
            .map_err(|e| {
                api(format!(
                    "entering the network namespace of pod {pod_name}: {e} (run lab as root)"
                ))
            })?,
    );
    let mut listeners = Vec::new();
    for addr in listen_addrs(&a.address)? {
        for (local, remote) in &ports {
            let l = match tokio::net::TcpListener::bind((addr, *local)).await {
                Ok(l) => l,
                Err(e) if addr.is_ipv6() && a.address.iter().any(|x| x == "localhost") => {
                    tracing::debug!(error = %e, "no IPv6 loopback");
                    continue;
                }
                Err(e) => {
                    return Err(api(format!(
                        "unable to listen on {}: {e}",
                        std::net::SocketAddr::new(addr, *local)
                    )));
                }
            };
            let at = l.local_addr().map_err(|e| api(e.to_string()))?;
            println!("Forwarding from {at} -> {remote}");
            listeners.push((l, *remote));
        }
    }
    let mut conns = tokio::task::JoinSet::new();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::channel(16);
    let mut acceptors = tokio::task::JoinSet::new();
    for (l, remote) in listeners {
        let tx = accepted_tx.clone();
        acceptors.spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let local = l.local_addr().map(|a| a.port()).unwrap_or(0);
                if tx.send((s, local, remote)).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(accepted_tx);
    let mut check = tokio::time::interval(Duration::from_millis(500));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(0),
            Some((s, local, remote)) = accepted.recv() => {
                println!("Handling connection for {local}");
                // Bounded: at most 1024 connections at a time.
                if conns.len() >= 1024 {
                    eprintln!("error: too many connections; dropping one for {local}");
                    continue;
                }
                let thread = thread.clone();
                let pod_name = pod_name.clone();
                conns.spawn(async move {
                    if let Err(e) = forward(&thread, s, remote).await {
                        eprintln!(
                            "error: an error occurred forwarding {local} -> {remote}: error forwarding port {remote} to pod {pod_name}: {e}"
                        );
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = check.tick() => {
                let now = get_one(c, "pods", &ns, &pod_name).await.ok();
                let same = now.as_ref().is_some_and(|p| {
                    p.pointer("/metadata/uid").cloned() == uid && is_running(p)
                });
                if !same {
                    conns.abort_all();
                    acceptors.abort_all();
                    return Err(api("lost connection to pod"));
                }
            }
        }
    }
}

async fn forward(
    thread: &crate::sys::netns::NetnsThread,
    mut local: tokio::net::TcpStream,
    port: u16,
) -> Result<(), String> {
    let std_stream = thread
        .run_async(move || {
            std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(10),
            )
            .and_then(|s| s.set_nonblocking(true).map(|_| s))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("failed to connect to localhost:{port} inside the pod: {e}"))?;
    let mut remote = tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())?;
    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn port_specs_parse_as_kubectl_reads_them() {
        assert_eq!(
            parse_port_spec("8080").unwrap(),
            PortSpec {
                local: None,
                remote: "8080".into()
            }
        );
        assert_eq!(parse_port_spec(":80").unwrap().local, Some(0));
        assert_eq!(parse_port_spec("0:http").unwrap().remote, "http");
        assert_eq!(parse_port_spec("9000:80").unwrap().local, Some(9000));
        assert!(parse_port_spec("x:80").is_err());
        assert!(parse_port_spec("70000").is_err());
        assert!(parse_port_spec("8080:").is_err());
    }

    fn pod(name: &str, phase: &str, ready: bool) -> Value {
        json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
            "status": {"phase": phase, "conditions": [
                {"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        })
    }

    #[test]
    fn a_ready_running_pod_is_chosen() {
        let pods = vec![
            pod("a", "Pending", false),
            pod("b", "Running", false),
            pod("c", "Running", true),
        ];
        assert_eq!(pick_pod(&pods).unwrap()["metadata"]["name"], "c");
        assert_eq!(pick_pod(&pods[..2]).unwrap()["metadata"]["name"], "b");
        assert!(pick_pod(&pods[..1]).is_none());
    }

    #[test]
    fn service_ports_map_to_target_ports() {
        let p = pod("b", "Running", true);
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [
            {"name": "web", "port": 80, "targetPort": "http"},
            {"name": "alt", "port": 81, "targetPort": 9090},
            {"name": "same", "port": 82}]}});
        let specs: Vec<PortSpec> = ["80", "0:81", "7000:web", "82"]
            .iter()
            .map(|s| parse_port_spec(s).unwrap())
            .collect();
        assert_eq!(
            resolve_ports(&specs, Some(&svc), &p).unwrap(),
            vec![(80, 8080), (0, 9090), (7000, 8080), (82, 82)]
        );
        let e = resolve_ports(&[parse_port_spec("99").unwrap()], Some(&svc), &p).unwrap_err();
        assert!(e.contains("does not have a service port 99"), "{e}");
        // A pod's named port; UDP ports are not TCP forwarding targets.
        assert_eq!(
            resolve_ports(&[parse_port_spec("http").unwrap()], None, &p).unwrap(),
            vec![(8080, 8080)]
        );
        assert!(resolve_ports(&[parse_port_spec("dns").unwrap()], None, &p).is_err());
    }
}
