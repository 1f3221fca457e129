//! Date and time values between Postgres's binary form and ISO 8601 text.
//!
//! Postgres sends dates as days and timestamps as microseconds since 2000-01-01. Results are
//! rendered the way Postgres's own `to_json` renders them (`2024-01-31T12:00:00.5+00:00`, with a
//! `T`, trailing zeros of the fraction dropped, and timestamptz always in UTC), which is also what
//! PostgREST returns and what `new Date(text)` reads. Parameters are parsed from the same ISO
//! shapes (what `Date.prototype.toISOString()` produces, and the `YYYY-MM-DD HH:MM:SS` form);
//! a text without an offset is taken as UTC.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;

fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("2000-01-01 is a valid date")
}

/// Appends `value` zero-padded to `width` digits (the hot path of every date and time written).
fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let text = digits.format(value);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

fn format_date_into(out: &mut String, (year, month, day): (i64, u32, u32)) {
    // Postgres has no year 0: 1 BC is year 0 in the proleptic calendar.
    let shown = if year <= 0 { 1 - year } else { year };
    push_padded(out, shown as u64, 4);
    out.push('-');
    push_padded(out, month as u64, 2);
    out.push('-');
    push_padded(out, day as u64, 2);
}

/// (year, month, day) of `days` since 2000-01-01 in the proleptic Gregorian calendar, for every
/// day Postgres can hold (dates reach 5874897 AD, past chrono's range): Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 10_957 + 719_468; // from 2000-01-01 to 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn bc_suffix(out: &mut String, year: i64) {
    if year <= 0 {
        out.push_str(" BC");
    }
}

/// `HH:MM:SS` plus `.ffffff` with trailing zeros dropped.
fn format_time_of_day(out: &mut String, micros_of_day: i64) {
    let secs = (micros_of_day / MICROS_PER_SEC) as u64;
    push_padded(out, secs / 3600, 2);
    out.push(':');
    push_padded(out, (secs / 60) % 60, 2);
    out.push(':');
    push_padded(out, secs % 60, 2);
    push_fraction(out, micros_of_day % MICROS_PER_SEC);
}

fn push_fraction(out: &mut String, micros: i64) {
    let mut fraction = micros.unsigned_abs();
    if fraction == 0 {
        return;
    }
    let mut width = 6;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    out.push('.');
    push_padded(out, fraction, width);
}

/// Appends a `date` (days since 2000-01-01).
pub fn write_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => return out.push_str("infinity"),
        i32::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let date = civil_from_days(days as i64);
    format_date_into(out, date);
    bc_suffix(out, date.0);
}

/// Appends a `timestamp` (µs since 2000-01-01), or a `timestamptz` in UTC when `with_offset`.
pub fn write_timestamp(out: &mut String, micros: i64, with_offset: bool) {
    match micros {
        i64::MAX => return out.push_str("infinity"),
        i64::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let micros_of_day = micros.rem_euclid(MICROS_PER_DAY);
    let date = civil_from_days(days);
    format_date_into(out, date);
    out.push('T');
    format_time_of_day(out, micros_of_day);
    if with_offset {
        out.push_str("+00:00");
    }
    bc_suffix(out, date.0);
}

/// Appends a `time` (µs since midnight).
pub fn write_time(out: &mut String, micros: i64) {
    format_time_of_day(out, micros);
}

/// A `date` (days since 2000-01-01).
pub fn format_date(days: i32) -> String {
    let mut out = String::with_capacity(10);
    write_date(&mut out, days);
    out
}

/// A `timestamp`, or a `timestamptz` in UTC when `with_offset`.
pub fn format_timestamp(micros: i64, with_offset: bool) -> String {
    let mut out = String::with_capacity(32);
    write_timestamp(&mut out, micros, with_offset);
    out
}

/// A `time` (µs since midnight).
pub fn format_time(micros: i64) -> String {
    let mut out = String::with_capacity(15);
    write_time(&mut out, micros);
    out
}

/// A `timetz`: µs since midnight and the zone as seconds *west* of UTC (the wire convention).
pub fn format_timetz(micros: i64, zone_secs_west: i32) -> String {
    let mut out = format_time(micros);
    let east = -zone_secs_west;
    let sign = if east < 0 { '-' } else { '+' };
    let east = east.abs();
    out.push_str(&format!("{sign}{:02}:{:02}", east / 3600, (east / 60) % 60));
    if east % 60 != 0 {
        out.push_str(&format!(":{:02}", east % 60));
    }
    out
}

/// An `interval` in Postgres's default output style: `1 year 2 mons 3 days 04:05:06.5`.
pub fn format_interval(micros: i64, days: i32, months: i32) -> String {
    let mut parts: Vec<String> = Vec::new();
    let plural =
        |n: i64, unit: &str, units: &str| format!("{n} {}", if n == 1 { unit } else { units });
    let years = months / 12;
    let mons = months % 12;
    if years != 0 {
        parts.push(plural(years as i64, "year", "years"));
    }
    if mons != 0 {
        parts.push(plural(mons as i64, "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days as i64, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let mut time = String::new();
        if micros < 0 {
            time.push('-');
        } else if parts.iter().any(|p| p.starts_with('-')) {
            time.push('+');
        }
        let abs = micros.unsigned_abs() as i64;
        let secs = abs / MICROS_PER_SEC;
        time.push_str(&format!(
            "{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        ));
        push_fraction(&mut time, abs % MICROS_PER_SEC);
        parts.push(time);
    }
    parts.join(" ")
}

/// Parses `YYYY-MM-DD`, ignoring any time part after it (as Postgres's `date_in` does).
pub fn parse_date(text: &str) -> Result<i32, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let date = t
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .filter(|_| t.len() == 10 || matches!(t.as_bytes()[10], b'T' | b't' | b' '))
        .ok_or_else(|| format!("'{t}' is not a date (expected YYYY-MM-DD)"))?;
    Ok((date - pg_epoch().date()).num_days() as i32)
}

/// Parses an ISO 8601 timestamp into µs since 2000-01-01 UTC.
///
/// With `keep_offset` (timestamptz) an offset in the text is applied; without it (timestamp) it
/// is ignored, as Postgres ignores it for `timestamp without time zone`.
pub fn parse_timestamp(text: &str, keep_offset: bool) -> Result<i64, String> {
    let t = text.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let bad = || {
        format!("'{t}' is not an ISO 8601 timestamp (expected YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM])")
    };
    let date = t
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(bad)?;
    let rest = &t[10..];
    let (time, offset_secs) = if rest.is_empty() {
        (NaiveTime::MIN, 0)
    } else {
        let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
        let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
        let time = parse_time_of_day(rest[..zone_at].trim()).ok_or_else(bad)?;
        let offset = parse_offset(rest[zone_at..].trim()).ok_or_else(bad)?;
        (time, offset)
    };
    let local = date.and_time(time);
    let micros = (local - pg_epoch()).num_microseconds().ok_or_else(bad)?;
    Ok(if keep_offset {
        micros - offset_secs as i64 * MICROS_PER_SEC
    } else {
        micros
    })
}

/// Parses `HH:MM[:SS[.ffffff]]` into µs since midnight.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let time = parse_time_of_day(t)
        .ok_or_else(|| format!("'{t}' is not a time of day (expected HH:MM:SS)"))?;
    Ok(
        time.num_seconds_from_midnight() as i64 * MICROS_PER_SEC
            + (time.nanosecond() / 1000) as i64,
    )
}

fn parse_time_of_day(t: &str) -> Option<NaiveTime> {
    ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(t, f).ok())
}

/// `Z`, `+05`, `+0530`, `+05:30` → seconds east of UTC; empty means UTC.
fn parse_offset(z: &str) -> Option<i32> {
    if z.is_empty() || z.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match z.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i32>().ok()?, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (h <= 15 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for d in ["2000-01-01", "1999-12-31", "2024-02-29", "0001-01-01"] {
            assert_eq!(format_date(parse_date(d).unwrap()), d);
        }
        assert_eq!(format_date(0), "2000-01-01");
        assert_eq!(format_date(i32::MAX), "infinity");
        assert_eq!(
            parse_date("2024-01-02T00:00:00.000Z").unwrap(),
            parse_date("2024-01-02").unwrap()
        );
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn every_day_postgres_holds_is_written_without_panicking() {
        // Postgres's own text for these: select to_json('5874897-12-31'::date), ...
        assert_eq!(format_date(2_145_031_948), "5874897-12-31");
        assert_eq!(format_date(-2_451_545), "4714-11-24 BC");
        assert_eq!(format_date(-730_119), "0001-01-01");
        assert_eq!(format_date(-730_120), "0001-12-31 BC");
        assert_eq!(
            format_timestamp(9_223_371_331_199_999_999, false),
            "294276-12-31T23:59:59.999999"
        );
        // Past what Postgres holds, still no panic.
        for extreme in [i32::MIN + 1, i32::MAX - 1] {
            format_date(extreme);
        }
        for extreme in [i64::MIN + 1, i64::MAX - 1] {
            format_timestamp(extreme, true);
        }
        for days in (-3_000_000..3_000_000).step_by(997) {
            let date = format_date(days);
            if date.len() == 10 {
                assert_eq!(parse_date(&date).unwrap(), days, "{date}");
            }
        }
    }

    #[test]
    fn timestamps_render_like_to_json() {
        assert_eq!(format_timestamp(0, true), "2000-01-01T00:00:00+00:00");
        assert_eq!(format_timestamp(500_000, false), "2000-01-01T00:00:00.5");
        assert_eq!(
            format_timestamp(-1, true),
            "1999-12-31T23:59:59.999999+00:00"
        );
        assert_eq!(format_timestamp(i64::MIN, true), "-infinity");
    }

    #[test]
    fn timestamps_parse_iso_and_offsets() {
        let utc = parse_timestamp("2024-01-31T12:00:00.123Z", true).unwrap();
        assert_eq!(format_timestamp(utc, true), "2024-01-31T12:00:00.123+00:00");
        let shifted = parse_timestamp("2024-01-31 14:30:00+02:30", true).unwrap();
        assert_eq!(format_timestamp(shifted, true), "2024-01-31T12:00:00+00:00");
        let naive = parse_timestamp("2024-01-31 14:30:00+02:30", false).unwrap();
        assert_eq!(format_timestamp(naive, false), "2024-01-31T14:30:00");
        let midnight = parse_timestamp("2024-01-31", true).unwrap();
        assert_eq!(
            format_timestamp(midnight, true),
            "2024-01-31T00:00:00+00:00"
        );
        assert!(parse_timestamp("now", true).is_err());
        assert!(parse_timestamp("2024-01-31X12", true).is_err());
    }

    #[test]
    fn times_and_intervals() {
        assert_eq!(
            format_time(parse_time("04:05:06.25").unwrap()),
            "04:05:06.25"
        );
        assert_eq!(format_time(parse_time("23:59").unwrap()), "23:59:00");
        assert_eq!(format_timetz(0, -19800), "00:00:00+05:30");
        assert_eq!(format_timetz(0, 3600), "00:00:00-01:00");
        assert_eq!(format_interval(0, 0, 0), "00:00:00");
        assert_eq!(
            format_interval(4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000, 3, 14),
            "1 year 2 mons 3 days 04:05:06.5"
        );
        assert_eq!(format_interval(-7_200_000_000, -1, 0), "-1 days -02:00:00");
        assert_eq!(format_interval(0, 1, 0), "1 day");
    }
}
