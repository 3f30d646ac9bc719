//! The Redis event bus and reply log against their contracts, on the Redis
//! at `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test in a
//! namespace of its own. Two handles are two instances: separate buses (or
//! pools) on the same namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{EventBus, ReplyLog};
use specgen_redis::{RedisBus, RedisReplyLog};

fn url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn namespace() -> String {
    format!("specgen-test-{}", uuid::Uuid::new_v4())
}

async fn fresh_bus() -> (Arc<dyn EventBus>, Arc<dyn EventBus>) {
    let namespace = namespace();
    let a = RedisBus::new(&url(), namespace.clone()).unwrap();
    let b = RedisBus::new(&url(), namespace).unwrap();
    (Arc::new(a), Arc::new(b))
}

async fn fresh_log() -> (Arc<dyn ReplyLog>, Arc<dyn ReplyLog>) {
    let namespace = namespace();
    let log = || {
        let pool = specgen_redis::pool(&url(), 4, Duration::from_secs(2)).unwrap();
        Arc::new(RedisReplyLog::new(pool, namespace.clone()))
    };
    (log(), log())
}

specgen_test_support::event_bus_contract_tests!(fresh_bus);
specgen_test_support::reply_log_contract_tests!(fresh_log);
