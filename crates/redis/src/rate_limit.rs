//! Fixed-window counters in Redis: one key per (rule window, window index,
//! caller key), incremented and given an expiry in one atomic round trip.
//! The key names its window, so counts never carry over even if a key
//! outlives its window a little; the expiry only keeps Redis from filling up.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;
use redis::FromRedisValue;
use specgen_ports::RateWindow as Window;
use specgen_ports::{Clock, RateDecision, RateLimitError, RateLimiter, RateRule};

/// Keys live this long past their window's end (by this instance's clock),
/// so an instance whose clock runs a little behind still finds the count.
const EXPIRY_SLACK_MS: i64 = 2_000;

/// Counts hits per key in fixed windows of the injected clock, shared by
/// every instance using the same Redis and namespace. Any Redis or pool
/// failure is [`RateLimitError::Unavailable`], within the pool's timeout.
pub struct RedisRateLimiter {
    pool: Pool,
    clock: Arc<dyn Clock>,
    namespace: String,
    deadline: Duration,
}

impl RedisRateLimiter {
    /// Keys are `{namespace}:rl:{window_ms}:{window_index}:{key}`. Each
    /// operation is cut off after the longest of the pool's timeouts (see
    /// [`crate::pool`]), covering the command itself too, which the pool's
    /// timeouts alone do not.
    pub fn new(pool: Pool, clock: Arc<dyn Clock>, namespace: String) -> Self {
        Self { deadline: crate::deadline(&pool), pool, clock, namespace }
    }

    fn redis_key(&self, window: &Window, key: &str) -> String {
        format!("{}:rl:{}:{}:{key}", self.namespace, window.len_ms, window.index)
    }

    async fn query<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, RateLimitError> {
        crate::query(&self.pool, self.deadline, pipe).await.map_err(unavailable)
    }
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool: its manager holds the URL, password included.
        f.debug_struct("RedisRateLimiter")
            .field("namespace", &self.namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The error as the caller sees it. Logged at debug only, and never with
/// the key (emails, client addresses): the caller decides what to do.
fn unavailable(error: impl Display) -> RateLimitError {
    tracing::debug!(%error, "redis rate limiter unavailable");
    RateLimitError::Unavailable(error.to_string())
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        let window = Window::at(self.clock.now(), rule.window);
        let redis_key = self.redis_key(&window, key);
        let ttl_ms = i64::try_from(window.reset_after.as_millis()).unwrap_or(i64::MAX).saturating_add(EXPIRY_SLACK_MS);
        // MULTI/EXEC: the increment and its expiry land together, so no key
        // is ever left without one, in a single round trip.
        let mut pipe = redis::pipe();
        pipe.atomic().incr(&redis_key, 1).pexpire(&redis_key, ttl_ms).ignore();
        let (count,): (u64,) = self.query(&pipe).await?;
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        Ok(window.decision(rule, count, count <= rule.limit))
    }

    async fn peek(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        let window = Window::at(self.clock.now(), rule.window);
        let mut pipe = redis::pipe();
        pipe.get(self.redis_key(&window, key));
        let (count,): (Option<u64>,) = self.query(&pipe).await?;
        let count = count.map_or(0, |count| u32::try_from(count).unwrap_or(u32::MAX));
        Ok(window.decision(rule, count, count < rule.limit))
    }
}
