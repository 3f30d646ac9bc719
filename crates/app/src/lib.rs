//! The application layer: Spec Gen's use cases, written against the ports
//! only. HTTP and the gateway call these; they never reach a store directly.

pub mod accounts;
pub mod bus;
pub mod chat;
pub mod error;
pub mod health;
pub mod rate_limit;
pub mod telemetry;
pub mod traced;

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{AiProvider, Cache, Clock, EventBus, RateLimiter, RateRule, Store};

pub use accounts::{AuthContext, AuthSession, IssuedTokens, ProfilePatch};
pub use chat::{
    AiSettings, ChatEvent, ContextBudget, EncodedOnce, NewSession, NoFeed, SendMessage, SendOutcome, SessionFeed,
    SessionPatch, SessionView,
};
pub use error::AppError;
pub use health::{CheckStatus, Readiness, Recovery};

/// The adapters the application runs on, chosen by the composition root.
#[derive(Clone)]
pub struct Ports {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Session metadata and lists; an optimisation only.
    pub cache: Arc<dyn Cache>,
    /// The enabled AI providers (order comes from `AppConfig::ai`).
    pub providers: Vec<Arc<dyn AiProvider>>,
    /// Between instances: carries requests to stop a reply to the instance
    /// that runs it.
    pub bus: Arc<dyn EventBus>,
    /// Where every session event goes live (the gateway).
    pub feed: Arc<dyn SessionFeed>,
}

/// Limits enforced by the use cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins per (account, client address).
    pub login_pair: RateRule,
    /// Failed logins per account from all addresses.
    pub login_account: RateRule,
    /// Registrations per client address.
    pub register: RateRule,
    /// Messages per user, HTTP and WebSocket together.
    pub messages: RateRule,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_pair: RateRule::new(5, Duration::from_secs(15 * 60)),
            login_account: RateRule::new(100, Duration::from_secs(60 * 60)),
            register: RateRule::new(20, Duration::from_secs(60 * 60)),
            messages: RateRule::new(30, Duration::from_secs(60)),
        }
    }
}

/// Settings of the use cases, from the typed configuration.
#[derive(Clone)]
pub struct AppConfig {
    /// The HS256 key for access tokens (at least 32 bytes).
    pub jwt_secret: Vec<u8>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub limits: Limits,
    pub ai: AiSettings,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("jwt_secret", &"[redacted]")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("limits", &self.limits)
            .field("ai", &self.ai)
            .finish()
    }
}

/// Everything a use case needs, wired once by the composition root.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    ports: Ports,
    limits: Limits,
    tokens: accounts::tokens::TokenService,
    passwords: accounts::passwords::Passwords,
    /// Names accounts in the login limits' keys.
    pseudonyms: accounts::pseudonyms::AccountPseudonyms,
    ai: AiSettings,
    providers: chat::Providers,
    breakers: chat::routing::Breakers,
    in_flight: chat::messages::InFlight,
    /// Every reply task, so shutdown can wait for them.
    tasks: tokio_util::task::TaskTracker,
    /// Stops background listeners at shutdown.
    background_stop: tokio_util::sync::CancellationToken,
    /// Set when shutdown cuts the replies still running: they end as
    /// interrupted (failed), not as cancelled by a user.
    interrupting: std::sync::atomic::AtomicBool,
    /// The multi-threaded runtime replies run on, whichever worker started them.
    runtime: tokio::runtime::Handle,
}

impl App {
    pub fn new(ports: Ports, config: AppConfig) -> anyhow::Result<Self> {
        if config.jwt_secret.len() < 32 {
            anyhow::bail!("the JWT secret must be at least 32 bytes");
        }
        let tokens =
            accounts::tokens::TokenService::new(&config.jwt_secret, config.access_token_ttl, config.refresh_token_ttl);
        let passwords = accounts::passwords::Passwords::new()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the application must be built inside a tokio runtime"))?;
        let providers = chat::Providers::new(ports.providers.clone(), &config.ai.order);
        chat::reply::register_metrics(&providers);
        let app = Self {
            inner: Arc::new(Inner {
                ports,
                limits: config.limits,
                tokens,
                passwords,
                pseudonyms: accounts::pseudonyms::AccountPseudonyms::new(&config.jwt_secret),
                ai: config.ai,
                providers,
                breakers: chat::routing::Breakers::default(),
                in_flight: chat::messages::InFlight::default(),
                tasks: tokio_util::task::TaskTracker::new(),
                background_stop: tokio_util::sync::CancellationToken::new(),
                interrupting: std::sync::atomic::AtomicBool::new(false),
                runtime,
            }),
        };
        app.listen_for_remote_cancels();
        Ok(app)
    }

    /// The enabled providers with whether each is available now (its
    /// circuit breaker closed), default first.
    pub fn providers(&self) -> Vec<(Arc<dyn AiProvider>, bool)> {
        let all = self.inner.providers.all();
        all.iter().map(|p| (Arc::clone(p), self.inner.breakers.available(p.name()))).collect()
    }

    /// Waits up to `grace` for replies in flight to end, then stops the rest
    /// (each is stored as failed, `INTERRUPTED`, with its partial text).
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.inner.background_stop.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_err() {
            tracing::warn!(in_flight = self.replies_in_flight(), "stopping replies still running at shutdown");
            self.inner.interrupting.store(true, std::sync::atomic::Ordering::SeqCst);
            self.inner.in_flight.cancel_all();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.inner.tasks.wait()).await;
        }
    }

    pub fn clock(&self) -> &dyn Clock {
        self.inner.ports.clock.as_ref()
    }

    fn store(&self) -> &Store {
        &self.inner.ports.store
    }

    fn now(&self) -> time::OffsetDateTime {
        self.inner.ports.clock.now()
    }
}
