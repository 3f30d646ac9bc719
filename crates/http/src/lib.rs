//! Spec Gen's HTTP interface (actix-web): routing, the contract's envelopes
//! and error codes, request ids, metrics, and the OpenAPI document.
//!
//! Handlers call the application layer only; this crate never names a
//! concrete store or provider.

mod accept;
pub mod client;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod metrics_setup;
pub mod observe;
pub mod refresh_cookie;
pub mod request_id;
pub mod routes;
pub mod rules;
pub mod shared_responses;
pub mod state;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::middleware::ErrorHandlers;
use actix_web::{App as ActixApp, web};
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
    /// Peers whose `X-Forwarded-For` is believed (load balancers, proxies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            cors_origins: Vec::new(),
            workers: None,
            shutdown_timeout: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
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
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness probes"),
        (name = "auth", description = "Registration, sign-in, token rotation and sign-out"),
        (name = "users", description = "The caller's account and profile"),
        (name = "chat", description = "Sessions, participants and messages"),
        (name = "ai", description = "AI providers"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the protected operations name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Registers every documented operation; the single list both the server and
/// the OpenAPI document are built from.
fn api_routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    use utoipa_actix_web::scope;
    cfg.service(routes::health::live)
        .service(routes::health::ready)
        .service(
            scope("/api/v1/auth")
                .service(routes::auth::register)
                .service(routes::auth::login)
                .service(routes::auth::refresh)
                .service(routes::auth::logout)
                .service(routes::auth::logout_all),
        )
        .service(
            scope("/api/v1/chat")
                // First: the router tries resources in order, a regex
                // match each, and sending is the hottest request (each
                // resource tried before it cost ~4,000 instructions).
                .service(routes::messages::send)
                .service(routes::sessions::create)
                .service(routes::sessions::list)
                .service(routes::sessions::get)
                .service(routes::sessions::update)
                .service(routes::sessions::delete)
                .service(routes::sessions::add_participant)
                .service(routes::sessions::remove_participant)
                .service(routes::messages::list)
                .service(routes::messages::cancel),
        )
        .service(scope("/api/v1/ai").service(routes::messages::providers))
        .service(
            scope("/api/v1/users")
                .service(routes::users::me)
                .service(routes::users::update_profile)
                .service(routes::users::change_password)
                .service(routes::users::delete_me),
        );
}

/// The OpenAPI 3.1 document of everything `api_routes` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = ActixApp::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(api_routes).split_for_parts();
    shared_responses::complete(api)
}

fn cors(config: &HttpConfig) -> actix_cors::Cors {
    config.cors_origins.iter().fold(actix_cors::Cors::default(), |cors, origin| {
        cors.allowed_origin(origin)
            // The methods the API serves (any method would list TRACE and CONNECT).
            .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
            .allow_any_header()
            // What a browser client on another origin must read: the
            // request id, and the rate limit's headers on a 429.
            .expose_headers([
                "x-request-id",
                "retry-after",
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
            ])
            .max_age(3600)
    })
}

/// An HTTP/1 request that asks to upgrade, with its connection.
pub type UpgradeRequest =
    (actix_http::Request, actix_codec::Framed<actix_web::rt::net::TcpStream, actix_http::h1::Codec>);

/// Builds the server on an already-bound listener (tests bind port 0), with
/// more routes (the gateway's) registered by `extra`, and every HTTP/1
/// upgrade request handed to `upgrade` with its connection: the gateway
/// takes the raw stream so that an idle WebSocket holds no HTTP buffers.
/// Signals are left to the caller, which stops the server through its
/// handle: WebSocket connections must be closed before the server drains.
pub fn server<F, U, Fut>(
    state: AppState,
    config: HttpConfig,
    listener: TcpListener,
    extra: F,
    upgrade: U,
) -> std::io::Result<actix_web::dev::Server>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    U: Fn(UpgradeRequest) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    use actix_service::ServiceFactoryExt as _;

    let address = listener.local_addr()?;
    let workers = config.workers;
    let shutdown_timeout = config.shutdown_timeout;
    let config_data = web::Data::new(config);
    let state_data = web::Data::new(state);
    let app = move || {
        let (app, api) =
            ActixApp::new().into_utoipa_app().openapi(ApiDoc::openapi()).configure(api_routes).split_for_parts();
        app.app_data(web::PayloadConfig::new(config_data.body_limit))
            .app_data(config_data.clone())
            .app_data(state_data.clone())
            .configure(extra.clone())
            .service(SwaggerUi::new("/api/docs/{_:.*}").url("/api/openapi.json", shared_responses::complete(api)))
            .route("/api/docs", web::get().to(routes::ops::docs_redirect))
            .route("/metrics", web::get().to(routes::ops::metrics))
            .default_service(web::to(routes::fallback::not_found))
            .wrap_fn(routes::fallback::head_as_get)
            .wrap(ErrorHandlers::new().default_handler(routes::fallback::ensure_json_error))
            .wrap(cors(&config_data))
            .wrap(observe::Observe)
            .wrap(request_id::RequestIdMiddleware)
    };
    // What `actix_web::HttpServer` assembles, plus the upgrade service it
    // does not expose.
    let mut server = actix_server::Server::build().disable_signals().shutdown_timeout(shutdown_timeout.as_secs());
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server.listen("specgen-http", listener, move || {
        let upgrade = upgrade.clone();
        let upgrades = actix_service::fn_service(move |request: UpgradeRequest| {
            let handled = upgrade(request);
            async move {
                handled.await;
                Ok::<_, std::convert::Infallible>(())
            }
        });
        let app = actix_service::IntoServiceFactory::into_factory(app())
            .map_err(|e: actix_web::Error| actix_web::ResponseError::error_response(e.as_response_error()));
        actix_http::HttpService::build()
            .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            // Tokens are small writes that must leave at once, not wait on Nagle.
            .tcp_nodelay(true)
            .local_addr(address)
            .upgrade(upgrades)
            .finish(actix_service::map_config(app, |_| actix_web::dev::AppConfig::default()))
            .tcp()
    })?;
    Ok(server.run())
}
