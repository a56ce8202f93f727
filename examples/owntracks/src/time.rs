//! Instants in the HTTP API: seconds since the epoch, or UTC dates and times
//! (`2026-12-02`, `2026-12-02T10:30`, `2026-12-02T10:30:15Z`), and their ISO 8601 form.

/// Parses an instant: an integer (seconds since the epoch), `YYYY-MM-DD` (midnight UTC),
/// or `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC).
///
/// ```
/// use facteur_owntracks::time::parse_instant;
/// assert_eq!(parse_instant("1700000000"), Ok(1_700_000_000));
/// assert_eq!(parse_instant("1970-01-02"), Ok(86_400));
/// assert_eq!(parse_instant("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
/// assert!(parse_instant("yesterday").is_err());
/// ```
///
/// # Errors
/// A message saying what was expected.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || {
        format!("{text:?} is not an instant: use seconds since the epoch, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)")
    };
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.trim_end_matches('Z'))),
        None => (text, None),
    };
    let mut d = date.split('-');
    let (Some(y), Some(m), Some(day), None) = (d.next(), d.next(), d.next(), d.next()) else {
        return Err(bad());
    };
    let year: i64 = number(y, 4, 4).ok_or_else(bad)?;
    let month = number(m, 1, 2)
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(bad)?;
    let day = number(day, 1, 2)
        .filter(|d| (1..=days_in_month(year, month)).contains(d))
        .ok_or_else(bad)?;
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    if let Some(time) = time {
        let mut t = time.split(':');
        let h = t.next().and_then(|h| number(h, 2, 2)).filter(|h| *h < 24);
        let min = t.next().and_then(|m| number(m, 2, 2)).filter(|m| *m < 60);
        let s = match t.next() {
            None => Some(0),
            Some(s) => number(s, 2, 2).filter(|s| *s < 60),
        };
        let (Some(h), Some(min), Some(s), None) = (h, min, s, t.next()) else {
            return Err(bad());
        };
        seconds += h * 3600 + min * 60 + s;
    }
    Ok(seconds)
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
///
/// ```
/// assert_eq!(facteur_owntracks::time::iso(1_700_000_000), "2023-11-14T22:13:20Z");
/// ```
pub fn iso(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the epoch now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn number(text: &str, min_len: usize, max_len: usize) -> Option<i64> {
    let ok = (min_len..=max_len).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok()).flatten()
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date: the days of the whole years and
/// months before it, counted from a March-based year so that February comes last.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_over_centuries() {
        let mut day = -800_000;
        while day < 800_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            day += 37;
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(parse_instant("2000-02-29"), Ok(951_782_400));
        assert_eq!(parse_instant("2026-12-02T09:49"), Ok(1_796_204_940));
        assert_eq!(parse_instant("2026-12-02 09:49:00Z"), Ok(1_796_204_940));
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        // Digits alone are seconds, never a compact date.
        assert_eq!(parse_instant("20230101"), Ok(20_230_101));
        assert_eq!(iso(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn bad_instants() {
        for bad in [
            "",
            "2023-02-29",
            "2023-13-01",
            "2023-1-1T25:00",
            "2023-01-01T10",
            "2023-01-01T10:00:00:00",
            "1e9",
            "2023-01-01Tab:cd",
        ] {
            assert!(parse_instant(bad).is_err(), "{bad}");
        }
    }
}
