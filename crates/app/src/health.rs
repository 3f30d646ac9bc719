//! Readiness and start-up recovery.

use specgen_domain::MessageError;
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

/// What `/health/ready` reports: each dependency and whether all are up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub store: CheckStatus,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.store.is_up()
    }
}

impl App {
    /// The store's connection pool now (for the metrics).
    pub fn store_pool(&self) -> Option<specgen_ports::PoolStatus> {
        self.store().health.pool_status()
    }

    pub async fn readiness(&self) -> Readiness {
        let store = match self.store().health.ping().await {
            Ok(()) => CheckStatus::Up,
            Err(e) => {
                tracing::warn!(error = %e, "store is not ready");
                CheckStatus::Down(match e {
                    RepoError::Unavailable(_) => "unavailable".to_owned(),
                    _ => "error".to_owned(),
                })
            }
        };
        Readiness { store }
    }

    /// Replies left `streaming` by a crash can never finish: mark them failed,
    /// keeping their partial text, so no client waits on them forever.
    pub async fn recover_interrupted_replies(&self) -> Result<u64, RepoError> {
        let failed = self.store().messages.fail_streaming(&interrupted(), self.clock().now()).await?;
        if failed > 0 {
            tracing::warn!(failed, "marked interrupted replies as failed");
        }
        Ok(failed)
    }
}

/// Why a reply cut short by the server stopping ended: at shutdown, or found
/// still `streaming` after a crash.
pub(crate) fn interrupted() -> MessageError {
    MessageError {
        code: "INTERRUPTED".to_owned(),
        message: "The server stopped before this reply finished.".to_owned(),
    }
}
