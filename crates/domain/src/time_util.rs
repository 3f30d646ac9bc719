//! Timestamps are kept at microsecond precision, the finest both stores
//! round-trip exactly, so a value read back always equals the value written.

use time::OffsetDateTime;

/// Truncates to whole microseconds and normalises to UTC.
pub fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.replace_nanosecond(micros).unwrap_or(at)
}

/// Microseconds since the Unix epoch.
pub fn unix_micros(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos() / 1_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

/// Inverse of [`unix_micros`]; `None` when out of range.
pub fn from_unix_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let at = to_micros(OffsetDateTime::now_utc());
        assert_eq!(from_unix_micros(unix_micros(at)), Some(at));
        assert_eq!(at.nanosecond() % 1_000, 0);
    }
}
