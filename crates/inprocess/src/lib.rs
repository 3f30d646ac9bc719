//! In-process adapters: state that lives in one instance's memory. Today the
//! fixed-window rate limiter (alone, or as the fallback while Redis is down);
//! this crate will later also hold the in-process cache and event bus, so a
//! single instance needs no external service at all.

mod rate_limit;

pub use rate_limit::InProcessRateLimiter;
