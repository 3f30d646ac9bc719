//! The chunks of replies in flight, in Redis so every instance can resume
//! any reply: one list per reply under `{namespace}:reply:{id}`, chunk
//! `seq` at index `seq - 1`. Every append refreshes a safety expiry, so a
//! reply whose producer died still goes; `finish` shortens it to the grace.

use std::fmt::Display;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::Pool;
use specgen_ports::{BusError, ReplyLog};

/// How long a reply is kept after its last chunk if `finish` never comes:
/// longer than any reply streams.
const SAFETY_TTL: Duration = Duration::from_secs(60 * 60);

/// Appends ARGV[2] as chunk ARGV[1] only if it is the next one, refreshing
/// the expiry (ARGV[3] ms) with it; returns how many chunks were held
/// before. A script, so the check and the push are one atomic step however
/// many instances append.
const APPEND: &str = r"
local held = redis.call('LLEN', KEYS[1])
if tonumber(ARGV[1]) == held + 1 then
  redis.call('RPUSH', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return held
";

/// Replies' chunks shared by every instance using the same Redis and
/// namespace. Any Redis or pool failure is [`BusError::Unavailable`],
/// within the pool's timeout.
pub struct RedisReplyLog {
    pool: Pool,
    namespace: String,
    deadline: Duration,
}

impl RedisReplyLog {
    /// Keys are `{namespace}:reply:{id}`. Each operation is cut off after
    /// the longest of the pool's timeouts (see [`crate::pool`]), covering
    /// the command itself too.
    pub fn new(pool: Pool, namespace: String) -> Self {
        Self { deadline: crate::deadline(&pool), pool, namespace }
    }

    fn redis_key(&self, reply: &str) -> String {
        format!("{}:reply:{reply}", self.namespace)
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, BusError> {
        crate::query(&self.pool, self.deadline, pipe).await.map_err(unavailable)
    }
}

impl std::fmt::Debug for RedisReplyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool: its manager holds the URL, password included.
        f.debug_struct("RedisReplyLog")
            .field("namespace", &self.namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The error as the caller sees it. Logged at debug only, and never with
/// a chunk (users' conversations).
fn unavailable(error: impl Display) -> BusError {
    tracing::debug!(%error, "redis reply log unavailable");
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl ReplyLog for RedisReplyLog {
    /// A `seq` already held is ignored (a retried append, or a second
    /// writer: the first chunk stays); one past the next expected seq is
    /// refused with `Unavailable`, so the log never has a gap and chunk
    /// `seq` is always the `seq`-th.
    async fn append(&self, reply: &str, seq: u64, chunk: &str) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(APPEND)
            .arg(1)
            .arg(self.redis_key(reply))
            .arg(seq)
            .arg(chunk)
            .arg(crate::cache::ttl_ms(SAFETY_TTL));
        let (held,): (u64,) = self.query(&pipe).await?;
        if seq == 0 || seq > held + 1 {
            return Err(unavailable(format!("chunk {seq} out of order: the log holds {held}")));
        }
        Ok(())
    }

    async fn read_after(&self, reply: &str, after_seq: u64) -> Result<Vec<(u64, String)>, BusError> {
        let Ok(start) = isize::try_from(after_seq) else {
            // No list is that long.
            return Ok(Vec::new());
        };
        let mut pipe = redis::pipe();
        pipe.lrange(self.redis_key(reply), start, -1);
        let (chunks,): (Vec<String>,) = self.query(&pipe).await?;
        Ok((after_seq + 1..).zip(chunks).collect())
    }

    async fn finish(&self, reply: &str, grace: Duration) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        // No grace at all: PEXPIRE 0 deletes the key at once. A key that
        // does not exist is left alone.
        let ms = i64::try_from(crate::cache::ttl_ms(grace)).unwrap_or(i64::MAX);
        pipe.pexpire(self.redis_key(reply), ms).ignore();
        self.query(&pipe).await
    }
}
