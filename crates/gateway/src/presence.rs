//! Presence across instances: each joined connection holds a lease in the
//! presence registry, renewed by this instance while it stays. Arrivals and
//! departures are decided there, so a person with tabs on two instances
//! arrives once and leaves once. While the registry cannot answer, this
//! instance's own count decides, as if it were alone.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use specgen_ports::{Presence, PresenceRegistry};

pub(crate) struct Presences {
    registry: Arc<dyn PresenceRegistry>,
    lease: Duration,
    /// Every presence this instance's connections hold, to renew.
    held: Mutex<HashSet<Presence>>,
    /// Taken by a renewal alone and by departures together: a renewal that
    /// read a presence before it left must not hold it again after.
    renewing: tokio::sync::RwLock<()>,
}

impl Presences {
    pub fn new(registry: Arc<dyn PresenceRegistry>, lease: Duration) -> Self {
        Self { registry, lease, held: Mutex::default(), renewing: tokio::sync::RwLock::new(()) }
    }

    fn held(&self) -> MutexGuard<'_, HashSet<Presence>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Holds `presence`; true when its person has just arrived in the
    /// session. `first_here`: whether this is their first connection in it
    /// on this instance.
    pub async fn enter(&self, presence: Presence, first_here: bool) -> bool {
        self.held().insert(presence);
        match self.registry.enter(presence, self.lease).await {
            Ok(arrived) => arrived,
            Err(error) => {
                // Debug only: during an outage every join would log, and
                // the outage is reported by readiness and the bus already.
                tracing::debug!(%error, "presence counted on this instance only");
                first_here
            }
        }
    }

    /// Ends `presence`; true when its person has just left the session.
    /// `last_here`: whether it was their last connection in it here.
    pub async fn leave(&self, presence: Presence, last_here: bool) -> bool {
        let _no_renewal = self.renewing.read().await;
        self.held().remove(&presence);
        match self.registry.leave(presence).await {
            Ok(left) => left,
            Err(error) => {
                tracing::debug!(%error, "presence counted on this instance only");
                last_here
            }
        }
    }

    /// Renews every held lease a third of a lease apart, until `presences`
    /// is dropped: one failed renewal leaves two more tries before a lease
    /// lapses.
    pub fn renew_while_alive(presences: Weak<Self>, runtime: &tokio::runtime::Handle) {
        let Some(every) = presences.upgrade().map(|p| p.lease / 3) else { return };
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(presences) = presences.upgrade() else { return };
                let _alone = presences.renewing.write().await;
                let held: Vec<Presence> = presences.held().iter().copied().collect();
                if let Err(error) = presences.registry.renew(&held, presences.lease).await {
                    tracing::warn!(%error, held = held.len(), "could not renew presence leases");
                }
            }
        });
    }
}
