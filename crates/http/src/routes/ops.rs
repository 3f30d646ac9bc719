//! Operations endpoints that are not part of the versioned API.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// Prometheus text exposition of every metric the process records.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The pool is read at scrape time: a gauge sampled now is never stale.
    if let Some(pool) = state.app.store_pool() {
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(pool.open.saturating_sub(pool.idle) as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.idle as f64);
        metrics::gauge!("db_pool_waiting").set(pool.waiting as f64);
        metrics::gauge!("db_pool_max_connections").set(pool.max as f64);
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}

/// `/api/docs` without the trailing slash the docs UI needs.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/api/docs/")).finish()
}
