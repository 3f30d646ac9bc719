//! Chooses the concrete adapters from the configuration and starts things.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use specgen_app::{AiSettings, App, AppConfig, ContextBudget, Ports};
use specgen_domain::ProviderName;
use specgen_gateway::{Gateway, GatewayFeed};
use specgen_http::{AppState, HttpConfig};
use specgen_ports::AiProvider;
use specgen_ports::{Cache, Clock, EventBus, PresenceRegistry, RateLimiter, ReplyLog, Store, SystemClock};

/// How far a room's reader may fall behind its session on the in-process
/// bus before its members are cut and resume.
const BUS_CAPACITY: usize = 4096;
use specgen_store_postgres::{PgConfig, PgStore};
use specgen_store_sqlite::{SqliteConfig, SqliteStore};

use crate::config::{Config, Database};
use crate::secrets;

/// An opened store that can also migrate itself.
enum OpenedStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl OpenedStore {
    async fn open(config: &Config) -> anyhow::Result<Self> {
        Ok(match config.database()? {
            Database::Sqlite(path) => {
                let mut cfg = SqliteConfig::new(path);
                cfg.max_connections = config.specgen_db_max_connections;
                Self::Sqlite(SqliteStore::open(cfg)?)
            }
            Database::Postgres(url) => {
                let mut cfg = PgConfig::new(url);
                cfg.max_connections = config.specgen_db_max_connections;
                Self::Postgres(PgStore::connect(cfg)?)
            }
        })
    }

    async fn migrate(&self) -> anyhow::Result<usize> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
    }

    fn store(&self) -> Store {
        match self {
            Self::Sqlite(s) => s.store(),
            Self::Postgres(s) => s.store(),
        }
    }

    /// The OpenTelemetry `db.system` name.
    fn db_system(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgresql",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = OpenedStore::open(&config).await?;
    let applied = store.migrate().await?;
    tracing::info!(applied, store = store.kind(), "migrations applied");
    println!("applied {applied} migration(s) to the {} store", store.kind());
    Ok(())
}

/// A server that is listening; await `server` to run it until shutdown.
pub struct Running {
    pub app: App,
    pub gateway: Gateway,
    pub address: std::net::SocketAddr,
    pub server: actix_web::dev::Server,
    pub store_kind: &'static str,
    pub migrations_applied: usize,
}

/// Opens the store, migrates, recovers, binds and builds the server. Binding
/// `127.0.0.1:0` picks a free port (tests do).
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// As `start`, on a given clock (tests drive token expiry and rate-limit
/// windows with a manual one).
pub async fn start_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Running> {
    // First, so that the series created at zero while wiring are recorded.
    let metrics = specgen_http::metrics_setup::prometheus()?;
    let opened = OpenedStore::open(config).await?;
    let applied = opened.migrate().await?;
    let jwt_secret = secrets::jwt_secret(config.jwt_secret.as_ref(), &config.specgen_data_dir)?;

    let plan = config.ai_plan()?;
    let shared = shared(config, Arc::clone(&clock))?;
    let gateway_config = config.gateway()?;
    let feed =
        Arc::new(GatewayFeed::new(Arc::clone(&shared.bus), Arc::clone(&shared.reply_log), gateway_config.reply_grace));
    let ports = Ports {
        // Every store and cache call gets a span, whichever adapter it is.
        store: specgen_app::traced::store(opened.store(), opened.db_system()),
        clock: Arc::clone(&clock),
        rate_limiter: shared.rate_limiter,
        cache: specgen_app::traced::cache(shared.cache, shared.cache_system),
        providers: providers(config, &plan)?,
        bus: Arc::clone(&shared.bus),
        feed,
    };
    let app_config = AppConfig {
        jwt_secret: jwt_secret.expose().as_bytes().to_vec(),
        access_token_ttl: Duration::from_secs(config.specgen_access_token_ttl),
        refresh_token_ttl: Duration::from_secs(config.specgen_refresh_token_ttl),
        limits: config.limits()?,
        ai: AiSettings {
            order: plan.order.clone(),
            first_token_timeout: Duration::from_secs(config.ai_first_token_timeout),
            idle_timeout: Duration::from_secs(config.specgen_ai_idle_timeout),
            total_timeout: Duration::from_secs(config.specgen_ai_total_timeout),
            max_output_tokens: config.specgen_ai_max_output_tokens,
            context: ContextBudget {
                max_messages: config.specgen_context_messages,
                max_tokens: config.specgen_context_tokens,
            },
            // Without Redis the event bus is this process's: no other
            // instance can be running a reply it would be asked to stop.
            alone: config.redis_url.is_none(),
            ..AiSettings::default()
        },
    };
    let app = App::new(ports, app_config)?;
    // The embedded store is this process's alone: whatever is still
    // streaming was cut by its last stop. A shared one may hold other
    // instances' live replies: only stale ones are failed, now and then.
    let recovery = match opened {
        OpenedStore::Sqlite(_) => specgen_app::Recovery::Everything,
        OpenedStore::Postgres(_) => specgen_app::Recovery::Stale,
    };
    app.recover_interrupted_replies(recovery).await?;
    app.sweep_stale_replies(Duration::from_secs(30));

    let gateway = Gateway::new(app.clone(), shared.bus, shared.reply_log, shared.presence, gateway_config)?;
    let state_app = app.clone();
    let state = AppState { app, metrics };
    let http = HttpConfig {
        body_limit: config.specgen_body_limit,
        cors_origins: config.cors_origins(),
        workers: None,
        shutdown_timeout: Duration::from_secs(config.specgen_shutdown_timeout),
        trusted_proxies: config.trusted_proxies()?,
    };
    let listener = TcpListener::bind(config.specgen_listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.specgen_listen))?;
    let address = listener.local_addr()?;
    let (routes, upgrades) = (gateway.clone(), gateway.clone());
    let server = specgen_http::server(
        state,
        http,
        listener,
        move |cfg| routes.configure(cfg),
        move |request| upgrades.clone().upgrade(request),
    )?;
    Ok(Running { app: state_app, gateway, address, server, store_kind: opened.kind(), migrations_applied: applied })
}

pub async fn serve(config: Config, open_browser: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let Running { app, gateway, address, server, store_kind, migrations_applied } = start(&config).await?;
    let url = format!("http://{address}/");
    tracing::info!(
        %url,
        store = store_kind,
        migrations_applied,
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "Spec Gen is ready"
    );
    if open_browser {
        open_in_browser(&url);
    }
    let handle = server.handle();
    let grace = Duration::from_secs(config.specgen_shutdown_timeout);
    let stopping = tokio::spawn(async move {
        stop_signal().await;
        stop(&app, &gateway, &handle, grace).await;
    });
    server.await?;
    // The server ends once stopped: its replies are stored by now too.
    stopping.await?;
    tracing::info!("Spec Gen stopped");
    Ok(())
}

/// Stops a running instance: every WebSocket gets its close frame (up to
/// 3 s), then requests and replies drain together. Replies get `grace`
/// less a second, then are stopped and stored failed (`INTERRUPTED`) with
/// their partial text, so that a request still streaming one (SSE) sends
/// its final event before the server closes it at `grace`.
pub async fn stop(app: &App, gateway: &Gateway, server: &actix_web::dev::ServerHandle, grace: Duration) {
    tracing::info!("stopping: closing WebSocket connections, draining requests");
    gateway.shutdown(Duration::from_secs(3)).await;
    let replies = app.shutdown(grace.saturating_sub(Duration::from_secs(1)));
    tokio::join!(replies, server.stop(true));
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server cleanly");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The adapters that are shared between instances when `REDIS_URL` is set,
/// in-process otherwise.
struct Shared {
    rate_limiter: Arc<dyn RateLimiter>,
    cache: Arc<dyn Cache>,
    /// What the cache is, for its spans.
    cache_system: &'static str,
    bus: Arc<dyn EventBus>,
    reply_log: Arc<dyn ReplyLog>,
    presence: Arc<dyn PresenceRegistry>,
}

/// Rate limits in Redis fall back to in-process counting while Redis is
/// down; the cache treats an outage as misses.
fn shared(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Shared> {
    let local: Arc<dyn RateLimiter> = Arc::new(specgen_inprocess::InProcessRateLimiter::new(Arc::clone(&clock)));
    let Some(url) = &config.redis_url else {
        return Ok(Shared {
            rate_limiter: local,
            cache: Arc::new(specgen_inprocess::InProcessCache::new(10_000)),
            cache_system: "in-process",
            bus: Arc::new(specgen_inprocess::InProcessBus::new(BUS_CAPACITY)),
            reply_log: Arc::new(specgen_inprocess::InProcessReplyLog::new()),
            presence: Arc::new(specgen_inprocess::InProcessPresence::new(clock)),
        });
    };
    let pool = specgen_redis::pool(url.expose(), 16, Duration::from_millis(500))?;
    let limiter: Arc<dyn RateLimiter> = Arc::new(specgen_redis::RedisRateLimiter::new(
        pool.clone(),
        Arc::clone(&clock),
        config.specgen_redis_namespace.clone(),
    ));
    let namespace = config.specgen_redis_namespace.clone();
    Ok(Shared {
        rate_limiter: Arc::new(specgen_app::rate_limit::FailoverRateLimiter::new(limiter, local)),
        cache: Arc::new(specgen_redis::RedisCache::new(pool.clone(), namespace.clone())),
        cache_system: "redis",
        // While Redis is unreachable, fan-out goes on within this instance.
        bus: Arc::new(specgen_app::bus::FailoverBus::new(
            Arc::new(specgen_redis::RedisBus::new(url.expose(), namespace.clone())?),
            Arc::new(specgen_inprocess::InProcessBus::new(BUS_CAPACITY)),
        )),
        reply_log: Arc::new(specgen_redis::RedisReplyLog::new(pool.clone(), namespace.clone())),
        // While Redis is unreachable, each instance counts its own people.
        presence: Arc::new(specgen_redis::RedisPresence::new(pool, clock, namespace)),
    })
}

/// The concrete provider adapters for the enabled names.
fn providers(config: &Config, plan: &crate::config::AiPlan) -> anyhow::Result<Vec<Arc<dyn AiProvider>>> {
    plan.order
        .iter()
        .map(|name| -> anyhow::Result<Arc<dyn AiProvider>> {
            Ok(match name {
                ProviderName::Claude => {
                    let key = config.anthropic_api_key.as_ref().map(|k| k.expose().to_owned()).unwrap_or_default();
                    let mut cfg = specgen_ai_claude::ClaudeConfig::new(key);
                    cfg.base_url = config.anthropic_base_url.expose().to_owned();
                    cfg.model = config.anthropic_model.clone();
                    Arc::new(specgen_ai_claude::ClaudeProvider::new(cfg)?)
                }
                ProviderName::Openai => {
                    let mut cfg = specgen_ai_openai::OpenAiConfig::new(
                        config.openai_api_key.as_ref().map(|k| k.expose().to_owned()),
                    );
                    if let Some(base) = &config.openai_base_url {
                        cfg.base_url = base.expose().to_owned();
                    }
                    cfg.model = config.openai_model.clone();
                    Arc::new(specgen_ai_openai::OpenAiProvider::new(cfg)?)
                }
                ProviderName::Demo => Arc::new(specgen_ai_demo::DemoProvider::new(specgen_ai_demo::DemoConfig {
                    chunk_delay: Duration::from_millis(config.specgen_demo_chunk_delay_ms),
                })),
            })
        })
        .collect()
}

/// Best effort: a machine without a desktop simply has no browser to open.
fn open_in_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    match std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(_) => tracing::info!(%url, "open this address in your browser"),
    }
}
