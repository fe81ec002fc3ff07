//! One database connection pool per module.
//!
//! SQLite (the default): one file per module, `<data_dir>/<module>.db`, in WAL mode.
//! PostgreSQL: one schema per module (named after it, after `database.schema_prefix`) in the configured database, so
//! modules never share a table and nothing joins across them.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};

use crate::config::DatabaseSettings;
use crate::health::HealthCheck;

/// Opens the pool of `module` (its schema created if missing). Migrations are run by the caller.
///
/// # Errors
/// The database cannot be reached or the schema cannot be created.
pub async fn connect(settings: &DatabaseSettings, data_dir: &Path, module: &str) -> Result<DatabaseConnection, DbErr> {
    let url = settings.url.expose();
    let timeout = Duration::from_secs(settings.connect_timeout_seconds);
    if url.is_empty() {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| DbErr::Custom(format!("cannot create data_dir {}: {e}", data_dir.display())))?;
        let path = data_dir.join(format!("{module}.db"));
        let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
        options
            .max_connections(settings.max_connections)
            .connect_timeout(timeout)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        return Database::connect(options).await;
    }
    // Make the module's schema with a short-lived connection, then open the pool on it.
    let schema = format!("{}{module}", settings.schema_prefix);
    let mut admin = ConnectOptions::new(url.to_owned());
    admin.max_connections(1).connect_timeout(timeout).sqlx_logging(false);
    let admin = Database::connect(admin).await?;
    admin.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await?;
    admin.close().await?;

    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.max_connections)
        .connect_timeout(timeout)
        .sqlx_logging(false)
        .set_schema_search_path(schema);
    Database::connect(options).await
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

/// Whether a database error means the database could not be reached (answer 503) rather
/// than a bug (answer 500).
pub fn is_unavailable(e: &DbErr) -> bool {
    matches!(e, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
}
