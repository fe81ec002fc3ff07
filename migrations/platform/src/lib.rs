//! What the modules' migrators share: the step a module hands the root to bring its schema up
//! to date, the inbox retention index, the outbox's trace column, and the in-process bus's own `events` store.
//!
//! Each module's migrator is its own crate beside this one (`migrations/<module>`). Each keeps
//! its own tracking table (`<module>_migrations`) in its own schema (PostgreSQL) or file
//! (SQLite), so modules can be deployed, migrated and rolled back independently and never
//! share a table.

use std::pin::Pin;

use sea_orm_migration::sea_orm::DatabaseConnection;
use sea_orm_migration::{DbErr, MigratorTrait};

mod events;
mod inbox_retention;
mod outbox_traceparent;

pub use events::Migrator as EventsMigrator;
pub use inbox_retention::Migration as InboxRetention;
pub use outbox_traceparent::Migration as OutboxTraceparent;

/// `M` brought up to date, as the `platform::db::Migrate` a module hands the root
/// (`migrations::up::<booking_migrations::Migrator>`).
pub fn up<M: MigratorTrait + 'static>(
    db: &DatabaseConnection,
) -> Pin<Box<dyn Future<Output = Result<(), DbErr>> + Send + '_>> {
    Box::pin(M::up(db, None))
}
