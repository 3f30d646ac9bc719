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
//! every frame already copied, and that write pays for it: an fsync of the
//! new WAL header (0.4-2 ms here). Left to itself, that is the first write
//! after each checkpoint (at a quiet time, nearly every user message), and
//! under sustained load no write ever finds the WAL fully copied, so it grew
//! by every page written (about 50 MB/s at 850 replies a second). So the
//! writer starts the WAL over itself, with the smallest write there is, when
//! the checkpointer tells it that a round has copied everything, or that
//! the WAL has grown past [`RESTART_AFTER_FRAMES`] (the checkpointer then
//! copies twice, the second round only taking what came in during the
//! first, and the writer copies the short rest).

use std::sync::mpsc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

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

/// WAL frames (pages written) past which the writer starts the WAL over even
/// though commits keep coming: SQLite's own automatic checkpoint threshold,
/// about 4 MB.
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
    jobs: Sender<Job>,
}

impl Writer {
    /// Starts the thread. The connection is opened on the first write (and
    /// again after a failure), like a pool's.
    pub(crate) fn start(url: String, busy_timeout: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        // One pending signal is enough either way: the checkpointer copies
        // every commit made before it runs, and one new start of the WAL
        // serves every round that asked for it.
        let (committed, commits) = mpsc::sync_channel::<()>(1);
        let (copied, start_over) = crossbeam_channel::bounded::<()>(1);
        let setup = pragmas(busy_timeout, true);
        let checkpointer_setup = setup.clone();
        let checkpointer_url = url.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpointer_url, &checkpointer_setup, &commits, &copied))?;
        let setup = format!("{setup} PRAGMA wal_autocheckpoint = 0;");
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(&url, &setup, &queue, &committed, start_over))?;
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

fn run(url: &str, setup: &str, queue: &Receiver<Job>, committed: &mpsc::SyncSender<()>, mut start_over: Receiver<()>) {
    let mut connection: Option<SqliteConnection> = None;
    loop {
        let first = crossbeam_channel::select! {
            recv(queue) -> job => match job {
                Ok(job) => job,
                // Every handle is gone: nothing more will be written.
                Err(_) => return,
            },
            recv(start_over) -> asked => {
                match (asked, connection.as_mut()) {
                    (Ok(()), Some(conn)) => start_wal_over(conn),
                    // No write yet, so no WAL of this writer's to start over.
                    (Ok(()), None) => {}
                    // The checkpointer has stopped; it will not ask again.
                    (Err(_), _) => start_over = crossbeam_channel::never(),
                }
                continue;
            }
        };
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
    /// Of those, frames now copied into the database file.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    checkpointed: i64,
}

/// Copies every committed frame no reader still needs into the database file.
fn passive_checkpoint(conn: &mut SqliteConnection) -> diesel::QueryResult<Checkpointed> {
    use diesel::RunQueryDsl as _;
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)
}

/// The user_version in the database header (unused by this store).
#[derive(diesel::QueryableByName)]
struct UserVersion {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    user_version: i32,
}

/// Copies what the checkpointer has not, then writes the header's
/// user_version back unchanged: the smallest write there is (one page). If
/// every frame is copied by then and no reader still reads from the WAL,
/// this write starts it over, and pays for that instead of a caller's write.
/// If not, it is one page more in the WAL, and the checkpointer asks again.
/// It tells the checkpointer nothing: at a quiet time that would make a
/// round of its own, and then another start, forever.
fn start_wal_over(conn: &mut SqliteConnection) {
    use diesel::RunQueryDsl as _;
    use diesel::connection::SimpleConnection as _;
    let outcome = passive_checkpoint(conn).and_then(|_| {
        conn.immediate_transaction(|c| {
            let version = diesel::sql_query("PRAGMA user_version").get_result::<UserVersion>(c)?.user_version;
            c.batch_execute(&format!("PRAGMA user_version = {version};"))
        })
    });
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "could not start the SQLite WAL over; the next checkpoint round tries again");
    }
}

/// Copies committed pages from the WAL into the database file, a round at
/// a time, until the writer thread ends. `PASSIVE` takes no lock that a
/// reader or the writer waits for, so neither ever stalls on it. Then asks
/// the writer to start the WAL over when this round copied all of it, or
/// when it has grown large.
fn checkpoint(url: &str, setup: &str, commits: &mpsc::Receiver<()>, copied: &Sender<()>) {
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
                    let _ = copied.try_send(());
                }
            }
            Ok(round) if round.log > 0 && round.checkpointed == round.log => {
                let _ = copied.try_send(());
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
        use std::io::Read as _;
        let mut header = [0u8; 16];
        std::fs::File::open(wal).unwrap().read_exact(&mut header).unwrap();
        u32::from_be_bytes([header[12], header[13], header[14], header[15]])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_a_quiet_time_the_writer_starts_the_wal_over_before_the_next_write_needs_to() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer_with_things(&dir.path().join("q.db")).await;
        let wal = dir.path().join("q.db-wal");
        writer.write(|c| insert(c, "one")).await.unwrap();
        let starts_before = wal_starts(&wal);
        // No other write: only the writer's own can start the WAL over, once
        // the checkpointer has copied the round (half a second after it).
        let started_over = async {
            while wal_starts(&wal) == starts_before {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), started_over)
            .await
            .expect("the WAL starts over without waiting for the next caller's write");
        // The next caller's write then appends to the new WAL, and the row is there.
        writer.write(|c| insert(c, "two")).await.unwrap();
        let mut reader = establish(dir.path().join("q.db").to_str().unwrap(), "").unwrap();
        let rows: Vec<Row> = diesel::sql_query("SELECT name FROM things ORDER BY name").load(&mut reader).unwrap();
        assert_eq!(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(wal_starts(&wal), starts_before + 1, "that write did not start it over again");
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
        // (without the writer's own start: none at all, and 4 times as long).
        assert!(starts >= 2, "the WAL started over {starts} times during {rows} writes; it is {wal_len} bytes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_that_cannot_be_opened_fails_each_write_clearly() {
        let writer = Writer::start("/nonexistent-dir/x/y.db".into(), Duration::from_millis(100)).unwrap();
        let outcome = writer.write(|_| Ok(())).await;
        assert!(matches!(outcome, Err(StoreError::Writer(_))), "{outcome:?}");
    }
}
