//! The one place where driver and pool failures become [`RepoError`]s.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use specgen_ports::RepoError;

use crate::pool::DeadpoolError;

/// What repository code can fail with before it reaches the port boundary.
#[derive(Debug)]
pub(crate) enum StoreError {
    Db(DieselError),
    /// The port defines this outcome (0 rows changed, parent missing).
    NotFound,
    /// The port defines this outcome (compare-and-set lost, ...).
    Conflict(String),
    /// A stored value that does not decode: a bug or a hand-edited database.
    Corrupt(String),
    /// No pooled connection became free within `wait_timeout`.
    PoolTimeout,
    Pool(DeadpoolError),
    /// The task running the query died (panicked or its runtime shut down).
    Task(String),
    /// The writer could not open, lock or commit; nothing of this write
    /// was stored.
    Writer(String),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> Self {
        let mapped = match e {
            StoreError::Db(e) => from_diesel(e),
            StoreError::NotFound => RepoError::NotFound,
            StoreError::Conflict(what) => RepoError::Conflict(what),
            StoreError::Corrupt(what) => RepoError::unknown(format!("corrupt row: {what}")),
            StoreError::PoolTimeout => RepoError::Unavailable("timed out waiting for a SQLite connection".into()),
            // Every pool failure (closed, timed out, could not open or set up
            // a connection) means "the store cannot answer now".
            StoreError::Pool(e) => RepoError::Unavailable(format!("SQLite pool: {e}")),
            StoreError::Task(why) => RepoError::unknown(format!("SQLite task failed: {why}")),
            StoreError::Writer(why) => RepoError::Unavailable(format!("SQLite writer: {why}")),
        };
        if let RepoError::Unavailable(why) = &mapped {
            tracing::warn!(%why, "SQLite store unavailable");
        }
        mapped
    }
}

fn from_diesel(e: DieselError) -> RepoError {
    match e {
        DieselError::DatabaseError(kind, info) => {
            let message = info.message().to_owned();
            match kind {
                DatabaseErrorKind::UniqueViolation => RepoError::Conflict(message),
                // Only reached when a referenced row is missing: every port
                // that can hit one documents `NotFound` for it.
                DatabaseErrorKind::ForeignKeyViolation => RepoError::NotFound,
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    RepoError::Unavailable(message)
                }
                _ if is_transient(&message) => RepoError::Unavailable(message),
                _ => RepoError::unknown(format!("SQLite: {message}")),
            }
        }
        // COMMIT itself can fail with SQLITE_BUSY or an I/O error.
        DieselError::RollbackErrorOnCommit { commit_error, .. } => from_diesel(*commit_error),
        DieselError::NotFound => RepoError::NotFound,
        other => RepoError::Unknown(anyhow::Error::new(other)),
    }
}

/// diesel reports SQLite's result codes other than constraint violations
/// only through `sqlite3_errmsg`, so the transient ones are recognised by
/// their fixed English texts (`sqlite3_errstr`): BUSY and LOCKED (after the
/// busy timeout ran out), IOERR, CANTOPEN, FULL, READONLY, PROTOCOL, NOMEM.
fn is_transient(message: &str) -> bool {
    const TRANSIENT: [&str; 8] = [
        "database is locked",
        "database table is locked",
        "database schema is locked",
        "disk I/O error",
        "unable to open database file",
        "database or disk is full",
        "attempt to write a readonly database",
        "locking protocol",
    ];
    message == "out of memory" || TRANSIENT.iter().any(|t| message.starts_with(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(kind: DatabaseErrorKind, message: &str) -> RepoError {
        StoreError::Db(DieselError::DatabaseError(kind, Box::new(message.to_owned()))).into()
    }

    #[test]
    fn maps_each_class_once() {
        assert!(matches!(
            db(DatabaseErrorKind::UniqueViolation, "UNIQUE constraint failed: users.email"),
            RepoError::Conflict(m) if m.contains("users.email")
        ));
        assert!(matches!(
            db(DatabaseErrorKind::ForeignKeyViolation, "FOREIGN KEY constraint failed"),
            RepoError::NotFound
        ));
        assert!(matches!(db(DatabaseErrorKind::Unknown, "database is locked"), RepoError::Unavailable(_)));
        assert!(matches!(db(DatabaseErrorKind::Unknown, "disk I/O error"), RepoError::Unavailable(_)));
        assert!(matches!(db(DatabaseErrorKind::CheckViolation, "CHECK constraint failed"), RepoError::Unknown(_)));
        assert!(matches!(db(DatabaseErrorKind::Unknown, "no such table: users"), RepoError::Unknown(_)));
        assert!(matches!(RepoError::from(StoreError::PoolTimeout), RepoError::Unavailable(_)));
    }
}
