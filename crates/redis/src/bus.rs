//! The event bus across instances, over Redis pub/sub on the channels
//! `{namespace}:bus:{topic}`.
//!
//! Each instance holds two connections, however many topics and
//! subscribers it has:
//! - one pub/sub connection, owned by a driver task, subscribed to each
//!   topic that has a local subscriber (SUBSCRIBE with the first,
//!   UNSUBSCRIBE with the last). The driver copies each message once into a
//!   local `broadcast` channel per topic, which shares it between local
//!   subscribers: a payload crosses Redis once per instance, not once per
//!   subscriber.
//! - one multiplexed connection (a `ConnectionManager`) for PUBLISH, so the
//!   payloads of one publisher reach Redis, and so every subscriber, in the
//!   order they were published.
//!
//! When the pub/sub connection drops, the driver reconnects with backoff and
//! subscribes again to every topic still listened to. Redis pub/sub keeps
//! nothing for a subscriber that is away: payloads published on this
//! instance's topics from the moment the connection dropped until it is
//! subscribed again are lost to this instance's subscribers (other
//! instances still get them). So that no reader mistakes that gap for a
//! complete stream, each subscription of those topics receives
//! `Delivery::Lagged(0)` as soon as the drop is seen ("skipped an unknown
//! number"), before anything published after it.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use specgen_ports::{BusError, Delivery, EventBus, Subscription};
use tokio::sync::{Notify, broadcast, watch};

/// Bound on every wait on Redis: a publish, a subscribe (until Redis has
/// confirmed it), connecting, and each command on the pub/sub connection.
const DEADLINE: Duration = Duration::from_secs(1);

/// How far one local subscriber may fall behind its topic before it skips
/// the oldest payloads (and is told with `Lagged`).
const LOCAL_CAPACITY: usize = 1_024;

/// Pub/sub reconnection delays: doubling from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_LAST: Duration = Duration::from_secs(2);

/// An idle pub/sub connection is checked this often, so one that died
/// silently (no FIN, e.g. a network partition) is replaced.
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Delivers each payload to every subscriber of its topic on every
/// instance using the same Redis and namespace. While Redis is unreachable
/// `publish` and `subscribe` fail with [`BusError::Unavailable`] within
/// about a second, and subscriptions already open survive: they resume once
/// the connection is back, after a `Lagged(0)` (see the module).
pub struct RedisBus {
    shared: Arc<Shared>,
    publisher: ConnectionManager,
    driver: tokio::task::JoinHandle<()>,
}

impl RedisBus {
    /// Channels are `{namespace}:bus:{topic}`. Connects lazily: this fails
    /// only on an invalid URL (the error never shows the URL, which may hold
    /// a password) or when not called within a Tokio runtime, whose tasks
    /// then carry the pub/sub connection.
    pub fn new(url: &str, namespace: String) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().context("the Redis event bus needs a Tokio runtime")?;
        crate::remember_home();
        let client = redis::Client::open(url).map_err(|_| anyhow::anyhow!("invalid Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE))
            // Retries beyond the deadline would only be cut off by it.
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_FIRST)
            .set_max_delay(BACKOFF_LAST);
        let publisher = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|_| anyhow::anyhow!("configuring the Redis publisher"))?;
        let (changes, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            prefix: format!("{namespace}:bus:"),
            namespace,
            state: Mutex::new(State { link: Link::Connecting, topics: HashMap::new(), dirty: HashSet::new() }),
            wake: Notify::new(),
            changes,
        });
        let driver = runtime.spawn(drive(client, Arc::clone(&shared)));
        Ok(Self { shared, publisher, driver })
    }
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: it holds the URL, password included. Not the
        // topics either: they name sessions.
        let state = self.shared.state();
        f.debug_struct("RedisBus")
            .field("namespace", &self.shared.namespace)
            .field("link", &state.link.name())
            .field("topics", &state.topics.len())
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        // Closes the pub/sub connection; dropping the senders ends every
        // subscription's stream instead of leaving it waiting forever.
        self.driver.abort();
        self.shared.state().topics.clear();
    }
}

/// The error as the caller sees it. Logged at debug only, and never with
/// the topic or payload.
fn unavailable(error: impl Display) -> BusError {
    tracing::debug!(%error, "redis event bus unavailable");
    BusError::Unavailable(error.to_string())
}

/// `call` within [`DEADLINE`], its error as a description.
async fn within_deadline<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(result) => result.map_err(|error| error.to_string()),
        Err(_) => Err(format!("no answer within {DEADLINE:?}")),
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let mut command = redis::cmd("PUBLISH");
        command.arg(self.shared.channel(topic)).arg(&payload[..]);
        // A clone shares the one connection, so publications stay in order.
        let mut connection = self.publisher.clone();
        // The reply is how many subscribers (instances) got it; none is fine.
        // On the application's runtime: a (re)connection made by this call
        // must outlive the HTTP workers.
        crate::on_home(async move { within_deadline(command.query_async::<i64>(&mut connection)).await })
            .await
            .map_err(unavailable)?
            .map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        // Before looking at the state, so no change after the look is missed.
        let mut changes = self.shared.changes.subscribe();
        let (receiver, needs_driver) = {
            let mut state = self.shared.state();
            if let Link::Down(reason) = &state.link {
                // Fail at once rather than wait out the deadline.
                return Err(unavailable(reason));
            }
            let up = matches!(state.link, Link::Up);
            let entry = state.topics.entry(topic.to_owned()).or_insert_with(Topic::new);
            entry.subscribers += 1;
            let receiver = entry.sender.subscribe();
            // Connecting: the driver subscribes to every topic once up.
            let needs_driver = up && !entry.confirmed;
            if needs_driver {
                state.dirty.insert(topic.to_owned());
            }
            (receiver, needs_driver)
        };
        // From here on, any early return unsubscribes.
        let guard = Unsubscribe { shared: Arc::clone(&self.shared), topic: topic.to_owned() };
        if needs_driver {
            self.shared.wake.notify_one();
        }
        // "From now on" across instances means from when Redis has
        // confirmed the SUBSCRIBE: wait for that.
        let confirmed = async {
            loop {
                match self.shared.readiness(topic) {
                    Readiness::Confirmed => return Ok(()),
                    Readiness::Unavailable(reason) => return Err(reason),
                    Readiness::Pending => {}
                }
                if changes.changed().await.is_err() {
                    return Err("the event bus was dropped".to_owned());
                }
            }
        };
        match tokio::time::timeout(DEADLINE, confirmed).await {
            Ok(Ok(())) => Ok(subscription(receiver, guard)),
            Ok(Err(reason)) => Err(unavailable(reason)),
            Err(_) => Err(unavailable(format!("no subscription within {DEADLINE:?}"))),
        }
    }

    /// The publisher's connection answers, and the subscriptions' link is
    /// not down (while it is, this instance hears no other).
    async fn ping(&self) -> Result<(), BusError> {
        if let Link::Down(reason) = &self.shared.state().link {
            return Err(unavailable(reason));
        }
        let mut connection = self.publisher.clone();
        crate::on_home(async move { within_deadline(redis::cmd("PING").query_async::<()>(&mut connection)).await })
            .await
            .map_err(unavailable)?
            .map_err(unavailable)
    }
}

/// What the local channels carry.
#[derive(Clone)]
enum Event {
    Payload(Bytes),
    /// The pub/sub connection dropped: payloads may be missing here.
    Gap,
}

fn subscription(receiver: broadcast::Receiver<Event>, guard: Unsubscribe) -> Subscription {
    Box::pin(futures::stream::unfold((receiver, guard), |(mut receiver, guard)| async move {
        let delivery = match receiver.recv().await {
            Ok(Event::Payload(payload)) => Delivery::Payload(payload),
            // The number lost is unknown.
            Ok(Event::Gap) => Delivery::Lagged(0),
            Err(broadcast::error::RecvError::Lagged(skipped)) => Delivery::Lagged(skipped),
            // Only when the bus itself is dropped.
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((delivery, (receiver, guard)))
    }))
}

/// Held by a subscription's stream: dropping the last one of a topic
/// removes the topic and has the driver UNSUBSCRIBE.
struct Unsubscribe {
    shared: Arc<Shared>,
    topic: String,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        let Some(entry) = state.topics.get_mut(&self.topic) else {
            return;
        };
        entry.subscribers -= 1;
        if entry.subscribers > 0 {
            return;
        }
        state.topics.remove(&self.topic);
        if matches!(state.link, Link::Up) {
            // Otherwise nothing is subscribed now, and the driver subscribes
            // only to the topics left once it is back.
            state.dirty.insert(std::mem::take(&mut self.topic));
            drop(state);
            self.shared.wake.notify_one();
        }
    }
}

/// What the subscribers and the driver share.
struct Shared {
    namespace: String,
    /// `{namespace}:bus:`, the start of every channel.
    prefix: String,
    state: Mutex<State>,
    /// Tells the driver `dirty` has topics to look at.
    wake: Notify,
    /// Bumped when a topic is confirmed or the link changes, for
    /// subscribers waiting on either.
    changes: watch::Sender<u64>,
}

struct State {
    link: Link,
    /// The topics with local subscribers: exactly those the driver keeps
    /// subscribed in Redis.
    topics: HashMap<String, Topic>,
    /// Topics added or removed since the driver last looked (while up).
    dirty: HashSet<String>,
}

enum Link {
    /// Not connected yet: subscribers wait for the first connection.
    Connecting,
    Up,
    /// Lost or refused, and why: subscribers fail at once until it is back.
    Down(String),
}

impl Link {
    fn name(&self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Up => "up",
            Link::Down(_) => "down",
        }
    }
}

struct Topic {
    sender: broadcast::Sender<Event>,
    subscribers: usize,
    /// Redis has confirmed the SUBSCRIBE on the current connection.
    confirmed: bool,
}

impl Topic {
    fn new() -> Self {
        Self { sender: broadcast::channel(LOCAL_CAPACITY).0, subscribers: 0, confirmed: false }
    }
}

enum Readiness {
    Confirmed,
    Pending,
    Unavailable(String),
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // No critical section can panic halfway through an update, so a
        // poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn readiness(&self, topic: &str) -> Readiness {
        let state = self.state();
        if let Link::Down(reason) = &state.link {
            return Readiness::Unavailable(reason.clone());
        }
        match state.topics.get(topic) {
            Some(entry) if entry.confirmed => Readiness::Confirmed,
            Some(_) => Readiness::Pending,
            None => Readiness::Unavailable("the event bus was dropped".to_owned()),
        }
    }

    /// A new pub/sub connection: every topic is to be subscribed on it.
    fn connected(&self) {
        let mut state = self.state();
        let was = std::mem::replace(&mut state.link, Link::Up);
        let State { topics, dirty, .. } = &mut *state;
        dirty.clear();
        dirty.extend(topics.keys().cloned());
        drop(state);
        if matches!(was, Link::Down(_)) {
            tracing::info!(namespace = %self.namespace, "redis event bus reconnected");
        }
        self.changed();
    }

    /// The pub/sub connection is gone (or never came): tell the topics'
    /// subscribers they may have missed payloads.
    fn disconnected(&self, reason: String) {
        let mut state = self.state();
        let was = std::mem::replace(&mut state.link, Link::Down(reason.clone()));
        for entry in state.topics.values_mut() {
            if entry.confirmed {
                // Fails only when no receiver is left, which is fine.
                let _ = entry.sender.send(Event::Gap);
                entry.confirmed = false;
            }
        }
        // Rebuilt from the topics on the next connection.
        state.dirty.clear();
        drop(state);
        if matches!(was, Link::Down(_)) {
            tracing::debug!(%reason, "redis event bus still disconnected");
        } else {
            tracing::warn!(
                namespace = %self.namespace,
                %reason,
                "redis event bus disconnected; payloads published until it is back are lost here"
            );
        }
        self.changed();
    }

    /// One message from Redis, to the local subscribers of its topic.
    fn dispatch(&self, message: &redis::Msg) {
        let Some(topic) = message.get_channel_name().strip_prefix(&self.prefix) else {
            return;
        };
        // The one copy per instance, made outside the lock; each local
        // subscriber then gets a reference to it.
        let payload = Bytes::copy_from_slice(message.get_payload_bytes());
        // Not to a topic waiting for its SUBSCRIBE to be confirmed: what
        // arrives before that was published before it subscribed (see
        // `reconcile`).
        if let Some(entry) = self.state().topics.get(topic)
            && entry.confirmed
        {
            // Fails only when no receiver is left, which is fine.
            let _ = entry.sender.send(Event::Payload(payload));
        }
    }
}

/// Owns the pub/sub connection for the bus's whole life: connects, serves,
/// and reconnects with backoff when it drops.
async fn drive(client: redis::Client, shared: Arc<Shared>) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        let attempt = Instant::now();
        let reason = match within_deadline(client.get_async_pubsub()).await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                serve(&shared, &mut sink, &mut stream).await
            }
            Err(reason) => reason,
        };
        shared.disconnected(reason);
        if attempt.elapsed() > BACKOFF_LAST {
            // It was up a good while: this is a new outage, start over.
            backoff = BACKOFF_FIRST;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_LAST);
    }
}

/// Keeps one connection's subscriptions in step with the topics and hands
/// out its messages, until it fails; returns why.
async fn serve(shared: &Shared, sink: &mut PubSubSink, stream: &mut PubSubStream) -> String {
    // Up only once it answers: a server that accepts and then closes or
    // stays silent would otherwise flap up and down.
    if let Err(reason) = within_deadline(sink.ping::<redis::Value>()).await {
        return reason;
    }
    // The channels this connection is subscribed to.
    let mut subscribed = HashSet::new();
    shared.connected();
    let mut health = tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_EVERY, HEALTH_EVERY);
    loop {
        if let Err(reason) = reconcile(shared, sink, stream, &mut subscribed).await {
            return reason;
        }
        tokio::select! {
            message = stream.next() => match message {
                Some(message) => shared.dispatch(&message),
                None => return "the pub/sub connection closed".to_owned(),
            },
            () = shared.wake.notified() => {}
            _ = health.tick() => {
                if let Err(reason) = within_deadline(sink.ping::<redis::Value>()).await {
                    return reason;
                }
            }
        }
    }
}

/// Subscribes to the dirty topics that have subscribers and unsubscribes
/// from those that no longer do, until nothing is dirty.
async fn reconcile(
    shared: &Shared,
    sink: &mut PubSubSink,
    stream: &mut PubSubStream,
    subscribed: &mut HashSet<String>,
) -> Result<(), String> {
    loop {
        let (to_subscribe, to_unsubscribe) = {
            let mut state = shared.state();
            if state.dirty.is_empty() {
                return Ok(());
            }
            let dirty = std::mem::take(&mut state.dirty);
            let mut to_subscribe = Vec::new();
            let mut to_unsubscribe = Vec::new();
            for topic in dirty {
                match state.topics.get(&topic) {
                    // Subscribing again to a channel already subscribed is
                    // harmless, and confirms it for the newcomer.
                    Some(entry) if !entry.confirmed => to_subscribe.push(topic),
                    Some(_) => {}
                    None if subscribed.contains(&topic) => to_unsubscribe.push(topic),
                    None => {}
                }
            }
            (to_subscribe, to_unsubscribe)
        };
        // Messages keep queueing in `stream` meanwhile, in order.
        if !to_unsubscribe.is_empty() {
            let channels: Vec<String> = to_unsubscribe.iter().map(|topic| shared.channel(topic)).collect();
            within_deadline(sink.unsubscribe(channels)).await?;
            for topic in &to_unsubscribe {
                subscribed.remove(topic);
            }
        }
        if !to_subscribe.is_empty() {
            let channels: Vec<String> = to_subscribe.iter().map(|topic| shared.channel(topic)).collect();
            within_deadline(sink.subscribe(channels)).await?;
            // The connection hands over messages before the confirmations
            // that follow them, so every message Redis sent before it
            // subscribed is queued now: hand those out while the topics are
            // still unconfirmed, and their new subscribers skip them.
            while let Some(message) = stream.next().now_or_never() {
                match message {
                    Some(message) => shared.dispatch(&message),
                    None => return Err("the pub/sub connection closed".to_owned()),
                }
            }
            {
                let mut state = shared.state();
                for topic in to_subscribe {
                    // A topic dropped meanwhile is dirty again, and goes on
                    // the next round.
                    if let Some(entry) = state.topics.get_mut(&topic) {
                        entry.confirmed = true;
                    }
                    subscribed.insert(topic);
                }
            }
            shared.changed();
        }
    }
}
