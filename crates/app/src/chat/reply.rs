//! One AI reply, from the first provider call to its final stored state.
//! Runs as a tracked task, detached from the request that started it: a
//! client that goes away does not stop the reply, which is stored regardless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rand::Rng as _;
use specgen_domain::{ChatSession, Message, MessageError, MessageId, MessageRole, MessageStatus, ProviderName, Usage};
use specgen_ports::{
    AiProvider, CompletionRequest, ProviderError, RecentMessage, ReplyStream, StreamEvent, TokenUsage,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::events::{ChatEvent, EncodedOnce};
use crate::App;

/// Partial text is written to the store at most this often, so a crash loses
/// at most this much of a reply (the user message is always stored first).
const PERSIST_EVERY: Duration = Duration::from_millis(500);

pub const AI_UNAVAILABLE: &str = "AI_UNAVAILABLE";
pub const AI_STREAM_FAILED: &str = "AI_STREAM_FAILED";

/// Where a reply's events go: the requester's channel and the session feed.
#[derive(Clone)]
pub(crate) struct Emitter {
    pub(crate) requester: Option<UnboundedSender<ChatEvent>>,
    pub(crate) feed: Option<super::messages::FeedSender>,
}

impl Emitter {
    fn emit(&self, event: ChatEvent) {
        if let Some(feed) = &self.feed {
            feed.emit(event.clone());
        }
        if let Some(tx) = &self.requester {
            // A requester that went away no longer listens; the reply goes on.
            let _ = tx.send(event);
        }
    }
}

/// Creates, at zero, the series of every AI metric a reply records, for
/// each enabled provider with its default model and each fallback the
/// order allows, so that a scrape of a fresh instance already lists them
/// (the metrics recorder must be installed first).
pub(crate) fn register_metrics(providers: &super::Providers) {
    let all = providers.all();
    for provider in all {
        let labels =
            [("provider", provider.name().as_str().to_owned()), ("model", provider.default_model().to_owned())];
        // Registering is enough: the exporter lists a histogram with no samples.
        let _ = metrics::histogram!("ai_time_to_first_token_seconds", &labels);
        let _ = metrics::histogram!("ai_response_duration_seconds", &labels);
        for direction in ["input", "output"] {
            let (name, model) = (provider.name().as_str(), provider.default_model().to_owned());
            metrics::counter!("ai_tokens_total", "provider" => name, "model" => model, "direction" => direction)
                .increment(0);
        }
    }
    // A requested provider is tried first, so any may fall back to any other.
    for from in all {
        for to in all.iter().filter(|to| to.name() != from.name()) {
            metrics::counter!("ai_fallbacks_total", "from" => from.name().as_str(), "to" => to.name().as_str())
                .increment(0);
        }
    }
}

enum FirstTokenError {
    Cancelled,
    Failed(ProviderError),
}

struct Started {
    stream: ReplyStream,
    first: String,
    usage: TokenUsage,
}

impl App {
    /// Runs the reply to `asked` to its end and returns the stored final message.
    /// `history` is the session's latest messages, oldest first, ending
    /// with `asked`.
    #[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
    pub(crate) async fn run_reply(
        &self,
        session: ChatSession,
        asked: Message,
        history: Vec<RecentMessage>,
        requested: Option<ProviderName>,
        model: Option<String>,
        emitter: Emitter,
        cancel: CancellationToken,
    ) -> Message {
        let started = Instant::now();
        let settings = &self.inner.ai;
        let turns =
            super::context::build(session.system_prompt.as_ref().map(|p| p.as_str()), &history, settings.context);

        let mut previous: Option<ProviderName> = None;
        for (provider, model) in self.inner.providers.candidates(requested, model.as_deref()) {
            let name = provider.name();
            if !self.inner.breakers.available(name) {
                tracing::info!(provider = %name, "skipped: circuit open");
                continue;
            }
            if let Some(from) = previous {
                metrics::counter!("ai_fallbacks_total", "from" => from.as_str(), "to" => name.as_str()).increment(1);
                tracing::info!(from = %from, to = %name, "falling back to the next provider");
            }
            // One span per provider call, with the GenAI semantic
            // conventions; usage and finish reasons are recorded at its end.
            let span = tracing::info_span!(
                "ai.provider_call",
                otel.name = format!("chat {model}"),
                otel.kind = "client",
                gen_ai.operation.name = "chat",
                gen_ai.system = name.as_str(),
                gen_ai.request.model = %model,
                gen_ai.request.max_tokens = settings.max_output_tokens,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                gen_ai.response.finish_reasons = tracing::field::Empty,
                error = tracing::field::Empty,
            );
            let request = CompletionRequest {
                model: model.clone(),
                system: session.system_prompt.as_ref().map(|p| p.as_str().to_owned()),
                turns: turns.clone(),
                max_output_tokens: settings.max_output_tokens,
                trace_headers: span.in_scope(crate::telemetry::trace_headers),
            };
            match self.first_token(&provider, request, &cancel).instrument(span.clone()).await {
                Ok(started_stream) => {
                    self.inner.breakers.success(name);
                    return self
                        .stream_rest(&asked, &provider, model, started_stream, started, &emitter, &cancel)
                        .instrument(span)
                        .await;
                }
                Err(FirstTokenError::Cancelled) if self.interrupting() => {
                    let error = Some(crate::health::interrupted());
                    return self.finish_without_text(&asked, MessageStatus::Failed, error, &emitter).await;
                }
                Err(FirstTokenError::Cancelled) => {
                    return self.finish_without_text(&asked, MessageStatus::Cancelled, None, &emitter).await;
                }
                Err(FirstTokenError::Failed(e)) => {
                    span.record("error", tracing::field::display(&e));
                    self.inner.breakers.failure(name, settings.breaker_threshold, settings.breaker_cooldown);
                    tracing::warn!(provider = %name, error = %e, "provider failed before its first token");
                    previous = Some(name);
                }
            }
        }
        let error = MessageError {
            code: AI_UNAVAILABLE.into(),
            message: "No AI provider could answer; your message is saved, try again shortly.".into(),
        };
        self.finish_without_text(&asked, MessageStatus::Failed, Some(error), &emitter).await
    }

    /// Calls the provider until its first piece of text, within the
    /// first-token deadline, retrying (jittered) when the provider asks for a
    /// short pause.
    async fn first_token(
        &self,
        provider: &Arc<dyn AiProvider>,
        request: CompletionRequest,
        cancel: &CancellationToken,
    ) -> Result<Started, FirstTokenError> {
        let settings = &self.inner.ai;
        let deadline = tokio::time::Instant::now() + settings.first_token_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let call = async {
                let mut stream = provider.stream(request.clone()).await?;
                let mut usage = TokenUsage::default();
                loop {
                    match stream.next().await {
                        Some(Ok(StreamEvent::Delta(text))) => {
                            return Ok(Started { stream, first: text, usage });
                        }
                        Some(Ok(StreamEvent::Usage(u))) => usage = u,
                        Some(Ok(StreamEvent::Done { .. })) => {
                            return Err(ProviderError::Protocol("the reply ended without any text".into()));
                        }
                        Some(Err(e)) => return Err(e),
                        None => {
                            return Err(ProviderError::Interrupted("ended before the first token".into()));
                        }
                    }
                }
            };
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(FirstTokenError::Cancelled),
                outcome = tokio::time::timeout_at(deadline, call) => outcome,
            };
            let error = match outcome {
                Ok(Ok(started)) => return Ok(started),
                Ok(Err(e)) => e,
                Err(_) => ProviderError::Timeout,
            };
            let pause = error.retry_after().filter(|p| *p <= settings.max_retry_wait);
            match pause {
                Some(pause) if error.is_transient() && attempt < settings.attempts_per_provider => {
                    // Up to 50% extra, so clients told the same pause do not return in lockstep.
                    let jitter = rand::rng().random_range(0.0..0.5);
                    let wait = pause.mul_f64(1.0 + jitter);
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(FirstTokenError::Failed(error));
                    }
                    tracing::info!(provider = %provider.name(), wait_ms = wait.as_millis() as u64, "provider asked to retry");
                    tokio::select! {
                        _ = cancel.cancelled() => return Err(FirstTokenError::Cancelled),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                _ => return Err(FirstTokenError::Failed(error)),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn stream_rest(
        &self,
        asked: &Message,
        provider: &Arc<dyn AiProvider>,
        model: String,
        started_stream: Started,
        started: Instant,
        emitter: &Emitter,
        cancel: &CancellationToken,
    ) -> Message {
        let settings = &self.inner.ai;
        let name = provider.name();
        let labels = [("provider", name.as_str().to_owned()), ("model", model.clone())];
        metrics::histogram!("ai_time_to_first_token_seconds", &labels).record(started.elapsed().as_secs_f64());
        let Started { mut stream, first, mut usage } = started_stream;
        let now = self.now();
        let mut reply = Message {
            id: MessageId::new_v7(),
            session_id: asked.session_id,
            sender_id: None,
            role: MessageRole::Assistant,
            content: first.clone(),
            status: MessageStatus::Streaming,
            provider: Some(name.as_str().to_owned()),
            model: Some(model.clone()),
            usage: None,
            latency_ms: None,
            client_message_id: None,
            reply_to: Some(asked.id),
            error: None,
            created_at: now,
            updated_at: now,
        };
        // The first token goes out before the store writes: they would sit on
        // the time-to-first-token path otherwise; the text is persisted anyway.
        self.inner.in_flight.register(reply.id, reply.session_id, cancel.clone());
        emitter.emit(ChatEvent::MessageCreated(Message { content: String::new(), ..reply.clone() }));
        let mut seq = 1;
        emitter.emit(ChatEvent::Chunk {
            message_id: reply.id,
            session_id: reply.session_id,
            seq,
            content: first,
            at: now,
            encoded: EncodedOnce::default(),
        });
        if let Err(e) = self.store().messages.insert(&reply).await {
            tracing::error!(error = %e, "could not store the reply as it started; it continues and is stored at its end");
        }
        self.invalidate_lists_of(reply.session_id).await;

        let mut last_persist = Instant::now();
        let mut finish_reason = None;
        // One stop future and one timer for the whole reply, not one of each
        // per chunk: registering and dropping them took locks on every chunk.
        // The timer fires at the nearer of the two deadlines; a chunk only
        // moves the idle one forward, and the timer is re-armed when it fires.
        let total_deadline = tokio::time::Instant::now() + settings.total_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + settings.idle_timeout;
        let too_long = || stream_error(format!("the reply took longer than {} s", settings.total_timeout.as_secs()));
        let stopped = cancel.cancelled();
        let deadline = tokio::time::sleep_until(total_deadline.min(idle_deadline));
        tokio::pin!(stopped, deadline);
        let outcome: Result<(), MessageError> = loop {
            let next = tokio::select! {
                // A chunk already here wins over a deadline that passed
                // meanwhile, as it did when the idle timeout wrapped the read;
                // the total deadline is also checked after every chunk.
                biased;
                _ = &mut stopped => break Ok(()),
                next = stream.next() => next,
                _ = &mut deadline => {
                    let now = tokio::time::Instant::now();
                    if now >= total_deadline {
                        break Err(too_long());
                    }
                    if now >= idle_deadline {
                        break Err(stream_error(format!(
                            "the provider sent nothing for {} s",
                            settings.idle_timeout.as_secs()
                        )));
                    }
                    deadline.as_mut().reset(total_deadline.min(idle_deadline));
                    continue;
                }
            };
            match next {
                Some(Ok(StreamEvent::Delta(text))) => {
                    seq += 1;
                    reply.content.push_str(&text);
                    emitter.emit(ChatEvent::Chunk {
                        message_id: reply.id,
                        session_id: reply.session_id,
                        seq,
                        content: text,
                        at: self.now(),
                        encoded: EncodedOnce::default(),
                    });
                    if last_persist.elapsed() >= PERSIST_EVERY {
                        last_persist = Instant::now();
                        reply.updated_at = self.now();
                        if let Err(e) = self.store().messages.update(&reply).await {
                            tracing::warn!(error = %e, "could not store partial reply text");
                        }
                    }
                }
                Some(Ok(StreamEvent::Usage(u))) => usage = u,
                Some(Ok(StreamEvent::Done { finish_reason: reason })) => {
                    finish_reason = reason;
                    break Ok(());
                }
                Some(Err(e)) => {
                    // The detail (an HTTP client's words) is for the log; the
                    // message is stored and shown to every member.
                    tracing::warn!(error = %e, "the provider failed mid-reply");
                    break Err(stream_error(mid_reply(&e)));
                }
                None => {
                    break Err(stream_error("the provider's stream ended before the reply did".into()));
                }
            }
            let now = tokio::time::Instant::now();
            if now >= total_deadline {
                break Err(too_long());
            }
            // The idle time counts from when the reply waits for the provider again.
            idle_deadline = now + settings.idle_timeout;
        };
        // Dropping the stream aborts the upstream request.
        drop(stream);
        let cancelled = cancel.is_cancelled() && outcome.is_ok() && finish_reason.is_none();
        let outcome = if cancelled && self.interrupting() { Err(crate::health::interrupted()) } else { outcome };
        reply.status = match (&outcome, cancelled) {
            (Err(_), _) => MessageStatus::Failed,
            (Ok(()), true) => MessageStatus::Cancelled,
            (Ok(()), false) => MessageStatus::Complete,
        };
        reply.error = outcome.err();
        reply.usage = (usage != TokenUsage::default())
            .then_some(Usage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens });
        reply.latency_ms = Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
        reply.updated_at = self.now();
        self.store_final(&reply).await;
        self.inner.in_flight.remove(&[reply.id, asked.id]);

        metrics::histogram!("ai_response_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
        metrics::counter!("ai_tokens_total", "provider" => name.as_str(), "model" => model.clone(), "direction" => "input")
            .increment(u64::from(usage.input_tokens));
        metrics::counter!("ai_tokens_total", "provider" => name.as_str(), "model" => model, "direction" => "output")
            .increment(u64::from(usage.output_tokens));
        let span = tracing::Span::current();
        span.record("gen_ai.usage.input_tokens", usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", usage.output_tokens);
        if let Some(reason) = &finish_reason {
            // The convention's value is an array; one reason per reply here.
            span.record("gen_ai.response.finish_reasons", format!("[\"{reason}\"]"));
        }
        if let Some(error) = &reply.error {
            span.record("error", error.message.as_str());
        }
        tracing::info!(
            gen_ai.system = name.as_str(),
            gen_ai.usage.input_tokens = usage.input_tokens,
            gen_ai.usage.output_tokens = usage.output_tokens,
            gen_ai.response.finish_reasons = finish_reason.as_deref().unwrap_or(""),
            status = reply.status.as_str(),
            "reply ended"
        );
        emitter.emit(ChatEvent::ended(&reply));
        reply
    }

    /// Shutdown is cutting the replies still running.
    fn interrupting(&self) -> bool {
        self.inner.interrupting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A reply that produced no text: every provider failed, or it was
    /// stopped before its first token. Stored so the user sees why.
    async fn finish_without_text(
        &self,
        asked: &Message,
        status: MessageStatus,
        error: Option<MessageError>,
        emitter: &Emitter,
    ) -> Message {
        let now = self.now();
        let reply = Message {
            id: MessageId::new_v7(),
            session_id: asked.session_id,
            sender_id: None,
            role: MessageRole::Assistant,
            content: String::new(),
            status,
            provider: None,
            model: None,
            usage: None,
            latency_ms: None,
            client_message_id: None,
            reply_to: Some(asked.id),
            error,
            created_at: now,
            updated_at: now,
        };
        match self.store().messages.insert(&reply).await {
            // Its session was deleted meanwhile: nobody can read it.
            Ok(()) | Err(specgen_ports::RepoError::NotFound) => {}
            Err(e) => tracing::error!(error = %e, "could not store the failed reply"),
        }
        self.inner.in_flight.remove(&[asked.id]);
        // Every reply follows one sequence (the contract's): created as
        // `streaming`, then exactly one final event with the outcome.
        let announced = Message { status: MessageStatus::Streaming, error: None, ..reply.clone() };
        emitter.emit(ChatEvent::MessageCreated(announced));
        emitter.emit(ChatEvent::ended(&reply));
        reply
    }

    /// The final state must land: retry briefly before giving up (a row
    /// left `streaming` is marked failed at the next start).
    async fn store_final(&self, reply: &Message) {
        for attempt in 1..=3 {
            match self.store().messages.update(reply).await {
                Ok(()) => return,
                Err(specgen_ports::RepoError::NotFound) => {
                    // Its first insert failed: store it whole now.
                    if self.store().messages.insert(reply).await.is_ok() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(attempt, error = %e, "could not store the final reply"),
            }
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        tracing::error!(message_id = %reply.id, "the final reply could not be stored");
    }
}

fn stream_error(message: String) -> MessageError {
    MessageError { code: AI_STREAM_FAILED.into(), message }
}

/// What a user is told of a provider failing after its first token.
fn mid_reply(error: &ProviderError) -> String {
    match error {
        ProviderError::Connect(_) | ProviderError::Interrupted(_) | ProviderError::Timeout => {
            "the connection to the provider broke off mid-reply".into()
        }
        ProviderError::Status { status, .. } => format!("the provider answered {status} mid-reply"),
        ProviderError::Protocol(_) => "the provider sent something that could not be read mid-reply".into(),
        ProviderError::Upstream { kind, .. } => format!("the provider reported an error mid-reply ({kind})"),
    }
}

impl App {
    /// The latest messages the context may use, oldest first; `None` when
    /// the store cannot say (the reply then answers the new message alone).
    pub(crate) async fn context_history(&self, session: specgen_domain::SessionId) -> Option<Vec<RecentMessage>> {
        let limit = context_page(self.inner.ai.context.max_messages);
        match self.store().messages.recent(session, limit).await {
            Ok(recent) => Some(recent),
            Err(e) => {
                tracing::warn!(error = %e, "history unavailable; answering from the new message alone");
                None
            }
        }
    }
}

fn context_page(max_messages: usize) -> specgen_domain::PageLimit {
    let wanted = i64::try_from(max_messages.clamp(1, 100)).unwrap_or(100);
    specgen_domain::PageLimit::new(wanted).unwrap_or(specgen_domain::PageLimit::MESSAGES_DEFAULT)
}
