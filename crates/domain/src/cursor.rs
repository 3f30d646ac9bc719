//! Opaque page cursors: a position `(at, id)` in a list ordered by time, with
//! the id breaking ties. Clients only ever see the encoded string, which
//! also names the list it came from: a cursor is good only for that list.

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

    /// The cursor as a client sees it, for the list named `list` (a word
    /// without `~`, e.g. `sessions` or a session's id for its messages).
    pub fn encode_in(&self, list: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{list}~{}.{}", unix_micros(self.at), self.id.simple()))
    }

    /// `None` for anything this server did not produce for `list`.
    pub fn decode_in(raw: &str, list: &str) -> Option<Self> {
        if raw.is_empty() || raw.len() > 160 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (from, position) = text.split_once('~')?;
        if from != list {
            return None;
        }
        let (micros, id) = position.split_once('.')?;
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
        assert_eq!(Cursor::decode_in(&cursor.encode_in("sessions"), "sessions"), Some(cursor));
        let session = Uuid::now_v7().to_string();
        assert_eq!(Cursor::decode_in(&cursor.encode_in(&session), &session), Some(cursor));
        for bad in ["", "abc", "!!!", "MTIz", &"A".repeat(200)] {
            assert_eq!(Cursor::decode_in(bad, "sessions"), None, "{bad}");
        }
    }

    #[test]
    fn a_cursor_is_good_only_for_its_own_list() {
        let cursor = Cursor::new(to_micros(OffsetDateTime::now_utc()), Uuid::now_v7());
        let (one, other) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
        assert_eq!(Cursor::decode_in(&cursor.encode_in(&one), &other), None);
        assert_eq!(Cursor::decode_in(&cursor.encode_in("sessions"), &one), None);
        assert_eq!(Cursor::decode_in(&cursor.encode_in(&one), "sessions"), None);
    }
}
