//! The shared store contract, on a fresh database file per case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use specgen_store_sqlite::{SqliteConfig, SqliteStore};
use specgen_test_support::TestStore;

async fn fresh_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("db/specgen.sqlite3"))).expect("open");
    store.migrate().await.expect("migrate");
    // The guard keeps the directory (and the file) until the case ends.
    TestStore { store: store.store(), guard: Box::new(dir) }
}

specgen_test_support::store_contract_tests!(fresh_store);
