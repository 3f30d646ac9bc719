//! A WebSocket test client speaking the gateway's JSON frames over a real
//! connection (tokio-tungstenite).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestApp;

/// Longer than anything here should take; only a missing frame waits it out.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server did next.
#[derive(Debug)]
pub enum Next {
    Frame(Value),
    Closed(Option<u16>),
}

impl Ws {
    /// Connects without credentials.
    pub async fn connect(app: &TestApp) -> Self {
        Self::open(app, None).await.unwrap()
    }

    /// Connects with the token on the upgrade and reads `connected`.
    pub async fn connect_as(app: &TestApp, token: &str) -> Self {
        let mut ws = Self::open(app, Some(token)).await.unwrap();
        let connected = ws.expect("connected").await;
        assert!(connected["data"]["userId"].is_string(), "{connected}");
        ws
    }

    /// The upgrade, with an optional bearer token; the refusal if refused.
    pub async fn open(app: &TestApp, token: Option<&str>) -> Result<Self, tungstenite::Error> {
        let mut request = format!("ws://{}/ws", app.address).into_client_request().unwrap();
        if let Some(token) = token {
            request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self { stream })
    }

    /// Connects over a socket whose receive buffer is tiny, so that a client
    /// that stops reading is noticed by the server quickly.
    pub async fn connect_with_small_window(app: &TestApp, token: &str) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(app.address).await.unwrap();
        let mut request = format!("ws://{}/ws", app.address).into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp)).await.unwrap();
        let mut ws = Self { stream };
        ws.expect("connected").await;
        ws
    }

    pub async fn send(&mut self, event: &str, data: Value) {
        self.send_raw(json!({ "event": event, "data": data }).to_string()).await;
    }

    pub async fn send_with_id(&mut self, event: &str, data: Value, id: &str) {
        self.send_raw(json!({ "event": event, "data": data, "id": id }).to_string()).await;
    }

    pub async fn send_raw(&mut self, text: String) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// The next frame or the close, within [`PATIENCE`]; pings are answered
    /// by tungstenite and skipped.
    pub async fn next(&mut self) -> Next {
        loop {
            let item =
                tokio::time::timeout(PATIENCE, self.stream.next()).await.expect("nothing from the server in time");
            match item {
                None => return Next::Closed(None),
                Some(Err(_)) => return Next::Closed(None),
                Some(Ok(Message::Text(text))) => {
                    return Next::Frame(
                        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
                    );
                }
                Some(Ok(Message::Close(frame))) => return Next::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
            }
        }
    }

    pub async fn frame(&mut self) -> Value {
        match self.next().await {
            Next::Frame(frame) => frame,
            Next::Closed(code) => panic!("closed ({code:?}) while a frame was expected"),
        }
    }

    /// The next frame, which must be `event`.
    pub async fn expect(&mut self, event: &str) -> Value {
        let frame = self.frame().await;
        assert_eq!(frame["event"], event, "{frame}");
        frame
    }

    /// Frames up to and including the first `event`; the others are returned
    /// too, in order, so callers can assert on what came between.
    pub async fn until(&mut self, event: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let frame = self.frame().await;
            let done = frame["event"] == event;
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// Waits for the close and returns its code, reading past any frames.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Next::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Nothing arrives for `quiet`.
    pub async fn silent_for(&mut self, quiet: Duration) {
        match tokio::time::timeout(quiet, self.stream.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }

    pub async fn join(&mut self, session: &str) {
        self.send("join_session", json!({ "sessionId": session })).await;
        let joined = self.until("joined_session").await;
        assert_eq!(joined.last().unwrap()["data"]["sessionId"], session);
    }
}

pub fn close_code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// The chunks of one reply among `frames`, checked to run 1, 2, 3, ...
/// without gap or repeat; their concatenated text.
pub fn chunk_text(frames: &[Value], message_id: &str) -> String {
    let chunks = frames.iter().filter(|f| f["event"] == "message_chunk" && f["data"]["messageId"] == message_id);
    let mut text = String::new();
    for (expected, frame) in (1..).zip(chunks) {
        assert_eq!(frame["data"]["seq"], expected, "chunks in order without gaps: {frame}");
        text.push_str(frame["data"]["content"].as_str().unwrap());
    }
    text
}
