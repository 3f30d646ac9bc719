//! The connection pool and the one way repository code touches a connection.
//!
//! Concurrency strategy: every repository call runs as ONE closure. A read
//! runs on a pooled reader connection, on the caller's thread, and cannot be
//! interrupted half-way. A write runs on the writer thread's connection
//! (`writer.rs`) inside `BEGIN IMMEDIATE`: IMMEDIATE takes the write lock up
//! front, so the writer waits in SQLite's busy handler (bounded by
//! `busy_timeout`) instead of failing on a read-to-write lock upgrade, which
//! the busy handler cannot wait out; that also holds against other processes
//! using the same file (a CLI, a second instance). A caller that goes away
//! never leaves a transaction open: the writer thread runs every write it
//! has taken to COMMIT or ROLLBACK regardless.

use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use futures::FutureExt as _;
use futures::future::BoxFuture;

use crate::error::StoreError;
use crate::writer::Writer;

pub(crate) type Conn = SyncConnectionWrapper<SqliteConnection, Inline>;
pub(crate) type DeadpoolError = diesel_async::pooled_connection::deadpool::PoolError;

/// Runs a reader connection's work on the caller's thread, at once: in WAL
/// mode reads never wait for a lock, and a point lookup or a page costs a
/// few tens of microseconds, less than the two thread switches a hop to a
/// blocking pool costs in this VM (measured with perf: a fifth of the
/// server's CPU under load went to switching threads).
pub(crate) struct Inline;

impl SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        futures::future::ready(Ok(task())).boxed()
    }

    fn get_runtime() -> Self {
        Inline
    }
}

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

pub(crate) fn build_pool(
    url: &str,
    busy_timeout: Duration,
    max_size: usize,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<Pool<Conn>> {
    let setup = pragmas(busy_timeout, true);
    let mut config = diesel_async::pooled_connection::ManagerConfig::<Conn>::default();
    config.custom_setup = Box::new(move |url: &str| {
        let (url, setup, runtime) = (url.to_owned(), setup.clone(), runtime.clone());
        Box::pin(async move {
            // Opening and configuring touch the file, and switching to WAL
            // may wait for another connection's lock: off the async workers.
            let conn = runtime
                .spawn_blocking(move || establish(&url, &setup))
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(format!("connection setup task failed: {e}")))??;
            Ok(Conn::with_runtime(conn, Inline))
        })
    });
    // A local file connection cannot silently drop; broken transaction state
    // is still checked on every recycle. Skips a `SELECT 1` per checkout.
    config.recycling_method = diesel_async::pooled_connection::RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<Conn>::new_with_config(url, config);
    Ok(Pool::builder(manager).max_size(max_size.max(1)).build()?)
}

/// The readers' pool, the writer and the checkout timeout; cheap to clone.
///
/// Writes go to ONE connection on a thread of its own ([`Writer`]), so they
/// queue in order rather than in SQLite's busy handler, which sleeps in
/// steps of up to 100 ms while another connection holds the write lock
/// (measured: the tail of concurrent replies), and they commit in groups.
/// Reads use the pool and run beside the writer (WAL).
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) readers: Pool<Conn>,
    pub(crate) writer: Writer,
    pub(crate) wait_timeout: Duration,
}

impl Db {
    async fn reader(&self) -> Result<Object<Conn>, StoreError> {
        // Timed here rather than with deadpool's own timeouts, which would
        // need deadpool's runtime feature.
        match tokio::time::timeout(self.wait_timeout, self.readers.get()).await {
            Ok(got) => got.map_err(StoreError::Pool),
            Err(_) => Err(StoreError::PoolTimeout),
        }
    }

    /// Runs `f`, a read (one statement or several without a snapshot), on
    /// a reader connection, on the caller's thread.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let mut conn = self.reader().await?;
        // spawn_blocking wants a QueryResult: carry ours inside it.
        conn.spawn_blocking(move |c| Ok(f(c))).await.map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Runs `f` on the writer, all or nothing: each write runs in a
    /// savepoint of an IMMEDIATE transaction (see [`Writer`]).
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        self.writer.write(f).await
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
