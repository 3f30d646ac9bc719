//! A connection's way out, shared by its own task and the rooms it joined.
//!
//! A room writes an event straight to each member's socket with a
//! non-blocking write: no task is woken per member, and the frame, encoded
//! once for the whole room, is never copied. Only what a socket does not
//! take at once is queued (bounded), for the connection's task to send as
//! the client reads; a member whose queue overflows is cut (closed with
//! 1013) instead of growing memory or slowing the others.
//!
//! The per-connection bookkeeping that makes `resume` exact lives here too,
//! under the same lock as the writes, so no chunk is sent twice.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use bytes::{Bytes, BytesMut};
use specgen_domain::SessionId;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Finished replies whose final state a `resume` sent from the store, so
/// the same final arriving live is not sent twice. Only the latest few
/// matter: a final arrives live within moments of the resume.
const ENDED_REMEMBERED: usize = 16;

/// Messages sent on this connection whose `message_created` has not
/// arrived yet, each to be answered with its frame's `id`: a client may
/// send several before the first one's arrives.
const ECHOES_REMEMBERED: usize = 16;

/// An event for the members of a room, its frame already encoded.
#[derive(Debug, Clone)]
pub(crate) enum Live {
    Frame(Bytes),
    /// `message_created` of `message`; `json` is the frame's payload.
    Created {
        message: u128,
        json: Bytes,
        frame: Bytes,
    },
    Chunk {
        message: u128,
        seq: u64,
        frame: Bytes,
    },
    Final {
        message: u128,
        frame: Bytes,
    },
}

/// The contiguous run of a reply's chunks this connection has been sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    first: u64,
    last: u64,
}

pub(crate) struct Link {
    write: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes the connection's task: frames wait for the socket, or a
    /// revocation needs handling.
    wake: Notify,
    /// Fires when the connection must go: its queue overflowed or its
    /// socket failed.
    cut: CancellationToken,
    capacity: usize,
}

#[derive(Default)]
struct State {
    /// Encoded frames the socket has not taken yet, oldest first; the first
    /// may be partly written.
    pending: VecDeque<Bytes>,
    sent: HashMap<u128, Sent>,
    ended: VecDeque<u128>,
    /// A reply being resumed: its live events wait in `held` until the
    /// resumed chunks are out.
    holding: Option<u128>,
    held: Vec<Live>,
    /// Sessions whose access was revoked, for the task to leave.
    revoked: Vec<SessionId>,
    /// Messages this connection sent, with the `id` (JSON) of the frame
    /// that sent each: their `message_created` carries it here.
    echoes: VecDeque<(u128, Bytes)>,
    /// A write failed or stopped mid-frame: nothing more may go out.
    broken: bool,
}

/// `json` (an object) with `"id": id` added at its end.
fn with_id(json: &[u8], id: &[u8]) -> Vec<u8> {
    let body = json.strip_suffix(b"}").unwrap_or(json);
    let mut out = Vec::with_capacity(json.len() + id.len() + 7);
    out.extend_from_slice(body);
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id);
    out.push(b'}');
    out
}

/// A WebSocket text frame around `payload`.
pub(crate) fn text_frame(payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    Parser::write_message(&mut buf, payload, OpCode::Text, true, false);
    buf.freeze()
}

pub(crate) fn control_frame(op: OpCode, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    Parser::write_message(&mut buf, payload, op, true, false);
    buf.freeze()
}

pub(crate) fn close_frame(code: u16, why: &str) -> Bytes {
    let mut buf = BytesMut::new();
    let reason = CloseReason { code: CloseCode::from(code), description: Some(why.to_owned()) };
    Parser::write_close(&mut buf, Some(reason), false);
    buf.freeze()
}

impl Link {
    pub fn new(write: OwnedWriteHalf, capacity: usize) -> Self {
        Self { write, state: Mutex::default(), wake: Notify::new(), cut: CancellationToken::new(), capacity }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under the lock can panic halfway through an update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn cut_signal(&self) -> &CancellationToken {
        &self.cut
    }

    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// From a room: sends `live` unless this connection already has it.
    pub fn deliver(&self, live: Live) {
        let mut state = self.state();
        match &live {
            Live::Chunk { message, .. } | Live::Final { message, .. } if state.holding == Some(*message) => {
                state.held.push(live);
                return;
            }
            _ => {}
        }
        if let Some(frame) = Self::admit(&mut state, live) {
            self.write_or_queue(&mut state, frame, true);
        }
    }

    /// The frame to send for `live`, after the resume bookkeeping.
    fn admit(state: &mut State, live: Live) -> Option<Bytes> {
        match live {
            Live::Frame(frame) => Some(frame),
            Live::Created { message, json, frame } => {
                let echo = state.echoes.iter().position(|(m, _)| *m == message).and_then(|at| state.echoes.remove(at));
                Some(echo.map_or(frame, |(_, id)| text_frame(&with_id(&json, &id))))
            }
            Live::Chunk { message, seq, frame } => {
                match state.sent.get_mut(&message) {
                    Some(sent) if seq <= sent.last => return None,
                    Some(sent) => sent.last = seq,
                    None if state.ended.contains(&message) => return None,
                    None => {
                        state.sent.insert(message, Sent { first: seq, last: seq });
                    }
                }
                Some(frame)
            }
            Live::Final { message, frame } => {
                state.sent.remove(&message);
                (!state.ended.contains(&message)).then_some(frame)
            }
        }
    }

    /// The `message_created` of `message` (about to be sent from this
    /// connection) is to carry `id`, the JSON of the sending frame's id.
    pub fn echo(&self, message: u128, id: Bytes) {
        let mut state = self.state();
        if state.echoes.len() == ECHOES_REMEMBERED {
            state.echoes.pop_front();
        }
        state.echoes.push_back((message, id));
    }

    /// `message` was not created after all.
    pub fn forget_echo(&self, message: u128) {
        self.state().echoes.retain(|(m, _)| *m != message);
    }

    /// From a room: the connection lost access to `session`.
    pub fn revoke(&self, session: SessionId) {
        self.state().revoked.push(session);
        self.wake.notify_one();
    }

    pub fn take_revoked(&self) -> Vec<SessionId> {
        std::mem::take(&mut self.state().revoked)
    }

    /// From the connection's task: queues `frame` after everything before
    /// it, writing at once what the socket takes. Use `flush` to wait for it.
    pub fn send(&self, frame: Bytes) {
        let mut state = self.state();
        self.write_or_queue(&mut state, frame, false);
    }

    /// Room deliveries are `bounded`: they cut a member that falls behind.
    /// The task's own frames (replies, resumed chunks, the close frame) are
    /// not: they are bounded by what the client asks, and must get through.
    fn write_or_queue(&self, state: &mut State, frame: Bytes, bounded: bool) {
        if state.broken {
            return;
        }
        let mut rest = frame;
        if state.pending.is_empty() {
            match self.write.try_write(&rest) {
                Ok(n) if n == rest.len() => return,
                Ok(n) => rest = rest.slice(n..),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    state.broken = true;
                    self.cut.cancel();
                    return;
                }
            }
        }
        if bounded && state.pending.len() >= self.capacity {
            // The queue only fills while the socket takes nothing, so no
            // frame was half written here; this one is dropped with the
            // connection.
            self.cut.cancel();
            return;
        }
        state.pending.push_back(rest);
        self.wake.notify_one();
    }

    /// Writes what is queued as the socket takes it; returns once the
    /// queue is empty. Cancel-safe: a partial write is remembered.
    pub async fn flush(&self) -> std::io::Result<()> {
        loop {
            {
                let mut state = self.state();
                if state.broken {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                while let Some(front) = state.pending.front_mut() {
                    match self.write.try_write(front) {
                        Ok(n) if n == front.len() => {
                            state.pending.pop_front();
                        }
                        Ok(n) => {
                            let rest = front.slice(n..);
                            *front = rest;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            state.broken = true;
                            self.cut.cancel();
                            return Err(e);
                        }
                    }
                }
                if state.pending.is_empty() {
                    return Ok(());
                }
            }
            self.write.writable().await?;
        }
    }

    /// Whether anything waits for the socket.
    pub fn has_pending(&self) -> bool {
        !self.state().pending.is_empty()
    }

    pub fn is_broken(&self) -> bool {
        self.state().broken
    }

    /// Starts resuming `message`: its live events wait until `resumed`.
    pub fn hold(&self, message: u128) {
        let mut state = self.state();
        state.holding = Some(message);
        state.held.clear();
    }

    /// Sends the reply's stored final state (it has ended), and nothing of
    /// it that arrives live.
    pub fn resumed_ended(&self, message: u128, final_frame: Bytes) {
        let mut state = self.state();
        state.holding = None;
        state.held.retain(
            |live| !matches!(live, Live::Chunk { message: m, .. } | Live::Final { message: m, .. } if *m == message),
        );
        let held = std::mem::take(&mut state.held);
        state.sent.remove(&message);
        if state.ended.len() == ENDED_REMEMBERED {
            state.ended.pop_front();
        }
        state.ended.push_back(message);
        self.write_or_queue(&mut state, final_frame, false);
        for live in held {
            if let Some(frame) = Self::admit(&mut state, live) {
                self.write_or_queue(&mut state, frame, true);
            }
        }
    }

    /// Sends the chunks after `after` read from the reply log (those not
    /// already sent live), then what arrived live meanwhile, in order.
    pub fn resumed(&self, message: u128, after: u64, chunks: Vec<(u64, Bytes)>) {
        let mut state = self.state();
        let already = state.sent.get(&message).copied();
        let mut last = after;
        for (seq, frame) in chunks {
            last = last.max(seq);
            if already.is_some_and(|s| (s.first..=s.last).contains(&seq)) {
                continue;
            }
            self.write_or_queue(&mut state, frame, false);
        }
        let last = already.map_or(last, |s| s.last.max(last));
        state.sent.insert(message, Sent { first: after.saturating_add(1).min(last), last });
        state.holding = None;
        for live in std::mem::take(&mut state.held) {
            if let Some(frame) = Self::admit(&mut state, live) {
                self.write_or_queue(&mut state, frame, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_joins_the_frame() {
        let framed = with_id(br#"{"event":"message_created","data":{"message":{}}}"#, br#""s-1""#);
        let parsed: serde_json::Value = serde_json::from_slice(&framed).unwrap();
        assert_eq!(parsed, serde_json::json!({"event": "message_created", "data": {"message": {}}, "id": "s-1"}));
    }

    #[test]
    fn frames_are_unmasked_text() {
        let frame = text_frame(b"hi");
        assert_eq!(&frame[..], &[0x81, 2, b'h', b'i']);
        let long = text_frame(&[b'x'; 300]);
        assert_eq!(&long[..4], &[0x81, 126, 1, 44]);
        assert_eq!(long.len(), 304);
    }
}
