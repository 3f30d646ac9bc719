use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use specgen_ports::Store;

use crate::pool::{Db, build_pool, establish, pragmas};
use crate::repo::SqliteRepos;
use crate::writer::Writer;

pub(crate) const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// Where the database lives and how its pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The database file; its parent directory is created if missing.
    pub path: PathBuf,
    /// Pooled connections: one writes (SQLite runs one writer at a time
    /// anyway), the others read beside it.
    pub max_connections: usize,
    /// How long a statement waits for another connection's lock before
    /// failing with "database is locked" (reported as `Unavailable`).
    pub busy_timeout: Duration,
    /// How long a call waits for a free pooled connection.
    pub wait_timeout: Duration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/specgen.sqlite3"),
            max_connections: 8,
            busy_timeout: Duration::from_secs(5),
            wait_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteConfig {
    /// The defaults, at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), ..Self::default() }
    }
}

/// The settings a pooled connection actually runs with (diagnostics, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPragmas {
    pub journal_mode: String,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
    /// 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    pub synchronous: i64,
}

/// An opened SQLite store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SqliteStore {
    repos: Arc<SqliteRepos>,
    url: String,
    busy_timeout: Duration,
}

impl SqliteStore {
    /// Creates the database directory and the pool. Connections (and the
    /// file) are opened lazily: `migrate` is the first to touch the file.
    pub fn open(cfg: SqliteConfig) -> anyhow::Result<Self> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the SQLite database directory {}", dir.display()))?;
        }
        let url = cfg
            .path
            .to_str()
            .with_context(|| format!("SQLite database path {} is not valid UTF-8", cfg.path.display()))?
            .to_owned();
        let runtime =
            tokio::runtime::Handle::try_current().context("the SQLite store must be opened inside a tokio runtime")?;
        let readers = build_pool(&url, cfg.busy_timeout, cfg.max_connections.saturating_sub(1), runtime)
            .with_context(|| format!("cannot build the SQLite pool for {url}"))?;
        let writer = Writer::start(url.clone(), cfg.busy_timeout).context("cannot start the SQLite writer thread")?;
        let db = Db { readers, writer, wait_timeout: cfg.wait_timeout };
        Ok(Self { repos: Arc::new(SqliteRepos { db }), url, busy_timeout: cfg.busy_timeout })
    }

    /// Every port, served by this store.
    pub fn store(&self) -> Store {
        Store {
            users: self.repos.clone(),
            refresh_tokens: self.repos.clone(),
            sessions: self.repos.clone(),
            messages: self.repos.clone(),
            health: self.repos.clone(),
        }
    }

    /// Applies pending migrations; returns how many ran.
    pub async fn migrate(&self) -> anyhow::Result<usize> {
        self.with_migration_connection(|conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|applied| applied.len())
                .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))
        })
        .await
    }

    /// Reverts every applied migration (runs each `down.sql`, newest first);
    /// returns how many. Leaves an empty database.
    pub async fn revert_all(&self) -> anyhow::Result<usize> {
        self.with_migration_connection(|conn| {
            conn.revert_all_migrations(MIGRATIONS)
                .map(|reverted| reverted.len())
                .map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))
        })
        .await
    }

    /// Migrations run on their own plain connection, blocking, off the async
    /// workers. Foreign keys stay OFF there, as SQLite's table-rebuild
    /// procedure requires (and the pragma cannot change inside the
    /// transaction each migration runs in).
    async fn with_migration_connection<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let (url, setup) = (self.url.clone(), pragmas(self.busy_timeout, false));
        tokio::task::spawn_blocking(move || {
            let mut conn = establish(&url, &setup).with_context(|| format!("cannot open SQLite database {url}"))?;
            f(&mut conn)
        })
        .await
        .context("migration task failed")?
    }

    /// The pragmas of a pooled connection, read back from SQLite.
    pub async fn pragmas(&self) -> anyhow::Result<ConnectionPragmas> {
        #[derive(QueryableByName)]
        struct JournalMode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        #[derive(QueryableByName)]
        struct ForeignKeys {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            foreign_keys: i64,
        }
        #[derive(QueryableByName)]
        struct BusyTimeout {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            timeout: i64,
        }
        #[derive(QueryableByName)]
        struct Synchronous {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            synchronous: i64,
        }
        let read = self
            .repos
            .db
            .run(|c| {
                Ok(ConnectionPragmas {
                    journal_mode: diesel::sql_query("PRAGMA journal_mode").get_result::<JournalMode>(c)?.journal_mode,
                    foreign_keys: diesel::sql_query("PRAGMA foreign_keys").get_result::<ForeignKeys>(c)?.foreign_keys
                        == 1,
                    busy_timeout_ms: diesel::sql_query("PRAGMA busy_timeout").get_result::<BusyTimeout>(c)?.timeout,
                    synchronous: diesel::sql_query("PRAGMA synchronous").get_result::<Synchronous>(c)?.synchronous,
                })
            })
            .await;
        read.map_err(|e| anyhow::anyhow!(specgen_ports::RepoError::from(e)))
    }
}
