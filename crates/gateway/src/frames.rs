//! The JSON text frames of the WebSocket contract, both ways.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use specgen_app::ChatEvent;
use specgen_http::routes::messages::event_json;

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

pub(crate) fn chat_event(event: &ChatEvent) -> Bytes {
    let (name, data) = event_json(event);
    frame(name, data, None)
}

/// `error {code, message, details?}`.
pub(crate) fn error(code: &str, message: &str, details: Option<Value>, id: Option<&Value>) -> Bytes {
    let mut data = json!({ "code": code, "message": message });
    if let Some(details) = details {
        data["details"] = details;
    }
    frame("error", data, id)
}
