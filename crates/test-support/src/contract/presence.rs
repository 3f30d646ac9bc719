//! The presence contract: leases by the injected clock. Every case takes a
//! fresh registry and the `ManualClock` it reads, moves that clock instead
//! of sleeping, and uses sessions of its own (the Redis is shared).

use std::sync::Arc;
use std::time::Duration;

use specgen_domain::{SessionId, UserId};
use specgen_ports::{ManualClock, Presence, PresenceRegistry};

use super::rate_limit::START;

/// A clock for a fresh registry.
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

const LEASE: Duration = Duration::from_secs(30);

fn advance(clock: &ManualClock, by: Duration) {
    clock.advance(time::Duration::try_from(by).unwrap());
}

fn at(session: SessionId, user: UserId, connection: u128) -> Presence {
    Presence { session, user, connection }
}

pub async fn first_connection_arrives_last_leaves(registry: &Arc<dyn PresenceRegistry>, _clock: &ManualClock) {
    let (session, ada) = (SessionId::new_v7(), UserId::new_v7());
    assert!(registry.enter(at(session, ada, 1), LEASE).await.unwrap(), "her first tab: she arrives");
    assert!(!registry.enter(at(session, ada, 2), LEASE).await.unwrap(), "a second tab is not news");
    assert!(!registry.leave(at(session, ada, 1)).await.unwrap(), "one tab is still there");
    assert!(registry.leave(at(session, ada, 2)).await.unwrap(), "her last tab: she leaves");
    assert!(registry.enter(at(session, ada, 3), LEASE).await.unwrap(), "back again: she arrives again");
}

pub async fn entering_twice_is_one_hold(registry: &Arc<dyn PresenceRegistry>, _clock: &ManualClock) {
    let (session, ada) = (SessionId::new_v7(), UserId::new_v7());
    assert!(registry.enter(at(session, ada, 1), LEASE).await.unwrap());
    assert!(!registry.enter(at(session, ada, 1), LEASE).await.unwrap(), "already there");
    assert!(registry.leave(at(session, ada, 1)).await.unwrap(), "one leave ends it");
}

pub async fn people_and_sessions_count_apart(registry: &Arc<dyn PresenceRegistry>, _clock: &ManualClock) {
    let (one, two) = (SessionId::new_v7(), SessionId::new_v7());
    let (ada, bob) = (UserId::new_v7(), UserId::new_v7());
    assert!(registry.enter(at(one, ada, 1), LEASE).await.unwrap());
    assert!(registry.enter(at(one, bob, 2), LEASE).await.unwrap(), "another person arrives on their own");
    assert!(registry.enter(at(two, ada, 3), LEASE).await.unwrap(), "another session counts apart");
    assert!(registry.leave(at(one, ada, 1)).await.unwrap());
    assert!(!registry.enter(at(one, bob, 4), LEASE).await.unwrap(), "Ada leaving did not take Bob out");
    assert!(!registry.enter(at(two, ada, 5), LEASE).await.unwrap(), "nor herself out of the other session");
}

pub async fn leaving_unknown_connection_says_gone(registry: &Arc<dyn PresenceRegistry>, _clock: &ManualClock) {
    let (session, ada) = (SessionId::new_v7(), UserId::new_v7());
    assert!(registry.leave(at(session, ada, 9)).await.unwrap(), "never there: not there");
    assert!(registry.enter(at(session, ada, 1), LEASE).await.unwrap());
    assert!(!registry.leave(at(session, ada, 9)).await.unwrap(), "her live tab still holds");
}

pub async fn unrenewed_lease_lapses(registry: &Arc<dyn PresenceRegistry>, clock: &ManualClock) {
    let (session, ada) = (SessionId::new_v7(), UserId::new_v7());
    assert!(registry.enter(at(session, ada, 1), LEASE).await.unwrap());
    advance(clock, LEASE - Duration::from_millis(1));
    assert!(!registry.enter(at(session, ada, 2), Duration::from_secs(1)).await.unwrap(), "still within the lease");
    advance(clock, Duration::from_secs(2));
    // Both leases ended: the first at 30 s, the second at 31 s less 1 ms.
    assert!(registry.enter(at(session, ada, 3), LEASE).await.unwrap(), "the lapsed tabs count for nothing");
    advance(clock, LEASE);
    assert!(registry.leave(at(session, ada, 3)).await.unwrap(), "a lapsed lease leaves nobody behind");
}

pub async fn renewal_keeps_and_restores(registry: &Arc<dyn PresenceRegistry>, clock: &ManualClock) {
    let (session, ada, bob) = (SessionId::new_v7(), UserId::new_v7(), UserId::new_v7());
    assert!(registry.enter(at(session, ada, 1), LEASE).await.unwrap());
    for _ in 0..3 {
        advance(clock, Duration::from_secs(20));
        registry.renew(&[at(session, ada, 1)], LEASE).await.unwrap();
    }
    assert!(!registry.enter(at(session, ada, 2), LEASE).await.unwrap(), "renewed for a minute: still there");
    assert!(registry.enter(at(session, bob, 3), LEASE).await.unwrap());
    advance(clock, LEASE * 2);
    // Bob's lease lapsed (his instance lost Redis for a while); renewing
    // holds it again, and nobody arrives twice.
    registry.renew(&[at(session, bob, 3)], LEASE).await.unwrap();
    assert!(!registry.enter(at(session, bob, 4), LEASE).await.unwrap(), "held again by the renewal");
    // Renewing nothing is fine.
    registry.renew(&[], LEASE).await.unwrap();
}

pub async fn renewal_covers_many(registry: &Arc<dyn PresenceRegistry>, clock: &ManualClock) {
    // More than one batch of a shared registry's renewal.
    let held: Vec<Presence> = (0..600).map(|n| at(SessionId::new_v7(), UserId::new_v7(), n + 1)).collect();
    for presence in &held {
        assert!(registry.enter(*presence, LEASE).await.unwrap());
    }
    advance(clock, Duration::from_secs(20));
    registry.renew(&held, LEASE).await.unwrap();
    advance(clock, Duration::from_secs(20));
    for presence in &held {
        let other_tab = Presence { connection: presence.connection + 10_000, ..*presence };
        assert!(!registry.enter(other_tab, LEASE).await.unwrap(), "every one of them renewed");
    }
}

pub async fn concurrent_tabs_arrive_once(registry: &Arc<dyn PresenceRegistry>, _clock: &ManualClock) {
    let (session, ada) = (SessionId::new_v7(), UserId::new_v7());
    let tabs: Vec<Presence> = (1..=16).map(|n| at(session, ada, n)).collect();
    let arrivals = futures::future::join_all(tabs.iter().map(|tab| registry.enter(*tab, LEASE))).await;
    let arrived = arrivals.into_iter().filter(|arrived| *arrived.as_ref().unwrap()).count();
    assert_eq!(arrived, 1, "sixteen tabs at once, one arrival");
    let departures = futures::future::join_all(tabs.iter().map(|tab| registry.leave(*tab))).await;
    let left = departures.into_iter().filter(|left| *left.as_ref().unwrap()).count();
    assert_eq!(left, 1, "sixteen tabs closing at once, one departure");
}
