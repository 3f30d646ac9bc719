//! The Postgres store: every repository port of Spec Gen on a deadpool of
//! diesel-async connections, with the schema embedded as migrations.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use specgen_store_postgres::{PgConfig, PgStore};
//! let pg = PgStore::connect(PgConfig::new("postgres://postgres@127.0.0.1/specgen"))?;
//! pg.migrate().await?;
//! let store = pg.store();
//! # let _ = store;
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod messages;
mod refresh_tokens;
mod rows;
mod schema;
mod sessions;
mod store;
mod users;

#[cfg(feature = "test-utils")]
pub mod testing;

pub use config::PgConfig;
pub use store::{HeldConnection, MIGRATIONS, PgStore};
