//! The rate-limiter contract: fixed windows of the injected clock. Every case
//! takes a fresh limiter and the `ManualClock` it reads, moves that clock
//! instead of sleeping, and uses keys of its own (the Redis is shared).

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{Clock, ManualClock, RateDecision, RateLimiter, RateRule};
use time::OffsetDateTime;
use time::macros::datetime;

/// Where [`manual_clock`] starts: on a boundary of every window the cases
/// use. The cases align the clock themselves anyway, so any start works.
pub const START: OffsetDateTime = datetime!(2030-01-01 0:00 UTC);

/// A clock for a fresh limiter, at [`START`].
pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

/// A key no other test (or earlier run against the same Redis) uses.
fn key(label: &str) -> String {
    format!("{label}:{}", uuid::Uuid::new_v4())
}

/// Moves the clock to the start of the next window of `window` (or leaves
/// it if already there), so the cases can assert exact `reset_after`s.
fn align(clock: &ManualClock, window: Duration) {
    let window_ns = i128::try_from(window.as_nanos()).unwrap();
    let into = clock.now().unix_timestamp_nanos().rem_euclid(window_ns);
    if into != 0 {
        clock.advance(time::Duration::nanoseconds(i64::try_from(window_ns - into).unwrap()));
    }
}

fn advance(clock: &ManualClock, by: Duration) {
    clock.advance(time::Duration::try_from(by).unwrap());
}

fn decision(allowed: bool, limit: u32, remaining: u32, reset_after: Duration) -> RateDecision {
    RateDecision { allowed, limit, remaining, reset_after }
}

const MINUTE: Duration = Duration::from_secs(60);

pub async fn burst_then_refused(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let rule = RateRule::new(5, MINUTE);
    let key = key("login:ada@example.com");
    align(clock, MINUTE);
    advance(clock, Duration::from_secs(10));
    for remaining in (0..5).rev() {
        assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 5, remaining, Duration::from_secs(50)));
    }
    let refused = decision(false, 5, 0, Duration::from_secs(50));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), refused);
    // Still refused: hits over the limit count, they never free a slot.
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), refused);
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), refused);
}

pub async fn peek_counts_nothing(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let rule = RateRule::new(3, MINUTE);
    let key = key("ip:192.0.2.7");
    align(clock, MINUTE);
    let fresh = decision(true, 3, 3, MINUTE);
    for _ in 0..5 {
        assert_eq!(limiter.peek(&key, rule).await.unwrap(), fresh);
    }
    // The peeks above left all three hits.
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 3, 2, MINUTE));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 3, 1, MINUTE));
    // One left: peek says one more would pass, and still counts nothing.
    for _ in 0..3 {
        assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(true, 3, 1, MINUTE));
    }
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 3, 0, MINUTE));
    // At the limit: the next hit would not pass.
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(false, 3, 0, MINUTE));
    // Over the limit: still refused, still nothing left.
    assert!(!limiter.hit(&key, rule).await.unwrap().allowed);
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(false, 3, 0, MINUTE));
}

pub async fn new_window_starts_from_zero(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let rule = RateRule::new(2, MINUTE);
    let key = key("login:bob@example.com");
    align(clock, MINUTE);
    for _ in 0..4 {
        limiter.hit(&key, rule).await.unwrap();
    }
    // A millisecond before the boundary the window still holds.
    advance(clock, MINUTE - Duration::from_millis(1));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(false, 2, 0, Duration::from_millis(1)));
    // On the boundary the count starts again, whatever the old window held.
    advance(clock, Duration::from_millis(1));
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(true, 2, 2, MINUTE));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 2, 1, MINUTE));
    // Several windows later: the same.
    advance(clock, MINUTE * 7 + Duration::from_secs(30));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 2, 1, Duration::from_secs(30)));
}

pub async fn keys_are_independent(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let rule = RateRule::new(2, MINUTE);
    let a = key("login:a@example.com");
    let b = key("login:b@example.com");
    align(clock, MINUTE);
    for _ in 0..3 {
        limiter.hit(&a, rule).await.unwrap();
    }
    assert!(!limiter.peek(&a, rule).await.unwrap().allowed);
    assert_eq!(limiter.peek(&b, rule).await.unwrap(), decision(true, 2, 2, MINUTE));
    assert_eq!(limiter.hit(&b, rule).await.unwrap(), decision(true, 2, 1, MINUTE));
    // b's hit did not touch a.
    assert_eq!(limiter.peek(&a, rule).await.unwrap(), decision(false, 2, 0, MINUTE));
}

pub async fn window_lengths_count_apart(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let per_minute = RateRule::new(1, MINUTE);
    let per_hour = RateRule::new(1, MINUTE * 60);
    let key = key("register:192.0.2.9");
    align(clock, MINUTE * 60);
    assert!(limiter.hit(&key, per_minute).await.unwrap().allowed);
    assert!(!limiter.hit(&key, per_minute).await.unwrap().allowed);
    // The same key under an hourly rule has its own counter.
    assert_eq!(limiter.hit(&key, per_hour).await.unwrap(), decision(true, 1, 0, MINUTE * 60));
}

pub async fn reset_after_shrinks_within_window(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let rule = RateRule::new(100, MINUTE);
    let key = key("chat:user-1");
    align(clock, MINUTE);
    let mut left = MINUTE;
    for step in [Duration::ZERO, Duration::from_secs(15), Duration::from_secs(30), Duration::from_millis(14_999)] {
        advance(clock, step);
        left -= step;
        assert_eq!(limiter.hit(&key, rule).await.unwrap().reset_after, left);
        assert_eq!(limiter.peek(&key, rule).await.unwrap().reset_after, left);
    }
    assert_eq!(left, Duration::from_millis(1));
    // Past the boundary it is a whole window again.
    advance(clock, Duration::from_millis(1));
    assert_eq!(limiter.hit(&key, rule).await.unwrap().reset_after, MINUTE);
    // Between milliseconds the time left is exact, not rounded up.
    advance(clock, Duration::from_micros(2_500));
    assert_eq!(limiter.peek(&key, rule).await.unwrap().reset_after, MINUTE - Duration::from_micros(2_500));
}

pub async fn concurrent_hits_allow_exactly_limit(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    const TASKS: u32 = 50;
    const LIMIT: u32 = 30;
    let rule = RateRule::new(LIMIT, MINUTE);
    let key = Arc::new(key("login:race@example.com"));
    align(clock, MINUTE);
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let limiter = Arc::clone(limiter);
            let key = Arc::clone(&key);
            tokio::spawn(async move { limiter.hit(&key, rule).await.unwrap() })
        })
        .collect();
    let mut remaining_allowed = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let decision = task.await.unwrap();
        if decision.allowed {
            remaining_allowed.push(decision.remaining);
        } else {
            assert_eq!(decision.remaining, 0);
            refused += 1;
        }
    }
    assert_eq!(remaining_allowed.len(), LIMIT as usize);
    assert_eq!(refused, TASKS - LIMIT);
    // Each allowed hit saw its own count: no two read the same value.
    remaining_allowed.sort_unstable();
    assert_eq!(remaining_allowed, (0..LIMIT).collect::<Vec<_>>());
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(false, LIMIT, 0, MINUTE));
}

pub async fn fifteen_minute_window(limiter: &Arc<dyn RateLimiter>, clock: &ManualClock) {
    let window = MINUTE * 15;
    let rule = RateRule::new(5, window);
    let key = key("password-reset:eve@example.com");
    align(clock, window);
    advance(clock, MINUTE * 2);
    for _ in 0..5 {
        assert!(limiter.hit(&key, rule).await.unwrap().allowed);
    }
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(false, 5, 0, MINUTE * 13));
    // Ten minutes on: same window, still refused, and nearer its end.
    advance(clock, MINUTE * 10);
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(false, 5, 0, MINUTE * 3));
    advance(clock, MINUTE * 3 - Duration::from_secs(1));
    assert_eq!(limiter.peek(&key, rule).await.unwrap(), decision(false, 5, 0, Duration::from_secs(1)));
    advance(clock, Duration::from_secs(1));
    assert_eq!(limiter.hit(&key, rule).await.unwrap(), decision(true, 5, 4, window));
}
