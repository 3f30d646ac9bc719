//! The cache in Redis, shared by every instance: plain strings under
//! `{namespace}:cache:{key}`, each with its TTL set in the same command, so
//! Redis drops them on its own and no key is ever left without an expiry.

use std::fmt::Display;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;
use redis::{SetExpiry, SetOptions};
use specgen_ports::{Cache, CacheError};

/// TTLs are cut to this. Redis refuses an expiry whose absolute time
/// overflows, and a cache may drop an entry early anyway, so a century
/// stands for "as long as possible" without ever reaching that limit.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 60 * 60 * 1_000;

/// Bytes under string keys, shared by every instance using the same Redis
/// and namespace. Any Redis or pool failure is [`CacheError::Unavailable`],
/// within the pool's timeout.
pub struct RedisCache {
    pool: Pool,
    namespace: String,
    deadline: Duration,
}

impl RedisCache {
    /// Keys are `{namespace}:cache:{key}`. Each operation is cut off after
    /// the longest of the pool's timeouts (see [`crate::pool`]), covering
    /// the command itself too.
    pub fn new(pool: Pool, namespace: String) -> Self {
        Self { deadline: crate::deadline(&pool), pool, namespace }
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}:cache:{key}", self.namespace)
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, CacheError> {
        crate::query(&self.pool, self.deadline, pipe).await.map_err(unavailable)
    }
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool: its manager holds the URL, password included.
        f.debug_struct("RedisCache")
            .field("namespace", &self.namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The error as the caller sees it. Logged at debug only, and never with
/// the key or value (they may name users and hold their data): callers
/// treat it as a miss and decide what else to do.
fn unavailable(error: impl Display) -> CacheError {
    tracing::debug!(%error, "redis cache unavailable");
    CacheError::Unavailable(error.to_string())
}

/// Whole milliseconds, rounded up so a positive TTL never becomes the zero
/// Redis refuses, and capped at [`MAX_TTL_MS`].
pub(crate) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).min(MAX_TTL_MS)
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut pipe = redis::pipe();
        pipe.get(self.redis_key(key));
        let (value,): (Option<Vec<u8>>,) = self.query(&pipe).await?;
        Ok(value)
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let redis_key = self.redis_key(key);
        let mut pipe = redis::pipe();
        match ttl_ms(ttl) {
            // Already expired, and SET refuses PX 0: the old value must go
            // all the same.
            0 => pipe.del(redis_key).ignore(),
            ms => pipe.set_options(redis_key, value, SetOptions::default().with_expiration(SetExpiry::PX(ms))).ignore(),
        };
        self.query(&pipe).await
    }

    async fn delete(&self, keys: &[String]) -> Result<(), CacheError> {
        if keys.is_empty() {
            // DEL with no key is a syntax error, and there is nothing to do.
            return Ok(());
        }
        let redis_keys: Vec<_> = keys.iter().map(|key| self.redis_key(key)).collect();
        let mut pipe = redis::pipe();
        // One DEL for all of them: one round trip however many keys.
        pipe.del(redis_keys).ignore();
        self.query(&pipe).await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING").ignore();
        self.query(&pipe).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds_and_is_capped() {
        assert_eq!(ttl_ms(Duration::ZERO), 0);
        assert_eq!(ttl_ms(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_ms(Duration::from_micros(1_500)), 2);
        assert_eq!(ttl_ms(Duration::from_millis(150)), 150);
        assert_eq!(ttl_ms(Duration::MAX), MAX_TTL_MS);
    }
}
