//! The Redis cache against the cache contract, on the Redis at
//! `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test in a
//! namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::Cache;
use specgen_redis::RedisCache;

async fn fresh() -> Arc<dyn Cache> {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let pool = specgen_redis::pool(&url, 4, Duration::from_secs(2)).unwrap();
    let namespace = format!("specgen-test-{}", uuid::Uuid::new_v4());
    Arc::new(RedisCache::new(pool, namespace))
}

specgen_test_support::cache_contract_tests!(fresh);
