//! Opaque page cursors: a position `(at, id)` in a list ordered by time, with
//! the id breaking ties. Clients only ever see the encoded string.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::time_util::{from_unix_micros, unix_micros};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: OffsetDateTime,
    pub id: Uuid,
}

impl Cursor {
    pub fn new(at: OffsetDateTime, id: Uuid) -> Self {
        Self { at, id }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{}", unix_micros(self.at), self.id.simple()))
    }

    /// `None` for anything this server did not produce.
    pub fn decode(raw: &str) -> Option<Self> {
        if raw.is_empty() || raw.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (micros, id) = text.split_once('.')?;
        let at = from_unix_micros(micros.parse().ok()?)?;
        let id = Uuid::try_parse(id).ok()?;
        Some(Self { at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_util::to_micros;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cursor = Cursor::new(to_micros(OffsetDateTime::now_utc()), Uuid::now_v7());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "abc", "!!!", "MTIz", &"A".repeat(200)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
