//! A Redis that cannot answer makes the limiter and the cache fail fast with
//! `Unavailable`, so the caller can fall back instead of hanging requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use specgen_ports::{Cache, CacheError, RateLimitError, RateLimiter, RateRule, SystemClock};
use specgen_redis::{RedisCache, RedisRateLimiter};

const RULE: RateRule = RateRule::new(5, Duration::from_secs(60));

/// Port 1 (tcpmux) has no listener here: the connection is refused.
const NOTHING_LISTENING: &str = "redis://127.0.0.1:1";

fn pool(url: &str) -> deadpool_redis::Pool {
    specgen_redis::pool(url, 4, Duration::from_millis(300)).unwrap()
}

fn limiter(url: &str) -> RedisRateLimiter {
    RedisRateLimiter::new(pool(url), Arc::new(SystemClock), "specgen-test".to_owned())
}

fn cache(url: &str) -> RedisCache {
    RedisCache::new(pool(url), "specgen-test".to_owned())
}

/// A server that accepts connections and never says a word: only the
/// timeouts end a call to it. Its URL, and the task to abort when done.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("redis://{address}"), server)
}

async fn assert_unavailable_fast(limiter: &RedisRateLimiter) {
    for peek in [false, true] {
        let started = Instant::now();
        let result = if peek {
            limiter.peek("login:ada@example.com", RULE).await
        } else {
            limiter.hit("login:ada@example.com", RULE).await
        };
        let took = started.elapsed();
        assert!(matches!(result, Err(RateLimitError::Unavailable(_))), "{result:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
}

/// Times `call` and checks it failed as unavailable within a second.
async fn assert_cache_unavailable_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, CacheError>>,
) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(matches!(result, Err(CacheError::Unavailable(_))), "{what}: {result:?}");
    assert!(took < Duration::from_secs(1), "{what} took {took:?}");
}

async fn assert_cache_unavailable(cache: &RedisCache) {
    let key = "session:ada@example.com";
    assert_cache_unavailable_fast("get", cache.get(key)).await;
    assert_cache_unavailable_fast("set", cache.set(key, b"v", Duration::from_secs(60))).await;
    assert_cache_unavailable_fast("delete", cache.delete(&[key.to_owned()])).await;
    assert_cache_unavailable_fast("ping", cache.ping()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_within_a_second() {
    assert_unavailable_fast(&limiter(NOTHING_LISTENING)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_unavailable_within_a_second() {
    let (url, server) = silent_server().await;
    assert_unavailable_fast(&limiter(&url)).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_with_nothing_listening_is_unavailable_within_a_second() {
    assert_cache_unavailable(&cache(NOTHING_LISTENING)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_on_silent_server_is_unavailable_within_a_second() {
    let (url, server) = silent_server().await;
    assert_cache_unavailable(&cache(&url)).await;
    server.abort();
}

#[test]
fn bad_url_is_an_error_that_hides_the_password() {
    let error = specgen_redis::pool("http://:hunter2@127.0.0.1", 4, Duration::from_millis(300)).unwrap_err();
    assert!(!format!("{error:#}").contains("hunter2"), "{error:#}");
}
