//! Time as kubectl prints it: AGE (`HumanDuration`), RFC 1123 dates.

use super::*;

/// kubectl's AGE format: k8s.io/apimachinery `duration.HumanDuration`
/// (`45s`, `119s`, `5m30s`, `65m`, `3h12m`, `23h`, `2d3h`, `12d`, `2y30d`, `9y`).
pub fn human_age(d: Duration) -> String {
    human_duration_ns(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// `HumanDuration` over a signed number of nanoseconds: up to 2 s in the
/// future reads `0s` (clock skew), further is `<invalid>`.
pub(crate) fn human_duration_ns(d: i128) -> String {
    const NS: i128 = 1_000_000_000;
    const MIN: i128 = 60 * NS;
    const HOUR: i128 = 60 * MIN;
    // Go's int(d.Seconds()) truncates toward zero, as Rust's `/` does.
    let seconds = d / NS;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / MIN;
    if minutes < 10 {
        let s = (d / NS) % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / HOUR;
    if hours < 8 {
        let m = (d / MIN) % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

pub(crate) fn system_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// kubectl's `translateTimestampSince`: `<unknown>` for an unset time.
pub(crate) fn since(t: Option<&Time>, now: SystemTime) -> String {
    match t {
        None => "<unknown>".into(),
        Some(t) => human_duration_ns(system_ns(now) - t.0.as_nanosecond()),
    }
}

/// Go's `time.RFC1123Z` layout, in UTC.
pub(crate) fn rfc1123z(t: &Time) -> String {
    t.0.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

pub(crate) fn rfc1123z_opt(t: Option<&Time>) -> String {
    match t {
        Some(t) => rfc1123z(t),
        // Go formats the zero time.
        None => "Mon, 01 Jan 0001 00:00:00 +0000".into(),
    }
}
