//! What travels on the bus for a session: a fixed binary header the gateway
//! reads without parsing JSON, then the frame clients receive, serialised
//! once by the publisher and shared (not copied) by every member it reaches.

use bytes::{BufMut as _, Bytes, BytesMut};

/// How the instances deliver a packet to the members of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// To every member.
    Everyone = 1,
    /// To every member except the connection it came from. No longer sent;
    /// still read, since older releases send presence and typing so
    /// (instances of two releases share the bus during a rolling upgrade).
    Others = 2,
    /// A reply's chunk: members skip a `seq` they already have.
    Chunk = 3,
    /// A reply's final event.
    Final = 4,
    /// Access was revoked: `user` (or everyone, when zero) leaves the session.
    Revoke = 5,
    /// To every member except the connections of `user` (presence and
    /// typing: a person's other tabs do not hear of their own person).
    OtherPeople = 6,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Everyone,
            2 => Self::Others,
            3 => Self::Chunk,
            4 => Self::Final,
            5 => Self::Revoke,
            6 => Self::OtherPeople,
            _ => return None,
        })
    }
}

const HEADER: usize = 1 + 16 + 16 + 8 + 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packet {
    pub kind: Kind,
    /// The connection it came from (zero: none).
    pub origin: u128,
    /// The reply it belongs to (`Chunk`, `Final`), or the message it
    /// announces (`Everyone`, for `message_created`; zero otherwise).
    pub message: u128,
    pub seq: u64,
    /// The user whose access was revoked (`Revoke`; zero: everyone), or
    /// whose connections a packet skips (`OtherPeople`).
    pub user: u128,
    /// The JSON text frame as clients receive it.
    pub frame: Bytes,
}

impl Packet {
    pub fn new(kind: Kind, frame: Bytes) -> Self {
        Self { kind, origin: 0, message: 0, seq: 0, user: 0, frame }
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(HEADER + self.frame.len());
        out.put_u8(self.kind as u8);
        out.put_u128(self.origin);
        out.put_u128(self.message);
        out.put_u64(self.seq);
        out.put_u128(self.user);
        out.put_slice(&self.frame);
        out.freeze()
    }

    /// `None` for anything this version did not write.
    pub fn decode(bytes: Bytes) -> Option<Self> {
        if bytes.len() < HEADER {
            return None;
        }
        let kind = Kind::from_byte(bytes[0])?;
        let u128_at = |at: usize| bytes[at..at + 16].try_into().ok().map(u128::from_be_bytes);
        let origin = u128_at(1)?;
        let message = u128_at(17)?;
        let seq = u64::from_be_bytes(bytes[33..41].try_into().ok()?);
        let user = u128_at(41)?;
        Some(Self { kind, origin, message, seq, user, frame: bytes.slice(HEADER..) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_shares_the_frame() {
        let packet = Packet {
            kind: Kind::Chunk,
            origin: u128::MAX - 7,
            message: 42 << 64 | 9,
            seq: 123_456,
            user: 0,
            frame: Bytes::from_static(br#"{"event":"message_chunk","data":{}}"#),
        };
        let encoded = packet.encode();
        let decoded = Packet::decode(encoded.clone()).unwrap();
        assert_eq!(decoded, packet);
        assert_eq!(decoded.frame.as_ptr(), encoded[HEADER..].as_ptr(), "a slice of the payload, not a copy");
        for kind in [Kind::Everyone, Kind::Others, Kind::Final, Kind::Revoke, Kind::OtherPeople] {
            let packet = Packet { kind, user: u128::MAX - 1, ..packet.clone() };
            assert_eq!(Packet::decode(packet.encode()), Some(packet));
        }
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        assert_eq!(Packet::decode(Bytes::from_static(b"short")), None);
        let mut foreign = Packet::new(Kind::Everyone, Bytes::new()).encode().to_vec();
        foreign[0] = 99;
        assert_eq!(Packet::decode(foreign.into()), None);
    }
}
