//! `/api/v1/chat/sessions/{id}/messages` and `/api/v1/ai/providers`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use specgen_app::{ChatEvent, SendMessage, SendOutcome};
use specgen_domain::{Message, MessageId, MessageStatus, PageLimit};
use utoipa::ToSchema;

use crate::client::AuthUser;
use crate::dto::{Done, rfc3339};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ValidJson;
use crate::routes::sessions::{PageDto, PageQuery, session_id};
use crate::rules::{self, field, opt_field};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDto {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageErrorDto {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    pub id: String,
    pub session_id: String,
    /// `null` for AI replies.
    pub sender_id: Option<String>,
    /// `user`, `assistant` or `system`.
    #[schema(value_type = crate::dto::MessageRoleSchema)]
    pub role: &'static str,
    /// Plain text exactly as sent (user) or as generated so far (assistant).
    pub content: String,
    /// `complete`, `streaming`, `failed` or `cancelled`.
    #[schema(value_type = crate::dto::MessageStatusSchema)]
    pub status: &'static str,
    #[schema(value_type = Option<crate::routes::sessions::ProviderSchema>)]
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Option<UsageDto>,
    pub latency_ms: Option<i64>,
    pub client_message_id: Option<String>,
    pub error: Option<MessageErrorDto>,
    pub created_at: String,
}

impl From<&Message> for MessageDto {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_text(),
            session_id: m.session_id.to_text(),
            sender_id: m.sender_id.map(|s| s.to_text()),
            role: m.role.as_str(),
            content: m.content.clone(),
            status: m.status.as_str(),
            provider: m.provider.clone(),
            model: m.model.clone(),
            usage: m.usage.map(|u| UsageDto { input_tokens: u.input_tokens, output_tokens: u.output_tokens }),
            latency_ms: m.latency_ms,
            client_message_id: m.client_message_id.as_ref().map(ToString::to_string),
            error: m.error.as_ref().map(|e| MessageErrorDto { code: e.code.clone(), message: e.message.clone() }),
            created_at: rfc3339(m.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SentDto {
    pub user_message: MessageDto,
    /// `null` when no reply was asked for.
    pub ai_message: Option<MessageDto>,
}

/// The wire name of an event, as SSE and the WebSocket send it.
pub fn event_name(event: &ChatEvent) -> &'static str {
    match event {
        ChatEvent::MessageCreated(_) => "message_created",
        ChatEvent::Chunk { .. } => "message_chunk",
        ChatEvent::Complete(_) => "message_complete",
        ChatEvent::Failed(_) => "message_failed",
        ChatEvent::Cancelled(_) => "message_cancelled",
    }
}

/// The JSON data of an event, as SSE and the WebSocket send it, appended to
/// `out`. Typed structs rather than a `serde_json::Value`: every chunk of
/// every reply goes through here twice (SSE and the session feed), and
/// building a map per chunk was a measurable part of a reply's CPU.
pub fn write_event_data(event: &ChatEvent, out: &mut Vec<u8>) {
    use specgen_domain::{MessageId, SessionId};

    #[derive(Serialize)]
    struct Created {
        message: MessageDto,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Complete<'a> {
        message_id: MessageId,
        session_id: SessionId,
        content: &'a str,
        is_complete: bool,
        provider: Option<&'a str>,
        model: Option<&'a str>,
        usage: Option<UsageDto>,
        timestamp: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Failed<'a> {
        message_id: MessageId,
        session_id: SessionId,
        content: &'a str,
        error: Option<MessageErrorDto>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Cancelled<'a> {
        message_id: MessageId,
        session_id: SessionId,
        content: &'a str,
    }

    let usage =
        |m: &Message| m.usage.map(|u| UsageDto { input_tokens: u.input_tokens, output_tokens: u.output_tokens });
    // Serialising these types into a Vec cannot fail.
    let _ = match event {
        ChatEvent::MessageCreated(m) => serde_json::to_writer(out, &Created { message: MessageDto::from(m) }),
        ChatEvent::Chunk { message_id, session_id, seq, content, at, encoded } => {
            // Encoded once for SSE and the WebSocket both.
            out.extend_from_slice(encoded.get_or_encode(|| chunk_json(*message_id, *session_id, *seq, content, *at)));
            Ok(())
        }
        ChatEvent::Complete(m) => serde_json::to_writer(
            out,
            &Complete {
                message_id: m.id,
                session_id: m.session_id,
                content: &m.content,
                is_complete: true,
                provider: m.provider.as_deref(),
                model: m.model.as_deref(),
                usage: usage(m),
                timestamp: rfc3339(m.updated_at),
            },
        ),
        ChatEvent::Failed(m) => serde_json::to_writer(
            out,
            &Failed {
                message_id: m.id,
                session_id: m.session_id,
                content: &m.content,
                error: m.error.as_ref().map(|e| MessageErrorDto { code: e.code.clone(), message: e.message.clone() }),
            },
        ),
        ChatEvent::Cancelled(m) => {
            serde_json::to_writer(out, &Cancelled { message_id: m.id, session_id: m.session_id, content: &m.content })
        }
    };
}

/// A `message_chunk`'s data, `{messageId, sessionId, seq, content,
/// isComplete: false, timestamp}`, written field by field: every chunk of
/// every reply comes through here, and serde's generic path spent most of a
/// chunk's encoding on the constant keys (callgrind). The content goes
/// through serde_json's string escaping; a test holds the output to serde's.
fn chunk_json(
    message_id: MessageId,
    session_id: specgen_domain::SessionId,
    seq: u64,
    content: &str,
    at: time::OffsetDateTime,
) -> Vec<u8> {
    let mut ids = uuid::Uuid::encode_buffer();
    // The fixed part is about 190 bytes: one allocation, no regrowth.
    let mut out = Vec::with_capacity(224 + content.len());
    out.extend_from_slice(br#"{"messageId":""#);
    out.extend_from_slice(message_id.as_uuid().hyphenated().encode_lower(&mut ids).as_bytes());
    out.extend_from_slice(br#"","sessionId":""#);
    out.extend_from_slice(session_id.as_uuid().hyphenated().encode_lower(&mut ids).as_bytes());
    out.extend_from_slice(br#"","seq":"#);
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(br#","content":"#);
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, content);
    out.extend_from_slice(br#","isComplete":false,"timestamp":""#);
    // As `rfc3339` writes it (nothing if it cannot), without a String of its own.
    let before = out.len();
    if at.format_into(&mut out, &time::format_description::well_known::Rfc3339).is_err() {
        out.truncate(before);
    }
    out.extend_from_slice(b"\"}");
    out
}

/// A page of messages; items oldest first, `nextCursor` walks back in time.
#[utoipa::path(
    operation_id = "list_messages",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id"), PageQuery),
    responses((status = 200, body = inline(Envelope<PageDto<MessageDto>>)), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/sessions/{id}/messages")]
pub async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // A session's messages are a list of their own: its id names it.
    let session = session_id(&id)?;
    let listed = session.to_string();
    let page = PageQuery::from_request(&req)?.into_request(PageLimit::MESSAGES_DEFAULT, &listed)?;
    let page = state.app.list_messages(auth.0, session, page).await?;
    Ok(envelope::ok(PageDto::from_page(&page, &listed, |m| MessageDto::from(m))))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageRequest {
    /// Plain text, 1..10,000 characters after trimming; no control characters
    /// but newline, carriage return and tab; stored exactly as sent.
    #[garde(custom(rules::message_content))]
    #[schema(min_length = 1, max_length = 10000)]
    pub content: String,
    /// Idempotency key, 1..128 printable characters: a repeat in the same session returns the original messages.
    #[garde(custom(rules::opt_client_message_id))]
    #[schema(min_length = 1, max_length = 128)]
    pub client_message_id: Option<String>,
    /// One of the enabled providers (`GET /api/v1/ai/providers`).
    #[garde(custom(rules::opt_provider))]
    #[schema(value_type = Option<crate::routes::sessions::ProviderSchema>)]
    pub provider: Option<String>,
    #[garde(custom(rules::opt_model))]
    #[schema(min_length = 1, max_length = 200)]
    pub model: Option<String>,
    /// Ask for an AI reply (default true; `null` is the default, as for
    /// every optional field).
    #[garde(skip)]
    #[schema(default = true)]
    pub ai_reply: Option<bool>,
}

impl SendMessageRequest {
    pub fn wants_reply(&self) -> bool {
        self.ai_reply.unwrap_or(true)
    }

    /// The checked request as the application takes it (HTTP and the gateway alike).
    pub fn to_domain(&self) -> Result<SendMessage, ApiError> {
        Ok(SendMessage {
            id: None,
            content: field("content", specgen_domain::MessageContent::parse(&self.content))?,
            client_message_id: opt_field(
                "clientMessageId",
                self.client_message_id.as_deref(),
                specgen_domain::ClientMessageId::parse,
            )?,
            provider: opt_field("provider", self.provider.as_deref(), specgen_domain::ProviderName::parse)?,
            model: opt_field("model", self.model.as_deref(), specgen_domain::ModelName::parse)?,
            ai_reply: self.wants_reply(),
        })
    }
}

/// Whether the client prefers Server-Sent Events to JSON: its `Accept`
/// names `text/event-stream` (media types are case-insensitive) with a
/// quality above zero, and gives JSON no higher a quality. JSON's quality
/// is that of its most specific range (`application/json`, then
/// `application/*`, then `*/*`).
fn wants_event_stream(req: &HttpRequest) -> bool {
    use actix_web::http::header::Quality;
    let accept = crate::accept::MediaRanges::of(req);
    let Some(stream) = accept.exact("text", "event-stream").filter(|q| *q > Quality::ZERO) else { return false };
    accept.quality("application", "json").is_none_or(|json| stream >= json)
}

/// Sends a message. Answers once the AI reply has ended (201), or streams
/// Server-Sent Events with `Accept: text/event-stream`. A reply whose every
/// provider failed is still 201, with `aiMessage.status` `failed`.
#[utoipa::path(
    operation_id = "send_message",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    request_body = SendMessageRequest,
    responses(
        (status = 201, body = inline(Envelope<SentDto>)),
        (status = 200, description = "A repeated clientMessageId: the original messages (JSON). Or, with \
            `Accept: text/event-stream`, the Server-Sent Events of a new message: `message_created` (user \
            message), `message_created` (AI message, `streaming`), its `message_chunk`s, then one of \
            `message_complete`, `message_failed`, `message_cancelled`", content(
            (inline(Envelope<SentDto>) = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/sessions/{id}/messages")]
pub async fn send(
    state: web::Data<AppState>,
    auth: AuthUser,
    id: web::Path<String>,
    req: HttpRequest,
    ValidJson(body): ValidJson<SendMessageRequest>,
) -> Result<HttpResponse, ApiError> {
    let send = body.to_domain()?;
    let wants_sse = wants_event_stream(&req);
    match state.app.send_message(auth.0, session_id(&id)?, send).await? {
        SendOutcome::Replayed { user_message, ai_message } => {
            // A retried send answers as the original would have: after the reply.
            let (user_message, ai_message) =
                state.app.settle_replay(user_message.session_id, user_message, ai_message).await?;
            if wants_sse {
                return Ok(sse_replay(user_message, ai_message));
            }
            Ok(envelope::ok(SentDto {
                user_message: MessageDto::from(&user_message),
                ai_message: ai_message.as_ref().map(MessageDto::from),
            }))
        }
        SendOutcome::Created { events, .. } if wants_sse => Ok(sse(events, body.wants_reply())),
        SendOutcome::Created { user_message, mut events } => {
            let mut ai_message = None;
            if body.wants_reply() {
                while let Some(event) = events.recv().await {
                    if event.is_final() {
                        if let ChatEvent::Complete(m) | ChatEvent::Failed(m) | ChatEvent::Cancelled(m) = event {
                            ai_message = Some(MessageDto::from(&m));
                        }
                        break;
                    }
                }
            }
            Ok(envelope::created(SentDto { user_message: MessageDto::from(&user_message), ai_message }))
        }
    }
}

/// Events already waiting when the writer wakes go out in one write, up to
/// this many: a burst of chunks costs one syscall instead of one each,
/// and no event ever waits for a later one.
const SSE_BATCH: usize = 64;

/// One SSE frame per event, written as soon as it comes; the stream ends
/// after the reply's final event (or after the user message when no reply
/// was asked).
fn sse(events: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>, ai_reply: bool) -> HttpResponse {
    let is_last =
        move |event: &ChatEvent| event.is_final() || (!ai_reply && matches!(event, ChatEvent::MessageCreated(_)));
    let frames = futures::stream::unfold((events, false), move |(mut events, done)| async move {
        if done {
            return None;
        }
        let event = events.recv().await?;
        let mut last = is_last(&event);
        let mut buffer = Vec::with_capacity(512);
        write_sse_frame(&mut buffer, &event);
        for _ in 1..SSE_BATCH {
            if last {
                break;
            }
            let Ok(event) = events.try_recv() else { break };
            last = is_last(&event);
            write_sse_frame(&mut buffer, &event);
        }
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(buffer)), (events, last)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(frames.boxed_local())
}

/// A retried streamed send gets a stream too, of the original messages as
/// they are stored once the reply has ended: the user message, the reply
/// (with its text and final status) and its final event; no chunks, since
/// the final event carries the whole text. A reply still running on another
/// instance ends the stream after its `message_created` (status
/// `streaming`), with no final event to give yet.
fn sse_replay(user_message: Message, ai_message: Option<Message>) -> HttpResponse {
    let (events, stream) = tokio::sync::mpsc::unbounded_channel();
    let ai_reply = ai_message.is_some();
    let _ = events.send(ChatEvent::MessageCreated(user_message));
    if let Some(reply) = ai_message {
        let ended = (reply.status != MessageStatus::Streaming).then(|| ChatEvent::ended(&reply));
        let _ = events.send(ChatEvent::MessageCreated(reply));
        if let Some(ended) = ended {
            let _ = events.send(ended);
        }
    }
    sse(stream, ai_reply)
}

fn write_sse_frame(buffer: &mut Vec<u8>, event: &ChatEvent) {
    buffer.extend_from_slice(b"event: ");
    buffer.extend_from_slice(event_name(event).as_bytes());
    buffer.extend_from_slice(b"\ndata: ");
    write_event_data(event, buffer);
    buffer.extend_from_slice(b"\n\n");
}

/// Stops a reply in flight; its partial text is kept with status `cancelled`.
#[utoipa::path(
    operation_id = "cancel_reply",
    tag = "chat",
    params(("id" = uuid::Uuid, Path, description = "Session id"), ("message_id" = uuid::Uuid, Path, description = "The AI message, or the user message it answers")),
    responses(
        (status = 200, body = inline(Envelope<Done>)),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The reply has already ended", body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/sessions/{id}/messages/{message_id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, message) = path.into_inner();
    let message: MessageId = message.parse().map_err(|_| ApiError::not_found("message"))?;
    state.app.cancel_reply(auth.0, session_id(&id)?, message).await?;
    Ok(envelope::ok(Done { ok: true }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDto {
    /// `claude`, `openai` or `demo`.
    pub name: &'static str,
    /// A hint: any model the provider accepts works.
    pub models: Vec<String>,
    pub default_model: String,
    pub is_default: bool,
    /// False while its circuit breaker is open after repeated failures.
    pub available: bool,
    /// True for the offline demo provider, whose replies are canned.
    pub is_demo: bool,
}

/// The enabled AI providers, the default first.
#[utoipa::path(operation_id = "list_providers", tag = "ai", responses((status = 200, body = inline(Envelope<Vec<ProviderDto>>))), security(("bearer" = [])))]
#[get("/providers")]
pub async fn providers(state: web::Data<AppState>, _auth: AuthUser) -> HttpResponse {
    let enabled: Vec<ProviderDto> = state
        .app
        .providers()
        .into_iter()
        .enumerate()
        .map(|(i, (p, available))| ProviderDto {
            name: p.name().as_str(),
            models: p.models(),
            default_model: p.default_model().to_owned(),
            is_default: i == 0,
            available,
            is_demo: p.name() == specgen_domain::ProviderName::Demo,
        })
        .collect();
    envelope::ok(enabled)
}

#[cfg(test)]
mod tests {
    use specgen_domain::SessionId;

    use super::*;

    /// What serde writes for a chunk's data: the reference `chunk_json` keeps to.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SerdeChunk<'a> {
        message_id: MessageId,
        session_id: SessionId,
        seq: u64,
        content: &'a str,
        is_complete: bool,
        timestamp: String,
    }

    #[test]
    fn chunk_data_is_byte_for_byte_what_serde_writes() {
        let (message_id, session_id) = (MessageId::new_v7(), SessionId::new_v7());
        let at = time::macros::datetime!(2026-11-30 08:21:07.123456 UTC);
        for (seq, content) in [
            (1, "Hello"),
            (2, ""),
            (u64::MAX, "quotes \" and \\ backslash, <div> & 'single'"),
            (40, "lines\nand\ttabs\r\u{0}\u{1f}\u{7f} controls"),
            (7, "ünïcödé, 漢字, emoji 🦀, \u{2028}\u{2029}"),
        ] {
            let ours = chunk_json(message_id, session_id, seq, content, at);
            let serde = serde_json::to_vec(&SerdeChunk {
                message_id,
                session_id,
                seq,
                content,
                is_complete: false,
                timestamp: rfc3339(at),
            })
            .unwrap();
            assert_eq!(String::from_utf8(ours).unwrap(), String::from_utf8(serde).unwrap());
        }
    }

    #[test]
    fn event_streams_are_chosen_by_media_type_and_quality() {
        let wants = |accept: &str| {
            let req = actix_web::test::TestRequest::default().insert_header((header::ACCEPT, accept)).to_http_request();
            super::wants_event_stream(&req)
        };
        assert!(wants("text/event-stream"));
        assert!(wants("TEXT/Event-Stream"), "media types are case-insensitive");
        assert!(wants("application/json;q=0.5, text/event-stream"));
        assert!(wants("text/event-stream, */*"));
        assert!(!wants("text/event-stream;q=0.1, application/json"), "JSON preferred");
        assert!(!wants("text/event-stream;q=0"), "refused");
        assert!(!wants("application/json"));
        assert!(!wants("*/*"));
        assert!(!wants("text/*"), "JSON unless event streams are named");
        let none = actix_web::test::TestRequest::default().to_http_request();
        assert!(!super::wants_event_stream(&none));
    }
}
