//! What the Redis adapters leave in Redis. The limiter: keys named after
//! their window, expiring shortly after it. The cache: one key per entry
//! under the namespace, expiring with the entry. Both: shared by instances
//! of one namespace only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{Cache, ManualClock, RateLimiter, RateRule};
use specgen_redis::{RedisCache, RedisRateLimiter};
use specgen_test_support::contract::rate_limit::{START, manual_clock};

fn pool() -> deadpool_redis::Pool {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    specgen_redis::pool(&url, 4, Duration::from_secs(2)).unwrap()
}

fn namespace() -> String {
    format!("specgen-test-{}", uuid::Uuid::new_v4())
}

fn limiter(pool: &deadpool_redis::Pool, clock: &Arc<ManualClock>, namespace: &str) -> RedisRateLimiter {
    RedisRateLimiter::new(pool.clone(), clock.clone(), namespace.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_its_window_and_expires_after_it() {
    let pool = pool();
    let clock = manual_clock();
    let namespace = namespace();
    let limiter = limiter(&pool, &clock, &namespace);
    clock.advance(time::Duration::seconds(20));
    let rule = RateRule::new(5, Duration::from_secs(60));
    limiter.hit("ip:192.0.2.1", rule).await.unwrap();
    limiter.hit("ip:192.0.2.1", rule).await.unwrap();

    // START is on a minute boundary, so this is the window the hits fell in.
    let index = START.unix_timestamp() / 60;
    let key = format!("{namespace}:rl:60000:{index}:ip:192.0.2.1");
    let mut conn = pool.get().await.unwrap();
    let count: u64 = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(count, 2);
    // 40 s left in the window, plus a little slack for slower clocks.
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((39_000..=42_000).contains(&ttl_ms), "pttl {ttl_ms}");
    let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_of_one_namespace_share_counts() {
    let clock = manual_clock();
    let namespace = namespace();
    // Two instances: separate pools, the same Redis and namespace.
    let first = limiter(&pool(), &clock, &namespace);
    let second = limiter(&pool(), &clock, &namespace);
    let other = limiter(&pool(), &clock, &self::namespace());
    let rule = RateRule::new(3, Duration::from_secs(60));
    let key = "login:ada@example.com";
    assert_eq!(first.hit(key, rule).await.unwrap().remaining, 2);
    assert_eq!(second.hit(key, rule).await.unwrap().remaining, 1);
    assert_eq!(first.hit(key, rule).await.unwrap().remaining, 0);
    assert!(!second.hit(key, rule).await.unwrap().allowed);
    // Another namespace (another deployment) counts on its own.
    assert_eq!(other.peek(key, rule).await.unwrap().remaining, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_key_is_namespaced_and_expires_with_the_entry() {
    let pool = pool();
    let namespace = namespace();
    let cache = RedisCache::new(pool.clone(), namespace.clone());
    cache.set("session:42", &[0xff, 0x00], Duration::from_secs(30)).await.unwrap();

    let key = format!("{namespace}:cache:session:42");
    let mut conn = pool.get().await.unwrap();
    let stored: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(stored, [0xff, 0x00]);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((29_000..=30_000).contains(&ttl_ms), "pttl {ttl_ms}");

    // The longest TTL is capped, never refused, and still leaves an expiry.
    cache.set("session:42", b"v", Duration::MAX).await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!(ttl_ms > 0, "pttl {ttl_ms}");

    cache.delete(&["session:42".to_owned()]).await.unwrap();
    let exists: u64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_instances_of_one_namespace_share_entries() {
    let namespace = namespace();
    // Two instances: separate pools, the same Redis and namespace.
    let first = RedisCache::new(pool(), namespace.clone());
    let second = RedisCache::new(pool(), namespace);
    let other = RedisCache::new(pool(), self::namespace());
    let hour = Duration::from_secs(3_600);
    first.set("profile:ada", b"Ada", hour).await.unwrap();
    assert_eq!(second.get("profile:ada").await.unwrap().as_deref(), Some(&b"Ada"[..]));
    // Another namespace (another deployment) sees none of it.
    assert_eq!(other.get("profile:ada").await.unwrap(), None);
    other.set("profile:ada", b"other", hour).await.unwrap();
    // An invalidation on one instance is seen by the other.
    second.delete(&["profile:ada".to_owned()]).await.unwrap();
    assert_eq!(first.get("profile:ada").await.unwrap(), None);
    assert_eq!(other.get("profile:ada").await.unwrap().as_deref(), Some(&b"other"[..]));
    other.delete(&["profile:ada".to_owned()]).await.unwrap();
}
