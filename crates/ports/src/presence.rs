//! Presence: who is in which session, counted over every instance.
//!
//! A connection that joins a session holds a lease on its person's presence
//! there. The person is present while any of their connections, on any
//! instance, holds a lease that has not lapsed. An instance renews the
//! leases of its connections while they stay, so those of an instance that
//! died lapse by themselves.

use std::time::Duration;

use async_trait::async_trait;
use specgen_domain::{SessionId, UserId};

/// One connection's hold on its person's presence in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Presence {
    pub session: SessionId,
    pub user: UserId,
    /// The connection, unique across instances.
    pub connection: u128,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The shared registry (Redis) cannot answer now.
    #[error("presence registry unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PresenceRegistry: Send + Sync {
    /// Holds `presence` until `lease` from now (by the adapter's clock).
    /// True when the person had no live connection in the session before
    /// (this one included: entering again is no arrival): they have just
    /// arrived.
    async fn enter(&self, presence: Presence, lease: Duration) -> Result<bool, PresenceError>;

    /// Ends the connection's hold. True when the person has no live
    /// connection left in the session: they have just left.
    async fn leave(&self, presence: Presence) -> Result<bool, PresenceError>;

    /// Extends every presence of `held` until `lease` from now, holding
    /// again any that lapsed.
    async fn renew(&self, held: &[Presence], lease: Duration) -> Result<(), PresenceError>;
}
