//! Fan-out between instances, and the log that makes resume exact.
//!
//! `EventBus`: every payload published on a topic reaches every subscriber
//! of that topic on any instance, in publication order per publisher.
//! Payloads are opaque bytes, serialised once by the publisher and shared
//! (not copied) between local subscribers.
//!
//! `ReplyLog`: the chunks of a reply in flight, readable by every instance,
//! kept for the reply's life plus a grace period, so a client that
//! reconnects gets exactly the chunks it missed.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The shared transport (Redis) cannot answer now.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// A live subscription: payloads in order. Dropping it unsubscribes.
/// `Lagged(n)` reports that this subscriber fell `n` payloads behind and they
/// were skipped (its reader must resynchronise, e.g. by closing the client).
pub type Subscription = Pin<Box<dyn Stream<Item = Delivery> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Payload(Bytes),
    Lagged(u64),
}

/// Builds a payload; see [`EventBus::publish_with`].
pub type MakePayload<'a> = Box<dyn FnOnce() -> Bytes + Send + 'a>;

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;

    /// Publishes the payload `make` builds, as [`publish`](Self::publish)
    /// would. A bus that can tell nobody listens on `topic` (the in-process
    /// one) may skip building it; by default it is always built.
    async fn publish_with(&self, topic: &str, make: MakePayload<'_>) -> Result<(), BusError> {
        self.publish(topic, make()).await
    }

    /// Starts receiving what is published on `topic` from now on.
    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError>;

    /// Answers `Ok` while publications reach every instance (for the
    /// readiness report).
    async fn ping(&self) -> Result<(), BusError>;
}

#[async_trait]
pub trait ReplyLog: Send + Sync {
    /// Appends chunk `seq` (1, 2, 3, ... without gaps) of reply `reply`.
    async fn append(&self, reply: &str, seq: u64, chunk: &str) -> Result<(), BusError>;

    /// The chunks after `after_seq`, in order.
    async fn read_after(&self, reply: &str, after_seq: u64) -> Result<Vec<(u64, String)>, BusError>;

    /// The reply ended: keep its chunks only `grace` longer.
    async fn finish(&self, reply: &str, grace: Duration) -> Result<(), BusError>;
}
