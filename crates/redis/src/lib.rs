//! Redis adapters: state shared by every instance of the service. Today the
//! fixed-window rate limiter, so limits hold across instances.

mod rate_limit;

use std::time::Duration;

use anyhow::Context as _;
use deadpool_redis::{Pool, Runtime};

pub use rate_limit::RedisRateLimiter;

/// A connection pool to `url` whose every wait (for a free connection, to
/// connect, to check a connection before reuse) is bounded by `timeout`, so
/// a dead Redis answers in `timeout` instead of hanging its callers.
pub fn pool(url: &str, max_size: usize, timeout: Duration) -> anyhow::Result<Pool> {
    // The URL may carry a password: the errors name what failed, never it.
    deadpool_redis::Config::from_url(url)
        .builder()
        .context("invalid Redis URL")?
        .max_size(max_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the Redis pool")
}
