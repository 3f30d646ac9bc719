//! The Redis limiter against the rate-limiter contract, on the Redis at
//! `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test in a
//! namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{ManualClock, RateLimiter};
use specgen_redis::RedisRateLimiter;
use specgen_test_support::contract::rate_limit::manual_clock;

async fn fresh() -> (Arc<dyn RateLimiter>, Arc<ManualClock>) {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let pool = specgen_redis::pool(&url, 16, Duration::from_secs(2)).unwrap();
    let clock = manual_clock();
    let namespace = format!("specgen-test-{}", uuid::Uuid::new_v4());
    let limiter = RedisRateLimiter::new(pool, clock.clone(), namespace);
    (Arc::new(limiter), clock)
}

specgen_test_support::rate_limit_contract_tests!(fresh);
