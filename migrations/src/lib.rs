//! One migrator per module. Each keeps its own tracking table (`<module>_migrations`) in
//! its own schema (PostgreSQL) or file (SQLite), so modules can be deployed, migrated and
//! rolled back independently and never share a table.

pub mod auth;
pub mod booking;
pub mod events;
mod inbox_retention;
pub mod movie;
pub mod notification;
pub mod payment;

/// `$migrator` brought up to date, as the `platform::db::Migrate` a module hands the root.
macro_rules! up {
    ($(#[$doc:meta])* $name:ident, $migrator:path) => {
        $(#[$doc])*
        pub fn $name(
            db: &sea_orm_migration::sea_orm::DatabaseConnection,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), sea_orm_migration::DbErr>> + Send + '_>> {
            Box::pin(<$migrator as sea_orm_migration::MigratorTrait>::up(db, None))
        }
    };
}

up!(
    /// Auth's schema, up to date.
    auth_up,
    auth::Migrator
);
up!(
    /// Movie's schema, up to date.
    movie_up,
    movie::Migrator
);
up!(
    /// Booking's schema, up to date.
    booking_up,
    booking::Migrator
);
up!(
    /// Payment's schema, up to date.
    payment_up,
    payment::Migrator
);
up!(
    /// Notification's schema, up to date.
    notification_up,
    notification::Migrator
);
up!(
    /// The in-process bus's `events` store (dead letters), up to date.
    events_up,
    events::Migrator
);
