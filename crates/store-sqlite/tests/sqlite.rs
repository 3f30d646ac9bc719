//! What only the embedded store promises: its migrations, its pragmas,
//! concurrent writers, and a clear failure when the file cannot exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use specgen_domain::{FamilyId, PageLimit};
use specgen_ports::{PageRequest, RepoError};
use specgen_store_sqlite::{SqliteConfig, SqliteStore};
use specgen_test_support::fixtures;

async fn migrated(dir: &tempfile::TempDir) -> SqliteStore {
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("specgen.sqlite3"))).unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_revert_and_reapply() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteConfig::new(dir.path().join("specgen.sqlite3"))).unwrap();
    let all = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/sqlite")).unwrap().count();
    assert_eq!(store.migrate().await.unwrap(), all);
    assert_eq!(store.migrate().await.unwrap(), 0, "nothing pending the second time");

    let s = store.store();
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();

    assert_eq!(store.revert_all().await.unwrap(), all);
    // Every table is gone: any query now fails, and not as a missing row.
    assert!(matches!(s.users.find_by_id(user.id).await, Err(RepoError::Unknown(_))));

    assert_eq!(store.migrate().await.unwrap(), all);
    assert_eq!(s.users.find_by_id(user.id).await.unwrap(), None, "re-applied empty");
    s.users.register(&user, &profile).await.unwrap();
    assert_eq!(s.users.find_by_id(user.id).await.unwrap(), Some(user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pragmas_are_on_for_every_pooled_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SqliteConfig {
        path: dir.path().join("specgen.sqlite3"),
        max_connections: 4,
        busy_timeout: Duration::from_millis(4321),
        wait_timeout: Duration::from_secs(5),
    };
    let store = SqliteStore::open(cfg).unwrap();
    store.migrate().await.unwrap();
    // Concurrent reads check out several connections, each set up anew.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        reads.spawn(async move { store.pragmas().await });
    }
    while let Some(read) = reads.join_next().await {
        let pragmas = read.unwrap().unwrap();
        assert_eq!(pragmas.journal_mode, "wal");
        assert!(pragmas.foreign_keys);
        assert_eq!(pragmas.busy_timeout_ms, 4321);
        assert_eq!(pragmas.synchronous, 1, "NORMAL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let s = migrated(&dir).await.store();
    let (ghost, _) = fixtures::user();
    let token = fixtures::refresh_token(ghost.id, FamilyId::new_v7());
    assert!(matches!(s.refresh_tokens.insert(&token).await, Err(RepoError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SqliteConfig { max_connections: 4, ..SqliteConfig::new(dir.path().join("specgen.sqlite3")) };
    let store = SqliteStore::open(cfg).unwrap();
    store.migrate().await.unwrap();
    let s = store.store();
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    let session = fixtures::session(user.id);
    s.sessions.create(&session).await.unwrap();

    // Each insert reads the session then writes two rows: BEGIN IMMEDIATE
    // must queue them instead of failing lock upgrades with SQLITE_BUSY.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let s = s.clone();
        let message = fixtures::user_message(session.id, user.id, &format!("m{i}"));
        writers.spawn(async move {
            s.messages.insert(&message).await?;
            // Interleave other multi-statement writes too.
            let (other, profile) = fixtures::user();
            s.users.register(&other, &profile).await?;
            Ok::<_, RepoError>(message)
        });
    }
    let mut latest = None;
    let mut written = 0;
    while let Some(done) = writers.join_next().await {
        let message = done.unwrap().unwrap();
        latest = latest.max(Some(message.created_at));
        written += 1;
    }
    assert_eq!(written, 20);

    let page = s.messages.page(session.id, PageRequest::first(PageLimit::new(100).unwrap())).await.unwrap();
    assert_eq!(page.items.len(), 20);
    assert!(page.items.windows(2).all(|w| (w[0].created_at, w[0].id) < (w[1].created_at, w[1].id)));
    let (found, _) = s.sessions.find_for_participant(session.id, user.id).await.unwrap().unwrap();
    assert_eq!(found.last_message_at, latest, "activity is the newest message, whatever the commit order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_that_cannot_exist_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"plain file").unwrap();
    let path = file.join("data").join("specgen.sqlite3");
    let err = match SqliteStore::open(SqliteConfig::new(&path)) {
        Ok(store) => store.migrate().await.expect_err("a path under a regular file cannot be opened"),
        Err(err) => err,
    };
    let text = format!("{err:#}");
    assert!(text.contains("not-a-dir"), "names the path: {text}");
    assert!(text.contains("directory"), "says what failed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_unavailable() {
    // The directory exists at open, then disappears: every call now fails as
    // "cannot answer now", not as a bug.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("gone");
    let cfg = SqliteConfig { wait_timeout: Duration::from_secs(2), ..SqliteConfig::new(root.join("specgen.sqlite3")) };
    let store = SqliteStore::open(cfg).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let s = store.store();
    assert!(matches!(s.health.ping().await, Err(RepoError::Unavailable(_))));
}
