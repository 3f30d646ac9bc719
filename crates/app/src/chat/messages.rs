//! Sending messages, reading history, stopping replies.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::{FutureExt as _, StreamExt as _};
use specgen_domain::{
    ClientMessageId, Message, MessageContent, MessageId, MessageRole, MessageStatus, ModelName, ProviderName, SessionId,
};
use specgen_ports::{Page, PageRequest, RepoError};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::events::ChatEvent;
use super::reply::Emitter;
use crate::{App, AppError, AuthContext};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The new message's id when the caller chose it (to recognise the
    /// message's events as its own), a fresh one otherwise.
    pub id: Option<MessageId>,
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

/// The user message's insert, awaited by the request and by its reply.
type StoredOnce = futures::future::Shared<futures::future::BoxFuture<'static, Result<(), std::sync::Arc<RepoError>>>>;

/// Publishes `events` to the session feed in order, until every sender is gone.
async fn publish_feed(feed: std::sync::Arc<dyn super::events::SessionFeed>, mut events: UnboundedReceiver<ChatEvent>) {
    while let Some(event) = events.recv().await {
        feed.publish(&event).await;
    }
}

/// The bus topic on which instances ask each other to stop a reply (its
/// id), or every reply of a session (`session:` and its id).
const CANCEL_TOPIC: &str = "control:cancel";

/// Marks a stop request on [`CANCEL_TOPIC`] that names a session.
const SESSION_PREFIX: &str = "session:";

/// How long a stop waits for the instance running the reply to store it
/// stopped (it takes milliseconds when alive).
const REMOTE_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Sends events to the feed task of one send.
#[derive(Clone)]
pub(crate) struct FeedSender(UnboundedSender<ChatEvent>);

impl FeedSender {
    pub(crate) fn emit(&self, event: ChatEvent) {
        // The task lives until every sender is gone; it cannot have ended.
        let _ = self.0.send(event);
    }
}

/// Replies in flight on this instance, by AI message id and by the id of
/// the user message they answer.
#[derive(Debug, Default)]
pub struct InFlight {
    replies: Mutex<HashMap<MessageId, Running>>,
}

/// A reply in flight: how to stop it, and how to hear that it ended.
#[derive(Debug)]
struct Running {
    session: SessionId,
    cancel: CancellationToken,
    ended: CancellationToken,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageId, Running>> {
        match self.replies.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub(crate) fn register(&self, id: MessageId, session: SessionId, cancel: CancellationToken) {
        self.lock().insert(id, Running { session, cancel, ended: CancellationToken::new() });
    }

    /// The reply ended (its final state is stored).
    pub(crate) fn remove(&self, ids: &[MessageId]) {
        let mut replies = self.lock();
        for id in ids {
            if let Some(running) = replies.remove(id) {
                running.ended.cancel();
            }
        }
    }

    pub(crate) fn cancel(&self, id: MessageId) -> bool {
        self.lock().get(&id).map(|running| running.cancel.cancel()).is_some()
    }

    /// Stops every reply of `session` running here.
    pub(crate) fn cancel_session(&self, session: SessionId) {
        for running in self.lock().values().filter(|running| running.session == session) {
            running.cancel.cancel();
        }
    }

    pub(crate) fn cancel_all(&self) {
        for running in self.lock().values() {
            running.cancel.cancel();
        }
    }

    /// Resolves once the reply registered under `id` has ended; `None` when
    /// none runs on this instance.
    fn ended(&self, id: MessageId) -> Option<tokio_util::sync::WaitForCancellationFutureOwned> {
        self.lock().get(&id).map(|running| running.ended.clone().cancelled_owned())
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
        self.check_enabled(send.provider)?;
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
            id: send.id.unwrap_or_else(MessageId::new_v7),
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
        if !send.ai_reply {
            let inserted = self.store().messages.insert(&user_message).await;
            if let Some(replayed) = self.check_stored(session_id, &send.client_message_id, inserted.err()).await? {
                return Ok(replayed);
            }
            self.invalidate_lists_of(session_id).await;
            let (tx, events) = unbounded_channel();
            let _ = tx.send(ChatEvent::MessageCreated(user_message.clone()));
            self.start_feed().emit(ChatEvent::MessageCreated(user_message.clone()));
            return Ok(SendOutcome::Created { user_message, events });
        }

        // The insert is awaited both here (to answer the request) and by the
        // reply task, so that the commit wakes the reply directly: the reply
        // no longer waits for this request's thread to run again (under load
        // it is busy relaying other replies) before it calls the provider.
        let messages = std::sync::Arc::clone(&self.store().messages);
        let row = user_message.clone();
        let mut stored: StoredOnce =
            async move { messages.insert(&row).await.map_err(std::sync::Arc::new) }.boxed().shared();
        // Cloned before the first poll: a clone of a completed `Shared` has
        // nothing left to give.
        let reply_stored = stored.clone();
        // Starts the write before the reply task is woken.
        let early = futures::poll!(&mut stored);

        // Queued before anything the reply emits; the receiver only leaves
        // this function if the insert succeeded.
        let (tx, events) = unbounded_channel();
        let _ = tx.send(ChatEvent::MessageCreated(user_message.clone()));
        // The reply and its session-feed publisher run in one task: one
        // spawn (and one thread woken) per reply instead of two.
        let (feed_tx, feed_rx) = unbounded_channel::<ChatEvent>();
        let feed = FeedSender(feed_tx);
        let publish = publish_feed(std::sync::Arc::clone(&self.inner.ports.feed), feed_rx);
        let requested = send.provider.or(session.provider);
        // A model named on the session belongs to the session's provider.
        let model = send.model.map(ModelName::into_inner).or_else(|| {
            (requested == session.provider).then(|| session.model.clone().map(ModelName::into_inner)).flatten()
        });
        let cancel = CancellationToken::new();
        self.inner.in_flight.register(user_message.id, session_id, cancel.clone());
        let app = self.clone();
        let asked = user_message.clone();
        let emitter = Emitter { requester: Some(tx), feed: Some(feed.clone()) };
        // The reply outlives the request, but belongs to its trace.
        let span = tracing::info_span!("ai.reply", session.id = %session.id);
        let reply = async move {
            // The context is read beside the insert: one store round trip
            // less before the provider is called.
            let (inserted, history) = tokio::join!(reply_stored, app.context_history(session_id));
            if inserted.is_err() {
                // The request answers with the error; there is nothing to reply to.
                app.inner.in_flight.remove(&[asked.id]);
                return;
            }
            feed.emit(ChatEvent::MessageCreated(asked.clone()));
            drop(feed);
            let history = super::context::with_newest(history, &asked);
            app.run_reply(session, asked, history, requested, model, emitter, cancel).await;
        };
        self.inner.tasks.spawn_on(
            async move {
                // A slow feed never holds the reply up: both make progress.
                futures::join!(reply, publish);
            }
            .instrument(span),
            &self.inner.runtime,
        );

        let inserted = match early {
            std::task::Poll::Ready(inserted) => inserted,
            std::task::Poll::Pending => stored.await,
        };
        if let Some(replayed) = self.check_stored(session_id, &send.client_message_id, inserted.err()).await? {
            return Ok(replayed);
        }
        // The session moved to the top of every participant's list.
        self.invalidate_lists_of(session_id).await;
        Ok(SendOutcome::Created { user_message, events })
    }

    /// A provider named by a request (a send, or a session's settings) must
    /// be one this server has enabled.
    pub(crate) fn check_enabled(&self, provider: Option<ProviderName>) -> Result<(), AppError> {
        match provider {
            Some(provider) if self.inner.providers.get(provider).is_none() => {
                Err(AppError::Invalid { field: "provider", message: format!("provider {provider} is not enabled") })
            }
            _ => Ok(()),
        }
    }

    /// What a failed insert of the user's message means for the request:
    /// nothing (it succeeded), the original of a repeated `clientMessageId`
    /// (two sends with one key raced and the other won), or an error.
    async fn check_stored(
        &self,
        session_id: SessionId,
        key: &Option<ClientMessageId>,
        failed: Option<impl std::borrow::Borrow<RepoError>>,
    ) -> Result<Option<SendOutcome>, AppError> {
        let Some(failed) = failed else { return Ok(None) };
        match failed.borrow() {
            RepoError::Conflict(_) => match self.replay(session_id, key.as_ref()).await? {
                Some(replayed) => Ok(Some(replayed)),
                None => Err(AppError::Conflict("message already exists".into())),
            },
            RepoError::NotFound => Err(AppError::NotFound("session")),
            RepoError::Unavailable(why) => Err(AppError::Unavailable(why.clone())),
            RepoError::Unknown(cause) => Err(AppError::Unknown(anyhow::anyhow!("{cause:#}"))),
        }
    }

    /// A channel whose events a task of their own publishes to the session
    /// feed, in order, for a send without a reply (a reply publishes its
    /// own); the task ends when every sender is dropped.
    fn start_feed(&self) -> FeedSender {
        let (tx, rx) = unbounded_channel::<ChatEvent>();
        self.inner.tasks.spawn_on(publish_feed(std::sync::Arc::clone(&self.inner.ports.feed), rx), &self.inner.runtime);
        FeedSender(tx)
    }

    /// Stops, on whichever instance runs it, the reply `message_id`; each
    /// instance hears these on [`CANCEL_TOPIC`].
    pub(crate) fn listen_for_remote_cancels(&self) {
        let app = self.clone();
        let stopping = self.inner.background_stop.clone();
        self.inner.tasks.spawn_on(
            async move {
                let mut backoff = std::time::Duration::from_millis(100);
                loop {
                    match app.inner.ports.bus.subscribe(CANCEL_TOPIC).await {
                        Ok(mut subscription) => {
                            backoff = std::time::Duration::from_millis(100);
                            loop {
                                let delivery = tokio::select! {
                                    delivery = subscription.next() => delivery,
                                    _ = stopping.cancelled() => return,
                                };
                                match delivery {
                                    Some(specgen_ports::Delivery::Payload(bytes)) => {
                                        app.on_remote_cancel(&bytes);
                                    }
                                    // A stop request missed while the bus
                                    // was away cannot be recovered; the
                                    // user can press stop again.
                                    Some(specgen_ports::Delivery::Lagged(_)) => {}
                                    None => break,
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot hear remote stop requests yet; retrying"),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopping.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
            },
            &self.inner.runtime,
        );
    }

    /// A stop request from another instance (see [`CANCEL_TOPIC`]).
    fn on_remote_cancel(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else { return };
        match text.strip_prefix(SESSION_PREFIX) {
            Some(session) => {
                if let Ok(session) = session.parse::<SessionId>() {
                    self.inner.in_flight.cancel_session(session);
                }
            }
            None => {
                if let Ok(message) = text.parse::<MessageId>() {
                    self.inner.in_flight.cancel(message);
                }
            }
        }
    }

    /// Stops every reply of `session` (deleted), on every instance: nobody
    /// is left to read them, and each would go on costing provider tokens.
    /// They end `cancelled` with their text so far.
    pub(crate) async fn stop_replies_in(&self, session: SessionId) {
        self.inner.in_flight.cancel_session(session);
        let request = format!("{SESSION_PREFIX}{session}");
        if let Err(e) = self.inner.ports.bus.publish(CANCEL_TOPIC, request.into_bytes().into()).await {
            tracing::warn!(error = %e, "replies of a deleted session on other instances run to their end");
        }
    }

    pub(crate) async fn invalidate_lists_of(&self, session_id: SessionId) {
        let users = match self.cached_session(session_id).await {
            Some(entry) => entry.participant_ids(),
            None => self.store().sessions.participant_ids(session_id).await.unwrap_or_default(),
        };
        self.invalidate(users.into_iter().map(super::cache::list_key).collect()).await;
    }

    /// A replayed send as its original request answers: once the reply that
    /// this instance runs for it has ended. (A reply running on another
    /// instance is given as it stands: `streaming`, or not started yet.)
    pub async fn settle_replay(
        &self,
        session_id: SessionId,
        user_message: Message,
        ai_message: Option<Message>,
    ) -> Result<(Message, Option<Message>), AppError> {
        let running = ai_message.as_ref().is_none_or(|ai| ai.status == MessageStatus::Streaming);
        if !running {
            return Ok((user_message, ai_message));
        }
        if let Some(ended) = self.inner.in_flight.ended(user_message.id) {
            ended.await;
        }
        // Read again: the reply may have ended here since the first read (its
        // final state is stored before it leaves the in-flight set), or it
        // runs elsewhere and this is how it stands now.
        match self.replay(session_id, user_message.client_message_id.as_ref()).await? {
            Some(SendOutcome::Replayed { user_message, ai_message }) => Ok((user_message, ai_message)),
            _ => Ok((user_message, ai_message)),
        }
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

    /// One message of a session the caller participates in.
    pub async fn message(
        &self,
        auth: AuthContext,
        session_id: SessionId,
        message_id: MessageId,
    ) -> Result<Message, AppError> {
        self.access(auth, session_id).await?;
        self.store().messages.find(session_id, message_id).await?.ok_or(AppError::NotFound("message"))
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
        let Some(message) = message else {
            return Err(AppError::NotFound("message"));
        };
        // Not running here: whether it runs on another instance, as far as
        // the store can tell.
        let ended = || AppError::Conflict("this reply has already ended".into());
        let stored_reply = match message.role {
            MessageRole::User => match self.store().messages.reply_to(session_id, message.id).await? {
                Some(reply) if reply.status == MessageStatus::Streaming => Some(reply.id),
                Some(_) => return Err(ended()),
                // No reply stored yet: one may be waiting for its first token
                // elsewhere (its instance knows it by the user message's id).
                None if self.may_await_first_token(&message) => None,
                None => return Err(ended()),
            },
            _ if message.status == MessageStatus::Streaming => Some(message.id),
            _ => return Err(ended()),
        };
        // The instance that runs it stops it (it knows the reply by either id).
        self.inner
            .ports
            .bus
            .publish(CANCEL_TOPIC, message_id.to_string().into_bytes().into())
            .await
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        match stored_reply {
            Some(reply) => self.await_remote_stop(session_id, reply).await,
            None => Ok(()),
        }
    }

    /// Answers once the instance running `reply` has stored it stopped, as
    /// a stop on this instance does. One that does not within
    /// [`REMOTE_STOP_WAIT`] is taken for dead (it crashed mid-reply): the
    /// reply is failed when found stale, and its members told then.
    async fn await_remote_stop(&self, session_id: SessionId, reply: MessageId) -> Result<(), AppError> {
        let deadline = tokio::time::Instant::now() + REMOTE_STOP_WAIT;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let stored = self.store().messages.find(session_id, reply).await?;
            if stored.is_none_or(|m| m.status != MessageStatus::Streaming) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AppError::Unavailable(
                    "the instance running this reply does not answer; it will be marked failed".into(),
                ));
            }
        }
    }

    /// Whether a reply to `asked` could still be waiting for its first token
    /// on another instance: every provider may take the first-token deadline
    /// before the reply is stored (as `streaming`, or as `failed` when none
    /// answered). Never when this instance is alone: it would be in flight here.
    fn may_await_first_token(&self, asked: &Message) -> bool {
        if self.inner.ai.alone {
            return false;
        }
        let providers = u32::try_from(self.inner.providers.all().len()).unwrap_or(u32::MAX);
        let longest = self.inner.ai.first_token_timeout.saturating_mul(providers) + std::time::Duration::from_secs(5);
        let age = self.now() - asked.created_at;
        age < time::Duration::try_from(longest).unwrap_or(time::Duration::MAX)
    }

    /// Replies in flight on this instance.
    pub fn replies_in_flight(&self) -> usize {
        self.inner.in_flight.len()
    }
}
