//! The in-process registry against the presence contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use specgen_inprocess::InProcessPresence;
use specgen_ports::{ManualClock, PresenceRegistry};
use specgen_test_support::contract::presence::manual_clock;

async fn fresh() -> (Arc<dyn PresenceRegistry>, Arc<ManualClock>) {
    let clock = manual_clock();
    (Arc::new(InProcessPresence::new(clock.clone())), clock)
}

specgen_test_support::presence_contract_tests!(fresh);
