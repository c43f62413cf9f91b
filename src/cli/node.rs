//! `lab node cordon|uncordon|drain NAME`, as kubectl's commands of the same
//! names: cordon marks a node unschedulable; drain cordons it, then evicts
//! its pods (gracefully) and waits until they are gone, so their
//! controllers recreate them on other nodes through the scheduler.

use super::to_objects;
use crate::api::client::resource_path;
use crate::api::client::{Client, ClientError};
use crate::api::{ListQuery, ObjectList};
use crate::model::Kind;
use crate::model::{Object, Pod};
use clap::{Args, Subcommand};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub cmd: NodeCmd,
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Mark a node unschedulable: new pods go elsewhere; its pods stay.
    Cordon { name: String },
    /// Mark a node schedulable again.
    Uncordon { name: String },
    /// Cordon a node, then evict its pods and wait until they are gone.
    ///
    /// Pods that no controller owns are refused unless --force (nothing
    /// would recreate them); pods with emptyDir volumes unless
    /// --delete-emptydir-data (their data goes with them), as kubectl.
    Drain(DrainArgs),
}

#[derive(Debug, Args)]
pub struct DrainArgs {
    pub name: String,
    /// Also evict pods that no controller owns (they are not recreated).
    #[arg(long)]
    pub force: bool,
    /// Also evict pods with emptyDir volumes (their data is lost).
    #[arg(long = "delete-emptydir-data")]
    pub delete_emptydir_data: bool,
    /// Accepted for kubectl compatibility (lab has no DaemonSets).
    #[arg(long = "ignore-daemonsets")]
    pub ignore_daemonsets: bool,
    /// Seconds each pod gets to stop (default: its terminationGracePeriodSeconds).
    #[arg(long = "grace-period", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Give up after this long (30s, 2m; 0 = wait forever, as kubectl).
    #[arg(long, default_value = "0s")]
    pub timeout: String,
}

async fn cordon(c: &Client, name: &str, unschedulable: bool) -> Result<(), ClientError> {
    // As kubectl: read the node, then patch `spec.unschedulable`.
    let path = resource_path(Kind::Node, None, Some(name));
    let verb = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    let node: serde_json::Value = c.get_path(&path).await.map_err(|e| match e {
        ClientError::NotFound(_) => ClientError::Api(format!("nodes {name:?} not found"), vec![]),
        e => e,
    })?;
    let was = node.pointer("/spec/unschedulable") == Some(&serde_json::json!(true));
    if was == unschedulable {
        println!("node/{name} already {verb}");
        return Ok(());
    }
    let _: serde_json::Value = c
        .send_json(
            hyper::Method::PATCH,
            &path,
            "application/merge-patch+json",
            &serde_json::json!({"spec": {"unschedulable": unschedulable.then_some(true)}}),
        )
        .await?;
    println!("node/{name} {verb}");
    Ok(())
}

fn owned(p: &Pod) -> bool {
    p.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true))
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    )
}

fn has_empty_dir(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()))
}

fn id(p: &Pod) -> String {
    format!(
        "{}/{}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name.as_deref().unwrap_or("")
    )
}

async fn pods_on(c: &Client, node: &str) -> Result<Vec<Pod>, ClientError> {
    let q = ListQuery {
        resources: "pods".into(),
        all_namespaces: true,
        ..Default::default()
    };
    let list: ObjectList = c.objects(&q).await?;
    Ok(to_objects(list.items)
        .into_iter()
        .filter_map(|o| match o {
            Object::Pod(p)
                if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node) =>
            {
                Some(*p)
            }
            _ => None,
        })
        .collect())
}

async fn drain(c: &Client, a: &DrainArgs) -> Result<i32, ClientError> {
    let timeout = crate::duration::parse(&a.timeout)
        .map_err(|e| ClientError::Api(format!("invalid --timeout: {e}"), vec![]))?;
    cordon(c, &a.name, true).await?;
    let pods = pods_on(c, &a.name).await?;
    let mut refused = Vec::new();
    let mut unowned = Vec::new();
    let mut local = Vec::new();
    for p in &pods {
        if finished(p) {
            continue;
        }
        if !owned(p) {
            unowned.push(id(p));
        }
        if has_empty_dir(p) {
            local.push(id(p));
        }
    }
    if !unowned.is_empty() && !a.force {
        refused.push(format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            unowned.join(", ")
        ));
    }
    if !local.is_empty() && !a.delete_emptydir_data {
        refused.push(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
            local.join(", ")
        ));
    }
    if !refused.is_empty() {
        eprintln!(
            "error: unable to drain node {:?} due to error: {}, continuing command...",
            a.name,
            refused.join(", ")
        );
        eprintln!("There are pending nodes to be drained:\n {}", a.name);
        for r in refused {
            eprintln!("{r}");
        }
        return Ok(1);
    }
    if !unowned.is_empty() {
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            unowned.join(", ")
        );
    }
    let grace = (a.grace_period >= 0).then_some(a.grace_period);
    let mut waiting = Vec::new();
    for p in &pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name.clone().unwrap_or_default();
        println!("evicting pod {ns}/{name}");
        // `pods/eviction`, as `kubectl drain` posts it.
        let mut eviction = serde_json::json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns}});
        if let Some(g) = grace {
            eviction["deleteOptions"] = serde_json::json!({ "gracePeriodSeconds": g });
        }
        let r: Result<serde_json::Value, ClientError> = c
            .send_json(
                hyper::Method::POST,
                &format!(
                    "{}/eviction",
                    resource_path(Kind::Pod, Some(&ns), Some(&name))
                ),
                "application/json",
                &eviction,
            )
            .await;
        match r {
            Ok(_) => waiting.push((ns, name, p.metadata.uid.clone())),
            // Gone already: nothing to wait for.
            Err(ClientError::NotFound(_)) => {
                println!("pod/{name} evicted");
            }
            Err(e) => return Err(e),
        }
    }
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    while !waiting.is_empty() {
        let now_on = pods_on(c, &a.name).await?;
        waiting.retain(|(_, name, uid)| {
            let still = now_on
                .iter()
                .any(|p| p.metadata.name.as_ref() == Some(name) && p.metadata.uid == *uid);
            if !still {
                println!("pod/{name} evicted");
            }
            still
        });
        if waiting.is_empty() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let left: Vec<String> = waiting
                .iter()
                .map(|(ns, n, _)| format!("{ns}/{n}"))
                .collect();
            eprintln!(
                "error: unable to drain node {:?}: global timeout reached: {}; pods left: {}",
                a.name,
                a.timeout,
                left.join(", ")
            );
            return Ok(1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("node/{} drained", a.name);
    Ok(0)
}

pub async fn run(c: &Client, a: NodeArgs) -> Result<i32, ClientError> {
    match a.cmd {
        NodeCmd::Cordon { name } => cordon(c, &name, true).await.map(|_| 0),
        NodeCmd::Uncordon { name } => cordon(c, &name, false).await.map(|_| 0),
        NodeCmd::Drain(d) => drain(c, &d).await,
    }
}
