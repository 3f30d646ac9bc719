//! Row types as Postgres stores them, and their conversion to and from the
//! domain. Values read back were validated when written, so they are
//! rebuilt through `trusted`; only enum columns can be corrupt.

use diesel::prelude::*;
use specgen_domain::{
    ChatSession, FamilyId, Message, MessageError, MessageId, MessageRole, MessageStatus, Participant, ParticipantRole,
    Profile, ProviderName, RefreshToken, RefreshTokenId, SessionId, TokenHash, Usage, User, UserId, trusted,
};
use specgen_ports::RepoError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{chat_sessions, messages, profiles, refresh_tokens, session_participants, users};

pub(crate) fn corrupt(what: &str, value: &str) -> RepoError {
    RepoError::unknown(format!("stored {what} is invalid: {value:?}"))
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub tokens_valid_after: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

impl UserRow {
    pub fn from_domain(u: &User) -> Self {
        Self {
            id: u.id.as_uuid(),
            // `Email` is lowercased already; lowering again keeps the
            // uniqueness rule intact even for a value built via `trusted`.
            email: u.email.as_str().to_lowercase(),
            name: u.name.as_str().to_owned(),
            password_hash: u.password_hash.as_str().to_owned(),
            created_at: u.created_at,
            updated_at: u.updated_at,
            tokens_valid_after: u.tokens_valid_after,
            deleted_at: u.deleted_at,
        }
    }

    pub fn into_domain(self) -> User {
        User {
            id: UserId::from_uuid(self.id),
            email: trusted::email(self.email),
            name: trusted::person_name(self.name),
            password_hash: trusted::password_hash(self.password_hash),
            created_at: self.created_at,
            updated_at: self.updated_at,
            tokens_valid_after: self.tokens_valid_after,
            deleted_at: self.deleted_at,
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = profiles, primary_key(user_id), check_for_backend(diesel::pg::Pg))]
pub(crate) struct ProfileRow {
    pub user_id: Uuid,
    pub display_name: String,
    pub bio: String,
    pub timezone: String,
    pub preferences: serde_json::Value,
    pub updated_at: OffsetDateTime,
}

impl ProfileRow {
    pub fn from_domain(p: &Profile) -> Self {
        Self {
            user_id: p.user_id.as_uuid(),
            display_name: p.display_name.as_str().to_owned(),
            bio: p.bio.as_str().to_owned(),
            timezone: p.timezone.as_str().to_owned(),
            preferences: p.preferences.as_value().clone(),
            updated_at: p.updated_at,
        }
    }

    pub fn into_domain(self) -> Profile {
        Profile {
            user_id: UserId::from_uuid(self.user_id),
            display_name: trusted::person_name(self.display_name),
            bio: trusted::bio(self.bio),
            timezone: trusted::timezone(self.timezone),
            preferences: trusted::preferences(self.preferences),
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
pub(crate) struct RefreshTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub device_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl RefreshTokenRow {
    pub fn from_domain(t: &RefreshToken) -> Self {
        Self {
            id: t.id.as_uuid(),
            user_id: t.user_id.as_uuid(),
            family_id: t.family_id.as_uuid(),
            token_hash: t.token_hash.to_hex(),
            device_id: t.device_id.as_ref().map(|d| d.as_str().to_owned()),
            created_at: t.created_at,
            expires_at: t.expires_at,
            spent_at: t.spent_at,
            revoked_at: t.revoked_at,
        }
    }

    pub fn into_domain(self) -> Result<RefreshToken, RepoError> {
        let token_hash =
            TokenHash::from_hex(&self.token_hash).ok_or_else(|| corrupt("token hash", &self.token_hash))?;
        Ok(RefreshToken {
            id: RefreshTokenId::from_uuid(self.id),
            user_id: UserId::from_uuid(self.user_id),
            family_id: FamilyId::from_uuid(self.family_id),
            token_hash,
            device_id: self.device_id.map(trusted::device_id),
            created_at: self.created_at,
            expires_at: self.expires_at,
            spent_at: self.spent_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_sessions, check_for_backend(diesel::pg::Pg))]
pub(crate) struct SessionRow {
    pub id: Uuid,
    pub title: String,
    pub owner_id: Uuid,
    pub system_prompt: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_message_at: Option<OffsetDateTime>,
    pub last_activity_at: OffsetDateTime,
    pub deleted_at: Option<OffsetDateTime>,
}

impl SessionRow {
    pub fn from_domain(s: &ChatSession) -> Self {
        Self {
            id: s.id.as_uuid(),
            title: s.title.as_str().to_owned(),
            owner_id: s.owner_id.as_uuid(),
            system_prompt: s.system_prompt.as_ref().map(|p| p.as_str().to_owned()),
            provider: s.provider.map(|p| p.as_str().to_owned()),
            model: s.model.as_ref().map(|m| m.as_str().to_owned()),
            created_at: s.created_at,
            updated_at: s.updated_at,
            last_message_at: s.last_message_at,
            last_activity_at: s.last_activity_at(),
            deleted_at: s.deleted_at,
        }
    }

    pub fn into_domain(self) -> Result<ChatSession, RepoError> {
        let provider = match self.provider {
            Some(raw) => Some(ProviderName::parse(&raw).map_err(|_| corrupt("session provider", &raw))?),
            None => None,
        };
        Ok(ChatSession {
            id: SessionId::from_uuid(self.id),
            title: trusted::session_title(self.title),
            owner_id: UserId::from_uuid(self.owner_id),
            system_prompt: self.system_prompt.map(trusted::system_prompt),
            provider,
            model: self.model.map(trusted::model_name),
            created_at: self.created_at,
            updated_at: self.updated_at,
            last_message_at: self.last_message_at,
            deleted_at: self.deleted_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = session_participants, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ParticipantRow {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub role: &'static str,
    pub joined_at: OffsetDateTime,
}

impl ParticipantRow {
    pub fn from_domain(p: &Participant) -> Self {
        Self {
            session_id: p.session_id.as_uuid(),
            user_id: p.user_id.as_uuid(),
            role: p.role.as_str(),
            joined_at: p.joined_at,
        }
    }
}

pub(crate) fn participant_role(raw: &str) -> Result<ParticipantRole, RepoError> {
    ParticipantRole::from_db(raw).ok_or_else(|| corrupt("participant role", raw))
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub(crate) struct MessageRow {
    pub id: Uuid,
    pub session_id: Uuid,
    pub sender_id: Option<Uuid>,
    pub role: String,
    pub content: String,
    pub status: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub latency_ms: Option<i64>,
    pub client_message_id: Option<String>,
    pub reply_to: Option<Uuid>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The columns `MessageRepository::update` may change.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub(crate) struct MessageChanges {
    pub content: String,
    pub status: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i32>,
    pub output_tokens: Option<i32>,
    pub latency_ms: Option<i64>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_at: OffsetDateTime,
}

/// Token counts are `u32` in the domain and `integer` in SQL; counts past
/// `i32::MAX` cannot happen for one reply, so saturate rather than fail.
fn tokens_to_sql(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn usage_to_sql(usage: Option<Usage>) -> (Option<i32>, Option<i32>) {
    match usage {
        Some(u) => (Some(tokens_to_sql(u.input_tokens)), Some(tokens_to_sql(u.output_tokens))),
        None => (None, None),
    }
}

fn error_to_sql(error: Option<&MessageError>) -> (Option<String>, Option<String>) {
    match error {
        Some(e) => (Some(e.code.clone()), Some(e.message.clone())),
        None => (None, None),
    }
}

impl MessageRow {
    pub fn from_domain(m: &Message) -> Self {
        let (input_tokens, output_tokens) = usage_to_sql(m.usage);
        let (error_code, error_message) = error_to_sql(m.error.as_ref());
        Self {
            id: m.id.as_uuid(),
            session_id: m.session_id.as_uuid(),
            sender_id: m.sender_id.map(|u| u.as_uuid()),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            status: m.status.as_str().to_owned(),
            provider: m.provider.clone(),
            model: m.model.clone(),
            input_tokens,
            output_tokens,
            latency_ms: m.latency_ms,
            client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
            reply_to: m.reply_to.map(|r| r.as_uuid()),
            error_code,
            error_message,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    pub fn into_domain(self) -> Result<Message, RepoError> {
        let role = MessageRole::from_db(&self.role).ok_or_else(|| corrupt("message role", &self.role))?;
        let status = MessageStatus::from_db(&self.status).ok_or_else(|| corrupt("message status", &self.status))?;
        let usage = match (self.input_tokens, self.output_tokens) {
            (Some(input), Some(output)) => Some(Usage {
                input_tokens: u32::try_from(input).map_err(|_| corrupt("input tokens", &input.to_string()))?,
                output_tokens: u32::try_from(output).map_err(|_| corrupt("output tokens", &output.to_string()))?,
            }),
            _ => None,
        };
        let error = self.error_code.map(|code| MessageError { code, message: self.error_message.unwrap_or_default() });
        Ok(Message {
            id: MessageId::from_uuid(self.id),
            session_id: SessionId::from_uuid(self.session_id),
            sender_id: self.sender_id.map(UserId::from_uuid),
            role,
            content: self.content,
            status,
            provider: self.provider,
            model: self.model,
            usage,
            latency_ms: self.latency_ms,
            client_message_id: self.client_message_id.map(trusted::client_message_id),
            reply_to: self.reply_to.map(MessageId::from_uuid),
            error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

impl MessageChanges {
    pub fn from_domain(m: &Message) -> Self {
        let (input_tokens, output_tokens) = usage_to_sql(m.usage);
        let (error_code, error_message) = error_to_sql(m.error.as_ref());
        Self {
            content: m.content.clone(),
            status: m.status.as_str().to_owned(),
            provider: m.provider.clone(),
            model: m.model.clone(),
            input_tokens,
            output_tokens,
            latency_ms: m.latency_ms,
            error_code,
            error_message,
            updated_at: m.updated_at,
        }
    }
}
