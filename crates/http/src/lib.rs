//! Spec Gen's HTTP interface (actix-web): routing, the contract's envelopes
//! and error codes, request ids, metrics, and the OpenAPI document.
//!
//! Handlers call the application layer only; this crate never names a
//! concrete store or provider.

pub mod envelope;
pub mod error;
pub mod extract;
pub mod metrics_setup;
pub mod observe;
pub mod request_id;
pub mod routes;
pub mod state;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::ErrorHandlers;
use actix_web::{App as ActixApp, HttpServer, web};
use utoipa::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use state::AppState;

/// HTTP settings, from the typed configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Origins allowed by CORS; empty means same origin only.
    pub cors_origins: Vec<String>,
    /// Worker threads; `None` uses one per core.
    pub workers: Option<usize>,
    /// How long in-flight requests get to finish on SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            cors_origins: Vec::new(),
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Spec Gen API",
        description = "Self-hostable, AI-first chat platform. Every response is an envelope: \
            `{success: true, data, message?}` or `{success: false, error: {code, message, details?, requestId}}`.",
    ),
    components(schemas(error::ErrorEnvelope, error::ErrorBody, error::FieldError)),
    tags((name = "health", description = "Liveness and readiness probes"))
)]
struct ApiDoc;

/// Registers every documented operation; the single list both the server and
/// the OpenAPI document are built from.
fn api_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(routes::health::live)
        .service(routes::health::ready);
}

/// The OpenAPI 3.1 document of everything `api_routes` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = ActixApp::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(api_routes)
        .split_for_parts();
    api
}

fn cors(config: &HttpConfig) -> actix_cors::Cors {
    config
        .cors_origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
                .allow_any_method()
                .allow_any_header()
                .expose_headers(["x-request-id", "retry-after"])
                .max_age(3600)
        })
}

/// Builds the server on an already-bound listener (tests bind port 0).
pub fn server(
    state: AppState,
    config: HttpConfig,
    listener: TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let workers = config.workers;
    let shutdown_timeout = config.shutdown_timeout;
    let config_data = web::Data::new(config);
    let state_data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        let (app, api) = ActixApp::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(api_routes)
            .split_for_parts();
        app.app_data(config_data.clone())
            .app_data(state_data.clone())
            .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", api))
            .route("/api/docs", web::get().to(routes::ops::docs_redirect))
            .route("/metrics", web::get().to(routes::ops::metrics))
            .route("/", web::get().to(routes::ops::root))
            .default_service(web::to(routes::fallback::not_found))
            .wrap(ErrorHandlers::new().default_handler(routes::fallback::ensure_json_error))
            .wrap(cors(&config_data))
            .wrap(observe::Observe)
            .wrap(request_id::RequestIdMiddleware)
    })
    .listen(listener)?
    .shutdown_timeout(shutdown_timeout.as_secs());
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
