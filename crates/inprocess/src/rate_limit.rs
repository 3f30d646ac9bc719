//! Fixed-window counters in one mutex-guarded map. Each key keeps only the
//! counter of its latest window, and counters of ended windows are swept
//! whenever the map has doubled since the last sweep, so memory follows the
//! number of keys live in the current window, not the traffic ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use specgen_ports::RateWindow as Window;
use specgen_ports::{Clock, RateDecision, RateLimitError, RateLimiter, RateRule};

/// Below this many counters the map is never swept: it costs more than the
/// memory it would give back.
const MIN_SWEEP_AT: usize = 1024;

/// Counts hits per key in fixed windows of the injected clock, for this
/// process only. Cheap (one short critical section per call, no await
/// inside it) and never unavailable.
pub struct InProcessRateLimiter {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl InProcessRateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, state: Mutex::new(State { windows: HashMap::new(), len: 0, sweep_at: MIN_SWEEP_AT }) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing in the critical sections can panic halfway through an
        // update, so a poisoned map is still consistent and safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for InProcessRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are emails and client addresses: show only how many there are.
        f.debug_struct("InProcessRateLimiter").field("counters", &self.state().len).finish_non_exhaustive()
    }
}

#[async_trait]
impl RateLimiter for InProcessRateLimiter {
    async fn hit(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        let window = Window::at(self.clock.now(), rule.window);
        let count = {
            let mut state = self.state();
            let count = state.hit(key, &window);
            state.sweep_if_grown(window.now_ms);
            count
        };
        Ok(window.decision(rule, count, count <= rule.limit))
    }

    async fn peek(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        let window = Window::at(self.clock.now(), rule.window);
        let count = self.state().count(key, &window);
        Ok(window.decision(rule, count, count < rule.limit))
    }
}

struct State {
    /// Window length (ms) -> key -> the key's latest counter. The length is
    /// part of the identity so two rules on one key count apart; nesting
    /// (rather than a `(u64, String)` key) lets lookups borrow the `&str`.
    windows: HashMap<u64, HashMap<String, Counter>>,
    /// Counters across all window lengths.
    len: usize,
    /// Sweep when `len` reaches this.
    sweep_at: usize,
}

struct Counter {
    index: i128,
    count: u32,
    ends_at_ms: i128,
}

impl State {
    fn hit(&mut self, key: &str, window: &Window) -> u32 {
        let counters = self.windows.entry(window.len_ms).or_default();
        if let Some(counter) = counters.get_mut(key) {
            if counter.index != window.index {
                // A later window (or the clock stepped back): start over.
                *counter = Counter { index: window.index, count: 0, ends_at_ms: window.ends_at_ms };
            }
            counter.count = counter.count.saturating_add(1);
            return counter.count;
        }
        counters.insert(key.to_owned(), Counter { index: window.index, count: 1, ends_at_ms: window.ends_at_ms });
        self.len += 1;
        1
    }

    fn count(&self, key: &str, window: &Window) -> u32 {
        self.windows
            .get(&window.len_ms)
            .and_then(|counters| counters.get(key))
            .filter(|counter| counter.index == window.index)
            .map_or(0, |counter| counter.count)
    }

    fn sweep_if_grown(&mut self, now_ms: i128) {
        if self.len < self.sweep_at {
            return;
        }
        self.windows.retain(|_, counters| {
            counters.retain(|_, counter| counter.ends_at_ms > now_ms);
            // Give back the table a burst of keys left behind, keeping room
            // to grow again without rehashing at once.
            counters.shrink_to(counters.len() * 2);
            !counters.is_empty()
        });
        self.len = self.windows.values().map(HashMap::len).sum();
        // Doubling keeps sweeps amortised O(1) per hit even when every
        // counter is still live.
        self.sweep_at = (self.len * 2).max(MIN_SWEEP_AT);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use specgen_ports::ManualClock;
    use time::macros::datetime;

    use super::*;

    #[tokio::test]
    async fn stale_windows_are_swept() {
        const KEYS_PER_WINDOW: usize = 5_000;
        let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
        let limiter = InProcessRateLimiter::new(clock.clone());
        let rule = RateRule::new(3, Duration::from_secs(60));
        let mut peak = 0;
        for window in 0..20 {
            for k in 0..KEYS_PER_WINDOW {
                // Fresh keys every window: nothing is ever reused in place.
                let key = format!("client-{window}-{k}");
                assert!(limiter.hit(&key, rule).await.unwrap().allowed);
                peak = peak.max(limiter.state().len);
            }
            clock.advance(time::Duration::minutes(1));
        }
        // 100 000 keys were seen; never more than twice one window's worth
        // was held at once.
        assert!(peak <= 2 * KEYS_PER_WINDOW, "peak {peak} counters for {KEYS_PER_WINDOW} live keys");
        {
            // The running total agrees with the maps it sums.
            let state = limiter.state();
            assert_eq!(state.len, state.windows.values().map(HashMap::len).sum::<usize>());
        }

        // Once the clock has moved on, the next growth-triggered sweep drops
        // every old window. The map holds at least one window's worth and
        // sweeps by twice that, so this many new keys is sure to trigger it.
        clock.advance(time::Duration::hours(1));
        let late = KEYS_PER_WINDOW + 1;
        for k in 0..late {
            limiter.hit(&format!("late-{k}"), rule).await.unwrap();
        }
        let state = limiter.state();
        assert_eq!(state.len, late);
        assert!(state.windows[&60_000].keys().all(|key| key.starts_with("late-")));
    }

    #[tokio::test]
    async fn small_maps_are_left_alone() {
        let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 0:00 UTC)));
        let limiter = InProcessRateLimiter::new(clock.clone());
        let rule = RateRule::new(1, Duration::from_secs(1));
        for k in 0..10 {
            limiter.hit(&format!("k{k}"), rule).await.unwrap();
            clock.advance(time::Duration::seconds(5));
        }
        // Stale, but below the threshold: kept until the map grows.
        assert_eq!(limiter.state().len, 10);
    }
}
