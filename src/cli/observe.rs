//! `lab capture` and `lab fault`: see and break the Service path.

use super::NsArgs;
use crate::api::CaptureQuery;
use crate::api::Lines;
use crate::api::client::{Client, ClientError};
use crate::api::fault::{
    FaultClearRequest, FaultList, FaultListQuery, FaultRequest, FaultSpec, parse_delay,
    parse_percent, parse_rate,
};
use clap::Args;
use std::io::{IsTerminal, Write};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// svc0 (every packet through lab's NAT, before and after), svc/NAME
    /// (one Service's VIP and its backends' replies) or pod/NAME (its eth0).
    pub target: String,
    /// Write pcapng to FILE, or - for stdout (`lab capture … -w - | tcpdump -r -`).
    #[arg(short = 'w', long = "write")]
    pub write: Option<String>,
    /// Stop after N packets (a TUN capture records each packet twice: in and out).
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
    /// Stop after this long (10s, 1m, …); Ctrl-C stops too.
    #[arg(long)]
    pub duration: Option<String>,
    #[command(flatten)]
    pub ns: NsArgs,
}

#[derive(Args, Debug)]
pub struct FaultArgs {
    /// svc/NAME, pod/NAME or node/NAME to break; `list`; or `clear [TARGET]`.
    #[arg(required = true, num_args = 1..=2)]
    pub args: Vec<String>,
    /// Only this Service port (its `port`, not the targetPort).
    #[arg(long)]
    pub port: Option<u16>,
    /// Delay packets towards the Service: 100ms, or 100ms±20ms (also 100ms+-20ms).
    #[arg(long)]
    pub delay: Option<String>,
    /// Drop this share of packets towards the Service: 10%.
    #[arg(long)]
    pub drop: Option<String>,
    /// Reset this share of new connections (TCP RST from the VIP; UDP: port unreachable): 5%.
    #[arg(long)]
    pub reset: Option<String>,
    /// Drop every connection the Service sends to this backend: pod/NAME.
    #[arg(long)]
    pub blackhole: Option<String>,
    /// Limit the rate (each direction): 1mbit, 500kbit, 10mbps (bytes/s). On a pod: a tbf qdisc.
    #[arg(long)]
    pub bandwidth: Option<String>,
    /// Take the pod's link down (pod/NAME), or cut the node off the node
    /// network (node/NAME: it turns NotReady after --node-monitor-grace-period).
    #[arg(long)]
    pub down: bool,
    /// Heal what --down did (the same as `lab fault clear TARGET`).
    #[arg(long, conflicts_with = "down")]
    pub up: bool,
    #[command(flatten)]
    pub ns: NsArgs,
    /// `list` / `clear`: across all namespaces.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
    /// `list`: json.
    #[arg(short = 'o', long = "output")]
    pub output: Option<String>,
}

fn invalid(msg: impl Into<String>) -> ClientError {
    ClientError::Api(msg.into(), Vec::new())
}

pub async fn capture(c: &Client, a: CaptureArgs) -> Result<i32, ClientError> {
    let duration = a
        .duration
        .as_deref()
        .map(crate::duration::parse)
        .transpose()
        .map_err(|e| invalid(format!("invalid --duration: {e}")))?;
    let to_stdout = match a.write.as_deref() {
        None | Some("-") => true,
        Some(_) => false,
    };
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(invalid(
            "lab capture writes pcapng, not text: give -w FILE.pcapng, or pipe it (lab capture svc0 -w - | tcpdump -nr -)",
        ));
    }
    let q = CaptureQuery {
        namespace: a.ns.ns(),
        target: a.target.clone(),
        count: a.count.unwrap_or(0),
        duration_ms: duration.map(|d| d.as_millis() as u64),
    };
    let mut out: Box<dyn Write + Send> = match a.write.as_deref() {
        Some(path) if path != "-" => Box::new(
            std::fs::File::create(path)
                .map_err(|e| invalid(format!("cannot write {path}: {e}")))?,
        ),
        _ => Box::new(std::io::stdout()),
    };
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // The daemon ends the stream at the count or the duration; this is a
    // backstop should it not.
    let backstop = duration.map(|d| d + std::time::Duration::from_secs(5));
    let n = c
        .stream_until(
            &format!("{}/capture", crate::api::LAB_API),
            &q,
            &mut *out,
            stop,
            backstop,
        )
        .await?;
    out.flush().ok();
    if !to_stdout {
        eprintln!(
            "wrote {n} bytes of pcapng to {}",
            a.write.as_deref().unwrap_or("-")
        );
    }
    Ok(0)
}

/// The faults a `lab fault TARGET …` line asks for.
fn specs(a: &FaultArgs) -> Result<Vec<FaultSpec>, ClientError> {
    let e = |x: crate::api::fault::FaultParseError| invalid(x.to_string());
    let mut v = Vec::new();
    if let Some(d) = &a.delay {
        v.push(parse_delay(d).map_err(e)?);
    }
    if let Some(p) = &a.drop {
        v.push(FaultSpec::Drop {
            percent: parse_percent(p).map_err(e)?,
        });
    }
    if let Some(p) = &a.reset {
        v.push(FaultSpec::Reset {
            percent: parse_percent(p).map_err(e)?,
        });
    }
    if let Some(p) = &a.blackhole {
        let pod = p
            .strip_prefix("pod/")
            .or_else(|| p.strip_prefix("pods/"))
            .unwrap_or(p);
        if pod.is_empty() || pod.contains('/') {
            return Err(invalid(format!("invalid --blackhole {p:?}: want pod/NAME")));
        }
        v.push(FaultSpec::Blackhole {
            pod: pod.to_string(),
        });
    }
    if let Some(r) = &a.bandwidth {
        v.push(FaultSpec::Bandwidth {
            bits_per_second: parse_rate(r).map_err(e)?,
        });
    }
    if a.down {
        v.push(FaultSpec::Down);
    }
    Ok(v)
}

fn age(created: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::print::human_age(std::time::Duration::from_secs(now.saturating_sub(created)))
}

pub async fn fault(c: &Client, a: FaultArgs) -> Result<i32, ClientError> {
    let first = a.args[0].as_str();
    match first {
        "list" | "ls" => {
            if a.args.len() > 1 {
                return Err(invalid("lab fault list takes no target"));
            }
            let list: FaultList = c
                .get(
                    &format!("{}/faults", crate::api::LAB_API),
                    &FaultListQuery {
                        namespace: a.ns.ns(),
                        all_namespaces: a.all_namespaces,
                    },
                )
                .await?;
            if a.output.as_deref() == Some("json") {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list.items).unwrap_or_default()
                );
                return Ok(0);
            }
            if list.items.is_empty() {
                if a.all_namespaces {
                    eprintln!("No faults found.");
                } else {
                    eprintln!("No faults found in {} namespace.", a.ns.ns());
                }
                return Ok(0);
            }
            let mut rows = vec![vec![
                "NAMESPACE".to_string(),
                "TARGET".into(),
                "PORT".into(),
                "FAULT".into(),
                "STATUS".into(),
                "AGE".into(),
            ]];
            for f in &list.items {
                let o = &f.object;
                rows.push(vec![
                    o.namespace.clone(),
                    o.target.clone(),
                    o.port.map(|p| p.to_string()).unwrap_or_else(|| "*".into()),
                    o.fault.describe(),
                    f.status.clone(),
                    age(o.created),
                ]);
            }
            print_rows(&rows);
            Ok(0)
        }
        "clear" => {
            let out: Lines = c
                .delete(
                    &format!("{}/faults", crate::api::LAB_API),
                    &FaultClearRequest {
                        namespace: a.ns.ns(),
                        target: a.args.get(1).cloned(),
                        all_namespaces: a.all_namespaces,
                    },
                )
                .await?;
            for l in out.lines {
                println!("{l}");
            }
            Ok(0)
        }
        target if a.up => {
            let out: Lines = c
                .delete(
                    &format!("{}/faults", crate::api::LAB_API),
                    &FaultClearRequest {
                        namespace: a.ns.ns(),
                        target: Some(target.to_string()),
                        all_namespaces: false,
                    },
                )
                .await?;
            for l in out.lines {
                println!("{l}");
            }
            Ok(0)
        }
        target => {
            if a.args.len() > 1 {
                return Err(invalid(format!(
                    "unexpected argument {:?}: lab fault TARGET --FAULT …",
                    a.args[1]
                )));
            }
            let faults = specs(&a)?;
            if faults.is_empty() {
                return Err(invalid(
                    "no fault given: use --delay, --drop, --reset, --blackhole or --bandwidth on svc/NAME; --down or --bandwidth on pod/NAME; --down or --up on node/NAME",
                ));
            }
            let out: Lines = c
                .post(
                    &format!("{}/faults", crate::api::LAB_API),
                    &FaultRequest {
                        namespace: a.ns.ns(),
                        target: target.to_string(),
                        port: a.port,
                        faults,
                    },
                )
                .await?;
            for l in out.lines {
                println!("{l}");
            }
            Ok(0)
        }
    }
}

fn print_rows(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i + 1 == cols {
                    v.clone()
                } else {
                    format!("{v:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}
