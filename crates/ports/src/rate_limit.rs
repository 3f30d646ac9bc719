//! Rate limiting as a port: fixed windows counted per key, shared by every
//! instance when the adapter is Redis, per process otherwise.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

/// `limit` hits per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    pub limit: u32,
    pub window: Duration,
}

impl RateRule {
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

/// The state of one key's current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// For `hit`: this hit is within the limit. For `peek`: one more would be.
    pub allowed: bool,
    pub limit: u32,
    /// Hits left in the current window.
    pub remaining: u32,
    /// Time until the current window ends and the count starts again.
    pub reset_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// The shared counter store cannot answer (Redis down).
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit against `key` in the current window (of the adapter's
    /// clock) and says whether it is within `rule.limit`. Hits over the limit
    /// are counted too.
    async fn hit(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError>;

    /// Says whether one more hit on `key` would be within the limit, counting
    /// nothing.
    async fn peek(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError>;
}

/// The fixed window an instant falls in: index = floor(unix ms / window ms).
/// Every adapter counts in these windows, so they agree to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// The window's length in milliseconds (at least 1).
    pub len_ms: u64,
    pub index: i128,
    pub now_ms: i128,
    pub ends_at_ms: i128,
    /// Exact time left in the window.
    pub reset_after: Duration,
}

impl RateWindow {
    pub fn at(now: OffsetDateTime, len: Duration) -> Self {
        // A zero window would divide by zero; a millisecond is the finest
        // window keys can tell apart.
        let len_ms = u64::try_from(len.as_millis()).unwrap_or(u64::MAX).max(1);
        let now_ns = now.unix_timestamp_nanos();
        // Euclidean division so instants before 1970 still floor.
        let now_ms = now_ns.div_euclid(1_000_000);
        let index = now_ms.div_euclid(i128::from(len_ms));
        let ends_at_ms = (index + 1).saturating_mul(i128::from(len_ms));
        // From nanoseconds, so a clock between milliseconds gets the exact
        // time left rather than up to a millisecond more.
        let reset_ns = ends_at_ms.saturating_mul(1_000_000) - now_ns;
        Self {
            len_ms,
            index,
            now_ms,
            ends_at_ms,
            reset_after: Duration::from_nanos(u64::try_from(reset_ns).unwrap_or(u64::MAX)),
        }
    }

    /// The decision for `count` hits in this window.
    pub fn decision(&self, rule: RateRule, count: u32, allowed: bool) -> RateDecision {
        RateDecision {
            allowed,
            limit: rule.limit,
            remaining: rule.limit.saturating_sub(count),
            reset_after: self.reset_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn windows_floor_before_the_epoch() {
        let window = RateWindow::at(datetime!(1969-12-31 23:59:59.5 UTC), Duration::from_secs(1));
        assert_eq!(window.index, -1);
        assert_eq!(window.ends_at_ms, 0);
        assert_eq!(window.reset_after, Duration::from_millis(500));
    }

    #[test]
    fn zero_window_counts_per_millisecond() {
        let window = RateWindow::at(datetime!(2030-01-01 0:00:00.000_250 UTC), Duration::ZERO);
        assert_eq!(window.len_ms, 1);
        assert_eq!(window.reset_after, Duration::from_micros(750));
    }
}
