//! Row structs and their conversions to and from domain values. Values read
//! back are rebuilt with `validation::trusted`: they passed their rules when
//! written, and rules may tighten later without making old rows unreadable.

use std::str::FromStr;

use diesel::prelude::*;
use time::OffsetDateTime;

use specgen_domain::time_util::{from_unix_micros, unix_micros};
use specgen_domain::trusted;
use specgen_domain::{
    ChatSession, Message, MessageError, MessageRole, MessageStatus, ParticipantRole, Profile, ProviderName,
    RefreshToken, TokenHash, Usage, User,
};

use crate::error::StoreError;
use crate::schema::{chat_sessions, messages, profiles, refresh_tokens, session_participants, users};

pub(crate) fn micros(at: OffsetDateTime) -> i64 {
    unix_micros(at)
}

pub(crate) fn instant(micros: i64) -> Result<OffsetDateTime, StoreError> {
    from_unix_micros(micros).ok_or_else(|| StoreError::corrupt(format!("instant {micros} out of range")))
}

fn opt_instant(micros: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    micros.map(instant).transpose()
}

pub(crate) fn id<T: FromStr>(raw: &str) -> Result<T, StoreError> {
    raw.parse().map_err(|_| StoreError::corrupt(format!("id {raw:?}")))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub tokens_valid_after: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl From<&User> for UserRow {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_text(),
            email: u.email.as_str().to_owned(),
            name: u.name.as_str().to_owned(),
            password_hash: u.password_hash.as_str().to_owned(),
            created_at: micros(u.created_at),
            updated_at: micros(u.updated_at),
            tokens_valid_after: u.tokens_valid_after.map(micros),
            deleted_at: u.deleted_at.map(micros),
        }
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: id(&r.id)?,
            email: trusted::email(r.email),
            name: trusted::person_name(r.name),
            password_hash: trusted::password_hash(r.password_hash),
            created_at: instant(r.created_at)?,
            updated_at: instant(r.updated_at)?,
            tokens_valid_after: opt_instant(r.tokens_valid_after)?,
            deleted_at: opt_instant(r.deleted_at)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = profiles, primary_key(user_id), check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct ProfileRow {
    pub user_id: String,
    pub display_name: String,
    pub bio: String,
    pub timezone: String,
    pub preferences: String,
    pub updated_at: i64,
}

impl From<&Profile> for ProfileRow {
    fn from(p: &Profile) -> Self {
        Self {
            user_id: p.user_id.to_text(),
            display_name: p.display_name.as_str().to_owned(),
            bio: p.bio.as_str().to_owned(),
            timezone: p.timezone.as_str().to_owned(),
            preferences: p.preferences.as_value().to_string(),
            updated_at: micros(p.updated_at),
        }
    }
}

impl TryFrom<ProfileRow> for Profile {
    type Error = StoreError;
    fn try_from(r: ProfileRow) -> Result<Self, StoreError> {
        let preferences = serde_json::from_str(&r.preferences)
            .map_err(|e| StoreError::corrupt(format!("preferences of {}: {e}", r.user_id)))?;
        Ok(Self {
            user_id: id(&r.user_id)?,
            display_name: trusted::person_name(r.display_name),
            bio: trusted::bio(r.bio),
            timezone: trusted::timezone(r.timezone),
            preferences: trusted::preferences(preferences),
            updated_at: instant(r.updated_at)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct RefreshTokenRow {
    pub id: String,
    pub user_id: String,
    pub family_id: String,
    pub token_hash: String,
    pub device_id: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<&RefreshToken> for RefreshTokenRow {
    fn from(t: &RefreshToken) -> Self {
        Self {
            id: t.id.to_text(),
            user_id: t.user_id.to_text(),
            family_id: t.family_id.to_text(),
            token_hash: t.token_hash.to_hex(),
            device_id: t.device_id.as_ref().map(|d| d.as_str().to_owned()),
            created_at: micros(t.created_at),
            expires_at: micros(t.expires_at),
            spent_at: t.spent_at.map(micros),
            revoked_at: t.revoked_at.map(micros),
        }
    }
}

impl TryFrom<RefreshTokenRow> for RefreshToken {
    type Error = StoreError;
    fn try_from(r: RefreshTokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: id(&r.id)?,
            user_id: id(&r.user_id)?,
            family_id: id(&r.family_id)?,
            token_hash: TokenHash::from_hex(&r.token_hash)
                .ok_or_else(|| StoreError::corrupt(format!("token hash of {}", r.id)))?,
            device_id: r.device_id.map(trusted::device_id),
            created_at: instant(r.created_at)?,
            expires_at: instant(r.expires_at)?,
            spent_at: opt_instant(r.spent_at)?,
            revoked_at: opt_instant(r.revoked_at)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_sessions, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct SessionRow {
    pub id: String,
    pub title: String,
    pub owner_id: String,
    pub system_prompt: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_message_at: Option<i64>,
    pub last_activity_at: i64,
    pub deleted_at: Option<i64>,
}

impl From<&ChatSession> for SessionRow {
    fn from(s: &ChatSession) -> Self {
        Self {
            id: s.id.to_text(),
            title: s.title.as_str().to_owned(),
            owner_id: s.owner_id.to_text(),
            system_prompt: s.system_prompt.as_ref().map(|p| p.as_str().to_owned()),
            provider: s.provider.map(|p| p.as_str().to_owned()),
            model: s.model.as_ref().map(|m| m.as_str().to_owned()),
            created_at: micros(s.created_at),
            updated_at: micros(s.updated_at),
            last_message_at: s.last_message_at.map(micros),
            last_activity_at: micros(s.last_activity_at()),
            deleted_at: s.deleted_at.map(micros),
        }
    }
}

impl TryFrom<SessionRow> for ChatSession {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        let provider = r
            .provider
            .map(|p| ProviderName::parse(&p).map_err(|_| StoreError::corrupt(format!("provider {p:?}"))))
            .transpose()?;
        Ok(Self {
            id: id(&r.id)?,
            title: trusted::session_title(r.title),
            owner_id: id(&r.owner_id)?,
            system_prompt: r.system_prompt.map(trusted::system_prompt),
            provider,
            model: r.model.map(trusted::model_name),
            created_at: instant(r.created_at)?,
            updated_at: instant(r.updated_at)?,
            last_message_at: opt_instant(r.last_message_at)?,
            deleted_at: opt_instant(r.deleted_at)?,
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = session_participants, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct ParticipantRow {
    pub session_id: String,
    pub user_id: String,
    pub role: String,
    pub joined_at: i64,
}

pub(crate) fn participant_role(raw: &str) -> Result<ParticipantRole, StoreError> {
    ParticipantRole::from_db(raw).ok_or_else(|| StoreError::corrupt(format!("participant role {raw:?}")))
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct MessageRow {
    pub id: String,
    pub session_id: String,
    pub sender_id: Option<String>,
    pub role: String,
    pub content: String,
    pub status: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub client_message_id: Option<String>,
    pub reply_to: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Message> for MessageRow {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_text(),
            session_id: m.session_id.to_text(),
            sender_id: m.sender_id.map(|u| u.to_text()),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            status: m.status.as_str().to_owned(),
            provider: m.provider.clone(),
            model: m.model.clone(),
            input_tokens: m.usage.map(|u| i64::from(u.input_tokens)),
            output_tokens: m.usage.map(|u| i64::from(u.output_tokens)),
            latency_ms: m.latency_ms,
            client_message_id: m.client_message_id.as_ref().map(|c| c.as_str().to_owned()),
            reply_to: m.reply_to.map(|r| r.to_text()),
            error_code: m.error.as_ref().map(|e| e.code.clone()),
            error_message: m.error.as_ref().map(|e| e.message.clone()),
            created_at: micros(m.created_at),
            updated_at: micros(m.updated_at),
        }
    }
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;
    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        let tokens = |n: i64| u32::try_from(n).map_err(|_| StoreError::corrupt(format!("token count {n}")));
        let usage = match (r.input_tokens, r.output_tokens) {
            (Some(input), Some(output)) => Some(Usage { input_tokens: tokens(input)?, output_tokens: tokens(output)? }),
            _ => None,
        };
        // The code says whether there is an error; a missing text is empty.
        let error = r.error_code.map(|code| MessageError { code, message: r.error_message.unwrap_or_default() });
        Ok(Self {
            id: id(&r.id)?,
            session_id: id(&r.session_id)?,
            sender_id: r.sender_id.as_deref().map(id).transpose()?,
            role: MessageRole::from_db(&r.role)
                .ok_or_else(|| StoreError::corrupt(format!("message role {:?}", r.role)))?,
            content: r.content,
            status: MessageStatus::from_db(&r.status)
                .ok_or_else(|| StoreError::corrupt(format!("message status {:?}", r.status)))?,
            provider: r.provider,
            model: r.model,
            usage,
            latency_ms: r.latency_ms,
            client_message_id: r.client_message_id.map(trusted::client_message_id),
            reply_to: r.reply_to.as_deref().map(id).transpose()?,
            error,
            created_at: instant(r.created_at)?,
            updated_at: instant(r.updated_at)?,
        })
    }
}
