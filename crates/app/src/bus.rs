//! An event bus that survives the loss of its shared transport: while the
//! shared bus (Redis) is down, events are published in-process, so members
//! connected to the same instance still hear each other; every subscription
//! listens to both, and attaches to the shared bus again once it is back.
//! Each payload goes to exactly one of the two, so nothing is delivered twice.
//! What other instances published during the outage is lost to this one;
//! the shared bus reports that gap (`Lagged`) to its subscribers.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use specgen_ports::{BusError, EventBus, Subscription};
use tokio::time::Instant;

/// How long the shared bus is left alone after it failed, before the next
/// publish tries it again (publishes meanwhile go in-process at once).
const REST_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Pause between attempts to attach a subscription to the shared bus.
const RETRY_SUBSCRIBE_EVERY: Duration = Duration::from_millis(500);

pub struct FailoverBus {
    shared: Arc<dyn EventBus>,
    local: Arc<dyn EventBus>,
    /// Until when the shared bus is considered down.
    down_until: Mutex<Option<Instant>>,
}

impl FailoverBus {
    pub fn new(shared: Arc<dyn EventBus>, local: Arc<dyn EventBus>) -> Self {
        Self { shared, local, down_until: Mutex::new(None) }
    }

    fn down_until(&self) -> MutexGuard<'_, Option<Instant>> {
        self.down_until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shared_resting(&self) -> bool {
        self.down_until().is_some_and(|until| Instant::now() < until)
    }

    fn shared_failed(&self, error: &BusError) {
        let mut down_until = self.down_until();
        if down_until.is_none() {
            tracing::warn!(error = %error, "shared event bus down; fan-out continues within this instance");
            metrics::counter!("bus_failovers_total").increment(1);
        }
        *down_until = Some(Instant::now() + REST_AFTER_FAILURE);
    }

    fn shared_worked(&self) {
        if self.down_until().take().is_some() {
            tracing::info!("shared event bus back; fan-out across instances again");
        }
    }
}

#[async_trait]
impl EventBus for FailoverBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        if !self.shared_resting() {
            match self.shared.publish(topic, payload.clone()).await {
                Ok(()) => {
                    self.shared_worked();
                    return Ok(());
                }
                Err(e) => self.shared_failed(&e),
            }
        }
        self.local.publish(topic, payload).await
    }

    async fn subscribe(&self, topic: &str) -> Result<Subscription, BusError> {
        let local = self.local.subscribe(topic).await?;
        let attached = if self.shared_resting() {
            None
        } else {
            match self.shared.subscribe(topic).await {
                Ok(subscription) => {
                    self.shared_worked();
                    Some(subscription)
                }
                Err(e) => {
                    self.shared_failed(&e);
                    None
                }
            }
        };
        let shared = match attached {
            Some(subscription) => subscription,
            // Keeps trying in the background of the stream: the subscriber
            // hears local events now, and shared ones once attached.
            None => attach_later(Arc::clone(&self.shared), topic.to_owned()),
        };
        Ok(Box::pin(futures::stream::select(local, shared)))
    }

    /// The shared bus's answer: while it is down, fan-out reaches only
    /// this instance's own connections.
    async fn ping(&self) -> Result<(), BusError> {
        self.shared.ping().await
    }
}

/// A subscription to `topic` on `bus` that is made as soon as the bus takes
/// it, retried until then.
fn attach_later(bus: Arc<dyn EventBus>, topic: String) -> Subscription {
    Box::pin(
        futures::stream::once(async move {
            loop {
                tokio::time::sleep(RETRY_SUBSCRIBE_EVERY).await;
                if let Ok(subscription) = bus.subscribe(&topic).await {
                    return subscription;
                }
            }
        })
        .flatten(),
    )
}
