//! What happens in a session, as the transports (SSE, WebSocket) relay it.

use specgen_domain::{Message, MessageId, SessionId, UserId};
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

    pub fn session_id(&self) -> SessionId {
        match self {
            Self::MessageCreated(m) | Self::Complete(m) | Self::Failed(m) | Self::Cancelled(m) => m.session_id,
            Self::Chunk { session_id, .. } => *session_id,
        }
    }

    /// The message the event is about.
    pub fn message_id(&self) -> MessageId {
        match self {
            Self::MessageCreated(m) | Self::Complete(m) | Self::Failed(m) | Self::Cancelled(m) => m.id,
            Self::Chunk { message_id, .. } => *message_id,
        }
    }
}

/// Where a session's events go besides the requester: every connection that
/// joined the session, on every instance (the gateway implements it). The
/// events of one send are published in order, one at a time, beside the
/// reply (in its task, concurrently), so a slow feed never holds up a reply.
#[async_trait::async_trait]
pub trait SessionFeed: Send + Sync {
    async fn publish(&self, event: &ChatEvent);

    /// `user` no longer participates in `session`; with `None`, nobody does
    /// (the session was deleted). Live listeners must stop hearing it.
    async fn access_revoked(&self, session: SessionId, user: Option<UserId>);
}

/// For a process without a gateway (tools, some tests): events reach the
/// requester only.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFeed;

#[async_trait::async_trait]
impl SessionFeed for NoFeed {
    async fn publish(&self, _event: &ChatEvent) {}

    async fn access_revoked(&self, _session: SessionId, _user: Option<UserId>) {}
}
