//! The sessions joined on this instance. Each joined session is a room with
//! one bus subscription, however many local members it has; its reader task
//! hands every packet to each member's outbox without copying the frame.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use bytes::Bytes;
use futures::StreamExt as _;
use specgen_domain::{SessionId, UserId};
use specgen_ports::{BusError, Delivery, EventBus, Subscription};
use tokio::sync::{Notify, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::packet::{Kind, Packet};

/// What a connection has to send, in order.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    Frame(Bytes),
    Chunk {
        message: u128,
        seq: u64,
        frame: Bytes,
    },
    Final {
        message: u128,
        frame: Bytes,
    },
    /// The member's access to the session was revoked.
    Revoked(SessionId),
}

/// A connection's bounded outbound queue. Pushing never waits: a member that
/// falls `capacity` items behind is cut (its connection closes with 1013)
/// rather than growing memory or slowing the others. Empty, it owns no heap.
pub(crate) struct Outbox {
    queue: Mutex<VecDeque<Outgoing>>,
    ready: Notify,
    cut: CancellationToken,
    capacity: usize,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), ready: Notify::new(), cut: CancellationToken::new(), capacity }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Outgoing>> {
        // Pushing and taking cannot panic halfway: a poisoned queue is whole.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item`; false (and the member is cut) when the queue is full.
    pub fn push(&self, item: Outgoing) -> bool {
        {
            let mut queue = self.queue();
            if queue.len() >= self.capacity {
                drop(queue);
                self.cut.cancel();
                return false;
            }
            queue.push_back(item);
        }
        self.ready.notify_one();
        true
    }

    /// Everything queued, oldest first.
    pub fn take(&self) -> VecDeque<Outgoing> {
        std::mem::take(&mut *self.queue())
    }

    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Resolves once the member has been cut for falling behind.
    pub fn cut_signal(&self) -> &CancellationToken {
        &self.cut
    }

    pub fn cut(&self) {
        self.cut.cancel();
    }
}

#[derive(Clone)]
struct Member {
    connection: u128,
    user: UserId,
    outbox: Arc<Outbox>,
}

struct Room {
    members: Mutex<Vec<Member>>,
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
    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, packet: Packet) {
        let members = self.members();
        match packet.kind {
            Kind::Revoke => {
                let everyone = packet.user == 0;
                for member in members.iter().filter(|m| everyone || m.user.as_uuid().as_u128() == packet.user) {
                    // Room for it or not, the member must hear it: a full
                    // queue cuts the connection, which leaves the room too.
                    member.outbox.push(Outgoing::Revoked(session_of(&packet)));
                }
            }
            kind => {
                let item = match kind {
                    Kind::Chunk => Outgoing::Chunk { message: packet.message, seq: packet.seq, frame: packet.frame },
                    Kind::Final => Outgoing::Final { message: packet.message, frame: packet.frame },
                    _ => Outgoing::Frame(packet.frame),
                };
                for member in members.iter() {
                    if kind == Kind::Others && member.connection == packet.origin {
                        continue;
                    }
                    member.outbox.push(item.clone());
                }
            }
        }
    }

    /// The bus skipped payloads: members cannot know what they missed, so
    /// they are cut; clients reconnect and `resume`.
    fn lagged(&self) {
        for member in self.members().iter() {
            member.outbox.cut();
        }
    }
}

/// The session a revoke packet is about travels in its `message` field.
fn session_of(packet: &Packet) -> SessionId {
    SessionId::from_uuid(uuid::Uuid::from_u128(packet.message))
}

/// The bus topic of a session's events.
pub(crate) fn topic(session: SessionId) -> String {
    format!("session:{session}")
}

pub(crate) struct Hub {
    bus: Arc<dyn EventBus>,
    rooms: Mutex<HashMap<SessionId, Arc<Room>>>,
    runtime: tokio::runtime::Handle,
}

impl Hub {
    pub fn new(bus: Arc<dyn EventBus>, runtime: tokio::runtime::Handle) -> Self {
        Self { bus, rooms: Mutex::default(), runtime }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<SessionId, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a member; once this returns, every packet published on the
    /// session reaches its outbox. True when it is the user's first
    /// connection in the session here (presence is per user, not per tab).
    pub async fn join(
        &self,
        session: SessionId,
        connection: u128,
        user: UserId,
        outbox: Arc<Outbox>,
    ) -> Result<bool, BusError> {
        let (room, first_of_user) = {
            let mut rooms = self.rooms();
            let room = rooms
                .entry(session)
                .or_insert_with(|| Arc::new(Room { members: Mutex::default(), reader: OnceCell::new() }));
            let mut members = room.members();
            let first_of_user = !members.iter().any(|m| m.user == user);
            members.push(Member { connection, user, outbox });
            drop(members);
            (Arc::clone(room), first_of_user)
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
        let (empty, last_of_user) = {
            let mut members = room.members();
            let Some(at) = members.iter().position(|m| m.connection == connection) else { return false };
            let user = members.swap_remove(at).user;
            (members.is_empty(), !members.iter().any(|m| m.user == user))
        };
        if empty {
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
    while let Some(delivery) = subscription.next().await {
        let Some(room) = room.upgrade() else { return };
        match delivery {
            Delivery::Payload(bytes) => match Packet::decode(bytes) {
                Some(packet) => room.deliver(packet),
                None => tracing::warn!("ignored a bus payload this version cannot read"),
            },
            Delivery::Lagged(skipped) => {
                tracing::warn!(skipped, "the session feed skipped events; its members reconnect and resume");
                metrics::counter!("ws_feed_lagged_total").increment(1);
                room.lagged();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_outbox_cuts_its_member() {
        let outbox = Outbox::new(2);
        assert!(outbox.push(Outgoing::Frame(Bytes::from_static(b"1"))));
        assert!(outbox.push(Outgoing::Frame(Bytes::from_static(b"2"))));
        assert!(!outbox.cut_signal().is_cancelled());
        assert!(!outbox.push(Outgoing::Frame(Bytes::from_static(b"3"))));
        assert!(outbox.cut_signal().is_cancelled());
        assert_eq!(outbox.take().len(), 2, "what was queued stays; the overflow is refused");
        assert!(outbox.take().is_empty());
    }
}
