//! Behaviour around the database rather than in it: migrations both ways,
//! and `Unavailable` (quickly) when the pool or the server cannot serve.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use specgen_domain::UserId;
use specgen_ports::RepoError;
use specgen_store_postgres::testing::TestDatabase;
use specgen_store_postgres::{PgConfig, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_revert_and_reapply() {
    let db = TestDatabase::create_empty().await;
    let pg = PgStore::connect(db.config()).unwrap();
    let applied = pg.migrate().await.unwrap();
    assert!(applied >= 1);
    assert_eq!(pg.migrate().await.unwrap(), 0, "nothing left to apply");
    pg.store().health.ping().await.unwrap();

    // Every down.sql runs and leaves no table behind...
    assert_eq!(pg.revert_all().await.unwrap(), applied);
    let missing = pg.store().users.find_by_id(UserId::new_v7()).await;
    assert!(matches!(missing, Err(RepoError::Unknown(_))), "users table is gone: {missing:?}");

    // ...so the schema comes back whole.
    assert_eq!(pg.migrate().await.unwrap(), applied);
    let (user, profile) = specgen_test_support::fixtures::user();
    pg.store().users.register(&user, &profile).await.unwrap();
    assert_eq!(pg.store().users.find_by_id(user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_once() {
    let db = TestDatabase::create_empty().await;
    let (a, b) = (PgStore::connect(db.config()).unwrap(), PgStore::connect(db.config()).unwrap());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra + rb >= 1 && (ra == 0 || rb == 0), "one applies, the other finds nothing: {ra} {rb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_is_unavailable_quickly() {
    let (db, _) = TestDatabase::create_migrated().await;
    let mut cfg = db.config();
    cfg.max_connections = 1;
    cfg.wait_timeout = Duration::from_millis(200);
    let pg = PgStore::connect(cfg).unwrap();
    let store = pg.store();

    let held = pg.hold_connection().await.unwrap();
    let started = Instant::now();
    let result = store.users.find_by_id(UserId::new_v7()).await;
    let waited = started.elapsed();
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(2), "{waited:?}");
    assert!(matches!(store.health.ping().await, Err(RepoError::Unavailable(_))));

    drop(held);
    assert_eq!(store.users.find_by_id(UserId::new_v7()).await.unwrap(), None, "the connection came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_without_hanging() {
    // Connecting is lazy: building the store must not need the server.
    let pg = PgStore::connect(PgConfig::new("postgres://postgres@127.0.0.1:1/specgen")).unwrap();
    let store = pg.store();
    let started = Instant::now();
    let ping = store.health.ping().await;
    assert!(matches!(ping, Err(RepoError::Unavailable(_))), "{ping:?}");
    let lookup = store.users.find_by_email(&specgen_test_support::fixtures::email("x")).await;
    assert!(matches!(lookup, Err(RepoError::Unavailable(_))), "{lookup:?}");
    let (user, profile) = specgen_test_support::fixtures::user();
    let write = store.users.register(&user, &profile).await;
    assert!(matches!(write, Err(RepoError::Unavailable(_))), "{write:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(pg.migrate().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_unavailable() {
    let (db, _) = TestDatabase::create_migrated().await;
    let mut cfg = db.config();
    cfg.statement_timeout = Duration::from_millis(100);
    let pg = PgStore::connect(cfg).unwrap();

    let started = Instant::now();
    let slow = pg.sleep_in_database(Duration::from_secs(5)).await;
    assert!(matches!(slow, Err(RepoError::Unavailable(_))), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // The cancelled statement leaves the connection usable.
    pg.sleep_in_database(Duration::from_millis(1)).await.unwrap();
    pg.store().health.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_pool_is_unavailable() {
    let (_db, pg) = TestDatabase::create_migrated().await;
    pg.store().health.ping().await.unwrap();
    pg.close();
    assert!(matches!(pg.store().health.ping().await, Err(RepoError::Unavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_replaced() {
    // A Postgres restart ends every server process; the pool's liveness
    // check drops the dead connections and opens new ones.
    let (db, pg) = TestDatabase::create_migrated().await;
    let store = pg.store();
    store.health.ping().await.unwrap();
    terminate_backends(&db).await;
    store.health.ping().await.unwrap();
    assert_eq!(store.users.find_by_id(UserId::new_v7()).await.unwrap(), None);
}

async fn terminate_backends(db: &TestDatabase) {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let mut admin = AsyncPgConnection::establish(&specgen_store_postgres::testing::admin_url()).await.unwrap();
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name()
        ))
        .await
        .unwrap();
}

/// How many sessions the test database has open, not counting the asker's.
async fn backends(db: &TestDatabase) -> i64 {
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    let mut admin = AsyncPgConnection::establish(db.url()).await.unwrap();
    diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Count>(&mut admin)
    .await
    .unwrap()
    .n
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// A connection first made from an HTTP worker's single-threaded runtime
/// outlives it: the workers stop first at shutdown, while replies still
/// write through the pool.
#[test]
fn connections_made_from_a_worker_outlive_it() {
    let home = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (db, pg) = home.block_on(async {
        let (db, _) = TestDatabase::create_migrated().await;
        let mut cfg = db.config();
        cfg.max_connections = 1;
        let pg = PgStore::connect(cfg).unwrap();
        (db, pg)
    });
    let worker = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    worker.block_on(async { pg.store().health.ping().await.unwrap() });
    drop(worker);
    home.block_on(async {
        // A connection whose task died is closed by the server at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(backends(&db).await, 1, "the pool's one connection is still open");
        pg.store().health.ping().await.unwrap();
    });
}
