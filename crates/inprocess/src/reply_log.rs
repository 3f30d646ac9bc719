//! The chunks of replies in flight, in one mutex-guarded map. Each reply
//! expires [`SAFETY_TTL`] after its last append, or its grace after
//! `finish`; expired replies read as empty at once and are swept whenever
//! the map has doubled or [`SWEEP_EVERY`] has passed, so memory follows the
//! replies live now.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use foldhash::fast::RandomState;
use specgen_ports::{BusError, ReplyLog};

/// How long a reply is kept after its last chunk if `finish` never comes
/// (its producer died): longer than any reply streams.
const SAFETY_TTL: Duration = Duration::from_secs(60 * 60);

/// Below this many replies the map is swept only by time.
const MIN_SWEEP_AT: usize = 1024;

/// A sweep is due at least this often, so memory is given back even when
/// the map stops growing.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Replies' chunks for this process only, by the real monotonic clock.
/// Never unavailable, except to refuse a chunk that would leave a gap (see
/// [`ReplyLog::append`] below).
pub struct InProcessReplyLog {
    state: Mutex<State>,
}

impl InProcessReplyLog {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State { replies: HashMap::default(), sweep_at: MIN_SWEEP_AT, swept_at: Instant::now() }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No critical section can panic halfway through an update, so a
        // poisoned map is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for InProcessReplyLog {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for InProcessReplyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Chunks are users' conversations: show only how many replies.
        f.debug_struct("InProcessReplyLog").field("replies", &self.state().replies.len()).finish_non_exhaustive()
    }
}

struct State {
    // Keyed by ids this server made, hashed on every chunk: foldhash costs
    // a fraction of std's SipHash there.
    replies: HashMap<String, Reply, RandomState>,
    /// Sweep when the map reaches this many replies...
    sweep_at: usize,
    /// ...or when [`SWEEP_EVERY`] has passed since this.
    swept_at: Instant,
}

struct Reply {
    /// Chunk `seq` at index `seq - 1`.
    chunks: Vec<String>,
    expires_at: Instant,
}

impl State {
    /// The reply's chunks if it has not expired.
    fn live(&self, reply: &str, now: Instant) -> Option<&Reply> {
        self.replies.get(reply).filter(|entry| entry.expires_at > now)
    }

    fn sweep_if_due(&mut self, now: Instant) {
        if self.replies.len() < self.sweep_at && now.duration_since(self.swept_at) < SWEEP_EVERY {
            return;
        }
        self.replies.retain(|_, entry| entry.expires_at > now);
        self.replies.shrink_to(self.replies.len() * 2);
        // Doubling keeps sweeps amortised O(1) per call even when every
        // reply is still live.
        self.sweep_at = (self.replies.len() * 2).max(MIN_SWEEP_AT);
        self.swept_at = now;
    }
}

/// `now + ttl`, for any `ttl`: one too far to represent is the furthest
/// the safety TTL allows, which `append` would set again anyway.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or(now + SAFETY_TTL)
}

#[async_trait]
impl ReplyLog for InProcessReplyLog {
    /// A `seq` already held is ignored (a retried append, or a second
    /// writer: the first chunk stays); one past the next expected seq is
    /// refused with `Unavailable`, so the log never has a gap and chunk
    /// `seq` is always the `seq`-th.
    async fn append(&self, reply: &str, seq: u64, chunk: &str) -> Result<(), BusError> {
        let now = Instant::now();
        let mut state = self.state();
        state.sweep_if_due(now);
        let entry = state
            .replies
            .entry(reply.to_owned())
            .or_insert_with(|| Reply { chunks: Vec::new(), expires_at: now + SAFETY_TTL });
        if entry.expires_at <= now {
            // Expired but not yet swept: a new reply under an old id.
            entry.chunks.clear();
        }
        let held = entry.chunks.len() as u64;
        if seq == held + 1 {
            entry.chunks.push(chunk.to_owned());
            entry.expires_at = now + SAFETY_TTL;
            Ok(())
        } else if seq != 0 && seq <= held {
            Ok(())
        } else {
            let error = format!("chunk {seq} out of order: the log holds {held}");
            if held == 0 {
                // Do not keep an empty reply for a refused first chunk.
                state.replies.remove(reply);
            }
            Err(BusError::Unavailable(error))
        }
    }

    async fn read_after(&self, reply: &str, after_seq: u64) -> Result<Vec<(u64, String)>, BusError> {
        let state = self.state();
        let Some(entry) = state.live(reply, Instant::now()) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(after_seq).unwrap_or(usize::MAX);
        Ok(entry.chunks.iter().enumerate().skip(skip).map(|(index, chunk)| (index as u64 + 1, chunk.clone())).collect())
    }

    async fn finish(&self, reply: &str, grace: Duration) -> Result<(), BusError> {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(entry) = state.replies.get_mut(reply) {
            entry.expires_at = expiry(now, grace);
        }
        state.sweep_if_due(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_replies_are_swept() {
        let log = InProcessReplyLog::new();
        for n in 0..(MIN_SWEEP_AT * 3) {
            let reply = format!("r{n}");
            log.append(&reply, 1, "chunk").await.unwrap();
            log.finish(&reply, Duration::ZERO).await.unwrap();
        }
        let held = log.state().replies.len();
        assert!(held <= MIN_SWEEP_AT, "{held} finished replies still held");
    }

    #[tokio::test]
    async fn live_replies_are_kept_by_sweeps() {
        let log = InProcessReplyLog::new();
        for n in 0..(MIN_SWEEP_AT * 3) {
            log.append(&format!("r{n}"), 1, "chunk").await.unwrap();
        }
        assert_eq!(log.state().replies.len(), MIN_SWEEP_AT * 3);
        assert_eq!(log.read_after("r0", 0).await.unwrap(), [(1, "chunk".to_owned())]);
    }

    #[tokio::test]
    async fn time_alone_triggers_a_sweep() {
        let log = InProcessReplyLog::new();
        log.append("old", 1, "chunk").await.unwrap();
        log.finish("old", Duration::ZERO).await.unwrap();
        // Pretend the last sweep was long ago.
        {
            let mut state = log.state();
            state.swept_at = state.swept_at.checked_sub(SWEEP_EVERY).unwrap();
        }
        log.append("new", 1, "chunk").await.unwrap();
        assert_eq!(log.state().replies.len(), 1);
    }

    #[tokio::test]
    async fn longest_grace_is_kept_not_a_panic() {
        let log = InProcessReplyLog::new();
        log.append("r", 1, "chunk").await.unwrap();
        log.finish("r", Duration::MAX).await.unwrap();
        assert_eq!(log.read_after("r", 0).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn debug_shows_no_chunk() {
        let log = InProcessReplyLog::new();
        log.append("reply-ada", 1, "a secret").await.unwrap();
        let shown = format!("{log:?}");
        assert!(!shown.contains("ada") && !shown.contains("secret"), "{shown}");
    }
}
