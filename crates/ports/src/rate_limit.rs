//! Rate limiting as a port: fixed windows counted per key, shared by every
//! instance when the adapter is Redis, per process otherwise.

use std::time::Duration;

use async_trait::async_trait;

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
