//! Storage: one diesel connection type over SQLite and PostgreSQL, a pool for reads, a
//! group-commit writer for durable writes, and the embedded migrations.
//!
//! # Why a writer thread
//!
//! Every acknowledged write (a registration, a key, a revocation) must be committed before
//! the response. One transaction per request costs one fsync per request: about 5,000/s on
//! SQLite here. The [`Writer`] owns one connection and drains whatever jobs are queued
//! into a single transaction (each job in its own savepoint, so one job's failure does not
//! affect the others), commits once, then answers every job. Under load, hundreds of
//! writes share one fsync; when idle, a lone write commits at once.

pub mod models;
pub mod schema;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{Backend, DatabaseUrl};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Most jobs committed in one writer transaction.
const WRITER_BATCH: usize = 512;

/// A connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// SQLite file.
    Sqlite(diesel::SqliteConnection),
    /// PostgreSQL server.
    Postgres(diesel::PgConnection),
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A unique constraint was violated (the caller decides what that means).
    #[error("conflicting row already exists")]
    Conflict,
    /// The batch holding this write failed to commit.
    #[error("commit failed: {0}")]
    Commit(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Maps a diesel error, turning unique violations into [`StoreError::Conflict`].
    pub fn from_diesel(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ) => Self::Conflict,
            other => Self::Query(other),
        }
    }
}

/// Opens connections of the backend the URL names (never by trial), applying SQLite
/// pragmas on every new connection.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        Self { url }
    }

    /// Opens one connection.
    pub fn establish(&self) -> Result<DbConnection, StoreError> {
        match self.url.backend() {
            Backend::Sqlite => {
                let mut conn = diesel::SqliteConnection::establish(self.url.connect_string())
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                // WAL lets readers run beside the writer; FULL makes every commit durable;
                // the busy timeout covers the rare write outside the writer thread.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                )
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Ok(DbConnection::Sqlite(conn))
            }
            Backend::Postgres => {
                let conn = diesel::PgConnection::establish(self.url.connect_string())
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        conn.ping().map_err(StoreError::Query)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Runs the migrations of the connection's backend that have not run yet.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, StoreError> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
    Ok(applied.len())
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&mut DbConnection) -> Completion + Send>;

/// The group-commit writer (see the module documentation).
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts `threads` writer threads, each on its own connection. SQLite has one writer
    /// at a time anyway, so it gets one thread; PostgreSQL commits several batches in
    /// parallel, which hides the network round trips of each.
    pub fn start(manager: ConnectionManager, threads: usize) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let conn = manager.establish()?;
            let (manager, rx) = (manager.clone(), rx.clone());
            std::thread::Builder::new()
                .name(format!("patron-writer-{i}"))
                .spawn(move || writer_loop(manager, conn, rx))
                .map_err(|e| StoreError::Unavailable(format!("cannot start writer: {e}")))?;
        }
        Ok(Self { jobs: tx })
    }

    /// Runs `f` inside the next group transaction and returns its result once that
    /// transaction has committed. If `f` fails, only its own savepoint is rolled back.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut DbConnection| {
            let result = conn.transaction(f);
            Box::new(move |commit: Result<(), String>| {
                let outcome = match (commit, result) {
                    (_, Err(e)) => Err(e),
                    (Err(msg), Ok(_)) => Err(StoreError::Commit(msg)),
                    (Ok(()), Ok(v)) => Ok(v),
                };
                let _ = tx.send(outcome);
            }) as Completion
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }
}

/// On SQLite, takes the write lock as the batch's first statement. A deferred transaction
/// that reads first and writes later cannot wait for the lock (SQLite refuses to upgrade a
/// stale read in WAL mode and answers SQLITE_BUSY at once), so a job that reads before it
/// writes would fail whenever the audit writer commits in between. A statement that writes
/// nothing still takes the lock, and as the first statement it honours `busy_timeout`.
fn take_write_lock(conn: &mut DbConnection) -> Result<(), diesel::result::Error> {
    if let DbConnection::Sqlite(c) = conn {
        diesel::sql_query("DELETE FROM revoked_tokens WHERE 0").execute(c)?;
    }
    Ok(())
}

/// Takes the next batch: blocks for one job, then drains what is queued.
fn next_batch(rx: &Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
    let rx = rx.lock().ok()?;
    let first = rx.recv().ok()?;
    let mut jobs = vec![first];
    while jobs.len() < WRITER_BATCH {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

fn writer_loop(
    manager: ConnectionManager,
    mut conn: DbConnection,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
) {
    while let Some(mut jobs) = next_batch(&rx) {
        if conn.is_broken() {
            match manager.establish() {
                Ok(fresh) => conn = fresh,
                Err(e) => {
                    tracing::error!(error = %e, "writer cannot reconnect to the database");
                    // Dropping the jobs drops their reply channels: each caller gets
                    // `Unavailable` and answers 503.
                    drop(jobs);
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
        }
        let mut completions = Vec::with_capacity(jobs.len());
        let committed = conn.transaction::<(), diesel::result::Error, _>(|c| {
            take_write_lock(c)?;
            for job in jobs.drain(..) {
                completions.push(job(c));
            }
            Ok(())
        });
        let outcome = committed.map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, batch = completions.len(), "group commit failed");
        }
        for done in completions {
            done(outcome.clone());
        }
    }
}

/// Handles to the database: a read pool, the group-commit writer, and the backend.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionManager>,
    writer: Writer,
    backend: Backend,
}

impl Store {
    /// Connects, runs pending migrations, and starts the writer.
    pub fn open(url: &DatabaseUrl, pool_size: u32, writers: usize) -> Result<Self, StoreError> {
        let manager = ConnectionManager::new(url.clone());
        {
            let mut conn = manager.establish()?;
            let applied = run_migrations(&mut conn)?;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .build(manager.clone())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let writer = Writer::start(manager, writers)?;
        Ok(Self {
            pool,
            writer,
            backend: url.backend(),
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` in the next group-commit transaction (see [`Writer::write`]).
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// A connection for synchronous use (CLI commands, background threads).
    pub fn connection(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, StoreError> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.read(|c| c.ping().map_err(StoreError::Query))
            .await
            .is_ok()
    }
}
