//! Repository ports. Every method is one atomic unit: where two writes must
//! land together the trait offers them as one call.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use specgen_domain::{
    ChatSession, ClientMessageId, Email, FamilyId, Message, MessageError, MessageId, MessageRole, MessageStatus,
    PageLimit, Participant, ParticipantRole, ParticipantView, PasswordHash, Profile, RefreshToken, RefreshTokenId,
    SessionId, TokenHash, User, UserId,
};

use crate::error::RepoError;
use crate::page::{Page, PageRequest};

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores the user and their profile together. `Conflict` when an
    /// undeleted user already has this email (compared lowercased).
    async fn register(&self, user: &User, profile: &Profile) -> Result<(), RepoError>;

    /// An undeleted user by email.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, RepoError>;

    /// An undeleted user by id.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, RepoError>;

    /// The profile of an undeleted user.
    async fn profile(&self, id: UserId) -> Result<Option<Profile>, RepoError>;

    /// Replaces the profile's fields. `NotFound` for an unknown or deleted user.
    async fn update_profile(&self, profile: &Profile) -> Result<(), RepoError>;

    /// Sets a new password hash and refuses access tokens issued before
    /// `tokens_valid_after`. `NotFound` for an unknown or deleted user.
    async fn update_password(
        &self,
        id: UserId,
        hash: &PasswordHash,
        tokens_valid_after: OffsetDateTime,
    ) -> Result<(), RepoError>;

    /// Refuses access tokens issued before `at` (logout-all).
    async fn set_tokens_valid_after(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError>;

    /// Soft-deletes the user, in one transaction: the account disappears
    /// from lookups, its refresh tokens are revoked, its access tokens
    /// refused, the sessions it owns are soft-deleted and it leaves the
    /// sessions it was a member of. `NotFound` if already gone.
    async fn soft_delete(&self, id: UserId, at: OffsetDateTime) -> Result<(), RepoError>;
}

#[async_trait]
pub trait RefreshTokenRepository: Send + Sync {
    async fn insert(&self, token: &RefreshToken) -> Result<(), RepoError>;

    async fn find_by_hash(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, RepoError>;

    /// Marks `old` spent and stores `new`, atomically, only if `old` is still
    /// neither spent nor revoked; otherwise `Conflict` and nothing changes.
    /// Of two concurrent rotations of one token exactly one succeeds.
    async fn rotate(&self, old: RefreshTokenId, spent_at: OffsetDateTime, new: &RefreshToken) -> Result<(), RepoError>;

    /// Whether a login family still has a token that can be used: neither
    /// spent nor revoked, and not expired at `now`.
    async fn family_is_live(&self, family: FamilyId, now: OffsetDateTime) -> Result<bool, RepoError>;

    /// Revokes every unrevoked token of a login family; returns how many.
    async fn revoke_family(&self, family: FamilyId, at: OffsetDateTime) -> Result<u64, RepoError>;

    /// Revokes every unrevoked token of a user, except one family if given.
    async fn revoke_all_for_user(
        &self,
        user: UserId,
        except_family: Option<FamilyId>,
        at: OffsetDateTime,
    ) -> Result<u64, RepoError>;
}

#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores the session and its owner as a participant, together.
    async fn create(&self, session: &ChatSession) -> Result<(), RepoError>;

    /// An undeleted session and the caller's role in it; `None` when the
    /// session does not exist, is deleted, or `user` does not participate.
    async fn find_for_participant(
        &self,
        id: SessionId,
        user: UserId,
    ) -> Result<Option<(ChatSession, ParticipantRole)>, RepoError>;

    /// Undeleted sessions `user` participates in, by last activity
    /// (`Older` = most recent first), ties broken by id.
    async fn list_for_user(&self, user: UserId, page: PageRequest) -> Result<Page<ChatSession>, RepoError>;

    /// Replaces title, system prompt, provider, model and `updated_at`.
    /// `NotFound` for an unknown or deleted session.
    async fn update(&self, session: &ChatSession) -> Result<(), RepoError>;

    /// `NotFound` for an unknown or already deleted session.
    async fn soft_delete(&self, id: SessionId, at: OffsetDateTime) -> Result<(), RepoError>;

    /// `Conflict` when already a participant; `NotFound` when the session or
    /// the user does not exist (or is deleted).
    async fn add_participant(&self, participant: &Participant) -> Result<(), RepoError>;

    /// `NotFound` when `user` does not participate.
    async fn remove_participant(&self, id: SessionId, user: UserId) -> Result<(), RepoError>;

    /// Participants of a session, owner first then by joining time.
    async fn participants(&self, id: SessionId) -> Result<Vec<ParticipantView>, RepoError>;

    /// User ids of the participants (for fan-out and access checks).
    async fn participant_ids(&self, id: SessionId) -> Result<Vec<UserId>, RepoError>;
}

/// What a reply's context needs of a message (see [`MessageRepository::recent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentMessage {
    pub id: MessageId,
    pub role: MessageRole,
    pub status: MessageStatus,
    pub content: String,
}

impl From<&Message> for RecentMessage {
    fn from(m: &Message) -> Self {
        Self { id: m.id, role: m.role, status: m.status, content: m.content.clone() }
    }
}

#[async_trait]
pub trait MessageRepository: Send + Sync {
    /// Stores a message and moves its session's last activity to the
    /// message's creation time, together. `Conflict` when its
    /// `client_message_id` is already used in the session; `NotFound` when
    /// the session does not exist or is deleted.
    async fn insert(&self, message: &Message) -> Result<(), RepoError>;

    async fn find(&self, session: SessionId, id: MessageId) -> Result<Option<Message>, RepoError>;

    /// The user message sent with this idempotency key, and the AI reply to it if any.
    async fn find_by_client_id(
        &self,
        session: SessionId,
        client_id: &ClientMessageId,
    ) -> Result<Option<(Message, Option<Message>)>, RepoError>;

    /// The AI reply to the user message `asked` (the latest, should a retry
    /// ever have produced two), if one was stored.
    async fn reply_to(&self, session: SessionId, asked: MessageId) -> Result<Option<Message>, RepoError>;

    /// Messages of a session ordered by creation (ties by id). Items in a page
    /// are oldest first whatever the direction; `Older` with no cursor gives
    /// the newest messages.
    async fn page(&self, session: SessionId, page: PageRequest) -> Result<Page<Message>, RepoError>;

    /// The session's latest `limit` messages, oldest first (ties by id, as
    /// in `page`), with only what a reply's context needs: it is read before
    /// every reply, and reading whole messages was most of a send's work.
    async fn recent(&self, session: SessionId, limit: PageLimit) -> Result<Vec<RecentMessage>, RepoError>;

    /// Writes content, status, provider, model, usage, latency, error and
    /// `updated_at` of an existing message. `NotFound` if it does not exist.
    async fn update(&self, message: &Message) -> Result<(), RepoError>;

    /// Marks every message still `streaming` whose last write is older than
    /// `stale_before` (its producer died: a live reply writes at least
    /// every idle timeout) as `failed` with `error` at `at`, keeping its
    /// partial text; returns them as now stored, so that their members can
    /// be told.
    async fn fail_streaming(
        &self,
        error: &MessageError,
        stale_before: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<Vec<Message>, RepoError>;
}

/// Whether the store answers, for `/health/ready`.
#[async_trait]
pub trait StoreHealth: Send + Sync {
    async fn ping(&self) -> Result<(), RepoError>;

    /// The connection pool now, for the metrics; `None` without a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }
}

/// A connection pool's occupancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// The most connections the pool opens.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections not lent out.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Every repository of one store, as the composition root hands it out.
#[derive(Clone)]
pub struct Store {
    pub users: Arc<dyn UserRepository>,
    pub refresh_tokens: Arc<dyn RefreshTokenRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub messages: Arc<dyn MessageRepository>,
    pub health: Arc<dyn StoreHealth>,
}
