//! Wall-clock time as the API writes it: milliseconds inside, RFC 3339 with milliseconds outside.

use std::sync::atomic::{AtomicI64, Ordering};
use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};

use time::OffsetDateTime;

const RFC3339_MS: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: std::num::NonZeroU8::new(3),
    })
    .encode();

/// How far the engine's clock is set ahead of (or behind) the machine's: 0 unless an operator
/// moved it through `PUT /admin/v1/clock`, which only exists with `admin.clock_control` on (for
/// tests that script a day of traffic). A relaxed atomic: one load per reading, no lock.
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the Unix epoch, on the engine's clock.
pub fn now_ms() -> i64 {
    machine_ms() + OFFSET_MS.load(Ordering::Relaxed)
}

/// Milliseconds since the Unix epoch on the machine's clock, whatever `PUT /admin/v1/clock` set:
/// for what must agree with other machines and libraries (token expiry, which jsonwebtoken
/// checks against the system clock; snowflake ids; ScyllaDB write timestamps and claims).
pub fn machine_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Sets the engine's clock to `ms` from now on (it keeps running from there).
pub fn set_now_ms(ms: i64) {
    OFFSET_MS.store(ms - machine_ms(), Ordering::Relaxed);
}

/// Parses `2026-11-24T10:15:30.123Z` (any RFC 3339 time) into milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The UTC day a time falls on, as days since the epoch.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// `2026-11-24` for a day number of [`day_of`].
pub fn format_day(day: i64) -> String {
    format_ms(day * 86_400_000)[..10].to_string()
}

/// The day number of `2026-11-24`.
pub fn parse_day(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    parse_rfc3339_ms(&format!("{s}T00:00:00Z")).map(day_of)
}

/// `2026-11-24T10:15:30.123Z`.
pub fn format_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Iso8601::<RFC3339_MS>)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// Serde helper: an `i64` of milliseconds written as RFC 3339.
pub mod rfc3339 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ms(*ms))
    }

    pub mod option {
        use serde::Serializer;

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&super::super::format_ms(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_with_milliseconds_in_utc() {
        assert_eq!(
            super::format_ms(1_795_515_330_123),
            "2026-11-24T10:15:30.123Z"
        );
        assert_eq!(super::format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn days_round_trip_and_bad_days_are_refused() {
        let day = super::day_of(1_795_515_330_123);
        assert_eq!(super::format_day(day), "2026-11-24");
        assert_eq!(super::parse_day("2026-11-24"), Some(day));
        assert_eq!(
            super::day_of(-1),
            -1,
            "times before the epoch fall on the day before"
        );
        for bad in ["2026-13-01", "2026-11-24T00:00:00Z", "yesterday", ""] {
            assert_eq!(super::parse_day(bad), None, "{bad}");
        }
        assert_eq!(
            super::parse_rfc3339_ms("2026-11-24T10:15:30.123Z"),
            Some(1_795_515_330_123)
        );
    }
}
