//! Go-style flags as agnhost (cobra/pflag) takes them: `--name=value`,
//! `--name value`, `-name=value`; booleans as `--name` or `--name=false`.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone)]
pub struct Flag {
    pub name: &'static str,
    pub default: Value,
}

impl Flag {
    pub fn bool(name: &'static str, d: bool) -> Flag {
        Flag {
            name,
            default: Value::Bool(d),
        }
    }
    pub fn int(name: &'static str, d: i64) -> Flag {
        Flag {
            name,
            default: Value::Int(d),
        }
    }
    pub fn string(name: &'static str, d: &str) -> Flag {
        Flag {
            name,
            default: Value::Str(d.to_string()),
        }
    }
}

/// A command line pflag would refuse (its messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("unknown flag: --{0}")]
    Unknown(String),
    #[error("invalid argument {value:?} for \"--{flag}\" flag: parse error")]
    Invalid { flag: String, value: String },
    #[error("flag needs an argument: --{0}")]
    NeedsArgument(String),
}

#[derive(Debug, Clone, Default)]
pub struct Flags {
    values: BTreeMap<&'static str, Value>,
    pub positional: Vec<String>,
}

impl Flags {
    pub fn parse(spec: &[Flag], args: &[String]) -> Result<Flags, FlagError> {
        let mut f = Flags::default();
        for s in spec {
            f.values.insert(s.name, s.default.clone());
        }
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            let Some(body) = a
                .strip_prefix("--")
                .or_else(|| a.strip_prefix('-').filter(|b| !b.is_empty()))
            else {
                f.positional.push(a.clone());
                continue;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let flag = spec
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| FlagError::Unknown(name.to_string()))?;
            let v = match &flag.default {
                Value::Bool(_) => match inline.as_deref() {
                    None => Value::Bool(true),
                    Some("true") | Some("1") | Some("t") | Some("T") | Some("TRUE")
                    | Some("True") => Value::Bool(true),
                    Some("false") | Some("0") | Some("f") | Some("F") | Some("FALSE")
                    | Some("False") => Value::Bool(false),
                    Some(x) => {
                        return Err(FlagError::Invalid {
                            flag: name.to_string(),
                            value: x.to_string(),
                        });
                    }
                },
                other => {
                    let raw = match inline {
                        Some(v) => v,
                        None => {
                            let v = args
                                .get(i)
                                .cloned()
                                .ok_or_else(|| FlagError::NeedsArgument(name.to_string()))?;
                            i += 1;
                            v
                        }
                    };
                    match other {
                        Value::Int(_) => {
                            Value::Int(raw.parse().map_err(|_| FlagError::Invalid {
                                flag: name.to_string(),
                                value: raw.clone(),
                            })?)
                        }
                        _ => Value::Str(raw),
                    }
                }
            };
            f.values.insert(flag.name, v);
        }
        Ok(f)
    }

    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Value::Int(n)) => *n,
            _ => 0,
        }
    }

    pub fn string(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }
}

pub fn usage_error(sub: &str, spec: &[Flag], err: &dyn std::fmt::Display) -> i32 {
    eprintln!("Error: {err}");
    eprintln!("Usage:\n  agnhost {sub} [flags]\n\nFlags:");
    for s in spec {
        let d = match &s.default {
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Str(x) => format!("{x:?}"),
        };
        eprintln!("      --{} (default {d})", s.name);
    }
    1
}

/// Go's `time.ParseDuration`, as agnhost's flags read durations.
pub fn parse_duration(s: &str) -> Result<Duration, crate::duration::DurationError> {
    crate::duration::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_style_flags() {
        let spec = [
            Flag::int("http-port", 8080),
            Flag::bool("udp", false),
            Flag::string("x", "d"),
        ];
        let f = Flags::parse(&spec, &a(&["--http-port=9000", "-udp", "--x", "y", "pos"])).unwrap();
        assert_eq!(f.int("http-port"), 9000);
        assert!(f.bool("udp"));
        assert_eq!(f.string("x"), "y");
        assert_eq!(f.positional, ["pos"]);
        let f = Flags::parse(&spec, &a(&["--udp=false", "-http-port", "1"])).unwrap();
        assert!(!f.bool("udp"));
        assert_eq!(f.int("http-port"), 1);
        assert!(Flags::parse(&spec, &a(&["--nope"])).is_err());
        assert!(Flags::parse(&spec, &a(&["--http-port=abc"])).is_err());
        assert!(Flags::parse(&spec, &a(&["--x"])).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }
}
