//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::envelope;
use crate::error::{ApiError, FieldError};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `ok` while the process serves requests.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` when every dependency answers.
    pub status: &'static str,
    pub checks: ReadyChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `up` or `down`.
    pub store: &'static str,
}

/// The process is alive.
#[utoipa::path(tag = "health", responses((status = 200, body = inline(envelope::Envelope<Live>))))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    envelope::ok(Live { status: "ok" })
}

/// Every dependency answers (the store today); 503 otherwise.
#[utoipa::path(
    tag = "health",
    responses(
        (status = 200, body = inline(envelope::Envelope<Ready>)),
        (status = 503, description = "A dependency is down", body = crate::error::ErrorEnvelope),
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let readiness = state.app.readiness().await;
    if readiness.is_ready() {
        return Ok(envelope::ok(Ready { status: "ready", checks: ReadyChecks { store: "up" } }));
    }
    let mut details = Vec::new();
    if let specgen_app::CheckStatus::Down(why) = &readiness.store {
        details.push(FieldError::new("store", why.clone()));
    }
    Err(ApiError::DependenciesDown(details))
}
