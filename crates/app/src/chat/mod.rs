//! Chat: sessions, participants, messages and AI replies. The access rule
//! lives here, in one place (`App::access`): a caller who does not
//! participate in a session gets `NotFound` for everything about it.

pub(crate) mod cache;
pub mod context;
pub mod events;
pub mod messages;
pub mod reply;
pub mod routing;
pub mod sessions;

pub use context::ContextBudget;
pub use events::{ChatEvent, EncodedOnce, NoFeed, SessionFeed};
pub use messages::{SendMessage, SendOutcome};
pub use routing::{AiSettings, Providers};
pub use sessions::{NewSession, SessionPatch, SessionView};
