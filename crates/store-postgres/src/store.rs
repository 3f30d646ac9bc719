//! The pool, migrations and the `Store` bundle.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::ConnectionError;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use specgen_ports::{RepoError, Store, StoreHealth};

use crate::config::{PgConfig, redact_url};
use crate::error::DbError;

/// The schema, compiled into the binary so a deployment needs no files.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Serialises concurrent `migrate` calls (several replicas starting at once)
/// through a session-level advisory lock; the number is arbitrary but fixed.
const MIGRATION_LOCK_KEY: i64 = 0x5bec_0001;

pub(crate) type PgPool = Pool<AsyncPgConnection>;
pub(crate) type PooledConn = Object<AsyncPgConnection>;

/// Every repository of Spec Gen on one Postgres connection pool. Cheap to
/// clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    url: String,
    create_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &redact_url(&self.url)).field("pool", &self.pool.status()).finish()
    }
}

impl PgStore {
    /// Builds the pool without opening a connection, so the server can start
    /// (and answer 503) while Postgres is still down.
    pub fn connect(cfg: PgConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(!cfg.url.trim().is_empty(), "postgres url is empty");
        anyhow::ensure!(cfg.max_connections > 0, "postgres max_connections must be at least 1");
        // Postgres takes the timeout in whole milliseconds; 0 would mean "none".
        let statement_ms = cfg.statement_timeout.as_millis().max(1);

        let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
        // `SELECT 1` on every checkout: after a Postgres restart the dead
        // connections are replaced instead of failing one request each.
        manager_config.recycling_method = RecyclingMethod::Verified;
        // A connection's I/O task lives on the runtime that made it. Made
        // from an HTTP worker's single-threaded runtime, it would die when
        // that worker stops (they stop first at shutdown, while replies
        // still write), and every query on it would wait for that worker:
        // connections are made on the runtime the store was built in.
        let home = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        manager_config.custom_setup = Box::new(move |url| {
            let url = url.to_owned();
            let home = home.clone();
            Box::pin(async move {
                let establish = async move {
                    let mut conn = AsyncPgConnection::establish(&url).await?;
                    conn.batch_execute(&format!("SET statement_timeout = {statement_ms}"))
                        .await
                        .map_err(ConnectionError::CouldntSetupConfiguration)?;
                    Ok(conn)
                };
                let on_worker = tokio::runtime::Handle::try_current()
                    .is_ok_and(|current| current.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
                match home {
                    Some(home) if on_worker => home
                        .spawn(establish)
                        .await
                        .map_err(|stopped| ConnectionError::BadConnection(stopped.to_string()))?,
                    _ => establish.await,
                }
            })
        });
        let manager = AsyncDieselConnectionManager::new_with_config(cfg.url.clone(), manager_config);
        let pool = Pool::builder(manager)
            .max_size(cfg.max_connections)
            .wait_timeout(Some(cfg.wait_timeout))
            .create_timeout(Some(cfg.create_timeout))
            .recycle_timeout(Some(cfg.recycle_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()?;
        tracing::debug!(url = %redact_url(&cfg.url), max = cfg.max_connections, "postgres pool ready");
        Ok(Self { pool, url: cfg.url, create_timeout: cfg.create_timeout })
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        self.with_migration_harness(|harness| Ok(harness.run_pending_migrations(MIGRATIONS)?.len())).await
    }

    /// Reverts every applied migration (runs each `down.sql`), newest first;
    /// returns how many. For tests and manual resets only.
    pub async fn revert_all(&self) -> anyhow::Result<usize> {
        self.with_migration_harness(|harness| Ok(harness.revert_all_migrations(MIGRATIONS)?.len())).await
    }

    /// Every port, backed by this store.
    pub fn store(&self) -> Store {
        let this = Arc::new(self.clone());
        Store {
            users: this.clone(),
            refresh_tokens: this.clone(),
            sessions: this.clone(),
            messages: this.clone(),
            health: this,
        }
    }

    /// Closes the pool: idle connections are dropped now, busy ones when
    /// returned, and later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Runs `f` on a dedicated connection (not from the pool, so without the
    /// statement timeout a long migration would hit) inside
    /// `spawn_blocking`, because diesel's migration harness is synchronous.
    async fn with_migration_harness<F>(&self, f: F) -> anyhow::Result<usize>
    where
        F: FnOnce(
                &mut AsyncConnectionWrapper<AsyncPgConnection>,
            ) -> Result<usize, Box<dyn std::error::Error + Send + Sync>>
            + Send
            + 'static,
    {
        let mut conn = tokio::time::timeout(self.create_timeout, AsyncPgConnection::establish(&self.url))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to postgres timed out"))??;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")).await?;
        let count = tokio::task::spawn_blocking(move || {
            let mut harness = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
            // The lock is released with the connection when `harness` drops.
            f(&mut harness).map_err(|e| anyhow::anyhow!("migration failed: {e}"))
        })
        .await??;
        Ok(count)
    }

    pub(crate) async fn conn(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Test hook: takes a connection from the pool and keeps it until the
    /// returned value drops, to exhaust a small pool.
    #[doc(hidden)]
    pub async fn hold_connection(&self) -> Result<HeldConnection, RepoError> {
        self.conn().await.map(HeldConnection).map_err(DbError::into_repo)
    }

    /// Test hook: runs `SELECT pg_sleep(..)` on a pooled connection, to
    /// trip the statement timeout.
    #[doc(hidden)]
    pub async fn sleep_in_database(&self, duration: Duration) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            diesel::sql_query("SELECT pg_sleep($1)")
                .bind::<diesel::sql_types::Double, _>(duration.as_secs_f64())
                .execute(&mut conn)
                .await?;
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }
}

/// A pooled connection held by a test; returned to the pool on drop.
#[doc(hidden)]
pub struct HeldConnection(#[allow(dead_code)] PooledConn);

#[async_trait]
impl StoreHealth for PgStore {
    async fn ping(&self) -> Result<(), RepoError> {
        async {
            let mut conn = self.conn().await?;
            diesel::sql_query("SELECT 1").execute(&mut conn).await?;
            Ok(())
        }
        .await
        .map_err(DbError::into_repo)
    }

    fn pool_status(&self) -> Option<specgen_ports::PoolStatus> {
        let status = self.pool.status();
        Some(specgen_ports::PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }
}
