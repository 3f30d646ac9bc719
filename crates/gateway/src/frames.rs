//! The JSON text frames of the WebSocket contract, both ways.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use specgen_app::ChatEvent;
use specgen_http::routes::messages::{event_name, write_event_data};

/// A frame from a client: `{"event", "data", "id"?}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ClientFrame {
    pub event: String,
    #[serde(default)]
    pub data: Value,
    /// Echoed in the replies and errors this frame causes.
    #[serde(default)]
    pub id: Option<Value>,
}

/// A server frame, serialised.
pub(crate) fn frame(event: &str, data: Value, id: Option<&Value>) -> Bytes {
    let mut frame = json!({ "event": event, "data": data });
    if let Some(id) = id {
        frame["id"] = id.clone();
    }
    // Serialising a `Value` cannot fail.
    Bytes::from(serde_json::to_vec(&frame).unwrap_or_default())
}

/// `{"event": <name>, "data": <data>}`, written straight into one buffer.
pub(crate) fn chat_event(event: &ChatEvent) -> Bytes {
    // A chunk's frame is about 230 bytes plus its text.
    let mut out = Vec::with_capacity(384);
    out.extend_from_slice(br#"{"event":""#);
    out.extend_from_slice(event_name(event).as_bytes());
    out.extend_from_slice(br#"","data":"#);
    write_event_data(event, &mut out);
    out.push(b'}');
    Bytes::from(out)
}

/// `error {code, message, details?}`.
pub(crate) fn error(code: &str, message: &str, details: Option<Value>, id: Option<&Value>) -> Bytes {
    let mut data = json!({ "code": code, "message": message });
    if let Some(details) = details {
        data["details"] = details;
    }
    frame("error", data, id)
}
