//! Operations endpoints that are not part of the versioned API.

use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// The families the wire contract names, with their types. Each has series
/// from the start (at zero), except one that no event of this configuration
/// can produce (a fallback with a single provider): it is still declared.
const CONTRACT_FAMILIES: [(&str, &str); 7] = [
    ("http_request_duration_seconds", "histogram"),
    ("ai_response_duration_seconds", "histogram"),
    ("ai_time_to_first_token_seconds", "histogram"),
    ("ai_tokens_total", "counter"),
    ("ai_fallbacks_total", "counter"),
    ("ws_connections", "gauge"),
    ("active_users_total", "gauge"),
];

/// Prometheus text exposition of every metric the process records.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The pool is read at scrape time: a gauge sampled now is never stale.
    if let Some(pool) = state.app.store_pool() {
        metrics::gauge!("db_pool_connections", "state" => "in_use").set(pool.open.saturating_sub(pool.idle) as f64);
        metrics::gauge!("db_pool_connections", "state" => "idle").set(pool.idle as f64);
        metrics::gauge!("db_pool_waiting").set(pool.waiting as f64);
        metrics::gauge!("db_pool_max_connections").set(pool.max as f64);
    }
    let mut text = state.metrics.render();
    for (family, kind) in CONTRACT_FAMILIES {
        if !text.contains(&format!("# TYPE {family} ")) {
            // A family without samples is valid exposition: scrapers learn
            // that it exists and what it is.
            text.push_str(&format!("# TYPE {family} {kind}\n"));
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}

/// `/api/docs` without the trailing slash the docs UI needs.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/api/docs/")).finish()
}
