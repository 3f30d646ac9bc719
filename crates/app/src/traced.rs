//! A span around every store and cache call, whichever adapter is wired:
//! decorators over the ports, so each adapter is traced the same way
//! without knowing it. Span names read `db users.find_by_email` and carry
//! `db.system` and `db.operation.name`; a failure sets `error`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use specgen_domain::{
    ChatSession, ClientMessageId, Email, FamilyId, Message, MessageError, MessageId, PageLimit, Participant,
    ParticipantRole, ParticipantView, PasswordHash, Profile, RefreshToken, RefreshTokenId, SessionId, TokenHash, User,
    UserId,
};
use specgen_ports::{
    Cache, CacheError, MessageRepository, Page, PageRequest, RecentMessage, RefreshTokenRepository, RepoError,
    SessionRepository, Store, StoreHealth, UserRepository,
};
use time::OffsetDateTime;
use tracing::Instrument as _;

/// `store` with a span around every call; `system` names the database
/// (`sqlite`, `postgresql`).
pub fn store(store: Store, system: &'static str) -> Store {
    Store {
        users: Arc::new(Traced { inner: store.users, system }),
        refresh_tokens: Arc::new(Traced { inner: store.refresh_tokens, system }),
        sessions: Arc::new(Traced { inner: store.sessions, system }),
        messages: Arc::new(Traced { inner: store.messages, system }),
        health: Arc::new(Traced { inner: store.health, system }),
    }
}

/// `cache` with a span around every call; `system` names it (`redis`, `in-process`).
pub fn cache(cache: Arc<dyn Cache>, system: &'static str) -> Arc<dyn Cache> {
    Arc::new(Traced { inner: cache, system })
}

struct Traced<T: ?Sized> {
    inner: Arc<T>,
    system: &'static str,
}

/// Runs `$call` inside a client span named `db $op`.
macro_rules! db {
    ($self:ident, $op:literal, $call:expr) => {{
        let span = tracing::info_span!(
            "db",
            otel.name = concat!("db ", $op),
            otel.kind = "client",
            db.system = $self.system,
            db.operation.name = $op,
            error = tracing::field::Empty,
        );
        let result = $call.instrument(span.clone()).await;
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
        result
    }};
}

#[async_trait]
impl UserRepository for Traced<dyn UserRepository> {
    async fn register(&self, user: &User, profile: &Profile) -> Result<(), RepoError> {
        db!(self, "users.register", self.inner.register(user, profile))
    }
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        db!(self, "users.find_by_email", self.inner.find_by_email(email))
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        db!(self, "users.find_by_id", self.inner.find_by_id(id))
    }
    async fn profile(&self, id: UserId) -> Result<Option<Profile>, RepoError> {
        db!(self, "users.profile", self.inner.profile(id))
    }
    async fn update_profile(&self, profile: &Profile) -> Result<(), RepoError> {
        db!(self, "users.update_profile", self.inner.update_profile(profile))
    }
    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        tokens_valid_after: OffsetDateTime,
    ) -> Result<(), RepoError> {
        db!(self, "users.update_password", self.inner.update_password(id, hash, tokens_valid_after))
    }
    async fn set_tokens_valid_after(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        db!(self, "users.set_tokens_valid_after", self.inner.set_tokens_valid_after(id, at))
    }
    async fn soft_delete(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError> {
        db!(self, "users.soft_delete", self.inner.soft_delete(id, at))
    }
}

#[async_trait]
impl RefreshTokenRepository for Traced<dyn RefreshTokenRepository> {
    async fn insert(&self, token: &RefreshToken) -> Result<(), RepoError> {
        db!(self, "refresh_tokens.insert", self.inner.insert(token))
    }
    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepoError> {
        db!(self, "refresh_tokens.find_by_hash", self.inner.find_by_hash(hash))
    }
    async fn rotate(&self, old: RefreshTokenId, spent_at: OffsetDateTime, new: &RefreshToken) -> Result<(), RepoError> {
        db!(self, "refresh_tokens.rotate", self.inner.rotate(old, spent_at, new))
    }
    async fn family_is_live(&self, family: FamilyId, now: OffsetDateTime) -> Result<bool, RepoError> {
        db!(self, "refresh_tokens.family_is_live", self.inner.family_is_live(family, now))
    }
    async fn revoke_family(&self, family: FamilyId, at: OffsetDateTime) -> Result<u64, RepoError> {
        db!(self, "refresh_tokens.revoke_family", self.inner.revoke_family(family, at))
    }
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except_family: Option<FamilyId>,
        at: OffsetDateTime,
    ) -> Result<u64, RepoError> {
        db!(self, "refresh_tokens.revoke_all_for_user", self.inner.revoke_all_for_user(user, except_family, at))
    }
}

#[async_trait]
impl SessionRepository for Traced<dyn SessionRepository> {
    async fn create(&self, session: &ChatSession) -> Result<(), RepoError> {
        db!(self, "sessions.create", self.inner.create(session))
    }
    async fn find_for_participant(
        &self,
        id: SessionId,
        user: UserId,
    ) -> Result<Option<(ChatSession, ParticipantRole)>, RepoError> {
        db!(self, "sessions.find_for_participant", self.inner.find_for_participant(id, user))
    }
    async fn list_for_user(&self, user: UserId, page: PageRequest) -> Result<Page<ChatSession>, RepoError> {
        db!(self, "sessions.list_for_user", self.inner.list_for_user(user, page))
    }
    async fn update(&self, session: &ChatSession) -> Result<(), RepoError> {
        db!(self, "sessions.update", self.inner.update(session))
    }
    async fn soft_delete(&self, id: SessionId, at: OffsetDateTime) -> Result<(), RepoError> {
        db!(self, "sessions.soft_delete", self.inner.soft_delete(id, at))
    }
    async fn add_participant(&self, participant: &Participant) -> Result<(), RepoError> {
        db!(self, "sessions.add_participant", self.inner.add_participant(participant))
    }
    async fn remove_participant(&self, id: SessionId, user: UserId) -> Result<(), RepoError> {
        db!(self, "sessions.remove_participant", self.inner.remove_participant(id, user))
    }
    async fn participants(&self, id: SessionId) -> Result<Vec<ParticipantView>, RepoError> {
        db!(self, "sessions.participants", self.inner.participants(id))
    }
    async fn participant_ids(&self, id: SessionId) -> Result<Vec<UserId>, RepoError> {
        db!(self, "sessions.participant_ids", self.inner.participant_ids(id))
    }
}

#[async_trait]
impl MessageRepository for Traced<dyn MessageRepository> {
    async fn insert(&self, message: &Message) -> Result<(), RepoError> {
        db!(self, "messages.insert", self.inner.insert(message))
    }
    async fn find(&self, session: SessionId, id: MessageId) -> Result<Option<Message>, RepoError> {
        db!(self, "messages.find", self.inner.find(session, id))
    }
    async fn find_by_client_id(
        &self,
        session: SessionId,
        client_id: &ClientMessageId,
    ) -> Result<Option<(Message, Option<Message>)>, RepoError> {
        db!(self, "messages.find_by_client_id", self.inner.find_by_client_id(session, client_id))
    }
    async fn reply_to(&self, session: SessionId, asked: MessageId) -> Result<Option<Message>, RepoError> {
        db!(self, "messages.reply_to", self.inner.reply_to(session, asked))
    }
    async fn page(&self, session: SessionId, page: PageRequest) -> Result<Page<Message>, RepoError> {
        db!(self, "messages.page", self.inner.page(session, page))
    }
    async fn recent(&self, session: SessionId, limit: PageLimit) -> Result<Vec<RecentMessage>, RepoError> {
        db!(self, "messages.recent", self.inner.recent(session, limit))
    }
    async fn update(&self, message: &Message) -> Result<(), RepoError> {
        db!(self, "messages.update", self.inner.update(message))
    }
    async fn fail_streaming(
        &self,
        error: &MessageError,
        stale_before: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<Vec<Message>, RepoError> {
        db!(self, "messages.fail_streaming", self.inner.fail_streaming(error, stale_before, at))
    }
}

#[async_trait]
impl StoreHealth for Traced<dyn StoreHealth> {
    async fn ping(&self) -> Result<(), RepoError> {
        db!(self, "ping", self.inner.ping())
    }

    fn pool_status(&self) -> Option<specgen_ports::PoolStatus> {
        self.inner.pool_status()
    }
}

/// Runs `$call` inside a client span named `cache $op`.
macro_rules! cache_span {
    ($self:ident, $op:literal, $call:expr) => {{
        let span = tracing::info_span!(
            "cache",
            otel.name = concat!("cache ", $op),
            otel.kind = "client",
            cache.system = $self.system,
            error = tracing::field::Empty,
        );
        let result = $call.instrument(span.clone()).await;
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
        result
    }};
}

#[async_trait]
impl Cache for Traced<dyn Cache> {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        cache_span!(self, "get", self.inner.get(key))
    }
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        cache_span!(self, "set", self.inner.set(key, value, ttl))
    }
    async fn delete(&self, keys: &[String]) -> Result<(), CacheError> {
        cache_span!(self, "delete", self.inner.delete(keys))
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.inner.ping().await
    }
}
