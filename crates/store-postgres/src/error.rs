//! The one place where pool and driver errors become [`RepoError`]s.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::PoolError as ManagerError;
use diesel_async::pooled_connection::deadpool::PoolError;
use specgen_ports::RepoError;

/// What an operation can fail with before it is translated. Lets `?` work on
/// pool, query and domain errors alike inside one operation.
#[derive(Debug)]
pub(crate) enum DbError {
    Pool(PoolError),
    Query(DieselError),
    Repo(RepoError),
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        Self::Pool(e)
    }
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        Self::Query(e)
    }
}

impl From<RepoError> for DbError {
    fn from(e: RepoError) -> Self {
        Self::Repo(e)
    }
}

/// What a foreign-key violation means for the operation at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForeignKey {
    /// The port promises `NotFound` when a referenced row is missing.
    NotFound,
    /// The port says nothing: a missing referenced row is a caller bug.
    Unknown,
}

impl DbError {
    /// Translation for operations whose port does not mention missing
    /// referenced rows.
    pub(crate) fn into_repo(self) -> RepoError {
        self.translate(ForeignKey::Unknown)
    }

    pub(crate) fn translate(self, fk: ForeignKey) -> RepoError {
        let mapped = match self {
            Self::Repo(e) => e,
            Self::Pool(e) => map_pool(e),
            Self::Query(e) => map_diesel(e, fk),
        };
        match &mapped {
            RepoError::Unavailable(why) => tracing::debug!(%why, "postgres unavailable"),
            RepoError::Unknown(why) => tracing::debug!(%why, "postgres error"),
            _ => {}
        }
        mapped
    }
}

fn map_pool(e: PoolError) -> RepoError {
    match e {
        // Waiting for a free slot, connecting, or checking a pooled
        // connection took too long: the database is busy or away.
        PoolError::Timeout(kind) => RepoError::Unavailable(format!("connection pool timeout ({kind:?})")),
        PoolError::Closed => RepoError::Unavailable("connection pool closed".into()),
        PoolError::Backend(ManagerError::ConnectionError(e)) => {
            RepoError::Unavailable(format!("cannot connect to postgres: {e}"))
        }
        PoolError::Backend(ManagerError::QueryError(e)) => {
            RepoError::Unavailable(format!("postgres connection check failed: {e}"))
        }
        PoolError::PostCreateHook(e) => RepoError::Unavailable(format!("postgres connection setup failed: {e}")),
        // A pool built without a runtime cannot time out: a wiring bug.
        PoolError::NoRuntimeSpecified => RepoError::unknown("connection pool has no runtime"),
    }
}

fn map_diesel(e: DieselError, fk: ForeignKey) -> RepoError {
    match e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation => {
                RepoError::Conflict(info.constraint_name().unwrap_or("unique constraint").to_owned())
            }
            DatabaseErrorKind::ForeignKeyViolation if fk == ForeignKey::NotFound => RepoError::NotFound,
            // No SQLSTATE at all: the socket or the driver task is gone.
            DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                RepoError::Unavailable(info.message().to_owned())
            }
            // Writes refused by a server that became a standby (failover):
            // another try, on a fresh connection, may reach the new primary.
            DatabaseErrorKind::ReadOnlyTransaction => RepoError::Unavailable(info.message().to_owned()),
            _ if is_transient_message(info.message()) => RepoError::Unavailable(info.message().to_owned()),
            _ => RepoError::unknown(format!("postgres: {}", info.message())),
        },
        DieselError::NotFound => RepoError::NotFound,
        // The connection died while a transaction was open, so its state
        // is unknown; the pool drops it.
        DieselError::BrokenTransactionManager => {
            RepoError::Unavailable("postgres connection lost inside a transaction".into())
        }
        DieselError::RollbackErrorOnCommit { commit_error, .. } => map_diesel(*commit_error, fk),
        other => RepoError::unknown(other),
    }
}

/// diesel-async keeps the server's message but not its SQLSTATE, so the
/// transient classes are recognised by the server's (English, `lc_messages`
/// = C or en) wording:
/// - 57014 query_canceled: "canceling statement due to statement timeout"
///   (or "... user request");
/// - 57P01 admin_shutdown / 57P02 crash_shutdown: "terminating connection
///   due to administrator command" / "... because of crash of another ...";
/// - 57P03 cannot_connect_now: "the database system is starting up" (or
///   shutting down, in recovery mode, not yet accepting connections).
fn is_transient_message(message: &str) -> bool {
    message.starts_with("canceling statement due to")
        || message.starts_with("terminating connection")
        || message.starts_with("the database system is")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_messages() {
        assert!(is_transient_message("canceling statement due to statement timeout"));
        assert!(is_transient_message("terminating connection due to administrator command"));
        assert!(is_transient_message("the database system is starting up"));
        assert!(!is_transient_message("relation \"x\" does not exist"));
    }

    #[test]
    fn unique_violation_is_conflict_and_fk_depends_on_port() {
        let unique = DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, Box::new("dup".to_owned()));
        assert!(matches!(DbError::from(unique).into_repo(), RepoError::Conflict(_)));
        let fk = || DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, Box::new("fk".to_owned()));
        assert!(matches!(DbError::from(fk()).translate(ForeignKey::NotFound), RepoError::NotFound));
        assert!(matches!(DbError::from(fk()).into_repo(), RepoError::Unknown(_)));
        let closed = DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new("closed".to_owned()));
        assert!(matches!(DbError::from(closed).into_repo(), RepoError::Unavailable(_)));
        assert!(matches!(DbError::from(PoolError::Closed).into_repo(), RepoError::Unavailable(_)));
    }
}
