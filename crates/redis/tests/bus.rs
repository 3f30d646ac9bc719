//! What the contracts cannot see of the Redis event bus and reply log: one
//! Redis subscription per instance and topic, unsubscribing with the last
//! subscriber, surviving a dropped connection, failing fast while Redis
//! cannot answer, and what the log leaves in Redis. On the Redis at
//! `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test in a
//! namespace of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use specgen_ports::{BusError, Delivery, EventBus, ReplyLog, Subscription};
use specgen_redis::{RedisBus, RedisReplyLog};
use specgen_test_support::proxy::FaultProxy;

/// Port 1 (tcpmux) has no listener here: the connection is refused.
const NOTHING_LISTENING: &str = "redis://127.0.0.1:1";

const PATIENCE: Duration = Duration::from_secs(10);

fn url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn namespace() -> String {
    format!("specgen-test-{}", uuid::Uuid::new_v4())
}

fn pool(url: &str) -> deadpool_redis::Pool {
    specgen_redis::pool(url, 4, Duration::from_millis(300)).unwrap()
}

fn text(text: &str) -> Delivery {
    Delivery::Payload(Bytes::copy_from_slice(text.as_bytes()))
}

async fn publish(bus: &RedisBus, topic: &str, text: &str) {
    bus.publish(topic, Bytes::copy_from_slice(text.as_bytes())).await.unwrap();
}

async fn next(subscription: &mut Subscription) -> Delivery {
    match tokio::time::timeout(PATIENCE, subscription.next()).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("nothing delivered within {PATIENCE:?}"),
    }
}

/// How many connections Redis has subscribed to the bus channel of `topic`.
async fn redis_subscribers(namespace: &str, topic: &str) -> u64 {
    let mut conn = pool(&url()).get().await.unwrap();
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{namespace}:bus:{topic}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    count
}

/// Waits until Redis counts `expected` subscribers of `topic`'s channel
/// (an UNSUBSCRIBE is sent by the bus's task, shortly after the drop).
async fn wait_for_redis_subscribers(namespace: &str, topic: &str, expected: u64) {
    let started = Instant::now();
    loop {
        let count = redis_subscribers(namespace, topic).await;
        if count == expected {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "{count} subscribers, expected {expected}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Times `call` and checks it failed as unavailable within `limit`.
async fn assert_unavailable_within<T>(what: &str, limit: Duration, call: impl Future<Output = Result<T, BusError>>) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    assert!(matches!(result, Err(BusError::Unavailable(_))), "{what}: {:?}", result.err());
    assert!(took < limit, "{what} took {took:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_with_nothing_listening_is_unavailable_within_a_second() {
    let bus = RedisBus::new(NOTHING_LISTENING, namespace()).unwrap();
    let second = Duration::from_secs(1);
    // At once, while the first connection attempt is under way, and again
    // once the bus knows Redis is down.
    for _ in 0..3 {
        assert_unavailable_within("subscribe", second, bus.subscribe("session:1")).await;
        assert_unavailable_within("publish", second, bus.publish("session:1", Bytes::from_static(b"x"))).await;
        assert_unavailable_within("ping", second, bus.ping()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_on_silent_server_is_unavailable_within_the_deadline() {
    let (url, server) = silent_server().await;
    let bus = RedisBus::new(&url, namespace()).unwrap();
    // The one-second deadline, with room for a loaded machine.
    let limit = Duration::from_millis(1_500);
    assert_unavailable_within("subscribe", limit, bus.subscribe("session:1")).await;
    assert_unavailable_within("publish", limit, bus.publish("session:1", Bytes::from_static(b"x"))).await;
    assert_unavailable_within("ping", limit, bus.ping()).await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_log_with_nothing_listening_is_unavailable_within_a_second() {
    let log = RedisReplyLog::new(pool(NOTHING_LISTENING), namespace());
    let second = Duration::from_secs(1);
    assert_unavailable_within("append", second, log.append("reply", 1, "chunk")).await;
    assert_unavailable_within("read_after", second, log.read_after("reply", 0)).await;
    assert_unavailable_within("finish", second, log.finish("reply", second)).await;
}

#[test]
fn bad_url_is_an_error_that_hides_the_password() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _entered = runtime.enter();
    let error = RedisBus::new("http://:hunter2@127.0.0.1", namespace()).unwrap_err();
    assert!(!format!("{error:#}").contains("hunter2"), "{error:#}");
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    assert!(RedisBus::new(&url(), namespace()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_subscription_per_instance_and_topic() {
    let namespace = namespace();
    let first = RedisBus::new(&url(), namespace.clone()).unwrap();
    let second = RedisBus::new(&url(), namespace.clone()).unwrap();
    let local: Vec<_> = futures::future::join_all((0..3).map(|_| first.subscribe("session:1"))).await;
    assert_eq!(redis_subscribers(&namespace, "session:1").await, 1, "three local subscribers, one connection");
    let remote = second.subscribe("session:1").await.unwrap();
    assert_eq!(redis_subscribers(&namespace, "session:1").await, 2, "one per instance");

    // Every local subscriber still gets each payload.
    publish(&second, "session:1", "hello").await;
    for subscription in local {
        let mut subscription = subscription.unwrap();
        assert_eq!(next(&mut subscription).await, text("hello"));
    }
    // The local ones are gone now: that instance unsubscribed.
    wait_for_redis_subscribers(&namespace, "session:1", 1).await;
    drop(remote);
    wait_for_redis_subscribers(&namespace, "session:1", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_separate() {
    let ours = RedisBus::new(&url(), namespace()).unwrap();
    let theirs = RedisBus::new(&url(), namespace()).unwrap();
    let mut subscription = ours.subscribe("session:1").await.unwrap();
    publish(&theirs, "session:1", "another deployment").await;
    publish(&ours, "session:1", "ours").await;
    assert_eq!(next(&mut subscription).await, text("ours"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_told_it_lagged_then_continues() {
    let namespace = namespace();
    let publisher = RedisBus::new(&url(), namespace.clone()).unwrap();
    let bus = RedisBus::new(&url(), namespace).unwrap();
    let mut slow = bus.subscribe("session:1").await.unwrap();
    let mut fast = bus.subscribe("session:1").await.unwrap();
    // Well past the local buffer of each subscriber.
    const TOTAL: u64 = 3_000;
    let reader = tokio::spawn(async move {
        for n in 0..TOTAL {
            assert_eq!(next(&mut fast).await, text(&n.to_string()));
        }
    });
    for n in 0..TOTAL {
        publish(&publisher, "session:1", &n.to_string()).await;
    }
    // Once the fast one has all, all have been handed out here.
    reader.await.unwrap();
    let Delivery::Lagged(skipped) = next(&mut slow).await else { panic!("no lag reported") };
    assert!(skipped > 0 && skipped < TOTAL, "skipped {skipped}");
    // Then the newest, in order, and whatever comes next.
    for n in skipped..TOTAL {
        assert_eq!(next(&mut slow).await, text(&n.to_string()));
    }
    publish(&publisher, "session:1", "after").await;
    assert_eq!(next(&mut slow).await, text("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_bus_ends_its_subscriptions() {
    let bus = RedisBus::new(&url(), namespace()).unwrap();
    let mut subscription = bus.subscribe("session:1").await.unwrap();
    drop(bus);
    assert_eq!(tokio::time::timeout(PATIENCE, subscription.next()).await.unwrap(), None);
}

/// The `host:port` of a `redis://` URL.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap();
    authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_dropped_connection() {
    let url = url();
    let upstream = tokio::net::lookup_host(host_port(&url)).await.unwrap().next().unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    // The same Redis (password, database), through the proxy.
    let proxied = url.replacen(host_port(&url), &proxy.address().to_string(), 1);
    let namespace = namespace();
    let bus = RedisBus::new(&proxied, namespace.clone()).unwrap();
    let other = RedisBus::new(&url, namespace.clone()).unwrap();
    let mut subscription = bus.subscribe("session:1").await.unwrap();
    publish(&other, "session:1", "before").await;
    assert_eq!(next(&mut subscription).await, text("before"));

    proxy.cut();
    // The subscriber learns at once that it may miss payloads.
    assert_eq!(next(&mut subscription).await, Delivery::Lagged(0));
    publish(&other, "session:1", "lost").await;
    // Meanwhile this instance refuses quickly rather than hang.
    let limit = Duration::from_millis(1_500);
    assert_unavailable_within("subscribe", limit, bus.subscribe("session:2")).await;
    assert_unavailable_within("publish", limit, bus.publish("session:1", Bytes::from_static(b"x"))).await;

    proxy.restore();
    // Subscribed again on its own: probe until a payload comes through.
    let started = Instant::now();
    loop {
        publish(&other, "session:1", "probe").await;
        match tokio::time::timeout(Duration::from_millis(200), subscription.next()).await {
            Ok(Some(delivery)) => {
                assert_eq!(delivery, text("probe"), "nothing from the gap");
                break;
            }
            Ok(None) => panic!("the subscription ended"),
            Err(_) => assert!(started.elapsed() < PATIENCE, "not subscribed again"),
        }
    }
    publish(&other, "session:1", "probes done").await;
    while next(&mut subscription).await == text("probe") {}
    // Once, not once per reconnection attempt.
    assert_eq!(redis_subscribers(&namespace, "session:1").await, 1);
    // Both ways work again: its own publications too, in order.
    let started = Instant::now();
    while bus.publish("session:1", Bytes::from_static(b"0")).await.is_err() {
        assert!(started.elapsed() < PATIENCE, "cannot publish again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 1..=50 {
        publish(&bus, "session:1", &n.to_string()).await;
    }
    for n in 0..=50 {
        assert_eq!(next(&mut subscription).await, text(&n.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_key_is_namespaced_and_expires() {
    let pool = specgen_redis::pool(&url(), 4, Duration::from_secs(2)).unwrap();
    let namespace = namespace();
    let log = RedisReplyLog::new(pool.clone(), namespace.clone());
    for seq in 1..=3 {
        log.append("msg-1", seq, &format!("chunk {seq}")).await.unwrap();
    }
    let key = format!("{namespace}:reply:msg-1");
    let mut conn = pool.get().await.unwrap();
    let stored: Vec<String> = redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.unwrap();
    assert_eq!(stored, ["chunk 1", "chunk 2", "chunk 3"]);
    // An hour's safety expiry, refreshed by each append.
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((3_590_000..=3_600_000).contains(&ttl_ms), "pttl {ttl_ms}");

    log.finish("msg-1", Duration::from_secs(30)).await.unwrap();
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((29_000..=30_000).contains(&ttl_ms), "pttl {ttl_ms}");

    log.finish("msg-1", Duration::ZERO).await.unwrap();
    let exists: u64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0);
    // Finishing what is not there makes nothing.
    log.finish("msg-2", Duration::from_secs(30)).await.unwrap();
    let exists: u64 =
        redis::cmd("EXISTS").arg(format!("{namespace}:reply:msg-2")).query_async(&mut conn).await.unwrap();
    assert_eq!(exists, 0);
}

/// A connection first made from an HTTP worker's single-threaded runtime
/// outlives it. The workers stop first at shutdown, while replies still
/// publish and log chunks through the same connections: a publisher
/// connected from a worker used to die with it ("broken pipe"), and the
/// chunks published meanwhile never reached the other instances.
#[test]
fn connections_made_from_a_worker_outlive_it() {
    let home = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (bus, log) = home.block_on(async {
        let url = url();
        (RedisBus::new(&url, namespace()).unwrap(), RedisReplyLog::new(pool(&url), namespace()))
    });
    let worker = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    worker.block_on(async {
        publish(&bus, "worker", "first").await;
        log.append("reply", 1, "first").await.unwrap();
    });
    drop(worker);
    home.block_on(async {
        bus.publish("worker", Bytes::from_static(b"second"))
            .await
            .expect("the publisher's connection outlived the worker");
        log.append("reply", 2, "second").await.expect("the log's connection outlived the worker");
    });
}
