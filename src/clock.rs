//! The only place that reads the system clock. Everything else takes `now` as a parameter.
//! Also the one place that turns Unix seconds into calendar dates for people to read.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

/// Seconds since the Unix epoch, as stored in the database and used in JWT claims.
pub type UnixTime = i64;

/// Current time in whole seconds since the Unix epoch.
pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Current time in milliseconds since the Unix epoch (for ids that sort by time).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds on a monotonic clock, for rate limits and caches (never stored).
pub fn monotonic() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// `t` as `YYYY-MM-DD HH:MM` in UTC (`2026-11-28 05:23`), as the console shows times.
pub fn utc_minute(t: UnixTime) -> String {
    utc(
        t,
        format_description!("[year]-[month]-[day] [hour]:[minute]"),
    )
}

/// `t` as `YYYY-MM-DD HH:MM:SS UTC` (`2026-11-28 10:03:07 UTC`), as e-mails show times.
pub fn utc_second(t: UnixTime) -> String {
    utc(
        t,
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"),
    )
}

/// `t` as RFC 3339 in UTC (`2026-11-28T10:03:07Z`), as exported audit events show times.
pub fn rfc3339(t: UnixTime) -> String {
    utc(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z"),
    )
}

/// Formats `t` in UTC. Times beyond the years ±9999 have no calendar form here; they are
/// shown as plain Unix seconds rather than failing a page or an e-mail.
fn utc(t: UnixTime, format: &[BorrowedFormatItem<'_>]) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|dt| dt.format(format).ok())
        .unwrap_or_else(|| format!("{t} (Unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_shown_in_utc() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        assert_eq!(utc_minute(1_795_843_428), "2026-11-28 05:23");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00");
    }

    #[test]
    fn seconds_are_shown_in_utc() {
        assert_eq!(utc_second(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_second(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_second(1_795_860_187), "2026-11-28 10:03:07 UTC");
        assert_eq!(utc_second(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn export_times_are_rfc3339() {
        assert_eq!(rfc3339(1_795_860_187), "2026-11-28T10:03:07Z");
    }

    #[test]
    fn a_time_beyond_the_calendar_is_shown_as_seconds() {
        assert_eq!(utc_minute(i64::MAX), format!("{} (Unix time)", i64::MAX));
    }
}
