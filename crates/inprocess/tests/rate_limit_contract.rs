//! The in-process limiter against the rate-limiter contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use specgen_inprocess::InProcessRateLimiter;
use specgen_ports::{ManualClock, RateLimiter};
use specgen_test_support::contract::rate_limit::manual_clock;

async fn fresh() -> (Arc<dyn RateLimiter>, Arc<ManualClock>) {
    let clock = manual_clock();
    let limiter = InProcessRateLimiter::new(clock.clone());
    (Arc::new(limiter), clock)
}

specgen_test_support::rate_limit_contract_tests!(fresh);
