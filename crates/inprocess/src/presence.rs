//! Presence leases in one mutex-guarded map, for a single instance: per
//! (session, person), each connection's lease end by the injected clock. A
//! person with no live lease left is removed, and every renewal sweeps
//! lapsed leases, so the map holds only who is there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use specgen_ports::{Clock, Presence, PresenceError, PresenceRegistry};
use time::OffsetDateTime;

/// (session, person) as plain numbers.
type Place = (u128, u128);

/// Never unavailable; one short critical section per call.
pub struct InProcessPresence {
    clock: Arc<dyn Clock>,
    /// Lease ends by connection, per place.
    places: Mutex<HashMap<Place, HashMap<u128, OffsetDateTime>>>,
}

impl InProcessPresence {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, places: Mutex::default() }
    }

    fn places(&self) -> MutexGuard<'_, HashMap<Place, HashMap<u128, OffsetDateTime>>> {
        // No critical section can panic halfway through an update.
        self.places.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn until(&self, lease: Duration) -> OffsetDateTime {
        self.clock.now().saturating_add(time::Duration::try_from(lease).unwrap_or(time::Duration::MAX))
    }
}

impl std::fmt::Debug for InProcessPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessPresence").field("places", &self.places().len()).finish_non_exhaustive()
    }
}

fn place(presence: &Presence) -> Place {
    (presence.session.as_uuid().as_u128(), presence.user.as_uuid().as_u128())
}

#[async_trait]
impl PresenceRegistry for InProcessPresence {
    async fn enter(&self, presence: Presence, lease: Duration) -> Result<bool, PresenceError> {
        let now = self.clock.now();
        let until = self.until(lease);
        let mut places = self.places();
        let leases = places.entry(place(&presence)).or_default();
        leases.retain(|_, end| *end > now);
        let arrived = leases.is_empty();
        leases.insert(presence.connection, until);
        Ok(arrived)
    }

    async fn leave(&self, presence: Presence) -> Result<bool, PresenceError> {
        let now = self.clock.now();
        let mut places = self.places();
        let place = place(&presence);
        let Some(leases) = places.get_mut(&place) else { return Ok(true) };
        leases.remove(&presence.connection);
        leases.retain(|_, end| *end > now);
        let left = leases.is_empty();
        if left {
            places.remove(&place);
        }
        Ok(left)
    }

    async fn renew(&self, held: &[Presence], lease: Duration) -> Result<(), PresenceError> {
        let now = self.clock.now();
        let until = self.until(lease);
        let mut places = self.places();
        for presence in held {
            places.entry(place(presence)).or_default().insert(presence.connection, until);
        }
        places.retain(|_, leases| {
            leases.retain(|_, end| *end > now);
            !leases.is_empty()
        });
        Ok(())
    }
}
