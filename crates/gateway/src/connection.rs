//! One WebSocket connection: its frames in, its replies out, its heartbeat.
//! Events of the sessions it joined are written by the rooms through its
//! [`Link`]; this task sends its own replies through the same link, flushes
//! what the socket did not take at once, and handles revocations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use specgen_app::{AppError, AuthContext, SendOutcome};
use specgen_domain::{Message, MessageId, MessageRole, MessageStatus, SessionId};
use specgen_http::ApiError;
use specgen_http::routes::messages::{MessageDto, SendMessageRequest};
use specgen_ports::Presence;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::State;
use crate::frames::{self, ClientFrame};
use crate::hub::topic;
use crate::link::{Link, close_frame, control_frame, text_frame};
use crate::packet::{Kind, Packet};
use crate::socket::{Incoming, Reader};

/// Close codes of the contract beyond the standard ones.
const UNAUTHENTICATED: u16 = 4401;
const AUTH_TIMEOUT: u16 = 4408;
const RATE_LIMITED: u16 = 4429;
const TOO_SLOW: u16 = 1013;
const GOING_AWAY: u16 = 1001;
const POLICY: u16 = 1008;
const NORMAL: u16 = 1000;

/// Longest wait for the socket to take what is queued before the client
/// counts as not reading.
const SEND_PATIENCE: Duration = Duration::from_secs(10);

/// How long a closing connection waits for the client's own close frame.
const CLOSE_PATIENCE: Duration = Duration::from_secs(2);

/// How a connection ends: with a close frame, or silently (the peer is gone).
enum End {
    Close(u16, &'static str),
    Gone,
}

pub(crate) async fn run(state: Arc<State>, mut reader: Reader, link: Link, auth: Option<AuthContext>) {
    state.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    metrics::gauge!("ws_connections").increment(1.0);
    let mut connection = Connection {
        id: rand::random::<u128>().max(1),
        bucket: Bucket::new(state.config.frame_burst, state.config.frames_per_second),
        state,
        link: Arc::new(link),
        auth: None,
        joined: Vec::new(),
        last_seen: Instant::now(),
    };
    let end = connection.serve(&mut reader, auth).await;
    connection.finish(end, reader).await;
}

struct Connection {
    state: Arc<State>,
    /// Unique across instances: marks what this connection published.
    id: u128,
    link: Arc<Link>,
    auth: Option<AuthContext>,
    joined: Vec<SessionId>,
    last_seen: Instant,
    bucket: Bucket,
}

impl Connection {
    async fn serve(&mut self, reader: &mut Reader, auth: Option<AuthContext>) -> End {
        if let Some(auth) = auth
            && let Err(end) = self.authenticated(auth, None).await
        {
            return end;
        }
        let config = &self.state.config;
        let auth_deadline = tokio::time::sleep(config.auth_timeout);
        tokio::pin!(auth_deadline);
        let mut heartbeat = tokio::time::interval_at(Instant::now() + config.heartbeat_every, config.heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let peer_timeout = config.peer_timeout;
        let shutdown = self.state.shutdown.clone();
        let link = Arc::clone(&self.link);
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Err(End::Close(GOING_AWAY, "the server is restarting")),
                _ = link.cut_signal().cancelled() => Err(self.cut_reason()),
                _ = link.woken() => Box::pin(self.on_wake()).await,
                incoming = reader.recv() => match incoming {
                    None => Err(End::Gone),
                    Some(Err(_)) => Err(End::Close(POLICY, "frame too large or malformed")),
                    Some(Ok(message)) => {
                        self.last_seen = Instant::now();
                        // Boxed: handling a frame can take a large future (a
                        // send reaches the store), which would otherwise be
                        // part of every idle connection's state.
                        Box::pin(self.on_message(message)).await
                    }
                },
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() > peer_timeout {
                        // Nobody is there to read a close frame.
                        Err(End::Gone)
                    } else {
                        self.link.send(control_frame(actix_http::ws::OpCode::Ping, b""));
                        Ok(())
                    }
                }
                _ = &mut auth_deadline, if self.auth.is_none() => {
                    let _ = self.send(frames::error("UNAUTHENTICATED", "No authentication within the time allowed.", None, None)).await;
                    Err(End::Close(AUTH_TIMEOUT, "authentication timeout"))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Why the link was cut: its socket failed, or the client fell behind.
    fn cut_reason(&self) -> End {
        if self.link.is_broken() { End::Gone } else { too_slow() }
    }

    /// Leaves every room, tells the others, and closes.
    async fn finish(mut self, end: End, mut reader: Reader) {
        for session in std::mem::take(&mut self.joined) {
            self.depart(session).await;
        }
        if let Some(auth) = self.auth {
            self.state.user_left(auth.user_id);
        }
        self.state.connections.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        metrics::gauge!("ws_connections").decrement(1.0);
        if let End::Close(code, why) = end
            && !self.link.is_broken()
        {
            // The close frame queues behind what the client has not read
            // yet; a client that reads none of it within the patience is
            // simply dropped (the rooms were left above, so it holds only
            // its socket's buffers meanwhile).
            self.link.send(close_frame(code, why));
            if let Ok(Ok(())) = tokio::time::timeout(SEND_PATIENCE, self.link.flush()).await {
                // Until the client answers the close (or goes), read and drop
                // what it still sends: closing with unread input would reset
                // the connection and could destroy the close frame unread.
                let _ = tokio::time::timeout(CLOSE_PATIENCE, async {
                    while let Some(Ok(message)) = reader.recv().await {
                        if matches!(message, Incoming::Close) {
                            break;
                        }
                    }
                })
                .await;
            }
        }
    }

    /// Sends `payload` (a JSON frame) after everything queued before it.
    async fn send(&mut self, payload: Bytes) -> Result<(), End> {
        self.link.send(text_frame(&payload));
        self.flush().await
    }

    /// Waits until the socket has taken everything queued; a client that
    /// stops reading is cut.
    async fn flush(&self) -> Result<(), End> {
        if !self.link.has_pending() {
            return Ok(());
        }
        tokio::select! {
            flushed = self.link.flush() => flushed.map_err(|_| End::Gone),
            _ = self.link.cut_signal().cancelled() => Err(self.cut_reason()),
            _ = tokio::time::sleep(SEND_PATIENCE) => Err(too_slow()),
        }
    }

    /// Something for this task: frames waiting for the socket, revocations.
    async fn on_wake(&mut self) -> Result<(), End> {
        for session in self.link.take_revoked() {
            if let Some(at) = self.joined.iter().position(|s| *s == session) {
                self.joined.swap_remove(at);
                // Removed from the session: the others see them leave, as
                // if they had left themselves.
                self.depart(session).await;
                self.link.send(text_frame(&frames::frame("left_session", json!({ "sessionId": session }), None)));
            }
        }
        self.flush().await
    }

    async fn on_message(&mut self, message: Incoming) -> Result<(), End> {
        match message {
            Incoming::Text(text) => {
                if !self.bucket.take() {
                    // The frame's id, if it has one, for the client to place the error.
                    let id = serde_json::from_slice::<ClientFrame>(&text).ok().and_then(|frame| frame.id);
                    let error = frames::error("RATE_LIMITED", "Too many frames; slow down.", None, id.as_ref());
                    let _ = self.send(error).await;
                    return Err(End::Close(RATE_LIMITED, "rate limited"));
                }
                match serde_json::from_slice::<ClientFrame>(&text) {
                    Ok(frame) => {
                        let span = tracing::info_span!(
                            "ws.event",
                            otel.name = format!("ws {}", frame.event),
                            otel.kind = "server",
                            ws.event = %frame.event,
                            user.id = self.auth.map(|a| a.user_id.to_string()),
                        );
                        self.on_frame(frame).instrument(span).await
                    }
                    Err(_) => {
                        // Echo the id of a JSON frame of the wrong shape.
                        let id = serde_json::from_slice::<Value>(&text).ok().and_then(|v| v.get("id").cloned());
                        let message = "A frame must be JSON: {\"event\": \"...\", \"data\": {...}, \"id\": \"...\"}.";
                        self.send(frames::error("BAD_REQUEST", message, None, id.as_ref())).await
                    }
                }
            }
            Incoming::Binary => {
                self.send(frames::error("BAD_REQUEST", "Frames must be JSON text, not binary.", None, None)).await
            }
            Incoming::Ping(bytes) => {
                self.link.send(control_frame(actix_http::ws::OpCode::Pong, &bytes));
                self.flush().await
            }
            Incoming::Pong => Ok(()),
            Incoming::Close => Err(End::Close(NORMAL, "bye")),
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Result<(), End> {
        let id = frame.id.as_ref();
        if frame.event == "authenticate" {
            return self.authenticate(&frame.data, id).await;
        }
        let Some(auth) = self.auth else {
            let _ = self.send(frames::error("UNAUTHENTICATED", "Authenticate first.", None, id)).await;
            return Err(End::Close(UNAUTHENTICATED, "unauthenticated"));
        };
        let outcome = match frame.event.as_str() {
            "join_session" => self.join_session(auth, &frame.data, id).await,
            "leave_session" => self.leave_session(auth, &frame.data, id).await,
            "send_message" => self.send_message(auth, &frame.data, id).await,
            "stop_generation" => self.stop_generation(auth, &frame.data).await,
            "typing" => self.typing(auth, &frame.data).await,
            "resume" => self.resume(auth, &frame.data, id).await,
            "ping" => Ok(Some(frames::frame("pong", json!({}), id))),
            other => Err(ApiError::BadRequest(format!("Unknown event `{other}`.")).into()),
        };
        match outcome {
            Ok(Some(reply)) => self.send(reply).await,
            Ok(None) => Ok(()),
            Err(Failure::End(end)) => Err(end),
            Err(Failure::Api(error)) => self.send(error_frame(&error, id)).await,
        }
    }

    async fn authenticate(&mut self, data: &Value, id: Option<&Value>) -> Result<(), End> {
        let token = data.get("token").and_then(Value::as_str).unwrap_or_default();
        match self.state.app.authenticate(token).await {
            Ok(auth) => match self.auth {
                Some(current) if current.user_id != auth.user_id => {
                    let message = "This connection belongs to another user.";
                    self.send(frames::error("FORBIDDEN", message, None, id)).await
                }
                _ => self.authenticated(auth, id).await,
            },
            Err(e) => {
                let message = match e {
                    AppError::TokenExpired => "The access token has expired.",
                    _ => "A valid access token is required.",
                };
                let _ = self.send(frames::error("UNAUTHENTICATED", message, None, id)).await;
                Err(End::Close(UNAUTHENTICATED, "unauthenticated"))
            }
        }
    }

    async fn authenticated(&mut self, auth: AuthContext, id: Option<&Value>) -> Result<(), End> {
        if self.auth.is_none() {
            self.state.user_arrived(auth.user_id);
        }
        self.auth = Some(auth);
        let data = json!({ "message": "authenticated", "userId": auth.user_id });
        self.send(frames::frame("connected", data, id)).await
    }

    /// Joins `session` unless already in it; true when newly joined.
    async fn join(&mut self, auth: AuthContext, session: SessionId) -> Result<bool, Failure> {
        if self.joined.contains(&session) {
            return Ok(false);
        }
        self.state.app.check_access(auth, session).await?;
        let first_here = self
            .state
            .hub
            .join(session, self.id, auth.user_id, Arc::clone(&self.link))
            .await
            .map_err(|e| ApiError::Unavailable(e.to_string()))?;
        self.joined.push(session);
        if self.state.presences.enter(self.presence(session, auth), first_here).await {
            self.publish_presence(session, auth, "user_joined").await;
        }
        Ok(true)
    }

    /// Leaves the room of `session` (already taken out of `joined`); the
    /// others hear of it if that was the person's last connection there.
    async fn depart(&self, session: SessionId) {
        let last_here = self.state.hub.leave(session, self.id);
        if let Some(auth) = self.auth
            && self.state.presences.leave(self.presence(session, auth), last_here).await
        {
            self.publish_presence(session, auth, "user_left").await;
        }
    }

    fn presence(&self, session: SessionId, auth: AuthContext) -> Presence {
        Presence { session, user: auth.user_id, connection: self.id }
    }

    async fn join_session(&mut self, auth: AuthContext, data: &Value, id: Option<&Value>) -> Outcome {
        let session = session_id(data)?;
        self.join(auth, session).await?;
        Ok(Some(frames::frame("joined_session", json!({ "sessionId": session }), id)))
    }

    async fn leave_session(&mut self, auth: AuthContext, data: &Value, id: Option<&Value>) -> Outcome {
        let session = session_id(data)?;
        if let Some(at) = self.joined.iter().position(|s| *s == session) {
            self.joined.swap_remove(at);
            self.depart(session).await;
        } else {
            // Not joined here: a participant's leave is a no-op, anyone
            // else's is about a session they may not know exists.
            self.state.app.check_access(auth, session).await?;
        }
        Ok(Some(frames::frame("left_session", json!({ "sessionId": session }), id)))
    }

    /// The same path as HTTP: checks, limits, idempotency, AI reply. The
    /// sender joins the session first so it hears its own message and the
    /// reply like everyone else.
    async fn send_message(&mut self, auth: AuthContext, data: &Value, id: Option<&Value>) -> Outcome {
        // Both checked, so that every failing field is named at once.
        let checked =
            (session_id(data), specgen_http::extract::parse_valid::<SendMessageRequest>(data.to_string().as_bytes()));
        let (session, body) = match checked {
            (Ok(session), Ok(body)) => (session, body),
            (Err(ApiError::Validation(mut first)), Err(ApiError::Validation(rest))) => {
                first.extend(rest);
                return Err(ApiError::Validation(first).into());
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        let mut send = body.to_domain()?;
        self.join(auth, session).await?;
        // Its events reach this connection through the room, like every
        // member's; the new message's `message_created` answers the frame,
        // so it carries the frame's `id` here (only).
        let echo = id.map(|id| {
            let message = MessageId::new_v7();
            send.id = Some(message);
            self.link.echo(message.as_uuid().as_u128(), Bytes::from(serde_json::to_vec(id).unwrap_or_default()));
            message
        });
        let sent = self.state.app.send_message(auth, session, send).await;
        if let Some(message) = echo
            && !matches!(sent, Ok(SendOutcome::Created { .. }))
        {
            self.link.forget_echo(message.as_uuid().as_u128());
        }
        match sent? {
            SendOutcome::Created { .. } => Ok(None),
            SendOutcome::Replayed { user_message, ai_message } => {
                // As the SSE replay: both messages as stored, then the
                // reply's final event if it has ended.
                self.send(message_created(&user_message, id)).await?;
                if let Some(ai) = ai_message {
                    self.send(message_created(&ai, id)).await?;
                    if ai.status != MessageStatus::Streaming {
                        self.send(final_frame(&ai, id)).await?;
                    }
                }
                Ok(None)
            }
        }
    }

    async fn stop_generation(&mut self, auth: AuthContext, data: &Value) -> Outcome {
        let session = session_id(data)?;
        let message = message_id(data)?;
        self.state.app.cancel_reply(auth, session, message).await?;
        // `message_cancelled` reaches every member through the room.
        Ok(None)
    }

    async fn typing(&mut self, auth: AuthContext, data: &Value) -> Outcome {
        let session = session_id(data)?;
        let Some(is_typing) = data.get("isTyping").and_then(Value::as_bool) else {
            return Err(ApiError::validation("isTyping", "must be true or false").into());
        };
        if !self.joined.contains(&session) {
            self.state.app.check_access(auth, session).await?;
        }
        let frame = frames::frame(
            "typing",
            json!({ "sessionId": session, "userId": auth.user_id, "isTyping": is_typing }),
            None,
        );
        let packet =
            Packet { origin: self.id, user: auth.user_id.as_uuid().as_u128(), ..Packet::new(Kind::OtherPeople, frame) };
        self.publish(session, packet).await;
        Ok(None)
    }

    /// The chunks after `afterSeq` of a reply in flight, then its live ones;
    /// or, once it has ended, its final event from the store.
    async fn resume(&mut self, auth: AuthContext, data: &Value, id: Option<&Value>) -> Outcome {
        let session = session_id(data)?;
        let message_id = message_id(data)?;
        let after = match data.get("afterSeq") {
            None | Some(Value::Null) => return Err(ApiError::validation("afterSeq", "required").into()),
            Some(v) => v.as_u64().ok_or_else(|| ApiError::validation("afterSeq", "must be a whole number >= 0"))?,
        };
        // A resume that fails joins nothing: the reply is looked up before
        // the join (and read again after it, below).
        if !self.joined.contains(&session) {
            self.reply(auth, session, message_id).await?;
        }
        // Held, then subscribed, then read: whatever is appended after the
        // read arrives live, held back until the resumed chunks are out
        // (held from before the subscription, so none overtakes them), and
        // anything already sent is not sent again.
        let key = message_id.as_uuid().as_u128();
        self.link.hold(key);
        if let Err(failure) = self.join(auth, session).await {
            self.link.resumed(key, after, Vec::new());
            return Err(failure);
        }
        let read = async {
            let message = self.reply(auth, session, message_id).await?;
            if message.status != MessageStatus::Streaming {
                return Ok(Err(message));
            }
            let chunks = self
                .state
                .log
                .read_after(&message_id.to_string(), after)
                .await
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            Ok(Ok(chunks))
        };
        let read = read.await;
        match read {
            Err(failure) => {
                // Nothing resumed: what was held goes out as it would have.
                self.link.resumed(key, after, Vec::new());
                Err(failure)
            }
            Ok(Err(ended)) => {
                self.link.resumed_ended(key, text_frame(&final_frame(&ended, id)));
                self.flush().await?;
                Ok(None)
            }
            Ok(Ok(chunks)) => {
                let now = specgen_http::dto::rfc3339(self.state.app.clock().now());
                let frames = chunks
                    .into_iter()
                    .map(|(seq, content)| {
                        let chunk = json!({
                            "messageId": message_id, "sessionId": session, "seq": seq, "content": content,
                            "isComplete": false, "timestamp": now,
                        });
                        (seq, text_frame(&frames::frame("message_chunk", chunk, id)))
                    })
                    .collect();
                self.link.resumed(key, after, frames);
                self.flush().await?;
                Ok(None)
            }
        }
    }

    /// The AI message `message_id` of `session`, as the caller may read it.
    async fn reply(&self, auth: AuthContext, session: SessionId, message_id: MessageId) -> Result<Message, Failure> {
        let message = self.state.app.message(auth, session, message_id).await?;
        if message.role != MessageRole::Assistant {
            return Err(ApiError::not_found("reply").into());
        }
        Ok(message)
    }

    /// Tells the other people in `session` that this user arrived or left;
    /// none of the user's own connections hears it (two tabs that join at
    /// once would otherwise hear of each other, as of someone else).
    async fn publish_presence(&self, session: SessionId, auth: AuthContext, event: &str) {
        let frame = frames::frame(event, json!({ "userId": auth.user_id, "sessionId": session }), None);
        let packet =
            Packet { origin: self.id, user: auth.user_id.as_uuid().as_u128(), ..Packet::new(Kind::OtherPeople, frame) };
        self.publish(session, packet).await;
    }

    async fn publish(&self, session: SessionId, packet: Packet) {
        if let Err(e) = self.state.bus.publish(&topic(session), packet.encode()).await {
            tracing::warn!(error = %e, "could not publish presence or typing");
        }
    }
}

fn too_slow() -> End {
    metrics::counter!("ws_slow_consumers_total").increment(1);
    End::Close(TOO_SLOW, "reading too slowly")
}

/// Why a frame was not carried out: an error to report, or the end.
enum Failure {
    Api(ApiError),
    End(End),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self::Api(e.into())
    }
}

impl From<End> for Failure {
    fn from(e: End) -> Self {
        Self::End(e)
    }
}

/// A direct reply, if the frame has one.
type Outcome = Result<Option<Bytes>, Failure>;

fn error_frame(error: &ApiError, id: Option<&Value>) -> Bytes {
    match error {
        ApiError::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error on the gateway"),
        ApiError::Unavailable(why) => tracing::warn!(why, "dependency unavailable on the gateway"),
        _ => {}
    }
    let body = error.envelope(String::new()).error;
    let mut data = json!({ "code": body.code, "message": body.message });
    if !body.details.is_empty() {
        data["details"] = json!(body.details);
    }
    if let ApiError::RateLimited { retry_after_secs, .. } = error {
        // Clients wait this long, as HTTP's Retry-After tells them.
        data["retryAfter"] = json!(retry_after_secs);
    }
    frames::frame("error", data, id)
}

fn session_id(data: &Value) -> Result<SessionId, ApiError> {
    id_field(data, "sessionId", "session")
}

fn message_id(data: &Value) -> Result<MessageId, ApiError> {
    id_field(data, "messageId", "message")
}

/// A required id: missing or not a string is invalid; a string that names
/// nothing is not found, as on HTTP paths.
fn id_field<T: std::str::FromStr>(data: &Value, field: &str, what: &str) -> Result<T, ApiError> {
    let raw = match data.get(field) {
        None | Some(Value::Null) => return Err(ApiError::validation(field, "required")),
        Some(value) => value.as_str().ok_or_else(|| ApiError::validation(field, "must be a string"))?,
    };
    raw.parse().map_err(|_| ApiError::not_found(what))
}

fn message_created(message: &Message, id: Option<&Value>) -> Bytes {
    frames::frame("message_created", json!({ "message": MessageDto::from(message) }), id)
}

/// The final event of an ended reply, from its stored state, as the answer
/// to the frame `id` (a resume, a repeated send).
fn final_frame(message: &Message, id: Option<&Value>) -> Bytes {
    let encoded = frames::chat_event(&specgen_app::ChatEvent::ended(message));
    let Some(id) = id else { return encoded };
    // Rare (an ended reply asked for again): the shared encoding, then the id.
    match serde_json::from_slice::<Value>(&encoded) {
        Ok(mut frame) => {
            frame["id"] = id.clone();
            Bytes::from(serde_json::to_vec(&frame).unwrap_or_default())
        }
        Err(_) => encoded,
    }
}

/// Frames a client may send: a token bucket.
struct Bucket {
    tokens: f32,
    burst: f32,
    per_second: f32,
    at: Instant,
}

impl Bucket {
    fn new(burst: u32, per_second: u32) -> Self {
        Self { tokens: burst as f32, burst: burst as f32, per_second: per_second as f32, at: Instant::now() }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f32() * self.per_second;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
