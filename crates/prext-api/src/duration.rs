//! Human-readable ages, as kubectl prints them in the `AGE` column: a port of
//! apimachinery's `pkg/util/duration.HumanDuration` (about two significant figures).

/// Formats an age given in whole seconds exactly like Go's `duration.HumanDuration`.
///
/// Up to one second in the future counts as "now" (`0s`, tolerating clock skew); further
/// in the future is `<invalid>`. Then: seconds below 2 minutes (`119s`), minutes and
/// seconds below 10 minutes (`9m12s`, `5m`), minutes below 3 hours (`179m`), hours and
/// minutes below 8 hours (`7h59m`, `3h`), hours below 2 days (`47h`), days and hours
/// below 8 days (`7d23h`, `2d`), days below 2 years (`729d`), years and days below 8
/// years (`7y364d`, `2y`), and years beyond (a year being 365 days).
///
/// `seconds` must be truncated toward zero like Go's `int(d.Seconds())` (e.g. jiff's
/// `Span::get_seconds` / `SignedDuration::as_secs`), so that 1.5 s in the future is `0s`.
pub fn human(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_remainder(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_remainder(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

/// `"{major}{unit}{minor}{minor_unit}"`, leaving out the minor part when it is zero.
fn with_remainder(major: i64, unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{unit}")
    } else {
        format!("{major}{unit}{minor}{minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    const MIN: i64 = 60;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    fn check(cases: &[(i64, &str)]) {
        for (secs, want) in cases {
            assert_eq!(human(*secs), *want, "human({secs})");
        }
    }

    #[test]
    fn future_and_now() {
        check(&[(i64::MIN, "<invalid>"), (-2, "<invalid>"), (-1, "0s"), (0, "0s")]);
    }

    #[test]
    fn seconds_and_minutes() {
        check(&[
            (1, "1s"),
            (2 * MIN - 1, "119s"),
            (2 * MIN, "2m"),
            (2 * MIN + 1, "2m1s"),
            (9 * MIN + 12, "9m12s"),
            (10 * MIN - 1, "9m59s"),
            (10 * MIN, "10m"),
            (10 * MIN + 59, "10m"),
            (3 * HOUR - 1, "179m"),
        ]);
    }

    #[test]
    fn hours() {
        check(&[
            (3 * HOUR, "3h"),
            (3 * HOUR + MIN, "3h1m"),
            (3 * HOUR + 59, "3h"),
            (8 * HOUR - 1, "7h59m"),
            (8 * HOUR, "8h"),
            (8 * HOUR + 59 * MIN, "8h"),
            (2 * DAY - 1, "47h"),
        ]);
    }

    #[test]
    fn days() {
        check(&[
            (2 * DAY, "2d"),
            (2 * DAY + HOUR, "2d1h"),
            (2 * DAY + HOUR - 1, "2d"),
            (8 * DAY - 1, "7d23h"),
            (8 * DAY, "8d"),
            (8 * DAY + 23 * HOUR, "8d"),
            (2 * YEAR - 1, "729d"),
        ]);
    }

    #[test]
    fn years() {
        check(&[
            (2 * YEAR, "2y"),
            (2 * YEAR + DAY, "2y1d"),
            (2 * YEAR + DAY - 1, "2y"),
            (8 * YEAR - 1, "7y364d"),
            (8 * YEAR, "8y"),
            (100 * YEAR + 364 * DAY, "100y"),
            (i64::MAX, format!("{}y", i64::MAX / YEAR).as_str()),
        ]);
    }
}
