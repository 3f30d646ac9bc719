//! The cache contract: bytes in, the same bytes out, until the TTL passes.
//! Every case takes a fresh cache and uses keys of its own (the Redis is
//! shared). Expiry is by the cache's own real clock, so the one case that
//! needs it sleeps, briefly, once.

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::Cache;

/// Long enough never to pass during a test.
const HOUR: Duration = Duration::from_secs(3_600);

/// Short enough to wait out, long enough to read back before it passes.
const SHORT: Duration = Duration::from_millis(150);

/// Well past [`SHORT`], with room for a slow machine's timers.
const WAIT_OUT: Duration = Duration::from_millis(400);

/// A key no other test (or earlier run against the same Redis) uses.
fn key(label: &str) -> String {
    format!("{label}:{}", uuid::Uuid::new_v4())
}

pub async fn answers_ping(cache: &Arc<dyn Cache>) {
    cache.ping().await.unwrap();
}

pub async fn unknown_key_misses(cache: &Arc<dyn Cache>) {
    assert_eq!(cache.get(&key("session:unknown")).await.unwrap(), None);
}

pub async fn set_then_get_returns_exact_bytes(cache: &Arc<dyn Cache>) {
    let values: [&[u8]; 4] = [
        b"{\"title\":\"Plan\"}",
        // Not UTF-8, with a NUL and a CR LF: bytes, not text.
        &[0xff, 0xfe, 0x00, 0x80, b'\r', b'\n', 0xc3],
        // Empty is a value, not a miss.
        b"",
        "résumé ✓".as_bytes(),
    ];
    let keys: Vec<_> = values.iter().map(|_| key("value")).collect();
    for (key, value) in keys.iter().zip(values) {
        cache.set(key, value, HOUR).await.unwrap();
    }
    for (key, value) in keys.iter().zip(values) {
        assert_eq!(cache.get(key).await.unwrap().as_deref(), Some(value));
    }
}

pub async fn overwrite_replaces(cache: &Arc<dyn Cache>) {
    let key = key("profile:ada");
    cache.set(&key, b"a much longer first value", HOUR).await.unwrap();
    cache.set(&key, b"second", HOUR).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"second"[..]));
    // Shorter, then empty: nothing of an earlier value shows through.
    cache.set(&key, b"", HOUR).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b""[..]));
}

pub async fn delete_removes_listed_keys(cache: &Arc<dyn Cache>) {
    let gone: Vec<_> = (0..3).map(|_| key("gone")).collect();
    let kept = key("kept");
    for key in gone.iter().chain([&kept]) {
        cache.set(key, b"v", HOUR).await.unwrap();
    }
    // Keys that were never set are fine among them.
    let mut listed = gone.clone();
    listed.insert(1, key("never-set"));
    listed.push(key("never-set"));
    cache.delete(&listed).await.unwrap();
    for key in &gone {
        assert_eq!(cache.get(key).await.unwrap(), None);
    }
    assert_eq!(cache.get(&kept).await.unwrap().as_deref(), Some(&b"v"[..]));
    // Deleting again, or nothing at all, is not an error.
    cache.delete(&listed).await.unwrap();
    cache.delete(&[]).await.unwrap();
    assert_eq!(cache.get(&kept).await.unwrap().as_deref(), Some(&b"v"[..]));
}

pub async fn entries_expire_after_their_ttl(cache: &Arc<dyn Cache>) {
    let short = key("short");
    let long = key("long");
    // An overwrite brings its own TTL, shorter or longer than the old one.
    let shortened = key("shortened");
    let lengthened = key("lengthened");
    cache.set(&short, b"s", SHORT).await.unwrap();
    // The longest TTL there is: kept (adapters may cap it, never refuse it).
    cache.set(&long, b"l", Duration::MAX).await.unwrap();
    cache.set(&shortened, b"old", HOUR).await.unwrap();
    cache.set(&shortened, b"new", SHORT).await.unwrap();
    cache.set(&lengthened, b"old", SHORT).await.unwrap();
    cache.set(&lengthened, b"new", HOUR).await.unwrap();
    assert_eq!(cache.get(&short).await.unwrap().as_deref(), Some(&b"s"[..]));

    tokio::time::sleep(WAIT_OUT).await;
    assert_eq!(cache.get(&short).await.unwrap(), None);
    assert_eq!(cache.get(&shortened).await.unwrap(), None);
    assert_eq!(cache.get(&long).await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(cache.get(&lengthened).await.unwrap().as_deref(), Some(&b"new"[..]));
    // An expired key can be set again.
    cache.set(&short, b"again", HOUR).await.unwrap();
    assert_eq!(cache.get(&short).await.unwrap().as_deref(), Some(&b"again"[..]));
}

pub async fn zero_ttl_stores_nothing(cache: &Arc<dyn Cache>) {
    let key = key("zero");
    cache.set(&key, b"old", HOUR).await.unwrap();
    // Expired as soon as set: the old value is replaced by nothing.
    cache.set(&key, b"new", Duration::ZERO).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), None);
}

pub async fn keys_are_independent(cache: &Arc<dyn Cache>) {
    let a = key("a");
    let b = key("b");
    // One key a prefix of the other: no prefix matching anywhere.
    let a_longer = format!("{a}:more");
    cache.set(&a, b"A", HOUR).await.unwrap();
    cache.set(&b, b"B", HOUR).await.unwrap();
    cache.set(&a_longer, b"A+", HOUR).await.unwrap();
    assert_eq!(cache.get(&a).await.unwrap().as_deref(), Some(&b"A"[..]));
    assert_eq!(cache.get(&b).await.unwrap().as_deref(), Some(&b"B"[..]));
    cache.set(&b, b"B2", HOUR).await.unwrap();
    cache.delete(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(cache.get(&a).await.unwrap(), None);
    assert_eq!(cache.get(&b).await.unwrap().as_deref(), Some(&b"B2"[..]));
    assert_eq!(cache.get(&a_longer).await.unwrap().as_deref(), Some(&b"A+"[..]));
}

pub async fn large_value_round_trips(cache: &Arc<dyn Cache>) {
    let key = key("large");
    // Bytes cycling with a prime period, so a truncated, shifted or
    // re-encoded chunk anywhere shows.
    let value: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    cache.set(&key, &value, HOUR).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), Some(value));
}
