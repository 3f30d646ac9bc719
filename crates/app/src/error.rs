//! The application layer's error: what a use case can fail with, in terms a
//! transport can map to its own codes (HTTP does so in one place).

use specgen_ports::{RateDecision, RepoError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule on one input field (beyond the newtypes' own checks).
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    /// A uniqueness rule (email taken, already a participant, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// No such thing, or one the caller may not know exists.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// Known to the caller but not theirs to change.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Wrong email or password, or a wrong current password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No valid token.
    #[error("unauthenticated")]
    Unauthenticated,
    /// A well-signed access token past its expiry.
    #[error("token expired")]
    TokenExpired,
    /// A spent refresh token presented again: its family is now revoked.
    #[error("refresh token reused")]
    TokenReused,
    #[error("rate limited")]
    RateLimited(RateDecision),
    /// A dependency cannot answer now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Too much of this work already waits; retry in a moment.
    #[error("busy: {0}")]
    Busy(&'static str),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<RepoError> for AppError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::Conflict(what) => Self::Conflict(what),
            RepoError::NotFound => Self::NotFound("resource"),
            RepoError::Unavailable(why) => Self::Unavailable(why),
            RepoError::Unknown(cause) => Self::Unknown(cause),
        }
    }
}

impl From<crate::accounts::passwords::PasswordError> for AppError {
    fn from(e: crate::accounts::passwords::PasswordError) -> Self {
        match e {
            crate::accounts::passwords::PasswordError::Busy => Self::Busy("password checks"),
            crate::accounts::passwords::PasswordError::Failed(cause) => Self::Unknown(cause),
        }
    }
}
