//! A Redis that cannot answer makes the limiter fail fast with
//! `Unavailable`, so the caller can fall back instead of hanging requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use specgen_ports::{RateLimitError, RateLimiter, RateRule, SystemClock};
use specgen_redis::RedisRateLimiter;

const RULE: RateRule = RateRule::new(5, Duration::from_secs(60));

fn limiter(url: &str) -> RedisRateLimiter {
    let pool = specgen_redis::pool(url, 4, Duration::from_millis(300)).unwrap();
    RedisRateLimiter::new(pool, Arc::new(SystemClock), "specgen-test".to_owned())
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
        assert!(
            matches!(result, Err(RateLimitError::Unavailable(_))),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_within_a_second() {
    // Port 1 (tcpmux) has no listener here: the connection is refused.
    assert_unavailable_fast(&limiter("redis://127.0.0.1:1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_unavailable_within_a_second() {
    // Accepts connections and never says a word: only the timeouts end it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    assert_unavailable_fast(&limiter(&format!("redis://{address}"))).await;
    server.abort();
}

#[test]
fn bad_url_is_an_error_that_hides_the_password() {
    let error = specgen_redis::pool("http://:hunter2@127.0.0.1", 4, Duration::from_millis(300))
        .unwrap_err();
    assert!(!format!("{error:#}").contains("hunter2"), "{error:#}");
}
