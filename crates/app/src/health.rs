//! Readiness and start-up recovery.

use specgen_domain::{MessageError, ProviderName};
use specgen_ports::RepoError;

use crate::App;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckStatus {
    Up,
    Down(String),
}

impl CheckStatus {
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Up)
    }
}

/// What `/health/ready` reports: each dependency, and each AI provider with
/// whether it is available now (its circuit breaker closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub store: CheckStatus,
    pub cache: CheckStatus,
    pub bus: CheckStatus,
    pub providers: Vec<(ProviderName, bool)>,
}

impl Readiness {
    /// The instance can serve: only the store is required. Without the
    /// cache requests go to the store, and without the shared bus fan-out
    /// stays within this instance; every instance shares those, so taking
    /// this one out of rotation would not help.
    pub fn is_ready(&self) -> bool {
        self.store.is_up()
    }

    /// Ready, but serving with less: a shared dependency is down, or no AI
    /// provider is available.
    pub fn is_degraded(&self) -> bool {
        !self.cache.is_up() || !self.bus.is_up() || !self.providers.iter().any(|(_, available)| *available)
    }
}

impl App {
    /// The store's connection pool now (for the metrics).
    pub fn store_pool(&self) -> Option<specgen_ports::PoolStatus> {
        self.store().health.pool_status()
    }

    /// Asks the store, the cache and the bus at once; each answers within
    /// its adapter's own deadline.
    pub async fn readiness(&self) -> Readiness {
        let ports = &self.inner.ports;
        let (store, cache, bus) = tokio::join!(self.store().health.ping(), ports.cache.ping(), ports.bus.ping());
        let store = match store {
            Ok(()) => CheckStatus::Up,
            Err(e) => {
                tracing::warn!(error = %e, "store is not ready");
                CheckStatus::Down(match e {
                    RepoError::Unavailable(_) => "unavailable".to_owned(),
                    _ => "error".to_owned(),
                })
            }
        };
        let down = |what: &str, error: &dyn std::fmt::Display| {
            tracing::warn!(error = %error, "{what} is down");
            CheckStatus::Down("unavailable".to_owned())
        };
        let cache = cache.map_or_else(|e| down("cache", &e), |()| CheckStatus::Up);
        let bus = bus.map_or_else(|e| down("event bus", &e), |()| CheckStatus::Up);
        let providers =
            self.providers().into_iter().map(|(provider, available)| (provider.name(), available)).collect();
        Readiness { store, cache, bus, providers }
    }

    /// Replies left `streaming` by a crash can never finish: mark them failed,
    /// keeping their partial text, so no client waits on them forever. With
    /// `Recovery::Everything` (the store is this process's alone, as the
    /// embedded one is) that is every reply still streaming; with
    /// `Recovery::Stale` (instances share the store) only those no instance
    /// has written for longer than a live reply ever goes silent.
    pub async fn recover_interrupted_replies(&self, recovery: Recovery) -> Result<u64, RepoError> {
        let now = self.clock().now();
        let stale_before = match recovery {
            Recovery::Everything => now + time::Duration::microseconds(1),
            Recovery::Stale => now - self.stale_reply_after(),
        };
        let failed = self.store().messages.fail_streaming(&interrupted(), stale_before, now).await?;
        if !failed.is_empty() {
            tracing::warn!(failed = failed.len(), "marked interrupted replies as failed");
        }
        // Their members, on any instance, are still waiting for a final event.
        for reply in &failed {
            self.inner.ports.feed.publish(&crate::ChatEvent::Failed(reply.clone())).await;
        }
        Ok(failed.len() as u64)
    }

    /// A live reply writes its row at least once per idle timeout (the
    /// provider must send something that often, or the reply fails); half
    /// a minute more covers a slow store.
    fn stale_reply_after(&self) -> time::Duration {
        let idle = time::Duration::try_from(self.inner.ai.idle_timeout).unwrap_or(time::Duration::MINUTE);
        idle + time::Duration::seconds(30)
    }

    /// Every `period`, fails the replies whose instance died (see
    /// `recover_interrupted_replies`); stops at shutdown.
    pub fn sweep_stale_replies(&self, period: std::time::Duration) {
        let app = self.clone();
        let stopping = self.inner.background_stop.clone();
        self.inner.tasks.spawn_on(
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(period) => {}
                        _ = stopping.cancelled() => return,
                    }
                    if let Err(e) = app.recover_interrupted_replies(Recovery::Stale).await {
                        tracing::warn!(error = %e, "could not look for interrupted replies");
                    }
                }
            },
            &self.inner.runtime,
        );
    }
}

/// Which replies still `streaming` a start-up may call interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Everything,
    Stale,
}

/// Why a reply cut short by the server stopping ended: at shutdown, or found
/// still `streaming` after a crash.
pub(crate) fn interrupted() -> MessageError {
    MessageError {
        code: "INTERRUPTED".to_owned(),
        message: "The server stopped before this reply finished.".to_owned(),
    }
}
