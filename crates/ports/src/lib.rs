//! Ports: the traits the application layer needs from the outside world, and
//! the plain types that cross them. Adapters (stores, caches, providers)
//! implement these; nothing here knows a driver or a framework.

pub mod ai;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod error;
pub mod page;
pub mod presence;
pub mod rate_limit;
pub mod store;

pub use ai::{AiProvider, ChatTurn, CompletionRequest, ProviderError, ReplyStream, StreamEvent, TokenUsage, TurnRole};
pub use bus::{BusError, Delivery, EventBus, MakePayload, ReplyLog, Subscription};
pub use cache::{Cache, CacheError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::RepoError;
pub use page::{Direction, Page, PageRequest};
pub use presence::{Presence, PresenceError, PresenceRegistry};
pub use rate_limit::{RateDecision, RateLimitError, RateLimiter, RateRule, RateWindow};
pub use store::{
    MessageRepository, PoolStatus, RecentMessage, RefreshTokenRepository, SessionRepository, Store, StoreHealth,
    UserRepository,
};
