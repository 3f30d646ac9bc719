//! Operations endpoints that are not part of the versioned API.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Prometheus text exposition of every metric the process records.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

/// `/api/docs` without the trailing slash the docs UI needs.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/api/docs/")).finish()
}
