//! A WebSocket on the raw TCP stream, taken over from actix-http's HTTP/1
//! dispatcher once the handshake is answered. Frames are parsed and written
//! with actix-http's own WebSocket codec, but no buffer is held while the
//! connection is idle: it waits for readiness and reads into a buffer that
//! is freed as soon as it is empty (writing: see `link`). (Through actix-ws, every connection kept the dispatcher's two
//! 8 KiB buffers and a 32-frame channel: 15.6 KiB idle, measured.)

use actix_http::ws::{self, Frame, Item, ProtocolError};
use actix_web::rt::net::TcpStream;
use bytes::{Bytes, BytesMut};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::Decoder as _;

/// How much is read at a time.
const READ_CHUNK: usize = 4096;

/// A whole message from the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    Text(Bytes),
    Binary,
    Ping(Bytes),
    Pong,
    Close,
}

pub(crate) fn split(io: TcpStream, already_read: BytesMut, max_message: usize) -> (Reader, OwnedWriteHalf) {
    let (read, write) = io.into_split();
    let reader = Reader {
        half: read,
        buf: already_read,
        codec: ws::Codec::new().max_size(max_message),
        fragments: None,
        max_message,
    };
    (reader, write)
}

pub(crate) struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
    codec: ws::Codec,
    /// A message arriving in continuation frames: whether it is text, and
    /// its bytes so far.
    fragments: Option<(bool, BytesMut)>,
    max_message: usize,
}

impl Reader {
    /// The next whole message; `None` when the peer is gone. Cancel-safe:
    /// no byte is consumed across an await.
    pub async fn recv(&mut self) -> Option<Result<Incoming, ProtocolError>> {
        loop {
            match self.codec.decode(&mut self.buf) {
                Err(e) => return Some(Err(e)),
                Ok(Some(frame)) => match self.assemble(frame) {
                    Err(e) => return Some(Err(e)),
                    Ok(Some(message)) => {
                        self.release_if_empty();
                        return Some(Ok(message));
                    }
                    Ok(None) => continue,
                },
                Ok(None) => {}
            }
            self.release_if_empty();
            // Waits holding no buffer: an idle connection costs no read memory.
            if self.half.readable().await.is_err() {
                return None;
            }
            self.buf.reserve(READ_CHUNK);
            match self.half.try_read_buf(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    }

    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    fn assemble(&mut self, frame: Frame) -> Result<Option<Incoming>, ProtocolError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => Incoming::Text(bytes),
            Frame::Binary(_) => Incoming::Binary,
            Frame::Ping(bytes) => Incoming::Ping(bytes),
            Frame::Pong(_) => Incoming::Pong,
            Frame::Close(_) => Incoming::Close,
            Frame::Continuation(item) => {
                let (first, text, last) = match item {
                    Item::FirstText(bytes) => (Some(bytes), true, false),
                    Item::FirstBinary(bytes) => (Some(bytes), false, false),
                    Item::Continue(bytes) => return self.append(bytes).map(|()| None),
                    Item::Last(bytes) => {
                        self.append(bytes)?;
                        (None, false, true)
                    }
                };
                if let Some(bytes) = first {
                    self.fragments = Some((text, BytesMut::from(&bytes[..])));
                    return Ok(None);
                }
                debug_assert!(last);
                let Some((text, bytes)) = self.fragments.take() else {
                    return Err(ProtocolError::ContinuationNotStarted);
                };
                if text { Incoming::Text(bytes.freeze()) } else { Incoming::Binary }
            }
        }))
    }

    fn append(&mut self, bytes: Bytes) -> Result<(), ProtocolError> {
        let Some((_, so_far)) = self.fragments.as_mut() else {
            return Err(ProtocolError::ContinuationNotStarted);
        };
        if so_far.len() + bytes.len() > self.max_message {
            return Err(ProtocolError::Overflow);
        }
        so_far.extend_from_slice(&bytes);
        Ok(())
    }
}
