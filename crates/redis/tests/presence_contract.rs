//! The Redis registry against the presence contract, on the Redis at
//! `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test in a
//! namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{ManualClock, PresenceRegistry};
use specgen_redis::RedisPresence;
use specgen_test_support::contract::presence::manual_clock;

async fn fresh() -> (Arc<dyn PresenceRegistry>, Arc<ManualClock>) {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let pool = specgen_redis::pool(&url, 16, Duration::from_secs(2)).unwrap();
    let clock = manual_clock();
    let namespace = format!("specgen-test-{}", uuid::Uuid::new_v4());
    (Arc::new(RedisPresence::new(pool, clock.clone(), namespace)), clock)
}

specgen_test_support::presence_contract_tests!(fresh);
