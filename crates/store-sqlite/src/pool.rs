//! The connection pool and the one way repository code touches a connection.
//!
//! Concurrency strategy: every repository call runs as ONE blocking task on
//! one pooled connection (`SyncConnectionWrapper::spawn_blocking`), and every
//! multi-statement write runs inside `BEGIN IMMEDIATE`. IMMEDIATE takes the
//! write lock up front, so a writer waits in SQLite's busy handler (bounded by
//! `busy_timeout`) instead of failing on a read-to-write lock upgrade, which
//! the busy handler cannot wait out. This also holds against other processes
//! using the same file (a CLI, a second instance), which an in-process mutex
//! would not cover. Running the whole transaction in one blocking task means
//! a cancelled request can never leave a transaction open on a pooled
//! connection: the task runs to COMMIT or ROLLBACK regardless.

use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;

use crate::error::StoreError;

pub(crate) type Conn = SyncConnectionWrapper<SqliteConnection>;
pub(crate) type DeadpoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// The per-connection settings. `busy_timeout` comes first so that switching
/// a fresh file to WAL (which needs a lock) already waits for busy peers.
/// WAL lets readers run beside the writer; `synchronous = NORMAL` is durable
/// across application crashes in WAL mode and much cheaper than FULL.
pub(crate) fn pragmas(busy_timeout: Duration, foreign_keys: bool) -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = {}; PRAGMA synchronous = NORMAL;",
        busy_timeout.as_millis(),
        if foreign_keys { "ON" } else { "OFF" },
    )
}

/// Opens a plain connection with the given settings (blocking).
pub(crate) fn establish(url: &str, setup: &str) -> diesel::ConnectionResult<SqliteConnection> {
    let mut conn = SqliteConnection::establish(url)?;
    conn.batch_execute(setup).map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

pub(crate) fn build_pool(url: &str, busy_timeout: Duration, max_size: usize) -> anyhow::Result<Pool<Conn>> {
    let setup = pragmas(busy_timeout, true);
    let mut config = diesel_async::pooled_connection::ManagerConfig::<Conn>::default();
    config.custom_setup = Box::new(move |url: &str| {
        let (url, setup) = (url.to_owned(), setup.clone());
        Box::pin(async move {
            // Opening and configuring touch the file: keep them off the
            // async workers, like every other SQLite call.
            let conn = tokio::task::spawn_blocking(move || establish(&url, &setup))
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(format!("connection setup task failed: {e}")))??;
            Ok(Conn::new(conn))
        })
    });
    // A local file connection cannot silently drop; broken transaction state
    // is still checked on every recycle. Skips a `SELECT 1` per checkout.
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url, config);
    Ok(Pool::builder(manager).max_size(max_size.max(1)).build()?)
}

/// The pool plus the checkout timeout; cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: Pool<Conn>,
    pub(crate) wait_timeout: Duration,
    /// The multi-threaded runtime the store was opened on. Work runs there as
    /// a detached task: a caller whose future is dropped (actix drops every
    /// extractor's future when one fails) must not cancel diesel-async's
    /// blocking task, whose cancel guard calls `block_in_place` and panics
    /// on actix's current-thread worker runtimes.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Db {
    async fn conn(&self) -> Result<Object<Conn>, StoreError> {
        // Timed here rather than with deadpool's own timeouts, which would
        // need deadpool's runtime feature.
        match tokio::time::timeout(self.wait_timeout, self.pool.get()).await {
            Ok(got) => got.map_err(StoreError::Pool),
            Err(_) => Err(StoreError::PoolTimeout),
        }
    }

    /// Runs `f` on one pooled connection, in one blocking task.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.clone();
        let task = self.runtime.spawn(async move {
            let mut conn = db.conn().await?;
            // spawn_blocking wants a QueryResult: carry ours inside it.
            let outcome = conn.spawn_blocking(move |c| Ok(f(c))).await;
            drop(conn);
            outcome?
        });
        task.await.map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: for every write that
    /// reads first or spans several statements.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.run(move |c| c.immediate_transaction(f)).await
    }

    /// Runs `f` in a deferred transaction: several reads from one snapshot.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.run(move |c| c.transaction(f)).await
    }
}
