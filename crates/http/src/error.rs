//! The error envelope and the one place where failures become HTTP statuses.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use specgen_app::AppError;
use specgen_ports::RepoError;

use crate::request_id;

/// One failing field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Machine-readable code, e.g. `VALIDATION_FAILED`.
    pub code: &'static str,
    /// Human-readable explanation; never leaks internals.
    pub message: String,
    /// Each failing field of a 422 (or each dependency down of a 503 from
    /// readiness); empty otherwise.
    pub details: Vec<FieldError>,
    /// Equals the response's `X-Request-Id`.
    pub request_id: String,
}

/// `{"success": false, "error": {...}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
}

/// Every failure an endpoint can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated(String),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("token expired")]
    TokenExpired,
    #[error("refresh token reused")]
    TokenReused,
    #[error("forbidden")]
    Forbidden(String),
    #[error("not found")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64, limit: u32 },
    #[error("unavailable")]
    Unavailable(String),
    /// The server turns work away rather than queue it for long.
    #[error("busy")]
    Busy { retry_after_secs: u64 },
    /// Readiness failed; `details` names each dependency that is down.
    #[error("dependencies down")]
    DependenciesDown(Vec<FieldError>),
    /// The cause is logged with the request id; the client sees only that
    /// something went wrong.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BAD_REQUEST",
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenReused => "TOKEN_REUSED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Unavailable(_) | Self::DependenciesDown(_) | Self::Busy { .. } => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    fn client_message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m) => m.clone(),
            Self::MethodNotAllowed => "This method is not allowed on this path.".into(),
            Self::InvalidCredentials => "Wrong email or password.".into(),
            Self::TokenExpired => "The access token has expired; refresh it.".into(),
            Self::TokenReused => {
                "This refresh token was already used; every session of that login has been signed out.".into()
            }
            Self::PayloadTooLarge(limit) => {
                format!("The request body exceeds the limit of {limit} bytes.")
            }
            Self::UnsupportedMediaType => "The request body must be JSON (application/json) in UTF-8.".into(),
            Self::Validation(_) => "The request is invalid; see details.".into(),
            Self::RateLimited { retry_after_secs, .. } => {
                format!("Too many requests; retry in {retry_after_secs} s.")
            }
            Self::Unavailable(_) | Self::DependenciesDown(_) => "A dependency is unavailable; retry shortly.".into(),
            Self::Busy { retry_after_secs } => format!("The server is busy; retry in {retry_after_secs} s."),
            Self::Internal(_) => "Something went wrong on our side.".into(),
        }
    }

    /// What a 401 must say it wants (RFC 9110 section 11.6.1): a bearer
    /// token, and why the one given was refused when it was (RFC 6750).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::TokenExpired => {
                Some(r#"Bearer realm="specgen", error="invalid_token", error_description="The access token expired""#)
            }
            Self::Unauthenticated(_) | Self::InvalidCredentials | Self::TokenReused => {
                Some(r#"Bearer realm="specgen""#)
            }
            _ => None,
        }
    }

    /// The envelope for this error, for responses built outside `ResponseError`.
    pub fn envelope(&self, request_id: String) -> ErrorEnvelope {
        let details = match self {
            Self::Validation(details) | Self::DependenciesDown(details) => details.clone(),
            _ => Vec::new(),
        };
        ErrorEnvelope {
            success: false,
            error: ErrorBody { code: self.code(), message: self.client_message(), details, request_id },
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(what) => Self::Conflict(what),
            RepoError::NotFound => Self::NotFound("not found".into()),
            RepoError::Unavailable(why) => Self::Unavailable(why),
            RepoError::Unknown(cause) => Self::Internal(cause),
        }
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid { field, message } => Self::validation(field, message),
            AppError::Conflict(what) => Self::Conflict(what),
            AppError::NotFound(what) => Self::not_found(what),
            AppError::Forbidden(why) => Self::Forbidden(why.to_owned()),
            AppError::InvalidCredentials => Self::InvalidCredentials,
            AppError::Unauthenticated => Self::Unauthenticated("A valid access token is required.".into()),
            AppError::TokenExpired => Self::TokenExpired,
            AppError::TokenReused => Self::TokenReused,
            AppError::RateLimited(decision) => Self::RateLimited {
                // Whole seconds, rounded up so a client that waits this long succeeds.
                retry_after_secs: decision.reset_after.as_millis().div_ceil(1000).max(1) as u64,
                limit: decision.limit,
            },
            AppError::Unavailable(why) => Self::Unavailable(why),
            // Counted where it is turned away (`requests_turned_away_total`):
            // a line per request would flood the log during a flood.
            AppError::Busy(_) => Self::Busy { retry_after_secs: 1 },
            AppError::Unknown(cause) => Self::Internal(cause),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) | Self::InvalidCredentials | Self::TokenExpired | Self::TokenReused => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::DependenciesDown(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_for(request_id::current())
    }
}

impl ApiError {
    /// The answer to the request `request_id`: status, headers and envelope.
    /// Public for answers given outside a handler (a refused WebSocket
    /// upgrade), which must carry the same headers.
    pub fn response_for(&self, request_id: String) -> HttpResponse {
        match self {
            Self::Internal(cause) => {
                tracing::error!(request_id, error = format!("{cause:#}"), "internal error")
            }
            Self::Unavailable(why) => tracing::warn!(request_id, why, "dependency unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(challenge) = self.challenge() {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if let Self::RateLimited { retry_after_secs, limit } = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
            response.insert_header(("RateLimit-Limit", HeaderValue::from(*limit)));
            response.insert_header(("RateLimit-Remaining", HeaderValue::from(0u32)));
            response.insert_header(("RateLimit-Reset", HeaderValue::from(*retry_after_secs)));
        }
        if let Self::Busy { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
        }
        response.json(self.envelope(request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn work_turned_away_is_a_503_with_a_retry_after() {
        let response = ApiError::from(AppError::Busy("password checks")).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("1"));
        let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "UNAVAILABLE");
        assert_eq!(body["error"]["message"], "The server is busy; retry in 1 s.");
    }
}
