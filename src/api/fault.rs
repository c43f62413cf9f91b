//! Fault objects (`lab fault`) as the API carries them, and the parsing of
//! the CLI's values (`100ms±20ms`, `10%`, `1mbit`). Pure.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultSpec {
    /// Service: delay packets towards it (± uniform jitter).
    #[serde(rename_all = "camelCase")]
    Delay { delay_us: u64, jitter_us: u64 },
    /// Service: drop this share of packets towards it.
    Drop { percent: f64 },
    /// Service: reset this share of new connections.
    Reset { percent: f64 },
    /// Service: drop every flow the Service sends to this pod.
    Blackhole { pod: String },
    /// Service: shape each direction to this rate; pod: a `tbf` qdisc on
    /// its veth.
    #[serde(rename_all = "camelCase")]
    Bandwidth { bits_per_second: u64 },
    /// Pod: its veth is down.
    Down,
}

impl FaultSpec {
    /// The kind (one fault of each kind per target and port; blackholes
    /// are per pod).
    pub fn slot(&self) -> String {
        match self {
            FaultSpec::Delay { .. } => "delay".into(),
            FaultSpec::Drop { .. } => "drop".into(),
            FaultSpec::Reset { .. } => "reset".into(),
            FaultSpec::Blackhole { pod } => format!("blackhole/{pod}"),
            FaultSpec::Bandwidth { .. } => "bandwidth".into(),
            FaultSpec::Down => "down".into(),
        }
    }

    /// As the CLI wrote it: `--delay 100ms±20ms`.
    pub fn describe(&self) -> String {
        match self {
            FaultSpec::Delay {
                delay_us,
                jitter_us,
            } => {
                let ms = |us: u64| {
                    if us.is_multiple_of(1000) {
                        format!("{}ms", us / 1000)
                    } else {
                        format!("{}ms", us as f64 / 1000.0)
                    }
                };
                if *jitter_us == 0 {
                    format!("--delay {}", ms(*delay_us))
                } else {
                    format!("--delay {}±{}", ms(*delay_us), ms(*jitter_us))
                }
            }
            FaultSpec::Drop { percent } => format!("--drop {percent}%"),
            FaultSpec::Reset { percent } => format!("--reset {percent}%"),
            FaultSpec::Blackhole { pod } => format!("--blackhole pod/{pod}"),
            FaultSpec::Bandwidth { bits_per_second } => {
                format!("--bandwidth {}", format_rate(*bits_per_second))
            }
            FaultSpec::Down => "--down".into(),
        }
    }
}

/// A fault object: what, where, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultObject {
    pub namespace: String,
    /// `svc/NAME` or `pod/NAME`.
    pub target: String,
    /// A Service port (`port`, not targetPort); `None` = all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub fault: FaultSpec,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRequest {
    pub namespace: String,
    pub target: String,
    pub port: Option<u16>,
    pub faults: Vec<FaultSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultClearRequest {
    pub namespace: String,
    /// `None`: every fault (of the namespace, or all with `all_namespaces`).
    pub target: Option<String>,
    #[serde(default)]
    pub all_namespaces: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultListQuery {
    pub namespace: String,
    #[serde(default)]
    pub all_namespaces: bool,
}

/// A listed fault with its current effect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultStatus {
    #[serde(flatten)]
    pub object: FaultObject,
    /// `active`, or why it does nothing now (`service not found`, …).
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultList {
    pub items: Vec<FaultStatus>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultParseError {
    #[error("invalid delay {0:?}: want e.g. 100ms or 100ms±20ms (or 100ms+-20ms)")]
    Delay(String),
    #[error("invalid percentage {0:?}: want a number from 0 to 100, e.g. 10%")]
    Percent(String),
    #[error(
        "invalid rate {0:?}: want a number with bit, kbit, mbit or gbit (bits/s) or bps, kbps, mbps (bytes/s), e.g. 1mbit"
    )]
    Rate(String),
    #[error("delay {0:?} is too long: at most 10s")]
    DelayTooLong(String),
}

/// `100ms`, `100ms±20ms`, `100ms+-20ms`, `100ms~20ms`.
pub fn parse_delay(s: &str) -> Result<FaultSpec, FaultParseError> {
    let bad = || FaultParseError::Delay(s.to_string());
    let (base, jitter) = match s.split_once('±').or_else(|| s.split_once("+-")) {
        Some((b, j)) => (b, Some(j)),
        None => (s, None),
    };
    let d = |x: &str| crate::duration::parse(x.trim()).map_err(|_| bad());
    let base = d(base)?;
    let jitter = jitter.map(d).transpose()?.unwrap_or(Duration::ZERO);
    if base > Duration::from_secs(10) || jitter > Duration::from_secs(10) {
        return Err(FaultParseError::DelayTooLong(s.to_string()));
    }
    Ok(FaultSpec::Delay {
        delay_us: base.as_micros() as u64,
        jitter_us: jitter.as_micros() as u64,
    })
}

/// `10%` or `10` (0 to 100).
pub fn parse_percent(s: &str) -> Result<f64, FaultParseError> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| FaultParseError::Percent(s.to_string()))?;
    if !(0.0..=100.0).contains(&v) || v.is_nan() {
        return Err(FaultParseError::Percent(s.to_string()));
    }
    Ok(v)
}

/// tc's rate units: `bit kbit mbit gbit` (bits/s), `bps kbps mbps gbps`
/// (bytes/s), a bare number = bits/s; 1000-based.
pub fn parse_rate(s: &str) -> Result<u64, FaultParseError> {
    let bad = || FaultParseError::Rate(s.to_string());
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return Err(bad()),
    };
    let v = n * mult;
    if !(8.0..1e12).contains(&v) {
        return Err(bad());
    }
    Ok(v as u64)
}

/// `1mbit`, `1.5mbit`, `800kbit`, `64bit`.
pub fn format_rate(bps: u64) -> String {
    let fmt = |v: f64, u: &str| {
        if v.fract() == 0.0 {
            format!("{}{u}", v as u64)
        } else {
            format!("{v}{u}")
        }
    };
    let b = bps as f64;
    if bps >= 1_000_000_000 {
        fmt(b / 1e9, "gbit")
    } else if bps >= 1_000_000 {
        fmt(b / 1e6, "mbit")
    } else if bps >= 1_000 {
        fmt(b / 1e3, "kbit")
    } else {
        fmt(b, "bit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_tc_and_the_cli_write_them() {
        assert_eq!(
            parse_delay("100ms±20ms").unwrap(),
            FaultSpec::Delay {
                delay_us: 100_000,
                jitter_us: 20_000
            }
        );
        assert_eq!(
            parse_delay("50ms+-5ms").unwrap().describe(),
            "--delay 50ms±5ms"
        );
        assert_eq!(parse_delay("1s").unwrap().describe(), "--delay 1000ms");
        assert!(parse_delay("fast").is_err());
        assert!(matches!(
            parse_delay("11s"),
            Err(FaultParseError::DelayTooLong(_))
        ));
        assert_eq!(parse_percent("10%").unwrap(), 10.0);
        assert_eq!(parse_percent("2.5").unwrap(), 2.5);
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("x").is_err());
        assert_eq!(parse_rate("1mbit").unwrap(), 1_000_000);
        assert_eq!(parse_rate("1.5Mbit").unwrap(), 1_500_000);
        assert_eq!(parse_rate("100kbps").unwrap(), 800_000);
        assert_eq!(parse_rate("9600").unwrap(), 9600);
        assert!(parse_rate("1 furlong").is_err());
        assert!(parse_rate("0bit").is_err());
        assert_eq!(format_rate(1_500_000), "1.5mbit");
        assert_eq!(
            FaultSpec::Bandwidth {
                bits_per_second: 800_000
            }
            .describe(),
            "--bandwidth 800kbit"
        );
    }
}
