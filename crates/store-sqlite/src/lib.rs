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
//! Needs a multi-threaded tokio runtime: diesel-async finishes the blocking
//! task of a cancelled call with `block_in_place`, which panics on a
//! current-thread runtime.

mod error;
mod models;
mod pool;
mod repo;
mod schema;
mod store;

pub use store::{ConnectionPragmas, SqliteConfig, SqliteStore};
