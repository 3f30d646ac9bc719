//! Connection settings for the Postgres store.

use std::fmt;
use std::time::Duration;

#[derive(Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Upper bound of open connections.
    pub max_connections: usize,
    /// How long a request waits for a free connection before `Unavailable`.
    pub wait_timeout: Duration,
    /// How long opening (and setting up) a new connection may take.
    pub create_timeout: Duration,
    /// How long the liveness check of a pooled connection may take.
    pub recycle_timeout: Duration,
    /// Server-side limit for every statement (`SET statement_timeout`).
    pub statement_timeout: Duration,
}

impl PgConfig {
    pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
    pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The defaults, pointed at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            wait_timeout: Self::DEFAULT_WAIT_TIMEOUT,
            create_timeout: Self::DEFAULT_CREATE_TIMEOUT,
            recycle_timeout: Self::DEFAULT_RECYCLE_TIMEOUT,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

impl Default for PgConfig {
    fn default() -> Self {
        Self::new("postgres://postgres@127.0.0.1:5432/specgen")
    }
}

/// The URL may carry a password: never print it.
impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("wait_timeout", &self.wait_timeout)
            .field("create_timeout", &self.create_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Key/value form: `host=h user=u password=secret`.
        return url
            .split(' ')
            .map(|part| if part.starts_with("password=") { "password=***" } else { part })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted() {
        assert_eq!(redact_url("postgres://u:p@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("host=h password=p user=u"), "host=h password=*** user=u");
        let shown = format!("{:?}", PgConfig::new("postgres://u:hunter2@h/db"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
