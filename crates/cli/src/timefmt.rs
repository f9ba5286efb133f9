//! Human-readable times without a time crate: Unix seconds ⇄ civil UTC dates.

pub use slicelab_model::time::now;

pub use slicelab_model::time::{civil_from_days, days_from_civil, fmt_time, parse_duration};

/// A short span: `45s`, `12m`, `3h`, `27d`.
pub fn fmt_span(secs: i64) -> String {
    let s = secs.abs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 2 * 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

/// `in 27d`, `3h ago`, `now`.
pub fn fmt_relative(unix: i64, now: i64) -> String {
    let delta = unix - now;
    if delta.abs() < 5 {
        "now".to_string()
    } else if delta > 0 {
        format!("in {}", fmt_span(delta))
    } else {
        format!("{} ago", fmt_span(delta))
    }
}

/// `2026-11-26 04:13Z (in 27d)`.
pub fn fmt_time_relative(unix: i64, now: i64) -> String {
    format!("{} ({})", fmt_time(unix), fmt_relative(unix, now))
}

fn num<T: std::str::FromStr>(s: &str, what: &str, whole: &str) -> Result<T, String> {
    s.parse().map_err(|_| {
        format!("{whole:?}: bad {what} {s:?} (expected RFC 3339, e.g. 2026-11-26T04:13:00Z)")
    })
}

/// An RFC 3339 time (`2026-11-26T04:13:00Z`, `2026-11-26T05:13:00+01:00`, fractional seconds
/// ignored), a date (`2026-11-26`, midnight UTC) or Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is out of range"));
    }
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (Some(y), Some(mo), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!(
            "{s:?} is not a time (expected RFC 3339 such as 2026-11-26T04:13:00Z, a date, or Unix seconds)"
        ));
    };
    let y: i64 = num(y, "year", s)?;
    let mo: u32 = num(mo, "month", s)?;
    let d: u32 = num(d, "day", s)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(format!("{s:?}: month or day out of range"));
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if let Some(rest) = rest {
        // Split off the zone: Z, +HH:MM or -HH:MM.
        let (clock, offset) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
            (c, 0)
        } else if let Some(i) = rest.rfind(['+', '-']) {
            let (c, z) = rest.split_at(i);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (hh, mm) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
            let hh: i64 = num(hh, "zone hour", s)?;
            let mm: i64 = num(mm, "zone minute", s)?;
            (c, sign * (hh * 3600 + mm * 60))
        } else {
            return Err(format!("{s:?}: needs a zone (Z or +HH:MM)"));
        };
        let clock = clock.split('.').next().unwrap_or(clock);
        let mut f = clock.splitn(3, ':');
        let h: i64 = num(f.next().unwrap_or(""), "hour", s)?;
        let mi: i64 = num(f.next().unwrap_or("0"), "minute", s)?;
        let se: i64 = num(f.next().unwrap_or("0"), "second", s)?;
        if h > 23 || mi > 59 || se > 60 {
            return Err(format!("{s:?}: time of day out of range"));
        }
        secs += h * 3600 + mi * 60 + se - offset;
    }
    Ok(secs)
}

/// `--since`: a duration back from `now` (`2h`, `7d`), or an absolute time (see `parse_time`).
pub fn parse_since(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let bare_number = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !bare_number {
        if let Ok(d) = parse_duration(s) {
            return Ok(now - d);
        }
    }
    parse_time(s)
}
