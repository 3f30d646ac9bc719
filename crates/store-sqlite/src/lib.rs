//! The embedded store: every port of `specgen-ports` on one SQLite file.
//! Reads go through a deadpool pool of `SyncConnectionWrapper<SqliteConnection>`
//! and run on the caller's thread; writes go to one connection on a thread
//! of its own, which commits them in groups (`writer.rs`).
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
//! Open it inside a tokio runtime: its blocking pool opens the reader
//! connections. Any runtime (actix's current-thread workers included) may
//! await the store's calls.

mod cached;
mod error;
mod models;
mod pool;
mod repo;
mod schema;
mod store;
mod writer;

pub use store::{ConnectionPragmas, SqliteConfig, SqliteStore};
