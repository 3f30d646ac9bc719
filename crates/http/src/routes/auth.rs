//! `/api/v1/auth`: register, login, refresh, logout, logout-all.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::client::{AuthUser, ClientIp};
use crate::dto::{AuthDto, Done, TokensOnlyDto, UserDto};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ValidJson, parse_json};
use crate::rules::{self, field, opt_field};
use crate::state::AppState;

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
pub struct RegisterRequest {
    /// A valid address, at most 254 characters; compared case-insensitively.
    #[garde(custom(rules::email))]
    pub email: String,
    /// 8..128 characters with a lowercase letter, an uppercase letter and a digit; not a common password.
    #[garde(custom(rules::password))]
    pub password: String,
    /// 2..50 characters after trimming.
    #[garde(custom(rules::person_name))]
    pub name: String,
}

/// Creates an account and signs it in.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = inline(Envelope<AuthDto>)),
        (status = 409, description = "Email already registered", body = ErrorEnvelope),
        (status = 422, description = "Invalid fields", body = ErrorEnvelope),
        (status = 429, description = "Too many registrations from this address", body = ErrorEnvelope),
    )
)]
#[post("/register")]
pub async fn register(
    state: web::Data<AppState>,
    client: ClientIp,
    ValidJson(body): ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = field("email", specgen_domain::Email::parse(&body.email))?;
    let password = field("password", specgen_domain::Password::parse(&body.password))?;
    let name = field("name", specgen_domain::PersonName::parse(&body.name))?;
    let session = state.app.register(email, password, name, client.0).await?;
    Ok(envelope::created(AuthDto { user: UserDto::from(&session.user), tokens: session.tokens.into() }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[garde(custom(rules::email))]
    pub email: String,
    #[garde(custom(rules::password_attempt))]
    pub password: String,
    /// A label for this device; the login's refresh tokens are bound to it.
    #[garde(custom(rules::opt_device_id))]
    pub device_id: Option<String>,
}

/// Signs in. Wrong email and wrong password get the same answer.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = inline(Envelope<AuthDto>)),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorEnvelope),
        (status = 422, description = "Invalid fields", body = ErrorEnvelope),
        (status = 429, description = "Too many failed logins", body = ErrorEnvelope),
    )
)]
#[post("/login")]
pub async fn login(
    state: web::Data<AppState>,
    client: ClientIp,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = field("email", specgen_domain::Email::parse(&body.email))?;
    let attempt = field("password", specgen_domain::PasswordAttempt::parse(&body.password))?;
    let device = opt_field("deviceId", body.device_id.as_deref(), specgen_domain::DeviceId::parse)?;
    let session = state.app.login(email, attempt, device, client.0).await?;
    Ok(envelope::ok(AuthDto { user: UserDto::from(&session.user), tokens: session.tokens.into() }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    #[garde(length(min = 1, max = 512))]
    pub refresh_token: String,
}

/// Rotates a refresh token: the old one is spent. Presenting a spent one
/// again answers `TOKEN_REUSED` and signs that whole login out.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = inline(Envelope<TokensOnlyDto>)),
        (status = 401, description = "UNAUTHENTICATED or TOKEN_REUSED", body = ErrorEnvelope),
    )
)]
#[post("/refresh")]
pub async fn refresh(
    state: web::Data<AppState>,
    ValidJson(body): ValidJson<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.app.refresh(&body.refresh_token).await?;
    Ok(envelope::ok(TokensOnlyDto { tokens: tokens.into() }))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    #[garde(inner(length(min = 1, max = 512)))]
    pub refresh_token: Option<String>,
}

/// Ends one login: the given refresh token's, or without a body the calling
/// access token's. The access token itself lives out its short life.
#[utoipa::path(
    tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "Optional"),
    responses(
        (status = 200, body = inline(Envelope<Done>)),
        (status = 401, body = ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
#[post("/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let refresh_token = optional_body::<LogoutRequest>(&req, &body)?.and_then(|b| b.refresh_token);
    state.app.logout(auth.0, refresh_token.as_deref()).await?;
    Ok(envelope::ok(Done { ok: true }))
}

/// Ends every login of the caller and refuses every access token issued so far.
#[utoipa::path(
    tag = "auth",
    responses((status = 200, body = inline(Envelope<Done>)), (status = 401, body = ErrorEnvelope)),
    security(("bearer" = []))
)]
#[post("/logout-all")]
pub async fn logout_all(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state.app.logout_all(auth.0).await?;
    Ok(envelope::ok(Done { ok: true }))
}

/// A body that may be absent; when present it gets the same checks as `ValidJson`.
fn optional_body<T>(req: &HttpRequest, body: &[u8]) -> Result<Option<T>, ApiError>
where
    T: serde::de::DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::extract::check_json_content_type(req)?;
    let value: T = parse_json(body)?;
    crate::extract::validate(&value)?;
    Ok(Some(value))
}
