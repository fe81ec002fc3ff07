//! One database connection pool per module.
//!
//! SQLite (the default): one file per module, `<data_dir>/<module>.db`, in WAL mode; the files
//! (and the data directory, when created here) are owner-only, like the generated keys.
//! PostgreSQL: one schema per module (named after it, after `database.schema_prefix`) in the configured database, so
//! modules never share a table and nothing joins across them.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};
use tracing::Instrument;

use crate::config::DatabaseSettings;
use crate::health::HealthCheck;

/// Migrations of one module, run on the connection that holds the module's migration lock.
pub type Migrate = for<'c> fn(&'c DatabaseConnection) -> Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + 'c>>;

/// Opens the pool of `module` and brings its schema up to date with `migrate`.
///
/// The pool opens all its connections at once, on the runtime that calls this: a connection
/// opened later inside an HTTP worker would belong to that worker's runtime and die with it
/// at shutdown, before the background tasks (outbox relays) have made their last pass.
///
/// Processes starting together (replicas, or `migrate` beside `serve`) take turns: the
/// schema is created and migrated under a lock — a PostgreSQL advisory lock keyed by the
/// schema, or an exclusive lock on `<data_dir>/<module>.db.lock` for SQLite.
///
/// # Errors
/// The database cannot be reached, or the schema cannot be created or migrated.
pub async fn connect(
    settings: &DatabaseSettings,
    data_dir: &Path,
    module: &str,
    migrate: Migrate,
) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose();
    let timeout = Duration::from_secs(settings.connect_timeout_seconds);
    if url.is_empty() {
        crate::config::private_dir(data_dir)
            .map_err(|e| DbErr::Custom(format!("cannot create data_dir {}: {e}", data_dir.display())))?;
        let path = data_dir.join(format!("{module}.db"));
        let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        options
            .max_connections(settings.sqlite_max_connections)
            .min_connections(settings.sqlite_max_connections)
            .connect_timeout(timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        let lock = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
            let lock_path = path.with_extension("db.lock");
            let lock = private_sqlite_file(&lock_path)?;
            lock.lock().map_err(|e| format!("{}: {e}", lock_path.display()))?;
            private_sqlite_file(&path)?;
            for companion in ["db-wal", "db-shm"] {
                narrow_to_owner(&path.with_extension(companion))?;
            }
            Ok(lock)
        })
        .await
        .map_err(|e| DbErr::Custom(format!("migration lock: {e}")))?
        .map_err(|e| DbErr::Custom(format!("database files of {module}: {e}")))?;
        // Opened under the lock too: switching a new file to WAL needs it to itself.
        let db = Database::connect(options).await?;
        let migrated = migrate(&db).await;
        drop(lock);
        migrated?;
        return Ok(db);
    }

    let schema = format!("{}{module}", settings.schema_prefix);
    let mut session = ConnectOptions::new(url.to_owned());
    session.max_connections(1).min_connections(1).connect_timeout(timeout).sqlx_logging(false);
    let session = Database::connect(session).await?;
    let key = advisory_key(&schema);
    session.execute_unprepared(&format!("SELECT pg_advisory_lock({key})")).await?;
    let migrated = async {
        session.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
        session.execute_unprepared(&format!("SET search_path TO \"{schema}\"")).await?;
        migrate(&session).await
    }
    .await;
    // Closing the session releases the advisory lock whatever happened above.
    session.close().await?;
    migrated?;

    let application = format!("boxoffice-{module}");
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.max_connections)
        .min_connections(settings.max_connections)
        .connect_timeout(timeout)
        .sqlx_logging(false)
        .set_schema_search_path(schema)
        // Named after the module: `pg_stat_activity` and the server's logs tell whose
        // connection waits or holds a lock.
        .map_sqlx_postgres_opts(move |o| o.application_name(&application));
    Database::connect(options).await
}

/// Opens `path`, creating it owner-only (0600) if missing, or narrowing it to the owner if an
/// older version left it wider. The database file is made here rather than by SQLite because
/// SQLite creates it with the process umask (usually world-readable) and then gives its `-wal`
/// and `-shm` files the database file's mode: a 0600 database keeps all three private.
fn private_sqlite_file(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;

    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    narrow_to_owner(path)?;
    Ok(file)
}

/// Takes group and other permissions off `path` if it exists.
fn narrow_to_owner(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;

    let named = |e: std::io::Error| format!("{}: {e}", path.display());
    let mode = match std::fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(named(e)),
    };
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "database file readable by others; restricting to owner");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)).map_err(named)?;
    }
    Ok(())
}

/// A stable 63-bit key for `pg_advisory_lock` from a schema name (FNV-1a).
fn advisory_key(schema: &str) -> i64 {
    let hash = schema.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    i64::try_from(hash >> 1).unwrap_or(0)
}

/// Readiness of one module's database.
pub struct DatabaseHealth {
    name: String,
    db: DatabaseConnection,
}

impl DatabaseHealth {
    pub fn new(module: &str, db: DatabaseConnection) -> Self {
        Self { name: format!("database:{module}"), db }
    }
}

#[async_trait]
impl HealthCheck for DatabaseHealth {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| e.to_string())
    }
}

/// Sets `module`'s connection-pool gauges: `db_pool_connections{module,state}` (`busy`, handed
/// out or being opened; `idle`, open and waiting) and `db_pool_max_connections{module}`. `/metrics` calls it
/// per scrape: the pool's counters are atomics, read without a query or a lock. Saturation is
/// busy / max: at 1, requests wait for a connection.
pub fn sample_pool(module: &'static str, db: &DatabaseConnection) {
    let (size, idle, max) = match db.get_database_backend() {
        DbBackend::Postgres => pool_counts(db.get_postgres_connection_pool()),
        DbBackend::Sqlite => pool_counts(db.get_sqlite_connection_pool()),
        // MySQL: a backend this binary never opens.
        _ => return,
    };
    // Two reads, not one snapshot: a connection returned in between must not make it negative.
    let busy = u64::from(size).saturating_sub(idle as u64);
    #[allow(clippy::cast_precision_loss)] // gauges of a few connections
    {
        metrics::gauge!("db_pool_connections", "module" => module, "state" => "busy").set(busy as f64);
        metrics::gauge!("db_pool_connections", "module" => module, "state" => "idle").set(idle as f64);
    }
    metrics::gauge!("db_pool_max_connections", "module" => module).set(f64::from(max));
}

/// A pool's open connections, idle ones and maximum.
fn pool_counts<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> (u32, usize, u32) {
    (pool.size(), pool.num_idle(), pool.options().get_max_connections())
}

/// A database transaction in a span of its own (`transaction <name>`), a child of the span
/// it begins in, ended when it commits, rolls back or is dropped: a trace shows how long each
/// unit of work held its connection. Used like sea-orm's: `&txn` is a connection.
pub struct Transaction {
    txn: DatabaseTransaction,
    span: tracing::Span,
}

/// Begins a transaction on `db` named `name` in traces (the operation: `book`, `charge`).
///
/// # Errors
/// No connection could be had, or `BEGIN` failed.
pub async fn begin(db: &DatabaseConnection, name: &'static str) -> Result<Transaction, DbErr> {
    let span = tracing::info_span!(
        "transaction",
        otel.name = %format_args!("transaction {name}"),
        otel.kind = "client",
        db.system.name = match db.get_database_backend() {
            DbBackend::Postgres => "postgresql",
            DbBackend::Sqlite => "sqlite",
            _ => "other",
        },
        outcome = tracing::field::Empty,
    );
    let txn = db.begin().instrument(span.clone()).await?;
    Ok(Transaction { txn, span })
}

impl Transaction {
    /// Commits; the span ends with the outcome.
    ///
    /// # Errors
    /// `COMMIT` failed (nothing was written).
    pub async fn commit(self) -> Result<(), DbErr> {
        let committed = self.txn.commit().instrument(self.span.clone()).await;
        self.span.record("outcome", if committed.is_ok() { "committed" } else { "failed" });
        committed
    }

    /// Rolls back; the span ends with the outcome.
    ///
    /// # Errors
    /// `ROLLBACK` failed (the database drops the transaction with the connection).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.span.record("outcome", "rolled back");
        self.txn.rollback().instrument(self.span.clone()).await
    }
}

#[async_trait]
impl ConnectionTrait for Transaction {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// The current time to microseconds: what PostgreSQL keeps, so a value answered at once
/// equals every later read of it.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6)
}

/// Whether a database error means the database could not be reached (answer 503) rather
/// than a bug (answer 500).
pub fn is_unavailable(e: &DbErr) -> bool {
    matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
}

/// The one way a database failure becomes a module's error (each module's `From<DbErr>`
/// calls it): unreachable is `unavailable` (503, the client may retry), anything else is
/// `internal`, keeping the error as the cause. `context` names the database, e.g.
/// `booking database`.
pub fn db_err<E: crate::problem::ProblemKind>(context: &'static str, e: DbErr) -> E {
    if is_unavailable(&e) {
        E::unavailable(format!("{context}: {e}"))
    } else {
        E::internal(crate::error::Failure::new(context, e))
    }
}

/// The contract of a state enum stored as text, for each module's entity test: every value is
/// stored under the name the API shows (the name the plain-text column held before the enums),
/// so rows written before read back unchanged.
///
/// # Panics
/// When a stored name differs from the wire name (it is a test).
pub fn assert_stored_as_on_the_wire<E>()
where
    E: sea_orm::ActiveEnum<Value = String> + sea_orm::Iterable + serde::Serialize + std::fmt::Debug,
{
    for value in E::iter() {
        let wire = serde_json::to_value(&value).ok();
        assert_eq!(wire, Some(serde_json::Value::String(value.to_value())), "{value:?}");
    }
}
