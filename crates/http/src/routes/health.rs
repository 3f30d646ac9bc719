//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

use specgen_app::CheckStatus;

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
    /// `ready` when everything answers; `degraded` when the store does but
    /// the cache or the shared event bus does not (requests then go to the
    /// store, and fan-out stays within this instance), or no AI provider is
    /// available.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: ReadyChecks,
    /// Each enabled AI provider, default first.
    pub providers: Vec<ReadyProvider>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `up` or `down`; the instance is ready only while the store is up.
    pub store: &'static str,
    /// `up` or `down` (Redis when configured, otherwise in-process).
    pub cache: &'static str,
    /// `up` or `down`: the event bus between instances (Redis when
    /// configured, otherwise in-process).
    pub bus: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyProvider {
    #[schema(example = "claude")]
    pub name: &'static str,
    /// False while its circuit breaker is open after consecutive failures.
    pub available: bool,
}

/// The process is alive.
#[utoipa::path(tag = "health", responses((status = 200, body = inline(envelope::Envelope<Live>))))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    envelope::ok(Live { status: "ok" })
}

/// The store answers (200, with the cache, the event bus and each AI
/// provider reported); 503 otherwise, naming each dependency that is down.
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
        let shown = |check: &CheckStatus| if check.is_up() { "up" } else { "down" };
        return Ok(envelope::ok(Ready {
            status: if readiness.is_degraded() { "degraded" } else { "ready" },
            checks: ReadyChecks {
                store: shown(&readiness.store),
                cache: shown(&readiness.cache),
                bus: shown(&readiness.bus),
            },
            providers: readiness
                .providers
                .iter()
                .map(|(name, available)| ReadyProvider { name: name.as_str(), available: *available })
                .collect(),
        }));
    }
    let checks = [("store", &readiness.store), ("cache", &readiness.cache), ("bus", &readiness.bus)];
    let details = checks
        .into_iter()
        .filter_map(|(field, check)| match check {
            CheckStatus::Down(why) => Some(FieldError::new(field, why.clone())),
            CheckStatus::Up => None,
        })
        .collect();
    Err(ApiError::DependenciesDown(details))
}
