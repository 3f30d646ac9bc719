//! In-process adapters: state that lives in one instance's memory. Today the
//! fixed-window rate limiter (alone, or as the fallback while Redis is down)
//! and the cache; this crate will later also hold the event bus, so a single
//! instance needs no external service at all.

mod cache;
mod rate_limit;

pub use cache::InProcessCache;
pub use rate_limit::InProcessRateLimiter;
