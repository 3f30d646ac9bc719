//! What happens in a session, as the transports (SSE, WebSocket) relay it.

use std::sync::{Arc, OnceLock};

use specgen_domain::{Message, MessageId, MessageStatus, SessionId, UserId};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    /// A user message, or an AI reply as it starts (status `streaming`, empty content).
    MessageCreated(Message),
    /// The next piece of a reply; `seq` starts at 1 and has no gaps.
    Chunk {
        message_id: MessageId,
        session_id: SessionId,
        seq: u64,
        content: String,
        at: OffsetDateTime,
        /// Its wire data, shared by the requester's copy and the feed's.
        encoded: EncodedOnce,
    },
    /// The reply ended normally; the message as stored.
    Complete(Message),
    /// The reply failed; the message as stored, partial text and error included.
    Failed(Message),
    /// The reply was stopped; the message as stored with its partial text.
    Cancelled(Message),
}

impl ChatEvent {
    /// The final event of a reply that has ended, from its stored state.
    pub fn ended(reply: &Message) -> Self {
        match reply.status {
            MessageStatus::Complete => Self::Complete(reply.clone()),
            MessageStatus::Cancelled => Self::Cancelled(reply.clone()),
            _ => Self::Failed(reply.clone()),
        }
    }

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

/// An event's wire data, encoded by whichever transport needs it first and
/// reused by the others: SSE and the WebSocket send the same JSON, and every
/// chunk of a reply goes to both (the requester's stream and the session
/// feed). Clones share it. A cache, not part of the event: equal always.
#[derive(Clone, Default)]
pub struct EncodedOnce(Arc<OnceLock<Box<[u8]>>>);

impl EncodedOnce {
    /// The encoding, made by `encode` on the first call.
    pub fn get_or_encode(&self, encode: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(|| encode().into_boxed_slice())
    }
}

impl PartialEq for EncodedOnce {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EncodedOnce {}

impl std::fmt::Debug for EncodedOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "EncodedOnce(encoded)" } else { "EncodedOnce(not yet)" })
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn clones_of_an_event_share_one_encoding() {
        let event = ChatEvent::Chunk {
            message_id: MessageId::new_v7(),
            session_id: SessionId::new_v7(),
            seq: 1,
            content: "Hi".into(),
            at: OffsetDateTime::UNIX_EPOCH,
            encoded: EncodedOnce::default(),
        };
        let copy = event.clone();
        assert_eq!(copy, event);
        let encodings = Cell::new(0);
        let encode = || {
            encodings.set(encodings.get() + 1);
            b"{\"seq\":1}".to_vec()
        };
        for e in [&event, &copy, &event] {
            let ChatEvent::Chunk { encoded, .. } = e else { unreachable!() };
            assert_eq!(encoded.get_or_encode(encode), b"{\"seq\":1}");
        }
        assert_eq!(encodings.get(), 1);
    }
}
