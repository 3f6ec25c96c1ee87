//! Wall-clock time as the API writes it: milliseconds inside, RFC 3339 with milliseconds outside.

use time::format_description::well_known::iso8601::{
    Config, EncodedConfig, Iso8601, TimePrecision,
};
use time::OffsetDateTime;

const RFC3339_MS: EncodedConfig = Config::DEFAULT
    .set_time_precision(TimePrecision::Second {
        decimal_digits: std::num::NonZeroU8::new(3),
    })
    .encode();

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
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
}
