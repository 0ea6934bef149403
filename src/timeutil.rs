//! Time without a time crate: Unix seconds, RFC 3339 formatting and parsing with a fixed offset,
//! weekdays, and durations written `30s`, `15m`, `24h`, `7d`, `2w`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's civil_from_days).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-02T10:00:00+09:00` for Unix seconds at a UTC offset in minutes.
pub fn rfc3339(secs: i64, offset_min: i32) -> String {
    let local = secs + i64::from(offset_min) * 60;
    let (y, m, d) = civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let off = if offset_min == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_min < 0 { '-' } else { '+' };
        format!(
            "{sign}{:02}:{:02}",
            offset_min.abs() / 60,
            offset_min.abs() % 60
        )
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{off}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` with `Z` or `±HH:MM` (a missing offset means
/// `default_offset_min`).
pub fn parse_rfc3339(s: &str, default_offset_min: i32) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if s.get(4..5)? != "-"
        || s.get(7..8)? != "-"
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut secs = days_from_civil(y, mo as u32, d as u32) * 86_400;
    let mut offset = i64::from(default_offset_min);
    if s.len() > 10 {
        if !matches!(s.as_bytes()[10], b'T' | b' ') {
            return None;
        }
        let (h, mi) = (num(11, 13)?, num(14, 16)?);
        let mut rest = &s[16..];
        let mut sec = 0;
        if let Some(r) = rest.strip_prefix(':') {
            sec = r.get(..2)?.parse::<i64>().ok()?;
            rest = &r[2..];
            if let Some(frac) = rest.strip_prefix('.') {
                rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
            }
        }
        secs += h * 3600 + mi * 60 + sec;
        if rest == "Z" || rest == "z" {
            offset = 0;
        } else if !rest.is_empty() {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(0);
            offset = sign * (oh * 60 + om);
        }
    }
    Some(secs - offset * 60)
}

/// A point in time as the CLI and the console take it: a duration back from now (`30d`, `12h`)
/// or a date or time (`2026-11-01`, `2026-11-01T09:00:00+09:00`; local at `offset_min`).
pub fn parse_when(s: &str, offset_min: i32) -> Option<i64> {
    if let Some(d) = parse_duration(s) {
        return Some(now() - d);
    }
    parse_rfc3339(s, offset_min).or_else(|| parse_rfc3339(&format!("{s}T00:00:00"), offset_min))
}

/// Parses a duration: `45s`, `30m`, `24h`, `7d`, `2w` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses a UTC offset `+09:00`, `-05:00`, `Z` into minutes.
pub fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s == "UTC" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i32 = s.get(1..3)?.parse().ok()?;
    let m: i32 = s.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(0);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// Local minute of the day (0..1440) and weekday (0 = Monday) at an offset.
pub fn local_minute_and_weekday(secs: i64, offset_min: i32) -> (u32, u32) {
    let local = secs + i64::from(offset_min) * 60;
    let minute = (local.rem_euclid(86_400) / 60) as u32;
    (minute, weekday_of_day(local.div_euclid(86_400)))
}

/// The weekday (0 = Monday) of a day counted from 1970-01-01 (a Thursday).
pub fn weekday_of_day(days: i64) -> u32 {
    (days + 3).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = parse_rfc3339("2026-11-02T10:00:00+09:00", 0).unwrap();
        assert_eq!(rfc3339(t, 540), "2026-11-02T10:00:00+09:00");
        assert_eq!(rfc3339(t, 0), "2026-11-02T01:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-02", 540), Some(t - 10 * 3600));
        assert_eq!(parse_duration("30m"), Some(1800));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_offset("+09:00"), Some(540));
        // 2026-11-28 is a Saturday (weekday 5).
        let sat = parse_rfc3339("2026-11-28T23:30:00+09:00", 0).unwrap();
        assert_eq!(local_minute_and_weekday(sat, 540), (23 * 60 + 30, 5));
        for d in [-1000i64, 0, 1, 20000, 737000] {
            let (y, m, dd) = civil(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
