//! `/api/v1/users/me`: the caller's account and profile.

use actix_web::{HttpResponse, delete, get, patch, put, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::client::AuthUser;
use crate::dto::{Done, MeDto, ProfileDto, UserDto};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ValidJson;
use crate::rules::{self, field, opt_field};
use crate::state::AppState;

/// The caller's account and profile.
#[utoipa::path(
    tag = "users",
    responses((status = 200, body = inline(Envelope<MeDto>)), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    let (user, profile) = state.app.me(auth.0).await?;
    let user = UserDto::from(&user);
    Ok(envelope::ok(MeDto {
        id: user.id,
        email: user.email,
        name: user.name,
        created_at: user.created_at,
        profile: ProfileDto::from(&profile),
    }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePatchRequest {
    /// 2..50 characters after trimming, no control characters.
    #[garde(custom(rules::opt_person_name))]
    #[schema(min_length = 2, max_length = 50)]
    pub display_name: Option<String>,
    /// At most 500 characters; no control characters but newline, carriage return and tab.
    #[garde(custom(rules::opt_bio))]
    #[schema(max_length = 500)]
    pub bio: Option<String>,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    #[garde(custom(rules::opt_timezone))]
    #[schema(min_length = 1)]
    pub timezone: Option<String>,
    /// A JSON object of at most 16 KiB, with no NUL character (`\u0000`); replaces the stored one.
    #[garde(custom(rules::opt_preferences))]
    #[schema(value_type = Option<Object>)]
    pub preferences: Option<serde_json::Value>,
}

/// Changes some profile fields; absent fields stay as they are.
#[utoipa::path(
    tag = "users",
    request_body(content = Option<ProfilePatchRequest>, description = "Optional: no body changes nothing"),
    responses(
        (status = 200, body = inline(Envelope<ProfileDto>)),
        (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[patch("/me/profile")]
pub async fn update_profile(
    state: web::Data<AppState>,
    auth: AuthUser,
    ValidJson(body): ValidJson<ProfilePatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let patch = specgen_app::ProfilePatch {
        display_name: opt_field("displayName", body.display_name.as_deref(), specgen_domain::PersonName::parse)?,
        bio: opt_field("bio", body.bio.as_deref(), specgen_domain::Bio::parse)?,
        timezone: opt_field("timezone", body.timezone.as_deref(), specgen_domain::Timezone::parse)?,
        preferences: body
            .preferences
            .map(|v| field("preferences", specgen_domain::Preferences::parse(v)))
            .transpose()?,
    };
    let profile = state.app.update_profile(auth.0, patch).await?;
    Ok(envelope::ok(ProfileDto::from(&profile)))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[garde(custom(rules::password_attempt))]
    #[schema(format = Password, min_length = 1, max_length = 128)]
    pub current_password: String,
    /// Same policy as registration.
    #[garde(custom(rules::password))]
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub new_password: String,
}

/// Changes the password; every other login is signed out, this one stays.
#[utoipa::path(
    tag = "users",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, body = inline(Envelope<Done>)),
        (status = 401, description = "INVALID_CREDENTIALS: wrong current password; nothing changes", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    auth: AuthUser,
    ValidJson(body): ValidJson<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let current = field("currentPassword", specgen_domain::PasswordAttempt::parse(&body.current_password))?;
    let new = field("newPassword", specgen_domain::Password::parse(&body.new_password))?;
    state.app.change_password(auth.0, current, new).await?;
    Ok(envelope::ok(Done { ok: true }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
pub struct DeleteAccountRequest {
    #[garde(custom(rules::password_attempt))]
    #[schema(format = Password, min_length = 1, max_length = 128)]
    pub password: String,
}

/// Deletes the account (soft): its tokens stop working, its email may register again.
#[utoipa::path(
    tag = "users",
    request_body = DeleteAccountRequest,
    responses(
        (status = 200, body = inline(Envelope<Done>)),
        (status = 401, description = "INVALID_CREDENTIALS: wrong password; nothing changes", body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[delete("/me")]
pub async fn delete_me(
    state: web::Data<AppState>,
    auth: AuthUser,
    ValidJson(body): ValidJson<DeleteAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let password = field("password", specgen_domain::PasswordAttempt::parse(&body.password))?;
    state.app.delete_account(auth.0, password).await?;
    Ok(envelope::ok(Done { ok: true }))
}
