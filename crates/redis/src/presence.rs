//! Presence leases in Redis, so every instance counts the same people: one
//! sorted set per (session, person) under
//! `{namespace}:presence:{session}:{user}`, each connection a member scored
//! by its lease's end (Unix ms by the instance's clock). Lapsed members are
//! dropped before every count, and the key expires a little after its
//! latest lease, so an instance that died leaves nothing behind for long.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;
use specgen_ports::{Clock, Presence, PresenceError, PresenceRegistry};

/// How long a key outlives its latest lease, for instances whose clocks
/// run a little behind.
const EXPIRY_SLACK_MS: u64 = 2_000;

/// At most this many presences per script call when renewing, so one call
/// never holds Redis for long.
const RENEW_BATCH: usize = 256;

/// Holds each KEYS[i] for connection ARGV[3 + i] until ARGV[2] (ms), at
/// ARGV[1] (ms, now), and keeps the key ARGV[3] ms past its latest lease.
/// Returns, per key, how many connections held a live lease before.
/// A script, so the count and the hold are one step however many instances
/// hold at once.
const HOLD: &str = r"
local now, lease_end, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local before = {}
for i, key in ipairs(KEYS) do
  local connection = ARGV[3 + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  before[i] = redis.call('ZCARD', key)
  redis.call('ZADD', key, 'GT', lease_end, connection)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', key, math.max(tonumber(latest[2]) - now, 0) + slack)
end
return before
";

/// Drops connection ARGV[2] from KEYS[1] and the leases lapsed at ARGV[1]
/// (ms); returns how many live ones are left.
const LEAVE: &str = r"
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCARD', KEYS[1])
";

/// Presence shared by every instance using the same Redis and namespace.
/// Any Redis or pool failure is [`PresenceError::Unavailable`], within the
/// pool's timeout.
pub struct RedisPresence {
    pool: Pool,
    clock: Arc<dyn Clock>,
    namespace: String,
    deadline: Duration,
}

impl RedisPresence {
    /// Each operation is cut off after the longest of the pool's timeouts
    /// (see [`crate::pool`]), covering the command itself too.
    pub fn new(pool: Pool, clock: Arc<dyn Clock>, namespace: String) -> Self {
        Self { deadline: crate::deadline(&pool), pool, clock, namespace }
    }

    fn redis_key(&self, presence: &Presence) -> String {
        format!("{}:presence:{}:{}", self.namespace, presence.session, presence.user)
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// The HOLD script over `presences`, each until `lease` from now.
    fn hold(&self, pipe: &mut redis::Pipeline, presences: &[Presence], lease: Duration) {
        let now = self.now_ms();
        let lease_end = now.saturating_add(i64::try_from(crate::cache::ttl_ms(lease)).unwrap_or(i64::MAX));
        let eval = pipe.cmd("EVAL").arg(HOLD).arg(presences.len());
        for presence in presences {
            eval.arg(self.redis_key(presence));
        }
        eval.arg(now).arg(lease_end).arg(EXPIRY_SLACK_MS);
        for presence in presences {
            eval.arg(connection(presence));
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, PresenceError> {
        crate::query(&self.pool, self.deadline, pipe).await.map_err(unavailable)
    }
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool: its manager holds the URL, password included.
        f.debug_struct("RedisPresence")
            .field("namespace", &self.namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

fn connection(presence: &Presence) -> String {
    format!("{:032x}", presence.connection)
}

/// The error as the caller sees it, logged at debug only: the caller falls
/// back on what its own instance knows.
fn unavailable(error: impl Display) -> PresenceError {
    tracing::debug!(%error, "redis presence registry unavailable");
    PresenceError::Unavailable(error.to_string())
}

#[async_trait]
impl PresenceRegistry for RedisPresence {
    async fn enter(&self, presence: Presence, lease: Duration) -> Result<bool, PresenceError> {
        let mut pipe = redis::pipe();
        self.hold(&mut pipe, &[presence], lease);
        let (before,): (Vec<u64>,) = self.query(&pipe).await?;
        Ok(before.first().is_some_and(|before| *before == 0))
    }

    async fn leave(&self, presence: Presence) -> Result<bool, PresenceError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL").arg(LEAVE).arg(1).arg(self.redis_key(&presence)).arg(self.now_ms()).arg(connection(&presence));
        let (live,): (u64,) = self.query(&pipe).await?;
        Ok(live == 0)
    }

    async fn renew(&self, held: &[Presence], lease: Duration) -> Result<(), PresenceError> {
        if held.is_empty() {
            return Ok(());
        }
        // One round trip for all of them.
        let mut pipe = redis::pipe();
        for batch in held.chunks(RENEW_BATCH) {
            self.hold(&mut pipe, batch, lease);
            pipe.ignore();
        }
        self.query(&pipe).await
    }
}
