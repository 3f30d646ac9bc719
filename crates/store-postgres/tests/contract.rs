//! The shared store contract, each case on its own fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use specgen_store_postgres::testing::TestDatabase;
use specgen_test_support::TestStore;

async fn fresh_store() -> TestStore {
    let (db, pg) = TestDatabase::create_migrated().await;
    // Field order matters on drop: the store (and its pool) goes first, then
    // the guard drops the database.
    TestStore { store: pg.store(), guard: Box::new(db) }
}

specgen_test_support::store_contract_tests!(fresh_store);
