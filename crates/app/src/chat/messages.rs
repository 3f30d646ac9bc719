//! Sending messages, reading history, stopping replies.

use std::collections::HashMap;
use std::sync::Mutex;

use specgen_domain::{
    ClientMessageId, Message, MessageContent, MessageId, MessageRole, MessageStatus, ModelName, ProviderName, SessionId,
};
use specgen_ports::{Page, PageRequest, RepoError};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_util::sync::CancellationToken;

use super::events::ChatEvent;
use super::reply::Emitter;
use crate::{App, AppError, AuthContext};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    pub content: MessageContent,
    pub client_message_id: Option<ClientMessageId>,
    pub provider: Option<ProviderName>,
    pub model: Option<ModelName>,
    pub ai_reply: bool,
}

/// What sending produced.
#[allow(clippy::large_enum_variant)] // one per request, moved once: boxing buys nothing
pub enum SendOutcome {
    /// A new message; `events` carries, in order, `MessageCreated` for it and,
    /// when a reply was asked for, the reply's events up to its final one.
    Created { user_message: Message, events: UnboundedReceiver<ChatEvent> },
    /// The `clientMessageId` was already used in this session: the original
    /// messages, nothing created.
    Replayed { user_message: Message, ai_message: Option<Message> },
}

/// Replies in flight on this instance, by AI message id and by the id of
/// the user message they answer.
#[derive(Debug, Default)]
pub struct InFlight {
    tokens: Mutex<HashMap<MessageId, CancellationToken>>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, CancellationToken>> {
        match self.tokens.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn register(&self, id: MessageId, token: CancellationToken) {
        self.lock().insert(id, token);
    }

    pub(crate) fn remove(&self, ids: &[MessageId]) {
        let mut tokens = self.lock();
        for id in ids {
            tokens.remove(id);
        }
    }

    fn cancel(&self, id: MessageId) -> bool {
        self.lock().get(&id).map(CancellationToken::cancel).is_some()
    }

    pub(crate) fn cancel_all(&self) {
        for token in self.lock().values() {
            token.cancel();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl App {
    /// Stores the user's message first (it is never lost, whatever the AI
    /// does), then starts the reply as a tracked task.
    pub async fn send_message(
        &self,
        auth: AuthContext,
        session_id: SessionId,
        send: SendMessage,
    ) -> Result<SendOutcome, AppError> {
        let (session, _) = self.access(auth, session_id).await?;
        if let Some(provider) = send.provider
            && self.inner.providers.get(provider).is_none()
        {
            return Err(AppError::Invalid {
                field: "provider",
                message: format!("provider {provider} is not enabled"),
            });
        }
        if let Some(replayed) = self.replay(session_id, send.client_message_id.as_ref()).await? {
            return Ok(replayed);
        }
        let decision = self
            .inner
            .ports
            .rate_limiter
            .hit(&format!("messages:{}", auth.user_id), self.inner.limits.messages)
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        if !decision.allowed {
            return Err(AppError::RateLimited(decision));
        }

        let now = self.now();
        let user_message = Message {
            id: MessageId::new_v7(),
            session_id,
            sender_id: Some(auth.user_id),
            role: MessageRole::User,
            content: send.content.into_inner(),
            status: MessageStatus::Complete,
            provider: None,
            model: None,
            usage: None,
            latency_ms: None,
            client_message_id: send.client_message_id.clone(),
            reply_to: None,
            error: None,
            created_at: now,
            updated_at: now,
        };
        match self.store().messages.insert(&user_message).await {
            Ok(()) => {}
            // Two sends with one key raced: the other one won; answer with it.
            Err(RepoError::Conflict(_)) => {
                return match self.replay(session_id, send.client_message_id.as_ref()).await? {
                    Some(replayed) => Ok(replayed),
                    None => Err(AppError::Conflict("message already exists".into())),
                };
            }
            Err(RepoError::NotFound) => return Err(AppError::NotFound("session")),
            Err(e) => return Err(e.into()),
        }

        // The session moved to the top of every participant's list.
        self.invalidate_lists_of(session_id).await;

        let (tx, events) = unbounded_channel();
        let _ = tx.send(ChatEvent::MessageCreated(user_message.clone()));
        if send.ai_reply {
            let requested = send.provider.or(session.provider);
            // A model named on the session belongs to the session's provider.
            let model = send.model.map(ModelName::into_inner).or_else(|| {
                (requested == session.provider).then(|| session.model.clone().map(ModelName::into_inner)).flatten()
            });
            let cancel = CancellationToken::new();
            self.inner.in_flight.register(user_message.id, cancel.clone());
            let app = self.clone();
            let asked = user_message.clone();
            let emitter = Emitter { requester: Some(tx) };
            self.inner.tasks.spawn_on(
                async move {
                    app.run_reply(session, asked, requested, model, emitter, cancel).await;
                },
                &self.inner.runtime,
            );
        }
        Ok(SendOutcome::Created { user_message, events })
    }

    pub(crate) async fn invalidate_lists_of(&self, session_id: SessionId) {
        let users = match self.cached_session(session_id).await {
            Some(entry) => entry.participant_ids(),
            None => self.store().sessions.participant_ids(session_id).await.unwrap_or_default(),
        };
        self.invalidate(users.into_iter().map(super::cache::list_key).collect()).await;
    }

    /// The original messages of an already used idempotency key.
    async fn replay(
        &self,
        session_id: SessionId,
        key: Option<&ClientMessageId>,
    ) -> Result<Option<SendOutcome>, AppError> {
        let Some(key) = key else { return Ok(None) };
        let found = self.store().messages.find_by_client_id(session_id, key).await?;
        Ok(found.map(|(user_message, ai_message)| SendOutcome::Replayed { user_message, ai_message }))
    }

    /// A page of a session's messages (oldest first within the page).
    pub async fn list_messages(
        &self,
        auth: AuthContext,
        session_id: SessionId,
        page: PageRequest,
    ) -> Result<Page<Message>, AppError> {
        self.access(auth, session_id).await?;
        Ok(self.store().messages.page(session_id, page).await?)
    }

    /// Stops a reply in flight, named by its own id or by the user message it
    /// answers. `Conflict` when it has already ended.
    pub async fn cancel_reply(
        &self,
        auth: AuthContext,
        session_id: SessionId,
        message_id: MessageId,
    ) -> Result<(), AppError> {
        self.access(auth, session_id).await?;
        let message = self.store().messages.find(session_id, message_id).await?;
        if self.inner.in_flight.cancel(message_id) {
            return Ok(());
        }
        match message {
            None => Err(AppError::NotFound("message")),
            Some(m) if m.status == MessageStatus::Streaming => {
                Err(AppError::Conflict("this reply is running on another instance or was interrupted".into()))
            }
            Some(_) => Err(AppError::Conflict("this reply has already ended".into())),
        }
    }

    /// Replies in flight on this instance.
    pub fn replies_in_flight(&self) -> usize {
        self.inner.in_flight.len()
    }
}
