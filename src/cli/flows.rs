//! `lab flows` (the NAT's flow table, or its events with `-w`) and
//! `lab top svc` (per-Service rates). The formatting is pure; time is an
//! argument.

use crate::api::client::{Client, ClientError};
use crate::api::flows::{
    FlowEventLine, FlowView, FlowsQuery, FlowsReply, Peer, RejectView, ServiceRates,
};
use crate::print::{human_age, tabwrite};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// `-o` of `lab flows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowsOutput {
    Table,
    Wide,
    Json,
}

impl FlowsOutput {
    pub fn parse(o: Option<&str>) -> Result<FlowsOutput, String> {
        match o {
            None => Ok(FlowsOutput::Table),
            Some("wide") => Ok(FlowsOutput::Wide),
            Some("json") => Ok(FlowsOutput::Json),
            Some(other) => Err(format!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json,wide"
            )),
        }
    }
}

/// `pod (ip:port)`, or `ip:port` for an address no pod has.
fn peer(p: &Peer) -> String {
    match &p.pod {
        Some(pod) => format!("{pod} ({}:{})", p.ip, p.port),
        None => format!("{}:{}", p.ip, p.port),
    }
}

fn service(s: Option<&str>, vip: &Peer) -> String {
    format!("{} ({}:{})", s.unwrap_or("<deleted>"), vip.ip, vip.port)
}

fn ms(v: u64) -> String {
    human_age(Duration::from_millis(v))
}

/// Bytes as `512`, `1.2K`, `3.4M`, `5.6G`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if b < 1024 {
        return b.to_string();
    }
    let mut v = b as f64;
    let mut unit = "";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1}{unit}")
}

/// The flow table: one line per flow, then one per recent reject.
pub fn flows_table(r: &FlowsReply, wide: bool) -> String {
    let mut t =
        String::from("PROTO\tCLIENT\tSERVICE\tBACKEND\tSTATE\tAGE\tIDLE\tPKTS >/<\tBYTES >/<");
    if wide {
        t.push_str("\tPORT\tPICK\tEXPIRES\tSNAT\tFAULT");
    }
    for f in &r.flows {
        t.push('\n');
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}/{}\t{}/{}",
            f.proto,
            peer(&f.client),
            service(f.service.as_deref(), &f.vip),
            peer(&f.backend),
            f.state,
            ms(f.age_ms),
            ms(f.idle_ms),
            f.to_backend.packets,
            f.to_client.packets,
            bytes(f.to_backend.bytes),
            bytes(f.to_client.bytes),
        ));
        if wide {
            t.push_str(&format!(
                "\t{}\t{}\t{}\t{}\t{}",
                if f.port_name.is_empty() {
                    "<unnamed>"
                } else {
                    &f.port_name
                },
                f.pick,
                ms(f.expires_ms),
                f.snat.as_deref().unwrap_or("<none>"),
                f.fault.as_deref().unwrap_or("<none>"),
            ));
        }
    }
    for j in &r.rejects {
        t.push('\n');
        t.push_str(&format!(
            "{}\t{}\t{}\t<rejected: {}>\tREJECTED\t{}\t{}\t-\t-",
            j.proto,
            peer(&j.client),
            service(j.service.as_deref(), &j.vip),
            j.reason,
            ms(j.age_ms),
            ms(j.age_ms),
        ));
        if wide {
            t.push_str("\t-\t-\t-\t<none>\t<none>");
        }
    }
    let mut out = tabwrite(&t, 6, 3);
    out.push('\n');
    out
}

fn flow_line(f: &FlowView) -> String {
    format!(
        "{} {} → {} → {} {}",
        f.proto,
        peer(&f.client),
        service(f.service.as_deref(), &f.vip),
        peer(&f.backend),
        f.state
    )
}

fn reject_line(r: &RejectView) -> String {
    format!(
        "{} {} → {} {}",
        r.proto,
        peer(&r.client),
        service(r.service.as_deref(), &r.vip),
        r.reason
    )
}

/// One event as `conntrack -E` prints it, with pod and Service names.
pub fn event_line(e: &FlowEventLine) -> String {
    match e {
        FlowEventLine::New { flow } => format!("    [NEW] {} pick={}", flow_line(flow), flow.pick),
        FlowEventLine::Update { flow } => format!(" [UPDATE] {}", flow_line(flow)),
        FlowEventLine::End { reason, flow } => format!(
            "[DESTROY] {} {reason} age={} pkts={}/{} bytes={}/{}",
            flow_line(flow),
            ms(flow.age_ms),
            flow.to_backend.packets,
            flow.to_client.packets,
            bytes(flow.to_backend.bytes),
            bytes(flow.to_client.bytes),
        ),
        FlowEventLine::Reject { reject } => format!(" [REJECT] {}", reject_line(reject)),
        FlowEventLine::Lost { count } => {
            format!("   [LOST] {count} events (the watcher fell behind)")
        }
    }
}

/// Feeds complete lines of a byte stream to `f`.
struct Lines<F: FnMut(&str)> {
    buf: Vec<u8>,
    f: F,
}

impl<F: FnMut(&str)> Write for Lines<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let s = String::from_utf8_lossy(&line[..i]);
            if !s.trim().is_empty() {
                (self.f)(s.trim_end());
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub async fn flows(
    c: &Client,
    q: FlowsQuery,
    watch: bool,
    output: FlowsOutput,
) -> Result<i32, ClientError> {
    if !watch {
        let r: FlowsReply = c.get(&format!("{}/flows", crate::api::LAB_API), &q).await?;
        match output {
            FlowsOutput::Json => {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default())
            }
            FlowsOutput::Table | FlowsOutput::Wide => {
                if r.flows.is_empty() && r.rejects.is_empty() {
                    eprintln!("No flows found.");
                } else {
                    print!("{}", flows_table(&r, output == FlowsOutput::Wide));
                }
            }
        }
        return Ok(0);
    }
    let stdout = std::io::stdout();
    let mut sink = Lines {
        buf: Vec::new(),
        f: |line: &str| {
            let mut out = stdout.lock();
            let text = match output {
                FlowsOutput::Json => line.to_string(),
                _ => match serde_json::from_str::<FlowEventLine>(line) {
                    Ok(e) => event_line(&e),
                    Err(_) => return,
                },
            };
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        },
    };
    let path = format!(
        "{}/flows?watch=1&{}",
        crate::api::LAB_API,
        crate::api::client::query_string(&q)
    );
    c.stream(&path, &mut sink).await?;
    Ok(0)
}

/// Per-Service rates between two samples taken `dt` apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub conns: f64,
    pub packets: f64,
    pub bytes: f64,
    pub rejects: f64,
    pub active: u64,
}

pub fn rates(before: &ServiceRates, after: &ServiceRates) -> BTreeMap<String, Rates> {
    let dt = after.at_ms.saturating_sub(before.at_ms).max(1) as f64 / 1000.0;
    after
        .services
        .iter()
        .map(|(k, a)| {
            // A Service new since the first sample counts from zero.
            let b = before.services.get(k).copied().unwrap_or_default();
            let d = |x: u64, y: u64| x.saturating_sub(y) as f64 / dt;
            (
                k.clone(),
                Rates {
                    conns: d(a.flows, b.flows),
                    packets: d(a.packets, b.packets),
                    bytes: d(a.bytes, b.bytes),
                    rejects: d(a.rejects, b.rejects),
                    active: a.active,
                },
            )
        })
        .collect()
}

fn rate(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `lab top svc`'s table; `namespace` `None` = every namespace (a
/// NAMESPACE column).
pub fn top_table(r: &BTreeMap<String, Rates>, namespace: Option<&str>) -> String {
    let mut t = String::new();
    if namespace.is_none() {
        t.push_str("NAMESPACE\t");
    }
    t.push_str("NAME\tCONN/S\tPKTS/S\tBYTES/S\tACTIVE\tREJECTS/S");
    for (k, v) in r {
        let (ns, name) = k.split_once('/').unwrap_or(("", k));
        if namespace.is_some_and(|n| n != ns) {
            continue;
        }
        t.push('\n');
        if namespace.is_none() {
            t.push_str(ns);
            t.push('\t');
        }
        t.push_str(&format!(
            "{name}\t{}\t{}\t{}\t{}\t{}",
            rate(v.conns),
            rate(v.packets),
            bytes(v.bytes.round() as u64),
            v.active,
            rate(v.rejects)
        ));
    }
    let mut out = tabwrite(&t, 6, 3);
    out.push('\n');
    out
}

pub async fn top_svc(
    c: &Client,
    namespace: Option<String>,
    interval: Duration,
    count: Option<u64>,
) -> Result<i32, ClientError> {
    let interval = interval.max(Duration::from_millis(100));
    let mut before: ServiceRates = c
        .get(&format!("{}/servicerates", crate::api::LAB_API), &())
        .await?;
    let mut printed = 0u64;
    while count.is_none_or(|n| printed < n) {
        tokio::time::sleep(interval).await;
        let after: ServiceRates = c
            .get(&format!("{}/servicerates", crate::api::LAB_API), &())
            .await?;
        if printed > 0 {
            println!();
        }
        print!(
            "{}",
            top_table(&rates(&before, &after), namespace.as_deref())
        );
        let _ = std::io::stdout().flush();
        printed += 1;
        before = after;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::flows::{ServiceSample, Traffic};
    use std::net::Ipv4Addr;

    fn p(ip: [u8; 4], port: u16, pod: Option<&str>) -> Peer {
        Peer {
            ip: Ipv4Addr::from(ip),
            port,
            pod: pod.map(Into::into),
        }
    }

    fn flow() -> FlowView {
        FlowView {
            proto: "TCP".into(),
            client: p([10, 244, 0, 5], 43210, Some("default/client")),
            service: Some("default/web".into()),
            port_name: "http".into(),
            vip: p([10, 96, 0, 20], 80, None),
            backend: p([10, 244, 0, 7], 8080, Some("default/web-1")),
            snat: None,
            state: "ESTABLISHED".into(),
            age_ms: 3_500,
            idle_ms: 200,
            expires_ms: 432_000_000,
            to_backend: Traffic {
                packets: 5,
                bytes: 402,
            },
            to_client: Traffic {
                packets: 4,
                bytes: 1300,
            },
            pick: "random".into(),
            fault: None,
            node: None,
        }
    }

    #[test]
    fn the_flow_table_reads_client_service_backend() {
        let r = FlowsReply {
            flows: vec![flow()],
            rejects: vec![RejectView {
                proto: "TCP".into(),
                client: p([10, 244, 0, 5], 40000, Some("default/client")),
                vip: p([10, 96, 0, 30], 80, None),
                service: Some("default/empty".into()),
                reason: "no endpoints".into(),
                age_ms: 5_000,
                node: None,
            }],
        };
        let t = flows_table(&r, false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("PROTO   CLIENT"), "{t}");
        assert!(
            lines[1].contains("default/client (10.244.0.5:43210)")
                && lines[1].contains("default/web (10.96.0.20:80)")
                && lines[1].contains("default/web-1 (10.244.0.7:8080)")
                && lines[1].contains("ESTABLISHED")
                && lines[1].contains("5/4")
                && lines[1].contains("402/1.3K"),
            "{t}"
        );
        assert!(
            lines[2].contains("<rejected: no endpoints>") && lines[2].contains("REJECTED"),
            "{t}"
        );
        let w = flows_table(&r, true);
        assert!(w.lines().next().unwrap().ends_with("FAULT"));
        assert!(w.lines().nth(1).unwrap().contains("http"));
    }

    #[test]
    fn events_read_like_conntrack() {
        let e = event_line(&FlowEventLine::New { flow: flow() });
        assert_eq!(
            e,
            "    [NEW] TCP default/client (10.244.0.5:43210) → default/web (10.96.0.20:80) → default/web-1 (10.244.0.7:8080) ESTABLISHED pick=random"
        );
        let mut gone = flow();
        gone.service = None;
        let e = event_line(&FlowEventLine::End {
            reason: "expired".into(),
            flow: gone,
        });
        assert!(e.starts_with("[DESTROY] TCP"), "{e}");
        assert!(e.contains("<deleted> (10.96.0.20:80)"), "{e}");
        assert!(e.contains("expired age=3s pkts=5/4 bytes=402/1.3K"), "{e}");
    }

    #[test]
    fn rates_between_two_samples() {
        let s = |at_ms, flows, packets| ServiceRates {
            at_ms,
            services: BTreeMap::from([(
                "default/web".to_string(),
                ServiceSample {
                    flows,
                    packets,
                    bytes: packets * 100,
                    rejects: 0,
                    drops: 0,
                    active: 3,
                },
            )]),
        };
        let r = rates(&s(1000, 10, 100), &s(3000, 30, 500));
        let w = &r["default/web"];
        assert_eq!(
            (w.conns, w.packets, w.bytes, w.active),
            (10.0, 200.0, 20000.0, 3)
        );
        let t = top_table(&r, Some("default"));
        assert!(t.starts_with("NAME"), "{t}");
        assert!(t.contains("web") && t.contains("19.5K"), "{t}");
        assert!(top_table(&r, None).starts_with("NAMESPACE"));
        assert!(!top_table(&r, Some("prod")).contains("web"));
        assert_eq!(bytes(512), "512");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0M");
    }

    #[test]
    fn lines_are_split_across_chunks() {
        let mut got = Vec::new();
        {
            let mut l = Lines {
                buf: Vec::new(),
                f: |s: &str| got.push(s.to_string()),
            };
            l.write_all(b"\n{\"a\"").unwrap();
            l.write_all(b":1}\n{\"b\":2}\n{").unwrap();
        }
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}"]);
    }
}
