//! A cache as a port: bytes under string keys with a time to live. It is an
//! optimisation only: callers treat every error as a miss and go to the
//! store, so a cache outage slows things down but never fails a request.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache cannot answer now (Redis down, timeout).
    #[error("cache unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Cache: Send + Sync {
    /// The value under `key`, if present and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Stores `value` under `key` for `ttl`, replacing any previous value.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;

    /// Removes every listed key (missing keys are fine).
    async fn delete(&self, keys: &[String]) -> Result<(), CacheError>;

    /// Answers `Ok` while the cache can serve (for the readiness report).
    async fn ping(&self) -> Result<(), CacheError>;
}
