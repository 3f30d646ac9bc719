//! What happens in a session, as the transports (SSE, WebSocket) relay it.

use specgen_domain::{Message, MessageId, SessionId};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A user message, or an AI reply as it starts (status `streaming`, empty content).
    MessageCreated(Message),
    /// The next piece of a reply; `seq` starts at 1 and has no gaps.
    Chunk { message_id: MessageId, session_id: SessionId, seq: u64, content: String, at: OffsetDateTime },
    /// The reply ended normally; the message as stored.
    Complete(Message),
    /// The reply failed; the message as stored, partial text and error included.
    Failed(Message),
    /// The reply was stopped; the message as stored with its partial text.
    Cancelled(Message),
}

impl ChatEvent {
    /// Every reply ends with exactly one of these.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Complete(_) | Self::Failed(_) | Self::Cancelled(_))
    }
}
