//! The one error type every repository speaks. Adapters translate driver
//! errors into it; HTTP maps it to status codes in exactly one place.

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A uniqueness rule was hit (the text names which, for logs).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The row to change does not exist (or is soft-deleted).
    #[error("not found")]
    NotFound,
    /// The store cannot answer now: pool exhausted, connection lost, timeout.
    /// Maps to 503; retrying later may succeed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data. Logged, shown as 500.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl RepoError {
    pub fn unknown(message: impl std::fmt::Display) -> Self {
        Self::Unknown(anyhow::anyhow!("{message}"))
    }
}
