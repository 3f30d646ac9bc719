//! In-process adapters: state that lives in one instance's memory. The
//! fixed-window rate limiter (alone, or as the fallback while Redis is
//! down), the cache, the event bus, the reply log and the presence
//! registry, so a single instance needs no external service at all.

mod bus;
mod cache;
mod presence;
mod rate_limit;
mod reply_log;

pub use bus::InProcessBus;
pub use cache::InProcessCache;
pub use presence::InProcessPresence;
pub use rate_limit::InProcessRateLimiter;
pub use reply_log::InProcessReplyLog;
