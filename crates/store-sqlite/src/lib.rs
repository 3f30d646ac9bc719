//! The embedded store: every port of `specgen-ports` on one SQLite file,
//! through a deadpool pool of `SyncConnectionWrapper<SqliteConnection>`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use specgen_store_sqlite::{SqliteConfig, SqliteStore};
//! let store = SqliteStore::open(SqliteConfig::new("data/specgen.sqlite3"))?;
//! store.migrate().await?;
//! let ports = store.store();
//! # let _ = ports; Ok(()) }
//! ```
//!
//! Open it inside a tokio runtime: its blocking pool runs every SQLite call,
//! whichever runtime (actix's current-thread workers included) awaits it.

mod error;
mod models;
mod pool;
mod repo;
mod schema;
mod store;
mod writer;

pub use store::{ConnectionPragmas, SqliteConfig, SqliteStore};
