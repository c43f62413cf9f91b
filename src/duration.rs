//! Durations written as Go's `time.ParseDuration` reads them (`500ms`,
//! `1m30s`, `1.5h`, `0`), which is what kubectl's flags and agnhost's flags
//! take. Pure; overflow and every malformed input are errors, never panics.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("time: invalid duration {0:?} (longer than Go's maximum of about 292 years)")]
    Overflow(String),
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
}

/// Go's largest duration: i64::MAX nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parse a Go duration string. A leading `+` is allowed; `-` is refused
/// (a negative timeout or delay has no meaning here).
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input;
    if let Some(rest) = s.strip_prefix('-') {
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(input.to_string()));
    }
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (int_part, rest) = s.split_at(int_end);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                r.split_at(end)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        // The unit: everything up to the next digit or '.'.
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_end);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let overflow = || DurationError::Overflow(input.to_string());
        let mut whole: u128 = 0;
        for d in int_part.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut nanos = whole.checked_mul(scale).ok_or_else(overflow)?;
        // The fraction, exactly to the nanosecond (digits beyond what the
        // unit can resolve are dropped, as Go does).
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * place;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
        s = rest;
    }
    let secs = (total / 1_000_000_000) as u64;
    let sub = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

/// A duration printed as Go prints one (`1m30s`, `500ms`, `0s`).
pub struct Go(pub Duration);

impl fmt::Display for Go {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let nanos = d.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000 {
            return write!(f, "{nanos}ns");
        }
        if nanos < 1_000_000 {
            return write!(f, "{}µs", trim(nanos, 1_000));
        }
        if nanos < 1_000_000_000 {
            return write!(f, "{}ms", trim(nanos, 1_000_000));
        }
        let total_secs = d.as_secs();
        let (h, m) = (total_secs / 3600, (total_secs / 60) % 60);
        let s = trim(
            u128::from(total_secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
            1_000_000_000,
        );
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}

/// `value / unit` as a decimal without trailing zeros.
fn trim(value: u128, unit: u128) -> String {
    let (whole, frac) = (value / unit, value % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let width = (unit.ilog10()) as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn go_examples() {
        let ok = [
            ("0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("+2s", Duration::from_secs(2)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1.0000000001s", Duration::from_secs(1)),
            ("2h45m", Duration::from_secs(9900)),
            (
                "9223372036854775807ns",
                Duration::from_nanos(i64::MAX as u64),
            ),
        ];
        for (s, d) in ok {
            assert_eq!(parse(s), Ok(d), "{s}");
        }
    }

    #[test]
    fn go_errors() {
        for s in [
            "", "s", ".", ".s", "5", "1m30", "abc", "5x", "1h 2m", "--5s", "5s-",
        ] {
            assert!(parse(s).is_err(), "{s:?} accepted");
        }
        assert_eq!(parse("30"), Err(DurationError::MissingUnit("30".into())));
        assert!(matches!(parse("-5s"), Err(DurationError::Negative(_))));
        assert!(matches!(
            parse("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse("9223372036854775808ns"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(parse("2562048h"), Err(DurationError::Overflow(_))));
    }

    #[test]
    fn printing() {
        assert_eq!(Go(Duration::ZERO).to_string(), "0s");
        assert_eq!(Go(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(Go(Duration::from_millis(1500)).to_string(), "1.5s");
        assert_eq!(Go(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Go(Duration::from_secs(3723)).to_string(), "1h2m3s");
        assert_eq!(Go(Duration::from_nanos(1500)).to_string(), "1.5µs");
    }

    proptest! {
        /// Whatever is printed parses back to the same duration.
        #[test]
        fn print_parse_round_trip(nanos in 0u64..(i64::MAX as u64)) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&Go(d).to_string()), Ok(d));
        }

        /// h/m/s/ms components add up exactly.
        #[test]
        fn components_add_up(h in 0u64..10_000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let want = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
            prop_assert_eq!(parse(&text), Ok(want));
        }

        /// No input panics; anything accepted is within Go's range.
        #[test]
        fn never_panics(s in "[-+0-9.a-zµ]{0,24}") {
            if let Ok(d) = parse(&s) {
                prop_assert!(d.as_nanos() <= MAX_NANOS);
            }
        }
    }
}
