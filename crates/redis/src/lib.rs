//! Redis adapters: state shared by every instance of the service. The
//! fixed-window rate limiter, so limits hold across instances; the cache, so
//! an invalidation on one instance is seen by all; the event bus, so every
//! event reaches every connection on any instance; the reply log, so a
//! client resumes a reply exactly on whichever instance it reconnects to;
//! and presence, so a person with tabs on two instances counts once.

mod bus;
mod cache;
mod presence;
mod rate_limit;
mod reply_log;

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_redis::{Pool, Runtime};
use redis::FromRedisValue;
use tokio::runtime::{Handle, RuntimeFlavor};

pub use bus::RedisBus;
pub use cache::RedisCache;
pub use presence::RedisPresence;
pub use rate_limit::RedisRateLimiter;
pub use reply_log::RedisReplyLog;

/// A connection pool to `url` whose every wait (for a free connection, to
/// connect, to check a connection before reuse) is bounded by `timeout`, so
/// a dead Redis answers in `timeout` instead of hanging its callers.
pub fn pool(url: &str, max_size: usize, timeout: Duration) -> anyhow::Result<Pool> {
    remember_home();
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

/// The multi-threaded runtime the adapters were made in: the application's.
static HOME: OnceLock<Handle> = OnceLock::new();

/// Keeps the runtime of the caller, when it is multi-threaded, as the one
/// connections are made on (see [`on_home`]).
fn remember_home() {
    if let Ok(current) = Handle::try_current()
        && current.runtime_flavor() == RuntimeFlavor::MultiThread
    {
        let _ = HOME.set(current);
    }
}

/// Runs `work` on the application's runtime when called from a
/// single-threaded one (an HTTP worker's), inline otherwise. A Redis
/// connection's I/O task lives on the runtime that made it, and the HTTP
/// workers stop first at shutdown: a connection made there would die while
/// replies still publish and log through it, losing what they sent then.
async fn on_home<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    let on_worker = Handle::try_current().is_ok_and(|current| current.runtime_flavor() == RuntimeFlavor::CurrentThread);
    match HOME.get() {
        Some(home) if on_worker => home.spawn(work).await.map_err(|error| error.to_string()),
        _ => Ok(work.await),
    }
}

/// A pooled connection; one the pool has to make is made on the
/// application's runtime (see [`on_home`]). Taking an idle one needs no hop.
async fn connection(pool: &Pool) -> Result<deadpool_redis::Connection, String> {
    if pool.status().available > 0 {
        return pool.get().await.map_err(|error| error.to_string());
    }
    let pool = pool.clone();
    on_home(async move { pool.get().await }).await?.map_err(|error| error.to_string())
}

/// Runs `pipe` on a pooled connection, all of it (getting the connection
/// included) within `deadline`. The error is only a description, for each
/// adapter to turn into its port's error.
async fn query<T: FromRedisValue>(pool: &Pool, deadline: Duration, pipe: &redis::Pipeline) -> Result<T, String> {
    let run = async {
        let mut conn = connection(pool).await?;
        pipe.query_async::<T>(&mut conn).await.map_err(|error| error.to_string())
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {deadline:?}")),
    }
}
