//! `/api/v1/auth`: register, login, refresh, logout, logout-all.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use specgen_app::{AppError, IssuedTokens};
use utoipa::ToSchema;

use crate::client::{AuthUser, ClientIp};
use crate::dto::{AuthDto, Done, TokensDto, TokensOnlyDto, UserDto};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::{ValidJson, parse_valid};
use crate::refresh_cookie;
use crate::rules::{self, field, opt_field};
use crate::state::AppState;

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
pub struct RegisterRequest {
    /// A valid address, at most 254 characters; compared case-insensitively.
    #[garde(custom(rules::email))]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// 8..128 characters with a lowercase letter, an uppercase letter and a digit; not a common password.
    #[garde(custom(rules::password))]
    #[schema(format = Password, min_length = 8, max_length = 128)]
    pub password: String,
    /// 2..50 characters after trimming, no control characters.
    #[garde(custom(rules::person_name))]
    #[schema(min_length = 2, max_length = 50)]
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
    req: HttpRequest,
    ValidJson(body): ValidJson<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = field("email", specgen_domain::Email::parse(&body.email))?;
    let password = field("password", specgen_domain::Password::parse(&body.password))?;
    let name = field("name", specgen_domain::PersonName::parse(&body.name))?;
    let session = state.app.register(email, password, name, client.0).await?;
    Ok(signed_in(&req, StatusCode::CREATED, &session.user, session.tokens))
}

/// The `{user, tokens}` answer, the refresh token moved into its cookie when
/// the client asked for that.
fn signed_in(req: &HttpRequest, status: StatusCode, user: &specgen_domain::User, issued: IssuedTokens) -> HttpResponse {
    let max_age = issued.refresh_expires_in;
    let mut tokens = TokensDto::from(issued);
    let cookie = refresh_cookie::take(req, &mut tokens);
    let mut response = envelope::with_status(status, AuthDto { user: UserDto::from(user), tokens });
    if let Some(token) = cookie {
        refresh_cookie::store(req, &mut response, token, max_age);
    }
    response
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    #[garde(custom(rules::email))]
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[garde(custom(rules::password_attempt))]
    #[schema(format = Password, min_length = 1, max_length = 128)]
    pub password: String,
    /// A label for this device, 1..128 printable characters; the login's refresh tokens are bound to it.
    #[garde(custom(rules::opt_device_id))]
    #[schema(min_length = 1, max_length = 128)]
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
    req: HttpRequest,
    ValidJson(body): ValidJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = field("email", specgen_domain::Email::parse(&body.email))?;
    let attempt = field("password", specgen_domain::PasswordAttempt::parse(&body.password))?;
    let device = opt_field("deviceId", body.device_id.as_deref(), specgen_domain::DeviceId::parse)?;
    let session = state.app.login(email, attempt, device, client.0).await?;
    Ok(signed_in(&req, StatusCode::OK, &session.user, session.tokens))
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    #[garde(length(min = 1, max = 512))]
    #[schema(min_length = 1, max_length = 512)]
    pub refresh_token: String,
}

/// Rotates a refresh token: the old one is spent. Presenting a spent one
/// again answers `TOKEN_REUSED` and signs that whole login out. With
/// `X-Refresh-Cookie: 1` the token may come from the `specgen_refresh`
/// cookie instead of the body, and the new one goes back in it.
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = inline(Envelope<TokensOnlyDto>)),
        (status = 401, description = "UNAUTHENTICATED or TOKEN_REUSED", body = ErrorEnvelope),
        (status = 422, description = "No refresh token given", body = ErrorEnvelope),
    )
)]
#[post("/refresh")]
pub async fn refresh(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let from_body = if refresh_cookie::requested(&req) {
        optional_body::<OptionalRefresh>(&req, &body)?.and_then(|b| b.refresh_token)
    } else {
        // Without cookie mode the body is required, with every check `ValidJson` makes.
        match optional_body::<RefreshRequest>(&req, &body)? {
            Some(b) => Some(b.refresh_token),
            None => {
                crate::extract::check_json_content_type(&req)?;
                return Err(ApiError::validation("refreshToken", "missing field `refreshToken`"));
            }
        }
    };
    let presented = from_body
        .or_else(|| refresh_cookie::presented(&req))
        .ok_or_else(|| ApiError::validation("refreshToken", "no refresh token in the body or the cookie"))?;
    match state.app.refresh(&presented).await {
        Ok(issued) => {
            let max_age = issued.refresh_expires_in;
            let mut tokens = TokensDto::from(issued);
            let cookie = refresh_cookie::take(&req, &mut tokens);
            let mut response = envelope::ok(TokensOnlyDto { tokens });
            if let Some(token) = cookie {
                refresh_cookie::store(&req, &mut response, token, max_age);
            }
            Ok(response)
        }
        Err(e) => {
            // A refused token is useless: the browser should forget it.
            let mut response = actix_web::ResponseError::error_response(&refused_refresh_token(e));
            refresh_cookie::clear(&req, &mut response);
            Ok(response)
        }
    }
}

/// Where a refresh token was presented, "unauthenticated" is about that
/// token, not the access token.
fn refused_refresh_token(error: AppError) -> ApiError {
    match error {
        AppError::Unauthenticated => {
            ApiError::Unauthenticated("The refresh token is not valid (unknown, expired, revoked or not yours).".into())
        }
        other => other.into(),
    }
}

/// The refresh body in cookie mode, where the token may be left out.
#[derive(Debug, Deserialize, garde::Validate)]
#[serde(rename_all = "camelCase")]
struct OptionalRefresh {
    #[garde(inner(length(min = 1, max = 512)))]
    refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, garde::Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    #[garde(inner(length(min = 1, max = 512)))]
    #[schema(min_length = 1, max_length = 512)]
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
    let refresh_token = optional_body::<LogoutRequest>(&req, &body)?
        .and_then(|b| b.refresh_token)
        .or_else(|| refresh_cookie::presented(&req));
    state.app.logout(auth.0, refresh_token.as_deref()).await.map_err(refused_refresh_token)?;
    let mut response = envelope::ok(Done { ok: true });
    refresh_cookie::clear(&req, &mut response);
    Ok(response)
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

/// A body that may be absent; when present it gets the same checks as
/// `ValidJson`. A JSON `null` counts as absent: the document describes an
/// optional body as "the object or null", and clients that always send a
/// body send `null` for "nothing".
fn optional_body<T>(req: &HttpRequest, body: &[u8]) -> Result<Option<T>, ApiError>
where
    T: serde::de::DeserializeOwned + garde::Validate,
    T::Context: Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    crate::extract::check_json_content_type(req)?;
    if body.trim_ascii() == b"null" {
        return Ok(None);
    }
    parse_valid(body).map(Some)
}
