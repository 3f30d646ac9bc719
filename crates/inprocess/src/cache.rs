//! The cache in this process's memory: a bounded moka cache whose entries
//! each carry the TTL they were set with. moka evicts by entry count (least
//! recently and least frequently used first) and drops expired entries on
//! its own, so memory stays bounded without a sweeper task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use specgen_ports::{Cache, CacheError};

/// Bytes under string keys for this process only, at most `max_entries` of
/// them, each until its TTL passes (by the real monotonic clock). Never
/// unavailable.
pub struct InProcessCache {
    entries: moka::future::Cache<String, Entry>,
}

impl InProcessCache {
    pub fn new(max_entries: u64) -> Self {
        Self { entries: moka::future::Cache::builder().max_capacity(max_entries).expire_after(PerEntryTtl).build() }
    }
}

impl std::fmt::Debug for InProcessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys may name users and values hold their data: show only a count.
        f.debug_struct("InProcessCache").field("entries", &self.entries.entry_count()).finish_non_exhaustive()
    }
}

#[async_trait]
impl Cache for InProcessCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self.entries.get(key).await.map(|entry| entry.value.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        if ttl.is_zero() {
            // Already expired: the old value must go all the same, and the
            // Redis adapter cannot store a zero TTL either.
            self.entries.invalidate(key).await;
            return Ok(());
        }
        let entry = Entry { value: value.into(), ttl };
        self.entries.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), CacheError> {
        for key in keys {
            self.entries.invalidate(key.as_str()).await;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

/// moka clones a value on every read: the bytes sit behind an `Arc` so that
/// clone is a reference count, and only the caller's copy is allocated.
#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    ttl: Duration,
}

/// Each entry lives for the TTL it was last set with.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(&self, _: &String, entry: &Entry, _: Instant, _: Option<Duration>) -> Option<Duration> {
        // moka's default keeps the old expiry; an overwrite brings its own.
        Some(entry.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_at_most_max_entries() {
        let cache = InProcessCache::new(100);
        for k in 0..1_000 {
            cache.set(&format!("k{k}"), b"v", Duration::from_secs(60)).await.unwrap();
        }
        // Eviction is settled in moka's maintenance, which runs now and
        // then on its own; force it so the count is final.
        cache.entries.run_pending_tasks().await;
        let count = cache.entries.entry_count();
        assert!(count <= 100, "{count} entries");
        let mut found = 0;
        for k in 0..1_000 {
            if cache.get(&format!("k{k}")).await.unwrap().is_some() {
                found += 1;
            }
        }
        assert!(found <= 100, "{found} entries readable");
    }

    #[tokio::test]
    async fn debug_shows_no_key() {
        let cache = InProcessCache::new(10);
        cache.set("user:ada@example.com", b"secret", Duration::from_secs(60)).await.unwrap();
        let shown = format!("{cache:?}");
        assert!(!shown.contains("ada") && !shown.contains("secret"), "{shown}");
    }
}
