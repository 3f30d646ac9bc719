//! The one connection that writes, on a thread of its own, with group commit.
//!
//! Writes queue here in order. The thread takes every write waiting (up to
//! [`MAX_BATCH`]) and runs them in ONE `BEGIN IMMEDIATE` transaction, each
//! inside a savepoint of its own (or directly, when it is the only one): a
//! write that fails is rolled back alone, and its caller gets its own error.
//! Callers hear their outcome only after the COMMIT, so nothing is
//! acknowledged before it is stored. Under load this turns one commit (WAL
//! append, lock and wake-up) per write into one per batch; alone, a write
//! costs what it did on a pooled connection.
//!
//! Checkpoints (copying committed pages from the WAL into the database file,
//! with an fsync of each) run on a second thread, never in a write: SQLite
//! would otherwise run one inside whichever commit crossed 1,000 WAL pages,
//! stalling it and every write queued behind it for several milliseconds.
//!
//! SQLite starts the WAL over from its beginning only when a write finds
//! every frame already copied. Under sustained load a commit always lands
//! between the checkpointer's copy and the next write, so the WAL never
//! started over and grew by every page written (about 50 MB/s at 850 replies
//! a second). When the WAL has grown past [`RESTART_AFTER_FRAMES`], the
//! checkpointer copies twice (the second round only takes what came during
//! the first) and then asks the writer to copy the short rest itself,
//! between two batches: its next write then starts the WAL over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use diesel::SqliteConnection;
use diesel::connection::Connection as _;

use crate::error::StoreError;
use crate::pool::{establish, pragmas};

/// The most writes one transaction carries: bounds how long the first of
/// them waits for the others.
const MAX_BATCH: usize = 64;

/// How long the checkpointer lets commits gather before copying them into
/// the database file: one checkpoint (and its fsyncs) per round, not per
/// commit, while the WAL stays small.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// WAL frames (pages written) past which the writer helps start the WAL
/// over: SQLite's own automatic checkpoint threshold, about 4 MB.
const RESTART_AFTER_FRAMES: i64 = 1_000;

/// What a write hands back after running: called once the batch's COMMIT
/// has succeeded (`None`) or failed (`Some(why)`).
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = Box<dyn FnOnce(&mut SqliteConnection, Nesting) -> Ran + Send>;

/// How a write runs inside its batch's transaction.
#[derive(Clone, Copy)]
enum Nesting {
    /// In a savepoint of its own, so that its failure undoes only its work.
    Savepoint,
    /// Directly: it is the batch's only write, and its failure rolls the
    /// whole transaction back. Saves the savepoint's SQL (parsed anew each
    /// time) and its journal of page copies, the common case at low load.
    Alone,
}

/// A write that has run: whether it succeeded, and how to hand back its result.
struct Ran {
    succeeded: bool,
    deliver: Deliver,
}

/// A handle on the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread. The connection is opened on the first write (and
    /// again after a failure), like a pool's.
    pub(crate) fn start(url: String, busy_timeout: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        // One pending signal is enough: the checkpointer copies every commit
        // made before it runs.
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let restart_wanted = Arc::new(AtomicBool::new(false));
        let setup = pragmas(busy_timeout, true);
        let checkpointer_setup = setup.clone();
        let checkpointer_url = url.clone();
        let checkpointer_asks = Arc::clone(&restart_wanted);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpointer_url, &checkpointer_setup, &commits, &checkpointer_asks))?;
        let setup = format!("{setup} PRAGMA wal_autocheckpoint = 0;");
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&url, &setup, &queue, &committed, &restart_wanted))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in its own savepoint of the next batch and returns its
    /// result once the batch is committed.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut SqliteConnection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, outcome) = tokio::sync::oneshot::channel::<Result<R, StoreError>>();
        let job: Job = Box::new(move |c, nesting| {
            let result = match nesting {
                Nesting::Savepoint => c.transaction(f),
                Nesting::Alone => f(c),
            };
            let succeeded = result.is_ok();
            let deliver: Deliver = Box::new(move |commit_failure: Option<&str>| {
                let result = match commit_failure {
                    None => result,
                    Some(why) => Err(StoreError::Writer(format!("the transaction did not commit: {why}"))),
                };
                // A caller that went away no longer listens; the write stands.
                let _ = reply.send(result);
            });
            Ran { succeeded, deliver }
        });
        self.jobs.send(job).map_err(|_| StoreError::Writer("the writer thread has stopped".into()))?;
        // Dropped unanswered: the batch never ran (the database could not be
        // opened or locked; the writer thread logged why).
        outcome.await.unwrap_or_else(|_| Err(StoreError::Writer("the database could not be opened or locked".into())))
    }
}

fn run(
    url: &str,
    setup: &str,
    queue: &mpsc::Receiver<Job>,
    committed: &mpsc::SyncSender<()>,
    restart_wanted: &AtomicBool,
) {
    let mut connection: Option<SqliteConnection> = None;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let conn = match connection.take().map_or_else(|| establish(url, setup), Ok) {
            Ok(conn) => connection.insert(conn),
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "cannot open the SQLite database for writing");
                continue;
            }
        };
        let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
        let nesting = if batch.len() == 1 { Nesting::Alone } else { Nesting::Savepoint };
        // A panicking write must not take the thread (and every later
        // write) down with it; the connection, possibly mid-transaction, is
        // closed (which rolls back) and opened again for the next batch.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            conn.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                for job in batch.drain(..) {
                    let ran = job(c, nesting);
                    delivers.push(ran.deliver);
                    if !ran.succeeded && matches!(nesting, Nesting::Alone) {
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                }
                Ok(())
            })
        }));
        match outcome {
            // The batch's only write failed and was rolled back: its caller
            // gets that write's own error.
            Ok(Err(diesel::result::Error::RollbackTransaction)) if matches!(nesting, Nesting::Alone) => {
                delivers.into_iter().for_each(|deliver| deliver(None));
            }
            Ok(Ok(())) => {
                delivers.into_iter().for_each(|deliver| deliver(None));
                // Full: a signal is already pending. Disconnected cannot
                // happen while this thread holds the sender.
                let _ = committed.try_send(());
                // After the callers have their answers: copy what the
                // checkpointer has not, so that the next write can start the
                // WAL over (unless a reader still reads from it; the
                // checkpointer asks again next round).
                if restart_wanted.swap(false, Ordering::AcqRel)
                    && let Err(e) = passive_checkpoint(conn)
                {
                    tracing::warn!(error = %e, "the writer's checkpoint failed; the WAL grows until the next round");
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, writes = delivers.len() + batch.len(), "a batch of SQLite writes failed");
                // Start the next batch on a fresh connection, whatever state
                // this failure left this one in.
                connection = None;
                let why = e.to_string();
                delivers.into_iter().for_each(|deliver| deliver(Some(&why)));
            }
            Err(_) => {
                tracing::error!("a SQLite write panicked; its batch is rolled back");
                connection = None;
                delivers.into_iter().for_each(|deliver| deliver(Some("a write in the same batch panicked")));
            }
        }
    }
}

/// What `PRAGMA wal_checkpoint` reports, in frames.
#[derive(diesel::QueryableByName)]
struct Checkpointed {
    /// Frames in the WAL.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    log: i64,
}

/// Copies every committed frame no reader still needs into the database file.
fn passive_checkpoint(conn: &mut SqliteConnection) -> diesel::QueryResult<Checkpointed> {
    use diesel::RunQueryDsl as _;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)
}

/// Copies committed pages from the WAL into the database file, a round at
/// a time, until the writer thread ends. `PASSIVE` takes no lock that a
/// reader or the writer waits for, so neither ever stalls on it.
fn checkpoint(url: &str, setup: &str, commits: &mpsc::Receiver<()>, restart_wanted: &AtomicBool) {
    let mut connection: Option<SqliteConnection> = None;
    while commits.recv().is_ok() {
        std::thread::sleep(CHECKPOINT_EVERY);
        while commits.try_recv().is_ok() {}
        let conn = match connection.take().map_or_else(|| establish(url, setup), Ok) {
            Ok(conn) => connection.insert(conn),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the SQLite database to checkpoint; the WAL grows until it can");
                continue;
            }
        };
        match passive_checkpoint(conn) {
            Ok(round) if round.log >= RESTART_AFTER_FRAMES => {
                // Again, for what was committed during that round; the
                // writer then has only a few milliseconds' worth to copy.
                if passive_checkpoint(conn).is_ok() {
                    restart_wanted.store(true, Ordering::Release);
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a SQLite checkpoint failed; the next round tries again");
                connection = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl as _;
    use diesel::sql_types::Text;

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        name: String,
    }

    fn insert(c: &mut SqliteConnection, name: &str) -> Result<(), StoreError> {
        diesel::sql_query("INSERT INTO things (name) VALUES (?)").bind::<Text, _>(name).execute(c)?;
        Ok(())
    }

    /// A writer on a fresh database at `path` holding an empty `things` table.
    async fn writer_with_things(path: &std::path::Path) -> Writer {
        let writer = Writer::start(path.to_str().unwrap().to_owned(), Duration::from_secs(5)).unwrap();
        writer
            .write(|c| {
                diesel::sql_query("CREATE TABLE things (name TEXT PRIMARY KEY)").execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
        writer
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_in_a_batch_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("w.db").to_str().unwrap().to_owned();
        let writer = writer_with_things(&dir.path().join("w.db")).await;

        // Many writes at once, so they share batches; every fifth inserts a
        // row and then a duplicate, which fails after its first statement.
        let writes = (0..100).map(|i| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |c| {
                        insert(c, &format!("row {i}"))?;
                        if i % 5 == 0 {
                            insert(c, &format!("row {i}"))?;
                        }
                        Ok(i)
                    })
                    .await
            })
        });
        let outcomes = futures::future::join_all(writes).await;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome.unwrap() {
                Ok(n) => assert!(n == i && i % 5 != 0),
                Err(e) => assert!(i % 5 == 0, "write {i} failed: {e:?}"),
            }
        }

        let mut reader = establish(&url, "").unwrap();
        let rows: Vec<Row> = diesel::sql_query("SELECT name FROM things").load(&mut reader).unwrap();
        assert_eq!(rows.len(), 80, "the 80 good writes are stored, nothing of the 20 failed ones");
        assert!(rows.iter().all(|r| r.name.trim_start_matches("row ").parse::<usize>().unwrap() % 5 != 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_alone_in_its_batch_is_rolled_back_with_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("a.db").to_str().unwrap().to_owned();
        let writer = writer_with_things(&dir.path().join("a.db")).await;

        // One write at a time, so each is alone in its batch: the second
        // stores a row, then fails on its duplicate.
        writer.write(|c| insert(c, "kept")).await.unwrap();
        let failed = writer
            .write(|c| {
                insert(c, "undone")?;
                insert(c, "undone")
            })
            .await;
        assert!(matches!(failed, Err(ref e) if !matches!(e, StoreError::Writer(_))), "its own error: {failed:?}");
        writer.write(|c| insert(c, "after")).await.unwrap();

        let mut reader = establish(&url, "").unwrap();
        let mut names: Vec<String> = diesel::sql_query("SELECT name FROM things")
            .load::<Row>(&mut reader)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["after", "kept"], "the failed write left nothing behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_writes_reach_the_database_file_while_the_writer_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = writer_with_things(&path).await;
        let file_len = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = file_len();
        // Far fewer pages than SQLite's own 1,000-page checkpoint threshold,
        // which the writer's connection no longer applies anyway: only the
        // checkpointer thread can bring these rows into the file.
        for i in 0..50 {
            writer.write(move |c| insert(c, &format!("{i:0>200}"))).await.unwrap();
        }
        let grown = async {
            while file_len() <= before {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), grown)
            .await
            .expect("the database file grows: the checkpointer copied the committed pages into it");
        drop(writer);
    }

    /// How many times the WAL has started over: its header's checkpoint
    /// sequence number, which SQLite counts up at each start.
    fn wal_starts(wal: &std::path::Path) -> u32 {
        let header = std::fs::read(wal).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn under_sustained_writes_the_wal_starts_over_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_things(&dir.path().join("s.db")).await;
        let wal = dir.path().join("s.db-wal");
        let starts_before = wal_starts(&wal);
        // Writers that never pause: the queue is never empty, so no write
        // finds the WAL fully copied by the checkpointer alone.
        let deadline = std::time::Instant::now() + Duration::from_secs(4);
        let loops = (0..4).map(|w| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut rows = 0u64;
                while std::time::Instant::now() < deadline {
                    writer.write(move |c| insert(c, &format!("{w}-{rows}-{:0>1000}", ""))).await.unwrap();
                    rows += 1;
                }
                rows
            })
        });
        let rows: u64 = futures::future::join_all(loops).await.into_iter().map(Result::unwrap).sum();
        let (starts, wal_len) = (wal_starts(&wal) - starts_before, std::fs::metadata(&wal).unwrap().len());
        // A round is 500 ms and more: over 4 s the WAL starts over several
        // times, so its file holds about a round of pages, not every write's
        // (without the writer's help: no start at all, and 4 times as long).
        assert!(starts >= 2, "the WAL started over {starts} times during {rows} writes; it is {wal_len} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_that_cannot_be_opened_fails_each_write_clearly() {
        let writer = Writer::start("/nonexistent-dir/x/y.db".into(), Duration::from_millis(100)).unwrap();
        let outcome = writer.write(|_| Ok(())).await;
        assert!(matches!(outcome, Err(StoreError::Writer(_))), "{outcome:?}");
    }
}
