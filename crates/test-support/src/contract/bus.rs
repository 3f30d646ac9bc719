//! The event-bus and reply-log contracts. Every bus case takes two handles,
//! `a` and `b`, that must see each other's publications: for a shared
//! transport two separate instances on one namespace, in process the same
//! bus twice. Each subscriber must be able to hold at least 500 payloads
//! unread (some cases read only after publishing). Every case uses topics
//! and replies of its own (the Redis is shared), and waits with a deadline,
//! never forever.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use specgen_ports::{BusError, Delivery, EventBus, ReplyLog, Subscription};

/// Far more than any delivery needs, even on a loaded machine; only a lost
/// payload waits this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// A topic or reply id no other test (or earlier run) uses.
fn unique(label: &str) -> String {
    format!("{label}:{}", uuid::Uuid::new_v4())
}

/// The payload `text` as the bus carries it.
fn payload(text: impl Into<String>) -> Delivery {
    Delivery::Payload(text.into().into_bytes().into())
}

async fn publish(bus: &Arc<dyn EventBus>, topic: &str, text: impl Into<String>) {
    bus.publish(topic, text.into().into_bytes().into()).await.unwrap();
}

async fn next(subscription: &mut Subscription) -> Delivery {
    match tokio::time::timeout(PATIENCE, subscription.next()).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("nothing delivered within {PATIENCE:?}"),
    }
}

/// Receives `expected`, exactly and in order.
async fn expect_all(subscription: &mut Subscription, expected: impl IntoIterator<Item = String>) {
    for (index, text) in expected.into_iter().enumerate() {
        assert_eq!(next(subscription).await, payload(text), "delivery {index}");
    }
}

pub async fn answers_ping(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    a.ping().await.unwrap();
    b.ping().await.unwrap();
}

pub async fn publication_reaches_other_handle_in_order(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    let mut subscription = b.subscribe(&topic).await.unwrap();
    // Read while publishing, as a gateway does.
    let reader = tokio::spawn(async move {
        expect_all(&mut subscription, (1..=500).map(|n| format!("chunk {n}"))).await;
        subscription
    });
    for n in 1..=500 {
        publish(a, &topic, format!("chunk {n}")).await;
    }
    let mut subscription = reader.await.unwrap();
    // And its own publications too.
    publish(b, &topic, "from b").await;
    assert_eq!(next(&mut subscription).await, payload("from b"));
}

pub async fn every_subscriber_gets_everything(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    // Several on each handle: local fan-out and fan-out between instances.
    let mut subscriptions = Vec::new();
    for bus in [a, b, b, a, b] {
        subscriptions.push(bus.subscribe(&topic).await.unwrap());
    }
    let texts: Vec<String> = (1..=200).map(|n| format!("event {n}")).collect();
    for text in &texts {
        publish(a, &topic, text.clone()).await;
    }
    for subscription in &mut subscriptions {
        expect_all(subscription, texts.clone()).await;
    }
}

pub async fn publishers_keep_their_own_order(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    let mut subscription = a.subscribe(&topic).await.unwrap();
    let publishers: Vec<_> = [("a", Arc::clone(a)), ("b", Arc::clone(b))]
        .into_iter()
        .map(|(name, bus)| {
            let topic = topic.clone();
            tokio::spawn(async move {
                for n in 0..200 {
                    publish(&bus, &topic, format!("{name} {n}")).await;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    // The two interleave anyhow, but each one's own stay in order.
    let mut next_of = [0u32, 0u32];
    for _ in 0..400 {
        let Delivery::Payload(bytes) = next(&mut subscription).await else { panic!("lagged") };
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (name, n) = text.split_once(' ').unwrap();
        let slot = &mut next_of[usize::from(name == "b")];
        assert_eq!(n.parse::<u32>().unwrap(), *slot, "{text} out of order");
        *slot += 1;
    }
    assert_eq!(next_of, [200, 200]);
}

pub async fn topics_are_independent(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let first = unique("session");
    // One topic a prefix of the other: no pattern or prefix matching.
    let second = format!("{first}:more");
    let mut on_first = b.subscribe(&first).await.unwrap();
    let mut on_second = b.subscribe(&second).await.unwrap();
    for n in 0..10 {
        publish(a, &first, format!("first {n}")).await;
        publish(a, &second, format!("second {n}")).await;
    }
    publish(a, &first, "first end").await;
    publish(a, &second, "second end").await;
    expect_all(&mut on_first, (0..10).map(|n| format!("first {n}")).chain(["first end".to_owned()])).await;
    expect_all(&mut on_second, (0..10).map(|n| format!("second {n}")).chain(["second end".to_owned()])).await;
}

pub async fn nothing_from_before_subscribe(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    publish(a, &topic, "too early").await;
    publish(b, &topic, "too early").await;
    let mut subscription = b.subscribe(&topic).await.unwrap();
    publish(a, &topic, "in time").await;
    assert_eq!(next(&mut subscription).await, payload("in time"));
}

pub async fn dropped_subscription_stops_delivery(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    let dropped = b.subscribe(&topic).await.unwrap();
    let mut kept = b.subscribe(&topic).await.unwrap();
    drop(dropped);
    publish(a, &topic, "one").await;
    assert_eq!(next(&mut kept).await, payload("one"));
    // The last one goes: the topic is unsubscribed, publishing still works.
    drop(kept);
    publish(a, &topic, "to nobody").await;
    // Subscribing again starts afresh, with nothing left over.
    let mut again = b.subscribe(&topic).await.unwrap();
    publish(a, &topic, "two").await;
    assert_eq!(next(&mut again).await, payload("two"));
    // Subscribing and dropping at once, many times over, leaves the topic
    // working for the one subscriber that stays.
    for _ in 0..20 {
        drop(b.subscribe(&topic).await.unwrap());
        drop(a.subscribe(&topic).await.unwrap());
    }
    publish(a, &topic, "three").await;
    assert_eq!(next(&mut again).await, payload("three"));
}

pub async fn publish_without_subscribers_succeeds(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    for bus in [a, b] {
        for n in 0..3 {
            publish(bus, &topic, format!("unheard {n}")).await;
        }
    }
}

/// A payload built on demand reaches every subscriber, in order with the
/// plain publications around it, from either handle.
pub async fn built_payloads_reach_subscribers(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    let mut subscription = b.subscribe(&topic).await.unwrap();
    publish(a, &topic, "before").await;
    for (n, bus) in [a, b].into_iter().enumerate() {
        let text = format!("built {n}");
        bus.publish_with(&topic, Box::new(move || text.into_bytes().into())).await.unwrap();
    }
    publish(b, &topic, "after").await;
    expect_all(&mut subscription, ["before", "built 0", "built 1", "after"].map(String::from)).await;
    // Without subscribers it still succeeds.
    let nobody = unique("session");
    a.publish_with(&nobody, Box::new(|| "unheard".into())).await.unwrap();
}

pub async fn payloads_round_trip_exactly(a: &Arc<dyn EventBus>, b: &Arc<dyn EventBus>) {
    let topic = unique("session");
    let mut subscription = b.subscribe(&topic).await.unwrap();
    let payloads: Vec<Vec<u8>> = vec![
        br#"{"event":"message_chunk","data":{"seq":1}}"#.to_vec(),
        // Not UTF-8, with a NUL and a CR LF: bytes, not text.
        vec![0xff, 0xfe, 0x00, 0x80, b'\r', b'\n', 0xc3],
        Vec::new(),
        "résumé ✓".as_bytes().to_vec(),
        // Larger than a frame may be, cycling with a prime period.
        (0..256 * 1024).map(|i| (i % 251) as u8).collect(),
    ];
    for bytes in &payloads {
        a.publish(&topic, bytes.clone().into()).await.unwrap();
    }
    for bytes in payloads {
        assert_eq!(next(&mut subscription).await, Delivery::Payload(bytes.into()));
    }
}

/// Short enough to wait out, long enough to read back before it passes.
const GRACE_SHORT: Duration = Duration::from_millis(200);

/// Well past [`GRACE_SHORT`], with room for a slow machine's timers.
const WAIT_OUT: Duration = Duration::from_millis(500);

/// What reading a reply with nothing (more) to read returns.
fn none() -> Vec<(u64, String)> {
    Vec::new()
}

fn chunks(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, String)> {
    range.map(|seq| (seq, format!("chunk {seq} "))).collect()
}

async fn append_all(log: &Arc<dyn ReplyLog>, reply: &str, chunks: &[(u64, String)]) {
    for (seq, chunk) in chunks {
        log.append(reply, *seq, chunk).await.unwrap();
    }
}

pub async fn read_after_returns_the_rest(a: &Arc<dyn ReplyLog>, b: &Arc<dyn ReplyLog>) {
    let reply = unique("reply");
    let all = chunks(1..=20);
    append_all(a, &reply, &all).await;
    assert_eq!(b.read_after(&reply, 0).await.unwrap(), all);
    for k in [1, 7, 19] {
        assert_eq!(b.read_after(&reply, k).await.unwrap(), chunks(k + 1..=20), "after {k}");
    }
    assert_eq!(b.read_after(&reply, 20).await.unwrap(), none());
    assert_eq!(b.read_after(&reply, 21).await.unwrap(), none());
    assert_eq!(b.read_after(&reply, u64::MAX).await.unwrap(), none());
}

pub async fn unknown_reply_is_empty(a: &Arc<dyn ReplyLog>, _b: &Arc<dyn ReplyLog>) {
    let reply = unique("reply");
    assert_eq!(a.read_after(&reply, 0).await.unwrap(), none());
    assert_eq!(a.read_after(&reply, 5).await.unwrap(), none());
    // Finishing a reply that never had a chunk is not an error.
    a.finish(&reply, GRACE_SHORT).await.unwrap();
    assert_eq!(a.read_after(&reply, 0).await.unwrap(), none());
}

pub async fn logs_share_chunks(a: &Arc<dyn ReplyLog>, b: &Arc<dyn ReplyLog>) {
    let reply = unique("reply");
    // Whichever instance appends, every instance reads the same log.
    a.append(&reply, 1, "from a").await.unwrap();
    b.append(&reply, 2, "from b").await.unwrap();
    let expected = vec![(1, "from a".to_owned()), (2, "from b".to_owned())];
    assert_eq!(a.read_after(&reply, 0).await.unwrap(), expected);
    assert_eq!(b.read_after(&reply, 0).await.unwrap(), expected);
}

pub async fn repeated_seq_is_ignored_and_gap_refused(a: &Arc<dyn ReplyLog>, b: &Arc<dyn ReplyLog>) {
    let reply = unique("reply");
    append_all(a, &reply, &chunks(1..=2)).await;
    // A retried append: the first chunk stays.
    b.append(&reply, 2, "retried").await.unwrap();
    b.append(&reply, 1, "retried").await.unwrap();
    // A gap: refused, and nothing of it is kept.
    let refused = a.append(&reply, 4, "after a gap").await;
    assert!(matches!(refused, Err(BusError::Unavailable(_))), "{refused:?}");
    assert!(a.append(&reply, 0, "seq starts at 1").await.is_err());
    assert_eq!(b.read_after(&reply, 0).await.unwrap(), chunks(1..=2));
    // The missing chunk comes: the log goes on.
    append_all(a, &reply, &chunks(3..=4)).await;
    assert_eq!(b.read_after(&reply, 0).await.unwrap(), chunks(1..=4));
    // A new reply must start at 1.
    let fresh = unique("reply");
    assert!(a.append(&fresh, 2, "no first chunk").await.is_err());
    assert_eq!(a.read_after(&fresh, 0).await.unwrap(), none());
}

pub async fn replies_are_independent(a: &Arc<dyn ReplyLog>, _b: &Arc<dyn ReplyLog>) {
    let first = unique("reply");
    let second = format!("{first}:more");
    append_all(a, &first, &chunks(1..=3)).await;
    a.append(&second, 1, "other").await.unwrap();
    assert_eq!(a.read_after(&first, 0).await.unwrap(), chunks(1..=3));
    assert_eq!(a.read_after(&second, 0).await.unwrap(), vec![(1, "other".to_owned())]);
    a.finish(&second, Duration::ZERO).await.unwrap();
    assert_eq!(a.read_after(&first, 0).await.unwrap(), chunks(1..=3));
}

pub async fn finish_keeps_chunks_for_grace_only(a: &Arc<dyn ReplyLog>, b: &Arc<dyn ReplyLog>) {
    let finished = unique("reply");
    let running = unique("reply");
    append_all(a, &finished, &chunks(1..=3)).await;
    append_all(a, &running, &chunks(1..=3)).await;
    a.finish(&finished, GRACE_SHORT).await.unwrap();
    // Within the grace a reconnecting client still gets everything.
    assert_eq!(b.read_after(&finished, 1).await.unwrap(), chunks(2..=3));
    tokio::time::sleep(WAIT_OUT).await;
    assert_eq!(b.read_after(&finished, 0).await.unwrap(), none());
    // A reply still streaming has no such deadline.
    assert_eq!(b.read_after(&running, 0).await.unwrap(), chunks(1..=3));
    // No grace at all: gone at once.
    a.finish(&running, Duration::ZERO).await.unwrap();
    assert_eq!(b.read_after(&running, 0).await.unwrap(), none());
}

pub async fn chunks_round_trip_exactly(a: &Arc<dyn ReplyLog>, b: &Arc<dyn ReplyLog>) {
    let reply = unique("reply");
    let texts = [
        "plain".to_owned(),
        String::new(),
        " leading and trailing spaces ".to_owned(),
        "line\r\nbreaks\n\ttab, NUL \0 and \"quotes\"".to_owned(),
        "résumé ✓ 日本語 🦀".to_owned(),
        "x".repeat(64 * 1024),
    ];
    for (index, text) in texts.iter().enumerate() {
        a.append(&reply, index as u64 + 1, text).await.unwrap();
    }
    let expected: Vec<_> = texts.into_iter().enumerate().map(|(index, text)| (index as u64 + 1, text)).collect();
    assert_eq!(b.read_after(&reply, 0).await.unwrap(), expected);
}
