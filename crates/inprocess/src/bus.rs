//! The event bus inside one process: a `tokio::sync::broadcast` channel per
//! topic that has subscribers. A channel is made by the first subscription
//! to its topic and removed with the last one, so memory follows the topics
//! listened to now, not every topic ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use foldhash::fast::RandomState;
use specgen_ports::{BusError, Delivery, EventBus, MakePayload, Subscription};
use tokio::sync::broadcast;

/// Delivers each payload to every current subscriber of its topic, in
/// publication order, within this process only. Never unavailable.
pub struct InProcessBus {
    capacity: usize,
    topics: Arc<Topics>,
}

// Keyed by ids this server made, hashed on every chunk: foldhash costs
// a fraction of std's SipHash there.
type Topics = Mutex<HashMap<String, Topic, RandomState>>;

struct Topic {
    sender: broadcast::Sender<Bytes>,
    /// Live subscriptions; the topic goes when this reaches zero.
    subscribers: usize,
}

impl InProcessBus {
    /// Each subscriber may fall up to `capacity` payloads behind its topic
    /// (at least 1); beyond that it skips the oldest and is told how many
    /// with [`Delivery::Lagged`].
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), topics: Arc::default() }
    }
}

fn lock(topics: &Topics) -> MutexGuard<'_, HashMap<String, Topic, RandomState>> {
    // No critical section can panic halfway through an update, so a
    // poisoned map is still consistent.
    topics.lock().unwrap_or_else(PoisonError::into_inner)
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Topic names carry session ids: show only how many there are.
        f.debug_struct("InProcessBus")
            .field("capacity", &self.capacity)
            .field("topics", &lock(&self.topics).len())
            .finish_non_exhaustive()
    }
}

impl Drop for InProcessBus {
    fn drop(&mut self) {
        // Nobody can publish any more: dropping the senders ends every
        // subscription's stream instead of leaving it waiting forever.
        lock(&self.topics).clear();
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        self.publish_with(topic, Box::new(move || payload)).await
    }

    /// Builds the payload only for a topic with subscribers, under the same
    /// lock as subscribing: whoever subscribed before gets it, exactly as
    /// with `publish`, and a topic nobody listens to costs no payload.
    async fn publish_with(&self, topic: &str, make: MakePayload<'_>) -> Result<(), BusError> {
        if let Some(topic) = lock(&self.topics).get(topic) {
            // Fails only when every receiver is gone, i.e. nobody listens:
            // the same no-op as a topic without subscribers.
            let _ = topic.sender.send(make());
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let receiver = {
            let mut topics = lock(&self.topics);
            let entry = topics
                .entry(topic.to_owned())
                .or_insert_with(|| Topic { sender: broadcast::channel(self.capacity).0, subscribers: 0 });
            entry.subscribers += 1;
            entry.sender.subscribe()
        };
        let guard = Unsubscribe { topics: Arc::clone(&self.topics), topic: topic.to_owned() };
        Ok(Box::pin(futures::stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
            let delivery = match receiver.recv().await {
                Ok(payload) => Delivery::Payload(payload),
                Err(broadcast::error::RecvError::Lagged(skipped)) => Delivery::Lagged(skipped),
                // Only when the bus itself is dropped.
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((delivery, (receiver, guard)))
        })))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

/// Held by a subscription's stream: dropping it drops the topic's channel
/// with its last subscriber.
struct Unsubscribe {
    topics: Arc<Topics>,
    topic: String,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut topics = lock(&self.topics);
        if let Some(entry) = topics.get_mut(&self.topic) {
            entry.subscribers -= 1;
            if entry.subscribers == 0 {
                topics.remove(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    fn topics(bus: &InProcessBus) -> usize {
        lock(&bus.topics).len()
    }

    #[tokio::test]
    async fn topic_lives_as_long_as_its_subscribers() {
        let bus = InProcessBus::new(8);
        bus.publish("nobody", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(topics(&bus), 0, "publishing alone makes no topic");

        let first = bus.subscribe("session:1").await.unwrap();
        let second = bus.subscribe("session:1").await.unwrap();
        let other = bus.subscribe("session:2").await.unwrap();
        assert_eq!(topics(&bus), 2);
        drop(first);
        assert_eq!(topics(&bus), 2, "one subscriber is left");
        drop(second);
        assert_eq!(topics(&bus), 1);
        drop(other);
        assert_eq!(topics(&bus), 0);

        // Many short-lived topics leave nothing behind.
        for n in 0..1_000 {
            let subscription = bus.subscribe(&format!("session:{n}")).await.unwrap();
            drop(subscription);
        }
        assert_eq!(topics(&bus), 0);
    }

    /// The feed's payloads (serialised frames) cost nothing for a session
    /// nobody on this instance listens to.
    #[tokio::test]
    async fn a_payload_is_built_only_when_someone_listens() {
        let bus = InProcessBus::new(8);
        let built = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let make = |built: &Arc<std::sync::atomic::AtomicUsize>| -> MakePayload<'static> {
            let built = Arc::clone(built);
            Box::new(move || {
                built.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Bytes::from_static(b"frame")
            })
        };
        bus.publish_with("session:1", make(&built)).await.unwrap();
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 0);

        let mut listener = bus.subscribe("session:1").await.unwrap();
        bus.publish_with("session:1", make(&built)).await.unwrap();
        bus.publish_with("session:2", make(&built)).await.unwrap();
        assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(listener.next().await, Some(Delivery::Payload(Bytes::from_static(b"frame"))));
    }

    #[tokio::test]
    async fn slow_subscriber_is_told_it_lagged_then_continues() {
        let bus = InProcessBus::new(4);
        let mut slow = bus.subscribe("t").await.unwrap();
        for n in 0..10u8 {
            bus.publish("t", Bytes::from(vec![n])).await.unwrap();
        }
        // 10 sent into room for 4: the 6 oldest were skipped.
        assert_eq!(slow.next().await, Some(Delivery::Lagged(6)));
        for n in 6..10u8 {
            assert_eq!(slow.next().await, Some(Delivery::Payload(Bytes::from(vec![n]))));
        }
        bus.publish("t", Bytes::from_static(b"after")).await.unwrap();
        assert_eq!(slow.next().await, Some(Delivery::Payload(Bytes::from_static(b"after"))));
    }

    #[tokio::test]
    async fn subscribers_share_the_payload_without_copying() {
        let bus = InProcessBus::new(4);
        let mut first = bus.subscribe("t").await.unwrap();
        let mut second = bus.subscribe("t").await.unwrap();
        let payload = Bytes::from(vec![7u8; 1024]);
        bus.publish("t", payload.clone()).await.unwrap();
        for subscription in [&mut first, &mut second] {
            let Some(Delivery::Payload(received)) = subscription.next().await else { panic!("no payload") };
            assert_eq!(received.as_ptr(), payload.as_ptr(), "the same buffer, not a copy");
        }
    }

    #[tokio::test]
    async fn dropping_the_bus_ends_subscriptions() {
        let bus = InProcessBus::new(4);
        let mut subscription = bus.subscribe("t").await.unwrap();
        drop(bus);
        assert_eq!(subscription.next().await, None);
    }

    #[tokio::test]
    async fn debug_shows_no_topic() {
        let bus = InProcessBus::new(4);
        let _subscription = bus.subscribe("session:ada").await.unwrap();
        let shown = format!("{bus:?}");
        assert!(!shown.contains("ada"), "{shown}");
    }
}
