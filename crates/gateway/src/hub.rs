//! The sessions joined on this instance. Each joined session is a room with
//! one bus subscription, however many local members it has. Its events are
//! framed once and written to every member's socket without copying; the
//! members are split into shards (by connection) written in parallel, one
//! per core, each shard in order, so a large room's fan-out is not one
//! thread's serial work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use futures::StreamExt as _;
use specgen_domain::{SessionId, UserId};
use specgen_ports::{BusError, Delivery, EventBus, Subscription};
use tokio::sync::OnceCell;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::link::{Link, Live, text_frame};
use crate::packet::{Kind, Packet};

#[derive(Clone)]
struct Member {
    connection: u128,
    user: UserId,
    link: Arc<Link>,
}

/// An event ready for the members: framed once.
enum Prepared {
    /// To every member, but the connection `skip` and the connections of
    /// the user `skip_user` (zero: none).
    Live { live: Live, skip: u128, skip_user: u128 },
    /// `user` (zero: everyone) lost access to the session.
    Revoke { session: SessionId, user: u128 },
    /// The bus skipped events: members must resynchronise.
    Lagged,
}

impl Prepared {
    fn from_packet(packet: Packet) -> Self {
        match packet.kind {
            Kind::Revoke => Self::Revoke {
                // The session a revoke is about travels in `message`.
                session: SessionId::from_uuid(uuid::Uuid::from_u128(packet.message)),
                user: packet.user,
            },
            kind => {
                let frame = text_frame(&packet.frame);
                let live = match kind {
                    Kind::Chunk => Live::Chunk { message: packet.message, seq: packet.seq, frame },
                    Kind::Final => Live::Final { message: packet.message, frame },
                    Kind::Everyone if packet.message != 0 => {
                        Live::Created { message: packet.message, json: packet.frame, frame }
                    }
                    _ => Live::Frame(frame),
                };
                let (skip, skip_user) = match kind {
                    Kind::Others => (packet.origin, 0),
                    Kind::OtherPeople => (packet.origin, packet.user),
                    _ => (0, 0),
                };
                Self::Live { live, skip, skip_user }
            }
        }
    }
}

struct Shard {
    members: Mutex<Vec<Member>>,
    /// For shards other than the first, the task that writes to them (the
    /// room's reader writes the first itself), started with its first member.
    writer: OnceLock<(UnboundedSender<Arc<Prepared>>, AbortOnDrop)>,
}

impl Shard {
    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, event: &Prepared) {
        let members = self.members();
        match event {
            Prepared::Live { live, skip, skip_user } => {
                let skipped = |m: &&Member| {
                    m.connection == *skip || (*skip_user != 0 && m.user.as_uuid().as_u128() == *skip_user)
                };
                for member in members.iter().filter(|m| !skipped(m)) {
                    member.link.deliver(live.clone());
                }
            }
            Prepared::Revoke { session, user } => {
                for member in members.iter().filter(|m| *user == 0 || m.user.as_uuid().as_u128() == *user) {
                    member.link.revoke(*session);
                }
            }
            Prepared::Lagged => {
                for member in members.iter() {
                    member.link.cut_signal().cancel();
                }
            }
        }
    }
}

struct Room {
    shards: Vec<Shard>,
    /// The reader of the room's subscription, stopped with the room.
    reader: OnceCell<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Room {
    fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Shard { members: Mutex::default(), writer: OnceLock::new() }).collect();
        Self { shards, reader: OnceCell::new() }
    }

    fn shard_of(&self, connection: u128) -> usize {
        (connection % self.shards.len() as u128) as usize
    }

    fn has_user(&self, user: UserId) -> bool {
        self.shards.iter().any(|s| s.members().iter().any(|m| m.user == user))
    }

    fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.members().is_empty())
    }

    /// Hands `event` to the other shards' writers, then writes the first
    /// shard itself: each shard sees the events in order.
    fn deliver(&self, event: Prepared) {
        let event = Arc::new(event);
        for shard in &self.shards[1..] {
            if let Some((writer, _)) = shard.writer.get() {
                let _ = writer.send(Arc::clone(&event));
            }
        }
        self.shards[0].deliver(&event);
    }
}

/// The bus topic of a session's events.
pub(crate) fn topic(session: SessionId) -> String {
    // Built on every published event: one allocation, no formatting.
    let mut topic = String::with_capacity(44);
    topic.push_str("session:");
    topic.push_str(session.as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
    topic
}

pub(crate) struct Hub {
    bus: Arc<dyn EventBus>,
    rooms: Mutex<HashMap<SessionId, Arc<Room>>>,
    runtime: tokio::runtime::Handle,
    shards: usize,
}

impl Hub {
    pub fn new(bus: Arc<dyn EventBus>, runtime: tokio::runtime::Handle) -> Self {
        let shards = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(8);
        Self { bus, rooms: Mutex::default(), runtime, shards }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a member; once this returns, every packet published on the
    /// session reaches its link. True when it is the user's first
    /// connection in the session here (presence is per user, not per tab).
    pub async fn join(
        &self,
        session: SessionId,
        connection: u128,
        user: UserId,
        link: Arc<Link>,
    ) -> Result<bool, BusError> {
        let (room, first_of_user) = {
            let mut rooms = self.rooms();
            let room = Arc::clone(rooms.entry(session).or_insert_with(|| Arc::new(Room::new(self.shards))));
            let first_of_user = !room.has_user(user);
            let index = room.shard_of(connection);
            let shard = &room.shards[index];
            if index > 0 {
                shard.writer.get_or_init(|| {
                    let (tx, mut rx) = unbounded_channel::<Arc<Prepared>>();
                    let weak = Arc::downgrade(&room);
                    let task = self.runtime.spawn(async move {
                        while let Some(event) = rx.recv().await {
                            let Some(room) = weak.upgrade() else { return };
                            room.shards[index].deliver(&event);
                        }
                    });
                    (tx, AbortOnDrop(task))
                });
            }
            shard.members().push(Member { connection, user, link });
            (room, first_of_user)
        };
        let subscribed = room
            .reader
            .get_or_try_init(|| async {
                let subscription = self.bus.subscribe(&topic(session)).await?;
                let reader = self.runtime.spawn(read(subscription, Arc::downgrade(&room)));
                Ok::<_, BusError>(AbortOnDrop(reader))
            })
            .await;
        if let Err(e) = subscribed {
            self.leave(session, connection);
            return Err(e);
        }
        Ok(first_of_user)
    }

    /// Removes a member; the last one out closes the room and its
    /// subscription. True when it was its user's last connection here.
    pub fn leave(&self, session: SessionId, connection: u128) -> bool {
        let mut rooms = self.rooms();
        let Some(room) = rooms.get(&session) else { return false };
        let user = {
            let mut members = room.shards[room.shard_of(connection)].members();
            let Some(at) = members.iter().position(|m| m.connection == connection) else { return false };
            members.swap_remove(at).user
        };
        let last_of_user = !room.has_user(user);
        if room.is_empty() {
            rooms.remove(&session);
        }
        last_of_user
    }

    /// Sessions with at least one member here.
    pub fn rooms_open(&self) -> usize {
        self.rooms().len()
    }
}

async fn read(mut subscription: Subscription, room: Weak<Room>) {
    let mut chunks = ChunkGaps::default();
    while let Some(delivery) = subscription.next().await {
        let Some(room) = room.upgrade() else { return };
        match delivery {
            Delivery::Payload(bytes) => match Packet::decode(bytes) {
                Some(packet) => {
                    if chunks.skipped(&packet) {
                        // The publisher's instance could not reach the shared
                        // bus for a moment and published in-process only:
                        // this room's subscription saw no drop of its own.
                        tracing::warn!("a reply's chunks arrived with a gap; its members reconnect and resume");
                        metrics::counter!("ws_feed_lagged_total").increment(1);
                        room.deliver(Prepared::Lagged);
                    }
                    room.deliver(Prepared::from_packet(packet))
                }
                None => tracing::warn!("ignored a bus payload this version cannot read"),
            },
            Delivery::Lagged(skipped) => {
                tracing::warn!(skipped, "the session feed skipped events; its members reconnect and resume");
                metrics::counter!("ws_feed_lagged_total").increment(1);
                room.deliver(Prepared::Lagged);
            }
        }
    }
}

/// The last chunk a room heard of each reply in flight, to notice a chunk
/// that skips some (`seq` has no gaps at its source).
#[derive(Default)]
struct ChunkGaps {
    last: HashMap<u128, u64>,
}

impl ChunkGaps {
    /// Whether `packet` is a chunk that follows an earlier chunk of its
    /// reply with a gap. A reply first heard mid-way is no gap: whoever
    /// joined then catches up with `resume`.
    fn skipped(&mut self, packet: &Packet) -> bool {
        match packet.kind {
            Kind::Chunk => {
                let before = self.last.insert(packet.message, packet.seq);
                before.is_some_and(|last| packet.seq > last + 1)
            }
            Kind::Final => {
                self.last.remove(&packet.message);
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn packet(kind: Kind, message: u128, seq: u64) -> Packet {
        Packet { message, seq, ..Packet::new(kind, Bytes::new()) }
    }

    #[test]
    fn a_chunk_that_skips_some_is_a_gap() {
        let mut gaps = ChunkGaps::default();
        // Heard from the middle of a reply (joined late): no gap.
        assert!(!gaps.skipped(&packet(Kind::Chunk, 1, 5)));
        assert!(!gaps.skipped(&packet(Kind::Chunk, 1, 6)));
        // Another reply, interleaved, is its own sequence.
        assert!(!gaps.skipped(&packet(Kind::Chunk, 2, 1)));
        assert!(gaps.skipped(&packet(Kind::Chunk, 1, 9)), "7 and 8 went missing");
        assert!(!gaps.skipped(&packet(Kind::Everyone, 0, 0)));
        assert!(!gaps.skipped(&packet(Kind::Final, 2, 0)));
        // A reply that ended is forgotten.
        assert!(!gaps.skipped(&packet(Kind::Chunk, 2, 40)));
    }
}
