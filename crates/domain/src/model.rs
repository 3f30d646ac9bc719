//! The entities Spec Gen stores.

use serde::Serialize;
use time::OffsetDateTime;

use crate::ids::{FamilyId, MessageId, RefreshTokenId, SessionId, UserId};
use crate::validation::{
    Bio, ClientMessageId, DeviceId, Email, ModelName, PasswordHash, PersonName, Preferences, ProviderName,
    SessionTitle, SystemPrompt, Timezone,
};

/// A user account. `deleted_at` set means soft-deleted: invisible to every
/// lookup, and its email free to register again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: PersonName,
    pub password_hash: PasswordHash,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Access tokens issued before this instant are refused (logout-all,
    /// password change, deletion).
    pub tokens_valid_after: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub user_id: UserId,
    pub display_name: PersonName,
    pub bio: Bio,
    pub timezone: Timezone,
    pub preferences: Preferences,
    pub updated_at: OffsetDateTime,
}

impl Profile {
    /// The profile a new account starts with.
    pub fn initial(user: &User) -> Self {
        Self {
            user_id: user.id,
            display_name: user.name.clone(),
            bio: Bio::empty(),
            timezone: Timezone::utc(),
            preferences: Preferences::empty(),
            updated_at: user.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSession {
    pub id: SessionId,
    pub title: SessionTitle,
    pub owner_id: UserId,
    pub system_prompt: Option<SystemPrompt>,
    pub provider: Option<ProviderName>,
    pub model: Option<ModelName>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_message_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
}

impl ChatSession {
    /// The instant sessions are ordered by: the latest message, or creation.
    pub fn last_activity_at(&self) -> OffsetDateTime {
        self.last_message_at.unwrap_or(self.created_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParticipantRole {
    Owner,
    Member,
}

impl ParticipantRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Member => "member",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Self::Owner),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub role: ParticipantRole,
    pub joined_at: OffsetDateTime,
}

/// A participant as shown to clients, with the user's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantView {
    pub user_id: UserId,
    pub name: PersonName,
    pub role: ParticipantRole,
    pub joined_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
}

impl MessageRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::System => "system",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Complete,
    Streaming,
    Failed,
    Cancelled,
}

impl MessageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Streaming => "streaming",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn from_db(raw: &str) -> Option<Self> {
        match raw {
            "complete" => Some(Self::Complete),
            "streaming" => Some(Self::Streaming),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    /// A reply in this state will not change any more.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Streaming)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// Why a reply did not complete, as shown to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub session_id: SessionId,
    /// `None` for AI replies.
    pub sender_id: Option<UserId>,
    pub role: MessageRole,
    /// For user messages exactly what was accepted; for replies the text so far.
    pub content: String,
    pub status: MessageStatus,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub latency_ms: Option<i64>,
    pub client_message_id: Option<ClientMessageId>,
    /// The user message an AI reply answers.
    pub reply_to: Option<MessageId>,
    pub error: Option<MessageError>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// SHA-256 of a refresh token: the token itself is never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(out))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub id: RefreshTokenId,
    pub user_id: UserId,
    pub family_id: FamilyId,
    pub token_hash: TokenHash,
    pub device_id: Option<DeviceId>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub spent_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl RefreshToken {
    pub fn is_usable(&self, now: OffsetDateTime) -> bool {
        self.spent_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_hex_round_trip() {
        let hash = TokenHash([7u8; 32]);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TokenHash::from_hex("zz"), None);
    }
}
