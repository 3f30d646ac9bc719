//! Wire shapes (camelCase JSON) and their conversions from domain values.

use serde::Serialize;
use specgen_app::IssuedTokens;
use specgen_domain::{Profile, User};
use time::OffsetDateTime;
use utoipa::ToSchema;

pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: String,
    pub email: String,
    pub name: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            name: user.name.to_string(),
            created_at: rfc3339(user.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileDto {
    pub display_name: String,
    pub bio: String,
    /// IANA zone name.
    pub timezone: String,
    /// A JSON object of client preferences.
    #[schema(value_type = Object)]
    pub preferences: serde_json::Value,
    pub updated_at: String,
}

impl From<&Profile> for ProfileDto {
    fn from(p: &Profile) -> Self {
        Self {
            display_name: p.display_name.to_string(),
            bio: p.bio.to_string(),
            timezone: p.timezone.to_string(),
            preferences: p.preferences.as_value().clone(),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeDto {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: String,
    pub profile: ProfileDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokensDto {
    pub access_token: String,
    /// Opaque; rotate it with `POST /api/v1/auth/refresh` and keep it secret.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(value_type = TokenTypeSchema)]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<IssuedTokens> for TokensDto {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthDto {
    pub user: UserDto,
    pub tokens: TokensDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensOnlyDto {
    pub tokens: TokensDto,
}

/// An empty success payload.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub ok: bool,
}

// Only for the document: the closed sets of values some response fields
// take, so that clients generated from it get enums, not strings.

#[derive(ToSchema)]
#[schema(as = MessageRole)]
#[allow(dead_code)]
pub enum MessageRoleSchema {
    #[schema(rename = "user")]
    User,
    #[schema(rename = "assistant")]
    Assistant,
    #[schema(rename = "system")]
    System,
}

#[derive(ToSchema)]
#[schema(as = MessageStatus)]
#[allow(dead_code)]
pub enum MessageStatusSchema {
    #[schema(rename = "complete")]
    Complete,
    #[schema(rename = "streaming")]
    Streaming,
    #[schema(rename = "failed")]
    Failed,
    #[schema(rename = "cancelled")]
    Cancelled,
}

#[derive(ToSchema)]
#[schema(as = ParticipantRole)]
#[allow(dead_code)]
pub enum ParticipantRoleSchema {
    #[schema(rename = "owner")]
    Owner,
    #[schema(rename = "member")]
    Member,
}

#[derive(ToSchema)]
#[schema(as = TokenType)]
#[allow(dead_code)]
pub enum TokenTypeSchema {
    Bearer,
}
