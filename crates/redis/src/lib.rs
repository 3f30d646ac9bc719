//! Redis adapters: state shared by every instance of the service. The
//! fixed-window rate limiter, so limits hold across instances; the cache, so
//! an invalidation on one instance is seen by all; the event bus, so every
//! event reaches every connection on any instance; and the reply log, so a
//! client resumes a reply exactly on whichever instance it reconnects to.

mod bus;
mod cache;
mod rate_limit;
mod reply_log;

use std::time::Duration;

use anyhow::Context as _;
use deadpool_redis::{Pool, Runtime};
use redis::FromRedisValue;

pub use bus::RedisBus;
pub use cache::RedisCache;
pub use rate_limit::RedisRateLimiter;
pub use reply_log::RedisReplyLog;

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

/// Bound on one operation when the pool has no timeouts configured.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(1);

/// How long one whole operation may take: the longest of the pool's
/// timeouts (see [`pool`]). Applied around the command too, which the
/// pool's timeouts alone do not cover.
fn deadline(pool: &Pool) -> Duration {
    let timeouts = pool.timeouts();
    [timeouts.wait, timeouts.create, timeouts.recycle].into_iter().flatten().max().unwrap_or(DEFAULT_DEADLINE)
}

/// Runs `pipe` on a pooled connection, all of it (getting the connection
/// included) within `deadline`. The error is only a description, for each
/// adapter to turn into its port's error.
async fn query<T: FromRedisValue>(pool: &Pool, deadline: Duration, pipe: &redis::Pipeline) -> Result<T, String> {
    let run = async {
        let mut conn = pool.get().await.map_err(|error| error.to_string())?;
        pipe.query_async::<T>(&mut conn).await.map_err(|error| error.to_string())
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}
