//! Timestamps and dates as unix seconds (UTC).

use serde_json::Value;

/// Parses an interaction timestamp: integer or decimal unix seconds (decimals
/// are floored), `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS` optionally followed
/// by `Z` (a space may replace the `T`); dates and times are UTC.
pub fn parse_timestamp(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 9e15)
                    .map(|f| f.floor() as i64)
            })
            .ok_or_else(|| format!("`{n}` is out of range")),
        Value::String(s) => parse_timestamp_str(s.trim()),
        Value::Null => Err("missing timestamp".into()),
        other => Err(format!("`{other}` is not a timestamp")),
    }
}

fn parse_timestamp_str(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty timestamp".into());
    }
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        if let Ok(f) = s.parse::<f64>() {
            if f.is_finite() && f.abs() < 9e15 {
                return Ok(f.floor() as i64);
            }
        }
    }
    parse_datetime(s).ok_or_else(|| {
        format!(
            "cannot parse `{}` as a timestamp",
            crate::reader::excerpt(s)
        )
    })
}

fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = match s.get(10..11) {
        None => (s, None),
        Some("T" | " ") => (
            &s[..10],
            Some(s[11..].strip_suffix('Z').unwrap_or(&s[11..])),
        ),
        Some(_) => return None,
    };
    let day = parse_date(date)?;
    let secs = match time {
        None => 0,
        Some(t) => {
            let parts: Vec<&str> = t.split(':').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 2) {
                return None;
            }
            let num = |p: &str| {
                p.parse::<i64>()
                    .ok()
                    .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
            };
            let (h, m, sec) = (num(parts[0])?, num(parts[1])?, num(parts[2])?);
            if h > 23 || m > 59 || sec > 60 {
                return None;
            }
            h * 3600 + m * 60 + sec
        }
    };
    Some(day * 86_400 + secs)
}

/// Days since 1970-01-01 for a strict `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        let part = &s[r];
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse::<i64>().ok())?
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days-from-civil algorithm (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_numbers_and_numeric_strings() {
        assert_eq!(parse_timestamp(&json!(970185600)), Ok(970185600));
        assert_eq!(parse_timestamp(&json!(" 874724710 ")), Ok(874724710));
        assert_eq!(parse_timestamp(&json!("12.9")), Ok(12));
        assert_eq!(parse_timestamp(&json!(12.9)), Ok(12));
        assert_eq!(parse_timestamp(&json!("-5")), Ok(-5));
    }

    #[test]
    fn parses_dates_and_datetimes_as_utc() {
        assert_eq!(parse_timestamp(&json!("1970-01-01")), Ok(0));
        assert_eq!(parse_timestamp(&json!("2000-10-29")), Ok(972777600));
        assert_eq!(
            parse_timestamp(&json!("2000-10-29T01:02:03Z")),
            Ok(972777600 + 3723)
        );
        assert_eq!(
            parse_timestamp(&json!("2000-10-29 01:02:03")),
            Ok(972777600 + 3723)
        );
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("1969-12-31"), Some(-1));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            json!(""),
            json!("abc"),
            json!("2000-13-01"),
            json!("2000-1-1"),
            json!(null),
            json!([1]),
            json!("2000-10-29T25:00:00"),
            json!("1e400"),
            json!("12:00"),
        ] {
            assert!(parse_timestamp(&bad).is_err(), "{bad} should not parse");
        }
    }
}
