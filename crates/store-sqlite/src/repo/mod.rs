//! The port implementations. One struct serves every port: they share the
//! pool, and `SqliteStore::store` hands out the same `Arc` under each trait.

mod messages;
mod refresh_tokens;
mod sessions;
mod users;

use async_trait::async_trait;
use diesel::prelude::*;
use specgen_ports::{RepoError, StoreHealth};

use crate::pool::Db;

pub(crate) struct SqliteRepos {
    pub(crate) db: Db,
}

#[async_trait]
impl StoreHealth for SqliteRepos {
    async fn ping(&self) -> Result<(), RepoError> {
        self.db.run(|c| Ok(diesel::sql_query("SELECT 1").execute(c)?)).await?;
        Ok(())
    }

    fn pool_status(&self) -> Option<specgen_ports::PoolStatus> {
        // The readers' pool, plus the writer thread's one connection,
        // counted as open and idle: writes queue on it, reads never do.
        let readers = self.db.readers.status();
        Some(specgen_ports::PoolStatus {
            max: readers.max_size + 1,
            open: readers.size + 1,
            idle: readers.available + 1,
            waiting: readers.waiting,
        })
    }
}

/// Canonical text form of a UUID, as ids are stored: lowercase and
/// hyphenated, so that text order is UUID order (UUIDv7: creation order).
fn uuid_text(id: uuid::Uuid) -> String {
    id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).to_owned()
}
