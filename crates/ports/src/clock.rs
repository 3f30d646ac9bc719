//! Time as a port, so rules that depend on it (token expiry, rate-limit
//! windows) can be driven by a test clock instead of sleeping.

use std::sync::Mutex;

use time::OffsetDateTime;

pub trait Clock: Send + Sync {
    /// Now, truncated to microseconds (what the stores keep).
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        specgen_domain::time_util::to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(specgen_domain::time_util::to_micros(start)))
    }

    pub fn advance(&self, by: time::Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        match self.0.lock() {
            Ok(now) => *now,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}
