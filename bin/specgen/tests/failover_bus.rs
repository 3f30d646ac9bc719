//! The event bus the composition root wires when `REDIS_URL` is set: Redis,
//! with in-process fan-out while Redis is unreachable. It passes the same
//! contract as every bus, and keeps members of one instance hearing each
//! other through an outage, attaching to Redis again once it is back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use specgen_app::bus::FailoverBus;
use specgen_inprocess::InProcessBus;
use specgen_ports::{Delivery, EventBus};
use specgen_redis::RedisBus;
use specgen_test_support::proxy::FaultProxy;

fn url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn namespace() -> String {
    format!("specgen-test-{}", uuid::Uuid::new_v4())
}

/// Two instances: each a failover bus over its own Redis connection and its
/// own in-process bus.
async fn fresh_bus() -> (Arc<dyn EventBus>, Arc<dyn EventBus>) {
    let namespace = namespace();
    let instance = || -> Arc<dyn EventBus> {
        Arc::new(FailoverBus::new(
            Arc::new(RedisBus::new(&url(), namespace.clone()).unwrap()),
            Arc::new(InProcessBus::new(1024)),
        ))
    };
    (instance(), instance())
}

specgen_test_support::event_bus_contract_tests!(fresh_bus);

async fn next_payload(subscription: &mut specgen_ports::Subscription) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.expect("a delivery in time") {
            Some(Delivery::Payload(bytes)) => return String::from_utf8(bytes.to_vec()).unwrap(),
            Some(Delivery::Lagged(_)) => continue,
            None => panic!("the subscription ended"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_keeps_its_own_fan_out_through_a_redis_outage() {
    let redis: std::net::SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let proxy = FaultProxy::start(redis).await.unwrap();
    let namespace = namespace();
    let through_proxy = format!("redis://{}", proxy.address());
    let a = FailoverBus::new(
        Arc::new(RedisBus::new(&through_proxy, namespace.clone()).unwrap()),
        Arc::new(InProcessBus::new(64)),
    );
    let b = RedisBus::new(&url(), namespace).unwrap();
    let topic = format!("session:{}", uuid::Uuid::new_v4());
    let mut on_a = a.subscribe(&topic).await.unwrap();
    let mut on_b = b.subscribe(&topic).await.unwrap();

    a.publish(&topic, "shared".into()).await.unwrap();
    assert_eq!(next_payload(&mut on_a).await, "shared");
    assert_eq!(next_payload(&mut on_b).await, "shared", "across instances while Redis is there");

    proxy.cut();
    // Publishing does not fail, and this instance's subscribers still hear it.
    let started = std::time::Instant::now();
    for n in 0..20 {
        a.publish(&topic, format!("local {n}").into()).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(5), "fails over fast: {:?}", started.elapsed());
    // Those that went in-process arrive in order; at most the first (tried on
    // Redis as the cut happened) may be missing, so wait for 19 and then
    // briefly for the 20th rather than for 20.
    let mut heard = Vec::new();
    while heard.iter().filter(|p: &&String| p.starts_with("local")).count() < 19 {
        heard.push(next_payload(&mut on_a).await);
    }
    if let Ok(Some(Delivery::Payload(bytes))) = tokio::time::timeout(Duration::from_millis(500), on_a.next()).await {
        heard.push(String::from_utf8(bytes.to_vec()).unwrap());
    }
    let local: Vec<u32> = heard.iter().filter_map(|p| p.strip_prefix("local ")).map(|n| n.parse().unwrap()).collect();
    let expected_tail: Vec<u32> = (20 - local.len() as u32..20).collect();
    assert!(local.len() >= 19 && local == expected_tail, "in order, only the first may be missing: {heard:?}");
    // A subscription made during the outage works locally.
    let mut late = a.subscribe(&topic).await.unwrap();
    a.publish(&topic, "during".into()).await.unwrap();
    assert_eq!(next_payload(&mut late).await, "during");
    // Readiness hears that fan-out is local only.
    assert!(a.ping().await.is_err(), "ping reports the outage");

    proxy.restore();
    // Back to shared mode: B hears A again, and the late subscriber hears B.
    let mut crossed = false;
    for n in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.publish(&topic, format!("from b {n}").into()).await.unwrap();
        if let Ok(Some(Delivery::Payload(bytes))) = tokio::time::timeout(Duration::from_millis(50), late.next()).await
            && bytes.starts_with(b"from b")
        {
            crossed = true;
            break;
        }
    }
    assert!(crossed, "a subscription made during the outage attaches to Redis once it is back");
    a.ping().await.unwrap();
}
