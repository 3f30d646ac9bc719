//! The application layer: Spec Gen's use cases, written against the ports
//! only. HTTP and the gateway call these; they never reach a store directly.

pub mod accounts;
pub mod chat;
pub mod error;
pub mod health;
pub mod rate_limit;

use std::sync::Arc;
use std::time::Duration;

use specgen_ports::{Clock, RateLimiter, RateRule, Store};

pub use accounts::{AuthContext, AuthSession, IssuedTokens, ProfilePatch};
pub use chat::{NewSession, SessionPatch, SessionView};
pub use error::AppError;
pub use health::{CheckStatus, Readiness};

/// The adapters the application runs on, chosen by the composition root.
#[derive(Clone)]
pub struct Ports {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub rate_limiter: Arc<dyn RateLimiter>,
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
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("jwt_secret", &"[redacted]")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("limits", &self.limits)
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
}

impl App {
    pub fn new(ports: Ports, config: AppConfig) -> anyhow::Result<Self> {
        if config.jwt_secret.len() < 32 {
            anyhow::bail!("the JWT secret must be at least 32 bytes");
        }
        let tokens = accounts::tokens::TokenService::new(
            &config.jwt_secret,
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let passwords = accounts::passwords::Passwords::new()?;
        Ok(Self {
            inner: Arc::new(Inner {
                ports,
                limits: config.limits,
                tokens,
                passwords,
            }),
        })
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
