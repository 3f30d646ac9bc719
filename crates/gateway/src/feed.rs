//! The application's session events, onto the bus: each event serialised
//! once into the frame clients receive, each chunk kept in the reply log
//! before it is published, so a reader that resumes finds it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use specgen_app::{ChatEvent, SessionFeed};
use specgen_domain::{SessionId, UserId};
use specgen_ports::{EventBus, ReplyLog};

use crate::frames;
use crate::hub::topic;
use crate::packet::{Kind, Packet};

pub struct GatewayFeed {
    bus: Arc<dyn EventBus>,
    log: Arc<dyn ReplyLog>,
    /// How long a finished reply's chunks stay readable for `resume`.
    grace: Duration,
    /// During an outage every chunk fails: one line every few seconds says so.
    warn_again: Throttle,
}

/// At most one log line per period.
struct Throttle {
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Throttle {
    const PERIOD: Duration = Duration::from_secs(5);

    fn should_log(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Self::PERIOD) {
            return false;
        }
        *last = Some(now);
        true
    }
}

impl GatewayFeed {
    pub fn new(bus: Arc<dyn EventBus>, log: Arc<dyn ReplyLog>, grace: Duration) -> Self {
        Self { bus, log, grace, warn_again: Throttle { last: std::sync::Mutex::new(None) } }
    }

    /// Publishes the packet `make` builds; the bus may skip building it
    /// when nobody listens to the session (see `EventBus::publish_with`).
    async fn publish_packet(&self, session: SessionId, make: impl FnOnce() -> Packet + Send) {
        if let Err(e) = self.bus.publish_with(&topic(session), Box::new(move || make().encode())).await {
            // The reply goes on and is stored; live listeners miss this
            // event and catch up from the store or with `resume`.
            metrics::counter!("ws_feed_publish_failures_total").increment(1);
            if self.warn_again.should_log() {
                tracing::warn!(error = %e, "could not publish a session event (more are counted in ws_feed_publish_failures_total)");
            }
        }
    }
}

#[async_trait]
impl SessionFeed for GatewayFeed {
    async fn publish(&self, event: &ChatEvent) {
        let message = event.message_id().as_uuid().as_u128();
        let (kind, seq, message) = match event {
            ChatEvent::Chunk { seq, content, message_id, .. } => {
                // Kept before it is published, so a reader that resumes finds it.
                if let Err(e) = self.log.append(&message_id.to_text(), *seq, content).await {
                    metrics::counter!("ws_reply_log_failures_total").increment(1);
                    if self.warn_again.should_log() {
                        tracing::warn!(error = %e, "could not keep a chunk for resume (more are counted in ws_reply_log_failures_total)");
                    }
                }
                (Kind::Chunk, *seq, message)
            }
            e if e.is_final() => (Kind::Final, 0, message),
            // The message rides along, so that the connection that sent it
            // can be answered with its frame's `id`.
            ChatEvent::MessageCreated(_) => (Kind::Everyone, 0, message),
            _ => (Kind::Everyone, 0, 0),
        };
        self.publish_packet(event.session_id(), || Packet {
            seq,
            message,
            ..Packet::new(kind, frames::chat_event(event))
        })
        .await;
        if event.is_final()
            && let Err(e) = self.log.finish(&event.message_id().to_text(), self.grace).await
        {
            tracing::warn!(error = %e, "could not schedule a finished reply's chunks for removal");
        }
    }

    async fn access_revoked(&self, session: SessionId, user: Option<UserId>) {
        let packet = Packet {
            // The session rides in `message`: a revoke is about no reply.
            message: session.as_uuid().as_u128(),
            user: user.map_or(0, |u| u.as_uuid().as_u128()),
            ..Packet::new(Kind::Revoke, Bytes::new())
        };
        self.publish_packet(session, || packet).await;
    }
}
